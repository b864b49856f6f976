//! The event loop: one `mio::Poll` owns the listeners, the signal and inotify descriptors and
//! a `Slab` of connections. Each turn reads the clock once, handles file-change events first
//! (so no request is answered from a stale cache entry), drives ready connections, accepts
//! new ones, and sweeps deadlines a few times a second (never per event).
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::config::{Config, ListenAddr};
use crate::conn::io::{drive, Turn};
use crate::conn::transport::TlsStream;
use crate::conn::{Conn, Limits, Millis, Pool};
use crate::fs::{RealFs, RootId};
use crate::handler::{Handler, Router};
use crate::log::{AccessLog, ErrorLog, Level};
use crate::sys;

mod apps;
mod aux;
mod certs;
pub mod jobs;
mod listen;
mod notify;
mod reload;

pub use listen::Activation;
pub use notify::Notifier;

const SIGNALS: Token = Token(0);
const NOTIFY: Token = Token(1);
/// inotify on the directories of the certificate files.
const CERTS: Token = Token(2);
/// The job queue's wake-up descriptor ([`jobs`]).
const JOBS: Token = Token(3);
const FIRST_LISTENER: usize = 4;
/// Token of connection slab key 0: listeners take the tokens below (they come and go with
/// reloads, so connections cannot simply follow them).
const CONN_BASE: usize = 1 << 16;
/// Token of the first descriptor of aux slab key 0 (see [`aux`]): connections take the
/// tokens below, each aux `dynamic::MAX_FDS` tokens from here.
const AUX_BASE: usize = 1 << 40;
/// Token of the proxy pool's upstream connection 0 (see [`aux`]), below the aux tokens.
const POOL_BASE: usize = 1 << 39;

/// How often deadlines are checked.
const SWEEP_EVERY: Millis = 250;
/// How often buffered logs are written.
const FLUSH_EVERY: Millis = 1000;
/// How long to wait before accepting again after running out of descriptors.
const ACCEPT_RETRY: Millis = 100;
/// Connections accepted per turn, so a connection flood cannot starve established clients.
const ACCEPT_BATCH: usize = 256;
/// Connections accepted before they are served (see `Server::accept`).
const ACCEPT_GROUP: usize = 16;

/// Reads the configuration again (the file and the flags), or says everything wrong with it.
pub type Reloader = Box<dyn Fn() -> Result<Config, Vec<String>>>;

/// A listening socket and the address it was configured as (how a reload recognises it).
struct Listener {
    addr: ListenAddr,
    sock: TcpListener,
    /// Serves HTTPS (a `listen_tls` entry).
    tls: bool,
}

/// A connection's socket: plain first, so the common case is the first arm.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => t.get_mut(),
        }
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Plain(s) => s.peer_addr(),
            Stream::Tls(t) => t.get_ref().peer_addr(),
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Plain(s) => s.local_addr(),
            Stream::Tls(t) => t.get_ref().local_addr(),
        }
    }
}

struct Slot {
    conn: Conn,
    sock: Stream,
    /// Added to the epoll set (done lazily, the first time the connection must wait).
    registered: bool,
    /// Tells this connection from a later one in the same slab slot (jobs and tasks name
    /// their connection by key and generation).
    generation: u32,
    /// The task bound to the connection's pending request (a key of `Server::aux`).
    aux: Option<usize>,
}

