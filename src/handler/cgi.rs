//! CGI routes (`cgi = "DIR"`, and `run` on a static route): finds the script a path names,
//! beneath the route's root with the same contained lookup as static files, decides what to
//! run (the file itself, or the interpreter mapped to its extension), builds the RFC 3875
//! meta-variables, and hands a [`CgiTask`] to the server (the request then waits in
//! `Phase::Await`). Only regular files found by that lookup are ever run; with `cgi` they
//! must also be executable.
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::rc::Rc;

use super::route::{Kind, Scripts};
use super::{static_files, Handler, RouteAt, Sent};
use crate::conn::{Await, BodyUse, Exchange, Out};
use crate::dynamic::cgi::{CgiTask, Running, Spec};
use crate::dynamic::Logged;
use crate::fs::{Fs, FsError, Node};
use crate::http::path::PathInfo;
use crate::http::request::Framing;
use crate::http::{Method, Version};

/// The script a path names: `rel[..end]` beneath the route's root, run by `interp` (or
/// itself).
struct Found<'a> {
    end: usize,
    interp: Option<&'a Path>,
}

enum Lookup<'a> {
    Script(Found<'a>),
    /// No script on this path (a `run` route serves it as a static file).
    None,
    Status(u16),
}

/// Walks `rel` segment by segment: the first prefix that is a file is the script (the rest
/// is `PATH_INFO`). A `run` route only considers prefixes with a mapped extension.
fn find<'a, F: Fs>(
    fs: &mut F,
    root: crate::fs::RootId,
    rel: &[u8],
    scripts: &'a Scripts,
    all: bool,
) -> Lookup<'a> {
    let ends = rel
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .map(|(i, _)| i)
        .chain(std::iter::once(rel.len()));
    for end in ends {
        let cand = &rel[..end];
        if cand.is_empty() {
            continue;
        }
        let interp = if all {
            None
        } else {
            match scripts.interpreter(cand) {
                Some(i) => i,
                None => continue,
            }
        };
        match fs.lookup(root, cand) {
            Ok(Node::File(_)) => {
                let path = scripts.dir.join(std::ffi::OsStr::from_bytes(cand));
                if interp.is_none() {
                    let exec = std::fs::metadata(&path)
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
                    if !exec {
                        return Lookup::Status(403);
                    }
                }
                return Lookup::Script(Found { end, interp });
            }
            Ok(Node::Dir(_)) => continue,
            Err(FsError::NotFound) if all => return Lookup::Status(404),
            Err(FsError::NotFound) => continue,
            Err(FsError::Forbidden) => return Lookup::Status(403),
            Err(FsError::Busy) => return Lookup::Status(503),
            Err(FsError::Other(_)) => return Lookup::Status(500),
        }
    }
    if all {
        Lookup::Status(404)
    } else {
        Lookup::None
    }
}

/// Serves a request on a `Cgi` or `Script` route.
pub(super) fn serve<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    info: PathInfo,
    query: Option<&[u8]>,
    at: RouteAt,
) -> Sent {
    let router = Rc::clone(&h.router);
    let route = &router.hosts[at.host].routes[at.route];
    let Some(scripts) = route.scripts.as_deref() else {
        return h.error(out, 500, ex.persist, b"");
    };
    let all = route.kind == Kind::Cgi;
    let rel = h.path[h.fs_at..].to_vec();
    if info.hidden && !h.site.dotfiles {
        return h.error(out, 404, ex.persist, b"");
    }
    let found = match find(&mut h.fs, route.root, &rel, scripts, all) {
        Lookup::Script(f) => f,
        Lookup::Status(s) => return h.error(out, s, ex.persist, b""),
        Lookup::None => return static_route(h, ex, out, info, query, at),
    };
    if ex.req.method == Method::Trace {
        return h.not_allowed(out, ex.persist);
    }
    if h.cgi_running.get() >= h.site.cgi_max_processes {
        return h.error(out, 503, ex.persist, b"Retry-After: 1\r\n");
    }
    let spec = spec(h, ex, scripts, &rel, found, info, query);
    let logged = Logged::of(ex);
    let site = Rc::clone(&h.site);
    let how = Await {
        body: BodyUse::Forward,
        max_body: site.max_body,
    };
    let running = Running::new(&h.cgi_running);
    h.answer_later(how, Box::new(CgiTask::new(spec, site, logged, running)))
}

/// A path of a `run` route that names no script: a static file, as on any static route.
fn static_route<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    info: PathInfo,
    query: Option<&[u8]>,
    at: RouteAt,
) -> Sent {
    match ex.req.method {
        Method::Get | Method::Head => static_files::serve(h, ex, out, info, query, at),
        Method::Options => h.options(out, ex.persist),
        _ => h.not_allowed(out, ex.persist),
    }
}

fn os(b: &[u8]) -> OsString {
    std::ffi::OsStr::from_bytes(b).to_os_string()
}

