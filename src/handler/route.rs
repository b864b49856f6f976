//! The router: which virtual host a request is for, and which of its routes serves the
//! path. Built once from a [`Config`] (and again on every reload), then only read. Matching
//! allocates nothing and costs a few hash probes: host names are normalised into a stack
//! buffer and looked up exactly, then by wildcard; a path is matched by looking up its own
//! bytes (a file route) and each of its directory prefixes from the longest down (directory
//! routes), skipping prefix lengths no route has.
//!
//! Each route carries an [`Action`]; later kinds of route (CGI, proxy, store) are further
//! variants, handled by a module of their own.
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::io;
use std::path::Path;
use std::rc::Rc;

use super::Site;
use crate::config::{Config, RouteKind};
use crate::fs::{FxHasher, MimeTable, RootId};
use crate::http::path::normalize;
use crate::http::response;
use crate::log::{LogFormat, LogTarget};

type FxMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<FxHasher>>;

/// Longest host name looked up; longer ones go to the default host (DNS names are at most
/// 253 bytes).
pub const MAX_HOST: usize = 255;

/// Where document roots come from: the real file system, or an in-memory tree for tests.
pub trait Roots {
    /// The id of the directory `path`, its files typed with `mime`.
    fn add_root(&mut self, path: &Path, mime: &MimeTable) -> io::Result<RootId>;
    /// A store's directory: its files typed by what was stored with them (`mime` for the
    /// rest), and no precompressed variants.
    fn add_store_root(&mut self, path: &Path, mime: &MimeTable) -> io::Result<RootId> {
        self.add_root(path, mime)
    }
}

impl Roots for crate::fs::RealFs {
    fn add_root(&mut self, path: &Path, mime: &MimeTable) -> io::Result<RootId> {
        crate::fs::RealFs::add_root(self, path, mime)
    }
    fn add_store_root(&mut self, path: &Path, mime: &MimeTable) -> io::Result<RootId> {
        crate::fs::RealFs::add_store_root(self, path, mime)
    }
}

/// In memory, a root is a directory of the one tree, named by the path as a string.
impl Roots for crate::fs::MemFs {
    fn add_root(&mut self, path: &Path, _mime: &MimeTable) -> io::Result<RootId> {
        Ok(crate::fs::MemFs::add_root(self, &path.to_string_lossy()))
    }
}

/// What a matched route does.
#[derive(Debug)]
pub enum Action {
    /// Files beneath a directory; the rest of the path after the prefix is looked up.
    Static { root: RootId },
    /// One file: `name` in the directory `root`.
    File { root: RootId, name: Box<[u8]> },
    /// `Location: to` (plus the rest of the path and the query when `to` ends with `/`).
    Redirect { to: Box<[u8]>, status: u16 },
    /// A write-enabled directory: read as `Static` through `root`, written through `dir`.
    Store {
        root: RootId,
        dir: std::sync::Arc<std::os::fd::OwnedFd>,
        create_dirs: bool,
        recursive: bool,
    },
    /// A store's `all` path: the JSON listing of every key of the store at route `route`.
    StoreAll {
        root: RootId,
        recursive: bool,
        /// The store route's prefix (the listing's links start with it).
        prefix: Box<[u8]>,
    },
    /// Files beneath a directory run as CGI scripts (`cgi = "DIR"`).
    Cgi { root: RootId },
    /// Requests passed to an upstream (`proxy = "http://..."`).
    Proxy {
        upstream: Rc<crate::config::Upstream>,
    },
}

/// How a route runs scripts: every executable file (`cgi`), or files by extension (`run`
/// on a static route).
#[derive(Debug)]
pub struct Scripts {
    /// The directory as opened (canonical): scripts are run by their path beneath it.
    pub dir: std::path::PathBuf,
    /// Extension (lower case, with its dot) to interpreter (`None`: run the file itself).
    pub run: Vec<(Box<[u8]>, Option<std::path::PathBuf>)>,
}

impl Scripts {
    /// For a `run` route: whether `path` has a mapped extension, and its interpreter.
    pub fn interpreter(&self, path: &[u8]) -> Option<Option<&std::path::Path>> {
        let dot = path.iter().rposition(|&b| b == b'.')?;
        if path[dot..].contains(&b'/') {
            return None;
        }
        let ext = &path[dot..];
        self.run
            .iter()
            .find(|(e, _)| e.eq_ignore_ascii_case(ext))
            .map(|(_, i)| i.as_deref())
    }
}

/// A route's action without its data, and the root it reads (0 for none): copied out on
/// every request, so the action's data is only touched by the actions that need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Static,
    File,
    Redirect,
    Store,
    StoreAll,
    /// `cgi = "DIR"`.
    Cgi,
    /// A static route with `run`: files with a mapped extension are scripts.
    Script,
    /// `proxy = "..."`.
    Proxy,
}

impl Kind {
    /// Whether the route reads request bodies (so a body longer than `max_discard` is
    /// offered to it, up to its `max_body`, instead of being refused with 413 at once).
    pub fn reads_body(self) -> bool {
        match self {
            Kind::Cgi | Kind::Script | Kind::Proxy | Kind::Store => true,
            Kind::Static | Kind::File | Kind::Redirect | Kind::StoreAll => false,
        }
    }
}

