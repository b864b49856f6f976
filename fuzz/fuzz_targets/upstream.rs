//! Fuzz target: an upstream's response head and body framing, as the reverse proxy reads
//! them. The harness lives in `tern::fuzzing::upstream`, which `tests/fuzz_corpus.rs` also
//! replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::upstream(data));
