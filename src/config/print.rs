//! `--print-config`: a [`Config`] written back as TOML that [`super::load`] reads to the same
//! configuration (paths made absolute, so the text means the same wherever it is saved). The
//! top level is printed in full; a vhost or route prints only what differs from the level
//! around it, as a person would write it.
use std::fmt::Write as _;
use std::path::Path;

use super::file::{bare_or_quoted as key, quote};
use super::values::show_duration;
use super::{Config, Host, Route, RouteKind, SiteOptions};
use crate::log::{Level, LogFormat, LogTarget};

pub(super) fn to_toml(cfg: &Config) -> String {
    let mut w = String::new();
    w.push_str("# tern: the effective configuration (file, flags and built-in defaults)\n");
    let listen: Vec<String> = cfg.listen.iter().map(|a| quote(&a.to_string())).collect();
    line(&mut w, "listen", &format!("[{}]", listen.join(", ")));
    line(&mut w, "reuse_port", &cfg.reuse_port.to_string());
    let tls: Vec<String> = cfg
        .listen_tls
        .iter()
        .map(|a| quote(&a.to_string()))
        .collect();
    line(&mut w, "listen_tls", &format!("[{}]", tls.join(", ")));
    line(
        &mut w,
        "tls_min_version",
        &quote(cfg.tls.min_version.as_str()),
    );
    let l = &cfg.limits;
    for (k, ms) in [
        ("header_timeout", l.header_timeout),
        ("keepalive_timeout", l.keepalive_timeout),
        ("send_timeout", l.send_timeout),
        ("shutdown_timeout", cfg.shutdown_timeout),
    ] {
        line(&mut w, k, &quote(&show_duration(ms)));
    }
    line(&mut w, "max_connections", &cfg.max_connections.to_string());
    line(&mut w, "max_header_size", &l.max_field.to_string());
    line(&mut w, "max_request_line", &l.max_request_line.to_string());
    line(&mut w, "max_requests", &l.max_requests.to_string());
    line(
        &mut w,
        "server_name",
        &quote(cfg.server_name.as_deref().unwrap_or("")),
    );
    line(&mut w, "error_log", &quote(&target(&cfg.error_log)));
    let level = match cfg.log_level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
    };
    line(&mut w, "log_level", &quote(level));
    line(
        &mut w,
        "precompressed",
        &cfg.cache.precompressed.to_string(),
    );
    line(
        &mut w,
        "file_cache_entries",
        &cfg.cache.max_entries.to_string(),
    );
    line(&mut w, "vhost_dirs", &cfg.vhost_dirs.to_string());
    line(
        &mut w,
        "auth_max_failures",
        &cfg.auth_max_failures.to_string(),
    );
    let svc = &cfg.service;
    for (k, v) in [("user", &svc.user), ("group", &svc.group)] {
        if let Some(v) = v {
            line(&mut w, k, &quote(v));
        }
    }
    if let Some(p) = &svc.chroot {
        line(&mut w, "chroot", &quote(&abs(p)));
    }
    line(&mut w, "daemon", &svc.daemon.to_string());
    if let Some(p) = &svc.pid_file {
        line(&mut w, "pid_file", &quote(&abs(p)));
    }
    line(&mut w, "sandbox", &svc.sandbox.to_string());
    for (k, list) in [
        ("sandbox_read", &svc.sandbox_read),
        ("sandbox_exec", &svc.sandbox_exec),
        ("sandbox_write", &svc.sandbox_write),
    ] {
        if !list.is_empty() {
            let items: Vec<String> = list.iter().map(|p| quote(&abs(p))).collect();
            line(&mut w, k, &format!("[{}]", items.join(", ")));
        }
    }
    let top = &cfg.hosts[0];
    access_log(&mut w, top.access_log.as_ref(), None);
    tls_host(&mut w, top, None);
    site(&mut w, &top.site, None);
    let root = root_of(top);
    if let Some(RouteKind::Static(p)) = root.map(|r| &r.kind) {
        line(&mut w, "root", &quote(&abs(p)));
    }
    routes(&mut w, top, root, "");
    for (i, h) in cfg.hosts.iter().enumerate().skip(1) {
        let table = format!("vhost.{}", quote(&h.name));
        let _ = write!(w, "\n[{table}]\n");
        if !h.aliases.is_empty() {
            let a: Vec<String> = h.aliases.iter().map(|s| quote(s)).collect();
            line(&mut w, "aliases", &format!("[{}]", a.join(", ")));
        }
        if cfg.default_host == i {
            line(&mut w, "default", "true");
        }
        access_log(&mut w, h.access_log.as_ref(), Some(top.access_log.as_ref()));
        tls_host(&mut w, h, Some(top));
        site(&mut w, &h.site, Some(&top.site));
        let root = root_of(h);
        if let Some(RouteKind::Static(p)) = root.map(|r| &r.kind) {
            line(&mut w, "root", &quote(&abs(p)));
        }
        routes(&mut w, h, root, &format!("{table}."));
    }
    w
}

