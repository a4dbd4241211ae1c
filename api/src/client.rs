//! The client: one HTTP/1 connection per request over the daemon's socket
//! (the daemon is local and requests are few; a pool would only keep
//! sockets open).

use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the netd daemon at {}", socket.display())]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    /// The daemon refused the request: its status and message.
    #[error("{message}")]
    Status { status: StatusCode, message: String },
    #[error("talking to the netd daemon: {0}")]
    Http(#[from] hyper::Error),
    #[error("invalid request {0}")]
    Request(#[from] http::Error),
    #[error("encode the request body: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("decode the answer to {what}: {source}")]
    Decode {
        what: String,
        source: serde_json::Error,
    },
    #[error("cannot start a runtime for the netd client: {0}")]
    Runtime(#[source] std::io::Error),
}

impl Error {
    /// The HTTP status of a refused request.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one daemon socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Send `method path` (already escaped, with any query) and return the
    /// response head with its body still to read, whatever the status.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, Error> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| Error::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection runs beside the caller until the response body is
        // read or dropped.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "netd")
            .header(
                header::USER_AGENT,
                concat!("netd-api/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(body.unwrap_or_default()))?;
        Ok(tx.send_request(req).await?)
    }

    /// Status and whole body, whatever the status.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), Error> {
        let resp = self.send(method, path, body).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }

    /// A JSON request whose 2xx answer is `T` (an empty body reads as
    /// JSON `null`); any other status is [`Error::Status`] with the
    /// daemon's message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, Error> {
        let payload = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(Error::Encode)?
            .map(Bytes::from);
        let what = format!("{method} {path}");
        let (status, bytes) = self.raw(method, path, payload).await?;
        if !status.is_success() {
            return Err(refused(status, &bytes));
        }
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|source| Error::Decode { what, source })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, Error> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A POST without a body, its answer ignored.
    pub async fn post_empty(&self, path: &str) -> Result<(), Error> {
        self.call::<serde::de::IgnoredAny>(Method::POST, path, None::<&()>)
            .await
            .map(drop)
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    /// Follow a stream of JSON lines (`/events`, `/netd/events`).
    pub async fn events(&self, path: &str) -> Result<Events, Error> {
        let resp = self.send(Method::GET, path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.into_body().collect().await?.to_bytes();
            return Err(refused(status, &bytes));
        }
        Ok(Events {
            body: resp.into_body(),
            pending: BytesMut::new(),
        })
    }
}

/// The error of a refused request: the daemon's `{"message": …}`, else the
/// body as text.
fn refused(status: StatusCode, body: &[u8]) -> Error {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    Error::Status { status, message }
}

/// An event stream, read line by line.
pub struct Events {
    body: Incoming,
    pending: BytesMut,
}

impl Events {
    /// The next non-empty line; `None` when the stream ends. Cancel-safe
    /// (callers wait on it with a timeout): a frame is kept as soon as it
    /// arrives, and a line is taken only when whole.
    pub async fn next_line(&mut self) -> Result<Option<String>, Error> {
        loop {
            while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line = self.pending.split_to(i + 1);
                let line = String::from_utf8_lossy(&line).trim().to_string();
                if !line.is_empty() {
                    return Ok(Some(line));
                }
            }
            match self.body.frame().await.transpose()? {
                Some(frame) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.pending.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A daemon stand-in on a socket in a fresh directory: answers one
    /// request with `response`, written a few bytes at a time.
    async fn serve_once(response: &'static [u8]) -> (PathBuf, tokio::task::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!(
            "netd-api-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("s");
        let l = tokio::net::UnixListener::bind(&sock).unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut b = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).await.unwrap();
                assert!(n > 0);
                head.extend_from_slice(&b[..n]);
            }
            for piece in response.chunks(3) {
                s.write_all(piece).await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        (sock, task)
    }

    #[tokio::test]
    async fn event_lines_split_anywhere_survive_timeouts() {
        let (sock, task) = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              c\r\n{\"a\":1}\n{\"b\"\r\n4\r\n:2}\n\r\n0\r\n\r\n",
        )
        .await;
        let mut ev = Client::new(&sock).events("/netd/events").await.unwrap();
        // A timeout mid-line must not lose data.
        let mut lines = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_millis(1), ev.next_line()).await {
                Err(_) => continue,
                Ok(Ok(Some(l))) => lines.push(l),
                Ok(Ok(None)) => break,
                Ok(Err(e)) => panic!("{e}"),
            }
        }
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}"]);
        task.await.unwrap();
        let _ = std::fs::remove_dir_all(sock.parent().unwrap());
    }

    #[tokio::test]
    async fn refusals_carry_status_and_message() {
        let (sock, task) = serve_once(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 24\r\n\r\n{\"message\":\"no such x\"}\n",
        )
        .await;
        let e = Client::new(&sock)
            .get::<serde_json::Value>("/netd/networks/x")
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
        assert_eq!(e.to_string(), "no such x");
        task.await.unwrap();
        let _ = std::fs::remove_dir_all(sock.parent().unwrap());
    }
}
