//! Sans-IO HTTP/1.x: bytes in, values out. No sockets, no files, no clock: every function here
//! can be tested with byte strings and fuzzed. Depends only on std, httparse and memchr.

pub mod body;
pub mod cgi;
pub mod conditional;
pub mod date;
pub mod negotiate;
pub mod path;
pub mod range;
pub mod request;
pub mod response;
pub mod upstream;

pub use request::{Request, Span};

/// Request methods tern knows. Anything else is answered 501 (RFC 9110 §9.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    #[default]
    Get,
    Head,
    Options,
    Post,
    Put,
    Delete,
    Patch,
    Trace,
    Connect,
    Other,
}

impl Method {
    /// Length of the longest method name tern implements (`OPTIONS`, `CONNECT`). A longer
    /// method is a 501 (RFC 9112 §3) even when its request line is too long or its head fills
    /// the read buffer before it ends.
    pub const LONGEST: usize = 7;

    pub fn parse(m: &[u8]) -> Method {
        // Method names are case-sensitive (RFC 9110 §9.1).
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"OPTIONS" => Method::Options,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"TRACE" => Method::Trace,
            b"CONNECT" => Method::Connect,
            _ => Method::Other,
        }
    }
}

/// HTTP/1.x minor version of a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Version {
    Http10,
    #[default]
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// Why a request could not be served, mapped to a status in one place (nginx's habit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    BadRequest(&'static str),
    Timeout,
    UriTooLong,
    HeadTooLarge,
    LengthRequired,
    PayloadTooLarge,
    ExpectationFailed,
    NotImplemented,
    VersionNotSupported,
    /// A pending request (a CGI child, an upstream) got no answer in time.
    /// A request body stopped arriving while it was being read (408).
    BodyTimeout,
    GatewayTimeout,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::Timeout | HttpError::BodyTimeout => 408,
            HttpError::LengthRequired => 411,
            HttpError::PayloadTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::ExpectationFailed => 417,
            HttpError::HeadTooLarge => 431,
            HttpError::NotImplemented => 501,
            HttpError::VersionNotSupported => 505,
            HttpError::GatewayTimeout => 504,
        }
    }

    /// The reason written to the error log.
    pub fn reason(&self) -> &'static str {
        match self {
            HttpError::BadRequest(why) => why,
            HttpError::Timeout => "request head timed out",
            HttpError::BodyTimeout => "request body timed out",
            HttpError::UriTooLong => "request line too long",
            HttpError::HeadTooLarge => "request head too large",
            HttpError::LengthRequired => "length required",
            HttpError::PayloadTooLarge => "request body too large",
            HttpError::ExpectationFailed => "unsupported expectation",
            HttpError::NotImplemented => "method not implemented",
            HttpError::VersionNotSupported => "HTTP version not supported",
            HttpError::GatewayTimeout => "no answer from the gateway in time",
        }
    }
}

/// The reason phrase for a status code (RFC 9110 §15).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// `tchar` (RFC 9110 §5.6.2), the bytes of a token: methods, field names, chunk extensions.
pub fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

static TCHAR: [bool; 256] = ascii_table(b"!#$%&'*+-.^_`|~");

/// A byte-class table: ASCII letters and digits plus `extra`, so that checking a byte is one
/// load (used for tokens here and for host names in [`request`]).
pub const fn ascii_table(extra: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// The first line of a head (the request line), without its line ending.
pub fn first_line(head: &[u8]) -> &[u8] {
    let end = memchr::memchr(b'\n', head).unwrap_or(head.len());
    head[..end].strip_suffix(b"\r").unwrap_or(&head[..end])
}

/// ASCII case-insensitive comparison of a header value token.
pub fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Strips optional whitespace (SP / HTAB, RFC 9110 §5.6.3) from both ends.
pub fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Iterates over the elements of a comma-separated list (RFC 9110 §5.6.1), trimmed, skipping
/// empty elements.
pub fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_method_is_the_longest_known() {
        let known = [
            "GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT",
        ];
        for m in known {
            assert_ne!(Method::parse(m.as_bytes()), Method::Other, "{m}");
        }
        assert_eq!(known.iter().map(|m| m.len()).max(), Some(Method::LONGEST));
    }

    #[test]
    fn tchar_is_rfc_9110_token() {
        let specials = b"!#$%&'*+-.^_`|~";
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || specials.contains(&b);
            assert_eq!(is_tchar(b), want, "{b:#04x}");
        }
    }
}
