//! Turns `listen` entries into listening sockets: binds addresses (a bare port as one
//! dual-stack socket, or two where the system has no dual stack) and adopts the sockets
//! systemd passed (`sd:N`, `sd:NAME`) without binding them again. Used at start and by
//! reloads; each passed socket is adopted at most once.
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};

use mio::net::TcpListener;

use crate::config::{Listen, ListenAddr, SdSocket};
use crate::sys;

const BACKLOG: i32 = 4096;

/// The sockets systemd passed, taken from the environment once at start-up. A socket moves
/// out of here when a listener adopts it and never comes back (a reload that drops its
/// listener closes it).
pub struct Activation {
    passed: Vec<(String, Option<OwnedFd>)>,
    why_none: Option<String>,
}

impl Activation {
    /// Takes what systemd passed (and removes `LISTEN_*` from the environment). Call once,
    /// before any thread starts.
    pub fn from_env() -> Activation {
        let p = sys::activation::take_listen_fds();
        Activation {
            passed: p.fds.into_iter().map(|(n, fd)| (n, Some(fd))).collect(),
            why_none: p.why_none,
        }
    }

    /// No sockets passed (for tests and callers that never use `sd:`).
    pub fn none() -> Activation {
        Activation {
            passed: Vec::new(),
            why_none: Some("systemd passed no sockets".into()),
        }
    }

    /// Which passed socket `sd` names, checked to be a listening TCP socket not adopted yet.
    fn find(&self, sd: &SdSocket) -> Result<usize, String> {
        let i = match sd {
            SdSocket::Index(n) => {
                if let Some(why) = self.none_reason() {
                    return Err(why);
                }
                if *n > self.passed.len() {
                    return Err(format!(
                        "systemd passed {} socket{} (LISTEN_FDS), so there is no socket {n}",
                        self.passed.len(),
                        if self.passed.len() == 1 { "" } else { "s" }
                    ));
                }
                n - 1
            }
            SdSocket::Name(name) => {
                if let Some(why) = self.none_reason() {
                    return Err(why);
                }
                let Some(i) = self.passed.iter().position(|(n, _)| n == name) else {
                    let names: Vec<&str> = self.passed.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(format!(
                        "systemd passed no socket named {name:?} (LISTEN_FDNAMES: {})",
                        names.join(":")
                    ));
                };
                i
            }
        };
        let Some(fd) = &self.passed[i].1 else {
            return Err(
                "that socket is already taken by another sd: entry, or an earlier reload closed it"
                    .into(),
            );
        };
        sys::net::check_tcp_listener(fd.as_fd())
            .map_err(|why| format!("passed socket {} is {why}", i + 1))?;
        Ok(i)
    }

    fn none_reason(&self) -> Option<String> {
        match (&self.why_none, self.passed.is_empty()) {
            (Some(why), _) => Some(why.clone()),
            (None, true) => Some("systemd passed no sockets".into()),
            (None, false) => None,
        }
    }

    fn adopt(&mut self, i: usize) -> io::Result<TcpListener> {
        let fd = self.passed[i].1.take().expect("checked by find");
        let l = std::net::TcpListener::from(fd);
        l.set_nonblocking(true)?;
        // As on the sockets tern binds; inherited by accepted sockets. systemd may refuse
        // nothing here, but a socket unit is free to have set its own options already.
        let _ = sys::net::set_nodelay(l.as_fd());
        Ok(TcpListener::from_std(l))
    }
}

/// Opens every entry of `listen`, in order (a bare port may give two sockets): first checks
/// every `sd:` entry against what systemd passed, then binds the addresses, and only then
/// adopts the passed sockets, so a failure leaves `sd` as it was. `reuse_port` is the global
/// setting. Errors name the entry.
pub fn bind(
    listen: &[Listen],
    reuse_port: bool,
    sd: &mut Activation,
) -> io::Result<Vec<(ListenAddr, TcpListener)>> {
    let mut found = Vec::new();
    for l in listen {
        if let ListenAddr::Systemd(s) = &l.addr {
            let i = sd
                .find(s)
                .map_err(|m| io::Error::other(format!("listen {}: {m}", l.addr)))?;
            if found.contains(&i) {
                return Err(io::Error::other(format!(
                    "listen {}: passed socket {} is named by another listen entry too",
                    l.addr,
                    i + 1
                )));
            }
            found.push(i);
        }
    }
    let mut out = Vec::with_capacity(listen.len());
    let mut found = found.into_iter();
    let mut adopt = Vec::new();
    for l in listen {
        let rp = reuse_port || l.reuse_port;
        let err =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot listen on {}: {e}", l.addr));
        match &l.addr {
            ListenAddr::Addr(a) => {
                let s = sys::net::listen(a, BACKLOG, rp, true).map_err(err)?;
                out.push((l.addr.clone(), Some(TcpListener::from_std(s))));
            }
            ListenAddr::AllPort(port) => {
                for s in all_interfaces(*port, rp).map_err(err)? {
                    out.push((l.addr.clone(), Some(TcpListener::from_std(s))));
                }
            }
            ListenAddr::Systemd(_) => {
                adopt.push((out.len(), found.next().expect("found above")));
                out.push((l.addr.clone(), None));
            }
        }
    }
    for (at, i) in adopt {
        out[at].1 = Some(sd.adopt(i)?);
    }
    Ok(out
        .into_iter()
        .map(|(a, s)| (a, s.expect("bound or adopted")))
        .collect())
}

/// A bare port: one dual-stack socket on `[::]` (`IPV6_V6ONLY=0`); without IPv6 just
/// `0.0.0.0`; where dual stack is refused, `[::]` IPv6 only plus `0.0.0.0` on the same port.
fn all_interfaces(port: u16, reuse_port: bool) -> io::Result<Vec<std::net::TcpListener>> {
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let v4 = |port| SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    match sys::net::listen(&v6, BACKLOG, reuse_port, false) {
        Ok(s) => Ok(vec![s]),
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => Ok(vec![sys::net::listen(
            &v4(port),
            BACKLOG,
            reuse_port,
            true,
        )?]),
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            let s6 = sys::net::listen(&v6, BACKLOG, reuse_port, true)?;
            // Port 0: the IPv4 socket takes the port the kernel gave the IPv6 one.
            let port = s6.local_addr()?.port();
            let s4 = sys::net::listen(&v4(port), BACKLOG, reuse_port, true)?;
            Ok(vec![s6, s4])
        }
        Err(e) => Err(e),
    }
}
