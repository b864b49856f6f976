//! A CGI script (RFC 3875) as a task: the child is started when the task is bound, its stdin
//! fed from the request body as the client sends it (a chunked body is spooled first into
//! a `memfd`, bounded by `max_body`, which becomes the child's stdin, with `CONTENT_LENGTH`), its stdout parsed ([`crate::http::cgi`]) and streamed to
//! the client as it comes (chunked unless the script gave a length), its stderr logged line
//! by line with the script's name. All three pipes are non-blocking descriptors of the task
//! in the loop; the child leads a process group of its own, so ending the task (client gone,
//! timeout) can terminate everything the script started.
//!
//! How a child starts: `std::process::Command` with `process_group(0)` and no `pre_exec`,
//! which std runs as `posix_spawn` (glibc: `clone(CLONE_VM | CLONE_VFORK)` then `exec`), so
//! the loop pays no page-table copy however large it is. The child keeps tern's signal mask
//! (std does not reset it), which is empty: tern catches its signals with handlers instead of
//! blocking them ([`crate::sys::signal`]), and exec resets caught ones to their defaults.
use std::any::Any;
use std::cell::Cell;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;

use mio::unix::SourceFd;
use mio::{Interest, Registry};

use super::{Cx, Event, Leftover, Logged, Task};
use crate::conn::{AnswerBody, Millis};
use crate::handler::Site;
use crate::http::cgi::{self as head, MAX_HEAD};
use crate::http::response;
use crate::log::Level;

const STDIN: usize = 0;
const STDOUT: usize = 1;
const STDERR: usize = 2;

/// One running child counted against `cgi_max_processes` until reaped.
pub struct Running(Rc<Cell<usize>>);

impl Running {
    pub fn new(count: &Rc<Cell<usize>>) -> Running {
        count.set(count.get() + 1);
        Running(Rc::clone(count))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// What to run, as the handler decided it.
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
    /// The meta-variables and the allowed part of tern's environment.
    pub env: Vec<(OsString, OsString)>,
    /// For the logs: the script's URL path.
    pub name: String,
    /// The body is chunked: spool it, then start with `CONTENT_LENGTH`.
    pub spool: bool,
    pub timeout: Millis,
    /// `SERVER_NAME` to use when the request named no host (the local address then).
    pub server_name_known: bool,
    /// For a local redirect's request: the original `Host`, version and whether it was HEAD.
    pub host: Option<Box<[u8]>>,
    pub http10: bool,
    pub head_method: bool,
}

pub struct CgiTask {
    spec: Spec,
    site: Rc<Site>,
    logged: Logged,
    running: Option<Running>,
    child: Option<Child>,
    exited: bool,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    /// Output before the end of the head.
    head: Vec<u8>,
    /// The head was answered: output is body.
    answered: bool,
    /// The chunked body, spooled into a memory file that becomes the child's stdin.
    spool: Option<std::fs::File>,
    spooled: u64,
    err_line: Vec<u8>,
    /// Read buffer, allocated on first use and kept for the task's life.
    buf: Vec<u8>,
    status: u16,
    bytes: u64,
    finished: bool,
}

impl CgiTask {
    pub fn new(spec: Spec, site: Rc<Site>, logged: Logged, running: Running) -> CgiTask {
        CgiTask {
            spec,
            site,
            logged,
            running: Some(running),
            child: None,
            exited: false,
            stdin: None,
            stdout: None,
            stderr: None,
            head: Vec::new(),
            answered: false,
            spool: None,
            spooled: 0,
            err_line: Vec::new(),
            buf: Vec::new(),
            status: 0,
            bytes: 0,
            finished: false,
        }
    }

