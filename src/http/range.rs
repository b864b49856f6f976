//! Range requests (RFC 9110 §14): turns a `Range` field value and a representation length into
//! "send it all", 416, or a sorted, coalesced list of byte ranges. Pure arithmetic on `u64`:
//! no files, no I/O, and no input can make it overflow, panic or amplify the response.
use super::{eq_ignore_case, list_items, trim_ows};

/// A byte range `[start, end)` of a representation; `end` is exclusive, `start < end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Never true for a range returned by [`evaluate`]; here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

/// What to do with a request that carries a `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Ignore the Range header and send the whole representation with 200.
    Full,
    /// 416 (the caller sends `Content-Range: bytes */LEN`).
    Unsatisfiable,
    /// 206: sorted, overlapping or adjacent ranges coalesced, each non-empty and within [0, len).
    Ranges(Vec<ByteRange>),
}

/// One syntactically valid `range-spec` (RFC 9110 §14.1.1), before it meets the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-last`, both inclusive.
    Int(u64, u64),
    /// `first-`: to the end.
    From(u64),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl Spec {
    /// Parses one list element. `None` is a syntax error, which voids the whole header.
    fn parse(s: &[u8]) -> Option<Spec> {
        let dash = memchr::memchr(b'-', s)?;
        let (first, last) = (&s[..dash], &s[dash + 1..]);
        match (first.is_empty(), last.is_empty()) {
            (true, _) => Some(Spec::Suffix(digits(last)?)),
            (false, true) => Some(Spec::From(digits(first)?)),
            (false, false) => {
                let (a, b) = (digits(first)?, digits(last)?);
                // "A range-spec is invalid if the last-pos value is present and less than the
                // first-pos" (§14.1.1); an invalid spec makes the header ignorable (§14.2).
                (a <= b).then_some(Spec::Int(a, b))
            }
        }
    }

    /// The part of `[0, len)` this spec selects, or `None` if it is unsatisfiable (§14.1.1).
    fn clip(self, len: u64) -> Option<ByteRange> {
        // `start < len` below also makes every range of an empty representation unsatisfiable.
        let (start, end) = match self {
            Spec::Int(a, b) => (a, b.saturating_add(1).min(len)),
            Spec::From(a) => (a, len),
            // A suffix longer than the representation selects all of it (§14.1.1), so a huge
            // n (nginx CVE-2017-7529) is just the whole file, never a negative start.
            Spec::Suffix(0) => return None,
            Spec::Suffix(n) => (len.saturating_sub(n), len),
        };
        (start < len).then_some(ByteRange { start, end })
    }
}

/// `1*DIGIT` of any length (leading zeros are legal); `None` on anything else or overflow.
/// Unlike `request::parse_decimal` this accepts all of u64, up to `18446744073709551615`.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| match b {
        b'0'..=b'9' => acc.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// Evaluates a `Range` field value (`header`) against a representation of `len` bytes.
/// More than `max_ranges` range-specs make the server ignore the header, as it may (§14.2).
pub fn evaluate(header: &[u8], len: u64, max_ranges: usize) -> RangeOutcome {
    let Some(set) = range_set(header) else {
        return RangeOutcome::Full;
    };
    let mut ranges = Vec::new();
    let mut specs = 0usize;
    let mut total = 0u64;
    for item in list_items(set) {
        specs += 1;
        if specs > max_ranges {
            return RangeOutcome::Full;
        }
        let Some(spec) = Spec::parse(item) else {
            return RangeOutcome::Full;
        };
        if let Some(r) = spec.clip(len) {
            // Many small or overlapping ranges that add up to more than the file are an
            // amplification attack (Apache CVE-2011-3192); §14.2 lets us send 200 instead.
            total = match total.checked_add(r.len()) {
                Some(t) if t <= len => t,
                _ => return RangeOutcome::Full,
            };
            ranges.push(r);
        }
    }
    if specs == 0 {
        // `range-set = 1#range-spec`: `bytes=` or `bytes=,` is malformed.
        return RangeOutcome::Full;
    }
    if ranges.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Ranges(coalesce(ranges))
}

/// The range-set of a `bytes=` specifier, or `None` for another unit or no `=` (§14.1).
/// The unit must be followed directly by `=`: `bytes = 0-1` is not the grammar.
fn range_set(header: &[u8]) -> Option<&[u8]> {
    let header = trim_ows(header);
    let eq = memchr::memchr(b'=', header)?;
    // Range units are case-insensitive (§14.1); any unit but bytes is ignored (§14.2).
    eq_ignore_case(&header[..eq], b"bytes").then(|| &header[eq + 1..])
}

