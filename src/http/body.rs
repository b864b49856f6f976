//! Request body framing (RFC 9112 §6, §7.1): a length counter and a chunked decoder that
//! hands data to a sink and stops exactly at the end of the body, so the bytes after it (the
//! next pipelined request) are never misread. Strict CRLF and the exact chunk-line grammar:
//! lenient chunk parsing is a classic request-smuggling vector. The encoder side
//! ([`chunk_frame`], [`LAST_CHUNK`]) frames streamed response bodies of unknown length.
use super::{is_tchar, HttpError};

/// The last chunk and the empty trailer section that end a chunked body (RFC 9112 §7.1).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// One chunk of a chunked body: `HEX-SIZE CRLF data CRLF`, in one buffer of its own (the send
/// queue holds it until the socket takes it). Empty data makes no chunk: an empty chunk would
/// be the last one.
pub fn chunk_frame(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 20);
    if data.is_empty() {
        return v;
    }
    super::response::push_hex(&mut v, data.len() as u64);
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    v
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyDecoder {
    Length(u64),
    Chunked(Chunked),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunked {
    state: State,
    /// Size digits read or data bytes left in the current chunk.
    size: u64,
    digits: u8,
    /// Bytes spent on chunk extensions and trailers, which carry no data but must be bounded.
    overhead: u32,
}

/// Where the decoder is. The chunk line is `chunk-size [ chunk-ext ] CRLF` with
/// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`,
/// `chunk-ext-val = token / quoted-string` (RFC 9112 §7.1); the `Ext*` states walk it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    /// BWS after the size or a value: only `;` may follow.
    ExtSemi,
    /// After `;` and its BWS: a name must follow.
    ExtNameStart,
    ExtName,
    /// BWS after a name: `=` or `;` may follow.
    ExtNameWs,
    /// After `=` and its BWS: a token or a quoted string must follow.
    ExtValStart,
    ExtToken,
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedPair,
    /// After the closing quote.
    ExtQuotedEnd,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl State {
    fn in_ext(self) -> bool {
        use State::*;
        matches!(
            self,
            ExtSemi
                | ExtNameStart
                | ExtName
                | ExtNameWs
                | ExtValStart
                | ExtToken
                | ExtQuoted
                | ExtQuotedPair
                | ExtQuotedEnd
        )
    }
}

/// The state after byte `b` of the chunk line once the size has begun (`Size` with at least
/// one digit, or an `Ext*` state); `None` if `b` cannot come there. `\r` ends the line only
/// right after the size, a name or a value: whitespace before it is refused, as is a `;`
/// without a name.
fn ext_next(state: State, b: u8) -> Option<State> {
    use State::*;
    let ws = b == b' ' || b == b'\t';
    Some(match state {
        Size | ExtName | ExtToken | ExtQuotedEnd if b == b'\r' => SizeLf,
        Size | ExtSemi | ExtName | ExtNameWs | ExtToken | ExtQuotedEnd if b == b';' => ExtNameStart,
        Size | ExtSemi | ExtToken | ExtQuotedEnd if ws => ExtSemi,
        ExtNameStart if ws => ExtNameStart,
        ExtNameStart | ExtName if is_tchar(b) => ExtName,
        ExtName | ExtNameWs if ws => ExtNameWs,
        ExtName | ExtNameWs if b == b'=' => ExtValStart,
        ExtValStart if ws => ExtValStart,
        ExtValStart | ExtToken if is_tchar(b) => ExtToken,
        ExtValStart if b == b'"' => ExtQuoted,
        ExtQuoted if b == b'"' => ExtQuotedEnd,
        ExtQuoted if b == b'\\' => ExtQuotedPair,
        // qdtext and the escaped byte of a quoted-pair: HTAB, SP, VCHAR, obs-text (RFC 9110
        // §5.6.4); `"` and `\` as qdtext were taken above.
        ExtQuoted | ExtQuotedPair if ws || (0x21..=0x7e).contains(&b) || b >= 0x80 => ExtQuoted,
        _ => return None,
    })
}

const MAX_OVERHEAD: u32 = 16 * 1024;

impl BodyDecoder {
    pub fn chunked() -> BodyDecoder {
        BodyDecoder::Chunked(Chunked::default())
    }

    /// Decodes from `input`, passing data bytes to `sink`. Returns how many input bytes were
    /// consumed and whether the body is complete; consumption stops at the body's end.
    /// Inlined, with `Chunked::decode`, into `Conn::process` as when the decoder was smaller:
    /// out of line, requests without a body cost ~10 more instructions each (callgrind).
    #[inline(always)]
    pub fn decode(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, bool), HttpError> {
        match self {
            BodyDecoder::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                sink(&input[..n]);
                *left -= n as u64;
                Ok((n, *left == 0))
            }
            BodyDecoder::Chunked(c) => c.decode(input, sink),
        }
    }
}

fn bad(why: &'static str) -> HttpError {
    HttpError::BadRequest(why)
}

