//! Chunked transfer coding, decoded byte by byte so that a chunk header or
//! trailer split across reads needs no buffering of its own.
//!
//! The framing is checked to the letter of RFC 9112 section 7.1 (CRLF line
//! ends, chunk extensions and trailer fields by their grammar) because it is
//! passed on as it came: a member must not be able to read it differently.

use std::fmt;

/// Longest chunk-size line (extensions included) and trailer section.
const LINE_LIMIT: usize = 4096;
const TRAILER_LIMIT: usize = 64 * 1024;
/// Largest chunk: a member that reads the size into 32 bits must not see
/// a different one.
pub const MAX_CHUNK: u64 = (1 << 31) - 1;
/// Most hex digits of a chunk size (leading zeros included).
const MAX_DIGITS: u32 = 16;

#[derive(Debug, PartialEq, Eq)]
pub struct ChunkError(&'static str);

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad chunked body: {}", self.0)
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the chunk size (hex digits so far in `size`).
    #[default]
    Size,
    /// Whitespace after the size or an extension, before a `;`.
    ExtBws,
    /// After `;`: whitespace, then an extension name.
    ExtNameStart,
    ExtName,
    /// Whitespace after an extension name, before `=` or `;`.
    ExtAfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    ExtValStart,
    ExtValToken,
    ExtQuoted,
    ExtQuotedEsc,
    ExtAfterQuoted,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// Where a chunked body stands.
#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
    /// Chunk size being read, then data bytes left in the chunk.
    size: u64,
    digits: u32,
    line: usize,
    trailer: usize,
    /// Pass on only the data (for an HTTP/1.0 client), not the framing.
    decode: bool,
}

/// RFC 9110 `tchar`.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A field value or quoted-pair byte: VCHAR, obs-text, SP, HTAB.
fn field_byte(b: u8) -> bool {
    ws(b) || (0x21..=0x7e).contains(&b) || b >= 0x80
}

impl Chunked {
    pub fn dechunking(decode: bool) -> Chunked {
        Chunked {
            decode,
            ..Chunked::default()
        }
    }

