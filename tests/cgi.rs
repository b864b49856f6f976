//! CGI against the real binary: shell and Python scripts written by the tests, run through
//! `cgi = "DIR"` and `run = { ".py" = "/usr/bin/python3" }` routes, talked to with raw bytes
//! and curl. Process checks read /proc (children of tern, process groups, zombies).
mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{curl, pattern, read_to_close, Server, Site};

const PYTHON: &str = "/usr/bin/python3";

struct Cgi {
    site: Site,
    server: Server,
}

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A site with `/cgi-bin/` (cgi), `/slow/` (cgi, 1 s timeout), `/py/` (static + run) and
/// `/few/` (cgi, at most 16 children), plus whatever `extra` adds to the configuration.
fn start(extra: &str, env: &[(&str, &std::ffi::OsStr)]) -> Cgi {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is needed (make test installs it through .ci/deps)"
    );
    let site = Site::standard();
    let cgi = site.outside("cgi");
    let py = site.outside("py");
    std::fs::create_dir_all(&cgi).unwrap();
    std::fs::create_dir_all(&py).unwrap();
    let cfg = site.outside("tern.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {root:?}\ncgi_max_processes = 64\n{extra}\n\
             [route.\"/cgi-bin/\"]\ncgi = {cgi:?}\n\
             [route.\"/slow/\"]\ncgi = {cgi:?}\ncgi_timeout = \"1s\"\n\
             [route.\"/few/\"]\ncgi = {cgi:?}\ncgi_max_processes = 16\n\
             [route.\"/py/\"]\nstatic = {py:?}\nrun = {{ \".py\" = \"{PYTHON}\" }}\n",
            root = site.root(),
        ),
    )
    .unwrap();
    let log = site.outside("error.log");
    let args: Vec<&std::ffi::OsStr> = vec!["-c".as_ref(), cfg.as_os_str()];
    let server = Server::start_args_env(&args, &log, env);
    Cgi { site, server }
}

impl Cgi {
    fn cgi_dir(&self) -> PathBuf {
        self.site.outside("cgi")
    }

    fn py_dir(&self) -> PathBuf {
        self.site.outside("py")
    }
}

/// The status line and the decoded body of one response read to the close.
fn split(resp: &[u8]) -> (String, String, Vec<u8>) {
    let end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    let head = String::from_utf8_lossy(&resp[..end]).into_owned();
    let status = head.lines().next().unwrap_or("").to_string();
    let raw = &resp[end..];
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    (status, head, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let nl = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk line");
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..nl]).unwrap(), 16).unwrap();
        raw = &raw[nl + 2..];
        if size == 0 {
            assert_eq!(raw, b"\r\n", "the last chunk ends the body");
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n");
        raw = &raw[size + 2..];
    }
}

fn get(s: &Server, path: &str) -> (String, String, Vec<u8>) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: t.example\r\nConnection: close\r\n\r\n");
    let mut c = s.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(req.as_bytes()).unwrap();
    split(&read_to_close(&mut c))
}

/// Waits up to `limit` for `cond`.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; count it as gone only when reaped.
    Path::new(&format!("/proc/{pid}")).exists()
}

fn read_pid(p: &Path) -> u32 {
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_to_string(p)
            .is_ok_and(|s| s.trim().parse::<u32>().is_ok())),
        "the script wrote its pid"
    );
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

/// The states (`R`, `S`, `Z`, ...) of `pid`'s child processes, from `/proc/*/stat`.
fn child_states(pid: u32) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .filter_map(|stat| {
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let rest = stat.rsplit_once(')')?.1.to_string();
            let mut f = rest.split_whitespace();
            let state = f.next()?.to_string();
            (f.next()? == pid.to_string()).then_some(state)
        })
        .collect()
}

/// tern's children that are zombies.
fn zombies_of(pid: u32) -> usize {
    child_states(pid).iter().filter(|s| *s == "Z").count()
}

fn children_of(pid: u32) -> usize {
    child_states(pid).len()
}

