//! The raw tree of [`super::file`] plus the flags ([`Overrides`]) to a validated [`Config`]:
//! flag > file > built-in default for each setting, and per-site options merged route over
//! host over top level over defaults (see `site`). Every error found is collected, each at
//! the place in the file that caused it. Reads only metadata (roots must exist).
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::cli::{Overrides, HEAD_SIZES};
use super::file::{quote, Entry, Source, Tree};
use super::raw::{RawRoute, RawTop};
use super::site::Layer;
use super::vhost::{vhosts, Top};
use super::{io_reason, values, Config, ConfigError, Host, Listen, Route, RouteKind, SiteOptions};
use crate::conn::Limits;
use crate::fs::CacheConfig;
use crate::log::{Level, LogFormat, LogTarget};

/// Built-in defaults of settings that have a flag (the `--help` text shows the same).
const DEFAULT_PORT: u16 = 8080;
const HEADER_TIMEOUT: u64 = 10_000;
const KEEPALIVE_TIMEOUT: u64 = 5_000;
const SEND_TIMEOUT: u64 = 30_000;
const SHUTDOWN_TIMEOUT: u64 = 10_000;
const MAX_CONNECTIONS: usize = 10_000;
const MAX_HEADER_SIZE: u32 = 16 * 1024;
const MAX_REQUEST_LINE: u32 = 8 * 1024;
const MAX_REQUESTS: u32 = 10_000;
const SERVER_NAME: &str = "tern";
const FILE_CACHE_ENTRIES: usize = 10_000;
const AUTH_MAX_FAILURES: u32 = 10;

/// Errors with their places: files are indexed as in [`Tree::files`].
pub(super) struct Errors<'a> {
    pub files: &'a [Source],
    pub list: &'a mut Vec<ConfigError>,
    /// The chroot that roots are checked inside, while the process has not entered it yet.
    pub inside: Option<PathBuf>,
}

impl Errors<'_> {
    pub fn at(&mut self, file: usize, span: &std::ops::Range<usize>, msg: impl Into<String>) {
        self.list.push(self.files[file].err(Some(span), msg));
    }

    pub fn plain(&mut self, msg: impl Into<String>) {
        self.list.push(ConfigError::plain(msg));
    }

    /// Where `p` is now: inside the chroot that is yet to be entered, if any.
    pub fn outside(&self, p: &Path) -> PathBuf {
        match &self.inside {
            Some(dir) => super::service::in_chroot(dir, p),
            None => p.to_path_buf(),
        }
    }

    /// `tern.toml:3:1`.
    fn place(&self, file: usize, span: &std::ops::Range<usize>) -> String {
        self.files[file].at(span)
    }

    /// An integer in `range`, or an error naming the key.
    pub fn int(
        &mut self,
        file: usize,
        key: &str,
        v: &Spanned<i64>,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let n = *v.get_ref();
        if range.contains(&n) {
            return Some(n);
        }
        let (lo, hi) = (range.start(), range.end());
        self.at(
            file,
            &v.span(),
            format!("{key} = {n}: out of range ({lo} to {hi})"),
        );
        None
    }
}

/// A path from a file: relative to that file's directory.
pub(super) fn in_dir(dir: &Path, p: impl AsRef<Path>) -> PathBuf {
    dir.join(p)
}

/// `root "site" (/etc/tern/site)` when the file's directory changed the path, else
/// `root "/srv/site"`.
fn show_path(key: &str, raw: &str, resolved: &Path) -> String {
    if Path::new(raw) == resolved {
        format!("{key} {}", quote(raw))
    } else {
        format!("{key} {} ({})", quote(raw), resolved.display())
    }
}

/// Why `p` cannot be served as a directory (`dir`) or a single file.
fn check_path(p: &Path, dir: bool) -> Result<(), String> {
    match std::fs::metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(if dir {
            "no such directory".into()
        } else {
            "no such file".into()
        }),
        Err(e) => Err(io_reason(&e)),
        Ok(m) if dir && !m.is_dir() => Err("not a directory".into()),
        Ok(m) if !dir && m.is_dir() => {
            Err("is a directory, but a route whose prefix does not end in / serves one file".into())
        }
        Ok(m) if !dir && !m.is_file() => Err("not a regular file".into()),
        Ok(_) => Ok(()),
    }
}

