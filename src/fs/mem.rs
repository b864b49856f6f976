//! An in-memory document root for tests and fuzzing: same contract as the real one, plus a
//! record of every path looked up so a fuzzer can check that nothing outside the root is
//! ever asked for. Bodies are shared memory, or for files added with `add_fd_file` a
//! descriptor (a memfd, no disk) sent with `sendfile` as the real root sends large files.
use std::collections::BTreeMap;
use std::io;
use std::rc::Rc;

use super::{Body, FileEntry, Fs, FsError, ListEntry, Meta, MimeTable, Node, RootId};

enum MemNode {
    File(Rc<FileEntry>),
    Dir(Meta),
}

pub struct MemFs {
    nodes: BTreeMap<Vec<u8>, MemNode>,
    mime: MimeTable,
    next_ino: u64,
    /// Root ids to directories of the tree (root 0 is the whole tree).
    roots: Vec<Vec<u8>>,
    /// Every path passed to `lookup` or `list` (joined to its root's directory), in order.
    pub opened: Vec<Vec<u8>>,
    /// Keep the record (off by default to bound memory in long runs).
    pub record: bool,
}

impl Default for MemFs {
    fn default() -> Self {
        MemFs::new()
    }
}

impl MemFs {
    pub fn new() -> MemFs {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            Vec::new(),
            MemNode::Dir(Meta {
                size: 0,
                ino: 1,
                mtime: 0,
                mtime_nsec: 0,
            }),
        );
        MemFs {
            nodes,
            mime: MimeTable::default(),
            next_ino: 2,
            roots: vec![Vec::new()],
            opened: Vec::new(),
            record: false,
        }
    }

    /// A further root: the directory `dir` of the tree (which need not exist yet).
    pub fn add_root(&mut self, dir: &str) -> RootId {
        self.roots.push(dir.trim_matches('/').as_bytes().to_vec());
        (self.roots.len() - 1) as RootId
    }

    /// `rel` beneath `root` as a path of the tree.
    fn join(&self, root: RootId, rel: &[u8]) -> Option<Vec<u8>> {
        let base = self.roots.get(root as usize)?;
        Some(match (base.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_vec(),
            (false, true) => base.clone(),
            (false, false) => [&base[..], b"/", rel].concat(),
        })
    }

    /// Adds a file (and its parent directories) with the given contents and mtime.
    pub fn add_file(&mut self, path: &str, data: &[u8], mtime: i64) {
        self.insert_file(path, data.len() as u64, Body::Mem(Rc::from(data)), mtime);
    }

    /// Adds a file whose body is a descriptor ([`Body::File`]), like a large file of the real
    /// root: the bytes are written once into an anonymous in-memory file, and responses
    /// send them with `sendfile`.
    pub fn add_fd_file(&mut self, path: &str, data: &[u8], mtime: i64) -> io::Result<()> {
        let file = crate::sys::fs::memfd(c"tern-memfs", data)?;
        self.insert_file(path, data.len() as u64, Body::File(Rc::new(file)), mtime);
        Ok(())
    }

    /// Cuts the descriptor of a file added with [`add_fd_file`](Self::add_fd_file) to `len`
    /// bytes while its entry keeps the old size: a file that shrank after it was opened, so
    /// a response that promised the old length ends early (`CloseReason::FileTruncated`).
    pub fn shrink(&mut self, path: &str, len: u64) -> io::Result<()> {
        match self.nodes.get(path.as_bytes()) {
            Some(MemNode::File(f)) => match &f.body {
                Body::File(file) => file.set_len(len),
                Body::Mem(_) => Err(io::Error::other("a memory body cannot shrink")),
            },
            _ => Err(io::Error::from(io::ErrorKind::NotFound)),
        }
    }

    fn insert_file(&mut self, path: &str, size: u64, body: Body, mtime: i64) {
        self.add_parents(path);
        let meta = Meta {
            size,
            ino: self.ino(),
            mtime,
            mtime_nsec: 0,
        };
        let entry = FileEntry::new(meta, body, self.mime.content_type(path.as_bytes()));
        self.nodes
            .insert(path.as_bytes().to_vec(), MemNode::File(Rc::new(entry)));
    }

    /// Attaches the file at `variant` (added before) as a precompressed variant of `path`;
    /// `index` follows [`super::VARIANTS`] (0 br, 1 zstd, 2 gzip).
    pub fn add_variant(&mut self, path: &str, index: usize, variant: &str) {
        let Some(MemNode::File(v)) = self.nodes.get(variant.as_bytes()) else {
            return;
        };
        let body = match &v.body {
            Body::Mem(m) => Body::Mem(Rc::clone(m)),
            Body::File(f) => Body::File(Rc::clone(f)),
        };
        let mut entry = FileEntry::new(v.meta, body, self.mime.content_type(path.as_bytes()));
        entry.etag = v.etag.clone();
        if let Some(MemNode::File(f)) = self.nodes.get_mut(path.as_bytes()) {
            if let Some(f) = Rc::get_mut(f) {
                f.variants[index] = Some(Rc::new(entry));
            }
        }
    }

    /// Adds an empty directory (and its parents).
    pub fn add_dir(&mut self, path: &str, mtime: i64) {
        self.add_parents(path);
        let meta = Meta {
            size: 4096,
            ino: self.ino(),
            mtime,
            mtime_nsec: 0,
        };
        self.nodes
            .insert(path.as_bytes().to_vec(), MemNode::Dir(meta));
    }

    fn add_parents(&mut self, path: &str) {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let dir = &path[..at + i];
            if !self.nodes.contains_key(dir.as_bytes()) {
                let meta = Meta {
                    size: 4096,
                    ino: self.ino(),
                    mtime: 0,
                    mtime_nsec: 0,
                };
                self.nodes
                    .insert(dir.as_bytes().to_vec(), MemNode::Dir(meta));
            }
            at += i + 1;
        }
    }

    fn ino(&mut self) -> u64 {
        self.next_ino += 1;
        self.next_ino
    }
}

