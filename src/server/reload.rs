//! SIGHUP: read the configuration again and swap it in whole, or keep the old one. Every
//! step that can fail (parsing and validating, opening the new roots, opening the logs,
//! binding the new listeners) runs before anything changes; only then are the router, logs,
//! limits and listener set replaced. Requests already parsed have their responses queued and
//! finish as they were; listeners whose address stays keep their socket, so no connection
//! is refused while the reload runs. SIGUSR1 only reopens the logs.
use std::io::{self, Write};

use super::{build_router, open_access_logs, Server};
use crate::config::Config;
use crate::log::{AccessLog, ErrorLog, Level};

/// Everything a new configuration needs that can fail, made ready before the swap.
struct Prepared {
    router: crate::handler::Router,
    access_logs: Vec<AccessLog>,
    error_log: ErrorLog,
    bound: Vec<super::Bound>,
    /// The new TLS configuration, certificates read (`None`: no host has one).
    tls: Option<TlsNext>,
}

enum TlsNext {
    /// The first certificates (TLS was off).
    New(crate::tls::Tls),
    /// New certificates for the existing session state.
    Config(std::sync::Arc<rustls::ServerConfig>),
}

impl Server {
    /// Reloads, then writes the error log at once: whoever sent SIGHUP wants the outcome.
    /// systemd hears `RELOADING=1` before and `READY=1` after, whatever the outcome and even
    /// without a file (then SIGHUP only reopens the logs): `Type=notify-reload` waits for
    /// that pair after every SIGHUP it sends.
    pub(super) fn reload(&mut self) {
        self.notify_reloading();
        let ok = self.try_reload();
        self.handler.flush_logs();
        self.notify_reload_failed(!ok);
        self.notify_ready(self.now());
    }

    /// Whether the new configuration (or the reopened logs) now serves.
    fn try_reload(&mut self) -> bool {
        let Some(load) = &self.reloader else {
            self.reopen_logs();
            // Without a file the certificates are still read again (a renewal).
            self.reload_certs();
            return true;
        };
        self.handler
            .log(Level::Info, format_args!("reloading the configuration"));
        let cfg = match load() {
            Ok(cfg) => cfg,
            Err(errors) => {
                for e in &errors {
                    self.handler.log(Level::Error, format_args!("reload: {e}"));
                }
                self.handler.log(
                    Level::Error,
                    format_args!("reload failed; still serving the old configuration"),
                );
                return false;
            }
        };
        match self.prepare(&cfg) {
            Ok(p) => {
                self.swap(&cfg, p);
                true
            }
            Err(e) => {
                self.handler.log(Level::Error, format_args!("reload: {e}"));
                self.handler.log(
                    Level::Error,
                    format_args!("reload failed; still serving the old configuration"),
                );
                false
            }
        }
    }

    fn prepare(&mut self, cfg: &Config) -> io::Result<Prepared> {
        let keep = self.handler.router.roots();
        let router = build_router(cfg, &mut self.handler.fs, &keep)?;
        let undo = |s: &mut Server| s.handler.fs.retain_roots(&keep);
        // Logs are reopened by path; one that cannot be (out of reach after a chroot or a
        // privilege drop) keeps the file already open.
        let h = &self.handler;
        let opened = open_access_logs(&router, &h.access_logs).and_then(|logs| {
            let el =
                ErrorLog::open_like(cfg.error_log.clone(), cfg.log_level, h.error_log.as_ref())
                    .map_err(|e| io::Error::new(e.kind(), format!("cannot open error log: {e}")))?;
            Ok((logs, el))
        });
        let (access_logs, error_log) = match opened {
            Ok(x) => x,
            Err(e) => {
                undo(self);
                return Err(e);
            }
        };
        // Entries already open (adopted sd: sockets too) keep their socket; only new ones
        // are bound or adopted.
        let tls = match self.prepare_tls(cfg, &router) {
            Ok(t) => t,
            Err(e) => {
                undo(self);
                return Err(io::Error::other(e));
            }
        };
        let fresh = |list: &[crate::config::Listen], tls: bool| -> Vec<_> {
            list.iter()
                .filter(|a| {
                    !self
                        .listeners
                        .iter()
                        .any(|(_, l)| l.addr == a.addr && l.tls == tls)
                })
                .cloned()
                .collect()
        };
        let (plain, secure) = (fresh(&cfg.listen, false), fresh(&cfg.listen_tls, true));
        let bound = match super::bind_all(cfg, &plain, &secure, &mut self.activation) {
            Ok(b) => b,
            Err(e) => {
                undo(self);
                return Err(after_drop(e));
            }
        };
        Ok(Prepared {
            router,
            access_logs,
            error_log,
            bound,
            tls,
        })
    }

