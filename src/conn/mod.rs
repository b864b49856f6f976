//! One HTTP/1.x connection as an explicit state machine, free of I/O: bytes come in through
//! [`Conn::read_space`] / [`Conn::on_read`], responses go out through an [`Out`] queue, and
//! time is passed in as `now` (milliseconds on a monotonic clock the caller owns). The driver
//! in [`io`] moves bytes between this and a socket; tests and fuzzers drive it directly.
//!
//! ```text
//!           accept
//!             |
//!             v
//!   +----> ReadHead --(answered without keep-alive; bad head; 408; EOF mid-head)---+
//!   |         |                                                                   |
//!   |   (answered; a small body follows)                                          |
//!   |         v                                                                   v
//!   +----- ReadBody --(body too long or malformed; EOF mid-body)--> Draining or DrainingToLinger
//!  (body read)                                                       flush the output
//!                                                                      |          |
//!                               (DrainingToLinger or unread input,     |          |
//!                                and no EOF)                           v          |
//!                              Linger: shutdown(SHUT_WR), drain input             |
//!                                                                      |          |
//!                                                   (EOF or timeout)   v          |
//!                                                               Closed(reason) <--+
//!                                                              (nothing unread, or EOF)
//! ```
//!
//! A request the service cannot answer at once (a CGI child, an upstream, a job on a helper
//! thread) puts the connection in `Await` ([`pending`]): no further pipelined head is parsed
//! (its bytes stay buffered), the request body is forwarded to a sink or held, and the
//! response is written later by whoever was bound to the connection, complete or streamed.
//!
//! ```text
//!   ReadHead --(Reply::Await)--> Await --(answered, keep-alive)--> ReadHead, or ReadBody
//!                                  |                               (the unread body rest)
//!                                  +--(answered, no keep-alive; 413; 504)--> Draining(ToLinger)
//!                                  +--(client gone; stream broken)--> Closed
//! ```
//!
//! A kept-alive connection stays in `ReadHead` from one request to the next: each complete
//! head is answered at once. Any phase also goes straight to `Closed` on a socket error, a
//! timeout, EOF with nothing left to answer, a file that shrank while being sent, or
//! shutdown while idle. `set_phase` is the one place the phase changes, and debug builds
//! check every transition there against this graph. Socket readiness (`READ_READY`,
//! `WRITE_READY`, `EOF`, `HUP`) is kept apart from the phase: it says what the socket can
//! do, the phase says what the connection wants.
//!
//! The output side is a queue, not a phase: responses to pipelined requests are queued as
//! they are parsed and leave together in one `sendmsg` (or `sendfile` for file bodies), which
//! is what makes a batch of 16 pipelined requests cost one write. Parsing pauses while the
//! queue is above its high-water mark, so a client that pipelines and never reads holds a
//! bounded amount of memory.
//!
//! An idle keep-alive connection gives its buffers back to the [`Pool`] and costs only this
//! struct.

pub mod io;
pub mod memsock;
pub mod out;
mod pending;

use std::net::IpAddr;

use crate::http::body::BodyDecoder;
use crate::http::request::{self, Framing};
use crate::http::response::Persist;
use crate::http::{first_line, HttpError, Method, Request};
pub use out::Out;
use pending::Pending;
pub use pending::{Answer, AnswerBody, Await, BodyUse, Reply, MAX_REDIRECTS};

fn head_limits(lim: &Limits) -> request::HeadLimits {
    request::HeadLimits {
        line: lim.max_request_line,
        field: lim.max_field,
        total: lim.max_head,
    }
}

/// Milliseconds on the caller's monotonic clock.
pub type Millis = u64;

