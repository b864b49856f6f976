//! Connection tests with an in-memory socket and a fake clock: no network, no sleeping (file
//! bodies that go out with `sendfile` live in memfds).
use super::io::{drive, Turn};
use super::memsock::MemSocket;
use super::*;
use crate::fs::MemFs;
use crate::handler::{Handler, Router, Site};

struct H {
    conn: Conn,
    sock: MemSocket,
    h: Handler<MemFs>,
    pool: Pool,
    lim: Limits,
    now: Millis,
}

/// One parsed response: status, raw head, body.
#[derive(Debug)]
struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }
}

fn site() -> MemFs {
    let mut fs = MemFs::new();
    fs.add_file("index.html", b"<h1>home</h1>", 1_700_000_000);
    fs.add_file("a.txt", b"hello", 1_700_000_000);
    fs.add_file("sub/b.txt", b"bee", 1_700_000_000);
    fs.add_dir("empty", 1_700_000_000);
    fs
}

impl H {
    fn new() -> H {
        H::with(Limits::default())
    }

    fn with(lim: Limits) -> H {
        H {
            conn: Conn::new("127.0.0.1".parse().unwrap(), 0, &lim),
            sock: MemSocket::new(),
            h: Handler::new(
                site(),
                Router::single(Site::default()),
                Some("tern"),
                1_800_000_000,
            ),
            pool: Pool::new(lim.max_head.min(16 * 1024), 4),
            lim,
            now: 0,
        }
    }

    /// Drives until the connection waits or closes.
    fn run(&mut self) -> Turn {
        for _ in 0..10_000 {
            let t = drive(
                &mut self.conn,
                &mut self.sock,
                &mut self.h,
                &mut self.pool,
                &self.lim,
                self.now,
            );
            if t != Turn::Again {
                return t;
            }
        }
        panic!("connection never settled");
    }

    fn send(&mut self, bytes: &[u8]) -> Turn {
        self.sock.push(bytes);
        self.conn.set_readable();
        self.run()
    }

    fn eof(&mut self) -> Turn {
        self.sock.eof = true;
        self.conn.set_read_closed();
        self.run()
    }

    fn tick(&mut self, ms: Millis) -> Turn {
        self.now += ms;
        if self.conn.deadline() <= self.now {
            self.conn.on_timeout(self.now, &mut self.h, &self.lim);
        }
        self.run()
    }

    fn responses(&mut self) -> Vec<Resp> {
        let out = std::mem::take(&mut self.sock.output);
        parse_all(&out)
    }
}

fn parse_all(mut out: &[u8]) -> Vec<Resp> {
    let mut v = Vec::new();
    while !out.is_empty() {
        let end = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("complete head")
            + 4;
        let head = String::from_utf8(out[..end].to_vec()).unwrap();
        let status = head[9..12].parse().unwrap();
        let mut r = Resp {
            status,
            head,
            body: Vec::new(),
        };
        let len: usize = r.header("Content-Length").map_or(0, |v| v.parse().unwrap());
        r.body = out[end..end + len].to_vec();
        out = &out[end + len..];
        v.push(r);
    }
    v
}

