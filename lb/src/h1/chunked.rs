//! Chunked transfer coding, decoded byte by byte so that a chunk header or
//! trailer split across reads needs no buffering of its own.

use std::fmt;

/// Longest chunk-size line (extensions included) and trailer section.
const LINE_LIMIT: usize = 4096;
const TRAILER_LIMIT: usize = 64 * 1024;

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
    /// After the size: extensions up to the line end.
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
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
        match self.state {
            Size => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                    if self.digits >= 16 {
                        return Err(ChunkError("chunk size too large"));
                    }
                    self.size = self.size * 16 + d;
                    self.digits += 1;
                }
                _ if self.digits == 0 => return Err(ChunkError("no chunk size")),
                b';' | b' ' | b'\t' => {
                    self.state = Ext;
                    self.line = 0;
                }
                b'\r' => self.state = SizeLf,
                b'\n' => self.after_size(),
                _ => return Err(ChunkError("bad chunk size")),
            },
            Ext => match b {
                b'\r' => self.state = SizeLf,
                b'\n' => self.after_size(),
                _ => {
                    self.line += 1;
                    if self.line > LINE_LIMIT {
                        return Err(ChunkError("chunk extension too long"));
                    }
                }
            },
            SizeLf => match b {
                b'\n' => self.after_size(),
                _ => return Err(ChunkError("no LF after chunk size")),
            },
            DataCr => match b {
                b'\r' => self.state = DataLf,
                b'\n' => self.next_chunk(),
                _ => return Err(ChunkError("no CRLF after chunk data")),
            },
            DataLf => match b {
                b'\n' => self.next_chunk(),
                _ => return Err(ChunkError("no LF after chunk data")),
            },
            TrailerStart => match b {
                b'\r' => self.state = EndLf,
                b'\n' => self.state = Done,
                _ => {
                    self.trailer_byte()?;
                    self.state = TrailerLine;
                }
            },
            TrailerLine => match b {
                b'\r' => self.state = TrailerLf,
                b'\n' => self.state = TrailerStart,
                _ => self.trailer_byte()?,
            },
            TrailerLf => match b {
                b'\n' => self.state = TrailerStart,
                _ => return Err(ChunkError("no LF after trailer")),
            },
            EndLf => match b {
                b'\n' => self.state = Done,
                _ => return Err(ChunkError("no LF at the end")),
            },
            Data | Done => {}
        }
        Ok(())
    }

    fn trailer_byte(&mut self) -> Result<(), ChunkError> {
        self.trailer += 1;
        if self.trailer > TRAILER_LIMIT {
            return Err(ChunkError("trailer too long"));
        }
        Ok(())
    }

    fn after_size(&mut self) {
        self.state = if self.size == 0 {
            State::TrailerStart
        } else {
            State::Data
        };
    }

    fn next_chunk(&mut self) {
        self.state = State::Size;
        self.size = 0;
        self.digits = 0;
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
        // bare LFs are tolerated
        assert!(run(true, b"3\nabc\n0\n\n", &[]).unwrap().2);
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
