//! Configuration as plain, validated data: what the server is built from and rebuilt from on
//! every reload. [`cli`] reads the flags, `file` the TOML file (into `raw` structs); [`load`]
//! merges them (flag > file > built-in default, in `build`) and validates the result;
//! `print` writes a [`Config`] back as TOML. Nothing here opens sockets or serves anything:
//! the server turns a [`Config`] into listeners and a router.
mod build;
pub mod cli;
mod file;
pub mod listen;
mod print;
mod raw;
mod service;
mod site;
mod tls;
pub mod values;
mod vhost;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::conn::{Limits, Millis};
use crate::fs::{CacheConfig, MimeTable};
use crate::log::{Level, LogFormat, LogTarget};

pub use cli::{Invocation, Mode, Overrides};
pub use listen::{Listen, ListenAddr, SdSocket};
pub use service::in_chroot;

/// Builds the configuration from a file (if any) and the flags given: at start, for `-t` and
/// `--print-config`, and on every SIGHUP. Without a file this is the configuration of the
/// flags alone, as before configuration files existed. On error, every error found.
pub fn load(file: Option<&Path>, ov: &Overrides) -> Result<Config, Vec<ConfigError>> {
    let (tree, mut errors) = match file {
        Some(path) => file::read(path),
        None => (file::Tree::default(), Vec::new()),
    };
    let files: Vec<Option<PathBuf>> = std::iter::once(None)
        .chain(tree.files.iter().map(|f| Some(f.name.clone())))
        .collect();
    let read: Vec<PathBuf> = (tree.files.iter().map(|f| f.name.clone()))
        .chain(tree.include_dirs.iter().cloned())
        .collect();
    let cfg = build::build(tree, ov, file, &mut errors);
    match cfg {
        Some(mut cfg) if errors.is_empty() => {
            cfg.config_paths = read;
            Ok(cfg)
        }
        _ => Err(sorted(errors, &files)),
    }
}

/// Errors in reading order: the flags' first, then by file (in the order they were read),
/// line and column.
fn sorted(mut errors: Vec<ConfigError>, files: &[Option<PathBuf>]) -> Vec<ConfigError> {
    errors.sort_by_key(|e| (files.iter().position(|f| *f == e.file), e.line, e.col));
    errors.dedup();
    errors
}

/// The effective configuration as TOML that [`load`] accepts again (`--print-config`).
pub fn to_toml(cfg: &Config) -> String {
    print::to_toml(cfg)
}

/// What a reload needs: the file to read again and the flags to apply again over it.
#[derive(Clone, Debug)]
pub struct Reloader {
    path: Option<PathBuf>,
    ov: Overrides,
}

impl Reloader {
    pub fn new(path: Option<PathBuf>, ov: Overrides) -> Reloader {
        Reloader { path, ov }
    }

    /// The configuration file, if there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads the file again; the caller keeps the running configuration on error.
    pub fn load(&self) -> Result<Config, Vec<ConfigError>> {
        load(self.path.as_deref(), &self.ov)
    }
}

/// One problem with the configuration, displayed as `FILE:LINE:COL: message` (or
/// `FILE: message`, or just the message for a flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    /// 1-based; 0 when unknown.
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl ConfigError {
    /// An error with no place in a file (a flag, or the command line's root).
    pub fn plain(msg: impl Into<String>) -> ConfigError {
        ConfigError {
            file: None,
            line: 0,
            col: 0,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
            if self.line > 0 {
                write!(f, "{}:{}:", self.line, self.col)?;
            }
            f.write_str(" ")?;
        }
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ConfigError {}

/// An I/O error in a message's words: `no such file or directory`, without `(os error 2)`.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => s.to_string(),
    }
}

/// Everything one running configuration needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The configuration file this came from (`-c`), read again on SIGHUP.
    pub source: Option<PathBuf>,
    /// Every file read (the main one and its includes) and the directory of each `include`
    /// glob: what a reload reads, so what the sandbox lets it read.
    pub config_paths: Vec<PathBuf>,
    pub listen: Vec<Listen>,
    /// `listen_tls`: the same forms as `listen`, serving HTTPS.
    pub listen_tls: Vec<Listen>,
    /// TLS settings that apply to every TLS listener.
    pub tls: TlsOptions,
    /// `SO_REUSEPORT` on every listener tern binds (a listener's own `reuse_port` adds to it).
    pub reuse_port: bool,
    pub limits: Limits,
    pub max_connections: usize,
    pub shutdown_timeout: Millis,
    pub error_log: LogTarget,
    pub log_level: Level,
    pub cache: CacheConfig,
    /// `Server` header value; `None` omits the header.
    pub server_name: Option<String>,
    /// Comanche mode: a request for host H is served from `ROOT/H/` of the default host's
    /// `/` route when that directory exists.
    pub vhost_dirs: bool,
    /// `hosts[0]` is the top level (named by no host); the others are `[vhost."NAME"]`
    /// blocks in file order.
    pub hosts: Vec<Host>,
    /// Index into `hosts` of the host that requests matching no name go to.
    pub default_host: usize,
    /// `user`, `group`, `chroot`, `daemon`, `pid_file`: applied once at start.
    pub service: Service,
    /// Failed logins from one address (IPv4, or IPv6 /64) per minute before it gets 429.
    pub auth_max_failures: u32,
}

