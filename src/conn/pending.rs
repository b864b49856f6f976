//! Requests answered later ([`Phase::Await`]): what the connection keeps while it waits, the
//! request body on its way to a sink, and the response written when the answer comes,
//! complete or streamed. Still no I/O: whoever answers (a CGI child, an upstream, a job on a
//! helper thread, all bound to the connection by the server) calls these methods, and the
//! driver moves the bytes as for any response.
//!
//! The body side is pull-based with back-pressure: body bytes are decoded (Content-Length or
//! chunked, by the same [`BodyDecoder`] as discarded bodies) into a staging buffer of at most
//! [`FWD_MAX`] bytes; the sink takes what it can ([`Conn::body_data`] then
//! [`Conn::body_taken`]). A full staging buffer stops decoding, a full read buffer stops
//! reading, and the client's window closes: nothing is ever buffered whole. `Hold` pauses
//! the body without reading any of it, and `100 Continue` goes out only once the body is
//! wanted ([`Conn::set_body`]).
//!
//! The response side: [`Conn::answer`] writes the head (and a complete body, or the start of
//! a streamed one); [`Conn::stream_data`] adds pieces as the source produces them, framed
//! `Transfer-Encoding: chunked` for HTTP/1.1 and close-delimited for HTTP/1.0 unless the
//! source gave a length; [`Conn::stream_room`] says how much more the queue takes before the
//! source should pause; [`Conn::stream_end`] finishes (or, on failure, closes so the client
//! cannot take a truncated body for a whole one).
use super::{Bufs, CloseReason, Conn, Limits, Millis, Phase, Service};
use crate::http::body::{chunk_frame, BodyDecoder, LAST_CHUNK};
use crate::http::request::Framing;
use crate::http::response::Persist;
use crate::http::{HttpError, Request, Version};

/// Decoded body bytes staged for the sink at most (the read buffer holds more, undecoded).
pub const FWD_MAX: usize = 64 * 1024;

/// What the service answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The response is complete in the queue.
    Done,
    /// Nothing is written yet: the answer comes later.
    Await(Await),
}

/// How a pending request treats its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Await {
    pub body: BodyUse,
    /// Longer bodies get 413 (declared: at once; received: when they pass it).
    pub max_body: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BodyUse {
    /// Not read while waiting; after the answer it is thrown away if small, else the
    /// connection closes (lingering), as for any response.
    #[default]
    Discard,
    /// Decoded and staged for the sink as it arrives (`100 Continue` sent first if asked).
    Forward,
    /// Wanted, but not yet: nothing is read and no `100 Continue` sent until `Forward`.
    Hold,
}

/// How the answer's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerBody {
    /// The writer queues the whole response (with its own `Content-Length`).
    Complete,
    /// Pieces follow through [`Conn::stream_data`]; `Some(n)`: the source said `n` bytes
    /// (the writer sends that `Content-Length`), `None`: unknown, chunked or close-delimited.
    Stream(Option<u64>),
    /// A `101 Switching Protocols`: from here on the connection is a two-way byte tunnel.
    /// Bytes from the client (those already buffered first) come through
    /// [`Conn::body_data`], bytes for it go through [`Conn::stream_data`] as they are;
    /// [`Conn::stream_end`] (or the client's EOF) ends it and the connection closes.
    Tunnel,
}

/// What the writer of a late answer gets.
pub struct Answer<'a> {
    pub out: &'a mut super::Out,
    /// Keep-alive as decided for this response: pass it to the head writer.
    pub persist: Persist,
    /// The writer must add `Transfer-Encoding: chunked` to the head.
    pub chunked: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Stream {
    /// Nothing of the response is queued yet.
    #[default]
    NotStarted,
    /// Body pieces go out as they are (close-delimited or counted down from a length).
    Raw {
        left: Option<u64>,
    },
    Chunked,
}

