//! SIGHUP reloads the configuration file: a good file is swapped in whole (routes, hosts,
//! listeners), a broken one is logged and the old configuration keeps serving, and clients
//! under load see no failed request while reloads happen.
mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, Site};

fn write(path: &Path, text: &str) {
    // Written beside and renamed, as editors and config managers do, so that a reload never
    // reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn get(srv: &Server, path: &str) -> (u16, String) {
    let r = srv.get(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// Sends SIGHUP and waits until the error log shows `needle` one more time than before.
fn reload(srv: &Server, needle: &str) -> String {
    let before = srv.error_log().matches(needle).count();
    srv.signal("HUP");
    let start = Instant::now();
    loop {
        let log = srv.error_log();
        if log.matches(needle).count() > before {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no {needle:?} after SIGHUP:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Setup {
    site: Site,
    cfg: PathBuf,
}

fn setup(toml: &str) -> Setup {
    let site = Site::new();
    site.dir("");
    for (dir, text) in [("one", "first"), ("two", "second")] {
        let d = site.outside(dir);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("f.txt"), text).unwrap();
    }
    let cfg = site.outside("tern.toml");
    write(&cfg, &expand(&site, toml));
    Setup { site, cfg }
}

fn expand(site: &Site, toml: &str) -> String {
    toml.replace('@', &site.outside("").display().to_string())
}

#[test]
fn reload_swaps_routes_and_hosts() {
    // Both roots are in use at start: the Landlock sandbox (README "Landlock") refuses a
    // reload that needs a path it did not allow.
    let s = setup(
        "root = \"@/one\"\n[route.\"/x/\"]\nstatic = \"@/one\"\n[route.\"/z/\"]\nstatic = \"@/two\"\n",
    );
    let srv = Server::start_config(&s.cfg, &s.site.outside("error.log"), &[]);
    assert_eq!(get(&srv, "/x/f.txt"), (200, "first".into()));
    assert_eq!(get(&srv, "/y/f.txt").0, 404);
    let next = "root = \"@/one\"\n[route.\"/y/\"]\nstatic = \"@/two\"\n\
                [vhost.\"v.test\"]\nroot = \"@/two\"\n";
    write(&s.cfg, &expand(&s.site, next));
    reload(&srv, "configuration reloaded");
    assert_eq!(get(&srv, "/y/f.txt"), (200, "second".into()));
    assert_eq!(get(&srv, "/x/f.txt").0, 404);
    let r = srv.get("GET /f.txt HTTP/1.1\r\nHost: v.test\r\n\r\n");
    assert_eq!(String::from_utf8_lossy(&r.body), "second");
    // The file cache forgets a root whose route went away and is added again.
    assert_eq!(get(&srv, "/f.txt"), (200, "first".into()));
}

#[test]
fn a_broken_file_keeps_the_old_configuration() {
    let s = setup("root = \"@/one\"\n[route.\"/x/\"]\nstatic = \"@/one\"\n");
    let srv = Server::start_config(&s.cfg, &s.site.outside("error.log"), &[]);
    let broken = [
        "root = \"@/two\"\n[route.\"/x/\"\nstatic = 1\n",
        "root = \"@/two\"\nindx = [\"a.html\"]\n",
        "root = \"@/missing\"\n",
        "root = \"@/two\"\n[route.\"x/\"]\nstatic = \"@/two\"\n",
    ];
    for text in broken {
        write(&s.cfg, &expand(&s.site, text));
        let log = reload(&srv, "still serving the old configuration");
        assert!(
            log.contains("tern.toml:"),
            "the error names the file:\n{log}"
        );
        assert_eq!(get(&srv, "/x/f.txt"), (200, "first".into()), "{text}");
        assert_eq!(get(&srv, "/f.txt"), (200, "first".into()), "{text}");
    }
}

#[test]
fn listeners_are_kept_added_and_closed() {
    let s = setup("root = \"@/one\"\n");
    let free = || {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (a, b) = (free(), free());
    let with = |ports: &[u16]| {
        let list: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        format!("listen = [{}]\nroot = \"@/one\"\n", list.join(", "))
    };
    write(&s.cfg, &expand(&s.site, &with(&[a])));
    let error_log = s.site.outside("error.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["-c".as_ref(), s.cfg.as_os_str()])
        .args(["--error-log".as_ref(), error_log.as_os_str()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = common::listening_addr(child.stdout.as_mut().unwrap());
    let srv = Server {
        child,
        addr: addr.parse().unwrap(),
        error_log,
    };
    assert_eq!(srv.addr.port(), a);
    // A keep-alive connection (accepted: it has sent a request) that idles across reloads.
    let mut kept = srv.connect();
    use std::io::Write;
    kept.write_all(b"GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(common::read_response(&mut kept, false).unwrap().status, 200);
    write(&s.cfg, &expand(&s.site, &with(&[a, b])));
    reload(&srv, "configuration reloaded");
    assert!(TcpStream::connect(("127.0.0.1", b)).is_ok(), "new listener");
    assert_eq!(get(&srv, "/f.txt").0, 200, "the old listener still serves");
    write(&s.cfg, &expand(&s.site, &with(&[b])));
    reload(&srv, "configuration reloaded");
    assert!(
        TcpStream::connect(("127.0.0.1", a)).is_err(),
        "closed listener"
    );
    kept.write_all(b"GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let r = common::read_response(&mut kept, false).expect("answered on the old connection");
    assert_eq!(r.status, 200);
}

#[test]
fn reloads_under_load_fail_no_request() {
    let s = setup("root = \"@/one\"\n[route.\"/x/\"]\nstatic = \"@/one\"\n");
    let srv = Server::start_config(&s.cfg, &s.site.outside("error.log"), &[]);
    let url = srv.url("/x/f.txt");
    let ab = std::thread::spawn(move || {
        Command::new("ab")
            .args(["-k", "-q", "-c", "8", "-n", "40000", "-s", "5", &url])
            .output()
            .expect("ab is installed (make test installs it through .ci/deps)")
    });
    let mut reloads = 0;
    while !ab.is_finished() && reloads < 20 {
        reload(&srv, "configuration reloaded");
        reloads += 1;
    }
    let out = ab.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Complete requests:      40000"), "{text}");
    assert!(text.contains("Failed requests:        0"), "{text}");
    assert!(!text.contains("Non-2xx"), "{text}");
    assert!(
        reloads >= 3,
        "only {reloads} reloads happened during the load"
    );
}
