//! Descriptor limit: raise `RLIMIT_NOFILE`'s soft limit to the hard one at start.
use std::io;

use super::cvt;

/// Raises the soft descriptor limit to the hard limit and returns the new soft limit.
pub fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        let new = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `new` is a valid rlimit read by the kernel.
        if cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) }).is_ok() {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}
