//! `Conn::restart` (a pending request parsed again from its head, as after a password hash
//! computed off the loop) and a body sink that takes every staged byte at once (which once
//! stalled the body): connection level, fake clock, in-memory socket.
use super::super::io::{drive, Turn};
use super::super::memsock::MemSocket;
use super::super::*;
use super::site;
use crate::fs::MemFs;
use crate::handler::{Handler, Router, Site};

/// Answers "pending" for `/late` the first `pend` times, then serves normally.
struct Svc {
    inner: Handler<MemFs>,
    how: Await,
    pend: usize,
    seen: usize,
}

impl Service for Svc {
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

struct T {
    conn: Conn,
    sock: MemSocket,
    svc: Svc,
    pool: Pool,
    lim: Limits,
}

impl T {
    fn new(body: BodyUse, pend: usize) -> T {
        let lim = Limits::default();
        T {
            conn: Conn::new("127.0.0.1".parse().unwrap(), 0, &lim),
            sock: MemSocket::new(),
            svc: Svc {
                inner: Handler::new(site(), Router::single(Site::default()), None, 1_800_000_000),
                how: Await {
                    body,
                    max_body: 1 << 30,
                },
                pend,
                seen: 0,
            },
            pool: Pool::new(16 * 1024, 4),
            lim,
        }
    }

    fn run(&mut self) -> Turn {
        for _ in 0..10_000 {
            let t = drive(
                &mut self.conn,
                &mut self.sock,
                &mut self.svc,
                &mut self.pool,
                &self.lim,
                0,
            );
            if t != Turn::Again {
                return t;
            }
        }
        panic!("connection never settled");
    }

    fn send(&mut self, bytes: &[u8]) {
        self.sock.push(bytes);
        self.conn.set_readable();
        self.run();
    }

    fn output(&mut self) -> String {
        String::from_utf8(std::mem::take(&mut self.sock.output)).unwrap()
    }
}

#[test]
fn restart_serves_the_same_head_again_then_the_pipelined_rest() {
    let mut t = T::new(BodyUse::Hold, 1);
    t.send(
        b"PUT /late HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(t.conn.is_awaiting());
    // Held: nothing read of the body, nothing answered.
    assert_eq!(t.output(), "");
    assert!(t.conn.restart(0, &t.lim));
    t.run();
    assert!(!t.conn.is_awaiting());
    assert_eq!(t.svc.seen, 2, "the head was served a second time");
    let out = t.output();
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        "{out}"
    );
    assert!(out.ends_with("hello"), "the pipelined GET followed: {out}");
}

#[test]
fn restart_is_refused_once_the_body_was_forwarded_or_answered() {
    let mut t = T::new(BodyUse::Forward, 1);
    t.send(b"PUT /late HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    assert!(t.conn.is_awaiting());
    assert!(!t.conn.restart(0, &t.lim));
    let mut t = T::new(BodyUse::Hold, 1);
    t.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!t.conn.restart(0, &t.lim), "not awaiting");
}

/// A sink that takes everything staged each time, with the read buffer drained at that
/// moment: the rest of the body must still come in.
#[test]
fn a_sink_taking_every_staged_byte_never_stalls() {
    const LEN: usize = 1 << 20;
    let mut t = T::new(BodyUse::Forward, 1);
    t.send(format!("PUT /late HTTP/1.1\r\nHost: x\r\nContent-Length: {LEN}\r\n\r\n").as_bytes());
    let body: Vec<u8> = (0..LEN).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut got = Vec::new();
    let mut at = 0;
    while !t.conn.body_finished() {
        // Exactly one staging buffer's worth per read, so staging fills up and the read
        // buffer is empty when the sink takes it all.
        if at < LEN {
            let n = pending::FWD_MAX.min(LEN - at);
            t.send(&body[at..at + n]);
            at += n;
        }
        let data = t.conn.body_data().to_vec();
        assert!(
            !data.is_empty() || at < LEN,
            "stalled at {} of {LEN}",
            got.len()
        );
        t.conn.body_taken(data.len());
        got.extend_from_slice(&data);
        t.run();
    }
    assert_eq!(got, body);
}
