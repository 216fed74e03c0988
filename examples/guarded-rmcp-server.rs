//! A Rust MCP server built on the official `rmcp` crate, guarded in-process by hoopguard's
//! layers: the same authentication, per-call policy with approvals, masking and recording as
//! `hoopguard serve`, without a proxy in front.
//!
//! Three tools: `echo` (harmless), `read_config` (its answer holds a secret), `drop_table`
//! (destructive: the policy below sends it to a manager). Answers are plain JSON
//! (`json_response`), so masking of JSON answers is shown; SSE answers are masked the same way.
//!
//! It shares the data directory of a `hoopguard serve` run (default: the quickstart's
//! `./hoopguard-data`): tokens from `hoopguard dev-token` verify here, and approvals are given
//! with `hoopguard approvals approve` against that gateway's admin API. See the README.
//!
//! `cargo run --example guarded-rmcp-server -- [--bind 127.0.0.1:8790] [--data-dir DIR]
//!     [--dev-issuer http://127.0.0.1:8789/dev]`

use std::sync::Arc;

use hoopguard::core::approvals::{Approvals, SqliteStore};
use hoopguard::core::identity::{Verifier, dev::DevIssuer};
use hoopguard::core::mask::{Engine, MaskConfig};
use hoopguard::core::mcp::Pins;
use hoopguard::core::policy::{Policy, RuleConfig};
use hoopguard::core::record::{Durability, Recorder};
use hoopguard::tower::mask::MaskLayer;
use hoopguard::tower::mcp::protected_resource_metadata;
use hoopguard::tower::policy::Guard;
use hoopguard::tower::rmcp::{Stack, guard};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

/// The policy: everyone in `dev` may echo and read the config; dropping a table needs a
/// manager's approval.
const POLICY: &str = r#"
[[rules]]
name = "dev-tools"
effect = "allow"
groups = ["dev"]
tools = ["echo", "read_config"]

[[rules]]
name = "drops-need-a-manager"
effect = "approve"
groups = ["dev"]
tools = ["drop_table"]
approvers = ["managers"]
"#;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// What to say back.
    message: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct DropArgs {
    /// The table to drop.
    table: String,
}

#[derive(Clone)]
struct Tools {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    #[tool(description = "Say something back.")]
    fn echo(&self, Parameters(EchoArgs { message }): Parameters<EchoArgs>) -> String {
        format!("echo: {message}")
    }

    #[tool(description = "Read the service's configuration.")]
    fn read_config(&self) -> String {
        // What a careless tool returns: a real-looking key and a database password.
        r#"{"region":"eu-west-1","aws_access_key_id":"AKIAI44QH8DHBEXAMPLE","database":"postgres://app:s3cr3t-pw@db.internal:5432/app"}"#.into()
    }

    #[tool(description = "Drop a database table. Destructive.")]
    fn drop_table(&self, Parameters(DropArgs { table }): Parameters<DropArgs>) -> String {
        format!("dropped table {table}")
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("A demo server guarded by hoopguard")
    }
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bind = arg("--bind", "127.0.0.1:8790");
    let data_dir = std::path::PathBuf::from(arg("--data-dir", "./hoopguard-data"));
    let issuer = arg("--dev-issuer", "http://127.0.0.1:8789/dev");
    let resource = format!("http://{bind}/mcp");

    // Who: tokens from hoopguard's development issuer, issued for this server's resource URI.
    let dev = DevIssuer::load_or_create(&data_dir, issuer, "hoopguard")?;
    let verifier = Arc::new(
        Verifier::builder()
            .issuer(dev.issuer_verifier_for(std::slice::from_ref(&resource)))
            .build(),
    );
    // May they: the policy, with approvals in the shared store.
    let rules: Vec<RuleConfig> = toml::from_str::<toml::Table>(POLICY)?["rules"]
        .clone()
        .try_into()?;
    let store = SqliteStore::open(&data_dir.join("approvals.sqlite"))?;
    let policy = Guard::new(Policy::compile(&rules)?, Approvals::new(Arc::new(store)));
    // What comes back: masked. What happened: recorded, tool definitions pinned.
    let mask = Arc::new(Engine::new(&MaskConfig::default())?);
    let recorder = Arc::new(Recorder::open(
        &data_dir.join("recordings"),
        Durability::EveryEvent,
    )?);
    let pins = Arc::new(Pins::open(data_dir.join("mcp-tool-pins.json"))?);

    // DROP_TABLE_DESCRIPTION rewrites a tool's description, as a compromised or careless server
    // update would: hoopguard's tool pins catch it.
    let description = std::env::var("DROP_TABLE_DESCRIPTION").ok();
    let mcp = StreamableHttpService::new(
        move || {
            let mut tool_router = Tools::tool_router();
            if let (Some(d), Some(route)) = (&description, tool_router.map.get_mut("drop_table")) {
                route.attr.description = Some(d.clone().into());
            }
            Ok(Tools { tool_router })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_json_response(true),
    );
    let guarded = guard(
        mcp,
        Stack::new(verifier, &resource, policy, pins, "guarded-rmcp-example")
            .mask(MaskLayer::new(mask))
            .recorder(recorder),
    );
    let metadata = protected_resource_metadata(&resource, &[dev.issuer().to_string()]);
    let app = axum::Router::new().route_service("/mcp", guarded).route(
        "/.well-known/oauth-protected-resource/mcp",
        axum::routing::get(move || async move { axum::Json(metadata) }),
    );

    let listener = tokio::net::TcpListener::bind(&bind).await?;
    eprintln!("guarded rmcp server on {resource}");
    axum::serve(listener, app).await?;
    Ok(())
}
