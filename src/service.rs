//! Start-up steps of `main` for running as a service: who to become (looked up before the
//! chroot hides /etc), the pid file with its refusal message, and the configuration as seen
//! from outside the chroot. The syscalls are in `tern::sys::process`; this holds the words.
use std::io;
use std::path::Path;

use tern::config::{in_chroot, Config, RouteKind, Service};
use tern::sys::process::{self, PidError, PidFile};

/// The ids to switch to.
pub struct DropTo {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The user, group and supplementary groups of `svc` (`None` without `user`).
pub fn resolve(svc: &Service) -> io::Result<Option<DropTo>> {
    let Some(spec) = &svc.user else {
        return Ok(None);
    };
    let user = process::user(spec)?
        .ok_or_else(|| io::Error::other(format!("user \"{spec}\": no such user")))?;
    let gid = match &svc.group {
        Some(g) => process::group(g)?
            .ok_or_else(|| io::Error::other(format!("group \"{g}\": no such group")))?,
        None => user.gid,
    };
    // A user known only by number has no entry to read supplementary groups from.
    let groups = if user.known {
        process::group_list(&user.name, gid)?
    } else {
        vec![gid]
    };
    Ok(Some(DropTo {
        uid: user.uid,
        gid,
        groups,
    }))
}

/// Takes the pid file, or says who holds it.
pub fn pid_file(path: &Path) -> io::Result<PidFile> {
    PidFile::take(path).map_err(|e| match e {
        PidError::Held(Some(pid)) => io::Error::other(format!(
            "pid file {} is held by a running tern (pid {pid}); not starting",
            path.display()
        )),
        PidError::Held(None) => io::Error::other(format!(
            "pid file {} is locked by a running process; not starting",
            path.display()
        )),
        PidError::Io(e) => io::Error::new(
            e.kind(),
            format!("cannot write pid file {}: {e}", path.display()),
        ),
    })
}

/// `cfg` with every root as it is reached from outside `chroot`, to open them before it.
/// A root that resolves (through a symlink) to a place outside the chroot is an error: its
/// descriptor would reach past the chroot.
pub fn through(cfg: &Config, chroot: &Path) -> io::Result<Config> {
    let jail = std::fs::canonicalize(chroot)
        .map_err(|e| io::Error::new(e.kind(), format!("chroot {}: {e}", chroot.display())))?;
    let mut out = cfg.clone();
    for host in &mut out.hosts {
        for route in &mut host.routes {
            let path = match &mut route.kind {
                RouteKind::Static(p) => Some(p),
                RouteKind::Store(s) => Some(&mut s.dir),
                // CGI routes keep their path (scripts are run by it after the chroot).
                RouteKind::Redirect { .. } | RouteKind::Cgi(_) | RouteKind::Proxy(_) => None,
            };
            if let Some(p) = path {
                let outside = in_chroot(chroot, p);
                let real = std::fs::canonicalize(&outside)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", outside.display())))?;
                if !real.starts_with(&jail) {
                    return Err(io::Error::other(format!(
                        "root {} is {}, outside chroot {}",
                        p.display(),
                        real.display(),
                        chroot.display()
                    )));
                }
                *p = outside;
            }
        }
    }
    Ok(out)
}
