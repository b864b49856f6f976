//! Load-benchmark helper (run by benches/load.sh, not a criterion benchmark): opens N
//! keep-alive connections to a server, makes one request on each, keeps them all open and idle,
//! and reports how much the server's resident memory grew, read from /proc. Talks only to the
//! address it is given, and gives up on its own after a fixed time.
//!
//! `idle_conns ADDR SERVER_PID N PATH` prints one line:
//! `IDLE_RESULT conns=N opened=K alive=A rss_before_kb=.. rss_after_kb=.. fds_before=..
//! fds_after=.. open_ms=..`. Without arguments (as under `cargo test --all-targets`) it exits.
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// No single connect or response may take longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole run stops opening connections after this long.
const DEADLINE: Duration = Duration::from_secs(60);
/// Time the server gets to settle before each memory reading.
const SETTLE: Duration = Duration::from_millis(300);
/// Connections opened and sent their request before any response is read: the run must
/// finish well within the servers' keep-alive timeouts (5 s for tern and lighttpd).
const BATCH: usize = 64;

fn main() {
    // `cargo bench` appends `--bench`; it means nothing here.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        eprintln!("idle_conns: a helper of benches/load.sh; usage: idle_conns ADDR PID N PATH");
        return;
    }
    if let Err(e) = run(&args) {
        eprintln!("idle_conns: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> io::Result<()> {
    let [addr, pid, n, path] = args else {
        return Err(io::Error::other("usage: idle_conns ADDR PID N PATH"));
    };
    let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
    let pid: u32 = pid.parse().map_err(io::Error::other)?;
    let mut n: usize = n.parse().map_err(io::Error::other)?;
    let nofile = raise_nofile()?;
    if n as u64 + 32 > nofile {
        let fit = nofile.saturating_sub(32) as usize;
        eprintln!("idle_conns: descriptor limit {nofile}: opening {fit} connections, not {n}");
        n = fit;
    }
    let host = addr.to_string();
    let keep = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let close = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");

    // Warm the server's file cache on a connection that is closed before the first reading.
    let mut warm = connect(addr)?;
    warm.write_all(close.as_bytes())?;
    let mut sink = Vec::new();
    warm.read_to_end(&mut sink)?;
    drop(warm);

    std::thread::sleep(SETTLE);
    let rss_before = rss_kb(pid)?;
    let fds_before = fd_count(pid)?;

    let start = Instant::now();
    let mut conns = Vec::with_capacity(n);
    let mut buf = vec![0u8; 64 * 1024];
    while conns.len() < n && start.elapsed() < DEADLINE {
        let want = BATCH.min(n - conns.len());
        match open_batch(addr, keep.as_bytes(), want, &mut buf) {
            Ok(batch) => conns.extend(batch),
            Err(e) => {
                eprintln!("idle_conns: after {} connections: {e}", conns.len());
                break;
            }
        }
    }
    let open_ms = start.elapsed().as_millis();

    std::thread::sleep(SETTLE);
    let rss_after = rss_kb(pid)?;
    let fds_after = fd_count(pid)?;
    let alive = conns.iter().filter(|s| is_open(s)).count();
    println!(
        "IDLE_RESULT conns={n} opened={} alive={alive} rss_before_kb={rss_before} \
         rss_after_kb={rss_after} fds_before={fds_before} fds_after={fds_after} open_ms={open_ms}",
        conns.len()
    );
    Ok(())
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Opens `n` connections and sends `req` on each, then reads each one's response.
fn open_batch(
    addr: SocketAddr,
    req: &[u8],
    n: usize,
    buf: &mut [u8],
) -> io::Result<Vec<TcpStream>> {
    let mut batch = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = connect(addr)?;
        s.write_all(req)?;
        batch.push(s);
    }
    for s in &mut batch {
        read_response(s, buf)?;
    }
    Ok(batch)
}

/// Reads one complete 200 response (head and Content-Length body).
fn read_response(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut have = 0;
    loop {
        if have == buf.len() {
            return Err(io::Error::other("response larger than the buffer"));
        }
        let got = s.read(&mut buf[have..])?;
        if got == 0 {
            return Err(io::Error::other("closed before a complete response"));
        }
        have += got;
        let resp = &buf[..have];
        let Some(head_len) = resp
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| i + 4)
        else {
            continue;
        };
        let head = String::from_utf8_lossy(&resp[..head_len]);
        if !head.starts_with("HTTP/1.1 200") {
            let line = head.lines().next().unwrap_or("");
            return Err(io::Error::other(format!("status line {line:?}")));
        }
        let body_len = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .ok_or_else(|| io::Error::other("no Content-Length"))?;
        if have >= head_len + body_len {
            return Ok(());
        }
    }
}

/// Whether the server still holds the connection open: a non-blocking peek would block.
fn is_open(s: &TcpStream) -> bool {
    let mut b = [0u8; 1];
    s.set_nonblocking(true).is_ok()
        && matches!(s.peek(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

fn rss_kb(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS in /proc/PID/status"))
}

fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Raises this process's soft descriptor limit to its hard limit; returns the new soft limit.
fn raise_nofile() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: `lim` is a valid rlimit read by the kernel.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}
