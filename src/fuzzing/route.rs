//! Harness 6: the router ([`crate::handler::route`]) against models that try every host and
//! every route by brute force. Builds a small configuration from the input; reads nothing
//! but it, writes nothing.
use std::path::PathBuf;

use crate::config::{Config, Host, Route, RouteKind, SiteOptions};
use crate::fs::MemFs;
use crate::handler::route::{
    is_dir_name, normalize_host, raw_rest, target_authority, Match, Router, Vhost, MAX_HOST,
};
use crate::http::{path, request};

/// Labels of host names and segments of route prefixes: few, so that requests hit them.
const LABELS: [&str; 8] = ["a", "b", "ab", "www", "api", "x-y", "_s", "0"];
/// The last segment is 31 bytes, so `/L/L/` is a key of 63 bytes: long keys whose lengths
/// the router's (length, first byte) filter folds together with short ones.
pub const SEGS: [&str; 8] = [
    "a",
    "b",
    "ab",
    "img",
    "imgx",
    "users",
    "c.d",
    "long-segment-of-thirty-one-byte",
];

/// The input read front to back; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

thread_local! {
    /// Everything but the hosts, and options without index files: made once, as parsing
    /// flags and allocating options for every route would cost more than routing does.
    static BASE: Config = crate::config::load(None, &Default::default())
        .expect("the built-in defaults are a valid configuration");
    static SITE: SiteOptions = SiteOptions {
        index: Vec::new(),
        ..SiteOptions::default()
    };
}

fn site() -> SiteOptions {
    SITE.with(SiteOptions::clone)
}

/// 6. Routing. The input gives 1 to 4 hosts (the first the unnamed top level) with exact and
///    `*.` names and 0 to 7 routes each (`/`, `/a/`, `/a`, `/a/b/`, `/ab/`, ...), then a `Host`
///    value and a request path. Checked against the models below: host normalisation, host
///    choice, route matching with its rest, that a name `is_dir_name` accepts cannot climb
///    out of the vhost_dirs root, and that `raw_rest` splits the raw path where the
///    normalised one splits.
pub fn route(data: &[u8]) {
    let mut inp = Input(data);
    let ctl = inp.byte();
    let (hosts, names) = hosts(&mut inp, 1 + usize::from(ctl & 3));
    let cfg = BASE.with(|base| Config {
        default_host: usize::from(ctl >> 2) % hosts.len(),
        hosts,
        vhost_dirs: ctl & 0x80 != 0,
        ..base.clone()
    });
    let router = Router::build(&cfg, &mut MemFs::new()).expect("a valid configuration builds");
    let raw_host = request_host(&mut inp, &names);
    let Some(chosen) = check_host(&router, &cfg, &raw_host) else {
        return;
    };
    let raw_path = request_path(&mut inp, &cfg);
    let prefixes: Vec<&[u8]> = cfg.hosts[chosen]
        .routes
        .iter()
        .map(|r| r.prefix.as_bytes())
        .collect();
    check_path(&router.hosts[chosen], &prefixes, &raw_path);
}

/// `n` hosts, the first the unnamed top level, the others with one to three names each.
fn hosts(inp: &mut Input<'_>, n: usize) -> (Vec<Host>, Vec<String>) {
    let mut names = Vec::new();
    let mut hosts = Vec::new();
    for i in 0..n {
        let mut host = Host {
            name: String::new(),
            aliases: Vec::new(),
            access_log: None,
            site: site(),
            routes: routes(inp),
        };
        if i > 0 {
            let aliases = inp.byte() % 3;
            for n in 0..=aliases {
                let name = host_name(inp.byte(), inp.byte());
                if names.contains(&name) {
                    continue; // names are unique across hosts: the configuration says so
                }
                names.push(name.clone());
                match n {
                    0 => host.name = name,
                    _ => host.aliases.push(name),
                }
            }
        }
        hosts.push(host);
    }
    (hosts, names)
}

