//! Fuzz target: path normalisation and percent-decoding against a reference.
//! The harness lives in `tern::fuzzing::path`, which `tests/fuzz_corpus.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::path(data));