/// Limits and timeouts that shape every connection.
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_timeout: Millis,
    pub keepalive_timeout: Millis,
    pub send_timeout: Millis,
    pub linger_timeout: Millis,
    /// Requests served on one connection before it is closed.
    pub max_requests: u32,
    /// Longest request line (414 past it).
    pub max_request_line: usize,
    /// Longest header field value (431 past it).
    pub max_field: usize,
    /// Largest request head (431 past it); read buffers grow up to this only for heads
    /// that need it.
    pub max_head: usize,
    /// Largest request body accepted (413 past it when declared); bodies of requests that do
    /// not use them are read and thrown away.
    pub max_discard: u64,
    /// Stop parsing pipelined requests while more than this many bytes wait to be written.
    pub out_high_water: u64,
    /// Requests handled per connection per event-loop turn (fairness).
    pub requests_per_turn: u32,
    /// Bytes written per connection per event-loop turn (fairness).
    pub write_budget: usize,
    /// How long a pending request ([`Phase::Await`]) waits for its answer unless whoever
    /// answers sets its own deadline ([`Conn::set_await_deadline`]).
    pub await_timeout: Millis,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: 10_000,
            keepalive_timeout: 5_000,
            send_timeout: 30_000,
            linger_timeout: 5_000,
            max_requests: 10_000,
            max_request_line: 8 * 1024,
            max_field: 16 * 1024,
            max_head: 8 * 1024 + 4 * 16 * 1024,
            max_discard: 64 * 1024,
            out_high_water: 128 * 1024,
            requests_per_turn: 64,
            write_budget: 512 * 1024,
            await_timeout: 60_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (the rest of) a request head.
    ReadHead,
    /// Reading and discarding the body of a request that was answered.
    ReadBody,
    /// The last response is queued; flush it, then close (lingering if unread input shows).
    Draining,
    /// `Draining`, where input that was never read is known to follow (a body not read, a
    /// head that could not be parsed): the close lingers even if the socket shows nothing
    /// more yet. (Two unit variants rather than a `linger` field keep `Phase` one byte and
    /// an idle `Conn` at 48.)
    DrainingToLinger,
    /// The request is answered later, by whatever the server bound to the connection (see
    /// [`pending`]); the request body is forwarded, held or left, the next head waits.
    Await,
    /// Our side is shut down; input is read and dropped until EOF or the deadline, so the
    /// client sees our last response rather than a reset (lighttpd's lingering close).
    Linger,
    Closed(CloseReason),
}

impl Phase {
    /// `Draining`, or `DrainingToLinger` when unread input is known to follow.
    fn draining(linger: bool) -> Phase {
        if linger {
            Phase::DrainingToLinger
        } else {
            Phase::Draining
        }
    }

    /// The last response is queued and the connection closes after it.
    pub fn is_draining(self) -> bool {
        matches!(self, Phase::Draining | Phase::DrainingToLinger)
    }

    /// Whether `self -> next` is an edge of the state graph in the module doc.
    fn may_become(self, next: Phase) -> bool {
        match (self, next) {
            (Phase::Closed(_), _) => false,
            (_, Phase::Closed(_)) => true,
            (Phase::ReadHead, Phase::ReadBody) | (Phase::ReadBody, Phase::ReadHead) => true,
            (Phase::ReadHead, Phase::Await) => true,
            (Phase::Await, Phase::ReadHead | Phase::ReadBody) => true,
            (Phase::ReadHead | Phase::ReadBody | Phase::Await, next) => next.is_draining(),
            (from, Phase::Linger) => from.is_draining(),
            _ => false,
        }
    }
}