impl Fs for MemFs {
    fn lookup(&mut self, root: RootId, rel: &[u8]) -> Result<Node, FsError> {
        let path = self.join(root, rel).ok_or(FsError::NotFound)?;
        if self.record {
            self.opened.push(path.clone());
        }
        match self.nodes.get(&path) {
            Some(MemNode::File(f)) => Ok(Node::File(Rc::clone(f))),
            Some(MemNode::Dir(m)) => Ok(Node::Dir(*m)),
            None => Err(FsError::NotFound),
        }
    }

    fn list(&mut self, root: RootId, rel: &[u8], out: &mut Vec<ListEntry>) -> Result<(), FsError> {
        let path = self.join(root, rel).ok_or(FsError::NotFound)?;
        let rel = &path[..];
        if self.record {
            self.opened.push(path.clone());
        }
        out.clear();
        if !matches!(self.nodes.get(rel), Some(MemNode::Dir(_))) {
            return Err(FsError::NotFound);
        }
        let prefix: Vec<u8> = if rel.is_empty() {
            Vec::new()
        } else {
            [rel, b"/"].concat()
        };
        for (path, node) in self.nodes.range(prefix.clone()..) {
            let Some(name) = path.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if name.is_empty() || name.contains(&b'/') {
                continue;
            }
            out.push(match node {
                MemNode::File(f) => ListEntry {
                    name: name.to_vec(),
                    is_dir: false,
                    size: f.meta.size,
                    mtime: f.meta.mtime,
                },
                MemNode::Dir(m) => ListEntry {
                    name: name.to_vec(),
                    is_dir: true,
                    size: 0,
                    mtime: m.mtime,
                },
            });
        }
        Ok(())
    }
}
