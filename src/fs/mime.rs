//! File name to `Content-Type`: the `mime_guess` table, then `--mime` overrides, then the
//! default type. Text types get `; charset=utf-8`.
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MimeTable {
    /// Lower-case extension (no dot) to type, from `--mime EXT=TYPE`.
    overrides: HashMap<String, String>,
    default: String,
}

impl Default for MimeTable {
    fn default() -> Self {
        MimeTable::new(HashMap::new(), "application/octet-stream".into())
    }
}

impl MimeTable {
    pub fn new(overrides: HashMap<String, String>, default: String) -> MimeTable {
        let overrides = overrides
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        MimeTable { overrides, default }
    }

    /// The overrides (lower-case extension, type), sorted by extension: for merging one level's
    /// table over another's and for `--print-config`.
    pub fn overrides(&self) -> Vec<(&str, &str)> {
        let mut v: Vec<_> = self
            .overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The type for unknown extensions.
    pub fn default_type(&self) -> &str {
        &self.default
    }

    /// The full `Content-Type` value for a file name (only its last extension counts).
    pub fn content_type(&self, name: &[u8]) -> Box<str> {
        let base = name.rsplit(|&b| b == b'/').next().unwrap_or(name);
        let ext = match memchr::memrchr(b'.', base) {
            Some(i) if i > 0 => std::str::from_utf8(&base[i + 1..]).ok(),
            _ => None,
        };
        let ext = ext.map(str::to_ascii_lowercase);
        let found = ext.as_deref().and_then(|e| {
            self.overrides
                .get(e)
                .map(String::as_str)
                .or_else(|| mime_guess::from_ext(e).first_raw())
        });
        let ty = found.unwrap_or(&self.default);
        if needs_charset(ty) {
            format!("{ty}; charset=utf-8").into_boxed_str()
        } else {
            ty.into()
        }
    }
}

/// Text and script types are UTF-8 unless the type already says otherwise.
fn needs_charset(ty: &str) -> bool {
    if ty.contains(';') {
        return false;
    }
    let ty = ty.to_ascii_lowercase();
    ty.starts_with("text/")
        || ty.ends_with("/javascript")
        || ty.ends_with("/json")
        || ty.ends_with("+json")
        || ty == "application/xml"
        || ty == "image/svg+xml"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let t = MimeTable::new(
            [
                ("md".to_string(), "text/markdown".to_string()),
                ("X".into(), "app/x".into()),
            ]
            .into(),
            "application/octet-stream".into(),
        );
        for (name, want) in [
            ("index.html", "text/html; charset=utf-8"),
            ("a/style.CSS", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("img.png", "image/png"),
            ("photo.jpeg", "image/jpeg"),
            ("font.woff2", "font/woff2"),
            ("a.wasm", "application/wasm"),
            ("notes.md", "text/markdown; charset=utf-8"),
            ("thing.x", "app/x"),
            ("noext", "application/octet-stream"),
            (".hidden", "application/octet-stream"),
            ("weird.zzzz", "application/octet-stream"),
        ] {
            let got = t.content_type(name.as_bytes());
            // mime_guess versions differ on JavaScript's registered type.
            if name == "app.js" {
                assert!(got.ends_with("javascript; charset=utf-8"), "{name}: {got}");
            } else {
                assert_eq!(&*got, want, "{name}");
            }
        }
    }
}
