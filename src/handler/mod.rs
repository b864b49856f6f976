//! Turns a parsed request into a response plan: checks the method, maps the target to a
//! path under the root, and hands files and directories to [`static_files`]. Error
//! responses, the access log and the error log are written here, in one place.
mod cgi;
mod guard;
pub mod listing;
mod proxy;
mod redirect;
pub mod route;
pub mod static_files;
mod store;

use std::net::IpAddr;
use std::rc::Rc;

pub use route::Router;
use route::{Action, Kind, Match, MAX_HOST};

/// Longest `Host` value remembered for the next request.
const LAST_RAW: usize = 64;

use crate::conn::{CloseReason, Exchange, Out, Reply, Service, Transport};
use crate::fs::{Fs, RootId};
use crate::http::date::DateCache;
use crate::http::path::{normalize, split_target};
use crate::http::response::{self, HeadCtx, Persist};
use crate::http::{first_line, reason_phrase, HttpError, Method, Version};
use crate::log::{Access, AccessLog, ErrorLog, Level};

/// The options of one route (or host) as the handler reads them on every request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// Index file names tried in order for a directory.
    pub index: Vec<Box<[u8]>>,
    pub listing: bool,
    pub dotfiles: bool,
    /// `Cache-Control` value added to file responses (200, 206, 304).
    pub cache_control: Option<Box<[u8]>>,
    /// More ranges than this in one request are answered with the whole file (200).
    pub max_ranges: usize,
    /// Status code to the file (root and path beneath it) sent as that error's body.
    pub error_pages: Vec<(u16, RootId, Box<[u8]>)>,
    /// Configured response headers, formatted (`Name: value\r\n` each), added to every
    /// response of the route.
    pub headers: Box<[u8]>,
    /// The host's access log (index into the router's `logs`).
    pub log: Option<usize>,
    /// Longest request body a route that reads bodies accepts (413 past it).
    pub max_body: u64,
    pub cgi_timeout: crate::conn::Millis,
    pub cgi_max_processes: usize,
    pub cgi_env: Vec<String>,
    pub proxy_upgrade: Vec<String>,
    pub proxy_timeout: crate::conn::Millis,
    /// Idle connections kept per upstream (the route of the request that used one last).
    pub proxy_keepalive: usize,
    pub proxy_host: Option<Box<[u8]>>,
    pub trust_forwarded: bool,
    pub proxy_via: bool,
    /// `allow`/`deny`, checked before anything else.
    pub access: Option<crate::auth::cidr::Rules>,
    /// Basic authentication in force.
    pub auth: Option<SiteAuth>,
}

/// `auth` as the handler reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteAuth {
    pub htpasswd: std::path::PathBuf,
    /// Index into the router's `htpasswd` (set when the router is built).
    pub file: usize,
    /// `WWW-Authenticate: Basic realm="...", charset="UTF-8"\r\n`.
    pub challenge: Box<[u8]>,
    /// Bit `1 << method` for each protected method.
    pub methods: u16,
}

impl SiteAuth {
    pub fn covers(&self, m: Method) -> bool {
        self.methods & (1 << m as u16) != 0
    }
}

fn method_bit(name: &str) -> u16 {
    1 << Method::parse(name.as_bytes()) as u16
}

