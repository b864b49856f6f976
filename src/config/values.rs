//! Parsers and validators for single values, shared by the flags ([`super::cli`]) and the
//! file ([`super::file`]): durations, sizes, host names, route prefixes, header fields, error
//! pages, MIME entries. Each returns the value or a message without position; callers add the
//! flag name or the file:line:col. Nothing here touches the file system.
use crate::conn::Millis;

/// Longest duration accepted anywhere: 1,000 days.
const MAX_SECS: f64 = 86_400_000.0;

/// A duration as `10`, `2.5`, `10s`, `2.5s` or `500ms` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Millis, String> {
    let t = s.trim();
    let (num, scale) = if let Some(ms) = t.strip_suffix("ms") {
        (ms, 1.0)
    } else {
        (t.strip_suffix('s').unwrap_or(t), 1000.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration such as \"10s\", \"500ms\" or \"2.5\""))?;
    duration_from_secs(v * scale / 1000.0).ok_or_else(|| format!("\"{s}\" is out of range"))
}

/// Seconds (from a TOML number) to milliseconds, if in range.
pub fn duration_from_secs(secs: f64) -> Option<Millis> {
    if secs.is_nan() || !(0.0..=MAX_SECS).contains(&secs) {
        return None;
    }
    Some((secs * 1000.0).round() as Millis)
}

/// A size in bytes as `512`, `512B`, `16k`, `16K`, `16KB`, `16KiB`, and likewise `m`/`M`/`MB`/
/// `MiB` and `g`/`G`/`GB`/`GiB`. Every multiple is binary (1 KB = 1 KiB = 1024 bytes), as with
/// nginx's `k` and `m`: a header limit is a buffer size, never a decimal quantity.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = t.split_at(digits);
    let shift = match unit.trim() {
        "" | "B" | "b" => 0,
        "k" | "K" | "KB" | "kB" | "KiB" => 10,
        "m" | "M" | "MB" | "MiB" => 20,
        "g" | "G" | "GB" | "GiB" => 30,
        _ => {
            return Err(format!(
                "\"{s}\" is not a size such as \"16KiB\", \"1MiB\" or \"512\""
            ))
        }
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a size such as \"16KiB\", \"1MiB\" or \"512\""))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("\"{s}\" is out of range"))
}

/// A size for display: `16KiB` when it is a whole number of KiB/MiB/GiB, else bytes.
pub fn show_size(n: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n != 0 && n % (1 << shift) == 0 {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

/// A duration for display and for `--print-config`: `10s` or `2500ms`, read back exactly.
pub fn show_duration(ms: Millis) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A header value (RFC 9110 §5.5): no control characters but HTAB; surrounding white space
/// is not part of the value and is trimmed.
pub fn header_value(s: &str) -> Result<String, String> {
    if s.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(
            "control characters (CR, LF, NUL, ...) are not allowed in a header value".into(),
        );
    }
    Ok(s.trim_matches([' ', '\t']).to_string())
}

/// A field name is a token (RFC 9110 §5.1, §5.6.2).
/// An environment variable name a CGI child may inherit: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Why a header cannot be set with `headers`, if it cannot: tern writes these itself for
/// each response (framing, hop-by-hop, representation metadata), or another key sets them.
pub fn forbidden_header(name: &str) -> Option<&'static str> {
    const OWN: [&str; 14] = [
        "content-length",
        "transfer-encoding",
        "date",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "content-encoding",
        "content-range",
        "etag",
        "last-modified",
        "location",
    ];
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "server" => Some("use server_name"),
        "content-type" => Some("use mime or default_type"),
        "cache-control" => Some("use cache_control"),
        n if OWN.contains(&n) => Some("tern sets it for each response"),
        _ => None,
    }
}

/// `CODE` and `PATH` of an error page: a 4xx/5xx status and a root-relative path, normalised
/// like a request path so it can never point outside the root. The path is returned without
/// its leading `/`.
pub fn error_page(code: &str, path: &str) -> Result<(u16, String), String> {
    let code = error_code(code)?;
    Ok((
        code,
        root_relative(path).map_err(|e| format!("error page \"{path}\": {e}"))?,
    ))
}

/// A 4xx or 5xx status code.
pub fn error_code(code: &str) -> Result<u16, String> {
    let n: u16 = code
        .trim()
        .parse()
        .map_err(|_| format!("\"{code}\" is not a status code"))?;
    if !(400..=599).contains(&n) {
        return Err(format!("{n} is not an error status (400-599)"));
    }
    Ok(n)
}

