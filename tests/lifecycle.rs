//! The process as a whole: start-up messages and errors, timeouts, hostile clients, logs,
//! and graceful shutdown.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn tern() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tern"))
}

#[test]
fn startup_errors_are_one_clear_line_and_nonzero() {
    let site = Site::standard();
    let missing = site.outside("nope");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["-p".into(), "0".into(), missing.display().to_string()],
            "nope",
        ),
        (vec!["--bogus".into()], "--bogus"),
        (vec!["-l".into(), "not-an-address".into()], "not-an-address"),
        (
            vec![
                "-p".into(),
                "0".into(),
                site.root().join("a.txt").display().to_string(),
            ],
            "not a directory",
        ),
    ];
    for (args, needle) in cases {
        let out = tern().args(&args).stdin(Stdio::null()).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("tern: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    // Address in use.
    let srv = Server::start(&site, &[]);
    let out = tern()
        .args(["-l", &srv.addr.to_string()])
        .arg(site.root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn help_and_version() {
    let out = tern().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--port",
        "--index",
        "--no-listing",
        "--dotfiles",
        "--header-timeout",
        "--keepalive-timeout",
        "--max-connections",
        "--max-header-size",
        "--server-name",
        "--access-log",
        "--log-format",
        "--version",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let out = tern().arg("-V").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tern "));
}

#[test]
fn announces_every_listener_including_ipv6() {
    let site = Site::standard();
    let ipv6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let mut args = vec!["-l", "127.0.0.1:0"];
    if ipv6 {
        args.extend(["-l", "[::1]:0"]);
    }
    let mut child = tern()
        .args(&args)
        .arg(site.root())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut text = String::new();
    let want = if ipv6 { 2 } else { 1 };
    let mut buf = [0u8; 256];
    while text.lines().count() < want {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("listening on http://127.0.0.1:"),
        "{text}"
    );
    if ipv6 {
        assert!(lines[1].starts_with("listening on http://[::1]:"), "{text}");
        let addr = lines[1].trim_start_matches("listening on http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
            .unwrap();
        let all = read_to_close(&mut s);
        assert!(all.ends_with(b"hello\n"));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn stalled_heads_do_not_delay_others_and_time_out() {
    let site = Site::standard();
    let srv = Server::start(&site, &["--header-timeout", "1"]);
    let stalled: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = srv.connect();
            s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let start = Instant::now();
    let r = srv.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "normal request took {:?}",
        start.elapsed()
    );
    // Each stalled connection gets a 408 and is closed at the head timeout.
    std::thread::sleep(Duration::from_millis(1300));
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let all = read_to_close(&mut s);
        assert!(
            all.starts_with(b"HTTP/1.1 408 "),
            "{}",
            String::from_utf8_lossy(&all)
        );
    }
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let site = Site::standard();
    let srv = Server::start(&site, &["--keepalive-timeout", "0.3"]);
    let mut s = srv.connect();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_response(&mut s, false).unwrap();
    let start = Instant::now();
    let rest = read_to_close(&mut s);
    assert!(rest.is_empty());
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}

fn big_file(site: &Site, name: &str, len: u64) -> Vec<u8> {
    let path = site.root().join(name);
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(len).unwrap();
    // Markers at both ends so truncation or misplacement is visible.
    let marker = pattern(4096, 11);
    use std::os::unix::fs::FileExt;
    f.write_all_at(&marker, 0).unwrap();
    f.write_all_at(&marker, len - 4096).unwrap();
    marker
}

#[test]
fn a_reset_mid_transfer_does_not_disturb_others() {
    let site = Site::standard();
    big_file(&site, "big.bin", 64 << 20);
    let srv = Server::start(&site, &[]);
    for _ in 0..5 {
        let mut s = srv.connect();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        s.read_exact(&mut buf).unwrap();
        // Closing with unread data in the receive queue sends a RST.
        drop(s);
        let r = srv.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.body, b"hello\n");
    }
}

#[test]
fn sigterm_lets_a_100_mib_download_finish_then_exits_0() {
    let site = Site::standard();
    let len: u64 = 100 << 20;
    let marker = big_file(&site, "huge.bin", len);
    let access = site.outside("access.log");
    let mut srv = Server::start(&site, &["--access-log", access.to_str().unwrap()]);
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = vec![0u8; 1 << 20];
    s.read_exact(&mut first).unwrap();
    srv.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    // New connections are refused once shutdown began.
    assert!(
        TcpStream::connect(srv.addr).is_err(),
        "still accepting after SIGTERM"
    );
    let mut rest = Vec::with_capacity(len as usize);
    s.read_to_end(&mut rest).unwrap();
    let all = [first, rest].concat();
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!((all.len() - head_end) as u64, len, "download cut short");
    assert_eq!(&all[head_end..head_end + 4096], &marker[..]);
    assert_eq!(&all[all.len() - 4096..], &marker[..]);
    assert_eq!(srv.wait(Duration::from_secs(5)), Some(0), "exit status");
    let log = std::fs::read_to_string(&access).unwrap();
    assert!(
        log.contains("\"GET /huge.bin HTTP/1.1\" 200 104857600"),
        "access log flushed at exit: {log}"
    );
}

#[test]
fn sigterm_with_idle_connections_exits_at_once() {
    let site = Site::standard();
    let mut srv = Server::start(&site, &[]);
    let mut idle: Vec<TcpStream> = (0..20).map(|_| srv.connect()).collect();
    for s in &mut idle {
        s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        read_response(s, false).unwrap();
    }
    let start = Instant::now();
    srv.signal("TERM");
    assert_eq!(srv.wait(Duration::from_secs(3)), Some(0));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn access_log_formats_and_escaping() {
    let site = Site::standard();
    let path = site.outside("combined.log");
    let mut srv = Server::start(
        &site,
        &[
            "--access-log",
            path.to_str().unwrap(),
            "--log-format",
            "combined",
        ],
    );
    let mut s = srv.connect();
    s.write_all(b"GET /a.txt?q=\"x\" HTTP/1.1\r\nHost: x\r\nReferer: http://r.example/\r\nUser-Agent: agent\t\"q\" \xff\r\n\r\n").unwrap();
    read_response(&mut s, false).unwrap();
    s.write_all(b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    read_response(&mut s, false).unwrap();
    srv.signal("TERM");
    srv.wait(Duration::from_secs(3));
    let log = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{log}");
    assert!(lines[0].contains("\"GET /a.txt?q=\\x22x\\x22 HTTP/1.1\" 200 6 \"http://r.example/\" \"agent\\x09\\x22q\\x22 \\xFF\""), "{log}");
    assert!(lines[1].contains("\"GET /missing HTTP/1.1\" 404 "), "{log}");
    assert!(lines[1].ends_with("\"-\" \"-\""), "{log}");

    // Common format, to stdout.
    let mut child = tern()
        .args(["-l", "127.0.0.1:0", "--access-log", "-"])
        .arg(site.root())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let addr = listening_addr(&mut out);
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"HEAD /a.txt HTTP/1.0\r\n\r\n").unwrap();
    read_to_close(&mut s);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    child.wait().unwrap();
    assert!(rest.contains("\"HEAD /a.txt HTTP/1.0\" 200 -\n"), "{rest}");
    assert!(
        !rest.contains("\" \""),
        "common format has no referer/agent: {rest}"
    );
}

#[test]
fn sighup_reopens_the_access_log() {
    let site = Site::standard();
    let path = site.outside("a.log");
    let moved = site.outside("a.log.1");
    let srv = Server::start(&site, &["--access-log", path.to_str().unwrap()]);
    srv.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(1200));
    std::fs::rename(&path, &moved).unwrap();
    srv.signal("HUP");
    std::thread::sleep(Duration::from_millis(200));
    srv.get("GET /sub/b.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    std::thread::sleep(Duration::from_millis(1200));
    let old = std::fs::read_to_string(&moved).unwrap();
    let new = std::fs::read_to_string(&path).unwrap();
    assert!(
        old.contains("/a.txt") && !old.contains("/sub/b.txt"),
        "{old}"
    );
    assert!(new.contains("/sub/b.txt"), "{new}");
}
