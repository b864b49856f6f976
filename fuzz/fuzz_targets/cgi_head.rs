//! Fuzz target: a CGI script's response head (RFC 3875 §6), as tern parses it before
//! streaming the body. The harness lives in `tern::fuzzing::cgi_head`, which
//! `tests/fuzz_corpus.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::cgi_head(data));
