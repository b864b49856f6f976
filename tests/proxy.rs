//! The reverse proxy against a real upstream: tests/upstream/app.py (Python's http.server,
//! HTTP/1.1 keep-alive, threads), which echoes requests, counts connections and requests,
//! and misbehaves on purpose. tern is started with routes onto it over TCP and a Unix socket.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{curl, read_to_close, Server, Site};

struct App {
    child: Child,
    /// `127.0.0.1:PORT`, or the socket path.
    addr: String,
}

impl App {
    fn start(args: &[&str]) -> App {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/app.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 is installed (make test installs it through .ci/deps)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = match line.split_once(' ') {
            Some(("port", p)) => format!("127.0.0.1:{}", p.trim()),
            Some(("unix", p)) => p.trim().to_string(),
            _ => panic!("unexpected upstream line {line:?}"),
        };
        App { child, addr }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        // SIGTERM, so a gunicorn master takes its workers down with it.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

struct T {
    _site: Site,
    server: Server,
    app: App,
    _unix: App,
}

fn start() -> T {
    let site = Site::standard();
    let app = App::start(&["tcp"]);
    let sock = site.outside("app.sock");
    let unix = App::start(&["unix", sock.to_str().unwrap()]);
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = site.outside("tern.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {root:?}\n\
             [route.\"/app/\"]\nproxy = \"http://{a}/\"\nmax_body = \"128MiB\"\n\
             [route.\"/whole/\"]\nproxy = \"http://{a}\"\n\
             [route.\"/trusted/\"]\nproxy = \"http://{a}/\"\ntrust_forwarded = true\n\
             proxy_host = \"backend.internal\"\n\
             [route.\"/quick/\"]\nproxy = \"http://{a}/\"\nproxy_timeout = \"1s\"\n\
             [route.\"/dead/\"]\nproxy = \"http://{dead}/\"\n\
             [route.\"/unix/\"]\nproxy = \"unix:{u}\"\n\
             [route.\"/via/\"]\nproxy = \"http://{a}/\"\nproxy_via = true\n\
             [route.\"/noup/\"]\nproxy = \"http://{a}/\"\nproxy_upgrade = []\n\
             [route.\"/nokeep/\"]\nproxy = \"http://{a}/\"\nproxy_keepalive = 0\n",
            root = site.root(),
            a = app.addr,
            u = unix.addr,
        ),
    )
    .unwrap();
    let server = Server::start_config(&cfg, &site.outside("error.log"), &[]);
    T {
        _site: site,
        server,
        app,
        _unix: unix,
    }
}

fn get(s: &Server, path: &str, extra: &str) -> Vec<u8> {
    let mut c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: front.example\r\n{extra}Connection: close\r\n\r\n");
    c.write_all(req.as_bytes()).unwrap();
    read_to_close(&mut c)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn counter(t: &T, what: &str) -> u64 {
    // Asked directly, not through tern.
    let mut c = std::net::TcpStream::connect(&t.app.addr).unwrap();
    write!(
        c,
        "GET /{what} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out.rsplit("\r\n\r\n")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn proxy_via_adds_via_both_ways_and_is_off_by_default() {
    let t = start();
    let out = text(&get(&t.server, "/via/echo", "Via: 1.0 edge\r\n"));
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(body.starts_with("GET /echo HTTP/1.1\n"), "{body}");
    // The client's Via goes up first, then tern's (two lines of one list, RFC 9110 §5.3).
    assert!(body.contains("\nVia: 1.0 edge\nVia: 1.1 tern\n"), "{body}");
    assert!(head.contains("\r\nVia: 1.1 tern\r\n"), "{head}");
    let out = text(&get(&t.server, "/app/echo", ""));
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(!body.contains("\nVia:"), "{body}");
    assert!(!head.contains("\r\nVia:"), "{head}");
}

#[test]
fn requests_are_re_framed_with_forwarding_headers_set_by_tern() {
    let t = start();
    let out = text(&get(
        &t.server,
        "/app/echo/a%20b/../c?q=1",
        "X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nConnection: x-secret\r\n\
         X-Secret: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\nX-Kept: yes\r\n",
    ));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    // The path: normalised (no dot segment reaches the upstream), re-encoded, mapped.
    assert!(body.starts_with("GET /echo/c?q=1 HTTP/1.1\n"), "{body}");
    assert!(body.contains("\nHost: front.example\n"), "{body}");
    assert!(
        body.contains("\nX-Forwarded-For: 127.0.0.1\n"),
        "replaced: {body}"
    );
    assert!(body.contains("\nX-Forwarded-Proto: http\n"), "{body}");
    assert!(
        body.contains("\nX-Forwarded-Host: front.example\n"),
        "{body}"
    );
    assert!(
        body.contains("\nForwarded: for=127.0.0.1;proto=http;host=\"front.example\"\n"),
        "{body}"
    );
    assert!(body.contains("\nX-Kept: yes\n"), "{body}");
    for gone in [
        "X-Secret",
        "Keep-Alive",
        "TE:",
        "6.6.6.6",
        "Connection: x-secret",
    ] {
        assert!(
            !body.contains(gone),
            "{gone} must not reach the upstream: {body}"
        );
    }
    // The response: end-to-end fields passed, hop-by-hop ones (and those Connection names)
    // dropped, framed by tern.
    assert!(head.contains("\r\nX-Upstream: yes"), "{head}");
    assert!(
        !head.contains("X-Hop") && !head.contains("keep-alive"),
        "{head}"
    );
    assert_eq!(head.matches("Server:").count(), 1, "{head}");

    // HEAD: the head a GET gets, its length included, and no body.
    let mut c = t.server.connect();
    c.write_all(b"HEAD /app/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let head = text(&read_to_close(&mut c));
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nContent-Length: "), "{head}");
    // Without a path in the URL the request's path goes whole; trust_forwarded extends.
    let out = text(&get(&t.server, "/whole/x", ""));
    assert!(out.contains("404") && out.contains("no such page"), "{out}");
    let out = text(&get(
        &t.server,
        "/trusted/echo",
        "X-Forwarded-For: 6.6.6.6\r\n",
    ));
    assert!(
        out.contains("\nX-Forwarded-For: 6.6.6.6, 127.0.0.1\n"),
        "{out}"
    );
    assert!(
        out.contains("\nHost: backend.internal\n"),
        "proxy_host: {out}"
    );
}

/// CRC-32 (zlib's), table-driven so 100 MiB take well under a second even unoptimised.
fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = (c >> 1) ^ (0xEDB8_8320 & (c & 1).wrapping_neg());
        }
        *t = c;
    }
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[test]
fn a_hundred_mib_up_and_down() {
    let t = start();
    let n = 100 << 20;
    let (code, body) = curl(&[&t.server.url(&format!("/app/big?n={n}"))]);
    assert_eq!((code, body.len()), (0, n));
    let block: Vec<u8> = (0..=255u8).collect();
    assert!(
        body.chunks(256).all(|c| c == &block[..c.len()]),
        "100 MiB byte for byte"
    );
    drop(body);
    let p = t._site.outside("upload100");
    let data = common::pattern(1 << 20, 17).repeat(100);
    std::fs::write(&p, &data).unwrap();
    let (code, out) = curl(&[
        "--data-binary",
        &format!("@{}", p.display()),
        &t.server.url("/app/sink"),
    ]);
    assert_eq!(code, 0);
    assert_eq!(text(&out), format!("{n} {:08x}", crc32(&data)));
}

#[test]
fn bodies_stream_both_ways_and_chunked_uploads_are_re_chunked() {
    let t = start();
    let n = 20 << 20;
    let (code, body) = curl(&[&t.server.url(&format!("/app/big?n={n}"))]);
    assert_eq!((code, body.len()), (0, n), "{}", t.server.error_log());
    let block: Vec<u8> = (0..=255u8).collect();
    assert!(
        body.chunks(256).all(|c| c == &block[..c.len()]),
        "20 MiB byte for byte"
    );

    let p = t._site.outside("upload");
    std::fs::write(&p, common::pattern(10 << 20, 5)).unwrap();
    let data = format!("@{}", p.display());
    let (code, out) = curl(&["--data-binary", &data, &t.server.url("/app/echo")]);
    let out = text(&out);
    assert_eq!(code, 0);
    assert!(
        out.contains("\nbody-length: 10485760\n"),
        "{}",
        &out[..out.len().min(600)]
    );
    assert!(out.contains("\nContent-Length: 10485760\n"));
    let (code, out) = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &data,
        &t.server.url("/app/echo"),
    ]);
    let out = text(&out);
    assert_eq!(code, 0);
    assert!(
        out.contains("\nTransfer-Encoding: chunked\n"),
        "{}",
        &out[..600]
    );
    assert!(out.contains("\nbody-length: 10485760\n"));
    // A chunked response goes on chunked to HTTP/1.1, close-delimited to HTTP/1.0.
    let out = text(&get(&t.server, "/app/chunked", ""));
    assert!(
        out.ends_with("\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
        "{out}"
    );
    let mut c = t.server.connect();
    c.write_all(b"GET /app/chunked HTTP/1.0\r\n\r\n").unwrap();
    let out = text(&read_to_close(&mut c));
    assert!(
        out.ends_with("\r\n\r\nhello world") && out.contains("Connection: close"),
        "{out}"
    );
}

#[test]
fn upstream_connections_are_kept_alive_and_reused() {
    let t = start();
    let before = counter(&t, "count");
    for _ in 0..20 {
        let out = text(&get(&t.server, "/app/echo", ""));
        assert!(out.starts_with("HTTP/1.1 200 OK"));
    }
    // Through /unix/ too.
    let out = text(&get(&t.server, "/unix/echo/u", ""));
    assert!(
        out.contains("GET /unix/echo/u HTTP/1.1"),
        "the whole path: {out}"
    );
    let opened = counter(&t, "count") - before - 1; // our own counter connection
    assert!(
        opened <= 1,
        "20 sequential requests opened {opened} upstream connections"
    );
}

#[test]
fn proxy_keepalive_caps_the_idle_connections_kept() {
    let t = start();
    let before = counter(&t, "count");
    for _ in 0..5 {
        let out = text(&get(&t.server, "/nokeep/echo", ""));
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    }
    let opened = counter(&t, "count") - before - 1;
    assert_eq!(opened, 5, "proxy_keepalive = 0: a connection per request");
}

#[test]
fn an_idle_connection_the_upstream_closed_is_not_handed_out() {
    let t = start();
    let out = text(&get(&t.server, "/app/idle-close", ""));
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    // The upstream closes it 100 ms later, in tern's pool.
    std::thread::sleep(Duration::from_millis(400));
    let before = counter(&t, "count");
    // A request with a body is not retried on another connection (it may have been
    // acted on): it only succeeds if tern dropped the dead one when it closed.
    for _ in 0..3 {
        let mut c = t.server.connect();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(
            b"POST /app/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        )
        .unwrap();
        let out = text(&read_to_close(&mut c));
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.contains("body-length: 5"), "{out}");
    }
    let opened = counter(&t, "count") - before - 1;
    assert_eq!(opened, 1, "one new connection, then kept alive");
}

#[test]
fn misbehaving_upstreams_give_502_or_a_closed_connection() {
    let t = start();
    for path in ["/app/cl-te", "/app/two-cl", "/app/close", "/dead/x"] {
        let out = text(&get(&t.server, path, ""));
        assert!(
            out.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
            "{path}: {out}"
        );
    }
    // Broken mid-body: the client connection closes without a complete body.
    let out = text(&get(&t.server, "/app/bad-chunk", ""));
    assert!(
        out.starts_with("HTTP/1.1 200 OK\r\n") && !out.ends_with("0\r\n\r\n"),
        "{out}"
    );
    let out = text(&get(&t.server, "/app/truncated", ""));
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("Content-Length: 100"), "{head}");
    assert_eq!(
        body, "only ten b",
        "short of its length: the client can tell"
    );
    // Close-delimited upstream bodies are whole at the close.
    let out = text(&get(&t.server, "/app/close-delimited", ""));
    assert!(
        out.ends_with("\r\n\r\nf\r\nuntil the close\r\n0\r\n\r\n"),
        "{out}"
    );
    // No head within proxy_timeout: 504.
    let started = std::time::Instant::now();
    let out = text(&get(&t.server, "/quick/slow", ""));
    assert!(out.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(3));
    t.server.wait_log(&[
        "both Content-Length and Transfer-Encoding",
        "closed mid-body",
    ]);
}

