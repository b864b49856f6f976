//! Request heads: find the end of a head in newly read bytes (memchr), parse a complete head
//! once with httparse, and keep what the handler needs as spans of the read buffer, so nothing
//! is copied. Framing rules of RFC 9112 §6 are decided here.
use super::{eq_ignore_case, is_tchar, list_items, trim_ows, HttpError, Method, Version};
use std::mem::MaybeUninit;

/// A byte range of the head buffer: `(start, len)`, cheap to copy and free of lifetimes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub len: u32,
}

impl Span {
    fn of(buf: &[u8], part: &[u8]) -> Span {
        // `part` is a sub-slice of `buf` handed back by httparse.
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        Span {
            start: start as u32,
            len: part.len() as u32,
        }
    }

    /// The bytes this span covers in `buf` (the head it was parsed from).
    pub fn get<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let (s, e) = (self.start as usize, self.start as usize + self.len as usize);
        buf.get(s..e).unwrap_or(&[])
    }
}

/// How the request body is framed (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    #[default]
    None,
    Length(u64),
    Chunked,
}

/// Bits of [`Request::dups`]: list or singleton headers that appeared more than once.
pub mod dup {
    pub const RANGE: u16 = 1;
    pub const IF_MATCH: u16 = 2;
    pub const IF_NONE_MATCH: u16 = 4;
    pub const IF_MODIFIED_SINCE: u16 = 8;
    pub const IF_UNMODIFIED_SINCE: u16 = 16;
    pub const IF_RANGE: u16 = 32;
    pub const ACCEPT_ENCODING: u16 = 64;
    pub const ACCEPT: u16 = 128;
}

/// A parsed request head. Every span indexes the head buffer given to [`parse`].
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: Method,
    pub method_span: Span,
    pub target: Span,
    pub version: Version,
    pub framing: Framing,
    /// `Connection: close` was sent.
    pub conn_close: bool,
    /// `Connection: keep-alive` was sent.
    pub conn_keep_alive: bool,
    pub expect_continue: bool,
    pub host: Option<Span>,
    pub if_match: Option<Span>,
    pub if_none_match: Option<Span>,
    pub if_modified_since: Option<Span>,
    pub if_unmodified_since: Option<Span>,
    pub if_range: Option<Span>,
    pub range: Option<Span>,
    pub accept_encoding: Option<Span>,
    pub accept: Option<Span>,
    pub user_agent: Option<Span>,
    pub referer: Option<Span>,
    /// `Authorization` (the first one; Basic credentials are read from it).
    pub authorization: Option<Span>,
    /// `Content-Type` of the request body (kept with a stored value).
    pub content_type: Option<Span>,
    pub dups: u16,
}

impl Request {
    /// Whether the client allows the connection to stay open (RFC 9112 §9.3).
    pub fn wants_keep_alive(&self) -> bool {
        match self.version {
            Version::Http11 => !self.conn_close,
            Version::Http10 => self.conn_keep_alive && !self.conn_close,
        }
    }

    pub fn has_body(&self) -> bool {
        !matches!(self.framing, Framing::None | Framing::Length(0))
    }
}

/// The header fields of a head [`parse`] accepted (so every line is `name: value`), values
/// trimmed, in order.
pub fn header_lines(head: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> + Clone {
    head.split(|&b| b == b'\n').skip(1).filter_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let colon = memchr::memchr(b':', line)?;
        let value = line[colon + 1..].trim_ascii();
        Some((&line[..colon], value))
    })
}

/// Finds the end of a head. `scanned` is how far earlier calls looked; only bytes past it are
/// searched, so a head arriving one byte at a time costs O(n), not O(n²). Returns the head's
/// length including its blank line. Bare LF line endings are accepted (RFC 9112 §2.2).
pub fn find_head_end(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    let from = (*scanned).min(buf.len());
    let mut at = from;
    // Eight bytes per step: a word with no '\n' costs a handful of instructions (heads are
    // short, so this beats a SIMD search's per-call setup); each newline is then checked.
    while at + 8 <= buf.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&buf[at..at + 8]);
        let x = u64::from_le_bytes(word) ^ 0x0a0a_0a0a_0a0a_0a0a;
        let mut hits = x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080;
        while hits != 0 {
            let nl = at + (hits.trailing_zeros() / 8) as usize;
            hits &= hits - 1;
            // The zero-byte trick can also flag the byte after a real match (a borrow
            // propagates), so each candidate is confirmed.
            if buf[nl] != b'\n' {
                continue;
            }
            match terminator_at(buf, nl) {
                Terminator::End(n) => return Some(n),
                Terminator::Unknown => {
                    *scanned = nl;
                    return None;
                }
                Terminator::No => {}
            }
        }
        at += 8;
    }
    for nl in at..buf.len() {
        if buf[nl] == b'\n' {
            match terminator_at(buf, nl) {
                Terminator::End(n) => return Some(n),
                Terminator::Unknown => {
                    *scanned = nl;
                    return None;
                }
                Terminator::No => {}
            }
        }
    }
    *scanned = buf.len();
    None
}