impl Site {
    /// The options of a config level; error pages are left for the router to resolve.
    pub fn from_options(o: &crate::config::SiteOptions) -> Site {
        let mut headers = Vec::new();
        for (name, value) in &o.headers {
            response::header(&mut headers, name.as_bytes(), value.as_bytes());
        }
        Site {
            index: o.index.iter().map(|s| s.as_bytes().into()).collect(),
            listing: o.listing,
            dotfiles: o.dotfiles,
            cache_control: o.cache_control.as_ref().map(|v| v.as_bytes().into()),
            max_ranges: o.max_ranges,
            error_pages: Vec::new(),
            headers: headers.into(),
            log: None,
            max_body: o.max_body,
            access: o.access.clone(),
            auth: o.auth.as_ref().map(|a| {
                let mut challenge = Vec::new();
                let value = format!("Basic realm=\"{}\", charset=\"UTF-8\"", a.realm);
                response::header(&mut challenge, b"WWW-Authenticate", value.as_bytes());
                let methods = match &o.auth_methods {
                    Some(list) => list.iter().fold(0, |m, n| m | method_bit(n)),
                    None => u16::MAX,
                };
                SiteAuth {
                    htpasswd: a.htpasswd.clone(),
                    file: usize::MAX,
                    challenge: challenge.into(),
                    methods,
                }
            }),
            cgi_timeout: o.cgi_timeout,
            cgi_max_processes: o.cgi_max_processes,
            cgi_env: o.cgi_env.clone(),
            proxy_upgrade: o.proxy_upgrade.clone(),
            proxy_timeout: o.proxy_timeout,
            proxy_keepalive: o.proxy_keepalive,
            proxy_host: o.proxy_host.as_ref().map(|h| h.as_bytes().into()),
            trust_forwarded: o.trust_forwarded,
            proxy_via: o.proxy_via,
        }
    }
}

impl Default for Site {
    fn default() -> Site {
        Site::from_options(&crate::config::SiteOptions::default())
    }
}

/// A response as written: its status and the body bytes queued (0 for HEAD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub status: u16,
    pub body: u64,
}

impl Sent {
    /// A response whose body of `len` bytes was pushed to `out`: none of it is sent for HEAD.
    pub fn with_body(status: u16, out: &Out, len: u64) -> Sent {
        let body = if out.is_head_only() { 0 } else { len };
        Sent { status, body }
    }
}

pub struct Handler<F: Fs> {
    pub fs: F,
    /// Swapped whole on reload; a request uses the router it started with.
    pub router: Rc<Router>,
    /// The options of the route (or host) serving the current request.
    pub site: Rc<Site>,
    date: DateCache,
    server: Option<Box<[u8]>>,
    /// One per entry of the router's `logs`.
    pub access_logs: Vec<AccessLog>,
    pub error_log: Option<ErrorLog>,
    /// The decoded, normalised path: `path[url..]` is the request's path beneath `/`,
    /// `path[fs..]` the file-system path beneath `root` (a route's rest of the path, or
    /// `HOST/path` in vhost_dirs mode).
    path: Vec<u8>,
    url: usize,
    fs_at: usize,
    root: RootId,
    /// The request's host name, normalised (only when some host has a name).
    host_name: [u8; MAX_HOST],
    host_len: usize,
    /// The last raw host value looked up and the host it chose: clients on keep-alive
    /// connections (and most clients of a site) send the same `Host` again and again.
    last_raw: [u8; LAST_RAW],
    last_raw_len: usize,
    last_host: usize,
    /// Reused buffers: scratch space, listings and generated pages.
    scratch: Vec<u8>,
    entries: Vec<crate::fs::ListEntry>,
    page: Vec<u8>,
    /// State of the xorshift generator for multipart boundaries.
    rng: u64,
    /// `Date` and `Server` lines of every head, formatted once per second.
    common: Vec<u8>,
    /// The host whose `Strict-Transport-Security` line the current response carries (an
    /// HTTPS request to a host with `hsts`).
    hsts_host: Option<usize>,
    /// The port `redirect_to_https` names (the first TLS listener's).
    https_port: u16,
    /// Set by an action that answers later (the request's [`Reply::Await`]).
    pending: Option<crate::conn::Await>,
    /// What the server binds to the connection of a pending request (taken after each
    /// turn of the connection: a pending request stops parsing, so there is at most one).
    pub started: Option<Box<dyn crate::dynamic::Task>>,
    /// Basic authentication's files, cache and limiter.
    pub auth: crate::auth::state::Auth,
    /// CGI children running (until reaped), against `cgi_max_processes`.
    cgi_running: Rc<std::cell::Cell<usize>>,
}