#[derive(Debug)]
pub struct Route {
    /// As configured: `/`, `/img/`, `/users`.
    pub prefix: Box<[u8]>,
    pub kind: Kind,
    pub root: RootId,
    pub action: Action,
    pub site: Rc<Site>,
    /// For directory routes: a path beneath the route's root served when nothing else is.
    pub fallback: Option<Box<[u8]>>,
    /// Routes that run scripts (kinds `Cgi` and `Script`).
    pub scripts: Option<Rc<Scripts>>,
}

impl Route {
    /// Whether the prefix is a directory route's (`/` at the end).
    pub fn is_dir(&self) -> bool {
        self.prefix.last() == Some(&b'/')
    }
}

/// One virtual host's routes.
#[derive(Debug)]
pub struct Vhost {
    /// Options for responses no route produced (no match; unparsable requests).
    /// Its `log` is the host's access log (an index into [`Router::logs`]), as is every
    /// route's.
    pub site: Rc<Site>,
    pub routes: Vec<Route>,
    /// The `/` route.
    root_route: Option<usize>,
    /// Directory routes other than `/`, keyed by the prefix without its slashes (`img` for
    /// `/img/`, `a/b` for `/a/b/`): the form of a normalised path.
    dirs: FxMap<usize>,
    /// Which (length, first byte) pairs keys of `dirs` have, so a path probes only
    /// prefixes some route could have (see [`Sig`]).
    dir_sig: Sig,
    /// File routes keyed the same way (`users` for `/users`).
    files: FxMap<usize>,
    file_sig: Sig,
    /// `redirect_to_https`; the `Strict-Transport-Security` line HTTPS responses carry.
    pub https_redirect: bool,
    pub hsts: Option<Box<[u8]>>,
}

/// A filter over keys: the set of their first bytes and a 64-bit set of their (length,
/// first byte) pairs. A key not in it is surely absent, so most requests for a static file
/// probe no map at all.
#[derive(Clone, Copy, Debug, Default)]
struct Sig {
    first: [u64; 4],
    pairs: u64,
}

impl Sig {
    fn bit(len: usize, first: u8) -> u64 {
        1 << (len.wrapping_mul(7).wrapping_add(usize::from(first)) & 63)
    }

    fn add(&mut self, key: &[u8]) {
        let first = key.first().copied().unwrap_or(0);
        self.first[usize::from(first >> 6)] |= 1 << (first & 63);
        self.pairs |= Sig::bit(key.len(), first);
    }

    #[inline]
    fn has_first(&self, first: u8) -> bool {
        // `first >> 6` is at most 3: no bounds check.
        self.first[usize::from(first >> 6) & 3] & (1 << (first & 63)) != 0
    }

    #[inline]
    fn may_have(&self, len: usize, first: u8) -> bool {
        self.pairs & Sig::bit(len, first) != 0
    }
}

/// What a normalised path matches on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    /// `routes[route]`; the rest of the path (beneath the route) starts at `rest`.
    Route {
        route: usize,
        rest: usize,
    },
    /// The path names a directory route without its trailing slash: 301 to `path/`.
    AddSlash,
    None,
}

impl Vhost {
    /// Matches `rel` (a normalised path: no leading `/`, see [`normalize`]); `dir` says the
    /// request path ended in `/`. The longest matching prefix wins; directory routes match
    /// on whole segments only, so `/img/` never matches `/imgx`.
    #[inline(always)]
    pub fn find(&self, rel: &[u8], dir: bool) -> Match {
        if self.files.is_empty() && self.dirs.is_empty() {
            // Only a `/` route (no configuration file, or a plain site): nothing to look up.
            return match self.root_route {
                Some(route) => Match::Route { route, rest: 0 },
                None => Match::None,
            };
        }
        self.find_prefix(rel, dir)
    }

    #[inline(always)]
    fn find_prefix(&self, rel: &[u8], dir: bool) -> Match {
        let Some(&first) = rel.first() else {
            return self.root_match();
        };
        if !dir && self.file_sig.has_first(first) && self.file_sig.may_have(rel.len(), first) {
            if let Some(&route) = self.files.get(rel) {
                return Match::Route {
                    route,
                    rest: rel.len(),
                };
            }
        }
        if !self.dir_sig.has_first(first) {
            return self.root_match();
        }
        if self.dir_sig.may_have(rel.len(), first) {
            if let Some(&route) = self.dirs.get(rel) {
                if !dir {
                    return Match::AddSlash;
                }
                return Match::Route {
                    route,
                    rest: rel.len(),
                };
            }
        }
        // Each `/` ends a candidate prefix, longest first (paths are short: a plain loop
        // beats a vectorised search here).
        for i in (1..rel.len()).rev() {
            if rel[i] == b'/' && self.dir_sig.may_have(i, first) {
                if let Some(&route) = self.dirs.get(&rel[..i]) {
                    return Match::Route { route, rest: i + 1 };
                }
            }
        }
        self.root_match()
    }

    fn root_match(&self) -> Match {
        match self.root_route {
            Some(route) => Match::Route { route, rest: 0 },
            None => Match::None,
        }
    }
}

/// Up to this many exact host names are compared one by one instead of hashed.
const SMALL: usize = 16;

