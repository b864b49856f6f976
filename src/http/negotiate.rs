//! Proactive negotiation (RFC 9110 §12.5): which precompressed variant to send for an
//! Accept-Encoding, and whether an Accept prefers JSON to HTML. Parsing and ranking only;
//! which variants exist on disk is the caller's business.
use super::{eq_ignore_case, list_items, trim_ows};

/// Content codings tern can serve from precompressed files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    /// In the order of `available` and of the tie-break among codings accepted only via `*`:
    /// smallest output first.
    const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    /// The content-coding token for `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }
}

/// A qvalue in thousandths, 0..=1000 (§12.4.2).
type Q = u16;

/// Parses `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` (§12.4.2).
fn qvalue(v: &[u8]) -> Option<Q> {
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(i) => (&v[..i], &v[i + 1..]),
        None => (v, &[][..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = frac
        .iter()
        .chain(b"000")
        .take(3)
        .fold(0, |acc, &d| acc * 10 + Q::from(d - b'0'));
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Splits a list element into its value and its weight: `value *( OWS ";" OWS param )`.
/// Parameters other than `q` are ignored; a malformed `q` voids the element (`None`).
fn weighted(elem: &[u8]) -> Option<(&[u8], Q)> {
    let mut parts = elem.split(|&b| b == b';');
    let value = trim_ows(parts.next()?);
    let mut q = 1000;
    for param in parts.map(trim_ows) {
        // `weight = OWS ";" OWS "q=" qvalue`: the parameter name is case-insensitive, and
        // no whitespace is allowed around `=` (§5.6.6), so `q = 0.5` or a bare `q` is a
        // malformed weight, not some other parameter.
        let eq = memchr::memchr(b'=', param).unwrap_or(param.len());
        if eq_ignore_case(trim_ows(&param[..eq]), b"q") {
            match param {
                [b'q' | b'Q', b'=', v @ ..] => q = qvalue(v)?,
                _ => return None,
            }
        }
    }
    Some((value, q))
}

/// How the client rated one coding: its q and the position where it was listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listed {
    q: Q,
    pos: usize,
}

/// Chooses the coding to serve. `values`: every Accept-Encoding field value (empty slice =
/// header absent). `available[i]` says whether a variant exists for `[Br, Zstd, Gzip][i]`.
/// Returns `None` for identity.
pub fn choose_encoding(values: &[&[u8]], available: [bool; 3]) -> Option<Coding> {
    // No Accept-Encoding: any coding is acceptable (§12.5.3), but identity is what every
    // client can read, so that is what we send.
    if values.is_empty() {
        return None;
    }
    let mut listed: [Option<Listed>; 3] = [None; 3];
    let mut identity = None;
    let mut star = None;
    let elems = values
        .iter()
        .flat_map(|v| list_items(v))
        .filter_map(weighted);
    for (pos, (name, q)) in elems.enumerate() {
        let slot = if eq_ignore_case(name, b"br") {
            &mut listed[0]
        } else if eq_ignore_case(name, b"zstd") {
            &mut listed[1]
        } else if eq_ignore_case(name, b"gzip") || eq_ignore_case(name, b"x-gzip") {
            // x-gzip is an alias a recipient should treat as gzip (§8.4.1.3).
            &mut listed[2]
        } else if eq_ignore_case(name, b"identity") {
            identity = identity.or(Some(q));
            continue;
        } else if name == b"*" {
            star = star.or(Some(q));
            continue;
        } else {
            continue;
        };
        // A coding listed twice keeps its first rating, like a tie keeps the first listed.
        slot.get_or_insert(Listed { q, pos });
    }

    // Rank: higher q, then explicitly listed before `*`-only, then client order, then the
    // fixed order of `Coding::ALL` for codings that only `*` accepted.
    let mut best: Option<(Q, bool, usize, Coding)> = None;
    for (i, coding) in Coding::ALL.into_iter().enumerate() {
        if !available[i] {
            continue;
        }
        let (q, explicit, order) = match (listed[i], star) {
            (Some(l), _) => (l.q, true, l.pos),
            (None, Some(q)) => (q, false, i),
            // Neither listed nor covered by `*`: not acceptable (§12.5.3).
            (None, None) => continue,
        };
        if q == 0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((bq, bexplicit, border, _)) => {
                (q, explicit, std::cmp::Reverse(order)) > (bq, bexplicit, std::cmp::Reverse(border))
            }
        };
        if better {
            best = Some((q, explicit, order, coding));
        }
    }
    let (best_q, _, _, coding) = best?;
    // identity is acceptable unless excluded, explicitly or by `*;q=0` (§12.5.3).
    let identity_q = identity.or(star).unwrap_or(1000);
    (best_q >= identity_q).then_some(coding)
}

/// How specifically a media range matched a type; higher wins (§12.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Any,
    Type,
    Exact,
}

