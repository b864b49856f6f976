//! The Landlock sandbox (README "Landlock"): the start-up line names the kernel's ABI, the
//! kernel refuses links out of the root even with tern's own containment switched off (a
//! debug-build switch), and a reload that needs a path outside the sandbox is refused.
mod common;

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

use common::{Server, Site};

/// The running kernel's Landlock ABI (`landlock_create_ruleset(NULL, 0, VERSION)`), asked
/// through Python's ctypes so that the test holds no `unsafe`; `None` without Landlock.
fn kernel_abi() -> Option<i32> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import ctypes; print(ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1))",
        ])
        .output()
        .expect("python3 is needed to read the kernel's Landlock ABI (apt-get install python3)");
    assert!(out.status.success(), "python3 failed: {out:?}");
    let n: i32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a number");
    (n > 0).then_some(n)
}

fn status(srv: &Server, path: &str) -> u16 {
    srv.get(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"))
        .status
}

/// A root with a file, a symlink to `/etc/passwd` and one to a readable file beside the root.
fn site_with_links() -> Site {
    let s = Site::standard();
    std::os::unix::fs::symlink("/etc/passwd", s.root().join("pw")).unwrap();
    let beside = s.outside("beside.txt");
    std::fs::write(&beside, b"not for the web\n").unwrap();
    std::os::unix::fs::symlink(&beside, s.root().join("beside")).unwrap();
    s
}

fn start_uncontained(s: &Site, flags: &[&str]) -> Server {
    let log = s.outside(&format!("error-{}.log", flags.len()));
    let mut args: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
    let root = s.root();
    args.push(root.as_os_str());
    Server::start_args_env(
        &args,
        &log,
        &[("TERN_TEST_NO_CONTAINMENT", OsStr::new("1"))],
    )
}

#[test]
fn the_log_names_what_is_enforced() {
    let s = Site::standard();
    let srv = Server::start(&s, &[]);
    let log = srv.wait_log(&["landlock: "]);
    match kernel_abi() {
        Some(abi) => assert!(
            log.contains(&format!("[info] landlock: ABI {abi}, enforced\n")),
            "{log}"
        ),
        None => assert!(
            log.contains("[warn] landlock: not supported by this kernel\n"),
            "{log}"
        ),
    }
    assert_eq!(status(&srv, "/a.txt"), 200);
    let off = Server::start(&s, &["--no-sandbox"]);
    let log = off.wait_log(&["landlock: "]);
    assert!(
        log.contains("[info] landlock: off (sandbox = false)\n"),
        "{log}"
    );
}

#[test]
#[cfg_attr(
    not(debug_assertions),
    ignore = "TERN_TEST_NO_CONTAINMENT exists in debug builds only"
)]
fn the_kernel_refuses_links_out_of_the_root() {
    let s = site_with_links();
    // Control: without tern's containment and without the sandbox, both links are served,
    // so the refusals below come from the kernel and nothing else.
    let open = start_uncontained(&s, &["--no-sandbox"]);
    assert_eq!(status(&open, "/pw"), 200);
    assert_eq!(status(&open, "/beside"), 200);
    drop(open);
    if kernel_abi().is_none() {
        eprintln!("skipped: this kernel has no Landlock (the log test checks the message)");
        return;
    }
    let srv = start_uncontained(&s, &[]);
    assert_eq!(status(&srv, "/a.txt"), 200);
    assert_eq!(status(&srv, "/sub/b.txt"), 200);
    // EACCES from the kernel, answered as nginx answers a permission error.
    assert_eq!(status(&srv, "/pw"), 403);
    assert_eq!(status(&srv, "/beside"), 403);
    let body = srv.get("GET /pw HTTP/1.1\r\nHost: t\r\n\r\n").body;
    assert!(!String::from_utf8_lossy(&body).contains("root:"));
}

#[test]
fn a_reload_outside_the_sandbox_keeps_the_old_configuration() {
    if kernel_abi().is_none() {
        eprintln!("skipped: this kernel has no Landlock");
        return;
    }
    let s = Site::standard();
    let other = s.outside("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("a.txt"), b"other\n").unwrap();
    // The configuration in a directory of its own: the sandbox allows reading beneath it.
    std::fs::create_dir_all(s.outside("etc")).unwrap();
    let cfg = s.outside("etc/tern.toml");
    let root = s.root();
    std::fs::write(&cfg, format!("root = {:?}\n", root.display().to_string())).unwrap();
    let srv = Server::start_config(&cfg, &s.outside("error.log"), &[]);
    assert_eq!(
        srv.get("GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n").body,
        b"hello\n"
    );
    // A root beside the old one: outside the sandbox, so the reload fails like a broken file.
    std::fs::write(&cfg, format!("root = {:?}\n", other.display().to_string())).unwrap();
    srv.signal("HUP");
    let log = srv.wait_log(&["still serving the old configuration"]);
    assert!(log.contains("ermission denied"), "{log}");
    assert_eq!(
        srv.get("GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n").body,
        b"hello\n"
    );
    // A root beneath the old one is inside: that reload works.
    let sub = root.join("sub");
    std::fs::write(&cfg, format!("root = {:?}\n", sub.display().to_string())).unwrap();
    srv.signal("HUP");
    let log = srv.wait_log(&["configuration reloaded"]);
    assert!(log.contains("configuration reloaded"), "{log}");
    let start = std::time::Instant::now();
    while status(&srv, "/b.txt") != 200 && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        srv.get("GET /b.txt HTTP/1.1\r\nHost: t\r\n\r\n").body,
        b"bee\n"
    );
}

/// A CGI script runs in tern's domain: it starts (the system directories are granted), but
/// reads a file outside every granted path only once `sandbox_read` names it.
#[test]
fn cgi_children_get_what_starting_needs_and_sandbox_read_adds_more() {
    if kernel_abi().is_none() {
        eprintln!("skipped: this kernel has no Landlock");
        return;
    }
    let s = Site::standard();
    let cgi = s.outside("cgi");
    let data = s.outside("data");
    std::fs::create_dir_all(&cgi).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("note.txt"), b"private note\n").unwrap();
    let script = cgi.join("show");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\ncat {:?} 2>&1\n",
            data.join("note.txt")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(s.outside("etc")).unwrap();
    let cfg = s.outside("etc/tern.toml");
    let body = |extra: &str| {
        std::fs::write(
            &cfg,
            format!(
                "root = {:?}\n{extra}\n[route.\"/cgi-bin/\"]\ncgi = {:?}\n",
                s.root().display().to_string(),
                cgi.display().to_string()
            ),
        )
        .unwrap();
        let srv = Server::start_config(&cfg, &s.outside("error.log"), &[]);
        // HTTP/1.0: the body of unknown length is close-delimited, read to the end.
        let raw =
            String::from_utf8_lossy(&srv.raw(b"GET /cgi-bin/show HTTP/1.0\r\n\r\n")).into_owned();
        assert!(raw.starts_with("HTTP/1.1 200 "), "{raw}");
        raw.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    };
    let refused = body("");
    assert!(refused.contains("Permission denied"), "{refused}");
    assert!(!refused.contains("private note"), "{refused}");
    let allowed = body(&format!(
        "sandbox_read = [{:?}]",
        data.display().to_string()
    ));
    assert_eq!(allowed, "private note\n");
}
