//! Logs: the access log (Common or Combined Log Format) and the error log. Both are buffered
//! in memory and written at most once per second, when the buffer fills, and at shutdown, so
//! logging costs no system call per request. Control characters, quotes, backslashes and
//! non-ASCII bytes in logged fields are escaped as `\xHH` (as nginx does), so a request
//! cannot forge log lines.
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;

const FLUSH_AT: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Common,
    Combined,
}

/// Where a log goes: a file (reopened on SIGHUP/SIGUSR1 for rotation) or a standard stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Stdout,
    Stderr,
    File(PathBuf),
}

impl LogTarget {
    pub fn parse(s: &str) -> LogTarget {
        match s {
            "-" | "stdout" => LogTarget::Stdout,
            "stderr" => LogTarget::Stderr,
            path => LogTarget::File(PathBuf::from(path)),
        }
    }
}

enum Sink {
    Stdout,
    Stderr,
    File(File),
}

struct Writer {
    target: LogTarget,
    sink: Sink,
    /// A file's directory and name, opened with it: reopening goes through them when the
    /// path is out of reach (inside a chroot, the path outside it no longer resolves).
    dir: Option<(std::sync::Arc<std::os::fd::OwnedFd>, std::ffi::CString)>,
    buf: Vec<u8>,
}

impl Writer {
    fn open(target: LogTarget) -> io::Result<Writer> {
        let sink = Writer::sink(&target)?;
        let dir = match &target {
            LogTarget::File(p) => Writer::dir_of(p),
            _ => None,
        };
        Ok(Writer {
            target,
            sink,
            dir,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
        })
    }

    /// The directory of `p`, open, and `p`'s name in it (`None` if either is unusable: the
    /// log is then reopened by path only).
    fn dir_of(
        p: &std::path::Path,
    ) -> Option<(std::sync::Arc<std::os::fd::OwnedFd>, std::ffi::CString)> {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(p.file_name()?.as_bytes()).ok()?;
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => std::path::Path::new("."),
        };
        let fd = crate::sys::fs::open_dir(dir).ok()?;
        Some((std::sync::Arc::new(fd), name))
    }

    fn sink(target: &LogTarget) -> io::Result<Sink> {
        Ok(match target {
            LogTarget::Stdout => Sink::Stdout,
            LogTarget::Stderr => Sink::Stderr,
            LogTarget::File(p) => Sink::File(OpenOptions::new().create(true).append(true).open(p)?),
        })
    }

    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // A log that cannot be written must not take the server down; the bytes are dropped.
        let _ = match &mut self.sink {
            Sink::Stdout => io::stdout()
                .lock()
                .write_all(&self.buf)
                .and_then(|_| io::stdout().flush()),
            Sink::Stderr => io::stderr().lock().write_all(&self.buf),
            Sink::File(f) => f.write_all(&self.buf),
        };
        self.buf.clear();
    }

    fn after_write(&mut self) {
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// A writer for `target` that shares this one's open file when the target is the same.
    fn share(&self, target: &LogTarget) -> Option<io::Result<Writer>> {
        match (&self.sink, target == &self.target) {
            (Sink::File(f), true) => Some(f.try_clone().map(|f| Writer {
                target: target.clone(),
                sink: Sink::File(f),
                dir: self.dir.clone(),
                buf: Vec::with_capacity(FLUSH_AT + 4096),
            })),
            _ => None,
        }
    }

    /// Opens `target` by path (a reload reopens its logs, as for rotation); when that fails
    /// and `open` already writes there, shares its file instead (its path may be out of
    /// reach after a chroot, or not writable after a privilege drop).
    fn open_like(target: LogTarget, open: Option<&Writer>) -> io::Result<Writer> {
        match Writer::open(target.clone()) {
            Ok(w) => Ok(w),
            Err(e) => open.and_then(|w| w.share(&target)).unwrap_or(Err(e)),
        }
    }

    /// Gives the open log file to `uid:gid`, so that the process can reopen it in place
    /// after dropping privileges (as nginx does for its workers).
    fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        match &self.sink {
            Sink::File(f) => std::os::unix::fs::fchown(f, Some(uid), Some(gid)),
            _ => Ok(()),
        }
    }

    /// Reopens by path (as nginx does: after a rotation, a new file); when the path cannot
    /// be opened, through the directory opened at start (after a chroot).
    fn reopen(&mut self) -> io::Result<()> {
        use std::os::fd::AsFd;
        self.flush();
        self.sink = match (Writer::sink(&self.target), &self.dir) {
            (Ok(sink), _) => sink,
            (Err(e), Some((dir, name))) => {
                match crate::sys::fs::open_append_at(dir.as_fd(), name) {
                    Ok(f) => Sink::File(f),
                    Err(_) => return Err(e),
                }
            }
            (Err(e), None) => return Err(e),
        };
        Ok(())
    }
}

/// Appends `v` with quotes, backslashes, control and non-ASCII bytes as `\xHH`.
pub fn push_escaped(buf: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            buf.extend_from_slice(b"\\x");
            buf.push(b"0123456789ABCDEF"[(b >> 4) as usize]);
            buf.push(b"0123456789ABCDEF"[(b & 15) as usize]);
        } else {
            buf.push(b);
        }
    }
}

/// A `fmt::Write` that appends to a log buffer through [`push_escaped`].
struct Escaping<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        push_escaped(self.0, s.as_bytes());
        Ok(())
    }
}