/// A URL path under a root (`/404.html`, `index.html`) normalised to `404.html`: percent-
/// decoded once, dot segments resolved, never above the root, never the root itself.
pub fn root_relative(path: &str) -> Result<String, String> {
    let with_slash = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let (mut rel, mut scratch) = (Vec::new(), Vec::new());
    crate::http::path::normalize(with_slash.as_bytes(), &mut rel, &mut scratch)
        .map_err(|e| e.reason().to_string())?;
    if rel.is_empty() {
        return Err("names the directory itself, not a file".into());
    }
    String::from_utf8(rel).map_err(|_| "is not UTF-8 once percent-decoded".into())
}

/// `EXT=TYPE` of `--mime`.
pub fn mime_pair(s: &str) -> Result<(String, String), String> {
    let (ext, ty) = s
        .split_once('=')
        .ok_or_else(|| format!("\"{s}\" is not EXT=TYPE"))?;
    Ok((mime_ext(ext)?, mime_type(ty)?))
}

/// An extension: a leading dot is dropped, case does not matter.
pub fn mime_ext(ext: &str) -> Result<String, String> {
    let e = ext.trim().trim_start_matches('.');
    if e.is_empty() || e.bytes().any(|b| b <= b' ' || b == b'/' || b == 0x7f) {
        return Err(format!("\"{ext}\" is not a file extension"));
    }
    Ok(e.to_ascii_lowercase())
}

/// A `Content-Type` value: non-empty, no control characters.
pub fn mime_type(ty: &str) -> Result<String, String> {
    let t = ty.trim();
    if t.is_empty() || t.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(format!("\"{ty}\" is not a media type such as text/plain"));
    }
    Ok(t.to_string())
}

/// An index file name: one path segment.
pub fn index_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s == "." || s == ".." || s.bytes().any(|b| b == b'/' || b < 0x20) {
        return Err(format!("index \"{s}\" is not a file name"));
    }
    Ok(s.to_string())
}

/// A host name or alias, as it will be compared with a request's `Host`: lower-cased, one
/// trailing dot stripped. A wildcard is `*.` followed by a valid name. No port, no IPv6
/// literal, ASCII only (IDNs in their `xn--` form).
pub fn host_name(raw: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("host name \"{}\": {why}", raw.escape_debug()));
    let lower = raw.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    let (wild, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if rest.is_empty() {
        return bad("empty");
    }
    if name.len() > 253 {
        return bad("longer than 253 characters");
    }
    for c in rest.chars() {
        match c {
            'a'..='z' | '0'..='9' | '-' | '_' | '.' => {}
            ':' => {
                return bad(
                    "a port is not part of a host name (tern answers on every listen address)",
                )
            }
            '/' | '\\' => return bad("a slash is not allowed"),
            '\0' => return bad("NUL is not allowed"),
            '*' => return bad("a wildcard is only \"*.\" at the start"),
            c if c.is_whitespace() => return bad("white space is not allowed"),
            c if !c.is_ascii() => return bad("not ASCII (write an IDN in its xn-- form)"),
            _ => return bad("only letters, digits, '-', '_' and '.' are allowed"),
        }
    }
    for label in rest.split('.') {
        if label.is_empty() {
            return bad("empty label (a leading dot or \"..\")");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
    }
    Ok(if wild {
        format!("*.{rest}")
    } else {
        rest.to_string()
    })
}

/// A route prefix: starts with `/`, normalised (no `//`, no `.` or `..` segment), and free of
/// `?`, `#`, NUL and control characters, so it can be compared with normalised request paths.
pub fn route_prefix(p: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("route \"{}\": {why}", p.escape_debug()));
    if !p.starts_with('/') {
        return bad("a prefix starts with /");
    }
    if p.contains("//") {
        return bad("empty segment (//)");
    }
    if p.split('/').any(|seg| seg == "." || seg == "..") {
        return bad("\".\" and \"..\" segments are not allowed");
    }
    if p.contains(['?', '#']) {
        return bad("a prefix is a path: no ? or #");
    }
    if p.contains('%') {
        // Paths are matched after percent-decoding, so `%20` could never match a request.
        return bad("prefixes are matched decoded: write the character itself, not %XX");
    }
    if p.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    Ok(())
}

