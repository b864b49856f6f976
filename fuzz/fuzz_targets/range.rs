//! Fuzz target: the Range parser against a brute-force model.
//! The harness lives in `tern::fuzzing::range`, which `tests/fuzz_corpus.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::range(data));