impl Config {
    /// Every directory a `store` route writes, absolute (the CGI routes must not run anything
    /// there; a sandbox must allow writing them, and creating and removing files in them).
    pub fn store_dirs(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self
            .hosts
            .iter()
            .flat_map(|h| &h.routes)
            .filter_map(|r| match &r.kind {
                RouteKind::Store(s) => Some(std::path::absolute(&s.dir).unwrap_or(s.dir.clone())),
                _ => None,
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every htpasswd file some scope reads (for a sandbox's read list).
    pub fn htpasswd_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self
            .hosts
            .iter()
            .flat_map(|h| std::iter::once(&h.site).chain(h.routes.iter().map(|r| &r.site)))
            .filter_map(|s| s.auth.as_ref().map(|a| a.htpasswd.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// How the process sets itself up as a service (start-up only: a reload never changes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// User to switch to after binding and opening logs: a name or a number, as given.
    pub user: Option<String>,
    /// Group to switch to; the user's primary group when not set.
    pub group: Option<String>,
    /// Directory to chroot into; every other path (roots) is then inside it.
    pub chroot: Option<PathBuf>,
    pub daemon: bool,
    pub pid_file: Option<PathBuf>,
    /// Restrict the process with Landlock once set up (`sandbox = false` turns it off).
    pub sandbox: bool,
    /// More paths the sandbox allows: read, read and execute, read and write beneath.
    pub sandbox_read: Vec<PathBuf>,
    pub sandbox_exec: Vec<PathBuf>,
    pub sandbox_write: Vec<PathBuf>,
}

impl Default for Service {
    fn default() -> Service {
        Service {
            user: None,
            group: None,
            chroot: None,
            daemon: false,
            pid_file: None,
            sandbox: true,
            sandbox_read: Vec::new(),
            sandbox_exec: Vec::new(),
            sandbox_write: Vec::new(),
        }
    }
}

/// One virtual host: the names it answers to and its routes.
#[derive(Clone, Debug)]
pub struct Host {
    /// Lower-case name without a trailing dot; empty for the top level.
    pub name: String,
    /// Further names: exact (`www.example.com`) or wildcard (`*.example.com`).
    pub aliases: Vec<String>,
    /// Where this host's requests are logged (the top level's when not set), and how.
    pub access_log: Option<(LogTarget, LogFormat)>,
    /// The host's options (top level merged under it): used for responses that no route
    /// produced (no route matched, or the request could not be parsed).
    pub site: SiteOptions,
    /// The host's routes, prefixes unique; the host's `root` is its `/` route.
    pub routes: Vec<Route>,
    /// The host's certificate (the top level's is the default one), and how plain HTTP and
    /// HTTPS treat it (vhosts inherit the top level's `redirect_to_https` and `hsts`).
    pub cert: Option<crate::tls::CertPair>,
    pub https: HttpsOptions,
}

/// `redirect_to_https` and `hsts` of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpsOptions {
    /// Plain-HTTP requests get 308 to `https://` (except ACME HTTP-01 challenges).
    pub redirect: bool,
    /// `Strict-Transport-Security` value added to HTTPS responses.
    pub hsts: Option<String>,
}

/// The oldest TLS version a handshake may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    V12,
    V13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V12 => "1.2",
            TlsVersion::V13 => "1.3",
        }
    }
}

/// TLS settings shared by every TLS listener.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub min_version: TlsVersion,
}

/// `[route."/prefix/"]`: a URL prefix, what serves it, and the options in force under it.
#[derive(Clone, Debug)]
pub struct Route {
    /// Starts with `/`. Ends with `/` for a directory route (matches itself and everything
    /// under it); otherwise a file route (matches only that exact path).
    pub prefix: String,
    pub kind: RouteKind,
    /// The site options in force for this route, already merged: route over host over top
    /// level over defaults.
    pub site: SiteOptions,
    /// Root-relative path served when nothing else matches under a directory route
    /// (`try_files $uri /index.html`), normalised, without a leading `/`.
    pub fallback: Option<String>,
    /// `run = { ".py" = "/usr/bin/python3", ".cgi" = "" }` of a static directory route:
    /// files with that extension are run as CGI scripts, with that interpreter or (empty)
    /// directly. Sorted by extension.
    pub run: Vec<(String, String)>,
}

/// What a route does. Later kinds (CGI, proxy, store) are further variants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// A directory (directory route) or a single file (file route), absolute or relative to
    /// the working directory, as given (the server canonicalises it when it opens it).
    Static(PathBuf),
    /// `redirect = "URL"`, `status = 301 | 302 | 307 | 308`.
    Redirect { to: String, status: u16 },
    /// `cgi = "DIR"`: a directory whose executable files are run as CGI scripts.
    Cgi(PathBuf),
    /// `proxy = "http://HOST:PORT[/path]"` or `"unix:/path"`: requests are passed to that
    /// upstream (its name resolved when the configuration is loaded).
    Proxy(Upstream),
    /// `store = "DIR"`: a directory that PUT, POST and DELETE write (GET/HEAD as static).
    Store(StoreConfig),
}

