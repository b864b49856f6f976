//! Basic authentication and address rules over real TCP: every htpasswd format (hashes made
//! by apache2-utils' `htpasswd` and fixed vectors), wrong and malformed credentials,
//! protected listings and error pages, `auth_methods`, `auth = false`, reloading the file,
//! the failure limiter, the count of hashes for unknown users and wrong passwords, and
//! `allow`/`deny` with the narrowest scope winning.
mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use common::{Server, Site};

struct Conf {
    site: Site,
}

impl Conf {
    fn new() -> Conf {
        let site = Site::new();
        site.dir("");
        site.file("index.html", b"home\n");
        site.file("open/a.txt", b"open\n");
        site.file("sub/b.txt", b"bee\n");
        Conf { site }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.site.outside(rel)
    }

    fn write(&self, rel: &str, data: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// `tern.toml` with `@` for the temporary directory; `root` is `@/root`.
    fn start(&self, toml: &str) -> Server {
        let text =
            format!("root = \"@/root\"\n{toml}").replace('@', &self.path("").display().to_string());
        let cfg = self.write("tern.toml", &text);
        Server::start_config(&cfg, &self.path("error.log"), &[])
    }
}

/// `htpasswd -n -b FLAGS user password`'s line (apache2-utils, installed by .ci/deps).
fn htpasswd(flags: &[&str], user: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .arg("-nb")
        .args(flags)
        .args([user, password])
        .output()
        .expect("htpasswd is installed (apache2-utils, through .ci/deps)");
    assert!(out.status.success(), "htpasswd {flags:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn basic(cred: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(cred)
}

fn get(srv: &Server, path: &str, auth: Option<&[u8]>) -> common::Response {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
    if let Some(c) = auth {
        req.push_str(&format!("Authorization: Basic {}\r\n", basic(c)));
    }
    req.push_str("\r\n");
    srv.get(&req)
}

const CHALLENGE: &str = "Basic realm=\"Private area\", charset=\"UTF-8\"";

/// Users of every scheme, each with password "pw-NAME".
fn users() -> String {
    let mut lines = vec![
        htpasswd(&["-B", "-C", "5"], "bcrypt", "pw-bcrypt"),
        htpasswd(&["-m"], "apr1", "pw-apr1"),
        htpasswd(&["-s"], "sha1", "pw-sha1"),
        htpasswd(&["-2"], "sha256", "pw-sha256"),
        htpasswd(&["-5"], "sha512", "pw-sha512"),
        htpasswd(&["-m"], "empty", ""),
        // Fixed vectors (openssl passwd, the $2b$ spelling of an htpasswd bcrypt hash).
        "fixed5:$5$salt$Oo0nc86Ktkc05wTAggFOZIQJhfxhAZY1mlIogZJN.i.".into(),
        "fixed2b:$2b$05$4wJwdLIDEmb/uRKy9n0vGOgA2a2qtObJL8KeV8Getzg35Y.654O.a".into(),
        "fixedapr:$apr1$x6FXgKCG$h4XnzMQrEj3jQMohWnq1u0".into(),
    ];
    lines.push(String::new());
    lines.join("\n")
}

fn protected(c: &Conf, extra: &str) -> Server {
    c.write("users", &users());
    c.start(&format!(
        "auth = {{ realm = \"Private area\", htpasswd = \"@/users\" }}\n{extra}"
    ))
}

#[test]
fn each_htpasswd_format_admits_its_password_only() {
    let c = Conf::new();
    let srv = protected(&c, "");
    for user in ["bcrypt", "apr1", "sha1", "sha256", "sha512"] {
        let good = format!("{user}:pw-{user}");
        let r = get(&srv, "/index.html", Some(good.as_bytes()));
        assert_eq!(r.status, 200, "{user}");
        assert_eq!(r.body, b"home\n");
        let bad = format!("{user}:pw-{user}x");
        let r = get(&srv, "/index.html", Some(bad.as_bytes()));
        assert_eq!(r.status, 401, "{user}");
        assert_eq!(r.header("WWW-Authenticate"), Some(CHALLENGE));
    }
    for (user, pw) in [
        ("fixed5", "pw"),
        ("fixed2b", "pw"),
        ("fixedapr", "pw"),
        ("empty", ""),
    ] {
        let cred = format!("{user}:{pw}");
        assert_eq!(get(&srv, "/", Some(cred.as_bytes())).status, 200, "{user}");
    }
}

#[test]
fn missing_wrong_and_malformed_credentials_get_the_challenge() {
    let c = Conf::new();
    let srv = protected(&c, "auth_max_failures = 1000\n");
    let cases: Vec<(&str, String)> = vec![
        ("none", String::new()),
        (
            "unknown user",
            format!("Authorization: Basic {}\r\n", basic(b"nobody:pw-bcrypt")),
        ),
        (
            "wrong password",
            format!("Authorization: Basic {}\r\n", basic(b"sha1:nope")),
        ),
        (
            "empty password",
            format!("Authorization: Basic {}\r\n", basic(b"sha1:")),
        ),
        ("not base64", "Authorization: Basic !!!!\r\n".into()),
        (
            "no colon",
            format!("Authorization: Basic {}\r\n", basic(b"sha1")),
        ),
        ("other scheme", "Authorization: Bearer abc\r\n".into()),
        (
            "non-UTF-8 user",
            format!("Authorization: Basic {}\r\n", basic(b"sha\xff1:pw-sha1")),
        ),
        (
            "non-UTF-8 password",
            format!("Authorization: Basic {}\r\n", basic(b"sha1:pw-\xffsha1")),
        ),
    ];
    for (name, header) in cases {
        for method in ["GET", "HEAD", "DELETE", "OPTIONS"] {
            let req = format!("{method} /index.html HTTP/1.1\r\nHost: x\r\n{header}\r\n");
            let r = srv.get(&req);
            assert_eq!(r.status, 401, "{name} {method}");
            assert_eq!(r.header("WWW-Authenticate"), Some(CHALLENGE), "{name}");
        }
    }
}

#[test]
fn listings_and_error_pages_are_protected() {
    let c = Conf::new();
    let srv = protected(&c, "listing = true\nindex = []\n");
    // Without credentials neither a listing nor a 404 tells what exists.
    for path in ["/", "/sub/", "/missing", "/sub"] {
        let r = get(&srv, path, None);
        assert_eq!(r.status, 401, "{path}");
        assert!(!String::from_utf8_lossy(&r.body).contains("b.txt"));
    }
    let good = Some(&b"sha1:pw-sha1"[..]);
    let r = get(&srv, "/sub/", good);
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("b.txt"));
    assert_eq!(get(&srv, "/missing", good).status, 404);
    assert_eq!(get(&srv, "/sub", good).status, 301);
}

#[test]
fn auth_methods_and_auth_false() {
    let c = Conf::new();
    let srv = protected(
        &c,
        "auth_methods = [\"PUT\", \"POST\", \"DELETE\"]\n\
         [route.\"/open/\"]\nstatic = \"@/root/open\"\nauth = false\n\
         [route.\"/sub/\"]\nstatic = \"@/root/sub\"\nauth_methods = [\"GET\", \"HEAD\"]\n",
    );
    assert_eq!(get(&srv, "/index.html", None).status, 200);
    let del = srv.get("DELETE /index.html HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(del.status, 401);
    let del = format!(
        "DELETE /index.html HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\r\n",
        basic(b"sha1:pw-sha1")
    );
    // Past authentication a static route does not allow DELETE.
    assert_eq!(srv.get(&del).status, 405);
    assert_eq!(get(&srv, "/open/a.txt", None).status, 200);
    let del = srv.get("DELETE /open/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(del.status, 405);
    assert_eq!(get(&srv, "/sub/b.txt", None).status, 401);
    assert_eq!(get(&srv, "/sub/b.txt", Some(b"sha1:pw-sha1")).status, 200);
}

#[test]
fn htpasswd_file_is_read_again_when_it_changes() {
    let c = Conf::new();
    c.write("users", &htpasswd(&["-s"], "old", "pw1"));
    let srv = c.start(
        "auth_max_failures = 1000\nauth = { realm = \"Private area\", htpasswd = \"@/users\" }\n",
    );
    assert_eq!(get(&srv, "/", Some(b"old:pw1")).status, 200);
    let new = format!("{}\n", htpasswd(&["-B", "-C", "5"], "new", "pw2"));
    let tmp = c.write("users.tmp", &new);
    std::fs::rename(&tmp, c.path("users")).unwrap();
    // The file is looked at again at most once a second.
    let start = std::time::Instant::now();
    while get(&srv, "/", Some(b"new:pw2")).status != 200 {
        assert!(start.elapsed().as_secs() < 5, "new users never read");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(get(&srv, "/", Some(b"old:pw1")).status, 401);
    // A broken version is reported and the users read before stay.
    let tmp = c.write("users.tmp", "new:plaintext\n");
    std::fs::rename(&tmp, c.path("users")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(get(&srv, "/", Some(b"new:pw2")).status, 200);
    let log = srv.wait_log(&["plain-text"]);
    assert!(log.contains("keeping the users read before"), "{log}");
}

#[test]
fn failure_limiter_spares_cached_credentials() {
    let c = Conf::new();
    let srv = protected(&c, "auth_max_failures = 3\n");
    assert_eq!(get(&srv, "/", Some(b"sha1:pw-sha1")).status, 200);
    for _ in 0..3 {
        assert_eq!(get(&srv, "/", Some(b"sha1:wrong")).status, 401);
    }
    let r = get(&srv, "/", Some(b"sha1:wrong"));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("Retry-After"), Some("60"));
    // Not in the cache yet: refused without a hash, right or not.
    assert_eq!(get(&srv, "/", Some(b"apr1:pw-apr1")).status, 429);
    // Verified before: still admitted.
    assert_eq!(get(&srv, "/", Some(b"sha1:pw-sha1")).status, 200);
}

/// Unknown users and wrong passwords both cost one hash (counted in the debug log, not
/// timed), and verified credentials cost none the second time.
#[test]
fn unknown_users_and_wrong_passwords_both_run_a_hash() {
    let c = Conf::new();
    c.write("users", &users());
    let srv = c.start(
        "log_level = \"debug\"\n\
         auth = { realm = \"Private area\", htpasswd = \"@/users\" }\n",
    );
    assert_eq!(get(&srv, "/", Some(b"nobody:x")).status, 401);
    assert_eq!(get(&srv, "/", Some(b"bcrypt:x")).status, 401);
    assert_eq!(get(&srv, "/", Some(b"bcrypt:pw-bcrypt")).status, 200);
    assert_eq!(get(&srv, "/", Some(b"bcrypt:pw-bcrypt")).status, 200);
    let log = srv.wait_log(&["unknown user nobody", "hashes so far: 3"]);
    let hashes: Vec<&str> = log.lines().filter(|l| l.contains("auth: hash")).collect();
    assert_eq!(hashes.len(), 3, "{log}");
    // The unknown user was checked against the file's first entry (bcrypt), as costly as
    // a known user's.
    assert!(
        hashes[0].contains("hash bcrypt for unknown user nobody: failed"),
        "{log}"
    );
    assert!(
        hashes[1].contains("hash bcrypt for known user bcrypt: failed"),
        "{log}"
    );
    assert!(hashes[2].contains("verified"), "{log}");
}

#[test]
fn plain_text_and_des_entries_are_refused_at_load() {
    let c = Conf::new();
    for (entry, word) in [("u:secret", "plain-text"), ("u:rqXexS6ZhobKA", "DES crypt")] {
        c.write(
            "users",
            &format!("{}\n{entry}\n", htpasswd(&["-s"], "ok", "x")),
        );
        let text = format!(
            "root = \"{0}/root\"\nauth = {{ realm = \"r\", htpasswd = \"{0}/users\" }}\n",
            c.path("").display()
        );
        let cfg = c.write("tern.toml", &text);
        let out = Command::new(env!("CARGO_BIN_EXE_tern"))
            .arg("-t")
            .arg("-c")
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("tern.toml:2:"), "{err}");
        assert!(err.contains("line 2: user \"u\""), "{err}");
        assert!(err.contains(word), "{err}");
    }
}

#[test]
fn allow_and_deny_narrowest_scope_wins() {
    let c = Conf::new();
    let srv = c.start(
        "deny = [\"all\"]\n\
         [route.\"/open/\"]\nstatic = \"@/root/open\"\nallow = [\"127.0.0.0/8\"]\ndeny = [\"all\"]\n\
         [route.\"/sub/\"]\nstatic = \"@/root/sub\"\ndeny = [\"10.0.0.0/8\", \"::1\"]\n",
    );
    assert_eq!(get(&srv, "/index.html", None).status, 403);
    assert_eq!(get(&srv, "/missing", None).status, 403);
    assert_eq!(get(&srv, "/open/a.txt", None).status, 200);
    assert_eq!(get(&srv, "/sub/b.txt", None).status, 200);
    let srv = c.start("deny = [\"127.0.0.1\"]\nallow = [\"::1\"]\n");
    assert_eq!(get(&srv, "/index.html", None).status, 403);
    // Deny is checked before authentication: no challenge for a refused address.
    c.write("users", &users());
    let srv =
        c.start("deny = [\"127.0.0.0/8\"]\nauth = { realm = \"r\", htpasswd = \"@/users\" }\n");
    let r = get(&srv, "/", None);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("WWW-Authenticate"), None);
}

#[test]
fn bad_address_rules_fail_the_load() {
    let c = Conf::new();
    let cfg = c.write(
        "bad.toml",
        &format!(
            "root = \"{}/root\"\nallow = [\"10.0.0.1/8\"]\n",
            c.path("").display()
        ),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["-t", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:2:10: allow:"), "{err}");
    assert!(err.contains("10.0.0.0/8"), "{err}");
    let _ = std::io::stderr().flush();
}

/// A request waiting for its hash holds back the pipelined ones behind it; each is then
/// answered in order, and the second use of the credentials needs no hash.
#[test]
fn pipelined_requests_wait_for_the_hash_in_order() {
    let c = Conf::new();
    let srv = protected(
        &c,
        "[route.\"/open/\"]\nstatic = \"@/root/open\"\nauth = false\n",
    );
    let cred = basic(b"bcrypt:pw-bcrypt");
    let req = format!(
        "GET /index.html HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {cred}\r\n\r\n\
         GET /open/a.txt HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /index.html HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\r\n\
         GET /sub/b.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {cred}\r\nConnection: close\r\n\r\n",
        basic(b"bcrypt:wrong")
    );
    let rs = common::parse_responses(&srv.raw(req.as_bytes()));
    let got: Vec<(u16, Vec<u8>)> = rs.iter().map(|r| (r.status, r.body.clone())).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], (200, b"home\n".to_vec()));
    assert_eq!(got[1], (200, b"open\n".to_vec()));
    assert_eq!(got[2].0, 401);
    assert_eq!(got[3], (200, b"bee\n".to_vec()));
}

/// What is answered before routing (an unknown method, `OPTIONS *`, a head that cannot be
/// parsed) follows the default host's address rules too.
#[test]
fn deny_covers_requests_answered_before_routing() {
    let c = Conf::new();
    let srv = c.start("deny = [\"all\"]\n");
    for req in [
        "FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    ] {
        assert_eq!(srv.get(req).status, 403, "{req:?}");
    }
}

/// A request answered after its hash ran off the loop is logged like any other: the
/// combined format keeps its referer and user agent.
#[test]
fn a_late_401_is_logged_with_referer_and_user_agent() {
    let c = Conf::new();
    let srv = protected(
        &c,
        "access_log = \"@/access.log\"\nlog_format = \"combined\"\nauth_max_failures = 1000\n",
    );
    let req = format!(
        "GET /sub/b.txt HTTP/1.1\r\nHost: x\r\nReferer: http://ref.example/\r\n\
         User-Agent: late-agent/1\r\nAuthorization: Basic {}\r\n\r\n",
        basic(b"sha1:wrong")
    );
    assert_eq!(srv.get(&req).status, 401);
    let log = c.path("access.log");
    let start = std::time::Instant::now();
    let mut text = String::new();
    while !text.contains("late-agent/1") && start.elapsed() < std::time::Duration::from_secs(3) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        text = std::fs::read_to_string(&log).unwrap_or_default();
    }
    assert!(
        text.contains("\"GET /sub/b.txt HTTP/1.1\" 401 ")
            && text.contains("\"http://ref.example/\" \"late-agent/1\""),
        "{text}"
    );
}
