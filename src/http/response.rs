//! Response heads written straight into a reused `Vec<u8>`: status line, the headers every
//! response carries (`Date`, `Server`, `Connection`), and helpers for the rest. No allocation
//! once the buffer has grown; no formatting machinery on the hot path.
use super::{date::HttpDate, reason_phrase, Version};

/// What every head needs from the server: the `Date` and `Server` lines, formatted once per
/// second by [`HeadCtx::common`].
#[derive(Clone, Copy)]
pub struct HeadCtx<'a> {
    /// `Date: ...\r\n` and, unless disabled, `Server: ...\r\n`.
    pub common: &'a [u8],
}

impl HeadCtx<'_> {
    /// Formats the common lines into `buf` (cleared first).
    pub fn common(buf: &mut Vec<u8>, date: &HttpDate, server: Option<&[u8]>) {
        buf.clear();
        header(buf, b"Date", date);
        if let Some(server) = server {
            header(buf, b"Server", server);
        }
    }
}

/// Connection persistence as sent back to the client (RFC 9112 §9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persist {
    pub keep_alive: bool,
    pub version: Version,
}

/// The status lines tern sends most, ready-made.
fn status_line(status: u16) -> Option<&'static [u8]> {
    Some(match status {
        200 => b"HTTP/1.1 200 OK\r\n",
        206 => b"HTTP/1.1 206 Partial Content\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        _ => return None,
    })
}

/// Writes the status line and the common headers. tern always answers as HTTP/1.1
/// (RFC 9110 §2.5: a server sends its highest conformant version).
pub fn start(buf: &mut Vec<u8>, status: u16, ctx: HeadCtx<'_>, persist: Persist) {
    match status_line(status) {
        Some(line) => buf.extend_from_slice(line),
        None => {
            buf.extend_from_slice(b"HTTP/1.1 ");
            push_u64(buf, u64::from(status));
            buf.push(b' ');
            buf.extend_from_slice(reason_phrase(status).as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
    }
    buf.extend_from_slice(ctx.common);
    match (persist.version, persist.keep_alive) {
        (Version::Http11, true) => {}
        (Version::Http10, true) => buf.extend_from_slice(b"Connection: keep-alive\r\n"),
        (_, false) => buf.extend_from_slice(b"Connection: close\r\n"),
    }
}

pub fn header(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value);
    buf.extend_from_slice(b"\r\n");
}

pub fn content_length(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(b"Content-Length: ");
    push_u64(buf, n);
    buf.extend_from_slice(b"\r\n");
}

/// Ends the head with the blank line.
pub fn end(buf: &mut Vec<u8>) {
    buf.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal.
pub fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Appends `n` in lowercase hex.
pub fn push_hex(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b"0123456789abcdef"[(n & 15) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Escapes `&<>"'` for HTML text and attribute values.
pub fn push_html_escaped(buf: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            b'&' => buf.extend_from_slice(b"&amp;"),
            b'<' => buf.extend_from_slice(b"&lt;"),
            b'>' => buf.extend_from_slice(b"&gt;"),
            b'"' => buf.extend_from_slice(b"&quot;"),
            b'\'' => buf.extend_from_slice(b"&#39;"),
            _ => buf.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_head() {
        let date = *b"Sun, 06 Nov 1994 08:49:37 GMT";
        let mut buf = Vec::new();
        let mut common = Vec::new();
        HeadCtx::common(&mut common, &date, Some(b"tern"));
        let ctx = HeadCtx { common: &common };
        start(
            &mut buf,
            404,
            ctx,
            Persist {
                keep_alive: true,
                version: Version::Http10,
            },
        );
        content_length(&mut buf, 0);
        end(&mut buf);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "HTTP/1.1 404 Not Found\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nServer: tern\r\n\
             Connection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn ready_made_status_lines_match_the_general_form() {
        for status in [200u16, 206, 301, 304, 404] {
            let mut general = b"HTTP/1.1 ".to_vec();
            push_u64(&mut general, u64::from(status));
            general.push(b' ');
            general.extend_from_slice(reason_phrase(status).as_bytes());
            general.extend_from_slice(b"\r\n");
            assert_eq!(status_line(status), Some(&general[..]));
        }
    }

    #[test]
    fn numbers() {
        for n in [0u64, 9, 10, 1234567890, u64::MAX] {
            let mut b = Vec::new();
            push_u64(&mut b, n);
            assert_eq!(b, n.to_string().as_bytes());
            let mut h = Vec::new();
            push_hex(&mut h, n);
            assert_eq!(h, format!("{n:x}").as_bytes());
        }
    }
}
