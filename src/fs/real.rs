//! The real document root. Every open is contained beneath the root by the kernel
//! (`openat2` + `RESOLVE_BENEATH`) or, where that cannot decide (old kernels, absolute
//! symlinks), by checking the opened descriptor's real path. What was opened is cached —
//! small files as bytes, larger ones as open descriptors — and inotify watches on each
//! cached inode and on every directory along its path drop an entry the moment the file is
//! written, replaced, renamed or deleted. So a cached hit costs no system call at all.
use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{Body, FileEntry, Fs, FsError, ListEntry, Meta, MimeTable, Node, RootId, VARIANTS};
use crate::sys::fs::{self as sysfs, Beneath};
use crate::sys::inotify::{self as ino, Inotify};

/// Bounds of the open-file cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries (files and directories) kept; 0 turns the cache off.
    pub max_entries: usize,
    /// Most descriptors held open by cached entries.
    pub max_fds: usize,
    /// Files up to this size are cached as bytes and sent with the head in one write.
    pub mem_file_max: u64,
    /// Total bytes of cached file contents.
    pub mem_total: u64,
    /// Look for precompressed variants (`F.br`, `F.zst`, `F.gz`) beside each file.
    pub precompressed: bool,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: 10_000,
            max_fds: 1_000,
            mem_file_max: 64 * 1024,
            mem_total: 64 << 20,
            precompressed: true,
        }
    }
}

impl Clone for Node {
    fn clone(&self) -> Node {
        match self {
            Node::File(f) => Node::File(Rc::clone(f)),
            Node::Dir(m) => Node::Dir(*m),
        }
    }
}

struct Cached {
    node: Node,
    /// inotify watches on the inodes this entry was built from (file and variants).
    wds: Vec<i32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Other,
}

fn meta_of(f: &File) -> Result<(Meta, Kind), FsError> {
    let st = f.metadata().map_err(FsError::from_io)?;
    let meta = Meta {
        size: st.size(),
        ino: st.ino(),
        mtime: st.mtime(),
        mtime_nsec: st.mtime_nsec() as u32,
    };
    let kind = if st.is_file() {
        Kind::File
    } else if st.is_dir() {
        Kind::Dir
    } else {
        Kind::Other
    };
    Ok((meta, kind))
}

/// Memory bytes and descriptors an entry (with its variants) holds.
fn cost(f: &FileEntry) -> (u64, usize) {
    let own = match f.body {
        Body::Mem(_) => (f.meta.size, 0),
        Body::File(_) => (0, 1),
    };
    f.variants
        .iter()
        .flatten()
        .map(|v| cost(v))
        .fold(own, |a, b| (a.0 + b.0, a.1 + b.1))
}

/// The Fx hash (rustc's): a multiply and a rotate per 8 bytes. The cache is keyed only by
/// paths of files that exist, which a client cannot choose, so a keyed hash's defence
/// against collision flooding buys nothing here, and SipHash cost ~190 instructions per
/// request.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// Directory watches report structural changes: entries created, deleted, renamed, or
/// attributes (permissions) changed.
const DIR_MASK: u32 = ino::IN_CREATE
    | ino::IN_DELETE
    | ino::IN_MOVED_FROM
    | ino::IN_MOVED_TO
    | ino::IN_DELETE_SELF
    | ino::IN_MOVE_SELF
    | ino::IN_ATTRIB
    | libc::IN_ONLYDIR;
/// File watches report content and metadata changes, including the link-count change of an
/// unlink or of being replaced by a rename.
const FILE_MASK: u32 =
    ino::IN_MODIFY | ino::IN_ATTRIB | ino::IN_CLOSE_WRITE | ino::IN_DELETE_SELF | ino::IN_MOVE_SELF;

/// One document root: a directory held open, its path (for inotify and the `/proc` check),
/// the MIME table its files are typed with, and what was opened beneath it.
struct Root {
    fd: OwnedFd,
    path: PathBuf,
    mime: MimeTable,
    /// A store's directory: files typed by their stored type, no precompressed variants.
    store: bool,
    cache: HashMap<Box<[u8]>, Cached, BuildHasherDefault<FxHasher>>,
}