#[test]
fn smuggling_shapes_never_reach_the_upstream() {
    let t = start();
    let before = counter(&t, "requests");
    for req in [
        "POST /app/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /app/echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /app/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "POST /app/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "POST /app/echo HTTP/1.1\r\nHost: x\r\nContent-Length : 4\r\n\r\nGET /app/echo/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /app/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        "POST /app/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "GET /app/echo HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    ] {
        let out = text(&t.server.raw(req.as_bytes()));
        let status = out.get(9..12).unwrap_or("");
        assert!(status.starts_with('4') || status.starts_with('5'), "{req:?}: {out}");
        assert!(!out.contains("smuggled"), "{req:?}: {out}");
    }
    // The bad chunk's request head did reach the upstream (it was valid); nothing else did.
    let after = counter(&t, "requests");
    assert!(
        after - before <= 2,
        "{} requests reached the upstream",
        after - before
    );
}

/// Starts tern with one proxy route `/w/` onto `upstream`.
fn front(site: &Site, upstream: &str) -> Server {
    let cfg = site.outside("front.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {:?}\n[route.\"/w/\"]\nproxy = \"{upstream}\"\n",
            site.root()
        ),
    )
    .unwrap();
    Server::start_config(&cfg, &site.outside("front.log"), &[])
}

