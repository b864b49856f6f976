//! `store = "DIR"` routes: GET and HEAD as a static route (values typed by what was stored
//! with them), PUT/POST/DELETE through [`crate::store`]. Everything that can be refused is
//! refused before the body is read (and before `100 Continue`): the key, the type, the
//! preconditions. The body then streams into the upload from a [`Task`] on the loop, and
//! the commit (fsync, rename, directory fsync) runs on the job thread; the answer goes out
//! when it is done. The all-keys listing (`all = "/_all"`, or the store's root with
//! `Accept: application/json` when `recursive`) is here too.
use std::ffi::CString;
use std::rc::Rc;
use std::sync::Arc;

use super::route::Action;
use super::{listing, static_files, Handler, RouteAt, Sent, Site};
use crate::conn::{AnswerBody, Await, BodyUse, Exchange, Out};
use crate::dynamic::{Cx, Event, Leftover, Logged, Task};
use crate::fs::{Fs, FsError, RootId};
use crate::http::path::PathInfo;
use crate::http::request::{dup, Values};
use crate::http::{negotiate, response, trim_ows, Method};
use crate::store::{self, Committed, Key, Preconditions, StoreError, Upload};

pub const ALLOW: &[u8] = b"Allow: GET, HEAD, PUT, POST, DELETE, OPTIONS\r\n";
/// Keys listed at most by the all-keys listing, and directory levels descended.
const MAX_KEYS: usize = 100_000;
const MAX_DEPTH: usize = 32;

impl<F: Fs> Handler<F> {
    /// A request for a store route (after the address and authentication checks).
    pub(super) fn store(
        &mut self,
        ex: &mut Exchange<'_>,
        out: &mut Out,
        info: PathInfo,
        raw_path: &[u8],
        query: Option<&[u8]>,
        at: RouteAt,
    ) -> Sent {
        let router = Rc::clone(&self.router);
        let Action::Store {
            root,
            dir,
            create_dirs,
            recursive,
        } = &router.hosts[at.host].routes[at.route].action
        else {
            return self.error(out, 500, ex.persist, b"");
        };
        match ex.req.method {
            Method::Get | Method::Head => {
                let accept = Values::of(
                    ex.head,
                    ex.req.accept,
                    ex.req.dups & dup::ACCEPT != 0,
                    b"accept",
                );
                let at_root = self.path[self.fs_at..].is_empty();
                if at_root && *recursive && negotiate::prefers_json(accept.as_slice()) {
                    let prefix = &router.hosts[at.host].routes[at.route].prefix;
                    return self.all_keys(ex, out, *root, true, prefix);
                }
                static_files::serve(self, ex, out, info, query, at)
            }
            Method::Options => {
                self.start(out, 200, ex.persist);
                out.buf.extend_from_slice(ALLOW);
                out.buf.extend_from_slice(b"Content-Length: 0\r\n\r\n");
                Sent {
                    status: 200,
                    body: 0,
                }
            }
            Method::Put | Method::Post => {
                let w = Write {
                    root: *root,
                    dir: Arc::clone(dir),
                    create: *create_dirs,
                    post: ex.req.method == Method::Post,
                };
                match self.begin_write(ex, info, raw_path, w) {
                    Ok(sent) => sent,
                    Err(e) => self.store_error(ex, out, &e),
                }
            }
            Method::Delete => match self.begin_delete(ex, info, raw_path, *root, dir) {
                Ok(sent) => sent,
                Err(e) => self.store_error(ex, out, &e),
            },
            _ => self.error(out, 405, ex.persist, ALLOW),
        }
    }

    /// A refusal: 400s say why in plain text (the JSON parser's message and position);
    /// the others are the usual error pages.
    fn store_error(&mut self, ex: &mut Exchange<'_>, out: &mut Out, e: &StoreError) -> Sent {
        let status = e.status();
        if status == 500 {
            let peer = ex.peer;
            self.log(
                crate::log::Level::Error,
                format_args!("{peer}: store: {}", e.message()),
            );
        }
        if status != 400 {
            return self.error(out, status, ex.persist, b"");
        }
        let body = format!("{}\n", e.message());
        self.start(out, 400, ex.persist);
        out.buf
            .extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
        response::content_length(&mut out.buf, body.len() as u64);
        response::end(&mut out.buf);
        out.push_bytes(body.as_bytes());
        Sent::with_body(400, out, body.len() as u64)
    }

