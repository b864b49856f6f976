//! The seam for content that is not a file: a [`Task`] is what the server binds to a
//! connection whose request is pending ([`Phase::Await`](crate::conn::Phase::Await)) — a CGI
//! child, an upstream connection, a store write waiting for its fsync. The handler creates
//! it (and answers [`Reply::Await`](crate::conn::Reply::Await)); the server puts it in its
//! second slab, gives its descriptors tokens of their own, and calls [`Task::on`] whenever
//! something concerns it. The task moves bytes between its descriptors and the connection
//! through the connection's sans-IO methods (`body_data`/`body_taken` for the request body,
//! `answer`/`stream_data`/`stream_end` for the response) and never blocks: blocking work is
//! posted to a helper thread ([`Cx::post`]) and comes back as [`Event::Job`].
//!
//! A task is unbound — [`Task::end`] called, its descriptors closed — in one place
//! (`Server::unbind`), when the connection stops awaiting (answered, refused, timed out) or
//! closes, whichever comes first.
use std::any::Any;
use std::rc::Rc;

use mio::{Registry, Token};

use crate::conn::{AnswerBody, Conn, Limits, Millis, Out};
use crate::handler::Site;
use crate::http::response::Persist;
use crate::log::{Access, Level};
use crate::server::jobs::Jobs;

/// Descriptors one task may register (tokens `base + 0 .. base + MAX_FDS`).
pub const MAX_FDS: usize = 4;

pub mod cgi;
pub mod proxy;

/// What happened that concerns a task.
pub enum Event {
    /// Just bound to its connection: register descriptors, start.
    Start,
    /// Its descriptor number `fd` (as registered with [`Cx::token`]) is ready.
    Ready {
        fd: usize,
        readable: bool,
        writable: bool,
        /// The other end closed (EPOLLHUP/RDHUP) or the descriptor has an error.
        closed: bool,
    },
    /// The connection moved on (it wrote output, or staged more body): try again.
    Nudge,
    /// SIGCHLD arrived: a child may have exited.
    Child,
    /// A job posted with [`Cx::post`] finished.
    Job(Box<dyn Any + Send>),
}

/// Everything a task may touch while it handles an event.
pub struct Cx<'a> {
    pub conn: &'a mut Conn,
    pub lim: &'a Limits,
    pub now: Millis,
    pub heads: &'a mut dyn Heads,
    pub registry: &'a Registry,
    pub(crate) jobs: &'a mut Jobs,
    /// Upstream connections (the proxy's keep-alive pool).
    pub(crate) pool: &'a mut proxy::Pool,
    /// The loop's read buffer, shared by every task (empty until first used).
    pub(crate) scratch: &'a mut Vec<u8>,
    /// This task's id as an owner of jobs.
    pub(crate) me: u64,
    /// Token of descriptor 0.
    pub(crate) base: usize,
    /// The client's address and the local one it connected to (two system calls: only
    /// for a task that needs them).
    pub addrs: &'a dyn Fn() -> Option<(std::net::SocketAddr, std::net::SocketAddr)>,
}

impl Cx<'_> {
    /// The token to register the task's descriptor number `fd` (below [`MAX_FDS`]) with.
    pub fn token(&self, fd: usize) -> Token {
        debug_assert!(fd < MAX_FDS);
        Token(self.base + fd.min(MAX_FDS - 1))
    }

    /// Runs `work` on a helper thread; its result arrives as [`Event::Job`] (or is dropped
    /// if the task was unbound meanwhile). An error (no descriptor for the wake-up, made on
    /// the first post) means the job was not queued: answer 503.
    pub fn post<R: Any + Send>(
        &mut self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> std::io::Result<()> {
        self.jobs.post(self.me, self.registry, work)
    }

    /// A complete late answer: `status`, the site's headers, `extra` (formatted header
    /// lines), `Content-Length` and `body` (dropped for HEAD). Returns the body length.
    pub fn answer_bytes(&mut self, site: &Site, status: u16, extra: &[u8], body: &[u8]) -> u64 {
        let heads = &mut *self.heads;
        self.conn
            .answer(self.now, self.lim, AnswerBody::Complete, |a| {
                heads.head(site, a.out, status, a.persist);
                a.out.buf.extend_from_slice(extra);
                crate::http::response::content_length(&mut a.out.buf, body.len() as u64);
                crate::http::response::end(&mut a.out.buf);
                a.out.push_bytes(body);
            });
        body.len() as u64
    }

    /// A complete late error answer (the site's error page for `status`, or the built-in
    /// one). Returns the body length.
    pub fn answer_error(&mut self, site: &Rc<Site>, status: u16) -> u64 {
        let heads = &mut *self.heads;
        let mut len = 0;
        self.conn
            .answer(self.now, self.lim, AnswerBody::Complete, |a| {
                len = heads.error(site, a.out, status, a.persist);
            });
        len
    }
}

