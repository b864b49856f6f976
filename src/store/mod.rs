//! The key-value store behind `store = "DIR"` routes: which keys are acceptable, and the
//! file operations of a write. A write is streamed into an unnamed file (`O_TMPFILE`, or a
//! hidden random name where the file system has none) in the key's own directory as the
//! body arrives ([`Upload::write`], on the event loop: one `write` per chunk), then
//! [`commit`] — on the job thread, never on the loop — checks the preconditions again,
//! validates JSON, records the type, `fsync`s, links the file into place with a rename (so
//! a reader sees the old or the new bytes, never a mix) and `fsync`s the directory. An
//! upload dropped before its commit (client gone, timeout, refusal) leaves no trace.
//! [`delete`] removes a key the same way. The syscalls are in `crate::sys::store`.
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::sys::fs::Stat;
use crate::sys::store as sys;

/// The extended attribute holding a value's `Content-Type`.
pub const XATTR: &CStr = c"user.mime_type";
/// Longest `Content-Type` kept.
pub const MAX_TYPE: usize = 255;
/// Held from the precondition check to the rename of every commit and delete.
static COMMIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// Write-back is started every this many bytes (`sync_file_range`).
const WRITEBACK_EVERY: u64 = 1 << 20;

/// Why a request cannot write (or delete) a key, with its status.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreError {
    /// 400: not a key (dot segment, encoded slash, trailing slash, too long, bad JSON).
    BadRequest(String),
    /// 403: a dotfile, or a symlink on the way.
    Forbidden(&'static str),
    /// 404: DELETE of a missing key.
    NotFound,
    /// 409: a directory in the way, or a missing one without `create_dirs`.
    Conflict(&'static str),
    /// 412: If-Match, If-None-Match or If-Unmodified-Since failed.
    PreconditionFailed,
    /// 500, logged.
    Io(String),
}

impl StoreError {
    pub fn status(&self) -> u16 {
        match self {
            StoreError::BadRequest(_) => 400,
            StoreError::Forbidden(_) => 403,
            StoreError::NotFound => 404,
            StoreError::Conflict(_) => 409,
            StoreError::PreconditionFailed => 412,
            StoreError::Io(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            StoreError::BadRequest(m) | StoreError::Io(m) => m.clone(),
            StoreError::Forbidden(m) | StoreError::Conflict(m) => (*m).to_string(),
            StoreError::NotFound => "no such key".into(),
            StoreError::PreconditionFailed => "precondition failed".into(),
        }
    }

    fn io(what: &str, e: io::Error) -> StoreError {
        StoreError::Io(format!("{what}: {e}"))
    }
}

/// Checks the raw (still percent-encoded) path beneath the route: a write must name its key
/// exactly, so `.`/`..` segments (raw or encoded), empty segments and encoded slashes are
/// refused rather than resolved.
pub fn check_raw(raw: &[u8]) -> Result<(), StoreError> {
    for seg in raw.split(|&b| b == b'/') {
        let lower = seg.to_ascii_lowercase();
        let dots = String::from_utf8_lossy(&lower).replace("%2e", ".");
        if dots == "." || dots == ".." {
            return Err(StoreError::BadRequest("dot segments are not keys".into()));
        }
        if memchr::memmem::find(&lower, b"%2f").is_some()
            || memchr::memmem::find(&lower, b"%5c").is_some()
        {
            return Err(StoreError::BadRequest(
                "an encoded slash is not part of a key".into(),
            ));
        }
    }
    Ok(())
}

/// A key beneath the store: its directory components and its name (each NUL-free, no `/`).
#[derive(Debug, PartialEq, Eq)]
pub struct Key {
    pub dirs: Vec<CString>,
    pub name: CString,
}

impl Key {
    /// A normalised path beneath the route (see `http::path::normalize`; `dir` when it ended
    /// in `/`) as a key.
    pub fn parse(rel: &[u8], dir: bool) -> Result<Key, StoreError> {
        if rel.is_empty() || dir {
            return Err(StoreError::BadRequest(
                "a key names a file, not a directory".into(),
            ));
        }
        let mut parts = Vec::new();
        for seg in rel.split(|&b| b == b'/') {
            if seg.is_empty() {
                return Err(StoreError::BadRequest("empty segment in key".into()));
            }
            if seg[0] == b'.' {
                return Err(StoreError::Forbidden("keys may not start with a dot"));
            }
            if seg.len() > 255 {
                return Err(StoreError::BadRequest(
                    "key segment longer than 255 bytes".into(),
                ));
            }
            let c = CString::new(seg).map_err(|_| StoreError::BadRequest("NUL in key".into()))?;
            parts.push(c);
        }
        let name = parts
            .pop()
            .ok_or(StoreError::BadRequest("empty key".into()))?;
        Ok(Key { dirs: parts, name })
    }
}

/// Opens the directory of `key` beneath `root`, one component at a time without following
/// symlinks; missing ones are created when `create`.
pub fn open_parent(root: BorrowedFd<'_>, key: &Key, create: bool) -> Result<OwnedFd, StoreError> {
    let mut cur = root
        .try_clone_to_owned()
        .map_err(|e| StoreError::io("store", e))?;
    for d in &key.dirs {
        let next = match sys::open_subdir(cur.as_fd(), d) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                match sys::mkdir_at(cur.as_fd(), d) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(StoreError::io("mkdir", e)),
                }
                sys::open_subdir(cur.as_fd(), d)
            }
            r => r,
        };
        cur = next.map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => {
                StoreError::Conflict("the key's directory does not exist (create_dirs = false)")
            }
            Some(libc::ELOOP) => StoreError::Forbidden("a symlink is in the key's path"),
            // O_DIRECTORY | O_NOFOLLOW on a symlink says ENOTDIR: tell the two apart.
            Some(libc::ENOTDIR) => match sys::lstat_at(cur.as_fd(), d) {
                Ok(st) if st.mode & libc::S_IFMT == libc::S_IFLNK => {
                    StoreError::Forbidden("a symlink is in the key's path")
                }
                _ => StoreError::Conflict("a file is in the key's path"),
            },
            Some(libc::EACCES) => StoreError::Forbidden("permission denied"),
            _ => StoreError::io("open directory", e),
        })?;
    }
    Ok(cur)
}

