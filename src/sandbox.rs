//! Landlock: once set up (listeners bound, logs and roots open, chroot entered, privileges
//! dropped), the process restricts itself to the files it serves and writes. The kernel then
//! refuses every other open, whatever a bug in tern (or a symlink in a root) asks for:
//! read-only beneath each document root and each configuration file, write only where logs
//! are (re)opened, and removal only of the pid file. What is allowed is computed here from
//! the configuration ([`plan`]); [`prepare`] builds the ruleset and [`Prepared::enforce`]
//! asks the kernel for it, best effort by its ABI.
//!
//! What is handled are the file-system rights up to ABI 8 (reading, writing, creating,
//! removing, renaming across directories, truncating, device ioctls). Two kinds are left
//! alone on purpose: network rights (a reload may bind new listeners) and ABI 9's connecting
//! to Unix sockets by path (systemd's notify socket is sent to by path, on every message).
//! Signals are not scoped either: tern signals nothing outside itself.
use std::path::{Path, PathBuf};

use landlock::{
    Access, AccessFs, BitFlags, LandlockStatus, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetStatus, ABI,
};

use crate::config::{Config, RouteKind};
use crate::log::LogTarget;

/// The highest ABI whose file-system rights are handled (see the module documentation).
const HANDLED: ABI = ABI::V8;

/// What the sandbox allows, by path.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Read files and list directories beneath these (roots, configuration files).
    pub read: Vec<PathBuf>,
    /// Create and append to files in these directories (where logs are reopened).
    pub write: Vec<PathBuf>,
    /// Remove files in these directories (the pid file's).
    pub remove: Vec<PathBuf>,
    /// Read and execute beneath these (CGI directories, interpreters, applications and the
    /// system directories they load from; `sandbox_exec`).
    pub exec: Vec<PathBuf>,
    /// Read and write these files (`/dev/null` and its kin, for children).
    pub devices: Vec<PathBuf>,
    /// Create and remove Unix sockets in these directories (an application's socket).
    pub sockets: Vec<PathBuf>,
    /// Read and write anything beneath these (`sandbox_write`).
    pub rw: Vec<PathBuf>,
}

impl Plan {
    fn add(list: &mut Vec<PathBuf>, p: &Path) {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        if !list.contains(&p) {
            list.push(p);
        }
    }
}

