//! The shape of late answers ([`Phase::Await`]) at the connection level: a service that
//! answers "pending" for `/late`, the test playing the part of the bound task (a CGI child,
//! an upstream), an in-memory socket and a fake clock.
use super::super::io::{drive, Turn};
use super::super::memsock::MemSocket;
use super::super::*;
use super::site;
use crate::fs::MemFs;
use crate::handler::{Handler, Router, Site};

/// Answers "pending" for `/late` (the first `pend` times; then `200 ok`), serves the rest.
pub(super) struct Late {
    inner: Handler<MemFs>,
    how: Await,
    pend: usize,
    /// How many times a `/late` head reached the service.
    pub(super) seen: usize,
}

impl Service for Late {
    fn respond(&mut self, ex: &mut Exchange<'_>, out: &mut Out) -> Reply {
        if ex.req.target.get(ex.head).starts_with(b"/late") {
            self.seen += 1;
            if self.pend > 0 {
                self.pend -= 1;
                return Reply::Await(self.how);
            }
            out.buf
                .extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
            out.push_bytes(b"ok");
            return Reply::Done;
        }
        self.inner.respond(ex, out)
    }

    fn respond_error(&mut self, err: HttpError, line: &[u8], peer: IpAddr, out: &mut Out) {
        self.inner.respond_error(err, line, peer, out)
    }
}

pub(super) struct T {
    pub(super) conn: Conn,
    sock: MemSocket,
    pub(super) svc: Late,
    pool: Pool,
    pub(super) lim: Limits,
    now: Millis,
}

impl T {
    /// `/late` always waits, bodies up to `max_body`.
    pub(super) fn new(body: BodyUse, max_body: u64) -> T {
        T::pending(body, max_body, usize::MAX)
    }

    /// `/late` waits the first `pend` times.
    pub(super) fn pending(body: BodyUse, max_body: u64, pend: usize) -> T {
        let lim = Limits::default();
        T {
            conn: Conn::new("127.0.0.1".parse().unwrap(), 0, &lim),
            sock: MemSocket::new(),
            svc: Late {
                inner: Handler::new(site(), Router::single(Site::default()), None, 1_800_000_000),
                how: Await { body, max_body },
                pend,
                seen: 0,
            },
            pool: Pool::new(16 * 1024, 4),
            lim,
            now: 0,
        }
    }

    pub(super) fn run(&mut self) -> Turn {
        for _ in 0..10_000 {
            let t = drive(
                &mut self.conn,
                &mut self.sock,
                &mut self.svc,
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

    pub(super) fn send(&mut self, bytes: &[u8]) -> Turn {
        self.sock.push(bytes);
        self.conn.set_readable();
        self.run()
    }

    pub(super) fn output(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.sock.output)).unwrap()
    }

    fn tick(&mut self, ms: Millis) -> Turn {
        self.now += ms;
        if self.conn.deadline() <= self.now {
            self.conn.on_timeout(self.now, &mut self.svc, &self.lim);
        }
        self.run()
    }

    /// What a bound task does with the body: takes everything staged.
    fn take_body(&mut self) -> Vec<u8> {
        let data = self.conn.body_data().to_vec();
        self.conn.body_taken(data.len());
        self.run();
        data
    }

    /// Answers with `body` as a complete response.
    fn answer(&mut self, body: &str) {
        let now = self.now;
        self.conn.answer(now, &self.lim, AnswerBody::Complete, |a| {
            let close = if a.persist.keep_alive {
                ""
            } else {
                "Connection: close\r\n"
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\n{close}Content-Length: {}\r\n\r\n",
                body.len()
            );
            a.out.buf.extend_from_slice(head.as_bytes());
            a.out.push_bytes(body.as_bytes());
        });
        self.run();
    }

    fn start_stream(&mut self) {
        let now = self.now;
        self.conn
            .answer(now, &self.lim, AnswerBody::Stream(None), |a| {
                a.out.buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
                if !a.persist.keep_alive {
                    a.out.buf.extend_from_slice(b"Connection: close\r\n");
                }
                if a.chunked {
                    a.out
                        .buf
                        .extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                }
                a.out.buf.extend_from_slice(b"\r\n");
            });
    }
}

const LATE: &[u8] = b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n";
const GET_A: &[u8] = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn a_pending_request_holds_back_the_pipelined_ones_until_answered() {
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(&[LATE, GET_A].concat());
    assert_eq!(t.conn.phase(), Phase::Await);
    assert_eq!(
        t.output(),
        "",
        "nothing is answered before the pending request"
    );
    assert!(
        t.conn.holds_buffers(),
        "the pipelined request stays buffered"
    );
    t.answer("late");
    let out = t.output();
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate"),
        "{out}"
    );
    assert!(
        out.ends_with("hello"),
        "then the pipelined one, in order: {out}"
    );
    assert_eq!(t.conn.phase(), Phase::ReadHead);
    assert!(
        !t.conn.holds_buffers(),
        "idle again, buffers back in the pool"
    );
}

