//! Running under systemd: the notify protocol against a test-owned datagram socket standing
//! in for systemd's (READY, STATUS, RELOADING + MONOTONIC_USEC, STOPPING, WATCHDOG, abstract
//! names, bad variables), and the contributed units and configuration (contrib/).
mod common;

use std::ffi::OsStr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, Site};

/// A socket standing in for systemd's, in its own directory.
struct Systemd {
    dir: tempfile::TempDir,
    sock: UnixDatagram,
}

impl Systemd {
    fn new() -> Systemd {
        let dir = tempfile::tempdir().unwrap();
        let sock = UnixDatagram::bind(dir.path().join("notify")).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Systemd { dir, sock }
    }

    fn name(&self) -> std::ffi::OsString {
        self.dir.path().join("notify").into_os_string()
    }

    fn try_recv(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).ok()?;
        Some(String::from_utf8(buf[..n].to_vec()).expect("UTF-8 message"))
    }

    /// The next message; fails after 3 s of silence.
    fn recv(&self) -> String {
        self.try_recv().expect("a message from tern within 3 s")
    }

    /// The next message other than a periodic `STATUS=` or `WATCHDOG=1`.
    fn event(&self) -> String {
        loop {
            let m = self.recv();
            if !m.starts_with("STATUS=") && m != "WATCHDOG=1" {
                return m;
            }
        }
    }

    /// The next `STATUS=` text that satisfies `ok`, waiting at most `limit`.
    fn status(&self, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut seen = Vec::new();
        while start.elapsed() < limit {
            if let Some(m) = self.try_recv() {
                if let Some(text) = m.strip_prefix("STATUS=") {
                    if ok(text) {
                        return text.to_string();
                    }
                }
                seen.push(m);
            }
        }
        panic!("no such STATUS= within {limit:?}; got {seen:?}");
    }

    fn start(&self, site: &Site, args: &[&OsStr], env: &[(&str, &OsStr)]) -> Server {
        let name = self.name();
        let mut all = vec![("NOTIFY_SOCKET", name.as_os_str())];
        all.extend_from_slice(env);
        let log = site.outside("error.log");
        Server::start_args_env(args, &log, &all)
    }
}

fn site() -> Site {
    let s = Site::standard();
    std::fs::write(s.outside("tern.toml"), "root = \"root\"\n").unwrap();
    s
}

fn monotonic_usec() -> u64 {
    tern::sys::notify::monotonic_usec()
}

#[test]
fn ready_then_status_with_connections_and_rate() {
    let sd = Systemd::new();
    let site = site();
    // The connection below idles until the next refresh: longer than the default 5 s.
    let root = site.root();
    let args = [
        "--keepalive-timeout".as_ref(),
        "60s".as_ref(),
        root.as_os_str(),
    ];
    let srv = sd.start(&site, &args, &[]);
    // start_args_env has read the `listening on` line; READY=1 follows it, then the status.
    assert_eq!(sd.recv(), "READY=1");
    assert_eq!(
        sd.recv(),
        "STATUS=0 connections, 0.0 requests/s over the last minute"
    );
    // A keep-alive connection that has served three requests shows within one refresh.
    let mut c = srv.connect();
    for _ in 0..3 {
        use std::io::Write;
        c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(common::read_response(&mut c, false).unwrap().status, 200);
    }
    let text = sd.status(Duration::from_secs(8), |t| t.starts_with("1 connection, "));
    let rate: f64 = text
        .strip_prefix("1 connection, ")
        .and_then(|t| t.strip_suffix(" requests/s over the last minute"))
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("status {text:?}"));
    // 3 requests over the 5 s since the previous sample (0.6), give or take scheduling.
    assert!(rate > 0.3 && rate <= 3.0, "status {text:?}");
    drop(c);
}

#[test]
fn ready_only_once_every_listener_is_announced() {
    // stdout goes to a file: when READY=1 arrives, every `listening on` line must be in it.
    let sd = Systemd::new();
    let site = site();
    let out_path = site.outside("stdout");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .env("NOTIFY_SOCKET", sd.name())
        .args(["-l", "127.0.0.1:0", "-l", "[::1]:0", "--error-log"])
        .arg(site.outside("error.log"))
        .arg(site.root())
        .stdout(out)
        .spawn()
        .unwrap();
    let ready = sd.recv();
    let printed = std::fs::read_to_string(&out_path).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ready, "READY=1");
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed:?}");
    assert!(
        lines[0].starts_with("listening on http://127.0.0.1:"),
        "{printed:?}"
    );
    assert!(
        lines[1].starts_with("listening on http://[::1]:"),
        "{printed:?}"
    );
}

