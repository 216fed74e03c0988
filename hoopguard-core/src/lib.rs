//! hoopguard's engines, free of tower and HTTP servers.
//!
//! * [`identity`]: who is calling — OIDC/JWT verification with discovery, JWKS caching, a
//!   verified-token cache, and the local development issuer.
//! * [`mask`]: masking secrets and personal data, whole or streaming, at GB/s.
//! * [`policy`]: allow, deny or approve each call, from ordered rules compiled into an index.
//! * [`approvals`]: human approvals (once or time-window grants), SQLite store, webhooks.
//! * [`record`]: hash-chained session recordings with crash recovery (the start of issue #6).
//! * [`aws`]: pseudo-credentials and caller SigV4 verification (the start of issue #4).
//! * [`mcp`]: MCP JSON-RPC messages, server-sent events and tool pins.
//! * [`duration`]: the `15m` / `1h30m` duration format used across the configuration.
//!
//! The policy, approvals, aws, mask, record and mcp engines join this crate as they land; each
//! keeps a small public surface and a shallow module tree.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod approvals;
pub mod aws;
pub mod duration;
pub mod identity;
mod keyfile;
pub mod mask;
pub mod mcp;
pub mod policy;
pub mod record;