/// GET and a 1 MiB POST through `/w/` to the WSGI application.
fn wsgi_dialogue(server: &Server, prefix: &str) {
    let (code, out) = curl(&[
        "-H",
        "X-Forwarded-For: 6.6.6.6",
        &server.url("/w/hello?x=1"),
    ]);
    assert_eq!(code, 0);
    let out = text(&out);
    assert!(
        out.starts_with(&format!(
            "GET {prefix}hello x=1 xff=127.0.0.1 host={} len=0\n",
            server.addr
        )),
        "{out}"
    );
    let site = Site::new();
    let p = site.outside("post");
    let data = common::pattern(1 << 20, 9);
    std::fs::write(&p, &data).unwrap();
    let (code, out) = curl(&[
        "--data-binary",
        &format!("@{}", p.display()),
        &server.url("/w/up"),
    ]);
    assert_eq!(code, 0);
    let nl = out.iter().position(|&b| b == b'\n').unwrap();
    assert!(
        text(&out[..nl]).ends_with("len=1048576"),
        "{}",
        text(&out[..nl])
    );
    assert!(
        out[nl + 1..] == data[..],
        "the body went up and came back byte for byte"
    );
}

#[test]
fn a_wsgi_application_under_wsgiref() {
    let site = Site::standard();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/wsgi_app.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is installed (make test installs it through .ci/deps)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("port ")
        .expect("port line")
        .to_string();
    let app = App {
        child,
        addr: format!("127.0.0.1:{port}"),
    };
    let server = front(&site, &format!("http://{}/", app.addr));
    // wsgiref answers HTTP/1.0 and closes: every request gets a new upstream connection.
    wsgi_dialogue(&server, "/");
    wsgi_dialogue(&server, "/");
}

