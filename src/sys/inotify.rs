//! inotify: how the file cache learns, without a `stat` per request, that a cached file was
//! written, replaced, renamed or deleted.
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd};

use super::cvt;

pub use libc::{
    IN_ATTRIB, IN_CLOSE_WRITE, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_IGNORED, IN_MODIFY,
    IN_MOVED_FROM, IN_MOVED_TO, IN_MOVE_SELF, IN_Q_OVERFLOW,
};

pub struct Inotify {
    file: File,
}

/// One event: the watch it belongs to, what happened, and the child's name for events on a
/// watched directory (empty for events on the watched object itself).
pub struct Event<'a> {
    pub wd: i32,
    pub mask: u32,
    pub name: &'a [u8],
}

impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: plain syscall; a non-negative result is a descriptor we own.
        let fd = cvt(unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) })?;
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(Inotify { file })
    }

    /// Watches `path` (following a final symlink, so `/proc/self/fd/N` watches that inode).
    pub fn add_watch(&self, path: &CStr, mask: u32) -> io::Result<i32> {
        // SAFETY: `path` is NUL-terminated and the descriptor is open.
        cvt(unsafe { libc::inotify_add_watch(self.file.as_raw_fd(), path.as_ptr(), mask) })
    }

    pub fn rm_watch(&self, wd: i32) {
        // SAFETY: plain syscall on our open descriptor; a stale `wd` only yields EINVAL.
        unsafe { libc::inotify_rm_watch(self.file.as_raw_fd(), wd) };
    }

    /// Reads pending events into `buf` and calls `f` for each. Returns false once the queue is
    /// empty.
    pub fn read_events(
        &mut self,
        buf: &mut [u8],
        mut f: impl FnMut(Event<'_>),
    ) -> io::Result<bool> {
        let n = match self.file.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut at = 0;
        // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[len]; }
        while at + 16 <= n {
            let word = |i: usize| {
                let b = &buf[at + i..at + i + 4];
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
            };
            let (wd, mask, len) = (word(0) as i32, word(4), word(12) as usize);
            let end = (at + 16 + len).min(n);
            let raw = &buf[at + 16..end];
            let name = match memchr::memchr(0, raw) {
                Some(i) => &raw[..i],
                None => raw,
            };
            f(Event { wd, mask, name });
            at = end;
        }
        Ok(n > 0)
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