pub struct Router {
    pub hosts: Vec<Vhost>,
    exact: FxMap<usize>,
    /// The same names as `exact` when there are at most [`SMALL`] of them.
    few: Vec<(Box<[u8]>, usize)>,
    /// `*.example.com` as `.example.com`, longest first.
    wild: Vec<(Box<[u8]>, usize)>,
    pub default: usize,
    /// Comanche mode: the default host's `/` route serves `ROOT/HOST/` when it exists.
    pub vhost_dirs: bool,
    /// Some host has a name, or vhost_dirs is on: the `Host` header needs looking at.
    pub named: bool,
    /// The root of the only route, when there is one host with one `/` directory route whose
    /// options are the host's and no fallback (the site `tern DIR` serves): requests need no
    /// matching at all.
    pub plain: Option<RootId>,
    /// The distinct access logs hosts write to.
    pub logs: Vec<(LogTarget, LogFormat)>,
    /// The distinct htpasswd files sites check (a site's `auth.file` indexes this).
    pub htpasswd: Vec<std::path::PathBuf>,
}

impl Router {
    /// Builds the router of `cfg`, registering each route's directory with `fs`. Fails on a
    /// directory that cannot be opened or an error page no static route serves.
    pub fn build<R: Roots>(cfg: &Config, fs: &mut R) -> Result<Router, String> {
        let mut router = Router {
            hosts: Vec::with_capacity(cfg.hosts.len()),
            exact: FxMap::default(),
            few: Vec::new(),
            wild: Vec::new(),
            default: cfg.default_host,
            vhost_dirs: cfg.vhost_dirs,
            named: false,
            plain: None,
            logs: Vec::new(),
            htpasswd: Vec::new(),
        };
        let top_log = cfg.hosts.first().and_then(|h| h.access_log.clone());
        for (i, host) in cfg.hosts.iter().enumerate() {
            let log = host
                .access_log
                .clone()
                .or_else(|| top_log.clone())
                .map(|l| match router.logs.iter().position(|x| x.0 == l.0) {
                    Some(i) => i,
                    None => {
                        router.logs.push(l);
                        router.logs.len() - 1
                    }
                });
            let mut vhost = build_vhost(host, fs)?;
            Rc::make_mut(&mut vhost.site).log = log;
            router.number_htpasswd(Rc::make_mut(&mut vhost.site));
            for r in &mut vhost.routes {
                Rc::make_mut(&mut r.site).log = log;
                router.number_htpasswd(Rc::make_mut(&mut r.site));
                // One Rc for equal options: the handler then skips re-pointing its site.
                if r.site == vhost.site {
                    r.site = Rc::clone(&vhost.site);
                }
            }
            router.hosts.push(vhost);
            for name in std::iter::once(&host.name).chain(&host.aliases) {
                if name.is_empty() {
                    continue;
                }
                match name.strip_prefix('*') {
                    Some(suffix) => router.wild.push((suffix.as_bytes().into(), i)),
                    None => {
                        router.exact.insert(name.as_bytes().into(), i);
                    }
                }
            }
        }
        router.plain = match &router.hosts[..] {
            [h] if h.routes.len() == 1
                && h.root_route == Some(0)
                && !h.https_redirect
                && h.hsts.is_none() =>
            {
                let r = &h.routes[0];
                (r.kind == Kind::Static && r.fallback.is_none() && Rc::ptr_eq(&r.site, &h.site))
                    .then_some(r.root)
            }
            _ => None,
        }
        .filter(|_| !router.vhost_dirs);
        router.named = !router.exact.is_empty() || !router.wild.is_empty() || router.vhost_dirs;
        if router.exact.len() <= SMALL {
            router.few = router.exact.iter().map(|(k, v)| (k.clone(), *v)).collect();
        }
        router.wild.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Ok(router)
    }

    /// One host whose `/` route serves root 0 with `site` (tests and fuzzing).
    pub fn single(site: Site) -> Router {
        let site = Rc::new(site);
        let route = Route {
            prefix: b"/"[..].into(),
            kind: Kind::Static,
            root: 0,
            action: Action::Static { root: 0 },
            site: Rc::clone(&site),
            fallback: None,
            scripts: None,
        };
        Router {
            hosts: vec![Vhost {
                site,
                routes: vec![route],
                root_route: Some(0),
                dirs: FxMap::default(),
                dir_sig: Sig::default(),
                file_sig: Sig::default(),
                files: FxMap::default(),
                https_redirect: false,
                hsts: None,
            }],
            exact: FxMap::default(),
            few: Vec::new(),
            wild: Vec::new(),
            default: 0,
            vhost_dirs: false,
            named: false,
            plain: None,
            logs: Vec::new(),
            htpasswd: Vec::new(),
        }
    }

    /// Points a site's `auth` at its file's index, adding the file if it is new.
    fn number_htpasswd(&mut self, site: &mut Site) {
        if let Some(a) = &mut site.auth {
            a.file = match self.htpasswd.iter().position(|p| *p == a.htpasswd) {
                Some(i) => i,
                None => {
                    self.htpasswd.push(a.htpasswd.clone());
                    self.htpasswd.len() - 1
                }
            };
        }
    }

