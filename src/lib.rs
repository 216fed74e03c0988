//! hoopguard: an open Layer-7 guard for AI agents that reach AWS and MCP servers.
//!
//! This facade re-exports the two library crates, so one dependency brings both:
//!
//! * [`core`] — the engines without tower (identity; policy, approvals, aws, mask, record and mcp
//!   as they land);
//! * [`tower`] — the layers built on them (auth, metrics, …).
//!
//! The `hoopguard` binary lives in the `hoopguard-cli` crate.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use hoopguard_core as core;
pub use hoopguard_tower as tower;
