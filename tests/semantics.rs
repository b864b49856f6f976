//! RFC 9110 semantics for static files, end to end: validators, conditional requests,
//! ranges (single, multipart, If-Range), precompressed variants, error pages, MIME
//! overrides and JSON listings. Every case also checks that HEAD gets GET's headers.
mod common;

use std::io::Write;
use std::time::Duration;

use common::*;

/// GET and HEAD with the same extra headers; asserts identical heads and returns the GET.
fn both(srv: &Server, path: &str, extra: &str) -> Response {
    let get = srv.get(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"));
    let head = srv.get(&format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"));
    // Range applies to GET only; for everything else the heads must match exactly.
    if !extra.to_ascii_lowercase().contains("\nrange:")
        && !extra.to_ascii_lowercase().starts_with("range:")
        || !matches!(get.status, 206 | 416)
    {
        assert_eq!(
            get.stable_head(),
            head.stable_head(),
            "HEAD vs GET for {path} with {extra:?}"
        );
    } else {
        assert_eq!(head.status, 200, "HEAD ignores Range");
    }
    get
}

fn hdr(name: &str, value: &str) -> String {
    format!("{name}: {value}\r\n")
}

#[test]
fn conditional_requests() {
    let site = Site::standard();
    let srv = Server::start(&site, &["--cache-control", "max-age=60"]);
    let r = both(&srv, "/a.txt", "");
    let etag = r.header("ETag").unwrap().to_string();
    let lm = r.header("Last-Modified").unwrap().to_string();
    assert_eq!(r.header("Cache-Control"), Some("max-age=60"));

    // If-None-Match: weak comparison, lists, *.
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"nope\", {etag}"),
        "*".into(),
    ] {
        let r = both(&srv, "/a.txt", &hdr("If-None-Match", &inm));
        assert_eq!(r.status, 304, "{inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("ETag"), Some(etag.as_str()));
        assert_eq!(r.header("Last-Modified"), Some(lm.as_str()));
        assert_eq!(r.header("Cache-Control"), Some("max-age=60"));
        assert!(r.header("Date").is_some());
    }
    assert_eq!(
        both(&srv, "/a.txt", &hdr("If-None-Match", "\"other\"")).status,
        200
    );
    // If-None-Match wins over If-Modified-Since.
    let r = both(
        &srv,
        "/a.txt",
        &format!(
            "{}{}",
            hdr("If-None-Match", "\"other\""),
            hdr("If-Modified-Since", &lm)
        ),
    );
    assert_eq!(r.status, 200);
    // A repeated If-None-Match counts every value.
    let r = both(
        &srv,
        "/a.txt",
        &format!(
            "{}{}",
            hdr("If-None-Match", "\"x\""),
            hdr("If-None-Match", &etag)
        ),
    );
    assert_eq!(r.status, 304);

    // If-Modified-Since in all three date formats, compared as dates.
    assert_eq!(
        both(&srv, "/a.txt", &hdr("If-Modified-Since", &lm)).status,
        304
    );
    assert_eq!(
        both(
            &srv,
            "/a.txt",
            &hdr("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")
        )
        .status,
        200
    );
    assert_eq!(
        both(
            &srv,
            "/a.txt",
            &hdr("If-Modified-Since", "Saturday, 01-Jan-00 00:00:00 GMT")
        )
        .status,
        200
    );
    assert_eq!(
        both(
            &srv,
            "/a.txt",
            &hdr("If-Modified-Since", "Fri Dec 31 23:59:59 9999")
        )
        .status,
        304
    );
    assert_eq!(
        both(&srv, "/a.txt", &hdr("If-Modified-Since", "not a date")).status,
        200
    );

    // If-Match: strong comparison; weak tags never match; * matches.
    assert_eq!(both(&srv, "/a.txt", &hdr("If-Match", &etag)).status, 200);
    assert_eq!(both(&srv, "/a.txt", &hdr("If-Match", "*")).status, 200);
    assert_eq!(
        both(&srv, "/a.txt", &hdr("If-Match", &format!("W/{etag}"))).status,
        412
    );
    assert_eq!(
        both(&srv, "/a.txt", &hdr("If-Match", "\"nope\"")).status,
        412
    );
    // If-Unmodified-Since.
    assert_eq!(
        both(
            &srv,
            "/a.txt",
            &hdr("If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")
        )
        .status,
        412
    );
    assert_eq!(
        both(&srv, "/a.txt", &hdr("If-Unmodified-Since", &lm)).status,
        200
    );
    // If-Match is evaluated first: a match makes If-Unmodified-Since irrelevant.
    let r = both(
        &srv,
        "/a.txt",
        &format!(
            "{}{}",
            hdr("If-Match", &etag),
            hdr("If-Unmodified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")
        ),
    );
    assert_eq!(r.status, 200);

    // curl -z sends If-Modified-Since.
    let (_, body) = curl(&[
        "-z",
        &lm,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &srv.url("/a.txt"),
    ]);
    assert_eq!(body, b"304");
    let (_, body) = curl(&[
        "-z",
        "1 Jan 2001",
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &srv.url("/a.txt"),
    ]);
    assert_eq!(body, b"200");
}

#[test]
fn single_ranges() {
    let site = Site::standard();
    let data = pattern(10_000, 5);
    site.file("r.bin", &data);
    let srv = Server::start(&site, &[]);
    let cases: &[(&str, Option<(u64, u64)>)] = &[
        ("bytes=0-0", Some((0, 0))),
        ("bytes=0-99", Some((0, 99))),
        ("bytes=9990-", Some((9990, 9999))),
        ("bytes=-10", Some((9990, 9999))),
        ("bytes=9000-20000", Some((9000, 9999))),
        ("bytes=-20000", Some((0, 9999))),
        ("bytes=-9223372036854775808", Some((0, 9999))),
        ("bytes=0-1,1-2,2-5", Some((0, 5))),
    ];
    for (range, want) in cases {
        let r = both(&srv, "/r.bin", &hdr("Range", range));
        let (a, b) = want.unwrap();
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes {a}-{b}/10000").as_str()),
            "{range}"
        );
        assert_eq!(
            r.header("Content-Length"),
            Some((b - a + 1).to_string().as_str())
        );
        assert_eq!(r.body, &data[a as usize..=b as usize], "{range}");
    }
    // Unsatisfiable: 416 with the length, and no stale part headers.
    for range in ["bytes=10000-", "bytes=20000-30000", "bytes=-0"] {
        let r = both(&srv, "/r.bin", &hdr("Range", range));
        assert_eq!(r.status, 416, "{range}");
        assert_eq!(r.header("Content-Range"), Some("bytes */10000"));
    }
    // Invalid syntax, other units, reversed, overflow: ignored -> 200 whole file.
    for range in [
        "bytes=5-1",
        "bytes=abc",
        "items=0-1",
        "bytes=0-1x",
        "bytes=18446744073709551616-",
        "bytes 0-1",
    ] {
        let r = both(&srv, "/r.bin", &hdr("Range", range));
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.body.len(), 10_000);
        assert!(r.header("Content-Range").is_none());
    }
    // curl -r.
    let (code, body) = curl(&["-r", "100-199", &srv.url("/r.bin")]);
    assert_eq!(code, 0);
    assert_eq!(body, &data[100..200]);
    // A 404 after a range request carries no Content-Range.
    let r = srv.get("GET /missing HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n");
    assert_eq!(r.status, 404);
    assert!(r.header("Content-Range").is_none());
}

