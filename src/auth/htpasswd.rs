//! htpasswd files as Apache's `htpasswd` writes them: `user:hash` per line, `#` comments and
//! blank lines ignored. Accepted hashes: bcrypt (`$2y$`, `$2b$`, `$2a$`), SHA-crypt (`$5$`,
//! `$6$`), Apache MD5 (`$apr1$`) and `{SHA}`. Plain text and DES crypt (which Apache accepts
//! and which an attacker with the file reverses in minutes) are refused, as is anything else,
//! with the line that holds it. Parsing only: verifying is [`super::verify`]'s.
use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// One stored password hash, checked for form when the file is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hash {
    /// The whole `$2y$10$...` string (60 bytes).
    Bcrypt(String),
    /// The whole `$5$...` or `$6$...` string (optionally with `rounds=N$`).
    ShaCrypt(String),
    /// `$apr1$SALT$HASH`: up to 8 salt characters and 22 of hash.
    Apr1 { salt: String, hash: String },
    /// `{SHA}` + base64 of the SHA-1 digest of the password.
    Sha1([u8; 20]),
}

impl Hash {
    /// Its scheme, for logs and messages.
    pub fn scheme(&self) -> &'static str {
        match self {
            Hash::Bcrypt(_) => "bcrypt",
            Hash::ShaCrypt(s) if s.starts_with("$5$") => "sha256-crypt",
            Hash::ShaCrypt(_) => "sha512-crypt",
            Hash::Apr1 { .. } => "apr1",
            Hash::Sha1(_) => "{SHA}",
        }
    }
}

/// A parsed file: users to their hashes, in a map (lookup by name).
#[derive(Clone, Debug, Default)]
pub struct Htpasswd {
    pub users: HashMap<String, Hash>,
    /// The first entry's hash: what an unknown user's password is checked against, so that
    /// it costs what a known user's does.
    pub dummy: Option<Hash>,
}

/// A problem at a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub msg: String,
}

/// Parses a whole file; every bad line is reported.
pub fn parse_file(text: &[u8]) -> Result<Htpasswd, Vec<LineError>> {
    let mut out = Htpasswd::default();
    let mut errors = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        match parse_line(raw) {
            Ok(None) => {}
            Ok(Some((user, hash))) => {
                if let Some(first) = seen.get(&user) {
                    errors.push(LineError {
                        line,
                        msg: format!("user \"{user}\" is already given on line {first}"),
                    });
                    continue;
                }
                seen.insert(user.clone(), line);
                if out.dummy.is_none() {
                    out.dummy = Some(hash.clone());
                }
                out.users.insert(user, hash);
            }
            Err(msg) => errors.push(LineError { line, msg }),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// One line: `None` for a blank line or a comment.
pub fn parse_line(raw: &[u8]) -> Result<Option<(String, Hash)>, String> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let line = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_string())?;
    let trimmed = line.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let Some((user, hash)) = line.split_once(':') else {
        return Err("expected user:hash".into());
    };
    if user.is_empty() {
        return Err("empty user name".into());
    }
    if user.chars().any(char::is_control) {
        return Err("control character in user name".into());
    }
    // Apache's tools write nothing after the hash; trailing blanks are an editor's.
    let hash = hash.trim_end();
    parse_hash(hash)
        .map(|h| Some((user.to_string(), h)))
        .map_err(|m| format!("user \"{user}\": {m}"))
}

/// Costs past these would hold the job thread for seconds per login.
pub const MAX_BCRYPT_COST: u32 = 17;
pub const MAX_SHA_ROUNDS: u32 = 1_000_000;

const CRYPT64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn is_crypt64(s: &str) -> bool {
    s.bytes().all(|b| CRYPT64.contains(&b))
}

