//! Request body framing (RFC 9112 §6, §7.1): a length counter and a chunked decoder that
//! hands data to a sink and stops exactly at the end of the body, so the bytes after it (the
//! next pipelined request) are never misread. Strict CRLF: lenient chunk parsing is a
//! classic request-smuggling vector.
use super::HttpError;

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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    /// After the size: optional whitespace and `;ext` up to CR.
    Ext,
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

const MAX_OVERHEAD: u32 = 16 * 1024;

impl BodyDecoder {
    pub fn chunked() -> BodyDecoder {
        BodyDecoder::Chunked(Chunked::default())
    }

    /// Decodes from `input`, passing data bytes to `sink`. Returns how many input bytes were
    /// consumed and whether the body is complete; consumption stops at the body's end.
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
            (Size | Ext, b'\r') => SizeLf,
            (Size | Ext, b';' | b' ' | b'\t') | (Ext, _) => {
                if b == b'\n' || b == 0 {
                    return Err(bad("invalid chunk extension"));
                }
                self.spend()?;
                Ext
            }
            (Size, _) => return Err(bad("invalid chunk size")),
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

    fn run(input: &[u8]) -> Result<(usize, bool, Vec<u8>), HttpError> {
        let mut d = BodyDecoder::chunked();
        let mut data = Vec::new();
        let (n, done) = d.decode(input, &mut |b| data.extend_from_slice(b))?;
        Ok((n, done, data))
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
    fn length_stops_at_the_end() {
        let mut d = BodyDecoder::Length(3);
        let (n, done) = d.decode(b"abcdef", &mut |_| {}).unwrap();
        assert_eq!((n, done), (3, true));
    }
}
