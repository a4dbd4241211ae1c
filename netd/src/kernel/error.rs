//! What the kernel seams return when the kernel refuses or fails: a kind
//! the operations can decide on, and the cause kept as the source.

use crate::kernel::hostport::HostPortError;

pub type KResult<T> = std::result::Result<T, KernelError>;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A link netd would make as a bridge exists and is something else:
    /// netd never adopts or repurposes a link it did not make.
    #[error("interface {name} already exists on the host and is not a bridge (it is a {kind})")]
    NotABridge { name: String, kind: String },
    /// A link netd would make as an overlay network's VXLAN device exists
    /// and is something else: refused as a bridge's name would be.
    #[error(
        "interface {name} already exists on the host and is not a VXLAN device (it is a {kind})"
    )]
    NotAVxlan { name: String, kind: String },
    /// A namespace netd would create exists already.
    #[error("network namespace {path} already exists")]
    NamespaceExists { path: String },
    /// A published port would take an address or port of the host's.
    #[error(transparent)]
    HostPort(#[from] HostPortError),
    /// Anything else the kernel (netlink, nftables, /proc, mounts) refused;
    /// `message` is the whole chain of what was being done, for people.
    #[error("{message}")]
    Failed {
        message: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl KernelError {
    /// The name netd wanted belongs to something it did not make: nothing
    /// was made, and nothing of that name may be removed.
    pub fn is_taken(&self) -> bool {
        matches!(
            self,
            KernelError::NotABridge { .. }
                | KernelError::NotAVxlan { .. }
                | KernelError::NamespaceExists { .. }
        )
    }

    /// A failure described by `message` alone (the fake's injected faults).
    pub fn failed(message: impl Into<String>) -> KernelError {
        let message = message.into();
        KernelError::Failed {
            source: message.clone().into(),
            message,
        }
    }
}

/// The adapters build their context chains with anyhow; at the seam the
/// chain becomes the message and the error itself the source. A typed
/// error the adapters raised on purpose comes out as itself.
impl From<anyhow::Error> for KernelError {
    fn from(e: anyhow::Error) -> KernelError {
        match e.downcast::<KernelError>() {
            Ok(k) => k,
            Err(e) => KernelError::Failed {
                message: format!("{e:#}"),
                source: e.into(),
            },
        }
    }
}
