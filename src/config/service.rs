//! `user`, `group`, `chroot`, `daemon`, `pid_file`: read from the flags and the top level,
//! checked (the user and group exist, the chroot is a directory) into a [`Service`]. Looks
//! names up in the user and group databases; changes nothing.
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::build::{in_dir, Errors};
use super::raw::{List, RawTop};
use super::{io_reason, Overrides, Service};
use crate::sys::process;

/// Where path `p` of the configuration is while the process is still outside `chroot`
/// (`..` stops at the chroot, as the kernel's does).
pub fn in_chroot(chroot: &Path, p: &Path) -> PathBuf {
    let mut out = chroot.to_path_buf();
    for c in p.components() {
        match c {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                if out != chroot {
                    out.pop();
                }
            }
            other => out.push(other),
        }
    }
    out
}

pub(super) fn build(e: &mut Errors, top: &mut RawTop, ov: &Overrides) -> Service {
    let user = name(e, "user", &ov.user, &top.user);
    let group = name(e, "group", &ov.group, &top.group);
    if let Some((u, span)) = &user {
        match process::user(u) {
            Ok(Some(_)) => {}
            Ok(None) => place(e, span, format!("user \"{u}\": no such user")),
            Err(err) => place(e, span, format!("user \"{u}\": {}", io_reason(&err))),
        }
    }
    if let Some((g, span)) = &group {
        match process::group(g) {
            Ok(Some(_)) => {}
            Ok(None) => place(e, span, format!("group \"{g}\": no such group")),
            Err(err) => place(e, span, format!("group \"{g}\": {}", io_reason(&err))),
        }
        if user.is_none() {
            place(
                e,
                span,
                "group without user: set user as well (tern switches both)",
            );
        }
    }
    let chroot = path(e, "chroot", &ov.chroot, &top.chroot);
    // After the chroot, a reload cannot see the old path (nor need to): it was checked at start.
    if let (Some((dir, span)), false) = (&chroot, process::chrooted()) {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => place(
                e,
                span,
                format!("chroot {}: not a directory", dir.display()),
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => place(
                e,
                span,
                format!("chroot {}: no such directory", dir.display()),
            ),
            Err(err) => place(
                e,
                span,
                format!("chroot {}: {}", dir.display(), io_reason(&err)),
            ),
        }
    }
    let pid_file = path(e, "pid_file", &ov.pid_file, &top.pid_file);
    Service {
        user: user.map(|u| u.0),
        group: group.map(|g| g.0),
        chroot: chroot.map(|c| c.0),
        daemon: ov.daemon.or(top.daemon).unwrap_or(false),
        pid_file: pid_file.map(|p| p.0),
        sandbox: ov.sandbox.or(top.sandbox).unwrap_or(true),
        sandbox_read: paths(e, &top.sandbox_read),
        sandbox_exec: paths(e, &top.sandbox_exec),
        sandbox_write: paths(e, &top.sandbox_write),
    }
}

/// Where an error about a value goes: its place in the file, or none for a flag.
type Span = Option<std::ops::Range<usize>>;

fn place(e: &mut Errors, span: &Span, msg: impl Into<String>) {
    match span {
        Some(s) => e.at(0, s, msg),
        None => e.list.push(super::ConfigError::plain(msg)),
    }
}

fn name(
    e: &mut Errors,
    key: &str,
    flag: &Option<String>,
    file: &Option<Spanned<String>>,
) -> Option<(String, Span)> {
    let (v, span) = match (flag, file) {
        (Some(f), _) => (f.clone(), None),
        (None, Some(v)) => (v.get_ref().clone(), Some(v.span())),
        (None, None) => return None,
    };
    if v.is_empty() {
        place(
            e,
            &span,
            format!("{key} = \"\": expected a name or a number"),
        );
        return None;
    }
    Some((v, span))
}

/// A list of paths from the file, each relative to the file's directory.
fn paths(e: &mut Errors, file: &Option<Spanned<List>>) -> Vec<PathBuf> {
    let Some(list) = file else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (span, p) in &list.get_ref().0 {
        if p.is_empty() {
            let span = span.clone().unwrap_or_else(|| list.span());
            e.at(0, &span, "\"\" in a list of paths: expected a path");
            continue;
        }
        out.push(in_dir(&e.files[0].dir, p));
    }
    out
}

/// A path from a flag (relative to the working directory) or the file (relative to the
/// file's directory).
fn path(
    e: &mut Errors,
    key: &str,
    flag: &Option<PathBuf>,
    file: &Option<Spanned<String>>,
) -> Option<(PathBuf, Span)> {
    match (flag, file) {
        // Made absolute now: the daemon leaves the starting directory.
        (Some(f), _) => Some((std::path::absolute(f).unwrap_or_else(|_| f.clone()), None)),
        (None, Some(v)) if v.get_ref().is_empty() => {
            place(e, &Some(v.span()), format!("{key} = \"\": expected a path"));
            None
        }
        (None, Some(v)) => Some((in_dir(&e.files[0].dir, v.get_ref()), Some(v.span()))),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::in_chroot as outside;
    use std::path::Path;

    #[test]
    fn paths_land_inside_the_chroot() {
        let c = Path::new("/srv/jail");
        assert_eq!(outside(c, Path::new("/www")), Path::new("/srv/jail/www"));
        assert_eq!(outside(c, Path::new("www/a")), Path::new("/srv/jail/www/a"));
        assert_eq!(outside(c, Path::new(".")), Path::new("/srv/jail"));
        assert_eq!(outside(c, Path::new("/../etc")), Path::new("/srv/jail/etc"));
        assert_eq!(
            outside(c, Path::new("/a/../../b")),
            Path::new("/srv/jail/b")
        );
    }
}
