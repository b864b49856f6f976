//! `Conn::restart` (a pending request parsed again from its head, as after a password hash
//! computed off the loop) and a body sink that takes every staged byte at once (which once
//! stalled the body): connection level, fake clock, in-memory socket.
use super::super::*;
use super::late::T;

#[test]
fn restart_serves_the_same_head_again_then_the_pipelined_rest() {
    let mut t = T::pending(BodyUse::Hold, 1 << 30, 1);
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
    let mut t = T::pending(BodyUse::Forward, 1 << 30, 1);
    t.send(b"PUT /late HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    assert!(t.conn.is_awaiting());
    assert!(!t.conn.restart(0, &t.lim));
    let mut t = T::pending(BodyUse::Hold, 1 << 30, 1);
    t.send(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(!t.conn.restart(0, &t.lim), "not awaiting");
}

/// A sink that takes everything staged each time, with the read buffer drained at that
/// moment: the rest of the body must still come in.
#[test]
fn a_sink_taking_every_staged_byte_never_stalls() {
    const LEN: usize = 1 << 20;
    let mut t = T::pending(BodyUse::Forward, 1 << 30, 1);
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