/// What a task leaves behind when unbound.
pub enum Leftover {
    None,
    /// A child process (group leader of its own group) that may still run: the server
    /// reaps it, and unless it is `done` (it finished its work and may be exiting) sends its
    /// group SIGTERM at once; SIGKILL follows a grace period either way. `guard` is dropped
    /// once the child is reaped (e.g. a slot of `cgi_max_processes`).
    Child {
        child: std::process::Child,
        done: bool,
        guard: Option<Box<dyn Any>>,
    },
    /// An upstream connection of the pool (key) that was in use: it is closed.
    Upstream(usize),
}

pub trait Task {
    fn on(&mut self, ev: Event, cx: &mut Cx<'_>);
    /// Unbound: deregister and close descriptors, hand over anything still running.
    fn end(&mut self, registry: &Registry) -> Leftover;
}

/// The request as the access log wants it, copied out of the head when a request goes
/// pending (the head buffer is not there when the answer comes).
pub struct Logged {
    pub line: Box<[u8]>,
    pub referer: Option<Box<[u8]>>,
    pub user_agent: Option<Box<[u8]>>,
    pub peer: std::net::IpAddr,
}

impl Logged {
    pub fn of(ex: &crate::conn::Exchange<'_>) -> Logged {
        Logged {
            line: crate::http::first_line(ex.head).into(),
            referer: ex.req.referer.map(|s| s.get(ex.head).into()),
            user_agent: ex.req.user_agent.map(|s| s.get(ex.head).into()),
            peer: ex.peer,
        }
    }

    /// Writes the access-log line of the late answer: `status`, `bytes` of body.
    pub fn write(&self, heads: &mut dyn Heads, site: &Site, status: u16, bytes: u64) {
        let access = Access {
            peer: self.peer,
            request_line: &self.line,
            status,
            bytes,
            referer: self.referer.as_deref(),
            user_agent: self.user_agent.as_deref(),
        };
        heads.access(site, &access);
    }
}

/// Response heads and logs as the handler writes them, for answers written late.
pub trait Heads {
    /// Status line, `Date`/`Server`, `Connection` per `persist`, then the site's configured
    /// headers; the caller adds its own and ends the head.
    fn head(&mut self, site: &Site, out: &mut Out, status: u16, persist: Persist);
    /// A complete error response (the site's error page, or the built-in one). Returns the
    /// body length.
    fn error(&mut self, site: &Rc<Site>, out: &mut Out, status: u16, persist: Persist) -> u64;
    fn access(&mut self, site: &Site, access: &Access<'_>);
    fn log(&mut self, level: Level, msg: std::fmt::Arguments<'_>);
    /// As [`Heads::error`], with `extra` header lines (a 401's challenge). Returns the body
    /// length.
    fn error_with(
        &mut self,
        site: &Rc<Site>,
        out: &mut Out,
        status: u16,
        persist: Persist,
        extra: &[u8],
    ) -> u64;
    /// A password hash computed off the loop came back: remembered when good, counted
    /// against the address when not. Whether to admit.
    /// The store wrote or removed `rel` beneath `root`: the file cache forgets it now.
    fn forget(&mut self, root: crate::fs::RootId, rel: &[u8]);
    fn auth_verdict(&mut self, job: &crate::auth::state::HashJob, ok: bool, now: Millis) -> bool;
}
