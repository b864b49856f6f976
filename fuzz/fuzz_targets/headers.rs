//! Fuzz target: Accept-Encoding, Accept, preconditions, If-Range and HTTP dates.
//! The harness lives in `tern::fuzzing::headers`, which `tests/fuzz_corpus.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::headers(data));
