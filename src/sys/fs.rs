//! Opening files beneath the document root with kernel-enforced containment (`openat2` with
//! `RESOLVE_BENEATH`), a checked fallback for kernels without it, and directory reading by
//! descriptor (std only reads directories by path, which would reopen the race we avoid).
//! Also anonymous in-memory files (`memfd_create`) for the in-memory root of tests.
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::cvt;

/// What the kernel said about an `openat2` beneath a directory.
pub enum Beneath {
    /// Opened, and the kernel guarantees the file is beneath the directory.
    Opened(File),
    /// The path resolves outside the directory (`EXDEV`), or through a magic link (`ELOOP`),
    /// or the kernel has no `openat2` (`ENOSYS`): the caller must check containment itself.
    Unsure,
}

/// Flags used for every open: read-only, close-on-exec, and non-blocking so that a FIFO or a
/// device node planted in the root cannot stall the event loop (it is rejected after `fstat`).
pub const OPEN_FLAGS: i32 = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

/// `openat2(dir, path, OPEN_FLAGS, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
pub fn open_beneath(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<Beneath> {
    // SAFETY: open_how is plain integers; all-zero is its documented "no options" value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = OPEN_FLAGS as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `path` is NUL-terminated, `how` is a live open_how whose exact size is passed,
    // and `dir` is an open descriptor; on success the kernel returns a new descriptor we own.
    let res = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if res >= 0 {
        // SAFETY: a non-negative return is a fresh descriptor owned by nobody else.
        return Ok(Beneath::Opened(unsafe { File::from_raw_fd(res as i32) }));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EXDEV) | Some(libc::ELOOP) | Some(libc::ENOSYS) | Some(libc::E2BIG) => {
            Ok(Beneath::Unsure)
        }
        _ => Err(err),
    }
}

/// Plain `openat(dir, path, OPEN_FLAGS)`, following symlinks; the caller must verify where
/// the result lives (see [`fd_path`]).
pub fn open_at(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<File> {
    // SAFETY: `path` is NUL-terminated and `dir` is open; a non-negative result is ours.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), OPEN_FLAGS) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens (creating it if needed) `name` in `dir` for appending, as a log is: used to reopen
/// a log through its directory when its path is out of reach (after a chroot).
pub fn open_append_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOCTTY;
    // SAFETY: `name` is NUL-terminated and `dir` is open; the mode is passed because O_CREAT
    // is set; a non-negative result is a descriptor we own.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, 0o666) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Opens a directory by path (used once at start for the document root).
pub fn open_dir(path: &std::path::Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: `c` is NUL-terminated; a non-negative result is a descriptor we own.
    let fd = cvt(unsafe { libc::open(c.as_ptr(), flags) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The path the kernel holds for an open descriptor, read from `/proc/self/fd`.
pub fn fd_path(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// File metadata as tern uses it (from `fstatat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub mode: u32,
    pub size: u64,
    pub ino: u64,
    pub mtime: i64,
    pub mtime_nsec: u32,
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// `fstatat(dir, name, 0)`: metadata of a directory entry, following symlinks.
pub fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Stat> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated, `st` is writable, `dir` is open.
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, 0) })?;
    Ok(Stat {
        mode: st.st_mode,
        size: st.st_size as u64,
        ino: st.st_ino,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
    })
}

/// One directory entry: its name and whether the kernel says it is a symlink (or could not
/// tell), which the caller must then check for containment.
pub struct DirEntry {
    pub name: CString,
    pub maybe_symlink: bool,
}

/// Reads every entry of the open directory `dir` (except `.` and `..`).
pub fn read_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    // fdopendir takes ownership of the descriptor it is given, so give it a duplicate.
    let dup = dir.try_clone_to_owned()?;
    let raw = std::os::fd::IntoRawFd::into_raw_fd(dup);
    // SAFETY: `raw` is an open directory descriptor whose ownership passes to the DIR stream.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so `raw` is still ours to close.
        unsafe { libc::close(raw) };
        return Err(err);
    }
    // SAFETY: `stream` is a valid DIR*; rewinding makes a reused descriptor read from the top.
    unsafe { libc::rewinddir(stream) };
    let mut out = Vec::new();
    loop {
        // SAFETY: `stream` is a valid DIR* owned by this function.
        let ent = unsafe { libc::readdir(stream) };
        if ent.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid dirent whose d_name is NUL-terminated and stays
        // valid until the next readdir on this stream; we copy it out at once.
        let (name, d_type) = unsafe { (CStr::from_ptr((*ent).d_name.as_ptr()), (*ent).d_type) };
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        out.push(DirEntry {
            name: name.to_owned(),
            maybe_symlink: d_type == libc::DT_LNK || d_type == libc::DT_UNKNOWN,
        });
    }
    // SAFETY: `stream` is valid and closed exactly once (this also closes `raw`).
    unsafe { libc::closedir(stream) };
    Ok(out)
}

/// `OsStr` view of a C string, for joining onto paths.
pub fn os(c: &CStr) -> &OsStr {
    OsStr::from_bytes(c.to_bytes())
}

/// A file that lives only in memory (`memfd_create`), holding `data`: a real descriptor to
/// `sendfile` from that touches no disk and disappears with its last descriptor.
pub fn memfd(name: &CStr, data: &[u8]) -> io::Result<File> {
    // SAFETY: `name` is NUL-terminated; a non-negative result is a descriptor we own.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(data)?;
    Ok(file)
}

/// Puts a descriptor (a child's pipe end) in non-blocking mode.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller keeps open for the call; no pointers.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}