/// A host's certificate and its `redirect_to_https` / `hsts` (a vhost's where they differ
/// from the top level's).
fn tls_host(w: &mut String, h: &Host, top: Option<&Host>) {
    if let Some(c) = &h.cert {
        line(w, "tls_cert", &quote(&abs(&c.cert)));
        line(w, "tls_key", &quote(&abs(&c.key)));
    }
    let base = top.map(|t| &t.https);
    if base.is_none_or(|b| b.redirect != h.https.redirect) {
        line(w, "redirect_to_https", &h.https.redirect.to_string());
    }
    if base.is_none_or(|b| b.hsts != h.https.hsts) {
        match (&h.https.hsts, base) {
            (Some(v), _) => line(w, "hsts", &quote(v)),
            (None, Some(_)) => line(w, "hsts", "\"\""),
            (None, None) => {}
        }
    }
}

fn line(w: &mut String, k: &str, v: &str) {
    let _ = writeln!(w, "{k} = {v}");
}

/// The host's `/` route when `root = ".."` says all of it.
fn root_of(h: &Host) -> Option<&Route> {
    h.routes.iter().find(|r| {
        r.prefix == "/"
            && matches!(r.kind, RouteKind::Static(_))
            && r.fallback.is_none()
            && r.run.is_empty()
            && r.site == h.site
    })
}

fn routes(w: &mut String, h: &Host, root: Option<&Route>, table: &str) {
    for r in &h.routes {
        if root.is_some_and(|root| std::ptr::eq(root, r)) {
            continue;
        }
        let _ = write!(w, "\n[{table}route.{}]\n", quote(&r.prefix));
        match &r.kind {
            RouteKind::Static(p) => line(w, "static", &quote(&abs(p))),
            RouteKind::Redirect { to, status } => {
                line(w, "redirect", &quote(to));
                line(w, "status", &status.to_string());
            }
            RouteKind::Store(s) => {
                line(w, "store", &quote(&abs(&s.dir)));
                line(w, "create_dirs", &s.create_dirs.to_string());
                line(w, "recursive", &s.recursive.to_string());
                if let Some(a) = &s.all {
                    line(w, "all", &quote(a));
                }
            }
            RouteKind::Cgi(p) => line(w, "cgi", &quote(&abs(p))),
            RouteKind::Proxy(u) => {
                line(w, "proxy", &quote(&u.url));
                if !u.command.is_empty() {
                    let argv: Vec<String> = u.command.iter().map(|a| quote(a)).collect();
                    line(w, "command", &format!("[{}]", argv.join(", ")));
                }
            }
        }
        if !r.run.is_empty() {
            let pairs: Vec<String> = r
                .run
                .iter()
                .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
                .collect();
            line(w, "run", &format!("{{ {} }}", pairs.join(", ")));
        }
        if let Some(f) = &r.fallback {
            line(w, "fallback", &quote(&format!("/{f}")));
        }
        site(w, &r.site, Some(&h.site));
    }
}

