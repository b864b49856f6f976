//! The key-value store over real TCP and curl: httpdb's dialogue, PUT/DELETE, concurrent
//! writers and readers of one key, a client gone mid-upload, a large upload with flat RSS,
//! every refusal (keys, preconditions, sizes), `100 Continue` both ways, and a pipelined GET
//! after a PUT seeing the new value.
mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use common::{curl, Server, Site};

struct Store {
    site: Site,
}

impl Store {
    fn new() -> Store {
        let site = Site::new();
        site.dir("");
        std::fs::create_dir_all(site.outside("data")).unwrap();
        Store { site }
    }

    fn data(&self) -> PathBuf {
        self.site.outside("data")
    }

    /// A store at `/db/` (all keys at `/_all`) plus `extra` route options.
    fn start(&self, top: &str, extra: &str) -> Server {
        let dir = self.site.outside("").display().to_string();
        let text = format!(
            "root = \"{dir}/root\"\n{top}\n[route.\"/db/\"]\nstore = \"{dir}/data\"\nall = \"/_all\"\n{extra}\n"
        );
        let cfg = self.site.outside("tern.toml");
        std::fs::write(&cfg, text).unwrap();
        Server::start_config(&cfg, &self.site.outside("error.log"), &[])
    }

    /// Names in the store's directory (temporary files included, if any were left).
    fn names(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data().join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// curl -i: status line, headers, body.
fn curl_i(args: &[&str]) -> common::Response {
    let (code, out) = curl(&[&["-i"][..], args].concat());
    assert_eq!(code, 0, "curl {args:?}");
    let mut rs = common::parse_responses(&out);
    assert!(!rs.is_empty(), "{}", String::from_utf8_lossy(&out));
    rs.pop().unwrap()
}

#[test]
fn httpdb_dialogue_over_curl() {
    let s = Store::new();
    let srv = s.start("", "");
    let url = srv.url("/db/users/alice");
    let json = ["-H", "Content-Type: application/json"];
    // Keys below a missing directory need create_dirs: a flat key here.
    let url = url.replace("users/", "");
    let r = curl_i(
        &[
            &json[..],
            &["-X", "POST", "--data", "{\"name\": \"Alice\"}", &url],
        ]
        .concat(),
    );
    assert_eq!(r.status, 201);
    let body = String::from_utf8(r.body.clone()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["key"], "alice");
    assert_eq!(v["size"], 17);
    assert_eq!(v["etag"].as_str(), r.header("ETag"));
    assert_eq!(r.header("Location"), Some("/db/alice"));
    let r = curl_i(
        &[
            &json[..],
            &["-X", "POST", "--data", "{\"name\": \"Alice B\"}", &url],
        ]
        .concat(),
    );
    assert_eq!(r.status, 200);
    let r = curl_i(&[&url[..]]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"{\"name\": \"Alice B\"}");
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(r.header("Content-Security-Policy"), Some("sandbox"));
    assert_eq!(curl_i(&[&srv.url("/db/bob")]).status, 404);
    let bad = curl_i(
        &[
            &json[..],
            &["-X", "POST", "--data", "{\"name\": }", &srv.url("/db/bad")],
        ]
        .concat(),
    );
    assert_eq!(bad.status, 400);
    let msg = String::from_utf8_lossy(&bad.body);
    assert!(
        msg.contains("invalid JSON") && msg.contains("line 1 column 10"),
        "{msg}"
    );
    assert_eq!(s.names(""), ["alice"]);
    // Every key, as httpdb's GET /_all.
    let all = curl_i(&[&srv.url("/_all")]);
    assert_eq!(all.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&all.body).unwrap();
    assert_eq!(v[0]["key"], "alice");
    assert_eq!(v[0]["href"], "/db/alice");
    assert_eq!(v.as_array().unwrap().len(), 1);
    // The same through the store's root with Accept: application/json.
    let root = curl_i(&["-H", "Accept: application/json", &srv.url("/db/")]);
    let v: serde_json::Value = serde_json::from_slice(&root.body).unwrap();
    assert_eq!(v[0]["name"], "alice");
}

#[test]
fn put_and_delete_over_curl() {
    let s = Store::new();
    let srv = s.start("", "create_dirs = true\nrecursive = true\n");
    let url = srv.url("/db/a/b/c.txt");
    let r = curl_i(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: text/html",
        "--data-binary",
        "<b>one</b>",
        &url,
    ]);
    assert_eq!(r.status, 201);
    assert_eq!(r.header("Location"), Some("/db/a/b/c.txt"));
    let r = curl_i(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: text/html",
        "--data-binary",
        "<b>two</b>",
        &url,
    ]);
    assert_eq!(r.status, 204);
    let etag = r.header("ETag").unwrap().to_string();
    let got = curl_i(&[&url[..]]);
    assert_eq!(got.body, b"<b>two</b>");
    assert_eq!(got.header("Content-Type"), Some("text/html"));
    assert_eq!(got.header("Content-Security-Policy"), Some("sandbox"));
    assert_eq!(got.header("ETag"), Some(etag.as_str()));
    // The type is kept in the file's extended attribute.
    let f = std::fs::File::open(s.data().join("a/b/c.txt")).unwrap();
    assert_eq!(
        tern::store::stored_type(&f, None, c"c.txt").as_deref(),
        Some("text/html")
    );
    let all = curl_i(&["-H", "Accept: application/json", &srv.url("/db/")]);
    let v: serde_json::Value = serde_json::from_slice(&all.body).unwrap();
    assert_eq!(v[0]["key"], "a/b/c.txt");
    assert_eq!(v[0]["href"], "/db/a/b/c.txt");
    assert_eq!(curl_i(&["-X", "DELETE", &url]).status, 204);
    assert_eq!(curl_i(&["-X", "DELETE", &url]).status, 404);
    assert_eq!(curl_i(&[&url[..]]).status, 404);
    assert!(s.names("a/b").is_empty());
    let opts = curl_i(&["-X", "OPTIONS", &url]);
    assert_eq!(
        opts.header("Allow"),
        Some("GET, HEAD, PUT, POST, DELETE, OPTIONS")
    );
    let patch = curl_i(&["-X", "PATCH", &url]);
    assert_eq!(patch.status, 405);
}

