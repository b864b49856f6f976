//! Virtual hosts and URL-prefix routes from a configuration file, over real TCP: which host
//! a request reaches, which route serves a path, redirects, fallbacks, configured headers,
//! per-host access logs, and the host-name inputs that must never reach a directory.
mod common;

use std::path::PathBuf;

use common::{Server, Site};

/// A site with a configuration file beside its directories.
struct Conf {
    site: Site,
}

impl Conf {
    fn new() -> Conf {
        let site = Site::new();
        site.dir("");
        Conf { site }
    }

    /// A file beneath the temporary directory (not only beneath `root`).
    fn file(&self, rel: &str, data: &str) -> PathBuf {
        let p = self.site.outside(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }

    fn path(&self, rel: &str) -> String {
        self.site.outside(rel).display().to_string()
    }

    /// Writes `tern.toml` (`@` stands for the temporary directory) and starts tern on it.
    fn start(&self, toml: &str, flags: &[&str]) -> Server {
        let cfg = self.write(toml);
        Server::start_config(&cfg, &self.site.outside("error.log"), flags)
    }

    fn write(&self, toml: &str) -> PathBuf {
        let text = toml.replace('@', &self.path(""));
        self.file("tern.toml", &text)
    }
}

fn get(srv: &Server, path: &str, host: &str) -> common::Response {
    srv.get(&format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"))
}

fn body(r: &common::Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// Three sites, each with an index naming it.
fn three_sites() -> Conf {
    let c = Conf::new();
    for name in ["top", "a", "b", "wild", "deep"] {
        c.file(&format!("{name}/index.html"), name);
        c.file(&format!("{name}/name.txt"), name);
    }
    c
}

const HOSTS: &str = r#"
root = "@/top"
[vhost."a.example"]
root = "@/a"
aliases = ["www.a.example", "A-ALIAS.example."]
[vhost."b.example"]
root = "@/b"
[vhost."wild"]
root = "@/wild"
aliases = ["*.example"]
[vhost."deep"]
root = "@/deep"
aliases = ["*.deep.example"]
"#;

#[test]
fn host_picks_the_virtual_host() {
    let c = three_sites();
    let srv = c.start(HOSTS, &[]);
    let cases = [
        ("a.example", "a"),
        ("A.Example", "a"),
        ("a.example:8080", "a"),
        ("a.example.", "a"),
        ("a.example.:80", "a"),
        ("www.a.example", "a"),
        ("a-alias.example", "a"),
        ("b.example", "b"),
        ("x.example", "wild"),
        ("x.y.example", "wild"),
        ("deep.example", "wild"),
        ("x.deep.example", "deep"),
        ("example", "top"),
        ("other.test", "top"),
        ("127.0.0.1", "top"),
        ("[::1]:80", "top"),
    ];
    for (host, want) in cases {
        let r = get(&srv, "/name.txt", host);
        assert_eq!(
            (r.status, body(&r)),
            (200, want.to_string()),
            "Host: {host}"
        );
    }
    // HTTP/1.0 without Host: the default host.
    let r = srv.get("GET /name.txt HTTP/1.0\r\n\r\n");
    assert_eq!(body(&r), "top");
    // The absolute-form target's authority wins over Host (RFC 9112 §3.2.2).
    let r = srv.get("GET http://b.example/name.txt HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(body(&r), "b");
    let r = srv.get("GET http://B.EXAMPLE:81/name.txt HTTP/1.1\r\nHost: a.example\r\n\r\n");
    assert_eq!(body(&r), "b");
    // Invalid Host values stay a 400.
    for bad in ["a/b", "a\\b", "a b", ""] {
        let r = get(&srv, "/name.txt", bad);
        assert_eq!(r.status, 400, "Host: {bad:?}");
    }
    let r = srv.raw(b"GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n");
    assert!(r.starts_with(b"HTTP/1.1 400"), "NUL in Host");
}

#[test]
fn a_vhost_can_be_the_default() {
    let c = three_sites();
    let toml = HOSTS.replace("root = \"@/b\"", "root = \"@/b\"\ndefault = true");
    let srv = c.start(&toml, &[]);
    assert_eq!(body(&get(&srv, "/name.txt", "nobody.test")), "b");
    assert_eq!(body(&get(&srv, "/name.txt", "a.example")), "a");
    assert_eq!(body(&srv.get("GET /name.txt HTTP/1.0\r\n\r\n")), "b");
}

#[test]
fn vhost_dirs_serves_root_host_and_never_escapes() {
    let c = Conf::new();
    c.file("sites/index.html", "default");
    c.file("sites/a.test/index.html", "a");
    c.file("sites/a.test/name.txt", "a");
    c.file("sites/.git/config", "secret");
    c.file("secret/name.txt", "outside");
    c.file("sites/name.txt", "default-name");
    std::os::unix::fs::symlink(c.site.outside("secret"), c.site.outside("sites/evil.test"))
        .unwrap();
    let srv = c.start("root = \"@/sites\"\nvhost_dirs = true\n", &[]);
    assert_eq!(body(&get(&srv, "/name.txt", "a.test")), "a");
    assert_eq!(body(&get(&srv, "/name.txt", "A.TEST:8080")), "a");
    assert_eq!(body(&get(&srv, "/name.txt", "a.test.")), "a");
    assert_eq!(body(&get(&srv, "/", "a.test")), "a");
    assert_eq!(
        body(&get(&srv, "/name.txt", "unknown.test")),
        "default-name"
    );
    // lighttpd CVE-2018-18778 style: Host must not name a path.
    for host in [
        "..",
        ".git",
        "a..b",
        "%2e%2e",
        "evil.test",
        ".",
        "a.test..",
        "[::1]",
    ] {
        let r = get(&srv, "/name.txt", host);
        assert!(
            r.status == 400 || (r.status == 200 && body(&r) == "default-name"),
            "Host: {host}: {} {}",
            r.status,
            body(&r)
        );
    }
    let r = get(&srv, "/config", ".git");
    assert_ne!(body(&r), "secret");
    let r = get(&srv, "/name.txt", "../secret");
    assert_eq!(r.status, 400);
    // The listing of a host directory shows its own path, not the host's directory name.
    c.file("sites/a.test/sub/x.txt", "x");
    let r = get(&srv, "/sub/", "a.test");
    assert!(body(&r).contains("/sub/"), "{}", body(&r));
    assert!(!body(&r).contains("a.test/sub"), "{}", body(&r));
    let r = get(&srv, "/sub", "a.test");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/sub/"));
}

const ROUTES: &str = r#"
root = "@/top"
[route."/img/"]
static = "@/images"
[route."/img/big/"]
static = "@/big"
listing = false
[route."/users"]
static = "@/users.txt"
[route."/old/"]
redirect = "https://new.example/"
status = 308
[route."/gone"]
redirect = "https://new.example/elsewhere"
[route."/tmp/"]
redirect = "/temporary/"
status = 302
[route."/app/"]
static = "@/app"
fallback = "/index.html"
"#;

fn routed() -> (Conf, Server) {
    let c = Conf::new();
    c.file("top/index.html", "top");
    c.file("top/imgx", "top-imgx");
    c.file("top/users/x", "top-users-x");
    c.file("top/img/a.png", "top-img");
    c.file("images/a.png", "image-a");
    c.file("images/sub/b.png", "image-b");
    c.file("big/c.png", "big-c");
    std::fs::create_dir_all(c.site.outside("big/empty")).unwrap();
    c.file("users.txt", "user list");
    c.file("app/index.html", "spa");
    c.file("app/main.js", "js");
    c.file("images..secret.txt", "escaped");
    let srv = c.start(ROUTES, &[]);
    (c, srv)
}

#[test]
fn longest_prefix_on_whole_segments() {
    let (_c, srv) = routed();
    let cases = [
        ("/", 200, "top"),
        ("/img/a.png", 200, "image-a"),
        ("/img/sub/b.png", 200, "image-b"),
        ("/img/big/c.png", 200, "big-c"),
        ("/imgx", 200, "top-imgx"),
        ("/users", 200, "user list"),
        ("/users/x", 200, "top-users-x"),
        ("/img/%2e%2e/index.html", 200, "top"),
        ("/img/../index.html", 200, "top"),
        ("/IMG/a.png", 404, ""),
        ("/img/..%2fimages..secret.txt", 404, ""),
        ("/img/big/../a.png", 200, "image-a"),
    ];
    for (path, status, want) in cases {
        let r = get(&srv, path, "x");
        assert_eq!(r.status, status, "{path}");
        if status == 200 {
            assert_eq!(body(&r), want, "{path}");
        }
    }
    // A directory route without its slash: 301 to it, query kept.
    let r = get(&srv, "/img?x=1", "x");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("Location"), Some("/img/?x=1"));
    // The route's own options: no listing under /img/big/.
    assert_eq!(get(&srv, "/img/big/empty/", "x").status, 403);
    assert_eq!(get(&srv, "/img/sub/", "x").status, 200);
    // A file route serves only that exact path: `/users/` is the `/` route's directory.
    let r = get(&srv, "/users/", "x");
    assert_eq!(r.status, 200);
    assert!(body(&r).contains("x"), "the listing of top/users/");
    // Only GET/HEAD/OPTIONS on static routes.
    let r = srv.get("DELETE /img/a.png HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 405);
}

#[test]
fn redirect_routes_pass_the_rest_on_encoded() {
    let (_c, srv) = routed();
    let cases = [
        ("/old/", 308, "https://new.example/"),
        ("/old/a/b.html", 308, "https://new.example/a/b.html"),
        ("/old/a%20b?q=1&r", 308, "https://new.example/a%20b?q=1&r"),
        (
            "/old/%0d%0aSet-Cookie:x",
            308,
            "https://new.example/%0d%0aSet-Cookie:x",
        ),
        ("/old/x/../y", 308, "https://new.example/y"),
        ("/gone", 301, "https://new.example/elsewhere"),
        ("/gone?q=1", 301, "https://new.example/elsewhere"),
        ("/tmp/x", 302, "/temporary/x"),
    ];
    for (path, status, loc) in cases {
        let r = get(&srv, path, "x");
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.header("Location"), Some(loc), "{path}");
        assert_eq!(r.count("Set-Cookie"), 0, "{path}");
    }
    // Redirects answer every method, like nginx's `return`.
    let r = srv.get("POST /old/p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(r.status, 308);
}

#[test]
fn fallback_serves_single_page_apps() {
    let (_c, srv) = routed();
    assert_eq!(body(&get(&srv, "/app/main.js", "x")), "js");
    let r = get(&srv, "/app/some/client/route", "x");
    assert_eq!((r.status, body(&r)), (200, "spa".to_string()));
    // Outside the route, a missing path is still a 404.
    assert_eq!(get(&srv, "/nope", "x").status, 404);
}

#[test]
fn configured_headers_on_every_response_narrower_wins() {
    let c = Conf::new();
    c.file("top/index.html", "top");
    c.file("top/a.txt", "0123456789");
    c.file("top/sec/b.txt", "b");
    let toml = r#"
root = "@/top"
headers = { "X-Frame-Options" = "DENY", "X-Top" = "1" }
[route."/sec/"]
static = "@/top/sec"
headers = { "x-frame-options" = "SAMEORIGIN", "X-Route" = "r" }
"#;
    let srv = c.start(toml, &[]);
    let r = get(&srv, "/a.txt", "x");
    let etag = r.header("ETag").unwrap().to_string();
    let responses = [
        r,
        srv.get("GET /a.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n"),
        srv.get(&format!(
            "GET /a.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"
        )),
        get(&srv, "/missing", "x"),
        srv.get("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n"),
    ];
    for (r, status) in responses.iter().zip([200, 206, 304, 404, 400]) {
        assert_eq!(r.status, status);
        assert_eq!(r.header("X-Frame-Options"), Some("DENY"), "{status}");
        assert_eq!(r.header("X-Top"), Some("1"), "{status}");
        assert_eq!(r.count("X-Frame-Options"), 1);
    }
    for path in ["/sec/b.txt", "/sec/missing"] {
        let r = get(&srv, path, "x");
        assert_eq!(r.count("X-Frame-Options"), 1, "{path}");
        assert_eq!(r.header("X-Frame-Options"), Some("SAMEORIGIN"), "{path}");
        assert_eq!(r.header("X-Top"), Some("1"), "{path}");
        assert_eq!(r.header("X-Route"), Some("r"), "{path}");
    }
}

#[test]
fn per_host_access_logs() {
    let c = three_sites();
    let toml = format!(
        "{HOSTS}\n",
        HOSTS = HOSTS
            .replace(
                "root = \"@/top\"",
                "root = \"@/top\"\naccess_log = \"@/top.log\""
            )
            .replace("root = \"@/a\"", "root = \"@/a\"\naccess_log = \"@/a.log\"")
    );
    let mut srv = c.start(&toml, &[]);
    get(&srv, "/name.txt?for-a", "a.example");
    get(&srv, "/name.txt?for-b", "b.example");
    get(&srv, "/name.txt?for-top", "zzz");
    srv.signal("TERM");
    assert_eq!(srv.wait(std::time::Duration::from_secs(5)), Some(0));
    let a = std::fs::read_to_string(c.site.outside("a.log")).unwrap();
    let top = std::fs::read_to_string(c.site.outside("top.log")).unwrap();
    assert!(
        a.contains("for-a") && !a.contains("for-b") && !a.contains("for-top"),
        "{a}"
    );
    // Hosts without their own log write to the top level's.
    assert!(
        top.contains("for-b") && top.contains("for-top") && !top.contains("for-a"),
        "{top}"
    );
}

#[test]
fn well_known_is_served_while_dotfiles_are_hidden() {
    let c = Conf::new();
    c.file("top/.well-known/acme-challenge/TOKEN", "proof");
    c.file("top/.well-known/.hidden", "no");
    c.file("top/.env", "SECRET");
    c.file("top/.git/config", "SECRET");
    let srv = c.start("root = \"@/top\"\n", &[]);
    let r = get(&srv, "/.well-known/acme-challenge/TOKEN", "x");
    assert_eq!((r.status, body(&r)), (200, "proof".to_string()));
    for hidden in [
        "/.env",
        "/.git/config",
        "/.well-known/.hidden",
        "/x/../.env",
    ] {
        assert_eq!(get(&srv, hidden, "x").status, 404, "{hidden}");
    }
}

#[test]
fn included_hosts_reached_with_curl() {
    let c = three_sites();
    c.file(
        "conf.d/a.toml",
        &format!(
            "[vhost.\"a.example\"]\nroot = \"{}\"\nheaders = {{ \"X-Site\" = \"a\" }}\n\
             [vhost.\"a.example\".route.\"/old/\"]\nredirect = \"http://b.example/\"\n",
            c.path("a")
        ),
    );
    c.file(
        "conf.d/b.toml",
        &format!("[vhost.\"b.example\"]\nroot = \"{}\"\n", c.path("b")),
    );
    let srv = c.start("root = \"@/top\"\ninclude = [\"conf.d/*.toml\"]\n", &[]);
    let port = srv.addr.port().to_string();
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");
    let resolve = |host: &str| format!("{host}:{port}:127.0.0.1");
    for (host, want) in [("a.example", "a"), ("b.example", "b"), ("c.example", "top")] {
        let (code, out) = common::curl(&["--resolve", &resolve(host), &url(host, "/name.txt")]);
        assert_eq!(
            (code, String::from_utf8_lossy(&out).into_owned()),
            (0, want.into()),
            "{host}"
        );
    }
    let (code, out) = common::curl(&[
        "-sI",
        "--resolve",
        &resolve("a.example"),
        &url("a.example", "/old/x?y=1"),
    ]);
    let head = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert_eq!(code, 0);
    assert!(head.starts_with("http/1.1 301"), "{head}");
    assert!(
        head.contains("location: http://b.example/x?y=1\r\n"),
        "{head}"
    );
    assert!(head.contains("x-site: a\r\n"), "{head}");
    // curl follows the redirect to the other host.
    let (code, out) = common::curl(&[
        "-L",
        "--resolve",
        &resolve("a.example"),
        "--connect-to",
        &format!("b.example:80:127.0.0.1:{port}"),
        &url("a.example", "/old/name.txt"),
    ]);
    assert_eq!(
        (code, String::from_utf8_lossy(&out).into_owned()),
        (0, "b".into())
    );
}
