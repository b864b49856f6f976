//! Command-line flags (clap) to an [`Invocation`]: what to do ([`Mode`]), the configuration
//! file if any, and the flags given explicitly ([`Overrides`]), which [`super::load`] lays
//! over the file and the built-in defaults, at start and again on every reload. The `--help`
//! text is the reference for every flag and its default; README's flag table mirrors it.
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use super::{values, Listen, Reloader};
use crate::conn::Millis;
use crate::log::{Level, LogFormat};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Common,
    Combined,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LevelArg {
    Error,
    Warn,
    Info,
    Debug,
}
/// tern: a small, fast, secure HTTP server.
///
/// Serves ROOT over HTTP/1.0 and 1.1, and HTTPS (--listen-tls), on one thread; a
/// configuration file (-c) adds virtual hosts, routes, CGI, a reverse proxy, a key-value
/// store and Basic auth (README "Configuration"). Prints
/// `listening on http://ADDR:PORT` (or `https://`) for each listener once it is ready. With -c FILE, settings come from a TOML file; a flag
/// given on the command line overrides the file's value (a repeated flag such as --listen
/// replaces the file's list), and relative paths in the file are relative to its directory.
/// SIGTERM or SIGINT: finish responses in flight, then exit 0. SIGHUP: read the
/// configuration file again (keeping the flags), the certificates, and reopen log files. SIGUSR1: reopen log
/// files.
#[derive(Parser, Debug)]
#[command(name = "tern", version, about, long_about)]
struct Cli {
    /// Directory to serve [default: the file's root, or . without -c]
    root: Option<PathBuf>,

    /// Read the configuration from a TOML file (flags given too override it).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Check the configuration (syntax, values, roots) without binding anything, print
    /// `configuration FILE is ok` or every error, and exit 0 or 1.
    #[arg(short = 't', long, requires = "config")]
    check_config: bool,

    /// Print the effective configuration (file, flags and defaults) as TOML and exit.
    #[arg(long, conflicts_with = "check_config")]
    print_config: bool,

    /// Address to listen on, repeatable: 127.0.0.1:8080, [::1]:8080, 0.0.0.0:80 (IPv4 only),
    /// [::]:80 (IPv6 only), 80 or :80 (every interface, IPv4 and IPv6), sd:N or sd:NAME (a
    /// socket passed by systemd); add " reuse_port" for SO_REUSEPORT on that listener. Port 0
    /// picks a free port. [default: 127.0.0.1:8080]
    #[arg(short, long = "listen", value_name = "ADDR:PORT", value_parser = super::listen::parse)]
    listen: Vec<Listen>,

    /// Address to serve HTTPS on, repeatable, in the forms of --listen (sd:N too); needs
    /// --tls-cert and --tls-key (or tls_cert and tls_key in the file). Prints `listening on
    /// https://ADDR:PORT` for each.
    #[arg(long = "listen-tls", value_name = "ADDR:PORT", value_parser = super::listen::parse)]
    listen_tls: Vec<Listen>,

    /// PEM certificate chain (leaf first) of the default certificate.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// Shorthand for --listen 127.0.0.1:PORT.
    #[arg(short, long, value_name = "PORT")]
    port: Option<u16>,

    /// Set SO_REUSEPORT on every listener tern binds, so several tern processes can share a
    /// port (one per core).
    #[arg(long)]
    reuse_port: bool,

    /// Index file names tried for a directory, in order; repeatable or comma-separated.
    /// [default: index.html,index.htm]
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    index: Vec<String>,

    /// Answer 403 for a directory without an index file instead of listing it.
    #[arg(long)]
    no_listing: bool,

    /// Serve dotfiles and dot-directories (.git/, .env) instead of answering 404.
    #[arg(long)]
    dotfiles: bool,

    /// Seconds a client has to send a complete request head (10, 2.5, 500ms). [default: 10]
    #[arg(long, value_name = "SECS", value_parser = values::parse_duration)]
    header_timeout: Option<Millis>,

    /// Seconds an idle keep-alive connection is kept open. [default: 5]
    #[arg(long, value_name = "SECS", value_parser = values::parse_duration)]
    keepalive_timeout: Option<Millis>,

    /// Seconds a response may make no progress before the connection is closed.
    /// [default: 30]
    #[arg(long, value_name = "SECS", value_parser = values::parse_duration)]
    send_timeout: Option<Millis>,

    /// Seconds responses in flight get to finish after SIGTERM. [default: 10]
    #[arg(long, value_name = "SECS", value_parser = values::parse_duration)]
    shutdown_timeout: Option<Millis>,

    /// Most simultaneous connections; more wait in the kernel's accept queue.
    /// [default: 10000]
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,

