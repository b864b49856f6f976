//! systemd's notification socket (`sd_notify(3)`): datagrams sent to `$NOTIFY_SOCKET`, a
//! path or an abstract name (`@name`), and the `CLOCK_MONOTONIC` reading `MONOTONIC_USEC=`
//! wants. Nothing here knows what the messages mean (see `server/notify.rs`).
use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use super::cvt;

/// An unbound datagram socket and the address of systemd's.
pub struct NotifySocket {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl NotifySocket {
    /// A socket for `name`: an absolute path, or `@name` for an abstract socket (the `@`
    /// stands for the leading NUL byte, as in systemd). Anything else is `InvalidInput`
    /// (systemd's `vsock:` addresses included).
    pub fn new(name: &OsStr) -> io::Result<NotifySocket> {
        let bytes = name.as_bytes();
        let addr = match bytes.first() {
            Some(b'@') if bytes.len() > 1 => SocketAddr::from_abstract_name(&bytes[1..])?,
            Some(b'/') => SocketAddr::from_pathname(name)?,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not an absolute path or an @abstract name",
                ))
            }
        };
        let sock = UnixDatagram::unbound()?;
        // The event loop must never wait for systemd: a full queue drops the message.
        sock.set_nonblocking(true)?;
        Ok(NotifySocket { sock, addr })
    }

    /// Sends one datagram (newline-separated `KEY=VALUE` assignments).
    pub fn send(&self, msg: &str) -> io::Result<()> {
        self.sock.send_to_addr(msg.as_bytes(), &self.addr).map(drop)
    }
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC=` with.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let rc = cvt(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) });
    debug_assert!(rc.is_ok());
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}