fn put_raw(srv: &Server, path: &str, headers: &str, body: &[u8]) -> common::Response {
    let mut s = srv.connect();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    common::read_response(&mut s, false).expect("response")
}

#[test]
fn refusals() {
    let s = Store::new();
    let srv = s.start("", "");
    std::fs::create_dir(s.data().join("dir")).unwrap();
    std::fs::create_dir(s.site.outside("elsewhere")).unwrap();
    std::os::unix::fs::symlink(s.site.outside("elsewhere"), s.data().join("link")).unwrap();
    std::fs::write(s.site.outside("target"), b"outside").unwrap();
    std::os::unix::fs::symlink(s.site.outside("target"), s.data().join("slink")).unwrap();
    let cases = [
        ("/db/.hidden", 403),
        ("/db/a/.git", 403),
        ("/db/x/../y", 400),
        ("/db/x/%2e%2e/y", 400),
        ("/db/./y", 400),
        ("/db/a%2fb", 400),
        ("/db/a%00b", 400),
        ("/db/", 400),
        ("/db/k/", 400),
        ("/db/dir", 409),
        ("/db/missing/k", 409),
        ("/db/link/k", 403),
        ("/db/slink", 403),
    ];
    for (path, want) in cases {
        let r = put_raw(&srv, path, "", b"v");
        assert_eq!(r.status, want, "{path}");
    }
    assert_eq!(std::fs::read(s.site.outside("target")).unwrap(), b"outside");
    assert!(std::fs::read_dir(s.site.outside("elsewhere"))
        .unwrap()
        .next()
        .is_none());
    let r = put_raw(&srv, "/db/t", "Content-Type: not a type\r\n", b"v");
    assert_eq!(r.status, 400);
    // Conditional writes.
    let r = put_raw(&srv, "/db/k", "If-None-Match: *\r\n", b"first");
    assert_eq!(r.status, 201);
    let etag = r.header("ETag").unwrap().to_string();
    assert_eq!(
        put_raw(&srv, "/db/k", "If-None-Match: *\r\n", b"again").status,
        412
    );
    assert_eq!(
        put_raw(&srv, "/db/k", "If-Match: \"nope\"\r\n", b"x").status,
        412
    );
    assert_eq!(
        put_raw(&srv, "/db/new", "If-Match: *\r\n", b"x").status,
        412
    );
    let old = "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
    assert_eq!(put_raw(&srv, "/db/k", old, b"x").status, 412);
    let r = put_raw(&srv, "/db/k", &format!("If-Match: {etag}\r\n"), b"second");
    assert_eq!(r.status, 204);
    // The tag moved on: the same If-Match now loses (two clients cannot both win).
    assert_eq!(
        put_raw(&srv, "/db/k", &format!("If-Match: {etag}\r\n"), b"third").status,
        412
    );
    let del = srv.get(&format!(
        "DELETE /db/k HTTP/1.1\r\nHost: x\r\nIf-Match: {etag}\r\n\r\n"
    ));
    assert_eq!(del.status, 412);
    assert_eq!(std::fs::read(s.data().join("k")).unwrap(), b"second");
    assert_eq!(s.names(""), ["dir", "k", "link", "slink"]);
}

