//! HTTP dates (RFC 9110 §5.6.7): IMF-fixdate formatting for any representable mtime, parsing
//! of all three request formats (via `httpdate`), and the once-per-second `Date` cache.
use std::time::{Duration, UNIX_EPOCH};

/// 9999-12-31T23:59:59Z: the last instant an IMF-fixdate (four-digit year) can express.
pub const MAX_SECS: i64 = 253_402_300_799;

/// An IMF-fixdate is always 29 bytes: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub type HttpDate = [u8; 29];

const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Clamps a file time into what `Last-Modified` may say: not before the epoch, not past the
/// year 9999 (darkhttpd CVE-2020-25691 crashed on such times) and, per RFC 9110 §8.8.2.1,
/// never later than the response's `Date`.
pub fn clamp_last_modified(mtime: i64, now: i64) -> i64 {
    mtime.clamp(0, MAX_SECS).min(now.max(0))
}

/// Formats Unix seconds (clamped to 0..=MAX_SECS) as an IMF-fixdate.
pub fn format(secs: i64) -> HttpDate {
    let secs = secs.clamp(0, MAX_SECS);
    let c = civil(secs);
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(secs.div_euclid(86_400) + 4).rem_euclid(7) as usize]);
    two(&mut out[5..7], c.day);
    out[8..11].copy_from_slice(MONTHS[(c.month - 1) as usize]);
    two(&mut out[12..14], (c.year / 100) as u32);
    two(&mut out[14..16], (c.year % 100) as u32);
    two(&mut out[17..19], c.hour);
    two(&mut out[20..22], c.minute);
    two(&mut out[23..25], c.second);
    out
}

/// A UTC calendar time, for the numeric formats of the logs and listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

/// Unix seconds (clamped to 0..=MAX_SECS) as a UTC calendar time.
pub fn civil(secs: i64) -> Civil {
    let secs = secs.clamp(0, MAX_SECS);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    Civil {
        year,
        month: month as u32,
        day: day as u32,
        hour: (sod / 3600) as u32,
        minute: (sod / 60 % 60) as u32,
        second: (sod % 60) as u32,
    }
}

/// `2026-11-21` and, with `seconds`, `2026-11-21 23:17:05`; otherwise `2026-11-21 23:17`.
/// `sep` goes between date and time (`b' '` or `b'T'`).
pub fn push_numeric(buf: &mut Vec<u8>, secs: i64, sep: u8, seconds: bool) {
    let c = civil(secs);
    let mut b = *b"0000-00-00 00:00:00";
    two(&mut b[0..2], (c.year / 100) as u32);
    two(&mut b[2..4], (c.year % 100) as u32);
    two(&mut b[5..7], c.month);
    two(&mut b[8..10], c.day);
    b[10] = sep;
    two(&mut b[11..13], c.hour);
    two(&mut b[14..16], c.minute);
    two(&mut b[17..19], c.second);
    buf.extend_from_slice(if seconds { &b[..] } else { &b[..16] });
}

fn two(dst: &mut [u8], v: u32) {
    dst[0] = b'0' + (v / 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Parses an HTTP date in any of the three formats. An invalid date gives `None`, and
/// RFC 9110 §13.1.3 says the header carrying it is then ignored.
pub fn parse(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(super::trim_ows(v)).ok()?;
    let t = httpdate::parse_http_date(s).ok()?;
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    i64::try_from(d.as_secs()).ok()
}

/// The `Date` value, formatted at most once per second.
#[derive(Clone, Debug)]
pub struct DateCache {
    secs: i64,
    text: HttpDate,
}

impl DateCache {
    pub fn new(secs: i64) -> DateCache {
        DateCache {
            secs,
            text: format(secs),
        }
    }

    /// Moves the cache to `secs`; formats only when the second changed.
    pub fn update(&mut self, secs: i64) {
        if secs != self.secs {
            self.secs = secs;
            self.text = format(secs);
        }
    }

    pub fn secs(&self) -> i64 {
        self.secs
    }

    pub fn text(&self) -> &HttpDate {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(&format(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&format(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&format(MAX_SECS), b"Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(&format(i64::MAX), b"Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(&format(-1), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn parses_all_three_formats() {
        for s in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse(s.as_bytes()), Some(784_111_777), "{s}");
        }
        assert_eq!(parse(b"yesterday"), None);
        assert_eq!(parse(b"Sun, 06 Nov 1994 08:49:37 XYZ"), None);
    }

    #[test]
    fn round_trips() {
        for secs in [0, 1, 86_399, 1_700_000_000, 4_102_444_800, MAX_SECS] {
            assert_eq!(parse(&format(secs)), Some(secs));
        }
    }

    #[test]
    fn numeric() {
        let mut b = Vec::new();
        push_numeric(&mut b, 784_111_777, b'T', true);
        assert_eq!(b, b"1994-11-06T08:49:37");
        b.clear();
        push_numeric(&mut b, 784_111_777, b' ', false);
        assert_eq!(b, b"1994-11-06 08:49");
        assert_eq!(civil(MAX_SECS).year, 9999);
    }

    #[test]
    fn clamps() {
        assert_eq!(clamp_last_modified(-5, 100), 0);
        assert_eq!(clamp_last_modified(50, 100), 50);
        assert_eq!(clamp_last_modified(i64::MAX, 100), 100);
    }
}