    /// Largest header field in bytes (16384, 16KiB; 431 past it); a whole head may hold up to
    /// four fields this large, as with nginx's large_client_header_buffers. [default: 16KiB]
    #[arg(long, value_name = "BYTES", value_parser = head_size)]
    max_header_size: Option<u32>,

    /// Longest request line in bytes (414 past it). [default: 8KiB]
    #[arg(long, value_name = "BYTES", value_parser = head_size)]
    max_request_line: Option<u32>,

    /// Most requests served on one connection before it is closed. [default: 10000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_requests: Option<u32>,

    /// Value of the Server header; an empty string omits the header. [default: tern]
    #[arg(long, value_name = "NAME", value_parser = values::header_value)]
    server_name: Option<String>,

    /// Write an access log to PATH (`-` for stdout). Off unless given.
    #[arg(long, value_name = "PATH")]
    access_log: Option<String>,

    /// Access log format. [default: common]
    #[arg(long, value_enum)]
    log_format: Option<Format>,

    /// Where errors and bad requests are logged: a path, `stderr` or `-` (stdout).
    /// [default: stderr]
    #[arg(long, value_name = "PATH")]
    error_log: Option<String>,

    /// Least severe error-log level written (info includes each rejected request).
    /// [default: info]
    #[arg(long, value_enum)]
    log_level: Option<LevelArg>,

    /// Add or override a MIME type by extension, repeatable: --mime md=text/markdown.
    #[arg(long, value_name = "EXT=TYPE", value_parser = values::mime_pair)]
    mime: Vec<(String, String)>,

    /// Content-Type for files whose extension is unknown. [default: application/octet-stream]
    #[arg(long, value_name = "TYPE", value_parser = values::mime_type)]
    default_type: Option<String>,

    /// Cache-Control value added to file responses (200, 206, 304), e.g. "max-age=3600".
    #[arg(long, value_name = "VALUE", value_parser = values::header_value)]
    cache_control: Option<String>,

    /// Do not serve precompressed variants (F.br, F.zst, F.gz) for Accept-Encoding.
    #[arg(long)]
    no_precompressed: bool,

    /// Requests with more byte ranges than this get the whole file (200). [default: 16]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_ranges: Option<u32>,

    /// Serve a file under the root as the body of an error status, repeatable:
    /// --error-page 404=/errors/404.html (the status code is kept).
    #[arg(long, value_name = "CODE=PATH", value_parser = error_page)]
    error_page: Vec<(u16, String)>,

    /// Most entries in the open-file cache (0 turns it off: open and stat on every request).
    /// [default: 10000]
    #[arg(long, value_name = "N")]
    file_cache_entries: Option<usize>,

    /// After binding and opening logs, switch to this user (name or number), with its
    /// supplementary groups.
    #[arg(long, value_name = "USER")]
    user: Option<String>,

    /// Group to switch to (name or number). [default: the user's primary group]
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,

    /// After binding and opening logs, chroot into DIR; roots are then paths inside it.
    #[arg(long, value_name = "DIR")]
    chroot: Option<PathBuf>,

    /// Detach from the terminal once listening (fork, setsid, fork); output to /dev/null.
    #[arg(long)]
    daemon: bool,

    /// Write the pid to PATH and hold it locked; a second instance with it refuses to start.
    #[arg(long, value_name = "PATH")]
    pid_file: Option<PathBuf>,

    /// Do not restrict the process with Landlock after start-up (see README "Landlock").
    #[arg(long)]
    no_sandbox: bool,
}

/// Head limits (`--max-header-size`, `--max-request-line`): 256 bytes to 1 MiB.
pub(super) const HEAD_SIZES: std::ops::RangeInclusive<u64> = 256..=1024 * 1024;

fn head_size(s: &str) -> Result<u32, String> {
    let n = values::parse_size(s)?;
    if !HEAD_SIZES.contains(&n) {
        return Err(format!("{n} is out of range (256 to 1MiB)"));
    }
    Ok(n as u32)
}

fn error_page(s: &str) -> Result<(u16, String), String> {
    let (code, path) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not CODE=PATH"))?;
    values::error_page(code, path)
}

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Serve.
    Run,
    /// `-t`: validate and exit.
    Check,
    /// `--print-config`: print the effective configuration and exit.
    Print,
}

/// A parsed command line.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub mode: Mode,
    /// `-c FILE`.
    pub config: Option<PathBuf>,
    pub overrides: Overrides,
}

impl Invocation {
    /// What a reload needs: the file to read again and the flags to lay over it again.
    /// What SIGHUP reads again. Its paths are made absolute first: a daemon has left the
    /// starting directory by the time it reloads.
    pub fn reloader(&self) -> Reloader {
        let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        let mut ov = self.overrides.clone();
        ov.root = ov.root.as_ref().map(abs);
        Reloader::new(self.config.as_ref().map(abs), ov)
    }
}