impl Chunked {
    #[inline(always)]
    fn decode(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, bool), HttpError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                let n = self.size.min((input.len() - i) as u64) as usize;
                sink(&input[i..i + n]);
                self.size -= n as u64;
                i += n;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.state = self.step(b)?;
            if self.state == State::Done {
                return Ok((i, true));
            }
        }
        Ok((i, self.state == State::Done))
    }

    /// One byte of framing (everything but chunk data).
    fn step(&mut self, b: u8) -> Result<State, HttpError> {
        use State::*;
        Ok(match (self.state, b) {
            (Size, b) if b.is_ascii_hexdigit() => {
                self.digits += 1;
                if self.digits > 16 {
                    return Err(bad("chunk size overflow"));
                }
                self.size = (self.size << 4) | u64::from((b as char).to_digit(16).unwrap_or(0));
                Size
            }
            (Size, _) if self.digits == 0 => return Err(bad("invalid chunk size")),
            // The rest of the chunk line: extensions, or its end.
            (state, b) if state == Size || state.in_ext() => {
                let next = ext_next(state, b).ok_or(if state == Size {
                    bad("invalid chunk size")
                } else {
                    bad("invalid chunk extension")
                })?;
                if next.in_ext() {
                    self.spend()?;
                }
                next
            }
            (SizeLf, b'\n') => {
                self.digits = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size,
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart | Trailer, b) if b != b'\r' && b != b'\n' => {
                self.spend()?;
                Trailer
            }
            (Trailer, b'\r') => TrailerLf,
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            _ => return Err(bad("invalid chunked framing")),
        })
    }

    fn spend(&mut self) -> Result<(), HttpError> {
        self.overhead += 1;
        if self.overhead > MAX_OVERHEAD {
            return Err(bad("chunk extensions or trailers too long"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Result<(usize, bool, Vec<u8>), HttpError>;

    /// Feeds `pieces` in order to one decoder, as reads would arrive; stops at the end of
    /// the body or at the first error.
    fn feed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut d = BodyDecoder::chunked();
        let mut data = Vec::new();
        let mut used = 0;
        for piece in pieces {
            let (n, done) = d.decode(piece, &mut |b| data.extend_from_slice(b))?;
            used += n;
            if done {
                return Ok((used, true, data));
            }
            assert_eq!(n, piece.len(), "an unfinished body takes all its input");
        }
        Ok((used, false, data))
    }

    /// Decodes `input` at once, then split in two at every offset and one byte at a time,
    /// and asserts that every way gives the same outcome (the decoder is fed arbitrary
    /// reads).
    fn run(input: &[u8]) -> Outcome {
        let whole = feed([input]);
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            assert_eq!(feed([a, b]), whole, "split at {cut}");
        }
        assert_eq!(feed(input.chunks(1)), whole, "byte at a time");
        whole
    }

    #[test]
    fn decodes_and_stops_at_the_end() {
        let input = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1";
        let (n, done, data) = run(input).unwrap();
        assert!(done);
        assert_eq!(data, b"Wikipedia");
        assert_eq!(&input[n..], b"GET / HTTP/1.1");
    }

    #[test]
    fn byte_at_a_time_matches() {
        let input = b"a\r\n0123456789\r\n0\r\n\r\n";
        let mut d = BodyDecoder::chunked();
        let mut data = Vec::new();
        for (i, b) in input.iter().enumerate() {
            let (n, done) = d
                .decode(std::slice::from_ref(b), &mut |x| data.extend_from_slice(x))
                .unwrap();
            assert_eq!(n, 1);
            assert_eq!(done, i == input.len() - 1);
        }
        assert_eq!(data, b"0123456789");
    }

    #[test]
    fn rejects_smuggling_shapes() {
        for bad in [
            &b"4\nWiki\r\n0\r\n\r\n"[..],
            b"x\r\n",
            b"\r\n",
            b"4\r\nWikiX\r\n",
            b"11111111111111111\r\n",
            b"0\r\n\n",
            b"-1\r\n",
            b"4 \n",
        ] {
            assert!(run(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn chunk_lines_follow_rfc_9112_7_1() {
        // chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
        // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
        let good: &[(&str, &[u8])] = &[
            ("no extension", b"5\r\nhello\r\n0\r\n\r\n"),
            ("name=value", b"5;name=value\r\nhello\r\n0\r\n\r\n"),
            ("BWS before ;", b"5 ;name=value\r\nhello\r\n0\r\n\r\n"),
            (
                "BWS everywhere",
                b"5\t ;\t name \t=\t value\r\nhello\r\n0\r\n\r\n",
            ),
            (
                "quoted value",
                b"5;name=\"quoted value\"\r\nhello\r\n0\r\n\r\n",
            ),
            (
                "quoted pairs",
                b"5;n=\"a \\\"b\\\" \\\\ c;d=e\"\r\nhello\r\n0\r\n\r\n",
            ),
            ("empty quoted", b"5;n=\"\"\r\nhello\r\n0\r\n\r\n"),
            (
                "obs-text quoted",
                b"5;n=\"caf\xc3\xa9\"\r\nhello\r\n0\r\n\r\n",
            ),
            ("several", b"5;a=b;c\r\nhello\r\n0\r\n\r\n"),
            ("quoted then more", b"5;a=\"b\" ;c=d\r\nhello\r\n0\r\n\r\n"),
            ("name only", b"5;a\r\nhello\r\n0\r\n\r\n"),
            ("name BWS ;", b"5;a ;b\r\nhello\r\n0\r\n\r\n"),
            (
                "every tchar",
                b"5;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n",
            ),
            ("last chunk ext", b"5\r\nhello\r\n0;a=\"b\"\r\n\r\n"),
            ("leading zeros", b"005\r\nhello\r\n000\r\n\r\n"),
        ];
        for (name, body) in good {
            let mut input = body.to_vec();
            input.extend_from_slice(b"NEXT");
            let (n, done, data) = run(&input).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert!(done, "{name}");
            assert_eq!(&input[n..], b"NEXT", "{name}");
            assert_eq!(data, b"hello", "{name}");
        }
        let ext = HttpError::BadRequest("invalid chunk extension");
        let size = HttpError::BadRequest("invalid chunk size");
        let bad: &[(&str, &[u8], HttpError)] = &[
            ("bare ;", b"5;\r\nhello\r\n0\r\n\r\n", ext),
            ("; then BWS only", b"5; \r\nhello\r\n0\r\n\r\n", ext),
            ("; ;", b"5;;a\r\nhello\r\n0\r\n\r\n", ext),
            ("trailing ;", b"5;a;\r\nhello\r\n0\r\n\r\n", ext),
            ("name not a token", b"5;bad[=x\r\nhello\r\n0\r\n\r\n", ext),
            ("name starts with =", b"5;=x\r\nhello\r\n0\r\n\r\n", ext),
            ("space after size", b"5 \r\nhello\r\n0\r\n\r\n", ext),
            ("tab after size", b"5\t\r\nhello\r\n0\r\n\r\n", ext),
            ("space inside size", b"5 5\r\nhello\r\n0\r\n\r\n", ext),
            ("space after name", b"5;a \r\nhello\r\n0\r\n\r\n", ext),
            ("space after value", b"5;a=b \r\nhello\r\n0\r\n\r\n", ext),
            (
                "space after quoted",
                b"5;a=\"b\" \r\nhello\r\n0\r\n\r\n",
                ext,
            ),
            ("empty value", b"5;a=\r\nhello\r\n0\r\n\r\n", ext),
            ("value not a token", b"5;a=b/c\r\nhello\r\n0\r\n\r\n", ext),
            ("two =", b"5;a==b\r\nhello\r\n0\r\n\r\n", ext),
            ("text after quote", b"5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", ext),
            ("unterminated quote", b"5;a=\"b\r\nhello\r\n0\r\n\r\n", ext),
            (
                "control in quote",
                b"5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n",
                ext,
            ),
            ("DEL in quote", b"5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n", ext),
            ("LF in extension", b"5;a\nhello\r\n0\r\n\r\n", ext),
            ("NUL in extension", b"5;a\x00\r\nhello\r\n0\r\n\r\n", ext),
            ("bare ; on last chunk", b"5\r\nhello\r\n0;\r\n\r\n", ext),
            ("space before size", b" 5\r\nhello\r\n0\r\n\r\n", size),
            ("; before size", b";a\r\nhello\r\n0\r\n\r\n", size),
            ("size then letter", b"5g\r\nhello\r\n0\r\n\r\n", size),
        ];
        for (name, input, want) in bad {
            assert_eq!(run(input).err(), Some(*want), "{name}");
            assert_eq!(want.status(), 400, "{name}");
        }
    }

    #[test]
    fn extensions_are_bounded() {
        let mut input = b"1;a=".to_vec();
        input.extend_from_slice(&vec![b'x'; MAX_OVERHEAD as usize]);
        assert_eq!(
            feed([&input[..]]).err(),
            Some(HttpError::BadRequest(
                "chunk extensions or trailers too long"
            ))
        );
    }

    #[test]
    fn frames_decode_back() {
        let mut wire = Vec::new();
        for piece in [&b"hello"[..], b"", &[7u8; 300][..]] {
            wire.extend_from_slice(&chunk_frame(piece));
        }
        wire.extend_from_slice(LAST_CHUNK);
        assert!(wire.starts_with(b"5\r\nhello\r\n12c\r\n"));
        let (n, done, data) = run(&wire).unwrap();
        assert_eq!((n, done), (wire.len(), true));
        assert_eq!(data, [&b"hello"[..], &[7u8; 300][..]].concat());
    }

    #[test]
    fn length_stops_at_the_end() {
        let mut d = BodyDecoder::Length(3);
        let (n, done) = d.decode(b"abcdef", &mut |_| {}).unwrap();
        assert_eq!((n, done), (3, true));
    }
}