impl<F: Fs> Handler<F> {
    pub fn new(fs: F, router: Router, server: Option<&str>, unix_now: i64) -> Handler<F> {
        let date = DateCache::new(unix_now);
        let server: Option<Box<[u8]>> = server.map(|s| s.as_bytes().into());
        let mut common = Vec::with_capacity(64);
        HeadCtx::common(&mut common, date.text(), server.as_deref());
        let site = Rc::clone(&router.hosts[router.default].site);
        let mut h = Handler {
            common,
            fs,
            router: Rc::new(router),
            site,
            date,
            server,
            access_logs: Vec::new(),
            error_log: None,
            path: Vec::with_capacity(256),
            url: 0,
            fs_at: 0,
            root: 0,
            host_name: [0; MAX_HOST],
            host_len: 0,
            last_raw: [0; LAST_RAW],
            last_raw_len: usize::MAX,
            last_host: 0,
            scratch: Vec::with_capacity(256),
            entries: Vec::new(),
            page: Vec::with_capacity(4096),
            rng: seed(),
            hsts_host: None,
            https_port: 443,
            pending: None,
            started: None,
            cgi_running: Rc::default(),
            auth: crate::auth::state::Auth::new(10),
        };
        h.load_htpasswd();
        h
    }

    /// Reads the router's htpasswd files (at start and on reload; the cache goes with the
    /// old ones).
    fn load_htpasswd(&mut self) {
        let router = Rc::clone(&self.router);
        for note in self.auth.set_files(&router.htpasswd, 0) {
            self.log(Level::Error, format_args!("{note}"));
        }
    }

    /// The port of the HTTPS listener that `redirect_to_https` sends clients to.
    pub fn set_https_port(&mut self, port: u16) {
        self.https_port = port;
    }

    /// Moves the clock used for `Date` and the logs (called once per loop turn).
    pub fn set_time(&mut self, unix_secs: i64) {
        if unix_secs != self.date.secs() {
            self.date.update(unix_secs);
            HeadCtx::common(&mut self.common, self.date.text(), self.server.as_deref());
        }
    }

    /// A new `Server` header value (a reload).
    pub fn set_server_name(&mut self, server: Option<&str>) {
        self.server = server.map(|s| s.as_bytes().into());
        HeadCtx::common(&mut self.common, self.date.text(), self.server.as_deref());
    }

    pub fn unix_now(&self) -> i64 {
        self.date.secs()
    }

    pub fn flush_logs(&mut self) {
        for l in &mut self.access_logs {
            l.flush();
        }
        if let Some(l) = &mut self.error_log {
            l.flush();
        }
    }

    pub fn log(&mut self, level: Level, msg: std::fmt::Arguments<'_>) {
        let now = self.date.secs();
        if let Some(l) = &mut self.error_log {
            l.log(now, level, msg);
        }
    }