/// Checks what becomes of a `Host` value; the host it picks, or `None` when the request
/// parser would have refused the value (400 before anything is routed).
fn check_host(router: &Router, cfg: &Config, raw: &[u8]) -> Option<usize> {
    if !request::valid_host(raw) {
        return None;
    }
    let shown = String::from_utf8_lossy(raw);
    assert_eq!(
        target_authority(&[b"http://", raw, b"/x"].concat()),
        Some(raw),
        "absolute-form authority {shown:?}"
    );
    let mut buf = [0; MAX_HOST];
    let name = normalize_host(raw, &mut buf);
    assert_eq!(
        name.map(<[u8]>::to_vec),
        host_model(raw),
        "normalize_host({shown:?})"
    );
    for n in [Some(raw), name].into_iter().flatten() {
        if is_dir_name(n) {
            assert_dir_name_is_safe(n);
        }
    }
    let chosen = router.host(name);
    assert_eq!(chosen, choose_model(cfg, name), "host for {shown:?}");
    Some(chosen)
}

/// Checks the route a request path finds on `vhost` (whose prefixes are `prefixes`) and
/// the raw rest beneath each number of segments.
fn check_path(vhost: &Vhost, prefixes: &[&[u8]], target: &[u8]) {
    let Ok((raw, _query)) = path::split_target(target) else {
        return;
    };
    let (mut rel, mut scratch) = (Vec::new(), Vec::new());
    let Ok(info) = path::normalize(raw, &mut rel, &mut scratch) else {
        return;
    };
    let got = match vhost.find(&rel, info.trailing_slash) {
        Match::Route { route, rest } => {
            Found::Route(vhost.routes[route].prefix.to_vec(), rel[rest..].to_vec())
        }
        Match::AddSlash => Found::AddSlash,
        Match::None => Found::None,
    };
    assert_eq!(
        got,
        find_model(prefixes, &rel, info.trailing_slash),
        "route for {:?} (dir {}) among {prefixes:?}",
        String::from_utf8_lossy(&rel),
        info.trailing_slash
    );
    // Route prefixes have at most three segments; past the path's end, one more is enough.
    let segments = rel.split(|&b| b == b'/').filter(|s| !s.is_empty()).count();
    for k in (0..=segments.min(4)).chain([segments, segments + 1]) {
        check_raw_rest(raw, k, &rel, info.trailing_slash);
    }
}

/// A host's routes: `/` and prefixes of one to three segments, directory or file.
fn routes(inp: &mut Input<'_>) -> Vec<Route> {
    let mut routes: Vec<Route> = Vec::new();
    for i in 0..inp.byte() % 8 {
        let (r, s) = (inp.byte(), inp.byte());
        let bits = usize::from(r >> 3) | usize::from(s) << 5;
        let depth = usize::from(r & 3);
        let mut prefix = String::from("/");
        for j in 0..depth {
            prefix.push_str(SEGS[(bits >> (3 * j)) & 7]);
            prefix.push('/');
        }
        let dir = depth == 0 || r & 4 != 0;
        if !dir {
            prefix.pop();
        }
        if routes.iter().any(|r| r.prefix == prefix) {
            continue; // prefixes are unique within a host
        }
        let root = if dir {
            format!("r{i}")
        } else {
            format!("r{i}/file")
        };
        routes.push(Route {
            prefix,
            kind: RouteKind::Static(PathBuf::from(root)),
            site: site(),
            fallback: None,
            run: Vec::new(),
        });
    }
    routes
}

/// A configured host name: one to three labels, a wildcard when the top bit of `b` is set.
fn host_name(a: u8, b: u8) -> String {
    let picks = [a & 7, (a >> 3) & 7, b & 7];
    let labels: Vec<&str> = picks[..1 + usize::from((b >> 3) & 3) % 3]
        .iter()
        .map(|&p| LABELS[usize::from(p)])
        .collect();
    let name = labels.join(".");
    match b & 0x80 {
        0 => name,
        _ => format!("*.{name}"),
    }
}

