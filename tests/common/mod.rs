//! Integration-test support: start the real `tern` binary on 127.0.0.1:0, learn its port from
//! its `listening on` line, talk to it with raw bytes or real clients, kill it on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const TIMEOUT: Duration = Duration::from_secs(2);

/// A temporary document root.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A path beside the root (outside it), for logs and escape targets.
    pub fn outside(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn file(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }

    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.root().join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A small standard site used by many tests.
    pub fn standard() -> Site {
        let s = Site::new();
        s.dir("");
        s.file("index.html", b"<h1>home</h1>\n");
        s.file("a.txt", b"hello\n");
        s.file("sub/b.txt", b"bee\n");
        s.dir("empty");
        s
    }
}

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub error_log: PathBuf,
}

impl Server {
    /// Starts tern on `site`'s root with extra flags.
    pub fn start(site: &Site, flags: &[&str]) -> Server {
        let error_log = site.outside(&format!("error-{}.log", rand_suffix()));
        Server::start_root(&site.root(), &error_log, flags)
    }

    pub fn start_root(root: &Path, error_log: &Path, flags: &[&str]) -> Server {
        let mut args: Vec<&std::ffi::OsStr> = flags.iter().map(std::ffi::OsStr::new).collect();
        args.push(root.as_os_str());
        Server::start_args(&args, error_log)
    }

    /// Starts tern with a configuration file and no ROOT argument (the file's root counts).
    pub fn start_config(config: &Path, error_log: &Path, flags: &[&str]) -> Server {
        let mut args: Vec<&std::ffi::OsStr> = vec!["-c".as_ref(), config.as_os_str()];
        args.extend(flags.iter().map(std::ffi::OsStr::new));
        Server::start_args(&args, error_log)
    }

    /// Starts tern on 127.0.0.1:0 logging errors to `error_log`, with `args` after that.
    pub fn start_args(args: &[&std::ffi::OsStr], error_log: &Path) -> Server {
        Server::start_args_env(args, error_log, &[])
    }

    /// As `start_args`, with `env` added to tern's environment (`NOTIFY_SOCKET`, ...).
    pub fn start_args_env(
        args: &[&std::ffi::OsStr],
        error_log: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .envs(env.iter().copied())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--error-log")
            .arg(error_log)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn tern");
        let addr = listening_addr(&mut child.stdout.take().unwrap())
            .parse()
            .expect("address");
        Server {
            child,
            addr,
            error_log: error_log.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.set_write_timeout(Some(TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Sends raw bytes on a new connection and reads until the server closes it.
    pub fn raw(&self, req: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        s.write_all(req).unwrap();
        read_to_close(&mut s)
    }

    /// Sends one request on a new connection and returns the parsed response.
    pub fn get(&self, req: &str) -> Response {
        let mut s = self.connect();
        s.write_all(req.as_bytes()).unwrap();
        read_response(&mut s, req.starts_with("HEAD ")).expect("response")
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// Waits (logs are flushed once per second) until the error log contains every needle.
    pub fn wait_log(&self, needles: &[&str]) -> String {
        let start = std::time::Instant::now();
        loop {
            let log = self.error_log();
            if needles.iter().all(|n| log.contains(n)) || start.elapsed() > Duration::from_secs(3) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit and returns its status code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Reads until EOF, a reset or the timeout.
/// Reads tern's first `listening on http://ADDR` line from its stdout and returns ADDR. It
/// reads byte by byte, so the caller can go on reading what follows (an access log on `-`).
pub fn listening_addr(out: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.last() != Some(&b'\n') {
        out.read_exact(&mut b).expect("read listening line");
        line.push(b[0]);
    }
    let line = String::from_utf8(line).expect("UTF-8 listening line");
    line.trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}

pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => return out,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The head exactly as received, including the status line and the blank line.
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// Headers other than Date, which may tick between two responses.
    pub fn stable_head(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .cloned()
            .collect()
    }
}

/// Reads exactly one response (framed by Content-Length) from a stream.
pub fn read_response(s: &mut impl Read, head_only: bool) -> Option<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(head).expect("utf-8 head");
    let status = head.get(9..12)?.parse().ok()?;
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.to_string(), v.trim().to_string()))
        })
        .collect();
    let mut r = Response {
        status,
        head,
        headers,
        body: Vec::new(),
    };
    let len: usize = r.header("Content-Length").map_or(0, |v| v.parse().unwrap());
    if !head_only {
        r.body = vec![0; len];
        s.read_exact(&mut r.body).ok()?;
    }
    Some(r)
}

/// Parses every response in `bytes` (for pipelining tests); `head_only` per response.
pub fn parse_responses(mut bytes: &[u8]) -> Vec<Response> {
    let mut v = Vec::new();
    while !bytes.is_empty() {
        match read_response(&mut bytes, false) {
            Some(r) => v.push(r),
            None => break,
        }
    }
    v
}

/// Runs curl with `args` and returns (exit code, stdout).
pub fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is installed (make test installs it through .ci/deps)");
    (out.status.code().unwrap_or(-1), out.stdout)
}

/// Deterministic pseudo-random bytes (xorshift), so byte-exact checks catch any reordering.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Undoes the HTML escaping tern applies to names in listings.
pub fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
