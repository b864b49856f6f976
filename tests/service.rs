//! Running as a service: `user`/`group` (the ids of the running process in /proc), `chroot`
//! (a chroot holding only the document root), `daemon` and `pid_file`, and their bad input.
//! Tests that need root print why and return early when not run as root.
mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn tern() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tern"))
}

fn is_root(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping {test}: needs root (it changes users or chroots)");
    }
    root
}

/// `id -u nobody` and `id -g nobody`.
fn nobody() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "nobody"]).output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

/// A line of /proc/PID/status such as `Uid:`, its fields after the name.
fn status(pid: u32, key: &str) -> Vec<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} in {s}"));
    line[key.len()..]
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// A site whose directories anyone can traverse (tempdirs are 0700), so `nobody` can read it.
fn open_site() -> Site {
    let site = Site::standard();
    for dir in [
        site.dir.path().to_path_buf(),
        site.root(),
        site.root().join("sub"),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    site
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn wait_gone(pid: u32) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Kills a daemon (not our child) when the test ends, however it ends.
struct Reap(u32);

impl Drop for Reap {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = Command::new("kill").arg(self.0.to_string()).status();
        }
    }
}

#[test]
fn user_drops_to_nobody_with_its_groups_and_still_serves() {
    if !is_root("user_drops_to_nobody_with_its_groups_and_still_serves") {
        return;
    }
    let (uid, gid) = nobody();
    let site = open_site();
    let s = Server::start(&site, &["--user", "nobody"]);
    assert_eq!(status(s.pid(), "Uid:"), vec![uid; 4]);
    assert_eq!(status(s.pid(), "Gid:"), vec![gid; 4]);
    let groups = status(s.pid(), "Groups:");
    assert!(!groups.contains(&0), "root's groups kept: {groups:?}");
    assert!(groups.contains(&gid), "{groups:?}");
    let r = s.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello\n");
    // The error log was opened as root and is still written after the drop.
    s.signal("USR1");
    let log = s.wait_log(&["logs reopened"]);
    assert!(!log.contains("running as root"), "{log}");
}

#[test]
fn group_by_number_is_taken() {
    if !is_root("group_by_number_is_taken") {
        return;
    }
    let (uid, _) = nobody();
    let site = open_site();
    let s = Server::start(&site, &["--user", &uid.to_string(), "--group", "4242"]);
    assert_eq!(status(s.pid(), "Uid:"), vec![uid; 4]);
    assert_eq!(status(s.pid(), "Gid:"), vec![4242; 4]);
    assert_eq!(s.get("GET /a.txt HTTP/1.0\r\n\r\n").status, 200);
}

#[test]
fn running_as_root_without_user_warns() {
    if !is_root("running_as_root_without_user_warns") {
        return;
    }
    let site = Site::standard();
    let s = Server::start(&site, &[]);
    let log = s.wait_log(&["running as root"]);
    assert!(log.contains("[warn] running as root: set user"), "{log}");
}

#[test]
fn unknown_user_or_group_is_a_configuration_error() {
    let site = Site::standard();
    let root = site.root();
    let root = root.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--print-config", "--user", "no-such-user-tern", root],
            "user \"no-such-user-tern\": no such user",
        ),
        (
            vec![
                "--print-config",
                "--user",
                "nobody",
                "--group",
                "no-such-group-tern",
                root,
            ],
            "group \"no-such-group-tern\": no such group",
        ),
        (
            vec!["--print-config", "--group", "0", root],
            "group without user: set user as well",
        ),
    ] {
        let out = tern().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // In a file, the error points at the value.
    let conf = site.outside("t.toml");
    std::fs::write(
        &conf,
        format!("root = {root:?}\nuser = \"no-such-user-tern\"\n"),
    )
    .unwrap();
    let out = tern().arg("-t").arg("-c").arg(&conf).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("{}:2:8: user", conf.display())),
        "{err}"
    );
}

