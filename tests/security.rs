//! Nothing outside the document root is ever served, whatever the target says; redirects
//! never leave the site; hidden files stay hidden.
mod common;

use std::os::unix::fs::symlink;

use common::*;

const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-ROOT";

fn site_with_secret() -> Site {
    let s = Site::standard();
    std::fs::write(s.outside("secret.txt"), SECRET).unwrap();
    std::fs::create_dir_all(s.outside("outdir")).unwrap();
    std::fs::write(s.outside("outdir/inner.txt"), SECRET).unwrap();
    s
}

fn assert_no_secret(srv: &Server, target: &str) -> u16 {
    for req in [
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        format!("GET {target} HTTP/1.0\r\n\r\n"),
    ] {
        let all = srv.raw(req.as_bytes());
        assert!(
            !all.windows(SECRET.len()).any(|w| w == SECRET),
            "{target} leaked the secret: {}",
            String::from_utf8_lossy(&all)
        );
        assert!(!all.is_empty(), "{target}: no answer");
    }
    srv.get(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .status
}

#[test]
fn traversal_set_never_leaves_the_root() {
    let site = site_with_secret();
    let srv = Server::start(&site, &[]);
    for target in [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%2fsecret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/%252e%252e/secret.txt",
        "/%252e%252e%252fsecret.txt",
        "/..%5csecret.txt",
        "/%5c..%5csecret.txt",
        "/..\\secret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/%c0%ae%c0%ae%c0%afsecret.txt",
        "/.%2e/secret.txt",
        "/secret.txt%00",
        "/%00../secret.txt",
        "http://evil.example/../secret.txt",
        "http://evil.example/%2e%2e/secret.txt",
        "//../secret.txt",
        "/./.././secret.txt",
    ] {
        let status = assert_no_secret(&srv, target);
        assert!(matches!(status, 400 | 404), "{target}: {status}");
    }
    // curl with --path-as-is sends the dot segments unchanged.
    let (_, body) = curl(&["--path-as-is", &srv.url("/../secret.txt")]);
    assert!(!body.windows(SECRET.len()).any(|w| w == SECRET));
}

#[test]
fn absolute_form_is_served_from_its_path_only() {
    let site = site_with_secret();
    let srv = Server::start(&site, &[]);
    let r = srv.get("GET http://other.example/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello\n");
    let r = srv.get("GET http://other.example HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.body, b"<h1>home</h1>\n");
    assert_eq!(
        srv.get("GET ftp://x/a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .status,
        400
    );
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let site = site_with_secret();
    let root = site.root();
    symlink(site.outside("secret.txt"), root.join("abs-out.txt")).unwrap();
    symlink("../secret.txt", root.join("rel-out.txt")).unwrap();
    symlink(site.outside("outdir"), root.join("outdir-link")).unwrap();
    symlink("sub/b.txt", root.join("inside.txt")).unwrap();
    symlink(root.join("a.txt"), root.join("abs-inside.txt")).unwrap();
    symlink("sub", root.join("sub-link")).unwrap();
    std::fs::create_dir_all(root.join("idx")).unwrap();
    symlink(site.outside("secret.txt"), root.join("idx/index.html")).unwrap();
    let srv = Server::start(&site, &[]);
    for target in [
        "/abs-out.txt",
        "/rel-out.txt",
        "/outdir-link/inner.txt",
        "/outdir-link/",
    ] {
        let status = assert_no_secret(&srv, target);
        assert_eq!(status, 404, "{target}");
    }
    // An index file that links out counts as missing: the directory is listed instead, and
    // the link is not in the listing.
    assert_eq!(assert_no_secret(&srv, "/idx/"), 200);
    let idx = String::from_utf8(srv.get("GET /idx/ HTTP/1.1\r\nHost: x\r\n\r\n").body).unwrap();
    assert!(
        idx.contains("Index of /idx/") && !idx.contains("index.html"),
        "{idx}"
    );
    // Symlinks that stay inside are fine, even absolute ones and directory links.
    assert_eq!(
        srv.get("GET /inside.txt HTTP/1.1\r\nHost: x\r\n\r\n").body,
        b"bee\n"
    );
    assert_eq!(
        srv.get("GET /abs-inside.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .body,
        b"hello\n"
    );
    assert_eq!(
        srv.get("GET /sub-link/b.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            .body,
        b"bee\n"
    );
    // The listing does not show links that lead out.
    let page = String::from_utf8(srv.get("GET / HTTP/1.1\r\nHost: x\r\n\r\n").body).unwrap();
    let listed = Server::start(&site, &["--index", "none"]);
    let page2 = String::from_utf8(listed.get("GET / HTTP/1.1\r\nHost: x\r\n\r\n").body).unwrap();
    assert!(page.contains("home"));
    assert!(
        page2.contains("inside.txt") && page2.contains("sub-link/"),
        "{page2}"
    );
    assert!(
        !page2.contains("abs-out") && !page2.contains("rel-out") && !page2.contains("outdir-link"),
        "{page2}"
    );
}

#[test]
fn dotfiles_are_hidden_unless_asked() {
    let site = Site::standard();
    site.file(".env", b"PASSWORD=1");
    site.file(".git/config", b"[core]");
    site.file("sub/.hidden", b"h");
    let srv = Server::start(&site, &[]);
    for target in [
        "/.env",
        "/.git/config",
        "/.git/",
        "/.git",
        "/sub/.hidden",
        "/%2eenv",
        "/sub/%2Ehidden",
    ] {
        assert_eq!(
            srv.get(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"))
                .status,
            404,
            "{target}"
        );
    }
    let open = Server::start(&site, &["--dotfiles"]);
    assert_eq!(
        open.get("GET /.env HTTP/1.1\r\nHost: x\r\n\r\n").body,
        b"PASSWORD=1"
    );
    assert_eq!(
        open.get("GET /.git/config HTTP/1.1\r\nHost: x\r\n\r\n")
            .body,
        b"[core]"
    );
}

#[test]
fn directory_redirects_never_go_off_site() {
    let site = Site::standard();
    site.dir("evil.example");
    site.dir("evil.example/x");
    site.dir("\\evil");
    site.dir("\\\\evil");
    let srv = Server::start(&site, &[]);
    for (target, want) in [
        ("//evil.example", "/evil.example/"),
        ("///evil.example", "/evil.example/"),
        ("//evil.example/x", "/evil.example/x/"),
        ("/%2fevil.example", "/evil.example/"),
        ("/%5Cevil", "/%5Cevil/"),
        ("/%5C%5Cevil", "/%5C%5Cevil/"),
        ("/\\evil", "/%5Cevil/"),
        ("/sub", "/sub/"),
        ("http://h//evil.example?q=1", "/evil.example/?q=1"),
    ] {
        let r = srv.get(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert_eq!(r.status, 301, "{target}");
        let loc = r.header("Location").unwrap();
        assert_eq!(loc, want, "{target}");
        assert!(
            !loc.starts_with("//") && !loc.starts_with("/\\"),
            "{target}: {loc}"
        );
    }
}

#[test]
fn special_files_are_not_served() {
    let site = Site::standard();
    let fifo = site.root().join("pipe");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    let srv = Server::start(&site, &[]);
    // A FIFO must not block the event loop: it is refused, and the server keeps serving.
    assert_eq!(srv.get("GET /pipe HTTP/1.1\r\nHost: x\r\n\r\n").status, 404);
    assert_eq!(
        srv.get("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n").status,
        200
    );
}
