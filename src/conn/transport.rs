//! The TLS transport: a rustls `ServerConnection` between a socket and the driver, itself a
//! [`Socket`], so [`super::Conn`] and the HTTP code never learn which transport they run
//! on. Reads return plaintext; sends take plaintext and leave as TLS records; "sendfile"
//! becomes `pread` into a scratch slice that rustls encrypts (no kernel TLS here). Output
//! rustls holds back (handshake messages, alerts, session tickets, close_notify, records
//! the socket could not take yet) is written by [`Socket::flush`], which the driver calls
//! even when the response queue is empty.
//!
//! The plain transport is the raw socket itself (`impl Socket for TcpStream` in [`super::io`]):
//! the driver is generic over the socket, so the plain path stays monomorphic, with every
//! TLS hook a constant `false`.
use std::cell::RefCell;
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

use super::io::Socket;
use super::Transport;
use crate::handler::route::HostNames;

/// File bytes encrypted per "sendfile" call: a few full TLS records.
const FILE_SLICE: usize = 64 * 1024;
/// Memory bytes encrypted before the socket is asked to take them.
const SEND_SLICE: usize = 256 * 1024;

/// The page a client that sent plain HTTP to the TLS port gets, in clear text (nginx
/// says the same with its `497`, shown as 400).
const PLAIN_HTTP_BODY: &str = "<!DOCTYPE html>\n<html><head><title>400 Bad Request</title></head>\n\
<body><h1>400 Bad Request</h1><p>A plain HTTP request was sent to an HTTPS port.</p></body></html>\n";

fn plain_http_response() -> String {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{PLAIN_HTTP_BODY}",
        PLAIN_HTTP_BODY.len()
    )
}

thread_local! {
    /// One scratch slice for every connection's file reads (one thread, one at a time).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A socket as rustls reads and writes it.
struct Raw<'a, K>(&'a mut K);

/// A socket as rustls reads it, noting a short read (the socket is then drained until its
/// next event, as the plain driver trusts; this saves the `EAGAIN` read per request).
struct RawRead<'a, K> {
    sock: &'a mut K,
    short: bool,
}

impl<K: Socket> Read for RawRead<'_, K> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.short = n > 0 && n < buf.len();
        Ok(n)
    }
}

impl<K: Socket> Write for Raw<'_, K> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.send(&[IoSlice::new(buf)], false)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.send(bufs, false)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub struct TlsStream<K> {
    sock: K,
    tls: ServerConnection,
    /// Names to map the SNI name to a host with (the router's, as of the handshake).
    names: Arc<HostNames>,
    transport: Transport,
    /// The first bytes have not arrived yet (they tell TLS from plain HTTP).
    fresh: bool,
    /// The socket returned EOF.
    eof: bool,
    /// The last read found the socket empty (`EAGAIN` or a short read), not just a TLS
    /// record boundary.
    drained: bool,
    /// The socket read of this call was short: do not read it again before its next event.
    short: bool,
    /// `shutdown(SHUT_WR)` waits for the output (close_notify last) to be flushed.
    shut_pending: bool,
    /// Why TLS failed (for the error log when the connection closes).
    failed: Option<String>,
}

impl<K: Socket> TlsStream<K> {
    pub fn new(sock: K, config: &Arc<ServerConfig>, names: &Arc<HostNames>) -> io::Result<Self> {
        let mut tls = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
        // Back-pressure comes from the driver (it offers one batch, then waits for the
        // records to leave), so rustls may hold whatever one batch encrypts to.
        tls.set_buffer_limit(None);
        Ok(TlsStream {
            sock,
            tls,
            names: Arc::clone(names),
            transport: Transport::Tls { sni: None },
            fresh: true,
            eof: false,
            drained: false,
            short: false,
            shut_pending: false,
            failed: None,
        })
    }

    pub fn get_mut(&mut self) -> &mut K {
        &mut self.sock
    }

    pub fn get_ref(&self) -> &K {
        &self.sock
    }

    /// The SNI name the client sent, if any.
    pub fn server_name(&self) -> Option<&str> {
        self.tls.server_name()
    }