/// What is at a key now: `None` when absent. A symlink or a directory is refused.
pub fn current(dir: BorrowedFd<'_>, name: &CStr) -> Result<Option<Stat>, StoreError> {
    match sys::lstat_at(dir, name) {
        Ok(st) if st.mode & libc::S_IFMT == libc::S_IFLNK => {
            Err(StoreError::Forbidden("the key is a symlink"))
        }
        Ok(st) if st.is_dir() => Err(StoreError::Conflict("the key is a directory")),
        Ok(st) if !st.is_file() => Err(StoreError::Forbidden("the key is not a regular file")),
        Ok(st) => Ok(Some(st)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(StoreError::io("stat", e)),
    }
}

/// The strong ETag the static path gives a file with this metadata.
pub fn etag_of(st: &Stat) -> Box<[u8]> {
    crate::fs::etag(&crate::fs::Meta {
        size: st.size,
        ino: st.ino,
        mtime: st.mtime,
        mtime_nsec: st.mtime_nsec,
    })
}

/// RFC 9110 §13 preconditions of a write, as owned values (evaluated at the start, to
/// answer before the body, and again at commit, against what is there then).
#[derive(Clone, Debug, Default)]
pub struct Preconditions {
    pub if_match: Option<Vec<u8>>,
    /// Fails when it matches the current value (weak comparison; `*` matches any).
    pub if_none_match: Option<Vec<u8>>,
    /// `If-None-Match: *`: create only (other values are ignored for writes).
    pub create_only: bool,
    pub if_unmodified_since: Option<i64>,
}

impl Preconditions {
    pub fn pass(&self, cur: Option<&Stat>) -> bool {
        if let Some(m) = &self.if_match {
            // §13.1.1: strong comparison; `*` needs a current representation.
            match cur {
                None => return false,
                Some(st) => {
                    if !crate::http::conditional::etag_matches(&[m], &etag_of(st), true) {
                        return false;
                    }
                }
            }
        } else if let (Some(t), Some(st)) = (self.if_unmodified_since, cur) {
            // §13.1.4: ignored when If-Match is present.
            if st.mtime > t {
                return false;
            }
        }
        if let (Some(v), Some(st)) = (&self.if_none_match, cur) {
            if crate::http::conditional::etag_matches(&[v], &etag_of(st), false) {
                return false;
            }
        }
        !(self.create_only && cur.is_some())
    }
}

/// How the unnamed file will get its name.
#[derive(Debug)]
enum Temp {
    /// `O_TMPFILE`: linked under a hidden name only at commit.
    Unnamed,
    /// Created under this hidden name already (no `O_TMPFILE` here); unlinked on drop.
    Named(CString),
}

/// A value being written. Dropping it before [`commit`] removes every trace.
#[derive(Debug)]
pub struct Upload {
    dir: Arc<OwnedFd>,
    name: CString,
    file: File,
    temp: Temp,
    written: u64,
    writeback_from: u64,
}

impl Upload {
    /// A new, empty value for `key` (the directory must be open already).
    pub fn begin(dir: OwnedFd, name: &CStr) -> Result<Upload, StoreError> {
        // An unnamed file is named through /proc/self/fd unless the process may use
        // AT_EMPTY_PATH (CAP_DAC_READ_SEARCH): in a chroot without /proc, use the fallback.
        static LINKABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let unnamed = *LINKABLE.get_or_init(|| std::path::Path::new("/proc/self/fd").is_dir());
        Upload::begin_as(dir, name, unnamed)
    }

    /// `begin`, with `O_TMPFILE` tried only when `unnamed` (tests take the fallback too).
    fn begin_as(dir: OwnedFd, name: &CStr, unnamed: bool) -> Result<Upload, StoreError> {
        let tmp = if unnamed {
            sys::open_tmpfile(dir.as_fd())
        } else {
            Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
        };
        let (file, temp) = match tmp {
            Ok(f) => (f, Temp::Unnamed),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOENT)
                ) =>
            {
                let hidden = hidden_name(name);
                let f = sys::create_new(dir.as_fd(), &hidden)
                    .map_err(|e| StoreError::io("create temporary file", e))?;
                (f, Temp::Named(hidden))
            }
            Err(e) => return Err(StoreError::io("open temporary file", e)),
        };
        Ok(Upload {
            dir: Arc::new(dir),
            name: name.to_owned(),
            file,
            temp,
            written: 0,
            writeback_from: 0,
        })
    }

    /// Appends body bytes (one `write` call per slice, on the loop), starting write-back
    /// every MiB so the final `fsync` finds little left.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)?;
        self.written += data.len() as u64;
        if self.written - self.writeback_from >= WRITEBACK_EVERY {
            let _ = sys::start_writeback(
                &self.file,
                self.writeback_from,
                self.written - self.writeback_from,
            );
            self.writeback_from = self.written;
        }
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Temp::Named(n) = &self.temp {
            let _ = sys::unlink_at(self.dir.as_fd(), n);
        }
    }
}

