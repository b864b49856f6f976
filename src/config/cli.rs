//! Command-line flags (clap) to [`Config`]. The `--help` text is the reference for every flag
//! and its default; README's flag table mirrors it.
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use super::{Config, Host, Route, RouteKind, SiteOptions};
use crate::conn::{Limits, Millis};
use crate::fs::{CacheConfig, MimeTable};
use crate::log::{Level, LogFormat, LogTarget};

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

/// tern: a small, fast, secure static HTTP server.
///
/// Serves ROOT over HTTP/1.0 and 1.1 on one thread. Prints `listening on http://ADDR:PORT`
/// for each listener once it is ready. SIGTERM or SIGINT: finish responses in flight, then
/// exit 0. SIGHUP or SIGUSR1: reopen log files.
#[derive(Parser, Debug)]
#[command(name = "tern", version, about, long_about)]
struct Cli {
    /// Directory to serve.
    #[arg(default_value = ".")]
    root: PathBuf,

    /// Address to listen on, repeatable: 127.0.0.1:8080, [::1]:8080, 0.0.0.0:80. Port 0 picks
    /// a free port. [default: 127.0.0.1:8080]
    #[arg(short, long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,

    /// Shorthand for --listen 127.0.0.1:PORT.
    #[arg(short, long, value_name = "PORT")]
    port: Option<u16>,

    /// Set SO_REUSEPORT so several tern processes can share a port (one per core).
    #[arg(long)]
    reuse_port: bool,

    /// Index file names tried for a directory, in order; repeatable or comma-separated.
    #[arg(long, value_name = "NAME", value_delimiter = ',', default_values = ["index.html", "index.htm"])]
    index: Vec<String>,

    /// Answer 403 for a directory without an index file instead of listing it.
    #[arg(long)]
    no_listing: bool,

    /// Serve dotfiles and dot-directories (.git/, .env) instead of answering 404.
    #[arg(long)]
    dotfiles: bool,

    /// Seconds a client has to send a complete request head.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    header_timeout: Millis,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_secs)]
    keepalive_timeout: Millis,

    /// Seconds a response may make no progress before the connection is closed.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    send_timeout: Millis,

    /// Seconds responses in flight get to finish after SIGTERM.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    shutdown_timeout: Millis,

    /// Most simultaneous connections; more wait in the kernel's accept queue.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_connections: usize,

    /// Largest header field in bytes (431 past it); a whole head may hold up to four fields
    /// this large, as with nginx's large_client_header_buffers.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024, value_parser = clap::value_parser!(u32).range(256..=1024 * 1024))]
    max_header_size: u32,

    /// Longest request line in bytes (414 past it).
    #[arg(long, value_name = "BYTES", default_value_t = 8 * 1024, value_parser = clap::value_parser!(u32).range(256..=1024 * 1024))]
    max_request_line: u32,

    /// Most requests served on one connection before it is closed.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_requests: u32,

    /// Value of the Server header; an empty string omits the header.
    #[arg(long, value_name = "NAME", default_value = "tern")]
    server_name: String,

    /// Write an access log to PATH (`-` for stdout). Off unless given.
    #[arg(long, value_name = "PATH")]
    access_log: Option<String>,

    /// Access log format.
    #[arg(long, value_enum, default_value = "common")]
    log_format: Format,

    /// Where errors and bad requests are logged: a path, `stderr` or `-` (stdout).
    #[arg(long, value_name = "PATH", default_value = "stderr")]
    error_log: String,

    /// Least severe error-log level written (info includes each rejected request).
    #[arg(long, value_enum, default_value = "info")]
    log_level: LevelArg,

    /// Add or override a MIME type by extension, repeatable: --mime md=text/markdown.
    #[arg(long, value_name = "EXT=TYPE", value_parser = parse_mime)]
    mime: Vec<(String, String)>,

    /// Content-Type for files whose extension is unknown.
    #[arg(long, value_name = "TYPE", default_value = "application/octet-stream")]
    default_type: String,

    /// Cache-Control value added to file responses (200, 206, 304), e.g. "max-age=3600".
    #[arg(long, value_name = "VALUE", value_parser = parse_header_value)]
    cache_control: Option<String>,

    /// Do not serve precompressed variants (F.br, F.zst, F.gz) for Accept-Encoding.
    #[arg(long)]
    no_precompressed: bool,

    /// Requests with more byte ranges than this get the whole file (200).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_ranges: u32,

    /// Serve a file under the root as the body of an error status, repeatable:
    /// --error-page 404=/errors/404.html (the status code is kept).
    #[arg(long, value_name = "CODE=PATH", value_parser = parse_error_page)]
    error_page: Vec<(u16, Vec<u8>)>,

    /// Most entries in the open-file cache (0 turns it off: open and stat on every request).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    file_cache_entries: usize,
}

/// Seconds as `10`, `2.5`, `10s` or `500ms`.
fn parse_secs(s: &str) -> Result<Millis, String> {
    let (num, scale) = if let Some(ms) = s.strip_suffix("ms") {
        (ms, 1.0)
    } else {
        (s.strip_suffix('s').unwrap_or(s), 1000.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.0..=86_400_000.0).contains(&v) || v.is_nan() {
        return Err(format!("`{s}` is out of range"));
    }
    Ok((v * scale).round() as Millis)
}

fn parse_header_value(s: &str) -> Result<String, String> {
    if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("control characters are not allowed in a header value".into());
    }
    Ok(s.trim().to_string())
}

