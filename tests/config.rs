//! The configuration file through the real binary: `-t` (check and exit, binding nothing),
//! `--print-config` (output accepted again), and settings from the file taking effect over
//! TCP, with flags overriding them. Routing by host and prefix is tested with the router.
mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn tern(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tern")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A standard site plus `tern.toml` beside its root (`root = "root"` is relative to the
/// file's directory).
fn with_config(toml: &str) -> (Site, PathBuf) {
    let site = Site::standard();
    let file = site.outside("tern.toml");
    std::fs::write(&file, toml).unwrap();
    (site, file)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn check_config_accepts_a_good_file_and_binds_nothing() {
    // Hold the port the file names: `-t` must not try to bind it.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let (site, file) = with_config(&format!(
        "listen = [\"127.0.0.1:{port}\"]\nroot = \"root\"\nindex = [\"index.html\"]\n\
         headers = {{ \"X-Frame-Options\" = \"DENY\" }}\n\
         [route.\"/docs/\"]\nstatic = \"root/sub\"\nlisting = false\n\
         [route.\"/old/\"]\nredirect = \"https://example.com/\"\nstatus = 308\n\
         [vhost.\"Example.com\"]\naliases = [\"*.example.com\"]\nroot = \"root\"\n"
    ));
    for flag in ["-t", "--check-config"] {
        let out = tern(&[flag, "-c", s(&file)]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(
            text(&out.stderr),
            format!("tern: configuration {} is ok\n", file.display())
        );
        assert!(out.stdout.is_empty());
    }
    // Flags are checked with the file: a missing ROOT fails the check.
    let out = tern(&["-t", "-c", s(&file), s(&site.outside("nope"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no such directory"),
        "{}",
        text(&out.stderr)
    );
    drop(held);
}

#[test]
fn check_config_reports_every_error_with_its_place() {
    let (site, _) = with_config("");
    let cases: &[(&str, &[&str])] = &[
        ("root = \"root\"\nindex = \n", &[":2:9: "]),
        (
            "root = \"root\"\nindx = [\"a.html\"]\n",
            &[":2:1: unknown key \"indx\" at the top level; expected one of include, root,"],
        ),
        (
            "listing = \"no\"\n",
            &[":1:11: key \"listing\" at the top level: expected a boolean, found string \"no\""],
        ),
        (
            "root = \"/srv/nope-tern\"\n",
            &[":1:8: root \"/srv/nope-tern\": no such directory"],
        ),
        (
            "listen = [\"localhost:80\"]\n",
            &[":1:11: listen \"localhost:80\": not an address"],
        ),
        (
            "listen = [\"sd:1 reuse_port\", \"80\", \":80\", \"sd:0\"]\n",
            &[
                ":1:11: listen \"sd:1 reuse_port\": reuse_port cannot be set on a socket systemd binds",
                ":1:36: listen \":80\": given twice",
                ":1:43: listen \"sd:0\": sd:N counts from 1",
            ],
        ),
        (
            "[route.\"docs/\"]\nstatic = \"root\"\n[route.\"/a/\"]\nstatic = \"root/a.txt\"\n",
            &[
                ":1:8: route \"docs/\": a prefix starts with /",
                ":4:10: static \"root/a.txt\" (",
            ],
        ),
        (
            "[route.\"/a/\"]\nstatic = \"root\"\n[route.\"/a/\"]\nstatic = \"root\"\n",
            &[":3:8: duplicate key \"/a/\"", ":4:1: duplicate key static"],
        ),
        (
            "headers = { \"X Bad\" = \"1\" }\n",
            &[":1:13: header name \"X Bad\": not a token"],
        ),
        (
            "headers = { \"X-Ok\" = \"a\\nb\" }\n",
            &[":1:22: header \"X-Ok\": control characters"],
        ),
        (
            "[vhost.\"a..b\"]\n[vhost.\"a/b\"]\n[vhost.\"a\\u0000b\"]\n",
            &[
                ":1:8: host name \"a..b\": empty label",
                ":2:8: host name \"a/b\": a slash is not allowed",
                ":3:8: host name \"a\\0b\": NUL is not allowed",
            ],
        ),
        (
            // Upper case and one trailing dot are normalised away: the same name twice.
            "[vhost.\"Upper.Example.\"]\n[vhost.\"upper.example\"]\n",
            &[":2:8: host name \"upper.example\" is already used at "],
        ),
        (
            "[route.\"/a/../b/\"]\nstatic = \"root\"\n[route.\"/r/\"]\nredirect = \"https://x/\"\nstatus = 303\n",
            &[
                ":1:8: route \"/a/../b/\": \".\" and \"..\" segments are not allowed",
                ":5:10: status = 303: expected 301, 302, 307 or 308",
            ],
        ),
        (
            "headers = { Server = \"x\" }\n[vhost.\"a.com:80\"]\n",
            &[
                ":1:13: header \"Server\" cannot be set in headers: use server_name",
                ":2:8: host name \"a.com:80\": a port is not part of a host name",
            ],
        ),
    ];
    for (toml, wants) in cases {
        let file = site.outside("bad.toml");
        std::fs::write(&file, toml).unwrap();
        let out = tern(&["-t", "-c", s(&file)]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{toml}: {err}");
        assert!(out.stdout.is_empty());
        assert_eq!(err.lines().count(), wants.len(), "{toml}: {err}");
        for (line, want) in err.lines().zip(wants.iter()) {
            let prefix = format!("tern: {}", file.display());
            assert!(line.starts_with(&prefix), "{line}");
            assert!(
                line[prefix.len()..].starts_with(want),
                "{line}\nwant: {want}"
            );
        }
    }
    let out = tern(&["-t", "-c", s(&site.outside("missing.toml"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).ends_with("missing.toml: cannot read: no such file or directory\n"));
}

#[test]
fn a_bad_file_stops_the_server_before_it_binds() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let (_site, file) = with_config(&format!(
        "listen = [\"127.0.0.1:{port}\"]\nroot = \"root\"\nmax_header_size = 1\nlog_level = \"loud\"\n"
    ));
    let out = tern(&["-c", s(&file)]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        out.stdout.is_empty(),
        "announced a listener: {}",
        text(&out.stdout)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].ends_with(":3:19: max_header_size = 1: out of range (256 to 1MiB)"),
        "{err}"
    );
    assert!(
        lines[1].ends_with(":4:13: log_level \"loud\": expected one of error, warn, info, debug"),
        "{err}"
    );
    assert!(!err.contains("listen"), "tried to bind: {err}");
    drop(held);
}

#[test]
fn print_config_is_accepted_again() {
    let (site, file) = with_config(
        "root = \"root\"\nheader_timeout = 2.5\nmime = { md = \"text/markdown\" }\n\
         error_page = { 404 = \"/404.html\" }\n\
         [route.\"/docs/\"]\nstatic = \"root/sub\"\nfallback = \"/b.txt\"\n\
         [vhost.\"example.com\"]\nroot = \"root\"\ndefault = true\nlisting = false\n",
    );
    let out = tern(&[
        "--print-config",
        "-c",
        s(&file),
        "--no-listing",
        "-p",
        "9000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(
        printed.contains("\nlisten = [\"127.0.0.1:9000\"]\n"),
        "{printed}"
    );
    assert!(printed.contains("\nlisting = false\n"), "{printed}");
    assert!(
        printed.contains("\nheader_timeout = \"2500ms\"\n"),
        "{printed}"
    );
    // Saved elsewhere, it means the same (paths are absolute) and prints the same.
    let other = tempfile::tempdir().unwrap();
    let again = other.path().join("printed.toml");
    std::fs::write(&again, &printed).unwrap();
    let out = tern(&["-t", "-c", s(&again)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{printed}",
        text(&out.stderr)
    );
    let out = tern(&["--print-config", "-c", s(&again)]);
    assert_eq!(text(&out.stdout), printed);
    // Without -c: the flags and defaults.
    let out = tern(&["--print-config", s(&site.root())]);
    assert_eq!(out.status.code(), Some(0));
    let printed = text(&out.stdout);
    assert!(
        printed.contains(&format!("\nroot = \"{}\"\n", site.root().display())),
        "{printed}"
    );
    assert!(
        printed.contains("\nlisten = [\"127.0.0.1:8080\"]\n"),
        "{printed}"
    );
}

#[test]
fn file_settings_take_effect_and_flags_override_them() {
    let (site, file) = with_config("root = \"root\"\nlisting = false\nindex = [\"index.html\"]\n");
    site.file("d/index.html", b"index\n");
    site.file("d/other.html", b"other\n");
    let log = site.outside("error.log");

    let srv = Server::start_config(&file, &log, &[]);
    let r = srv.get("GET /empty/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 403, "listing = false");
    let r = srv.get("GET /d/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, &r.body[..]), (200, &b"index\n"[..]));
    drop(srv);

    let srv = Server::start_config(&file, &log, &["--index", "other.html"]);
    let r = srv.get("GET /d/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (r.status, &r.body[..]),
        (200, &b"other\n"[..]),
        "--index beats the file"
    );
    let r = srv.get("GET /empty/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 403, "the file's listing = false still holds");
    drop(srv);

    // ROOT on the command line replaces the file's root.
    let other = Site::new();
    other.file("a.txt", b"other root\n");
    let srv = Server::start_config(&file, &log, &[s(&other.root())]);
    let r = srv.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(&r.body[..], b"other root\n");
}

/// Sends half a head and returns how long the 408 took.
fn head_timeout(srv: &Server) -> Duration {
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n").unwrap();
    let all = read_to_close(&mut s);
    assert!(all.starts_with(b"HTTP/1.1 408 "), "{}", text(&all));
    start.elapsed()
}

#[test]
fn header_timeout_from_the_file_and_from_the_flag() {
    let (site, file) = with_config("root = \"root\"\nheader_timeout = \"300ms\"\n");
    let log = site.outside("error.log");
    let srv = Server::start_config(&file, &log, &[]);
    let t = head_timeout(&srv);
    assert!(
        t < Duration::from_millis(2500),
        "file's 300 ms, not the default 10 s: {t:?}"
    );
    drop(srv);

    std::fs::write(&file, "root = \"root\"\nheader_timeout = \"30s\"\n").unwrap();
    let srv = Server::start_config(&file, &log, &["--header-timeout", "300ms"]);
    let t = head_timeout(&srv);
    assert!(
        t < Duration::from_millis(2500),
        "the flag's 300 ms, not the file's 30 s: {t:?}"
    );
}

#[test]
fn help_names_the_config_flags() {
    let out = tern(&["--help"]);
    let help = text(&out.stdout);
    for needle in [
        "-c, --config <FILE>",
        "-t, --check-config",
        "--print-config",
        "SIGHUP",
        "SIGUSR1",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
    let out = tern(&["-t"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
}
