//! Tests of the configuration file end to end: text in a temporary directory -> [`load`] ->
//! a [`Config`] or the exact error lines. The directory holds `site/` (index.html, a.txt,
//! sub/) next to the file, so relative roots resolve against the file's directory. Here:
//! values and every class of error; `merge`: options across levels, hosts, includes, flags
//! over the file, and `--print-config`.
mod merge;

use std::path::{Path, PathBuf};

use super::{cli, load, Config, Overrides, RouteKind};

pub(super) struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        let d = Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        };
        d.write("site/index.html", "<h1>home</h1>\n");
        d.write("site/a.txt", "a\n");
        d.write("site/sub/b.txt", "b\n");
        d
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Loads `tern.toml` with these flags; errors as lines with the directory cut off.
    pub fn load_with(&self, text: &str, flags: &[&str]) -> Result<Config, Vec<String>> {
        let file = self.write("tern.toml", text);
        let ov = flags_of(flags);
        load(Some(&file), &ov).map_err(|errs| {
            let prefix = format!("{}/", self.tmp.path().display());
            errs.iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect()
        })
    }

    pub fn load(&self, text: &str) -> Config {
        match self.load_with(text, &[]) {
            Ok(c) => c,
            Err(e) => panic!("unexpected errors:\n{}", e.join("\n")),
        }
    }

    pub fn errors(&self, text: &str) -> Vec<String> {
        match self.load_with(text, &[]) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        }
    }

    /// The one error `text` produces.
    pub fn error(&self, text: &str) -> String {
        let e = self.errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        e[0].clone()
    }
}

pub(super) fn flags_of(flags: &[&str]) -> Overrides {
    let args = std::iter::once("tern").chain(flags.iter().copied());
    cli::try_parse(args).expect("flags").overrides
}

pub(super) fn static_path(c: &Config, host: usize, prefix: &str) -> PathBuf {
    let r = c.hosts[host]
        .routes
        .iter()
        .find(|r| r.prefix == prefix)
        .unwrap_or_else(|| panic!("no route {prefix}"));
    match &r.kind {
        RouteKind::Static(p) => p.clone(),
        k => panic!("{k:?}"),
    }
}