pub struct Server {
    poll: Poll,
    listeners: Slab<Listener>,
    /// Sockets systemd passed that no listener has adopted yet (a reload may name them).
    activation: Activation,
    conns: Slab<Slot>,
    /// Descriptors that are not clients, bound to a connection: CGI children, upstreams.
    aux: Slab<aux::Aux>,
    /// The next generation for a connection or an aux.
    generation: u32,
    /// Children of unbound tasks, being terminated and waiting to be reaped.
    orphans: Vec<aux::Orphan>,
    jobs: jobs::Jobs,
    /// Idle keep-alive connections to proxy upstreams.
    upstreams: crate::dynamic::proxy::Pool,
    /// The read buffer tasks share (see `dynamic::Cx::scratch`).
    scratch: Vec<u8>,
    /// Application processes of proxy routes (`command`), kept alive.
    apps: Vec<apps::App>,
    pool: Pool,
    handler: Handler<RealFs>,
    lim: Limits,
    max_conns: usize,
    signals: sys::signal::Signals,
    epoch: Instant,
    /// Listeners may hold connections we have not accepted (their edge will not fire again).
    accept_pending: bool,
    /// No accepting before this time (after EMFILE).
    accept_after: Millis,
    /// Accepting stopped at the connection limit; the next close resumes it.
    at_limit: bool,
    again: Vec<usize>,
    /// Connections accepted this turn, served once file changes are applied.
    fresh: Vec<usize>,
    accepted_this_turn: usize,
    shutdown_deadline: Option<Millis>,
    shutdown_grace: Millis,
    nofile: u64,
    reloader: Option<Reloader>,
    next_sweep: Millis,
    next_flush: Millis,
    /// systemd's notification socket and its schedule, when started by systemd.
    notify: Option<notify::Notify>,
    /// Requests served on connections already closed (for the status's request rate).
    served_closed: u64,
    /// The TLS configuration new handshakes use (when some host has a certificate).
    tls: Option<crate::tls::Tls>,
    /// Certificate files watched for renewal (`None` without TLS or inotify).
    cert_watch: Option<certs::Watch>,
    /// When a changed certificate is read again (changes are gathered for a moment, as
    /// certbot replaces a certificate and its key one after the other).
    cert_reload_at: Option<Millis>,
}

/// Binds or adopts every listener (see [`listen::bind`]). Called first, before anything else
/// can fail slowly, so that "address in use" is reported at once.
pub fn bind(cfg: &Config, sd: &mut Activation) -> io::Result<Vec<Bound>> {
    bind_all(cfg, &cfg.listen, &cfg.listen_tls, sd)
}

/// A bound listener: its entry, its socket, and whether it serves HTTPS.
pub type Bound = (ListenAddr, TcpListener, bool);

fn bind_all(
    cfg: &Config,
    plain: &[crate::config::Listen],
    tls: &[crate::config::Listen],
    sd: &mut Activation,
) -> io::Result<Vec<Bound>> {
    // Plain first, then TLS; a passed socket named in both lists is refused by the
    // second (each is adopted once).
    let mut out: Vec<Bound> = listen::bind(plain, cfg.reuse_port, sd)?
        .into_iter()
        .map(|(a, s)| (a, s, false))
        .collect();
    out.extend(
        listen::bind(tls, cfg.reuse_port, sd)?
            .into_iter()
            .map(|(a, s)| (a, s, true)),
    );
    Ok(out)
}

/// The port plain-HTTP redirects to `https://` name: the first TLS listener's (none: 443).
fn https_port(listeners: &[Bound]) -> u16 {
    listeners
        .iter()
        .find(|l| l.2)
        .and_then(|l| l.1.local_addr().ok())
        .map_or(443, |a| a.port())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Opens each access log a router names, in its order; a log already in `open` shares
/// that file rather than opening its path again.
fn open_access_logs(router: &Router, open: &[AccessLog]) -> io::Result<Vec<AccessLog>> {
    router
        .logs
        .iter()
        .map(|(target, format)| {
            AccessLog::open_like(target.clone(), *format, open).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open access log {target:?}: {e}"))
            })
        })
        .collect()
}

/// Builds the router of `cfg` over `fs`; on failure closes whatever roots it added (those
/// not in `keep`).
fn build_router(cfg: &Config, fs: &mut RealFs, keep: &[RootId]) -> io::Result<Router> {
    Router::build(cfg, fs).map_err(|e| {
        fs.retain_roots(keep);
        io::Error::other(e)
    })
}

/// The handler of `cfg`: its logs, roots and router, with the descriptor budget in mind.
fn build_handler(cfg: &Config, nofile: u64) -> io::Result<Handler<RealFs>> {
    let error_log = ErrorLog::open(cfg.error_log.clone(), cfg.log_level)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open error log: {e}")))?;
    // Cached descriptors may use at most a quarter of the descriptor limit.
    let mut cache = cfg.cache.clone();
    cache.max_fds = cache.max_fds.min((nofile / 4) as usize);
    let mut fs = RealFs::new(cache.clone());
    let router = build_router(cfg, &mut fs, &[])?;
    let access_logs = open_access_logs(&router, &[])?;
    let mut handler = Handler::new(fs, router, cfg.server_name.as_deref(), unix_now());
    handler.access_logs = access_logs;
    handler.error_log = Some(error_log);
    handler.auth.max_failures = cfg.auth_max_failures;
    // Like nginx, warn rather than refuse when connections may outnumber descriptors:
    // running out is handled (accepting pauses) and never drops a connection.
    let max_conns = cfg.max_connections;
    if (max_conns as u64) + cache.max_fds as u64 + 32 > nofile {
        handler.log(
            Level::Warn,
            format_args!(
                "--max-connections {max_conns} may exceed the descriptor limit {nofile}; \
                 accepting pauses whenever descriptors run out"
            ),
        );
    }
    Ok(handler)
}

