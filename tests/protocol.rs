//! HTTP/1.x protocol behaviour over real TCP: splitting, pipelining, persistence, malformed
//! input, and `ab -k`.
mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn a_request_split_at_every_byte_over_tcp() {
    let site = Site::standard();
    let srv = Server::start(&site, &[]);
    let req = b"GET /sub/b.txt HTTP/1.1\r\nHost: example\r\nUser-Agent: split\r\n\r\n";
    for cut in 1..req.len() {
        let mut s = srv.connect();
        s.write_all(&req[..cut]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        s.write_all(&req[cut..]).unwrap();
        let r = read_response(&mut s, false).unwrap_or_else(|| panic!("no response at cut {cut}"));
        assert_eq!(r.body, b"bee\n", "cut {cut}");
    }
    // One byte per write on a single connection.
    let mut s = srv.connect();
    for b in req {
        s.write_all(std::slice::from_ref(b)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(read_response(&mut s, false).unwrap().body, b"bee\n");
}

#[test]
fn sixty_four_pipelined_requests_in_one_write() {
    let site = Site::standard();
    for i in 0..64 {
        site.file(&format!("p/{i}.txt"), format!("body {i}").as_bytes());
    }
    let srv = Server::start(&site, &[]);
    let mut batch = String::new();
    for i in 0..64 {
        let close = if i == 63 { "Connection: close\r\n" } else { "" };
        batch.push_str(&format!(
            "GET /p/{i}.txt HTTP/1.1\r\nHost: x\r\n{close}\r\n"
        ));
    }
    let all = srv.raw(batch.as_bytes());
    let responses = parse_responses(&all);
    assert_eq!(responses.len(), 64);
    for (i, r) in responses.iter().enumerate() {
        assert_eq!(
            r.body,
            format!("body {i}").as_bytes(),
            "response {i} out of order"
        );
    }
}

#[test]
fn http_1_0_with_and_without_keep_alive() {
    let site = Site::standard();
    let srv = Server::start(&site, &[]);
    // Without keep-alive: one response, then the server closes.
    let all = srv.raw(b"GET /a.txt HTTP/1.0\r\n\r\n");
    let r = parse_responses(&all);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].body, b"hello\n");
    assert_ne!(r[0].header("Connection"), Some("keep-alive"));

    // With keep-alive: answered with keep-alive, and the connection stays usable.
    let mut s = srv.connect();
    for _ in 0..3 {
        s.write_all(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, false).expect("kept alive");
        assert_eq!(r.header("Connection"), Some("keep-alive"));
        assert_eq!(r.body, b"hello\n");
    }
    // HTTP/1.1 closes on request.
    let all = srv.raw(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(parse_responses(&all)[0].header("Connection"), Some("close"));
}

#[test]
fn max_requests_per_connection() {
    let site = Site::standard();
    let srv = Server::start(&site, &["--max-requests", "2"]);
    let all = srv.raw(&b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3));
    let r = parse_responses(&all);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].header("Connection"), Some("close"));
}

#[test]
fn ab_keep_alive_2000_requests_without_failures() {
    let site = Site::standard();
    site.file("1k.bin", &pattern(1024, 9));
    let srv = Server::start(&site, &[]);
    let out = Command::new("ab")
        .args([
            "-k",
            "-n",
            "2000",
            "-c",
            "8",
            "-s",
            "10",
            &srv.url("/1k.bin"),
        ])
        .output()
        .expect("ab is installed (make test installs apache2-utils through .ci/deps)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Complete requests:      2000"), "{text}");
    assert!(text.contains("Failed requests:        0"), "{text}");
    assert!(text.contains("Keep-Alive requests:    2000"), "{text}");
    // And without keep-alive (a new connection per request).
    let out = Command::new("ab")
        .args(["-n", "500", "-c", "8", "-s", "10", &srv.url("/1k.bin")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Failed requests:        0"), "{text}");
}

/// Sends `req` and returns the status line and whether the server closed the connection
/// after.
fn status_and_close(srv: &Server, req: &[u8]) -> (String, bool) {
    let mut s = srv.connect();
    s.write_all(req).unwrap();
    let r = read_response(&mut s, false)
        .unwrap_or_else(|| panic!("no response to {:?}", String::from_utf8_lossy(req)));
    // After a parse error nothing follows but the close; otherwise the trailing request is
    // answered before the close.
    let rest = read_to_close(&mut s);
    (status_line(&r), rest.is_empty())
}

fn status_line(r: &Response) -> String {
    r.head.lines().next().unwrap_or_default().to_string()
}

/// The status line tern sends for `status`.
fn expected_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => panic!("add {status} to expected_line"),
    };
    format!("HTTP/1.1 {status} {reason}")
}