pub(super) fn build(
    mut tree: Tree,
    ov: &Overrides,
    source: Option<&Path>,
    errors: &mut Vec<ConfigError>,
) -> Option<Config> {
    let mut top = std::mem::take(&mut tree.top);
    let mut e = Errors {
        files: &tree.files,
        list: errors,
        inside: None,
    };
    let service = super::service::build(&mut e, &mut top, ov);
    if !crate::sys::process::chrooted() {
        e.inside.clone_from(&service.chroot);
    }
    let listen = match &ov.listen {
        Some(l) => l.clone(),
        None => file_listen(&mut e, &top).unwrap_or_else(|| {
            vec![Listen::addr(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                DEFAULT_PORT,
            )))]
        }),
    };
    let listen_tls = match &ov.listen_tls {
        Some(l) => l.clone(),
        None => super::tls::listen_list(&mut e, "listen_tls", top.listen_tls.as_ref()),
    };
    for l in &listen_tls {
        // Port 0 asks for a fresh port each time: two such entries are two sockets.
        let any_port = matches!(&l.addr, crate::config::ListenAddr::Addr(a) if a.port() == 0)
            || l.addr == crate::config::ListenAddr::AllPort(0);
        if !any_port && listen.iter().any(|p| p.addr == l.addr) {
            e.plain(format!(
                "{} is in both listen and listen_tls; one socket serves one of them",
                l.addr
            ));
        }
    }
    let tls = super::TlsOptions {
        min_version: super::tls::min_version(&mut e, top.tls_min_version.as_ref()),
    };
    let limits = limits(&mut e, &top, ov);
    let max_connections = ov
        .max_connections
        .or_else(|| count(&mut e, "max_connections", &top.max_connections))
        .unwrap_or(MAX_CONNECTIONS)
        .max(1);
    let error_log = match (&ov.error_log, &top.error_log) {
        (Some(flag), _) => LogTarget::parse(flag),
        (None, Some(v)) => log_target(&mut e, 0, "error_log", v).unwrap_or(LogTarget::Stderr),
        (None, None) => LogTarget::Stderr,
    };
    let log_level = ov
        .log_level
        .or_else(|| top.log_level.as_ref().and_then(|v| level(&mut e, v)))
        .unwrap_or(Level::Info);
    let server_name = match (&ov.server_name, &top.server_name) {
        (Some(flag), _) => flag.clone(),
        (None, Some(v)) => values::header_value(v.get_ref()).unwrap_or_else(|m| {
            e.at(0, &v.span(), format!("server_name: {m}"));
            String::new()
        }),
        (None, None) => SERVER_NAME.into(),
    };
    let cache = CacheConfig {
        max_entries: ov
            .file_cache_entries
            .or_else(|| count(&mut e, "file_cache_entries", &top.file_cache_entries))
            .unwrap_or(FILE_CACHE_ENTRIES),
        precompressed: ov.precompressed.or(top.precompressed).unwrap_or(true),
        ..CacheConfig::default()
    };

    let routes = std::mem::take(&mut tree.routes);
    let format = top_format(&mut e, ov, &top);
    let mut hosts = vec![top_host(&mut e, &mut top, ov, routes, source, format)];
    let (site, log) = (hosts[0].site.clone(), hosts[0].access_log.clone());
    let https = hosts[0].https.clone();
    let top_level = Top {
        site: &site,
        log: log.as_ref(),
        format,
        https: &https,
    };
    let default_host = vhosts(&mut e, tree.vhosts, &top_level, &mut hosts);
    if !listen_tls.is_empty() && hosts.iter().all(|h| h.cert.is_none()) {
        e.plain("listen_tls needs a certificate: set tls_cert and tls_key (or --tls-cert and --tls-key)");
    }
    if listen_tls.is_empty() && hosts.iter().any(|h| h.https.redirect) {
        e.plain("redirect_to_https needs an HTTPS listener (listen_tls)");
    }
    let auth_max_failures = top
        .auth_max_failures
        .as_ref()
        .and_then(|v| e.int(0, "auth_max_failures", v, 1..=1_000_000))
        .map_or(AUTH_MAX_FAILURES, |n| n as u32);
    let all_routes: Vec<&Route> = hosts.iter().flat_map(|h| h.routes.iter()).collect();
    // The directories write-enabled routes write to: no script may run from one.
    let writable: Vec<PathBuf> = all_routes
        .iter()
        .filter_map(|r| match &r.kind {
            RouteKind::Store(s) => Some(s.dir.clone()),
            _ => None,
        })
        .collect();
    check_exec_not_writable(&mut e, &all_routes, &writable);
    let failed = !e.list.is_empty();
    let cfg = Config {
        source: source.map(Path::to_path_buf),
        config_paths: Vec::new(),
        listen,
        listen_tls,
        tls,
        reuse_port: ov.reuse_port.or(top.reuse_port).unwrap_or(false),
        limits,
        max_connections,
        shutdown_timeout: ov
            .shutdown_timeout
            .or(top.shutdown_timeout.map(|d| d.0))
            .unwrap_or(SHUTDOWN_TIMEOUT),
        error_log,
        log_level,
        cache,
        server_name: (!server_name.is_empty()).then_some(server_name),
        vhost_dirs: top.vhost_dirs.unwrap_or(false),
        hosts,
        default_host,
        service,
        auth_max_failures,
    };
    (!failed).then_some(cfg)
}