enum Terminator {
    /// The head ends here, at this length.
    End(usize),
    /// Not a terminator.
    No,
    /// The bytes that would decide have not arrived yet.
    Unknown,
}

/// Whether the newline at `nl` starts the blank line that ends a head ("\n\r\n" or, with
/// bare LF, "\n\n").
fn terminator_at(buf: &[u8], nl: usize) -> Terminator {
    match (buf.get(nl + 1), buf.get(nl + 2)) {
        (Some(b'\n'), _) => Terminator::End(nl + 2),
        (Some(b'\r'), Some(b'\n')) => Terminator::End(nl + 3),
        (Some(b'\r'), None) | (None, _) => Terminator::Unknown,
        _ => Terminator::No,
    }
}

/// Length of the empty lines (CRLF or LF) before a request line, which a server should
/// ignore (RFC 9112 §2.2).
pub fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match &buf[i..] {
            [b'\r', b'\n', ..] => i += 2,
            [b'\n', ..] => i += 1,
            _ => return i,
        }
    }
}

/// Size limits of a request head (nginx's model: a request-line limit, a per-field limit and
/// a total).
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Longest request line, without its line ending: 414 past it (501 if the method alone
    /// is longer than any tern implements).
    pub line: usize,
    /// Longest header field value: 431 past it.
    pub field: usize,
    /// Largest whole head: 431 past it.
    pub total: usize,
}

/// Length of a head's request line without its line ending.
pub fn request_line_len(head: &[u8]) -> usize {
    match memchr::memchr(b'\n', head) {
        Some(nl) if nl > 0 && head[nl - 1] == b'\r' => nl - 1,
        Some(nl) => nl,
        None => head.len(),
    }
}

/// Whether a request line opens with more token bytes than the longest method tern
/// implements, so that whatever follows it is a 501 (RFC 9112 §3: "A server that receives a
/// method longer than any that it implements SHOULD respond with a 501").
pub fn method_too_long(line: &[u8]) -> bool {
    line.get(..=Method::LONGEST)
        .is_some_and(|m| m.iter().all(|&b| is_tchar(b)))
}

/// The answer to a request line longer than `HeadLimits::line`: 501 if its method alone is
/// too long, else 414 (the target is, RFC 9112 §3).
#[cold]
pub fn long_line_error(line: &[u8]) -> HttpError {
    if method_too_long(line) {
        HttpError::NotImplemented
    } else {
        HttpError::UriTooLong
    }
}

/// For an incomplete head that fills its buffer: the error it has already earned, if any.
/// `None` means it may still become a valid head (the buffer can grow up to `total`).
pub fn incomplete_error(pending: &[u8], lim: HeadLimits) -> Option<HttpError> {
    if method_too_long(pending) {
        return Some(HttpError::NotImplemented);
    }
    let line_end = memchr::memchr(b'\n', pending);
    if request_line_len(pending) > lim.line {
        return Some(HttpError::UriTooLong);
    }
    // The field being received: longer than a field may be, allowing for its name.
    let last = memchr::memrchr(b'\n', pending).map_or(0, |i| i + 1);
    if line_end.is_some() && pending.len() - last > lim.field + 1024 {
        return Some(HttpError::HeadTooLarge);
    }
    (pending.len() >= lim.total).then_some(HttpError::HeadTooLarge)
}

const STACK_HEADERS: usize = 64;

/// Parses a complete head (as delimited by [`find_head_end`]); a field value longer than
/// `max_field` is a 431.
pub fn parse(buf: &[u8], max_field: usize) -> Result<Request, HttpError> {
    // Left uninitialised: httparse writes the slots it fills (2 KiB of stores saved per
    // request).
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
    match parse_with(buf, &mut headers, max_field) {
        Err(TooManyHeaders) => {
            // More headers than the stack array holds: rare, so allocate exactly enough.
            let lines = memchr::memchr_iter(b'\n', buf).count();
            let mut many = vec![MaybeUninit::<httparse::Header<'_>>::uninit(); lines];
            parse_with(buf, &mut many, max_field).unwrap_or(Err(HttpError::HeadTooLarge))
        }
        Ok(result) => result,
    }
}

/// The stack array of headers was too small.
struct TooManyHeaders;

fn parse_with<'b>(
    buf: &'b [u8],
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
    max_field: usize,
) -> Result<Result<Request, HttpError>, TooManyHeaders> {
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Complete(_)) => {
            let (Some(method), Some(path), Some(minor)) = (req.method, req.path, req.version)
            else {
                return Ok(Err(HttpError::BadRequest("malformed request line")));
            };
            Ok(request_from(
                buf,
                method,
                path,
                minor,
                req.headers,
                max_field,
            ))
        }
        Ok(httparse::Status::Partial) => Ok(Err(HttpError::BadRequest("incomplete head"))),
        // httparse stops at any version but 1.0 and 1.1, with method and target read.
        Err(httparse::Error::Version) => Ok(other_version(buf, req.method, req.path, max_field)),
        Err(e) => head_error(e),
    }
}