#[test]
fn sizes_and_100_continue_both_ways() {
    let s = Store::new();
    let srv = s.start("", "max_body = \"1KiB\"\n");
    // Accepted: 100 Continue first, then the final answer once the body is in.
    let mut c = srv.connect();
    c.write_all(
        b"PUT /db/c HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut first = [0u8; 25];
    c.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hello").unwrap();
    assert_eq!(common::read_response(&mut c, false).unwrap().status, 201);
    // Refused before the body: the final status at once, no 100.
    for (headers, want) in [
        ("Content-Length: 5000\r\n", 413),
        ("Content-Length: 5\r\nIf-None-Match: *\r\n", 412),
        ("Content-Length: 5\r\n", 403),
    ] {
        let path = if want == 403 { "/db/.x" } else { "/db/c" };
        let mut c = srv.connect();
        let head =
            format!("PUT {path} HTTP/1.1\r\nHost: x\r\n{headers}Expect: 100-continue\r\n\r\n");
        c.write_all(head.as_bytes()).unwrap();
        let r = common::read_response(&mut c, false).unwrap();
        assert_eq!(r.status, want, "{headers}");
    }
    // A chunked body that grows past max_body: 413 and nothing stored.
    let mut c = srv.connect();
    c.write_all(b"PUT /db/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    let _ = c.write_all(chunk.as_bytes());
    let _ = c.write_all(chunk.as_bytes());
    assert_eq!(common::read_response(&mut c, false).unwrap().status, 413);
    assert_eq!(s.names(""), ["c"]);
}

#[test]
fn pipelined_get_after_put_sees_the_new_value() {
    let s = Store::new();
    let srv = s.start("", "");
    assert_eq!(put_raw(&srv, "/db/p", "", b"old").status, 201);
    // Cached by a first read.
    assert_eq!(
        srv.get("GET /db/p HTTP/1.1\r\nHost: x\r\n\r\n").body,
        b"old"
    );
    let req = b"PUT /db/p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nnew\
GET /db/p HTTP/1.1\r\nHost: x\r\n\r\n\
DELETE /db/p HTTP/1.1\r\nHost: x\r\n\r\n\
GET /db/p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let rs = common::parse_responses(&srv.raw(req));
    let got: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(got, [204, 200, 204, 404]);
    assert_eq!(rs[1].body, b"new");
}

/// A client that goes away mid-body leaves the old value and no temporary file.
#[test]
fn client_killed_mid_upload() {
    let s = Store::new();
    let srv = s.start("", "");
    assert_eq!(put_raw(&srv, "/db/k", "", b"old value").status, 201);
    for _ in 0..3 {
        let mut c = srv.connect();
        c.write_all(b"PUT /db/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
            .unwrap();
        c.write_all(&vec![b'x'; 300_000]).unwrap();
        drop(c);
    }
    // A request on a new connection is served after the server saw the others go.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        srv.get("GET /db/k HTTP/1.1\r\nHost: x\r\n\r\n").body,
        b"old value"
    );
    assert_eq!(s.names(""), ["k"]);
    let log = srv.error_log();
    assert!(!log.contains("[error]"), "{log}");
}

/// 100 clients at once on one key, half writing whole versions (each a single repeated
/// byte), half reading: every read is exactly one version, whole.
#[test]
fn concurrent_writers_and_readers_on_one_key() {
    const LEN: usize = 64 * 1024;
    let s = Store::new();
    let srv = s.start("", "");
    assert_eq!(put_raw(&srv, "/db/hot", "", &vec![b'A'; LEN]).status, 201);
    let addr = srv.addr;
    let mut threads = Vec::new();
    for i in 0..100u8 {
        threads.push(std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            if i % 2 == 0 {
                let byte = b'B' + (i / 2) % 20;
                let head =
                    format!("PUT /db/hot HTTP/1.1\r\nHost: x\r\nContent-Length: {LEN}\r\n\r\n");
                c.write_all(head.as_bytes()).unwrap();
                c.write_all(&vec![byte; LEN]).unwrap();
                let r = common::read_response(&mut c, false).unwrap();
                assert_eq!(r.status, 204);
            } else {
                for _ in 0..3 {
                    c.write_all(b"GET /db/hot HTTP/1.1\r\nHost: x\r\n\r\n")
                        .unwrap();
                    let r = common::read_response(&mut c, false).unwrap();
                    assert_eq!(r.status, 200);
                    assert_eq!(r.body.len(), LEN);
                    let first = r.body[0];
                    assert!(r.body.iter().all(|&b| b == first), "a mixed read");
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.names(""), ["hot"]);
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A 1 GiB upload streams through with the server's peak RSS growing by less than 16 MiB
/// (about 2 s here, debug build; the staging buffer is 64 KiB).
#[test]
fn large_upload_streams_with_flat_rss() {
    const LEN: u64 = 1 << 30;
    let s = Store::new();
    let srv = s.start("", "max_body = \"1GiB\"\n");
    assert_eq!(put_raw(&srv, "/db/warm", "", b"x").status, 201);
    let before = vm_hwm_kib(srv.pid());
    let mut c = srv.connect();
    c.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!("PUT /db/big HTTP/1.1\r\nHost: x\r\nContent-Length: {LEN}\r\n\r\n");
    c.write_all(head.as_bytes()).unwrap();
    let block = common::pattern(1 << 20, 7);
    for _ in 0..(LEN >> 20) {
        c.write_all(&block).unwrap();
    }
    let r = common::read_response(&mut c, false).unwrap();
    assert_eq!(r.status, 201);
    let after = vm_hwm_kib(srv.pid());
    assert!(
        after - before < 16 * 1024,
        "peak RSS grew {} KiB",
        after - before
    );
    let meta = std::fs::metadata(s.data().join("big")).unwrap();
    assert_eq!(meta.len(), LEN);
    let mut f = std::fs::File::open(s.data().join("big")).unwrap();
    let mut first = vec![0u8; 1 << 20];
    f.read_exact(&mut first).unwrap();
    assert_eq!(first, block);
}

#[test]
fn writes_behind_auth() {
    let s = Store::new();
    let line = std::process::Command::new("htpasswd")
        .args(["-nbB", "-C", "5", "w", "pw"])
        .output()
        .expect("htpasswd is installed (apache2-utils, through .ci/deps)");
    std::fs::write(s.site.outside("users"), &line.stdout).unwrap();
    let users = s.site.outside("users").display().to_string();
    let srv = s.start(
        "",
        &format!("auth = {{ realm = \"db\", htpasswd = \"{users}\" }}\nauth_methods = [\"PUT\", \"POST\", \"DELETE\"]\n"),
    );
    // Without credentials a PUT that expects 100 gets 401 at once.
    let mut c = srv.connect();
    c.write_all(
        b"PUT /db/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let r = common::read_response(&mut c, false).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"db\", charset=\"UTF-8\"")
    );
    // With them (the hash runs off the loop, then the write goes on, 100 Continue and all).
    let mut c = srv.connect();
    c.write_all(
        b"PUT /db/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nAuthorization: Basic dzpwdw==\r\n\r\n",
    )
    .unwrap();
    let mut first = [0u8; 25];
    c.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"hello").unwrap();
    assert_eq!(common::read_response(&mut c, false).unwrap().status, 201);
    // Reading needs no credentials.
    assert_eq!(
        srv.get("GET /db/a HTTP/1.1\r\nHost: x\r\n\r\n").body,
        b"hello"
    );
}

/// `--print-config` writes store, auth and address keys back in a form that loads to the
/// same configuration; the store's options are refused on other routes.
#[test]
fn print_config_round_trips_store_and_auth() {
    let s = Store::new();
    let users = s.site.outside("users");
    std::fs::write(&users, "u:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n").unwrap();
    let dir = s.site.outside("").display().to_string();
    let text = format!(
        "root = \"{dir}/root\"\nauth_max_failures = 7\ndeny = [\"all\"]\nallow = [\"10.0.0.0/8\", \"::1\"]\n\
         auth = {{ realm = \"db\", htpasswd = \"{dir}/users\" }}\n\
         [route.\"/db/\"]\nstore = \"{dir}/data\"\ncreate_dirs = true\nrecursive = true\nall = \"/_all\"\n\
         auth_methods = [\"PUT\", \"DELETE\"]\n\
         [route.\"/open/\"]\nstatic = \"{dir}/root\"\nauth = false\n"
    );
    let cfg = s.site.outside("a.toml");
    std::fs::write(&cfg, text).unwrap();
    let tern = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = tern(&["--print-config".as_ref(), "-c".as_ref(), cfg.as_os_str()]);
    for want in [
        "auth_max_failures = 7",
        "allow = [\"10.0.0.0/8\", \"::1\"]",
        "deny = [\"all\"]",
        "create_dirs = true",
        "all = \"/_all\"",
        "auth_methods = [\"PUT\", \"DELETE\"]",
        "auth = false",
    ] {
        assert!(first.contains(want), "{want}: {first}");
    }
    let again = s.site.outside("b.toml");
    std::fs::write(&again, &first).unwrap();
    let second = tern(&["--print-config".as_ref(), "-c".as_ref(), again.as_os_str()]);
    assert_eq!(first, second);
    std::fs::write(
        &cfg,
        format!(
            "root = \"{dir}/root\"\n[route.\"/x/\"]\nstatic = \"{dir}/root\"\ncreate_dirs = true\n"
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["-t", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("create_dirs applies only to store routes")
    );
}

/// No route may run scripts from a store's directory (or one containing it).
#[test]
fn cgi_over_a_store_directory_is_refused() {
    let s = Store::new();
    let dir = s.site.outside("").display().to_string();
    for cgi in ["data", ""] {
        let text = format!(
            "root = \"{dir}/root\"\n[route.\"/db/\"]\nstore = \"{dir}/data\"\n\
             [route.\"/cgi-bin/\"]\ncgi = \"{dir}/{cgi}\"\n"
        );
        let cfg = s.site.outside("c.toml");
        std::fs::write(&cfg, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["-t", "-c"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{cgi}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("which a store route writes to"), "{err}");
    }
}

/// Many clients replace one value conditionally on the same ETag at once: exactly one wins,
/// every other gets 412 (commits run on several job threads; the check and the rename are
/// one step).
#[test]
fn concurrent_conditional_writes_one_winner() {
    let s = Store::new();
    let srv = s.start("", "");
    let r = put_raw(&srv, "/db/c", "", b"base");
    let etag = r.header("ETag").unwrap().to_string();
    let addr = srv.addr;
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let etag = etag.clone();
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let body = format!("writer {i}");
                let head = format!(
                    "PUT /db/c HTTP/1.1\r\nHost: x\r\nIf-Match: {etag}\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                c.write_all(head.as_bytes()).unwrap();
                common::read_response(&mut c, false).unwrap().status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 204 || s == 412),
        "{statuses:?}"
    );
}

/// Dotfiles under a store are tern's own (sidecars, uploads in progress): never served,
/// whatever `dotfiles` says.
#[test]
fn dotfiles_stay_hidden_under_a_store() {
    let s = Store::new();
    let srv = s.start("", "dotfiles = true\n");
    std::fs::write(s.data().join(".k.mime_type"), b"text/html").unwrap();
    std::fs::write(s.data().join("k"), b"v").unwrap();
    let r = srv.get("GET /db/.k.mime_type HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 404);
    let r = srv.get("GET /db/ HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n");
    assert!(!String::from_utf8_lossy(&r.body).contains(".k"), "{r:?}");
}

/// A chunked upload (curl -T - sends one) and an empty value.
#[test]
fn chunked_and_empty_values() {
    let s = Store::new();
    let srv = s.start("", "");
    let req = b"PUT /db/ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let mut c = srv.connect();
    c.write_all(req).unwrap();
    assert_eq!(common::read_response(&mut c, false).unwrap().status, 201);
    assert_eq!(std::fs::read(s.data().join("ch")).unwrap(), b"hello world");
    assert_eq!(put_raw(&srv, "/db/empty", "", b"").status, 201);
    let r = srv.get("GET /db/empty HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.body.len()), (200, 0));
    let input = s.site.outside("stdin.txt");
    std::fs::write(&input, b"from curl -T -").unwrap();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", "-"])
        .arg(srv.url("/db/piped"))
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .expect("curl is installed (.ci/deps)");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201");
    assert_eq!(
        std::fs::read(s.data().join("piped")).unwrap(),
        b"from curl -T -"
    );
}

/// SIGHUP: a store gains authentication for writes (and the verified cache goes with the
/// old configuration); its values stay.
#[test]
fn reload_adds_auth_to_a_store() {
    let s = Store::new();
    let srv = s.start("", "");
    assert_eq!(put_raw(&srv, "/db/k", "", b"v1").status, 201);
    std::fs::write(
        s.site.outside("users"),
        b"w:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n",
    )
    .unwrap();
    let dir = s.site.outside("").display().to_string();
    let text = format!(
        "root = \"{dir}/root\"\n[route.\"/db/\"]\nstore = \"{dir}/data\"\n\
         auth = {{ realm = \"db\", htpasswd = \"{dir}/users\" }}\nauth_methods = [\"PUT\"]\n"
    );
    let tmp = s.site.outside("tern.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, s.site.outside("tern.toml")).unwrap();
    let before = srv.error_log().matches("configuration reloaded").count();
    srv.signal("HUP");
    let start = std::time::Instant::now();
    while srv.error_log().matches("configuration reloaded").count() == before {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{}",
            srv.error_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(put_raw(&srv, "/db/k", "", b"v2").status, 401);
    // "w:pw"
    assert_eq!(
        put_raw(&srv, "/db/k", "Authorization: Basic dzpwdw==\r\n", b"v2").status,
        204
    );
    assert_eq!(srv.get("GET /db/k HTTP/1.1\r\nHost: x\r\n\r\n").body, b"v2");
}