/// A cached path: which root, and the path relative to it.
type Key = (RootId, Box<[u8]>);

pub struct RealFs {
    /// Indexed by [`RootId`]; `None` for a root that a reload dropped (ids are reused).
    roots: Vec<Option<Root>>,
    cfg: CacheConfig,
    inotify: Option<Inotify>,
    /// A directory watch may serve several roots (one inode, one watch: a route's directory
    /// can lie inside another route's).
    dir_by_wd: HashMap<i32, Vec<Key>>,
    wd_by_dir: HashMap<Key, i32>,
    keys_by_wd: HashMap<i32, Vec<Key>>,
    entries: usize,
    fds_held: usize,
    mem_held: u64,
    cpath: Vec<u8>,
    events: Box<[u8]>,
    /// Whether opens are checked to stay beneath their root (always, except in a debug build
    /// started with `TERN_TEST_NO_CONTAINMENT=1`, which the Landlock test uses to show that
    /// the kernel's sandbox alone refuses a symlink out of the root).
    contain: bool,
}

impl RealFs {
    /// A file system with no roots yet. Caching needs inotify: without it the cache is off
    /// (it would otherwise need a `stat` per request to stay correct). inotify is set up even
    /// while the cache is off, so that a reload can turn it on.
    pub fn new(cfg: CacheConfig) -> RealFs {
        let inotify = Inotify::new().ok();
        RealFs {
            roots: Vec::new(),
            cfg,
            inotify,
            dir_by_wd: HashMap::new(),
            wd_by_dir: HashMap::new(),
            keys_by_wd: HashMap::new(),
            entries: 0,
            fds_held: 0,
            mem_held: 0,
            cpath: Vec::with_capacity(256),
            events: vec![0; 64 * 1024].into_boxed_slice(),
            contain: !(cfg!(debug_assertions)
                && std::env::var_os("TERN_TEST_NO_CONTAINMENT").is_some_and(|v| v == "1")),
        }
    }

    /// One root: the common case and the tests' shorthand.
    pub fn open(root: &Path, mime: MimeTable, cfg: CacheConfig) -> io::Result<RealFs> {
        let mut fs = RealFs::new(cfg);
        fs.add_root(root, &mime)?;
        Ok(fs)
    }

    /// The id of the directory `path` typed with `mime`: an existing root when one has the
    /// same real path and table (so its cache is kept across reloads), else a new one.
    pub fn add_root(&mut self, path: &Path, mime: &MimeTable) -> io::Result<RootId> {
        self.add_root_as(path, mime, false)
    }

    /// A store's directory (see [`crate::store`]): each file's type is the one stored with
    /// it, and no precompressed variant is looked for (a client could upload `KEY.gz`).
    pub fn add_store_root(&mut self, path: &Path, mime: &MimeTable) -> io::Result<RootId> {
        self.add_root_as(path, mime, true)
    }

    fn add_root_as(&mut self, path: &Path, mime: &MimeTable, store: bool) -> io::Result<RootId> {
        let real = std::fs::canonicalize(path)?;
        let found = self.roots.iter().position(|r| {
            r.as_ref()
                .is_some_and(|r| r.path == real && r.mime == *mime && r.store == store)
        });
        if let Some(i) = found {
            return Ok(i as RootId);
        }
        let fd = sysfs::open_dir(&real)?;
        let root = Root {
            fd,
            path: real,
            mime: mime.clone(),
            store,
            cache: HashMap::default(),
        };
        let slot = self.roots.iter().position(Option::is_none);
        let id = slot.unwrap_or(self.roots.len());
        if id > RootId::MAX as usize {
            return Err(io::Error::other("too many document roots"));
        }
        match slot {
            Some(i) => self.roots[i] = Some(root),
            None => self.roots.push(Some(root)),
        }
        Ok(id as RootId)
    }