    /// Take bytes of `input` up to the end of the body, appending to `out`
    /// the bytes to pass on (framing included unless decoding). Returns the
    /// bytes taken and whether the body is complete.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), ChunkError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let n = (input.len() - i).min(self.size.min(usize::MAX as u64) as usize);
                if self.decode {
                    out.extend_from_slice(&input[i..i + n]);
                }
                self.size -= n as u64;
                i += n;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.step(b)?;
        }
        if !self.decode {
            out.extend_from_slice(&input[..i]);
        }
        Ok((i, self.state == State::Done))
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        use State::*;
        if matches!(
            self.state,
            ExtBws
                | ExtNameStart
                | ExtName
                | ExtAfterName
                | ExtValStart
                | ExtValToken
                | ExtQuoted
                | ExtQuotedEsc
                | ExtAfterQuoted
        ) {
            self.line += 1;
            if self.line > LINE_LIMIT {
                return Err(ChunkError("chunk extension too long"));
            }
        }
        self.state = match (self.state, b) {
            (Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                self.digits += 1;
                self.size = self.size * 16 + d;
                if self.digits > MAX_DIGITS || self.size > MAX_CHUNK {
                    return Err(ChunkError("chunk size too large"));
                }
                Size
            }
            (Size, _) if self.digits == 0 => return Err(ChunkError("no chunk size")),
            (Size, b';') => {
                self.line = 0;
                ExtNameStart
            }
            (Size, b) if ws(b) => {
                self.line = 0;
                ExtBws
            }
            (Size | ExtName | ExtValToken | ExtAfterQuoted, b'\r') => SizeLf,
            (Size, _) => return Err(ChunkError("bad chunk size")),
            (ExtBws, b) if ws(b) => ExtBws,
            (ExtBws | ExtName | ExtAfterName | ExtValToken | ExtAfterQuoted, b';') => ExtNameStart,
            (ExtNameStart, b) if ws(b) => ExtNameStart,
            (ExtNameStart | ExtName, b) if tchar(b) => ExtName,
            (ExtName | ExtAfterName, b) if ws(b) => ExtAfterName,
            (ExtName | ExtAfterName, b'=') => ExtValStart,
            (ExtValStart, b) if ws(b) => ExtValStart,
            (ExtValStart | ExtValToken, b) if tchar(b) => ExtValToken,
            (ExtValStart, b'"') => ExtQuoted,
            (ExtValToken | ExtAfterQuoted, b) if ws(b) => ExtBws,
            (ExtQuoted, b'"') => ExtAfterQuoted,
            (ExtQuoted, b'\\') => ExtQuotedEsc,
            (ExtQuoted | ExtQuotedEsc, b) if field_byte(b) => ExtQuoted,
            (
                ExtBws | ExtNameStart | ExtName | ExtAfterName | ExtValStart | ExtValToken
                | ExtQuoted | ExtQuotedEsc | ExtAfterQuoted,
                _,
            ) => return Err(ChunkError("bad chunk extension")),
            (SizeLf, b'\n') => {
                if self.size == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (SizeLf, _) => return Err(ChunkError("no LF after CR of the chunk size")),
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(ChunkError("no CRLF after chunk data")),
            (DataLf, b'\n') => {
                self.size = 0;
                self.digits = 0;
                Size
            }
            (DataLf, _) => return Err(ChunkError("no LF after chunk data")),
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, b) if tchar(b) => {
                self.trailer_byte()?;
                TrailerName
            }
            (TrailerStart, _) => return Err(ChunkError("bad trailer field")),
            (TrailerName, b) if tchar(b) => {
                self.trailer_byte()?;
                TrailerName
            }
            (TrailerName, b':') => {
                self.trailer_byte()?;
                TrailerValue
            }
            (TrailerName, _) => return Err(ChunkError("bad trailer field name")),
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, b) if field_byte(b) => {
                self.trailer_byte()?;
                TrailerValue
            }
            (TrailerValue, _) => return Err(ChunkError("bad trailer field value")),
            (TrailerLf, b'\n') => TrailerStart,
            (TrailerLf, _) => return Err(ChunkError("no LF after trailer field")),
            (EndLf, b'\n') => Done,
            (EndLf, _) => return Err(ChunkError("no LF at the end")),
            (Data | Done, _) => self.state,
        };
        Ok(())
    }

    fn trailer_byte(&mut self) -> Result<(), ChunkError> {
        self.trailer += 1;
        if self.trailer > TRAILER_LIMIT {
            return Err(ChunkError("trailer too long"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";

    /// Feed `input` in pieces cut at `cuts`; returns (passed on, taken).
    fn run(
        decode: bool,
        input: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut c = Chunked::dechunking(decode);
        let mut out = Vec::new();
        let mut taken = 0;
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let (n, done) = c.feed(&input[last..cut], &mut out)?;
            taken += n;
            if done {
                return Ok((out, taken, true));
            }
            assert_eq!(n, cut - last, "took less without finishing");
            last = cut;
        }
        Ok((out, taken, false))
    }

    #[test]
    fn passes_through_and_decodes_at_every_split() {
        let mut input = BODY.to_vec();
        input.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        for cut in 0..=input.len() {
            let (out, taken, done) = run(false, &input, &[cut]).unwrap();
            assert!(done, "cut {cut}");
            assert_eq!(taken, BODY.len(), "cut {cut}");
            assert_eq!(out, BODY, "cut {cut}");
            let (out, _, done) = run(true, &input, &[cut]).unwrap();
            assert!(done);
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "cut {cut}");
        }
        // one byte at a time
        let cuts: Vec<usize> = (1..BODY.len()).collect();
        assert_eq!(
            run(true, BODY, &cuts).unwrap().0,
            b"helloabcdefghijklmnopqrstuvwxyz"
        );
    }

    #[test]
    fn incomplete_and_empty_bodies() {
        assert_eq!(
            run(false, b"0\r\n\r\n", &[]).unwrap(),
            (b"0\r\n\r\n".to_vec(), 5, true)
        );
        let (_, _, done) = run(false, b"5\r\nhel", &[]).unwrap();
        assert!(!done);
    }

    #[test]
    fn extensions_and_trailers_by_their_grammar() {
        for good in [
            &b"5;a\r\nhello\r\n0\r\n\r\n"[..],
            b"5 ; a = b ; c=\"d\\\"e\" ;f\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\x80 \t\"\r\nhello\r\n0;last\r\nX-T: 1\r\nY:\r\n\r\n",
            b"0000000000000005\r\nhello\r\n0\r\n\r\n",
            b"7fffffff\r\n",
        ] {
            let r = run(false, good, &[]);
            assert!(r.is_ok(), "{:?}: {r:?}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn rejects_what_a_member_could_read_differently() {
        for bad in [
            // bare LF or CR in the framing
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabc\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nX: 1\n\r\n",
            b"3\rabc",
            // a NUL, a control byte or a line end in an extension
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\x00\"\r\nhello\r\n",
            b"5;a=\x01\r\n",
            b"5;a=\"b\nc\"\r\n",
            b"5;\r\n",
            b"5;=b\r\n",
            b"5;a=\r\n",
            b"5;a=b c\r\n",
            b"5 \r\n",
            // sizes: signs, prefixes, spaces, too many digits, too big
            b"+5\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b" 5\r\n",
            b"5\t\r\n",
            b"00000000000000005\r\n",
            b"80000000\r\n",
            b"ffffffffffffffff\r\n",
            b"10000000000000005\r\n",
            // trailers: obs-fold, no colon, space before the colon, NUL
            b"0\r\nX: 1\r\n folded\r\n\r\n",
            b"0\r\nX 1\r\n\r\n",
            b"0\r\nX : 1\r\n\r\n",
            b"0\r\nX: a\x00b\r\n\r\n",
            b"0\r\n: 1\r\n\r\n",
        ] {
            assert!(
                run(false, bad, &[]).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rejects_bad_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloX\r\n",
            b"3\rX",
            b"11111111111111111\r\n",
            b"0\r\n\rX",
        ] {
            assert!(
                run(false, bad, &[]).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'a', LINE_LIMIT + 1));
        assert!(run(false, &long, &[]).is_err());
    }
}