/// The q the Accept lists give `media` (`type/subtype`, lowercase): that of the most specific
/// matching range, the first one listed among equally specific ranges; 0 when none matches.
fn accept_q(values: &[&[u8]], media: (&[u8], &[u8])) -> Q {
    let mut best: Option<(Specificity, Q)> = None;
    let elems = values
        .iter()
        .flat_map(|v| list_items(v))
        .filter_map(weighted);
    for (range, q) in elems {
        let Some(slash) = memchr::memchr(b'/', range) else {
            continue;
        };
        let (ty, sub) = (&range[..slash], &range[slash + 1..]);
        // Type and subtype are case-insensitive (§8.3.1); `*/html` is not a media range.
        let spec = match (ty, sub) {
            (b"*", b"*") => Specificity::Any,
            (b"*", _) => continue,
            (t, b"*") if eq_ignore_case(t, media.0) => Specificity::Type,
            (t, s) if eq_ignore_case(t, media.0) && eq_ignore_case(s, media.1) => {
                Specificity::Exact
            }
            _ => continue,
        };
        if best.is_none_or(|(b, _)| spec > b) {
            best = Some((spec, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// `values`: every Accept field value. True when application/json is strictly preferred
/// over text/html, e.g. for a directory listing. No Accept header prefers neither.
pub fn prefers_json(values: &[&[u8]]) -> bool {
    accept_q(values, (b"application", b"json")) > accept_q(values, (b"text", b"html"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::*;

    const ALL: [bool; 3] = [true, true, true];
    const GZIP_ONLY: [bool; 3] = [false, false, true];
    const ZSTD_GZIP: [bool; 3] = [false, true, true];
    const NONE: [bool; 3] = [false, false, false];

    #[test]
    fn q_values() {
        let cases: &[(&str, Option<Q>)] = &[
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.001", Some(1)),
            ("0.999", Some(999)),
            ("1.001", None),
            ("1.0000", None),
            ("0.0001", None),
            ("2", None),
            ("-1", None),
            (".5", None),
            ("", None),
            ("0.5x", None),
            ("01", None),
            (" 1", None),
        ];
        for (v, want) in cases {
            assert_eq!(qvalue(v.as_bytes()), *want, "{v:?}");
        }
    }

    /// (name, Accept-Encoding values, available variants, expected choice)
    type Case = (
        &'static str,
        &'static [&'static str],
        [bool; 3],
        Option<Coding>,
    );

    #[test]
    fn encodings() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("absent", &[], ALL, None),
            ("empty value", &[""], ALL, None),
            ("only commas", &[" , ,"], ALL, None),
            ("gzip", &["gzip"], ALL, Some(Gzip)),
            ("gzip unavailable", &["gzip"], NONE, None),
            ("br lower q than gzip", &["br;q=0.5, gzip"], ALL, Some(Gzip)),
            ("br first", &["br, gzip"], ALL, Some(Br)),
            ("client order tie", &["gzip, br"], ALL, Some(Gzip)),
            ("client order tie q", &["zstd;q=0.8, br;q=0.8, identity;q=0"], ALL, Some(Zstd)),
            ("typical browser", &["gzip, deflate, br, zstd"], ALL, Some(Gzip)),
            ("higher q later", &["gzip;q=0.2, zstd;q=0.9, identity;q=0"], ALL, Some(Zstd)),
            ("listed but unavailable", &["br, gzip"], GZIP_ONLY, Some(Gzip)),
            ("star", &["*"], ALL, Some(Br)),
            ("star only gzip", &["*"], GZIP_ONLY, Some(Gzip)),
            ("star zstd gzip", &["*"], ZSTD_GZIP, Some(Zstd)),
            ("star zero", &["*;q=0"], ALL, None),
            ("star zero with gzip", &["*;q=0, gzip"], ALL, Some(Gzip)),
            ("gzip zero star", &["gzip;q=0, *"], ALL, Some(Br)),
            ("gzip zero star gzip only", &["gzip;q=0, *"], GZIP_ONLY, None),
            ("explicit beats star tie", &["*, gzip"], ALL, Some(Gzip)),
            ("star higher than listed", &["gzip;q=0.5, *"], ALL, Some(Br)),
            ("star lower than listed", &["gzip, *;q=0.5"], ALL, Some(Gzip)),
            ("identity zero", &["identity;q=0"], ALL, None),
            ("identity zero gzip", &["identity;q=0, gzip"], ALL, Some(Gzip)),
            ("identity preferred", &["gzip;q=0.5, identity"], ALL, None),
            ("implicit identity beats q<1", &["br;q=0.8"], ALL, None),
            ("identity tie goes to coding", &["gzip;q=0.5, identity;q=0.5"], ALL, Some(Gzip)),
            ("identity via star", &["gzip;q=0.5, *;q=0.8"], GZIP_ONLY, None),
            ("star coding ties identity", &["gzip;q=0.5, *;q=0.8"], ALL, Some(Br)),
            ("identity explicit beats star", &["gzip;q=0.5, *;q=0.8, identity;q=0.1"], GZIP_ONLY, Some(Gzip)),
            ("x-gzip", &["x-gzip"], ALL, Some(Gzip)),
            ("uppercase", &["GZIP, BR"], ALL, Some(Gzip)),
            ("uppercase x-gzip", &["X-GZip"], ALL, Some(Gzip)),
            ("mixed case q", &["gzip;Q=0.5, br;q=0.6, identity;q=0.1"], ALL, Some(Br)),
            ("ows around semicolon", &["br ; q=0.5 , gzip\t;\tq=0.6, identity;q=0"], ALL, Some(Gzip)),
            ("space around = voids", &["br;q = 0.9, gzip;q=0.5, *;q=0"], ALL, Some(Gzip)),
            ("junk q voids element", &["gzip;q=abc"], ALL, None),
            ("q above one", &["br;q=2, gzip;q=0.1, *;q=0"], ALL, Some(Gzip)),
            ("q too precise", &["br;q=0.0001, gzip;q=0.1, *;q=0"], ALL, Some(Gzip)),
            ("negative q", &["br;q=-1, gzip"], ALL, Some(Gzip)),
            ("empty q", &["br;q=, gzip"], ALL, Some(Gzip)),
            ("bare q", &["br;q, gzip"], ALL, Some(Gzip)),
            ("space before =", &["br;q =1, gzip"], ALL, Some(Gzip)),
            ("q zero excludes", &["gzip;q=0"], ALL, None),
            ("q 0.000 excludes", &["gzip;q=0.000"], ALL, None),
            ("other params ignored", &["gzip;level=9"], ALL, Some(Gzip)),
            ("unknown codings", &["deflate, compress"], ALL, None),
            ("repeated header", &["deflate", "br;q=0.1, zstd"], ALL, Some(Zstd)),
            ("duplicate keeps first", &["gzip;q=0.1, br, gzip"], ALL, Some(Br)),
            ("nothing available", &["gzip, br"], NONE, None),
            ("q one point zero", &["br;q=1.0, gzip;q=1"], ALL, Some(Br)),
        ];
        for (name, values, available, want) in cases {
            let values: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(choose_encoding(&values, *available), *want, "{name}");
        }
        assert_eq!(Br.token(), "br");
        assert_eq!(Zstd.token(), "zstd");
        assert_eq!(Gzip.token(), "gzip");
    }

    #[test]
    fn accept() {
        #[rustfmt::skip]
        let cases: &[(&str, &[&str], bool)] = &[
            ("absent", &[], false),
            ("empty", &[""], false),
            ("json", &["application/json"], true),
            ("json uppercase", &["Application/JSON"], true),
            ("html", &["text/html"], false),
            ("browser", &["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"], false),
            ("any", &["*/*"], false),
            ("application any", &["application/*"], true),
            ("text any", &["text/*"], false),
            ("json over html", &["application/json;q=0.9, text/html;q=0.8"], true),
            ("html over json", &["application/json;q=0.8, text/html;q=0.9"], false),
            ("equal q", &["application/json, text/html"], false),
            ("specific beats wildcard", &["application/json;q=0.5, */*"], false),
            ("specific low html", &["*/*, text/html;q=0.1"], true),
            ("type beats any", &["application/*;q=0.9, */*;q=0.1"], true),
            ("json excluded", &["application/json;q=0, */*"], false),
            ("params ignored", &["application/json;charset=utf-8"], true),
            ("junk q voids json", &["application/json;q=x, text/html;q=0.1"], false),
            ("junk q voids html", &["application/json;q=0.1, text/html;q=1.5"], true),
            ("star subtype invalid", &["*/json"], false),
            ("no slash", &["json"], false),
            ("repeated header", &["text/html;q=0.5", "application/json"], true),
            ("first of equals", &["application/json;q=0.2, application/json", "text/html;q=0.5"], false),
        ];
        for (name, values, want) in cases {
            let values: Vec<&[u8]> = values.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(prefers_json(&values), *want, "{name}");
        }
    }
}
