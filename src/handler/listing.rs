//! Directory listings: an HTML page meant to be read (readable on a phone, no external
//! assets, no script), with every name HTML-escaped for display and percent-encoded in its
//! link, so each entry round-trips to the right file whatever bytes its name holds.
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

use crate::fs::ListEntry;
use crate::http::response::{push_html_escaped, push_u64};

/// Bytes left as they are in a link: RFC 3986 unreserved characters. Everything else,
/// including `:` (which would make `a:b` look like a scheme), is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Appends a root-relative path with each segment percent-encoded (slashes kept).
pub fn push_url_path(buf: &mut Vec<u8>, rel: &[u8]) {
    for (i, seg) in rel.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            buf.push(b'/');
        }
        push_url_segment(buf, seg);
    }
}

pub fn push_url_segment(buf: &mut Vec<u8>, seg: &[u8]) {
    for part in percent_encoding::percent_encode(seg, SEGMENT) {
        buf.extend_from_slice(part.as_bytes());
    }
}

/// Directories first, then by name (bytewise, so the order is stable for any encoding).
pub fn sort(entries: &mut [ListEntry]) {
    entries.sort_unstable_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
}

const STYLE: &str = "\
:root{color-scheme:light dark}\
body{font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;margin:0;padding:1.5rem;\
color:#1f2328;background:#fff}\
main{max-width:60rem;margin:0 auto}\
h1{font-size:1.25rem;font-weight:600;margin:0 0 1rem;overflow-wrap:anywhere}\
table{width:100%;border-collapse:collapse}\
th,td{padding:.45rem .6rem;text-align:left;border-bottom:1px solid #d8dee4;vertical-align:top}\
th{font-size:.75rem;letter-spacing:.04em;text-transform:uppercase;color:#59636e;font-weight:600}\
.s{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}\
.m{white-space:nowrap;color:#59636e;font-variant-numeric:tabular-nums}\
a{color:#0969da;text-decoration:none;overflow-wrap:anywhere}\
a:hover,a:focus{text-decoration:underline}\
tr.d a{font-weight:600}\
@media (max-width:40rem){body{padding:1rem .75rem}.m{display:none}}\
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}a{color:#4493f8}\
th,td{border-color:#30363d}th,.m{color:#9198a1}}";

/// Writes the listing page of directory `rel` (root-relative, decoded).
pub fn html(buf: &mut Vec<u8>, rel: &[u8], entries: &[ListEntry]) {
    let mut title = Vec::with_capacity(rel.len() + 16);
    title.extend_from_slice(b"Index of /");
    push_html_escaped(
        &mut title,
        &String::from_utf8_lossy(rel).into_owned().into_bytes(),
    );
    if !rel.is_empty() {
        title.push(b'/');
    }
    buf.extend_from_slice(b"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    buf.extend_from_slice(
        b"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
    );
    buf.extend_from_slice(&title);
    buf.extend_from_slice(b"</title>\n<style>");
    buf.extend_from_slice(STYLE.as_bytes());
    buf.extend_from_slice(b"</style></head>\n<body><main>\n<h1>");
    buf.extend_from_slice(&title);
    buf.extend_from_slice(b"</h1>\n<table>\n<thead><tr><th>Name</th><th class=\"s\">Size</th><th class=\"m\">Modified (UTC)</th></tr></thead>\n<tbody>\n");
    if !rel.is_empty() {
        buf.extend_from_slice(b"<tr class=\"d\"><td><a href=\"../\">../</a></td><td class=\"s\"></td><td class=\"m\"></td></tr>\n");
    }
    for e in entries {
        let display = String::from_utf8_lossy(&e.name);
        buf.extend_from_slice(if e.is_dir {
            b"<tr class=\"d\"><td><a href=\"./"
        } else {
            b"<tr><td><a href=\"./"
        });
        push_url_segment(buf, &e.name);
        if e.is_dir {
            buf.push(b'/');
        }
        buf.extend_from_slice(b"\">");
        push_html_escaped(buf, display.as_bytes());
        if e.is_dir {
            buf.push(b'/');
        }
        buf.extend_from_slice(b"</a></td><td class=\"s\"");
        if e.is_dir {
            buf.extend_from_slice(b">&mdash;");
        } else {
            buf.extend_from_slice(b" title=\"");
            push_u64(buf, e.size);
            buf.extend_from_slice(b" bytes\">");
            push_size(buf, e.size);
        }
        buf.extend_from_slice(b"</td><td class=\"m\">");
        crate::http::date::push_numeric(buf, e.mtime, b' ', false);
        buf.extend_from_slice(b"</td></tr>\n");
    }
    buf.extend_from_slice(b"</tbody>\n</table>\n</main></body></html>\n");
}

