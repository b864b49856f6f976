//! What Basic authentication keeps between requests, on the event loop: the htpasswd files
//! (checked for changes at most once a second and read again when they change), the cache
//! of verified credentials, the per-address failure limiter and the global cap on hash
//! verifications. [`Auth::check`] decides everything that needs no hash; a hash to compute
//! is handed back as a [`HashJob`] for the job thread, whose verdict returns through
//! [`Auth::finish`].
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::basic::{self, BadCredentials};
use super::htpasswd::{self, Hash, Htpasswd};
use crate::conn::Millis;

/// Verified credentials remembered (each a 64-bit keyed hash); past this the cache is emptied.
pub const CACHE_ENTRIES: usize = 4096;
/// Addresses whose failures are counted at once; past this expired windows are dropped, and
/// if none are, the oldest half.
pub const LIMITER_ENTRIES: usize = 16_384;
/// The failure window.
pub const WINDOW: Millis = 60_000;
/// Hash verifications started per second, whoever asks: past it, 429 without hashing.
pub const HASHES_PER_SECOND: u32 = 64;
/// How often a file's metadata is looked at.
const RECHECK: Millis = 1_000;

/// The verdict for one request.
#[derive(Debug)]
pub enum Verdict {
    /// Credentials in the cache (or the method is not protected).
    Admit,
    /// 401 with the challenge; `counted` when it was a failure charged to the address.
    Challenge(&'static str),
    /// 429: too many failures from this address (`Retry-After` the window, 60 s), or too
    /// many hashes this second (1 s).
    TooMany { retry_after: u32 },
    /// A hash must be computed off the loop.
    Hash(HashJob),
}

/// One verification for the job thread: pure data, no references to the loop's state.
#[derive(Debug)]
pub struct HashJob {
    /// For the debug log.
    pub user: String,
    pub hash: Hash,
    pub password: String,
    /// The user exists: a match is a success (else the hash is the dummy one).
    pub known: bool,
    pub key: u64,
    pub peer: IpAddr,
    /// Which file (its generation): a verdict for a file since reloaded is not cached.
    pub generation: u64,
}

impl HashJob {
    /// Runs the verification (slow: call it on the job thread).
    pub fn run(&self) -> bool {
        let ok = super::verify::verify(&self.hash, self.password.as_bytes());
        ok && self.known
    }
}

struct File {
    path: PathBuf,
    data: Htpasswd,
    stamp: Option<(SystemTime, u64, u64)>,
    checked: Millis,
}

pub struct Auth {
    files: Vec<File>,
    /// Keyed hashes of (file, user, password, entry) that verified.
    cache: HashSet<u64>,
    /// SipHash with keys from the OS's random source, drawn once per process.
    keyed: std::collections::hash_map::RandomState,
    /// Per address (IPv4, or the /64 of IPv6): start of the window and failures in it.
    failures: HashMap<u128, (Millis, u32)>,
    pub max_failures: u32,
    /// The second of the last hash started, and how many started in it.
    hash_second: Millis,
    hashes: u32,
    generation: u64,
    buf: Vec<u8>,
}

/// Messages for the error log about a file that changed.
pub type Notes = Vec<String>;

impl Auth {
    pub fn new(max_failures: u32) -> Auth {
        Auth {
            files: Vec::new(),
            cache: HashSet::new(),
            keyed: std::collections::hash_map::RandomState::new(),
            failures: HashMap::new(),
            max_failures,
            hash_second: 0,
            hashes: 0,
            generation: 0,
            buf: Vec::with_capacity(128),
        }
    }

    /// A new set of files (a reload): each read now; the cache is dropped. A file that
    /// cannot be read or parsed keeps no users (every login fails) and is reported.
    pub fn set_files(&mut self, paths: &[PathBuf], now: Millis) -> Notes {
        self.cache.clear();
        self.generation += 1;
        let mut notes = Vec::new();
        self.files = paths
            .iter()
            .map(|p| {
                let mut f = File {
                    path: p.clone(),
                    data: Htpasswd::default(),
                    stamp: None,
                    checked: now,
                };
                if let Err(m) = load(&mut f) {
                    notes.push(m);
                }
                f
            })
            .collect();
        notes
    }

    /// Looks at file `i` again if a second has passed; reads it if it changed. On a bad new
    /// version the old users stay.
    fn refresh(&mut self, i: usize, now: Millis) -> Option<String> {
        let f = self.files.get_mut(i)?;
        if now.saturating_sub(f.checked) < RECHECK {
            return None;
        }
        f.checked = now;
        if stamp(&f.path) == f.stamp {
            return None;
        }
        let note = load(f).err();
        self.cache.clear();
        self.generation += 1;
        Some(note.unwrap_or_else(|| format!("htpasswd {} reloaded", f.path.display())))
    }

