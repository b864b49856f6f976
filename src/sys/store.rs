//! The syscalls of the key-value store (`store = "DIR"`): walking to a key's directory one
//! component at a time without following symlinks, `O_TMPFILE` and its fallback, linking an
//! unnamed file into place, `renameat2` (with `RENAME_NOREPLACE` for create-only writes),
//! `unlinkat`, `mkdirat`, `fstatat` without following, `sync_file_range`, and the
//! `user.mime_type` extended attribute. Safe wrappers only; what a key may be is decided by
//! `crate::store`.
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;
use super::fs::Stat;

/// `openat(dir, name, O_DIRECTORY | O_NOFOLLOW)`: one path component, never a symlink.
pub fn open_subdir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated and `dir` is open; a non-negative result is ours.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat(dir, name, 0755)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `dir` is open.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) }).map(drop)
}

/// An unnamed regular file in `dir` (`O_TMPFILE`, mode 0644): it vanishes with its last
/// descriptor unless linked. `EOPNOTSUPP`/`EISDIR`/`EINVAL` mean the file system or kernel
/// has none (the caller falls back to a hidden name).
pub fn open_tmpfile(dir: BorrowedFd<'_>) -> io::Result<File> {
    let flags = libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC;
    // SAFETY: the path is a NUL-terminated literal and `dir` is open; the result is ours.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), c".".as_ptr(), flags, 0o644) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// A new file `name` in `dir` that did not exist (`O_CREAT | O_EXCL | O_NOFOLLOW`, 0644).
pub fn create_new(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated and `dir` is open; the result is ours.
    let fd = cvt(unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, 0o644) })?;
    // SAFETY: `fd` is a fresh descriptor owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Gives the unnamed file `file` the name `name` in `dir`: `linkat(AT_EMPTY_PATH)` where the
/// process may (it needs CAP_DAC_READ_SEARCH), else through `/proc/self/fd` (as the
/// open(2) manual describes for `O_TMPFILE`).
pub fn link_fd(file: &File, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: the empty path is a NUL-terminated literal; both descriptors are open.
    let r = unsafe {
        libc::linkat(
            file.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::ENOENT | libc::EPERM)) {
        return Err(err);
    }
    let proc = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::other("descriptor path"))?;
    // SAFETY: both paths are NUL-terminated; `dir` is open.
    cvt(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            proc.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

/// `renameat2(dir, from, dir, to)`; `noreplace` fails with `EEXIST` when `to` exists
/// (atomic create-only).
pub fn rename_in(dir: BorrowedFd<'_>, from: &CStr, to: &CStr, noreplace: bool) -> io::Result<()> {
    let flags: libc::c_uint = if noreplace { libc::RENAME_NOREPLACE } else { 0 };
    // SAFETY: both names are NUL-terminated and `dir` is open.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `unlinkat(dir, name, 0)`: removes a file (or a symlink itself, never its target).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and `dir` is open.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: what the entry itself is.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Stat> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated, `st` is writable, `dir` is open.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(Stat {
        mode: st.st_mode,
        size: st.st_size as u64,
        ino: st.st_ino,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
    })
}

/// `sync_file_range(WRITE)`: starts write-back of `[off, off + len)` without waiting, so
/// the final `fsync` has less left to do.
pub fn start_writeback(file: &File, off: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain integers and an open descriptor.
    cvt(unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            off as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    })
    .map(drop)
}

/// `fsetxattr(file, name, value)`. `ENOTSUP` where the file system keeps no user xattrs.
pub fn set_xattr(file: &File, name: &CStr, value: &[u8]) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; `value` is a live slice of the length passed.
    cvt(unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
    .map(drop)
}

/// `fgetxattr(file, name)` into `buf`; the length read.
pub fn get_xattr(file: &File, name: &CStr, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `name` is NUL-terminated; `buf` is writable for the length passed.
    let n = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}
