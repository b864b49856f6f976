//! Process set-up for running as a service: user and group lookup, dropping privileges
//! (setgroups, setgid, setuid), chroot, detaching (fork, setsid), the readiness pipe from the
//! daemon to the waiting parent, and the locked pid file. Nothing here knows about HTTP or
//! the configuration; `main` calls these in the start-up order of GUIDE.md.
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::cvt;

/// Set once `chroot` succeeded: paths in a configuration read later are already inside it.
static CHROOTED: AtomicBool = AtomicBool::new(false);

/// Whether this process has changed its root directory.
pub fn chrooted() -> bool {
    CHROOTED.load(Ordering::Relaxed)
}

/// A user as the password database gives it.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    /// In the password database (a bare number need not be).
    pub known: bool,
}

/// Looks a user up by name, or by number (`65534`) when the name is all digits.
pub fn user(spec: &str) -> io::Result<Option<User>> {
    let name = CString::new(spec).map_err(|_| io::Error::other("NUL in user name"))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids); it is only read after
    // getpw*_r filled it.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let rc = match spec.parse::<u32>() {
        // SAFETY: every pointer is valid for the call; buf outlives every use of pw's strings.
        Ok(uid) => unsafe {
            libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out)
        },
        // SAFETY: as above; name is NUL-terminated.
        Err(_) => unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut out,
            )
        },
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if out.is_null() {
        // A number with no entry is still a valid uid to run as (like chown 4242 f).
        return Ok(spec.parse::<u32>().ok().map(|uid| User {
            name: spec.to_string(),
            uid,
            gid: uid,
            known: false,
        }));
    }
    // SAFETY: getpw*_r succeeded, so pw_name points to a NUL-terminated string inside buf.
    let pname = unsafe { CStr::from_ptr(pw.pw_name) };
    Ok(Some(User {
        name: pname.to_string_lossy().into_owned(),
        uid: pw.pw_uid,
        gid: pw.pw_gid,
        known: true,
    }))
}

/// Looks a group up by name, or takes a number as it is.
pub fn group(spec: &str) -> io::Result<Option<u32>> {
    if let Ok(gid) = spec.parse::<u32>() {
        return Ok(Some(gid));
    }
    let name = CString::new(spec).map_err(|_| io::Error::other("NUL in group name"))?;
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: all-zero is a valid `group`; only read after getgrnam_r filled it.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; name is NUL-terminated.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut gr,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok((!out.is_null()).then_some(gr.gr_gid))
}

/// The supplementary groups of `user` (with `gid` among them), as `initgroups` would set.
pub fn group_list(user: &str, gid: u32) -> io::Result<Vec<u32>> {
    let name = CString::new(user).map_err(|_| io::Error::other("NUL in user name"))?;
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut got = n;
        // SAFETY: groups holds `got` entries; getgrouplist writes at most that many and sets
        // `got` to the number needed when it returns -1.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut got) };
        if rc >= 0 {
            groups.truncate(got as usize);
            return Ok(groups);
        }
        if got <= n {
            return Err(io::Error::other("getgrouplist failed"));
        }
        n = got;
    }
}

/// setgroups, setgid, setuid, in that order (setgid needs the privilege setuid gives up),
/// then proves root cannot be regained.
pub fn drop_privileges(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: groups is a valid slice of gid_t for its length.
    cvt(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
        .map_err(|e| io::Error::new(e.kind(), format!("setgroups: {e}")))?;
    // SAFETY: plain syscall on integers.
    cvt(unsafe { libc::setgid(gid) })
        .map_err(|e| io::Error::new(e.kind(), format!("setgid({gid}): {e}")))?;
    // SAFETY: plain syscall on integers.
    cvt(unsafe { libc::setuid(uid) })
        .map_err(|e| io::Error::new(e.kind(), format!("setuid({uid}): {e}")))?;
    // SAFETY: plain syscall on an integer; success here means the drop did not hold.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other(
            "setuid(0) succeeded after dropping privileges; refusing to run",
        ));
    }
    Ok(())
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// `chroot(dir)` then `chdir("/")`, so no directory outside stays reachable through the cwd.
pub fn chroot(dir: &Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("NUL in chroot path"))?;
    // SAFETY: c is a NUL-terminated path.
    cvt(unsafe { libc::chroot(c.as_ptr()) })?;
    std::env::set_current_dir("/")?;
    CHROOTED.store(true, Ordering::Relaxed);
    Ok(())
}