/// The paths `cfg` needs once running, as the process sees them now (before the chroot:
/// pass the configuration as seen from outside it).
pub fn plan(cfg: &Config) -> Plan {
    let mut plan = Plan::default();
    let mut dynamic = false;
    for host in &cfg.hosts {
        for route in &host.routes {
            match &route.kind {
                RouteKind::Static(p) => Plan::add(&mut plan.read, p),
                RouteKind::Redirect { .. } => {}
                RouteKind::Cgi(p) => Plan::add(&mut plan.exec, p),
                // Uploads go to a temporary file beside the key, renamed over it, in
                // directories `create_dirs` makes: everything but executing.
                RouteKind::Store(s) => Plan::add(&mut plan.rw, &s.dir),
                RouteKind::Proxy(up) => {
                    if let Some(program) = up.command.first() {
                        dynamic = true;
                        if let Some(p) = on_path(program) {
                            Plan::add(&mut plan.exec, &p);
                        }
                        if let crate::config::UpstreamAddr::Unix(sock) = &up.addr {
                            Plan::add(&mut plan.sockets, parent(sock));
                        }
                    }
                }
            }
            if let (false, RouteKind::Static(p)) = (route.run.is_empty(), &route.kind) {
                Plan::add(&mut plan.exec, p);
            }
            for (_, interpreter) in &route.run {
                if let Some(p) = on_path(interpreter) {
                    Plan::add(&mut plan.exec, &p);
                }
            }
            dynamic |= matches!(route.kind, RouteKind::Cgi(_)) || !route.run.is_empty();
        }
    }
    // Children inherit the domain: what a script or an application needs to start at all.
    if dynamic {
        for d in SYSTEM_EXEC {
            if Path::new(d).exists() {
                Plan::add(&mut plan.exec, Path::new(d));
            }
        }
        for f in SYSTEM_READ {
            if Path::new(f).exists() {
                Plan::add(&mut plan.read, Path::new(f));
            }
        }
        for f in DEVICES {
            if Path::new(f).exists() {
                Plan::add(&mut plan.devices, Path::new(f));
            }
        }
    }
    let svc = &cfg.service;
    for (list, extra) in [
        (&mut plan.read, &svc.sandbox_read),
        (&mut plan.exec, &svc.sandbox_exec),
        (&mut plan.rw, &svc.sandbox_write),
    ] {
        for p in extra {
            Plan::add(list, p);
        }
    }
    // A reload reads the files again, and may find new ones where an include glob looks.
    // A rule on a file holds its inode, and editors and configuration managers replace a
    // file by renaming a new one over it: so the rule is on the file's directory.
    for p in &cfg.config_paths {
        let dir = if p.is_dir() { p.as_path() } else { parent(p) };
        Plan::add(&mut plan.read, dir);
    }
    // Certificates and keys are read again on SIGHUP and on renewal, and certbot renews by
    // writing new files beside the old and re-pointing symlinks: the rules are on the
    // directory of each file and of every symlink target along the way (live/ and
    // archive/), which are also the directories inotify watches.
    for f in crate::tls::files(cfg) {
        for dir in crate::tls::watch_dirs(&f) {
            Plan::add(&mut plan.read, &dir);
        }
    }
    // htpasswd files are read again when they change, replaced by rename like any file
    // an editor or `htpasswd` writes: the rule is on the directory.
    for f in cfg.htpasswd_files() {
        Plan::add(&mut plan.read, parent(&f));
    }
    let logs = std::iter::once(&cfg.error_log).chain(
        cfg.hosts
            .iter()
            .filter_map(|h| h.access_log.as_ref().map(|l| &l.0)),
    );
    for target in logs {
        if let LogTarget::File(p) = target {
            Plan::add(&mut plan.write, parent(p));
        }
    }
    if let Some(p) = &cfg.service.pid_file {
        Plan::add(&mut plan.remove, parent(p));
    }
    plan
}

/// Where executables, the dynamic loader, shared libraries and interpreters' own libraries
/// live (on merged-/usr systems `/bin` and `/lib` are links into `/usr`).
const SYSTEM_EXEC: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"];
/// Files a dynamically linked program or a script commonly reads at start (the loader's
/// cache, the time zone, user and host lookups). Not `/etc` as a whole.
const SYSTEM_READ: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
];
/// Devices children read and write (`2>/dev/null`, random numbers).
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"];

/// `program` as the child will find it: as given when it has a `/`, else through `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn parent(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// What the kernel enforces after [`Prepared::enforce`].
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A Landlock domain is in force; `abi` is the kernel's Landlock ABI (what it enforces
    /// of the rules depends on it: best effort).
    Enforced { abi: i32 },
    /// The kernel has no Landlock (not built in, or not enabled at boot).
    Unsupported,
}

impl Outcome {
    /// The error-log line announcing it, in the form the documentation promises.
    pub fn message(&self) -> String {
        match self {
            Outcome::Enforced { abi } => format!("landlock: ABI {abi}, enforced"),
            Outcome::Unsupported => "landlock: not supported by this kernel".to_string(),
        }
    }
}

/// A ruleset built and waiting to be enforced: its rules hold the paths' inodes, so it is
/// built before the chroot (with the paths as seen from outside) and enforced after it and
/// after the privilege drop, and means the same files either way.
pub struct Prepared {
    ruleset: RulesetCreated,
    /// Paths that could not be opened (their opens would fail anyway), for the log.
    pub skipped: Vec<String>,
}