    fn key_of(&self, info: PathInfo, raw_path: &[u8]) -> Result<(Key, Vec<u8>), StoreError> {
        store::check_raw(raw_path)?;
        let rel = self.path[self.fs_at..].to_vec();
        Ok((Key::parse(&rel, info.trailing_slash)?, rel))
    }

    fn begin_write(
        &mut self,
        ex: &mut Exchange<'_>,
        info: PathInfo,
        raw_path: &[u8],
        w: Write,
    ) -> Result<Sent, StoreError> {
        let (key, rel) = self.key_of(info, raw_path)?;
        let content_type = match ex.req.content_type.map(|s| s.get(ex.head)) {
            None => None,
            Some(v) => {
                let t = std::str::from_utf8(trim_ows(v))
                    .ok()
                    .filter(|t| store::valid_type(t))
                    .ok_or_else(|| StoreError::BadRequest("invalid Content-Type".into()))?;
                Some(t.to_string())
            }
        };
        let json = content_type.as_deref().is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        let pre = preconditions(ex)?;
        let parent = store::open_parent(std::os::fd::AsFd::as_fd(&*w.dir), &key, w.create)?;
        let cur = store::current(std::os::fd::AsFd::as_fd(&parent), &key.name)?;
        if !pre.pass(cur.as_ref()) {
            return Err(StoreError::PreconditionFailed);
        }
        let upload = Upload::begin(parent, &key.name)?;
        let task = StoreTask {
            op: Some(Op::Write {
                upload,
                content_type,
                json,
                pre,
            }),
            post: w.post,
            root: w.root,
            rel,
            location: raw_path.to_vec(),
            site: Rc::clone(&self.site),
            logged: Logged::of(ex),
            started: false,
            failed: false,
        };
        let how = Await {
            body: BodyUse::Forward,
            max_body: self.site.max_body,
        };
        Ok(self.answer_later(how, Box::new(task)))
    }

    fn begin_delete(
        &mut self,
        ex: &mut Exchange<'_>,
        info: PathInfo,
        raw_path: &[u8],
        root: RootId,
        dir: &Arc<std::os::fd::OwnedFd>,
    ) -> Result<Sent, StoreError> {
        let (key, rel) = self.key_of(info, raw_path)?;
        let pre = preconditions(ex)?;
        let parent = match store::open_parent(std::os::fd::AsFd::as_fd(&**dir), &key, false) {
            Err(StoreError::Conflict(_)) => return Err(StoreError::NotFound),
            r => r?,
        };
        if store::current(std::os::fd::AsFd::as_fd(&parent), &key.name)?.is_none() {
            return Err(StoreError::NotFound);
        }
        let task = StoreTask {
            op: Some(Op::Delete {
                dir: parent,
                name: key.name,
                pre,
            }),
            post: false,
            root,
            rel,
            location: Vec::new(),
            site: Rc::clone(&self.site),
            logged: Logged::of(ex),
            started: false,
            failed: false,
        };
        let how = Await {
            body: BodyUse::Discard,
            max_body: self.site.max_body,
        };
        Ok(self.answer_later(how, Box::new(task)))
    }

    /// Every key of the store (files only, dotfiles never), as a JSON array of
    /// `{key, href, size, mtime}` (`href` the key's path under the store's `prefix`);
    /// `recursive` descends into directories.
    pub(super) fn all_keys(
        &mut self,
        ex: &mut Exchange<'_>,
        out: &mut Out,
        root: RootId,
        recursive: bool,
        prefix: &[u8],
    ) -> Sent {
        let mut keys: Vec<crate::fs::ListEntry> = Vec::new();
        let mut dirs: Vec<(Vec<u8>, usize)> = vec![(Vec::new(), 0)];
        let mut entries = Vec::new();
        while let Some((dir, depth)) = dirs.pop() {
            match self.fs.list(root, &dir, &mut entries) {
                Ok(()) => {}
                Err(FsError::NotFound) if !dir.is_empty() => continue,
                Err(_) => return self.error(out, 500, ex.persist, b""),
            }
            for e in entries.drain(..) {
                if e.name.first() == Some(&b'.') || keys.len() >= MAX_KEYS {
                    continue;
                }
                let mut path = dir.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(&e.name);
                if e.is_dir {
                    if recursive && depth < MAX_DEPTH {
                        dirs.push((path, depth + 1));
                    }
                    continue;
                }
                keys.push(crate::fs::ListEntry { name: path, ..e });
            }
        }
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        self.page.clear();
        self.page.push(b'[');
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                self.page.push(b',');
            }
            self.page.extend_from_slice(b"\n{\"key\":\"");
            listing::push_json_escaped(&mut self.page, String::from_utf8_lossy(&k.name).as_bytes());
            self.page.extend_from_slice(b"\",\"href\":\"");
            for seg in prefix.split(|&b| b == b'/').filter(|s| !s.is_empty()) {
                self.page.push(b'/');
                listing::push_url_segment(&mut self.page, seg);
            }
            self.page.push(b'/');
            for (j, seg) in k.name.split(|&b| b == b'/').enumerate() {
                if j > 0 {
                    self.page.push(b'/');
                }
                listing::push_url_segment(&mut self.page, seg);
            }
            self.page.extend_from_slice(b"\",\"size\":");
            response::push_u64(&mut self.page, k.size);
            self.page.extend_from_slice(b",\"mtime\":\"");
            self.page
                .extend_from_slice(&crate::http::date::format(k.mtime));
            self.page.extend_from_slice(b"\"}");
        }
        self.page.extend_from_slice(b"\n]\n");
        self.start(out, 200, ex.persist);
        out.buf.extend_from_slice(
            b"Content-Type: application/json; charset=utf-8\r\nCache-Control: no-cache\r\n",
        );
        response::content_length(&mut out.buf, self.page.len() as u64);
        response::end(&mut out.buf);
        out.push_bytes(&self.page);
        Sent::with_body(200, out, self.page.len() as u64)
    }
}

