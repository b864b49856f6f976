//! Options merged across levels, hosts and aliases, includes, flag > file > default, and the
//! `--print-config` round trip.
use std::path::PathBuf;

use super::{static_path, Dir};
use crate::config::{load, to_toml, Overrides};
use crate::log::{LogFormat, LogTarget};

#[test]
fn headers_merge_and_validate() {
    let d = Dir::new();
    let c = d.load(
        "root = \"site\"\nheaders = { \"X-Frame-Options\" = \"DENY\", \"X-A\" = \"1\" }\n\
         [route.\"/sub/\"]\nstatic = \"site/sub\"\n\
         headers = { \"x-frame-options\" = \"SAMEORIGIN\", \"X-A\" = \"\", \"X-B\" = \" 2 \" }\n",
    );
    let h = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        c.hosts[0].site.headers,
        h(&[("X-A", "1"), ("X-Frame-Options", "DENY")])
    );
    assert_eq!(c.hosts[0].routes[0].site.headers, c.hosts[0].site.headers);
    assert_eq!(
        c.hosts[0].routes[1].site.headers,
        h(&[("X-B", "2"), ("x-frame-options", "SAMEORIGIN")]),
        "replaced by name whatever its case, removed by \"\", never duplicated"
    );
    for (text, want) in [
        ("headers = { \"X Y\" = \"1\" }", "tern.toml:1:13: header name \"X Y\": not a token"),
        ("headers = { \"Content-Length\" = \"1\" }", "tern.toml:1:13: header \"Content-Length\" cannot be set in headers: tern sets it for each response"),
        ("headers = { date = \"x\" }", "tern.toml:1:13: header \"date\" cannot be set in headers: tern sets it"),
        ("headers = { Server = \"x\" }", "tern.toml:1:13: header \"Server\" cannot be set in headers: use server_name"),
        ("headers = { \"Content-Type\" = \"x\" }", "tern.toml:1:13: header \"Content-Type\" cannot be set in headers: use mime"),
        ("headers = { \"Cache-Control\" = \"x\" }", "tern.toml:1:13: header \"Cache-Control\" cannot be set in headers: use cache_control"),
        ("headers = { \"X-A\" = \"a\\r\\nSet-Cookie: x\" }", "tern.toml:1:21: header \"X-A\": control characters"),
        ("headers = { \"X-A\" = \"1\", \"x-a\" = \"2\" }", "tern.toml:1:"),
    ] {
        let e = d.error(text);
        assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
    }
    assert!(d
        .error("headers = { \"X-A\" = \"1\", \"x-a\" = \"2\" }")
        .contains("set twice"));
}

#[test]
fn site_options_merge() {
    let d = Dir::new();
    let c = d.load(
        "root = \"site\"\nindex = \"home.html\"\nmime = { md = \"text/markdown\", x = \"a/x\" }\n\
         error_page = { 404 = \"/404.html\", 500 = \"/500.html\" }\ncache_control = \"max-age=60\"\n\
         max_ranges = 4\n\
         [vhost.\"a.example\"]\nroot = \"site\"\nmime = { x = \"b/x\" }\ndefault_type = \"text/plain\"\n\
         error_page = { 404 = \"/a404.html\", 500 = \"\" }\nindex = [\"a.html\", \"b.html\"]\n\
         [vhost.\"a.example\".route.\"/sub/\"]\nstatic = \"site/sub\"\ncache_control = \"\"\ndotfiles = true\n",
    );
    let top = &c.hosts[0].site;
    assert_eq!(top.index, vec!["home.html".to_string()]);
    assert_eq!(top.cache_control.as_deref(), Some("max-age=60"));
    assert_eq!(top.max_ranges, 4);
    let a = &c.hosts[1];
    assert_eq!(
        a.site.index,
        vec!["a.html".to_string(), "b.html".to_string()],
        "index replaces"
    );
    assert_eq!(
        a.site.mime.overrides(),
        vec![("md", "text/markdown"), ("x", "b/x")],
        "per extension"
    );
    assert_eq!(a.site.mime.default_type(), "text/plain");
    assert_eq!(
        a.site.error_pages,
        vec![(404, "a404.html".to_string())],
        "per code; \"\" removes"
    );
    assert_eq!(
        a.site.cache_control.as_deref(),
        Some("max-age=60"),
        "inherited"
    );
    assert_eq!(a.site.max_ranges, 4);
    assert_eq!(
        a.routes[0].site, a.site,
        "the root route has the host's options"
    );
    let sub = &a.routes[1].site;
    assert_eq!(sub.cache_control, None, "\"\" turns it off");
    assert!(sub.dotfiles && !a.site.dotfiles);
    assert_eq!(sub.index, a.site.index);
    assert_eq!(sub.mime, a.site.mime);
}