#[test]
fn a_wsgi_application_under_gunicorn_over_a_unix_socket() {
    let ok = Command::new("python3")
        .args(["-c", "import gunicorn"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "gunicorn is needed (make test installs it through .ci/deps: pip install gunicorn)"
    );
    let site = Site::standard();
    let sock = site.outside("gunicorn.sock");
    let mut child = Command::new("python3")
        .args(["-m", "gunicorn", "--workers", "2", "--bind"])
        .arg(format!("unix:{}", sock.display()))
        .arg("--chdir")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream"))
        .arg("wsgi_app:app")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 -m gunicorn");
    // Ready once it says where it listens.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("Listening at") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "gunicorn exited");
    }
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let app = App {
        child,
        addr: sock.display().to_string(),
    };
    let server = front(&site, &format!("unix:{}", app.addr));
    // unix: upstreams get the request's whole path.
    wsgi_dialogue(&server, "/w/");
}

#[test]
fn only_the_protocols_proxy_upgrade_allows_are_passed_on() {
    let t = start();
    let ws = "Upgrade: h2c, websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    // Default websocket: picked out of the client's list (h2c is not allowed).
    let mut c = t.server.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(format!("GET /app/ws HTTP/1.1\r\nHost: x\r\n{ws}\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(text(&head).starts_with("HTTP/1.1 101 "), "{}", text(&head));
    drop(c);
    // proxy_upgrade = []: the upstream never sees the Upgrade, so no tunnel.
    let out = text(&get(&t.server, "/noup/ws", ws));
    assert!(out.starts_with("HTTP/1.1 426 "), "{out}");
}

#[test]
fn a_websocket_upgrade_becomes_a_two_way_tunnel() {
    let t = start();
    let mut c = t.server.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"GET /app/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = text(&head);
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nConnection: upgrade\r\n") && head.contains("\r\nUpgrade: websocket\r\n"),
        "{head}"
    );
    assert!(
        !head.contains("Content-Length") && !head.contains("chunked"),
        "{head}"
    );
    // A masked WebSocket text frame "hello", then a large burst: each comes back as sent.
    let frame = [
        0x81u8,
        0x85,
        1,
        2,
        3,
        4,
        b'h' ^ 1,
        b'e' ^ 2,
        b'l' ^ 3,
        b'l' ^ 4,
        b'o' ^ 1,
    ];
    c.write_all(&frame).unwrap();
    let mut back = [0u8; 11];
    c.read_exact(&mut back).unwrap();
    assert_eq!(back, frame);
    let burst = common::pattern(300_000, 11);
    let mut w = c.try_clone().unwrap();
    let sent = burst.clone();
    let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
    let mut got = vec![0u8; burst.len()];
    c.read_exact(&mut got).unwrap();
    writer.join().unwrap();
    assert!(got == burst, "300 KB through the tunnel both ways");
    // The client closes: the tunnel (and the upstream connection) ends.
    drop(c);
    // Without Upgrade the same path is plain HTTP.
    let out = text(&get(&t.server, "/app/ws", ""));
    assert!(out.starts_with("HTTP/1.1 426 "), "{out}");
}

#[test]
fn an_application_tern_starts_is_kept_alive_and_stopped() {
    let site = Site::standard();
    let sock = site.outside("managed.sock");
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/upstream/app.py");
    let cfg = site.outside("managed.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {:?}\n{}[route.\"/m/\"]\nproxy = \"unix:{}\"\n\
             command = [\"/usr/bin/python3\", {:?}, \"unix\", {:?}]\n",
            site.root(),
            // The application runs in tern's Landlock domain: its script is outside every
            // path the sandbox grants by itself.
            format_args!("sandbox_read = [{:?}]\n", app.parent().unwrap()),
            sock.display(),
            app,
            sock
        ),
    )
    .unwrap();
    let mut server = Server::start_config(&cfg, &site.outside("managed.log"), &[]);
    // Until it listens: 503 with Retry-After; then its answers.
    let pid_of = |server: &Server| -> Option<u32> {
        let out = text(&get(server, "/m/pid", ""));
        if out.starts_with("HTTP/1.1 503 ") {
            assert!(out.contains("Retry-After: 1\r\n"), "{out}");
            return None;
        }
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        out.rsplit("\r\n\r\n").next()?.trim().parse().ok()
    };
    let wait_pid = |server: &Server, not: Option<u32>| -> u32 {
        let start = std::time::Instant::now();
        loop {
            if let Some(p) = pid_of(server).filter(|p| Some(*p) != not) {
                return p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the application never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let first = wait_pid(&server, None);
    // It dies: tern starts it again.
    assert!(Command::new("kill")
        .args(["-KILL", &first.to_string()])
        .status()
        .unwrap()
        .success());
    let second = wait_pid(&server, Some(first));
    assert_ne!(first, second);
    server.wait_log(&["exited", "starting it again"]);
    // It starts with nothing blocked (tern's own signals are caught by handlers, not
    // blocked): a blocked SIGTERM or SIGCHLD would be inherited by a gunicorn master.
    let status = std::fs::read_to_string(format!("/proc/{second}/status")).unwrap();
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap());
    assert_eq!(blocked, Some(0), "{status}");
    // tern stops: so does the application.
    server.signal("TERM");
    assert_eq!(server.wait(Duration::from_secs(10)), Some(0));
    let gone = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        !Path::new(&format!("/proc/{second}")).exists()
    });
    assert!(gone, "the application is stopped with tern");
}
