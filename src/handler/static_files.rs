//! GET and HEAD on the document root: target to path; then a file, a redirect for a
//! directory without its slash, an index file, or a listing. For files this is where
//! RFC 9110 is applied in its order: pick the representation (a precompressed variant when
//! `Accept-Encoding` allows), evaluate preconditions (§13.2.2), then `Range` (§14).
use std::rc::Rc;

use super::{listing, route, Handler, RouteAt, Sent};
use crate::conn::{Exchange, Out};
use crate::fs::{Body, FileEntry, Fs, FsError, ListEntry, Meta, Node};
use crate::http::conditional::{self, Preconditions, Validators, Verdict};
use crate::http::negotiate::{self, Coding};
use crate::http::path::PathInfo;
use crate::http::range::{self, ByteRange, RangeOutcome};
use crate::http::request::{dup, Values};
use crate::http::response::{self, Persist};
use crate::http::{date, Method, Request};
use crate::log::Level;

/// A directory route: the path beneath its root. `info` describes the whole request path;
/// `fallback` (single-page apps) is served for a path that names nothing.
#[inline(always)]
pub fn serve<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    info: PathInfo,
    query: Option<&[u8]>,
    at: RouteAt,
) -> Sent {
    let persist = ex.persist;
    if info.hidden && !h.site.dotfiles && hidden(&h.path[h.url..]) {
        return h.error(out, 404, persist, b"");
    }
    match h.fs.lookup(h.root, &h.path[h.fs_at..]) {
        Ok(Node::File(f)) if !info.trailing_slash => file(h, ex, out, &f),
        // "/file.txt/" names a directory that does not exist.
        Ok(Node::File(_)) => h.error(out, 404, persist, b""),
        Ok(Node::Dir(_)) if !info.trailing_slash => redirect_to_slash(h, ex, out, query),
        Ok(Node::Dir(meta)) => directory(h, ex, out, meta),
        Err(FsError::NotFound) if h.route_at(at).fallback.is_some() => {
            let router = Rc::clone(&h.router);
            let fallback = router.hosts[at.host].routes[at.route].fallback.as_deref();
            match h.fs.lookup(h.root, fallback.unwrap_or_default()) {
                Ok(Node::File(f)) => file(h, ex, out, &f),
                Ok(Node::Dir(_)) => h.error(out, 404, persist, b""),
                Err(e) => fs_error(h, ex, out, e),
            }
        }
        Err(e) => fs_error(h, ex, out, e),
    }
}

/// A file route: exactly one file.
pub fn serve_file_route<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    at: RouteAt,
) -> Sent {
    let router = Rc::clone(&h.router);
    let route::Action::File { name, .. } = &router.hosts[at.host].routes[at.route].action else {
        return h.error(out, 500, ex.persist, b"");
    };
    match h.fs.lookup(h.root, name) {
        Ok(Node::File(f)) => file(h, ex, out, &f),
        Ok(Node::Dir(_)) => h.error(out, 404, ex.persist, b""),
        Err(e) => fs_error(h, ex, out, e),
    }
}

/// Whether a path (normalised, beneath `/`) has a segment starting with `.`, other than a
/// leading `.well-known` (RFC 8615: ACME challenges and other well-known URIs are served
/// even while dotfiles are hidden).
pub fn hidden(rel: &[u8]) -> bool {
    let rest = match rel.strip_prefix(b".well-known") {
        Some([]) => return false,
        Some([b'/', rest @ ..]) => rest,
        _ => rel,
    };
    rest.first() == Some(&b'.') || memchr::memmem::find(rest, b"/.").is_some()
}

pub(super) fn bad_request<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    why: &str,
) -> Sent {
    let peer = ex.peer;
    h.log(Level::Info, format_args!("{peer}: 400 {why}"));
    h.error(out, 400, ex.persist, b"")
}

