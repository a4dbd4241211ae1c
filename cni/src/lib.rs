//! netd's CNI plugin.
//!
//! Not built yet: the CNI 1.1 protocol is tracked by the CNI issue. The crate
//! exists so the workspace layout in `DESIGN.md` is in place.
