//! The head of a CGI script's response (RFC 3875 §6): header lines ending in LF or CRLF up to
//! an empty line, `Status`, `Content-Type`, `Location` and the rest passed through. Strict:
//! a line that is not `name: value` with a token name and a value of visible characters,
//! spaces and tabs (no obs-fold, no bare CR, no NUL) makes the response invalid, which the
//! server answers with 502. Framing and hop-by-hop fields the script sends are dropped: tern
//! frames the response itself.
use super::{is_tchar, request::parse_decimal};

/// Longest head a script may write before its body (502 past it).
pub const MAX_HEAD: usize = 64 * 1024;

/// A parsed script response head. Spans index the head buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgiHead {
    pub status: u16,
    /// A `Status` line was given (a `Location` without one is a redirect, RFC 3875 §6.2).
    pub explicit_status: bool,
    /// `Location` value span, and whether it is a local path (starts with `/`): without
    /// `Status`, a local redirect that tern serves itself (RFC 3875 §6.2.2).
    pub location: Option<(usize, usize)>,
    pub local_redirect: bool,
    pub content_type: Option<(usize, usize)>,
    pub content_length: Option<u64>,
    /// Other header lines to pass through, as (name, value) spans.
    pub fields: Vec<((usize, usize), (usize, usize))>,
}

/// Where the head ends: the length of the head including its empty line, once `buf` holds
/// one (lines end in LF, optionally preceded by CR).
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(nl) = memchr::memchr(b'\n', &buf[at..]) {
        let line = &buf[at..at + nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        at += nl + 1;
        if line.is_empty() {
            return Some(at);
        }
    }
    None
}

/// Fields the script may not set: tern frames the response and decides persistence.
fn dropped(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 8] = [
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-connection",
        b"date",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn valid_value(v: &[u8]) -> bool {
    v.iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

/// Parses a complete head (as found by [`head_end`]).
pub fn parse(head: &[u8]) -> Result<CgiHead, &'static str> {
    let mut h = CgiHead::default();
    let mut status = None;
    let mut at = 0;
    while at < head.len() {
        let nl = memchr::memchr(b'\n', &head[at..]).ok_or("unterminated header line")?;
        let start = at;
        let mut line = &head[at..at + nl];
        at += nl + 1;
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        if line.is_empty() {
            break;
        }
        let colon = memchr::memchr(b':', line).ok_or("header line without a colon")?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err("invalid header name");
        }
        let raw = &line[colon + 1..];
        let lead = raw.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        let trail = raw
            .iter()
            .rev()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let value = &raw[lead..raw.len() - trail.min(raw.len() - lead)];
        if !valid_value(value) {
            return Err("invalid header value");
        }
        let vs = start + colon + 1 + lead;
        let span = (vs, value.len());
        if name.eq_ignore_ascii_case(b"status") {
            if status.is_some() {
                return Err("two Status lines");
            }
            status = Some(parse_status(value)?);
        } else if name.eq_ignore_ascii_case(b"location") {
            if h.location.is_some() || value.is_empty() {
                return Err("bad Location");
            }
            h.location = Some(span);
            h.local_redirect = value.starts_with(b"/") && !value.starts_with(b"//");
        } else if name.eq_ignore_ascii_case(b"content-type") {
            if h.content_type.is_some() {
                return Err("two Content-Type lines");
            }
            h.content_type = Some(span);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_decimal(value).ok_or("bad Content-Length")?;
            if h.content_length.is_some_and(|m| m != n) {
                return Err("two different Content-Length values");
            }
            h.content_length = Some(n);
        } else if !dropped(name) {
            h.fields.push(((start, colon), span));
        }
    }
    if status.is_none() && h.content_type.is_none() && h.location.is_none() {
        return Err("no Status, Content-Type or Location");
    }
    h.explicit_status = status.is_some();
    h.status = match (status, h.location) {
        (Some(s), _) => s,
        // RFC 3875 §6.2.3: a client redirect without a status is a 302.
        (None, Some(_)) => 302,
        (None, None) => 200,
    };
    Ok(h)
}