/// The poll instance with the signals tern handles and the inotify descriptor registered.
fn build_poll(handler: &Handler<RealFs>) -> io::Result<(Poll, sys::signal::Signals)> {
    let poll = Poll::new()?;
    // SIGCHLD too: children (CGI) are reaped from the loop, never by a handler. Nothing is
    // blocked (see sys::signal), so children start with an empty mask.
    let mut signals = sys::signal::Signals::new(&[
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGCHLD,
    ])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    if let Some(fd) = handler.fs.notify_fd() {
        poll.registry()
            .register(&mut SourceFd(&fd.as_raw_fd()), NOTIFY, Interest::READABLE)?;
    }
    Ok((poll, signals))
}

impl Server {
    /// A server for `cfg` on `listeners` (from [`bind`], each with the entry it came from);
    /// `activation` keeps what systemd passed for reloads.
    pub fn new(cfg: &Config, listeners: Vec<Bound>, activation: Activation) -> io::Result<Server> {
        let nofile = sys::rlimit::raise_nofile().unwrap_or(1024);
        let mut handler = build_handler(cfg, nofile)?;
        let tls = crate::tls::Tls::new(cfg, handler.router.names()).map_err(io::Error::other)?;
        handler.set_https_port(https_port(&listeners));
        let (poll, signals) = build_poll(&handler)?;
        let jobs = jobs::Jobs::new(2, JOBS);
        let lim = cfg.limits.clone();
        let mut server = Server {
            poll,
            listeners: Slab::new(),
            activation,
            conns: Slab::new(),
            aux: Slab::new(),
            generation: 0,
            orphans: Vec::new(),
            jobs,
            upstreams: crate::dynamic::proxy::Pool::new(POOL_BASE),
            scratch: Vec::new(),
            apps: apps::from_config(cfg),
            pool: Pool::new(lim.max_head.min(16 * 1024), 1024),
            handler,
            lim,
            max_conns: cfg.max_connections,
            nofile,
            signals,
            epoch: Instant::now(),
            accept_pending: true,
            accept_after: 0,
            at_limit: false,
            again: Vec::new(),
            fresh: Vec::new(),
            accepted_this_turn: 0,
            shutdown_deadline: None,
            shutdown_grace: cfg.shutdown_timeout,
            next_sweep: SWEEP_EVERY,
            next_flush: FLUSH_EVERY,
            reloader: None,
            notify: None,
            served_closed: 0,
            cert_watch: None,
            cert_reload_at: None,
            tls,
        };
        for (addr, l, tls) in listeners {
            server.add_listener(addr, l, tls)?;
        }
        server.watch_certs(cfg);
        Ok(server)
    }

    /// What SIGHUP calls to read the configuration again (without one, SIGHUP only reopens
    /// the logs).
    pub fn set_reloader(&mut self, f: Reloader) {
        self.reloader = Some(f);
    }

    fn add_listener(&mut self, addr: ListenAddr, mut l: TcpListener, tls: bool) -> io::Result<()> {
        let entry = self.listeners.vacant_entry();
        if entry.key() + FIRST_LISTENER >= CONN_BASE {
            return Err(io::Error::other("too many listeners"));
        }
        self.poll.registry().register(
            &mut l,
            Token(FIRST_LISTENER + entry.key()),
            Interest::READABLE,
        )?;
        entry.insert(Listener { addr, sock: l, tls });
        Ok(())
    }

    /// Writes a message to the error log (start-up warnings from `main`).
    pub fn log(&mut self, level: Level, msg: std::fmt::Arguments<'_>) {
        self.handler.log(level, msg);
        self.handler.flush_logs();
    }