fn parse_hash(h: &str) -> Result<Hash, String> {
    if let Some(rest) = h.strip_prefix("{SHA}") {
        let d = STANDARD
            .decode(rest)
            .map_err(|_| "{SHA} hash is not base64".to_string())?;
        let d: [u8; 20] = d
            .try_into()
            .map_err(|_| "{SHA} hash is not 20 bytes".to_string())?;
        return Ok(Hash::Sha1(d));
    }
    if h.starts_with("$2y$") || h.starts_with("$2b$") || h.starts_with("$2a$") {
        let cost = h.get(4..6).and_then(|c| c.parse::<u32>().ok());
        let ok = h.len() == 60
            && h.as_bytes().get(6) == Some(&b'$')
            && cost.is_some_and(|c| (4..=31).contains(&c))
            && is_crypt64(&h[7..]);
        if !ok || h.parse::<bcrypt::HashParts>().is_err() {
            return Err("malformed bcrypt hash".into());
        }
        if cost.is_some_and(|c| c > MAX_BCRYPT_COST) {
            return Err(format!(
                "bcrypt cost above {MAX_BCRYPT_COST} (htpasswd's limit) is refused: one login would take seconds"
            ));
        }
        return Ok(Hash::Bcrypt(h.to_string()));
    }
    if let Some(rest) = h.strip_prefix("$5$").or_else(|| h.strip_prefix("$6$")) {
        let want = if h.starts_with("$5$") { 43 } else { 86 };
        let rest = match rest.strip_prefix("rounds=") {
            Some(r) => {
                let (n, after) = r.split_once('$').ok_or("malformed SHA-crypt rounds")?;
                let n: u32 = n.parse().map_err(|_| "malformed SHA-crypt rounds")?;
                if !(1000..=MAX_SHA_ROUNDS).contains(&n) {
                    return Err(format!(
                        "SHA-crypt rounds out of range (1000 to {MAX_SHA_ROUNDS}; more would make one login take seconds)"
                    ));
                }
                after
            }
            None => rest,
        };
        let (salt, sum) = rest.split_once('$').ok_or("malformed SHA-crypt hash")?;
        if salt.len() > 16 || !is_crypt64(salt) || sum.len() != want || !is_crypt64(sum) {
            return Err("malformed SHA-crypt hash".into());
        }
        return Ok(Hash::ShaCrypt(h.to_string()));
    }
    if let Some(rest) = h.strip_prefix("$apr1$") {
        let (salt, sum) = rest.split_once('$').ok_or("malformed $apr1$ hash")?;
        if salt.is_empty() || salt.len() > 8 || sum.len() != 22 || !is_crypt64(sum) {
            return Err("malformed $apr1$ hash".into());
        }
        return Ok(Hash::Apr1 {
            salt: salt.into(),
            hash: sum.into(),
        });
    }
    if let Some(rest) = h.strip_prefix('$') {
        let id = rest.split('$').next().unwrap_or_default();
        return Err(format!(
            "hash scheme ${id}$ is not supported (use bcrypt: htpasswd -B; or $5$, $6$, $apr1$, {{SHA}})"
        ));
    }
    if h.len() == 13 && is_crypt64(h) {
        return Err(
            "looks like a DES crypt hash, which is refused: it is broken in minutes \
             (make the entry again with htpasswd -B)"
                .into(),
        );
    }
    Err("plain-text passwords are refused (make the entry with htpasswd -B)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let ok = |l: &str, scheme: &str| match parse_line(l.as_bytes()) {
            Ok(Some((_, h))) => assert_eq!(h.scheme(), scheme, "{l}"),
            other => panic!("{l}: {other:?}"),
        };
        ok(
            "a:$2y$05$HZx5KCsnt2thKn4fhEWVHOxsfeJ9YkZbZcxrvqGGWX2j1H5csbxCe",
            "bcrypt",
        );
        ok("a:$apr1$x6FXgKCG$Tj2RkHXHqZpJVf2oH3PXl/", "apr1");
        ok("a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{SHA}");
        ok(
            "a:$5$rounds=5000$salt$Gbwr/pfvL.3.ilWvU3YQpQjN3GMt5/H7wP3jj4dc8k6\r",
            "sha256-crypt",
        );
        assert_eq!(parse_line(b"# comment"), Ok(None));
        assert_eq!(parse_line(b"   "), Ok(None));
        let bad = |l: &str, part: &str| match parse_line(l.as_bytes()) {
            Err(m) => assert!(m.contains(part), "{l}: {m}"),
            other => panic!("{l}: {other:?}"),
        };
        bad("a:secret", "plain-text");
        bad("a:rqXexS6ZhobKA", "DES");
        bad("a:$1$abc$def", "$1$ is not supported");
        bad("nocolon", "user:hash");
        bad(":$apr1$x$y", "empty user");
        bad("a:$2y$05$short", "malformed bcrypt");
        bad(
            "a:$apr1$toolongsalt$Tj2RkHXHqZpJVf2oH3PXl/",
            "malformed $apr1$",
        );
        bad("a:{SHA}!!", "not base64");
        bad("a:$6$salt$short", "malformed SHA-crypt");
        bad(
            "a:$2y$18$4wJwdLIDEmb/uRKy9n0vGOgA2a2qtObJL8KeV8Getzg35Y.654O.a",
            "cost above 17",
        );
        bad(
            "a:$5$rounds=2000000$salt$Oo0nc86Ktkc05wTAggFOZIQJhfxhAZY1mlIogZJN.i.",
            "rounds out of range",
        );
    }

    #[test]
    fn files_report_every_bad_line_and_duplicates() {
        let text = b"a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n\nb:plain\na:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n";
        let errs = parse_file(text).expect_err("bad");
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].line, 3);
        assert_eq!(errs[1].line, 4);
        let f = parse_file(b"a:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").expect("good");
        assert_eq!(f.users.len(), 1);
        assert!(f.dummy.is_some());
    }
}