/// `404=/errors/404.html`: a 4xx/5xx status and a root-relative path, normalised like a
/// request path so it can never point outside the root.
fn parse_error_page(s: &str) -> Result<(u16, Vec<u8>), String> {
    let (code, path) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not CODE=PATH"))?;
    let code: u16 = code
        .trim()
        .parse()
        .map_err(|_| format!("`{code}` is not a status code"))?;
    if !(400..=599).contains(&code) {
        return Err(format!("{code} is not an error status (400-599)"));
    }
    let with_slash = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let (mut rel, mut scratch) = (Vec::new(), Vec::new());
    crate::http::path::normalize(with_slash.as_bytes(), &mut rel, &mut scratch)
        .map_err(|e| format!("error page `{path}`: {}", e.reason()))?;
    if rel.is_empty() {
        return Err(format!("error page `{path}` names the root directory"));
    }
    Ok((code, rel))
}

fn parse_mime(s: &str) -> Result<(String, String), String> {
    let (ext, ty) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not EXT=TYPE"))?;
    let ext = ext.trim_start_matches('.');
    if ext.is_empty() || ty.is_empty() || ty.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(format!("`{s}` is not EXT=TYPE"));
    }
    Ok((ext.to_string(), ty.to_string()))
}

/// Parses flags. `--help` and `--version` print and exit 0; a bad flag is one line on
/// stderr and exit status 2.
pub fn parse<I, T>(args: I) -> Config
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => cli.into_config(),
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
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!(
                "tern: {} (see tern --help)",
                first.trim_start_matches("error: ")
            );
            std::process::exit(2);
        }
    }
}

impl Cli {
    fn into_config(self) -> Config {
        let mut listen = self.listen;
        if let Some(port) = self.port {
            listen.push(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
        if listen.is_empty() {
            listen.push(SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)));
        }
        let limits = Limits {
            header_timeout: self.header_timeout,
            keepalive_timeout: self.keepalive_timeout,
            send_timeout: self.send_timeout,
            max_requests: self.max_requests,
            max_request_line: self.max_request_line as usize,
            max_field: self.max_header_size as usize,
            max_head: self.max_request_line as usize + 4 * self.max_header_size as usize,
            ..Limits::default()
        };
        let site = SiteOptions {
            index: self.index.into_iter().filter(|s| !s.is_empty()).collect(),
            listing: !self.no_listing,
            dotfiles: self.dotfiles,
            cache_control: self.cache_control.filter(|v| !v.is_empty()),
            max_ranges: self.max_ranges as usize,
            error_pages: self
                .error_page
                .into_iter()
                .map(|(c, p)| (c, String::from_utf8_lossy(&p).into_owned()))
                .collect(),
            headers: Vec::new(),
            mime: MimeTable::new(self.mime.into_iter().collect(), self.default_type),
        };
        let access_log = self.access_log.map(|p| {
            let format = match self.log_format {
                Format::Common => LogFormat::Common,
                Format::Combined => LogFormat::Combined,
            };
            (LogTarget::parse(&p), format)
        });
        let log_level = match self.log_level {
            LevelArg::Error => Level::Error,
            LevelArg::Warn => Level::Warn,
            LevelArg::Info => Level::Info,
            LevelArg::Debug => Level::Debug,
        };
        let root_route = Route {
            prefix: "/".into(),
            kind: RouteKind::Static(self.root),
            site: site.clone(),
            fallback: None,
        };
        Config {
            source: None,
            listen,
            reuse_port: self.reuse_port,
            limits,
            max_connections: self.max_connections.max(1),
            shutdown_timeout: self.shutdown_timeout,
            error_log: LogTarget::parse(&self.error_log),
            log_level,
            cache: CacheConfig {
                max_entries: self.file_cache_entries,
                precompressed: !self.no_precompressed,
                ..CacheConfig::default()
            },
            server_name: (!self.server_name.is_empty()).then_some(self.server_name),
            vhost_dirs: false,
            hosts: vec![Host {
                name: String::new(),
                aliases: Vec::new(),
                access_log,
                site,
                routes: vec![root_route],
            }],
            default_host: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = parse(["tern"]);
        assert_eq!(c.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(
            c.hosts[0].routes[0].kind,
            RouteKind::Static(PathBuf::from("."))
        );
        assert_eq!(c.limits.header_timeout, 10_000);
        assert_eq!(c.limits.keepalive_timeout, 5_000);
        assert_eq!(c.limits.max_field, 16384);
        assert_eq!(c.limits.max_request_line, 8192);
        assert_eq!(c.limits.max_head, 8192 + 4 * 16384);
        assert_eq!(c.max_connections, 10_000);
        assert!(c.hosts[0].site.listing);
        assert_eq!(c.hosts[0].site.index.len(), 2);
        assert!(c.hosts[0].access_log.is_none());
    }

    #[test]
    fn flags() {
        let c = parse([
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
            "--server-name",
            "",
            "--access-log",
            "-",
            "--log-format",
            "combined",
            "site",
        ]);
        assert_eq!(
            c.listen,
            vec![
                "[::1]:0".parse().unwrap(),
                "127.0.0.1:9000".parse().unwrap()
            ]
        );
        assert_eq!(
            c.hosts[0].site.index,
            vec!["a.html".to_string(), "b.html".to_string()]
        );
        assert!(!c.hosts[0].site.listing);
        assert_eq!(c.limits.header_timeout, 500);
        assert_eq!(c.limits.keepalive_timeout, 2500);
        assert!(c.server_name.is_none());
        assert_eq!(
            c.hosts[0].access_log,
            Some((LogTarget::Stdout, LogFormat::Combined))
        );
        assert_eq!(
            c.hosts[0].routes[0].kind,
            RouteKind::Static(PathBuf::from("site"))
        );
    }

    #[test]
    fn secs() {
        assert_eq!(parse_secs("10"), Ok(10_000));
        assert_eq!(parse_secs("0.25s"), Ok(250));
        assert_eq!(parse_secs("750ms"), Ok(750));
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("-1").is_err());
    }
}
