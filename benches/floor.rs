//! Load-benchmark reference (run by benches/load.sh, not a criterion benchmark): the cheapest
//! possible HTTP "server", to show where the kernel's share of a request ends. It answers every
//! request head (a blank line ending it, counted across reads) with one precomputed response of
//! the same size as a real server's answer for the benchmark's 1 KiB file, and all the heads
//! that arrived in one read with one write. It reads once per readiness event and trusts a short
//! read, like tern. It parses nothing: it serves only the `/1k.bin` scenarios. A read that
//! holds an HTTP/1.0 request line sets the connection's kind: `Connection: keep-alive` in
//! the request (ab -k) gets it echoed, anything else gets `Connection: close` and a close.
//!
//! `floor ADDR BODY_FILE` prints `listening on http://ADDR` and serves until killed; as the
//! shared upstream of the proxy scenario it also tells how many connections it accepted in all,
//! as a line `accepted N` on stdout at most every 100 ms while the number changes. Without
//! arguments (as under `cargo test --all-targets`) it exits.
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
/// Responses in the output buffer: any number owed is written from it cyclically.
const COPIES: usize = 32;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Keep11,
    Keep10,
    Close,
}

struct Conn {
    stream: TcpStream,
    /// The last four bytes read, to find a `\r\n\r\n` split across reads.
    tail: u32,
    /// Bytes of responses owed to the client, and bytes of them already written.
    owed: usize,
    sent: usize,
    /// Which of the precomputed responses this connection gets: HTTP/1.1 keep-alive,
    /// HTTP/1.0 keep-alive (`Connection: keep-alive`) or HTTP/1.0 closing.
    kind: Kind,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        eprintln!("floor: a reference of benches/load.sh; usage: floor ADDR BODY_FILE");
        return;
    }
    if let Err(e) = run(&args) {
        eprintln!("floor: {e}");
        std::process::exit(1);
    }
}

fn response(body: &[u8], connection: &str) -> Vec<u8> {
    // The headers tern sends for the file, with fixed values of the same lengths.
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nDate: Sun, 22 Nov 2026 02:00:00 GMT\r\nServer: tern\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\
         Last-Modified: Sun, 22 Nov 2026 01:00:00 GMT\r\nETag: \"3e8b1f-400-18a9b2c3d4e5f607\"\r\n\
         Accept-Ranges: bytes\r\n{}\r\n",
        body.len(),
        connection
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn run(args: &[String]) -> io::Result<()> {
    let [addr, body] = args else {
        return Err(io::Error::other("usage: floor ADDR BODY_FILE"));
    };
    let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
    let body = std::fs::read(body)?;
    let keep11 = response(&body, "").repeat(COPIES);
    let keep10 = response(&body, "Connection: keep-alive\r\n").repeat(COPIES);
    let close = response(&body, "Connection: close\r\n");

    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on http://{}", listener.local_addr()?);
    let mut conns: Slab<Conn> = Slab::with_capacity(1024);
    let mut events = Events::with_capacity(256);
    let mut buf = vec![0u8; 64 * 1024];
    let (mut accepted, mut told) = (0u64, 0u64);
    let mut told_at = std::time::Instant::now();
    let tick = std::time::Duration::from_millis(100);
    loop {
        if accepted != told && told_at.elapsed() >= tick {
            println!("accepted {accepted}");
            (told, told_at) = (accepted, std::time::Instant::now());
        }
        let timeout = (accepted != told).then_some(tick);
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    accepted += 1;
                    let _ = stream.set_nodelay(true);
                    let entry = conns.vacant_entry();
                    let token = Token(entry.key());
                    poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(Conn {
                        stream,
                        tail: 0,
                        owed: 0,
                        sent: 0,
                        kind: Kind::Keep11,
                    });
                }
                continue;
            }
            let key = ev.token().0;
            let Some(c) = conns.get_mut(key) else {
                continue;
            };
            let mut alive = true;
            if ev.is_readable() {
                match c.stream.read(&mut buf) {
                    Ok(0) => alive = false,
                    Ok(n) => {
                        let mut heads = 0;
                        for &b in &buf[..n] {
                            c.tail = (c.tail << 8) | u32::from(b);
                            heads += usize::from(c.tail == 0x0d0a_0d0a);
                        }
                        // "HTTP/1.0" at the end of the request line: ab.
                        if heads > 0 && memchr::memmem::find(&buf[..n], b" HTTP/1.0\r\n").is_some()
                        {
                            let ka = buf[..n]
                                .windows(10)
                                .any(|w| w.eq_ignore_ascii_case(b"keep-alive"));
                            c.kind = if ka { Kind::Keep10 } else { Kind::Close };
                        }
                        c.owed += heads
                            * match c.kind {
                                Kind::Keep11 => keep11.len() / COPIES,
                                Kind::Keep10 => keep10.len() / COPIES,
                                Kind::Close => close.len(),
                            };
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => alive = false,
                }
            }
            while alive && c.sent < c.owed {
                let res = match c.kind {
                    Kind::Close => c.stream.write(&close[c.sent.min(close.len())..]),
                    Kind::Keep11 | Kind::Keep10 => {
                        let all = if c.kind == Kind::Keep11 {
                            &keep11
                        } else {
                            &keep10
                        };
                        let off = c.sent % (all.len() / COPIES);
                        let end = (off + c.owed - c.sent).min(all.len());
                        c.stream.write(&all[off..end])
                    }
                };
                match res {
                    Ok(n) => c.sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => alive = false,
                }
                if c.kind == Kind::Close && c.sent >= close.len() {
                    alive = false;
                }
            }
            if c.sent == c.owed {
                c.sent = 0;
                c.owed = 0;
            }
            if !alive {
                // Closing the socket takes it out of the epoll set.
                drop(conns.remove(key));
            }
        }
    }
}