/// Parses a multipart/byteranges body into (content-range, bytes) parts.
fn parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = body;
    assert!(
        rest.starts_with(delim.as_bytes()),
        "body starts with the boundary"
    );
    loop {
        rest = &rest[delim.len()..];
        if rest.starts_with(b"--\r\n") {
            assert_eq!(rest.len(), 4, "nothing after the closing boundary");
            return out;
        }
        assert!(rest.starts_with(b"\r\n"));
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(rest[2..head_end].to_vec()).unwrap();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap()
            .to_string();
        assert!(head.contains("Content-Type: "), "{head}");
        let spec = range.strip_prefix("bytes ").unwrap();
        let (ab, _) = spec.split_once('/').unwrap();
        let (a, b) = ab.split_once('-').unwrap();
        let len = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        let data_start = head_end + 4;
        out.push((range, rest[data_start..data_start + len].to_vec()));
        rest = &rest[data_start + len..];
        assert!(rest.starts_with(b"\r\n"));
        rest = &rest[2..];
    }
}

#[test]
fn multiple_ranges_are_multipart_with_exact_length() {
    let site = Site::standard();
    let data = pattern(100_000, 6);
    site.file("m.bin", &data);
    site.file("m.txt", &[b'x'; 1000]);
    let srv = Server::start(&site, &[]);
    let r = srv.get("GET /m.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9, 50000-50009, -5\r\n\r\n");
    assert_eq!(r.status, 206);
    let ct = r.header("Content-Type").unwrap();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap()
        .to_string();
    assert!(boundary.len() >= 16);
    assert_eq!(
        r.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    let p = parts(&r.body, &boundary);
    assert_eq!(p.len(), 3);
    assert_eq!(p[0], ("bytes 0-9/100000".to_string(), data[0..10].to_vec()));
    assert_eq!(
        p[1],
        (
            "bytes 50000-50009/100000".to_string(),
            data[50000..50010].to_vec()
        )
    );
    assert_eq!(
        p[2],
        (
            "bytes 99995-99999/100000".to_string(),
            data[99995..].to_vec()
        )
    );
    // The boundary is random per response.
    let r2 = srv.get("GET /m.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,20-29\r\n\r\n");
    assert_ne!(r2.header("Content-Type"), Some(ct));
    // Overlapping and adjacent ranges are coalesced.
    let r =
        srv.get("GET /m.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,5-20,21-30,100-110\r\n\r\n");
    let boundary = r
        .header("Content-Type")
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .to_string();
    let p = parts(&r.body, &boundary);
    assert_eq!(
        p.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["bytes 0-30/1000", "bytes 100-110/1000"]
    );
    let body = String::from_utf8_lossy(&r.body);
    assert_eq!(
        body.matches("Content-Type: text/plain; charset=utf-8\r\n")
            .count(),
        2,
        "part types in {body}"
    );
    // curl -r with several ranges.
    let (_, body) = curl(&["-r", "0-1,10-11", &srv.url("/m.bin")]);
    assert!(String::from_utf8_lossy(&body).contains("Content-Range: bytes 10-11/100000"));
}

#[test]
fn range_amplification_is_refused() {
    let site = Site::standard();
    site.file("f.bin", &pattern(1000, 1));
    let srv = Server::start(&site, &["--max-ranges", "4"]);
    // CVE-2011-3192 shape: many overlapping ranges.
    let many: Vec<String> = (0..50).map(|i| format!("{i}-999")).collect();
    let r = srv.get(&format!(
        "GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={}\r\n\r\n",
        many.join(",")
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1000);
    // Fewer ranges, but their total exceeds the file.
    let r = srv.get("GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-999,0-999\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = srv.get("GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,5-6,10-11,20-21\r\n\r\n");
    assert_eq!(r.status, 206);
    let r =
        srv.get("GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,5-6,10-11,20-21,30-31\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn if_range() {
    let site = Site::standard();
    site.file("f.bin", &pattern(1000, 2));
    let srv = Server::start(&site, &[]);
    let r = srv.get("GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    let etag = r.header("ETag").unwrap().to_string();
    let lm = r.header("Last-Modified").unwrap().to_string();
    let with = |if_range: &str| {
        srv.get(&format!(
            "GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nIf-Range: {if_range}\r\n\r\n"
        ))
        .status
    };
    assert_eq!(with(&etag), 206);
    assert_eq!(with(&lm), 206);
    assert_eq!(
        with(&format!("W/{etag}")),
        200,
        "a weak tag never allows a range"
    );
    assert_eq!(with("\"other\""), 200);
    assert_eq!(with("Sat, 01 Jan 2000 00:00:00 GMT"), 200);
    assert_eq!(with("garbage"), 200);
}

#[test]
fn ranges_past_4_gib_in_a_sparse_file() {
    let site = Site::standard();
    let path = site.root().join("sparse.bin");
    let f = std::fs::File::create(&path).unwrap();
    let len: u64 = 5 << 30;
    f.set_len(len).unwrap();
    use std::os::unix::fs::FileExt;
    let at = (1u64 << 32) + 12_345;
    f.write_all_at(b"past four gigabytes", at).unwrap();
    let srv = Server::start(&site, &[]);
    let r = srv.get(&format!(
        "GET /sparse.bin HTTP/1.1\r\nHost: x\r\nRange: bytes={at}-{}\r\n\r\n",
        at + 18
    ));
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"past four gigabytes");
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes {at}-{}/{len}", at + 18).as_str())
    );
    let head = srv.get("HEAD /sparse.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        head.header("Content-Length"),
        Some(len.to_string().as_str())
    );
}

#[test]
fn precompressed_variants() {
    let site = Site::standard();
    let plain = b"body { color: red }\n".repeat(50);
    site.file("s.css", &plain);
    site.file("s.css.gz", b"GZIP-BYTES");
    site.file("s.css.br", b"BROTLI-BYTES!");
    site.file("only.js", b"console.log(1)");
    site.file("only.js.gz", b"GZ");
    let srv = Server::start(&site, &[]);
    let cases: &[(&str, Option<&str>, &[u8])] = &[
        ("", None, &plain),
        ("gzip", Some("gzip"), b"GZIP-BYTES"),
        ("gzip, br", Some("gzip"), b"GZIP-BYTES"),
        ("br;q=0.5, gzip", Some("gzip"), b"GZIP-BYTES"),
        ("*", Some("br"), b"BROTLI-BYTES!"),
        ("gzip;q=0, *", Some("br"), b"BROTLI-BYTES!"),
        ("br;q=0, gzip;q=0", None, &plain),
        ("identity", None, &plain),
        ("x-gzip", Some("gzip"), b"GZIP-BYTES"),
        ("zstd", None, &plain),
        ("gzip;q=0.5, identity", None, &plain),
    ];
    let mut etags = std::collections::HashSet::new();
    for (ae, coding, body) in cases {
        let extra = if ae.is_empty() {
            String::new()
        } else {
            hdr("Accept-Encoding", ae)
        };
        let r = both(&srv, "/s.css", &extra);
        assert_eq!(r.status, 200, "{ae}");
        assert_eq!(r.header("Content-Encoding"), *coding, "{ae}");
        assert_eq!(r.body, *body, "{ae}");
        assert_eq!(
            r.header("Content-Type"),
            Some("text/css; charset=utf-8"),
            "{ae}"
        );
        assert_eq!(r.count("Vary"), 1, "{ae}");
        assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
        etags.insert(r.header("ETag").unwrap().to_string());
    }
    assert_eq!(etags.len(), 3, "each variant has its own ETag");
    // Conditionals and ranges apply to the variant's bytes.
    let gz = srv.get("GET /s.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
    let gz_tag = gz.header("ETag").unwrap();
    let r = both(
        &srv,
        "/s.css",
        &format!(
            "{}{}",
            hdr("Accept-Encoding", "gzip"),
            hdr("If-None-Match", gz_tag)
        ),
    );
    assert_eq!(r.status, 304);
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    let r = both(
        &srv,
        "/s.css",
        &format!(
            "{}{}",
            hdr("Accept-Encoding", "gzip"),
            hdr("Range", "bytes=0-3")
        ),
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &b"GZIP"[..]));
    assert_eq!(r.header("Content-Range"), Some("bytes 0-3/10"));
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let r = both(
        &srv,
        "/s.css",
        &format!(
            "{}{}",
            hdr("Accept-Encoding", "gzip"),
            hdr("Range", "bytes=50-")
        ),
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Vary"), Some("Accept-Encoding"));
    // curl --compressed gets a variant it can decode? It sends its own list; check the
    // coding curl was offered is honoured.
    let (code, _) = curl(&["--compressed", "-o", "/dev/null", &srv.url("/only.js")]);
    assert!(code == 0 || code == 61, "curl exit {code}");
    // Files without variants carry no Vary; the variant is also servable by its own name.
    assert!(both(&srv, "/a.txt", &hdr("Accept-Encoding", "gzip"))
        .header("Vary")
        .is_none());
    let direct = srv.get("GET /s.css.gz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(direct.body, b"GZIP-BYTES");
    assert!(direct.header("Content-Encoding").is_none());
    // A variant added later is picked up; --no-precompressed turns the feature off.
    site.file("a.txt.gz", b"LATE");
    std::thread::sleep(Duration::from_millis(50));
    let r = srv.get("GET /a.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!(r.body, b"LATE");
    let off = Server::start(&site, &["--no-precompressed"]);
    let r = off.get("GET /s.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\n\r\n");
    assert_eq!(r.body, plain);
    assert!(r.header("Vary").is_none());
}

#[test]
fn precompressed_bodies_decode_with_curl() {
    let site = Site::standard();
    let text = b"hello hello hello hello compressed world\n".repeat(20);
    let path = site.file("t.txt", &text);
    let ok = std::process::Command::new("gzip")
        .args(["-k", "-9"])
        .arg(&path)
        .status();
    if !ok.map(|s| s.success()).unwrap_or(false) {
        panic!("gzip is needed for this test");
    }
    let srv = Server::start(&site, &[]);
    let (code, body) = curl(&[
        "--compressed",
        "-H",
        "Accept-Encoding: gzip",
        &srv.url("/t.txt"),
    ]);
    assert_eq!(code, 0);
    assert_eq!(body, text);
    let (_, head) = curl(&["-sI", "-H", "Accept-Encoding: gzip", &srv.url("/t.txt")]);
    assert!(String::from_utf8_lossy(&head).contains("Content-Encoding: gzip"));
}

#[test]
fn error_pages_mime_overrides_and_default_type() {
    let site = Site::standard();
    site.file("errors/404.html", b"<h1>custom not found</h1>");
    site.file("notes.md", b"# hi");
    site.file("blob.weird", b"?");
    let srv = Server::start(
        &site,
        &[
            "--error-page",
            "404=/errors/404.html",
            "--error-page",
            "403=/errors/missing.html",
            "--mime",
            "md=text/markdown",
            "--default-type",
            "text/plain",
            "--no-listing",
        ],
    );
    let r = both(&srv, "/nope", "");
    assert_eq!(r.status, 404);
    assert_eq!(r.body, b"<h1>custom not found</h1>");
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    // A configured page that does not exist falls back to the built-in one.
    let r = both(&srv, "/empty/", "");
    assert_eq!(r.status, 403);
    assert!(String::from_utf8_lossy(&r.body).contains("403 Forbidden"));
    assert_eq!(
        both(&srv, "/notes.md", "").header("Content-Type"),
        Some("text/markdown; charset=utf-8")
    );
    assert_eq!(
        both(&srv, "/blob.weird", "").header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    // Bad flag values are refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["--error-page", "404=/../x.html"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn json_listing_and_listing_validators() {
    let site = Site::standard();
    site.file("d/b.txt", b"12345");
    site.file("d/caf\u{e9} \"q\".txt", b"x");
    site.dir("d/sub");
    let srv = Server::start(&site, &[]);
    let r = both(&srv, "/d/", &hdr("Accept", "application/json"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("Vary"), Some("Accept"));
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(
        text.starts_with('[') && text.trim_end().ends_with(']'),
        "{text}"
    );
    assert!(
        text.contains("{\"name\":\"sub\",\"href\":\"sub/\",\"type\":\"directory\""),
        "{text}"
    );
    assert!(
        text.contains(
            "{\"name\":\"b.txt\",\"href\":\"b.txt\",\"type\":\"file\",\"size\":5,\"mtime\":\""
        ),
        "{text}"
    );
    assert!(
        text.contains("\"name\":\"caf\u{e9} \\\"q\\\".txt\",\"href\":\"caf%C3%A9%20%22q%22.txt\""),
        "{text}"
    );
    // Browsers get HTML.
    let html = both(
        &srv,
        "/d/",
        &hdr(
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
    );
    assert_eq!(
        html.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    // Validators: 304 for the same listing; a changed entry changes the ETag.
    let etag = r.header("ETag").unwrap().to_string();
    let lm = r.header("Last-Modified").unwrap().to_string();
    assert_ne!(
        html.header("ETag"),
        Some(etag.as_str()),
        "HTML and JSON are different representations"
    );
    let again = both(
        &srv,
        "/d/",
        &format!(
            "{}{}",
            hdr("Accept", "application/json"),
            hdr("If-None-Match", &etag)
        ),
    );
    assert_eq!(again.status, 304);
    assert_eq!(
        both(
            &srv,
            "/d/",
            &format!(
                "{}{}",
                hdr("Accept", "application/json"),
                hdr("If-Modified-Since", &lm)
            )
        )
        .status,
        304
    );
    std::thread::sleep(Duration::from_millis(1100));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(site.root().join("d/b.txt"))
        .unwrap();
    f.write_all(b"more").unwrap();
    drop(f);
    let changed = both(
        &srv,
        "/d/",
        &format!(
            "{}{}",
            hdr("Accept", "application/json"),
            hdr("If-None-Match", &etag)
        ),
    );
    assert_eq!(changed.status, 200, "an entry grew: the listing changed");
    assert!(String::from_utf8_lossy(&changed.body).contains("\"size\":9"));
}