/// A chroot holding only the document root `www` (anyone may traverse it).
fn jail() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let jail = t.path().join("jail");
    std::fs::create_dir_all(jail.join("www")).unwrap();
    std::fs::write(jail.join("www/a.txt"), b"inside\n").unwrap();
    for d in [t.path().to_path_buf(), jail.clone(), jail.join("www")] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (t, jail)
}

#[test]
fn chroot_serves_from_inside_an_empty_jail_and_warns_the_cache_is_off() {
    if !is_root("chroot_serves_from_inside_an_empty_jail_and_warns_the_cache_is_off") {
        return;
    }
    let (t, jail) = jail();
    let log = t.path().join("error.log");
    let jail_s = jail.to_str().unwrap();
    let mut s = Server::start_root(
        Path::new("/www"),
        &log,
        &["--chroot", jail_s, "--user", "nobody"],
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/root", s.pid())).unwrap(),
        jail
    );
    let r = s.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"inside\n");
    // MIME types are compiled in and dates are formatted in UTC by tern: nothing to read.
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.header("date").unwrap().ends_with(" GMT"));
    assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
    // Without /proc no file can be watched: said at start, and a change is still seen.
    let text = s.wait_log(&["no /proc/self/fd inside"]);
    assert!(text.contains("[warn] chroot "), "{text}");
    std::fs::write(jail.join("www/a.txt"), b"changed\n").unwrap();
    let r = s.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.body, b"changed\n");
    assert_eq!(s.get("GET /../../etc/passwd HTTP/1.0\r\n\r\n").status, 400);
    s.signal("TERM");
    assert_eq!(s.wait(Duration::from_secs(5)), Some(0));
}

#[test]
fn chroot_paths_are_checked_inside_it_by_t() {
    let (t, jail) = jail();
    let outside = t.path().join("site");
    std::fs::create_dir_all(&outside).unwrap();
    let check = |body: String| {
        let conf = t.path().join("t.toml");
        std::fs::write(&conf, body).unwrap();
        let out = tern().arg("-t").arg("-c").arg(&conf).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = check(format!("chroot = {jail:?}\nroot = \"/www\"\n"));
    assert!(ok, "{err}");
    // A root that exists outside the chroot but not inside it.
    let (ok, err) = check(format!("chroot = {jail:?}\nroot = {outside:?}\n"));
    assert!(!ok);
    assert!(err.contains(":2:8: root"), "{err}");
    assert!(
        err.contains(&format!(
            "no such directory inside chroot {}",
            jail.display()
        )),
        "{err}"
    );
    let missing = t.path().join("nope");
    let (ok, err) = check(format!("chroot = {missing:?}\nroot = \"/\"\n"));
    assert!(!ok);
    assert!(
        err.contains(&format!(
            ":1:10: chroot {}: no such directory",
            missing.display()
        )),
        "{err}"
    );
}

#[test]
fn a_root_leaving_the_chroot_through_a_symlink_is_refused() {
    if !is_root("a_root_leaving_the_chroot_through_a_symlink_is_refused") {
        return;
    }
    let (t, jail) = jail();
    let outside = t.path().join("site");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, jail.join("link")).unwrap();
    let out = tern()
        .args([
            "-l",
            "127.0.0.1:0",
            "--chroot",
            jail.to_str().unwrap(),
            "/link",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outside chroot"), "{err}");
    assert!(out.stdout.is_empty(), "listening before the check");
}

#[test]
fn daemon_detaches_writes_the_pid_file_and_a_second_instance_refuses() {
    let site = Site::standard();
    let pid_file = site.outside("tern.pid");
    let log = site.outside("error.log");
    // Relative paths are taken from the starting directory, before the daemon moves to /.
    let run = |pid_file: &Path| {
        tern()
            .current_dir(site.dir.path())
            .args(["--daemon", "-l", "127.0.0.1:0", "--pid-file"])
            .arg(pid_file.file_name().unwrap())
            .args(["--error-log", "error.log", "root"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&pid_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let addr = stdout
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{stdout}"))
        .trim()
        .to_string();
    let text = std::fs::read_to_string(&pid_file).unwrap();
    let pid: u32 = text.trim().parse().unwrap();
    let _reap = Reap(pid);
    assert!(alive(pid));
    // A session of its own, no terminal, the working directory /, stdio on /dev/null.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let (ppid, sid): (u32, u32) = (fields[1].parse().unwrap(), fields[3].parse().unwrap());
    assert_ne!(sid, pid, "the daemon must not lead its session");
    assert_ne!(ppid, std::process::id());
    assert_eq!(fields[4], "0", "controlling terminal");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        Path::new("/")
    );
    for fd in 0..3 {
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap(),
            Path::new("/dev/null")
        );
    }
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    std::io::Write::write_all(&mut s, b"GET /a.txt HTTP/1.0\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 "), "{body}");
    assert!(body.ends_with("\r\n\r\nhello\n"), "{body}");
    // The error log named relatively on the command line is where it was started.
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("running as root")
        && start.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    if is_root("the daemon's root warning") {
        assert!(std::fs::read_to_string(&log)
            .unwrap()
            .contains("running as root"));
    } else {
        assert!(log.exists());
    }

    // Another instance on another port with the same pid file: refused, file untouched.
    let second = run(&pid_file);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&pid_file.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), text);
    assert!(alive(pid));

    // SIGTERM: the daemon removes the file it wrote.
    assert!(Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap()
        .success());
    assert!(wait_gone(pid));
    assert!(!pid_file.exists());
}

