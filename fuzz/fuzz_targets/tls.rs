//! Fuzz target: the TLS-fronted connection (rustls server side + `Conn` + the handler), fed
//! raw network bytes or plaintext through a real rustls client. The harness lives in
//! `tern::fuzzing::tls`, which `tests/fuzz_corpus.rs` also replays.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tern::fuzzing::tls(data));
