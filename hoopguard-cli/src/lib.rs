//! The `hoopguard` binary's library half: configuration, the gateway's listeners and the
//! subcommands, so they can be tested without spawning a process.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod admin;
pub mod approvals_cli;
mod aws;
pub mod config;
pub mod explain;
mod listen;
mod mcp;
pub mod serve;
pub mod sessions_cli;
pub mod telemetry;
mod upstream;
pub mod wrap;