#[test]
fn a_daemon_that_fails_to_start_makes_the_parent_fail_with_its_error() {
    let site = Site::standard();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let pid_file = site.outside("tern.pid");
    let out = tern()
        .args(["--daemon", "-l", &addr, "--pid-file"])
        .arg(&pid_file)
        .arg(site.root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(out.stdout.is_empty());
    // The daemon that wrote the pid file removed it as it exited.
    let start = Instant::now();
    while pid_file.exists() && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pid_file.exists());
}

#[test]
fn a_stale_pid_file_is_taken_over_and_removed_at_exit() {
    let site = Site::standard();
    let pid_file = site.outside("tern.pid");
    // A pid that no process holds the lock for (its writer died).
    std::fs::write(&pid_file, "999999999\n").unwrap();
    let mut s = Server::start(&site, &["--pid-file", pid_file.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        format!("{}\n", s.pid())
    );
    s.signal("TERM");
    assert_eq!(s.wait(Duration::from_secs(5)), Some(0));
    assert!(!pid_file.exists());
}

#[test]
fn service_keys_round_trip_through_print_config() {
    let site = Site::standard();
    let conf = site.outside("t.toml");
    let root = site.root();
    std::fs::write(
        &conf,
        format!(
            "root = {:?}\nuser = \"nobody\"\ngroup = \"nogroup\"\nchroot = \"/\"\n\
             daemon = true\npid_file = \"run/tern.pid\"\n",
            root.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = tern()
        .arg("--print-config")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "user = \"nobody\"",
        "group = \"nogroup\"",
        "chroot = \"/\"",
        "daemon = true",
        &format!(
            "pid_file = {:?}",
            site.outside("run/tern.pid").display().to_string()
        ),
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let again = site.outside("again.toml");
    std::fs::write(&again, &text).unwrap();
    let out2 = tern()
        .arg("--print-config")
        .arg("-c")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out2.stdout).unwrap(), text);
}

/// tern with a configuration file only (its `listen` counts), as `nobody`.
fn start_file(conf: &Path, log: &Path, flags: &[&str]) -> Server {
    let mut child = tern()
        .arg("-c")
        .arg(conf)
        .arg("--error-log")
        .arg(log)
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_addr(&mut child.stdout.take().unwrap())
        .parse()
        .unwrap();
    Server {
        child,
        addr,
        error_log: log.to_path_buf(),
    }
}

#[test]
fn after_the_drop_a_reload_needing_root_is_refused_clearly_and_logs_still_reopen() {
    if !is_root("after_the_drop_a_reload_needing_root_is_refused_clearly_and_logs_still_reopen") {
        return;
    }
    let site = open_site();
    let conf = site.outside("t.toml");
    let root = site.root();
    let body = format!("root = {root:?}\nlisten = \"127.0.0.1:0\"\nuser = \"nobody\"\n");
    std::fs::write(&conf, &body).unwrap();
    let log = site.outside("error.log");
    let s = start_file(&conf, &log, &[]);
    // A port below 1024 needs the privilege given up: logged, the old configuration kept.
    std::fs::write(
        &conf,
        body.replace("\"127.0.0.1:0\"", "[\"127.0.0.1:0\", \"127.0.0.1:81\"]"),
    )
    .unwrap();
    s.signal("HUP");
    let text = s.wait_log(&["still serving the old configuration"]);
    assert!(
        text.contains("reload: cannot listen on 127.0.0.1:81: Permission denied")
            && text.contains("tern no longer runs as root"),
        "{text}"
    );
    assert_eq!(s.get("GET /a.txt HTTP/1.0\r\n\r\n").status, 200);
    // The log file opened as root was given to nobody: reopening it in place works.
    s.signal("USR1");
    let text = s.wait_log(&["logs reopened"]);
    assert!(!text.contains("reopening logs"), "{text}");
    assert!(text.contains("logs reopened"), "{text}");
    // Rotated away, in a directory nobody may not write to: a reload that succeeds keeps
    // writing to the file it has open.
    std::fs::write(&conf, &body).unwrap();
    let rotated = site.outside("error.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    s.signal("HUP");
    let start = Instant::now();
    let mut text = String::new();
    while !text.contains("configuration reloaded") && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        text = std::fs::read_to_string(&rotated).unwrap();
    }
    assert!(text.contains("configuration reloaded"), "{text}");
    assert!(!log.exists());
}

#[test]
fn in_a_chroot_logs_outside_it_reopen_and_a_reload_says_what_it_cannot_read() {
    if !is_root("in_a_chroot_logs_outside_it_reopen_and_a_reload_says_what_it_cannot_read") {
        return;
    }
    let (t, jail) = jail();
    let conf = t.path().join("t.toml");
    let access = t.path().join("access.log");
    std::fs::write(
        &conf,
        format!(
            "root = \"/www\"\nlisten = \"127.0.0.1:0\"\nchroot = {jail:?}\nuser = \"nobody\"\n\
             access_log = {access:?}\n"
        ),
    )
    .unwrap();
    let log = t.path().join("error.log");
    let s = start_file(&conf, &log, &[]);
    assert_eq!(s.get("GET /a.txt HTTP/1.0\r\n\r\n").status, 200);
    // The paths of the logs do not resolve inside the chroot: they are reopened through
    // their directories, opened at start.
    s.signal("USR1");
    let text = s.wait_log(&["logs reopened"]);
    assert!(!text.contains("reopening logs: "), "{text}");
    // The configuration file is outside the chroot too: the reload names it and keeps going.
    s.signal("HUP");
    let text = s.wait_log(&["still serving the old configuration"]);
    assert!(
        text.contains(&format!("reload: {}", conf.display())),
        "{text}"
    );
    assert_eq!(s.get("GET /a.txt HTTP/1.0\r\n\r\n").status, 200);
    let start = Instant::now();
    while !std::fs::read_to_string(&access)
        .unwrap_or_default()
        .lines()
        .count()
        >= 2
        && start.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines = std::fs::read_to_string(&access).unwrap();
    assert_eq!(lines.matches("GET /a.txt").count(), 2, "{lines}");
}

#[test]
fn in_a_chroot_a_rotated_log_is_reopened_through_its_directory() {
    if !is_root("in_a_chroot_a_rotated_log_is_reopened_through_its_directory") {
        return;
    }
    let (t, jail) = jail();
    let (uid, gid) = nobody();
    // The log directory belongs to the user, as /var/log/tern does under the unit.
    let logs = t.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::os::unix::fs::chown(&logs, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let access = logs.join("access.log");
    let conf = t.path().join("t.toml");
    std::fs::write(
        &conf,
        format!(
            "root = \"/www\"\nlisten = \"127.0.0.1:0\"\nchroot = {jail:?}\nuser = \"nobody\"\n\
             access_log = {access:?}\n"
        ),
    )
    .unwrap();
    let s = start_file(&conf, &logs.join("error.log"), &[]);
    assert_eq!(s.get("GET /a.txt HTTP/1.0\r\n\r\n").status, 200);
    // Rotated: the path names no file now, and does not resolve inside the chroot at all.
    std::fs::rename(&access, logs.join("access.log.1")).unwrap();
    s.signal("USR1");
    let text = s.wait_log(&["logs reopened"]);
    assert!(!text.contains("reopening logs: "), "{text}");
    assert_eq!(s.get("GET /a.txt?after HTTP/1.0\r\n\r\n").status, 200);
    let start = Instant::now();
    while !std::fs::read_to_string(&access)
        .unwrap_or_default()
        .contains("GET /a.txt?after")
        && start.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let new = std::fs::read_to_string(&access).expect("a new access.log");
    assert!(
        new.contains("GET /a.txt?after") && !new.contains("GET /a.txt "),
        "{new}"
    );
    let old = std::fs::read_to_string(logs.join("access.log.1")).unwrap();
    assert!(old.contains("GET /a.txt"), "{old}");
}

#[test]
fn a_daemon_logging_to_stderr_warns_before_stderr_goes_away() {
    let site = Site::standard();
    let pid_file = site.outside("tern.pid");
    let out = tern()
        .args(["--daemon", "-l", "127.0.0.1:0", "--pid-file"])
        .arg(&pid_file)
        .arg(site.root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _reap = Reap(pid);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tern: warning: the error log is stderr, /dev/null from now on"),
        "{err}"
    );
}

/// `/proc` bind-mounted inside a jail, unmounted before the jail is removed (and the jail
/// left on disk if unmounting fails, never removed through a mounted /proc).
struct ProcMount {
    at: PathBuf,
    dir: Option<tempfile::TempDir>,
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            if let Some(d) = self.dir.take() {
                let _ = d.keep();
            }
        }
    }
}

