//! Shared by `benches/mcp.rs` and `examples/mcp-load.rs`: an rmcp server with an `echo` tool
//! (SSE answers, as streamable HTTP does by default), a gateway run in this process in front of
//! it, and a client that speaks streamable HTTP with plain requests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

use crate::inproc::{free_port, serve};

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    pub message: String,
}

#[derive(Clone)]
pub struct Echo {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Echo {
    #[tool(description = "Say something back.")]
    fn echo(&self, Parameters(EchoArgs { message }): Parameters<EchoArgs>) -> String {
        message
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Serves the echo server at `http://ADDR/mcp`.
pub async fn upstream() -> SocketAddr {
    let svc = StreamableHttpService::new(
        || {
            Ok(Echo {
                tool_router: Echo::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().route_service("/mcp", svc);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Starts a gateway in this process in front of `up`; returns its MCP URL and a token for it.
pub async fn gateway(dir: &std::path::Path, up: SocketAddr) -> (String, String) {
    let mcp = free_port();
    let url = format!("http://127.0.0.1:{mcp}/mcp");
    let dev = serve(
        dir,
        &format!(
            r#"
[listeners.mcp]
bind = "127.0.0.1:{mcp}"
[record]
durability = "batched"
[mcp.upstream]
url = "http://{up}/mcp"
[[policy.rules]]
name = "bench"
effect = "allow"
groups = ["dev"]
tools = ["echo"]
"#
        ),
    );
    let token = dev
        .mint_for(
            "bench",
            &["dev".into()],
            Duration::from_secs(3600),
            std::slice::from_ref(&url),
        )
        .unwrap();
    while tokio::net::TcpStream::connect(("127.0.0.1", mcp))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (url, token)
}

/// An initialized MCP session.
#[derive(Clone)]
pub struct Session {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
    id: String,
}

impl Session {
    fn post(&self, body: String) -> reqwest::RequestBuilder {
        let mut r = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .body(body);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if !self.id.is_empty() {
            r = r.header("mcp-session-id", &self.id);
        }
        r
    }

    /// `initialize` and `notifications/initialized`.
    pub async fn open(url: &str, token: Option<&str>) -> Session {
        let mut s = Session {
            client: reqwest::Client::new(),
            url: url.to_string(),
            token: token.map(str::to_string),
            id: String::new(),
        };
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
        let resp = s.post(init.into()).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        s.id = resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let _ = resp.bytes().await.unwrap();
        let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let resp = s.post(note.into()).send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        s
    }

    /// One `tools/call` of `echo`; panics unless the answer echoes.
    pub async fn echo(&self, n: u64) {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{n},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"ping {n}"}}}}}}"#
        );
        let resp = self.post(body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.contains(&format!("ping {n}")), "{text}");
    }
}
