//! netd's embedded DNS engine.
//!
//! Not built yet: the record table, round-robin and forwarding are tracked by
//! the DNS issue. The crate exists so the workspace layout in
//! `DESIGN.md` is in place and later work lands beside the rest.