    fn head_ctx(&self) -> HeadCtx<'_> {
        HeadCtx {
            common: &self.common,
        }
    }

    /// Starts a response head with the common headers and the route's configured ones.
    fn start(&self, out: &mut Out, status: u16, persist: Persist) {
        response::start(&mut out.buf, status, self.head_ctx(), persist);
        if !self.site.headers.is_empty() {
            out.buf.extend_from_slice(&self.site.headers);
        }
        if let Some(h) = self.hsts_host {
            self.push_hsts(out, h);
        }
    }

    /// A fresh multipart boundary: 20 random hex digits.
    fn boundary(&mut self) -> [u8; 20] {
        let mut b = [0u8; 20];
        for chunk in b.chunks_mut(10) {
            // xorshift64*: fast and good enough that a boundary never collides with content
            // by chance; it need not be unpredictable.
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            let mut x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
            for c in chunk {
                *c = b"0123456789abcdef"[(x & 15) as usize];
                x >>= 4;
            }
        }
        b
    }

    /// A complete error response whose body is the configured error page for `status`, or
    /// a small built-in HTML page that never echoes the request. `extra` headers (already
    /// formatted lines) go into the head.
    fn error(&mut self, out: &mut Out, status: u16, persist: Persist, extra: &[u8]) -> Sent {
        let page = self.site.error_pages.iter().find(|e| e.0 == status);
        if let Some((_, root, path)) = page {
            if let Ok(crate::fs::Node::File(f)) = self.fs.lookup(*root, path) {
                self.start(out, status, persist);
                out.buf.extend_from_slice(extra);
                response::header(&mut out.buf, b"Content-Type", f.content_type.as_bytes());
                response::content_length(&mut out.buf, f.meta.size);
                response::end(&mut out.buf);
                match &f.body {
                    crate::fs::Body::Mem(d) => out.push_mem(d, 0, d.len()),
                    crate::fs::Body::File(file) => out.push_file(file, 0, f.meta.size),
                }
                return Sent::with_body(status, out, f.meta.size);
            }
        }
        self.page.clear();
        error_page(&mut self.page, status);
        self.start(out, status, persist);
        out.buf.extend_from_slice(extra);
        out.buf
            .extend_from_slice(b"Content-Type: text/html; charset=utf-8\r\n");
        response::content_length(&mut out.buf, self.page.len() as u64);
        response::end(&mut out.buf);
        out.push_bytes(&self.page);
        Sent::with_body(status, out, self.page.len() as u64)
    }

    /// The virtual host of a request: the absolute-form target's authority, else `Host`,
    /// normalised (into `host_name`); the default host when none matches (or no host has a
    /// name).
    fn vhost(&mut self, ex: &Exchange<'_>, target: &[u8]) -> usize {
        if !self.router.named {
            self.host_len = 0;
            return self.router.default;
        }
        // The Host header was checked by the parser; an absolute-form authority is checked
        // here the same way, and an invalid one names no host.
        let raw = match route::target_authority(target) {
            Some(a) => crate::http::request::valid_host(a).then_some(a),
            None => ex.req.host.map(|h| h.get(ex.head)),
        };
        let raw = raw.unwrap_or_default();
        if raw.len() == self.last_raw_len && route::words_eq(raw, &self.last_raw[..raw.len()]) {
            // Same value as last time: same name (still in `host_name`), same host.
            return self.last_host;
        }
        let norm = route::normalize_host(raw, &mut self.host_name);
        self.host_len = norm.map_or(0, <[u8]>::len);
        let host = self.router.host(norm);
        if let Some(keep) = self.last_raw.get_mut(..raw.len()) {
            keep.copy_from_slice(raw);
            (self.last_raw_len, self.last_host) = (raw.len(), host);
        }
        host
    }

    #[cold]
    fn push_hsts(&self, out: &mut Out, host: usize) {
        if let Some(line) = self.router.hosts.get(host).and_then(|h| h.hsts.as_deref()) {
            out.buf.extend_from_slice(line);
        }
    }

    /// HTTPS checks of a request to `host` (named hosts only, never the single-site fast
    /// path): 421 when the SNI name chose another configured host than `Host` names (RFC
    /// 9110 §15.5.20), 308 to `https://` for `redirect_to_https` over plain HTTP (ACME
    /// HTTP-01 challenges excepted, so certbot's webroot mode works). Also picks the HSTS
    /// line of HTTPS responses.
    fn https_checks(
        &mut self,
        ex: &mut Exchange<'_>,
        out: &mut Out,
        host: usize,
        target: &[u8],
    ) -> Option<Sent> {
        let h = &self.router.hosts[host];
        match ex.transport {
            Transport::Tls { sni } => {
                self.hsts_host = h.hsts.is_some().then_some(host);
                let sni = usize::from(sni?);
                if sni == host {
                    return None;
                }
                // Host names no configured host: served by the default host as over plain
                // HTTP, not refused.
                let name = &self.host_name[..self.host_len];
                let named = host != self.router.default
                    || (!name.is_empty() && self.router.named_host(name).is_some());
                if !named {
                    return None;
                }
                self.hsts_host = None;
                self.use_site(self.router.default, None);
                ex.persist.keep_alive &= !ex.req.has_body();
                Some(self.error(out, 421, ex.persist, b""))
            }
            Transport::Plain if h.https_redirect => {
                self.hsts_host = None;
                let path = if target.first() == Some(&b'/') {
                    target
                } else {
                    // absolute-form: the path after the authority.
                    let after = memchr::memmem::find(target, b"://").map_or(0, |i| i + 3);
                    let rest = &target[after..];
                    rest.iter()
                        .position(|&b| b == b'/')
                        .map_or(&b"/"[..], |i| &rest[i..])
                };
                if path.starts_with(b"/.well-known/acme-challenge/") {
                    return None;
                }
                // The name the client used (even where no host has a name to route by).
                let raw = match route::target_authority(target) {
                    Some(a) => crate::http::request::valid_host(a).then_some(a),
                    None => ex.req.host.map(|h| h.get(ex.head)),
                };
                let mut buf = [0u8; MAX_HOST];
                let name = raw.and_then(|r| route::normalize_host(r, &mut buf))?;
                let mut loc = std::mem::take(&mut self.scratch);
                loc.clear();
                loc.extend_from_slice(b"Location: https://");
                loc.extend_from_slice(name);
                if self.https_port != 443 {
                    loc.push(b':');
                    response::push_u64(&mut loc, u64::from(self.https_port));
                }
                loc.extend_from_slice(path);
                loc.extend_from_slice(b"\r\n");
                self.use_site(host, None);
                let sent = self.error(out, 308, ex.persist, &loc);
                self.scratch = loc;
                Some(sent)
            }
            Transport::Plain => {
                self.hsts_host = None;
                None
            }
        }
    }

    /// Serves requests from now on with `router` (a reload).
    pub fn set_router(&mut self, router: Router) {
        self.hsts_host = None;
        self.router = Rc::new(router);
        self.site = Rc::clone(&self.router.hosts[self.router.default].site);
        self.last_raw_len = usize::MAX;
        self.load_htpasswd();
    }

    /// Answers the current request later: the connection waits in `Phase::Await` (body used
    /// as `how` says) and the server binds `task` to it after this turn. The `Sent` returned
    /// is a placeholder (nothing is written or logged now; the task logs when it answers).
    pub fn answer_later(
        &mut self,
        how: crate::conn::Await,
        task: Box<dyn crate::dynamic::Task>,
    ) -> Sent {
        self.pending = Some(how);
        self.started = Some(task);
        Sent { status: 0, body: 0 }
    }

    /// The options of the route serving the current request (for a task to keep).
    pub fn current_site(&self) -> &Rc<Site> {
        &self.site
    }

    /// A declared body longer than `max_discard`: 413 at once, before any of it is read
    /// (exactly as for a parse error), unless the request is for a route that reads bodies.
    #[cold]
    fn large_body(&mut self, ex: &mut Exchange<'_>, out: &mut Out) -> Reply {
        if self.route_kind(ex).is_some_and(Kind::reads_body) {
            ex.large_body = false;
            return self.respond(ex, out);
        }
        let line = first_line(ex.head);
        self.respond_error(HttpError::PayloadTooLarge, line, ex.peer, out);
        Reply::Done
    }

    /// The kind of route a request would reach (routing only, nothing answered).
    fn route_kind(&mut self, ex: &Exchange<'_>) -> Option<Kind> {
        if self.router.plain.is_some() {
            return Some(Kind::Static);
        }
        let target = ex.req.target.get(ex.head);
        let host = self.vhost(ex, target);
        let (path, _) = split_target(target).ok()?;
        let info = normalize(path, &mut self.path, &mut self.scratch).ok()?;
        let host = &self.router.hosts[host];
        match host.find(&self.path, info.trailing_slash) {
            Match::Route { route, .. } => Some(host.routes[route].kind),
            _ => None,
        }
    }

    /// Routes a request and runs the action of its route.
    fn dispatch(&mut self, ex: &mut Exchange<'_>, out: &mut Out) -> Sent {
        let target = ex.req.target.get(ex.head);
        match ex.req.method {
            Method::Get | Method::Head => {}
            // These are answered before the host is known: no HSTS line is left over from
            // an earlier request.
            Method::Other | Method::Connect | Method::Options
                if (ex.req.method != Method::Options || target == b"*")
                    && self.refused_before_routing(ex.peer) =>
            {
                self.hsts_host = None;
                self.use_site(self.router.default, None);
                return self.error(out, 403, ex.persist, b"");
            }
            Method::Other => {
                self.hsts_host = None;
                ex.persist.keep_alive &= !ex.req.has_body();
                return self.error(out, 501, ex.persist, b"");
            }
            Method::Options if target == b"*" => {
                self.hsts_host = None;
                return self.options(out, ex.persist);
            }
            // CONNECT names an authority, not a path of any host: nothing to route.
            Method::Connect => {
                self.hsts_host = None;
                return self.not_allowed(out, ex.persist);
            }
            _ => {}
        }
        if let Some(root) = self.router.plain {
            return self.serve_plain(ex, out, target, root);
        }
        let host_idx = self.vhost(ex, target);
        if let Some(sent) = self.https_checks(ex, out, host_idx, target) {
            return sent;
        }
        let (path, query) = match split_target(target) {
            Ok(parts) => parts,
            Err(e) => return self.bad_request(host_idx, ex, out, e.reason()),
        };
        let info = match normalize(path, &mut self.path, &mut self.scratch) {
            Ok(info) => info,
            Err(e) => return self.bad_request(host_idx, ex, out, e.reason()),
        };
        // Fields are borrowed one by one (not through methods) so that the router stays
        // borrowed while the current site is set, without cloning it.
        let host = &self.router.hosts[host_idx];
        let (route_idx, rest) = match host.find(&self.path, info.trailing_slash) {
            Match::Route { route, rest } => (route, rest),
            Match::AddSlash => {
                self.use_site(host_idx, None);
                if let Some(sent) = self.guard(ex, out) {
                    return sent;
                }
                if !matches!(ex.req.method, Method::Get | Method::Head) {
                    return self.error(out, 404, ex.persist, b"");
                }
                (self.url, self.fs_at) = (0, 0);
                return static_files::redirect_to_slash(self, ex, out, query);
            }
            Match::None => {
                self.use_site(host_idx, None);
                if let Some(sent) = self.guard(ex, out) {
                    return sent;
                }
                return self.error(out, 404, ex.persist, b"");
            }
        };
        let route = &host.routes[route_idx];
        if !Rc::ptr_eq(&route.site, &self.site) {
            self.site = Rc::clone(&route.site);
        }
        let action = route.kind;
        (self.url, self.fs_at, self.root) = (0, rest, route.root);
        if let Some(sent) = self.guard(ex, out) {
            return sent;
        }
        let at = RouteAt {
            host: host_idx,
            route: route_idx,
        };
        match action {
            Kind::Redirect => {
                let router = Rc::clone(&self.router);
                let route = &router.hosts[host_idx].routes[route_idx];
                let Action::Redirect { to, status } = &route.action else {
                    return self.error(out, 500, ex.persist, b"");
                };
                redirect::respond(
                    self,
                    ex,
                    out,
                    route,
                    to,
                    *status,
                    path,
                    query,
                    info.trailing_slash,
                )
            }
            Kind::Store => self.store(ex, out, info, path, query, at),
            Kind::StoreAll => {
                let router = Rc::clone(&self.router);
                match (
                    &router.hosts[host_idx].routes[route_idx].action,
                    ex.req.method,
                ) {
                    (
                        Action::StoreAll {
                            root,
                            recursive,
                            prefix,
                        },
                        Method::Get | Method::Head,
                    ) => self.all_keys(ex, out, *root, *recursive, prefix),
                    _ => self.not_allowed(out, ex.persist),
                }
            }
            Kind::Cgi | Kind::Script => cgi::serve(self, ex, out, info, query, at),
            Kind::Proxy => proxy::serve(self, ex, out, query, at, info.trailing_slash),
            _ if !matches!(ex.req.method, Method::Get | Method::Head | Method::Options) => {
                self.not_allowed(out, ex.persist)
            }
            _ if ex.req.method == Method::Options => self.options(out, ex.persist),
            Kind::Static => {
                if self.router.vhost_dirs && host_idx == self.router.default && rest == 0 {
                    self.rebase_on_host_dir();
                }
                static_files::serve(self, ex, out, info, query, at)
            }
            Kind::File => static_files::serve_file_route(self, ex, out, at),
        }
    }

    #[cold]
    fn bad_request(
        &mut self,
        host: usize,
        ex: &mut Exchange<'_>,
        out: &mut Out,
        why: &str,
    ) -> Sent {
        self.use_site(host, None);
        static_files::bad_request(self, ex, out, why)
    }

    /// One host with one `/` directory route of the host's own options (the site `tern DIR`
    /// serves): no host to pick and no route to match, and the current site never changes
    /// (see [`Router::plain`]).
    #[inline(always)]
    fn serve_plain(
        &mut self,
        ex: &mut Exchange<'_>,
        out: &mut Out,
        target: &[u8],
        root: RootId,
    ) -> Sent {
        let (path, query) = match split_target(target) {
            Ok(parts) => parts,
            Err(e) => return static_files::bad_request(self, ex, out, e.reason()),
        };
        let info = match normalize(path, &mut self.path, &mut self.scratch) {
            Ok(info) => info,
            Err(e) => return static_files::bad_request(self, ex, out, e.reason()),
        };
        (self.url, self.fs_at, self.root) = (0, 0, root);
        if let Some(sent) = self.guard(ex, out) {
            return sent;
        }
        match ex.req.method {
            Method::Get | Method::Head => {}
            Method::Options => return self.options(out, ex.persist),
            _ => return self.not_allowed(out, ex.persist),
        }
        static_files::serve(self, ex, out, info, query, RouteAt { host: 0, route: 0 })
    }

    /// Requests answered before routing (unknown methods, `OPTIONS *`, CONNECT, heads that
    /// cannot be parsed) are held to the default host's address rules.
    fn refused_before_routing(&self, peer: IpAddr) -> bool {
        let site = &self.router.hosts[self.router.default].site;
        site.access.as_ref().is_some_and(|r| !r.admits(peer))
    }

    /// Makes the options of a host (`route: None`) or of one of its routes current, and its
    /// access log. Repeated requests for the same route cost a pointer comparison.
    #[inline]
    fn use_site(&mut self, host: usize, route: Option<usize>) {
        let h = &self.router.hosts[host];
        let site = match route {
            Some(r) => &h.routes[r].site,
            None => &h.site,
        };
        if !Rc::ptr_eq(site, &self.site) {
            self.site = Rc::clone(site);
        }
    }

    /// The route a request matched.
    pub(super) fn route_at(&self, at: RouteAt) -> &route::Route {
        &self.router.hosts[at.host].routes[at.route]
    }

    /// RFC 9110 §9.3.7: OPTIONS (also `OPTIONS *`) describes what is allowed.
    fn options(&mut self, out: &mut Out, persist: Persist) -> Sent {
        self.start(out, 200, persist);
        out.buf
            .extend_from_slice(b"Allow: GET, HEAD, OPTIONS\r\nContent-Length: 0\r\n\r\n");
        Sent {
            status: 200,
            body: 0,
        }
    }

    /// Known methods that static content does not support, TRACE included (never echoed: it
    /// would reflect cookies to scripts).
    fn not_allowed(&mut self, out: &mut Out, persist: Persist) -> Sent {
        self.error(out, 405, persist, b"Allow: GET, HEAD, OPTIONS\r\n")
    }

    /// vhost_dirs: serve from `ROOT/HOST/` when that directory exists (looked up beneath the
    /// root like any path, so a host name can never lead outside it).
    fn rebase_on_host_dir(&mut self) {
        let host = &self.host_name[..self.host_len];
        if host.is_empty() || !route::is_dir_name(host) {
            return;
        }
        if let Ok(crate::fs::Node::Dir(_)) = self.fs.lookup(self.root, host) {
            let mut p = std::mem::take(&mut self.scratch);
            p.clear();
            p.extend_from_slice(host);
            p.push(b'/');
            p.extend_from_slice(&self.path);
            std::mem::swap(&mut self.path, &mut p);
            self.scratch = p;
            self.url = host.len() + 1;
            self.fs_at = 0;
        }
    }

    fn write_access(&mut self, log: Option<usize>, access: &Access<'_>) {
        let now = self.date.secs();
        if let Some(l) = log.and_then(|i| self.access_logs.get_mut(i)) {
            l.write(now, access);
        }
    }
}

