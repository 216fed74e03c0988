//! The rmcp adapter (feature `rmcp`): guard a Rust MCP server built on the official `rmcp`
//! crate in-process.
//!
//! rmcp's [`StreamableHttpService`] is a tower service, so [`guard`] wraps it in the same
//! [`Stack`] the `hoopguard serve` MCP listener uses — authentication (audience = the server's
//! resource URI), masking, per-call policy with approvals, tool pinning and recording — and the
//! result serves at `/mcp` in an axum router or any hyper server. Serve the protected-resource
//! metadata ([`protected_resource_metadata`](crate::mcp::protected_resource_metadata)) next to
//! it. `examples/guarded-rmcp-server.rs` is a complete server in a few dozen lines.

use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::SessionManager;

pub use crate::mcp::{Guarded, Stack};

/// Wraps an rmcp streamable-HTTP service in hoopguard's layers.
pub fn guard<H, M>(
    service: StreamableHttpService<H, M>,
    stack: Stack,
) -> Guarded<StreamableHttpService<H, M>>
where
    H: ServerHandler + Send + 'static,
    M: SessionManager,
{
    stack.layer(service)
}
