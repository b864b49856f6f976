//! The open-file cache never serves a stale answer: every kind of change to a cached file,
//! its variants or a directory on its path is visible to the very next request (inotify
//! events are queued by the change itself, and the server applies them before answering).
mod common;

use std::os::unix::fs::symlink;
use std::time::Duration;

use common::*;

fn body(srv: &Server, path: &str) -> (u16, Vec<u8>) {
    let r = srv.get(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    (r.status, r.body)
}

#[test]
fn small_cached_files_follow_every_change() {
    let site = Site::standard();
    site.file("c.txt", b"one");
    let srv = Server::start(&site, &[]);
    let path = site.root().join("c.txt");
    // Fill the cache, then change the file in each way, checking right after.
    assert_eq!(body(&srv, "/c.txt"), (200, b"one".to_vec()));
    std::fs::write(&path, b"two, longer").unwrap();
    assert_eq!(
        body(&srv, "/c.txt"),
        (200, b"two, longer".to_vec()),
        "written in place"
    );
    std::fs::write(site.root().join("c.new"), b"three").unwrap();
    std::fs::rename(site.root().join("c.new"), &path).unwrap();
    assert_eq!(
        body(&srv, "/c.txt"),
        (200, b"three".to_vec()),
        "replaced by rename"
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(body(&srv, "/c.txt").0, 404, "deleted");
    std::fs::write(&path, b"four").unwrap();
    assert_eq!(
        body(&srv, "/c.txt"),
        (200, b"four".to_vec()),
        "created again"
    );
    // Same size, new mtime: a new ETag.
    let before = srv
        .get("GET /c.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .header("ETag")
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&path, b"FOUR").unwrap();
    let after = srv.get("GET /c.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(after.body, b"FOUR");
    assert_ne!(after.header("ETag").unwrap(), before);
    // Truncated to nothing.
    std::fs::write(&path, b"").unwrap();
    assert_eq!(body(&srv, "/c.txt"), (200, Vec::new()));
}

#[test]
fn directory_changes_reach_cached_files_below() {
    let site = Site::standard();
    site.file("d/e/f.txt", b"deep");
    let srv = Server::start(&site, &[]);
    assert_eq!(body(&srv, "/d/e/f.txt"), (200, b"deep".to_vec()));
    // Renaming a parent directory moves the file away from the cached path.
    std::fs::rename(site.root().join("d"), site.root().join("moved")).unwrap();
    assert_eq!(body(&srv, "/d/e/f.txt").0, 404);
    assert_eq!(body(&srv, "/moved/e/f.txt"), (200, b"deep".to_vec()));
    // A symlink swapped in for the directory: the link is followed (it stays inside).
    site.file("other/e/f.txt", b"other");
    symlink("other", site.root().join("d")).unwrap();
    assert_eq!(body(&srv, "/d/e/f.txt"), (200, b"other".to_vec()));
    std::fs::remove_file(site.root().join("d")).unwrap();
    symlink("moved", site.root().join("d")).unwrap();
    assert_eq!(
        body(&srv, "/d/e/f.txt"),
        (200, b"deep".to_vec()),
        "symlink retargeted"
    );
    // A listing follows entries being added and removed.
    let page =
        String::from_utf8(srv.get("GET /moved/e/ HTTP/1.1\r\nHost: x\r\n\r\n").body).unwrap();
    assert!(!page.contains("g.txt"));
    site.file("moved/e/g.txt", b"g");
    let page =
        String::from_utf8(srv.get("GET /moved/e/ HTTP/1.1\r\nHost: x\r\n\r\n").body).unwrap();
    assert!(page.contains("g.txt"));
    // An index file appearing turns a listing into the page.
    site.file("moved/e/index.html", b"<p>index</p>");
    assert_eq!(body(&srv, "/moved/e/"), (200, b"<p>index</p>".to_vec()));
    std::fs::remove_file(site.root().join("moved/e/index.html")).unwrap();
    assert!(String::from_utf8(body(&srv, "/moved/e/").1)
        .unwrap()
        .contains("Index of"));
}

#[test]
fn variants_follow_changes_to_themselves() {
    let site = Site::standard();
    site.file("s.css", b"plain");
    site.file("s.css.gz", b"gz-1");
    let srv = Server::start(&site, &[]);
    let gz = |srv: &Server| {
        srv.get("GET /s.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n")
            .body
    };
    assert_eq!(gz(&srv), b"gz-1");
    std::fs::write(site.root().join("s.css.gz"), b"gz-2, changed").unwrap();
    assert_eq!(gz(&srv), b"gz-2, changed", "variant written in place");
    std::fs::remove_file(site.root().join("s.css.gz")).unwrap();
    assert_eq!(gz(&srv), b"plain", "variant deleted");
}

#[test]
fn without_the_cache_every_request_opens_the_file() {
    let site = Site::standard();
    site.file("c.txt", b"one");
    let srv = Server::start(&site, &["--file-cache-entries", "0"]);
    assert_eq!(body(&srv, "/c.txt"), (200, b"one".to_vec()));
    std::fs::write(site.root().join("c.txt"), b"two").unwrap();
    assert_eq!(body(&srv, "/c.txt"), (200, b"two".to_vec()));
}

#[test]
fn changes_are_seen_on_a_kept_alive_connection() {
    use std::io::Write;
    let site = Site::standard();
    site.file("k.txt", b"before");
    let srv = Server::start(&site, &[]);
    let mut s = srv.connect();
    for round in 0..50 {
        let want = format!("round {round}");
        std::fs::write(site.root().join("k.txt"), &want).unwrap();
        s.write_all(b"GET /k.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, false).unwrap();
        assert_eq!(r.body, want.as_bytes(), "round {round}");
    }
}
