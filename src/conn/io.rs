//! The driver: moves bytes between a [`Conn`] and its socket until the socket would block,
//! the connection has nothing more to do, or its per-turn budget is spent (so one fast client
//! cannot starve the others). mio is edge-triggered, so readiness is remembered in the
//! connection and only cleared by `EAGAIN` or a short read/write.
use std::fs::File;
use std::io::{self, IoSlice};

use super::out::{Out, FEW_IOV, MAX_IOV};
use super::{Conn, Limits, Millis, Pool, Service, Transport};

/// A connected socket as the driver needs it. The real one is a `mio::net::TcpStream`;
/// tests and fuzzers use an in-memory one; [`super::transport::TlsStream`] puts TLS over
/// either. The provided methods are the TLS hooks: constants for a plain socket, so the
/// plain driver compiles to what it was without them.
pub trait Socket {
    /// The transport may hold output back (TLS records, alerts, tickets, close_notify):
    /// the driver then flushes it even when the response queue is empty.
    const BUFFERED: bool = false;
    /// Output is held back ([`Socket::BUFFERED`] transports only).
    fn has_pending(&self) -> bool {
        false
    }
    /// Writes held-back output. Ok(true) when none is left, Ok(false) when the socket
    /// would block.
    fn flush(&mut self) -> io::Result<bool> {
        Ok(true)
    }
    /// Whether a short read means the socket is empty until its next event (for TLS a
    /// read can end at a record boundary with more ciphertext waiting).
    fn drained(&self) -> bool {
        true
    }
    /// What requests on this socket may know about their transport.
    fn transport(&self) -> Transport {
        Transport::Plain
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes the buffers with one call; `more` says a `sendfile` follows at once.
    fn send(&mut self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize>;
    /// Sends up to `len` bytes of `file` from `*offset`, advancing it.
    fn sendfile(&mut self, file: &File, offset: &mut u64, len: usize) -> io::Result<usize>;
    fn shutdown_write(&mut self) -> io::Result<()>;
}

/// What the event loop should do with the connection after a turn.
#[derive(Debug, PartialEq, Eq)]
pub enum Turn {
    /// Wait for the next readiness event or deadline.
    Wait,
    /// The budget ran out with work left: drive it again before sleeping.
    Again,
    /// The connection is closed; drop the socket.
    Close,
}

enum Wrote {
    Drained,
    Blocked,
    Budget,
}

/// Runs one turn of the connection.
pub fn drive<K: Socket, S: Service>(
    conn: &mut Conn,
    sock: &mut K,
    svc: &mut S,
    pool: &mut Pool,
    lim: &Limits,
    now: Millis,
) -> Turn {
    let mut write_budget = lim.write_budget;
    let mut requests = lim.requests_per_turn;
    let turn = loop {
        if conn.is_closed() {
            break Turn::Close;
        }
        if K::BUFFERED && !conn.has_output() && sock.has_pending() && conn.may_write() {
            // Transport output with no response behind it (handshake, alert, ticket,
            // close_notify): flush it without counting it as the response's.
            match sock.flush() {
                Ok(true) if conn.take_tx_pending() => {
                    // The last records of a response just left: it is written now.
                    conn.on_written(now, lim);
                    if conn.on_drained(now, lim) && sock.shutdown_write().is_err() {
                        conn.on_io_error();
                    }
                }
                Ok(true) => {}
                Ok(false) => conn.on_write_blocked(),
                Err(_) => conn.on_io_error(),
            }
            continue;
        }
        if conn.wants_write() {
            match write_out(conn, sock, &mut write_budget, now, lim) {
                Ok(Wrote::Drained) => {
                    if K::BUFFERED {
                        conn.take_tx_pending();
                    }
                    if conn.on_drained(now, lim) && sock.shutdown_write().is_err() {
                        conn.on_io_error();
                    }
                    continue;
                }
                Ok(Wrote::Blocked) => {
                    if K::BUFFERED && !conn.has_output() {
                        // Handed over, not yet written: the send deadline still applies.
                        conn.set_tx_pending(now, lim);
                    }
                    conn.on_write_blocked();
                }
                Ok(Wrote::Budget) => break Turn::Again,
                Err(Failure::Truncated) => {
                    conn.file_truncated();
                    continue;
                }
                Err(Failure::Io) => {
                    conn.on_io_error();
                    continue;
                }
            }
        }
        if conn.process(now, svc, lim, &mut requests) {
            continue;
        }
        if conn.phase().is_draining() && !conn.has_output() && !(K::BUFFERED && sock.has_pending())
        {
            // Closing with nothing (left) to send: finish now.
            if conn.on_drained(now, lim) && sock.shutdown_write().is_err() {
                conn.on_io_error();
            }
            continue;
        }
        if requests == 0 {
            break Turn::Again;
        }
        if conn.wants_read() {
            let Some(space) = conn.read_space(pool, lim) else {
                // Input buffer full of unprocessed requests: wait for the output to drain.
                break Turn::Wait;
            };
            let want = space.len();
            match sock.read(space) {
                Ok(n) => {
                    conn.on_read(n, n < want && sock.drained(), now, lim);
                    if K::BUFFERED {
                        conn.set_transport(sock.transport());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => conn.on_read_blocked(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => conn.on_io_error(),
            }
            continue;
        }
        break Turn::Wait;
    };
    conn.release_if_idle(pool);
    turn
}

enum Failure {
    Truncated,
    Io,
}

fn write_out<K: Socket>(
    conn: &mut Conn,
    sock: &mut K,
    budget: &mut usize,
    now: Millis,
    lim: &Limits,
) -> Result<Wrote, Failure> {
    loop {
        let Some(out) = conn.out_mut().filter(|o| !o.is_empty()) else {
            return flushed(sock);
        };
        if *budget == 0 {
            return Ok(Wrote::Budget);
        }
        if let Some((file, pos, end)) = out.front_file() {
            let want = ((end - *pos) as usize).min(*budget);
            match sock.sendfile(file, pos, want) {
                // The file ended before the promised length: it shrank while being sent.
                Ok(0) => return Err(Failure::Truncated),
                Ok(n) => {
                    out.file_advanced(n);
                    *budget -= n;
                    conn.on_written(now, lim);
                    // A short sendfile may be a full socket or a shrunken file: the next call
                    // tells which (EAGAIN or 0).
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Wrote::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(Failure::Io),
            }
            continue;
        }
        let (sent, total) = if out.chunk_count() <= FEW_IOV {
            send_gathered(out, sock, &mut [IoSlice::new(&[]); FEW_IOV])
        } else {
            send_gathered(out, sock, &mut [IoSlice::new(&[]); MAX_IOV])
        };
        match sent {
            Ok(n) => {
                out.advance(n);
                *budget = budget.saturating_sub(n);
                conn.on_written(now, lim);
                if n < total {
                    // A short write means the socket buffer is full; an edge will follow.
                    return Ok(Wrote::Blocked);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Wrote::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(Failure::Io),
        }
    }
}

/// The response queue is empty: drained once the transport has written what it held.
#[inline]
fn flushed<K: Socket>(sock: &mut K) -> Result<Wrote, Failure> {
    if !K::BUFFERED {
        return Ok(Wrote::Drained);
    }
    match sock.flush() {
        Ok(true) => Ok(Wrote::Drained),
        Ok(false) => Ok(Wrote::Blocked),
        Err(_) => Err(Failure::Io),
    }
}

/// Sends as many queued memory chunks as fit in `iov` with one call; returns the result and
/// the bytes offered.
fn send_gathered<'a, K: Socket>(
    out: &'a Out,
    sock: &mut K,
    iov: &mut [IoSlice<'a>],
) -> (io::Result<usize>, usize) {
    let (n, more) = out.gather(iov);
    let total = iov[..n].iter().map(|s| s.len()).sum();
    (sock.send(&iov[..n], more), total)
}

impl Socket for mio::net::TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        io::Read::read(self, buf)
    }

    fn send(&mut self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
        use std::os::fd::AsFd;
        crate::sys::net::send_vectored(self.as_fd(), bufs, more)
    }

    fn sendfile(&mut self, file: &File, offset: &mut u64, len: usize) -> io::Result<usize> {
        use std::os::fd::AsFd;
        crate::sys::net::sendfile(self.as_fd(), file.as_fd(), offset, len)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        mio::net::TcpStream::shutdown(self, std::net::Shutdown::Write)
    }
}