struct Write {
    root: RootId,
    dir: Arc<std::os::fd::OwnedFd>,
    create: bool,
    post: bool,
}

/// RFC 9110 §13.1 preconditions of a write, copied out of the head.
fn preconditions(ex: &Exchange<'_>) -> Result<Preconditions, StoreError> {
    let (req, head) = (ex.req, ex.head);
    if req.dups & (dup::IF_MATCH | dup::IF_NONE_MATCH | dup::IF_UNMODIFIED_SINCE) != 0 {
        return Err(StoreError::BadRequest(
            "repeated precondition header".into(),
        ));
    }
    let if_match = req.if_match.map(|s| s.get(head).to_vec());
    let if_none_match = req.if_none_match.map(|s| s.get(head).to_vec());
    let create_only = if_none_match
        .as_deref()
        .is_some_and(|v| trim_ows(v) == b"*");
    let if_unmodified_since = req
        .if_unmodified_since
        .and_then(|s| crate::http::date::parse(s.get(head)));
    Ok(Preconditions {
        if_match,
        if_none_match,
        create_only,
        if_unmodified_since,
    })
}

enum Op {
    Write {
        upload: Upload,
        content_type: Option<String>,
        json: bool,
        pre: Preconditions,
    },
    Delete {
        dir: std::os::fd::OwnedFd,
        name: CString,
        pre: Preconditions,
    },
}

/// One write or delete in flight. The body is written as it arrives (on the loop, one
/// `write` per staged piece); the commit runs on the job thread.
struct StoreTask {
    /// Taken when posted to the job thread.
    op: Option<Op>,
    post: bool,
    root: RootId,
    /// The key beneath the store's root (what the file cache forgets).
    rel: Vec<u8>,
    /// The request's path, for `Location`.
    location: Vec<u8>,
    site: Rc<Site>,
    logged: Logged,
    started: bool,
    failed: bool,
}

impl Task for StoreTask {
    fn on(&mut self, ev: Event, cx: &mut Cx<'_>) {
        match ev {
            Event::Start | Event::Nudge => self.pump(cx),
            Event::Job(result) => match result.downcast::<Result<Committed, StoreError>>() {
                Ok(r) => self.written(cx, *r),
                Err(other) => {
                    if let Ok(r) = other.downcast::<Result<(), StoreError>>() {
                        self.deleted(cx, *r);
                    }
                }
            },
            _ => {}
        }
    }

    fn end(&mut self, _registry: &mio::Registry) -> Leftover {
        // An upload never committed is dropped here: its unnamed file goes with it.
        self.op = None;
        Leftover::None
    }
}