#[test]
fn with_proc_inside_the_chroot_files_are_watched_and_symlinks_checked_against_the_new_root() {
    let test =
        "with_proc_inside_the_chroot_files_are_watched_and_symlinks_checked_against_the_new_root";
    if !is_root(test) {
        return;
    }
    let (t, jail) = jail();
    std::fs::create_dir(jail.join("proc")).unwrap();
    let mounted = Command::new("mount")
        .args(["--bind", "/proc"])
        .arg(jail.join("proc"))
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipping {test}: cannot bind-mount /proc here");
        return;
    }
    let log = t.path().join("error.log");
    let _proc = ProcMount {
        at: jail.join("proc"),
        dir: Some(t),
    };
    // An absolute link inside the root: openat2 refuses it, so tern opens it and asks
    // /proc where the descriptor lives, which must be compared with the root as seen
    // from inside the chroot.
    std::os::unix::fs::symlink("/www/a.txt", jail.join("www/abs.txt")).unwrap();
    let s = Server::start_root(
        Path::new("/www"),
        &log,
        &["--chroot", jail.to_str().unwrap(), "--user", "nobody"],
    );
    let get = |p: &str| s.get(&format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert_eq!(get("/a.txt").body, b"inside\n");
    let r = get("/abs.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"inside\n");
    std::fs::write(jail.join("www/a.txt"), b"changed\n").unwrap();
    let start = Instant::now();
    while get("/a.txt").body != b"changed\n" && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get("/a.txt").body, b"changed\n");
    s.signal("USR1");
    let text = s.wait_log(&["reopening logs"]);
    assert!(!text.contains("no /proc/self/fd"), "{text}");
}