/// The command and the environment of RFC 3875 §4.1.
fn spec<F: Fs>(
    h: &Handler<F>,
    ex: &Exchange<'_>,
    scripts: &Scripts,
    rel: &[u8],
    found: Found<'_>,
    info: PathInfo,
    query: Option<&[u8]>,
) -> Spec {
    let head = ex.head;
    let script_rel = &rel[..found.end];
    let script = scripts.dir.join(std::ffi::OsStr::from_bytes(script_rel));
    // SCRIPT_NAME: the URL path up to the script; PATH_INFO: the rest, decoded.
    let url_start = h.url;
    let mut script_name = b"/".to_vec();
    script_name.extend_from_slice(&h.path[url_start..h.fs_at + found.end]);
    let mut path_info = Vec::new();
    if found.end < rel.len() {
        path_info.extend_from_slice(&rel[found.end..]);
    }
    if info.trailing_slash && (found.end < rel.len() || !path_info.is_empty()) {
        path_info.push(b'/');
    }
    let mut env: Vec<(OsString, OsString)> = Vec::with_capacity(32);
    fn put(env: &mut Vec<(OsString, OsString)>, k: &str, v: &[u8]) {
        env.push((k.into(), os(v)));
    }
    let mut set = |k: &str, v: &[u8]| put(&mut env, k, v);
    set("GATEWAY_INTERFACE", b"CGI/1.1");
    set(
        "SERVER_SOFTWARE",
        concat!("tern/", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    set(
        "SERVER_PROTOCOL",
        match ex.req.version {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        },
    );
    set("REQUEST_METHOD", ex.req.method_span.get(head));
    set("SCRIPT_NAME", &script_name);
    set("SCRIPT_FILENAME", script.as_os_str().as_bytes());
    set("PATH_INFO", &path_info);
    if !path_info.is_empty() {
        let mut t = scripts.dir.as_os_str().as_bytes().to_vec();
        t.extend_from_slice(&path_info);
        set("PATH_TRANSLATED", &t);
    }
    set("QUERY_STRING", query.unwrap_or_default());
    set("REQUEST_URI", ex.req.target.get(head));
    set("DOCUMENT_ROOT", scripts.dir.as_os_str().as_bytes());
    let host = ex.req.host.map(|s| s.get(head));
    let server_name = host.map(strip_port);
    if let Some(name) = server_name {
        set("SERVER_NAME", name);
    }
    if let Framing::Length(n) = ex.req.framing {
        if n > 0 {
            set("CONTENT_LENGTH", n.to_string().as_bytes());
        }
    }
    if let crate::conn::Transport::Tls { .. } = ex.transport {
        set("HTTPS", b"on");
    }
    // The request got here past the guard: when the route's authentication covers its
    // method, it was authenticated (RFC 3875 §4.1.1, §4.1.11); the password never passes.
    if h.site
        .auth
        .as_ref()
        .is_some_and(|a| a.covers(ex.req.method))
    {
        let mut buf = Vec::new();
        let value = ex.req.authorization.map(|s| s.get(head));
        if let Some(Ok((user, _))) = value.map(|v| crate::auth::basic::parse(v, &mut buf)) {
            set("AUTH_TYPE", b"Basic");
            set("REMOTE_USER", user.as_bytes());
        }
    }
    for (name, value) in crate::http::request::header_lines(head) {
        if name.eq_ignore_ascii_case(b"content-type") {
            put(&mut env, "CONTENT_TYPE", value);
            continue;
        }
        if let Some(var) = http_var(name) {
            match env.iter_mut().find(|(k, _)| k.as_bytes() == var.as_bytes()) {
                // Repeated fields are one comma-separated list (RFC 9110 §5.3).
                Some((_, v)) => {
                    v.push(", ");
                    v.push(os(value));
                }
                None => env.push((var.into(), os(value))),
            }
        }
    }
    for name in &h.site.cgi_env {
        if let Some(v) = std::env::var_os(name) {
            env.push((name.into(), v));
        }
    }
    let (program, args) = match found.interp {
        Some(i) => (i.to_path_buf(), vec![script.clone().into_os_string()]),
        None => (script.clone(), Vec::new()),
    };
    Spec {
        program,
        args,
        cwd: script.parent().unwrap_or(&scripts.dir).to_path_buf(),
        env,
        name: String::from_utf8_lossy(&script_name).into_owned(),
        spool: ex.req.framing == Framing::Chunked,
        timeout: h.site.cgi_timeout,
        server_name_known: server_name.is_some(),
        host: host.map(Into::into),
        http10: ex.req.version == Version::Http10,
        head_method: ex.req.method == Method::Head,
    }
}

/// `example.com:8080` -> `example.com`, `[::1]:80` -> `[::1]`.
fn strip_port(h: &[u8]) -> &[u8] {
    match memchr::memrchr(b':', h) {
        Some(i) if !h[i..].contains(&b']') => &h[..i],
        _ => h,
    }
}

/// `HTTP_*` for a request header, or `None` for those never passed: `Authorization` (RFC 3875
/// §4.1.18), `Proxy` (httpoxy: it would become `HTTP_PROXY`), framing and hop-by-hop fields,
/// and any name with `_` (so `X_Foo` cannot pose as `X-Foo`, as nginx does by default).
fn http_var(name: &[u8]) -> Option<String> {
    const NEVER: [&[u8]; 6] = [
        b"authorization",
        b"proxy",
        b"proxy-authorization",
        b"content-length",
        b"transfer-encoding",
        b"connection",
    ];
    if name.contains(&b'_') || NEVER.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        return None;
    }
    let mut v = String::with_capacity(5 + name.len());
    v.push_str("HTTP_");
    for &b in name {
        v.push(if b == b'-' {
            '_'
        } else {
            b.to_ascii_uppercase() as char
        });
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_variables() {
        assert_eq!(
            http_var(b"X-Forwarded-For").as_deref(),
            Some("HTTP_X_FORWARDED_FOR")
        );
        assert_eq!(http_var(b"Proxy"), None, "httpoxy");
        assert_eq!(http_var(b"proxy"), None);
        assert_eq!(http_var(b"Authorization"), None);
        assert_eq!(http_var(b"X_Foo"), None);
        assert_eq!(strip_port(b"a.example:8080"), b"a.example");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
        assert_eq!(strip_port(b"[::1]"), b"[::1]");
        let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-A:  1 \r\n\r\n";
        let v: Vec<_> = crate::http::request::header_lines(head).collect();
        assert_eq!(v, vec![(&b"Host"[..], &b"a"[..]), (b"X-A", b"1")]);
    }
}