    /// After `chroot(dir)`: each root's path as the process now sees it, so directory watches
    /// and reloads (which name roots inside the chroot) find it. Roots were opened through
    /// `dir` just before. Whether file watches still work depends on `/proc` in the chroot.
    pub fn enter_chroot(&mut self, dir: &Path) {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        for r in self.roots.iter_mut().flatten() {
            if let Ok(rel) = r.path.strip_prefix(&dir) {
                r.path = Path::new("/").join(rel);
            }
        }
        self.clear();
    }

    /// Whether a file's inode can be watched through `/proc/self/fd` (inside a chroot
    /// without `/proc` it cannot, and files are then served uncached, opened per request).
    pub fn can_watch_files(&self) -> bool {
        self.inotify.is_none() || Path::new("/proc/self/fd").is_dir()
    }

    /// Closes every root not in `keep`, dropping what was cached beneath it.
    pub fn retain_roots(&mut self, keep: &[RootId]) {
        for id in 0..self.roots.len() {
            let id = id as RootId;
            if self.roots[id as usize].is_some() && !keep.contains(&id) {
                self.invalidate_tree(id, b"");
                self.roots[id as usize] = None;
                let gone: Vec<i32> = self
                    .dir_by_wd
                    .iter_mut()
                    .filter_map(|(wd, dirs)| {
                        dirs.retain(|(r, _)| *r != id);
                        dirs.is_empty().then_some(*wd)
                    })
                    .collect();
                for wd in gone {
                    self.dir_by_wd.remove(&wd);
                    if let Some(i) = &self.inotify {
                        i.rm_watch(wd);
                    }
                }
                self.wd_by_dir.retain(|(r, _), _| *r != id);
            }
        }
    }

    /// New cache bounds (a reload): everything cached is dropped when they change.
    pub fn set_cache_config(&mut self, mut cfg: CacheConfig, nofile: u64) {
        cfg.max_fds = cfg.max_fds.min((nofile / 4) as usize);
        if cfg != self.cfg {
            self.clear();
            self.cfg = cfg;
        }
    }

    /// The real path of a root (for messages and tests).
    pub fn root_path(&self, id: RootId) -> Option<&Path> {
        self.root(id).map(|r| r.path.as_path())
    }

    fn root(&self, id: RootId) -> Option<&Root> {
        self.roots.get(id as usize).and_then(Option::as_ref)
    }

    /// Number of cached entries (for tests and stats).
    pub fn cached(&self) -> usize {
        self.entries
    }