/// The status of a head httparse rejected for a reason other than its version.
fn head_error(e: httparse::Error) -> Result<Result<Request, HttpError>, TooManyHeaders> {
    Ok(Err(match e {
        httparse::Error::TooManyHeaders => return Err(TooManyHeaders),
        httparse::Error::HeaderName => HttpError::BadRequest("invalid header name"),
        httparse::Error::HeaderValue => HttpError::BadRequest("invalid header value"),
        httparse::Error::NewLine => HttpError::BadRequest("invalid line ending"),
        _ => HttpError::BadRequest("malformed request line"),
    }))
}

/// A request line whose version httparse does not accept (cold path). RFC 9112 §2.3:
/// `HTTP-version = "HTTP/" DIGIT "." DIGIT`, case-sensitive, then the line ends. A higher
/// minor of HTTP/1 is understood as HTTP/1.1 (RFC 9110 §6.2); a well-formed version of
/// another major is 505 (RFC 9110 §15.6.6); anything else, such as a space inside the target
/// (`GET /a b HTTP/1.1` leaves `b HTTP/1.1` here), is a malformed request line: 400.
#[cold]
#[inline(never)]
fn other_version(
    buf: &[u8],
    method: Option<&str>,
    path: Option<&str>,
    max_field: usize,
) -> Result<Request, HttpError> {
    let (Some(method), Some(path)) = (method, path) else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    // httparse has read `method SP path SP`; the version starts after that space.
    let at = Span::of(buf, path.as_bytes());
    let rest = buf
        .get(at.start as usize + at.len as usize + 1..)
        .unwrap_or(&[]);
    let (major, fields) = match rest {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor, eol @ ..]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            match eol {
                [b'\r', b'\n', fields @ ..] | [b'\n', fields @ ..] => (*major, fields),
                [b' ' | b'\t', ..] => return Err(HttpError::BadRequest("malformed request line")),
                _ => return Err(HttpError::BadRequest("invalid line ending")),
            }
        }
        _ => return Err(malformed_version(rest)),
    };
    if major != b'1' {
        return Err(HttpError::VersionNotSupported);
    }
    // Its own header array, so the hot `parse_with` keeps its shape; as in `parse`, the
    // heap only past 64 fields.
    let mut stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    match parse_fields(buf, method, path, fields, &mut stack, max_field) {
        Ok(result) => result,
        Err(TooManyHeaders) => {
            let lines = memchr::memchr_iter(b'\n', fields).count();
            let mut many = vec![httparse::EMPTY_HEADER; lines];
            parse_fields(buf, method, path, fields, &mut many, max_field)
                .unwrap_or(Err(HttpError::HeadTooLarge))
        }
    }
}

/// Parses the header fields after an HTTP/1.x request line `other_version` accepted.
fn parse_fields<'b>(
    buf: &'b [u8],
    method: &str,
    path: &str,
    fields: &'b [u8],
    headers: &mut [httparse::Header<'b>],
    max_field: usize,
) -> Result<Result<Request, HttpError>, TooManyHeaders> {
    match httparse::parse_headers(fields, headers) {
        Ok(httparse::Status::Complete((_, parsed))) => {
            Ok(request_from(buf, method, path, 1, parsed, max_field))
        }
        Ok(httparse::Status::Partial) => Ok(Err(HttpError::BadRequest("incomplete head"))),
        Err(e) => head_error(e),
    }
}

/// What is wrong with the rest of a request line that does not end in a version: a space
/// means the line has more than three parts (a space in the target, a doubled or trailing
/// space); otherwise the last part is not a version.
fn malformed_version(rest: &[u8]) -> HttpError {
    let line = &rest[..memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len())];
    HttpError::BadRequest(if memchr::memchr2(b' ', b'\t', line).is_some() {
        "malformed request line"
    } else {
        "malformed HTTP version"
    })
}

