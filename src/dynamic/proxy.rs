//! A proxied request as a task: a connection to the upstream (from the keep-alive pool, or a
//! new non-blocking connect), the re-framed request head and body written as the client
//! sends it, the response head parsed strictly ([`crate::http::upstream`]) and the body
//! streamed to the client as it comes, re-framed by tern, with back-pressure both ways.
//!
//! Failure rules: no connection (every address refused): 502; an ambiguous or malformed
//! response head: 502, and that upstream connection is dropped; nothing within
//! `proxy_timeout`: 504 (the connection's await deadline); an upstream that closes or breaks
//! its framing mid-body: the client connection is closed, so a truncated body never looks
//! complete. A pooled connection that turns out closed before any byte of the response is
//! replaced by a new one once, for requests without a body.
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::rc::Rc;

use mio::{Interest, Registry};
use slab::Slab;

use super::{Cx, Event, Leftover, Task};
use crate::config::{Upstream, UpstreamAddr};
use crate::conn::{AnswerBody, Millis};
use crate::handler::Site;
use crate::http::body::{chunk_frame, BodyDecoder, LAST_CHUNK};
use crate::http::response;
use crate::http::upstream::{self, BodyFraming};
use crate::log::Level;

/// The size of the read buffer shared by the loop's tasks ([`Cx::scratch`]).
pub const SCRATCH: usize = 64 * 1024;

/// How long an idle upstream connection is kept.
const IDLE_TIMEOUT: Millis = 30_000;