    /// The inotify descriptor to poll, if caching is on.
    pub fn notify_fd(&self) -> Option<BorrowedFd<'_>> {
        self.inotify.as_ref().map(|i| i.as_fd())
    }

    /// Reads pending inotify events and drops every entry they concern.
    pub fn on_notify(&mut self) {
        let Some(mut inotify) = self.inotify.take() else {
            return;
        };
        let mut events = std::mem::take(&mut self.events);
        let mut todo: Vec<(i32, u32, Vec<u8>)> = Vec::new();
        loop {
            match inotify.read_events(&mut events, |e| todo.push((e.wd, e.mask, e.name.to_vec()))) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(_) => {
                    todo.push((-1, ino::IN_Q_OVERFLOW, Vec::new()));
                    break;
                }
            }
        }
        self.events = events;
        self.inotify = Some(inotify);
        for (wd, mask, name) in todo {
            self.apply_event(wd, mask, &name);
        }
    }

    fn apply_event(&mut self, wd: i32, mask: u32, name: &[u8]) {
        if mask & ino::IN_Q_OVERFLOW != 0 {
            return self.clear();
        }
        if let Some(dirs) = self.dir_by_wd.get(&wd).cloned() {
            for (root, dir) in dirs {
                self.apply_dir_event(root, &dir, mask, name);
            }
            if mask & ino::IN_IGNORED != 0 {
                for key in self.dir_by_wd.remove(&wd).unwrap_or_default() {
                    self.wd_by_dir.remove(&key);
                }
            }
        } else if let Some(keys) = self.keys_by_wd.get(&wd).cloned() {
            for (root, key) in keys {
                self.invalidate(root, &key);
            }
            if mask & ino::IN_IGNORED != 0 {
                self.keys_by_wd.remove(&wd);
            }
        }
    }

    fn apply_dir_event(&mut self, root: RootId, dir: &[u8], mask: u32, name: &[u8]) {
        if name.is_empty()
            || mask & (ino::IN_IGNORED | ino::IN_DELETE_SELF | ino::IN_MOVE_SELF) != 0
        {
            // The directory itself changed or went away: everything under it is suspect.
            return self.invalidate_tree(root, dir);
        }
        let child: Vec<u8> = if dir.is_empty() {
            name.to_vec()
        } else {
            [dir, b"/", name].concat()
        };
        self.invalidate(root, dir);
        self.invalidate_tree(root, &child);
        // A new or removed precompressed variant changes what its original offers.
        for suffix in [&b".gz"[..], b".br", b".zst"] {
            if let Some(base) = child.strip_suffix(suffix) {
                self.invalidate(root, base);
            }
        }
    }

    /// Drops `key` and everything below it (everything in the root when `key` is empty).
    fn invalidate_tree(&mut self, root: RootId, key: &[u8]) {
        let Some(r) = self.root(root) else {
            return;
        };
        let doomed: Vec<Box<[u8]>> = r
            .cache
            .keys()
            .filter(|k| {
                key.is_empty()
                    || (k.starts_with(key) && (k.len() == key.len() || k[key.len()] == b'/'))
            })
            .cloned()
            .collect();
        for k in doomed {
            self.invalidate(root, &k);
        }
    }

    fn invalidate(&mut self, root: RootId, key: &[u8]) {
        let Some(c) = self
            .roots
            .get_mut(root as usize)
            .and_then(Option::as_mut)
            .and_then(|r| r.cache.remove(key))
        else {
            return;
        };
        self.entries -= 1;
        if let Node::File(f) = &c.node {
            let (mem, fds) = cost(f);
            self.mem_held -= mem;
            self.fds_held -= fds;
        }
        for wd in c.wds {
            if let Some(keys) = self.keys_by_wd.get_mut(&wd) {
                keys.retain(|(r, k)| *r != root || &**k != key);
                if keys.is_empty() {
                    self.keys_by_wd.remove(&wd);
                    if let Some(i) = &self.inotify {
                        i.rm_watch(wd);
                    }
                }
            }
        }
    }

    /// Empties the cache (it is full, or inotify lost events).
    pub fn clear(&mut self) {
        if let Some(i) = &self.inotify {
            for wd in self.keys_by_wd.keys() {
                i.rm_watch(*wd);
            }
        }
        self.keys_by_wd.clear();
        for r in self.roots.iter_mut().flatten() {
            r.cache.clear();
        }
        self.entries = 0;
        self.fds_held = 0;
        self.mem_held = 0;
    }

    /// Opens `rel` so that it is guaranteed to lie beneath the root.
    fn open_contained(&mut self, root: RootId, rel: &[u8]) -> Result<File, FsError> {
        let Some(r) = self.roots.get(root as usize).and_then(Option::as_ref) else {
            return Err(FsError::NotFound);
        };
        let path = c_rel(&mut self.cpath, rel)?;
        let dir = r.fd.as_fd();
        if !self.contain {
            // Test builds only (see `contain`): follow any symlink, check nothing.
            return sysfs::open_at(dir, path).map_err(FsError::from_io);
        }
        match sysfs::open_beneath(dir, path).map_err(FsError::from_io)? {
            Beneath::Opened(f) => Ok(f),
            Beneath::Unsure => {
                // An absolute symlink, an escape, or no openat2: open, then ask the kernel
                // where the descriptor really lives.
                // Refused (by the Landlock sandbox, or permissions): where it leads cannot
                // be asked, so it is not known to be inside; it counts as absent.
                let f = sysfs::open_at(dir, path).map_err(|e| match e.raw_os_error() {
                    Some(libc::EACCES) | Some(libc::EPERM) => FsError::NotFound,
                    _ => FsError::from_io(e),
                })?;
                let real = sysfs::fd_path(f.as_fd()).map_err(|_| FsError::NotFound)?;
                if real == r.path || real.starts_with(&r.path) {
                    Ok(f)
                } else {
                    Err(FsError::NotFound)
                }
            }
        }
    }

    /// Watches every directory from the root down to `dir` (inclusive).
    fn watch_dirs(&mut self, root: RootId, dir: &[u8]) -> bool {
        let mut end = 0;
        loop {
            let key = (root, Box::<[u8]>::from(&dir[..end]));
            if !self.wd_by_dir.contains_key(&key) && !self.watch_dir(key) {
                return false;
            }
            if end == dir.len() {
                return true;
            }
            end = match memchr::memchr(b'/', &dir[end + 1..]) {
                Some(i) => end + 1 + i,
                None => dir.len(),
            };
        }
    }

    fn watch_dir(&mut self, key: Key) -> bool {
        let (Some(inotify), Some(r)) = (&self.inotify, self.root(key.0)) else {
            return false;
        };
        let mut p = r.path.as_os_str().as_bytes().to_vec();
        if !key.1.is_empty() {
            p.push(b'/');
            p.extend_from_slice(&key.1);
        }
        p.push(0);
        let Ok(c) = CStr::from_bytes_with_nul(&p) else {
            return false;
        };
        match inotify.add_watch(c, DIR_MASK) {
            Ok(wd) => {
                self.dir_by_wd.entry(wd).or_default().push(key.clone());
                self.wd_by_dir.insert(key, wd);
                true
            }
            Err(_) => false,
        }
    }

    /// Watches the inode behind an open descriptor (through its `/proc/self/fd` link).
    fn watch_file(&mut self, f: &File) -> Option<i32> {
        let inotify = self.inotify.as_ref()?;
        let p = format!("/proc/self/fd/{}\0", f.as_raw_fd());
        let c = CStr::from_bytes_with_nul(p.as_bytes()).ok()?;
        inotify.add_watch(c, FILE_MASK).ok()
    }

    fn fill(&mut self, root: RootId, rel: &[u8]) -> Result<Node, FsError> {
        let parent = &rel[..memchr::memrchr(b'/', rel).unwrap_or(0)];
        let mut cacheable =
            self.cfg.max_entries > 0 && self.inotify.is_some() && self.watch_dirs(root, parent);
        // Every inode the entry depends on is watched; an event on any drops the entry.
        let mut wds: Vec<i32> = Vec::new();
        let file = self.open_contained(root, rel)?;
        // Watch first, then read the metadata that is cached, so that any change after
        // the reading produces an event. The kind decides the watch: a directory keeps its
        // path watch for entries coming and going; adding an inode watch on it would
        // replace that watch's mask (inotify keeps one watch per inode).
        let kind = meta_of(&file)?.1;
        match kind {
            Kind::Dir if cacheable => cacheable = self.watch_dirs(root, rel),
            Kind::File => self.watch_into(&file, &mut wds, &mut cacheable),
            _ => {}
        }
        let meta = meta_of(&file)?;
        let node = if meta.1 == Kind::Dir && kind == Kind::Dir {
            Node::Dir(meta.0)
        } else if meta.1 == Kind::File && kind == Kind::File {
            let mut entry = self.load(root, rel, file, meta.0, &mut cacheable);
            let store = self.root(root).is_some_and(|r| r.store);
            if self.cfg.precompressed && !store && !VARIANTS.iter().any(|s| rel.ends_with(s)) {
                self.find_variants(root, rel, &mut entry, &mut wds, &mut cacheable);
            }
            Node::File(Rc::new(entry))
        } else {
            // FIFOs, sockets and devices are never served (nginx: "not a regular file").
            self.drop_unused(&wds);
            return Err(FsError::NotFound);
        };
        if !cacheable {
            self.drop_unused(&wds);
            return Ok(node);
        }
        if self.entries >= self.cfg.max_entries {
            // Full: start over. `clear` also removes the watches just added.
            self.clear();
            return Ok(node);
        }
        if let Node::File(f) = &node {
            let (mem, fds) = cost(f);
            self.mem_held += mem;
            self.fds_held += fds;
        }
        let key: Box<[u8]> = rel.into();
        for wd in &wds {
            self.keys_by_wd
                .entry(*wd)
                .or_default()
                .push((root, key.clone()));
        }
        if let Some(r) = self.roots.get_mut(root as usize).and_then(Option::as_mut) {
            self.entries += 1;
            r.cache.insert(
                key,
                Cached {
                    node: node.clone(),
                    wds,
                },
            );
        }
        Ok(node)
    }

    /// Looks for `rel.br`, `rel.zst` and `rel.gz` (once, when the original is cached, so a
    /// file without variants costs no extra system call per request).
    fn find_variants(
        &mut self,
        root: RootId,
        rel: &[u8],
        entry: &mut FileEntry,
        wds: &mut Vec<i32>,
        cacheable: &mut bool,
    ) {
        let mut name = Vec::with_capacity(rel.len() + 4);
        for (i, suffix) in VARIANTS.iter().enumerate() {
            name.clear();
            name.extend_from_slice(rel);
            name.extend_from_slice(suffix);
            let Ok(file) = self.open_contained(root, &name) else {
                continue;
            };
            if !matches!(meta_of(&file), Ok((_, Kind::File))) {
                continue; // a directory named F.gz must not get an inode watch either
            }
            self.watch_into(&file, wds, cacheable);
            let Ok((meta, Kind::File)) = meta_of(&file) else {
                continue;
            };
            let mut v = self.load(root, &name, file, meta, cacheable);
            v.content_type = entry.content_type.clone();
            entry.variants[i] = Some(Rc::new(v));
        }
    }

    /// Watches the inode behind `file` (when caching), or marks the result uncacheable.
    fn watch_into(&mut self, file: &File, wds: &mut Vec<i32>, cacheable: &mut bool) {
        if *cacheable {
            // Watch before reading metadata: a change after this point produces an event.
            match self.watch_file(file) {
                Some(w) => wds.push(w),
                None => *cacheable = false,
            }
        }
    }

    /// A regular file's entry: small files are read into memory (when they will be cached),
    /// others keep their descriptor for `sendfile`.
    fn load(
        &mut self,
        root: RootId,
        rel: &[u8],
        file: File,
        meta: Meta,
        cacheable: &mut bool,
    ) -> FileEntry {
        let stored = if self.root(root).is_some_and(|r| r.store) {
            self.stored_type(root, rel, &file)
        } else {
            None
        };
        let fits = *cacheable
            && meta.size <= self.cfg.mem_file_max
            && self.mem_held + meta.size <= self.cfg.mem_total;
        let body = match fits.then(|| read_all(&file, meta.size)).flatten() {
            Some(bytes) => Body::Mem(bytes),
            None => {
                if self.fds_held >= self.cfg.max_fds {
                    *cacheable = false;
                }
                Body::File(Rc::new(file))
            }
        };
        let content_type = match (stored, self.root(root)) {
            (Some(t), _) => t.into_boxed_str(),
            (None, Some(r)) => r.mime.content_type(rel),
            (None, None) => MimeTable::default().content_type(rel),
        };
        FileEntry::new(meta, body, content_type)
    }

    /// The type stored with a store's value: its `user.mime_type` attribute, else its
    /// sidecar `.NAME.mime_type` beside it.
    fn stored_type(&mut self, root: RootId, rel: &[u8], file: &File) -> Option<String> {
        let name = &rel[memchr::memrchr(b'/', rel).map_or(0, |i| i + 1)..];
        let cname = std::ffi::CString::new(name).ok()?;
        if let Some(t) = crate::store::stored_type(file, None, &cname) {
            return Some(t);
        }
        let mut side = rel[..rel.len() - name.len()].to_vec();
        side.extend_from_slice(crate::store::sidecar_name(&cname).to_bytes());
        let f = self.open_contained(root, &side).ok()?;
        let mut s = String::new();
        f.take(crate::store::MAX_TYPE as u64)
            .read_to_string(&mut s)
            .ok()?;
        crate::store::valid_type(&s).then_some(s)
    }

    /// Drops what is cached for `rel` beneath `root` and for every directory above it: the
    /// store wrote or removed it just now, and the next request (maybe already pipelined)
    /// must see that before inotify tells.
    pub fn forget(&mut self, root: RootId, rel: &[u8]) {
        self.invalidate(root, rel);
        let mut end = rel.len();
        while let Some(i) = memchr::memrchr(b'/', &rel[..end]) {
            self.invalidate(root, &rel[..i]);
            end = i;
        }
        self.invalidate(root, b"");
    }

    fn drop_unused(&mut self, wds: &[i32]) {
        for wd in wds {
            self.drop_watch_if_unused(*wd);
        }
    }

    fn drop_watch_if_unused(&mut self, wd: i32) {
        if !self.keys_by_wd.contains_key(&wd) && !self.dir_by_wd.contains_key(&wd) {
            if let Some(i) = &self.inotify {
                i.rm_watch(wd);
            }
        }
    }
}