/// `[10/Oct/2000:13:55:36 +0000]`, formatted once per second.
struct ClfTime {
    secs: i64,
    text: Vec<u8>,
}

impl ClfTime {
    fn get(&mut self, secs: i64) -> &[u8] {
        if secs != self.secs || self.text.is_empty() {
            self.secs = secs;
            let d = crate::http::date::format(secs); // "Sun, 06 Nov 1994 08:49:37 GMT"
            self.text.clear();
            self.text.push(b'[');
            self.text.extend_from_slice(&d[5..7]);
            self.text.push(b'/');
            self.text.extend_from_slice(&d[8..11]);
            self.text.push(b'/');
            self.text.extend_from_slice(&d[12..16]);
            self.text.push(b':');
            self.text.extend_from_slice(&d[17..25]);
            self.text.extend_from_slice(b" +0000]");
        }
        &self.text
    }
}

/// One access-log record.
pub struct Access<'a> {
    pub peer: IpAddr,
    pub request_line: &'a [u8],
    pub status: u16,
    pub bytes: u64,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
}

pub struct AccessLog {
    w: Writer,
    format: LogFormat,
    time: ClfTime,
}

impl AccessLog {
    pub fn open(target: LogTarget, format: LogFormat) -> io::Result<AccessLog> {
        Ok(AccessLog {
            w: Writer::open(target)?,
            format,
            time: ClfTime {
                secs: 0,
                text: Vec::new(),
            },
        })
    }

    /// `host ident authuser [date] "request" status bytes` (+ `"referer" "agent"`).
    pub fn write(&mut self, now: i64, a: &Access<'_>) {
        use std::io::Write as _;
        let buf = &mut self.w.buf;
        let _ = write!(buf, "{} - - ", a.peer);
        buf.extend_from_slice(self.time.get(now));
        buf.extend_from_slice(b" \"");
        push_escaped(buf, a.request_line);
        buf.extend_from_slice(b"\" ");
        crate::http::response::push_u64(buf, u64::from(a.status));
        buf.push(b' ');
        if a.bytes == 0 {
            buf.push(b'-');
        } else {
            crate::http::response::push_u64(buf, a.bytes);
        }
        if self.format == LogFormat::Combined {
            for v in [a.referer, a.user_agent] {
                buf.extend_from_slice(b" \"");
                match v {
                    Some(v) => push_escaped(buf, v),
                    None => buf.push(b'-'),
                }
                buf.push(b'"');
            }
        }
        buf.push(b'\n');
        self.w.after_write();
    }

    pub fn flush(&mut self) {
        self.w.flush();
    }

    pub fn reopen(&mut self) -> io::Result<()> {
        self.w.reopen()
    }

    /// Opens `target`, or shares the file of one of `open` that already writes to it.
    pub fn open_like(
        target: LogTarget,
        format: LogFormat,
        open: &[AccessLog],
    ) -> io::Result<AccessLog> {
        let same = open.iter().map(|l| &l.w).find(|w| w.target == target);
        Ok(AccessLog {
            w: Writer::open_like(target, same)?,
            format,
            time: ClfTime {
                secs: 0,
                text: Vec::new(),
            },
        })
    }

    pub fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        self.w.chown(uid, gid)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "error" => Level::Error,
            "warn" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }
}

/// The error log: `2026-11-21T23:17:00Z [info] 127.0.0.1: 400 invalid Host`.
pub struct ErrorLog {
    w: Writer,
    level: Level,
}

impl ErrorLog {
    pub fn open(target: LogTarget, level: Level) -> io::Result<ErrorLog> {
        Ok(ErrorLog {
            w: Writer::open(target)?,
            level,
        })
    }

    pub fn enabled(&self, level: Level) -> bool {
        level <= self.level
    }

    /// Writes one line; `msg` is escaped like any logged field.
    pub fn log(&mut self, now: i64, level: Level, msg: std::fmt::Arguments<'_>) {
        if !self.enabled(level) {
            return;
        }
        use std::io::Write as _;
        let buf = &mut self.w.buf;
        crate::http::date::push_numeric(buf, now, b'T', true);
        let _ = write!(buf, "Z [{}] ", level.as_str());
        // Escape while formatting, without a temporary buffer (so logging allocates nothing).
        let _ = std::fmt::Write::write_fmt(&mut Escaping(buf), msg);
        buf.push(b'\n');
        self.w.after_write();
    }

    pub fn flush(&mut self) {
        self.w.flush();
    }

    pub fn reopen(&mut self) -> io::Result<()> {
        self.w.reopen()
    }

    /// Opens `target`, or shares `open`'s file when it already writes there.
    pub fn open_like(
        target: LogTarget,
        level: Level,
        open: Option<&ErrorLog>,
    ) -> io::Result<ErrorLog> {
        Ok(ErrorLog {
            w: Writer::open_like(target, open.map(|l| &l.w))?,
            level,
        })
    }

    pub fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        self.w.chown(uid, gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_forge_lines() {
        let mut b = Vec::new();
        push_escaped(&mut b, b"GET /a\"b\\c\n\x1b[31m\xff HTTP/1.1");
        assert_eq!(b, br#"GET /a\x22b\x5Cc\x0A\x1B[31m\xFF HTTP/1.1"#);
    }

    #[test]
    fn clf_time() {
        let mut t = ClfTime {
            secs: 0,
            text: Vec::new(),
        };
        assert_eq!(t.get(784_111_777), b"[06/Nov/1994:08:49:37 +0000]");
    }
}