/// `Status: 404 Not Found` (the reason phrase is ignored: tern writes its own).
fn parse_status(v: &[u8]) -> Result<u16, &'static str> {
    let digits = v.get(..3).ok_or("bad Status")?;
    if !digits.iter().all(u8::is_ascii_digit) || v.get(3).is_some_and(|&b| b != b' ' && b != b'\t')
    {
        return Err("bad Status");
    }
    let n = digits
        .iter()
        .fold(0u16, |a, d| a * 10 + u16::from(d - b'0'));
    if !(200..=599).contains(&n) {
        return Err("Status out of range");
    }
    Ok(n)
}

/// The fuzz entry: finding and parsing a head never panics, spans stay inside the head,
/// and a parsed head is consistent.
pub fn fuzz_one(data: &[u8]) {
    let Some(end) = head_end(data) else { return };
    let head = &data[..end];
    if let Ok(h) = parse(head) {
        assert!((200..=599).contains(&h.status));
        let inside = |(s, l): (usize, usize)| s + l <= head.len();
        assert!(h.location.is_none_or(inside));
        assert!(h.content_type.is_none_or(inside));
        for (n, v) in &h.fields {
            assert!(inside(*n) && inside(*v));
            let name = &head[n.0..n.0 + n.1];
            assert!(!dropped(name) && !name.is_empty());
            assert!(valid_value(&head[v.0..v.0 + v.1]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<CgiHead, &'static str> {
        let end = head_end(s.as_bytes()).expect("complete");
        parse(&s.as_bytes()[..end])
    }

    #[test]
    fn heads_end_at_an_empty_line_with_lf_or_crlf() {
        assert_eq!(head_end(b"Content-Type: a\n\nbody"), Some(17));
        assert_eq!(head_end(b"Content-Type: a\r\n\r\nbody"), Some(19));
        assert_eq!(head_end(b"Content-Type: a\r\n\nbody"), Some(18));
        assert_eq!(head_end(b"Content-Type: a\r\n"), None);
        assert_eq!(head_end(b"\nbody"), Some(1));
    }

    #[test]
    fn fields_and_statuses() {
        let s = "Status: 404 Not Found\nContent-Type: text/plain\nX-A: 1\nConnection: close\n\n";
        let h = p(s).unwrap();
        assert_eq!(h.status, 404);
        assert_eq!(h.fields.len(), 1, "Connection is dropped");
        let (n, v) = h.fields[0];
        assert_eq!(&s[n.0..n.0 + n.1], "X-A");
        assert_eq!(&s[v.0..v.0 + v.1], "1");
        assert_eq!(p("Content-Type: text/html\r\n\r\n").unwrap().status, 200);
        let r = p("Location: http://example.com/\n\n").unwrap();
        assert_eq!((r.status, r.local_redirect), (302, false));
        assert!(p("Location: /other?x\n\n").unwrap().local_redirect);
        assert!(!p("Location: //evil.example/\n\n").unwrap().local_redirect);
        assert_eq!(
            p("Content-Type: a\nContent-Length: 5\n\n")
                .unwrap()
                .content_length,
            Some(5)
        );
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "garbage\n\n",
            "Content-Type text/html\n\n",
            "X-A: 1\n\n",
            "Status: 99\n\n",
            "Status: 700 Odd\n\n",
            "Status: 2000\n\n",
            "Content-Type: a\n folded\n\n",
            "Content-Type: a\nX:\x01\n\n",
            "Content-Type: a\r\rX: b\n\n",
            "Bad Name: a\n\n",
            "Content-Type: a\nContent-Length: 1\nContent-Length: 2\n\n",
            "Content-Type: a\nContent-Length: -1\n\n",
            "Status: 200\nStatus: 200\n\n",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