/// `hosts[0]`: the top level's options (file, then the flags over them, a flag's list
/// replacing the file's), its access log, and its routes with the `/` that ROOT, `root` or
/// `[route."/"]` gives, first.
fn top_host(
    e: &mut Errors,
    top: &mut RawTop,
    ov: &Overrides,
    routes: Vec<Entry<RawRoute>>,
    source: Option<&Path>,
    format: LogFormat,
) -> Host {
    let mut layer = Layer::from_raw(e, 0, top.take_site());
    layer.apply_flags(ov);
    let site = layer.merge_over(&SiteOptions::default());
    let access_log = match (&ov.access_log, &top.access_log) {
        (Some(flag), _) => Some(LogTarget::parse(flag)),
        (None, Some(v)) => log_target(e, 0, "access_log", v),
        (None, None) => None,
    }
    .map(|t| (t, format));

    let mut routes = host_routes(e, routes, &site, "");
    let slash = routes.iter().position(|r| r.prefix == "/");
    let file_root = top
        .root
        .as_ref()
        .and_then(|r| static_path(e, 0, "root", r, true));
    if let (Some(r), Some(_)) = (&top.root, slash) {
        e.at(
            0,
            &r.span(),
            "root and [route.\"/\"] both set what / serves; keep one",
        );
    }
    match (&ov.root, slash) {
        // ROOT replaces what "/" serves, keeping the route's options.
        (Some(flag), Some(i)) => {
            check_flag_root(e, flag);
            routes[i].kind = RouteKind::Static(flag.clone());
        }
        (Some(flag), None) => {
            check_flag_root(e, flag);
            routes.push(root_route(flag.clone(), &site));
        }
        (None, Some(_)) => {}
        (None, None) => match file_root {
            Some(path) => routes.push(root_route(path, &site)),
            // Without a file the root defaults to "." as it always has; a file that gives
            // no root leaves the top level without "/" (404) rather than serve the cwd.
            None if source.is_none() && top.root.is_none() => {
                let dot = PathBuf::from(".");
                check_flag_root(e, &dot);
                routes.push(root_route(dot, &site));
            }
            None => {}
        },
    }
    slash_first(&mut routes);
    let file_cert = super::tls::pair(e, 0, top.tls_cert.as_ref(), top.tls_key.as_ref());
    let flag_cert = super::tls::flag_pair(e, ov.tls_cert.as_ref(), ov.tls_key.as_ref());
    let https = super::tls::https(
        e,
        0,
        top.redirect_to_https,
        top.hsts.as_ref(),
        &Default::default(),
    );
    Host {
        name: String::new(),
        aliases: Vec::new(),
        access_log,
        site,
        routes,
        cert: flag_cert.or(file_cert),
        https,
    }
}