    /// Decides a request for `file` from its `Authorization` value; `note` receives a line
    /// for the error log when the file was reloaded.
    pub fn check(
        &mut self,
        file: usize,
        authorization: Option<&[u8]>,
        peer: IpAddr,
        now: Millis,
        note: &mut Option<String>,
    ) -> Verdict {
        *note = self.refresh(file, now);
        let Some(value) = authorization else {
            return Verdict::Challenge("no credentials");
        };
        let mut buf = std::mem::take(&mut self.buf);
        let verdict = match basic::parse(value, &mut buf) {
            Ok((user, pass)) => self.credentials(file, user, pass, peer, now),
            Err(BadCredentials::NotBasic) => Verdict::Challenge("not Basic credentials"),
            Err(e) => {
                self.fail(peer, now);
                Verdict::Challenge(e.reason())
            }
        };
        self.buf = buf;
        verdict
    }

    fn credentials(
        &mut self,
        i: usize,
        user: &str,
        pass: &str,
        peer: IpAddr,
        now: Millis,
    ) -> Verdict {
        let Some(f) = self.files.get(i) else {
            return Verdict::Challenge("no such htpasswd file");
        };
        let (hash, known) = match f.data.users.get(user) {
            Some(h) => (h, true),
            None => match &f.data.dummy {
                Some(d) => (d, false),
                None => return Verdict::Challenge("no users"),
            },
        };
        let key = self.key(i, user, pass, hash);
        if known && self.cache.contains(&key) {
            // Known good credentials pass even while their address is limited.
            return Verdict::Admit;
        }
        if self.limited(peer, now) {
            return Verdict::TooMany { retry_after: 60 };
        }
        let second = now / 1000;
        if second != self.hash_second {
            (self.hash_second, self.hashes) = (second, 0);
        }
        if self.hashes >= HASHES_PER_SECOND {
            return Verdict::TooMany { retry_after: 1 };
        }
        self.hashes += 1;
        Verdict::Hash(HashJob {
            user: user.to_string(),
            hash: hash.clone(),
            password: pass.to_string(),
            known,
            key,
            peer,
            generation: self.generation,
        })
    }

    /// The job thread's verdict for `job`: remembered when good, charged to the address
    /// when not. Whether to admit.
    pub fn finish(&mut self, job: &HashJob, ok: bool, now: Millis) -> bool {
        if ok {
            if job.generation == self.generation {
                if self.cache.len() >= CACHE_ENTRIES {
                    self.cache.clear();
                }
                self.cache.insert(job.key);
            }
        } else {
            self.fail(job.peer, now);
        }
        ok
    }

    fn key(&self, file: usize, user: &str, pass: &str, hash: &Hash) -> u64 {
        let mut h = self.keyed.build_hasher();
        h.write_usize(file);
        h.write(user.as_bytes());
        h.write_u8(0xff);
        h.write(pass.as_bytes());
        h.write_u8(0xff);
        match hash {
            Hash::Bcrypt(s) | Hash::ShaCrypt(s) => h.write(s.as_bytes()),
            Hash::Apr1 { salt, hash } => {
                h.write(salt.as_bytes());
                h.write(hash.as_bytes());
            }
            Hash::Sha1(d) => h.write(d),
        }
        h.finish()
    }

    fn limited(&self, peer: IpAddr, now: Millis) -> bool {
        match self.failures.get(&net_key(peer)) {
            Some(&(start, n)) => now.saturating_sub(start) < WINDOW && n >= self.max_failures,
            None => false,
        }
    }

    fn fail(&mut self, peer: IpAddr, now: Millis) {
        if self.failures.len() >= LIMITER_ENTRIES {
            self.failures
                .retain(|_, (start, _)| now.saturating_sub(*start) < WINDOW);
            if self.failures.len() >= LIMITER_ENTRIES {
                let mut starts: Vec<Millis> = self.failures.values().map(|v| v.0).collect();
                starts.sort_unstable();
                let median = starts[starts.len() / 2];
                self.failures.retain(|_, (start, _)| *start > median);
            }
        }
        let e = self.failures.entry(net_key(peer)).or_insert((now, 0));
        if now.saturating_sub(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }

    /// Verified credentials remembered.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

/// IPv4 addresses as themselves; IPv6 by their /64 (one host usually has a whole /64).
fn net_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)) | (1 << 127),
        IpAddr::V6(a) => u128::from(a) & !((1u128 << 64) - 1),
    }
}

