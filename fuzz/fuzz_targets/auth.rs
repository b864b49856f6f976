//! Fuzz target: the `Authorization: Basic` parser and the htpasswd parser.
//! The harness lives in `tern::fuzzing::auth`, which `tests/fuzz_corpus.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::auth(data));
