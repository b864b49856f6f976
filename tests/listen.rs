//! Listeners: address forms (a bare port is dual-stack, `0.0.0.0` IPv4 only, `[::]` IPv6
//! only), IPv4-mapped peers logged as plain IPv4, `reuse_port` per listener, and socket
//! activation (`sd:N`, `sd:NAME`) with sockets passed the way systemd passes them.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, Site};

const TERN: &str = env!("CARGO_BIN_EXE_tern");

/// Whose pid `LISTEN_PID` carries.
enum Pid {
    /// tern's own (set by the shell that execs it: `$$` survives `exec`).
    Tern,
    Other(u32),
}

/// Starts tern with `socks` as descriptors 3, 4, ... and `LISTEN_FDS` / `LISTEN_PID` /
/// `LISTEN_FDNAMES` set, as systemd does, then `args`.
fn activated(socks: &[RawFd], names: Option<&str>, pid: Pid, args: &[&str]) -> Child {
    let mut cmd = match pid {
        Pid::Tern => {
            let mut c = Command::new("sh");
            c.args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\"", TERN]);
            c
        }
        Pid::Other(p) => {
            let mut c = Command::new(TERN);
            c.env("LISTEN_PID", p.to_string());
            c
        }
    };
    cmd.args(args)
        .env("LISTEN_FDS", socks.len().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(n) = names {
        cmd.env("LISTEN_FDNAMES", n);
    }
    let socks = socks.to_vec();
    // SAFETY: the hook runs in the forked child before exec and calls only fcntl and dup2,
    // which are async-signal-safe; it touches no memory shared with other threads.
    unsafe {
        cmd.pre_exec(move || {
            // Move every socket out of the way first, so that placing one on 3 + i never
            // overwrites another still to be placed. F_DUPFD leaves close-on-exec off.
            let mut high = Vec::with_capacity(socks.len());
            for &fd in &socks {
                let h = libc::fcntl(fd, libc::F_DUPFD, 100);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(h);
            }
            for (i, &h) in high.iter().enumerate() {
                if libc::dup2(h, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(h);
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn tern")
}

/// The `listening on` lines tern prints first, `n` of them.
fn announced(child: &mut Child, n: usize) -> Vec<String> {
    let out = child.stdout.as_mut().unwrap();
    (0..n).map(|_| common::listening_addr(out)).collect()
}

/// Waits for tern to fail at start-up and returns its stderr.
fn fails(mut child: Child) -> String {
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(1), "exit status; stderr: {err}");
    err
}

fn get(addr: &str, path: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    common::read_response(&mut s, false)
        .expect("response")
        .status
}

fn server(child: Child, addr: &str, error_log: std::path::PathBuf) -> Server {
    Server {
        child,
        addr: addr.parse().unwrap(),
        error_log,
    }
}

fn local(l: &TcpListener) -> String {
    l.local_addr().unwrap().to_string()
}

#[test]
fn sd_1_adopts_the_passed_socket_without_binding_again() {
    let site = Site::standard();
    let log = site.outside("error.log");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let root = site.root();
    let mut child = activated(
        &[l.as_raw_fd()],
        None,
        Pid::Tern,
        &[
            "--listen",
            "sd:1",
            "--error-log",
            log.to_str().unwrap(),
            root.to_str().unwrap(),
        ],
    );
    // The same port: binding it again would have failed, the test still holds it open.
    let addrs = announced(&mut child, 1);
    assert_eq!(addrs, vec![local(&l)]);
    let _srv = server(child, &addrs[0], log);
    assert_eq!(get(&addrs[0], "/a.txt"), 200);
}

#[test]
fn sd_name_picks_by_file_descriptor_name_in_config_order() {
    let site = Site::standard();
    let log = site.outside("error.log");
    let (a, b) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("[::1]:0").unwrap(),
    );
    let root = site.root();
    let mut child = activated(
        &[a.as_raw_fd(), b.as_raw_fd()],
        Some("http:https"),
        Pid::Tern,
        &[
            "--listen",
            "sd:https",
            "--listen",
            "sd:http",
            "--error-log",
            log.to_str().unwrap(),
            root.to_str().unwrap(),
        ],
    );
    let addrs = announced(&mut child, 2);
    assert_eq!(addrs, vec![local(&b), local(&a)]);
    let _srv = server(child, &addrs[0], log);
    assert_eq!(get(&addrs[0], "/a.txt"), 200);
    assert_eq!(get(&addrs[1], "/a.txt"), 200);
}

#[test]
fn sd_errors_are_clear_at_start_up() {
    let site = Site::standard();
    let root = site.root();
    let (a, b) = (
        TcpListener::bind("127.0.0.1:0").unwrap(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let two = [a.as_raw_fd(), b.as_raw_fd()];
    let run = |listen: &str, names, pid| {
        let args = ["--listen", listen, root.to_str().unwrap()];
        fails(activated(&two, names, pid, &args))
    };
    let err = run("sd:3", None, Pid::Tern);
    assert!(
        err.contains("listen sd:3: systemd passed 2 sockets (LISTEN_FDS), so there is no socket 3"),
        "{err}"
    );
    let err = run("sd:admin", Some("http:https"), Pid::Tern);
    assert!(
        err.contains("listen sd:admin: systemd passed no socket named \"admin\" (LISTEN_FDNAMES: http:https)"),
        "{err}"
    );
    // Sockets meant for another process are not ours: ignored, so sd:1 has none.
    let err = run("sd:1", None, Pid::Other(1));
    assert!(
        err.contains("listen sd:1: the sockets in LISTEN_FDS are for process 1, not this one"),
        "{err}"
    );
    // The same socket twice (by number and by name).
    let args = [
        "--listen",
        "sd:1",
        "--listen",
        "sd:http",
        root.to_str().unwrap(),
    ];
    let err = fails(activated(&two, Some("http:https"), Pid::Tern, &args));
    assert!(
        err.contains("is named by another listen entry too"),
        "{err}"
    );
    // Without any passed socket.
    let err = fails(
        Command::new(TERN)
            .args(["--listen", "sd:1", root.to_str().unwrap()])
            .env_remove("LISTEN_FDS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(
        err.contains("listen sd:1: systemd passed no sockets (LISTEN_FDS is not set)"),
        "{err}"
    );
    // Something that is not a listening TCP socket.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let args = ["--listen", "sd:1", root.to_str().unwrap()];
    let err = fails(activated(&[udp.as_raw_fd()], None, Pid::Tern, &args));
    assert!(
        err.contains("listen sd:1: passed socket 1 is not a stream (TCP) socket"),
        "{err}"
    );
}

#[test]
fn a_bare_port_is_dual_stack_and_logs_ipv4_clients_as_ipv4() {
    let site = Site::standard();
    let access = site.outside("access.log");
    let log = site.outside("error.log");
    let root = site.root();
    let mut child = Command::new(TERN)
        .args(["--listen", ":0", "--access-log", access.to_str().unwrap()])
        .args(["--error-log", log.to_str().unwrap(), root.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addrs = announced(&mut child, 1);
    let at: SocketAddr = addrs[0].parse().unwrap();
    assert_eq!(
        at.ip().to_string(),
        "::",
        "one dual-stack socket: {addrs:?}"
    );
    let mut srv = server(child, &addrs[0], log);
    let port = at.port();
    assert_eq!(get(&format!("127.0.0.1:{port}"), "/a.txt"), 200);
    assert_eq!(get(&format!("[::1]:{port}"), "/sub/b.txt"), 200);
    // A bad request goes to the error log with the peer too.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    s.write_all(b"BAD\r\n\r\n").unwrap();
    let _ = common::read_to_close(&mut s);
    drop(s);
    srv.signal("TERM");
    assert_eq!(srv.wait(Duration::from_secs(5)), Some(0));
    let text = std::fs::read_to_string(&access).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("127.0.0.1 ") && l.contains("/a.txt")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::1 ") && l.contains("/sub/b.txt")),
        "{text}"
    );
    assert!(!text.contains("::ffff:"), "mapped form logged: {text}");
    let errors = srv.error_log();
    assert!(errors.contains("127.0.0.1: 400"), "{errors}");
    assert!(!errors.contains("::ffff:"), "mapped form logged: {errors}");
}

#[test]
fn unspecified_v4_and_v6_addresses_take_one_family_each() {
    let site = Site::standard();
    for (listen, ok, refused) in [
        ("0.0.0.0:0", "127.0.0.1", "[::1]"),
        ("[::]:0", "[::1]", "127.0.0.1"),
    ] {
        let mut child = Command::new(TERN)
            .args(["--listen", listen, site.root().to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let addrs = announced(&mut child, 1);
        let port = addrs[0].parse::<SocketAddr>().unwrap().port();
        let _srv = server(child, &addrs[0], site.outside("error.log"));
        assert_eq!(get(&format!("{ok}:{port}"), "/a.txt"), 200, "{listen}");
        assert!(
            TcpStream::connect(format!("{refused}:{port}")).is_err(),
            "{listen} reached over {refused}"
        );
    }
}

#[test]
fn reuse_port_per_listener_lets_a_second_instance_share_the_port() {
    let site = Site::standard();
    let root = site.root();
    let start = |listen: &str| {
        Command::new(TERN)
            .args(["--listen", listen, root.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = start("127.0.0.1:0 reuse_port");
    let addr = announced(&mut first, 1).remove(0);
    let _first = server(first, &addr, site.outside("e1.log"));
    let mut second = start(&format!("{addr} reuse_port"));
    assert_eq!(announced(&mut second, 1), vec![addr.clone()]);
    let _second = server(second, &addr, site.outside("e2.log"));
    let err = fails(start(&addr));
    assert!(
        err.contains(&format!("cannot listen on {addr}: Address already in use")),
        "{err}"
    );
}

#[test]
fn a_reload_keeps_adopted_sockets_and_does_not_adopt_again() {
    let site = Site::standard();
    let cfg = site.outside("tern.toml");
    let root = site.root();
    let log = site.outside("error.log");
    let body = |extra: &str| {
        format!(
            "listen = [\"sd:1\"{extra}]\nroot = {:?}\n",
            root.to_str().unwrap()
        )
    };
    std::fs::write(&cfg, body("")).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let args = [
        "-c",
        cfg.to_str().unwrap(),
        "--error-log",
        log.to_str().unwrap(),
    ];
    let mut child = activated(&[l.as_raw_fd()], None, Pid::Tern, &args);
    let addrs = announced(&mut child, 1);
    let srv = server(child, &addrs[0], log);
    std::fs::write(&cfg, body(", \"127.0.0.1:0\"")).unwrap();
    srv.signal("HUP");
    let text = srv.wait_log(&["configuration reloaded"]);
    assert!(text.contains("configuration reloaded"), "{text}");
    assert!(!text.contains("reload failed"), "{text}");
    assert_eq!(
        get(&addrs[0], "/a.txt"),
        200,
        "the adopted socket still serves"
    );
    // sd:2 was never passed: the reload fails like a broken file and keeps serving.
    std::fs::write(&cfg, body(", \"sd:2\"")).unwrap();
    srv.signal("HUP");
    let text = srv.wait_log(&["reload failed"]);
    assert!(
        text.contains("listen sd:2: systemd passed 1 socket (LISTEN_FDS), so there is no socket 2"),
        "{text}"
    );
    assert_eq!(get(&addrs[0], "/a.txt"), 200);
}

/// The same through systemd's own tool, when it is installed (package `systemd`).
#[test]
fn systemd_socket_activate_passes_named_sockets() {
    let Ok(tool) = which("systemd-socket-activate") else {
        eprintln!("skipped: systemd-socket-activate is not installed (apt-get install systemd)");
        return;
    };
    let site = Site::standard();
    let log = site.outside("error.log");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let at = format!("127.0.0.1:{port}");
    let mut child = Command::new(tool)
        .args(["-l", &at, "--fdname=http", TERN, "--listen", "sd:http"])
        .args([
            "--error-log",
            log.to_str().unwrap(),
            site.root().to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Kill(child.id());
    // The tool starts tern on the first connection, as systemd does for a socket unit; the
    // connection waits in the backlog meanwhile (retried until the tool has bound).
    let start = std::time::Instant::now();
    let mut s = loop {
        match TcpStream::connect(&at) {
            Ok(s) => break s,
            Err(e) if start.elapsed() > common::TIMEOUT => panic!("connect {at}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    s.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(announced(&mut child, 1), vec![at.clone()]);
    assert_eq!(common::read_response(&mut s, false).unwrap().status, 200);
    let _srv = server(child, &at, log);
    std::mem::forget(guard); // the Server kills and reaps it now
    assert_eq!(get(&at, "/sub/b.txt"), 200);
}

/// Kills a child even if the test panics before a `Server` owns it.
struct Kill(u32);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