#[test]
fn values_in_the_file() {
    let d = Dir::new();
    let c = d.load(
        "header_timeout = 2.5\nkeepalive_timeout = 3\nsend_timeout = \"500ms\"\n\
         shutdown_timeout = \"1.5s\"\nmax_header_size = \"32KiB\"\nmax_request_line = 1024\n\
         max_requests = 7\nmax_connections = 0\nport = 9000\nfile_cache_entries = 0\n",
    );
    assert_eq!(c.limits.header_timeout, 2_500);
    assert_eq!(c.limits.keepalive_timeout, 3_000);
    assert_eq!(c.limits.send_timeout, 500);
    assert_eq!(c.shutdown_timeout, 1_500);
    assert_eq!(c.limits.max_field, 32 * 1024);
    assert_eq!(c.limits.max_request_line, 1024);
    assert_eq!(c.limits.max_head, 1024 + 4 * 32 * 1024);
    assert_eq!(c.limits.max_requests, 7);
    assert_eq!(c.max_connections, 1, "clamped like the flag");
    assert_eq!(c.listen, vec!["127.0.0.1:9000".parse().unwrap()]);
    assert_eq!(c.cache.max_entries, 0);

    for (text, want) in [
        (
            "header_timeout = \"soon\"",
            "tern.toml:1:18: key \"header_timeout\" at the top level: \"soon\" is not a duration",
        ),
        ("header_timeout = -1", "tern.toml:1:18: key \"header_timeout\" at the top level: -1 seconds is out of range"),
        (
            "header_timeout = true",
            "tern.toml:1:18: key \"header_timeout\" at the top level: expected a duration such as \"10s\", \"500ms\" or a number of seconds, found boolean true",
        ),
        ("max_header_size = 100", "tern.toml:1:19: max_header_size = 100: out of range (256 to 1MiB)"),
        ("max_header_size = \"2MiB\"", "tern.toml:1:19: max_header_size = 2097152: out of range"),
        ("max_request_line = \"1.5MiB\"", "tern.toml:1:20: key \"max_request_line\" at the top level: \"1.5MiB\" is not a size"),
        ("max_requests = 0", "tern.toml:1:16: max_requests = 0: out of range (1 to 4294967295)"),
        ("max_ranges = 1001", "tern.toml:1:14: max_ranges = 1001: out of range (1 to 1000)"),
        ("port = 70000", "tern.toml:1:8: port = 70000: out of range (0 to 65535)"),
        ("listen = [\"127.0.0.1:80\", \"nope\"]", "tern.toml:1:27: listen \"nope\": not an address such as 127.0.0.1:8080, [::1]:8080, 80, :80, sd:1 or sd:NAME"),
        ("listen = []", "tern.toml:1:10: listen = []: give at least one address"),
        ("log_level = \"loud\"", "tern.toml:1:13: log_level \"loud\": expected one of error, warn, info, debug"),
        ("log_format = \"json\"", "tern.toml:1:14: log_format \"json\": expected common or combined"),
        ("server_name = \"a\\nb\"", "tern.toml:1:15: server_name: control characters"),
        ("index = [\"a/b.html\"]", "tern.toml:1:10: index \"a/b.html\" is not a file name"),
        ("mime = { md = \"\" }", "tern.toml:1:15: mime \"md\": \"\" is not a media type"),
        ("error_page = { 200 = \"/x.html\" }", "tern.toml:1:16: error_page: 200 is not an error status (400-599)"),
        ("error_page = { 404 = \"/../x\" }", "tern.toml:1:22: error_page 404 = \"/../x\": path climbs above the root"),
    ] {
        let e = d.error(text);
        assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn syntax_errors_name_the_place() {
    let d = Dir::new();
    let e = d.errors("listing = true\nindex = \n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("tern.toml:2:9: "), "{e:?}");
    // Every syntax error the parser can recover from is reported.
    let e = d.errors("a = \nb = 1\nb = 2\n");
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("tern.toml:1:5: "), "{e:?}");
    assert!(e[1].starts_with("tern.toml:3:1: duplicate key"), "{e:?}");
    let e = d.errors("[route.\"/a/\"]\nstatic = \"site\"\n[route.\"/a/\"]\nstatic = \"site\"\n");
    assert!(e[0].starts_with("tern.toml:3:"), "{e:?}");
    // Not readable at all.
    let err = load(
        Some(Path::new("/nonexistent/tern.toml")),
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(
        err[0].to_string(),
        "/nonexistent/tern.toml: cannot read: no such file or directory"
    );
}

#[test]
fn unknown_keys() {
    let d = Dir::new();
    let e = d.error("listing = true\nindx = 3\n");
    assert!(
        e.starts_with("tern.toml:2:1: unknown key \"indx\" at the top level; expected one of include, root, listen, "),
        "{e}"
    );
    assert!(e.contains(", vhost, index, listing, dotfiles,"), "{e}");
    let text =
        "root = \"site\"\n\n[vhost.\"example.com\"]\nroot = \"site\"\n    indx = \"a.html\"\n";
    let e = d.error(text);
    assert!(
        e.starts_with(
            "tern.toml:5:5: unknown key \"indx\" in [vhost.\"example.com\"]; expected one of \
             aliases, root, default, tls_cert, tls_key, redirect_to_https, hsts, access_log, \
             log_format, route, index, listing,"
        ),
        "{e}"
    );
    let e = d.error("[vhost.a.route.\"/x/\"]\nstatic = \"site\"\nstatik = 1\n");
    assert!(
        e.starts_with(
            "tern.toml:3:1: unknown key \"statik\" in [vhost.\"a\".route.\"/x/\"]; expected one \
             of static, redirect, cgi, proxy, status, fallback, run, command, store, create_dirs, recursive, all, index,"
        ),
        "{e}"
    );
    // Every bad key of a table, not only the first.
    let e = d.errors("indx = 1\nlisting = \"no\"\nroot = 5\n");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert_eq!(
        e[1],
        "tern.toml:2:11: key \"listing\" at the top level: expected a boolean, found string \"no\""
    );
    assert_eq!(
        e[2],
        "tern.toml:3:8: key \"root\" at the top level: expected a string, found integer 5"
    );
    let e = d.error("[route.\"/x/\"]\nstatic = \"site\"\nheaders = { X-A = 1 }\n");
    assert_eq!(
        e,
        "tern.toml:3:19: key \"headers.X-A\" in [route.\"/x/\"]: expected a string, found integer 1"
    );
    // A bad `static` is one error, not also "set exactly one of static, redirect".
    assert_eq!(
        d.error("[route.\"/x/\"]\nstatic = 5\n"),
        "tern.toml:2:10: key \"static\" in [route.\"/x/\"]: expected a string, found integer 5"
    );
    let e = d.error("vhost = 3\n");
    assert!(e.starts_with("tern.toml:1:9: vhost must be a table"), "{e}");
}

#[test]
fn roots_and_static_paths() {
    let d = Dir::new();
    let file = d.write("tern.toml", "root = \"nope\"\n");
    let e = load(Some(&file), &Overrides::default()).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        format!(
            "{}:1:8: root \"nope\" ({}): no such directory",
            file.display(),
            d.path("nope").display()
        )
    );
    assert_eq!(
        d.error("root = \"/srv/nope-tern\"\n"),
        "tern.toml:1:8: root \"/srv/nope-tern\": no such directory"
    );
    assert_eq!(
        d.error("root = \"\""),
        "tern.toml:1:8: root = \"\": expected a path"
    );
    let e = d.error("root = \"site/a.txt\"\n");
    assert!(e.ends_with("site/a.txt): not a directory"), "{e}");
    let e = d.error("[route.\"/a\"]\nstatic = \"site\"\n");
    assert!(e.starts_with("tern.toml:2:10: static \"site\" ("), "{e}");
    assert!(
        e.ends_with("is a directory, but a route whose prefix does not end in / serves one file"),
        "{e}"
    );
    let e = d.error("[route.\"/a/\"]\nstatic = \"site/a.txt\"\n");
    assert!(
        e.ends_with(": not a directory (a route whose prefix ends in / serves a directory)"),
        "{e}"
    );
    let e = d.error("[route.\"/gone\"]\nstatic = \"site/gone.txt\"\n");
    assert!(e.ends_with(": no such file"), "{e}");
    // Relative paths are relative to the file's directory; the flag's root to the cwd.
    let c = d.load("root = \"site\"\n[route.\"/a.txt\"]\nstatic = \"site/a.txt\"\n");
    assert_eq!(static_path(&c, 0, "/"), d.path("site"));
    assert_eq!(static_path(&c, 0, "/a.txt"), d.path("site/a.txt"));
    assert_eq!(c.hosts[0].routes[0].prefix, "/", "/ comes first");
    assert_eq!(c.source.as_deref(), Some(&*d.path("tern.toml")));
    // root and [route."/"] both set "/".
    let e = d.error("root = \"site\"\n[route.\"/\"]\nstatic = \"site\"\n");
    assert_eq!(
        e,
        "tern.toml:1:8: root and [route.\"/\"] both set what / serves; keep one"
    );
}

#[test]
fn routes() {
    let d = Dir::new();
    let c = d.load(
        "[route.\"/docs/\"]\nstatic = \"site\"\nfallback = \"/index.html\"\nlisting = false\n\
         [route.\"/old/\"]\nredirect = \"https://example.com/new/\"\n\
         [route.\"/tmp\"]\nredirect = \"/elsewhere\"\nstatus = 307\n",
    );
    let top = &c.hosts[0];
    assert_eq!(top.routes.len(), 3, "no / route: the file gives no root");
    assert_eq!(top.routes[0].prefix, "/docs/");
    assert_eq!(top.routes[0].fallback.as_deref(), Some("index.html"));
    assert!(!top.routes[0].site.listing);
    assert!(top.site.listing);
    assert_eq!(
        top.routes[1].kind,
        RouteKind::Redirect {
            to: "https://example.com/new/".into(),
            status: 301
        }
    );
    assert_eq!(
        top.routes[2].kind,
        RouteKind::Redirect {
            to: "/elsewhere".into(),
            status: 307
        }
    );
    for (text, want) in [
        (
            "[route.\"x/\"]\nstatic = \"site\"",
            "tern.toml:1:8: route \"x/\": a prefix starts with /",
        ),
        (
            "[route.\"/a/../b/\"]\nstatic = \"site\"",
            "tern.toml:1:8: route \"/a/../b/\": \".\" and \"..\" segments are not allowed",
        ),
        (
            "[route.\"/a//b/\"]\nstatic = \"site\"",
            "tern.toml:1:8: route \"/a//b/\": empty segment (//)",
        ),
        (
            "[route.\"/a?b\"]\nredirect = \"/\"",
            "tern.toml:1:8: route \"/a?b\": a prefix is a path: no ? or #",
        ),
        (
            "[route.\"/a/\"]\nlisting = true",
            "tern.toml:1:8: route \"/a/\": set exactly one of static, redirect",
        ),
        (
            "[route.\"/a/\"]\nstatic = \"site\"\nredirect = \"/\"",
            "tern.toml:1:8: route \"/a/\": set exactly one of static, redirect",
        ),
        (
            "[vhost.h.route.\"/a/\"]\nindex = []",
            "tern.toml:1:16: route \"/a/\" in [vhost.\"h\"]: set exactly one of static, redirect",
        ),
        (
            "[route.\"/a/\"]\nredirect = \"/b/\"\nstatus = 303",
            "tern.toml:3:10: status = 303: expected 301, 302, 307 or 308",
        ),
        (
            "[route.\"/a/\"]\nredirect = \"\"",
            "tern.toml:2:12: redirect: empty URL",
        ),
        (
            "[route.\"/a/\"]\nredirect = \"/a b\"",
            "tern.toml:2:12: redirect \"/a b\": white space and control characters",
        ),
        (
            "[route.\"/a/\"]\nstatic = \"site\"\nstatus = 301",
            "tern.toml:3:10: route \"/a/\": status applies only to redirect routes",
        ),
        (
            "[route.\"/a\"]\nstatic = \"site/a.txt\"\nfallback = \"/x\"",
            "tern.toml:3:12: route \"/a\": fallback needs a static route whose prefix ends in /",
        ),
        (
            "[route.\"/a/\"]\nredirect = \"/\"\nfallback = \"/x\"",
            "tern.toml:3:12: route \"/a/\": fallback needs a static route",
        ),
        (
            "[route.\"/a/\"]\nstatic = \"site\"\nfallback = \"/\"",
            "tern.toml:3:12: fallback \"/\": names the directory itself",
        ),
    ] {
        let e = d.error(text);
        assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn tls_keys_inherit_validate_and_round_trip() {
    use crate::config::TlsVersion;
    let d = Dir::new();
    for f in ["c.pem", "k.pem", "a.pem", "ak.pem"] {
        d.write(f, "PEM");
    }
    let text = "root = \"site\"\nlisten_tls = [\"127.0.0.1:8443\", \"sd:https\"]\n\
                tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_min_version = \"1.3\"\n\
                redirect_to_https = true\nhsts = \"max-age=60\"\n\
                [vhost.\"a.test\"]\nroot = \"site\"\ntls_cert = \"a.pem\"\ntls_key = \"ak.pem\"\nhsts = \"\"\n\
                [vhost.\"b.test\"]\nroot = \"site\"\nredirect_to_https = false\n";
    let c = d.load(text);
    assert_eq!(c.listen_tls.len(), 2);
    assert_eq!(c.tls.min_version, TlsVersion::V13);
    let top = &c.hosts[0];
    assert_eq!(top.cert.as_ref().unwrap().cert, d.path("c.pem"));
    assert!(top.https.redirect);
    assert_eq!(top.https.hsts.as_deref(), Some("max-age=60"));
    let (a, b) = (&c.hosts[1], &c.hosts[2]);
    assert_eq!(a.cert.as_ref().unwrap().key, d.path("ak.pem"));
    assert!(a.https.redirect, "inherited");
    assert_eq!(a.https.hsts, None, "turned off");
    assert!(b.cert.is_none());
    assert!(!b.https.redirect);
    assert_eq!(b.https.hsts.as_deref(), Some("max-age=60"));
    let printed = crate::config::to_toml(&c);
    let again = d.load(&printed);
    assert_eq!(crate::config::to_toml(&again), printed);
    let flags = d
        .load_with(
            "root = \"site\"\n",
            &[
                "--listen-tls",
                "127.0.0.1:0",
                "--tls-cert",
                d.path("c.pem").to_str().unwrap(),
                "--tls-key",
                d.path("k.pem").to_str().unwrap(),
            ],
        )
        .unwrap();
    assert_eq!(flags.listen_tls.len(), 1);
    assert!(flags.hosts[0].cert.is_some());

    for (text, want) in [
        ("tls_cert = \"c.pem\"\n", "tern.toml:1:12: tls_cert is set without tls_key"),
        ("tls_key = \"k.pem\"\n", "tern.toml:1:11: tls_key is set without tls_cert"),
        (
            "tls_cert = \"nope.pem\"\ntls_key = \"k.pem\"\n",
            "tern.toml:1:12: tls_cert \"nope.pem\": no such file",
        ),
        (
            "tls_min_version = \"1.1\"\n",
            "tern.toml:1:19: tls_min_version \"1.1\": expected \"1.2\" or \"1.3\"",
        ),
        ("listen_tls = [\"127.0.0.1:8443\"]\n", "listen_tls needs a certificate"),
        ("redirect_to_https = true\n", "redirect_to_https needs an HTTPS listener"),
        ("listen_tls = [\"nowhere\"]\n", "tern.toml:1:15: listen_tls \"nowhere\": not an address"),
        ("hsts = \"a\\u0001\"\n", "tern.toml:1:8: hsts: "),
        (
            "listen = [\"127.0.0.1:8443\"]\nlisten_tls = [\"127.0.0.1:8443\"]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
            "127.0.0.1:8443 is in both listen and listen_tls",
        ),
    ] {
        let e = d.errors(&format!("root = \"site\"\n{text}")).join("\n");
        let e = e.replace("tern.toml:2:", "tern.toml:1:");
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn store_dirs_and_htpasswd_files_for_a_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("db")).unwrap();
    std::fs::write(
        dir.path().join("users"),
        "u:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n",
    )
    .unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        "[route.\"/db/\"]\nstore = \"db\"\nauth = { realm = \"r\", htpasswd = \"users\" }\n\
         [route.\"/x/\"]\nstore = \"db\"\n",
    )
    .unwrap();
    let c = crate::config::load(Some(&cfg), &Default::default()).expect("loads");
    assert_eq!(c.store_dirs(), vec![dir.path().join("db")]);
    assert_eq!(c.htpasswd_files(), vec![dir.path().join("users")]);
}

#[test]
fn proxy_upgrade_takes_protocol_names() {
    let d = Dir::new();
    let c = d.load("root = \"site\"\nproxy_upgrade = [\"WebSocket\", \"foo/2\"]\n");
    assert_eq!(c.hosts[0].site.proxy_upgrade, vec!["websocket", "foo/2"]);
    let e = d
        .errors("root = \"site\"\nproxy_upgrade = [\"a b\"]\n")
        .join("\n");
    assert!(
        e.contains("tern.toml:2:18: proxy_upgrade: \"a b\": not a protocol name"),
        "{e}"
    );
}