    /// The negotiated protocol version, once the handshake is done.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.protocol_version()
    }

    /// Maps the SNI name again, under a reloaded router's names.
    pub fn rehost(&mut self, names: &Arc<HostNames>) {
        self.names = Arc::clone(names);
        if !self.tls.is_handshaking() {
            self.transport = self.sni_transport();
        }
    }

    fn sni_transport(&self) -> Transport {
        let sni = self
            .tls
            .server_name()
            .and_then(|n| crate::tls::sni_host(&self.names, n))
            .and_then(|h| u16::try_from(h).ok());
        Transport::Tls { sni }
    }

    /// Why TLS failed on this connection, if it did (a handshake or record error, or plain
    /// HTTP on the TLS port).
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Best effort on a graceful close: close_notify, written if the socket takes it now.
    pub fn close_notify(&mut self) {
        if !self.tls.is_handshaking() {
            self.tls.send_close_notify();
        }
        let _ = self.flush();
    }

    /// Feeds the first bytes: a TLS handshake record goes on to rustls; anything that
    /// looks like an HTTP request line gets the clear-text 400 and an error.
    fn first_read(&mut self) -> io::Result<bool> {
        let mut buf = [0u8; 4096];
        let n = match self.sock.read(&mut buf) {
            Ok(0) => {
                self.eof = true;
                return Ok(true);
            }
            Ok(n) => n,
            Err(e) => return Err(e),
        };
        self.fresh = false;
        self.short = n < buf.len();
        if buf[0].is_ascii_uppercase() {
            // `GET / HTTP/1.1`: the 400 page in clear text, then close.
            let page = plain_http_response();
            let _ = self.sock.send(&[IoSlice::new(page.as_bytes())], false);
            let _ = self.sock.shutdown_write();
            self.failed = Some("plain HTTP request sent to an HTTPS port".into());
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "plain HTTP request sent to an HTTPS port",
            ));
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            self.tls.read_tls(&mut rest)?;
            self.process()?;
        }
        Ok(true)
    }

    /// Decrypts what was read; on a protocol error the alert rustls queued goes out first.
    fn process(&mut self) -> io::Result<()> {
        match self.tls.process_new_packets() {
            Ok(_) => {
                if self.transport == (Transport::Tls { sni: None }) && !self.tls.is_handshaking() {
                    self.transport = self.sni_transport();
                }
                if self.tls.wants_write() {
                    self.flush()?;
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.flush();
                self.failed = Some(e.to_string());
                Err(io::Error::new(io::ErrorKind::InvalidData, e))
            }
        }
    }

    /// Reads one batch of ciphertext from the socket. Ok(false): the socket is empty.
    fn read_more(&mut self) -> io::Result<bool> {
        if self.fresh {
            return match self.first_read() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                r => r,
            };
        }
        loop {
            let mut raw = RawRead {
                sock: &mut self.sock,
                short: false,
            };
            match self.tls.read_tls(&mut raw) {
                Ok(0) => self.eof = true,
                Ok(_) => self.short = raw.short,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.process()?;
            return Ok(true);
        }
    }
}

impl<K: Socket> Socket for TlsStream<K> {
    const BUFFERED: bool = true;

    /// Plaintext into `buf`: what rustls holds, then more records until `buf` is full or
    /// the socket is empty (so a short read still means "drained", see [`Socket::drained`]).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        self.drained = false;
        self.short = false;
        loop {
            match self.tls.reader().read(&mut buf[n..]) {
                // close_notify: a clean end of input.
                Ok(0) => return Ok(n),
                Ok(k) => {
                    n += k;
                    if n == buf.len() {
                        return Ok(n);
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket closed without close_notify: to HTTP, an EOF like any other.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(n),
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok(n);
            }
            if self.short {
                self.drained = true;
                return if n > 0 {
                    Ok(n)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            match self.read_more() {
                Ok(true) => {}
                Ok(false) => {
                    self.drained = true;
                    return if n > 0 {
                        Ok(n)
                    } else {
                        Err(io::ErrorKind::WouldBlock.into())
                    };
                }
                Err(e) if n > 0 && e.kind() == io::ErrorKind::WouldBlock => return Ok(n),
                Err(e) => return Err(e),
            }
        }
    }

    fn send(&mut self, bufs: &[IoSlice<'_>], _more: bool) -> io::Result<usize> {
        if !self.flush()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total <= SEND_SLICE {
            // rustls fills records across the slices (a batch of pipelined responses
            // becomes as few records as its size allows); they leave in one writev.
            let n = self.tls.writer().write_vectored(bufs)?;
            self.flush()?;
            return Ok(n);
        }
        // Large bodies: encrypted a slice at a time, only while the socket takes the
        // records (memory stays bounded; a short count means the socket is full).
        let mut done = 0;
        for b in bufs {
            let mut at = 0;
            while at < b.len() {
                let end = (at + SEND_SLICE).min(b.len());
                let k = self.tls.writer().write(&b[at..end])?;
                at += k;
                done += k;
                if !self.flush()? || k == 0 {
                    return Ok(done);
                }
            }
        }
        Ok(done)
    }

    fn sendfile(&mut self, file: &File, offset: &mut u64, len: usize) -> io::Result<usize> {
        if !self.flush()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let want = len.min(FILE_SLICE);
        let n = SCRATCH.with(|s| -> io::Result<usize> {
            let mut s = s.borrow_mut();
            if s.len() < FILE_SLICE {
                s.resize(FILE_SLICE, 0);
            }
            let got = file.read_at(&mut s[..want], *offset)?;
            if got > 0 {
                self.tls.writer().write_all(&s[..got])?;
            }
            Ok(got)
        })?;
        *offset += n as u64;
        if n > 0 {
            self.flush()?;
        }
        Ok(n)
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        self.shut_pending = true;
        self.flush().map(|_| ())
    }

    fn has_pending(&self) -> bool {
        self.tls.wants_write() || self.shut_pending
    }

    fn flush(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut Raw(&mut self.sock)) {
                Ok(0) => return Ok(false),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.shut_pending {
            self.shut_pending = false;
            self.sock.shutdown_write()?;
        }
        Ok(true)
    }

    fn drained(&self) -> bool {
        self.drained
    }

    fn transport(&self) -> Transport {
        self.transport
    }
}
