//! HTTPS: certificates made here with rcgen (a CA and leaves it signs), the real binary on
//! 127.0.0.1:0 serving HTTP and HTTPS at once, and real clients: curl `--cacert` (with and
//! without SNI), `openssl s_client` (certificate choice, ALPN, resumption), a rustls client
//! for byte-level checks, and the load tools.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{parse_responses, pattern, read_response, Site, TIMEOUT};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A test CA and the PEM files of the leaves it signed.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    dir: PathBuf,
}

impl Ca {
    fn new(dir: &Path) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "tern test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let pem = cert.pem();
        std::fs::write(dir.join("ca.pem"), &pem).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A leaf for `names` (DNS names or IP addresses), CN the first name, written as
    /// `NAME.crt` (chain: leaf then CA) and `NAME.key` (PKCS#8).
    fn leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.join(format!("{file}.crt")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, format!("{}{}", cert.pem(), self.pem)).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

/// tern with one HTTP and one HTTPS listener (or what `args` says).
struct Tern {
    child: Child,
    _out: ChildStdout,
    http: SocketAddr,
    https: SocketAddr,
    error_log: PathBuf,
}

fn read_line(out: &mut ChildStdout) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.last() != Some(&b'\n') {
        out.read_exact(&mut b).expect("read listening line");
        line.push(b[0]);
    }
    String::from_utf8(line).unwrap().trim().to_string()
}