/// The settings given explicitly on the command line, already parsed and checked. Each
/// replaces the file's top-level value (lists included); `None` leaves the file's value or the
/// built-in default. Flags set the top level: a `[vhost]` or `[route]` that sets the same
/// option still wins inside it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub(super) root: Option<PathBuf>,
    /// `--listen` and `--port` together.
    pub(super) listen: Option<Vec<Listen>>,
    pub(super) reuse_port: Option<bool>,
    pub(super) listen_tls: Option<Vec<Listen>>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) index: Option<Vec<String>>,
    pub(super) listing: Option<bool>,
    pub(super) dotfiles: Option<bool>,
    pub(super) header_timeout: Option<Millis>,
    pub(super) keepalive_timeout: Option<Millis>,
    pub(super) send_timeout: Option<Millis>,
    pub(super) shutdown_timeout: Option<Millis>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_header_size: Option<u32>,
    pub(super) max_request_line: Option<u32>,
    pub(super) max_requests: Option<u32>,
    pub(super) server_name: Option<String>,
    pub(super) access_log: Option<String>,
    pub(super) log_format: Option<LogFormat>,
    pub(super) error_log: Option<String>,
    pub(super) log_level: Option<Level>,
    pub(super) mime: Option<Vec<(String, String)>>,
    pub(super) default_type: Option<String>,
    pub(super) cache_control: Option<String>,
    pub(super) precompressed: Option<bool>,
    pub(super) max_ranges: Option<u32>,
    pub(super) error_page: Option<Vec<(u16, String)>>,
    pub(super) file_cache_entries: Option<usize>,
    pub(super) user: Option<String>,
    pub(super) group: Option<String>,
    pub(super) chroot: Option<PathBuf>,
    pub(super) daemon: Option<bool>,
    pub(super) pid_file: Option<PathBuf>,
    pub(super) sandbox: Option<bool>,
}

/// Parses flags. `--help` and `--version` print and exit 0; a bad flag is one line on
/// stderr and exit status 2.
pub fn parse<I, T>(args: I) -> Invocation
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match try_parse(args) {
        Ok(inv) => inv,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            let text = e.render().to_string();
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut first = lines.next().unwrap_or("invalid arguments").to_string();
            // "the following required arguments were not provided:" names them below.
            if first.ends_with(':') {
                if let Some(next) = lines.next() {
                    first = format!("{first} {next}");
                }
            }
            eprintln!(
                "tern: {} (see tern --help)",
                first.trim_start_matches("error: ")
            );
            std::process::exit(2);
        }
    }
}

/// [`parse`] without exiting.
pub fn try_parse<I, T>(args: I) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args).map(Cli::into_invocation)
}

/// Some(v) for a non-empty list, else None (not given).
fn given<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

impl Cli {
    fn into_invocation(self) -> Invocation {
        let mode = if self.check_config {
            Mode::Check
        } else if self.print_config {
            Mode::Print
        } else {
            Mode::Run
        };
        let mut listen = self.listen;
        if let Some(port) = self.port {
            listen.push(Listen::addr(SocketAddr::from((Ipv4Addr::LOCALHOST, port))));
        }
        let overrides = Overrides {
            root: self.root,
            listen: given(listen),
            reuse_port: self.reuse_port.then_some(true),
            listen_tls: given(self.listen_tls),
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            index: given(self.index),
            listing: self.no_listing.then_some(false),
            dotfiles: self.dotfiles.then_some(true),
            header_timeout: self.header_timeout,
            keepalive_timeout: self.keepalive_timeout,
            send_timeout: self.send_timeout,
            shutdown_timeout: self.shutdown_timeout,
            max_connections: self.max_connections,
            max_header_size: self.max_header_size,
            max_request_line: self.max_request_line,
            max_requests: self.max_requests,
            server_name: self.server_name,
            access_log: self.access_log,
            log_format: self.log_format.map(|f| match f {
                Format::Common => LogFormat::Common,
                Format::Combined => LogFormat::Combined,
            }),
            error_log: self.error_log,
            log_level: self.log_level.map(|l| match l {
                LevelArg::Error => Level::Error,
                LevelArg::Warn => Level::Warn,
                LevelArg::Info => Level::Info,
                LevelArg::Debug => Level::Debug,
            }),
            mime: given(self.mime),
            default_type: self.default_type,
            cache_control: self.cache_control,
            precompressed: self.no_precompressed.then_some(false),
            max_ranges: self.max_ranges,
            error_page: given(self.error_page),
            file_cache_entries: self.file_cache_entries,
            user: self.user,
            group: self.group,
            chroot: self.chroot,
            daemon: self.daemon.then_some(true),
            pid_file: self.pid_file,
            sandbox: self.no_sandbox.then_some(false),
        };
        Invocation {
            mode,
            config: self.config,
            overrides,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, Config, RouteKind};
    use crate::log::LogTarget;

    fn config(args: &[&str]) -> Config {
        let inv = try_parse(args).expect("flags");
        load(inv.config.as_deref(), &inv.overrides).expect("config")
    }

    #[test]
    fn defaults() {
        let c = config(&["tern"]);
        assert_eq!(
            c.listen,
            vec![Listen::addr("127.0.0.1:8080".parse().unwrap())]
        );
        assert_eq!(
            c.hosts[0].routes[0].kind,
            RouteKind::Static(PathBuf::from("."))
        );
        assert_eq!(c.limits.header_timeout, 10_000);
        assert_eq!(c.limits.keepalive_timeout, 5_000);
        assert_eq!(c.limits.send_timeout, 30_000);
        assert_eq!(c.limits.max_field, 16384);
        assert_eq!(c.limits.max_request_line, 8192);
        assert_eq!(c.limits.max_head, 8192 + 4 * 16384);
        assert_eq!(c.limits.max_requests, 10_000);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.shutdown_timeout, 10_000);
        assert_eq!(c.server_name.as_deref(), Some("tern"));
        assert_eq!(c.error_log, LogTarget::Stderr);
        assert_eq!(c.log_level, Level::Info);
        assert!(c.cache.precompressed);
        assert_eq!(c.cache.max_entries, 10_000);
        assert!(c.hosts[0].site.listing);
        assert_eq!(c.hosts[0].site, crate::config::SiteOptions::default());
        assert!(c.hosts[0].access_log.is_none());
        assert_eq!((c.hosts.len(), c.default_host, c.source), (1, 0, None));
        let inv = try_parse(["tern"]).unwrap();
        assert_eq!((inv.mode, inv.config), (Mode::Run, None));
        assert_eq!(inv.overrides, Overrides::default());
    }