const GET_A: &[u8] = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn serves_a_file_and_goes_idle_without_buffers() {
    let mut t = H::new();
    assert_eq!(t.send(GET_A), Turn::Wait);
    let r = t.responses();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].body, b"hello");
    assert_eq!(
        r[0].header("Content-Type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(r[0].header("ETag").is_some());
    assert_eq!(r[0].header("Accept-Ranges"), Some("bytes"));
    assert!(
        !t.conn.holds_buffers(),
        "an idle keep-alive connection holds no buffer"
    );
    assert_eq!(t.pool.free_count(), 1);
    // One read (short, so trusted as draining the socket) and one send per request.
    assert_eq!((t.sock.reads, t.sock.sends), (1, 1));
}

#[test]
fn head_is_get_without_body() {
    let mut t = H::new();
    t.send(GET_A);
    let get = t.responses().remove(0);
    t.send(b"HEAD /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let out = std::mem::take(&mut t.sock.output);
    let head = String::from_utf8(out).unwrap();
    assert_eq!(head, get.head, "HEAD sends the identical head and no body");
}

#[test]
fn pipelined_requests_answered_in_order_with_one_write() {
    let mut t = H::new();
    let mut batch = Vec::new();
    for i in 0..64 {
        let path = if i % 2 == 0 { "/a.txt" } else { "/sub/b.txt" };
        batch.extend_from_slice(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    t.send(&batch);
    let r = t.responses();
    assert_eq!(r.len(), 64);
    for (i, resp) in r.iter().enumerate() {
        assert_eq!(
            resp.body,
            if i % 2 == 0 { &b"hello"[..] } else { b"bee" },
            "response {i}"
        );
    }
    assert_eq!(
        t.sock.sends, 1,
        "64 pipelined responses leave in one sendmsg"
    );
}

#[test]
fn pipelined_memory_bodies_leave_in_as_few_sends_as_iovecs_allow() {
    use crate::conn::out::{FEW_IOV, INLINE_MAX, MAX_IOV};
    // Bodies over INLINE_MAX are referenced, not copied: each response is a head chunk and a
    // body chunk. 8 responses (16 chunks) need more than FEW_IOV iovecs and still leave in
    // one send; 40 (80 chunks) exceed MAX_IOV and need two.
    const { assert!(FEW_IOV < 16 && 16 <= MAX_IOV && 80 > MAX_IOV && 80 <= 2 * MAX_IOV) };
    let big: Vec<u8> = (0..INLINE_MAX + 1).map(|i| (i % 251) as u8).collect();
    for (count, sends) in [(1, 1), (8, 1), (40, 2)] {
        let mut t = H::new();
        let mut fs = site();
        fs.add_file("big.bin", &big, 1_700_000_000);
        t.h = Handler::new(
            fs,
            Router::single(Site::default()),
            Some("tern"),
            1_800_000_000,
        );
        let one = b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
        t.send(&one.repeat(count));
        let r = t.responses();
        assert_eq!(r.len(), count);
        assert!(
            r.iter().all(|resp| resp.body == big),
            "{count} bodies intact"
        );
        assert_eq!(t.sock.sends, sends, "{count} pipelined responses");
    }
}

/// A site with `big.bin` as a descriptor body (sent with `sendfile`), beside the memory ones.
fn with_fd_file(lim: Limits, data: &[u8]) -> H {
    let mut t = H::with(lim);
    let mut fs = site();
    fs.add_fd_file("big.bin", data, 1_700_000_000).unwrap();
    t.h = Handler::new(
        fs,
        Router::single(Site::default()),
        Some("tern"),
        1_800_000_000,
    );
    t
}

/// Lets the peer take `room` more bytes per turn until the output is drained; returns the
/// number of turns.
fn drain_slowly(t: &mut H, room: usize) -> usize {
    for turns in 1..100_000 {
        t.sock.write_room = Some(room);
        t.conn.set_writable();
        t.run();
        if !t.conn.has_output() {
            return turns;
        }
    }
    panic!("output never drained");
}

#[test]
fn file_bodies_go_out_with_sendfile_through_a_narrow_socket() {
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    // A budget under the file's size, so sending it also spans turns.
    let mut t = with_fd_file(
        Limits {
            write_budget: 16 * 1024,
            ..Limits::default()
        },
        &data,
    );
    t.sock.write_room = Some(0);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    t.send(
        [get("/a.txt"), get("/big.bin"), get("/a.txt")]
            .concat()
            .as_bytes(),
    );
    let turns = drain_slowly(&mut t, 1000);
    assert!(turns > 100, "{turns} turns");
    let r = t.responses();
    assert_eq!(r.len(), 3);
    assert_eq!((r[0].status, &r[0].body[..]), (200, &b"hello"[..]));
    assert_eq!(r[1].status, 200);
    assert_eq!(r[1].header("Content-Length"), Some("100000"));
    assert!(r[1].body == data, "the file body arrives intact");
    assert_eq!((r[2].status, &r[2].body[..]), (200, &b"hello"[..]));
    assert!(t.sock.sendfiles >= 100, "{} sendfiles", t.sock.sendfiles);

    // A range of it, and several ranges (multipart: part heads from memory, parts by
    // sendfile), still byte-exact.
    t.send(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=99000-99999\r\n\r\n");
    drain_slowly(&mut t, 333);
    let r = t.responses();
    assert_eq!(r[0].status, 206);
    assert_eq!(
        r[0].header("Content-Range"),
        Some("bytes 99000-99999/100000")
    );
    assert!(r[0].body == data[99_000..]);
    t.send(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,50000-50009\r\n\r\n");
    drain_slowly(&mut t, 100);
    let r = t.responses();
    assert_eq!(r[0].status, 206);
    let ct = r[0].header("Content-Type").unwrap();
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap();
    let part = |range: &str, bytes: &[u8]| {
        let head = format!(
            "--{boundary}\r\nContent-Type: application/octet-stream\r\n\
             Content-Range: bytes {range}/100000\r\n\r\n"
        );
        [head.as_bytes(), bytes, b"\r\n"].concat()
    };
    let want = [
        part("0-9", &data[..10]),
        part("50000-50009", &data[50_000..50_010]),
        format!("--{boundary}--\r\n").into_bytes(),
    ]
    .concat();
    assert!(r[0].body == want, "multipart body");
    assert!(!t.conn.is_closed());
}

#[test]
fn a_file_that_shrank_closes_the_connection() {
    let data = vec![b'x'; 10_000];
    let mut t = with_fd_file(Limits::default(), &data);
    t.h.fs.shrink("big.bin", 4_000).unwrap();
    assert_eq!(
        t.send(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"),
        Turn::Close
    );
    assert_eq!(t.conn.close_reason(), Some(CloseReason::FileTruncated));
    // The head promised 10,000 bytes; only what the file still holds went out after it.
    let out = std::mem::take(&mut t.sock.output);
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(String::from_utf8_lossy(&out[..end]).contains("Content-Length: 10000\r\n"));
    assert_eq!(&out[end..], &data[..4_000]);
}

#[test]
fn a_request_split_at_every_byte() {
    let req = b"GET /sub/b.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
    for cut in 1..req.len() {
        let mut t = H::new();
        t.send(&req[..cut]);
        assert!(
            t.sock.output.is_empty(),
            "no answer before the head is complete (cut {cut})"
        );
        t.send(&req[cut..]);
        let r = t.responses();
        assert_eq!(r.len(), 1, "cut {cut}");
        assert_eq!(r[0].body, b"bee");
    }
    // And one byte at a time.
    let mut t = H::new();
    for b in req.iter() {
        t.send(std::slice::from_ref(b));
    }
    assert_eq!(t.responses()[0].body, b"bee");
}

#[test]
fn http10_keep_alive_rules() {
    let mut t = H::new();
    t.send(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = t.responses();
    assert_eq!(r[0].header("Connection"), Some("keep-alive"));
    assert!(!t.conn.is_closed());
    assert_eq!(t.send(b"GET /a.txt HTTP/1.0\r\n\r\n"), Turn::Close);
    let r = t.responses();
    assert_eq!(r[0].header("Connection"), Some("close"));
    assert_eq!(r[0].body, b"hello");
}

#[test]
fn connection_close_is_honoured() {
    let mut t = H::new();
    let turn = t.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = t.responses();
    assert_eq!(r.len(), 1, "nothing after Connection: close is answered");
    assert_eq!(r[0].header("Connection"), Some("close"));
    // Unread input followed: lingering close (shutdown, then drain).
    assert_eq!(turn, Turn::Wait);
    assert_eq!(t.conn.phase(), Phase::Linger);
    assert!(t.sock.shut_write);
    assert_eq!(t.eof(), Turn::Close);
}

#[test]
fn max_requests_per_connection() {
    let mut t = H::with(Limits {
        max_requests: 3,
        ..Limits::default()
    });
    t.send(&GET_A.repeat(5));
    let r = t.responses();
    assert_eq!(r.len(), 3);
    assert_eq!(r[2].header("Connection"), Some("close"));
    assert!(r[1].header("Connection").is_none());
}

#[test]
fn bodies_on_get_are_discarded_by_their_framing() {
    let mut t = H::new();
    t.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET /GET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = t.responses();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[1].body, b"bee");
    t.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\nGET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = t.responses();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[1].body, b"bee");
}

#[test]
fn large_bodies_are_refused() {
    let mut t = H::new();
    t.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nGET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = t.responses();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status, 413);
    assert_eq!(r[0].header("Connection"), Some("close"));
    assert_eq!(t.conn.phase(), Phase::Linger);

    // A chunked body that turns out too long: answered, then closed.
    let mut t = H::new();
    let mut req = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    t.send(&req);
    assert_eq!(t.responses()[0].status, 200);
    req.clear();
    for _ in 0..20 {
        req.extend_from_slice(b"1000\r\n");
        req.extend_from_slice(&[b'x'; 4096]);
        req.extend_from_slice(b"\r\n");
    }
    t.send(&req);
    assert_eq!(t.conn.phase(), Phase::Linger);
}

#[test]
fn expect_100_continue_is_not_waited_for() {
    let mut t = H::new();
    t.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
    let r = t.responses();
    assert_eq!((r.len(), r[0].status), (1, 200));
    assert_eq!(r[0].header("Connection"), Some("close"));
}

#[test]
fn smuggling_attempts_get_400_and_nothing_after() {
    for attack in [
        &b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nGET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\nGET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\nabcd\r\n0\r\n\r\nGET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let mut t = H::new();
        t.send(attack);
        let r = t.responses();
        assert!(r.iter().all(|r| r.body != b"bee"), "smuggled request answered: {r:?}");
        assert!(matches!(t.conn.phase(), Phase::Linger | Phase::Closed(_)));
    }
}

#[test]
fn oversized_heads() {
    let mut t = H::new();
    let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(20_000));
    t.send(long_line.as_bytes());
    assert_eq!(t.responses()[0].status, 414);

    let mut t = H::new();
    let big_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "c".repeat(20_000)
    );
    t.send(big_headers.as_bytes());
    assert_eq!(t.responses()[0].status, 431);

    // Under the default limits: a 16 KiB cookie, an 8 KiB request line, 1,000 headers.
    let mut t = H::new();
    let cookie = format!(
        "GET /a.txt HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "c".repeat(16 * 1024)
    );
    t.send(cookie.as_bytes());
    assert_eq!(t.responses()[0].status, 200);
    assert!(!t.conn.holds_buffers() && t.pool.free_count() == 1);
    let line = format!(
        "GET /a.txt?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(8 * 1024 - 20)
    );
    t.send(line.as_bytes());
    assert_eq!(t.responses()[0].status, 200);
    let mut many = String::from("GET /a.txt HTTP/1.1\r\nHost: x\r\n");
    for i in 0..1000 {
        many.push_str(&format!("X-{i}: value\r\n"));
    }
    many.push_str("\r\n");
    t.send(many.as_bytes());
    assert_eq!(t.responses()[0].status, 200);

    // Many fields each under the limit, but more than the whole head may hold.
    let mut t = H::new();
    let mut huge = String::from("GET /a.txt HTTP/1.1\r\nHost: x\r\n");
    for i in 0..6 {
        huge.push_str(&format!("X-{i}: {}\r\n", "v".repeat(15 * 1024)));
    }
    huge.push_str("\r\n");
    t.send(huge.as_bytes());
    assert_eq!(t.responses()[0].status, 431);

    // A request line just over the limit, complete in one read.
    let mut t = H::new();
    let line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(8 * 1024));
    t.send(line.as_bytes());
    assert_eq!(t.responses()[0].status, 414);
}

#[test]
fn timeouts_follow_the_phase() {
    // Idle keep-alive.
    let mut t = H::new();
    t.send(GET_A);
    t.responses();
    assert_eq!(t.tick(4_999), Turn::Wait);
    assert_eq!(t.tick(1), Turn::Close);
    assert_eq!(t.conn.close_reason(), Some(CloseReason::IdleTimeout));

    // A head that never completes: 408, measured from its first byte, not the last.
    let mut t = H::new();
    t.send(b"GET / HTTP/1.1\r\n");
    for _ in 0..9 {
        t.tick(1_000);
        t.send(b"X");
    }
    assert!(t.sock.output.is_empty());
    t.tick(1_000);
    assert_eq!(t.responses()[0].status, 408);
    assert!(t.conn.is_closed());

    // A connection that never sends anything is closed silently.
    let mut t = H::new();
    assert_eq!(t.tick(10_000), Turn::Close);
    assert!(t.sock.output.is_empty());
    assert_eq!(t.conn.close_reason(), Some(CloseReason::HeadTimeout));

    // A stalled reader.
    let mut t = H::new();
    t.sock.write_room = Some(0);
    t.send(GET_A);
    assert_eq!(t.tick(29_999), Turn::Wait);
    assert_eq!(t.tick(1), Turn::Close);
    assert_eq!(t.conn.close_reason(), Some(CloseReason::SendTimeout));
}

#[test]
fn a_client_that_never_reads_holds_bounded_memory() {
    let mut t = H::new();
    t.sock.write_room = Some(0);
    for _ in 0..1000 {
        t.send(GET_A);
    }
    let out = t.conn.out_mut().map_or(0, |o| o.queued());
    assert!(out <= t.lim.out_high_water + 4096, "queued {out}");
    // Once the client reads, everything is answered in order.
    t.sock.write_room = None;
    t.conn.set_writable();
    t.run();
    let r = t.responses();
    assert_eq!(r.len(), 1000);
    assert!(r.iter().all(|r| r.body == b"hello"));
}

#[test]
fn half_closed_client_still_gets_its_answers() {
    let mut t = H::new();
    t.sock.push(&[GET_A, GET_A].concat());
    assert_eq!(t.eof(), Turn::Close);
    assert_eq!(t.responses().len(), 2);
    assert_eq!(t.conn.close_reason(), Some(CloseReason::Done));
}

#[test]
fn shutdown_lets_the_response_finish() {
    let mut t = H::new();
    t.sock.write_room = Some(10);
    t.send(GET_A);
    t.conn.begin_shutdown();
    assert!(!t.conn.is_closed());
    t.sock.write_room = None;
    t.conn.set_writable();
    assert_eq!(t.run(), Turn::Close);
    assert_eq!(t.responses()[0].body, b"hello");
    assert_eq!(t.conn.close_reason(), Some(CloseReason::Shutdown));

    let mut idle = H::new();
    idle.send(GET_A);
    idle.conn.begin_shutdown();
    assert!(idle.conn.is_closed());
}

#[test]
fn leading_empty_lines_are_ignored() {
    let mut t = H::new();
    t.send(b"\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(t.responses()[0].body, b"hello");
}

#[test]
fn an_idle_connection_is_small() {
    // The per-connection cost of 10,000 idle keep-alive clients is this struct (plus the
    // socket and its 4-byte descriptor in the server's slab slot).
    let size = std::mem::size_of::<Conn>();
    eprintln!("Conn: {size} bytes");
    assert!(size <= 64, "Conn grew to {size} bytes");
}

#[test]
fn peer_ip_turns_mapped_ipv4_back_into_ipv4() {
    let ip = |s: &str| super::peer_ip(s.parse().unwrap()).to_string();
    assert_eq!(ip("[::ffff:192.0.2.7]:80"), "192.0.2.7");
    assert_eq!(ip("[::ffff:127.0.0.1]:1"), "127.0.0.1");
    assert_eq!(ip("192.0.2.7:80"), "192.0.2.7");
    assert_eq!(ip("[::1]:80"), "::1");
    assert_eq!(ip("[2001:db8::1]:80"), "2001:db8::1");
}

#[path = "tests_await.rs"]
mod late;

#[path = "tests_restart.rs"]
mod restart;