/// The request's `Host` value: raw bytes from the input, or a configured name with a label
/// in front, a trailing dot, a port and upper case, as the low bits of the first byte say.
fn request_host(inp: &mut Input<'_>, names: &[String]) -> Vec<u8> {
    let how = inp.byte();
    if how & 3 == 0 || names.is_empty() {
        // Up to 455 bytes, so names longer than MAX_HOST come up too.
        let len = usize::from(inp.byte()) + if how & 0x80 != 0 { 200 } else { 0 };
        return inp.bytes(len).to_vec();
    }
    let pick = &names[usize::from(inp.byte()) % names.len()];
    let mut h = Vec::new();
    if how & 4 != 0 || pick.starts_with('*') {
        h.extend_from_slice(LABELS[usize::from(inp.byte() & 7)].as_bytes());
        h.push(b'.');
    }
    h.extend_from_slice(pick.trim_start_matches("*.").as_bytes());
    if how & 8 != 0 {
        h.push(b'.');
    }
    match (how >> 4) & 3 {
        0 => {}
        1 => h.extend_from_slice(b":8080"),
        2 => h.push(b':'),
        _ => h.extend_from_slice(b".:80"),
    }
    if how & 0x40 != 0 {
        let mask = inp.byte();
        for (i, b) in h.iter_mut().enumerate() {
            if mask >> (i % 8) & 1 != 0 {
                b.make_ascii_uppercase();
            }
        }
    }
    h
}

/// The request path: what is left of the input, after one of the configured prefixes
/// (without its final `/` when the second bit says so) when the first bit says so.
fn request_path(inp: &mut Input<'_>, cfg: &Config) -> Vec<u8> {
    let how = inp.byte();
    let prefixes: Vec<&str> = cfg
        .hosts
        .iter()
        .flat_map(|h| h.routes.iter().map(|r| r.prefix.as_str()))
        .collect();
    let mut p = Vec::new();
    if how & 1 != 0 && !prefixes.is_empty() {
        let pick = prefixes[usize::from(inp.byte()) % prefixes.len()];
        p.extend_from_slice(pick.as_bytes());
        if how & 2 != 0 && p.len() > 1 {
            p.pop();
        }
    }
    let rest = inp.bytes(usize::MAX);
    if p.is_empty() && rest.first() != Some(&b'/') {
        p.push(b'/');
    }
    p.extend_from_slice(rest);
    p
}

/// Host normalisation as RFC 9110 §7.2 reads: the port is what follows the last `:`, except
/// inside an IP literal's brackets; then one trailing dot goes, and case does not matter.
fn host_model(raw: &[u8]) -> Option<Vec<u8>> {
    let name = match raw.iter().position(|&b| b == b']') {
        Some(close) if raw[0] == b'[' => &raw[..=close],
        _ => match raw.iter().rposition(|&b| b == b':') {
            Some(colon) => &raw[..colon],
            None => raw,
        },
    };
    let name = name.strip_suffix(b".").unwrap_or(name);
    (!name.is_empty() && name.len() <= MAX_HOST).then(|| name.to_ascii_lowercase())
}

/// The host for a name, trying every name of every host: an exact name, else the longest
/// `*.S` whose `.S` ends the name (with something before it), else the default.
fn choose_model(cfg: &Config, name: Option<&[u8]>) -> usize {
    let Some(name) = name else {
        return cfg.default_host;
    };
    let all = cfg.hosts.iter().enumerate().flat_map(|(i, h)| {
        std::iter::once(&h.name)
            .chain(&h.aliases)
            .map(move |n| (i, n.as_bytes()))
    });
    if let Some((i, _)) = all
        .clone()
        .find(|(_, n)| !n.starts_with(b"*") && *n == name)
    {
        return i;
    }
    all.filter_map(|(i, n)| Some((i, n.strip_prefix(b"*")?)))
        .filter(|(_, dot_s)| name.len() > dot_s.len() && name.ends_with(dot_s))
        .max_by_key(|(_, dot_s)| dot_s.len())
        .map_or(cfg.default_host, |(i, _)| i)
}

