//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by `tests/fuzz_corpus.rs`,
//! which replays every checked-in corpus file on stable Rust. Each harness takes arbitrary
//! bytes and panics when an invariant breaks; it never touches the network or the disk.
use std::net::{IpAddr, Ipv4Addr};

use crate::conn::io::{drive, Turn};
use crate::conn::memsock::MemSocket;
use crate::conn::{CloseReason, Conn, Exchange, Limits, Out, Pool, Service};
use crate::fs::MemFs;
use crate::handler::{Handler, Router, Site};
use crate::http::{body, conditional, date, negotiate, path, range, request, HttpError};

mod route;
mod tls_harness;
pub use route::{find_model, route, Found, SEGS};
pub use tls_harness::tls;

/// Deterministic pseudo-random numbers from the input's first bytes (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// 1. Request heads: finding the end incrementally (in the chunks `data[0]` picks) agrees
///    with finding it at once; parsing never panics; every span lies inside the head; and
///    the chunked decoder, fed what follows the head, stops inside its input.
pub fn head(data: &[u8]) {
    let Some((&step, input)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 16) + 1;
    let mut scanned = 0;
    let whole = request::find_head_end(input, &mut { 0 });
    let mut incremental = None;
    let mut end = 0;
    while end < input.len() {
        end = (end + step).min(input.len());
        if let Some(n) = request::find_head_end(&input[..end], &mut scanned) {
            incremental = Some(n);
            break;
        }
    }
    assert_eq!(
        incremental, whole,
        "incremental and one-shot head ends differ"
    );
    let Some(len) = whole else { return };
    let head = &input[..len];
    if let Ok(req) = request::parse(head, 1024) {
        for span in [
            Some(req.target),
            Some(req.method_span),
            req.host,
            req.range,
            req.if_none_match,
            req.accept_encoding,
        ]
        .into_iter()
        .flatten()
        {
            assert!(
                (span.start + span.len) as usize <= head.len(),
                "span outside the head"
            );
        }
        let mut decoder = body::BodyDecoder::chunked();
        if let Ok((n, _)) = decoder.decode(&input[len..], &mut |_| {}) {
            assert!(n <= input.len() - len);
        }
    }
}

/// One response the handler wrote, as the connection test expects to see it on the wire.
struct Expected {
    status: u16,
    head_only: bool,
}

/// Wraps the real handler and records, in order, each response it writes.
struct Recorder {
    inner: Handler<MemFs>,
    expected: Vec<Expected>,
}

fn status_of(head: &[u8]) -> u16 {
    let digits = head.get(9..12).unwrap_or(b"000");
    digits
        .iter()
        .fold(0, |a, d| a * 10 + u16::from(d.wrapping_sub(b'0')))
}

impl Service for Recorder {
    fn respond(&mut self, ex: &mut Exchange<'_>, out: &mut Out) -> crate::conn::Reply {
        let before = out.buf.len();
        let head_only = out.is_head_only();
        let reply = self.inner.respond(ex, out);
        self.expected.push(Expected {
            status: status_of(&out.buf[before..]),
            head_only,
        });
        reply
    }

    fn respond_error(&mut self, err: HttpError, line: &[u8], peer: IpAddr, out: &mut Out) {
        let before = out.buf.len();
        self.inner.respond_error(err, line, peer, out);
        assert_eq!(status_of(&out.buf[before..]), err.status());
        self.expected.push(Expected {
            status: err.status(),
            head_only: false,
        });
    }
}

/// The in-memory site the connection harness serves.
pub fn site() -> MemFs {
    let mut fs = MemFs::new();
    fs.add_file("index.html", b"<h1>home</h1>\n", 1_700_000_000);
    fs.add_file("a.txt", b"hello\n", 1_700_000_000);
    fs.add_file("sub/b.txt", b"bee\n", 0);
    fs.add_file("sub/dir/deep.txt", b"deep\n", -1);
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs.add_file("big.bin", &big, 253_402_300_799 + 10);
    fs.add_file("s.css", b"body{color:red}\n", 1_700_000_000);
    fs.add_file("s.css.gz", b"GZIPPED", 1_700_000_000);
    fs.add_variant("s.css", 2, "s.css.gz");
    fs.add_file(".env", b"SECRET=1\n", 1_700_000_000);
    fs.add_dir("empty", 1_700_000_000);
    // Descriptor bodies, sent with `sendfile`: one larger than the harness's write budget
    // and high-water mark, and one the harness cuts short at some point of a run.
    let large: Vec<u8> = (0..12_000u32).map(|i| (i * 13 % 251) as u8).collect();
    fs.add_fd_file("large.bin", &large, 1_700_000_000)
        .expect("memfd");
    fs.add_fd_file("shrinks.bin", &large[..SHRINKS_LEN as usize], 1_700_000_000)
        .expect("memfd");
    fs.record = true;
    fs
}