    fn start(&mut self, cx: &mut Cx<'_>) {
        let mut env = std::mem::take(&mut self.spec.env);
        if let Some((peer, local)) = (cx.addrs)() {
            let peer_ip = crate::conn::peer_ip(peer);
            env.push(("REMOTE_ADDR".into(), peer_ip.to_string().into()));
            env.push(("REMOTE_PORT".into(), peer.port().to_string().into()));
            env.push(("SERVER_PORT".into(), local.port().to_string().into()));
            if !self.spec.server_name_known {
                let ip = crate::conn::peer_ip(local);
                env.push(("SERVER_NAME".into(), ip.to_string().into()));
            }
        }
        let stdin = match self.spool.take() {
            Some(mut f) => {
                env.push(("CONTENT_LENGTH".into(), self.spooled.to_string().into()));
                match std::io::Seek::rewind(&mut f) {
                    Ok(()) => Stdio::from(f),
                    Err(_) => return self.fail(cx, 500),
                }
            }
            None => Stdio::piped(),
        };
        let mut cmd = Command::new(&self.spec.program);
        cmd.args(&self.spec.args)
            .env_clear()
            .envs(env)
            .current_dir(&self.spec.cwd)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        match cmd.spawn().and_then(|c| self.adopt(c, cx)) {
            Ok(()) => {}
            Err(e) => {
                let msg = format_args!("cgi {}: cannot start: {e}", self.spec.name);
                cx.heads.log(Level::Error, msg);
                self.fail(cx, 502);
            }
        }
        cx.conn.set_await_deadline(cx.now + self.spec.timeout);
    }

    fn adopt(&mut self, mut child: Child, cx: &mut Cx<'_>) -> io::Result<()> {
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        self.child = Some(child);
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Err(io::Error::other("pipes missing"));
        };
        let pipes = [
            stdin
                .as_ref()
                .map(|s| (STDIN, s.as_fd(), Interest::WRITABLE)),
            Some((STDOUT, stdout.as_fd(), Interest::READABLE)),
            Some((STDERR, stderr.as_fd(), Interest::READABLE)),
        ];
        for (i, fd, interest) in pipes.into_iter().flatten() {
            crate::sys::fs::set_nonblocking(fd)?;
            cx.registry
                .register(&mut SourceFd(&fd.as_raw_fd()), cx.token(i), interest)?;
        }
        self.stdin = stdin;
        self.stdout = Some(stdout);
        self.stderr = Some(stderr);
        Ok(())
    }

    /// Everything that can be done now, until each descriptor would block.
    fn step(&mut self, cx: &mut Cx<'_>) {
        if self.finished {
            return;
        }
        if self.spec.spool && self.child.is_none() {
            return self.spool_body(cx);
        }
        self.feed_stdin(cx);
        self.drain_stderr(cx);
        self.read_stdout(cx);
    }

    /// A chunked body: collect it (bounded by `max_body`, which the connection enforces),
    /// then start the script with its length.
    fn spool_body(&mut self, cx: &mut Cx<'_>) {
        if self.spool.is_none() {
            match crate::sys::fs::memfd(c"tern-cgi-body", b"") {
                Ok(f) => self.spool = Some(f),
                Err(_) => return self.fail(cx, 503),
            }
        }
        let data = cx.conn.body_data();
        let n = data.len();
        if let Some(f) = &mut self.spool {
            // Memory, not disk: this write never waits on a device.
            if f.write_all(data).is_err() {
                return self.fail(cx, 500);
            }
        }
        self.spooled += n as u64;
        cx.conn.body_taken(n);
        cx.conn.set_await_deadline(cx.now + self.spec.timeout);
        if cx.conn.body_finished() {
            self.start(cx);
            if !self.finished {
                self.step(cx);
            }
        }
    }