/// Where a proxy route sends requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// As configured (for --print-config and logs).
    pub url: String,
    pub addr: UpstreamAddr,
    /// `host[:port]` of the URL (the `Host` sent when `proxy_host` says so).
    pub authority: String,
    /// The URL's path: the route's prefix is replaced by it. `None`: the request's path is
    /// passed whole.
    pub path: Option<String>,
    /// `command = [...]`: the application process tern starts (after dropping privileges),
    /// keeps alive and stops; empty when the upstream runs on its own.
    pub command: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamAddr {
    /// Every address the name resolved to, tried in order.
    Tcp(Vec<std::net::SocketAddr>),
    Unix(PathBuf),
}

/// A write-enabled directory route's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// Create missing intermediate directories of a key (else 409).
    pub create_dirs: bool,
    /// The JSON listing of the store's root lists the keys of sub-directories too.
    pub recursive: bool,
    /// A URL path of the host (`/_all`) that serves the store's JSON listing of keys.
    pub all: Option<String>,
}

/// The options a top level, a host or a route may set; each level's values are merged over
/// the wider one's before they land here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteOptions {
    /// Index file names tried in order for a directory.
    pub index: Vec<String>,
    pub listing: bool,
    pub dotfiles: bool,
    /// `Cache-Control` value added to file responses (200, 206, 304).
    pub cache_control: Option<String>,
    /// More ranges than this in one request are answered with the whole file (200).
    pub max_ranges: usize,
    /// Status code to a URL path (normalised, no leading `/`) whose file is that error's
    /// body; resolved through the host's routes when the server builds its router.
    pub error_pages: Vec<(u16, String)>,
    /// Extra response headers, validated, in a stable order; a name appears once.
    pub headers: Vec<(String, String)>,
    /// Extension to type, with the default type.
    pub mime: MimeTable,
    /// Longest request body a route that reads bodies (CGI, proxy, store) accepts (413).
    pub max_body: u64,
    /// A CGI child silent (no output) for this long: 504, its process group killed.
    pub cgi_timeout: crate::conn::Millis,
    /// CGI children running at once, at most (503 beyond).
    pub cgi_max_processes: usize,
    /// Variables of tern's own environment a CGI child inherits.
    pub cgi_env: Vec<String>,
    /// Protocols a proxy route lets a client switch to (`Upgrade`), lower case.
    pub proxy_upgrade: Vec<String>,
    /// An upstream that has not connected or sent its response head (or any body byte)
    /// for this long: 504 (or, mid-body, the connection closes).
    pub proxy_timeout: crate::conn::Millis,
    /// Idle keep-alive connections kept per upstream address.
    pub proxy_keepalive: usize,
    /// `Host` sent upstream; `None`: the client's.
    pub proxy_host: Option<String>,
    /// Keep (and extend) the client's `X-Forwarded-*` and `Forwarded` instead of replacing.
    pub trust_forwarded: bool,
    /// Add `Via: 1.1 tern` to requests sent upstream and to the responses passed back.
    pub proxy_via: bool,
    /// `allow`/`deny` of the narrowest scope that sets either; `None`: every address.
    pub access: Option<crate::auth::cidr::Rules>,
    /// Basic authentication in force (`auth = false` lifts an inherited one).
    pub auth: Option<AuthConfig>,
    /// The methods `auth` applies to (upper case); `None`: every method.
    pub auth_methods: Option<Vec<String>>,
}

/// `auth = { realm = "...", htpasswd = "FILE" }`: the file checked (absolute, read when
/// the configuration is loaded and again whenever it changes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    pub realm: String,
    pub htpasswd: PathBuf,
}

impl Default for SiteOptions {
    fn default() -> SiteOptions {
        SiteOptions {
            index: vec!["index.html".into(), "index.htm".into()],
            listing: true,
            dotfiles: false,
            cache_control: None,
            max_ranges: 16,
            error_pages: Vec::new(),
            headers: Vec::new(),
            mime: MimeTable::default(),
            max_body: 16 << 20,
            cgi_timeout: 30_000,
            cgi_max_processes: 16,
            cgi_env: vec!["PATH".into()],
            proxy_upgrade: vec!["websocket".into()],
            proxy_timeout: 60_000,
            proxy_keepalive: 64,
            proxy_host: None,
            trust_forwarded: false,
            proxy_via: false,
            access: None,
            auth: None,
            auth_methods: None,
        }
    }
}

#[cfg(test)]
mod tests;
