//! netd's service-alias load balancer.
//!
//! Not built yet: the proxy on pingora is tracked by the load-balancer issue.
//! The crate exists so the workspace layout in `DESIGN.md` is in place.