impl Tern {
    fn start(dir: &Path, args: &[&str]) -> Tern {
        let error_log = dir.join(format!("error-{}.log", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["--error-log"])
            .arg(&error_log)
            .args(["--log-level", "debug"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tern");
        let mut out = child.stdout.take().unwrap();
        let (mut http, mut https) = (None, None);
        while http.is_none() || https.is_none() {
            let line = read_line(&mut out);
            if let Some(a) = line.strip_prefix("listening on https://") {
                https = Some(a.parse().unwrap());
            } else if let Some(a) = line.strip_prefix("listening on http://") {
                http = Some(a.parse().unwrap());
            } else {
                panic!("unexpected line {line:?}");
            }
        }
        Tern {
            child,
            _out: out,
            http: http.unwrap(),
            https: https.unwrap(),
            error_log,
        }
    }

    /// HTTP and HTTPS on 127.0.0.1:0 with `cert`, serving `root`.
    fn simple(root: &Path, cert: &(PathBuf, PathBuf), extra: &[&str]) -> Tern {
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            cert.0.to_str().unwrap(),
            "--tls-key",
            cert.1.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(root.to_str().unwrap());
        Tern::start(root.parent().unwrap(), &args)
    }

    fn port(&self) -> u16 {
        self.https.port()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    fn wait_log(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains(needle) || start.elapsed() > Duration::from_secs(5) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tern {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    common::curl(args)
}

/// `curl --cacert CA https://NAME:PORT/PATH`, NAME resolved to 127.0.0.1 (so SNI is sent).
fn curl_sni(ca: &Ca, name: &str, port: u16, path: &str, extra: &[&str]) -> (i32, Vec<u8>) {
    let url = format!("https://{name}:{port}{path}");
    let resolve = format!("{name}:{port}:127.0.0.1");
    let ca = ca.path();
    let mut args = vec![
        "--cacert",
        ca.to_str().unwrap(),
        "--resolve",
        &resolve,
        &url,
    ];
    args.extend_from_slice(extra);
    curl(&args)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A rustls client trusting the test CA.
fn client_config(ca: &Ca, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` for SNI `name`, handshake done.
fn tls_connect(ca: &Ca, addr: SocketAddr, name: &str) -> Tls {
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    sock.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(client_config(ca, &[b"http/1.1"]), name).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("handshake");
    }
    s
}

/// Sends `req` over a fresh TLS connection and reads until the server closes it.
fn tls_raw(ca: &Ca, addr: SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut s = tls_connect(ca, addr, "localhost");
    s.write_all(req).unwrap();
    s.flush().unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return out,
        }
    }
}

/// The standard site plus a CA and a `localhost`/`127.0.0.1` leaf.
fn setup() -> (Site, Ca, (PathBuf, PathBuf)) {
    let site = Site::standard();
    let ca = Ca::new(site.dir.path());
    let cert = ca.leaf("localhost", &["localhost", "127.0.0.1"]);
    (site, ca, cert)
}

fn openssl(args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `openssl s_client` to the HTTPS port with `args`, sending `stdin`.
fn s_client(t: &Tern, args: &[&str], stdin: &[u8]) -> String {
    let connect = t.https.to_string();
    let mut a = vec!["s_client", "-connect", &connect];
    a.extend_from_slice(args);
    openssl(&a, stdin)
}

#[test]
fn https_beside_http_with_and_without_sni() {
    let (site, ca, cert) = setup();
    let t = Tern::simple(&site.root(), &cert, &[]);
    let (code, body) = curl_sni(&ca, "localhost", t.port(), "/a.txt", &[]);
    assert_eq!((code, &body[..]), (0, &b"hello\n"[..]), "with SNI");
    // An IP-address URL sends no SNI: the default certificate (which names the IP).
    let url = format!("https://127.0.0.1:{}/a.txt", t.port());
    let (code, body) = curl(&["--cacert", ca.path().to_str().unwrap(), &url]);
    assert_eq!((code, &body[..]), (0, &b"hello\n"[..]), "without SNI");
    // Plain HTTP keeps working beside it.
    let (code, body) = curl(&[&format!("http://{}/a.txt", t.http)]);
    assert_eq!((code, &body[..]), (0, &b"hello\n"[..]));
    // Byte level, through a rustls client: TLS 1.3, ALPN http/1.1, a normal response.
    let mut s = tls_connect(&ca, t.https, "localhost");
    assert_eq!(s.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        s.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &b"hello\n"[..]));
    // Keep-alive over TLS.
    s.write_all(b"HEAD /sub/b.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.header("Content-Length"), Some("4"));
    // A graceful close ends with close_notify: a clean EOF, not a truncation.
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().status, 200);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("close_notify before the TCP close (rustls reports a bare close as an error)");
    assert!(rest.is_empty());
}

#[test]
fn key_formats_pkcs1_and_sec1() {
    let (site, ca, cert) = setup();
    // SEC1 ("EC PRIVATE KEY") from the PKCS#8 key.
    let sec1 = site.outside("sec1.key");
    let out = openssl(
        &[
            "ec",
            "-in",
            cert.1.to_str().unwrap(),
            "-out",
            sec1.to_str().unwrap(),
        ],
        b"",
    );
    assert!(std::fs::read_to_string(&sec1)
        .unwrap_or_else(|_| panic!("{out}"))
        .contains("BEGIN EC PRIVATE KEY"));
    let t = Tern::simple(&site.root(), &(cert.0.clone(), sec1), &[]);
    assert_eq!(curl_sni(&ca, "localhost", t.port(), "/a.txt", &[]).0, 0);
    drop(t);
    // PKCS#1 ("RSA PRIVATE KEY"): an RSA leaf signed by the CA through openssl.
    let d = site.dir.path();
    let rsa = d.join("rsa.key");
    openssl(
        &[
            "genrsa",
            "-traditional",
            "-out",
            rsa.to_str().unwrap(),
            "2048",
        ],
        b"",
    );
    assert!(std::fs::read_to_string(&rsa)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    let kp = KeyPair::from_pem(
        &openssl(&["pkey", "-in", rsa.to_str().unwrap()], b"")
            .split_inclusive('\n')
            .filter(|l| !l.is_empty())
            .collect::<String>(),
    )
    .unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = params.signed_by(&kp, &ca.issuer).unwrap();
    let crt = d.join("rsa.crt");
    std::fs::write(&crt, leaf.pem()).unwrap();
    let t = Tern::simple(&site.root(), &(crt, rsa), &[]);
    assert_eq!(curl_sni(&ca, "localhost", t.port(), "/a.txt", &[]).0, 0);
}

#[test]
fn a_key_that_does_not_match_is_refused_at_start() {
    let (site, ca, cert) = setup();
    let other = ca.leaf("other", &["other.test"]);
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["--listen-tls", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert.0)
        .arg("--tls-key")
        .arg(&other.1)
        .arg(site.root())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not go with tls_cert"), "{err}");
    // tern -t reads and matches the pair too.
    let cfg = site.outside("mismatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen_tls = [\"127.0.0.1:0\"]\nroot = \"root\"\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.0, other.1
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("-t")
        .arg("-c")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not go with tls_cert"), "{err}");
    // listen_tls without any certificate: a configuration error.
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["--listen-tls", "127.0.0.1:0"])
        .arg(site.root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_tls needs a certificate"), "{err}");
}

/// A config with a default certificate, a vhost with its own (and a wildcard alias), and a
/// vhost without one.
fn vhost_config(site: &Site, ca: &Ca, extra_top: &str, extra_a: &str) -> PathBuf {
    let def = ca.leaf("default", &["default.test", "localhost", "127.0.0.1"]);
    let a = ca.leaf("a", &["a.test", "*.a.test"]);
    site.file("../a/index.html", b"site a\n");
    site.file("../b/index.html", b"site b\n");
    let cfg = format!(
        "listen = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\nroot = \"root\"\n\
         tls_cert = {:?}\ntls_key = {:?}\n{extra_top}\n\
         [vhost.\"a.test\"]\naliases = [\"*.a.test\"]\nroot = \"a\"\ntls_cert = {:?}\ntls_key = {:?}\n{extra_a}\n\
         [vhost.\"b.test\"]\nroot = \"b\"\n",
        def.0, def.1, a.0, a.1
    );
    let p = site.outside("tern.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

fn subject(t: &Tern, sni: Option<&str>) -> String {
    let mut args = vec![];
    match sni {
        Some(n) => args.extend(["-servername", n]),
        None => args.push("-noservername"),
    }
    let out = s_client(t, &args, b"");
    out.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_else(|| panic!("no subject in {out}"))
        .to_string()
}

#[test]
fn sni_picks_the_vhost_certificate_and_421_guards_host() {
    let site = Site::standard();
    let ca = Ca::new(site.dir.path());
    let cfg = vhost_config(&site, &ca, "", "");
    let t = Tern::start(site.dir.path(), &["-c", cfg.to_str().unwrap()]);
    assert!(subject(&t, Some("a.test")).contains("a.test"));
    assert!(
        subject(&t, Some("www.a.test")).contains("a.test"),
        "wildcard"
    );
    assert!(subject(&t, Some("b.test")).contains("default.test"));
    assert!(subject(&t, Some("nothing.test")).contains("default.test"));
    assert!(subject(&t, None).contains("default.test"));
    // curl verifies each name against the certificate it got.
    let p = t.port();
    assert_eq!(
        curl_sni(&ca, "a.test", p, "/", &[]),
        (0, b"site a\n".to_vec())
    );
    assert_eq!(
        curl_sni(&ca, "x.a.test", p, "/", &[]),
        (0, b"site a\n".to_vec())
    );
    let code = |name: &str, host: &str| {
        let (c, out) = curl_sni(
            &ca,
            name,
            p,
            "/",
            &["-k", "-H", &format!("Host: {host}"), "-w", "%{http_code}"],
        );
        assert_eq!(c, 0);
        String::from_utf8_lossy(&out[out.len() - 3..]).to_string()
    };
    // SNI a.test, Host b.test: another configured host.
    assert_eq!(code("a.test", "b.test"), "421");
    assert_eq!(code("b.test", "a.test"), "421");
    assert_eq!(code("a.test", "a.test"), "200");
    // SNI naming no host, or Host naming no host: never 421.
    assert_eq!(code("nothing.test", "a.test"), "200");
    assert_eq!(code("a.test", "unknown.test"), "200");
    // No SNI at all (an IP-address URL): never 421.
    let url = format!("https://127.0.0.1:{p}/");
    let (c, out) = curl(&["-k", "-H", "Host: a.test", &url]);
    assert_eq!((c, &out[..]), (0, &b"site a\n"[..]));
}

#[test]
fn alpn_offers_http11_only() {
    let (site, _ca, cert) = setup();
    let t = Tern::simple(&site.root(), &cert, &[]);
    let out = s_client(&t, &["-alpn", "http/1.1"], b"");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    // Only h2: refused with an alert (no_application_protocol), no session.
    let out = s_client(&t, &["-alpn", "h2"], b"");
    assert!(
        out.contains("no application protocol") || out.contains("alert number 120"),
        "{out}"
    );
    // Both: http/1.1 chosen.
    let out = s_client(&t, &["-alpn", "h2,http/1.1"], b"");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
}

#[test]
fn sessions_resume_with_tickets_and_the_cache() {
    let (site, _ca, cert) = setup();
    let t = Tern::simple(&site.root(), &cert, &[]);
    let sess = site.outside("sess.pem");
    let s = sess.to_str().unwrap();
    for (version, extra) in [
        ("-tls1_3", &[][..]),
        ("-tls1_2", &[][..]),
        // TLS 1.2 without tickets: the stateful session cache.
        ("-tls1_2", &["-no_ticket"][..]),
    ] {
        let _ = std::fs::remove_file(&sess);
        // -ign_eof: read until the server closes, so a TLS 1.3 ticket (sent after the
        // handshake) is surely received before the session is saved.
        let mut a = vec![version, "-ign_eof", "-sess_out", s];
        a.extend_from_slice(extra);
        let first = s_client(
            &t,
            &a,
            b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(first.contains("hello"), "{first}");
        assert!(first.contains("New, "), "{version} {extra:?}: {first}");
        let mut a = vec![version, "-sess_in", s];
        a.extend_from_slice(extra);
        let again = s_client(&t, &a, b"");
        assert!(again.contains("Reused, "), "{version} {extra:?}: {again}");
    }
}

#[test]
fn tls_min_version_refuses_older() {
    let (site, _ca, cert) = setup();
    let cfg = site.outside("min.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\nroot = \"root\"\n\
             tls_cert = {:?}\ntls_key = {:?}\ntls_min_version = \"1.3\"\n",
            cert.0, cert.1
        ),
    )
    .unwrap();
    let t = Tern::start(site.dir.path(), &["-c", cfg.to_str().unwrap()]);
    let out = s_client(&t, &["-tls1_2"], b"");
    assert!(out.contains("alert protocol version"), "{out}");
    assert!(out.contains("Cipher is (NONE)"), "{out}");
    let out = s_client(&t, &["-tls1_3"], b"");
    assert!(out.contains("TLSv1.3"), "{out}");
}

#[test]
fn plain_http_to_the_tls_port_gets_a_clear_400() {
    let (site, _ca, cert) = setup();
    let t = Tern::simple(&site.root(), &cert, &[]);
    let mut s = TcpStream::connect(t.https).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let out = common::read_to_close(&mut s);
    let r = parse_responses(&out);
    assert_eq!(r.len(), 1, "{}", String::from_utf8_lossy(&out));
    assert_eq!(r[0].status, 400);
    assert!(String::from_utf8_lossy(&r[0].body)
        .contains("plain HTTP request was sent to an HTTPS port"));
    assert_eq!(r[0].header("Connection"), Some("close"));
    let log = t.wait_log("TLS: plain HTTP request sent to an HTTPS port");
    assert!(
        log.contains("TLS: plain HTTP request sent to an HTTPS port"),
        "{log}"
    );
}

#[test]
fn garbage_gets_a_tls_alert() {
    let (site, _ca, cert) = setup();
    let t = Tern::simple(&site.root(), &cert, &[]);
    // A handshake record holding no valid handshake message.
    let mut s = TcpStream::connect(t.https).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"\x16\x03\x01\x00\x08\xff\x00\x00\x04abcd")
        .unwrap();
    let out = common::read_to_close(&mut s);
    assert_eq!(out.first(), Some(&0x15), "an alert record: {out:?}");
    let log = t.wait_log(": TLS: ");
    assert!(log.contains(": TLS: "), "the failure is logged: {log}");
    // A record of an unknown content type.
    let mut s = TcpStream::connect(t.https).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"\x01\x02\x03\x04\x05\x06\x07\x08garbage")
        .unwrap();
    let out = common::read_to_close(&mut s);
    assert!(out.is_empty() || out[0] == 0x15, "{out:?}");
    // The server is fine.
    let r = tls_raw(
        &_ca,
        t.https,
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(parse_responses(&r)[0].status, 200);
}

/// Waits until the server closes `s` (EOF or reset), returning how long that took.
fn time_to_close(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("still open after {limit:?}")
            }
            Err(_) => return start.elapsed(),
        }
    }
}

#[test]
fn truncated_handshake_and_stalled_records_time_out() {
    let (site, ca, cert) = setup();
    let t = Tern::simple(&site.root(), &cert, &["--header-timeout", "1s"]);
    // Half a ClientHello, then nothing: closed at the head timeout.
    let hello = {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = rustls::ClientConnection::new(client_config(&ca, &[]), name).unwrap();
        let mut v = Vec::new();
        c.write_tls(&mut v).unwrap();
        v
    };
    let mut half = TcpStream::connect(t.https).unwrap();
    half.write_all(&hello[..hello.len() / 2]).unwrap();
    // A client that stops in the middle of a record after the handshake.
    let mut mid = tls_connect(&ca, t.https, "localhost");
    mid.conn
        .writer()
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut rec = Vec::new();
    mid.conn.write_tls(&mut rec).unwrap();
    mid.sock.write_all(&rec[..rec.len() - 5]).unwrap();
    // Meanwhile others are served.
    let r = tls_raw(
        &ca,
        t.https,
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(parse_responses(&r)[0].status, 200);
    let took = time_to_close(&mut half, Duration::from_secs(4));
    assert!(took < Duration::from_secs(3), "{took:?}");
    let took = time_to_close(&mut mid.sock, Duration::from_secs(4));
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn slowloris_over_tls_is_cut_off() {
    let (site, ca, cert) = setup();
    let t = Tern::simple(&site.root(), &cert, &["--header-timeout", "1s"]);
    let mut s = tls_connect(&ca, t.https, "localhost");
    let start = Instant::now();
    let head =
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for b in head.iter() {
        if s.write_all(&[*b]).and_then(|_| s.flush()).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        if start.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    // The server answered 408 (or just closed) well before the head was complete.
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(
        closed || text.starts_with("HTTP/1.1 408") || out.is_empty(),
        "{text}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

/// A response as compared across transports: status, headers but Date, body.
type Seen = (u16, Vec<(String, String)>, Vec<u8>);

#[test]
fn semantics_are_the_same_over_https() {
    let (site, ca, cert) = setup();
    let body = pattern(100_000, 7);
    site.file("p.bin", &body);
    let css = pattern(5000, 9);
    site.file("s.css", &css);
    site.file("s.css.gz", b"GZIPPED");
    // Cached in memory (under 64 KiB): eight pipelined make one large batch to encrypt.
    site.file("m.bin", &pattern(60_000, 11));
    let t = Tern::simple(&site.root(), &cert, &[]);
    let both = |req: &[u8]| -> (Vec<u8>, Vec<u8>) {
        let plain = {
            let mut s = TcpStream::connect(t.http).unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.write_all(req).unwrap();
            common::read_to_close(&mut s)
        };
        (plain, tls_raw(&ca, t.https, req))
    };
    let strip_date = |b: &[u8]| -> Vec<Seen> {
        parse_responses(b)
            .into_iter()
            .map(|r| {
                let head = r
                    .stable_head()
                    .into_iter()
                    // Multipart boundaries are random.
                    .filter(|(n, _)| {
                        !n.eq_ignore_ascii_case("content-type") || !r.head.contains("multipart")
                    })
                    .filter(|(n, _)| {
                        !n.eq_ignore_ascii_case("content-length") || !r.head.contains("multipart")
                    })
                    .collect();
                let body = if r.head.contains("multipart") {
                    Vec::new()
                } else {
                    r.body
                };
                (r.status, head, body)
            })
            .collect()
    };
    let eight = [
        b"GET /m.bin HTTP/1.1\r\nHost: x\r\n\r\n".repeat(7),
        b"GET /m.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
    ]
    .concat();
    // Twice: the first fills the cache.
    for _ in 0..2 {
        let (p, s) = both(&eight);
        assert_eq!(parse_responses(&s).len(), 8);
        assert_eq!(strip_date(&p), strip_date(&s));
    }
    let cases: &[&[u8]] = &[
        b"GET /p.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100-199\r\nConnection: close\r\n\r\n",
        b"GET /p.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,500-599\r\nConnection: close\r\n\r\n",
        b"GET /p.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=999999-\r\nConnection: close\r\n\r\n",
        b"GET /s.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        b"GET /sub HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        // Pipelined: cached small bodies, a file body, a HEAD, then close.
        b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /p.bin HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /s.css HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ];
    for req in cases {
        let (p, s) = both(req);
        assert!(!p.is_empty());
        assert_eq!(
            strip_date(&p),
            strip_date(&s),
            "{}",
            String::from_utf8_lossy(req)
        );
    }
    // Conditionals: the ETag from HTTPS gives 304 over HTTPS.
    let r = parse_responses(&tls_raw(
        &ca,
        t.https,
        b"GET /p.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(r[0].body, body);
    let etag = r[0].header("ETag").unwrap().to_string();
    let lm = r[0].header("Last-Modified").unwrap().to_string();
    for cond in [
        format!("If-None-Match: {etag}"),
        format!("If-Modified-Since: {lm}"),
    ] {
        let req = format!("GET /p.bin HTTP/1.1\r\nHost: x\r\n{cond}\r\nConnection: close\r\n\r\n");
        let (p, s) = both(req.as_bytes());
        assert_eq!(parse_responses(&s)[0].status, 304);
        assert_eq!(strip_date(&p), strip_date(&s));
    }
    // Multipart byte ranges: the same parts.
    let r = parse_responses(&tls_raw(
        &ca,
        t.https,
        b"GET /p.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9,500-599\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(r[0].status, 206);
    let text = r[0].body.clone();
    assert!(memfind(&text, &body[0..10]) && memfind(&text, &body[500..600]));
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_100_mib_download_is_byte_exact() {
    let (site, ca, cert) = setup();
    let data = pattern(100 << 20, 42);
    site.file("big.bin", &data);
    let t = Tern::simple(&site.root(), &cert, &[]);
    let out = site.outside("big.out");
    let (code, _) = curl_sni(
        &ca,
        "localhost",
        t.port(),
        "/big.bin",
        &["-o", out.to_str().unwrap(), "--max-time", "60"],
    );
    assert_eq!(code, 0);
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "bytes differ");
}

#[test]
fn redirect_to_https_keeps_acme_on_http_and_hsts_only_over_https() {
    let site = Site::standard();
    site.file(".well-known/acme-challenge/tok", b"token\n");
    let ca = Ca::new(site.dir.path());
    let cfg = vhost_config(
        &site,
        &ca,
        "redirect_to_https = true\nhsts = \"max-age=31536000; includeSubDomains\"",
        "redirect_to_https = false",
    );
    let t = Tern::start(site.dir.path(), &["-c", cfg.to_str().unwrap()]);
    let get = |addr: SocketAddr, req: &str| {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        read_response(&mut s, false).unwrap()
    };
    let r = get(
        t.http,
        "GET /sub/b.txt?q=1 HTTP/1.1\r\nHost: Localhost:8080\r\n\r\n",
    );
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("Location"),
        Some(format!("https://localhost:{}/sub/b.txt?q=1", t.port()).as_str())
    );
    assert_eq!(r.header("Strict-Transport-Security"), None);
    // certbot's webroot challenge stays on HTTP (and .well-known is not a hidden dotfile).
    let r = get(
        t.http,
        "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!((r.status, &r.body[..]), (200, &b"token\n"[..]));
    // A vhost that turns the redirect off is served over HTTP.
    let r = get(t.http, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    assert_eq!((r.status, &r.body[..]), (200, &b"site a\n"[..]));
    // HTTPS responses carry HSTS (inherited by the vhost).
    let mut s = tls_connect(&ca, t.https, "localhost");
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Strict-Transport-Security"),
        Some("max-age=31536000; includeSubDomains")
    );
    let mut s = tls_connect(&ca, t.https, "a.test");
    s.write_all(b"GET /nope HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.count("Strict-Transport-Security"), 1);
    // Right after, plain-HTTP answers given before any host is chosen carry none.
    for req in [
        "BREW / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ] {
        let r = get(t.http, req);
        assert_eq!(r.header("Strict-Transport-Security"), None, "{req}");
    }
}

/// certbot's layout: live/NAME/{fullchain,privkey}.pem -> ../../archive/NAME/*N.pem.
fn certbot_link(site: &Site, pair: &(PathBuf, PathBuf), n: u32) -> (PathBuf, PathBuf) {
    let d = site.dir.path();
    let archive = d.join("archive/example");
    let live = d.join("live/example");
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    let (c, k) = (
        archive.join(format!("fullchain{n}.pem")),
        archive.join(format!("privkey{n}.pem")),
    );
    std::fs::copy(&pair.0, &c).unwrap();
    std::fs::copy(&pair.1, &k).unwrap();
    for (name, target) in [("fullchain.pem", &c), ("privkey.pem", &k)] {
        // As certbot does: a new link beside the old, renamed over it.
        let tmp = live.join(format!("{name}.new"));
        let _ = std::fs::remove_file(&tmp);
        let rel = Path::new("../../archive/example").join(target.file_name().unwrap());
        std::os::unix::fs::symlink(rel, &tmp).unwrap();
        std::fs::rename(&tmp, live.join(name)).unwrap();
    }
    (live.join("fullchain.pem"), live.join("privkey.pem"))
}

#[test]
fn certificates_reload_on_renewal_and_sighup_keeping_old_on_error() {
    let site = Site::standard();
    let ca = Ca::new(site.dir.path());
    let one = ca.leaf("one", &["localhost", "one.test"]);
    let two = ca.leaf("two", &["localhost", "two.test"]);
    let live = certbot_link(&site, &one, 1);
    let t = Tern::simple(&site.root(), &live, &[]);
    assert!(subject(&t, Some("localhost")).contains("localhost"));
    // An established connection, kept alive across the renewal.
    let mut kept = tls_connect(&ca, t.https, "localhost");
    let san = |t: &Tern| {
        let out = openssl(
            &["x509", "-noout", "-ext", "subjectAltName"],
            s_client(t, &["-servername", "localhost"], b"").as_bytes(),
        );
        out
    };
    assert!(san(&t).contains("one.test"), "{}", san(&t));
    // Renewal (new files in archive/, links re-pointed in live/) while h2load runs over
    // HTTPS: not one request fails.
    let url = format!("https://127.0.0.1:{}/a.txt", t.port());
    let load = std::thread::spawn(move || {
        tool("h2load", &["--h1", "-D", "2", "-c", "4", "-m", "2", &url])
    });
    std::thread::sleep(Duration::from_millis(500));
    certbot_link(&site, &two, 2);
    t.wait_log("certificates reloaded");
    let h2 = load.join().unwrap();
    assert!(h2.contains(" 0 failed, 0 errored, 0 timeout"), "{h2}");
    assert!(!h2.contains("\nrequests: 0 total"), "{h2}");
    let start = Instant::now();
    while !san(&t).contains("two.test") && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(san(&t).contains("two.test"), "{}", t.log());
    kept.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut kept, false).unwrap().status, 200);
    // A broken pair (the key of another certificate): logged, the old one kept.
    let three = ca.leaf("three", &["localhost", "three.test"]);
    certbot_link(&site, &(three.0.clone(), one.1.clone()), 3);
    t.wait_log("certificate reload: ");
    assert!(
        t.log().contains("keeping the certificates in use"),
        "{}",
        t.log()
    );
    assert!(san(&t).contains("two.test"));
    // Fixed and reloaded by SIGHUP as well.
    std::fs::copy(
        &three.1,
        site.dir.path().join("archive/example/privkey3.pem"),
    )
    .unwrap();
    t.signal("HUP");
    let start = Instant::now();
    while !san(&t).contains("three.test") && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(san(&t).contains("three.test"), "{}", t.log());
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("{cmd} is installed (make test installs it through .ci/deps): {e}")
    });
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn load_tools_over_https_have_no_failures() {
    let (site, _ca, cert) = setup();
    site.file("k.bin", &pattern(1024, 3));
    let t = Tern::simple(&site.root(), &cert, &[]);
    let url = format!("https://127.0.0.1:{}/k.bin", t.port());
    let ab = tool(
        "ab",
        &["-q", "-k", "-f", "TLS1.2", "-n", "2000", "-c", "4", &url],
    );
    assert!(ab.contains("Complete requests:      2000"), "{ab}");
    assert!(ab.contains("Failed requests:        0"), "{ab}");
    assert!(!ab.contains("Non-2xx"), "{ab}");
    let wrk = tool("wrk", &["-t1", "-c4", "-d1s", &url]);
    assert!(wrk.contains("requests in"), "{wrk}");
    assert!(
        !wrk.contains("Socket errors") && !wrk.contains("Non-2xx"),
        "{wrk}"
    );
    let h2 = tool(
        "h2load",
        &["--h1", "-n", "2000", "-c", "4", "-m", "4", &url],
    );
    assert!(h2.contains("2000 succeeded, 0 failed, 0 errored"), "{h2}");
    // A new connection per request: full handshakes.
    let ab = tool("ab", &["-q", "-f", "TLS1.3", "-n", "200", "-c", "4", &url]);
    assert!(ab.contains("Failed requests:        0"), "{ab}");
}

#[test]
fn sslscan_finds_no_old_protocol_weak_cipher_or_renegotiation() {
    let (site, _ca, cert) = setup();
    let t = Tern::simple(&site.root(), &cert, &[]);
    let out = tool("sslscan", &["--no-colour", &t.https.to_string()]);
    for line in [
        "SSLv2     disabled",
        "SSLv3     disabled",
        "TLSv1.0   disabled",
        "TLSv1.1   disabled",
        "TLSv1.2   enabled",
        "TLSv1.3   enabled",
        // rustls has no renegotiation at all (so no insecure one).
        "Session renegotiation not supported",
        "TLSv1.3 not vulnerable to heartbleed",
    ] {
        assert!(out.contains(line), "{line:?} missing in\n{out}");
    }
    assert!(!out.contains("Compression enabled"), "{out}");
    let ciphers: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("Preferred") || l.starts_with("Accepted"))
        .collect();
    assert!(ciphers.len() >= 4, "{out}");
    for c in ciphers {
        assert!(
            c.contains("GCM") || c.contains("CHACHA20-POLY1305") || c.contains("CHACHA20_POLY1305"),
            "not an AEAD suite: {c}"
        );
        assert!(!c.contains(" 112 bits") && !c.contains(" 56 bits"), "{c}");
        assert!(
            c.contains("Curve 25519") || c.contains("P-256") || c.contains("P-384"),
            "{c}"
        );
    }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn an_idle_tls_keep_alive_connection_is_small() {
    // rustls keeps a 4 KiB read buffer and the session keys per connection; the queues it
    // writes from are empty while idle, and tern's own buffers go back to the pool.
    const N: usize = 400;
    let (site, ca, cert) = setup();
    let t = Tern::simple(&site.root(), &cert, &["--keepalive-timeout", "30s"]);
    let req = b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut warm = tls_connect(&ca, t.https, "localhost");
    warm.write_all(req).unwrap();
    read_response(&mut warm, false).unwrap();
    drop(warm);
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kb(t.child.id());
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        let mut s = tls_connect(&ca, t.https, "localhost");
        s.write_all(req).unwrap();
        assert_eq!(read_response(&mut s, false).unwrap().status, 200);
        conns.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kb(t.child.id());
    let per = (after.saturating_sub(before) * 1024) / N as u64;
    eprintln!("idle TLS connection: {per} bytes of server RSS each ({N} connections)");
    assert!(per < 16 * 1024, "{per} bytes per idle TLS connection");
    // They are all still served.
    for s in conns.iter_mut().take(10) {
        s.write_all(req).unwrap();
        assert_eq!(read_response(s, false).unwrap().status, 200);
    }
}

#[test]
fn listen_tls_adopts_a_socket_systemd_passed() {
    let (site, ca, cert) = setup();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (p1, p2) = (free(), free());
    let log = site.outside("sd-error.log");
    let mut child = Command::new("systemd-socket-activate")
        .args([
            "-l",
            &format!("127.0.0.1:{p1}"),
            "-l",
            &format!("127.0.0.1:{p2}"),
        ])
        .arg("--fdname=http:https")
        .arg(env!("CARGO_BIN_EXE_tern"))
        .args([
            "--listen",
            "sd:http",
            "--listen-tls",
            "sd:https",
            "--tls-cert",
        ])
        .arg(&cert.0)
        .arg("--tls-key")
        .arg(&cert.1)
        .arg("--error-log")
        .arg(&log)
        .arg(site.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate is installed (package systemd, in .ci/deps)");
    // The tool starts tern on the first connection; curl waits in the backlog meanwhile.
    let start = Instant::now();
    let (code, body) = loop {
        let r = curl_sni(&ca, "localhost", p2, "/a.txt", &[]);
        if r.0 == 0 || start.elapsed() > Duration::from_secs(5) {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = child.stdout.take().unwrap();
    let lines = [read_line(&mut out), read_line(&mut out)];
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert_eq!((code, &body[..]), (0, &b"hello\n"[..]));
    assert_eq!(
        lines,
        [
            format!("listening on http://127.0.0.1:{p1}"),
            format!("listening on https://127.0.0.1:{p2}")
        ]
    );
}

#[test]
fn a_reload_adds_https_and_a_bad_certificate_keeps_it() {
    let (site, ca, cert) = setup();
    let cfg = site.outside("reload.toml");
    let plain = "listen = [\"127.0.0.1:0\"]\nroot = \"root\"\n";
    std::fs::write(&cfg, plain).unwrap();
    let log = site.outside("reload-error.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("-c")
        .arg(&cfg)
        .arg("--error-log")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let first = read_line(&mut out);
    assert!(first.starts_with("listening on http://"), "{first}");
    let with_tls = format!(
        "{plain}listen_tls = [\"127.0.0.1:0\"]\ntls_cert = {:?}\ntls_key = {:?}\n",
        cert.0, cert.1
    );
    std::fs::write(&cfg, &with_tls).unwrap();
    let hup = |child: &Child| {
        Command::new("kill")
            .arg("-HUP")
            .arg(child.id().to_string())
            .status()
            .unwrap()
    };
    hup(&child);
    let line = read_line(&mut out);
    let addr: SocketAddr = line
        .strip_prefix("listening on https://")
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    let (code, body) = curl_sni(&ca, "localhost", addr.port(), "/a.txt", &[]);
    // A reload with a key that does not match: refused whole, HTTPS goes on.
    let other = ca.leaf("other", &["other.test"]);
    std::fs::write(
        &cfg,
        format!(
            "{plain}listen_tls = [\"127.0.0.1:0\"]\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert.0, other.1
        ),
    )
    .unwrap();
    hup(&child);
    let start = Instant::now();
    let mut text = String::new();
    while !text.contains("reload failed") && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        text = std::fs::read_to_string(&log).unwrap_or_default();
    }
    let again = curl_sni(&ca, "localhost", addr.port(), "/a.txt", &[]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!((code, &body[..]), (0, &b"hello\n"[..]));
    assert!(text.contains("does not go with tls_cert"), "{text}");
    assert_eq!(again, (0, b"hello\n".to_vec()));
}

/// A CGI script reached over HTTPS sees `HTTPS=on`; over plain HTTP it is not set.
#[test]
fn cgi_over_https_sees_https_on() {
    let (site, ca, cert) = setup();
    let cgi = site.outside("cgi");
    std::fs::create_dir_all(&cgi).unwrap();
    let script = cgi.join("env");
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho \"https=${HTTPS:-unset}\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = site.outside("cgi.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {:?}\n[route.\"/cgi-bin/\"]\ncgi = {:?}\n",
            site.root().display().to_string(),
            cgi.display().to_string()
        ),
    )
    .unwrap();
    let t = Tern::start(
        site.dir.path(),
        &[
            "-c",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            cert.0.to_str().unwrap(),
            "--tls-key",
            cert.1.to_str().unwrap(),
        ],
    );
    let req = b"GET /cgi-bin/env HTTP/1.0\r\nHost: localhost\r\n\r\n";
    let over_tls = String::from_utf8_lossy(&tls_raw(&ca, t.https, req)).into_owned();
    assert!(over_tls.ends_with("\r\n\r\nhttps=on\n"), "{over_tls}");
    let mut s = TcpStream::connect(t.http).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(req).unwrap();
    let mut plain = Vec::new();
    let _ = s.read_to_end(&mut plain);
    let plain = String::from_utf8_lossy(&plain);
    assert!(plain.ends_with("\r\n\r\nhttps=unset\n"), "{plain}");
}
