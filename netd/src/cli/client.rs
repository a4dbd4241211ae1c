//! A small blocking HTTP/1.1 client for the daemon's Unix socket. The CLI
//! makes one request per command, so a runtime and a client library would
//! cost more start-up time than the request itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub struct Client {
    socket: PathBuf,
}

/// A response whose status was not 2xx: the daemon's message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        Client {
            socket: socket.to_path_buf(),
        }
    }

    fn connect(&self) -> Result<UnixStream> {
        UnixStream::connect(&self.socket).with_context(|| {
            format!(
                "cannot reach the netd daemon at {} (is `netd daemon` running? set NETD_SOCKET or --socket if it listens elsewhere)",
                self.socket.display()
            )
        })
    }

    /// Send a request and return status and body.
    pub fn raw(&self, method: &str, path: &str, body: Option<&[u8]>) -> Result<(u16, Vec<u8>)> {
        let mut s = self.connect()?;
        let body = body.unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: netd\r\nUser-Agent: netd-cli\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).context("send request")?;
        s.write_all(body).context("send request body")?;
        let mut r = BufReader::new(s);
        let mut status_line = String::new();
        r.read_line(&mut status_line).context("read response")?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow!("malformed response from daemon: {status_line:?}"))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).context("read response headers")? == 0 {
                break;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.parse().ok();
                } else if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.eq_ignore_ascii_case("chunked")
                {
                    chunked = true;
                }
            }
        }
        let mut out = Vec::new();
        if chunked {
            read_chunked(&mut r, |chunk| {
                out.extend_from_slice(chunk);
                Ok(())
            })?;
        } else if let Some(n) = length {
            out.resize(n, 0);
            r.read_exact(&mut out).context("read response body")?;
        } else {
            r.read_to_end(&mut out).context("read response body")?;
        }
        Ok((status, out))
    }

    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let payload = body.map(serde_json::to_vec).transpose()?;
        let (status, bytes) = self.raw(method, path, payload.as_deref())?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ApiError { status, message }.into());
        }
        if bytes.is_empty() {
            return serde_json::from_value(Value::Null).context("empty response");
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("decode response of {method} {path}"))
    }

    /// Follow a streaming response, handing each line to `f`.
    pub fn stream_lines(&self, path: &str, mut f: impl FnMut(&str) -> Result<()>) -> Result<()> {
        let mut s = self.connect()?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: netd\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes())?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line)?;
        if !line.contains(" 200 ") {
            bail!("daemon answered {}", line.trim());
        }
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                break;
            }
        }
        let mut pending = Vec::new();
        read_chunked(&mut r, |chunk| {
            pending.extend_from_slice(chunk);
            while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
                let l: Vec<u8> = pending.drain(..=pos).collect();
                f(String::from_utf8_lossy(&l).trim_end())?;
            }
            Ok(())
        })
    }
}

fn read_chunked(r: &mut impl BufRead, mut f: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    loop {
        let mut size = String::new();
        if r.read_line(&mut size)? == 0 {
            return Ok(());
        }
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| anyhow!("malformed chunk size {size:?}"))?;
        if n == 0 {
            return Ok(());
        }
        let mut buf = vec![0; n];
        r.read_exact(&mut buf)?;
        f(&buf)?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
    }
}