impl<F: Fs> Service for Handler<F> {
    fn respond(&mut self, ex: &mut Exchange<'_>, out: &mut Out) -> Reply {
        if ex.large_body {
            return self.large_body(ex, out);
        }
        let sent = self.dispatch(ex, out);
        if self.pending.is_some() {
            // Answered later, and logged then by whatever answers.
            if let Some(how) = self.pending.take() {
                return Reply::Await(how);
            }
        }
        if self.site.log.is_some() {
            let head = ex.head;
            let access = Access {
                peer: ex.peer,
                request_line: first_line(head),
                status: sent.status,
                bytes: sent.body,
                referer: ex.req.referer.map(|s| s.get(head)),
                user_agent: ex.req.user_agent.map(|s| s.get(head)),
            };
            self.write_access(self.site.log, &access);
        }
        Reply::Done
    }

    fn respond_error(&mut self, err: HttpError, line: &[u8], peer: IpAddr, out: &mut Out) {
        let persist = Persist {
            keep_alive: false,
            version: Version::Http11,
        };
        self.use_site(self.router.default, None);
        self.hsts_host = None;
        let log = self.site.log;
        let status = if self.refused_before_routing(peer) {
            403
        } else {
            err.status()
        };
        let sent = self.error(out, status, persist, b"");
        self.log(
            Level::Info,
            format_args!("{peer}: {} {}", sent.status, err.reason()),
        );
        let access = Access {
            peer,
            request_line: line,
            status: sent.status,
            bytes: sent.body,
            referer: None,
            user_agent: None,
        };
        self.write_access(log, &access);
    }

