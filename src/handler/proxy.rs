//! Proxy routes: the request is re-framed for the upstream, never forwarded as raw bytes.
//! Only a request tern parsed and accepted gets here; its head is rebuilt from the parsed
//! request (method, the normalised path re-encoded and mapped onto the upstream's path, the
//! query as received), end-to-end fields only (hop-by-hop ones and those `Connection`
//! names dropped), `Host`, `X-Forwarded-*` and `Forwarded` set by tern, and the framing
//! tern chose (`Content-Length`, or chunked re-encoded by tern). The rest happens in
//! [`crate::dynamic::proxy`].
use std::net::IpAddr;
use std::rc::Rc;

use super::route::Action;
use super::{Handler, RouteAt, Sent};
use crate::conn::{Await, BodyUse, Exchange, Out};
use crate::dynamic::proxy::{ProxyTask, Request as UpRequest};
use crate::fs::Fs;
use crate::http::request::Framing;
use crate::http::upstream::named_in;
use crate::http::Method;

/// Request fields tern never passes on (it writes its own, or they are hop-by-hop).
fn dropped(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 14] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"host",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Appends `path` (decoded) percent-encoded for a request target: unreserved characters,
/// sub-delims, `:`, `@` and `/` stay, everything else (`%` itself included) is encoded.
fn push_encoded(buf: &mut Vec<u8>, path: &[u8]) {
    for &b in path {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            buf.push(b);
        } else {
            buf.push(b'%');
            buf.push(b"0123456789ABCDEF"[usize::from(b >> 4)]);
            buf.push(b"0123456789ABCDEF"[usize::from(b & 15)]);
        }
    }
}

fn header(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

/// Appends `ip` as text: IPv4 without the formatter (twice on every proxied request, where
/// `Display` cost more than the rest of the request head together).
fn push_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                if o >= 100 {
                    buf.push(b'0' + o / 100);
                }
                if o >= 10 {
                    buf.push(b'0' + o / 10 % 10);
                }
                buf.push(b'0' + o % 10);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(buf, "{v6}");
        }
    }
}

/// Appends the RFC 7239 `for=` value: an IPv6 address is quoted and bracketed.
fn push_forwarded_for(buf: &mut Vec<u8>, ip: IpAddr) {
    if ip.is_ipv6() {
        buf.extend_from_slice(b"\"[");
        push_ip(buf, ip);
        buf.extend_from_slice(b"]\"");
    } else {
        push_ip(buf, ip);
    }
}