/// The size `shrinks.bin` is served with, even after it has shrunk.
const SHRINKS_LEN: u64 = 3_000;

/// 2. The whole connection: `data[..4]` seeds how the rest is cut into reads, how much the
///    peer accepts per write, how the fake clock moves, and when `shrinks.bin` shrinks (a
///    response that promised its old length then ends with `FileTruncated`). After every
///    step: no panic, the bytes sent so far parse as well-formed responses (status line,
///    headers, exactly `Content-Length` bytes of body, none for HEAD and 304) in the order
///    the requests were answered, queued output stays bounded, and no path outside the root
///    is looked up. At the end, with the input closed and time passing, the connection must
///    close.
pub fn conn(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (ctl, mut rest) = data.split_at(4);
    let mut rng = Rng(u64::from(u32::from_le_bytes([ctl[0], ctl[1], ctl[2], ctl[3]])) | 1);
    let lim = Limits {
        max_request_line: 512,
        max_field: 512,
        max_head: 2048,
        max_discard: 2048,
        out_high_water: 4096,
        requests_per_turn: 4,
        write_budget: 4096,
        ..Limits::default()
    };
    let handler = Handler::new(
        site(),
        Router::single(Site {
            cache_control: Some(b"max-age=1"[..].into()),
            ..Site::default()
        }),
        Some("tern"),
        1_700_000_000,
    );
    let mut svc = Recorder {
        inner: handler,
        expected: Vec::new(),
    };
    let mut conn = Conn::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, &lim);
    let mut sock = MemSocket::new();
    let mut pool = Pool::new(512, 2);
    let mut now = 0;
    let mut shrunk = false;
    let mut run = |conn: &mut Conn, sock: &mut MemSocket, svc: &mut Recorder, now| {
        for _ in 0..10_000 {
            if drive(conn, sock, svc, &mut pool, &lim, now) != Turn::Again {
                return;
            }
        }
        panic!("a connection never settles");
    };
    while !rest.is_empty() && !conn.is_closed() {
        let r = rng.next();
        let n = (1 + r % 97) as usize;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        sock.push(chunk);
        conn.set_readable();
        sock.write_room = if (r >> 8) % 4 == 0 {
            Some(((r >> 16) % 64) as usize)
        } else {
            None
        };
        conn.set_writable();
        if !shrunk && (r >> 40) % 16 == 0 {
            shrunk = true;
            let len = (r >> 44) % SHRINKS_LEN;
            svc.inner.fs.shrink("shrinks.bin", len).expect("ftruncate");
        }
        run(&mut conn, &mut sock, &mut svc, now);
        if (r >> 24) % 8 == 0 {
            now += 1000 * ((r >> 28) % 12);
            conn.on_timeout(now, &mut svc, &lim);
            run(&mut conn, &mut sock, &mut svc, now);
        }
        let queued = conn.out_mut().map_or(0, |o| o.queued());
        assert!(
            queued <= lim.out_high_water + 64 * 1024,
            "queued output grew to {queued}"
        );
        check_responses(&sock.output, &svc.expected, false);
    }
    // The client stops sending, reads everything, and time passes: the connection must end.
    sock.write_room = None;
    sock.eof = true;
    conn.set_read_closed();
    conn.set_writable();
    run(&mut conn, &mut sock, &mut svc, now);
    for _ in 0..4 {
        if conn.is_closed() {
            break;
        }
        now += 60_000;
        conn.on_timeout(now, &mut svc, &lim);
        run(&mut conn, &mut sock, &mut svc, now);
    }
    assert!(
        conn.is_closed(),
        "connection still open in {:?}",
        conn.phase()
    );
    let cut_short = matches!(
        conn.close_reason(),
        Some(CloseReason::SendTimeout | CloseReason::Io | CloseReason::FileTruncated)
    );
    check_responses(&sock.output, &svc.expected, !cut_short);
    for p in &svc.inner.fs.opened {
        assert!(
            p.first() != Some(&b'/')
                && !p
                    .split(|&b| b == b'/')
                    .any(|s| s == b".." || s == b"." || (s.is_empty() && !p.is_empty())),
            "looked up a path that is not normalised: {:?}",
            String::from_utf8_lossy(p)
        );
    }
}