/// `.NAME.tern-XXXXXXXXXXXXXXXX`: never a key (keys cannot start with a dot), random so that
/// two uploads never collide.
fn hidden_name(name: &CStr) -> CString {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(name.to_bytes());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let mut n = Vec::with_capacity(name.to_bytes().len() + 24);
    n.push(b'.');
    n.extend_from_slice(&name.to_bytes()[..name.to_bytes().len().min(200)]);
    n.extend_from_slice(format!(".tern-{:016x}", h.finish()).as_bytes());
    CString::new(n).unwrap_or_else(|_| c".tern-upload".to_owned())
}

/// The sidecar that holds a value's type where extended attributes are not supported.
pub fn sidecar_name(name: &CStr) -> CString {
    let mut n = b".".to_vec();
    n.extend_from_slice(name.to_bytes());
    n.extend_from_slice(b".mime_type");
    CString::new(n).unwrap_or_else(|_| c".mime_type".to_owned())
}

/// Everything a commit needs, owned: it moves to the job thread and back.
#[derive(Debug)]
pub struct CommitJob {
    pub upload: Upload,
    pub content_type: Option<String>,
    /// Validate the body as JSON first (its type is `application/json`).
    pub json: bool,
    pub pre: Preconditions,
}

/// A stored value.
#[derive(Debug, PartialEq, Eq)]
pub struct Committed {
    /// No value was there before.
    pub created: bool,
    pub stat: Stat,
}

/// Makes the upload the key's value (job thread: blocks on the disk).
pub fn commit(job: CommitJob) -> Result<Committed, StoreError> {
    let CommitJob {
        mut upload,
        content_type,
        json,
        pre,
    } = job;
    if json {
        validate_json(&mut upload.file)?;
    }
    let dir = Arc::clone(&upload.dir);
    let dir = dir.as_fd();
    let mut sidecar = false;
    if let Some(t) = &content_type {
        match sys::set_xattr(&upload.file, XATTR, t.as_bytes()) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP)) => sidecar = true,
            Err(e) => return Err(StoreError::io("set type", e)),
        }
    }
    upload
        .file
        .sync_all()
        .map_err(|e| StoreError::io("fsync", e))?;
    let hidden = match &upload.temp {
        Temp::Named(n) => n.clone(),
        Temp::Unnamed => {
            let n = hidden_name(&upload.name);
            sys::link_fd(&upload.file, dir, &n).map_err(|e| StoreError::io("link", e))?;
            upload.temp = Temp::Named(n.clone());
            n
        }
    };
    // Commits may run on several job threads: the check and the rename below hold one lock,
    // so they see the same key (another process writing the directory could still slip in
    // between; tern's own writers cannot).
    let guard = COMMIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cur = current(dir, &upload.name)?;
    if !pre.pass(cur.as_ref()) {
        return Err(StoreError::PreconditionFailed);
    }
    if sidecar {
        write_sidecar(
            dir,
            &upload.name,
            content_type.as_deref().unwrap_or_default(),
        )?;
    } else if content_type.is_none() {
        let _ = sys::unlink_at(dir, &sidecar_name(&upload.name));
    }
    match sys::rename_in(dir, &hidden, &upload.name, pre.create_only) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            return Err(StoreError::PreconditionFailed)
        }
        Err(e) => return Err(StoreError::io("rename", e)),
    }
    upload.temp = Temp::Unnamed;
    drop(guard);
    sync_dir(dir)?;
    let stat = sys::lstat_at(dir, &upload.name).map_err(|e| StoreError::io("stat", e))?;
    Ok(Committed {
        created: cur.is_none(),
        stat,
    })
}

