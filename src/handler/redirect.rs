//! `redirect = "URL"` routes: a 301/302/307/308 whose `Location` is the configured URL, plus,
//! when that URL ends with `/`, the rest of the request path beneath the route and its query.
//! The rest is passed on still percent-encoded exactly as received, never decoded: a decoded
//! `%0d%0a` would be header injection. (The parser has already refused control bytes in the
//! target, so what is copied can hold no line break.)
use super::route::{raw_rest, Route};
use super::{listing, Handler, Sent};
use crate::conn::{Exchange, Out};
use crate::fs::Fs;

#[allow(clippy::too_many_arguments)]
pub fn respond<F: Fs>(
    h: &mut Handler<F>,
    ex: &mut Exchange<'_>,
    out: &mut Out,
    route: &Route,
    to: &[u8],
    status: u16,
    raw_path: &[u8],
    query: Option<&[u8]>,
    trailing_slash: bool,
) -> Sent {
    let mut loc = std::mem::take(&mut h.scratch);
    loc.clear();
    loc.extend_from_slice(b"Location: ");
    loc.extend_from_slice(to);
    if to.last() == Some(&b'/') {
        if route.is_dir() {
            let segments = route.prefix.iter().filter(|&&b| b == b'/').count() - 1;
            match raw_rest(raw_path, segments) {
                Some(rest) => loc.extend_from_slice(rest),
                None => {
                    // Dot segments or encoded separators: the raw rest does not line up with
                    // the route, so send the normalised rest, encoded again.
                    let rest = &h.path[h.fs_at..];
                    listing::push_url_path(&mut loc, rest);
                    if trailing_slash && !rest.is_empty() {
                        loc.push(b'/');
                    }
                }
            }
        }
        if let Some(q) = query {
            loc.push(b'?');
            loc.extend_from_slice(q);
        }
    }
    loc.extend_from_slice(b"\r\n");
    let sent = h.error(out, status, ex.persist, &loc);
    h.scratch = loc;
    sent
}