    /// Gives the open log files to the user about to be switched to, so SIGUSR1 can reopen
    /// them in place after the drop (a new file after rotation needs a directory the user
    /// may write to).
    pub fn chown_logs(&mut self, uid: u32, gid: u32) -> io::Result<()> {
        let h = &self.handler;
        for l in &h.access_logs {
            l.chown(uid, gid)?;
        }
        if let Some(l) = &h.error_log {
            l.chown(uid, gid)?;
        }
        Ok(())
    }

    /// Tells the file system layer that the process is now chrooted into `dir`, and warns
    /// when files can no longer be watched (the cache then holds no files).
    pub fn entered_chroot(&mut self, dir: &std::path::Path) {
        self.handler.fs.enter_chroot(dir);
        if !self.handler.fs.can_watch_files() {
            self.log(
                Level::Warn,
                format_args!(
                    "chroot {}: no /proc/self/fd inside, so files cannot be watched for \
                     changes; the file cache is off for files (opened on every request)",
                    dir.display()
                ),
            );
        }
    }

    /// Each listener's address and whether it serves HTTPS.
    pub fn local_addrs(&self) -> Vec<(SocketAddr, bool)> {
        self.listeners
            .iter()
            .filter_map(|(_, l)| l.sock.local_addr().ok().map(|a| (a, l.tls)))
            .collect()
    }

    fn now(&self) -> Millis {
        self.epoch.elapsed().as_millis() as Millis
    }

    /// Runs until a graceful shutdown completes.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        // Every listener is open and announced: tell systemd (the caller printed the lines).
        self.notify_ready(self.now());
        // Privileges are dropped by now: applications run as the user tern runs as.
        self.start_apps(self.now());
        loop {
            let now = self.now();
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || now >= deadline {
                    break;
                }
            }
            let timeout = self.poll_timeout(now);
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = self.now();
            self.handler.set_time(unix_now());
            // File changes first: a request in this batch must not see a stale entry.
            if events.iter().any(|e| e.token() == NOTIFY) {
                self.handler.fs.on_notify();
            }
            if events.iter().any(|e| e.token() == CERTS) {
                self.on_cert_event(now);
            }
            if self.cert_reload_at.is_some_and(|t| now >= t) {
                self.cert_reload_at = None;
                self.reload_certs();
            }
            let base = CONN_BASE;
            for event in events.iter() {
                match event.token() {
                    SIGNALS => self.on_signals(now),
                    NOTIFY | CERTS => {}
                    JOBS => self.on_jobs(now),
                    Token(t) if t < base => self.accept_pending = true,
                    Token(t) if t >= POOL_BASE => {
                        if t >= AUX_BASE {
                            self.on_aux_event(t - AUX_BASE, event, now)
                        } else {
                            self.on_pool_event(t - POOL_BASE, event, now)
                        }
                    }
                    Token(t) => {
                        let key = t - base;
                        if let Some(slot) = self.conns.get_mut(key) {
                            if event.is_read_closed() || event.is_error() {
                                slot.conn.set_read_closed();
                            } else if event.is_readable() {
                                slot.conn.set_readable();
                            }
                            if event.is_writable() || event.is_write_closed() || event.is_error() {
                                slot.conn.set_writable();
                            }
                            self.drive(key, now);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.again) {
                if self.conns.contains(key) {
                    self.drive(key, now);
                }
            }
            if self.accept_pending && now >= self.accept_after && self.shutdown_deadline.is_none() {
                self.accept(now);
            }
            if self.apps_deadline() <= now {
                self.start_apps(now);
            }
            if now >= self.next_sweep {
                self.sweep(now);
                self.next_sweep = now + SWEEP_EVERY;
            }
            if now >= self.next_flush {
                self.handler.flush_logs();
                self.next_flush = now + FLUSH_EVERY;
            }
            self.notify_tick(now);
        }
        self.end_all_tasks();
        self.stop_apps();
        self.handler.log(Level::Info, format_args!("shut down"));
        self.handler.flush_logs();
        Ok(())
    }

    fn poll_timeout(&self, now: Millis) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let mut wake = self
            .next_flush
            .min(self.notify_deadline())
            .min(self.apps_deadline());
        if !self.conns.is_empty() {
            wake = wake.min(self.next_sweep);
        }
        if self.accept_pending {
            wake = wake.min(self.accept_after);
        }
        if let Some(d) = self.shutdown_deadline {
            wake = wake.min(d);
        }
        if let Some(t) = self.cert_reload_at {
            wake = wake.min(t);
        }
        Some(Duration::from_millis(wake.saturating_sub(now)))
    }