#[test]
fn sighup_reload_reloading_then_ready_and_failure_in_status() {
    let sd = Systemd::new();
    let site = site();
    let cfg = site.outside("tern.toml");
    let srv = sd.start(&site, &["-c".as_ref(), cfg.as_os_str()], &[]);
    assert_eq!(sd.event(), "READY=1");

    let before = monotonic_usec();
    srv.signal("HUP");
    let m = sd.event();
    let after = monotonic_usec();
    let usec: u64 = m
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("expected RELOADING=1 + MONOTONIC_USEC=, got {m:?}"));
    assert!(
        before <= usec && usec <= after,
        "{before} <= {usec} <= {after}"
    );
    assert_eq!(sd.event(), "READY=1");

    // A broken file: still RELOADING=1 then READY=1 (the old configuration serves), and the
    // status says so until a reload succeeds.
    std::fs::write(&cfg, "root = \"root\"\nbogus = 1\n").unwrap();
    srv.signal("HUP");
    assert!(sd.event().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert_eq!(sd.event(), "READY=1");
    assert_eq!(
        sd.recv(),
        "STATUS=0 connections, 0.0 requests/s over the last minute; \
         last reload failed, old configuration kept"
    );
    std::fs::write(&cfg, "root = \"root\"\n").unwrap();
    srv.signal("HUP");
    assert!(sd.event().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert_eq!(sd.event(), "READY=1");
    assert_eq!(
        sd.recv(),
        "STATUS=0 connections, 0.0 requests/s over the last minute"
    );
}

#[test]
fn sighup_without_config_reopens_logs_and_still_reports_a_reload() {
    // Type=notify-reload waits for RELOADING=1 and READY=1 after each SIGHUP it sends.
    let sd = Systemd::new();
    let site = site();
    let srv = sd.start(&site, &[site.root().as_os_str()], &[]);
    assert_eq!(sd.event(), "READY=1");
    srv.signal("HUP");
    assert!(sd.event().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert_eq!(sd.event(), "READY=1");
    assert!(srv.wait_log(&["logs reopened"]).contains("logs reopened"));
}

#[test]
fn sigterm_sends_stopping_then_exits() {
    let sd = Systemd::new();
    let site = site();
    let mut srv = sd.start(&site, &[site.root().as_os_str()], &[]);
    assert_eq!(sd.event(), "READY=1");
    srv.signal("TERM");
    assert_eq!(sd.event(), "STOPPING=1");
    assert_eq!(srv.wait(Duration::from_secs(5)), Some(0));
}

#[test]
fn watchdog_every_half_period() {
    let sd = Systemd::new();
    let site = site();
    let usec = OsStr::new("200000");
    let _srv = sd.start(
        &site,
        &[site.root().as_os_str()],
        &[("WATCHDOG_USEC", usec)],
    );
    // The first ping comes with READY=1; then count the pings of one second.
    let start = loop {
        if sd.recv() == "WATCHDOG=1" {
            break Instant::now();
        }
    };
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(1) {
        if sd.recv() == "WATCHDOG=1" {
            pings += 1;
        }
    }
    // Every 100 ms: ten in a second, give or take a late wake-up on a busy machine.
    assert!((7..=12).contains(&pings), "{pings} pings in 1 s");
}

#[test]
fn watchdog_of_another_pid_is_not_ours() {
    let sd = Systemd::new();
    let site = site();
    let env = [
        ("WATCHDOG_USEC", OsStr::new("200000")),
        ("WATCHDOG_PID", OsStr::new("1")),
    ];
    let _srv = sd.start(&site, &[site.root().as_os_str()], &env);
    assert_eq!(sd.recv(), "READY=1");
    sd.sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(600) {
        got.extend(sd.try_recv());
    }
    assert!(got.iter().all(|m| m.starts_with("STATUS=")), "{got:?}");
}

#[test]
fn abstract_socket_name() {
    let name = format!("tern-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let site = site();
    let at = format!("@{name}");
    let env = [("NOTIFY_SOCKET", OsStr::new(&at))];
    let _srv = Server::start_args_env(&[site.root().as_os_str()], &site.outside("error.log"), &env);
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).expect("READY=1 on the abstract socket");
    assert_eq!(&buf[..n], b"READY=1");
}

#[test]
fn unusable_notify_variables_are_start_up_errors() {
    let site = site();
    for (var, value, why) in [
        ("NOTIFY_SOCKET", "relative/path", "not an absolute path"),
        ("WATCHDOG_USEC", "soon", "not a positive integer"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tern"))
            .env("NOTIFY_SOCKET", "/nonexistent/notify")
            .env(var, value)
            .args(["--listen", "127.0.0.1:0"])
            .arg(site.root())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{var}={value}: {err}");
        assert!(err.starts_with(&format!("tern: {var}=")), "{err}");
        assert!(err.contains(why), "{err}");
        assert!(out.stdout.is_empty(), "bound nothing: {:?}", out.stdout);
    }
}

/// A socket that is gone is not an error: tern serves and logs one warning.
#[test]
fn vanished_systemd_only_warns() {
    let site = site();
    let env = [("NOTIFY_SOCKET", OsStr::new("/nonexistent/notify"))];
    let srv = Server::start_args_env(&[site.root().as_os_str()], &site.outside("error.log"), &env);
    assert_eq!(
        srv.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
    let log = srv.wait_log(&["NOTIFY_SOCKET: "]);
    assert_eq!(log.matches("NOTIFY_SOCKET: ").count(), 1, "{log}");
}

fn contrib(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(rel)
}

/// systemd-analyze's major version ("systemd 252 (252.38-1~deb12u1)").
fn systemd_version() -> Option<u32> {
    let out = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `systemd-analyze verify` on `units` in `dir`; fails on an error or on any warning
/// about them (verify exits 0 after "Unknown key" and similar, only printing them).
fn verify(dir: &std::path::Path, units: &[&str]) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("tern")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify {units:?}: {}\n{err}",
        out.status
    );
}

#[test]
fn contributed_units_verify() {
    if systemd_version().is_none() {
        // CI installs systemd (.ci/deps): there, a missing tool is a failure, not a skip.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing in CI; .ci/deps should have installed systemd"
        );
        eprintln!("skipped: systemd-analyze is not installed (apt-get install systemd)");
        return;
    }
    let version = systemd_version().unwrap();
    // verify checks that ExecStart= exists: point it at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let service = std::fs::read_to_string(contrib("systemd/tern.service")).unwrap();
    let bin = env!("CARGO_BIN_EXE_tern");
    assert!(service.contains("ExecStart=/usr/local/bin/tern -c /etc/tern/tern.toml\n"));
    assert!(service.contains("\nType=notify\n"));
    assert!(service.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));
    let here = service.replace("/usr/local/bin/tern", bin);
    std::fs::write(dir.path().join("tern.service"), &here).unwrap();
    for (unit, name) in [("tern.socket", "http"), ("tern-https.socket", "https")] {
        let text = std::fs::read_to_string(contrib(&format!("systemd/{unit}"))).unwrap();
        assert!(
            text.contains(&format!("\nFileDescriptorName={name}\n")),
            "{unit}"
        );
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    verify(
        dir.path(),
        &["tern.service", "tern.socket", "tern-https.socket"],
    );
    // The hardening keeps systemd's own exposure score low ("1.7 OK" with systemd 252).
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager", "tern.service"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for tern.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 2.0, "exposure {score}:\n{text}");
    // The commented form for systemd 253 and later, where that systemd is here to check it.
    if version >= 253 {
        let reload = here
            .replace("\nType=notify\n", "\nType=notify-reload\n")
            .replace("\nExecReload=/bin/kill -HUP $MAINPID\n", "\n");
        std::fs::write(dir.path().join("tern.service"), reload).unwrap();
        verify(dir.path(), &["tern.service"]);
    }
}

#[test]
fn contributed_config_passes_check_when_its_paths_exist() {
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().display().to_string();
    std::fs::create_dir_all(dir.path().join("srv/www/default")).unwrap();
    std::fs::create_dir_all(dir.path().join("etc/tern/sites")).unwrap();
    let text = std::fs::read_to_string(contrib("tern.toml")).unwrap();
    assert!(text.contains("\"/srv/www/") && text.contains("\"/var/log/tern/"));
    let text = text
        .replace("\"/srv/www/", &format!("\"{at}/srv/www/"))
        .replace("\"/var/log/tern/", &format!("\"{at}/log/"));
    let cfg = dir.path().join("etc/tern/tern.toml");
    std::fs::write(&cfg, text).unwrap();
    let check = |cfg: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_tern"))
            .arg("-t")
            .arg("-c")
            .arg(cfg)
            .output()
            .unwrap()
    };
    let out = check(&cfg);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err,
        format!("tern: configuration {} is ok\n", cfg.display())
    );
    // And a host file in sites/ is included, and checked.
    let site = dir.path().join("etc/tern/sites/example.com.toml");
    std::fs::write(&site, "[vhost.\"example.com\"]\nroot = \"/nonexistent\"\n").unwrap();
    let out = check(&cfg);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
}

#[test]
fn contributed_logrotate_reopens_with_sigusr1() {
    let text = std::fs::read_to_string(contrib("logrotate/tern")).unwrap();
    assert!(text.contains("/var/log/tern/*.log {"));
    assert!(text.contains("kill -USR1 \"$pid\""));
    assert!(!text.lines().any(|l| l.trim() == "copytruncate"));
}
