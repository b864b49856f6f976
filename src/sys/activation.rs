//! Socket activation, the receiving side of sd_listen_fds(3): the descriptors systemd passed
//! (from `SD_LISTEN_FDS_START` = 3 on), with their names, taken once at start-up. Nothing
//! here binds, listens or knows which `sd:` entries the configuration names.
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// The first passed descriptor (sd-daemon.h).
pub const SD_LISTEN_FDS_START: RawFd = 3;

/// What systemd passed: each descriptor with its `FileDescriptorName=` (systemd's default
/// name is `unknown`), or why there are none.
pub struct Passed {
    pub fds: Vec<(String, OwnedFd)>,
    /// Set when `fds` is empty: the reason, for an error about an `sd:` listener.
    pub why_none: Option<String>,
}

/// Reads `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` and removes them from the
/// environment (so no child ever sees them, and no child mistakes our sockets for its own).
/// The descriptors count only when `LISTEN_PID` is this process; they are marked close-on-exec
/// so children do not inherit them either. Call it once, before any thread is started.
pub fn take_listen_fds() -> Passed {
    let var = |k: &str| std::env::var(k).ok();
    let (pid, fds, names) = (var("LISTEN_PID"), var("LISTEN_FDS"), var("LISTEN_FDNAMES"));
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
    let none = |why: String| Passed {
        fds: Vec::new(),
        why_none: Some(why),
    };
    let Some(fds) = fds else {
        return none("systemd passed no sockets (LISTEN_FDS is not set)".into());
    };
    let me = std::process::id();
    match pid.as_deref().map(str::parse::<u32>) {
        Some(Ok(p)) if p == me => {}
        Some(Ok(p)) => {
            return none(format!(
                "the sockets in LISTEN_FDS are for process {p}, not this one ({me})"
            ))
        }
        _ => {
            return none(format!(
                "LISTEN_PID {:?} is not a process id; the sockets in LISTEN_FDS are ignored",
                pid.unwrap_or_default()
            ))
        }
    }
    let n = match fds.parse::<RawFd>() {
        Ok(n) if (1..=4096).contains(&n) => n,
        Ok(0) => return none("systemd passed no sockets (LISTEN_FDS=0)".into()),
        _ => return none(format!("LISTEN_FDS {fds:?} is not a count of sockets")),
    };
    let mut names = names.as_deref().unwrap_or("").split(':');
    let mut out = Vec::with_capacity(n as usize);
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + n {
        // SAFETY: plain fcntl on a descriptor number; it fails with EBADF if nothing is open.
        if cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) }).is_err() {
            // Not open after all: stop rather than adopt a number some later open may reuse.
            break;
        }
        // SAFETY: systemd handed this open descriptor to this process (LISTEN_PID matched)
        // and nothing else in tern owns it: it is taken exactly once, here.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = match names.next() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => "unknown".to_string(),
        };
        out.push((name, owned));
    }
    Passed {
        fds: out,
        why_none: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test in this binary that touches `LISTEN_*`, so no other test races it.
    #[test]
    fn variables_are_removed_and_another_process_sockets_ignored() {
        std::env::set_var("LISTEN_PID", "1");
        std::env::set_var("LISTEN_FDS", "2");
        std::env::set_var("LISTEN_FDNAMES", "http:https");
        let p = take_listen_fds();
        assert!(p.fds.is_empty());
        let why = p.why_none.unwrap();
        assert!(why.contains("for process 1, not this one"), "{why}");
        for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            assert_eq!(std::env::var_os(k), None, "{k} left in the environment");
        }
        let p = take_listen_fds();
        assert!(p.why_none.unwrap().contains("LISTEN_FDS is not set"));
    }
}