/// Builds the ruleset for `plan`.
pub fn prepare(plan: &Plan) -> Result<Prepared, String> {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let write = AccessFs::WriteFile | AccessFs::MakeReg;
    let remove: BitFlags<AccessFs> = AccessFs::RemoveFile.into();
    let exec = AccessFs::Execute | AccessFs::ReadFile | AccessFs::ReadDir;
    let devices = AccessFs::ReadFile | AccessFs::WriteFile;
    let sockets = AccessFs::MakeSock | AccessFs::RemoveFile;
    let rw = AccessFs::from_all(HANDLED);
    let mut skipped = Vec::new();
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(HANDLED))
        .and_then(|r| r.create())
        .map_err(|e| format!("landlock: {e}"))?;
    for (paths, access) in [
        (&plan.read, read),
        (&plan.write, write),
        (&plan.remove, remove),
        (&plan.exec, exec),
        (&plan.devices, devices),
        (&plan.sockets, sockets),
        (&plan.rw, rw),
    ] {
        for p in paths {
            let fd = match PathFd::new(p) {
                Ok(fd) => fd,
                Err(e) => {
                    skipped.push(format!("{}: {e}", p.display()));
                    continue;
                }
            };
            // Rules on a file may only carry file rights (no listing, no creating in it).
            let access = if std::fs::metadata(p).is_ok_and(|m| !m.is_dir()) {
                access & AccessFs::from_file(HANDLED)
            } else {
                access
            };
            if access.is_empty() {
                continue;
            }
            ruleset = ruleset
                .add_rule(PathBeneath::new(fd, access))
                .map_err(|e| format!("landlock: {}: {e}", p.display()))?;
        }
    }
    Ok(Prepared { ruleset, skipped })
}

impl Prepared {
    /// Restricts the calling thread (and every thread and child it starts from now on).
    /// Threads started before this call are not restricted: call it before starting any.
    pub fn enforce(self) -> Result<Outcome, String> {
        let status = self
            .ruleset
            .restrict_self()
            .map_err(|e| format!("landlock: {e}"))?;
        Ok(match (status.ruleset, status.landlock) {
            (RulesetStatus::NotEnforced, _) => Outcome::Unsupported,
            (
                _,
                LandlockStatus::Available {
                    effective_abi,
                    kernel_abi,
                },
            ) => Outcome::Enforced {
                abi: kernel_abi.unwrap_or(effective_abi as i32),
            },
            (_, _) => Outcome::Unsupported,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_documented_form() {
        assert_eq!(
            Outcome::Enforced { abi: 7 }.message(),
            "landlock: ABI 7, enforced"
        );
        assert_eq!(
            Outcome::Unsupported.message(),
            "landlock: not supported by this kernel"
        );
    }

    #[test]
    fn plan_covers_roots_logs_config_and_pid_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("www")).expect("mkdir");
        std::fs::create_dir_all(d.join("log")).expect("mkdir");
        let s = |p: &str| d.join(p).to_string_lossy().into_owned();
        let inv = crate::config::cli::parse([
            "tern".to_string(),
            "--access-log".into(),
            s("log/access.log"),
            "--error-log".into(),
            s("log/error.log"),
            "--pid-file".into(),
            s("tern.pid"),
            s("www"),
        ]);
        let mut cfg = match crate::config::load(None, &inv.overrides) {
            Ok(c) => c,
            Err(e) => panic!("{e:?}"),
        };
        cfg.config_paths = vec![PathBuf::from("/etc/tern/tern.toml"), d.join("www")];
        let p = plan(&cfg);
        assert!(p.read.contains(&d.join("www")), "{p:?}");
        assert!(p.read.contains(&PathBuf::from("/etc/tern")));
        assert_eq!(p.read.len(), 2, "{p:?}");
        assert_eq!(p.write, vec![d.join("log")]);
        assert_eq!(p.remove, vec![d.to_path_buf()]);
    }
}