/// `rel` as a NUL-terminated path relative to the root (`.` for the root itself).
fn c_rel<'a>(buf: &'a mut Vec<u8>, rel: &[u8]) -> Result<&'a CStr, FsError> {
    buf.clear();
    buf.extend_from_slice(if rel.is_empty() { b"." } else { rel });
    buf.push(0);
    CStr::from_bytes_with_nul(buf).map_err(|_| FsError::NotFound)
}

/// Reads exactly `size` bytes, or `None` if the file is not that long any more.
fn read_all(mut f: &File, size: u64) -> Option<Rc<[u8]>> {
    let mut buf = vec![0u8; size as usize];
    let mut at = 0;
    while at < buf.len() {
        match f.read(&mut buf[at..]) {
            Ok(0) => return None,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(Rc::from(buf))
}

impl Fs for RealFs {
    fn forget(&mut self, root: RootId, rel: &[u8]) {
        RealFs::forget(self, root, rel);
    }

    fn lookup(&mut self, root: RootId, rel: &[u8]) -> Result<Node, FsError> {
        if let Some(Some(r)) = self.roots.get(root as usize) {
            if let Some(c) = r.cache.get(rel) {
                return Ok(c.node.clone());
            }
        }
        self.fill(root, rel)
    }

    fn list(&mut self, root: RootId, rel: &[u8], out: &mut Vec<ListEntry>) -> Result<(), FsError> {
        out.clear();
        let dir = self.open_contained(root, rel)?;
        let entries = sysfs::read_dir(dir.as_fd()).map_err(FsError::from_io)?;
        let mut child = Vec::with_capacity(rel.len() + 64);
        for e in entries {
            let Ok(st) = sysfs::stat_at(dir.as_fd(), &e.name) else {
                continue; // dangling symlink or raced away
            };
            if e.maybe_symlink {
                // Only list a symlink if following it stays inside the root.
                child.clear();
                if !rel.is_empty() {
                    child.extend_from_slice(rel);
                    child.push(b'/');
                }
                child.extend_from_slice(e.name.to_bytes());
                if self.open_contained(root, &child).is_err() {
                    continue;
                }
            }
            if !st.is_dir() && !st.is_file() {
                continue;
            }
            out.push(ListEntry {
                name: e.name.into_bytes(),
                is_dir: st.is_dir(),
                size: if st.is_dir() { 0 } else { st.size },
                mtime: st.mtime,
            });
        }
        Ok(())
    }
}
