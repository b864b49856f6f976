//! The TLS-fronted connection (harness 7): rustls's server side in a [`TlsStream`] over an in-memory
//! socket, with [`Conn`] and the real handler behind it (what `tern` runs on a TLS
//! listener). The first byte picks how the rest is fed:
//! - even: as raw bytes from the network, in chunks (ClientHellos, garbage, plain HTTP):
//!   no panic, and the connection ends once the input ends and time passes;
//! - odd: as plaintext through a real rustls client that first completes a handshake with
//!   the server (certificates in `src/fuzzing/tls/`): every byte the server sends must be
//!   valid TLS to the client, and what it decrypts must be well-formed responses, in the
//!   order the requests were answered.
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig};

use super::{check_responses, site, Recorder};
use crate::conn::io::{drive, Turn};
use crate::conn::memsock::MemSocket;
use crate::conn::transport::TlsStream;
use crate::conn::{Conn, Limits, Pool};
use crate::handler::route::HostNames;
use crate::handler::{Handler, Router, Site};

const CA: &[u8] = include_bytes!("tls/ca.pem");
const CERT: &[u8] = include_bytes!("tls/cert.pem");
const KEY: &[u8] = include_bytes!("tls/key.pem");

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    thread_local! {
        static CFG: (Arc<ServerConfig>, Arc<ClientConfig>) = {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT)
                .collect::<Result<_, _>>()
                .expect("fuzz certificate");
            let key = PrivateKeyDer::from_pem_slice(KEY).expect("fuzz key");
            let mut server = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("server config");
            server.alpn_protocols = vec![b"http/1.1".to_vec()];
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(CA).expect("fuzz CA"))
                .expect("root");
            let client = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            (Arc::new(server), Arc::new(client))
        };
    }
    CFG.with(|c| (Arc::clone(&c.0), Arc::clone(&c.1)))
}

struct Rig {
    conn: Conn,
    sock: TlsStream<MemSocket>,
    svc: Recorder,
    pool: Pool,
    lim: Limits,
    now: u64,
}

impl Rig {
    fn run(&mut self) {
        for _ in 0..10_000 {
            self.conn.set_readable();
            self.conn.set_writable();
            let t = drive(
                &mut self.conn,
                &mut self.sock,
                &mut self.svc,
                &mut self.pool,
                &self.lim,
                self.now,
            );
            if t != Turn::Again {
                return;
            }
        }
        panic!("a TLS connection never settles");
    }

    /// The peer stops sending and time passes: the connection must end.
    fn finish(&mut self) {
        self.sock.get_mut().eof = true;
        self.conn.set_read_closed();
        self.run();
        for _ in 0..4 {
            if self.conn.is_closed() {
                break;
            }
            self.now += 60_000;
            self.conn.on_timeout(self.now, &mut self.svc, &self.lim);
            self.run();
        }
        assert!(
            self.conn.is_closed(),
            "TLS connection still open in {:?}",
            self.conn.phase()
        );
    }
}