    /// The host a normalised name (see [`normalize_host`]) is for: exact names first, then
    /// the longest matching wildcard, then the default host.
    #[inline]
    pub fn host(&self, name: Option<&[u8]>) -> usize {
        let Some(name) = name else {
            return self.default;
        };
        if self.exact.len() <= SMALL {
            // A few names: comparing them beats hashing (most sites have a handful).
            for (n, i) in &self.few {
                if words_eq(n, name) {
                    return *i;
                }
            }
        } else if let Some(&i) = self.exact.get(name) {
            return i;
        }
        for (suffix, i) in &self.wild {
            if name.len() > suffix.len() && name.ends_with(suffix) {
                return *i;
            }
        }
        self.default
    }

    /// The host a normalised name names, if any: like [`Router::host`] without falling
    /// back to the default host (off the fast path: TLS's SNI check).
    pub fn named_host(&self, name: &[u8]) -> Option<usize> {
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        lookup_wild(&self.wild, name)
    }

    /// The names of every host, for TLS's certificate choice (which runs where the router's
    /// `Rc`s cannot go).
    pub fn names(&self) -> HostNames {
        HostNames {
            exact: self.exact.clone(),
            wild: self.wild.clone(),
        }
    }

    /// Every root this router uses (to close the others after a reload).
    pub fn roots(&self) -> Vec<RootId> {
        let mut v = Vec::new();
        for h in &self.hosts {
            let sites = std::iter::once(&h.site).chain(h.routes.iter().map(|r| &r.site));
            for s in sites {
                v.extend(s.error_pages.iter().map(|e| e.1));
            }
            for r in &h.routes {
                match r.action {
                    Action::Static { root }
                    | Action::File { root, .. }
                    | Action::Cgi { root }
                    | Action::Store { root, .. }
                    | Action::StoreAll { root, .. } => v.push(root),
                    Action::Redirect { .. } | Action::Proxy { .. } => {}
                }
            }
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

fn build_vhost<R: Roots>(host: &crate::config::Host, fs: &mut R) -> Result<Vhost, String> {
    let mut v = Vhost {
        site: Rc::new(Site::from_options(&host.site)),
        routes: Vec::with_capacity(host.routes.len()),
        root_route: None,
        dirs: FxMap::default(),
        dir_sig: Sig::default(),
        file_sig: Sig::default(),
        files: FxMap::default(),
        https_redirect: host.https.redirect,
        hsts: host.https.hsts.as_ref().map(|v| {
            let mut line = Vec::new();
            crate::http::response::header(&mut line, b"Strict-Transport-Security", v.as_bytes());
            line.into()
        }),
    };
    let mut extra = Vec::new();
    for r in &host.routes {
        let is_dir = r.prefix.ends_with('/');
        let action = match &r.kind {
            RouteKind::Static(path) if is_dir => Action::Static {
                root: add_root(fs, path, &r.site.mime)?,
            },
            RouteKind::Static(path) => {
                let (dir, name) = match (path.parent(), path.file_name()) {
                    (Some(d), Some(n)) => (
                        if d.as_os_str().is_empty() {
                            Path::new(".")
                        } else {
                            d
                        },
                        n,
                    ),
                    _ => {
                        return Err(format!(
                            "route {}: {} is not a file",
                            r.prefix,
                            path.display()
                        ))
                    }
                };
                use std::os::unix::ffi::OsStrExt;
                Action::File {
                    root: add_root(fs, dir, &r.site.mime)?,
                    name: name.as_bytes().into(),
                }
            }
            RouteKind::Redirect { to, status } => Action::Redirect {
                to: to.as_bytes().into(),
                status: *status,
            },
            RouteKind::Store(st) => {
                let root = fs
                    .add_store_root(&st.dir, &r.site.mime)
                    .map_err(|e| format!("store {}: {e}", st.dir.display()))?;
                let dir = crate::sys::fs::open_dir(&st.dir)
                    .map_err(|e| format!("store {}: {e}", st.dir.display()))?;
                if let Some(all) = &st.all {
                    extra.push((
                        all.clone(),
                        root,
                        st.recursive,
                        r.site.clone(),
                        r.prefix.clone(),
                    ));
                }
                Action::Store {
                    root,
                    dir: std::sync::Arc::new(dir),
                    create_dirs: st.create_dirs,
                    recursive: st.recursive,
                }
            }
            RouteKind::Cgi(path) => Action::Cgi {
                root: add_root(fs, path, &r.site.mime)?,
            },
            RouteKind::Proxy(up) => Action::Proxy {
                upstream: Rc::new(up.clone()),
            },
        };
        let scripts = match &r.kind {
            RouteKind::Cgi(dir) => Some(scripts_of(dir, &[])),
            RouteKind::Static(dir) if is_dir && !r.run.is_empty() => Some(scripts_of(dir, &r.run)),
            _ => None,
        };
        let idx = v.routes.len();
        let key: Box<[u8]> = r.prefix.trim_matches('/').as_bytes().into();
        if r.prefix == "/" {
            v.root_route = Some(idx);
        } else if is_dir {
            v.dir_sig.add(&key);
            v.dirs.insert(key, idx);
        } else {
            v.file_sig.add(&key);
            v.files.insert(key, idx);
        }
        let (kind, root) = action_kind(&action);
        let kind = if kind == Kind::Static && scripts.is_some() {
            Kind::Script
        } else {
            kind
        };
        let mut site = Site::from_options(&r.site);
        if kind == Kind::Store {
            store_headers(&mut site);
        }
        v.routes.push(Route {
            prefix: r.prefix.as_bytes().into(),
            kind,
            root,
            action,
            site: Rc::new(site),
            fallback: r.fallback.as_ref().map(|f| f.as_bytes().into()),
            scripts,
        });
    }
    // Each store's `all` path: one more file route, unless a route already has that path.
    for (path, root, recursive, opts, store_prefix) in extra {
        let key: Box<[u8]> = path.trim_matches('/').as_bytes().into();
        if v.files.contains_key(&key) {
            return Err(format!(
                "all = \"{path}\": a route already serves that path"
            ));
        }
        let mut site = Site::from_options(&opts);
        store_headers(&mut site);
        v.file_sig.add(&key);
        v.files.insert(key, v.routes.len());
        v.routes.push(Route {
            prefix: path.as_bytes().into(),
            kind: Kind::StoreAll,
            root,
            action: Action::StoreAll {
                root,
                recursive,
                prefix: store_prefix.as_bytes().into(),
            },
            site: Rc::new(site),
            fallback: None,
            scripts: None,
        });
    }
    // Error pages are URL paths of this host: resolve each through its routes once.
    let mut resolved = Vec::with_capacity(v.routes.len() + 1);
    for opts in std::iter::once(&host.site).chain(host.routes.iter().map(|r| &r.site)) {
        let mut pages = Vec::with_capacity(opts.error_pages.len());
        for (code, path) in &opts.error_pages {
            match resolve_static(&v, path.as_bytes()) {
                Some((root, rel)) => pages.push((*code, root, rel)),
                None => {
                    return Err(format!(
                        "error_page {code} = \"/{path}\": no static route of this host serves it"
                    ))
                }
            }
        }
        resolved.push(pages);
    }
    let mut resolved = resolved.into_iter();
    if let Some(p) = resolved.next() {
        Rc::make_mut(&mut v.site).error_pages = p;
    }
    for (route, p) in v.routes.iter_mut().zip(resolved) {
        Rc::make_mut(&mut route.site).error_pages = p;
    }
    Ok(v)
}

fn action_kind(action: &Action) -> (Kind, RootId) {
    match action {
        Action::Static { root } => (Kind::Static, *root),
        Action::File { root, .. } => (Kind::File, *root),
        Action::Redirect { .. } => (Kind::Redirect, 0),
        Action::Store { root, .. } => (Kind::Store, *root),
        Action::StoreAll { root, .. } => (Kind::StoreAll, *root),
        Action::Cgi { root } => (Kind::Cgi, *root),
        Action::Proxy { .. } => (Kind::Proxy, 0),
    }
}

/// Values of a store are whatever clients sent: never sniffed, never run as the site's
/// script (a stored `text/html` is sandboxed into a unique origin); and no dotfile is served.
fn store_headers(site: &mut Site) {
    // Dotfiles are never keys; under a store they are tern's own (sidecars, uploads in
    // progress) and stay hidden whatever `dotfiles` says.
    site.dotfiles = false;
    let mut h = site.headers.to_vec();
    for (name, value) in [
        (&b"X-Content-Type-Options"[..], &b"nosniff"[..]),
        (b"Content-Security-Policy", b"sandbox"),
    ] {
        let line_starts_with = |n: &[u8]| {
            h.split(|&b| b == b'\n').any(|l| {
                l.len() > n.len() && l[..n.len()].eq_ignore_ascii_case(n) && l[n.len()] == b':'
            })
        };
        if !line_starts_with(name) {
            response::header(&mut h, name, value);
        }
    }
    site.headers = h.into();
}

/// The root and path a URL path (normalised, no leading `/`) names through `v`'s static
/// routes.
fn resolve_static(v: &Vhost, rel: &[u8]) -> Option<(RootId, Box<[u8]>)> {
    let (mut norm, mut scratch) = (Vec::new(), Vec::new());
    normalize(&[b"/", rel].concat(), &mut norm, &mut scratch).ok()?;
    match v.find(&norm, false) {
        Match::Route { route, rest } => match &v.routes[route].action {
            Action::Static { root } => Some((*root, norm[rest..].into())),
            Action::File { root, name } => Some((*root, name.clone())),
            Action::Redirect { .. }
            | Action::Cgi { .. }
            | Action::Proxy { .. }
            | Action::Store { .. }
            | Action::StoreAll { .. } => None,
        },
        _ => None,
    }
}

fn scripts_of(dir: &Path, run: &[(String, String)]) -> Rc<Scripts> {
    Rc::new(Scripts {
        dir: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
        run: run
            .iter()
            .map(|(e, i)| {
                let interp = (!i.is_empty()).then(|| std::path::PathBuf::from(i));
                (e.as_bytes().into(), interp)
            })
            .collect(),
    })
}

fn add_root<R: Roots>(fs: &mut R, path: &Path, mime: &MimeTable) -> Result<RootId, String> {
    fs.add_root(path, mime).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::ENOTDIR) => "not a directory".to_string(),
            Some(libc::ENOENT) => "no such directory".to_string(),
            _ => e.to_string(),
        };
        format!("root {}: {why}", path.display())
    })
}