/// File errors as nginx maps them: missing -> 404, permission -> 403, out of descriptors ->
/// 503, anything else -> 500 (logged).
pub(super) fn fs_error<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    e: FsError,
) -> Sent {
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
pub(super) fn redirect_to_slash<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    query: Option<&[u8]>,
) -> Sent {
    let mut loc = std::mem::take(&mut h.scratch);
    loc.clear();
    loc.extend_from_slice(b"Location: /");
    let url = &h.path[h.url..];
    listing::push_url_path(&mut loc, url);
    if !url.is_empty() {
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

fn directory<F: Fs>(h: &mut Handler<F>, ex: &mut Exchange<'_>, out: &mut Out, meta: Meta) -> Sent {
    let site = Rc::clone(&h.site);
    for index in &site.index {
        let dir = &h.path[h.fs_at..];
        h.scratch.clear();
        h.scratch.extend_from_slice(dir);
        if !dir.is_empty() {
            h.scratch.push(b'/');
        }
        h.scratch.extend_from_slice(index);
        match h.fs.lookup(h.root, &h.scratch) {
            Ok(Node::File(f)) => return file(h, ex, out, &f),
            Ok(Node::Dir(_)) | Err(FsError::NotFound) => continue,
            Err(e) => return fs_error(h, ex, out, e),
        }
    }
    if !h.site.listing {
        return h.error(out, 403, ex.persist, b"");
    }
    if let Err(e) = h.fs.list(h.root, &h.path[h.fs_at..], &mut h.entries) {
        return fs_error(h, ex, out, e);
    }
    if !h.site.dotfiles {
        h.entries.retain(|e| e.name.first() != Some(&b'.'));
    }
    listing::sort(&mut h.entries);
    let (req, head) = (ex.req, ex.head);
    let accept = Values::of(head, req.accept, req.dups & dup::ACCEPT != 0, b"accept");
    let json = negotiate::prefers_json(accept.as_slice());
    h.page.clear();
    if json {
        listing::json(&mut h.page, &h.entries);
    } else {
        listing::html(&mut h.page, &h.path[h.url..], &h.entries);
    }
    // Validators describe the listing itself: its bytes (which change when an entry's size
    // or time does, though the directory's mtime does not) and its newest time.
    let etag = listing::etag(&h.page, json);
    let newest = h
        .entries
        .iter()
        .map(|e: &ListEntry| e.mtime)
        .fold(meta.mtime, i64::max);
    let lm = date::clamp_last_modified(newest, h.unix_now());
    let val = Validators {
        etag: &etag,
        last_modified: lm,
    };
    match precondition_verdict(req, head, &val) {
        Verdict::NotModified => {
            // Listings carry no Cache-Control: the route's applies to files.
            return not_modified(h, out, ex.persist, &val, b"Vary: Accept\r\n", None);
        }
        Verdict::PreconditionFailed => return h.error(out, 412, ex.persist, b""),
        Verdict::Proceed => {}
    }
    h.start(out, 200, ex.persist);
    let buf = &mut out.buf;
    if json {
        buf.extend_from_slice(b"Content-Type: application/json; charset=utf-8\r\n");
    } else {
        buf.extend_from_slice(b"Content-Type: text/html; charset=utf-8\r\n");
    }
    response::content_length(buf, h.page.len() as u64);
    validator_headers(buf, &val, b"Vary: Accept\r\n");
    response::end(buf);
    out.push_bytes(&h.page);
    Sent::with_body(200, out, h.page.len() as u64)
}

/// 304 (RFC 9110 §15.4.5): the validators and caching headers a 200 would carry, no body.
fn not_modified<F: Fs>(
    h: &Handler<F>,
    out: &mut Out,
    persist: Persist,
    val: &Validators<'_>,
    vary: &[u8],
    cache_control: Option<&[u8]>,
) -> Sent {
    h.start(out, 304, persist);
    validator_headers(&mut out.buf, val, vary);
    finish(&mut out.buf, cache_control);
    Sent {
        status: 304,
        body: 0,
    }
}

/// Owns the per-header value lists of the four precondition headers.
struct PreValues<'a> {
    if_match: Values<'a>,
    if_none_match: Values<'a>,
    if_modified_since: Values<'a>,
    if_unmodified_since: Values<'a>,
}

impl<'a> PreValues<'a> {
    fn as_ref(&self) -> Preconditions<'_> {
        Preconditions {
            if_match: self.if_match.as_slice(),
            if_none_match: self.if_none_match.as_slice(),
            if_modified_since: self.if_modified_since.as_slice(),
            if_unmodified_since: self.if_unmodified_since.as_slice(),
        }
    }
}