    /// Reads the certificates of `cfg` for the names of `router`.
    fn prepare_tls(
        &self,
        cfg: &Config,
        router: &crate::handler::Router,
    ) -> Result<Option<TlsNext>, String> {
        if crate::tls::pairs(cfg).is_none() {
            return Ok(None);
        }
        Ok(Some(match &self.tls {
            Some(t) => TlsNext::Config(t.build(cfg, router.names())?),
            None => match crate::tls::Tls::new(cfg, router.names())? {
                Some(t) => TlsNext::New(t),
                None => return Ok(None),
            },
        }))
    }

    fn swap(&mut self, cfg: &Config, p: Prepared) {
        let names = p.router.names();
        let h = &mut self.handler;
        h.set_router(p.router);
        let keep = h.router.roots();
        h.fs.retain_roots(&keep);
        h.fs.set_cache_config(cfg.cache.clone(), self.nofile);
        h.set_server_name(cfg.server_name.as_deref());
        h.auth.max_failures = cfg.auth_max_failures;
        h.flush_logs();
        h.access_logs = p.access_logs;
        h.error_log = Some(p.error_log);
        self.lim = cfg.limits.clone();
        self.max_conns = cfg.max_connections;
        self.shutdown_grace = cfg.shutdown_timeout;

        match p.tls {
            Some(TlsNext::New(t)) => self.tls = Some(t),
            Some(TlsNext::Config(c)) => {
                if let Some(t) = &mut self.tls {
                    t.install(c, names);
                }
            }
            // No certificate any more: TLS listeners are gone too (the config says so).
            None => self.tls = None,
        }
        self.rehost_tls();
        let gone: Vec<usize> = self
            .listeners
            .iter()
            .filter(|(_, l)| {
                let list = if l.tls { &cfg.listen_tls } else { &cfg.listen };
                !list.iter().any(|c| c.addr == l.addr)
            })
            .map(|(k, _)| k)
            .collect();
        for key in gone {
            let mut l = self.listeners.remove(key);
            let _ = self.poll.registry().deregister(&mut l.sock);
            let at = l
                .sock
                .local_addr()
                .map_or(l.addr.to_string(), |a| a.to_string());
            self.handler
                .log(Level::Info, format_args!("stopped listening on {at}"));
        }
        let mut out = io::stdout().lock();
        for (addr, sock, tls) in p.bound {
            let at = sock
                .local_addr()
                .map_or(addr.to_string(), |a| a.to_string());
            let scheme = if tls { "https" } else { "http" };
            match self.add_listener(addr, sock, tls) {
                Ok(()) => {
                    let _ = writeln!(out, "listening on {scheme}://{at}");
                    self.handler
                        .log(Level::Info, format_args!("listening on {scheme}://{at}"));
                }
                Err(e) => self
                    .handler
                    .log(Level::Error, format_args!("cannot listen on {at}: {e}")),
            }
        }
        let _ = out.flush();
        let port = self
            .listeners
            .iter()
            .filter(|(_, l)| l.tls)
            .filter_map(|(_, l)| l.sock.local_addr().ok())
            .map(|a| a.port())
            .next()
            .unwrap_or(443);
        self.handler.set_https_port(port);
        self.watch_certs(cfg);
        self.accept_pending = true;
        self.handler
            .log(Level::Info, format_args!("configuration reloaded"));
    }

    pub(super) fn reopen_logs(&mut self) {
        let mut failed = None;
        for l in &mut self.handler.access_logs {
            if let Err(e) = l.reopen() {
                failed = Some(io::Error::new(e.kind(), format!("access log: {e}")));
            }
        }
        if let Some(l) = &mut self.handler.error_log {
            if let Err(e) = l.reopen() {
                failed = Some(io::Error::new(e.kind(), format!("error log: {e}")));
            }
        }
        match failed {
            Some(e) => self.handler.log(
                Level::Error,
                format_args!("reopening logs: {e}; still writing to the files open before"),
            ),
            None => self.handler.log(Level::Info, format_args!("logs reopened")),
        }
    }
}

/// A bind refused after privileges were dropped says why, and what would do it.
fn after_drop(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::PermissionDenied && crate::sys::process::euid() != 0 {
        return io::Error::new(
            e.kind(),
            format!(
                "{e} (tern no longer runs as root: a port below 1024 needs a restart, or \
                 CAP_NET_BIND_SERVICE)"
            ),
        );
    }
    e
}
