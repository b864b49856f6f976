//! Conditional requests (RFC 9110 §13): entity-tag lists, HTTP-date preconditions and If-Range,
//! evaluated in the order of §13.2.2 against validators the caller supplies. No clock, no
//! files: the caller decides what the representation's ETag and Last-Modified are.
use super::{date, trim_ows};

/// What the response's representation is identified by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validators<'a> {
    /// A strong entity-tag, quotes included, e.g. `b"\"abc\""`.
    pub etag: &'a [u8],
    /// Unix seconds, exactly as sent in `Last-Modified`.
    pub last_modified: i64,
}

/// Each field is every value of that header in the request (empty slice = header absent;
/// several when the header was repeated).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Preconditions<'a> {
    pub if_match: &'a [&'a [u8]],
    pub if_none_match: &'a [&'a [u8]],
    pub if_modified_since: &'a [&'a [u8]],
    pub if_unmodified_since: &'a [&'a [u8]],
}

/// The result of evaluating the preconditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Serve the request as if it had no preconditions.
    Proceed,
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
}

/// Evaluates the preconditions in the order of RFC 9110 §13.2.2. `get_or_head` is whether
/// the method is GET or HEAD, which turns a matching If-None-Match into 304 instead of 412
/// and is the only case in which If-Modified-Since applies.
pub fn evaluate(p: &Preconditions<'_>, v: &Validators<'_>, get_or_head: bool) -> Verdict {
    if !p.if_match.is_empty() {
        // Step 1, §13.1.1: If-Match uses the strong comparison.
        if !etag_matches(p.if_match, v.etag, true) {
            return Verdict::PreconditionFailed;
        }
    } else if let Some(since) = single_date(p.if_unmodified_since) {
        // Step 2, §13.1.4: If-Unmodified-Since counts only when If-Match is absent.
        if v.last_modified > since {
            return Verdict::PreconditionFailed;
        }
    }
    if !p.if_none_match.is_empty() {
        // Step 3, §13.1.2: If-None-Match uses the weak comparison.
        if etag_matches(p.if_none_match, v.etag, false) {
            return if get_or_head {
                Verdict::NotModified
            } else {
                Verdict::PreconditionFailed
            };
        }
    } else if get_or_head {
        // Step 4, §13.1.3: If-Modified-Since counts only for GET/HEAD without If-None-Match.
        if let Some(since) = single_date(p.if_modified_since) {
            if v.last_modified <= since {
                return Verdict::NotModified;
            }
        }
    }
    Verdict::Proceed
}

/// The date of a header that must hold exactly one HTTP-date. A repeated header or an invalid
/// date makes the recipient ignore the field (§13.1.3, §13.1.4).
fn single_date(values: &[&[u8]]) -> Option<i64> {
    match values {
        [one] => date::parse(one),
        _ => None,
    }
}

/// If-Range (RFC 9110 §13.1.5): true when the Range may be applied. The validator must be
/// strong: a weak or malformed entity-tag, or a date that is not exactly Last-Modified,
/// means "send the whole representation".
pub fn if_range_allows(value: &[u8], v: &Validators<'_>) -> bool {
    let value = trim_ows(value);
    // §13.1.5: an entity-tag is told from a date by its first characters.
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        return match (EntityTag::parse_one(value), EntityTag::parse_one(v.etag)) {
            (Some(theirs), Some(ours)) => theirs.strong_eq(&ours),
            _ => false,
        };
    }
    date::parse(value) == Some(v.last_modified)
}

/// Whether an entity-tag list (or `*`) matches `etag`; `strong` selects strong comparison
/// (§8.8.3.2). Every header value in `values` is a list; malformed elements match nothing.
pub fn etag_matches(values: &[&[u8]], etag: &[u8], strong: bool) -> bool {
    let ours = EntityTag::parse_one(etag);
    values
        .iter()
        .flat_map(|v| Elements { rest: v })
        .any(|e| match (e, &ours) {
            // `*` matches any current representation, and callers only ask about existing ones.
            (Element::Any, _) => true,
            (Element::Tag(t), Some(o)) if strong => t.strong_eq(o),
            (Element::Tag(t), Some(o)) => t.opaque == o.opaque,
            _ => false,
        })
}

