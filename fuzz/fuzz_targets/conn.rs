//! Fuzz target: the whole connection state machine, with a fake clock and an in-memory site.
//! The harness lives in `tern::fuzzing::conn`, which `tests/fuzz_corpus.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::conn(data));