    fn feed_stdin(&mut self, cx: &mut Cx<'_>) {
        while let Some(stdin) = &mut self.stdin {
            let data = cx.conn.body_data();
            if data.is_empty() {
                if cx.conn.body_finished() {
                    self.close_stdin(cx.registry);
                }
                return;
            }
            match stdin.write(data) {
                Ok(n) => {
                    cx.conn.body_taken(n);
                    cx.conn.set_await_deadline(cx.now + self.spec.timeout);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EPIPE: the script does not read (all of) its input; the rest of the body
                // is left to the connection (thrown away, or the connection closes).
                Err(_) => self.close_stdin(cx.registry),
            }
        }
    }

    fn close_stdin(&mut self, registry: &Registry) {
        if let Some(s) = self.stdin.take() {
            let _ = registry.deregister(&mut SourceFd(&s.as_raw_fd()));
        }
    }

    fn drain_stderr(&mut self, cx: &mut Cx<'_>) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(err) = &mut self.stderr else { return };
            match err.read(&mut buf) {
                Ok(0) => {
                    let _ = cx.registry.deregister(&mut SourceFd(&err.as_raw_fd()));
                    self.stderr = None;
                    return self.flush_err_line(cx, true);
                }
                Ok(n) => {
                    self.err_line.extend_from_slice(&buf[..n]);
                    self.flush_err_line(cx, false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Logs complete stderr lines (all of it at EOF, or past 4 KiB without a newline).
    fn flush_err_line(&mut self, cx: &mut Cx<'_>, all: bool) {
        while let Some(nl) = memchr::memchr(b'\n', &self.err_line) {
            let line: Vec<u8> = self.err_line.drain(..=nl).collect();
            self.log_err(cx, &line[..nl]);
        }
        if (all && !self.err_line.is_empty()) || self.err_line.len() > 4096 {
            let line = std::mem::take(&mut self.err_line);
            self.log_err(cx, &line);
        }
    }

    fn log_err(&self, cx: &mut Cx<'_>, line: &[u8]) {
        let line = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
        let name = &self.spec.name;
        cx.heads.log(
            Level::Error,
            format_args!("cgi {name}: stderr: {}", line.escape_debug()),
        );
    }

    fn read_stdout(&mut self, cx: &mut Cx<'_>) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(64 * 1024, 0);
        self.read_loop(cx, &mut buf);
        self.buf = buf;
    }

    fn read_loop(&mut self, cx: &mut Cx<'_>, buf: &mut [u8]) {
        loop {
            if self.finished {
                return;
            }
            let room = if self.answered {
                cx.conn.stream_room(cx.lim)
            } else {
                buf.len()
            };
            if room == 0 {
                // The client is slower than the script: wait for the next nudge.
                return;
            }
            let Some(out) = &mut self.stdout else { return };
            let want = room.min(buf.len());
            match out.read(&mut buf[..want]) {
                Ok(0) => return self.on_eof(cx),
                Ok(n) => {
                    cx.conn.set_await_deadline(cx.now + self.spec.timeout);
                    if self.answered {
                        self.bytes += n as u64;
                        cx.conn.stream_data(&buf[..n]);
                    } else {
                        self.head.extend_from_slice(&buf[..n]);
                        self.try_head(cx);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.on_eof(cx),
            }
        }
    }

    /// Answers once the head is complete; 502 for a bad or oversized one.
    fn try_head(&mut self, cx: &mut Cx<'_>) {
        let Some(end) = head::head_end(&self.head) else {
            if self.head.len() > MAX_HEAD {
                self.bad_head(cx, "response head too large");
            }
            return;
        };
        let parsed = match head::parse(&self.head[..end]) {
            Ok(h) => h,
            Err(why) => return self.bad_head(cx, why),
        };
        let h = &self.head[..end];
        let span = |(s, l): (usize, usize)| &h[s..s + l];
        if let (Some(loc), false, true) = (
            parsed.location,
            parsed.explicit_status,
            parsed.local_redirect,
        ) {
            let loc = span(loc).to_vec();
            return self.local_redirect(cx, &loc);
        }
        let status = parsed.status;
        // No body for these (RFC 9110 §6.4.1): whatever the script writes is dropped.
        let bodyless = matches!(status, 204 | 304);
        let body = match parsed.content_length {
            _ if bodyless => AnswerBody::Stream(Some(0)),
            Some(n) => AnswerBody::Stream(Some(n)),
            None => AnswerBody::Stream(None),
        };
        let site = Rc::clone(&self.site);
        let heads = &mut *cx.heads;
        cx.conn.answer(cx.now, cx.lim, body, |a| {
            heads.head(&site, a.out, status, a.persist);
            let buf = &mut a.out.buf;
            if let Some(t) = parsed.content_type {
                response::header(buf, b"Content-Type", span(t));
            }
            if let Some(l) = parsed.location {
                response::header(buf, b"Location", span(l));
            }
            for (n, v) in &parsed.fields {
                response::header(buf, span(*n), span(*v));
            }
            match parsed.content_length {
                Some(n) if !bodyless => response::content_length(buf, n),
                _ if a.chunked && !bodyless => {
                    buf.extend_from_slice(b"Transfer-Encoding: chunked\r\n")
                }
                _ => {}
            }
            response::end(buf);
        });
        self.answered = true;
        self.status = status;
        let rest = self.head.split_off(end);
        self.head = Vec::new();
        if !rest.is_empty() {
            self.bytes += rest.len() as u64;
            cx.conn.stream_data(&rest);
        }
    }

    /// `Location: /path` without `Status`: tern answers with what that path serves, as a
    /// new GET (or HEAD) through routing and every rule of the target route.
    fn local_redirect(&mut self, cx: &mut Cx<'_>, loc: &[u8]) {
        if !loc.iter().all(|&b| (0x21..0x7f).contains(&b)) {
            return self.bad_head(cx, "Location is not a valid request target");
        }
        let mut head = Vec::with_capacity(64 + loc.len());
        head.extend_from_slice(if self.spec.head_method {
            b"HEAD "
        } else {
            b"GET "
        });
        head.extend_from_slice(loc);
        head.extend_from_slice(if self.spec.http10 {
            b" HTTP/1.0\r\n"
        } else {
            b" HTTP/1.1\r\n"
        });
        if let Some(h) = &self.spec.host {
            head.extend_from_slice(b"Host: ");
            head.extend_from_slice(h);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        if cx.conn.internal_redirect(head) {
            // The new target answers (and logs) the request; this script is done.
            self.finished = true;
            return;
        }
        let name = &self.spec.name;
        cx.heads.log(
            Level::Error,
            format_args!(
                "cgi {name}: more than {} internal redirects",
                crate::conn::MAX_REDIRECTS
            ),
        );
        self.fail(cx, 500);
    }

    fn bad_head(&mut self, cx: &mut Cx<'_>, why: &str) {
        let name = &self.spec.name;
        cx.heads.log(
            Level::Error,
            format_args!("cgi {name}: invalid response: {why}"),
        );
        self.fail(cx, 502);
    }

    fn on_eof(&mut self, cx: &mut Cx<'_>) {
        if let Some(out) = self.stdout.take() {
            let _ = cx.registry.deregister(&mut SourceFd(&out.as_raw_fd()));
        }
        if !self.answered {
            let why = if self.head.is_empty() {
                "exited without output"
            } else {
                "output ended inside the head"
            };
            return self.bad_head(cx, why);
        }
        self.finished = true;
        cx.conn.stream_end(cx.now, cx.lim, true);
        self.log_access(cx);
    }

    /// Answers `status` (nothing was sent yet) and stops.
    fn fail(&mut self, cx: &mut Cx<'_>, status: u16) {
        self.finished = true;
        self.status = status;
        self.bytes = cx.answer_error(&Rc::clone(&self.site), status);
        self.log_access(cx);
    }

    fn log_access(&self, cx: &mut Cx<'_>) {
        self.logged
            .write(cx.heads, &self.site, self.status, self.bytes);
    }

    fn reap(&mut self) {
        if let Some(c) = &mut self.child {
            if !self.exited && matches!(c.try_wait(), Ok(Some(_))) {
                self.exited = true;
            }
        }
    }
}

impl Task for CgiTask {
    fn on(&mut self, ev: Event, cx: &mut Cx<'_>) {
        match ev {
            Event::Start if self.spec.spool => self.step(cx),
            Event::Start => {
                self.start(cx);
                self.step(cx);
            }
            Event::Child => {
                self.reap();
                self.step(cx);
            }
            Event::Ready { .. } | Event::Nudge => self.step(cx),
            Event::Job(_) => {}
        }
    }

    fn end(&mut self, registry: &Registry) -> Leftover {
        self.close_stdin(registry);
        for fd in [
            self.stdout.take().map(std::os::fd::OwnedFd::from),
            self.stderr.take().map(std::os::fd::OwnedFd::from),
        ]
        .into_iter()
        .flatten()
        {
            let _ = registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
        self.reap();
        match self.child.take() {
            Some(child) => Leftover::Child {
                child,
                done: self.finished,
                guard: self.running.take().map(|r| Box::new(r) as Box<dyn Any>),
            },
            None => Leftover::None,
        }
    }
}