fn abs(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

fn target(t: &LogTarget) -> String {
    match t {
        LogTarget::Stdout => "-".into(),
        LogTarget::Stderr => "stderr".into(),
        LogTarget::File(p) => abs(p),
    }
}

/// `access_log` and `log_format`, where they differ from the inherited ones (`base`).
fn access_log(
    w: &mut String,
    log: Option<&(LogTarget, LogFormat)>,
    base: Option<Option<&(LogTarget, LogFormat)>>,
) {
    let Some((t, f)) = log else { return };
    let base = base.flatten();
    if base.map(|b| &b.0) != Some(t) {
        line(w, "access_log", &quote(&target(t)));
    }
    if base.map(|b| b.1) != Some(*f) {
        let f = match f {
            LogFormat::Common => "common",
            LogFormat::Combined => "combined",
        };
        line(w, "log_format", &quote(f));
    }
}

/// The site options: all of them (`base` None) or those that differ from `base`.
fn site(w: &mut String, s: &SiteOptions, base: Option<&SiteOptions>) {
    let differs = |f: &dyn Fn(&SiteOptions) -> bool| base.is_none_or(|b| !f(b));
    if differs(&|b| b.index == s.index) {
        let names: Vec<String> = s.index.iter().map(|n| quote(n)).collect();
        line(w, "index", &format!("[{}]", names.join(", ")));
    }
    if differs(&|b| b.listing == s.listing) {
        line(w, "listing", &s.listing.to_string());
    }
    if differs(&|b| b.dotfiles == s.dotfiles) {
        line(w, "dotfiles", &s.dotfiles.to_string());
    }
    if differs(&|b| b.cache_control == s.cache_control) {
        match (&s.cache_control, base) {
            (Some(v), _) => line(w, "cache_control", &quote(v)),
            (None, Some(_)) => line(w, "cache_control", "\"\""),
            (None, None) => {}
        }
    }
    if differs(&|b| b.max_ranges == s.max_ranges) {
        line(w, "max_ranges", &s.max_ranges.to_string());
    }
    if differs(&|b| b.max_body == s.max_body) {
        line(w, "max_body", &s.max_body.to_string());
    }
    if differs(&|b| b.cgi_timeout == s.cgi_timeout) {
        line(w, "cgi_timeout", &quote(&show_duration(s.cgi_timeout)));
    }
    if differs(&|b| b.cgi_max_processes == s.cgi_max_processes) {
        line(w, "cgi_max_processes", &s.cgi_max_processes.to_string());
    }
    if differs(&|b| b.proxy_timeout == s.proxy_timeout) {
        line(w, "proxy_timeout", &quote(&show_duration(s.proxy_timeout)));
    }
    if differs(&|b| b.proxy_host == s.proxy_host) {
        line(
            w,
            "proxy_host",
            &quote(s.proxy_host.as_deref().unwrap_or("")),
        );
    }
    if differs(&|b| b.trust_forwarded == s.trust_forwarded) {
        line(w, "trust_forwarded", &s.trust_forwarded.to_string());
    }
    if differs(&|b| b.proxy_keepalive == s.proxy_keepalive) {
        line(w, "proxy_keepalive", &s.proxy_keepalive.to_string());
    }
    if differs(&|b| b.proxy_via == s.proxy_via) {
        line(w, "proxy_via", &s.proxy_via.to_string());
    }
    if differs(&|b| b.proxy_upgrade == s.proxy_upgrade) {
        let names: Vec<String> = s.proxy_upgrade.iter().map(|n| quote(n)).collect();
        line(w, "proxy_upgrade", &format!("[{}]", names.join(", ")));
    }
    if differs(&|b| b.cgi_env == s.cgi_env) {
        let names: Vec<String> = s.cgi_env.iter().map(|n| quote(n)).collect();
        line(w, "cgi_env", &format!("[{}]", names.join(", ")));
    }
    if differs(&|b| b.mime.default_type() == s.mime.default_type()) {
        line(w, "default_type", &quote(s.mime.default_type()));
    }
    let old_mime = base.map(|b| b.mime.overrides()).unwrap_or_default();
    let mime: Vec<(String, String)> = s
        .mime
        .overrides()
        .into_iter()
        .filter(|e| !old_mime.contains(e))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    table(w, "mime", &mime);
    let pages = changes(
        &s.error_pages,
        base.map(|b| &b.error_pages[..]).unwrap_or_default(),
        |a, b| a == b,
    );
    let pages: Vec<(String, String)> = pages
        .into_iter()
        .map(|(c, p)| {
            (
                c.to_string(),
                p.map(|p| format!("/{p}")).unwrap_or_default(),
            )
        })
        .collect();
    table(w, "error_page", &pages);
    let headers = changes(
        &s.headers,
        base.map(|b| &b.headers[..]).unwrap_or_default(),
        |a: &String, b: &String| a.eq_ignore_ascii_case(b),
    );
    let headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(n, v)| (n, v.unwrap_or_default()))
        .collect();
    table(w, "headers", &headers);
    if differs(&|b| b.access == s.access) {
        if let Some(r) = &s.access {
            let list = |v: &[crate::auth::cidr::Cidr]| {
                let items: Vec<String> = v.iter().map(|c| quote(&c.to_string())).collect();
                format!("[{}]", items.join(", "))
            };
            line(w, "allow", &list(&r.allow));
            line(w, "deny", &list(&r.deny));
        }
    }
    if differs(&|b| b.auth == s.auth) {
        match &s.auth {
            Some(a) => {
                let v = format!(
                    "{{ realm = {}, htpasswd = {} }}",
                    quote(&a.realm),
                    quote(&abs(&a.htpasswd))
                );
                line(w, "auth", &v);
            }
            None if base.is_some() => line(w, "auth", "false"),
            None => {}
        }
    }
    if differs(&|b| b.auth_methods == s.auth_methods) {
        let all: Vec<String> = super::site::AUTH_METHODS
            .iter()
            .map(|m| m.to_string())
            .collect();
        match (&s.auth_methods, base) {
            (Some(m), _) => {
                let items: Vec<String> = m.iter().map(|m| quote(m)).collect();
                line(w, "auth_methods", &format!("[{}]", items.join(", ")));
            }
            (None, Some(_)) => {
                let items: Vec<String> = all.iter().map(|m| quote(m)).collect();
                line(w, "auth_methods", &format!("[{}]", items.join(", ")));
            }
            (None, None) => {}
        }
    }
}

/// The entries of `now` that are new or changed against `was`, and `(key, None)` for those
/// `was` has and `now` lacks (printed as `""`, which removes them).
fn changes<K: Clone, V: Clone + PartialEq>(
    now: &[(K, V)],
    was: &[(K, V)],
    same: impl Fn(&K, &K) -> bool,
) -> Vec<(K, Option<V>)> {
    let mut out: Vec<(K, Option<V>)> = now
        .iter()
        .filter(|(k, v)| !was.iter().any(|(k2, v2)| same(k, k2) && v == v2))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    for (k, _) in was {
        if !now.iter().any(|(k2, _)| same(k, k2)) {
            out.push((k.clone(), None));
        }
    }
    out
}

fn table(w: &mut String, name: &str, entries: &[(String, String)]) {
    if entries.is_empty() {
        return;
    }
    let items: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), quote(v)))
        .collect();
    line(w, name, &format!("{{ {} }}", items.join(", ")));
}
