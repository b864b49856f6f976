//! Serving files and directories over real TCP and with curl.
mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

#[test]
fn one_mib_file_byte_exact_over_raw_tcp_and_curl() {
    let site = Site::standard();
    let data = pattern(1 << 20, 7);
    site.file("big.bin", &data);
    let srv = Server::start(&site, &[]);

    let r = srv.get("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("1048576"));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    assert!(r.body == data, "raw TCP body differs");

    let (code, body) = curl(&[&srv.url("/big.bin")]);
    assert_eq!(code, 0);
    assert!(body == data, "curl body differs");
}

#[test]
fn every_response_has_date_server_and_length() {
    let site = Site::standard();
    let srv = Server::start(&site, &[]);
    for req in [
        "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /sub HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ] {
        let r = srv.get(req);
        assert_eq!(r.count("Date"), 1, "{req}");
        assert_eq!(r.header("Server"), Some("tern"), "{req}");
        assert_eq!(r.count("Content-Length"), 1, "{req}");
    }
    let quiet = Server::start(&site, &["--server-name", ""]);
    assert_eq!(
        quiet
            .get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .header("Server"),
        None
    );
    let named = Server::start(&site, &["--server-name", "edge"]);
    assert_eq!(
        named
            .get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .header("Server"),
        Some("edge")
    );
}

#[test]
fn file_headers() {
    let site = Site::standard();
    site.file("s.css", b"body{}");
    site.file("app.js", b"1");
    site.file("d.json", b"{}");
    site.file("p.png", b"\x89PNG");
    let srv = Server::start(&site, &[]);
    let r = srv.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.header("Content-Type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    let etag = r.header("ETag").unwrap();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    let lm = r.header("Last-Modified").unwrap();
    assert!(lm.ends_with(" GMT") && lm.len() == 29, "{lm}");
    for (path, ty) in [
        ("/s.css", "text/css; charset=utf-8"),
        ("/d.json", "application/json; charset=utf-8"),
        ("/p.png", "image/png"),
        ("/index.html", "text/html; charset=utf-8"),
    ] {
        let r = srv.get(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.header("Content-Type"), Some(ty), "{path}");
    }
    let js = srv.get("GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(js
        .header("Content-Type")
        .unwrap()
        .ends_with("javascript; charset=utf-8"));
    // The ETag is stable across restarts and changes with the content.
    drop(srv);
    let again = Server::start(&site, &[]);
    assert_eq!(
        again
            .get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .header("ETag"),
        Some(etag)
    );
    std::thread::sleep(Duration::from_millis(20));
    site.file("a.txt", b"changed\n");
    let r = again.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_ne!(r.header("ETag"), Some(etag));
    assert_eq!(r.body, b"changed\n");
}

#[test]
fn head_headers_identical_to_get() {
    let site = Site::standard();
    site.file("big.bin", &pattern(300_000, 3));
    let srv = Server::start(&site, &[]);
    for path in [
        "/a.txt", "/big.bin", "/", "/sub/", "/sub", "/missing", "/empty/",
    ] {
        let get = srv.get(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        let head = srv.get(&format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(get.stable_head(), head.stable_head(), "{path}");
        assert_eq!(get.status, head.status);
        // Nothing follows a HEAD response: the connection's next bytes are the next answer.
        let mut s = srv.connect();
        s.write_all(format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let all = read_to_close(&mut s);
        let text = String::from_utf8_lossy(&all);
        let second = text.find("\r\n\r\n").map(|i| &text[i + 4..]).unwrap();
        assert!(
            second.starts_with("HTTP/1.1 200 OK"),
            "{path}: {second:.40}"
        );
    }
}

#[test]
fn directories() {
    let site = Site::standard();
    site.file("docs/x.txt", b"x");
    site.file("docs/.secret", b"s");
    site.dir("docs/inner");
    let srv = Server::start(&site, &[]);

    let r = srv.get("GET /sub?x=1&y=%2F HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/sub/?x=1&y=%2F"));

    let r = srv.get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.body, b"<h1>home</h1>\n", "index.html serves the root");

    let r = srv.get("GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let page = String::from_utf8(r.body).unwrap();
    let inner = page.find("./inner/").unwrap();
    let x = page.find("./x.txt").unwrap();
    assert!(inner < x, "directories first");
    assert!(!page.contains(".secret"), "dotfiles hidden");

    let no_list = Server::start(&site, &["--no-listing"]);
    assert_eq!(
        no_list.get("GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n").status,
        403
    );
    assert_eq!(no_list.get("GET / HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);

    site.file("docs/start.htm", b"start");
    let custom = Server::start(&site, &["--index", "start.htm"]);
    assert_eq!(
        custom.get("GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n").body,
        b"start"
    );
    assert_eq!(
        custom.get("GET /a.txt/ HTTP/1.1\r\nHost: x\r\n\r\n").status,
        404
    );
}

#[test]
fn listing_links_round_trip_to_the_right_bytes() {
    let site = Site::standard();
    let names = [
        "café menu.txt",
        "100% real.txt",
        "a&b <c>.txt",
        "q?x#y.txt",
        "plus+sign.txt",
        "colon:x.txt",
        "日本.txt",
    ];
    for (i, n) in names.iter().enumerate() {
        site.file(&format!("list/{n}"), format!("file {i}").as_bytes());
    }
    let srv = Server::start(&site, &[]);
    let page = String::from_utf8(srv.get("GET /list/ HTTP/1.1\r\nHost: x\r\n\r\n").body).unwrap();
    let hrefs: Vec<&str> = page
        .split("href=\"./")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(hrefs.len(), names.len());
    for href in hrefs {
        let r = srv.get(&format!("GET /list/{href} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 200, "{href}");
        let i: usize = String::from_utf8(r.body).unwrap()[5..].parse().unwrap();
        let shown = common::html_unescape(&page);
        assert!(shown.contains(names[i]), "{} shown", names[i]);
    }
}

#[test]
fn options_and_methods() {
    let site = Site::standard();
    let srv = Server::start(&site, &[]);
    for req in [
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "OPTIONS /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let r = srv.get(req);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
        assert_eq!(r.header("Content-Length"), Some("0"));
    }
    for m in ["POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT"] {
        let target = if m == "CONNECT" { "x:443" } else { "/a.txt" };
        let r = srv.get(&format!(
            "{m} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        ));
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"), "{m}");
    }
    let r = srv.get("TRACE / HTTP/1.1\r\nHost: x\r\nCookie: secret\r\n\r\n");
    assert!(
        !String::from_utf8_lossy(&r.body).contains("secret"),
        "TRACE is not echoed"
    );
    assert_eq!(srv.get("BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n").status, 501);
    assert_eq!(srv.get("GET * HTTP/1.1\r\nHost: x\r\n\r\n").status, 400);
}