fn top_format(e: &mut Errors, ov: &Overrides, top: &RawTop) -> LogFormat {
    ov.log_format
        .or_else(|| top.log_format.as_ref().and_then(|v| log_format(e, 0, v)))
        .unwrap_or(LogFormat::Common)
}

/// Moves the `/` route, if any, to the front (the order routes were given in is kept).
pub(super) fn slash_first(routes: &mut Vec<Route>) {
    if let Some(i) = routes.iter().position(|r| r.prefix == "/") {
        let r = routes.remove(i);
        routes.insert(0, r);
    }
}

/// A `root` or `static` path from file `file`, resolved against its directory and checked
/// to be a directory (`dir`) or a regular file.
pub(super) fn static_path(
    e: &mut Errors,
    file: usize,
    key: &str,
    v: &Spanned<String>,
    dir: bool,
) -> Option<PathBuf> {
    let raw = v.get_ref();
    if raw.is_empty() {
        e.at(file, &v.span(), format!("{key} = \"\": expected a path"));
        return None;
    }
    let path = in_dir(&e.files[file].dir, raw);
    if let Err(mut m) = check_path(&e.outside(&path), dir) {
        if dir && key == "static" && m == "not a directory" {
            m.push_str(" (a route whose prefix ends in / serves a directory)");
        }
        if let Some(c) = &e.inside {
            m = format!("{m} inside chroot {}", c.display());
        }
        e.at(
            file,
            &v.span(),
            format!("{}: {m}", show_path(key, raw, &path)),
        );
        return None;
    }
    Some(path)
}

fn check_flag_root(e: &mut Errors, root: &Path) {
    if let Err(mut m) = check_path(&e.outside(root), true) {
        if let Some(c) = &e.inside {
            m = format!("{m} inside chroot {}", c.display());
        }
        e.plain(format!("root {}: {m}", quote(&root.to_string_lossy())));
    }
}

/// A host's `root` as its `/` route.
pub(super) fn root_route(path: PathBuf, site: &SiteOptions) -> Route {
    Route {
        prefix: "/".into(),
        kind: RouteKind::Static(path),
        site: site.clone(),
        fallback: None,
        run: Vec::new(),
    }
}

fn file_listen(e: &mut Errors, top: &RawTop) -> Option<Vec<Listen>> {
    if top.listen.is_none() && top.port.is_none() {
        return None;
    }
    let mut out = Vec::new();
    if let Some(list) = &top.listen {
        for (span, item) in &list.get_ref().0 {
            let span = span.clone().unwrap_or_else(|| list.span());
            match super::listen::parse(item) {
                Ok(l) if out.iter().any(|o: &Listen| o.addr == l.addr) => {
                    e.at(0, &span, format!("listen {}: given twice", quote(item)))
                }
                Ok(l) => out.push(l),
                Err(m) => e.at(0, &span, format!("listen {}: {m}", quote(item))),
            }
        }
    }
    if let Some(port) = &top.port {
        if let Some(p) = e.int(0, "port", port, 0..=65535) {
            out.push(Listen::addr(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                p as u16,
            ))));
        }
    }
    if out.is_empty() {
        if let Some(list) = &top.listen {
            if list.get_ref().0.is_empty() {
                e.at(0, &list.span(), "listen = []: give at least one address");
            }
        }
        return None;
    }
    Some(out)
}

fn limits(e: &mut Errors, top: &RawTop, ov: &Overrides) -> Limits {
    let head = |e: &mut Errors, key: &str, v: &Option<Spanned<super::raw::Size>>| {
        let v = v.as_ref()?;
        let n = v.get_ref().0;
        if HEAD_SIZES.contains(&n) {
            return Some(n as u32);
        }
        e.at(
            0,
            &v.span(),
            format!("{key} = {n}: out of range (256 to 1MiB)"),
        );
        None
    };
    let max_field = ov
        .max_header_size
        .or_else(|| head(e, "max_header_size", &top.max_header_size))
        .unwrap_or(MAX_HEADER_SIZE) as usize;
    let max_request_line = ov
        .max_request_line
        .or_else(|| head(e, "max_request_line", &top.max_request_line))
        .unwrap_or(MAX_REQUEST_LINE) as usize;
    let max_requests = ov
        .max_requests
        .or_else(|| {
            let v = top.max_requests.as_ref()?;
            e.int(0, "max_requests", v, 1..=i64::from(u32::MAX))
                .map(|n| n as u32)
        })
        .unwrap_or(MAX_REQUESTS);
    let ms = |flag: Option<u64>, file: Option<super::raw::Duration>, default| {
        flag.or(file.map(|d| d.0)).unwrap_or(default)
    };
    Limits {
        header_timeout: ms(ov.header_timeout, top.header_timeout, HEADER_TIMEOUT),
        keepalive_timeout: ms(
            ov.keepalive_timeout,
            top.keepalive_timeout,
            KEEPALIVE_TIMEOUT,
        ),
        send_timeout: ms(ov.send_timeout, top.send_timeout, SEND_TIMEOUT),
        max_requests,
        max_request_line,
        max_field,
        max_head: max_request_line + 4 * max_field,
        ..Limits::default()
    }
}