/// `entity-tag = [ weak ] opaque-tag` (§8.8.3); `opaque` excludes the quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// Parses a tag at the start of `s`; returns it and the rest after the closing quote.
    fn parse_prefix(s: &'a [u8]) -> Option<(EntityTag<'a>, &'a [u8])> {
        // `weak = %s"W/"` is case-sensitive.
        let (weak, s) = match s.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let body = s.strip_prefix(b"\"")?;
        let close = memchr::memchr(b'"', body)?;
        let opaque = &body[..close];
        // etagc = %x21 / %x23-7E / obs-text: no spaces, controls or DEL.
        if !opaque
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        Some((EntityTag { weak, opaque }, &body[close + 1..]))
    }

    /// A value that must be exactly one entity-tag (If-Range, our own ETag).
    fn parse_one(s: &'a [u8]) -> Option<EntityTag<'a>> {
        match EntityTag::parse_prefix(trim_ows(s))? {
            (tag, []) => Some(tag),
            _ => None,
        }
    }

    /// §8.8.3.2: both strong and character-for-character equal.
    fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Element<'a> {
    Any,
    Tag(EntityTag<'a>),
    Malformed,
}

/// The elements of `"*" / #entity-tag`. Not `list_items`: an opaque-tag may contain commas,
/// so a comma only separates elements outside quotes.
struct Elements<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Elements<'a> {
    type Item = Element<'a>;

    fn next(&mut self) -> Option<Element<'a>> {
        // Empty elements and OWS around commas are allowed (§5.6.1).
        let start = self
            .rest
            .iter()
            .position(|&b| !matches!(b, b',' | b' ' | b'\t'))?;
        let s = &self.rest[start..];
        let parsed = match s.strip_prefix(b"*") {
            Some(after) => Some((Element::Any, after)),
            None => EntityTag::parse_prefix(s).map(|(t, after)| (Element::Tag(t), after)),
        };
        if let Some((elem, after)) = parsed {
            let after = trim_leading_ows(after);
            if after.is_empty() || after[0] == b',' {
                self.rest = after;
                return Some(elem);
            }
        }
        // Resynchronise at the next comma after the start of the bad element; skipping from
        // there rather than past a stray quote keeps later, valid elements usable.
        let next = memchr::memchr(b',', s).map_or(s.len(), |i| i + 1);
        self.rest = &s[next..];
        Some(Element::Malformed)
    }
}

