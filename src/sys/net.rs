//! Socket output: `sendmsg` with `MSG_MORE` (so a response head rides with the first body
//! bytes) and `sendfile(2)` for file bodies.
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use super::cvt;

// sendfile's offset is `off_t`; tern only builds where that is 64 bits wide (large files).
const _: () = assert!(std::mem::size_of::<libc::off_t>() == 8);

/// Writes `bufs` with one `sendmsg`. `more` sets `MSG_MORE`: the kernel holds a partial
/// segment back because more bytes (a `sendfile`) follow at once. Never raises SIGPIPE.
pub fn send_vectored(sock: BorrowedFd<'_>, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
    let mut flags = libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT;
    if more {
        flags |= libc::MSG_MORE;
    }
    // IoSlice is guaranteed ABI-compatible with `struct iovec` on Unix.
    let iovlen = bufs.len().min(libc::UIO_MAXIOV as usize);
    // SAFETY: an all-zero msghdr is valid (null name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iovlen as _;
    // SAFETY: `msg` points at `iovlen` live iovecs borrowed for the duration of the call, the
    // kernel only reads them, and `sock` is an open descriptor.
    let n = cvt(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) })?;
    Ok(n as usize)
}

/// Copies up to `count` bytes of `file` starting at `*offset` into `sock` inside the kernel,
/// advancing `*offset` by the number of bytes sent. Returns 0 when the file ended early
/// (it was truncated while being sent).
pub fn sendfile(
    sock: BorrowedFd<'_>,
    file: BorrowedFd<'_>,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = i64::try_from(*offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset past i64"))?;
    // SAFETY: both descriptors are open for the call's duration and `off` is a live local the
    // kernel writes the new offset into.
    let n = cvt(unsafe { libc::sendfile(sock.as_raw_fd(), file.as_raw_fd(), &mut off, count) })?;
    *offset = off as u64;
    Ok(n as usize)
}

/// Reads an integer socket option.
pub fn get_int_opt(sock: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `value` and `len` live across the call and `len` holds `value`'s exact size.
    cvt(unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Checks that a socket handed over by systemd is one tern can serve: a listening TCP
/// socket (IPv4 or IPv6), not a datagram or Unix socket, nor a stream nobody listens on.
pub fn check_tcp_listener(sock: BorrowedFd<'_>) -> Result<(), &'static str> {
    let get = |name| get_int_opt(sock, libc::SOL_SOCKET, name).map_err(|_| "not a socket");
    if !matches!(get(libc::SO_DOMAIN)?, libc::AF_INET | libc::AF_INET6) {
        return Err("not an IPv4 or IPv6 socket");
    }
    if get(libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err("not a stream (TCP) socket");
    }
    if get(libc::SO_ACCEPTCONN)? != 1 {
        return Err("not listening");
    }
    Ok(())
}

/// Sets an integer socket option (used for `TCP_NODELAY` and `SO_REUSEPORT` on listeners).
pub fn set_int_opt(sock: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its exact size is passed.
    cvt(unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `TCP_NODELAY` on a listener is inherited by every accepted socket on Linux, which saves a
/// `setsockopt` per connection.
pub fn set_nodelay(sock: BorrowedFd<'_>) -> io::Result<()> {
    set_int_opt(sock, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)
}

/// Creates a non-blocking listening socket: `SO_REUSEADDR`, optionally `SO_REUSEPORT` (several
/// tern processes sharing one port), `IPV6_V6ONLY` for IPv6 addresses (`v6only`: 1, as
/// nginx; 0 makes a dual-stack socket that IPv4 clients reach as `::ffff:a.b.c.d`),
/// `TCP_NODELAY` (inherited by accepted sockets) and `TCP_DEFER_ACCEPT` (a connection is
/// handed over once its first bytes arrived, so the first read after accept finds the
/// request). A system that refuses `IPV6_V6ONLY=0` gives `ErrorKind::Unsupported`.
pub fn listen(
    addr: &std::net::SocketAddr,
    backlog: i32,
    reuse_port: bool,
    v6only: bool,
) -> io::Result<std::net::TcpListener> {
    use std::net::SocketAddr;
    use std::os::fd::{FromRawFd, OwnedFd};
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: plain syscall; a non-negative result is a descriptor we own.
    let fd = cvt(unsafe { libc::socket(family, ty, 0) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else; OwnedFd closes it on error.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let b = sock.as_fd();
    set_int_opt(b, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuse_port {
        set_int_opt(b, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    if addr.is_ipv6() {
        set_int_opt(b, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, v6only.into()).map_err(|e| {
            if v6only {
                e
            } else {
                io::Error::new(io::ErrorKind::Unsupported, e)
            }
        })?;
    }
    set_nodelay(b)?;
    // Best effort: not every kernel or socket type supports it.
    let _ = set_int_opt(b, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, 1);
    let rc = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sin` is a valid sockaddr_in whose exact size is passed.
            unsafe {
                libc::bind(
                    fd,
                    (&sin as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: `sin6` is a valid sockaddr_in6 whose exact size is passed.
            unsafe {
                libc::bind(
                    fd,
                    (&sin6 as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    cvt(rc)?;
    // SAFETY: plain syscall on our bound socket.
    cvt(unsafe { libc::listen(fd, backlog) })?;
    Ok(std::net::TcpListener::from(sock))
}

/// Whether an idle connection is still usable: nothing to read and not closed (a pooled
/// upstream connection the upstream closed, or sent something unasked, is not).
pub fn idle_alive(sock: BorrowedFd<'_>) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: `b` is a live 1-byte buffer; MSG_PEEK leaves any data in the socket.
    let n = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            b.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
}
