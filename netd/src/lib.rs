//! netd: container networking.
//!
//! Layers, each depending only on those above it:
//! [`model`] (pure types) → [`ipam`] (allocation) → [`store`] (SQLite, the one
//! source of truth) → [`plan`] (model to kernel objects, pure) → [`kernel`]
//! (netlink, namespaces) → [`ops`] (the operations every interface calls) →
//! [`daemon`] and [`cli`].

pub mod cli;
pub mod cluster;
pub mod counters;
pub mod daemon;
pub mod driver;
pub mod error;
pub mod ipam;
pub mod ipam6;
pub mod kernel;
pub mod lock;
pub mod model;
pub mod ops;
pub mod plan;
pub mod repair;
pub mod store;

pub use error::{Error, Result};
pub use ops::Netd;