/// A redirect target: non-empty, no white space or control characters (it becomes a
/// `Location` header as written).
pub fn redirect_url(u: &str) -> Result<(), String> {
    if u.is_empty() {
        return Err("redirect: empty URL".into());
    }
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "redirect \"{}\": white space and control characters are not allowed in a URL",
            u.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, want) in [
            ("10", Ok(10_000)),
            ("10s", Ok(10_000)),
            ("0.25s", Ok(250)),
            ("2.5", Ok(2_500)),
            ("750ms", Ok(750)),
            (" 3s ", Ok(3_000)),
            ("0", Ok(0)),
        ] {
            assert_eq!(parse_duration(s), want, "{s}");
        }
        for s in ["soon", "-1", "1e12", "NaN", "s", "10 min", ""] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert_eq!(duration_from_secs(1.5), Some(1_500));
        assert_eq!(duration_from_secs(-0.5), None);
        assert_eq!(show_duration(10_000), "10s");
        assert_eq!(show_duration(2_500), "2500ms");
        assert_eq!(parse_duration(&show_duration(2_500)), Ok(2_500));
    }

    #[test]
    fn sizes() {
        for (s, want) in [
            ("512", 512),
            ("512B", 512),
            ("16k", 16_384),
            ("16K", 16_384),
            ("16KB", 16_384),
            ("16KiB", 16_384),
            ("16 KiB", 16_384),
            ("1MiB", 1 << 20),
            ("1m", 1 << 20),
            ("2GiB", 2 << 30),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        for s in [
            "",
            "KiB",
            "1.5MiB",
            "-1",
            "16 kilobytes",
            "0x10",
            "99999999999999999999",
        ] {
            assert!(parse_size(s).is_err(), "{s}");
        }
        assert!(parse_size("99999999999G").is_err());
        assert_eq!(show_size(16_384), "16KiB");
        assert_eq!(show_size(1 << 20), "1MiB");
        assert_eq!(show_size(1000), "1000");
    }

    #[test]
    fn host_names() {
        for (raw, want) in [
            ("example.com", "example.com"),
            ("Example.COM", "example.com"),
            ("example.com.", "example.com"),
            ("*.example.com", "*.example.com"),
            ("localhost", "localhost"),
            ("127.0.0.1", "127.0.0.1"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ] {
            assert_eq!(host_name(raw).as_deref(), Ok(want), "{raw}");
        }
        for (raw, why) in [
            ("example.com:80", "port"),
            ("a..b", "empty label"),
            (".example.com", "empty label"),
            ("example.com..", "empty label"),
            ("a/b", "slash"),
            ("a\\b", "slash"),
            ("a\0b", "NUL"),
            ("a b", "white space"),
            ("", "empty"),
            (".", "empty"),
            ("*.", "wildcard"),
            ("*", "wildcard"),
            ("a.*.com", "wildcard"),
            ("**.a", "wildcard"),
            ("bücher.de", "xn--"),
        ] {
            let e = host_name(raw).unwrap_err();
            assert!(e.contains(why), "{raw}: {e}");
        }
    }

    #[test]
    fn prefixes() {
        for p in ["/", "/a", "/a/", "/a/b.html", "/.well-known/", "/a b/"] {
            assert_eq!(route_prefix(p), Ok(()), "{p}");
        }
        for p in [
            "", "a/", "//", "/a//b", "/./", "/a/../", "/..", "/a?b", "/a#", "/a\0", "/\n",
            "/a%20b/",
        ] {
            assert!(route_prefix(p).is_err(), "{p:?}");
        }
    }

    #[test]
    fn headers_and_pages() {
        assert!(is_token("X-Frame-Options"));
        assert!(!is_token("X Frame"));
        assert!(!is_token("X:y"));
        assert!(!is_token(""));
        assert_eq!(header_value(" DENY "), Ok("DENY".into()));
        assert!(header_value("a\r\nb").is_err());
        assert!(header_value("a\0").is_err());
        assert!(forbidden_header("content-LENGTH").is_some());
        assert_eq!(forbidden_header("Server"), Some("use server_name"));
        assert_eq!(forbidden_header("X-Frame-Options"), None);
        assert_eq!(
            error_page("404", "/errors/404.html"),
            Ok((404, "errors/404.html".into()))
        );
        assert_eq!(
            error_page("500", "e/../500.html"),
            Ok((500, "500.html".into()))
        );
        assert!(error_page("200", "/x").is_err());
        assert!(error_page("404", "/").is_err());
        assert!(error_page("404", "/../x").is_err());
        assert_eq!(
            mime_pair(".MD=text/markdown"),
            Ok(("md".into(), "text/markdown".into()))
        );
        assert!(mime_pair("md").is_err());
        assert!(mime_pair("=x/y").is_err());
        assert!(redirect_url("https://example.com/").is_ok());
        assert!(redirect_url("").is_err());
        assert!(redirect_url("/a b").is_err());
        assert!(index_name("index.html").is_ok());
        assert!(index_name("a/b").is_err());
    }
}
