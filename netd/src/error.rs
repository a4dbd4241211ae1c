//! One error type for the operations, shaped by what the caller can do about
//! it: the API maps each kind to an HTTP status, the CLI to its message.

use crate::kernel::KernelError;
use crate::kernel::hostport::HostPortError;
use crate::model::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is well-formed but clashes with what exists.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The request is valid but not allowed (a predefined network).
    #[error("{0}")]
    Forbidden(String),
    /// Another process held a lock this operation needs for longer than
    /// netd waits (a lock file, or the database's write lock): nothing was
    /// changed, and trying again later may work.
    #[error("{0}")]
    Busy(String),
    /// The state database failed.
    #[error("state store: {0}")]
    Store(String),
    /// A published port would take the host's address or port.
    #[error(transparent)]
    HostPort(#[from] HostPortError),
    /// The kernel refused or failed an operation.
    #[error("kernel: {0}")]
    Kernel(#[from] KernelError),
    /// The cluster store (etcd) refused or could not be reached.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// What a caller can do about an error: the one classification that the
/// API's statuses and the CNI plugin's codes are chosen from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NotFound,
    Conflict,
    Invalid,
    Forbidden,
    Busy,
    /// A service netd depends on (the cluster store) is away: nothing was
    /// changed, and trying again once it is back will work.
    Unavailable,
    /// netd's own failure (store, kernel): nothing the request can change.
    Internal,
}

impl Error {
    pub fn kind(&self) -> Kind {
        match self {
            Error::NotFound(_) => Kind::NotFound,
            Error::Conflict(_) => Kind::Conflict,
            Error::Invalid(_) => Kind::Invalid,
            Error::Forbidden(_) => Kind::Forbidden,
            Error::Busy(_) => Kind::Busy,
            Error::HostPort(e) | Error::Kernel(KernelError::HostPort(e)) => match e {
                HostPortError::NotLocal(_) => Kind::Invalid,
                HostPortError::InUse { .. } => Kind::Conflict,
                HostPortError::Io { .. } => Kind::Internal,
            },
            // A name the request chose is taken by something netd did not make.
            Error::Kernel(
                KernelError::NotABridge { .. }
                | KernelError::NotAVxlan { .. }
                | KernelError::NamespaceExists { .. },
            ) => Kind::Conflict,
            Error::Store(_) | Error::Kernel(KernelError::Failed { .. }) => Kind::Internal,
            Error::Cluster(c) => {
                use crate::cluster::ClusterError as C;
                match c {
                    C::Unavailable { .. } => Kind::Unavailable,
                    C::Conflict(_) | C::Exhausted(_) => Kind::Conflict,
                    C::NotFound(_) => Kind::NotFound,
                    C::Corrupt { .. } => Kind::Internal,
                }
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Invalid> for Error {
    fn from(e: Invalid) -> Self {
        Error::Invalid(e.0)
    }
}

impl From<crate::ipam::IpamError> for Error {
    fn from(e: crate::ipam::IpamError) -> Self {
        use crate::ipam::IpamError::*;
        match e {
            Taken { .. } | Exhausted { .. } => Error::Conflict(e.to_string()),
            OutsideSubnet { .. } | Reserved { .. } => Error::Invalid(e.to_string()),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            // The busy timeout ran out (the store adds its path).
            Some(DatabaseBusy | DatabaseLocked) => Error::Busy(format!(
                "the state database stayed locked by another process ({e}); try again"
            )),
            _ => Error::Store(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Store(format!("corrupt record: {e}"))
    }
}

/// Kernel adapters speak anyhow internally (netlink, setns, mounts); at
/// the seam that becomes a kernel error with the full chain as its message.
pub fn kernel(e: anyhow::Error) -> Error {
    Error::Kernel(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_or_locked_database_is_busy_and_nothing_else_is() {
        for code in [rusqlite::ffi::SQLITE_BUSY, rusqlite::ffi::SQLITE_LOCKED] {
            let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
            assert!(matches!(Error::from(e), Error::Busy(_)));
        }
        let e = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        assert!(matches!(Error::from(e), Error::Store(_)));
    }

    #[test]
    fn a_taken_bridge_name_is_a_conflict_that_names_it() {
        let e = Error::from(KernelError::NotABridge {
            name: "br-x".into(),
            kind: "dummy".into(),
        });
        assert_eq!(e.kind(), Kind::Conflict);
        assert!(e.to_string().contains("br-x") && e.to_string().contains("dummy"));
    }

    #[test]
    fn host_port_problems_are_the_callers_and_keep_their_source() {
        let e = Error::from(HostPortError::NotLocal("198.51.100.2".parse().unwrap()));
        assert_eq!(e.kind(), Kind::Invalid);
        let e = Error::from(KernelError::HostPort(HostPortError::InUse {
            addr: None,
            port: 80,
            proto: crate::model::Proto::Tcp,
        }));
        assert_eq!(e.kind(), Kind::Conflict);
        assert!(std::error::Error::source(&e).is_some());
    }
}
