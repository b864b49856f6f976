//! Request targets to file-system paths: split off the query, accept absolute-form, percent-
//! decode exactly once (strictly: a bad escape or a NUL is a 400), and resolve dot segments
//! so the result can never name anything above the document root.

/// Why a target cannot name a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Neither origin-form (`/...`) nor absolute-form (`http://host/...`).
    BadForm,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A NUL byte, raw or encoded.
    Nul,
    /// `..` segments that would climb above the root.
    AboveRoot,
}

impl PathError {
    pub fn reason(self) -> &'static str {
        match self {
            PathError::BadForm => "request target is not origin-form or absolute-form",
            PathError::BadEscape => "invalid percent-encoding in path",
            PathError::Nul => "NUL in path",
            PathError::AboveRoot => "path climbs above the root",
        }
    }
}

/// A normalised path: `rel` (written into the caller's buffer) is relative to the root, has no
/// leading or doubled `/`, and no `.` or `..` segment; empty means the root itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathInfo {
    /// The decoded path ended in `/` (or was just `/`).
    pub trailing_slash: bool,
    /// Some segment starts with `.` (a dotfile or dot-directory such as `.git/`).
    pub hidden: bool,
}

/// Splits a request target into its path and query (without the `?`). Absolute-form
/// (`http://host/p?q`, RFC 9112 §3.2.2) yields its path; the authority is ignored.
pub fn split_target(target: &[u8]) -> Result<(&[u8], Option<&[u8]>), PathError> {
    let rest = if target.first() == Some(&b'/') {
        target
    } else {
        let after_scheme = strip_prefix_ignore_case(target, b"http://")
            .or_else(|| strip_prefix_ignore_case(target, b"https://"))
            .ok_or(PathError::BadForm)?;
        let path_start = after_scheme
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(after_scheme.len());
        if path_start == 0 {
            return Err(PathError::BadForm);
        }
        &after_scheme[path_start..]
    };
    let (path, query) = match memchr::memchr(b'?', rest) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    // An absolute-form target with an empty path means "/" (RFC 9112 §3.2.1).
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    Ok((path, query))
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `path` once into `out` (cleared first). `%2F` becomes `/` and so separates
/// segments, as in nginx; `%25` becomes a literal `%` that is never decoded again.
pub fn percent_decode(path: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    out.clear();
    let mut i = 0;
    while i < path.len() {
        let b = match path[i] {
            b'%' => {
                let hi = path
                    .get(i + 1)
                    .copied()
                    .and_then(hex)
                    .ok_or(PathError::BadEscape)?;
                let lo = path
                    .get(i + 2)
                    .copied()
                    .and_then(hex)
                    .ok_or(PathError::BadEscape)?;
                i += 3;
                (hi << 4) | lo
            }
            b => {
                i += 1;
                b
            }
        };
        if b == 0 {
            return Err(PathError::Nul);
        }
        out.push(b);
    }
    Ok(())
}

/// Whether `path` starts with `/` and has no `%`, no NUL and no segment that is empty or
/// starts with `.`: then decoding and dot-segment removal would change nothing.
fn is_plain(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    let mut after_slash = true;
    for &b in &path[1..] {
        if b == b'%' || b == 0 || (after_slash && (b == b'/' || b == b'.')) {
            return false;
        }
        after_slash = b == b'/';
    }
    true
}

/// Decodes `path` (the part before `?`, starting with `/`) and removes dot segments
/// (RFC 3986 §5.2.4), writing the root-relative result into `out`. `scratch` is a reusable
/// buffer so that the request path allocates nothing once warmed up.
pub fn normalize(
    path: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> Result<PathInfo, PathError> {
    if is_plain(path) {
        // Nothing to decode and no dot or empty segment: the path is already normal.
        let trailing_slash = path.last() == Some(&b'/');
        let end = if trailing_slash {
            path.len() - 1
        } else {
            path.len()
        };
        out.clear();
        out.extend_from_slice(path.get(1..end).unwrap_or(&[]));
        return Ok(PathInfo {
            trailing_slash,
            hidden: false,
        });
    }
    percent_decode(path, scratch)?;
    out.clear();
    let mut info = PathInfo {
        trailing_slash: scratch.last() == Some(&b'/'),
        hidden: false,
    };
    for seg in scratch.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if out.is_empty() {
                    return Err(PathError::AboveRoot);
                }
                let cut = memchr::memrchr(b'/', out).unwrap_or(0);
                out.truncate(cut);
            }
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(seg);
            }
        }
    }
    // A final `.` or `..` names a directory: "/a/.." is "/" with a slash.
    if matches!(
        scratch.rsplit(|&b| b == b'/').next(),
        Some(b".") | Some(b"..")
    ) {
        info.trailing_slash = true;
    }
    info.hidden = out.split(|&b| b == b'/').any(|s| s.first() == Some(&b'.'));
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<(String, PathInfo), PathError> {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let (path, _) = split_target(p.as_bytes())?;
        let info = normalize(path, &mut out, &mut scratch)?;
        Ok((String::from_utf8_lossy(&out).into_owned(), info))
    }

    #[test]
    fn table() {
        let ok: &[(&str, &str, bool, bool)] = &[
            ("/", "", true, false),
            ("/a/b.txt", "a/b.txt", false, false),
            ("/a/./b/../c/", "a/c", true, false),
            ("//a//b", "a/b", false, false),
            ("/a/..", "", true, false),
            ("/a%20b", "a b", false, false),
            ("/a%2fb", "a/b", false, false),
            ("/.git/config", ".git/config", false, true),
            ("/a/.env", "a/.env", false, true),
            ("/%252e%252e/x", "%2e%2e/x", false, false),
            ("/..%5c..%5cetc", "..\\..\\etc", false, true),
            ("/a?x=/../../", "a", false, false),
            ("http://evil.example/a/b?q", "a/b", false, false),
            ("HTTP://h", "", true, false),
        ];
        for (input, want, slash, hidden) in ok {
            match norm(input) {
                Ok((got, info)) => {
                    assert_eq!(&got, want, "{input}");
                    assert_eq!(info.trailing_slash, *slash, "{input} slash");
                    assert_eq!(info.hidden, *hidden, "{input} hidden");
                }
                Err(e) => panic!("{input}: {e:?}"),
            }
        }
        let bad: &[(&str, PathError)] = &[
            ("/../etc/passwd", PathError::AboveRoot),
            ("/%2e%2e/etc/passwd", PathError::AboveRoot),
            ("/a/../../b", PathError::AboveRoot),
            ("/..%2fetc", PathError::AboveRoot),
            ("/%2e%2e%2fx", PathError::AboveRoot),
            ("/a%00b", PathError::Nul),
            ("/a\0b", PathError::Nul),
            ("/a%zz", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("a/b", PathError::BadForm),
            ("*", PathError::BadForm),
            ("ftp://h/a", PathError::BadForm),
            ("http:///a", PathError::BadForm),
        ];
        for (input, want) in bad {
            assert_eq!(norm(input).err(), Some(*want), "{input}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_escapes_the_root(segs in proptest::collection::vec(
            proptest::prop_oneof!["..", ".", "%2e%2e", "%2E.", "a", "%2f", "", "b%2f..", "%25"],
            0..12,
        )) {
            let raw = format!("/{}", segs.join("/"));
            if let Ok((out, _)) = norm(&raw) {
                let out_b = out.as_bytes();
                proptest::prop_assert!(!out.starts_with('/'));
                proptest::prop_assert!(!out_b.split(|&b| b == b'/').any(|s| s == b".." || s == b"." || s.is_empty()) || out.is_empty());
            }
        }

        #[test]
        fn decodes_exactly_once(s in "[a-z%0-9]{0,12}") {
            let mut out = Vec::new();
            if percent_decode(s.as_bytes(), &mut out).is_ok() {
                // Encoding every byte again and decoding gives back the same bytes.
                let re: String = out.iter().map(|b| format!("%{b:02X}")).collect();
                let mut back = Vec::new();
                percent_decode(re.as_bytes(), &mut back).unwrap();
                proptest::prop_assert_eq!(back, out);
            }
        }
    }
}