    fn closed(&mut self, reason: CloseReason, peer: IpAddr) {
        let level = match reason {
            CloseReason::FileTruncated => Level::Warn,
            _ => Level::Debug,
        };
        if self.error_log.as_ref().is_some_and(|l| l.enabled(level)) {
            self.log(
                level,
                format_args!("{peer}: connection closed: {}", reason.as_str()),
            );
        }
    }
}

/// Which route of which host a request matched.
#[derive(Clone, Copy, Debug)]
pub struct RouteAt {
    pub host: usize,
    pub route: usize,
}

/// A random seed (std's hasher keys come from the OS's random source).
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x7465_726e);
    h.finish() | 1
}

/// `<!DOCTYPE html>...<h1>404 Not Found</h1>...`: fixed text per status.
pub fn error_page(buf: &mut Vec<u8>, status: u16) {
    let mut title = Vec::with_capacity(48);
    response::push_u64(&mut title, u64::from(status));
    title.push(b' ');
    title.extend_from_slice(reason_phrase(status).as_bytes());
    buf.extend_from_slice(b"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    buf.extend_from_slice(&title);
    buf.extend_from_slice(b"</title></head>\n<body><h1>");
    buf.extend_from_slice(&title);
    buf.extend_from_slice(b"</h1></body></html>\n");
}

impl<F: Fs> crate::dynamic::Heads for Handler<F> {
    fn head(&mut self, site: &Site, out: &mut Out, status: u16, persist: Persist) {
        response::start(&mut out.buf, status, self.head_ctx(), persist);
        out.buf.extend_from_slice(&site.headers);
    }

    fn error(&mut self, site: &Rc<Site>, out: &mut Out, status: u16, persist: Persist) -> u64 {
        if !Rc::ptr_eq(site, &self.site) {
            self.site = Rc::clone(site);
        }
        self.error(out, status, persist, b"").body
    }

    fn access(&mut self, site: &Site, access: &Access<'_>) {
        self.write_access(site.log, access);
    }

    fn log(&mut self, level: Level, msg: std::fmt::Arguments<'_>) {
        Handler::log(self, level, msg);
    }

    fn error_with(
        &mut self,
        site: &Rc<Site>,
        out: &mut Out,
        status: u16,
        persist: Persist,
        extra: &[u8],
    ) -> u64 {
        if !Rc::ptr_eq(site, &self.site) {
            self.site = Rc::clone(site);
        }
        self.error(out, status, persist, extra).body
    }

    fn forget(&mut self, root: RootId, rel: &[u8]) {
        self.fs.forget(root, rel);
    }

    fn auth_verdict(
        &mut self,
        job: &crate::auth::state::HashJob,
        ok: bool,
        now: crate::conn::Millis,
    ) -> bool {
        self.hash_verdict(job, ok, now)
    }
}