/// A non-negative count (`max_connections`, `file_cache_entries`).
fn count(e: &mut Errors, key: &str, v: &Option<Spanned<i64>>) -> Option<usize> {
    let v = v.as_ref()?;
    e.int(0, key, v, 0..=i64::MAX).map(|n| n as usize)
}

fn level(e: &mut Errors, v: &Spanned<String>) -> Option<Level> {
    let l = Level::parse(v.get_ref());
    if l.is_none() {
        e.at(
            0,
            &v.span(),
            format!(
                "log_level {}: expected one of error, warn, info, debug",
                quote(v.get_ref())
            ),
        );
    }
    l
}

pub(super) fn log_format(e: &mut Errors, file: usize, v: &Spanned<String>) -> Option<LogFormat> {
    match v.get_ref().as_str() {
        "common" => Some(LogFormat::Common),
        "combined" => Some(LogFormat::Combined),
        other => {
            e.at(
                file,
                &v.span(),
                format!("log_format {}: expected common or combined", quote(other)),
            );
            None
        }
    }
}

/// A log path from a file: `-`/`stdout`, `stderr`, or a path relative to the file's dir.
pub(super) fn log_target(
    e: &mut Errors,
    file: usize,
    key: &str,
    v: &Spanned<String>,
) -> Option<LogTarget> {
    if v.get_ref().is_empty() {
        e.at(
            file,
            &v.span(),
            format!("{key} = \"\": expected a path, \"-\" or \"stderr\""),
        );
        return None;
    }
    Some(match LogTarget::parse(v.get_ref()) {
        LogTarget::File(p) => LogTarget::File(in_dir(&e.files[file].dir, p)),
        t => t,
    })
}

/// The routes of one host, validated and merged over the host's options; prefixes unique.
pub(super) fn host_routes(
    e: &mut Errors,
    entries: Vec<Entry<RawRoute>>,
    host_site: &SiteOptions,
    host: &str,
) -> Vec<Route> {
    let mut out: Vec<Route> = Vec::new();
    let mut seen: Vec<(String, usize, std::ops::Range<usize>)> = Vec::new();
    for entry in entries {
        let prefix = entry.key.get_ref().clone();
        if let Some((_, f, s)) = seen.iter().find(|(p, _, _)| *p == prefix) {
            let first = e.place(*f, s);
            e.at(
                entry.file,
                &entry.key.span(),
                format!("route {} is already defined at {first}", quote(&prefix)),
            );
            continue;
        }
        seen.push((prefix, entry.file, entry.key.span()));
        if let Some(r) = route(e, entry, host_site, host) {
            out.push(r);
        }
    }
    out
}

