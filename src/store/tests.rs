//! The store's file operations on a real temporary directory.
use super::*;

fn root() -> (tempfile::TempDir, OwnedFd) {
    let d = tempfile::tempdir().unwrap();
    let fd = crate::sys::fs::open_dir(d.path()).unwrap();
    (d, fd)
}

fn put(
    fd: &OwnedFd,
    key: &str,
    body: &[u8],
    ty: Option<&str>,
    pre: Preconditions,
) -> Result<Committed, StoreError> {
    let k = Key::parse(key.as_bytes(), false)?;
    let dir = open_parent(fd.as_fd(), &k, true)?;
    current(dir.as_fd(), &k.name)?;
    let mut up = Upload::begin(dir, &k.name)?;
    up.write(body).unwrap();
    commit(CommitJob {
        upload: up,
        content_type: ty.map(str::to_string),
        json: ty == Some("application/json"),
        pre,
    })
}

fn names(d: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn put_replace_type_and_delete() {
    let (d, fd) = root();
    let c = put(
        &fd,
        "a",
        b"one",
        Some("text/plain"),
        Preconditions::default(),
    )
    .unwrap();
    assert!(c.created);
    let c = put(
        &fd,
        "a",
        b"two!",
        Some("text/html"),
        Preconditions::default(),
    )
    .unwrap();
    assert!(!c.created);
    assert_eq!(c.stat.size, 4);
    assert_eq!(std::fs::read(d.path().join("a")).unwrap(), b"two!");
    let f = File::open(d.path().join("a")).unwrap();
    assert_eq!(
        stored_type(&f, Some(fd.as_fd()), c"a").as_deref(),
        Some("text/html")
    );
    // No temporary file is left.
    assert_eq!(names(d.path()), ["a"]);
    let k = Key::parse(b"a", false).unwrap();
    delete(
        open_parent(fd.as_fd(), &k, false).unwrap(),
        &k.name,
        &Preconditions::default(),
    )
    .unwrap();
    assert_eq!(
        delete(
            open_parent(fd.as_fd(), &k, false).unwrap(),
            &k.name,
            &Preconditions::default()
        ),
        Err(StoreError::NotFound)
    );
    assert!(names(d.path()).is_empty());
}

#[test]
fn dropped_upload_leaves_nothing_and_keeps_old_value() {
    let (d, fd) = root();
    put(&fd, "k", b"old", None, Preconditions::default()).unwrap();
    let k = Key::parse(b"k", false).unwrap();
    let mut up = Upload::begin(open_parent(fd.as_fd(), &k, false).unwrap(), &k.name).unwrap();
    up.write(b"half of the new").unwrap();
    drop(up);
    assert_eq!(std::fs::read(d.path().join("k")).unwrap(), b"old");
    assert_eq!(names(d.path()), ["k"]);
}

#[test]
fn invalid_json_is_refused_with_position_and_not_stored() {
    let (d, fd) = root();
    let e = put(
        &fd,
        "j",
        b"{\"a\": 1,}",
        Some("application/json"),
        Preconditions::default(),
    )
    .unwrap_err();
    let StoreError::BadRequest(m) = e else {
        panic!("{e:?}")
    };
    assert!(m.contains("line 1 column 9"), "{m}");
    assert!(names(d.path()).is_empty());
    put(
        &fd,
        "j",
        b" {\"a\": [1, 2]} \n",
        Some("application/json"),
        Preconditions::default(),
    )
    .unwrap();
    let e = put(
        &fd,
        "j",
        b"{} {}",
        Some("application/json"),
        Preconditions::default(),
    );
    assert!(matches!(e, Err(StoreError::BadRequest(_))));
}

#[test]
fn key_rules() {
    let (d, fd) = root();
    assert!(matches!(
        Key::parse(b".hidden", false),
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        Key::parse(b"a/.git/x", false),
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        Key::parse(b"a/", true),
        Err(StoreError::BadRequest(_))
    ));
    assert!(matches!(
        Key::parse(b"", false),
        Err(StoreError::BadRequest(_))
    ));
    for raw in [
        &b"/a/../b"[..],
        b"/a/./b",
        b"/a/%2e%2E/b",
        b"/%2e",
        b"/a%2fb",
        b"/a%5Cb",
    ] {
        assert!(check_raw(raw).is_err(), "{}", String::from_utf8_lossy(raw));
    }
    assert!(check_raw(b"/a/b.c/%20x").is_ok());
    // Missing directories: created only when asked.
    let k = Key::parse(b"x/y/z", false).unwrap();
    assert!(matches!(
        open_parent(fd.as_fd(), &k, false),
        Err(StoreError::Conflict(_))
    ));
    let dir = open_parent(fd.as_fd(), &k, true).unwrap();
    assert_eq!(current(dir.as_fd(), &k.name), Ok(None));
    // A directory key, a symlinked directory and a symlink key are refused.
    std::fs::create_dir(d.path().join("dir")).unwrap();
    assert!(matches!(
        current(fd.as_fd(), c"dir"),
        Err(StoreError::Conflict(_))
    ));
    std::os::unix::fs::symlink("/etc", d.path().join("link")).unwrap();
    let k = Key::parse(b"link/passwd", false).unwrap();
    assert!(matches!(
        open_parent(fd.as_fd(), &k, true),
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        current(fd.as_fd(), c"link"),
        Err(StoreError::Forbidden(_))
    ));
    // A file on the way.
    std::fs::write(d.path().join("file"), b"x").unwrap();
    let k = Key::parse(b"file/sub", false).unwrap();
    assert!(matches!(
        open_parent(fd.as_fd(), &k, true),
        Err(StoreError::Conflict(_))
    ));
}

#[test]
fn conditional_writes() {
    let (_d, fd) = root();
    let create = Preconditions {
        create_only: true,
        ..Preconditions::default()
    };
    let c = put(&fd, "c", b"1", None, create.clone()).unwrap();
    assert_eq!(
        put(&fd, "c", b"2", None, create),
        Err(StoreError::PreconditionFailed)
    );
    let tag = etag_of(&c.stat).to_vec();
    let matching = Preconditions {
        if_match: Some(tag.clone()),
        ..Preconditions::default()
    };
    put(&fd, "c", b"22", None, matching.clone()).unwrap();
    // The tag changed with that write: the same If-Match now fails.
    assert_eq!(
        put(&fd, "c", b"3", None, matching),
        Err(StoreError::PreconditionFailed)
    );
    let any = Preconditions {
        if_match: Some(b"*".to_vec()),
        ..Preconditions::default()
    };
    assert_eq!(
        put(&fd, "new", b"3", None, any.clone()),
        Err(StoreError::PreconditionFailed)
    );
    put(&fd, "c", b"3", None, any).unwrap();
    let old = Preconditions {
        if_unmodified_since: Some(0),
        ..Preconditions::default()
    };
    assert_eq!(
        put(&fd, "c", b"4", None, old.clone()),
        Err(StoreError::PreconditionFailed)
    );
    put(&fd, "fresh", b"4", None, old).unwrap();
}

/// Where the file system has no `O_TMPFILE`: a hidden random name, unlinked when the upload
/// is dropped, renamed over the key at commit.
#[test]
fn hidden_name_fallback() {
    let (d, fd) = root();
    put(&fd, "k", b"old", None, Preconditions::default()).unwrap();
    let k = Key::parse(b"k", false).unwrap();
    let mut up =
        Upload::begin_as(open_parent(fd.as_fd(), &k, false).unwrap(), &k.name, false).unwrap();
    up.write(b"partial").unwrap();
    let during = names(d.path());
    assert_eq!(during.len(), 2, "{during:?}");
    assert!(during[0].starts_with(".k.tern-"), "{during:?}");
    drop(up);
    assert_eq!(names(d.path()), ["k"]);
    let mut up =
        Upload::begin_as(open_parent(fd.as_fd(), &k, false).unwrap(), &k.name, false).unwrap();
    up.write(b"new").unwrap();
    let c = commit(CommitJob {
        upload: up,
        content_type: Some("text/plain".into()),
        json: false,
        pre: Preconditions::default(),
    })
    .unwrap();
    assert!(!c.created);
    assert_eq!(std::fs::read(d.path().join("k")).unwrap(), b"new");
    assert_eq!(names(d.path()), ["k"]);
}
