//! hoopguard's engines, free of tower and HTTP servers.
//!
//! * [`identity`]: who is calling — OIDC/JWT verification with discovery, JWKS caching, a
//!   verified-token cache, and the local development issuer.
//! * [`mask`]: masking secrets and personal data, whole or streaming, at GB/s.
//! * [`policy`]: allow, deny or approve each call, from ordered rules compiled into an index.
//! * [`approvals`]: human approvals (once or time-window grants), SQLite store, webhooks.
//! * [`shared`]: state replicas share in PostgreSQL (approvals, revocations).
//! * [`record`]: hash-chained session recordings with crash recovery, retention, an index and
//!   signed digests.
//! * [`aws`]: pseudo-credentials, caller SigV4 verification, classification from the botocore
//!   models and the Service Authorization Reference, the approval binding, brokers, re-signing.
//! * [`mcp`]: MCP JSON-RPC messages, server-sent events and tool pins.
//! * [`json`]: JSON parsed the one way every reader reads it (duplicate keys refused).
//! * [`duration`]: the `15m` / `1h30m` duration format used across the configuration.
//!
//! # Cargo features
//!
//! All on by default; with `default-features = false` the crate is the masking engine, policy,
//! approvals (over an `ApprovalStore` of your own), recordings (without the index) and MCP messages, with none of the
//! AWS SDK, SQLite or an HTTP client.
//!
//! * `aws`: the [`aws`] module (pulls in aws-sigv4, aws-sdk-sts, aws-config).
//! * `oidc`: token verification and the development issuer in [`identity`] (jsonwebtoken,
//!   reqwest); without it `identity` holds only [`Identity`](identity::Identity).
//! * `sqlite`: the SQLite approvals store and the recordings [`Index`](record::Index)
//!   (bundled SQLite).
//! * `webhooks`: approval notifications over HTTP (reqwest).
//! * `postgres`: the [`shared`] store replicas share: approvals and revocations in PostgreSQL
//!   (tokio-postgres, deadpool-postgres).
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

pub mod approvals;
pub mod audit;
#[cfg(feature = "aws")]
pub mod aws;
pub mod duration;
#[cfg(feature = "aws")]
#[doc(hidden)]
pub mod fuzz;
pub mod identity;
pub mod json;
#[cfg(any(feature = "aws", feature = "oidc"))]
mod keyfile;
pub mod mask;
pub mod mcp;
pub mod policy;
pub mod record;
#[cfg(feature = "postgres")]
pub mod shared;
