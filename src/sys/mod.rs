//! The only `unsafe` in tern: thin, documented wrappers over Linux syscalls that std and mio
//! do not offer (sendfile, sendmsg with MSG_MORE, openat2, memfd, inotify, rlimits, the
//! monotonic clock for systemd's notify socket, the descriptors of socket activation, and the
//! fork/setsid/setuid/chroot/flock of start-up).
//! Each wrapper takes and returns safe types; nothing here knows about HTTP.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod activation;
#[cfg(feature = "alloc-count")]
pub mod alloc;
pub mod fs;
pub mod inotify;
pub mod net;
pub mod notify;
pub mod process;
pub mod rlimit;
// Safe: signal-hook owns the handlers.
pub mod signal;
pub mod store;

use std::io;

/// Heap allocations so far, when built with the `alloc-count` feature.
pub fn allocations() -> Option<u64> {
    #[cfg(feature = "alloc-count")]
    return Some(alloc::count());
    #[cfg(not(feature = "alloc-count"))]
    None
}

/// Turns a libc return value into `io::Result`, reading `errno` on -1 (as mio's `syscall!`).
fn cvt<T: Copy + PartialEq + From<i8>>(res: T) -> io::Result<T> {
    if res == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(res)
    }
}