/// The state of a request in `Await` (kept in the connection's buffers, so an idle
/// connection stays small).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    persist: Persist,
    head_only: bool,
    body: BodyUse,
    /// Body bytes follow the head that are not all decoded yet (in `Bufs::body`).
    body_left: bool,
    /// `100 Continue` is expected and not sent yet.
    expect: bool,
    max_body: u64,
    stream: Stream,
    /// Where the head of the pending request starts in the read buffer, and its length
    /// (for [`Conn::restart`]).
    head_at: usize,
    head_len: usize,
    /// After an internal redirect the body is not the new target's: it sees none.
    detached: bool,
    redirects: u8,
}

/// Internal redirects one request may go through (RFC 3875 §6.2.2 local redirects).
pub const MAX_REDIRECTS: u8 = 10;

impl Default for Pending {
    fn default() -> Pending {
        Pending {
            persist: Persist {
                keep_alive: false,
                version: Version::Http11,
            },
            head_only: false,
            body: BodyUse::Discard,
            body_left: false,
            expect: false,
            max_body: 0,
            stream: Stream::NotStarted,
            head_at: 0,
            head_len: 0,
            detached: false,
            redirects: 0,
        }
    }
}

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Conn {
    /// `dispatch` got [`Reply::Await`] for the head of `len` bytes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enter_await<S: Service>(
        &mut self,
        b: &mut Bufs,
        len: usize,
        req: &Request,
        how: Await,
        persist: Persist,
        head_only: bool,
        now: Millis,
        lim: &Limits,
        svc: &mut S,
    ) {
        self.served += 1;
        b.start += len;
        b.scanned = 0;
        b.fwd.clear();
        b.fwd_at = 0;
        b.body_seen = 0;
        let body_left = req.has_body();
        b.body = match req.framing {
            Framing::Chunked => BodyDecoder::chunked(),
            Framing::Length(n) => BodyDecoder::Length(n),
            Framing::None => BodyDecoder::Length(0),
        };
        b.pending = Pending {
            persist,
            head_only,
            body: how.body,
            body_left,
            expect: body_left && req.expect_continue && req.version == Version::Http11,
            max_body: how.max_body,
            stream: Stream::NotStarted,
            head_at: b.start - len,
            head_len: len,
            detached: false,
            redirects: 0,
        };
        b.redirect.clear();
        self.t_input = now + lim.await_timeout;
        self.set_phase(Phase::Await);
        if how.body != BodyUse::Discard {
            if let Framing::Length(n) = req.framing {
                if n > how.max_body {
                    // Declared too long: 413 before reading any of it (and no 100 Continue).
                    return self.fail(b, HttpError::PayloadTooLarge, svc, true);
                }
            }
        }
        if how.body == BodyUse::Forward {
            self.send_continue(b, now, lim);
        }
    }

    fn send_continue(&mut self, b: &mut Bufs, now: Millis, lim: &Limits) {
        if b.pending.expect {
            b.pending.expect = false;
            if b.out.is_empty() {
                self.t_send = now + lim.send_timeout;
            }
            b.out.push_bytes(CONTINUE);
        }
    }

    /// Answers the pending request with the response to `head` instead: a request head
    /// (`GET /path HTTP/1.1\r\nHost: h\r\n\r\n`) routed and checked like any request, as
    /// for a CGI script's local `Location`. The original body is not passed on (the new
    /// target sees none; the rest is thrown away or the connection closes after). Returns
    /// false when the answer has begun, or past [`MAX_REDIRECTS`] (the caller answers 500).
    pub fn internal_redirect(&mut self, head: Vec<u8>) -> bool {
        if self.phase != Phase::Await {
            return false;
        }
        let Some(b) = self.bufs.as_mut() else {
            return false;
        };
        let p = &mut b.pending;
        if p.stream != Stream::NotStarted || p.redirects >= MAX_REDIRECTS {
            return false;
        }
        p.redirects += 1;
        p.detached = true;
        b.fwd.clear();
        b.fwd_at = 0;
        b.redirect = head;
        true
    }

    /// `Await` with an internal redirect queued: dispatches it like a request head.
    pub(super) fn run_redirect<S: Service>(
        &mut self,
        b: &mut Bufs,
        now: Millis,
        svc: &mut S,
        lim: &Limits,
    ) -> bool {
        if b.redirect.is_empty() {
            return false;
        }
        let head = std::mem::take(&mut b.redirect);
        let req = match crate::http::request::parse(&head, lim.max_field) {
            Ok(r) => r,
            Err(e) => {
                let linger = b.pending.body_left;
                self.fail(b, e, svc, linger);
                return true;
            }
        };
        let p = &mut b.pending;
        p.persist.keep_alive &= !(self.shutting_down || p.body_left && p.expect);
        let mut ex = super::Exchange {
            req: &req,
            head: &head,
            persist: p.persist,
            peer: self.peer,
            now,
            large_body: false,
            transport: self.transport,
        };
        b.out.begin(p.head_only);
        let reply = svc.respond(&mut ex, &mut b.out);
        b.out.seal();
        b.out.begin(false);
        match reply {
            Reply::Done => {
                b.pending.persist = ex.persist;
                b.pending.stream = Stream::Raw { left: Some(0) };
                self.finish(b, now, lim);
            }
            Reply::Await(how) => {
                // Another late answer (a script): its task replaces the old one.
                b.pending.body = BodyUse::Discard;
                b.pending.max_body = how.max_body;
                self.t_input = now + lim.await_timeout;
            }
        }
        true
    }

    pub(super) fn await_wants_read(&self) -> bool {
        // A FIN reported while waiting is read, so a client that left is noticed.
        if self.is_ready(super::HUP) {
            return true;
        }
        self.bufs.as_ref().is_some_and(|b| {
            let p = &b.pending;
            let staged = b.fwd.len() - b.fwd_at;
            p.body_left && p.body == BodyUse::Forward && !p.detached && staged < FWD_MAX
        })
    }

    /// `Await`: decodes buffered body bytes into the staging buffer, as far as it has room.
    /// Returns whether anything changed.
    pub(super) fn pump_body<S: Service>(
        &mut self,
        b: &mut Bufs,
        _now: Millis,
        svc: &mut S,
    ) -> bool {
        let p = b.pending;
        if !p.body_left || p.body != BodyUse::Forward || p.detached || b.start == b.end {
            return false;
        }
        if b.fwd_at > 0 {
            b.fwd.drain(..b.fwd_at);
            b.fwd_at = 0;
        }
        let room = FWD_MAX.saturating_sub(b.fwd.len());
        if room == 0 {
            return false;
        }
        // Decoded bytes never outnumber the input they came from, so this fits the room.
        let take = room.min(b.end - b.start);
        let fwd = &mut b.fwd;
        let before = fwd.len();
        let res = b.body.decode(&b.rbuf[b.start..b.start + take], &mut |d| {
            fwd.extend_from_slice(d)
        });
        match res {
            Ok((n, done)) => {
                b.start += n;
                b.body_seen += (b.fwd.len() - before) as u64;
                if b.body_seen > p.max_body {
                    self.refuse_body(b, HttpError::PayloadTooLarge, svc);
                } else if done {
                    b.pending.body_left = false;
                }
            }
            Err(e) => self.refuse_body(b, e, svc),
        }
        true
    }

    /// The body passed `max_body` or broke its framing: 413/400 if nothing was answered yet
    /// (then a lingering close), else the connection just closes.
    fn refuse_body<S: Service>(&mut self, b: &mut Bufs, err: HttpError, svc: &mut S) {
        b.fwd.clear();
        b.fwd_at = 0;
        if b.pending.stream == Stream::NotStarted {
            self.fail(b, err, svc, true);
        } else {
            self.bufs_close(b, CloseReason::BodyRefused);
        }
    }

    /// `close` for a connection whose buffers are taken out (inside `process`).
    fn bufs_close(&mut self, b: &mut Bufs, reason: CloseReason) {
        b.out.clear();
        self.set_phase(Phase::Closed(reason));
    }

    /// The await deadline passed: 504 if nothing was answered yet, else close (the
    /// stream cannot be finished). When the wait was for the client, a forwarded body that
    /// stopped arriving while its sink had taken all of it, the client is the one too slow:
    /// 408, as nginx's `client_body_timeout` answers.
    pub(super) fn await_timed_out<S: Service>(&mut self, now: Millis, svc: &mut S, lim: &Limits) {
        let Some(mut b) = self.bufs.take() else {
            return self.close(CloseReason::StreamBroken);
        };
        if b.pending.stream == Stream::NotStarted {
            let p = &b.pending;
            let linger = p.body_left;
            let client_stalled =
                p.body == BodyUse::Forward && p.body_left && b.fwd_at == b.fwd.len();
            let err = if client_stalled {
                HttpError::BodyTimeout
            } else {
                HttpError::GatewayTimeout
            };
            self.fail(&mut b, err, svc, linger);
            self.t_send = now + lim.send_timeout;
        } else {
            self.bufs_close(&mut b, CloseReason::StreamBroken);
        }
        self.bufs = Some(b);
    }

    /// Takes the pending request back as if it had not been parsed yet: the connection
    /// returns to `ReadHead` and serves the same head again on its next turn. For a check
    /// that had to run off the loop before the request could be routed (a password hash):
    /// its verdict is remembered, so the second time the request goes on at once. Only
    /// while nothing is answered and the body is untouched (`Hold`/`Discard`, none taken)
    /// and the head is still where it was, and not after an internal redirect (whose head
    /// is not in the read buffer); `false` otherwise (then redirect to a copy of the head,
    /// or answer).
    pub fn restart(&mut self, now: Millis, lim: &Limits) -> bool {
        if self.phase != Phase::Await {
            return false;
        }
        let Some(b) = self.bufs.as_mut() else {
            return false;
        };
        let p = &b.pending;
        let untouched = p.stream == Stream::NotStarted
            && p.body != BodyUse::Forward
            && b.body_seen == 0
            && !p.detached
            && p.redirects == 0
            && p.head_len > 0
            && b.start == p.head_at + p.head_len;
        if !untouched {
            return false;
        }
        b.start = p.head_at;
        b.scanned = 0;
        b.pending = Pending::default();
        self.served = self.served.saturating_sub(1);
        self.t_input = now + lim.header_timeout;
        self.set_phase(Phase::ReadHead);
        true
    }

    /// Whether the connection waits for a late answer (and may have a sink or source bound).
    pub fn is_awaiting(&self) -> bool {
        self.phase == Phase::Await
    }

    /// Sets the deadline of the pending request (e.g. now + cgi_timeout, renewed whenever the
    /// child makes progress). While output is queued the send deadline applies instead.
    pub fn set_await_deadline(&mut self, at: Millis) {
        if self.phase == Phase::Await {
            self.t_input = at;
        }
    }

    /// Decoded request body bytes waiting for the sink (empty when none, or not yet read).
    pub fn body_data(&self) -> &[u8] {
        match &self.bufs {
            Some(b) if self.phase == Phase::Await => &b.fwd[b.fwd_at..],
            _ => &[],
        }
    }

    /// The sink took the first `n` bytes of [`body_data`](Self::body_data). The caller then
    /// drives the connection again: there may be room to decode and read more.
    pub fn body_taken(&mut self, n: usize) {
        if let Some(b) = self.bufs.as_mut() {
            b.fwd_at = (b.fwd_at + n).min(b.fwd.len());
            if b.fwd_at == b.fwd.len() {
                // All taken: the whole staging room is free again (reading may resume
                // even when no undecoded input is left to trigger the compaction).
                b.fwd.clear();
                b.fwd_at = 0;
            }
        }
    }

    /// Every byte of the request body has been handed to the sink (true without a body):
    /// the sink may see its end (close a child's stdin).
    pub fn body_finished(&self) -> bool {
        match &self.bufs {
            Some(b) if self.phase == Phase::Await => {
                b.pending.detached || !b.pending.body_left && b.fwd_at == b.fwd.len()
            }
            _ => false,
        }
    }

    /// A mark that changes whenever a task gave the connection something to do: output
    /// queued, body bytes taken, the phase. The server drives the connection again only
    /// then (never in a loop of nudges that change nothing).
    pub fn progress_mark(&self) -> (u64, u64, Phase, BodyUse, u8) {
        let (queued, taken, body, redirects) =
            self.bufs.as_ref().map_or((0, 0, BodyUse::Discard, 0), |b| {
                let staged = (b.fwd.len() - b.fwd_at) as u64;
                let taken = b.body_seen.saturating_sub(staged);
                (b.out.queued(), taken, b.pending.body, b.pending.redirects)
            });
        (queued, taken, self.phase, body, redirects)
    }

    /// Request body bytes decoded so far.
    pub fn body_received(&self) -> u64 {
        self.bufs.as_ref().map_or(0, |b| b.body_seen)
    }

    /// Switches how the pending body is used: `Hold` pauses it, `Forward` (re)starts it and
    /// sends `100 Continue` if the client waits for one. Call [`drive`](super::io::drive)
    /// after.
    pub fn set_body(&mut self, usage: BodyUse, now: Millis, lim: &Limits) {
        if self.phase != Phase::Await {
            return;
        }
        let Some(mut b) = self.bufs.take() else {
            return;
        };
        b.pending.body = usage;
        if usage == BodyUse::Forward {
            self.send_continue(&mut b, now, lim);
        }
        self.bufs = Some(b);
    }

    /// Whether the response head of the pending request has been queued.
    pub fn answer_started(&self) -> bool {
        self.bufs
            .as_ref()
            .is_some_and(|b| b.pending.stream != Stream::NotStarted)
    }

    /// Writes the answer to the pending request: `write` queues the head built with the
    /// given [`Answer::persist`] (adding `Transfer-Encoding: chunked` when told) and, for
    /// [`AnswerBody::Complete`], the whole body. A complete answer ends the wait; a stream
    /// continues with [`stream_data`](Self::stream_data). Does nothing unless awaiting with
    /// nothing answered.
    pub fn answer(
        &mut self,
        now: Millis,
        lim: &Limits,
        body: AnswerBody,
        write: impl FnOnce(&mut Answer<'_>),
    ) {
        if self.phase != Phase::Await {
            return;
        }
        let Some(mut b) = self.bufs.take() else {
            return;
        };
        if b.pending.stream != Stream::NotStarted {
            self.bufs = Some(b);
            return;
        }
        let p = &mut b.pending;
        // A body never asked for (100 Continue not sent) may still come: close after.
        p.persist.keep_alive &= !(self.shutting_down || p.body_left && p.expect);
        let (stream, chunked) = match body {
            AnswerBody::Tunnel => {
                p.persist.keep_alive = false;
                // Every further client byte is tunnel data: a body without end.
                b.body = BodyDecoder::Length(u64::MAX);
                p.body_left = true;
                p.body = BodyUse::Forward;
                p.max_body = u64::MAX;
                p.detached = false;
                b.body_seen = 0;
                (Stream::Raw { left: None }, false)
            }
            AnswerBody::Complete => (Stream::Raw { left: Some(0) }, false),
            AnswerBody::Stream(Some(n)) => (Stream::Raw { left: Some(n) }, false),
            AnswerBody::Stream(None) if p.persist.version == Version::Http11 => {
                (Stream::Chunked, true)
            }
            AnswerBody::Stream(None) => {
                // HTTP/1.0: the end of the body is the end of the connection.
                p.persist.keep_alive = false;
                (Stream::Raw { left: None }, false)
            }
        };
        p.stream = stream;
        let mut writer_persist = p.persist;
        if body == AnswerBody::Tunnel {
            // The writer's head says `Connection: upgrade`, not close; the connection still
            // never returns to HTTP.
            writer_persist.keep_alive = true;
        }
        if b.out.is_empty() {
            self.t_send = now + lim.send_timeout;
        }
        b.out.begin(p.head_only);
        let mut a = Answer {
            out: &mut b.out,
            persist: writer_persist,
            chunked,
        };
        write(&mut a);
        b.out.seal();
        if body == AnswerBody::Complete {
            b.out.begin(false);
            self.finish(&mut b, now, lim);
        }
        self.bufs = Some(b);
    }

    /// How many more body bytes the queue takes before the source should pause (it is
    /// asked again after the connection writes).
    pub fn stream_room(&self, lim: &Limits) -> usize {
        match &self.bufs {
            Some(b) if self.phase == Phase::Await && b.pending.stream != Stream::NotStarted => {
                lim.out_high_water.saturating_sub(b.out.queued()) as usize
            }
            _ => 0,
        }
    }

    /// Queues a piece of the streamed body (framed as the answer said). Bytes past a
    /// length the source declared are dropped.
    pub fn stream_data(&mut self, data: &[u8]) {
        if self.phase != Phase::Await || data.is_empty() {
            return;
        }
        let Some(b) = self.bufs.as_mut() else { return };
        match &mut b.pending.stream {
            Stream::NotStarted => {}
            Stream::Chunked => b.out.push_owned(chunk_frame(data)),
            Stream::Raw { left: None } => b.out.push_owned(data.to_vec()),
            Stream::Raw { left: Some(left) } => {
                let n = (*left).min(data.len() as u64) as usize;
                *left -= n as u64;
                b.out.push_owned(data[..n].to_vec());
            }
        }
    }

    /// The source ended. `complete`: it ended where it should (EOF of a child's stdout, the
    /// end of an upstream's framed body), so the body is finished and the connection goes
    /// on as after any response. Otherwise (or when a declared length was not reached) what
    /// is queued is flushed and the connection closed without finishing the body.
    pub fn stream_end(&mut self, now: Millis, lim: &Limits, complete: bool) {
        if self.phase != Phase::Await {
            return;
        }
        let Some(mut b) = self.bufs.take() else {
            return;
        };
        let whole = match b.pending.stream {
            Stream::NotStarted => {
                self.bufs = Some(b);
                return;
            }
            Stream::Chunked => {
                if complete {
                    b.out.push_bytes(LAST_CHUNK);
                }
                complete
            }
            Stream::Raw { left: None } => {
                // Close-delimited: the close is the end either way.
                b.pending.persist.keep_alive = false;
                complete
            }
            Stream::Raw { left: Some(n) } => complete && n == 0,
        };
        b.out.begin(false);
        if whole {
            self.finish(&mut b, now, lim);
        } else {
            // What came is flushed, then the connection closes: a chunked body without its
            // last chunk, or one short of its length, tells the client it is incomplete (a
            // close-delimited one cannot say so).
            self.stream_broken = true;
            self.set_phase(Phase::Draining);
        }
        self.bufs = Some(b);
    }

    /// The answer is complete: on to the next request, the unread body's rest, or the close.
    fn finish(&mut self, b: &mut Bufs, now: Millis, lim: &Limits) {
        let p = b.pending;
        b.fwd.clear();
        b.fwd_at = 0;
        let keep_alive = p.persist.keep_alive && !self.is_ready(super::EOF);
        if !keep_alive {
            return self.set_phase(Phase::draining(p.body_left));
        }
        if p.body_left {
            // The rest of the body is read and thrown away (up to max_discard), as for a
            // body nobody asked for; its decoder goes on where forwarding stopped.
            b.body_seen = 0;
            self.t_input = now + lim.header_timeout;
            return self.set_phase(Phase::ReadBody);
        }
        self.t_input = now + lim.header_timeout;
        self.set_phase(Phase::ReadHead);
    }
}