impl StoreTask {
    /// Moves staged body bytes into the upload; once all are in, posts the commit.
    fn pump(&mut self, cx: &mut Cx<'_>) {
        if self.started || self.failed {
            return;
        }
        if let Some(Op::Write { upload, .. }) = &mut self.op {
            loop {
                let data = cx.conn.body_data();
                if data.is_empty() {
                    break;
                }
                let n = data.len();
                if let Err(e) = upload.write(data) {
                    self.failed = true;
                    let status = if e.raw_os_error() == Some(libc::ENOSPC) {
                        507
                    } else {
                        500
                    };
                    cx.heads.log(
                        crate::log::Level::Error,
                        format_args!("{}: store: write: {e}", self.logged.peer),
                    );
                    self.op = None;
                    let len = cx.answer_error(&self.site, status);
                    self.log(cx, status, len);
                    return;
                }
                cx.conn.body_taken(n);
                // A body that keeps arriving keeps the request alive (a long upload is not
                // a stalled one); a client silent for `await_timeout` gets 504.
                cx.conn.set_await_deadline(cx.now + cx.lim.await_timeout);
            }
            if !cx.conn.body_finished() {
                return;
            }
        }
        self.started = true;
        let mut posted = Ok(());
        match self.op.take() {
            Some(Op::Write {
                upload,
                content_type,
                json,
                pre,
            }) => {
                let job = store::CommitJob {
                    upload,
                    content_type,
                    json,
                    pre,
                };
                posted = cx.post(move || store::commit(job));
            }
            Some(Op::Delete { dir, name, pre }) => {
                posted = cx.post(move || store::delete(dir, &name, &pre));
            }
            None => {}
        }
        if let Err(e) = posted {
            // The commit cannot run off the loop: refuse rather than fsync here.
            cx.heads.log(
                crate::log::Level::Error,
                format_args!("{}: store: no job thread: {e}", self.logged.peer),
            );
            let len = cx.answer_error(&self.site, 503);
            self.log(cx, 503, len);
        }
    }

    fn written(&mut self, cx: &mut Cx<'_>, r: Result<Committed, StoreError>) {
        let c = match r {
            Ok(c) => c,
            Err(e) => return self.refuse(cx, &e),
        };
        cx.heads.forget(self.root, &self.rel);
        let etag = store::etag_of(&c.stat);
        let mut extra = Vec::new();
        response::header(&mut extra, b"ETag", &etag);
        let (status, body) = if self.post {
            let mut j = b"{\"key\":\"".to_vec();
            listing::push_json_escaped(&mut j, String::from_utf8_lossy(&self.rel).as_bytes());
            j.extend_from_slice(b"\",\"size\":");
            response::push_u64(&mut j, c.stat.size);
            j.extend_from_slice(b",\"etag\":\"");
            listing::push_json_escaped(&mut j, &etag);
            j.extend_from_slice(b"\"}\n");
            extra.extend_from_slice(b"Content-Type: application/json\r\n");
            (if c.created { 201 } else { 200 }, j)
        } else if c.created {
            (201, Vec::new())
        } else {
            (204, Vec::new())
        };
        if status == 201 {
            response::header(&mut extra, b"Location", &self.location);
        }
        let len = if status == 204 {
            let (heads, site) = (&mut *cx.heads, &self.site);
            cx.conn.answer(cx.now, cx.lim, AnswerBody::Complete, |a| {
                heads.head(site, a.out, 204, a.persist);
                a.out.buf.extend_from_slice(&extra);
                response::end(&mut a.out.buf);
            });
            0
        } else {
            cx.answer_bytes(&self.site, status, &extra, &body)
        };
        self.log(cx, status, len);
    }

    fn deleted(&mut self, cx: &mut Cx<'_>, r: Result<(), StoreError>) {
        if let Err(e) = r {
            return self.refuse(cx, &e);
        }
        cx.heads.forget(self.root, &self.rel);
        let (heads, site) = (&mut *cx.heads, &self.site);
        cx.conn.answer(cx.now, cx.lim, AnswerBody::Complete, |a| {
            heads.head(site, a.out, 204, a.persist);
            response::end(&mut a.out.buf);
        });
        self.log(cx, 204, 0);
    }

    fn refuse(&mut self, cx: &mut Cx<'_>, e: &StoreError) {
        let status = e.status();
        let len = if status == 400 {
            let body = format!("{}\n", e.message());
            cx.answer_bytes(
                &self.site,
                400,
                b"Content-Type: text/plain; charset=utf-8\r\n",
                body.as_bytes(),
            )
        } else {
            if status == 500 {
                cx.heads.log(
                    crate::log::Level::Error,
                    format_args!("{}: store: {}", self.logged.peer, e.message()),
                );
            }
            cx.answer_error(&self.site, status)
        };
        self.log(cx, status, len);
    }

    fn log(&self, cx: &mut Cx<'_>, status: u16, bytes: u64) {
        self.logged.write(cx.heads, &self.site, status, bytes);
    }
}