/// The host names of a [`Router`] without the rest of it: `Send + Sync`, so rustls's
/// certificate resolver can hold it. The same rules: an exact name, else the longest
/// wildcard.
#[derive(Clone, Debug, Default)]
pub struct HostNames {
    exact: FxMap<usize>,
    /// Longest first.
    wild: Vec<(Box<[u8]>, usize)>,
}

impl HostNames {
    /// The host a normalised name names, if any.
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        if let Some(&i) = self.exact.get(name) {
            return Some(i);
        }
        lookup_wild(&self.wild, name)
    }
}

fn lookup_wild(wild: &[(Box<[u8]>, usize)], name: &[u8]) -> Option<usize> {
    wild.iter()
        .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix))
        .map(|(_, i)| *i)
}

/// A `Host` value (already checked as RFC 9110's `uri-host [":" port]` by
/// [`crate::http::request::valid_host`], so ASCII) as the router compares it: the port
/// removed, lower case, one trailing dot removed. `None` for a name too long to be one (such
/// a request goes to the default host).
pub fn normalize_host<'b>(raw: &[u8], buf: &'b mut [u8; MAX_HOST]) -> Option<&'b [u8]> {
    let name = if raw.first() == Some(&b'[') {
        // An IP literal: everything up to and including `]`.
        &raw[..raw
            .iter()
            .position(|&b| b == b']')
            .map_or(raw.len(), |i| i + 1)]
    } else {
        // A reg-name or IPv4 address has no `:` of its own: the last one starts the port.
        // (Names are short: a plain loop beats a vectorised search.)
        &raw[..raw.iter().rposition(|&b| b == b':').unwrap_or(raw.len())]
    };
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > MAX_HOST {
        return None;
    }
    let out = &mut buf[..name.len()];
    out.copy_from_slice(name);
    lower_ascii(out);
    Some(out)
}