fn stamp(p: &Path) -> Option<(SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

fn load(f: &mut File) -> Result<(), String> {
    f.stamp = stamp(&f.path);
    let text = std::fs::read(&f.path).map_err(|e| {
        format!(
            "htpasswd {}: {e}; keeping the users read before",
            f.path.display()
        )
    })?;
    match htpasswd::parse_file(&text) {
        Ok(d) => {
            f.data = d;
            Ok(())
        }
        Err(errs) => {
            let first = &errs[0];
            Err(format!(
                "htpasswd {} line {}: {} ({} bad lines); keeping the users read before",
                f.path.display(),
                first.line,
                first.msg,
                errs.len()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_PW: &str = "a:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n";

    fn basic(cred: &str) -> Vec<u8> {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(cred)
        )
        .into_bytes()
    }

    fn auth_with(text: &str) -> (Auth, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("users");
        std::fs::write(&p, text).unwrap();
        let mut a = Auth::new(3);
        assert!(a.set_files(&[p], 0).is_empty());
        (a, dir)
    }

    fn run(a: &mut Auth, cred: &str, peer: &str, now: Millis) -> &'static str {
        let mut note = None;
        match a.check(0, Some(&basic(cred)), peer.parse().unwrap(), now, &mut note) {
            Verdict::Admit => "admit",
            Verdict::Challenge(_) => "401",
            Verdict::TooMany { .. } => "429",
            Verdict::Hash(job) => {
                let ok = job.run();
                if a.finish(&job, ok, now) {
                    "hashed-admit"
                } else {
                    "hashed-401"
                }
            }
        }
    }

    #[test]
    fn cache_limiter_and_unknown_users() {
        let (mut a, _d) = auth_with(SHA_PW);
        assert_eq!(run(&mut a, "a:pw", "10.0.0.1", 0), "hashed-admit");
        assert_eq!(run(&mut a, "a:pw", "10.0.0.1", 1), "admit");
        // Unknown users and wrong passwords both cost a hash, then count as failures.
        assert_eq!(run(&mut a, "nobody:pw", "10.0.0.2", 2), "hashed-401");
        assert_eq!(run(&mut a, "a:wrong", "10.0.0.2", 3), "hashed-401");
        assert_eq!(run(&mut a, "a:wrong", "10.0.0.2", 4), "hashed-401");
        assert_eq!(run(&mut a, "a:wrong", "10.0.0.2", 5), "429");
        // Good cached credentials from the limited address still pass; others do not.
        assert_eq!(run(&mut a, "a:pw", "10.0.0.2", 6), "admit");
        assert_eq!(run(&mut a, "nobody:pw", "10.0.0.2", 7), "429");
        // A neighbour is not limited; the window ends.
        assert_eq!(run(&mut a, "a:wrong", "10.0.0.3", 8), "hashed-401");
        assert_eq!(run(&mut a, "a:wrong", "10.0.0.2", WINDOW + 6), "hashed-401");
        // IPv6 is limited by /64.
        for i in 0..3 {
            let p = format!("2001:db8::{i}");
            assert_eq!(run(&mut a, "a:x", &p, 10), "hashed-401");
        }
        assert_eq!(run(&mut a, "a:x", "2001:db8::ffff", 11), "429");
        assert_eq!(run(&mut a, "a:x", "2001:db8:0:1::1", 11), "hashed-401");
    }

    #[test]
    fn global_hash_cap() {
        let (mut a, _d) = auth_with(SHA_PW);
        a.max_failures = u32::MAX;
        let mut note = None;
        let mut hashed = 0;
        for i in 0..HASHES_PER_SECOND + 5 {
            let peer: IpAddr = format!("10.1.{}.{}", i / 256, i % 256).parse().unwrap();
            if let Verdict::Hash(_) = a.check(0, Some(&basic("a:x")), peer, 5_000, &mut note) {
                hashed += 1;
            }
        }
        assert_eq!(hashed, HASHES_PER_SECOND);
        assert!(matches!(
            a.check(
                0,
                Some(&basic("a:x")),
                "10.9.9.9".parse().unwrap(),
                6_000,
                &mut note
            ),
            Verdict::Hash(_)
        ));
    }

    #[test]
    fn reload_drops_cache_and_keeps_old_users_on_error() {
        let (mut a, d) = auth_with(SHA_PW);
        assert_eq!(run(&mut a, "a:pw", "10.0.0.1", 0), "hashed-admit");
        let p = d.path().join("users");
        std::fs::write(&p, "a:plain\n").unwrap();
        let mut note = None;
        let _ = a.check(0, None, "10.0.0.1".parse().unwrap(), 2_000, &mut note);
        assert!(note.take().unwrap().contains("plain-text"));
        assert_eq!(run(&mut a, "a:pw", "10.0.0.1", 2_001), "hashed-admit");
        std::fs::write(&p, "b:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\n").unwrap();
        let _ = a.check(0, None, "10.0.0.1".parse().unwrap(), 4_000, &mut note);
        assert!(note.take().unwrap().contains("reloaded"));
        assert_eq!(run(&mut a, "a:pw", "10.0.0.1", 4_001), "hashed-401");
        assert_eq!(run(&mut a, "b:pw", "10.0.0.1", 4_002), "hashed-admit");
    }
}
