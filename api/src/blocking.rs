//! The same client for synchronous callers (the CLI, the test harness): each
//! call runs on a current-thread runtime owned by the client, so no thread
//! is started (the CLI enters namespaces after a request, which needs a
//! single-threaded process).

use std::path::PathBuf;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

pub struct Client {
    inner: crate::Client,
    rt: tokio::runtime::Runtime,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Result<Client, Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        Ok(Client {
            inner: crate::Client::new(socket),
            rt,
        })
    }

    pub fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), Error> {
        self.rt.block_on(self.inner.raw(method, path, body))
    }

    pub fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, Error> {
        self.rt.block_on(self.inner.call(method, path, body))
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.rt.block_on(self.inner.get(path))
    }

    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, Error> {
        self.rt.block_on(self.inner.post(path, body))
    }

    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.rt.block_on(self.inner.delete(path))
    }

    /// Follow a stream of JSON lines, handing each to `f` until the stream
    /// ends or `f` fails.
    pub fn stream_lines<E: From<Error>>(
        &self,
        path: &str,
        mut f: impl FnMut(&str) -> Result<(), E>,
    ) -> Result<(), E> {
        self.rt.block_on(async {
            let mut events = self.inner.events(path).await?;
            while let Some(line) = events.next_line().await? {
                f(&line)?;
            }
            Ok(())
        })
    }
}