fn write_sidecar(dir: BorrowedFd<'_>, name: &CStr, ty: &str) -> Result<(), StoreError> {
    let side = sidecar_name(name);
    let tmp = hidden_name(&side);
    let mut f = sys::create_new(dir, &tmp).map_err(|e| StoreError::io("sidecar", e))?;
    let r = f
        .write_all(ty.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| sys::rename_in(dir, &tmp, &side, false));
    if let Err(e) = r {
        let _ = sys::unlink_at(dir, &tmp);
        return Err(StoreError::io("sidecar", e));
    }
    Ok(())
}

fn sync_dir(dir: BorrowedFd<'_>) -> Result<(), StoreError> {
    let d = File::from(
        dir.try_clone_to_owned()
            .map_err(|e| StoreError::io("dup", e))?,
    );
    d.sync_all()
        .map_err(|e| StoreError::io("fsync directory", e))
}

/// serde_json's verdict on the whole file, read back in 64 KiB steps (flat memory for any
/// size); its message names line and column.
fn validate_json(f: &mut File) -> Result<(), StoreError> {
    use serde::Deserialize;
    f.rewind().map_err(|e| StoreError::io("rewind", e))?;
    let reader = io::BufReader::with_capacity(64 * 1024, Read::by_ref(f));
    let mut de = serde_json::Deserializer::from_reader(reader);
    serde::de::IgnoredAny::deserialize(&mut de)
        .and_then(|_| de.end())
        .map_err(|e| StoreError::BadRequest(format!("invalid JSON: {e}")))
}

/// Removes a key and its sidecar, then `fsync`s the directory (job thread).
pub fn delete(dir: OwnedFd, name: &CStr, pre: &Preconditions) -> Result<(), StoreError> {
    let guard = COMMIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cur = current(dir.as_fd(), name)?;
    if cur.is_none() {
        return Err(StoreError::NotFound);
    }
    if !pre.pass(cur.as_ref()) {
        return Err(StoreError::PreconditionFailed);
    }
    match sys::unlink_at(dir.as_fd(), name) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(StoreError::NotFound),
        Err(e) => return Err(StoreError::io("unlink", e)),
    }
    let _ = sys::unlink_at(dir.as_fd(), &sidecar_name(name));
    drop(guard);
    sync_dir(dir.as_fd())
}

/// Whether a client's `Content-Type` may be stored and sent back: visible ASCII and spaces,
/// at most [`MAX_TYPE`] bytes, `type/subtype` before any parameter.
pub fn valid_type(t: &str) -> bool {
    let main = t.split(';').next().unwrap_or_default().trim();
    !t.is_empty()
        && t.len() <= MAX_TYPE
        && t.bytes()
            .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
        && main.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && a.bytes().chain(b.bytes()).all(crate::http::is_tchar)
        })
}

/// The stored type of an open value: its xattr, else its sidecar in `dir`.
pub fn stored_type(file: &File, dir: Option<BorrowedFd<'_>>, name: &CStr) -> Option<String> {
    let mut buf = [0u8; MAX_TYPE];
    if let Ok(n) = sys::get_xattr(file, XATTR, &mut buf) {
        return std::str::from_utf8(&buf[..n])
            .ok()
            .filter(|t| valid_type(t))
            .map(str::to_string);
    }
    let dir = dir?;
    let side = sidecar_name(name);
    let f = crate::sys::fs::open_at(dir, &side).ok()?;
    let mut s = String::new();
    f.take(MAX_TYPE as u64).read_to_string(&mut s).ok()?;
    Some(s)
}

#[cfg(test)]
mod tests;