/// ASCII lower case, eight bytes at a time (the last word overlapping the one before it;
/// lowering twice changes nothing). Host names are ASCII, which the parser checked (the
/// word arithmetic relies on no byte having its top bit set).
fn lower_ascii(b: &mut [u8]) {
    fn lower8(w: u64) -> u64 {
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let ge_a = w.wrapping_add(0x3f3f_3f3f_3f3f_3f3f); // top bit: byte >= b'A'
        let gt_z = w.wrapping_add(0x2525_2525_2525_2525); // top bit: byte > b'Z'
        w | (((ge_a ^ gt_z) & HIGH & !w) >> 2)
    }
    let n = b.len();
    if n < 8 {
        b.make_ascii_lowercase();
        return;
    }
    let mut at = 0;
    loop {
        let i = at.min(n - 8);
        if let Some(chunk) = b.get_mut(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            chunk.copy_from_slice(&lower8(u64::from_le_bytes(w)).to_le_bytes());
        }
        if i == n - 8 {
            return;
        }
        at += 8;
    }
}

/// Byte equality by eight-byte words (short names: no call into `memcmp`).
#[inline]
pub fn words_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a == b;
    }
    let word = |s: &[u8], i: usize| {
        s.get(i..i + 8)
            .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
    };
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

/// Whether a normalised host name may name a directory under the `vhost_dirs` root: only
/// letters, digits, `-` and `_` in non-empty labels, so `..`, `.git`, `a..b`, `%2e` or an
/// IP literal never do.
pub fn is_dir_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.split(|&b| b == b'.').all(|l| {
            !l.is_empty()
                && l.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The authority of an absolute-form target (`http://host:port/p`), which wins over `Host`
/// (RFC 9112 §3.2.2); `None` for origin-form.
#[inline]
pub fn target_authority(target: &[u8]) -> Option<&[u8]> {
    if target.first() == Some(&b'/') {
        return None;
    }
    let scheme_end = memchr::memmem::find(target, b"://")?;
    let rest = &target[scheme_end + 3..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?' || b == b'#')
        .unwrap_or(rest.len());
    let auth = &rest[..end];
    // userinfo is not allowed in http(s) URIs sent to a server (RFC 9110 §4.2.4).
    (!auth.is_empty() && !auth.contains(&b'@')).then_some(auth)
}

/// The rest of a raw (still percent-encoded) path after its first `segments` segments, for a
/// redirect that must pass it on exactly as received. `None` when the raw path's segments do
/// not map one to one onto the normalised ones (dot segments, empty segments, an encoded
/// `/` or `.`): the caller then re-encodes the normalised rest instead.
pub fn raw_rest(raw: &[u8], segments: usize) -> Option<&[u8]> {
    let body = raw.strip_prefix(b"/")?;
    let mut at = 0;
    let mut count = 0;
    let mut rest = None;
    // Each segment runs to the next `/`; the empty string after a final `/` is none (`/old/`
    // has one segment, as its normalised form `old` has).
    while at < body.len() {
        if count == segments {
            rest = Some(&body[at..]);
        }
        let end = memchr::memchr(b'/', &body[at..]).map_or(body.len(), |i| at + i);
        let seg = &body[at..end];
        if seg.is_empty() || is_dot_like(seg) || has_encoded_slash_or_dot(seg) {
            return None;
        }
        at = end + 1;
        count += 1;
    }
    if count == segments {
        rest = Some(&[][..]);
    }
    rest
}

fn is_dot_like(seg: &[u8]) -> bool {
    seg == b"." || seg == b".."
}

fn has_encoded_slash_or_dot(seg: &[u8]) -> bool {
    seg.windows(3)
        .any(|w| w[0] == b'%' && (w[1] == b'2') && matches!(w[2], b'f' | b'F' | b'e' | b'E'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Host, Route as RouteCfg, SiteOptions};
    use crate::fs::MemFs;
    use crate::fuzzing::{find_model, Found};

    fn route(prefix: &str, kind: RouteKind) -> RouteCfg {
        RouteCfg {
            prefix: prefix.into(),
            kind,
            site: SiteOptions::default(),
            fallback: None,
            run: Vec::new(),
        }
    }

    fn stat(prefix: &str) -> RouteCfg {
        route(prefix, RouteKind::Static(prefix.trim_matches('/').into()))
    }

    fn vhost(prefixes: &[&str]) -> Vhost {
        let host = Host {
            name: String::new(),
            aliases: Vec::new(),
            access_log: None,
            site: SiteOptions::default(),
            routes: prefixes.iter().map(|p| stat(p)).collect(),
            cert: None,
            https: Default::default(),
        };
        build_vhost(&host, &mut MemFs::new()).expect("builds")
    }

    fn found<'a>(v: &'a Vhost, path: &str) -> Option<(&'a str, String)> {
        let dir = path.ends_with('/');
        let rel = path.trim_matches('/');
        match v.find(rel.as_bytes(), dir) {
            Match::Route { route, rest } => Some((
                std::str::from_utf8(&v.routes[route].prefix).unwrap(),
                rel[rest.min(rel.len())..].to_string(),
            )),
            Match::AddSlash => Some(("301", String::new())),
            Match::None => None,
        }
    }

    #[test]
    fn longest_prefix_on_segments() {
        let v = vhost(&["/", "/img/", "/img/big/", "/users", "/a/b/"]);
        let cases = [
            ("/", Some(("/", ""))),
            ("/x.html", Some(("/", "x.html"))),
            ("/img/", Some(("/img/", ""))),
            ("/img/a.png", Some(("/img/", "a.png"))),
            ("/img/big/a.png", Some(("/img/big/", "a.png"))),
            ("/img/bigger/a.png", Some(("/img/", "bigger/a.png"))),
            ("/imgx", Some(("/", "imgx"))),
            ("/imgx/a", Some(("/", "imgx/a"))),
            ("/img", Some(("301", ""))),
            ("/users", Some(("/users", ""))),
            ("/users/", Some(("/", "users"))),
            ("/users/x", Some(("/", "users/x"))),
            ("/a/b/c/d", Some(("/a/b/", "c/d"))),
            ("/a/c", Some(("/", "a/c"))),
        ];
        for (path, want) in cases {
            let got = found(&v, path);
            let got = got.as_ref().map(|(p, r)| (*p, r.as_str()));
            assert_eq!(got, want, "{path}");
        }
        let v = vhost(&["/users", "/docs/"]);
        assert_eq!(found(&v, "/users/"), None);
        assert_eq!(found(&v, "/other"), None);
        assert_eq!(found(&v, "/docs/x").map(|x| x.0), Some("/docs/"));
    }

    proptest::proptest! {
        /// `find` agrees with trying every prefix: the model the route fuzzer checks too.
        #[test]
        fn find_is_the_brute_force_model(
            routes in proptest::collection::vec((segments(0..4), proptest::bool::ANY), 0..8),
            under in proptest::option::of(0..8usize),
            tail in segments(0..4),
            dir: bool,
        ) {
            // Half the paths start with a route's segments, so that they hit routes.
            let mut path = match under {
                Some(i) if !routes.is_empty() => routes[i % routes.len()].0.clone(),
                _ => Vec::new(),
            };
            path.extend(tail);
            let mut prefixes: Vec<String> = Vec::new();
            for (segs, is_dir) in routes {
                let mut p = format!("/{}", segs.join("/"));
                if is_dir && !segs.is_empty() {
                    p.push('/');
                }
                if !prefixes.contains(&p) {
                    prefixes.push(p);
                }
            }
            let v = vhost(&prefixes.iter().map(String::as_str).collect::<Vec<_>>());
            let rel = path.join("/");
            // A normalised path that is empty is the root, which always ends in `/`.
            let dir = dir || rel.is_empty();
            let got = match v.find(rel.as_bytes(), dir) {
                Match::Route { route, rest } => Found::Route(
                    v.routes[route].prefix.to_vec(),
                    rel.as_bytes()[rest..].to_vec(),
                ),
                Match::AddSlash => Found::AddSlash,
                Match::None => Found::None,
            };
            let bytes: Vec<&[u8]> = prefixes.iter().map(|p| p.as_bytes()).collect();
            proptest::prop_assert_eq!(got, find_model(&bytes, rel.as_bytes(), dir));
        }
    }

    /// Path segments from a few that overlap (`/a/` and `/ab/`, `/img/` and `/imgx`) and one
    /// of 31 bytes, so that two make a 63-byte key (the segments of the fuzz harness).
    fn segments(
        n: std::ops::Range<usize>,
    ) -> impl proptest::strategy::Strategy<Value = Vec<&'static str>> {
        let seg = proptest::sample::select(&crate::fuzzing::SEGS[..]);
        proptest::collection::vec(seg, n)
    }

    #[test]
    fn host_names() {
        let mut buf = [0u8; MAX_HOST];
        let cases: [(&str, Option<&str>); 8] = [
            ("Example.COM", Some("example.com")),
            ("example.com:8080", Some("example.com")),
            ("example.com.", Some("example.com")),
            ("example.com.:80", Some("example.com")),
            ("[::1]:8080", Some("[::1]")),
            ("[::1]", Some("[::1]")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            (":80", None),
        ];
        for (raw, want) in cases {
            let got = normalize_host(raw.as_bytes(), &mut buf)
                .map(|n| String::from_utf8_lossy(n).into_owned());
            assert_eq!(got.as_deref(), want, "{raw}");
        }
        assert!(normalize_host(&[b'a'; 300], &mut buf).is_none());
        for bad in [
            "..", ".git", "a..b", "a/b", "%2e%2e", "[::1]", "a.", ".a", "",
        ] {
            assert!(!is_dir_name(bad.as_bytes()), "{bad}");
        }
        for good in ["example.com", "a-b.c_d", "127.0.0.1", "localhost"] {
            assert!(is_dir_name(good.as_bytes()), "{good}");
        }
    }

    #[test]
    fn word_helpers_match_bytewise() {
        let text = b"The-Quick.Brown_Fox:JUMPS.over.the.Lazy.DOG.0123456789.@[`{Z]";
        for start in 0..8 {
            for end in start..text.len() {
                let mut got = text[start..end].to_vec();
                lower_ascii(&mut got);
                assert_eq!(got, text[start..end].to_ascii_lowercase(), "{start}..{end}");
                let s = &text[start..end];
                assert!(words_eq(s, s));
                for at in 0..s.len() {
                    let mut other = s.to_vec();
                    other[at] ^= 1;
                    assert!(!words_eq(s, &other), "{start}..{end} @{at}");
                }
                assert!(!words_eq(s, &text[start..=end]));
            }
        }
    }

    #[test]
    fn authority_of_absolute_form() {
        assert_eq!(target_authority(b"/x"), None);
        assert_eq!(
            target_authority(b"http://a.example:80/x"),
            Some(&b"a.example:80"[..])
        );
        assert_eq!(
            target_authority(b"http://a.example"),
            Some(&b"a.example"[..])
        );
        assert_eq!(
            target_authority(b"http://a.example?q"),
            Some(&b"a.example"[..])
        );
        assert_eq!(target_authority(b"http://u@a.example/"), None);
        assert_eq!(target_authority(b"*"), None);
    }

    #[test]
    fn raw_rest_lines_up_or_refuses() {
        assert_eq!(raw_rest(b"/old/a%20b", 1), Some(&b"a%20b"[..]));
        assert_eq!(raw_rest(b"/old/", 1), Some(&b""[..]));
        assert_eq!(raw_rest(b"/old/x/y/", 1), Some(&b"x/y/"[..]));
        assert_eq!(raw_rest(b"/a/b/c", 0), Some(&b"a/b/c"[..]));
        assert_eq!(raw_rest(b"/a/b/c", 2), Some(&b"c"[..]));
        assert_eq!(raw_rest(b"/old/../x", 1), None);
        assert_eq!(raw_rest(b"//old/x", 1), None);
        assert_eq!(raw_rest(b"/old/%2e%2e/x", 1), None);
        assert_eq!(raw_rest(b"/o%2Fld/x", 1), None);
        assert_eq!(raw_rest(b"/old/a%0d%0ab", 1), Some(&b"a%0d%0ab"[..]));
        assert_eq!(raw_rest(b"/", 0), Some(&b""[..]));
        assert_eq!(raw_rest(b"/old", 1), Some(&b""[..]));
        // Found by the route fuzzer: the empty string after a final `/` counted as a segment,
        // so a path had a rest beneath one segment more than it has.
        assert_eq!(raw_rest(b"/", 1), None);
        assert_eq!(raw_rest(b"/old/", 2), None);
        assert_eq!(raw_rest(b"/a/b/", 3), None);
        assert_eq!(raw_rest(b"/a//", 1), None);
    }

    #[test]
    fn hosts_exact_then_longest_wildcard_then_default() {
        let mk = |name: &str, aliases: &[&str]| Host {
            name: name.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            access_log: None,
            site: SiteOptions::default(),
            routes: vec![stat("/")],
            cert: None,
            https: Default::default(),
        };
        let cfg = Config {
            hosts: vec![
                mk("", &[]),
                mk("example.com", &["www.example.com", "*.example.com"]),
                mk("api.example.com", &["*.api.example.com"]),
            ],
            ..crate::config::load(None, &Default::default()).expect("the defaults")
        };
        let r = Router::build(&cfg, &mut MemFs::new()).expect("builds");
        let h = |n: &str| r.host(Some(n.as_bytes()));
        assert_eq!(h("example.com"), 1);
        assert_eq!(h("www.example.com"), 1);
        assert_eq!(h("x.example.com"), 1);
        assert_eq!(h("api.example.com"), 2);
        assert_eq!(h("v1.api.example.com"), 2);
        assert_eq!(h("other.org"), 0);
        assert_eq!(h("example.com.evil"), 0);
        assert_eq!(r.host(None), 0);
    }
}