#[test]
fn malformed_input_gets_the_right_status_and_a_close() {
    let site = Site::standard();
    let srv = Server::start(
        &site,
        &["--max-header-size", "4096", "--max-request-line", "4096"],
    );
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000));
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(5000)
    );
    let next = "GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    // (name, request, status, whether it is a parse error that must close the connection)
    let cases: Vec<(&str, String, u16, bool)> = vec![
        ("long request line", long_target, 414, true),
        ("big head", big_head, 431, true),
        ("long method", format!("{} / HTTP/1.1\r\nHost: x\r\n\r\n", "M".repeat(5000)), 501, true),
        ("long method, no space", "M".repeat(20_000), 501, true),
        ("long method, long target", format!("PROPFIND /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000)), 501, true),
        ("long target after OPTIONS", format!("OPTIONS /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(5000)), 414, true),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n".into(), 505, true),
        ("HTTP/3.1", "GET / HTTP/3.1\r\nHost: x\r\n\r\n".into(), 505, true),
        ("HTTP/0.9 style", "GET / HTTP/0.9\r\n\r\n".into(), 505, true),
        ("HTTP/1.2 without Host", "GET / HTTP/1.2\r\n\r\n".into(), 400, true),
        ("garbage version", "GET / FOO/1.1\r\nHost: x\r\n\r\n".into(), 400, true),
        ("space in target", "GET /pa th HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400, true),
        ("space in target, HTTP/2.0", "GET /pa th HTTP/2.0\r\nHost: x\r\n\r\n".into(), 400, true),
        ("no minor", "GET / HTTP/1\r\nHost: x\r\n\r\n".into(), 400, true),
        ("no minor digit", "GET / HTTP/1.\r\nHost: x\r\n\r\n".into(), 400, true),
        ("HTTP/2 without minor", "GET / HTTP/2\r\nHost: x\r\n\r\n".into(), 400, true),
        ("lowercase version", "GET / http/1.1\r\nHost: x\r\n\r\n".into(), 400, true),
        ("two spaces after method", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400, true),
        ("two spaces before version", "GET /  HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400, true),
        ("trailing space", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n".into(), 400, true),
        ("HTTP/0.9 request line", "GET /\r\n\r\n".into(), 400, true),
        ("no host", "GET / HTTP/1.1\r\n\r\n".into(), 400, true),
        ("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400, true),
        ("bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n".into(), 400, true),
        ("obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n  folded\r\n\r\n".into(), 400, true),
        ("space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n".into(), 400, true),
        ("bad header name", "GET / HTTP/1.1\r\nHost: x\r\nBad[Name]: 1\r\n\r\n".into(), 400, true),
        ("bad content-length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n".into(), 400, true),
        ("negative content-length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".into(), 400, true),
        ("differing content-lengths", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".into(), 400, true),
        ("CL and TE", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(), 400, true),
        ("TE not chunked", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n".into(), 400, true),
        ("TE chunked not final", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n".into(), 400, true),
        ("bad escape", "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400, false),
        ("NUL", "GET /a%00.txt HTTP/1.1\r\nHost: x\r\n\r\n".into(), 400, false),
        ("unknown method", "FROB / HTTP/1.1\r\nHost: x\r\n\r\n".into(), 501, false),
        ("body too large", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n".into(), 413, true),
        ("unknown expectation", "GET / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n".into(), 417, true),
    ];
    for (name, req, want, closes) in cases {
        let full = format!("{req}{next}");
        let (line, closed) = status_and_close(&srv, full.as_bytes());
        assert_eq!(line, expected_line(want), "{name}");
        assert_eq!(
            closed, closes,
            "{name}: parse errors close the connection, others keep it"
        );
    }
    let needles = [
        "400 conflicting Content-Length",
        "505 HTTP version not supported",
        "414 request line too long",
        "501 method not implemented",
        "400 malformed request line",
        "400 malformed HTTP version",
    ];
    let log = srv.wait_log(&needles);
    for n in needles {
        assert!(log.contains(n), "{n} not in {log}");
    }
}

#[test]
fn error_bodies_never_echo_the_target() {
    let site = Site::standard();
    let srv = Server::start(&site, &[]);
    for req in [
        "GET /<script>alert(1)</script> HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /%3Cscript%3Ealert(1)%3C/script%3E HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /%3Cscript%3E%zz HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /<script> HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    ] {
        let r = srv.get(req);
        let body = String::from_utf8_lossy(&r.body).to_lowercase();
        assert!(!body.contains("script"), "{req}: {body}");
        assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    }
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let site = Site::standard();
    let srv = Server::start(&site, &[]);
    let all = srv.raw(
        b"GET /a.txt HTTP/1.1\nHost: x\n\nGET /sub/b.txt HTTP/1.1\nHost: x\nConnection: close\n\n",
    );
    let r = parse_responses(&all);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].body, b"bee\n");
}

#[test]
fn request_bodies_are_discarded_so_pipelining_stays_in_sync() {
    let site = Site::standard();
    let srv = Server::start(&site, &[]);
    let all = srv.raw(
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n\r\nGET /evil HTTP\
          GET /sub/b.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let r = parse_responses(&all);
    let bodies: Vec<&[u8]> = r.iter().map(|r| &r.body[..]).collect();
    assert_eq!(bodies, [&b"hello\n"[..], b"bee\n", b"hello\n"]);
}

#[test]
fn higher_minor_versions_are_answered_as_http_1_1() {
    let site = Site::standard();
    let srv = Server::start(&site, &[]);
    // RFC 9112 §2.3: HTTP/1.2 and HTTP/1.9 are HTTP/1.1 to us: persistent, Host required,
    // and the answer says HTTP/1.1.
    let all = srv.raw(
        b"GET /a.txt HTTP/1.2\r\nHost: x\r\n\r\n\
          GET /sub/b.txt HTTP/1.9\r\nHost: x\r\n\r\n\
          HEAD /a.txt HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        all.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(&all)
    );
    let r = parse_responses(&all);
    assert_eq!(r.len(), 2, "{}", String::from_utf8_lossy(&all));
    assert_eq!(status_line(&r[1]), "HTTP/1.1 200 OK");
    assert_eq!(
        (&r[0].body[..], &r[1].body[..]),
        (&b"hello\n"[..], &b"bee\n"[..])
    );
    // The HEAD response has no body: its head is what is left.
    let tail = &all[r[0].head.len() + 6 + r[1].head.len() + 4..];
    assert!(
        tail.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{}",
        String::from_utf8_lossy(tail)
    );
    assert!(String::from_utf8_lossy(tail).contains("Connection: close\r\n"));
}

#[test]
fn unencoded_utf8_in_the_target_is_served() {
    let site = Site::standard();
    site.file("caf\u{e9}/\u{65e5}\u{672c}.txt", b"utf8\n");
    let srv = Server::start(&site, &[]);
    // What `curl 'http://host/café/日本.txt'` sends: the UTF-8 bytes, not percent-encoded.
    let r = srv.get("GET /caf\u{e9}/\u{65e5}\u{672c}.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status_line(&r), "HTTP/1.1 200 OK");
    assert_eq!(r.body, b"utf8\n");
    let (code, body) = curl(&[&srv.url("/caf\u{e9}/\u{65e5}\u{672c}.txt")]);
    assert_eq!((code, &body[..]), (0, &b"utf8\n"[..]));
}

#[test]
fn chunk_lines_follow_rfc_9112_7_1() {
    let site = Site::standard();
    let srv = Server::start(&site, &[]);
    // (name, chunked body, whether it is well-formed). tern answers a GET before reading its
    // body and discards the body; a malformed chunk line (a 400 in the decoder) ends the
    // connection, so the pipelined request after it is never read.
    let cases: &[(&str, &str, bool)] = &[
        ("name=value", "5;name=value\r\nhello\r\n0\r\n\r\n", true),
        ("BWS before ;", "5 ;name=value\r\nhello\r\n0\r\n\r\n", true),
        (
            "quoted value",
            "5;name=\"quoted value\"\r\nhello\r\n0\r\n\r\n",
            true,
        ),
        ("several", "5;a=b;c\r\nhello\r\n0\r\n\r\n", true),
        ("bare ;", "5;\r\nhello\r\n0\r\n\r\n", false),
        ("name not a token", "5;bad[=x\r\nhello\r\n0\r\n\r\n", false),
        ("space before CRLF", "5 \r\nhello\r\n0\r\n\r\n", false),
        ("bare LF", "5\nhello\r\n0\r\n\r\n", false),
    ];
    for (name, body, ok) in cases {
        let req = format!(
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}\
             GET /sub/b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let all = srv.raw(req.as_bytes());
        let r = parse_responses(&all);
        assert_eq!(status_line(&r[0]), "HTTP/1.1 200 OK", "{name}");
        assert_eq!(r[0].body, b"hello\n", "{name}");
        if *ok {
            assert_eq!(r.len(), 2, "{name}: {}", String::from_utf8_lossy(&all));
            assert_eq!(r[1].body, b"bee\n", "{name}");
        } else {
            assert_eq!(r.len(), 1, "{name}: {}", String::from_utf8_lossy(&all));
            assert!(!String::from_utf8_lossy(&all).contains("bee"), "{name}");
        }
    }
}