/// The daemon's end of the readiness pipe: one byte says "ready"; closing it without one
/// says "failed" (the error is already on the stderr the parent shares).
pub struct Ready(File);

impl Ready {
    pub fn ready(mut self) -> io::Result<()> {
        self.0.write_all(b"1")
    }
}

/// Detaches: fork (the parent waits on the pipe and exits with the daemon's outcome),
/// setsid, fork again (so the daemon is no session leader and never gets a terminal).
/// Returns in the daemon only, still in the starting directory (relative paths of the
/// command line are opened from there; the caller moves to `/` once they are open). Must
/// run before any thread is started.
pub fn daemonize() -> io::Result<Ready> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded; each descriptor is owned once from here on.
    let (r, w) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
    // SAFETY: tern is single-threaded at this point, so the child may run any code.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid > 0 {
        drop(w);
        wait_ready(r, pid);
    }
    drop(r);
    // SAFETY: plain syscall; fails only if already a group leader, which a child is not.
    cvt(unsafe { libc::setsid() })?;
    // SAFETY: still single-threaded.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid > 0 {
        // The intermediate process: its exit is what lets the first parent reap it.
        // SAFETY: _exit skips atexit handlers and buffers that belong to the daemon.
        unsafe { libc::_exit(0) };
    }
    Ok(Ready(w))
}

/// The first parent: exit 0 when the daemon says ready, 1 when the pipe closes without it.
fn wait_ready(mut r: File, child: libc::pid_t) -> ! {
    let mut status = 0;
    // SAFETY: reaps the intermediate child we forked; status is a valid out-pointer.
    unsafe { libc::waitpid(child, &mut status, 0) };
    let mut b = [0u8; 1];
    let ok = matches!(r.read(&mut b), Ok(1));
    std::process::exit(if ok { 0 } else { 1 });
}

/// Points stdin, stdout and stderr at /dev/null (the daemon, once it has said everything the
/// starting terminal should see).
pub fn null_stdio() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: null is open; dup2 onto the standard descriptors replaces them atomically.
        cvt(unsafe { libc::dup2(null.as_raw_fd(), fd) })?;
    }
    Ok(())
}

/// A pid file this process wrote and holds locked; removed on drop by the writer only.
pub struct PidFile {
    file: File,
    /// The directory, kept open so removal works after a chroot.
    dir: OwnedFd,
    name: CString,
    pid: u32,
}

/// Why a pid file could not be taken.
pub enum PidError {
    /// Another live process holds its lock; its pid as read from the file.
    Held(Option<u32>),
    Io(io::Error),
}

impl PidFile {
    /// Opens `path`, takes its lock without waiting, and writes this process's pid. A file
    /// whose lock nobody holds is stale (its writer died) and is taken over.
    pub fn take(path: &Path) -> Result<PidFile, PidError> {
        let dir_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| PidError::Io(io::Error::other("not a file name")))?;
        let name = CString::new(name.as_bytes())
            .map_err(|_| PidError::Io(io::Error::other("NUL in path")))?;
        let dir: OwnedFd = File::open(dir_path).map_err(PidError::Io)?.into();
        // Not truncated on open: a running instance's file must be left as it is.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(PidError::Io)?;
        // SAFETY: file is an open descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                return Err(PidError::Held(s.trim().parse().ok()));
            }
            return Err(PidError::Io(e));
        }
        let pid = std::process::id();
        file.set_len(0).map_err(PidError::Io)?;
        file.write_all(format!("{pid}\n").as_bytes())
            .map_err(PidError::Io)?;
        Ok(PidFile {
            file,
            dir,
            name,
            pid,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // A forked child inherits the struct but did not write the file.
        if std::process::id() == self.pid {
            // SAFETY: dir is an open directory and name a NUL-terminated file name.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), self.name.as_ptr(), 0) };
        }
        let _ = self.file.flush();
    }
}

/// Sends `sig` to the process group `pgid` (a child started as the leader of its own group).
/// A group that no longer exists is not an error worth reporting.
pub fn kill_group(pgid: u32, sig: i32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill takes plain integers; a negative pid names a process group (never our
    // own: children get a group of their own, and pgid > 1 was checked).
    unsafe {
        libc::kill(-pgid, sig);
    }
}
