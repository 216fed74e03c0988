//! End-to-end tests against real peers and the real `hoopguard` binary, in one process.
//!
//! Run them with `bash scripts/test.sh`, which installs the peers first.

mod approvals;
mod attacks;
mod aws;
mod binary;
mod inprocess;
mod limits;
mod mask;
mod mcp;
mod oidc;
mod policies;
mod rate_limits;
mod replicas;
mod sessions;
mod support;
mod telemetry;