/// Why a connection ended; printed in the error log at debug level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The exchange ended normally (no keep-alive, or the client closed between requests).
    Done,
    /// The client closed in the middle of a request.
    ClientClosed,
    /// A socket error such as a reset.
    Io,
    HeadTimeout,
    IdleTimeout,
    BodyTimeout,
    SendTimeout,
    LingerTimeout,
    /// A file shrank while it was being sent: the promised length cannot be delivered.
    FileTruncated,
    Shutdown,
    /// The source of a streamed response failed or timed out after its head was sent: the
    /// close tells the client the body is incomplete.
    StreamBroken,
    /// The request body turned out too long or malformed after the response had begun.
    BodyRefused,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Done => "done",
            CloseReason::ClientClosed => "client closed mid-request",
            CloseReason::Io => "socket error",
            CloseReason::HeadTimeout => "request head timeout",
            CloseReason::IdleTimeout => "keep-alive timeout",
            CloseReason::BodyTimeout => "request body timeout",
            CloseReason::SendTimeout => "send timeout",
            CloseReason::LingerTimeout => "lingering close timeout",
            CloseReason::FileTruncated => "file shrank while being sent",
            CloseReason::Shutdown => "server shutting down",
            CloseReason::StreamBroken => "response stream broken",
            CloseReason::BodyRefused => "request body refused mid-response",
        }
    }
}

/// One request as the handler sees it.
pub struct Exchange<'a> {
    pub req: &'a Request,
    /// The head the request's spans index.
    pub head: &'a [u8],
    /// Keep-alive as decided so far; the handler may turn it off before writing its head.
    pub persist: Persist,
    pub peer: IpAddr,
    pub now: Millis,
    /// The declared body is longer than the connection would read and throw away
    /// (`Limits::max_discard`): a service that will not use the body answers 413.
    pub large_body: bool,
}

/// What turns requests into responses (the handler pipeline implements this).
pub trait Service {
    /// Writes a complete response for `ex` into `out`: head, then body (dropped by `out` for
    /// HEAD), and returns [`Reply::Done`]; or writes nothing and returns [`Reply::Await`]
    /// when the answer comes later (the connection then waits in [`Phase::Await`]).
    fn respond(&mut self, ex: &mut Exchange<'_>, out: &mut Out) -> Reply;
    /// Writes an error response for a request that could not be parsed or timed out.
    /// `line` is the raw request line as far as it was received (for the logs only).
    fn respond_error(&mut self, err: HttpError, line: &[u8], peer: IpAddr, out: &mut Out);
    /// Notes that a connection closed (for the error log at debug level).
    fn closed(&mut self, _reason: CloseReason, _peer: IpAddr) {}
}

/// The buffers of a connection that is doing something. Idle connections hold none.
pub struct Bufs {
    /// The read buffer; its length is its usable size (it grows for large heads).
    rbuf: Vec<u8>,
    /// Unconsumed input is `rbuf[start..end]`.
    start: usize,
    end: usize,
    /// Bytes of the current head (from `start`) already searched for its end.
    scanned: usize,
    body: BodyDecoder,
    body_seen: u64,
    pub out: Out,
    /// The request in [`Phase::Await`].
    pending: Pending,
    /// Decoded request body bytes waiting for the sink: `fwd[fwd_at..]`.
    fwd: Vec<u8>,
    fwd_at: usize,
    /// An internal redirect's request head, to be dispatched next ([`Conn::internal_redirect`]).
    redirect: Vec<u8>,
}

/// Free buffers, reused so that steady-state requests allocate nothing.
pub struct Pool {
    // Boxed so that handing buffers between pool and connection moves one pointer.
    #[allow(clippy::vec_box)]
    free: Vec<Box<Bufs>>,
    rbuf_size: usize,
    keep: usize,
}

impl Pool {
    /// `keep` bounds how many free buffer sets are kept for reuse.
    pub fn new(rbuf_size: usize, keep: usize) -> Pool {
        Pool {
            free: Vec::new(),
            rbuf_size,
            keep,
        }
    }

    fn get(&mut self) -> Box<Bufs> {
        self.free.pop().unwrap_or_else(|| {
            Box::new(Bufs {
                rbuf: vec![0; self.rbuf_size],
                start: 0,
                end: 0,
                scanned: 0,
                body: BodyDecoder::Length(0),
                body_seen: 0,
                out: Out::with_capacity(1024),
                pending: Pending::default(),
                fwd: Vec::new(),
                fwd_at: 0,
                redirect: Vec::new(),
            })
        })
    }