#[test]
fn the_tutorial_time_page_in_shell_and_python() {
    let t = start("", &[]);
    script(
        &t.cgi_dir(),
        "time",
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"The time is $(date -u +%H:%M:%S)\"\n",
    );
    let (status, head, body) = get(&t.server, "/cgi-bin/time");
    assert_eq!(status, "HTTP/1.1 200 OK", "{head}");
    assert!(head.contains("Content-Type: text/plain\r\n"), "{head}");
    assert!(
        head.contains("Transfer-Encoding: chunked\r\n"),
        "no length given: {head}"
    );
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.starts_with("The time is ") && body.len() == 21,
        "{body:?}"
    );

    std::fs::write(
        t.py_dir().join("time.py"),
        "import time\nprint('Content-Type: text/html')\nprint()\n\
         print('<p>' + time.strftime('%Y') + '</p>')\n",
    )
    .unwrap();
    std::fs::write(t.py_dir().join("plain.txt"), "not a script\n").unwrap();
    let (status, _, body) = get(&t.server, "/py/time.py");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(String::from_utf8(body).unwrap().starts_with("<p>20"));
    // Other files of a run route are static; the script's source is never served.
    let (status, _, body) = get(&t.server, "/py/plain.txt");
    assert_eq!(
        (status.as_str(), &body[..]),
        ("HTTP/1.1 200 OK", &b"not a script\n"[..])
    );

    // HTTP/1.0: close-delimited, no chunking.
    let mut c = t.server.connect();
    c.write_all(b"GET /cgi-bin/time HTTP/1.0\r\n\r\n").unwrap();
    let (status, head, body) = split(&read_to_close(&mut c));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        !head.contains("chunked") && head.contains("Connection: close"),
        "{head}"
    );
    assert!(body.starts_with(b"The time is "));
}

#[test]
fn a_form_post_is_echoed_with_the_meta_variables() {
    let secret = std::ffi::OsStr::new("do-not-leak");
    let t = start("", &[("TERN_TEST_SECRET", secret)]);
    std::fs::write(
        t.py_dir().join("echo.py"),
        "import os, sys\n\
         n = int(os.environ.get('CONTENT_LENGTH') or 0)\n\
         body = sys.stdin.buffer.read(n)\n\
         sys.stdout.write('Status: 201 Made\\r\\nContent-Type: text/plain\\r\\nX-Script: yes\\r\\n\\r\\n')\n\
         sys.stdout.flush()\n\
         sys.stdout.buffer.write(b'body=' + body + b'\\n')\n\
         for k in sorted(os.environ):\n\
         \x20   sys.stdout.write(k + '=' + os.environ[k] + '\\n')\n",
    )
    .unwrap();
    let url = t.server.url("/py/echo.py/more/info?x=1&y=2");
    let (code, out) = curl(&[
        "-i",
        "-d",
        "name=tern&lang=rust",
        "-H",
        "Proxy: http://evil.example:3128",
        "-H",
        "Authorization: Basic dTpw",
        "-H",
        "X_Foo: smuggled",
        "-H",
        "X-Foo: real",
        "-H",
        "X-Multi: a",
        "-H",
        "X-Multi: b",
        &url,
    ]);
    assert_eq!(code, 0);
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("HTTP/1.1 201 Created\r\n"), "{out}");
    assert!(out.contains("\r\nX-Script: yes\r\n"), "{out}");
    let body = &out[out.find("\r\n\r\n").unwrap() + 4..];
    let vars: std::collections::HashMap<&str, &str> =
        body.lines().filter_map(|l| l.split_once('=')).collect();
    assert!(body.starts_with("body=name=tern&lang=rust\n"), "{body}");
    let port = t.server.addr.port().to_string();
    let py = t.py_dir().canonicalize().unwrap();
    let expect = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("REQUEST_METHOD", "POST"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SCRIPT_NAME", "/py/echo.py"),
        ("PATH_INFO", "/more/info"),
        ("QUERY_STRING", "x=1&y=2"),
        ("REQUEST_URI", "/py/echo.py/more/info?x=1&y=2"),
        ("CONTENT_LENGTH", "19"),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_NAME", "127.0.0.1"),
        ("SERVER_PORT", port.as_str()),
        ("HTTP_X_FOO", "real"),
        ("HTTP_X_MULTI", "a, b"),
    ];
    for (k, v) in expect {
        assert_eq!(vars.get(k).copied(), Some(v), "{k} in {body}");
    }
    assert_eq!(
        vars.get("DOCUMENT_ROOT").copied(),
        Some(py.to_str().unwrap())
    );
    assert_eq!(
        vars.get("PATH_TRANSLATED").copied(),
        Some(format!("{}/more/info", py.display()).as_str())
    );
    assert!(vars.contains_key("REMOTE_PORT") && vars.contains_key("SERVER_SOFTWARE"));
    assert!(vars.contains_key("PATH"), "PATH is inherited by default");
    // A chunked body is spooled and the script starts later: it gets the addresses too.
    let (code, out) = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "-d",
        "name=chunked",
        &url,
    ]);
    assert_eq!(code, 0);
    let out = String::from_utf8(out).unwrap();
    let late: std::collections::HashMap<&str, &str> =
        out.lines().filter_map(|l| l.split_once('=')).collect();
    assert!(out.starts_with("body=name=chunked\n"), "{out}");
    assert_eq!(late.get("CONTENT_LENGTH").copied(), Some("12"), "{out}");
    assert_eq!(late.get("REMOTE_ADDR").copied(), Some("127.0.0.1"), "{out}");
    assert_eq!(
        late.get("SERVER_PORT").copied(),
        Some(port.as_str()),
        "{out}"
    );
    assert!(late.contains_key("REMOTE_PORT"), "{out}");
    for absent in [
        "HTTP_PROXY",
        "HTTP_AUTHORIZATION",
        "TERN_TEST_SECRET",
        "HTTP_CONTENT_LENGTH",
    ] {
        assert!(
            !vars.contains_key(absent),
            "{absent} must not be set: {body}"
        );
    }
    assert!(!body.contains("smuggled"), "X_Foo is dropped: {body}");
}