/// Sorts and merges overlapping or adjacent ranges (§14.2 allows coalescing), so that the
/// parts of a multipart response never repeat a byte and appear in ascending order.
fn coalesce(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut out: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RangeOutcome::{Full, Unsatisfiable};

    fn r(pairs: &[(u64, u64)]) -> RangeOutcome {
        RangeOutcome::Ranges(
            pairs
                .iter()
                .map(|&(start, end)| ByteRange { start, end })
                .collect(),
        )
    }

    #[test]
    fn table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, u64, usize, RangeOutcome)] = &[
            ("first byte", "bytes=0-0", 10, 8, r(&[(0, 1)])),
            ("closed", "bytes=2-5", 10, 8, r(&[(2, 6)])),
            ("open", "bytes=3-", 10, 8, r(&[(3, 10)])),
            ("suffix", "bytes=-3", 10, 8, r(&[(7, 10)])),
            ("last byte", "bytes=9-9", 10, 8, r(&[(9, 10)])),
            ("end clipped", "bytes=5-100", 10, 8, r(&[(5, 10)])),
            ("whole as range", "bytes=0-9", 10, 8, r(&[(0, 10)])),
            ("suffix longer than file", "bytes=-20", 10, 8, r(&[(0, 10)])),
            ("suffix equal to file", "bytes=-10", 10, 8, r(&[(0, 10)])),
            ("leading zeros", "bytes=000001-0002", 10, 8, r(&[(1, 3)])),
            ("unit case", "Bytes=0-1", 10, 8, r(&[(0, 2)])),
            ("unit upper", "BYTES=0-1", 10, 8, r(&[(0, 2)])),
            ("ows around header", " bytes=0-1\t", 10, 8, r(&[(0, 2)])),
            ("ows around commas", "bytes=0-1 ,\t4-5", 10, 8, r(&[(0, 2), (4, 6)])),
            ("empty elements", "bytes=,0-1,,4-5,", 10, 8, r(&[(0, 2), (4, 6)])),
            ("adjacent merge", "bytes=0-1,2-3", 10, 8, r(&[(0, 4)])),
            ("sorted", "bytes=1-2,0-0", 10, 8, r(&[(0, 3)])),
            ("sorted apart", "bytes=6-7,0-0", 10, 8, r(&[(0, 1), (6, 8)])),
            ("contained", "bytes=0-4,1-2", 10, 8, r(&[(0, 5)])),
            ("overlap within len", "bytes=0-2,1-3,2-4", 10, 8, r(&[(0, 5)])),
            ("suffix and range", "bytes=0-1,-2", 10, 8, r(&[(0, 2), (8, 10)])),
            ("unsatisfiable dropped", "bytes=20-30,0-1", 10, 8, r(&[(0, 2)])),
            ("start at len", "bytes=10-", 10, 8, Unsatisfiable),
            ("start past len", "bytes=10-20", 10, 8, Unsatisfiable),
            ("zero suffix", "bytes=-0", 10, 8, Unsatisfiable),
            ("zero suffix and past", "bytes=-0,50-", 10, 8, Unsatisfiable),
            ("empty file", "bytes=0-0", 0, 8, Unsatisfiable),
            ("empty file open", "bytes=0-", 0, 8, Unsatisfiable),
            ("empty file suffix", "bytes=-5", 0, 8, Unsatisfiable),
            ("reversed", "bytes=5-1", 10, 8, Full),
            ("reversed among good", "bytes=0-1,5-1", 10, 8, Full),
            ("no specs", "bytes=", 10, 8, Full),
            ("only commas", "bytes= , ,", 10, 8, Full),
            ("spaces around =", "bytes = 0-1", 10, 8, Full),
            ("space before =", "bytes =0-1", 10, 8, Full),
            ("space inside spec", "bytes=0 -1", 10, 8, Full),
            ("other unit", "items=0-1", 10, 8, Full),
            ("no =", "bytes", 10, 8, Full),
            ("empty header", "", 10, 8, Full),
            ("lone dash", "bytes=-", 10, 8, Full),
            ("two dashes", "bytes=1-2-3", 10, 8, Full),
            ("sign", "bytes=+1-2", 10, 8, Full),
            ("negative", "bytes=--1", 10, 8, Full),
            ("hex", "bytes=0x1-2", 10, 8, Full),
            ("garbage after good", "bytes=0-1,x", 10, 8, Full),
            ("semicolon list", "bytes=0-1;2-3", 10, 8, Full),
            ("too many", "bytes=0-0,2-2,4-4", 10, 2, Full),
            ("too many even unsatisfiable", "bytes=20-,30-,40-", 10, 2, Full),
            ("max zero", "bytes=0-0", 10, 0, Full),
            ("exactly max", "bytes=0-0,2-2", 10, 2, r(&[(0, 1), (2, 3)])),
            ("overlap over len", "bytes=0-5,0-5", 10, 8, Full),
            ("amplification", "bytes=0-,0-,0-", 10, 8, Full),
            ("many small overlaps", "bytes=0-3,1-4,2-5,3-6", 10, 8, Full),
            ("many overlaps within len", "bytes=0-0,0-1,1-2,2-2", 10, 8, r(&[(0, 3)])),
            ("sum exactly len", "bytes=0-4,0-4", 10, 8, r(&[(0, 5)])),
            // nginx CVE-2017-7529: a suffix of 2^63 must not become a negative offset.
            ("cve-2017-7529", "bytes=-9223372036854775808", 10, 8, r(&[(0, 10)])),
            ("cve suffix pair", "bytes=-9223372036854775808,-9223372036854775808", 10, 8, Full),
            ("u64 max last", "bytes=0-18446744073709551615", 10, 8, r(&[(0, 10)])),
            ("u64 max suffix", "bytes=-18446744073709551615", 10, 8, r(&[(0, 10)])),
            ("u64 max first", "bytes=18446744073709551615-", 10, 8, Unsatisfiable),
            ("overflow first", "bytes=18446744073709551616-", 10, 8, Full),
            ("overflow last", "bytes=0-18446744073709551616", 10, 8, Full),
            ("overflow suffix", "bytes=-99999999999999999999999", 10, 8, Full),
            ("huge len", "bytes=0-", u64::MAX, 8, r(&[(0, u64::MAX)])),
            ("huge len last byte", "bytes=-1", u64::MAX, 8, r(&[(u64::MAX - 1, u64::MAX)])),
            ("huge len closed max", "bytes=5-18446744073709551615", u64::MAX, 8, r(&[(5, u64::MAX)])),
        ];
        for (name, header, len, max, want) in cases {
            assert_eq!(&evaluate(header.as_bytes(), *len, *max), want, "{name}");
        }
    }

    /// Checks what every 206 must satisfy.
    fn well_formed(out: &RangeOutcome, len: u64) -> Result<(), TestCaseError> {
        if let RangeOutcome::Ranges(rs) = out {
            prop_assert!(!rs.is_empty());
            for r in rs {
                prop_assert!(r.start < r.end && r.end <= len, "{r:?} of {len}");
            }
            for w in rs.windows(2) {
                // Sorted, disjoint and not even adjacent: coalescing left nothing to merge.
                prop_assert!(w[0].end < w[1].start, "{w:?}");
            }
        }
        Ok(())
    }

    /// A spec as the model generates it: (kind, a, b) rendered as `a-b`, `a-` or `-a`.
    fn render(spec: &(u8, u64, u64)) -> String {
        match spec {
            (0, a, b) => format!("{a}-{b}"),
            (1, a, _) => format!("{a}-"),
            (_, n, _) => format!("-{n}"),
        }
    }

    /// The deliberately dumb model: walk every byte offset of a small file and ask each spec
    /// whether it covers it, straight from the wording of RFC 9110 §14.1.1. `None` means the
    /// header is ignored (200); otherwise the covered offsets (none at all means 416).
    fn model(specs: &[(u8, u64, u64)], len: u64, max: usize) -> Option<Vec<bool>> {
        if specs.is_empty() || specs.len() > max || specs.iter().any(|s| s.0 == 0 && s.1 > s.2) {
            return None;
        }
        let covers = |s: &(u8, u64, u64), i: u64| match *s {
            (0, a, b) => a <= i && i <= b,
            (1, a, _) => a <= i,
            (_, n, _) => len - i <= n,
        };
        let mut sum = 0;
        let mut union = vec![false; len as usize];
        for s in specs {
            for i in 0..len {
                if covers(s, i) {
                    sum += 1;
                    union[i as usize] = true;
                }
            }
        }
        (sum <= len).then_some(union)
    }

    fn number() -> impl Strategy<Value = u64> {
        prop_oneof![4 => 0u64..80, 1 => any::<u64>()]
    }

    proptest! {
        #[test]
        fn never_past_the_file(
            tail in "[0-9, -]{0,40}",
            len in prop_oneof![0u64..100, any::<u64>()],
            max in 0usize..10,
        ) {
            let header = format!("bytes={tail}");
            let out = evaluate(header.as_bytes(), len, max);
            well_formed(&out, len)?;
        }

        #[test]
        fn matches_the_brute_force_model(
            specs in proptest::collection::vec((0u8..3, number(), number()), 0..6),
            seps in proptest::collection::vec(prop_oneof![",", ", ", " ,", ",,", " , "], 6),
            len in 0u64..=64,
            max in 1usize..8,
        ) {
            let mut header = String::from("bytes=");
            for (i, s) in specs.iter().enumerate() {
                if i > 0 {
                    header.push_str(&seps[i]);
                }
                header.push_str(&render(s));
            }
            let out = evaluate(header.as_bytes(), len, max);
            well_formed(&out, len)?;
            match (model(&specs, len, max), out) {
                (None, got) => prop_assert_eq!(got, Full, "{}", header),
                (Some(union), RangeOutcome::Ranges(rs)) => {
                    let mut got = vec![false; len as usize];
                    for r in rs {
                        for i in r.start..r.end {
                            got[i as usize] = true;
                        }
                    }
                    prop_assert_eq!(got, union, "{}", header);
                }
                (Some(union), got) => {
                    prop_assert!(!union.contains(&true), "{} gave {:?}", header, got);
                    prop_assert_eq!(got, Unsatisfiable, "{}", header);
                }
            }
        }
    }
}