/// What a route does, decided by which key is present: exactly one of [`KINDS`]. A later
/// kind (`cgi`, `proxy`, `store`) is one more key in [`RawRoute`], one more variant and one
/// more line in [`Kind::of`].
enum Kind<'a> {
    Static(&'a Spanned<String>),
    Redirect(&'a Spanned<String>),
    Cgi(&'a Spanned<String>),
    Proxy(&'a Spanned<String>),
    Store(&'a Spanned<String>),
}

const KINDS: &str = "static, redirect, cgi, proxy, store";

impl Kind<'_> {
    fn of(raw: &RawRoute) -> Option<Kind<'_>> {
        let mut found = Vec::new();
        found.extend(raw.static_.as_ref().map(Kind::Static));
        found.extend(raw.redirect.as_ref().map(Kind::Redirect));
        found.extend(raw.cgi.as_ref().map(Kind::Cgi));
        found.extend(raw.proxy.as_ref().map(Kind::Proxy));
        found.extend(raw.store.as_ref().map(Kind::Store));
        match found.len() {
            1 => found.pop(),
            _ => None,
        }
    }
}

/// One route; `None` when what it does cannot be told. (Any error reported here fails the
/// whole configuration, so a route with a bad value may still be returned.)
fn route(
    e: &mut Errors,
    entry: Entry<RawRoute>,
    host_site: &SiteOptions,
    host: &str,
) -> Option<Route> {
    let (file, at, mut raw, partial) = (entry.file, entry.key.span(), entry.raw, entry.partial);
    let prefix = entry.key.into_inner();
    let name = format!("route {}{host}", quote(&prefix));
    if let Err(m) = values::route_prefix(&prefix) {
        e.at(file, &at, m);
    }
    let site = Layer::from_raw(e, file, raw.take_site()).merge_over(host_site);
    let dir_route = prefix.ends_with('/');
    let kind = match Kind::of(&raw) {
        Some(Kind::Static(p)) => {
            if let Some(s) = &raw.status {
                let msg = format!("{name}: status applies only to redirect routes");
                e.at(file, &s.span(), msg);
            }
            RouteKind::Static(static_path(e, file, "static", p, dir_route)?)
        }
        Some(Kind::Redirect(to)) => redirect(e, file, to, raw.status.as_ref()),
        Some(Kind::Cgi(p)) => {
            if !dir_route {
                let msg = format!("{name}: a cgi route's prefix ends in / (a directory route)");
                e.at(file, &p.span(), msg);
            }
            RouteKind::Cgi(static_path(e, file, "cgi", p, true)?)
        }
        Some(Kind::Proxy(u)) => match upstream(u.get_ref()) {
            Ok(mut up) => {
                if let Some(c) = &raw.command {
                    up.command = command(e, file, c);
                }
                RouteKind::Proxy(up)
            }
            Err(m) => {
                e.at(
                    file,
                    &u.span(),
                    format!("proxy {}: {m}", quote(u.get_ref())),
                );
                return None;
            }
        },
        Some(Kind::Store(dir)) => {
            if !dir_route {
                let msg =
                    format!("{name}: a store route's prefix ends in / (it serves a directory)");
                e.at(file, &at, msg);
            }
            if let Some(s) = &raw.status {
                let msg = format!("{name}: status applies only to redirect routes");
                e.at(file, &s.span(), msg);
            }
            let all = raw.all.as_ref().and_then(|a| {
                let p = a.get_ref();
                match values::route_prefix(p) {
                    Ok(()) if !p.ends_with('/') => Some(p.clone()),
                    Ok(()) => {
                        e.at(
                            file,
                            &a.span(),
                            format!("all {}: a path that does not end in /", quote(p)),
                        );
                        None
                    }
                    Err(m) => {
                        e.at(file, &a.span(), format!("all {}: {m}", quote(p)));
                        None
                    }
                }
            });
            RouteKind::Store(super::StoreConfig {
                dir: static_path(e, file, "store", dir, true)?,
                create_dirs: raw.create_dirs.as_ref().is_some_and(|b| *b.get_ref()),
                recursive: raw.recursive.as_ref().is_some_and(|b| *b.get_ref()),
                all,
            })
        }
        // A bad `static = 5` was reported already; its absence is no news.
        None if partial => return None,
        None => {
            e.at(file, &at, format!("{name}: set exactly one of {KINDS}"));
            return None;
        }
    };
    if !matches!(kind, RouteKind::Store(_)) {
        for (key, v) in [
            ("create_dirs", raw.create_dirs.as_ref().map(Spanned::span)),
            ("recursive", raw.recursive.as_ref().map(Spanned::span)),
            ("all", raw.all.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = v {
                e.at(
                    file,
                    &span,
                    format!("{name}: {key} applies only to store routes"),
                );
            }
        }
    }
    let fallback = raw.fallback.as_ref().and_then(|f| {
        if !(dir_route && matches!(kind, RouteKind::Static(_))) {
            let msg = format!("{name}: fallback needs a static route whose prefix ends in /");
            e.at(file, &f.span(), msg);
            return None;
        }
        values::root_relative(f.get_ref())
            .map_err(|m| {
                e.at(
                    file,
                    &f.span(),
                    format!("fallback {}: {m}", quote(f.get_ref())),
                )
            })
            .ok()
    });
    if let (Some(c), false) = (&raw.command, matches!(kind, RouteKind::Proxy(_))) {
        let msg = format!("{name}: command needs a proxy route");
        e.at(file, &c.span(), msg);
    }
    let run = match &raw.run {
        Some(table) if dir_route && matches!(kind, RouteKind::Static(_)) => {
            run_table(e, file, table)
        }
        Some(table) => {
            let span = table.keys().next().map_or(at.clone(), Spanned::span);
            let msg = format!("{name}: run needs a static route whose prefix ends in /");
            e.at(file, &span, msg);
            Vec::new()
        }
        None => Vec::new(),
    };
    Some(Route {
        prefix,
        kind,
        site,
        fallback,
        run,
    })
}

/// `command = ["gunicorn", "--bind", "unix:/run/app.sock", "app:app"]`: a program (found
/// on `PATH` now, when not a path) and its arguments.
fn command(e: &mut Errors, file: usize, c: &Spanned<super::raw::List>) -> Vec<String> {
    let mut argv: Vec<String> = c.get_ref().0.iter().map(|(_, a)| a.clone()).collect();
    let Some(prog) = argv.first().cloned() else {
        e.at(
            file,
            &c.span(),
            "command: expected a program and its arguments",
        );
        return Vec::new();
    };
    let found = if prog.contains('/') {
        let p = e.outside(Path::new(&prog));
        p.is_file().then_some(prog.clone())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(&prog))
                .find(|p| p.is_file())
                .map(|p| p.to_string_lossy().into_owned())
        })
    };
    match found {
        Some(p) => argv[0] = p,
        None => e.at(
            file,
            &c.span(),
            format!("command: {}: no such program", quote(&prog)),
        ),
    }
    argv
}

