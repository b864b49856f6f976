//! Replays every checked-in fuzz corpus file (fuzz/corpus/<target>/*) through the same
//! harness the fuzz target runs, on stable Rust, so CI guards the corpus and every
//! regression input without running the fuzzer.
use std::path::Path;

fn replay(target: &str, harness: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| harness(&data));
        assert!(result.is_ok(), "{target}: {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "{target}: empty corpus");
}

#[test]
fn head() {
    replay("head", tern::fuzzing::head);
}

#[test]
fn conn() {
    replay("conn", tern::fuzzing::conn);
}

#[test]
fn range() {
    replay("range", tern::fuzzing::range);
}

#[test]
fn path() {
    replay("path", tern::fuzzing::path);
}

#[test]
fn headers() {
    replay("headers", tern::fuzzing::headers);
}

#[test]
fn route() {
    replay("route", tern::fuzzing::route);
}

#[test]
fn tls() {
    replay("tls", tern::fuzzing::tls);
}

#[test]
fn auth() {
    replay("auth", tern::fuzzing::auth);
}

#[test]
fn cgi_head() {
    replay("cgi_head", tern::fuzzing::cgi_head);
}

#[test]
fn upstream() {
    replay("upstream", tern::fuzzing::upstream);
}