pub(super) fn serve<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    query: Option<&[u8]>,
    at: RouteAt,
    trailing_slash: bool,
) -> Sent {
    let router = Rc::clone(&h.router);
    let route = &router.hosts[at.host].routes[at.route];
    let Action::Proxy { upstream } = &route.action else {
        return h.error(out, 500, ex.persist, b"");
    };
    if matches!(ex.req.method, Method::Trace | Method::Connect) {
        return h.not_allowed(out, ex.persist);
    }
    let head = ex.head;
    let site = Rc::clone(&h.site);
    let mut req = Vec::with_capacity(head.len() + 256);
    req.extend_from_slice(ex.req.method_span.get(head));
    req.push(b' ');
    // The normalised path (no dot segments can reach the upstream), re-encoded.
    match &upstream.path {
        Some(p) => {
            let rest = &h.path[h.fs_at..];
            let p = p.as_bytes();
            req.extend_from_slice(p);
            if !rest.is_empty() && !p.ends_with(b"/") {
                req.push(b'/');
            }
            push_encoded(&mut req, rest);
            if trailing_slash && !rest.is_empty() {
                req.push(b'/');
            }
        }
        None => {
            req.push(b'/');
            let path = &h.path[h.url..];
            push_encoded(&mut req, path);
            if trailing_slash && !path.is_empty() {
                req.push(b'/');
            }
        }
    }
    if let Some(q) = query {
        req.push(b'?');
        req.extend_from_slice(q);
    }
    req.extend_from_slice(b" HTTP/1.1\r\n");
    let client_host = ex.req.host.map(|s| s.get(head));
    let host: &[u8] = match (&site.proxy_host, client_host) {
        (Some(ph), _) => ph,
        (None, Some(ch)) => ch,
        (None, None) => upstream.authority.as_bytes(),
    };
    header(&mut req, b"Host", host);
    let lines = crate::http::request::header_lines(head);
    let connection: Vec<&[u8]> = lines
        .clone()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
        .map(|(_, v)| v)
        .collect();
    // `Upgrade` with `Connection: upgrade` is passed on for a protocol the route allows
    // (`proxy_upgrade`, default websocket; a 101 then starts a tunnel): the first protocol
    // the client lists that is allowed. No other protocol switch is.
    let wants_upgrade = ex.req.method == Method::Get
        && connection.iter().any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        });
    let upgrade = wants_upgrade
        .then(|| {
            lines
                .clone()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"upgrade"))
                .flat_map(|(_, v)| v.split(|&b| b == b','))
                .map(<[u8]>::trim_ascii)
                .find(|p| {
                    site.proxy_upgrade
                        .iter()
                        .any(|a| a.as_bytes().eq_ignore_ascii_case(p))
                })
        })
        .flatten();
    if let Some(proto) = upgrade {
        req.extend_from_slice(b"Connection: upgrade\r\n");
        header(&mut req, b"Upgrade", proto);
    }
    let (mut xff, mut xfp, mut xfh, mut fwd) = (Vec::new(), None, None, Vec::new());
    for (name, value) in lines {
        if site.trust_forwarded {
            if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                xff.push(value);
            } else if name.eq_ignore_ascii_case(b"x-forwarded-proto") {
                xfp = Some(value);
            } else if name.eq_ignore_ascii_case(b"x-forwarded-host") {
                xfh = Some(value);
            } else if name.eq_ignore_ascii_case(b"forwarded") {
                fwd.push(value);
            }
        }
        if dropped(name) || named_in(&connection, name) {
            continue;
        }
        header(&mut req, name, value);
    }
    if site.proxy_via {
        // RFC 9110 §7.6.3; a client's own Via lines went up above, ours follows them.
        let v: &[u8] = match ex.req.version {
            crate::http::Version::Http10 => b"1.0 tern",
            crate::http::Version::Http11 => b"1.1 tern",
        };
        header(&mut req, b"Via", v);
    }
    // Passed-on values first (trust_forwarded), then the client's address.
    req.extend_from_slice(b"X-Forwarded-For: ");
    for v in &xff {
        req.extend_from_slice(v);
        req.extend_from_slice(b", ");
    }
    push_ip(&mut req, ex.peer);
    req.extend_from_slice(b"\r\n");
    let proto: &[u8] = match ex.transport {
        crate::conn::Transport::Tls { .. } => b"https",
        crate::conn::Transport::Plain => b"http",
    };
    header(&mut req, b"X-Forwarded-Proto", xfp.unwrap_or(proto));
    if let Some(h) = xfh.or(client_host) {
        header(&mut req, b"X-Forwarded-Host", h);
    }
    req.extend_from_slice(b"Forwarded: ");
    for v in &fwd {
        req.extend_from_slice(v);
        req.extend_from_slice(b", ");
    }
    req.extend_from_slice(b"for=");
    push_forwarded_for(&mut req, ex.peer);
    req.extend_from_slice(b";proto=");
    req.extend_from_slice(proto);
    if let Some(h) = client_host {
        req.extend_from_slice(b";host=\"");
        req.extend_from_slice(h);
        req.push(b'"');
    }
    req.extend_from_slice(b"\r\n");
    let chunked = match ex.req.framing {
        Framing::Length(n) if n > 0 => {
            crate::http::response::content_length(&mut req, n);
            false
        }
        Framing::Chunked => {
            req.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            true
        }
        _ => false,
    };
    req.extend_from_slice(b"\r\n");
    let up = UpRequest {
        head: req,
        chunked,
        has_body: ex.req.has_body(),
        head_method: ex.req.method == Method::Head,
        upgrade: upgrade.is_some(),
        logged: crate::dynamic::Logged::of(ex),
    };
    let how = Await {
        body: BodyUse::Forward,
        max_body: site.max_body,
    };
    let task = ProxyTask::new(Rc::clone(upstream), up, site);
    h.answer_later(how, Box::new(task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_re_encoded() {
        let mut v = Vec::new();
        push_encoded(&mut v, b"a b/%/\xc3\xa9/x;y=1");
        assert_eq!(v, b"a%20b/%25/%C3%A9/x;y=1");
        let text = |ip: &str, f: fn(&mut Vec<u8>, IpAddr)| {
            let mut v = Vec::new();
            f(&mut v, ip.parse().unwrap());
            String::from_utf8(v).unwrap()
        };
        assert_eq!(text("::1", push_forwarded_for), "\"[::1]\"");
        for ip in ["0.0.0.0", "127.0.0.1", "10.20.100.255", "9.99.199.250"] {
            assert_eq!(text(ip, push_ip), ip);
            assert_eq!(text(ip, push_forwarded_for), ip);
        }
        assert!(dropped(b"Transfer-Encoding") && dropped(b"forwarded") && !dropped(b"x-a"));
    }
}
