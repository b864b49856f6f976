//! Turns a parsed request into a response plan: checks the method, maps the target to a
//! path under the root, and hands files and directories to [`static_files`]. Error
//! responses, the access log and the error log are written here, in one place.
pub mod listing;
pub mod static_files;

use std::net::IpAddr;

use crate::conn::{CloseReason, Exchange, Out, Service};
use crate::fs::Fs;
use crate::http::date::DateCache;
use crate::http::response::{self, HeadCtx, Persist};
use crate::http::{reason_phrase, HttpError, Method, Version};
use crate::log::{Access, AccessLog, ErrorLog, Level};

/// Site settings the handler needs on every request.
#[derive(Clone, Debug)]
pub struct Site {
    /// Index file names tried in order for a directory.
    pub index: Vec<Box<[u8]>>,
    pub listing: bool,
    pub dotfiles: bool,
    /// `Server` header value; `None` omits the header.
    pub server: Option<Box<[u8]>>,
    /// `Cache-Control` value added to file responses (200, 206, 304).
    pub cache_control: Option<Box<[u8]>>,
    /// More ranges than this in one request are answered with the whole file (200).
    pub max_ranges: usize,
    /// Status code to a root-relative path whose file is sent as that error's body.
    pub error_pages: Vec<(u16, Box<[u8]>)>,
}

impl Site {
    pub fn from_options(o: &crate::config::SiteOptions, server: Option<&str>) -> Site {
        Site {
            index: o.index.iter().map(|s| s.as_bytes().into()).collect(),
            listing: o.listing,
            dotfiles: o.dotfiles,
            server: server.map(|s| s.as_bytes().into()),
            cache_control: o.cache_control.as_ref().map(|v| v.as_bytes().into()),
            max_ranges: o.max_ranges,
            error_pages: o
                .error_pages
                .iter()
                .map(|(c, p)| (*c, p.as_bytes().into()))
                .collect(),
        }
    }
}

impl Default for Site {
    fn default() -> Site {
        Site {
            index: vec![b"index.html"[..].into(), b"index.htm"[..].into()],
            listing: true,
            dotfiles: false,
            server: Some(b"tern"[..].into()),
            cache_control: None,
            max_ranges: 16,
            error_pages: Vec::new(),
        }
    }
}

/// A response as written: its status and the body bytes queued (0 for HEAD).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub status: u16,
    pub body: u64,
}

pub struct Handler<F: Fs> {
    pub fs: F,
    pub site: Site,
    date: DateCache,
    pub access_log: Option<AccessLog>,
    pub error_log: Option<ErrorLog>,
    /// Reused buffers: the decoded path, scratch space, listings and generated pages.
    path: Vec<u8>,
    scratch: Vec<u8>,
    entries: Vec<crate::fs::ListEntry>,
    page: Vec<u8>,
    /// State of the xorshift generator for multipart boundaries.
    rng: u64,
    /// `Date` and `Server` lines of every head, formatted once per second.
    common: Vec<u8>,
}

impl<F: Fs> Handler<F> {
    pub fn new(fs: F, site: Site, unix_now: i64) -> Handler<F> {
        let date = DateCache::new(unix_now);
        let mut common = Vec::with_capacity(64);
        HeadCtx::common(&mut common, date.text(), site.server.as_deref());
        Handler {
            common,
            fs,
            site,
            date,
            access_log: None,
            error_log: None,
            path: Vec::with_capacity(256),
            scratch: Vec::with_capacity(256),
            entries: Vec::new(),
            page: Vec::with_capacity(4096),
            rng: seed(),
        }
    }

    /// Moves the clock used for `Date` and the logs (called once per loop turn).
    pub fn set_time(&mut self, unix_secs: i64) {
        if unix_secs != self.date.secs() {
            self.date.update(unix_secs);
            HeadCtx::common(
                &mut self.common,
                self.date.text(),
                self.site.server.as_deref(),
            );
        }
    }

    pub fn unix_now(&self) -> i64 {
        self.date.secs()
    }

    pub fn flush_logs(&mut self) {
        if let Some(l) = &mut self.access_log {
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

    /// Starts a response head with the common headers.
    fn start(&self, out: &mut Out, status: u16, persist: Persist) {
        response::start(&mut out.buf, status, self.head_ctx(), persist);
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
        if let Some((_, path)) = self.site.error_pages.iter().find(|(s, _)| *s == status) {
            if let Ok(crate::fs::Node::File(f)) = self.fs.lookup(path) {
                self.start(out, status, persist);
                out.buf.extend_from_slice(extra);
                response::header(&mut out.buf, b"Content-Type", f.content_type.as_bytes());
                response::content_length(&mut out.buf, f.meta.size);
                response::end(&mut out.buf);
                match &f.body {
                    crate::fs::Body::Mem(d) => out.push_mem(d, 0, d.len()),
                    crate::fs::Body::File(file) => out.push_file(file, 0, f.meta.size),
                }
                return Sent {
                    status,
                    body: if out.is_head_only() { 0 } else { f.meta.size },
                };
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
        Sent {
            status,
            body: if out.is_head_only() {
                0
            } else {
                self.page.len() as u64
            },
        }
    }

    fn route(&mut self, ex: &mut Exchange<'_>, out: &mut Out) -> Sent {
        let target = ex.req.target.get(ex.head);
        match ex.req.method {
            Method::Get | Method::Head => {}
            Method::Options => {
                // RFC 9110 §9.3.7: OPTIONS (also `OPTIONS *`) describes what is allowed.
                self.start(out, 200, ex.persist);
                out.buf
                    .extend_from_slice(b"Allow: GET, HEAD, OPTIONS\r\nContent-Length: 0\r\n\r\n");
                return Sent {
                    status: 200,
                    body: 0,
                };
            }
            Method::Other => {
                ex.persist.keep_alive &= !ex.req.has_body();
                return self.error(out, 501, ex.persist, b"");
            }
            // Known methods that static content does not support, TRACE included (never
            // echoed: it would reflect cookies to scripts).
            _ => return self.error(out, 405, ex.persist, b"Allow: GET, HEAD, OPTIONS\r\n"),
        }
        static_files::serve(self, ex, out, target)
    }
}

impl<F: Fs> Service for Handler<F> {
    fn respond(&mut self, ex: &mut Exchange<'_>, out: &mut Out) {
        let sent = self.route(ex, out);
        if self.access_log.is_some() {
            let head = ex.head;
            let line_end = memchr::memchr(b'\n', head).unwrap_or(head.len());
            let line = head[..line_end]
                .strip_suffix(b"\r")
                .unwrap_or(&head[..line_end]);
            let access = Access {
                peer: ex.peer,
                request_line: line,
                status: sent.status,
                bytes: sent.body,
                referer: ex.req.referer.map(|s| s.get(head)),
                user_agent: ex.req.user_agent.map(|s| s.get(head)),
            };
            let now = self.date.secs();
            if let Some(l) = &mut self.access_log {
                l.write(now, &access);
            }
        }
    }

    fn respond_error(&mut self, err: HttpError, line: &[u8], peer: IpAddr, out: &mut Out) {
        let persist = Persist {
            keep_alive: false,
            version: Version::Http11,
        };
        let sent = self.error(out, err.status(), persist, b"");
        self.log(
            Level::Info,
            format_args!("{peer}: {} {}", sent.status, err.reason()),
        );
        let now = self.date.secs();
        if let Some(l) = &mut self.access_log {
            let access = Access {
                peer,
                request_line: line,
                status: sent.status,
                bytes: sent.body,
                referer: None,
                user_agent: None,
            };
            l.write(now, &access);
        }
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