#[test]
fn host_names() {
    let d = Dir::new();
    let c = d.load(
        "root = \"site\"\n\
         [vhost.\"Example.COM.\"]\naliases = [\"WWW.example.com\", \"*.example.com\"]\nroot = \"site\"\n\
         [vhost.\"other.test\"]\nroot = \"site/sub\"\ndefault = true\naccess_log = \"logs/o.log\"\n",
    );
    assert_eq!(c.hosts.len(), 3);
    assert_eq!(c.hosts[0].name, "");
    assert_eq!(
        c.hosts[1].name, "example.com",
        "lower-cased, trailing dot stripped"
    );
    assert_eq!(
        c.hosts[1].aliases,
        vec!["www.example.com".to_string(), "*.example.com".into()]
    );
    assert_eq!(c.hosts[2].name, "other.test");
    assert_eq!(c.default_host, 2);
    assert_eq!(static_path(&c, 2, "/"), d.path("site/sub"));
    assert_eq!(
        c.hosts[2].access_log,
        Some((LogTarget::File(d.path("logs/o.log")), LogFormat::Common))
    );
    assert_eq!(
        d.load("[vhost.a]\n").default_host,
        0,
        "the top level by default"
    );
    // A block logs where the top level does unless it says otherwise; the top level's
    // format applies even when only the block has a log.
    let c = d.load("log_format = \"combined\"\n[vhost.a]\naccess_log = \"-\"\n[vhost.b]\n");
    assert_eq!(c.hosts[0].access_log, None);
    assert_eq!(
        c.hosts[1].access_log,
        Some((LogTarget::Stdout, LogFormat::Combined))
    );
    assert_eq!(c.hosts[2].access_log, None);
    let c = d.load("access_log = \"a.log\"\n[vhost.a]\nlog_format = \"combined\"\n");
    assert_eq!(
        c.hosts[1].access_log,
        Some((LogTarget::File(d.path("a.log")), LogFormat::Combined))
    );
    assert_eq!(
        c.hosts[0].access_log.as_ref().map(|l| l.1),
        Some(LogFormat::Common)
    );

    for (text, want) in [
        ("[vhost.\"a..b\"]", "tern.toml:1:8: host name \"a..b\": empty label"),
        ("[vhost.\".a\"]", "tern.toml:1:8: host name \".a\": empty label"),
        ("[vhost.\"a/b\"]", "tern.toml:1:8: host name \"a/b\": a slash is not allowed"),
        ("[vhost.\"a\\\\b\"]", "tern.toml:1:8: host name \"a\\\\b\": a slash is not allowed"),
        ("[vhost.\"a\\u0000b\"]", "tern.toml:1:8: host name \"a\\0b\": NUL is not allowed"),
        ("[vhost.\"a b\"]", "tern.toml:1:8: host name \"a b\": white space is not allowed"),
        ("[vhost.\"a.com:8080\"]", "tern.toml:1:8: host name \"a.com:8080\": a port is not part of a host name"),
        ("[vhost.\"*.a.com\"]", "tern.toml:1:8: host name \"*.a.com\": a wildcard is only allowed in aliases"),
        ("[vhost.a]\naliases = [\"x.*\"]", "tern.toml:2:12: host name \"x.*\": a wildcard is only \"*.\" at the start"),
        ("[vhost.\"a.com\"]\n[vhost.\"A.com.\"]", "tern.toml:2:8: host name \"a.com\" is already used at tern.toml:1:8"),
        ("[vhost.a]\naliases = [\"b\"]\n[vhost.b]", "tern.toml:3:8: host name \"b\" is already used at tern.toml:2:12"),
        ("[vhost.a]\ndefault = true\n[vhost.b]\ndefault = true", "tern.toml:4:11: default = true is already set at tern.toml:2:11; only one host can be the default"),
        ("[vhost.a]\nroot = \"site\"\n[vhost.a.route.\"/\"]\nstatic = \"site\"", "tern.toml:2:8: root and [vhost.\"a\".route.\"/\"] both set what / serves"),
    ] {
        let e = d.error(text);
        assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn includes() {
    let d = Dir::new();
    d.write(
        "conf.d/b.toml",
        "[vhost.\"b.test\"]\nroot = \"../site\"\n[route.\"/b/\"]\nstatic = \"../site/sub\"\n",
    );
    d.write("conf.d/a.toml", "[vhost.\"a.test\"]\nroot = \"../site\"\n[vhost.\"a.test\".route.\"/x/\"]\nredirect = \"/\"\n");
    d.write("conf.d/skip.txt", "not toml");
    let c = d.load("root = \"site\"\ninclude = [\"conf.d/*.toml\", \"none.d/*.toml\"]\n[vhost.\"main.test\"]\n");
    let names: Vec<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        ["", "main.test", "a.test", "b.test"],
        "main file first, then sorted"
    );
    assert_eq!(
        static_path(&c, 3, "/"),
        d.path("conf.d/../site"),
        "relative to the included file"
    );
    assert_eq!(
        c.hosts[0].routes[1].prefix, "/b/",
        "top-level routes of includes join the top level"
    );
    assert_eq!(c.hosts[2].routes[1].prefix, "/x/");
    // A literal include is also fine, and a file is read once.
    let c = d.load("include = [\"conf.d/a.toml\", \"conf.d/*.toml\"]\n");
    assert_eq!(c.hosts.len(), 3);
    let c = d.load("include = \"conf.d/b.toml\"\n");
    assert_eq!(c.hosts.len(), 2);

    assert_eq!(
        d.error("include = [\"conf.d/nope.toml\"]\n"),
        "tern.toml:1:12: include \"conf.d/nope.toml\": no such file or directory"
    );
    d.write("dup/a.toml", "[vhost.\"b.test\"]\n");
    d.write("dup/r.toml", "[route.\"/b/\"]\nredirect = \"/\"\n");
    let e = d.errors("include = [\"conf.d/*.toml\", \"dup/*\"]\n");
    assert_eq!(
        e,
        [
            "dup/a.toml:1:8: host name \"b.test\" is already used at conf.d/b.toml:1:8",
            "dup/r.toml:1:8: route \"/b/\" is already defined at conf.d/b.toml:3:8",
        ]
    );
    d.write(
        "bad/x.toml",
        "listen = [\"127.0.0.1:1\"]\ninclude = [\"y\"]\n[vhost.x]\nindx = 1\n",
    );
    let e = d.errors("include = [\"bad/x.toml\"]\n");
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(
        e[0].starts_with("bad/x.toml:1:1: key \"listen\" is not allowed in an included file"),
        "{e:?}"
    );
    assert!(
        e[1].starts_with("bad/x.toml:2:1: key \"include\" is not allowed"),
        "{e:?}"
    );
    assert!(
        e[2].starts_with("bad/x.toml:4:1: unknown key \"indx\" in [vhost.\"x\"]"),
        "{e:?}"
    );
}

#[test]
fn precedence() {
    let d = Dir::new();
    let text =
        "root = \"site\"\nlisten = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\nindex = \"home.html\"\n\
                listing = false\nheader_timeout = \"3s\"\nmime = { md = \"text/markdown\" }\n\
                error_page = { 404 = \"/404.html\", 500 = \"/500.html\" }\nserver_name = \"file\"\n\
                [vhost.v]\nlisting = true\n";
    let c = d.load_with(text, &[]).unwrap();
    assert_eq!(c.listen.len(), 2);
    assert!(!c.hosts[0].site.listing);
    assert_eq!(c.limits.header_timeout, 3_000, "file over default");
    assert_eq!(c.limits.keepalive_timeout, 5_000, "default");
    assert_eq!(c.server_name.as_deref(), Some("file"));

    let c = d
        .load_with(
            text,
            &[
                "--listen",
                "127.0.0.1:3",
                "--index",
                "other.html",
                "--header-timeout",
                "4",
                "--mime",
                "txt=text/x",
                "--error-page",
                "403=/403.html",
                "--server-name",
                "",
                "src",
            ],
        )
        .unwrap();
    assert_eq!(
        c.listen,
        vec!["127.0.0.1:3".parse().unwrap()],
        "a flag's list replaces the file's"
    );
    assert_eq!(c.hosts[0].site.index, vec!["other.html".to_string()]);
    assert_eq!(c.limits.header_timeout, 4_000, "flag over file");
    assert_eq!(c.hosts[0].site.mime.overrides(), vec![("txt", "text/x")]);
    assert_eq!(
        c.hosts[0].site.error_pages,
        vec![(403, "403.html".to_string())]
    );
    assert!(
        !c.hosts[0].site.listing,
        "the file's value where no flag is given"
    );
    assert_eq!(c.server_name, None);
    assert_eq!(
        static_path(&c, 0, "/"),
        PathBuf::from("src"),
        "ROOT, relative to the cwd"
    );
    assert!(
        c.hosts[1].site.listing,
        "a vhost's own value beats a top-level flag"
    );
    assert_eq!(
        c.hosts[1].site.index,
        vec!["other.html".to_string()],
        "inherited from the flag"
    );

    // --port alone also replaces the file's listen list.
    let c = d.load_with(text, &["-p", "9"]).unwrap();
    assert_eq!(c.listen, vec!["127.0.0.1:9".parse().unwrap()]);
    // ROOT replaces what a [route."/"] serves, keeping its options.
    let c = d
        .load_with(
            "[route.\"/\"]\nredirect = \"/x\"\nlisting = false\n",
            &["src"],
        )
        .unwrap();
    assert_eq!(static_path(&c, 0, "/"), PathBuf::from("src"));
    assert!(!c.hosts[0].routes[0].site.listing);
    // With -c, no root anywhere means no "/" route, not ".".
    let c = d.load_with("listing = false\n", &[]).unwrap();
    assert!(c.hosts[0].routes.is_empty());
    // A bad flag root is reported without a place.
    let e = d.load_with("", &["/nonexistent/tern"]).unwrap_err();
    assert_eq!(e, ["root \"/nonexistent/tern\": no such directory"]);
}

#[test]
fn print_config_round_trip() {
    let d = Dir::new();
    d.write(
        "conf.d/v.toml",
        "[vhost.\"v.test\"]\naliases = [\"*.v.test\"]\nroot = \"../site\"\ndefault = true\n\
         log_format = \"combined\"\nheaders = { \"X-A\" = \"\", \"X-V\" = \"v\" }\n\
         [vhost.\"v.test\".route.\"/s/\"]\nstatic = \"../site/sub\"\nfallback = \"b.txt\"\n\
         error_page = { 404 = \"\" }\n",
    );
    let text = "listen = [\"127.0.0.1:0\", \"[::1]:8080\", \"80\", \"[::]:81 reuse_port\", \"sd:2\", \"sd:https\"]\n\
                reuse_port = true\nroot = \"site\"\nheader_timeout = 2.5\n\
                include = [\"conf.d/*.toml\"]\naccess_log = \"logs/access.log\"\n\
                headers = { \"X-A\" = \"a \\\"q\\\"\" }\nerror_page = { 404 = \"/404.html\" }\n\
                mime = { md = \"text/markdown\" }\ncache_control = \"max-age=60\"\nvhost_dirs = true\n\
                [route.\"/old/\"]\nredirect = \"https://example.com/\"\nstatus = 302\n\
                [route.\"/a\"]\nstatic = \"site/a.txt\"\ncache_control = \"\"\n\
                [route.\"/cgi/\"]\ncgi = \"site/sub\"\ncgi_timeout = \"5s\"\ncgi_max_processes = 8\n\
                cgi_env = [\"PATH\", \"LANG\"]\nmax_body = \"2MiB\"\n\
                [route.\"/p/\"]\nproxy = \"http://127.0.0.1:9/x/\"\ncommand = [\"sh\", \"-c\", \"true\"]\n\
                proxy_timeout = \"3s\"\ntrust_forwarded = true\nproxy_host = \"b.internal\"\n\
                [route.\"/r/\"]\nstatic = \"site\"\nrun = { \".py\" = \"/usr/bin/python3\", \".cgi\" = \"\" }\n";
    for flags in [
        &[][..],
        &[
            "--no-listing",
            "--index",
            "x.html",
            "--server-name",
            "",
            "--error-log",
            "-",
        ],
    ] {
        let first = to_toml(&d.load_with(text, flags).unwrap());
        let printed = d.write("printed/p.toml", &first);
        let again = load(Some(&printed), &Overrides::default()).unwrap_or_else(|e| {
            panic!("printed config rejected: {e:?}\n{first}");
        });
        assert_eq!(to_toml(&again), first);
    }
    let out = to_toml(&d.load_with(text, &[]).unwrap());
    assert!(out.contains("\nheader_timeout = \"2500ms\"\n"), "{out}");
    for line in [
        "\ncgi_max_processes = 8\n",
        "\nmax_body = 2097152\n",
        "\ncgi_env = [\"PATH\", \"LANG\"]\n",
        "\nproxy = \"http://127.0.0.1:9/x/\"\n",
        "\ntrust_forwarded = true\n",
        "\nrun = { \".cgi\" = \"\", \".py\" = \"/usr/bin/python3\" }\n",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    assert!(
        out.contains(
            "\nlisten = [\"127.0.0.1:0\", \"[::1]:8080\", \":80\", \"[::]:81 reuse_port\", \"sd:2\", \"sd:https\"]\nreuse_port = true\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("\n[vhost.\"v.test\"]\naliases = [\"*.v.test\"]\ndefault = true\n"),
        "{out}"
    );
    // Without a file: today's defaults, printed in full.
    let plain = load(None, &Overrides::default()).unwrap();
    let printed = d.write("printed/plain.toml", &to_toml(&plain));
    let again = load(Some(&printed), &Overrides::default()).unwrap();
    assert_eq!(to_toml(&again), to_toml(&plain));
    assert_eq!(again.hosts[0].site, plain.hosts[0].site);
}