pub fn tls(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (server, client) = configs();
    let lim = Limits {
        max_head: 2048,
        out_high_water: 4096,
        requests_per_turn: 4,
        write_budget: 8192,
        ..Limits::default()
    };
    let handler = Handler::new(
        site(),
        Router::single(Site::default()),
        Some("tern"),
        1_700_000_000,
    );
    let names = Arc::new(HostNames::default());
    let mut rig = Rig {
        conn: Conn::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, &lim),
        sock: TlsStream::new(MemSocket::new(), &server, &names).expect("server connection"),
        svc: Recorder {
            inner: handler,
            expected: Vec::new(),
        },
        pool: Pool::new(512, 2),
        lim,
        now: 0,
    };
    let step = 1 + usize::from(mode >> 1) % 97;
    if mode & 1 == 0 {
        for chunk in rest.chunks(step) {
            rig.sock.get_mut().push(chunk);
            rig.run();
            if rig.conn.is_closed() {
                return;
            }
        }
        return rig.finish();
    }
    let name = ServerName::try_from("localhost").expect("name");
    let mut cl = ClientConnection::new(client, name).expect("client");
    let mut plain = Vec::new();
    // Moves bytes both ways until neither side has anything to say.
    let pump = |rig: &mut Rig, cl: &mut ClientConnection, plain: &mut Vec<u8>| {
        for _ in 0..64 {
            let mut wire = Vec::new();
            while cl.wants_write() {
                cl.write_tls(&mut wire).expect("client writes");
            }
            if !wire.is_empty() {
                rig.sock.get_mut().push(&wire);
            }
            rig.run();
            let out = std::mem::take(&mut rig.sock.get_mut().output);
            let mut at = &out[..];
            while !at.is_empty() {
                cl.read_tls(&mut at).expect("client reads");
                cl.process_new_packets()
                    .expect("everything the server sends is valid TLS");
            }
            let mut buf = [0u8; 4096];
            loop {
                match cl.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => plain.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
            if wire.is_empty() && out.is_empty() {
                return;
            }
        }
    };
    pump(&mut rig, &mut cl, &mut plain);
    assert!(!cl.is_handshaking(), "the handshake completes");
    for chunk in rest.chunks(step) {
        if rig.conn.is_closed() {
            break;
        }
        cl.writer().write_all(chunk).expect("client buffers");
        pump(&mut rig, &mut cl, &mut plain);
        check_responses(&plain, &rig.svc.expected, false);
    }
    rig.finish();
    pump(&mut rig, &mut cl, &mut plain);
    check_responses(&plain, &rig.svc.expected, false);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;

    fn rig() -> Rig {
        let (server, _) = configs();
        let lim = Limits::default();
        let handler = Handler::new(site(), Router::single(Site::default()), None, 1_700_000_000);
        Rig {
            conn: Conn::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0, &lim),
            sock: TlsStream::new(MemSocket::new(), &server, &Arc::new(HostNames::default()))
                .expect("server connection"),
            svc: Recorder {
                inner: handler,
                expected: Vec::new(),
            },
            pool: Pool::new(4096, 2),
            lim,
            now: 0,
        }
    }

    /// Moves bytes between the client and the server until both are quiet; returns the
    /// plaintext the client received.
    fn pump(rig: &mut Rig, cl: &mut ClientConnection) -> Vec<u8> {
        let mut plain = Vec::new();
        for _ in 0..16 {
            let mut wire = Vec::new();
            while cl.wants_write() {
                cl.write_tls(&mut wire).unwrap();
            }
            if !wire.is_empty() {
                rig.sock.get_mut().push(&wire);
            }
            rig.run();
            let out = std::mem::take(&mut rig.sock.get_mut().output);
            let mut at = &out[..];
            while !at.is_empty() {
                cl.read_tls(&mut at).unwrap();
                cl.process_new_packets().unwrap();
            }
            let _ = cl.reader().read_to_end(&mut plain);
            if wire.is_empty() && out.is_empty() {
                break;
            }
        }
        plain
    }

    #[test]
    fn pipelined_responses_over_tls_leave_in_one_write_of_records() {
        let mut rig = rig();
        let (_, client) = configs();
        let mut cl =
            ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
        pump(&mut rig, &mut cl);
        assert!(!cl.is_handshaking());
        let sends = rig.sock.get_ref().sends;
        let req = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n".repeat(16);
        cl.writer().write_all(&req).unwrap();
        let plain = pump(&mut rig, &mut cl);
        assert_eq!(
            plain.windows(6).filter(|w| w == b"hello\n").count(),
            16,
            "{}",
            String::from_utf8_lossy(&plain)
        );
        // Sixteen cached small bodies and their heads: one writev of TLS records.
        assert_eq!(rig.sock.get_ref().sends - sends, 1);
    }

    #[test]
    fn a_keep_alive_request_over_tls_costs_one_read_and_one_write() {
        let mut rig = rig();
        let (_, client) = configs();
        let mut cl =
            ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
        pump(&mut rig, &mut cl);
        for _ in 0..3 {
            let (reads, sends) = (rig.sock.get_ref().reads, rig.sock.get_ref().sends);
            cl.writer()
                .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut wire = Vec::new();
            cl.write_tls(&mut wire).unwrap();
            rig.sock.get_mut().push(&wire);
            // One readiness event.
            rig.conn.set_readable();
            let t = drive(
                &mut rig.conn,
                &mut rig.sock,
                &mut rig.svc,
                &mut rig.pool,
                &rig.lim,
                0,
            );
            assert_eq!(t, Turn::Wait);
            // A short read is trusted, as on plain sockets: no EAGAIN read after it.
            assert_eq!(rig.sock.get_ref().reads - reads, 1);
            assert_eq!(rig.sock.get_ref().sends - sends, 1);
            let plain = pump(&mut rig, &mut cl);
            assert!(plain.ends_with(b"hello\n"));
        }
    }

    #[test]
    fn a_large_send_encrypts_only_what_the_socket_takes() {
        use crate::conn::io::Socket;
        let mut rig = rig();
        let (_, client) = configs();
        let mut cl =
            ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
        pump(&mut rig, &mut cl);
        let big = vec![7u8; 4 << 20];
        rig.sock.get_mut().write_room = Some(300_000);
        let n = rig.sock.send(&[IoSlice::new(&big)], false).unwrap();
        // Slices go in while the socket takes their records: about the room plus one slice,
        // not the whole 4 MiB.
        assert!(n > 0 && n <= 300_000 + 256 * 1024, "{n}");
        assert!(rig.sock.has_pending());
        assert!(rig.sock.send(&[IoSlice::new(&big[n..])], false).is_err());
    }

    #[test]
    fn records_held_for_a_full_socket_keep_the_send_deadline() {
        let mut rig = rig();
        let (_, client) = configs();
        let mut cl =
            ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
        pump(&mut rig, &mut cl);
        rig.sock.get_mut().write_room = Some(0);
        rig.now = 1_000;
        cl.writer()
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut wire = Vec::new();
        cl.write_tls(&mut wire).unwrap();
        rig.sock.get_mut().push(&wire);
        rig.run();
        // The queue is empty (all handed to rustls) but nothing left: not idle, and the
        // deadline is the send timeout, not the (expired) head timer.
        assert!(!rig.conn.has_output());
        assert!(!rig.conn.is_idle());
        assert_eq!(rig.conn.deadline(), 1_000 + rig.lim.send_timeout);
        rig.now = 1_000 + rig.lim.keepalive_timeout + rig.lim.header_timeout;
        rig.conn.on_timeout(rig.now, &mut rig.svc, &rig.lim);
        assert!(
            !rig.conn.is_closed(),
            "cut off while its response was still leaving"
        );
        // The reader wakes up: the response completes, and the connection is kept alive
        // and idle again.
        rig.sock.get_mut().write_room = None;
        let plain = pump(&mut rig, &mut cl);
        assert!(plain.ends_with(b"hello\n"));
        assert!(rig.conn.is_idle());
        assert_eq!(rig.conn.deadline(), rig.now + rig.lim.keepalive_timeout);
    }

    #[test]
    fn a_stalled_reader_holds_back_output_until_writable() {
        let mut rig = rig();
        let (_, client) = configs();
        let mut cl =
            ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
        pump(&mut rig, &mut cl);
        // The socket takes nothing: the response waits in rustls, the connection waits.
        rig.sock.get_mut().write_room = Some(0);
        cl.writer()
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut wire = Vec::new();
        while cl.wants_write() {
            cl.write_tls(&mut wire).unwrap();
        }
        rig.sock.get_mut().push(&wire);
        rig.run();
        assert!(rig.sock.get_ref().output.is_empty());
        assert!(!rig.conn.is_closed(), "closed with the response unsent");
        assert!(crate::conn::io::Socket::has_pending(&rig.sock));
        // Room again: the response, then close_notify (a lingering close follows).
        rig.sock.get_mut().write_room = None;
        let plain = pump(&mut rig, &mut cl);
        assert!(
            plain.ends_with(b"hello\n"),
            "{}",
            String::from_utf8_lossy(&plain)
        );
        assert!(matches!(
            rig.conn.phase(),
            crate::conn::Phase::Linger | crate::conn::Phase::Closed(_)
        ));
        let mut one = [0u8; 1];
        assert_eq!(
            cl.reader().read(&mut one).unwrap(),
            0,
            "close_notify received"
        );
        assert!(
            rig.sock.get_ref().shut_write,
            "then the TCP write side is shut"
        );
    }
}