/// Applies RFC 9110/9112 rules to what httparse found. Inlined into the hot call in
/// [`parse_with`] as it was when that was its only caller (a call costs ~30 instructions a
/// request); the other copy, in [`parse_fields`] after the cold [`other_version`], rarely
/// runs.
#[inline(always)]
fn request_from(
    buf: &[u8],
    method: &str,
    path: &str,
    minor: u8,
    headers: &[httparse::Header<'_>],
    max_field: usize,
) -> Result<Request, HttpError> {
    let mut out = Request {
        method: Method::parse(method.as_bytes()),
        method_span: Span::of(buf, method.as_bytes()),
        target: Span::of(buf, path.as_bytes()),
        version: if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        },
        ..Request::default()
    };
    if path.is_empty() {
        return Err(HttpError::BadRequest("empty request target"));
    }
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_final = false;
    for h in headers {
        let name = h.name.as_bytes();
        let value = h.value;
        if value.len() > max_field {
            return Err(HttpError::HeadTooLarge);
        }
        let span = Some(Span::of(buf, value));
        macro_rules! single {
            ($field:ident, $bit:expr) => {{
                if out.$field.is_some() {
                    out.dups |= $bit;
                } else {
                    out.$field = span;
                }
            }};
        }
        match (name.len(), name.first().map_or(0, |b| b | 0x20)) {
            (4, b'h') if name_is(name, b"host") => {
                if out.host.is_some() {
                    return Err(HttpError::BadRequest("duplicate Host"));
                }
                if !valid_host(value) {
                    return Err(HttpError::BadRequest("invalid Host"));
                }
                out.host = span;
            }
            (5, b'r') if name_is(name, b"range") => single!(range, dup::RANGE),
            (6, b'a') if name_is(name, b"accept") => single!(accept, dup::ACCEPT),
            // RFC 9110 §10.1.1: only 100-continue is defined; HTTP/1.0 ignores Expect.
            (6, b'e') if name_is(name, b"expect") && out.version == Version::Http11 => {
                if eq_ignore_case(trim_ows(value), b"100-continue") {
                    out.expect_continue = true;
                } else {
                    return Err(HttpError::ExpectationFailed);
                }
            }
            (7, b'r') if name_is(name, b"referer") => out.referer = out.referer.or(span),
            (8, b'i') if name_is(name, b"if-match") => single!(if_match, dup::IF_MATCH),
            (8, b'i') if name_is(name, b"if-range") => single!(if_range, dup::IF_RANGE),
            (10, b'c') if name_is(name, b"connection") => {
                // Almost always a single token: compare it whole before splitting a list.
                if name_is(value, b"keep-alive") {
                    out.conn_keep_alive = true;
                } else if name_is(value, b"close") {
                    out.conn_close = true;
                } else {
                    for token in list_items(value) {
                        if eq_ignore_case(token, b"close") {
                            out.conn_close = true;
                        } else if eq_ignore_case(token, b"keep-alive") {
                            out.conn_keep_alive = true;
                        }
                    }
                }
            }
            (10, b'u') if name_is(name, b"user-agent") => out.user_agent = out.user_agent.or(span),
            (12, b'c') if name_is(name, b"content-type") => {
                out.content_type = out.content_type.or(span)
            }
            (13, b'a') if name_is(name, b"authorization") => {
                out.authorization = out.authorization.or(span)
            }
            (13, b'i') if name_is(name, b"if-none-match") => {
                single!(if_none_match, dup::IF_NONE_MATCH)
            }
            (14, b'c') if name_is(name, b"content-length") => {
                // RFC 9110 §8.6: repeated identical values may be accepted; anything else is
                // a framing error that could be used for smuggling.
                for item in value.split(|&b| b == b',') {
                    let n = parse_decimal(trim_ows(item))
                        .ok_or(HttpError::BadRequest("invalid Content-Length"))?;
                    match content_length {
                        Some(prev) if prev != n => {
                            return Err(HttpError::BadRequest("conflicting Content-Length"))
                        }
                        _ => content_length = Some(n),
                    }
                }
            }
            (15, b'a') if name_is(name, b"accept-encoding") => {
                single!(accept_encoding, dup::ACCEPT_ENCODING)
            }
            (17, b't') if name_is(name, b"transfer-encoding") => {
                // RFC 9112 §6.1: only a final `chunked` frames a request; tern accepts exactly
                // `chunked`, once.
                for coding in value.split(|&b| b == b',') {
                    let coding = trim_ows(coding);
                    if transfer_encoding || !eq_ignore_case(coding, b"chunked") {
                        return Err(HttpError::BadRequest("unsupported Transfer-Encoding"));
                    }
                    transfer_encoding = true;
                    chunked_final = true;
                }
                if !transfer_encoding {
                    return Err(HttpError::BadRequest("empty Transfer-Encoding"));
                }
            }
            (17, b'i') if name_is(name, b"if-modified-since") => {
                single!(if_modified_since, dup::IF_MODIFIED_SINCE)
            }
            (19, b'i') if name_is(name, b"if-unmodified-since") => {
                single!(if_unmodified_since, dup::IF_UNMODIFIED_SINCE)
            }
            _ => {}
        }
    }
    if transfer_encoding {
        if content_length.is_some() {
            // RFC 9112 §6.3 (3): both present is a smuggling attempt.
            return Err(HttpError::BadRequest(
                "Content-Length with Transfer-Encoding",
            ));
        }
        if out.version == Version::Http10 {
            // RFC 9112 §6.1: chunked is not defined for HTTP/1.0; the framing is faulty.
            return Err(HttpError::BadRequest("Transfer-Encoding in HTTP/1.0"));
        }
        if chunked_final {
            out.framing = Framing::Chunked;
        }
    } else if let Some(n) = content_length {
        out.framing = Framing::Length(n);
    }
    if out.version == Version::Http11 && out.host.is_none() {
        return Err(HttpError::BadRequest("missing Host"));
    }
    Ok(out)
}