#[test]
fn ten_mib_of_output_arrive_byte_for_byte() {
    let t = start("", &[]);
    let data = pattern(10 << 20, 7);
    let file = t.site.outside("big.bin");
    std::fs::write(&file, &data).unwrap();
    script(
        &t.cgi_dir(),
        "big",
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\n\\n'\nexec cat {}\n",
            file.display()
        ),
    );
    let (code, body) = curl(&[&t.server.url("/cgi-bin/big")]);
    assert_eq!(code, 0);
    assert_eq!(body.len(), data.len());
    assert!(body == data, "10 MiB streamed byte for byte");
    // And a length the script declares is sent as it is, not chunked.
    script(
        &t.cgi_dir(),
        "sized",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\nContent-Length: 5\\n\\nhello'\n",
    );
    let (status, head, body) = get(&t.server, "/cgi-bin/sized");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        head.contains("Content-Length: 5\r\n") && !head.contains("chunked"),
        "{head}"
    );
    assert_eq!(body, b"hello");
}

#[test]
fn a_script_that_ignores_its_input_still_answers_and_keep_alive_goes_on() {
    let t = start("", &[]);
    script(
        &t.cgi_dir(),
        "deaf",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nignored\\n'\n",
    );
    // A small body: the answer, then the rest is thrown away and the next request served.
    let mut c = t.server.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = vec![b'x'; 1000];
    let mut req = format!(
        "POST /cgi-bin/deaf HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req.extend_from_slice(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.write_all(&req).unwrap();
    let all = String::from_utf8_lossy(&read_to_close(&mut c)).into_owned();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.contains("ignored") && all.ends_with("hello\n"), "{all}");
    // A large one (1 MiB, more than is thrown away): answered, then the connection closes.
    let (code, out) = curl(&[
        "--data-binary",
        &format!("@{}", {
            let p = t.site.outside("mib");
            std::fs::write(&p, vec![b'y'; 1 << 20]).unwrap();
            p.display().to_string()
        }),
        &t.server.url("/cgi-bin/deaf"),
    ]);
    assert!(code == 0 || code == 55 || code == 56, "curl exit {code}");
    if code == 0 {
        assert_eq!(out, b"ignored\n");
    }
    // The server is fine afterwards.
    assert_eq!(get(&t.server, "/a.txt").2, b"hello\n");
}