/// RFC 9110 §13.2.2 for a GET or HEAD; a request with no precondition header (the common
/// case) proceeds without building the value lists.
#[inline]
fn precondition_verdict(req: &Request, head: &[u8], val: &Validators<'_>) -> Verdict {
    if req.if_match.is_none()
        && req.if_none_match.is_none()
        && req.if_modified_since.is_none()
        && req.if_unmodified_since.is_none()
    {
        return Verdict::Proceed;
    }
    conditional::evaluate(&preconditions(req, head).as_ref(), val, true)
}

fn preconditions<'a>(req: &Request, head: &'a [u8]) -> PreValues<'a> {
    let d = |bit: u16| req.dups & bit != 0;
    PreValues {
        if_match: Values::of(head, req.if_match, d(dup::IF_MATCH), b"if-match"),
        if_none_match: Values::of(
            head,
            req.if_none_match,
            d(dup::IF_NONE_MATCH),
            b"if-none-match",
        ),
        if_modified_since: Values::of(
            head,
            req.if_modified_since,
            d(dup::IF_MODIFIED_SINCE),
            b"if-modified-since",
        ),
        if_unmodified_since: Values::of(
            head,
            req.if_unmodified_since,
            d(dup::IF_UNMODIFIED_SINCE),
            b"if-unmodified-since",
        ),
    }
}

fn coding_index(c: Coding) -> usize {
    match c {
        Coding::Br => 0,
        Coding::Zstd => 1,
        Coding::Gzip => 2,
    }
}

/// The representation of a file chosen for one request, and what its headers are made of.
struct Rep<'a> {
    /// The original or one of its precompressed variants.
    entry: &'a FileEntry,
    /// The original's type (a variant has it too, under its `coding`).
    content_type: &'a str,
    coding: Option<Coding>,
    val: Validators<'a>,
    /// `Vary: Accept-Encoding` when the file has variants, else nothing.
    vary: &'static [u8],
}

/// A file: 200, 206, 304, 412 or 416, decided in the order of RFC 9110 §13.2.2, one step
/// per function: pick the representation, evaluate preconditions, then `Range`.
fn file<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    f: &Rc<FileEntry>,
) -> Sent {
    let (req, head) = (ex.req, ex.head);
    let rep = representation(f, req, head, h.unix_now());
    match precondition_verdict(req, head, &rep.val) {
        Verdict::NotModified => {
            let cc = h.site.cache_control.as_deref();
            return not_modified(h, out, ex.persist, &rep.val, rep.vary, cc);
        }
        Verdict::PreconditionFailed => return h.error(out, 412, ex.persist, rep.vary),
        Verdict::Proceed => {}
    }
    match requested_ranges(req, head, &rep, h.site.max_ranges) {
        RangeOutcome::Full => whole(h, out, ex.persist, &rep),
        RangeOutcome::Unsatisfiable => unsatisfiable(h, out, ex.persist, &rep),
        RangeOutcome::Ranges(ranges) => match ranges[..] {
            [] => whole(h, out, ex.persist, &rep),
            [part] => one_range(h, out, ex.persist, &rep, part),
            _ => multipart(h, out, ex.persist, &rep, &ranges),
        },
    }
}