/// Every value of one header field: usually the single span recorded while parsing; when
/// the field was repeated, all of them (found by scanning the head again, which is rare).
pub enum Values<'a> {
    Absent,
    One([&'a [u8]; 1]),
    Many(Vec<&'a [u8]>),
}

impl<'a> Values<'a> {
    /// `span` is the first value recorded for `name`; `repeated` its bit in [`Request::dups`].
    pub fn of(head: &'a [u8], span: Option<Span>, repeated: bool, name: &[u8]) -> Values<'a> {
        match span {
            None => Values::Absent,
            Some(_) if repeated => Values::Many(all_values(head, name)),
            Some(s) => Values::One([s.get(head)]),
        }
    }

    pub fn as_slice(&self) -> &[&'a [u8]] {
        match self {
            Values::Absent => &[],
            Values::One(v) => v,
            Values::Many(v) => v,
        }
    }
}

/// Every value of header `name` in a head that httparse accepted (so its lines are
/// well-formed `name: value`).
pub fn all_values<'a>(head: &'a [u8], name: &[u8]) -> Vec<&'a [u8]> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = memchr::memchr(b':', line)?;
            eq_ignore_case(&line[..colon], name).then(|| trim_ows(&line[colon + 1..]))
        })
        .collect()
}

/// Case-insensitive equality of a header name or value with a lower-case word made of
/// letters and `-`. Setting bit 5 lower-cases ASCII letters and leaves `-`; the only other
/// byte it maps onto one of those is CR (onto `-`), which httparse never lets into a name or
/// a value. So one OR per byte is exact here, where `eq_ignore_ascii_case` converts both
/// sides. The OR is applied eight (or four) bytes at a time, with the last word overlapping
/// the one before it, so a typical name costs two or three compares instead of a loop.
#[inline]
fn name_is(name: &[u8], lower: &[u8]) -> bool {
    let n = name.len();
    if n != lower.len() {
        return false;
    }
    let w8 = |s: &[u8], i: usize| {
        s.get(i..i + 8)
            .map(|w| u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
    };
    let w4 = |s: &[u8], i: usize| {
        s.get(i..i + 4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    if n >= 8 {
        let same = |i| w8(name, i).map(|w| w | 0x2020_2020_2020_2020) == w8(lower, i);
        let mut i = 0;
        while i + 8 < n {
            if !same(i) {
                return false;
            }
            i += 8;
        }
        same(n - 8)
    } else if n >= 4 {
        let same = |i| w4(name, i).map(|w| w | 0x2020_2020) == w4(lower, i);
        same(0) && same(n - 4)
    } else {
        name.iter().zip(lower).all(|(&a, &b)| a | 0x20 == b)
    }
}

/// A non-negative decimal with no sign, spaces or overflow (RFC 9110 §8.6).
pub fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| match b {
        b'0'..=b'9' => acc.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Bytes allowed in a reg-name or IPv4 host: unreserved, pct-encoded and sub-delims
/// (RFC 3986 §3.2.2), as a table so validation is one load per byte.
static HOST_BYTE: [bool; 256] = super::ascii_table(b"-._~%!$&'()*+,;=");

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2): a bracketed IPv6 literal or a reg-name /
/// IPv4 of unreserved, pct-encoded and sub-delim characters, then an optional numeric port.
pub fn valid_host(v: &[u8]) -> bool {
    let port = if let Some(rest) = v.strip_prefix(b"[") {
        let Some(close) = memchr::memchr(b']', rest) else {
            return false;
        };
        let literal = &rest[..close];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        &rest[close + 1..]
    } else {
        let end = v
            .iter()
            .position(|&b| !HOST_BYTE[b as usize])
            .unwrap_or(v.len());
        if end == 0 {
            return false;
        }
        &v[end..]
    };
    match port {
        [] => true,
        [b':', digits @ ..] => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Just;

    fn head(s: &str) -> Result<Request, HttpError> {
        parse(s.as_bytes(), 16384)
    }

    #[test]
    fn finds_head_end_incrementally() {
        let full = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
        for cut in 0..full.len() {
            let mut scanned = 0;
            let first = find_head_end(&full[..cut], &mut scanned);
            let again = first.or_else(|| find_head_end(full, &mut scanned));
            assert_eq!(again, Some(27), "cut at {cut}");
        }
        let mut s = 0;
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\nX", &mut s), Some(16));
        let mut s = 0;
        assert_eq!(
            find_head_end(b"GET / HTTP/1.0\r\nA: b\n\r\n", &mut s),
            Some(23)
        );
    }

    #[test]
    fn a_byte_after_a_newline_is_not_a_newline() {
        // Found by the head fuzzer: "\n\x0b\n" has no blank line, but the SWAR scan's zero-
        // byte trick also flags the \x0b right after a real '\n'.
        let input = b"GETs c     \x12  \n\x0b\n";
        assert_eq!(find_head_end(input, &mut 0), None);
        for len in 0..=24 {
            let mut buf = vec![b'a'; len];
            buf.extend_from_slice(b"\n\x0b\nX");
            assert_eq!(find_head_end(&buf, &mut 0), None, "at offset {len}");
        }
    }

    /// The plain definition: the first "\n\n" or "\n\r\n".
    fn naive_head_end(buf: &[u8]) -> Option<usize> {
        (0..buf.len()).find_map(|i| match &buf[i..] {
            [b'\n', b'\n', ..] => Some(i + 2),
            [b'\n', b'\r', b'\n', ..] => Some(i + 3),
            _ => None,
        })
    }

    #[test]
    fn name_is_matches_bytewise_or_at_every_length() {
        let lower = b"abcdefghijklmnopqrstuvwxyz-abcdefghijklmn";
        for n in 0..lower.len() {
            let l = &lower[..n];
            let upper: Vec<u8> = l.to_ascii_uppercase();
            assert!(name_is(l, l) && name_is(&upper, l), "{n}");
            for at in 0..n {
                let mut other = upper.clone();
                other[at] = b'x' ^ (other[at] & 1) ^ 0x5;
                let bytewise = other.iter().zip(l).all(|(&a, &b)| a | 0x20 == b);
                assert_eq!(name_is(&other, l), bytewise, "{n} {at}");
            }
            assert!(!name_is(&lower[..n + 1], l));
        }
    }

    proptest::proptest! {
        #[test]
        fn head_end_matches_the_naive_search(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                Just(b'\n'), Just(b'\r'), Just(0x0b_u8), Just(0x09_u8), Just(b'a'), proptest::num::u8::ANY
            ], 0..80),
            cut in 0usize..80,
        ) {
            let whole = find_head_end(&bytes, &mut 0);
            proptest::prop_assert_eq!(whole, naive_head_end(&bytes));
            let mut scanned = 0;
            let cut = cut.min(bytes.len());
            let split = find_head_end(&bytes[..cut], &mut scanned).or_else(|| find_head_end(&bytes, &mut scanned));
            proptest::prop_assert_eq!(split, whole);
        }
    }

    #[test]
    fn strips_leading_empty_lines() {
        assert_eq!(leading_empty_lines(b"\r\n\r\n\nGET"), 5);
        assert_eq!(leading_empty_lines(b"GET"), 0);
        assert_eq!(leading_empty_lines(b"\r"), 0);
    }

    #[test]
    fn parses_spans_without_copying() {
        let buf = b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nRange: bytes=0-1\r\n\r\n";
        let r = parse(buf, 16384).unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target.get(buf), b"/a?b");
        assert_eq!(r.host.unwrap().get(buf), b"example.com");
        assert_eq!(r.range.unwrap().get(buf), b"bytes=0-1");
        assert_eq!(r.framing, Framing::None);
        assert!(r.wants_keep_alive());
    }

    #[test]
    fn keep_alive_rules() {
        let r = head("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!r.wants_keep_alive());
        let r = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").unwrap();
        assert!(r.wants_keep_alive());
        let r = head("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, close\r\n\r\n").unwrap();
        assert!(!r.wants_keep_alive());
    }

    #[test]
    fn table_of_bad_heads() {
        use HttpError::*;
        let cases: &[(&str, &str, HttpError)] = &[
            ("no host", "GET / HTTP/1.1\r\n\r\n", BadRequest("missing Host")),
            ("dup host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", BadRequest("duplicate Host")),
            ("bad host", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", BadRequest("invalid Host")),
            ("empty host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", BadRequest("invalid Host")),
            // RFC 9112 §2.3: a well-formed version of another major is 505 ...
            ("http2", "GET / HTTP/2.0\r\n\r\n", VersionNotSupported),
            ("http3.1", "GET / HTTP/3.1\r\nHost: a\r\n\r\n", VersionNotSupported),
            ("http0.9", "GET / HTTP/0.9\r\n\r\n", VersionNotSupported),
            ("http2 bare lf", "GET / HTTP/2.0\nHost: a\n\n", VersionNotSupported),
            // ... and a request line that is not `method SP target SP HTTP/D.D` is 400.
            ("garbage version", "GET / HTTX/1.1\r\n\r\n", BadRequest("malformed HTTP version")),
            ("no minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", BadRequest("malformed HTTP version")),
            ("no minor digit", "GET / HTTP/1.\r\nHost: a\r\n\r\n", BadRequest("malformed HTTP version")),
            ("http2 no minor", "GET / HTTP/2\r\nHost: a\r\n\r\n", BadRequest("malformed HTTP version")),
            ("lowercase", "GET / http/1.1\r\nHost: a\r\n\r\n", BadRequest("malformed HTTP version")),
            ("lowercase 1.2", "GET / http/1.2\r\nHost: a\r\n\r\n", BadRequest("malformed HTTP version")),
            ("two-digit major", "GET / HTTP/10.1\r\nHost: a\r\n\r\n", BadRequest("malformed HTTP version")),
            // httparse reads `HTTP/1.1`, then expects the line to end.
            ("two-digit minor", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", BadRequest("invalid line ending")),
            ("letter minor", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", BadRequest("malformed HTTP version")),
            ("no version", "GET /\r\nHost: a\r\n\r\n", BadRequest("malformed request line")),
            ("space in target", "GET /pa th HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest("malformed request line")),
            ("space in target 2.0", "GET /pa th HTTP/2.0\r\nHost: a\r\n\r\n", BadRequest("malformed request line")),
            ("two spaces before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest("malformed request line")),
            ("two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest("malformed request line")),
            ("leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest("malformed request line")),
            ("tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest("malformed request line")),
            ("tab before version", "GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", BadRequest("malformed request line")),
            ("trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", BadRequest("invalid line ending")),
            ("trailing space 1.2", "GET / HTTP/1.2 \r\nHost: a\r\n\r\n", BadRequest("malformed request line")),
            ("1.2 lone CR", "GET / HTTP/1.2\rHost: a\r\n\r\n", BadRequest("invalid line ending")),
            ("1.2 bad header", "GET / HTTP/1.2\r\nHost: a\r\nBad[: x\r\n\r\n", BadRequest("invalid header name")),
            ("1.2 no host", "GET / HTTP/1.2\r\n\r\n", BadRequest("missing Host")),
            ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", BadRequest("invalid header name")),
            ("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", BadRequest("invalid header name")),
            ("bad name", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", BadRequest("invalid header name")),
            ("cl letters", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1a\r\n\r\n", BadRequest("invalid Content-Length")),
            ("cl sign", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", BadRequest("invalid Content-Length")),
            ("cl overflow", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", BadRequest("invalid Content-Length")),
            ("cl differ", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", BadRequest("conflicting Content-Length")),
            ("cl list differ", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", BadRequest("conflicting Content-Length")),
            ("cl+te", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", BadRequest("Content-Length with Transfer-Encoding")),
            ("te gzip", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", BadRequest("unsupported Transfer-Encoding")),
            ("te chunked twice", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", BadRequest("unsupported Transfer-Encoding")),
            ("te not final", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", BadRequest("unsupported Transfer-Encoding")),
            ("te 1.0", "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", BadRequest("Transfer-Encoding in HTTP/1.0")),
            ("expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n", ExpectationFailed),
            ("lone CR", "GET / HTTP/1.1\rHost: a\r\n\r\n", BadRequest("invalid line ending")),
        ];
        for (name, input, want) in cases {
            assert_eq!(head(input).err(), Some(*want), "{name}");
        }
    }

    #[test]
    fn table_of_good_heads() {
        let cases: &[(&str, &str, Framing)] = &[
            ("plain", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", Framing::None),
            ("bare lf", "GET / HTTP/1.1\nHost: a\n\n", Framing::None),
            (
                "cl same twice",
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                Framing::Length(3),
            ),
            (
                "cl list same",
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
                Framing::Length(3),
            ),
            (
                "chunked",
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
                Framing::Chunked,
            ),
            (
                "host v6",
                "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
                Framing::None,
            ),
            (
                "host port",
                "GET / HTTP/1.1\r\nHost: localhost:80\r\n\r\n",
                Framing::None,
            ),
            ("1.0 no host", "GET / HTTP/1.0\r\n\r\n", Framing::None),
            (
                "expect 1.0 ignored",
                "GET / HTTP/1.0\r\nExpect: teapot\r\n\r\n",
                Framing::None,
            ),
        ];
        for (name, input, want) in cases {
            match head(input) {
                Ok(r) => assert_eq!(r.framing, *want, "{name}"),
                Err(e) => panic!("{name}: {e:?}"),
            }
        }
    }

    #[test]
    fn higher_minor_versions_are_http_1_1() {
        // RFC 9110 §6.2 / RFC 9112 §2.3: a 1.x recipient treats a higher minor as the
        // highest it speaks, with its rules (Host required, persistent, chunked allowed).
        for (input, framing) in [
            (&b"GET /x?y HTTP/1.2\r\nHost: a\r\n\r\n"[..], Framing::None),
            (b"HEAD /x?y HTTP/1.9\nHost: a\n\n", Framing::None),
            (
                b"POST /x?y HTTP/1.2\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Chunked,
            ),
        ] {
            let name = String::from_utf8_lossy(input);
            let r = parse(input, 16384).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(r.version, Version::Http11, "{name}");
            assert_eq!(r.target.get(input), b"/x?y", "{name}");
            assert_eq!(
                r.method_span.get(input),
                &input[..r.method_span.len as usize]
            );
            assert_eq!(r.host.map(|h| h.get(input)), Some(&b"a"[..]), "{name}");
            assert_eq!(r.framing, framing, "{name}");
            assert!(r.wants_keep_alive(), "{name}");
        }
        // The heap fallback for many headers takes the same path.
        let mut s = String::from("GET / HTTP/1.2\r\nHost: a\r\n");
        for i in 0..200 {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("Connection: close\r\n\r\n");
        let r = head(&s).unwrap();
        assert_eq!(r.version, Version::Http11);
        assert!(!r.wants_keep_alive());
    }

    #[test]
    fn unencoded_utf8_in_the_target_is_accepted() {
        // curl sends a URL's UTF-8 bytes as they are.
        let buf = "GET /caf\u{e9}/\u{65e5}\u{672c}.txt HTTP/1.1\r\nHost: a\r\n\r\n";
        let r = head(buf).unwrap();
        assert_eq!(
            r.target.get(buf.as_bytes()),
            "/caf\u{e9}/\u{65e5}\u{672c}.txt".as_bytes()
        );
        let buf = "GET /caf\u{e9} HTTP/1.2\r\nHost: a\r\n\r\n";
        assert_eq!(
            head(buf).unwrap().target.get(buf.as_bytes()),
            "/caf\u{e9}".as_bytes()
        );
        // A Latin-1 byte is not UTF-8: httparse refuses the target.
        assert_eq!(
            parse(b"GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", 16384).err(),
            Some(HttpError::BadRequest("malformed request line"))
        );
    }

    #[test]
    fn long_methods_are_501_and_long_targets_414() {
        use HttpError::*;
        let lim = HeadLimits {
            line: 64,
            field: 64,
            total: 1024,
        };
        let long = "A".repeat(100);
        let target = "a".repeat(100);
        // (name, request line as received so far, answer once it is too long)
        let cases: &[(&str, String, HttpError)] = &[
            ("method, no space yet", long.clone(), NotImplemented),
            (
                "method then target",
                format!("{long} / HTTP/1.1"),
                NotImplemented,
            ),
            (
                "one past the longest",
                format!("OPTIONSX /{target} HTTP/1.1"),
                NotImplemented,
            ),
            (
                "webdav method",
                format!("PROPFIND /{target} HTTP/1.1"),
                NotImplemented,
            ),
            (
                "longest known",
                format!("OPTIONS /{target} HTTP/1.1"),
                UriTooLong,
            ),
            ("get", format!("GET /{target} HTTP/1.1"), UriTooLong),
            ("not a token", format!("GET[]AAAA{long}"), UriTooLong),
        ];
        for (name, line, want) in cases {
            assert_eq!(long_line_error(line.as_bytes()), *want, "{name}");
            assert_eq!(
                incomplete_error(line.as_bytes(), lim),
                Some(*want),
                "{name}"
            );
        }
        // Before the line limit, only a method already too long is decided early.
        assert_eq!(incomplete_error(b"PROPFIN", lim), None);
        assert_eq!(incomplete_error(b"PROPFIND", lim), Some(NotImplemented));
        assert_eq!(incomplete_error(b"OPTIONS /", lim), None);
        // A complete head within the limits parses; the handler answers 501 for the method.
        let r = head(&format!("{long} / HTTP/1.1\r\nHost: a\r\n\r\n")).unwrap();
        assert_eq!(r.method, Method::Other);
    }

    #[test]
    fn many_headers_fall_back_to_the_heap() {
        let mut s = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..1000 {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        assert!(head(&s).is_ok());
    }

    #[test]
    fn repeated_headers_yield_every_value() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"a\"\r\nX: 1\r\nif-none-match:  \"b\", \"c\" \r\n\r\n";
        let r = parse(buf, 16384).unwrap();
        assert_ne!(r.dups & dup::IF_NONE_MATCH, 0);
        let v = Values::of(buf, r.if_none_match, true, b"if-none-match");
        assert_eq!(v.as_slice(), [&b"\"a\""[..], b"\"b\", \"c\""]);
        let one = Values::of(buf, r.host, false, b"host");
        assert_eq!(one.as_slice(), [&b"a"[..]]);
        assert!(Values::of(buf, r.range, false, b"range")
            .as_slice()
            .is_empty());
    }

    #[test]
    fn decimal() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"18446744073709551615"), None);
        assert_eq!(parse_decimal(b"9223372036854775807"), Some(i64::MAX as u64));
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"-1"), None);
    }
}
