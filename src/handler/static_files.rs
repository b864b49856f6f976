//! GET and HEAD on the document root: target to path, then a file (with validators), a
//! redirect for a directory without its slash, an index file, or a listing.
use std::rc::Rc;

use super::{listing, Handler, Sent};
use crate::conn::{Exchange, Out};
use crate::fs::{Body, FileEntry, Fs, FsError, Node};
use crate::http::path::{normalize, split_target};
use crate::http::{date, response};
use crate::log::Level;

pub fn serve<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    target: &[u8],
) -> Sent {
    let persist = ex.persist;
    let (path, query) = match split_target(target) {
        Ok(parts) => parts,
        Err(e) => return bad_request(h, ex, out, e.reason()),
    };
    let info = match normalize(path, &mut h.path, &mut h.scratch) {
        Ok(info) => info,
        Err(e) => return bad_request(h, ex, out, e.reason()),
    };
    if info.hidden && !h.site.dotfiles {
        return h.error(out, 404, persist, b"");
    }
    match h.fs.lookup(&h.path) {
        Ok(Node::File(f)) if !info.trailing_slash => file(h, ex, out, &f),
        // "/file.txt/" names a directory that does not exist.
        Ok(Node::File(_)) => h.error(out, 404, persist, b""),
        Ok(Node::Dir(_)) if !info.trailing_slash => redirect_to_slash(h, ex, out, query),
        Ok(Node::Dir(_)) => directory(h, ex, out),
        Err(e) => fs_error(h, ex, out, e),
    }
}

fn bad_request<F: Fs>(h: &mut Handler<F>, ex: &mut Exchange<'_>, out: &mut Out, why: &str) -> Sent {
    let peer = ex.peer;
    h.log(Level::Info, format_args!("{peer}: 400 {why}"));
    h.error(out, 400, ex.persist, b"")
}

/// File errors as nginx maps them: missing -> 404, permission -> 403, out of descriptors ->
/// 503, anything else -> 500 (logged).
fn fs_error<F: Fs>(h: &mut Handler<F>, ex: &mut Exchange<'_>, out: &mut Out, e: FsError) -> Sent {
    match e {
        FsError::NotFound => h.error(out, 404, ex.persist, b""),
        FsError::Forbidden => h.error(out, 403, ex.persist, b""),
        FsError::Busy => {
            h.log(Level::Error, format_args!("out of file descriptors"));
            h.error(out, 503, ex.persist, b"Retry-After: 1\r\n")
        }
        FsError::Other(err) => {
            h.log(Level::Error, format_args!("open failed: {err}"));
            h.error(out, 500, ex.persist, b"")
        }
    }
}

/// 301 to the same path with a `/` (query kept). The `Location` is rebuilt from the
/// normalised path, so it always starts with exactly one `/` and can never be read as a
/// protocol-relative (off-site) URL such as `//evil.example` or `/\evil`.
fn redirect_to_slash<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    query: Option<&[u8]>,
) -> Sent {
    let mut loc = std::mem::take(&mut h.scratch);
    loc.clear();
    loc.extend_from_slice(b"Location: /");
    listing::push_url_path(&mut loc, &h.path);
    if !h.path.is_empty() {
        loc.push(b'/');
    }
    if let Some(q) = query {
        loc.push(b'?');
        loc.extend_from_slice(q);
    }
    loc.extend_from_slice(b"\r\n");
    let sent = h.error(out, 301, ex.persist, &loc);
    h.scratch = loc;
    sent
}

fn directory<F: Fs>(h: &mut Handler<F>, ex: &mut Exchange<'_>, out: &mut Out) -> Sent {
    for i in 0..h.site.index.len() {
        h.scratch.clear();
        h.scratch.extend_from_slice(&h.path);
        if !h.path.is_empty() {
            h.scratch.push(b'/');
        }
        h.scratch.extend_from_slice(&h.site.index[i]);
        match h.fs.lookup(&h.scratch) {
            Ok(Node::File(f)) => return file(h, ex, out, &f),
            Ok(Node::Dir(_)) | Err(FsError::NotFound) => continue,
            Err(e) => return fs_error(h, ex, out, e),
        }
    }
    if !h.site.listing {
        return h.error(out, 403, ex.persist, b"");
    }
    if let Err(e) = h.fs.list(&h.path, &mut h.entries) {
        return fs_error(h, ex, out, e);
    }
    if !h.site.dotfiles {
        h.entries.retain(|e| e.name.first() != Some(&b'.'));
    }
    listing::sort(&mut h.entries);
    h.page.clear();
    listing::html(&mut h.page, &h.path, &h.entries);
    h.start(out, 200, ex.persist);
    out.buf
        .extend_from_slice(b"Content-Type: text/html; charset=utf-8\r\n");
    response::content_length(&mut out.buf, h.page.len() as u64);
    response::end(&mut out.buf);
    out.push_bytes(&h.page);
    Sent {
        status: 200,
        body: if out.is_head_only() {
            0
        } else {
            h.page.len() as u64
        },
    }
}

/// A whole file, 200.
fn file<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    f: &Rc<FileEntry>,
) -> Sent {
    let now = h.unix_now();
    h.start(out, 200, ex.persist);
    let buf = &mut out.buf;
    response::header(buf, b"Content-Type", f.content_type.as_bytes());
    response::content_length(buf, f.meta.size);
    response::header(buf, b"Last-Modified", &date::format(f.last_modified(now)));
    response::header(buf, b"ETag", &f.etag);
    buf.extend_from_slice(b"Accept-Ranges: bytes\r\n");
    response::end(buf);
    match &f.body {
        Body::Mem(data) => out.push_mem(data, 0, data.len()),
        Body::File(file) => out.push_file(file, 0, f.meta.size),
    }
    Sent {
        status: 200,
        body: if out.is_head_only() { 0 } else { f.meta.size },
    }
}