/// The original, or the precompressed variant the client prefers (RFC 9110 §12.5.3), with
/// its validators as sent at `now`.
fn representation<'a>(f: &'a FileEntry, req: &Request, head: &[u8], now: i64) -> Rep<'a> {
    let mut entry = f;
    let mut coding = None;
    let mut vary: &'static [u8] = b"";
    if f.has_variants() {
        vary = b"Vary: Accept-Encoding\r\n";
        let ae = Values::of(
            head,
            req.accept_encoding,
            req.dups & dup::ACCEPT_ENCODING != 0,
            b"accept-encoding",
        );
        let available = [
            f.variants[0].is_some(),
            f.variants[1].is_some(),
            f.variants[2].is_some(),
        ];
        if let Some(c) = negotiate::choose_encoding(ae.as_slice(), available) {
            if let Some(v) = &f.variants[coding_index(c)] {
                entry = v;
                coding = Some(c);
            }
        }
    }
    Rep {
        entry,
        content_type: &f.content_type,
        coding,
        val: Validators {
            etag: &entry.etag,
            last_modified: entry.last_modified(now),
        },
        vary,
    }
}

/// The ranges a request asks for. Range applies to GET only (RFC 9110 §14.2) and, under
/// `If-Range`, only while its validator matches (§13.1.5); a repeated `Range` or `If-Range`
/// is ambiguous: the whole file.
fn requested_ranges(req: &Request, head: &[u8], rep: &Rep<'_>, max: usize) -> RangeOutcome {
    let Some(r) = req.range else {
        return RangeOutcome::Full;
    };
    if req.method != Method::Get || req.dups & dup::RANGE != 0 {
        return RangeOutcome::Full;
    }
    let if_range_ok = match req.if_range {
        None => true,
        Some(_) if req.dups & dup::IF_RANGE != 0 => false,
        Some(v) => conditional::if_range_allows(v.get(head), &rep.val),
    };
    if if_range_ok {
        range::evaluate(r.get(head), rep.entry.meta.size, max)
    } else {
        RangeOutcome::Full
    }
}

/// 200 with the whole representation.
fn whole<F: Fs>(h: &Handler<F>, out: &mut Out, persist: Persist, rep: &Rep<'_>) -> Sent {
    h.start(out, 200, persist);
    if rep.entry.meta.mtime <= h.unix_now() {
        // The common case: every header after `Connection` is the same for every request
        // of this file, so it is formatted once and copied.
        let block = rep.entry.head_200.get_or_init(|| {
            let mut b = Vec::with_capacity(256);
            entity_headers(&mut b, rep, None);
            b.into_boxed_slice()
        });
        out.buf.extend_from_slice(block);
    } else {
        // A future mtime makes Last-Modified follow the clock: not cacheable.
        entity_headers(&mut out.buf, rep, None);
    }
    finish(&mut out.buf, h.site.cache_control.as_deref());
    let len = rep.entry.meta.size;
    push_body(out, rep.entry, ByteRange { start: 0, end: len });
    Sent::with_body(200, out, len)
}

/// 206 with one part.
fn one_range<F: Fs>(
    h: &Handler<F>,
    out: &mut Out,
    persist: Persist,
    rep: &Rep<'_>,
    part: ByteRange,
) -> Sent {
    h.start(out, 206, persist);
    entity_headers(&mut out.buf, rep, Some(part));
    finish(&mut out.buf, h.site.cache_control.as_deref());
    push_body(out, rep.entry, part);
    Sent::with_body(206, out, part.end - part.start)
}

/// 416 naming the representation's length (RFC 9110 §14.4).
fn unsatisfiable<F: Fs>(
    h: &mut Handler<F>,
    out: &mut Out,
    persist: Persist,
    rep: &Rep<'_>,
) -> Sent {
    let mut extra = Vec::with_capacity(48);
    extra.extend_from_slice(b"Content-Range: bytes */");
    response::push_u64(&mut extra, rep.entry.meta.size);
    extra.extend_from_slice(b"\r\n");
    extra.extend_from_slice(rep.vary);
    h.error(out, 416, persist, &extra)
}

