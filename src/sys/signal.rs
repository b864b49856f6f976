//! Signals as events: the signals tern handles are blocked and delivered through a
//! non-blocking `signalfd`, which the event loop polls like any socket.
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd};

use super::cvt;

pub struct SignalFd {
    file: File,
}

fn sigset(signals: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: an all-zero sigset_t is a valid value for sigemptyset to initialise.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset_t.
    cvt(unsafe { libc::sigemptyset(&mut set) })?;
    for &sig in signals {
        // SAFETY: `set` is initialised; an invalid `sig` is reported as an error.
        cvt(unsafe { libc::sigaddset(&mut set, sig) })?;
    }
    Ok(set)
}

impl SignalFd {
    /// Blocks `signals` for this (single-threaded) process and returns a descriptor that
    /// becomes readable when one of them is pending.
    pub fn new(signals: &[i32]) -> io::Result<SignalFd> {
        let set = sigset(signals)?;
        // SAFETY: `set` is a valid sigset_t; the old mask is not needed.
        let rc = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        cvt(rc)?;
        let flags = libc::SFD_NONBLOCK | libc::SFD_CLOEXEC;
        // SAFETY: `set` is valid; -1 asks for a new descriptor, which we then own.
        let fd = cvt(unsafe { libc::signalfd(-1, &set, flags) })?;
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        Ok(SignalFd { file })
    }

    /// The next pending signal number, or `None` when none is pending.
    pub fn pending(&mut self) -> io::Result<Option<i32>> {
        // struct signalfd_siginfo is 128 bytes; ssi_signo is its first u32.
        let mut buf = [0u8; 128];
        match self.file.read(&mut buf) {
            Ok(128) => Ok(Some(
                u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as i32
            )),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for SignalFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
