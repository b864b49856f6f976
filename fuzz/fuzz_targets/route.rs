//! Fuzz target: the router (host normalisation and choice, route matching, raw_rest) against
//! brute-force models. The harness lives in `tern::fuzzing::route`, which
//! `tests/fuzz_corpus.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::route(data));