    fn put(&mut self, mut b: Box<Bufs>) {
        if self.free.len() < self.keep {
            b.start = 0;
            b.end = 0;
            b.scanned = 0;
            b.out.clear();
            b.fwd = Vec::new();
            b.fwd_at = 0;
            // Buffers that grew for a big head or listing give the memory back.
            if b.out.buf.capacity() > 64 * 1024 {
                b.out.buf = Vec::with_capacity(1024);
            }
            if b.rbuf.len() > self.rbuf_size {
                b.rbuf.truncate(self.rbuf_size);
                b.rbuf.shrink_to_fit();
            }
            self.free.push(b);
        }
    }

    pub fn free_count(&self) -> usize {
        self.free.len()
    }
}

// Socket readiness, the bits of `Conn::ready`. They record what the socket reported (mio is
// edge-triggered: an event sets a bit, only the call that finds the socket exhausted clears
// it) and decide nothing by themselves: what the connection does next is its `Phase`, and
// `wants_read` / `wants_write` combine the two, like rustls's methods of those names.
/// The socket may hold input: set by a readable event, cleared by `EAGAIN` or a short read.
const READ_READY: u8 = 1;
/// The socket may take output: set by a writable event, cleared by `EAGAIN` or a short write.
const WRITE_READY: u8 = 2;
/// A read returned 0: the peer will send nothing more (phases react in `check_eof`).
const EOF: u8 = 4;
/// The peer's FIN was reported (EPOLLRDHUP): reads go on until they return 0.
const HUP: u8 = 8;

pub struct Conn {
    phase: Phase,
    /// Socket readiness only (`READ_READY`, `WRITE_READY`, `EOF`, `HUP`).
    ready: u8,
    /// The server is shutting down ([`Conn::begin_shutdown`]): no keep-alive after the
    /// request in flight, and the close says so. Neither readiness nor a phase: it changes
    /// the decisions at the end of whichever phase the connection is in (hyper's
    /// `disable_keep_alive`).
    shutting_down: bool,
    served: u32,
    /// Deadline of the input side: head, keep-alive idle, body or linger, by phase.
    t_input: Millis,
    /// Deadline for write progress while output is queued.
    t_send: Millis,
    bufs: Option<Box<Bufs>>,
    peer: IpAddr,
}

/// The client address as tern uses it everywhere (logs, and later access rules,
/// `REMOTE_ADDR`, `X-Forwarded-For`): an IPv4 client of a dual-stack socket arrives as
/// `::ffff:a.b.c.d` and is turned back into `a.b.c.d`, so no rule written for IPv4 can be
/// bypassed by the mapped form. Applied once, at accept.
pub fn peer_ip(addr: std::net::SocketAddr) -> IpAddr {
    addr.ip().to_canonical()
}

impl Conn {
    /// A freshly accepted connection. The first head must arrive within the head timeout.
    pub fn new(peer: IpAddr, now: Millis, lim: &Limits) -> Conn {
        Conn {
            phase: Phase::ReadHead,
            ready: READ_READY | WRITE_READY,
            shutting_down: false,
            served: 0,
            t_input: now + lim.header_timeout,
            t_send: 0,
            bufs: None,
            peer,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    pub fn served(&self) -> u32 {
        self.served
    }

    /// The single place phases change, so transitions can be traced; debug builds (tests
    /// and fuzzers) check each against the graph in the module doc.
    fn set_phase(&mut self, phase: Phase) {
        debug_assert!(
            self.phase.may_become(phase),
            "{:?} -> {phase:?} is not in the state graph",
            self.phase
        );
        self.phase = phase;
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed(_))
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.phase {
            Phase::Closed(r) => Some(r),
            _ => None,
        }
    }

    pub fn holds_buffers(&self) -> bool {
        self.bufs.is_some()
    }

    fn input_len(&self) -> usize {
        self.bufs.as_ref().map_or(0, |b| b.end - b.start)
    }

    pub fn has_output(&self) -> bool {
        self.bufs.as_ref().is_some_and(|b| !b.out.is_empty())
    }

    /// When the connection next needs attention if nothing happens.
    pub fn deadline(&self) -> Millis {
        if self.has_output() {
            self.t_send
        } else {
            self.t_input
        }
    }

    pub fn set_readable(&mut self) {
        self.ready |= READ_READY;
    }

    /// The peer's FIN arrived (EPOLLRDHUP). A short read must not be trusted to have drained
    /// the socket then: the EOF behind the data has no edge of its own.
    pub fn set_read_closed(&mut self) {
        self.ready |= READ_READY | HUP;
    }

    pub fn set_writable(&mut self) {
        self.ready |= WRITE_READY;
    }

    fn is_ready(&self, bit: u8) -> bool {
        self.ready & bit != 0
    }

    /// Whether the driver should read now: the socket may have input and we can take it.
    pub fn wants_read(&self) -> bool {
        self.is_ready(READ_READY)
            && !self.is_ready(EOF)
            && match self.phase {
                Phase::ReadHead | Phase::ReadBody | Phase::Linger => true,
                Phase::Await => self.await_wants_read(),
                _ => false,
            }
    }

    /// Whether the driver should write now.
    pub fn wants_write(&self) -> bool {
        self.is_ready(WRITE_READY) && self.has_output()
    }

    /// Space to read into, taking buffers from the pool if needed. `None` when the buffer is
    /// full of unprocessed input (back-pressure: the output must drain first).
    pub fn read_space(&mut self, pool: &mut Pool, lim: &Limits) -> Option<&mut [u8]> {
        let b = self.bufs.get_or_insert_with(|| pool.get());
        if self.phase == Phase::Linger {
            b.start = 0;
            b.end = 0;
        } else if b.end == b.rbuf.len() && b.start > 0 {
            // Move the unconsumed tail (a partial pipelined head) to the front.
            b.rbuf.copy_within(b.start..b.end, 0);
            b.end -= b.start;
            b.start = 0;
        } else if b.end == b.rbuf.len()
            && self.phase == Phase::ReadHead
            && b.rbuf.len() < lim.max_head
        {
            // One head fills the buffer and may still be valid (`process` checked): grow.
            let grown = (b.rbuf.len() * 2).min(lim.max_head);
            b.rbuf.resize(grown, 0);
        }
        if b.end == b.rbuf.len() {
            None
        } else {
            Some(&mut b.rbuf[b.end..])
        }
    }

    /// `n` bytes were read into the space from [`read_space`](Self::read_space); `short` says
    /// the read returned less than asked, so the socket is drained until its next event.
    pub fn on_read(&mut self, n: usize, short: bool, now: Millis, lim: &Limits) {
        if short && !self.is_ready(HUP) {
            self.ready &= !READ_READY;
        }
        let Some(b) = self.bufs.as_mut() else { return };
        if n == 0 {
            self.ready |= EOF;
            self.ready &= !READ_READY;
            return;
        }
        if self.phase == Phase::ReadHead && b.start == b.end && self.served > 0 {
            // The first byte of a new head on a kept-alive connection starts the head timer.
            self.t_input = now + lim.header_timeout;
        }
        b.end += n;
        if self.phase == Phase::Linger {
            b.start = b.end;
        }
    }

    /// The read would block: the socket is drained until its next readiness event.
    pub fn on_read_blocked(&mut self) {
        self.ready &= !READ_READY;
    }

    /// The peer reset the connection or a socket call failed.
    pub fn on_io_error(&mut self) {
        self.close(CloseReason::Io);
    }

    fn close(&mut self, reason: CloseReason) {
        if let Some(b) = self.bufs.as_mut() {
            b.out.clear();
        }
        self.set_phase(Phase::Closed(reason));
    }

    /// Parses and answers buffered requests, one step of the current phase at a time.
    /// `budget` bounds how many requests are handled this turn. Returns whether anything
    /// changed.
    pub fn process<S: Service>(
        &mut self,
        now: Millis,
        svc: &mut S,
        lim: &Limits,
        budget: &mut u32,
    ) -> bool {
        let Some(mut b) = self.bufs.take() else {
            return self.check_eof();
        };
        let mut changed = false;
        while match self.phase {
            Phase::ReadBody => self.discard_body(&mut b, now, lim),
            Phase::ReadHead => self.next_head(&mut b, now, svc, lim, budget),
            Phase::Await => {
                self.pump_body(&mut b, now, svc) || self.run_redirect(&mut b, now, svc, lim)
            }
            _ => false,
        } {
            changed = true;
        }
        self.bufs = Some(b);
        self.check_eof() || changed
    }

    /// `ReadBody`: decodes and drops the body bytes buffered so far; ends the phase when the
    /// body is complete, or closes after the response when it is too long or malformed.
    /// Returns false when there is nothing to decode (wait for input).
    fn discard_body(&mut self, b: &mut Bufs, now: Millis, lim: &Limits) -> bool {
        if b.start == b.end {
            return false;
        }
        let mut seen = 0u64;
        let res = b
            .body
            .decode(&b.rbuf[b.start..b.end], &mut |d| seen += d.len() as u64);
        match res {
            Ok((n, done)) => {
                b.start += n;
                b.body_seen += seen;
                if b.body_seen > lim.max_discard {
                    // Too much to throw away: close after the response instead.
                    self.set_phase(Phase::DrainingToLinger);
                } else if done {
                    self.set_phase(Phase::ReadHead);
                    self.t_input = now + lim.header_timeout;
                } else {
                    // A body that keeps arriving keeps the connection alive.
                    self.t_input = now + lim.header_timeout;
                }
            }
            Err(_) => self.set_phase(Phase::DrainingToLinger),
        }
        true
    }

    /// `ReadHead`: answers the next complete head, or fails one that can no longer become
    /// valid. Returns false when it must wait: for more input, for the output to drain below
    /// its high-water mark, or for the next turn's request budget.
    fn next_head<S: Service>(
        &mut self,
        b: &mut Bufs,
        now: Millis,
        svc: &mut S,
        lim: &Limits,
        budget: &mut u32,
    ) -> bool {
        if *budget == 0 || b.out.queued() > lim.out_high_water {
            return false;
        }
        if b.scanned == 0 {
            // RFC 9112 §2.2: ignore empty lines before a request line.
            b.start += request::leading_empty_lines(&b.rbuf[b.start..b.end]);
        }
        if b.start == b.end {
            b.start = 0;
            b.end = 0;
            return false;
        }
        let pending = &b.rbuf[b.start..b.end];
        match request::find_head_end(pending, &mut b.scanned) {
            Some(len) => {
                *budget -= 1;
                self.dispatch(b, len, now, svc, lim);
                true
            }
            // An incomplete head fills the whole buffer: fail it now if it is already too
            // large, otherwise the buffer grows when read next.
            None if pending.len() == b.rbuf.len() => {
                match request::incomplete_error(pending, head_limits(lim)) {
                    Some(err) => {
                        self.fail(b, err, svc, true);
                        true
                    }
                    None => false,
                }
            }
            None => false,
        }
    }

    /// Parses one complete head of `len` bytes at the front of the input and answers it.
    fn dispatch<S: Service>(
        &mut self,
        b: &mut Bufs,
        len: usize,
        now: Millis,
        svc: &mut S,
        lim: &Limits,
    ) {
        let head = &b.rbuf[b.start..b.start + len];
        if request::request_line_len(head) > lim.max_request_line {
            return self.fail(b, request::long_line_error(head), svc, true);
        }
        let req = match request::parse(head, lim.max_field) {
            Ok(req) => req,
            Err(err) => return self.fail(b, err, svc, true),
        };
        // Like nginx's client_max_body_size, a body too long to throw away is refused before
        // any of it is read, unless the service uses it: it says 413 itself, or forwards it.
        let large_body = matches!(req.framing, Framing::Length(n) if n > lim.max_discard);
        let mut keep_alive =
            req.wants_keep_alive() && self.served + 1 < lim.max_requests && !self.shutting_down;
        // A body is read and dropped if it is small and the client is not waiting for a
        // 100 Continue; otherwise the connection closes after the response (RFC 9112 §9.6
        // lingering close), so body bytes are never mistaken for a request.
        let body = match req.framing {
            Framing::None | Framing::Length(0) => None,
            _ if req.expect_continue || large_body => None,
            Framing::Length(n) => Some(BodyDecoder::Length(n)),
            Framing::Chunked => Some(BodyDecoder::chunked()),
        };
        let linger = req.has_body() && body.is_none();
        // A pending request decides about its body later (see `enter_await`).
        let await_keep_alive = keep_alive;
        keep_alive &= !linger;
        let was_empty = b.out.is_empty();
        let mut ex = Exchange {
            req: &req,
            head,
            persist: Persist {
                keep_alive,
                version: req.version,
            },
            peer: self.peer,
            now,
            large_body,
        };
        b.out.begin(req.method == Method::Head);
        let reply = svc.respond(&mut ex, &mut b.out);
        b.out.seal();
        b.out.begin(false);
        if let Reply::Await(how) = reply {
            let persist = Persist {
                keep_alive: await_keep_alive,
                version: req.version,
            };
            let head_only = req.method == Method::Head;
            return self.enter_await(b, len, &req, how, persist, head_only, now, lim, svc);
        }
        let keep_alive = ex.persist.keep_alive;
        if was_empty {
            self.t_send = now + lim.send_timeout;
        }
        self.served += 1;
        b.start += len;
        b.scanned = 0;
        if !keep_alive {
            self.set_phase(Phase::draining(linger));
        } else if let Some(decoder) = body {
            b.body = decoder;
            b.body_seen = 0;
            self.t_input = now + lim.header_timeout;
            self.set_phase(Phase::ReadBody);
        } else if b.start < b.end {
            // The next pipelined head has begun.
            self.t_input = now + lim.header_timeout;
        }
    }

    /// Answers a request that cannot be served and closes after the answer: after a parse
    /// error the framing of whatever follows is unknown (RFC 9112 §9.6). `linger` picks
    /// [`Phase::DrainingToLinger`].
    fn fail<S: Service>(&mut self, b: &mut Bufs, err: HttpError, svc: &mut S, linger: bool) {
        // At most 8 KiB of the line goes to the logs.
        let pending = &b.rbuf[b.start..b.end.min(b.start + 8192)];
        let line = first_line(pending);
        b.out.begin(false);
        svc.respond_error(err, line, self.peer, &mut b.out);
        b.out.seal();
        b.start = b.end;
        b.scanned = 0;
        self.set_phase(Phase::draining(linger));
    }

    /// Applies an EOF seen by the last read. Returns whether the phase changed.
    fn check_eof(&mut self) -> bool {
        if !self.is_ready(EOF) {
            return false;
        }
        let input = self.input_len();
        match self.phase {
            Phase::ReadHead if input == 0 => {
                // Half-closed between requests: finish what is queued, then close.
                if self.has_output() {
                    self.set_phase(Phase::Draining);
                } else {
                    self.close(CloseReason::Done);
                }
            }
            Phase::ReadHead | Phase::ReadBody => {
                // The client stopped in the middle of a request: it cannot be answered.
                if self.has_output() {
                    self.set_phase(Phase::Draining);
                } else {
                    self.close(CloseReason::ClientClosed);
                }
            }
            Phase::Linger => self.close(CloseReason::Done),
            // Like nginx (without proxy_ignore_client_abort): a client that stops sending
            // while its answer is pending has given up; whatever was bound to it is released.
            Phase::Await => self.close(CloseReason::ClientClosed),
            _ => return false,
        }
        true
    }

    /// Called by the driver when `n` bytes of output were written.
    pub fn on_written(&mut self, now: Millis, lim: &Limits) {
        self.t_send = now + lim.send_timeout;
    }

    /// Called by the driver when the output queue became empty. Returns true if the driver
    /// must now shut down the write side (entering the lingering close).
    pub fn on_drained(&mut self, now: Millis, lim: &Limits) -> bool {
        match self.phase {
            Phase::Draining | Phase::DrainingToLinger => {
                let unread = self.phase == Phase::DrainingToLinger
                    || self.input_len() > 0
                    || self.is_ready(READ_READY);
                if !self.is_ready(EOF) && unread {
                    self.t_input = now + lim.linger_timeout;
                    self.set_phase(Phase::Linger);
                    return true;
                }
                let reason = if self.shutting_down {
                    CloseReason::Shutdown
                } else {
                    CloseReason::Done
                };
                self.close(reason);
            }
            Phase::ReadHead if self.input_len() == 0 => {
                if self.shutting_down {
                    self.close(CloseReason::Shutdown);
                } else {
                    self.t_input = now + lim.keepalive_timeout;
                }
            }
            _ => {}
        }
        false
    }

    /// The write side could not take more (`EAGAIN` or a short write).
    pub fn on_write_blocked(&mut self) {
        self.ready &= !WRITE_READY;
    }

    /// Gives the buffers back to the pool while the connection is idle.
    pub fn release_if_idle(&mut self, pool: &mut Pool) {
        let idle = match &self.bufs {
            Some(b) => {
                b.start == b.end
                    && b.out.is_empty()
                    && !matches!(self.phase, Phase::ReadBody | Phase::Await)
            }
            None => false,
        };
        if idle || self.is_closed() {
            if let Some(b) = self.bufs.take() {
                pool.put(b);
            }
        }
    }

    /// The deadline passed: decide what that means for the current phase.
    pub fn on_timeout<S: Service>(&mut self, now: Millis, svc: &mut S, lim: &Limits) {
        if now < self.deadline() {
            return;
        }
        if self.has_output() {
            return self.close(CloseReason::SendTimeout);
        }
        match self.phase {
            Phase::ReadHead if self.input_len() > 0 => {
                // RFC 9110 §15.5.9: say 408 and close. A slow client gets little more time
                // to read it, and no lingering close.
                if let Some(mut b) = self.bufs.take() {
                    self.fail(&mut b, HttpError::Timeout, svc, false);
                    self.bufs = Some(b);
                }
                self.t_send = now + lim.linger_timeout.min(1_000);
            }
            Phase::ReadHead if self.served == 0 => self.close(CloseReason::HeadTimeout),
            Phase::ReadHead => self.close(CloseReason::IdleTimeout),
            Phase::ReadBody => self.close(CloseReason::BodyTimeout),
            Phase::Linger => self.close(CloseReason::LingerTimeout),
            Phase::Await => self.await_timed_out(now, svc, lim),
            Phase::Draining | Phase::DrainingToLinger => self.close(CloseReason::SendTimeout),
            Phase::Closed(_) => {}
        }
    }

    /// Graceful shutdown: idle connections close now, busy ones after their current response.
    pub fn begin_shutdown(&mut self) {
        self.shutting_down = true;
        if self.phase == Phase::ReadHead && self.input_len() == 0 && !self.has_output() {
            self.close(CloseReason::Shutdown);
        }
    }

    /// Whether the connection is between requests with nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::ReadHead && self.input_len() == 0 && !self.has_output()
    }

    /// The output queue, if buffers are held (for the driver).
    pub fn out_mut(&mut self) -> Option<&mut Out> {
        self.bufs.as_mut().map(|b| &mut b.out)
    }

    pub fn file_truncated(&mut self) {
        self.close(CloseReason::FileTruncated);
    }
}

#[cfg(test)]
mod tests;
