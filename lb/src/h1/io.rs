//! Buffers and timed reads/writes for the HTTP/1 path.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A read buffer: bytes `start..end` of `data` are unhandled. It grows
/// (up to `limit`) only while a head does not fit.
pub struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    limit: usize,
}

impl Buf {
    pub fn new(size: usize, limit: usize) -> Buf {
        Buf {
            data: vec![0; size],
            start: 0,
            end: 0,
            limit: limit.max(size),
        }
    }

    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Room to read into: compacts, or grows when full (up to the limit;
    /// at the limit the room is empty and the caller sees a full buffer).
    fn spare(&mut self) -> &mut [u8] {
        if self.end == self.data.len() && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.data.len() && self.data.len() < self.limit {
            let n = (self.data.len() * 2).min(self.limit);
            self.data.resize(n, 0);
        }
        &mut self.data[self.end..]
    }
}

/// Why a read or write failed.
#[derive(Debug)]
pub enum IoFail {
    Io(std::io::Error),
    TimedOut,
    Eof,
    Bad(String),
}

impl std::fmt::Display for IoFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IoFail::Io(e) => write!(f, "{e}"),
            IoFail::TimedOut => write!(f, "timed out"),
            IoFail::Eof => write!(f, "connection closed"),
            IoFail::Bad(s) => write!(f, "{s}"),
        }
    }
}

/// A reusable timer, armed only when an operation has to wait: the
/// common read or write that is ready at once costs none. A deadline set a
/// moment ago for the same wait is kept rather than moved (moving it costs
/// a trip through the timer wheel on every request): a wait ends between
/// 1 and 1 1/8 times the timeout after it began.
pub struct Timer {
    sleep: Pin<Box<Sleep>>,
    deadline: tokio::time::Instant,
}

impl Timer {
    pub fn new() -> Timer {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        Timer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            deadline,
        }
    }

    /// Poll `f` until it is ready, failing with TimedOut after `wait` of
    /// waiting.
    async fn run<T>(
        &mut self,
        wait: Duration,
        mut f: impl FnMut(&mut Context<'_>) -> Poll<Result<T, IoFail>>,
    ) -> Result<T, IoFail> {
        let mut armed = false;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = f(cx) {
                return Poll::Ready(r);
            }
            if !armed {
                // Set 1/16 late, the deadline serves every wait that
                // starts within the next 1/16 of the timeout.
                let want = tokio::time::Instant::now() + wait;
                if self.deadline < want || self.deadline > want + wait / 8 {
                    let d = want + wait / 16;
                    self.sleep.as_mut().reset(d);
                    self.deadline = d;
                }
                armed = true;
            }
            match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(IoFail::TimedOut)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }
}

/// Read once into `buf`; 0 is EOF (or a full buffer at its limit).
pub async fn read<R: AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    buf: &mut Buf,
    timer: &mut Timer,
    wait: Duration,
) -> Result<usize, IoFail> {
    let n = timer
        .run(wait, |cx| {
            let spare = buf.spare();
            if spare.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let mut rb = ReadBuf::new(spare);
            match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(rb.filled().len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(IoFail::Io(e))),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
    buf.end += n;
    Ok(n)
}

/// Write all of `data` and flush.
pub async fn write_all<W: AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    data: &[u8],
    timer: &mut Timer,
    wait: Duration,
) -> Result<(), IoFail> {
    let mut pos = 0;
    timer
        .run(wait, |cx| {
            while pos < data.len() {
                match Pin::new(&mut *w).poll_write(cx, &data[pos..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(IoFail::Io(std::io::ErrorKind::WriteZero.into())));
                    }
                    Poll::Ready(Ok(n)) => pos += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(IoFail::Io(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Pin::new(&mut *w).poll_flush(cx).map_err(IoFail::Io)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_times_out_once_and_the_timer_serves_again() {
        let (mut quiet, mut other) = tokio::io::duplex(64);
        let mut timer = Timer::new();
        let mut buf = Buf::new(16, 16);
        for wait in [
            Duration::from_millis(80),
            Duration::from_millis(80),
            Duration::from_millis(20),
        ] {
            let t = std::time::Instant::now();
            let r = read(&mut quiet, &mut buf, &mut timer, wait).await;
            assert!(matches!(r, Err(IoFail::TimedOut)), "{r:?}");
            let took = t.elapsed();
            // (Only a generous upper bound: these machines are shared.)
            assert!(
                took >= wait && took < Duration::from_secs(5),
                "{wait:?}: {took:?}"
            );
        }
        // Ready at once: no waiting, whatever the deadline.
        tokio::io::AsyncWriteExt::write_all(&mut other, b"hi")
            .await
            .unwrap();
        let n = read(&mut quiet, &mut buf, &mut timer, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(&buf.filled()[..n], b"hi");
    }

    #[test]
    fn buffer_compacts_and_grows_to_its_limit() {
        let mut b = Buf::new(4, 8);
        b.spare()[..4].copy_from_slice(b"abcd");
        b.end += 4;
        b.consume(2);
        assert_eq!(b.filled(), b"cd");
        // full at the end: compacted, not grown
        assert_eq!(b.spare().len(), 2);
        assert_eq!(b.filled(), b"cd");
        b.spare()[..2].copy_from_slice(b"ef");
        b.end += 2;
        // full from the start: grown to the limit
        assert_eq!(b.spare().len(), 4);
        let n = b.spare().len();
        b.end += n;
        assert!(b.spare().is_empty());
        b.consume(100);
        assert!(b.is_empty());
    }
}
