//! Fuzz target: request-head parsing (find the end incrementally, parse, chunked bodies).
//! The harness lives in `tern::fuzzing::head`, which `tests/fuzz_corpus.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::head(data));