/// `http://HOST[:PORT][/path]` (the name resolved now: never inside the loop) or
/// `unix:/absolute/path`.
fn upstream(url: &str) -> Result<super::Upstream, String> {
    use super::{Upstream, UpstreamAddr};
    if let Some(path) = url.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err("expected unix:/absolute/path".into());
        }
        return Ok(Upstream {
            url: url.into(),
            addr: UpstreamAddr::Unix(PathBuf::from(path)),
            authority: "localhost".into(),
            path: None,
            command: Vec::new(),
        });
    }
    let rest = url.strip_prefix("http://").ok_or(
        "expected http://HOST[:PORT][/path] or unix:/path (https upstreams are not supported)",
    )?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    if authority.is_empty() || authority.contains(['@', '?', '#']) || !authority.is_ascii() {
        return Err("expected a host name or address".into());
    }
    if let Some(p) = path {
        if p.contains(['?', '#', ' ']) || p.contains("/../") || p.contains("/./") {
            return Err("the path must be a plain path".into());
        }
    }
    let with_port = if authority.starts_with('[') {
        if authority.ends_with(']') {
            format!("{authority}:80")
        } else {
            authority.to_string()
        }
    } else if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&with_port)
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{authority} resolves to no address"));
    }
    Ok(Upstream {
        url: url.into(),
        addr: UpstreamAddr::Tcp(addrs),
        authority: authority.to_ascii_lowercase(),
        path: path.map(str::to_string),
        command: Vec::new(),
    })
}

