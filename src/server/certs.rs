//! Certificate renewal without a restart: inotify on the directories of every certificate
//! and key file (and of each symlink target on the way, as certbot's `live/NAME/*.pem ->
//! ../../archive/NAME/*N.pem` are), changes gathered for a moment, then the pairs read
//! again and checked. A good set is used for new handshakes (established connections keep
//! theirs); a broken one is logged and the old one kept. SIGHUP does the same.
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use mio::unix::SourceFd;
use mio::Interest;

use super::{Server, Stream, CERTS};
use crate::config::Config;
use crate::conn::Millis;
use crate::log::Level;
use crate::sys::inotify::{self as ino, Inotify};

/// How long changes are gathered before the certificates are read again.
const SETTLE: Millis = 200;

pub(super) struct Watch {
    ino: Inotify,
    /// The configuration the certificates come from (paths, `tls_min_version`).
    cfg: Config,
    /// What the files were when last loaded: a change event for anything else is ignored.
    seen: Vec<Stamp>,
}

/// A file's identity and version, following symlinks.
type Stamp = Option<(u64, u64, i64, i64, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.size()))
        })
        .collect()
}

impl Server {
    /// Watches the certificate files of `cfg` (replacing any earlier watch).
    pub(super) fn watch_certs(&mut self, cfg: &Config) {
        if let Some(old) = self.cert_watch.take() {
            let fd = old.ino.as_fd().as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        if self.tls.is_none() {
            return;
        }
        let files = crate::tls::files(cfg);
        let Ok(ino) = Inotify::new() else {
            return self.handler.log(
                Level::Warn,
                format_args!("inotify unavailable: certificates reload on SIGHUP only"),
            );
        };
        let mask = ino::IN_CLOSE_WRITE
            | ino::IN_MOVED_TO
            | ino::IN_MOVED_FROM
            | ino::IN_CREATE
            | ino::IN_DELETE
            | ino::IN_ATTRIB;
        let mut dirs: Vec<PathBuf> = files
            .iter()
            .flat_map(|f| crate::tls::watch_dirs(f))
            .collect();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            let Ok(c) = CString::new(d.as_os_str().as_bytes()) else {
                continue;
            };
            if let Err(e) = ino.add_watch(&c, mask) {
                self.handler.log(
                    Level::Warn,
                    format_args!("cannot watch {} for certificate renewal: {e}", d.display()),
                );
            }
        }
        let fd = ino.as_fd().as_raw_fd();
        if self
            .poll
            .registry()
            .register(&mut SourceFd(&fd), CERTS, Interest::READABLE)
            .is_err()
        {
            return;
        }
        self.cert_watch = Some(Watch {
            ino,
            seen: stamps(&files),
            cfg: cfg.clone(),
        });
    }

    /// Drains the watch; a change to a certificate or key schedules a reload.
    pub(super) fn on_cert_event(&mut self, now: Millis) {
        let Some(w) = &mut self.cert_watch else {
            return;
        };
        let mut buf = [0u8; 4096];
        let mut any = false;
        while let Ok(true) = w.ino.read_events(&mut buf, |_| any = true) {}
        if any && stamps(&crate::tls::files(&w.cfg)) != w.seen {
            self.cert_reload_at = Some(now + SETTLE);
        }
    }

    /// Reads the certificates again (SIGHUP, or a file changed); keeps the old ones when
    /// the new ones are broken.
    pub(super) fn reload_certs(&mut self) {
        let (Some(tls), Some(w)) = (&mut self.tls, &mut self.cert_watch) else {
            return;
        };
        let names = self.handler.router.names();
        let files = crate::tls::files(&w.cfg);
        let now_seen = stamps(&files);
        match tls.build(&w.cfg, names.clone()) {
            Ok(config) => {
                tls.install(config, names);
                w.seen = now_seen;
                self.handler.log(
                    Level::Info,
                    format_args!("certificates reloaded; new handshakes use them"),
                );
            }
            Err(e) => {
                w.seen = now_seen;
                self.handler.log(
                    Level::Error,
                    format_args!("certificate reload: {e}; keeping the certificates in use"),
                );
            }
        }
        self.handler.flush_logs();
    }

    /// Maps every TLS connection's SNI name under the current router (after a reload).
    pub(super) fn rehost_tls(&mut self) {
        let Some(tls) = &self.tls else { return };
        for (_, slot) in self.conns.iter_mut() {
            if let Stream::Tls(t) = &mut slot.sock {
                t.rehost(&tls.names);
                slot.conn
                    .set_transport(crate::conn::io::Socket::transport(&**t));
            }
        }
    }
}