/// A connection to an upstream.
pub enum UpSock {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl UpSock {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            UpSock::Tcp(s) => s.as_fd(),
            UpSock::Unix(s) => s.as_fd(),
        }
    }

    fn register(&mut self, reg: &Registry, token: mio::Token) -> io::Result<()> {
        let interest = Interest::READABLE | Interest::WRITABLE;
        match self {
            UpSock::Tcp(s) => reg.register(s, token, interest),
            UpSock::Unix(s) => reg.register(s, token, interest),
        }
    }

    /// `Ok(true)` connected, `Ok(false)` still connecting, `Err` failed.
    fn connected(&self) -> io::Result<bool> {
        let (err, peer) = match self {
            UpSock::Tcp(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
            UpSock::Unix(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
        };
        if let Some(e) = err {
            return Err(e);
        }
        match peer {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            UpSock::Tcp(s) => s.read(buf),
            UpSock::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            UpSock::Tcp(s) => s.write(buf),
            UpSock::Unix(s) => s.write(buf),
        }
    }
}

/// An upstream connection of the pool: in use by one task, or idle.
struct Pooled {
    sock: UpSock,
    /// The upstream it goes to (its idle list).
    addr: UpstreamAddr,
    /// The task using it ([`Cx::me`]), or `None` while idle.
    user: Option<u64>,
    /// When it went idle.
    since: Millis,
}

/// Every upstream connection, in use or idle, and the idle ones per upstream address.
///
/// A connection is registered with the poll once, when it is opened, under a token of its
/// own (`base + key`), and stays registered until it is closed: handing it from one request
/// to the next costs no system call. The server routes its events to the task using it
/// ([`Pool::event`]); an idle connection that becomes readable was closed by the upstream
/// (or broke the protocol) and is closed at once, so a dead one is not handed out later.
/// Closing drops the socket, which takes it out of the epoll set with it.
pub struct Pool {
    conns: Slab<Pooled>,
    idle: HashMap<UpstreamAddr, Vec<usize>>,
    /// Token of slab key 0.
    base: usize,
    /// Connections opened so far (for stats).
    pub opened: u64,
}

impl Pool {
    pub fn new(base: usize) -> Pool {
        Pool {
            conns: Slab::new(),
            idle: HashMap::new(),
            base,
            opened: 0,
        }
    }

    /// The most recently used idle connection to `addr`, now used by `user`; idle ones
    /// past their time are closed on the way.
    fn take(&mut self, addr: &UpstreamAddr, user: u64, now: Millis) -> Option<usize> {
        let list = self.idle.get_mut(addr)?;
        while let Some(k) = list.pop() {
            match self.conns.get_mut(k) {
                Some(c) if now.saturating_sub(c.since) < IDLE_TIMEOUT => {
                    c.user = Some(user);
                    return Some(k);
                }
                Some(_) => {
                    self.conns.remove(k);
                }
                None => {}
            }
        }
        None
    }

    /// A new connection, used by `user`, registered under its token.
    fn insert(
        &mut self,
        mut sock: UpSock,
        addr: &UpstreamAddr,
        user: u64,
        reg: &Registry,
    ) -> io::Result<usize> {
        let entry = self.conns.vacant_entry();
        sock.register(reg, mio::Token(self.base + entry.key()))?;
        self.opened += 1;
        let k = entry.key();
        entry.insert(Pooled {
            sock,
            addr: addr.clone(),
            user: Some(user),
            since: 0,
        });
        Ok(k)
    }

    fn sock(&mut self, k: usize) -> Option<&mut UpSock> {
        self.conns.get_mut(k).map(|c| &mut c.sock)
    }

    /// Connection `k` is idle again: kept if its upstream has fewer than `cap` idle ones,
    /// else closed.
    fn release(&mut self, k: usize, now: Millis, cap: usize) {
        let Some(c) = self.conns.get_mut(k) else {
            return;
        };
        let list = match self.idle.get_mut(&c.addr) {
            Some(l) => l,
            None => self.idle.entry(c.addr.clone()).or_default(),
        };
        if list.len() < cap {
            c.user = None;
            c.since = now;
            list.push(k);
        } else {
            self.conns.remove(k);
        }
    }

    /// Closes connection `k` (in use: it is not idle).
    pub fn close(&mut self, k: usize) {
        if self.conns.get(k).is_some_and(|c| c.user.is_some()) {
            self.conns.remove(k);
        }
    }

    /// An event for connection `k`: the task using it, if any. An idle connection with
    /// something to read (the upstream closed it, or sent what nobody asked for) is closed;
    /// the check is made once more with a peek, since the event may be an old one, from
    /// before its last user read everything.
    pub fn event(&mut self, k: usize, readable: bool, closed: bool) -> Option<u64> {
        let c = self.conns.get(k)?;
        if c.user.is_some() {
            return c.user;
        }
        if (readable || closed) && !crate::sys::net::idle_alive(c.sock.fd()) {
            let addr = c.addr.clone();
            self.conns.remove(k);
            if let Some(list) = self.idle.get_mut(&addr) {
                list.retain(|&i| i != k);
            }
        }
        None
    }

    /// Closes the idle connections past their time.
    pub fn sweep(&mut self, now: Millis) {
        let conns = &mut self.conns;
        for list in self.idle.values_mut() {
            list.retain(|&k| {
                let fresh = conns
                    .get(k)
                    .is_some_and(|c| now.saturating_sub(c.since) < IDLE_TIMEOUT);
                if !fresh && conns.contains(k) {
                    conns.remove(k);
                }
                fresh
            });
        }
    }
}

/// The request as the handler rebuilt it.
pub struct Request {
    pub head: Vec<u8>,
    /// The body goes upstream chunked (it came chunked).
    pub chunked: bool,
    pub has_body: bool,
    pub head_method: bool,
    /// The request asks for `Upgrade: websocket` (passed on): a 101 starts a tunnel.
    pub upgrade: bool,
    pub logged: super::Logged,
}

enum State {
    Head,
    Body {
        decoder: Option<BodyDecoder>,
        keep_alive: bool,
    },
}

pub struct ProxyTask {
    upstream: Rc<Upstream>,
    req: Request,
    site: Rc<Site>,
    /// The upstream connection in use (a key of the [`Pool`]).
    sock: Option<usize>,
    connecting: bool,
    reused: bool,
    retried: bool,
    next_addr: usize,
    /// Bytes of the request head written (it goes from `req.head`).
    head_at: usize,
    /// Body bytes for the upstream, after the head: `out[out_at..]`.
    out: Vec<u8>,
    out_at: usize,
    /// The request body is all queued (and its last chunk, when chunked).
    body_done: bool,
    /// The upstream stopped taking the request (it may still answer).
    write_failed: bool,
    inb: Vec<u8>,
    got_any: bool,
    /// The upstream connection may have something to read: it was readable when last
    /// looked at. Cleared by a read that would block; set by readiness. Right after the
    /// request went out there is nothing yet, so no read is tried before the event.
    may_read: bool,
    state: State,
    status: u16,
    bytes: u64,
    finished: bool,
}

impl ProxyTask {
    pub fn new(upstream: Rc<Upstream>, req: Request, site: Rc<Site>) -> ProxyTask {
        ProxyTask {
            upstream,
            head_at: 0,
            out: Vec::new(),
            body_done: !req.has_body,
            req,
            site,
            sock: None,
            connecting: false,
            reused: false,
            retried: false,
            next_addr: 0,
            out_at: 0,
            write_failed: false,
            inb: Vec::new(),
            got_any: false,
            may_read: false,
            state: State::Head,
            status: 0,
            bytes: 0,
            finished: false,
        }
    }

    fn timeout(&self) -> Millis {
        self.site.proxy_timeout
    }

    /// A pooled connection, else the next address.
    fn connect(&mut self, cx: &mut Cx<'_>, pooled: bool) {
        cx.conn.set_await_deadline(cx.now + self.timeout());
        self.may_read = false;
        if pooled {
            if let Some(k) = cx.pool.take(&self.upstream.addr, cx.me, cx.now) {
                self.sock = Some(k);
                self.reused = true;
                self.connecting = false;
                return;
            }
        }
        self.reused = false;
        loop {
            let attempt = match &self.upstream.addr {
                UpstreamAddr::Tcp(addrs) => match addrs.get(self.next_addr) {
                    Some(a) => mio::net::TcpStream::connect(*a).map(UpSock::Tcp),
                    None => break,
                },
                UpstreamAddr::Unix(p) if self.next_addr == 0 => {
                    mio::net::UnixStream::connect(p).map(UpSock::Unix)
                }
                UpstreamAddr::Unix(_) => break,
            };
            self.next_addr += 1;
            match attempt {
                Ok(s) => {
                    if let UpSock::Tcp(t) = &s {
                        let _ = t.set_nodelay(true);
                    }
                    let Ok(k) = cx.pool.insert(s, &self.upstream.addr, cx.me, cx.registry) else {
                        continue;
                    };
                    self.sock = Some(k);
                    self.connecting = true;
                    return;
                }
                Err(e) if self.upstream.command.is_empty() => {
                    self.note(cx, format_args!("connect: {e}"))
                }
                Err(_) => {}
            }
        }
        if self.upstream.command.is_empty() {
            self.fail(cx, 502, "no upstream address accepted the connection");
        } else {
            // The application tern runs is (re)starting: not routed to until it listens.
            self.status = 503;
            self.finished = true;
            self.bytes = cx.answer_bytes(
                &Rc::clone(&self.site),
                503,
                b"Retry-After: 1\r\nContent-Type: text/plain\r\n",
                b"starting\n",
            );
            self.log_access(cx);
        }
    }

    fn note(&self, cx: &mut Cx<'_>, msg: std::fmt::Arguments<'_>) {
        let url = &self.upstream.url;
        cx.heads
            .log(Level::Error, format_args!("proxy {url}: {msg}"));
    }

    fn drop_sock(&mut self, cx: &mut Cx<'_>) {
        if let Some(k) = self.sock.take() {
            cx.pool.close(k);
        }
    }

    fn step(&mut self, cx: &mut Cx<'_>) {
        if self.finished {
            return;
        }
        if self.connecting {
            let Some(s) = self.sock.and_then(|k| cx.pool.sock(k)) else {
                return;
            };
            match s.connected() {
                Ok(true) => self.connecting = false,
                Ok(false) => return,
                Err(e) => {
                    if self.upstream.command.is_empty() {
                        self.note(cx, format_args!("connect: {e}"));
                    }
                    self.drop_sock(cx);
                    return self.connect(cx, false);
                }
            }
        }
        self.write_out(cx);
        if !self.finished && self.may_read {
            self.read_in(cx);
        }
    }

    fn write_out(&mut self, cx: &mut Cx<'_>) {
        if self.head_at < self.req.head.len() && !self.write_failed {
            let Some(s) = self.sock.and_then(|k| cx.pool.sock(k)) else {
                return;
            };
            loop {
                match s.write(&self.req.head[self.head_at..]) {
                    Ok(n) => {
                        self.head_at += n;
                        cx.conn.set_await_deadline(cx.now + self.timeout());
                        if self.head_at == self.req.head.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // The upstream stopped reading: it may have answered already (read on).
                    Err(_) => {
                        self.write_failed = true;
                        return;
                    }
                }
            }
        }
        while !self.write_failed {
            if self.out_at == self.out.len() {
                self.out.clear();
                self.out_at = 0;
                if self.body_done {
                    return;
                }
                let data = cx.conn.body_data();
                if !data.is_empty() {
                    let n = data.len();
                    if self.req.chunked {
                        self.out = chunk_frame(data);
                    } else {
                        self.out.extend_from_slice(data);
                    }
                    cx.conn.body_taken(n);
                } else if cx.conn.body_finished() {
                    if self.req.chunked {
                        self.out.extend_from_slice(LAST_CHUNK);
                    }
                    self.body_done = true;
                } else {
                    return;
                }
                continue;
            }
            let Some(s) = self.sock.and_then(|k| cx.pool.sock(k)) else {
                return;
            };
            match s.write(&self.out[self.out_at..]) {
                Ok(n) => {
                    self.out_at += n;
                    cx.conn.set_await_deadline(cx.now + self.timeout());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The upstream stopped reading: it may have answered already (read on).
                Err(_) => self.write_failed = true,
            }
        }
    }

    fn read_in(&mut self, cx: &mut Cx<'_>) {
        // The loop's one read buffer, shared by every task (they run one at a time).
        let mut buf = std::mem::take(&mut *cx.scratch);
        if buf.len() < SCRATCH {
            buf.resize(SCRATCH, 0);
        }
        self.read_loop(cx, &mut buf);
        *cx.scratch = buf;
    }

    fn read_loop(&mut self, cx: &mut Cx<'_>, buf: &mut [u8]) {
        loop {
            if self.finished {
                return;
            }
            if matches!(self.state, State::Body { .. }) && cx.conn.stream_room(cx.lim) == 0 {
                return;
            }
            let Some(s) = self.sock.and_then(|k| cx.pool.sock(k)) else {
                return;
            };
            match s.read(buf) {
                Ok(0) => return self.on_eof(cx),
                Ok(n) => {
                    self.got_any = true;
                    cx.conn.set_await_deadline(cx.now + self.timeout());
                    self.on_bytes(cx, &buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.may_read = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.on_eof(cx),
            }
        }
    }

    fn on_bytes(&mut self, cx: &mut Cx<'_>, data: &[u8]) {
        match &mut self.state {
            // The whole head in one read (the usual case) is parsed where it lies; a head
            // that comes in pieces is gathered in `inb` first.
            State::Head if self.inb.is_empty() => self.parse_head(cx, data),
            State::Head => {
                let mut inb = std::mem::take(&mut self.inb);
                inb.extend_from_slice(data);
                self.parse_head(cx, &inb);
            }
            State::Body { decoder, .. } => match decoder {
                None => {
                    self.bytes += data.len() as u64;
                    cx.conn.stream_data(data);
                }
                Some(d) => {
                    let conn = &mut *cx.conn;
                    let mut sent = 0u64;
                    let res = d.decode(data, &mut |piece| {
                        sent += piece.len() as u64;
                        conn.stream_data(piece);
                    });
                    self.bytes += sent;
                    match res {
                        Ok((n, true)) => self.complete(cx, n == data.len()),
                        Ok((_, false)) => {}
                        Err(_) => {
                            self.note(cx, format_args!("bad chunked framing mid-body"));
                            self.broken(cx);
                        }
                    }
                }
            },
        }
    }

    /// Parses the response head at the start of `buf` (what came so far: a partial head
    /// is kept in `inb` for the next read) and what follows it.
    fn parse_head(&mut self, cx: &mut Cx<'_>, buf: &[u8]) {
        let mut at = 0;
        loop {
            let head = &buf[at..];
            let h = match upstream::parse(head, self.req.head_method, self.req.upgrade) {
                Ok(Some(h)) => h,
                Ok(None) => {
                    self.inb.extend_from_slice(head);
                    return;
                }
                Err(why) => {
                    self.note(cx, format_args!("invalid response: {why}"));
                    return self.fail(cx, 502, "");
                }
            };
            if h.status == 101 {
                return self.start_tunnel(cx, h, head);
            }
            if h.status < 200 {
                // 100 Continue and friends: tern answered the client's expectation itself.
                at += h.len;
                continue;
            }
            let span = |(s, l): (usize, usize)| &head[s..s + l];
            let body = match h.framing {
                BodyFraming::None => AnswerBody::Stream(Some(0)),
                BodyFraming::Length(n) => AnswerBody::Stream(Some(n)),
                BodyFraming::Chunked | BodyFraming::Close => AnswerBody::Stream(None),
            };
            let site = Rc::clone(&self.site);
            let heads = &mut *cx.heads;
            cx.conn.answer(cx.now, cx.lim, body, |a| {
                heads.head(&site, a.out, h.status, a.persist);
                let buf = &mut a.out.buf;
                for (n, v) in &h.fields {
                    response::header(buf, span(*n), span(*v));
                }
                if site.proxy_via {
                    // The upstream spoke HTTP/1.x to tern; its own Via lines came first.
                    response::header(buf, b"Via", b"1.1 tern");
                }
                match h.framing {
                    BodyFraming::Length(n) => response::content_length(buf, n),
                    // HEAD: the same head as GET, so the length the upstream gave.
                    BodyFraming::None if h.status != 304 => {
                        if let Some(n) = h.content_length {
                            response::content_length(buf, n);
                        }
                    }
                    BodyFraming::Chunked | BodyFraming::Close if a.chunked => {
                        buf.extend_from_slice(b"Transfer-Encoding: chunked\r\n")
                    }
                    _ => {}
                }
                response::end(buf);
            });
            self.status = h.status;
            self.state = State::Body {
                decoder: h.decoder(),
                keep_alive: h.keep_alive,
            };
            if h.framing == BodyFraming::None {
                return self.complete(cx, head.len() == h.len);
            }
            let rest = &head[h.len..];
            if !rest.is_empty() {
                self.on_bytes(cx, rest);
            }
            return;
        }
    }

    /// The upstream switched protocols: answer 101 and carry bytes both ways until either
    /// side closes (idle for `proxy_timeout`: closed).
    fn start_tunnel(&mut self, cx: &mut Cx<'_>, h: upstream::UpstreamHead, head: &[u8]) {
        let span = |(s, l): (usize, usize)| &head[s..s + l];
        let proto = crate::http::request::header_lines(&head[..h.len])
            .find(|(n, _)| n.eq_ignore_ascii_case(b"upgrade"))
            .map_or(&b"websocket"[..], |(_, v)| v);
        let site = Rc::clone(&self.site);
        let heads = &mut *cx.heads;
        cx.conn.answer(cx.now, cx.lim, AnswerBody::Tunnel, |a| {
            heads.head(&site, a.out, 101, a.persist);
            let buf = &mut a.out.buf;
            for (n, v) in &h.fields {
                response::header(buf, span(*n), span(*v));
            }
            response::header(buf, b"Connection", b"upgrade");
            response::header(buf, b"Upgrade", proto);
            response::end(buf);
        });
        self.status = 101;
        // Tunnel bytes: passed as they are, until the upstream closes.
        self.state = State::Body {
            decoder: None,
            keep_alive: false,
        };
        self.body_done = false;
        let rest = &head[h.len..];
        if !rest.is_empty() {
            self.on_bytes(cx, rest);
        }
    }

    fn on_eof(&mut self, cx: &mut Cx<'_>) {
        match &self.state {
            State::Head => {
                if self.reused && !self.got_any && !self.retried && !self.req.has_body {
                    // The pooled connection was closed under us: once more, on a new one.
                    self.retried = true;
                    self.drop_sock(cx);
                    self.head_at = 0;
                    self.write_failed = false;
                    return self.connect(cx, false);
                }
                self.note(cx, format_args!("closed before a complete response head"));
                self.fail(cx, 502, "");
            }
            State::Body { decoder: None, .. } => {
                // Close-delimited: the close is the end.
                self.finished = true;
                self.drop_sock(cx);
                cx.conn.stream_end(cx.now, cx.lim, true);
                self.log_access(cx);
            }
            State::Body { .. } => {
                self.note(cx, format_args!("closed mid-body"));
                self.broken(cx);
            }
        }
    }

    /// The response arrived whole; `clean`: nothing followed it.
    fn complete(&mut self, cx: &mut Cx<'_>, clean: bool) {
        self.finished = true;
        let keep = matches!(
            self.state,
            State::Body {
                keep_alive: true,
                ..
            }
        );
        let reusable = keep
            && clean
            && self.body_done
            && self.head_at == self.req.head.len()
            && self.out_at == self.out.len()
            && !self.write_failed;
        if let Some(k) = self.sock.take() {
            if reusable {
                cx.pool.release(k, cx.now, self.site.proxy_keepalive);
            } else {
                cx.pool.close(k);
            }
        }
        cx.conn.stream_end(cx.now, cx.lim, true);
        self.log_access(cx);
    }

    /// The body cannot be finished: the client connection closes.
    fn broken(&mut self, cx: &mut Cx<'_>) {
        self.finished = true;
        self.drop_sock(cx);
        cx.conn.stream_end(cx.now, cx.lim, false);
        self.log_access(cx);
    }

    fn fail(&mut self, cx: &mut Cx<'_>, status: u16, why: &str) {
        if !why.is_empty() {
            self.note(cx, format_args!("{why}"));
        }
        self.finished = true;
        self.drop_sock(cx);
        self.status = status;
        self.bytes = cx.answer_error(&Rc::clone(&self.site), status);
        self.log_access(cx);
    }

    fn log_access(&self, cx: &mut Cx<'_>) {
        self.req
            .logged
            .write(cx.heads, &self.site, self.status, self.bytes);
    }
}

impl Task for ProxyTask {
    fn on(&mut self, ev: Event, cx: &mut Cx<'_>) {
        match ev {
            Event::Start => {
                self.connect(cx, true);
                self.step(cx);
            }
            Event::Ready {
                readable, closed, ..
            } => {
                self.may_read |= readable || closed;
                self.step(cx)
            }
            Event::Nudge => self.step(cx),
            Event::Child | Event::Job(_) => {}
        }
    }

    fn end(&mut self, _registry: &Registry) -> Leftover {
        match self.sock.take() {
            Some(k) => Leftover::Upstream(k),
            None => Leftover::None,
        }
    }
}