#[test]
fn the_await_deadline_gives_504_and_can_be_moved() {
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(LATE);
    t.conn.set_await_deadline(t.now + 1_000);
    t.tick(900);
    assert_eq!(t.conn.phase(), Phase::Await);
    t.conn.set_await_deadline(t.now + 1_000);
    t.tick(900);
    assert_eq!(t.output(), "", "a moved deadline does not fire");
    t.tick(200);
    let out = t.output();
    assert!(out.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"), "{out}");
    assert!(out.contains("Connection: close\r\n"));
    assert!(t.conn.is_closed() || t.conn.phase().is_draining());
}

#[test]
fn a_forwarded_body_that_stops_arriving_is_408_not_504() {
    let mut t = T::new(BodyUse::Forward, 1 << 20);
    t.send(b"PUT /late HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf");
    assert_eq!(t.take_body(), b"half");
    t.conn.set_await_deadline(t.now + 1_000);
    t.tick(1_100);
    let out = t.output();
    assert!(out.starts_with("HTTP/1.1 408 Request Timeout\r\n"), "{out}");
    assert!(out.contains("Connection: close\r\n"));
}

#[test]
fn a_sink_that_stops_taking_is_504() {
    let mut t = T::new(BodyUse::Forward, 1 << 20);
    t.send(b"PUT /late HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf");
    // Staged and never taken: the wait is for the sink, not the client.
    assert_eq!(t.conn.body_data(), b"half");
    t.conn.set_await_deadline(t.now + 1_000);
    t.tick(1_100);
    let out = t.output();
    assert!(out.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"), "{out}");
}

#[test]
fn a_client_that_leaves_while_waiting_closes_the_connection() {
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(LATE);
    t.sock.eof = true;
    t.conn.set_read_closed();
    assert_eq!(t.run(), Turn::Close);
    assert_eq!(t.conn.close_reason(), Some(CloseReason::ClientClosed));
}

#[test]
fn a_forwarded_body_arrives_decoded_with_back_pressure() {
    let mut t = T::new(BodyUse::Forward, 1 << 20);
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let head = format!(
        "POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    t.send(&[head.as_bytes(), &body[..], GET_A].concat());
    assert_eq!(t.conn.phase(), Phase::Await);
    let staged = t.conn.body_data().len();
    assert_eq!(staged, pending::FWD_MAX, "staging stops at its bound");
    assert!(
        !t.sock.input.is_empty(),
        "the rest waits in the socket: reading paused"
    );
    let mut got = Vec::new();
    while !t.conn.body_finished() {
        let piece = t.take_body();
        assert!(!piece.is_empty(), "progress after each take");
        got.extend_from_slice(&piece);
    }
    assert_eq!(got.len(), body.len());
    assert!(got == body, "forwarded byte for byte");
    assert_eq!(t.conn.body_received(), body.len() as u64);
    t.answer("ok");
    let out = t.output();
    assert!(
        out.contains("\r\n\r\nok") && out.ends_with("hello"),
        "{out:.300}"
    );
}

#[test]
fn a_chunked_body_is_forwarded_decoded_and_the_next_request_kept() {
    let mut t = T::new(BodyUse::Forward, 1 << 20);
    t.send(b"POST /late HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n");
    assert_eq!(t.take_body(), b"Wiki");
    assert!(!t.conn.body_finished());
    t.send(&[&b"5\r\npedia\r\n0\r\n\r\n"[..], GET_A].concat());
    assert_eq!(t.take_body(), b"pedia");
    assert!(t.conn.body_finished());
    t.answer("x");
    assert!(t.output().ends_with("hello"));
}

#[test]
fn max_body_gives_413_for_a_declared_or_a_received_length() {
    let mut t = T::new(BodyUse::Forward, 1000);
    t.send(
        b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\nExpect: 100-continue\r\n\r\n",
    );
    let out = t.output();
    assert!(
        out.starts_with("HTTP/1.1 413 "),
        "at once, no 100 Continue: {out}"
    );
    assert!(out.contains("Connection: close\r\n"));
    assert!(!t.conn.is_awaiting(), "a bound task would be unbound");

    let mut t = T::new(BodyUse::Forward, 1000);
    t.send(b"POST /late HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    let chunk = [&b"200\r\n"[..], &[b'x'; 512], b"\r\n"].concat();
    t.send(&chunk);
    assert_eq!(t.output(), "", "512 bytes are within the limit");
    t.send(&chunk);
    let out = t.output();
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    assert_eq!(t.conn.phase(), Phase::Linger, "then a lingering close");
}

#[test]
fn continue_is_sent_only_when_the_body_is_wanted() {
    let req =
        b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    // Forward: at once.
    let mut t = T::new(BodyUse::Forward, 100);
    t.send(req);
    assert_eq!(t.output(), "HTTP/1.1 100 Continue\r\n\r\n");
    t.send(b"abc");
    assert_eq!(t.take_body(), b"abc");

    // Hold: only once the task says so.
    let mut t = T::new(BodyUse::Hold, 100);
    t.send(req);
    assert_eq!(t.output(), "");
    t.send(b"abc");
    assert_eq!(t.conn.body_data(), b"", "held: nothing decoded");
    let now = t.now;
    t.conn.set_body(BodyUse::Forward, now, &t.lim);
    t.run();
    assert_eq!(t.output(), "HTTP/1.1 100 Continue\r\n\r\n");
    assert_eq!(t.take_body(), b"abc");

    // Discard: never; the final status comes without it and the connection closes.
    let mut t = T::new(BodyUse::Discard, 100);
    t.send(req);
    t.answer("no");
    let out = t.output();
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\nConnection: close\r\n"),
        "{out}"
    );
}

#[test]
fn an_unread_rest_of_the_body_is_discarded_after_the_answer() {
    let mut t = T::new(BodyUse::Forward, 100);
    t.send(b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123");
    // The task answers after taking only part of the body (a script that ignores stdin).
    t.answer("early");
    t.send(&[&b"456789"[..], GET_A].concat());
    let out = t.output();
    assert!(out.contains("early") && out.ends_with("hello"), "{out}");
    assert_eq!(t.conn.phase(), Phase::ReadHead);
}

#[test]
fn a_stream_of_unknown_length_is_chunked_for_http_1_1() {
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(&[LATE, GET_A].concat());
    t.start_stream();
    assert!(t.conn.stream_room(&t.lim) > 0);
    t.conn.stream_data(b"hello ");
    t.run();
    t.conn.stream_data(b"world");
    let now = t.now;
    t.conn.stream_end(now, &t.lim, true);
    t.run();
    let out = t.output();
    assert!(out.starts_with(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"
    ), "{out}");
    assert!(
        out.ends_with("hello"),
        "kept alive, the next request answered"
    );
}

#[test]
fn the_stream_pauses_its_source_while_the_client_is_slow() {
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(LATE);
    t.start_stream();
    t.sock.write_room = Some(0);
    let piece = vec![b'z'; 16 * 1024];
    let mut pushed = 0;
    while t.conn.stream_room(&t.lim) > 0 {
        t.conn.stream_data(&piece);
        pushed += 1;
        t.run();
        assert!(pushed < 100, "the queue never says it is full");
    }
    assert!(
        (t.lim.out_high_water as usize..t.lim.out_high_water as usize + 2 * piece.len())
            .contains(&(pushed * piece.len())),
        "bounded by the high-water mark"
    );
    t.sock.write_room = None;
    t.conn.set_writable();
    t.run();
    assert!(t.conn.stream_room(&t.lim) > 0, "room again once written");
}

#[test]
fn http_1_0_streams_are_close_delimited_and_broken_streams_close() {
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(b"GET /late HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    t.start_stream();
    t.conn.stream_data(b"raw");
    let now = t.now;
    t.conn.stream_end(now, &t.lim, true);
    assert_eq!(t.run(), Turn::Close);
    assert_eq!(
        t.output(),
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nraw"
    );

    // A chunked stream whose source fails: what came is flushed, no last chunk, closed.
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(LATE);
    t.start_stream();
    t.conn.stream_data(b"part");
    t.run();
    let now = t.now;
    t.conn.stream_end(now, &t.lim, false);
    t.conn.stream_data(b"more");
    assert_eq!(t.run(), Turn::Close);
    assert_eq!(t.conn.close_reason(), Some(CloseReason::StreamBroken));
    assert!(t.output().ends_with("4\r\npart\r\n"), "never a last chunk");

    // Queued and not yet written when the source fails: still flushed, then closed.
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(LATE);
    t.sock.write_room = Some(0);
    t.start_stream();
    t.conn.stream_data(b"queued");
    let now = t.now;
    t.conn.stream_end(now, &t.lim, false);
    t.run();
    t.sock.write_room = None;
    t.conn.set_writable();
    assert_eq!(t.run(), Turn::Close);
    assert!(t.output().ends_with("6\r\nqueued\r\n"));
}

#[test]
fn head_requests_get_the_head_of_a_stream() {
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(b"HEAD /late HTTP/1.1\r\nHost: x\r\n\r\n");
    t.start_stream();
    t.conn.stream_data(b"body");
    let now = t.now;
    t.conn.stream_end(now, &t.lim, true);
    t.run();
    assert_eq!(
        t.output(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    assert_eq!(t.conn.phase(), Phase::ReadHead);
}

#[test]
fn an_internal_redirect_is_routed_like_a_request_at_most_ten_deep() {
    let mut t = T::new(BodyUse::Forward, 100);
    t.send(b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
    assert!(
        t.conn.internal_redirect(LATE.to_vec()),
        "to another late answer"
    );
    t.run();
    assert_eq!(t.conn.phase(), Phase::Await);
    assert!(t.conn.body_finished(), "the new target sees no body");
    assert_eq!(t.conn.body_data(), b"");
    for _ in 1..MAX_REDIRECTS {
        assert!(t.conn.internal_redirect(LATE.to_vec()));
        t.run();
    }
    assert!(
        !t.conn.internal_redirect(LATE.to_vec()),
        "the eleventh is refused"
    );
    let mut t = T::new(BodyUse::Discard, 0);
    t.send(&[LATE, GET_A].concat());
    assert!(t
        .conn
        .internal_redirect(b"GET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()));
    t.run();
    let out = t.output();
    assert!(
        out.contains("\r\n\r\nbee") && out.ends_with("hello"),
        "{out}"
    );
    assert_eq!(t.conn.phase(), Phase::ReadHead);
}

#[test]
fn taking_the_staged_body_resumes_reading_even_with_nothing_left_to_decode() {
    // The staging buffer fills exactly as the read buffer empties; more arrives; the sink
    // takes everything staged: reading must resume though nothing is left to decode (a stall
    // here once hung large uploads through the proxy).
    let mut t = T::new(BodyUse::Forward, 1 << 20);
    let total = pending::FWD_MAX + 10_000;
    let head = format!("POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n");
    t.send(&[head.as_bytes(), &vec![b'q'; pending::FWD_MAX]].concat());
    assert_eq!(t.conn.body_data().len(), pending::FWD_MAX);
    t.send(&[b'r'; 10_000]);
    assert_eq!(t.take_body().len(), pending::FWD_MAX);
    assert_eq!(t.take_body(), vec![b'r'; 10_000], "stalled");
    assert!(t.conn.body_finished());
}

#[test]
fn a_tunnel_carries_raw_bytes_both_ways_until_it_ends() {
    let mut t = T::new(BodyUse::Forward, 0);
    // The client sends tunnel bytes right behind its upgrade request.
    t.send(
        b"GET /late HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nearly",
    );
    assert_eq!(t.conn.body_data(), b"", "no body before the switch");
    let now = t.now;
    t.conn.answer(now, &t.lim, AnswerBody::Tunnel, |a| {
        assert!(a.persist.keep_alive, "the head says upgrade, not close");
        a.out
            .buf
            .extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n");
    });
    t.run();
    assert_eq!(
        t.take_body(),
        b"early",
        "buffered bytes go first, undecoded"
    );
    t.send(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        t.take_body(),
        b"GET / HTTP/1.1\r\n\r\n",
        "never parsed as HTTP again"
    );
    t.conn.stream_data(b"0\r\nraw");
    t.run();
    let out = t.output();
    assert_eq!(
        out,
        "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n0\r\nraw"
    );
    let now = t.now;
    t.conn.stream_end(now, &t.lim, true);
    t.run();
    assert!(
        t.conn.is_closed() || t.conn.phase() == Phase::Linger,
        "{:?}",
        t.conn.phase()
    );
}