/// A host name that is a directory under the vhost_dirs root can only be a directory there:
/// one path segment, neither `.` nor `..` nor a dotfile, no empty label.
fn assert_dir_name_is_safe(n: &[u8]) {
    let shown = String::from_utf8_lossy(n);
    assert!(!n.is_empty(), "empty directory name");
    assert!(
        !n.iter().any(|&b| matches!(b, b'/' | b'\\' | 0)),
        "separator or NUL in directory name {shown:?}"
    );
    assert!(!n.windows(2).any(|w| w == b".."), "`..` in {shown:?}");
    assert!(n[0] != b'.', "directory name {shown:?} starts with a dot");
    assert!(
        !n.split(|&b| b == b'.').any(<[u8]>::is_empty),
        "empty label in {shown:?}"
    );
}

/// What a path matches on one host: a route's prefix and the rest of the path beneath it
/// (no slash at either end), a redirect to add the slash, or nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Route(Vec<u8>, Vec<u8>),
    AddSlash,
    None,
}

/// Route matching by trying every prefix, for `P = "/" + rel` plus `/` when the request
/// path ended in one: a file route equal to `P` first; then, when `P + "/"` is a directory
/// route, a redirect to it (it is longer than any other match); else the longest directory
/// route that `P` starts with.
pub fn find_model(prefixes: &[&[u8]], rel: &[u8], dir: bool) -> Found {
    let mut p = [b"/", rel].concat();
    if dir && !rel.is_empty() {
        p.push(b'/');
    }
    let is_dir = |x: &[u8]| x.last() == Some(&b'/');
    if let Some(f) = prefixes.iter().find(|f| !is_dir(f) && **f == p) {
        return Found::Route(f.to_vec(), Vec::new());
    }
    if prefixes
        .iter()
        .any(|d| is_dir(d) && d[..d.len() - 1] == p[..])
    {
        return Found::AddSlash;
    }
    match prefixes
        .iter()
        .filter(|d| is_dir(d) && p.starts_with(d))
        .max_by_key(|d| d.len())
    {
        Some(d) => {
            let rest = &p[d.len()..];
            let rest = rest.strip_suffix(b"/").unwrap_or(rest);
            Found::Route(d.to_vec(), rest.to_vec())
        }
        None => Found::None,
    }
}

/// `raw_rest(raw, k) = Some(rest)` promises that `raw` is `head` followed by `rest`, where
/// `head` is the raw path's first `k` segments and their slashes, and that the normalised
/// path is `normalize(head)` joined by `/` to `normalize("/" + rest)`, the trailing slash
/// included: so `rest` after any route prefix of `k` segments means what `raw` meant.
fn check_raw_rest(raw: &[u8], k: usize, rel: &[u8], dir: bool) {
    let Some(rest) = raw_rest(raw, k) else {
        return;
    };
    let shown = String::from_utf8_lossy(raw);
    let head = raw
        .strip_suffix(rest)
        .unwrap_or_else(|| panic!("raw_rest({shown:?}, {k}): {rest:?} does not end it"));
    assert!(
        rest.is_empty() || head.ends_with(b"/"),
        "raw_rest({shown:?}, {k}) cuts inside a segment"
    );
    let norm = |p: &[u8]| {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        let info = path::normalize(p, &mut out, &mut scratch)
            .unwrap_or_else(|e| panic!("raw_rest({shown:?}, {k}): {p:?} fails: {e:?}"));
        (out, info.trailing_slash)
    };
    let (h, _) = norm(head);
    let (r, r_dir) = norm(&[b"/", rest].concat());
    let h_segs = h.split(|&b| b == b'/').filter(|s| !s.is_empty()).count();
    assert_eq!(
        h_segs, k,
        "raw_rest({shown:?}, {k}): head {head:?} has {h_segs} segments"
    );
    let joined = match (h.is_empty(), r.is_empty()) {
        (_, true) => h,
        (true, false) => r,
        (false, false) => [&h[..], b"/", &r[..]].concat(),
    };
    assert_eq!(joined, rel, "raw_rest({shown:?}, {k}) = {rest:?}");
    if !rest.is_empty() {
        assert_eq!(
            r_dir, dir,
            "raw_rest({shown:?}, {k}) loses the trailing slash"
        );
    }
}