    /// Runs one turn of a connection and acts on the outcome.
    fn drive(&mut self, key: usize, now: Millis) {
        let Some(slot) = self.conns.get_mut(key) else {
            return;
        };
        let turn = match &mut slot.sock {
            Stream::Plain(sock) => drive(
                &mut slot.conn,
                sock,
                &mut self.handler,
                &mut self.pool,
                &self.lim,
                now,
            ),
            Stream::Tls(sock) => drive(
                &mut slot.conn,
                &mut **sock,
                &mut self.handler,
                &mut self.pool,
                &self.lim,
                now,
            ),
        };
        if turn != Turn::Close && !slot.registered {
            // Edge-triggered registration reports readiness that exists at this moment, so
            // nothing that arrived since the last read is missed.
            let token = Token(CONN_BASE + key);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if self
                .poll
                .registry()
                .register(slot.sock.tcp(), token, interest)
                .is_err()
            {
                slot.conn.on_io_error();
                return self.remove(key);
            }
            slot.registered = true;
        }
        if self.handler.started.is_some() || slot.aux.is_some() {
            self.after_turn(key, now);
        }
        match turn {
            Turn::Wait => {}
            Turn::Again => self.again.push(key),
            Turn::Close => self.remove(key),
        }
    }

    fn remove(&mut self, key: usize) {
        if let Some(a) = self.conns.get(key).and_then(|s| s.aux) {
            self.unbind(a);
        }
        let mut slot = self.conns.remove(key);
        if let (Stream::Tls(t), Some(r)) = (&mut slot.sock, slot.conn.close_reason()) {
            use crate::conn::CloseReason as R;
            if matches!(r, R::Done | R::Shutdown | R::IdleTimeout | R::LingerTimeout) {
                t.close_notify();
            }
            if let Some(why) = t.failure() {
                // As nginx logs failed handshakes: at info, the client's doing.
                let peer = slot.conn.peer();
                self.handler
                    .log(Level::Info, format_args!("{peer}: TLS: {why}"));
            }
        }
        self.served_closed += u64::from(slot.conn.served());
        if let Some(reason) = slot.conn.close_reason() {
            use crate::conn::Service;
            self.handler.closed(reason, slot.conn.peer());
        }
        // Dropping the socket closes it, which also removes it from the epoll set. A slot
        // freed here may be reused by `accept` only after this batch of events.
        drop(slot);
        if self.at_limit && self.conns.len() < self.max_conns {
            self.at_limit = false;
            self.accept_pending = true;
        }
    }

    /// Accepts what the listeners hold, a group at a time, serving each group before
    /// accepting more (so new sockets cannot take every descriptor before a request gets to
    /// open its file). Requests on new connections may have been sent after a file changed
    /// (this turn's events were read before), so pending inotify events are applied before
    /// each group is served: one non-blocking read per group, and never a stale answer to a
    /// request sent after the change.
    fn accept(&mut self, now: Millis) {
        self.accepted_this_turn = 0;
        loop {
            let more = self.accept_batch(now);
            if self.fresh.is_empty() {
                return;
            }
            self.handler.fs.on_notify();
            let mut fresh = std::mem::take(&mut self.fresh);
            for key in fresh.drain(..) {
                // With TCP_DEFER_ACCEPT the request is usually already here: serve it now.
                // A connection answered and closed in this first turn is never registered
                // with epoll at all (one epoll_ctl less per short-lived connection).
                self.drive(key, now);
            }
            self.fresh = fresh;
            if !more {
                return;
            }
        }
    }