    #[test]
    fn flags() {
        let c = config(&[
            "tern",
            "-l",
            "[::1]:0",
            "-p",
            "9000",
            "--index",
            "a.html,b.html",
            "--no-listing",
            "--header-timeout",
            "500ms",
            "--keepalive-timeout",
            "2.5",
            "--max-header-size",
            "32KiB",
            "--server-name",
            "",
            "--access-log",
            "-",
            "--log-format",
            "combined",
            "--mime",
            "md=text/markdown",
            "--error-page",
            "404=/e/404.html",
            "--no-precompressed",
            "src",
        ]);
        assert_eq!(
            c.listen,
            vec![
                Listen::addr("[::1]:0".parse().unwrap()),
                Listen::addr("127.0.0.1:9000".parse().unwrap())
            ]
        );
        let site = &c.hosts[0].site;
        assert_eq!(site.index, vec!["a.html".to_string(), "b.html".to_string()]);
        assert!(!site.listing);
        assert_eq!(site.error_pages, vec![(404, "e/404.html".to_string())]);
        assert_eq!(
            &*site.mime.content_type(b"a.md"),
            "text/markdown; charset=utf-8"
        );
        assert_eq!(c.limits.header_timeout, 500);
        assert_eq!(c.limits.keepalive_timeout, 2500);
        assert_eq!(c.limits.max_field, 32 * 1024);
        assert!(c.server_name.is_none());
        assert!(!c.cache.precompressed);
        assert_eq!(
            c.hosts[0].access_log,
            Some((LogTarget::Stdout, LogFormat::Combined))
        );
        assert_eq!(
            c.hosts[0].routes[0].kind,
            RouteKind::Static(PathBuf::from("src"))
        );
        // The route carries the host's options.
        assert_eq!(c.hosts[0].routes[0].site, *site);
    }

    #[test]
    fn modes() {
        let inv = try_parse(["tern", "-t", "-c", "x.toml"]).unwrap();
        assert_eq!(
            (inv.mode, inv.config.as_deref()),
            (Mode::Check, Some(std::path::Path::new("x.toml")))
        );
        let inv = try_parse(["tern", "--print-config"]).unwrap();
        assert_eq!(inv.mode, Mode::Print);
        assert!(try_parse(["tern", "-t"]).is_err(), "-t needs -c");
        assert!(try_parse(["tern", "-t", "--print-config", "-c", "x"]).is_err());
        assert!(try_parse(["tern", "--max-header-size", "100"]).is_err());
        assert!(try_parse(["tern", "--server-name", "a\r\nb"]).is_err());
        assert_eq!(inv.reloader().path(), None);
    }

    #[test]
    fn missing_root() {
        let inv = try_parse(["tern", "/nonexistent/tern-root"]).unwrap();
        let errs = load(None, &inv.overrides).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "root \"/nonexistent/tern-root\": no such directory"
        );
    }
}