#[test]
fn a_silent_script_times_out_with_504_and_its_group_is_killed() {
    let t = start("", &[]);
    let pidfile = t.site.outside("forever.pid");
    script(
        &t.cgi_dir(),
        "forever",
        &format!(
            "#!/bin/sh\nsleep 1000 &\necho $! > {}\nwait\n",
            pidfile.display()
        ),
    );
    let started = Instant::now();
    let (status, _, _) = get(&t.server, "/slow/forever");
    assert_eq!(status, "HTTP/1.1 504 Gateway Timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    let grandchild = read_pid(&pidfile);
    assert!(
        eventually(Duration::from_secs(6), || !alive(grandchild)),
        "the script's background sleep (same process group) is killed"
    );
    assert!(eventually(Duration::from_secs(4), || children_of(
        t.server.pid()
    ) == 0));
    assert_eq!(zombies_of(t.server.pid()), 0);
}

#[test]
fn crashes_garbage_and_silence_are_502() {
    let t = start("", &[]);
    script(&t.cgi_dir(), "crash", "#!/bin/sh\nkill -SEGV $$\n");
    script(&t.cgi_dir(), "mute", "#!/bin/sh\nexit 0\n");
    script(
        &t.cgi_dir(),
        "garbage",
        "#!/bin/sh\necho 'this is not a header'\necho\necho body\n",
    );
    script(
        &t.cgi_dir(),
        "half",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n'\n",
    );
    script(
        &t.cgi_dir(),
        "noisy",
        "#!/bin/sh\necho 'trouble ahead' >&2\nprintf 'Content-Type: text/plain\\n\\nok'\n",
    );
    for name in ["crash", "mute", "garbage", "half"] {
        let (status, _, _) = get(&t.server, &format!("/cgi-bin/{name}"));
        assert_eq!(status, "HTTP/1.1 502 Bad Gateway", "{name}");
    }
    let (status, _, body) = get(&t.server, "/cgi-bin/noisy");
    assert_eq!(
        (status.as_str(), &body[..]),
        ("HTTP/1.1 200 OK", &b"ok"[..])
    );
    let log = t.server.wait_log(&[
        "cgi /cgi-bin/noisy: stderr: trouble ahead",
        "cgi /cgi-bin/mute: invalid response: exited without output",
        "cgi /cgi-bin/garbage: invalid response",
    ]);
    assert!(log.contains("[error]"), "{log}");
    // Not executable, missing, and a directory: never run.
    std::fs::write(t.cgi_dir().join("data.txt"), "x").unwrap();
    assert_eq!(
        get(&t.server, "/cgi-bin/data.txt").0,
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(get(&t.server, "/cgi-bin/nope").0, "HTTP/1.1 404 Not Found");
    assert_eq!(
        get(&t.server, "/cgi-bin/../cgi/crash").0.split(' ').nth(1),
        Some("404")
    );
}

#[test]
fn two_hundred_concurrent_requests_against_sixteen_processes() {
    let t = start("", &[]);
    script(
        &t.cgi_dir(),
        "nap",
        "#!/bin/sh\nsleep 0.2\nprintf 'Content-Type: text/plain\\n\\nawake'\n",
    );
    let addr = t.server.addr;
    let threads: Vec<_> = (0..200)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                c.write_all(b"GET /few/nap HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let mut out = Vec::new();
                c.read_to_end(&mut out).unwrap();
                let (status, head, body) = split(&out);
                (status, head, body)
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for th in threads {
        let (status, head, body) = th.join().unwrap();
        match status.as_str() {
            "HTTP/1.1 200 OK" => {
                assert_eq!(body, b"awake");
                ok += 1;
            }
            "HTTP/1.1 503 Service Unavailable" => {
                assert!(head.contains("Retry-After: 1\r\n"), "{head}");
                busy += 1;
            }
            other => panic!("only 200 or 503, got {other}"),
        }
    }
    assert_eq!(ok + busy, 200);
    assert!(
        ok >= 16,
        "at least one full round ran ({ok} ok, {busy} busy)"
    );
    let pid = t.server.pid();
    assert!(
        eventually(Duration::from_secs(5), || children_of(pid) == 0),
        "every child reaped"
    );
    assert_eq!(zombies_of(pid), 0, "no zombie afterwards");
}

#[test]
fn a_client_that_leaves_mid_output_takes_the_script_group_with_it() {
    let t = start("", &[]);
    let pidfile = t.site.outside("stream.pid");
    script(
        &t.cgi_dir(),
        "stream",
        &format!(
            "#!/bin/sh\necho $$ > {}\nprintf 'Content-Type: text/plain\\n\\n'\n\
             while :; do echo 'another line of output'; done\n",
            pidfile.display()
        ),
    );
    let mut c = t.server.connect();
    c.write_all(b"GET /cgi-bin/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 200_000 {
        got += c.read(&mut buf).unwrap();
    }
    let pid = read_pid(&pidfile);
    assert!(alive(pid));
    drop(c);
    assert!(
        eventually(Duration::from_secs(6), || !alive(pid)),
        "the script is terminated and reaped once its client is gone"
    );
    assert_eq!(zombies_of(t.server.pid()), 0);
}

#[test]
fn children_start_with_a_clean_signal_mask_and_no_inherited_descriptors() {
    // The script reads /proc/self, which the Landlock sandbox allows only when told to.
    let t = start("sandbox_read = [\"/proc\"]", &[]);
    script(
        &t.cgi_dir(),
        "mask",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
         grep -E '^Sig(Blk|Ign):' /proc/self/status\nls -l /proc/self/fd/\n",
    );
    // Keep a client connection open meanwhile: its socket must not reach the child either.
    let _other = t.server.connect();
    let (status, _, body) = get(&t.server, "/cgi-bin/mask");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let body = String::from_utf8(body).unwrap();
    let mask = |name: &str| mask_of(&body, name);
    // tern catches SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 and SIGCHLD and ignores
    // SIGPIPE: a child must see none of that (caught signals are reset by exec).
    assert_eq!(mask("SigBlk:"), 0, "nothing blocked: {body}");
    assert_eq!(
        mask("SigIgn:") & 0x7fff_ffff,
        0,
        "no standard signal ignored: {body}"
    );
    // No listener, client, job socket, epoll or inotify descriptor leaks in.
    assert!(!body.contains("socket:"), "{body}");
    assert!(!body.contains("anon_inode:"), "{body}");
    assert!(!body.contains("inotify"), "{body}");
    // /bin/sh (dash) clears an inherited mask itself, so the shell script alone would not
    // show one: the script tern runs directly must be seen too.
    script(
        &t.cgi_dir(),
        "mask.py",
        "#!/usr/bin/python3\nprint('Content-Type: text/plain\\n')\n\
         print(''.join(l for l in open('/proc/self/status') if l.startswith('SigBlk')))\n",
    );
    let (status, _, body) = get(&t.server, "/cgi-bin/mask.py");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let body = String::from_utf8(body).unwrap();
    assert_eq!(mask_of(&body, "SigBlk:"), 0, "nothing blocked: {body}");
}

fn mask_of(body: &str, name: &str) -> u64 {
    let line = body.lines().find(|l| l.starts_with(name)).expect(name);
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn request_bodies_stream_in_and_max_body_applies() {
    let t = start("max_body = \"2MiB\"", &[]);
    script(
        &t.cgi_dir(),
        "count",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nwc -c\n",
    );
    let p = t.site.outside("upload");
    std::fs::write(&p, pattern(1_500_000, 3)).unwrap();
    let data = format!("@{}", p.display());
    let (code, out) = curl(&["--data-binary", &data, &t.server.url("/cgi-bin/count")]);
    assert_eq!(
        (code, String::from_utf8(out).unwrap().trim()),
        (0, "1500000")
    );
    // Chunked: spooled, then given with CONTENT_LENGTH.
    let (code, out) = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &data,
        &t.server.url("/cgi-bin/count"),
    ]);
    assert_eq!(
        (code, String::from_utf8(out).unwrap().trim()),
        (0, "1500000")
    );
    // Over max_body: 413 at once, without 100 Continue.
    let mut c = t.server.connect();
    c.write_all(
        b"POST /cgi-bin/count HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\
          Expect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut head = [0u8; 12];
    c.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    // A chunked body that passes max_body: 413 while it is still arriving, then the close.
    let mut c = t.server.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(
            b"POST /cgi-bin/count HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        let chunk = [&b"10000\r\n"[..], &vec![b'z'; 0x10000], b"\r\n"].concat();
        for _ in 0..48 {
            if w.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let mut head = [0u8; 12];
    c.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
    drop(c);
    writer.join().unwrap();
    // 100 Continue when the body is wanted.
    let mut c = t.server.connect();
    c.write_all(
        b"POST /cgi-bin/count HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
          Expect: 100-continue\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut cont = [0u8; 25];
    c.read_exact(&mut cont).unwrap();
    assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"abcd").unwrap();
    let (status, _, body) = split(&read_to_close(&mut c));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(String::from_utf8(body).unwrap().trim(), "4");
}

#[test]
fn cgi_and_run_are_checked_when_the_configuration_loads() {
    let site = Site::standard();
    let cfg = site.outside("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {:?}\n[route.\"/x\"]\ncgi = {:?}\n[route.\"/y/\"]\nstatic = {:?}\n\
             run = {{ \"py\" = \"/usr/bin/python3\", \".sh\" = \"relative/sh\" }}\n\
             [route.\"/z/\"]\nredirect = \"/\"\nrun = {{ \".py\" = \"\" }}\n",
            site.root(),
            site.root(),
            site.root()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["-t", "-c"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a cgi route's prefix ends in /"), "{err}");
    assert!(err.contains("run: \"py\": expected an extension"), "{err}");
    assert!(
        err.contains("expected the absolute path of an executable file"),
        "{err}"
    );
    assert!(
        err.contains("run needs a static route whose prefix ends in /"),
        "{err}"
    );
}

#[test]
fn location_redirects_local_ones_served_by_tern_at_most_ten_deep() {
    let t = start("", &[]);
    // A local path without Status: tern serves that path itself (a static file here).
    script(
        &t.cgi_dir(),
        "to-file",
        "#!/bin/sh\nprintf 'Location: /a.txt\\n\\n'\n",
    );
    let (status, head, body) = get(&t.server, "/cgi-bin/to-file");
    assert_eq!(status, "HTTP/1.1 200 OK", "{head}");
    assert_eq!(body, b"hello\n");
    assert!(!head.contains("Location"), "{head}");
    // ... or another script, which sees a GET with the new path and no body.
    script(
        &t.cgi_dir(),
        "to-script",
        "#!/bin/sh\ncat >/dev/null\nprintf 'Location: /cgi-bin/target/x?q=2\\n\\n'\n",
    );
    script(
        &t.cgi_dir(),
        "target",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
         echo \"$REQUEST_METHOD $PATH_INFO $QUERY_STRING ${CONTENT_LENGTH:-none}\"\n",
    );
    let (code, out) = curl(&["-d", "posted", &t.server.url("/cgi-bin/to-script")]);
    assert_eq!(code, 0);
    assert_eq!(String::from_utf8(out).unwrap(), "GET /x q=2 none\n");
    // An absolute URL is the client's redirect: 302.
    script(
        &t.cgi_dir(),
        "away",
        "#!/bin/sh\nprintf 'Location: https://example.com/\\n\\n'\n",
    );
    let (status, head, _) = get(&t.server, "/cgi-bin/away");
    assert_eq!(status, "HTTP/1.1 302 Found");
    assert!(
        head.contains("Location: https://example.com/\r\n"),
        "{head}"
    );
    // A loop stops after ten internal redirects with a 500.
    script(
        &t.cgi_dir(),
        "loop",
        "#!/bin/sh\nprintf 'Location: /cgi-bin/loop\\n\\n'\n",
    );
    let (status, _, _) = get(&t.server, "/cgi-bin/loop");
    assert_eq!(status, "HTTP/1.1 500 Internal Server Error");
    t.server.wait_log(&["more than 10 internal redirects"]);
    // Keep-alive survives a redirect: two requests on one connection.
    let mut c = t.server.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"GET /cgi-bin/to-file HTTP/1.1\r\nHost: x\r\n\r\nGET /cgi-bin/to-file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let all = String::from_utf8(read_to_close(&mut c)).unwrap();
    assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 2, "{all}");
}

/// Behind Basic auth a script learns who logged in (`AUTH_TYPE`, `REMOTE_USER`), never the
/// password or the `Authorization` field; over plain HTTP `HTTPS` is not set.
#[test]
fn an_authenticated_request_gives_auth_type_and_remote_user() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    // {SHA} of "password" (the htpasswd -s form).
    std::fs::write(&users, "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    let t = start(
        &format!(
            "auth = {{ realm = \"r\", htpasswd = {:?} }}",
            users.display().to_string()
        ),
        &[],
    );
    script(
        &t.cgi_dir(),
        "who",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\n\
         echo \"type=$AUTH_TYPE user=$REMOTE_USER https=${HTTPS:-unset} \
         auth=${HTTP_AUTHORIZATION:-unset}\"\n",
    );
    let (status, _, _) = get(&t.server, "/cgi-bin/who");
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    // alice:password
    let req = "GET /cgi-bin/who HTTP/1.0\r\nAuthorization: Basic YWxpY2U6cGFzc3dvcmQ=\r\n\r\n";
    let mut c = t.server.connect();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(req.as_bytes()).unwrap();
    let (status, _, body) = split(&read_to_close(&mut c));
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        String::from_utf8_lossy(&body),
        "type=Basic user=alice https=unset auth=unset\n"
    );
}
