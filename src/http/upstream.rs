//! An upstream's response as tern reads it when proxying (sans-IO): the head parsed strictly
//! (httparse, no obs-fold, no space before a colon), its framing decided by RFC 9112 §6.3,
//! and anything ambiguous refused, so the client only ever sees a response framed by what
//! the upstream unambiguously said: `Content-Length` together with `Transfer-Encoding`, two
//! different lengths, a transfer coding other than a final `chunked`, or bad chunk framing
//! is an error (502, and the upstream connection is dropped).
use super::body::BodyDecoder;
use super::request::parse_decimal;

/// Longest upstream response head.
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;

/// How the upstream's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes (no length, no chunking): never reusable.
    Close,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamHead {
    pub status: u16,
    /// Bytes of the head, blank line included.
    pub len: usize,
    pub framing: BodyFraming,
    /// The upstream will keep the connection open after this response.
    pub keep_alive: bool,
    /// The `Content-Length` it sent (for HEAD: the length a GET would have).
    pub content_length: Option<u64>,
    /// End-to-end fields to pass on, as (name, value) spans of the head.
    pub fields: Vec<((usize, usize), (usize, usize))>,
}

impl UpstreamHead {
    /// The decoder for the body that follows (`None` for close-delimited bodies).
    pub fn decoder(&self) -> Option<BodyDecoder> {
        match self.framing {
            BodyFraming::None => Some(BodyDecoder::Length(0)),
            BodyFraming::Length(n) => Some(BodyDecoder::Length(n)),
            BodyFraming::Chunked => Some(BodyDecoder::chunked()),
            BodyFraming::Close => None,
        }
    }
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) and those tern writes itself: never passed on.
pub fn hop_by_hop(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 11] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"date",
        b"server",
        b"proxy-authenticate",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Whether `name` is listed in one of the `Connection` values (then it is hop-by-hop too).
pub fn named_in(connection: &[&[u8]], name: &[u8]) -> bool {
    connection.iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
    })
}

fn span_of(base: &[u8], part: &[u8]) -> (usize, usize) {
    (part.as_ptr() as usize - base.as_ptr() as usize, part.len())
}

/// Parses the head at the front of `buf`. `Ok(None)`: incomplete (read more). `head_req`:
/// the request was HEAD (no body follows whatever the fields say). Interim 1xx responses
/// other than 101 are reported as such (status < 200, framing `None`): skip them and parse
/// again after `len`.
/// `upgrade`: the request asked for a protocol switch, so a `101` is the tunnel's start
/// (framing `None`; what follows the head is tunnel data), not an error.
pub fn parse(
    buf: &[u8],
    head_req: bool,
    upgrade: bool,
) -> Result<Option<UpstreamHead>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err("response head too large")
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("malformed response head"),
    };
    let status = resp.code.ok_or("no status")?;
    let http11 = resp.version == Some(1);
    if status == 101 && !upgrade {
        return Err("upgrade not allowed here");
    }
    let mut connection: Vec<&[u8]> = Vec::new();
    let mut length: Option<u64> = None;
    let mut te: Option<&[u8]> = None;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            connection.push(h.value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // A list of identical values is one value (RFC 9110 §8.6); different ones are not.
            for v in h.value.split(|&b| b == b',') {
                let n = parse_decimal(v.trim_ascii()).ok_or("bad Content-Length")?;
                if length.is_some_and(|m| m != n) {
                    return Err("two different Content-Length values");
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if te.is_some() {
                return Err("Transfer-Encoding repeated");
            }
            te = Some(h.value);
        }
    }
    let close = connection.iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
    });
    let keep = connection.iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"keep-alive"))
    });
    let no_body = head_req || status < 200 || status == 204 || status == 304;
    let framing = match (te, length) {
        (Some(_), Some(_)) => return Err("both Content-Length and Transfer-Encoding"),
        _ if no_body => BodyFraming::None,
        (Some(t), None) => {
            if !t.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err("a transfer coding other than chunked");
            }
            if !http11 {
                return Err("Transfer-Encoding in an HTTP/1.0 response");
            }
            BodyFraming::Chunked
        }
        (None, Some(n)) => BodyFraming::Length(n),
        (None, None) => BodyFraming::Close,
    };
    let keep_alive = framing != BodyFraming::Close && !close && (http11 || keep);
    let mut fields = Vec::new();
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if hop_by_hop(name) || named_in(&connection, name) {
            continue;
        }
        fields.push((span_of(buf, name), span_of(buf, h.value)));
    }
    Ok(Some(UpstreamHead {
        status,
        len,
        framing,
        keep_alive,
        content_length: length,
        fields,
    }))
}

/// The fuzz entry: a response head and body framing never panic, spans stay inside the
/// head, passed fields are never hop-by-hop, and a body decoder never reads past its input.
pub fn fuzz_one(data: &[u8]) {
    let (head_req, upgrade, data) = match data.split_first() {
        Some((b, rest)) => (b & 1 == 1, b & 2 == 2, rest),
        None => return,
    };
    let Ok(Some(h)) = parse(data, head_req, upgrade) else {
        return;
    };
    assert!(h.len <= data.len());
    for ((ns, nl), (vs, vl)) in &h.fields {
        assert!(ns + nl <= h.len && vs + vl <= h.len);
        assert!(!hop_by_hop(&data[*ns..ns + nl]));
    }
    if head_req {
        assert_eq!(h.framing, BodyFraming::None);
    }
    if let Some(mut d) = h.decoder() {
        let body = &data[h.len..];
        let mut seen = 0usize;
        if let Ok((n, _)) = d.decode(body, &mut |b| seen += b.len()) {
            assert!(n <= body.len() && seen <= n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Option<UpstreamHead>, &'static str> {
        parse(s.as_bytes(), false, false)
    }

    #[test]
    fn framing_follows_rfc_9112_6_3() {
        let h = p("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.framing, h.keep_alive, h.fields.len()),
            (BodyFraming::Length(5), true, 1)
        );
        let h = p("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, BodyFraming::Chunked);
        let h = p("HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Close, false));
        let h = p("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive, "HTTP/1.0 without keep-alive");
        let h = p("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = p("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, BodyFraming::None);
        let h = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            true,
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, BodyFraming::None, "HEAD");
        let h = p("HTTP/1.1 100 Continue\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.status, h.framing), (100, BodyFraming::None));
        let h = p("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, BodyFraming::Length(3));
        assert_eq!(p("HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
        let up = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let h = parse(up, false, true).unwrap().unwrap();
        assert_eq!((h.status, h.framing), (101, BodyFraming::None));
    }

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_dropped() {
        let s = "HTTP/1.1 200 OK\r\nConnection: x-secret, close\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nServer: up\r\nX-Kept: 2\r\nContent-Length: 0\r\n\r\n";
        let h = p(s).unwrap().unwrap();
        let names: Vec<&str> = h.fields.iter().map(|((a, l), _)| &s[*a..a + l]).collect();
        assert_eq!(names, ["X-Kept"]);
    }

    #[test]
    fn ambiguous_responses_are_refused() {
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