/// `run = { ".py" = "/usr/bin/python3", ".cgi" = "" }`: extensions (with their dot, no
/// further dot or slash) to an absolute interpreter path that is an executable file, or
/// `""` to run the file itself.
fn run_table(e: &mut Errors, file: usize, table: &super::raw::Table) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (ext, prog) in table {
        let x = ext.get_ref();
        let rest = x.strip_prefix('.').unwrap_or("");
        if rest.is_empty() || rest.contains(['.', '/', '\0']) {
            let msg = format!("run: {}: expected an extension such as \".py\"", quote(x));
            e.at(file, &ext.span(), msg);
            continue;
        }
        let p = prog.get_ref();
        if !p.is_empty() {
            use std::os::unix::fs::PermissionsExt;
            let path = e.outside(Path::new(p));
            let ok = Path::new(p).is_absolute()
                && std::fs::metadata(&path)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if !ok {
                let msg = format!(
                    "run {} = {}: expected the absolute path of an executable file (or \"\")",
                    quote(x),
                    quote(p)
                );
                e.at(file, &prog.span(), msg);
                continue;
            }
        }
        out.push((x.to_ascii_lowercase(), p.clone()));
    }
    out.sort();
    out
}

/// An upload must never become code: a route that executes files (`cgi`, or `run` on a
/// static route) may not serve a directory that a write-enabled route writes to, nor one
/// inside or around it. Today no route writes (the `store` kind of the writes issue
/// adds them): the writable directories are passed in by the caller, which collects them
/// from every host's `store` routes once that kind exists.
pub(super) fn check_exec_not_writable(e: &mut Errors, routes: &[&Route], writable: &[PathBuf]) {
    for r in routes {
        let dir = match &r.kind {
            RouteKind::Cgi(d) => d,
            RouteKind::Static(d) if !r.run.is_empty() => d,
            _ => continue,
        };
        let exec = std::fs::canonicalize(e.outside(dir)).unwrap_or_else(|_| dir.clone());
        for w in writable {
            let w = std::fs::canonicalize(e.outside(w)).unwrap_or_else(|_| w.clone());
            if exec.starts_with(&w) || w.starts_with(&exec) {
                e.plain(format!(
                    "route {}: executes files in {}, which a store route writes to (or \
                     contains it): an upload must never become code",
                    quote(&r.prefix),
                    exec.display()
                ));
            }
        }
    }
}

fn redirect(
    e: &mut Errors,
    file: usize,
    to: &Spanned<String>,
    status: Option<&Spanned<i64>>,
) -> RouteKind {
    if let Err(m) = values::redirect_url(to.get_ref()) {
        e.at(file, &to.span(), m);
    }
    let status = match status {
        None => 301,
        Some(s) if [301, 302, 307, 308].contains(s.get_ref()) => *s.get_ref() as u16,
        Some(s) => {
            let msg = format!("status = {}: expected 301, 302, 307 or 308", s.get_ref());
            e.at(file, &s.span(), msg);
            301
        }
    };
    RouteKind::Redirect {
        to: to.get_ref().clone(),
        status,
    }
}

#[cfg(test)]
mod exec_tests {
    use super::*;

    #[test]
    fn executing_a_directory_that_is_written_to_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = dir.path().join("uploads");
        let scripts = uploads.join("cgi");
        std::fs::create_dir_all(&scripts).unwrap();
        let other = dir.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        let route = |prefix: &str, kind: RouteKind| Route {
            prefix: prefix.into(),
            kind,
            site: SiteOptions::default(),
            fallback: None,
            run: Vec::new(),
        };
        let mut run = route("/r/", RouteKind::Static(other.clone()));
        run.run = vec![(".py".into(), String::new())];
        let routes = [
            route("/cgi-bin/", RouteKind::Cgi(scripts.clone())),
            run,
            route("/s/", RouteKind::Static(uploads.clone())),
        ];
        let refs: Vec<&Route> = routes.iter().collect();
        let check = |writable: &[PathBuf]| {
            let mut list = Vec::new();
            let mut e = Errors {
                files: &[],
                list: &mut list,
                inside: None,
            };
            check_exec_not_writable(&mut e, &refs, writable);
            list.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert!(check(&[]).is_empty());
        // A store over the uploads: the cgi directory inside it is refused, the run route
        // elsewhere and a plain static route over it are not.
        let errs = check(std::slice::from_ref(&uploads));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("route \"/cgi-bin/\"") && errs[0].contains("never become code"));
        // A store inside the run route's directory: refused too.
        let errs = check(&[other.join("up")]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].contains("route \"/r/\""));
    }
}