fn trim_leading_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    const ETAG: &[u8] = b"\"abc\"";
    /// 1994-11-06T08:49:37Z, the RFC's example date.
    const LM: i64 = 784_111_777;
    const V: Validators<'static> = Validators {
        etag: ETAG,
        last_modified: LM,
    };
    const IMF: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const RFC850: &str = "Sunday, 06-Nov-94 08:49:37 GMT";
    const ASCTIME: &str = "Sun Nov  6 08:49:37 1994";
    const EARLIER: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    #[test]
    fn entity_tag_lists() {
        // (name, list, our etag, strong match, weak match)
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str, bool, bool)] = &[
            ("same", "\"abc\"", "\"abc\"", true, true),
            ("different", "\"abd\"", "\"abc\"", false, false),
            ("case matters", "\"ABC\"", "\"abc\"", false, false),
            ("star", "*", "\"abc\"", true, true),
            ("star with ows", "  *  ", "\"abc\"", true, true),
            ("weak theirs", "W/\"abc\"", "\"abc\"", false, true),
            ("weak ours", "\"abc\"", "W/\"abc\"", false, true),
            ("lowercase w is not weak", "w/\"abc\"", "\"abc\"", false, false),
            ("list", "\"x\", \"abc\"", "\"abc\"", true, true),
            ("list no spaces", "\"x\",\"abc\"", "\"abc\"", true, true),
            ("list tabs", "\"x\"\t,\t\"abc\"\t", "\"abc\"", true, true),
            ("list empties", ",, \"x\" ,,\"abc\",", "\"abc\"", true, true),
            ("list weak", "\"x\", W/\"abc\"", "\"abc\"", false, true),
            ("comma inside tag", "\"a,b\"", "\"a,b\"", true, true),
            ("comma tag not split", "\"a,b\"", "\"b\"", false, false),
            ("unquoted", "abc", "\"abc\"", false, false),
            ("unterminated", "\"abc", "\"abc\"", false, false),
            ("space inside", "\"a c\"", "\"a c\"", false, false),
            ("junk after tag", "\"abc\"x", "\"abc\"", false, false),
            ("malformed skipped", "abc, \"abc\"", "\"abc\"", true, true),
            ("unterminated skipped", "\"x, \"abc\"", "\"abc\"", true, true),
            ("obs-text", "\"\u{e9}\"", "\"\u{e9}\"", true, true),
            ("empty opaque", "\"\"", "\"\"", true, true),
            ("empty value", "", "\"abc\"", false, false),
            ("no etag of ours", "\"abc\"", "", false, false),
            ("no etag but star", "*", "", true, true),
        ];
        for (name, list, ours, strong, weak) in cases {
            let values = [list.as_bytes()];
            let got_strong = etag_matches(&values, ours.as_bytes(), true);
            let got_weak = etag_matches(&values, ours.as_bytes(), false);
            assert_eq!((got_strong, got_weak), (*strong, *weak), "{name}");
        }
        // A repeated header is one list.
        assert!(etag_matches(&[b"\"x\"", b"\"abc\""], ETAG, true));
        assert!(!etag_matches(&[], ETAG, false));
    }

    /// (name, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, GET/HEAD, want)
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        bool,
        Verdict,
    );

    #[test]
    fn preconditions() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("none", &[], &[], &[], &[], true, Proceed),
            ("none post", &[], &[], &[], &[], false, Proceed),
            // If-Match alone.
            ("im match", &["\"abc\""], &[], &[], &[], false, Proceed),
            ("im star", &["*"], &[], &[], &[], false, Proceed),
            ("im list", &["\"x\", \"abc\""], &[], &[], &[], false, Proceed),
            ("im other", &["\"x\""], &[], &[], &[], true, PreconditionFailed),
            ("im weak is strong-compared", &["W/\"abc\""], &[], &[], &[], false, PreconditionFailed),
            ("im garbage", &["abc"], &[], &[], &[], false, PreconditionFailed),
            ("im empty value", &[""], &[], &[], &[], false, PreconditionFailed),
            ("im repeated", &["\"x\"", "\"abc\""], &[], &[], &[], false, Proceed),
            // If-Unmodified-Since alone.
            ("ius same", &[], &[], &[], &[IMF], false, Proceed),
            ("ius later", &[], &[], &[], &[LATER], false, Proceed),
            ("ius earlier", &[], &[], &[], &[EARLIER], false, PreconditionFailed),
            ("ius earlier get", &[], &[], &[], &[EARLIER], true, PreconditionFailed),
            ("ius rfc850", &[], &[], &[], &[RFC850], false, Proceed),
            ("ius asctime", &[], &[], &[], &[ASCTIME], false, Proceed),
            ("ius invalid ignored", &[], &[], &[], &["yesterday"], false, Proceed),
            ("ius twice ignored", &[], &[], &[], &[EARLIER, EARLIER], false, Proceed),
            // If-None-Match alone.
            ("inm match get", &[], &["\"abc\""], &[], &[], true, NotModified),
            ("inm match post", &[], &["\"abc\""], &[], &[], false, PreconditionFailed),
            ("inm weak match", &[], &["W/\"abc\""], &[], &[], true, NotModified),
            ("inm star", &[], &["*"], &[], &[], true, NotModified),
            ("inm star post", &[], &["*"], &[], &[], false, PreconditionFailed),
            ("inm list", &[], &["\"x\" , W/\"abc\""], &[], &[], true, NotModified),
            ("inm other", &[], &["\"x\""], &[], &[], true, Proceed),
            ("inm repeated", &[], &["\"x\"", "\"abc\""], &[], &[], true, NotModified),
            // If-Modified-Since alone.
            ("ims same", &[], &[], &[IMF], &[], true, NotModified),
            ("ims rfc850", &[], &[], &[RFC850], &[], true, NotModified),
            ("ims asctime", &[], &[], &[ASCTIME], &[], true, NotModified),
            ("ims later", &[], &[], &[LATER], &[], true, NotModified),
            ("ims earlier", &[], &[], &[EARLIER], &[], true, Proceed),
            ("ims post ignored", &[], &[], &[IMF], &[], false, Proceed),
            ("ims invalid ignored", &[], &[], &["Sun, 06 Nov 1994"], &[], true, Proceed),
            ("ims twice ignored", &[], &[], &[IMF, IMF], &[], true, Proceed),
            // Precedence.
            ("im wins over ius", &["\"abc\""], &[], &[], &[EARLIER], false, Proceed),
            ("im fails despite ius", &["\"x\""], &[], &[], &[LATER], false, PreconditionFailed),
            ("im passes then inm", &["\"abc\""], &["\"abc\""], &[], &[], true, NotModified),
            ("im fails before inm", &["\"x\""], &["\"abc\""], &[], &[], true, PreconditionFailed),
            ("ius fails before inm", &[], &["\"abc\""], &[], &[EARLIER], true, PreconditionFailed),
            ("ius fails before ims", &[], &[], &[IMF], &[EARLIER], true, PreconditionFailed),
            ("inm no match ignores ims", &[], &["\"x\""], &[IMF], &[], true, Proceed),
            ("inm match with stale ims", &[], &["\"abc\""], &[EARLIER], &[], true, NotModified),
            ("ius passes then ims", &[], &[], &[IMF], &[LATER], true, NotModified),
        ];
        for (name, im, inm, ims, ius, get, want) in cases {
            let bytes = |v: &[&'static str]| v.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
            let (im, inm, ims, ius) = (bytes(im), bytes(inm), bytes(ims), bytes(ius));
            let p = Preconditions {
                if_match: &im,
                if_none_match: &inm,
                if_modified_since: &ims,
                if_unmodified_since: &ius,
            };
            assert_eq!(evaluate(&p, &V, *get), *want, "{name}");
        }
    }

    #[test]
    fn if_range() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, bool)] = &[
            ("strong same", "\"abc\"", true),
            ("strong with ows", " \"abc\" ", true),
            ("strong other", "\"abd\"", false),
            ("weak same", "W/\"abc\"", false),
            ("list is not a tag", "\"abc\", \"abc\"", false),
            ("unterminated", "\"abc", false),
            ("star", "*", false),
            ("date equal", IMF, true),
            ("date rfc850", RFC850, true),
            ("date asctime", ASCTIME, true),
            ("date earlier", EARLIER, false),
            ("date later", LATER, false),
            ("garbage", "yesterday", false),
            ("empty", "", false),
        ];
        for (name, value, want) in cases {
            assert_eq!(if_range_allows(value.as_bytes(), &V), *want, "{name}");
        }
        let weak_ours = Validators {
            etag: b"W/\"abc\"",
            last_modified: LM,
        };
        assert!(!if_range_allows(b"W/\"abc\"", &weak_ours));
        assert!(!if_range_allows(b"\"abc\"", &weak_ours));
    }
}