/// Parses `out` as consecutive responses and compares them with what was answered. With
/// `complete`, the last response must be whole too.
fn check_responses(mut out: &[u8], expected: &[Expected], complete: bool) {
    let mut i = 0;
    while !out.is_empty() {
        let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
            assert!(!complete, "a response head was cut off");
            return;
        };
        let head = &out[..end + 2];
        let want = expected
            .get(i)
            .unwrap_or_else(|| panic!("response {i} was never answered"));
        assert!(head.starts_with(b"HTTP/1.1 "), "bad status line");
        assert_eq!(status_of(head), want.status, "response {i} out of order");
        let mut length = None;
        for line in head
            .split(|&b| b == b'\n')
            .skip(1)
            .filter(|l| !l.is_empty())
        {
            let line = line.strip_suffix(b"\r").expect("header lines end in CRLF");
            assert!(!line.contains(&b'\r'), "bare CR in a header");
            let colon = memchr::memchr(b':', line).expect("header line without a colon");
            if line[..colon].eq_ignore_ascii_case(b"content-length") {
                assert!(length.is_none(), "two Content-Length headers");
                let v = std::str::from_utf8(&line[colon + 1..]).unwrap().trim();
                length = Some(v.parse::<usize>().expect("numeric Content-Length"));
            }
        }
        let body = match (want.status, want.head_only) {
            (304, _) => {
                assert!(length.is_none(), "304 with Content-Length");
                0
            }
            (_, true) => 0,
            _ => length.expect("response without Content-Length"),
        };
        let total = end + 4 + body;
        if out.len() < total {
            assert!(!complete, "response {i} body cut off");
            return;
        }
        out = &out[total..];
        i += 1;
    }
}

/// 3. `Range` against an independent brute-force model for small files:
///    `data[0]` is the length (0..=64), `data[1]` the range limit, the rest the header value.
pub fn range(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let len = u64::from(data[0] % 65);
    let max = usize::from(data[1] % 20) + 1;
    let header = &data[2..];
    let got = range::evaluate(header, len, max);
    if let range::RangeOutcome::Ranges(rs) = &got {
        let mut prev_end = None;
        for r in rs {
            assert!(
                r.start < r.end && r.end <= len,
                "range {r:?} outside 0..{len}"
            );
            if let Some(p) = prev_end {
                assert!(r.start > p, "ranges overlap, touch or are unsorted");
            }
            prev_end = Some(r.end);
        }
    }
    let covered = |out: &range::RangeOutcome| -> Option<Vec<bool>> {
        match out {
            range::RangeOutcome::Full => None,
            range::RangeOutcome::Unsatisfiable => Some(vec![false; len as usize]),
            range::RangeOutcome::Ranges(rs) => {
                let mut v = vec![false; len as usize];
                for r in rs {
                    for i in r.start..r.end {
                        v[i as usize] = true;
                    }
                }
                Some(v)
            }
        }
    };
    assert_eq!(
        covered(&got),
        range_model(header, len, max),
        "Range: {:?}",
        String::from_utf8_lossy(header)
    );
}

/// The model: RFC 9110 §14.1.1 read literally, one byte offset at a time.
fn range_model(header: &[u8], len: u64, max: usize) -> Option<Vec<bool>> {
    // Surrounding whitespace is not part of a field value (RFC 9110 §5.5).
    let s = std::str::from_utf8(header).ok()?.trim_matches([' ', '\t']);
    let (unit, set) = s.split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let specs: Vec<&str> = set
        .split(',')
        .map(|e| e.trim_matches([' ', '\t']))
        .filter(|e| !e.is_empty())
        .collect();
    if specs.is_empty() || specs.len() > max {
        return None;
    }
    let num = |t: &str| -> Option<u64> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let mut parsed = Vec::new();
    for spec in specs {
        let (a, b) = spec.split_once('-')?;
        parsed.push(match (a.is_empty(), b.is_empty()) {
            (true, _) => (None, num(b)?),
            (false, true) => (Some(num(a)?), u64::MAX),
            (false, false) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return None;
                }
                (Some(a), b)
            }
        });
    }
    let mut union = vec![false; len as usize];
    let mut sum = 0u64;
    for (first, last) in parsed {
        for i in 0..len {
            let hit = match first {
                Some(a) => a <= i && i <= last,
                None => len - i <= last,
            };
            if hit {
                sum += 1;
                union[i as usize] = true;
            }
        }
    }
    (sum <= len).then_some(union)
}

/// 4. Paths: the result never names anything above the root, and equals a reference that
///    decodes exactly once and removes dot segments with a stack.
pub fn path(data: &[u8]) {
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    let Ok((p, _query)) = path::split_target(data) else {
        return;
    };
    let got = path::normalize(p, &mut out, &mut scratch);
    let want = path_model(p);
    match (got, want) {
        (Ok(info), Some(segs)) => {
            assert_eq!(
                out,
                segs.join(&b'/'),
                "normalised path differs from the model"
            );
            assert!(
                !out.split(|&b| b == b'/').any(|s| s == b".." || s == b"."),
                "dot segment survived"
            );
            assert!(!out.contains(&0), "NUL in a path");
            assert_eq!(info.hidden, segs.iter().any(|s| s.first() == Some(&b'.')));
        }
        (Err(_), None) => {}
        (got, want) => panic!(
            "path {:?}: tern {:?}, model {:?}",
            String::from_utf8_lossy(p),
            got.is_ok(),
            want.is_some()
        ),
    }
}