/// The representation's headers: type, coding, length, range, validators, `Vary`,
/// `Accept-Ranges`. `range` is the part a 206 sends. The caller ends the head with
/// [`finish`] (the route's `Cache-Control` is not part of what a file caches, since routes
/// sharing a directory may differ in it).
fn entity_headers(buf: &mut Vec<u8>, rep: &Rep<'_>, range: Option<ByteRange>) {
    let len = rep.entry.meta.size;
    response::header(buf, b"Content-Type", rep.content_type.as_bytes());
    if let Some(c) = rep.coding {
        response::header(buf, b"Content-Encoding", c.token().as_bytes());
    }
    match range {
        Some(part) => {
            response::content_length(buf, part.end - part.start);
            push_content_range(buf, part, len);
        }
        None => response::content_length(buf, len),
    }
    validator_headers(buf, &rep.val, rep.vary);
    buf.extend_from_slice(b"Accept-Ranges: bytes\r\n");
}

/// `Last-Modified`, `ETag`, then `Vary` when needed.
fn validator_headers(buf: &mut Vec<u8>, val: &Validators<'_>, vary: &[u8]) {
    response::header(buf, b"Last-Modified", &date::format(val.last_modified));
    response::header(buf, b"ETag", val.etag);
    buf.extend_from_slice(vary);
}

/// Ends a head that may carry the route's `Cache-Control`.
fn finish(buf: &mut Vec<u8>, cache_control: Option<&[u8]>) {
    if let Some(cc) = cache_control {
        response::header(buf, b"Cache-Control", cc);
    }
    response::end(buf);
}

fn push_content_range(buf: &mut Vec<u8>, r: ByteRange, len: u64) {
    buf.extend_from_slice(b"Content-Range: bytes ");
    response::push_u64(buf, r.start);
    buf.push(b'-');
    response::push_u64(buf, r.end - 1);
    buf.push(b'/');
    response::push_u64(buf, len);
    buf.extend_from_slice(b"\r\n");
}

fn push_body(out: &mut Out, rep: &FileEntry, r: ByteRange) {
    match &rep.body {
        Body::Mem(data) => out.push_mem(data, r.start as usize, r.end as usize),
        Body::File(file) => out.push_file(file, r.start, r.end),
    }
}

/// 206 `multipart/byteranges` (RFC 9110 §14.6): part heads are generated first so the
/// `Content-Length` is exact; each part's bytes then go out with `sendfile` (or from memory).
fn multipart<F: Fs>(
    h: &mut Handler<F>,
    out: &mut Out,
    persist: Persist,
    rep: &Rep<'_>,
    ranges: &[ByteRange],
) -> Sent {
    h.start(out, 206, persist);
    let boundary = h.boundary();
    let len = rep.entry.meta.size;
    h.page.clear();
    let mut heads = Vec::with_capacity(ranges.len());
    for r in ranges {
        let start = h.page.len();
        h.page.extend_from_slice(b"--");
        h.page.extend_from_slice(&boundary);
        h.page.extend_from_slice(b"\r\nContent-Type: ");
        h.page.extend_from_slice(rep.content_type.as_bytes());
        h.page.extend_from_slice(b"\r\n");
        push_content_range(&mut h.page, *r, len);
        h.page.extend_from_slice(b"\r\n");
        heads.push((start, h.page.len()));
    }
    let closing = h.page.len();
    h.page.extend_from_slice(b"--");
    h.page.extend_from_slice(&boundary);
    h.page.extend_from_slice(b"--\r\n");
    let data: u64 = ranges.iter().map(|r| r.end - r.start + 2).sum();
    let total = h.page.len() as u64 + data;

    let buf = &mut out.buf;
    buf.extend_from_slice(b"Content-Type: multipart/byteranges; boundary=");
    buf.extend_from_slice(&boundary);
    buf.extend_from_slice(b"\r\n");
    if let Some(c) = rep.coding {
        response::header(buf, b"Content-Encoding", c.token().as_bytes());
    }
    response::content_length(buf, total);
    validator_headers(buf, &rep.val, rep.vary);
    buf.extend_from_slice(b"Accept-Ranges: bytes\r\n");
    finish(buf, h.site.cache_control.as_deref());
    for (r, (s, e)) in ranges.iter().zip(heads) {
        out.push_bytes(&h.page[s..e]);
        push_body(out, rep.entry, *r);
        out.push_bytes(b"\r\n");
    }
    out.push_bytes(&h.page[closing..]);
    Sent::with_body(206, out, total)
}
