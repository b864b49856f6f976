//! The `Authorization: Basic` credentials of RFC 7617: the scheme (case-insensitive), one
//! token68 of base64, decoded to `user:password` split at the first colon. Both halves must be
//! UTF-8 (the realm advertises `charset="UTF-8"`, RFC 7617 §2.1) and the user may not be
//! empty. Pure: bytes in, slices of a caller-owned buffer out; nothing here knows users.
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Longest credentials decoded (user, colon and password); longer ones are refused before
/// decoding, so a client cannot make the server hold a large buffer.
pub const MAX_DECODED: usize = 1024;

/// Why a header carried no usable credentials (each answered with 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadCredentials {
    /// Another scheme (Bearer, Digest, ...) or no scheme at all.
    NotBasic,
    /// Not base64, or padding in the wrong place, or too long.
    Encoding,
    /// Decoded, but without the `:` between user and password.
    NoColon,
    /// User or password is not UTF-8.
    NotUtf8,
    EmptyUser,
}

impl BadCredentials {
    pub fn reason(self) -> &'static str {
        match self {
            BadCredentials::NotBasic => "not Basic credentials",
            BadCredentials::Encoding => "credentials are not base64",
            BadCredentials::NoColon => "credentials have no colon",
            BadCredentials::NotUtf8 => "credentials are not UTF-8",
            BadCredentials::EmptyUser => "empty user name",
        }
    }
}

/// The user and password of an `Authorization` value, decoded into `buf` (cleared first).
pub fn parse<'b>(value: &[u8], buf: &'b mut Vec<u8>) -> Result<(&'b str, &'b str), BadCredentials> {
    let value = trim(value);
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &b""[..]),
    };
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(BadCredentials::NotBasic);
    }
    // RFC 9110 §11.4: one or more spaces before the token68; nothing after it.
    let token = trim(rest);
    if token.is_empty() || token.len() > MAX_DECODED.div_ceil(3) * 4 {
        return Err(BadCredentials::Encoding);
    }
    buf.clear();
    STANDARD
        .decode_vec(token, buf)
        .map_err(|_| BadCredentials::Encoding)?;
    let colon = buf
        .iter()
        .position(|&b| b == b':')
        .ok_or(BadCredentials::NoColon)?;
    let (user, pass) = (&buf[..colon], &buf[colon + 1..]);
    let user = std::str::from_utf8(user).map_err(|_| BadCredentials::NotUtf8)?;
    let pass = std::str::from_utf8(pass).map_err(|_| BadCredentials::NotUtf8)?;
    if user.is_empty() {
        return Err(BadCredentials::EmptyUser);
    }
    Ok((user, pass))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|&c| c != b' ' && c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|&c| c != b' ' && c != b'\t')
        .map_or(start, |i| i + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use BadCredentials::*;
        let ok = |v: &str, u: &str, p: &str| {
            let mut buf = Vec::new();
            assert_eq!(parse(v.as_bytes(), &mut buf), Ok((u, p)), "{v}");
        };
        // "Aladdin:open sesame", RFC 7617 §2.
        ok(
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "Aladdin",
            "open sesame",
        );
        ok(
            "basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "Aladdin",
            "open sesame",
        );
        ok(
            "BASIC   QWxhZGRpbjpvcGVuIHNlc2FtZQ==  ",
            "Aladdin",
            "open sesame",
        );
        // "a:" (empty password), "a:b:c" (colon in the password), "test:123£" (RFC 7617 §2.1).
        ok("Basic YTo=", "a", "");
        ok("Basic YTpiOmM=", "a", "b:c");
        ok("Basic dGVzdDoxMjPCow==", "test", "123£");
        let bad = |v: &[u8], want: BadCredentials| {
            let mut buf = Vec::new();
            assert_eq!(
                parse(v, &mut buf),
                Err(want),
                "{}",
                String::from_utf8_lossy(v)
            );
        };
        bad(b"Bearer abc", NotBasic);
        bad(b"Basicx YTo=", NotBasic);
        bad(b"", NotBasic);
        bad(b"Basic", Encoding);
        bad(b"Basic ", Encoding);
        bad(b"Basic YTo", Encoding);
        bad(b"Basic YT!o", Encoding);
        bad(b"Basic YTo= YTo=", Encoding);
        bad(b"Basic YWJj", NoColon);
        bad(b"Basic OmI=", EmptyUser);
        // "\xff:x" and "x:\xff".
        bad(b"Basic /zp4", NotUtf8);
        bad(b"Basic eDr/", NotUtf8);
        let long = format!("Basic {}", "QUFB".repeat(400));
        bad(long.as_bytes(), Encoding);
    }
}