fn path_model(p: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut decoded = Vec::new();
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'%' {
            let hex = std::str::from_utf8(p.get(i + 1..i + 3)?).ok()?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            decoded.push(p[i]);
            i += 1;
        }
    }
    if decoded.contains(&0) {
        return None;
    }
    let mut stack: Vec<Vec<u8>> = Vec::new();
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                stack.pop()?;
            }
            s => stack.push(s.to_vec()),
        }
    }
    Some(stack)
}

/// 5. Header values that negotiate and compare: `Accept-Encoding` picks only an available
///    coding (and none when there is no header), `Accept` and the precondition and
///    `If-Range` evaluators never panic, and every date that parses survives a round trip.
pub fn headers(data: &[u8]) {
    let Some((&bits, value)) = data.split_first() else {
        return;
    };
    let available = [bits & 1 != 0, bits & 2 != 0, bits & 4 != 0];
    if let Some(c) = negotiate::choose_encoding(&[value], available) {
        let i = match c {
            negotiate::Coding::Br => 0,
            negotiate::Coding::Zstd => 1,
            negotiate::Coding::Gzip => 2,
        };
        assert!(available[i], "chose an unavailable coding");
    }
    assert_eq!(negotiate::choose_encoding(&[], available), None);
    let _ = negotiate::prefers_json(&[value]);
    if let Some(t) = date::parse(value) {
        if (0..=date::MAX_SECS).contains(&t) {
            assert_eq!(
                date::parse(&date::format(t)),
                Some(t),
                "date did not round-trip"
            );
        }
    }
    let etag = b"\"tern\"";
    let v = conditional::Validators {
        etag,
        last_modified: 1_700_000_000,
    };
    let values: [&[u8]; 1] = [value];
    for which in 0..4 {
        let mut p = conditional::Preconditions::default();
        match which {
            0 => p.if_match = &values,
            1 => p.if_none_match = &values,
            2 => p.if_modified_since = &values,
            _ => p.if_unmodified_since = &values,
        }
        let _ = conditional::evaluate(&p, &v, bits & 8 != 0);
    }
    let _ = conditional::if_range_allows(value, &v);
    assert!(conditional::etag_matches(&[etag], etag, true));
}

/// The `Authorization: Basic` parser (first byte even) or the htpasswd parser (odd) on
/// arbitrary bytes: no panic, and what they accept keeps their invariants. No slow hash
/// is run (the parsers bound their costs; verifying is not what is fuzzed).
pub fn auth(data: &[u8]) {
    use crate::auth::{basic, htpasswd};
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 1 == 0 {
        let mut buf = Vec::new();
        if let Ok((user, pass)) = basic::parse(rest, &mut buf) {
            assert!(!user.is_empty() && !user.contains(':'));
            assert!(user.len() + pass.len() < basic::MAX_DECODED);
            // Encoded again, the same credentials come back.
            use base64::Engine;
            let again = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            );
            let (u, p) = (user.to_string(), pass.to_string());
            let mut buf2 = Vec::new();
            assert_eq!(
                basic::parse(again.as_bytes(), &mut buf2),
                Ok((&u[..], &p[..]))
            );
        }
        return;
    }
    let whole = htpasswd::parse_file(rest);
    let mut lines_ok = true;
    for line in rest.split(|&b| b == b'\n') {
        match htpasswd::parse_line(line) {
            Ok(Some((user, hash))) => {
                assert!(!user.is_empty() && !user.contains(':'));
                if let htpasswd::Hash::Apr1 { .. } | htpasswd::Hash::Sha1(_) = hash {
                    // Cheap schemes: verifying must not panic.
                    let _ = crate::auth::verify::verify(&hash, user.as_bytes());
                }
            }
            Ok(None) => {}
            Err(_) => lines_ok = false,
        }
    }
    // The file parses when every line does, except for users given twice.
    if let Ok(f) = &whole {
        assert!(lines_ok);
        assert_eq!(f.dummy.is_some(), !f.users.is_empty());
    }
}

/// The CGI response-head parser: finding the end (LF or CRLF lines) and parsing never
/// panic, spans stay inside the head, and framing fields never pass through.
pub fn cgi_head(data: &[u8]) {
    crate::http::cgi::fuzz_one(data);
}

/// An upstream's response head and body framing as the proxy reads them (the first byte
/// says whether the request was HEAD).
pub fn upstream(data: &[u8]) {
    crate::http::upstream::fuzz_one(data);
}