/// The listing as JSON, for scripts: an array of `{name, href, type, size, mtime}` where
/// `href` is the percent-encoded name (exact even when the name is not UTF-8), `type` is
/// `file` or `directory`, `size` is in bytes and `mtime` an IMF-fixdate, as in nginx's
/// `autoindex_format json`.
pub fn json(buf: &mut Vec<u8>, entries: &[ListEntry]) {
    buf.push(b'[');
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"\n{\"name\":\"");
        push_json_escaped(buf, String::from_utf8_lossy(&e.name).as_bytes());
        buf.extend_from_slice(b"\",\"href\":\"");
        push_url_segment(buf, &e.name);
        if e.is_dir {
            buf.push(b'/');
        }
        buf.extend_from_slice(if e.is_dir {
            b"\",\"type\":\"directory\""
        } else {
            b"\",\"type\":\"file\""
        });
        buf.extend_from_slice(b",\"size\":");
        push_u64(buf, e.size);
        buf.extend_from_slice(b",\"mtime\":\"");
        buf.extend_from_slice(&crate::http::date::format(e.mtime));
        buf.extend_from_slice(b"\"}");
    }
    buf.extend_from_slice(b"\n]\n");
}

/// JSON string escaping (RFC 8259 §7) for UTF-8 input.
pub fn push_json_escaped(buf: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            0x00..=0x1f | 0x7f => {
                buf.extend_from_slice(b"\\u00");
                buf.push(b"0123456789abcdef"[(b >> 4) as usize]);
                buf.push(b"0123456789abcdef"[(b & 15) as usize]);
            }
            // `<` escaped too, so a listing can never close a <script> it is embedded in.
            b'<' => buf.extend_from_slice(b"\\u003c"),
            _ => buf.push(b),
        }
    }
}

/// A strong ETag for a generated listing: a hash of its exact bytes, marked by format.
pub fn etag(page: &[u8], json: bool) -> Vec<u8> {
    use std::hash::Hasher;
    // DefaultHasher::new() uses fixed keys: the same page gives the same tag across restarts.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(page);
    let mut tag = Vec::with_capacity(24);
    tag.extend_from_slice(if json { b"\"j" } else { b"\"h" });
    crate::http::response::push_hex(&mut tag, h.finish());
    tag.push(b'"');
    tag
}

/// `999 B`, `1.0 KiB`, `12.3 MiB`, ...
fn push_size(buf: &mut Vec<u8>, n: u64) {
    if n < 1024 {
        push_u64(buf, n);
        buf.extend_from_slice(b" B");
        return;
    }
    let units: [&[u8]; 5] = [b" KiB", b" MiB", b" GiB", b" TiB", b" PiB"];
    let mut unit = 0;
    let mut scaled = n as f64 / 1024.0;
    while scaled >= 1024.0 && unit < units.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    let tenths = (scaled * 10.0).round() as u64;
    push_u64(buf, tenths / 10);
    buf.push(b'.');
    push_u64(buf, tenths % 10);
    buf.extend_from_slice(units[unit]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8], is_dir: bool, size: u64) -> ListEntry {
        ListEntry {
            name: name.to_vec(),
            is_dir,
            size,
            mtime: 784_111_777,
        }
    }

    #[test]
    fn escapes_and_encodes() {
        let entries = vec![
            entry(b"<img src=x onerror=alert(1)>.txt", false, 5),
            entry(b"a b\xc3\xa9:x", false, 2048),
        ];
        let mut buf = Vec::new();
        html(&mut buf, b"sub", &entries);
        let page = String::from_utf8(buf).unwrap();
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;.txt"));
        assert!(!page.contains("<img"));
        assert!(page.contains("href=\"./%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.txt\""));
        assert!(page.contains("href=\"./a%20b%C3%A9%3Ax\""));
        assert!(page.contains("2.0 KiB"));
        assert!(page.contains("1994-11-06 08:49"));
        assert!(page.contains("<title>Index of /sub/</title>"));
    }

    #[test]
    fn sorts_directories_first() {
        let mut e = vec![
            entry(b"b", false, 1),
            entry(b"z", true, 0),
            entry(b"a", false, 1),
            entry(b"c", true, 0),
        ];
        sort(&mut e);
        let names: Vec<&[u8]> = e.iter().map(|e| &e.name[..]).collect();
        assert_eq!(names, [&b"c"[..], b"z", b"a", b"b"]);
    }

    #[test]
    fn sizes() {
        for (n, want) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (10 << 20, "10.0 MiB"),
        ] {
            let mut b = Vec::new();
            push_size(&mut b, n);
            assert_eq!(String::from_utf8(b).unwrap(), want);
        }
    }
}
