//! The directory listing as people see it: loaded in headless Chromium (driven through
//! chromedriver's WebDriver HTTP API), screenshotted, checked for script injection through
//! file names, and followed through a link with spaces and non-ASCII letters to the right
//! bytes. `make test` (.ci/deps) installs `chromium` and `chromium-driver`; set TERN_SKIP_BROWSER=1 to
//! skip on a machine without them.
mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{json, Value};

struct Driver {
    child: Child,
    port: u16,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start(profile: &std::path::Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is installed (make test installs chromium-driver through .ci/deps)",
            );
        let mut d = Driver {
            child,
            port,
            session: String::new(),
        };
        // Ready once /status answers.
        let start = Instant::now();
        while d.call("GET", "/status", None).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=412,915",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let start = Instant::now();
        let v = loop {
            match d.call("POST", "/session", Some(caps.clone())) {
                Ok(v) => break v,
                Err(e) if start.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot start a browser session: {e}"),
            }
        };
        d.session = v["sessionId"].as_str().expect("session id").to_string();
        d
    }

    /// One WebDriver command; returns its `value` or the error message.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        // chromedriver keeps connections open whatever we ask: read by Content-Length.
        let r = read_response(&mut s, false).ok_or("no response")?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        let value = v["value"].clone();
        if let Some(err) = value.get("error") {
            return Err(format!("{err}: {}", value["message"]));
        }
        Ok(value)
    }

    fn cmd(&self, method: &str, what: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{what}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("{method} {what}: {e}"))
    }

    fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    fn elements(&self, css: &str) -> Vec<String> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array().unwrap().iter().map(element_id).collect()
    }
}

/// A WebDriver element reference is an object with one (vendor-named) key: its id.
fn element_id(e: &Value) -> String {
    e.as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn listing_in_headless_chromium() {
    if std::env::var_os("TERN_SKIP_BROWSER").is_some() {
        eprintln!("TERN_SKIP_BROWSER set: skipping the browser test");
        return;
    }
    let site = Site::standard();
    let xss = "<img src=x onerror=alert(1)>.txt";
    site.file(&format!("files/{xss}"), b"not a script\n");
    let menu = "Crème brûlée ..... 4.50 €\nCafé crème ....... 2.80 €\n".as_bytes();
    site.file("files/café menu du jour.txt", menu);
    site.file(
        "files/long name that goes on and on and on and on and on and on.txt",
        b"long\n",
    );
    site.dir("files/sous-dossier");
    let srv = Server::start(&site, &[]);
    let profile = site.outside("chrome-profile");
    let d = Driver::start(&profile);

    d.cmd("POST", "/url", Some(json!({"url": srv.url("/files/")})));
    assert_eq!(d.cmd("GET", "/title", None), json!("Index of /files/"));
    // The hostile name is shown as text: no <img> element, no alert.
    assert!(d.elements("img").is_empty(), "a file name became markup");
    let texts: Vec<String> = d
        .elements("a")
        .iter()
        .map(|e| {
            d.cmd("GET", &format!("/element/{e}/text"), None)
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(texts.iter().any(|t| t == xss), "link texts: {texts:?}");
    assert!(
        texts.iter().any(|t| t == "sous-dossier/"),
        "link texts: {texts:?}"
    );
    assert!(
        d.call("GET", &format!("/session/{}/alert/text", d.session), None)
            .is_err(),
        "an alert opened"
    );
    // Readable on a phone-sized window: nothing forces horizontal scrolling.
    assert_eq!(
        d.script("return document.documentElement.scrollWidth <= window.innerWidth"),
        json!(true)
    );

    let shot = d.cmd("GET", "/screenshot", None);
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("listing.png");
    std::fs::write(&out, &png).unwrap();
    eprintln!("screenshot: {}", out.display());

    // Follow the link with spaces and non-ASCII letters like a user would.
    let link = d.cmd(
        "POST",
        "/element",
        Some(json!({"using": "link text", "value": "café menu du jour.txt"})),
    );
    let id = element_id(&link);
    d.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    let url = d.cmd("GET", "/url", None);
    assert!(
        url.as_str()
            .unwrap()
            .ends_with("/files/caf%C3%A9%20menu%20du%20jour.txt"),
        "{url}"
    );
    let bytes = d.cmd(
        "POST",
        "/execute/async",
        Some(json!({"script": "const done = arguments[arguments.length - 1];
            fetch(location.href).then(r => r.arrayBuffer()).then(b => done(Array.from(new Uint8Array(b))));",
            "args": []})),
    );
    let got: Vec<u8> = bytes
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    assert_eq!(got, menu, "the browser downloaded different bytes");
    let shown = d.script("return document.body.innerText");
    assert_eq!(
        shown.as_str().unwrap().trim_end(),
        String::from_utf8_lossy(menu).trim_end()
    );
}
