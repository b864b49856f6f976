//! The document root as the handler sees it: look up a normalised relative path, get a file
//! (with validators, type and body source prepared once) or a directory, or list a
//! directory. [`RealFs`] opens beneath the root with kernel-enforced containment and caches
//! what it opened until inotify says it changed; [`MemFs`] is an in-memory tree for tests
//! and fuzzing.

mod mem;
pub mod mime;
mod real;

use std::fs::File;
use std::rc::Rc;

pub use mem::MemFs;
pub use mime::MimeTable;
pub use real::{CacheConfig, FxHasher, RealFs};

use crate::http::date;
use crate::http::response::push_hex;

/// The metadata tern derives validators from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub ino: u64,
    /// Seconds since the epoch (may be negative or far in the future).
    pub mtime: i64,
    pub mtime_nsec: u32,
}

/// Where a file's bytes come from.
pub enum Body {
    /// Read into memory when cached (small files: one `writev` with the head).
    Mem(Rc<[u8]>),
    /// An open descriptor, sent with `sendfile`.
    File(Rc<File>),
}

/// A regular file, ready to serve: everything that does not change per request is computed
/// once, when the file is opened.
pub struct FileEntry {
    pub meta: Meta,
    pub body: Body,
    pub content_type: Box<str>,
    /// Strong validator `"ino-size-mtime_ns"` in hex, quotes included (RFC 9110 §8.8.3).
    pub etag: Box<[u8]>,
    /// Precompressed variants found beside the file (`F.br`, `F.zst`, `F.gz`), in
    /// [`VARIANTS`] order. Each has its own size and validators and the original's type.
    pub variants: [Option<Rc<FileEntry>>; 3],
    /// The headers of a whole-file 200, formatted on first use by the handler and copied
    /// after that (the entry is replaced whenever the file changes).
    pub head_200: std::cell::OnceCell<Box<[u8]>>,
}

/// Suffixes of precompressed variants, in the order of [`FileEntry::variants`] and of
/// `http::negotiate::Coding` (br, zstd, gzip).
pub const VARIANTS: [&[u8]; 3] = [b".br", b".zst", b".gz"];

impl FileEntry {
    pub fn new(meta: Meta, body: Body, content_type: Box<str>) -> FileEntry {
        FileEntry {
            meta,
            body,
            content_type,
            etag: etag(&meta),
            variants: [None, None, None],
            head_200: std::cell::OnceCell::new(),
        }
    }

    pub fn has_variants(&self) -> bool {
        self.variants.iter().any(Option::is_some)
    }

    /// `Last-Modified` in Unix seconds as sent with a response dated `now`.
    pub fn last_modified(&self, now: i64) -> i64 {
        date::clamp_last_modified(self.meta.mtime, now)
    }
}

/// A strong ETag from inode, size and modification time in nanoseconds: stable across
/// restarts and changed by any write that changes the size or the mtime.
pub fn etag(meta: &Meta) -> Box<[u8]> {
    let mut v = Vec::with_capacity(48);
    v.push(b'"');
    push_hex(&mut v, meta.ino);
    v.push(b'-');
    push_hex(&mut v, meta.size);
    v.push(b'-');
    let ns = i128::from(meta.mtime) * 1_000_000_000 + i128::from(meta.mtime_nsec);
    if ns < 0 {
        v.push(b'n');
    }
    let abs = ns.unsigned_abs();
    if abs >> 64 != 0 {
        push_hex(&mut v, (abs >> 64) as u64);
        v.push(b'.');
    }
    push_hex(&mut v, abs as u64);
    v.push(b'"');
    v.into_boxed_slice()
}

/// What a path names.
pub enum Node {
    File(Rc<FileEntry>),
    Dir(Meta),
}

/// Why a path cannot be served, mapped to statuses as nginx does.
#[derive(Debug)]
pub enum FsError {
    /// Missing, not a directory, outside the root, or not a regular file: 404.
    NotFound,
    /// Permission denied or a symlink loop: 403.
    Forbidden,
    /// Out of descriptors: 503, try again.
    Busy,
    /// Anything else: 500, logged.
    Other(std::io::Error),
}

impl FsError {
    pub fn from_io(e: std::io::Error) -> FsError {
        match e.raw_os_error() {
            Some(libc::ENOENT)
            | Some(libc::ENOTDIR)
            | Some(libc::ENAMETOOLONG)
            | Some(libc::EXDEV) => FsError::NotFound,
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::ELOOP) => FsError::Forbidden,
            Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOMEM) => FsError::Busy,
            _ => FsError::Other(e),
        }
    }
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    pub name: Vec<u8>,
    pub is_dir: bool,
    pub size: u64,
    pub mtime: i64,
}

/// Which document root a path is relative to (a route's directory, a file route's parent).
pub type RootId = u16;

pub trait Fs {
    /// Looks up `rel` beneath `root`: no leading `/`, no dot segments; empty is the root
    /// itself. An unknown root is `NotFound`.
    fn lookup(&mut self, root: RootId, rel: &[u8]) -> Result<Node, FsError>;
    /// Lists the directory `rel` into `out` (cleared first), unsorted, including dotfiles.
    /// Entries that resolve outside the root are left out.
    fn list(&mut self, root: RootId, rel: &[u8], out: &mut Vec<ListEntry>) -> Result<(), FsError>;
    /// Drops anything cached about `rel` (and the directories above it): it was just
    /// written. Nothing to do where nothing is cached.
    fn forget(&mut self, _root: RootId, _rel: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_changes_with_every_field() {
        let m = Meta {
            size: 10,
            ino: 7,
            mtime: 1_700_000_000,
            mtime_nsec: 5,
        };
        let base = etag(&m);
        assert_eq!(base.first(), Some(&b'"'));
        for other in [
            Meta { size: 11, ..m },
            Meta { ino: 8, ..m },
            Meta {
                mtime: 1_700_000_001,
                ..m
            },
            Meta { mtime_nsec: 6, ..m },
            Meta {
                mtime: -1_700_000_000,
                ..m
            },
        ] {
            assert_ne!(etag(&other), base);
        }
        assert_eq!(etag(&m), base);
    }
}