    /// Accepts up to [`ACCEPT_GROUP`] connections into `fresh`. Returns whether to go on
    /// accepting in this turn (the group filled up and the turn's budget is not spent).
    fn accept_batch(&mut self, now: Millis) -> bool {
        self.accept_pending = false;
        // Listener keys are few and small; walking the slab's capacity allocates nothing.
        for i in 0..self.listeners.capacity() {
            if !self.listeners.contains(i) {
                continue;
            }
            loop {
                if self.conns.len() >= self.max_conns {
                    // At the limit: leave the rest in the kernel queue; a close re-arms us.
                    self.at_limit = true;
                    return false;
                }
                if self.fresh.len() == ACCEPT_GROUP {
                    self.accepted_this_turn += ACCEPT_GROUP;
                    if self.accepted_this_turn >= ACCEPT_BATCH {
                        // Enough for one turn: established clients get their turn first.
                        self.accept_pending = true;
                        return false;
                    }
                    return true;
                }
                match self.listeners[i].sock.accept() {
                    Ok((sock, peer)) => {
                        let tls = self.listeners[i].tls;
                        self.add(sock, peer, now, tls)
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EMFILE)
                                | Some(libc::ENFILE)
                                | Some(libc::ENOBUFS)
                                | Some(libc::ENOMEM)
                        ) =>
                    {
                        // Out of descriptors: try again shortly, never spin.
                        self.handler.log(
                            Level::Error,
                            format_args!("accept: {e}; retrying in {ACCEPT_RETRY} ms"),
                        );
                        self.accept_after = now + ACCEPT_RETRY;
                        self.accept_pending = true;
                        return false;
                    }
                    Err(_) => {} // ECONNABORTED and friends: that client is gone; go on.
                }
            }
        }
        false
    }

    fn add(&mut self, sock: TcpStream, peer: SocketAddr, now: Millis, tls: bool) {
        // Mapped once here, so every later use of the peer sees the plain IPv4 form.
        let conn = Conn::new(crate::conn::peer_ip(peer), now, &self.lim);
        let sock = match (tls, &self.tls) {
            (false, _) => Stream::Plain(sock),
            (true, Some(t)) => match TlsStream::new(sock, &t.config, &t.names) {
                Ok(s) => Stream::Tls(Box::new(s)),
                Err(_) => return,
            },
            // No certificate (the configuration refuses that): nothing to serve.
            (true, None) => return,
        };
        self.generation = self.generation.wrapping_add(1);
        let key = self.conns.insert(Slot {
            conn,
            sock,
            registered: false,
            generation: self.generation,
            aux: None,
        });
        self.fresh.push(key);
    }

    /// Checks every connection's deadline (a few times a second, not per event).
    fn sweep(&mut self, now: Millis) {
        if !self.orphans.is_empty() {
            self.reap_orphans(now);
        }
        self.upstreams.sweep(now);
        let due: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, s)| s.conn.deadline() <= now)
            .map(|(k, _)| k)
            .collect();
        for key in due {
            if let Some(slot) = self.conns.get_mut(key) {
                slot.conn.on_timeout(now, &mut self.handler, &self.lim);
                self.drive(key, now);
            }
        }
    }

    fn on_signals(&mut self, now: Millis) {
        // Each signal comes once however often it arrived: six kinds fit (no allocation,
        // so SIGUSR2's count is not moved by asking for it).
        let mut pending = [0i32; 8];
        let mut n = 0;
        for sig in self.signals.pending() {
            if n < pending.len() {
                pending[n] = sig;
                n += 1;
            }
        }
        for &sig in &pending[..n] {
            match sig {
                libc::SIGTERM | libc::SIGINT => {
                    if self.shutdown_deadline.is_some() {
                        // A second signal: stop waiting.
                        self.shutdown_deadline = Some(now);
                    } else {
                        self.begin_shutdown(now);
                    }
                }
                libc::SIGUSR2 => match sys::allocations() {
                    Some(n) => self
                        .handler
                        .log(Level::Info, format_args!("allocations: {n}")),
                    None => self.handler.log(
                        Level::Info,
                        format_args!("allocation counting needs --features alloc-count"),
                    ),
                },
                libc::SIGHUP => self.reload(),
                libc::SIGCHLD => {
                    self.on_child(now);
                    self.reap_apps(now);
                }
                _ => self.reopen_logs(),
            }
        }
    }

    /// Stops accepting, closes idle connections and lets the others finish their current
    /// response, for at most the grace period.
    fn begin_shutdown(&mut self, now: Millis) {
        self.notify_stopping();
        self.handler.log(Level::Info, format_args!("shutting down"));
        for mut l in self.listeners.drain() {
            let _ = self.poll.registry().deregister(&mut l.sock);
        }
        self.shutdown_deadline = Some(now + self.shutdown_grace);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            if let Some(slot) = self.conns.get_mut(key) {
                slot.conn.begin_shutdown();
                self.drive(key, now);
            }
        }
    }
}
