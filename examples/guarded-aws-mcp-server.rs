//! An MCP server whose tools call AWS for whoever called them, guarded in-process by hoopguard:
//! the MCP calls by the same layers as `guarded-rmcp-server`, and the AWS calls its tools make
//! with aws-sdk-rust by `hoopguard_tower::aws::sdk` — decided per MCP caller (with approvals),
//! re-signed with a role session assumed for that caller (CloudTrail names the human, not the
//! server), masked, and recorded in the caller's MCP session next to the tool call.
//!
//! Tools: `whoami` (sts:GetCallerIdentity: the role session AWS sees), `list_buckets`,
//! `get_object` (a bucket matching `private-*` is denied by a rule), `terminate_instance`
//! (ec2:TerminateInstances: a manager approves it with `hoopguard approvals approve`).
//!
//! It shares the data directory of a `hoopguard serve` run (tokens from its development issuer,
//! approvals in its store). The server's own AWS credentials (the standard provider chain) may
//! only assume `--role-arn`; every call is made with a session of that role for the caller.
//!
//! `AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… cargo run --example guarded-aws-mcp-server --
//!     --role-arn arn:aws:iam::123456789012:role/agents [--aws-endpoint http://127.0.0.1:5000]
//!     [--bind 127.0.0.1:8791] [--data-dir ./hoopguard-data] [--dev-issuer http://127.0.0.1:8789/dev]`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hoopguard::core::approvals::{Approvals, SqliteStore};
use hoopguard::core::aws::Minter;
use hoopguard::core::aws::broker::{Broker, BrokerKind};
use hoopguard::core::identity::{Verifier, dev::DevIssuer};
use hoopguard::core::mask::{Engine, MaskConfig};
use hoopguard::core::mcp::Pins;
use hoopguard::core::policy::{Policy, RuleConfig};
use hoopguard::core::record::{Durability, Recorder};
use hoopguard::tower::aws::sdk::CallerAws;
use hoopguard::tower::aws::{Connection, Stack as AwsStack};
use hoopguard::tower::mask::MaskLayer;
use hoopguard::tower::mcp::protected_resource_metadata;
use hoopguard::tower::policy::Guard;
use hoopguard::tower::rmcp::{Stack, guard};
use rmcp::handler::server::common::Extension;
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

/// One policy for both: the tools `dev` may call, and what those tools may do in AWS for them.
const POLICY: &str = r#"
[[rules]]
name = "dev-tools"
effect = "allow"
groups = ["dev"]
tools = ["whoami", "list_buckets", "get_object", "terminate_instance"]

[[rules]]
name = "no-private-buckets"
effect = "deny"
actions = ["s3:GetObject"]
resources = ["arn:aws:s3:::private-*/*"]

[[rules]]
name = "dev-reads"
effect = "allow"
groups = ["dev"]
actions = ["sts:GetCallerIdentity", "s3:ListAllMyBuckets", "s3:ListBucket", "s3:GetObject"]

[[rules]]
name = "terminate-needs-a-manager"
effect = "approve"
groups = ["dev"]
actions = ["ec2:TerminateInstances"]
approvers = ["managers"]
"#;

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct ObjectArgs {
    /// The bucket.
    bucket: String,
    /// The object's key.
    key: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct InstanceArgs {
    /// The instance to terminate.
    instance_id: String,
}

#[derive(Clone)]
struct Tools {
    aws: CallerAws,
    tool_router: ToolRouter<Self>,
}

/// A tool's answer: the text, or the error AWS (or hoopguard, in AWS's format) gave.
type Answer = Result<String, String>;

fn failed<E: std::error::Error>(e: E) -> String {
    aws_sdk_s3::error::DisplayErrorContext(e).to_string()
}

#[tool_router]
impl Tools {
    #[tool(description = "Who AWS sees making this server's calls for you.")]
    async fn whoami(&self, Extension(parts): Extension<http::request::Parts>) -> Answer {
        let config = self.aws.for_mcp_request(&parts).map_err(failed)?;
        let sts = aws_sdk_sts::Client::new(&config);
        let me = sts.get_caller_identity().send().await.map_err(failed)?;
        Ok(me.arn().unwrap_or_default().to_string())
    }

    #[tool(description = "List the S3 buckets.")]
    async fn list_buckets(&self, Extension(parts): Extension<http::request::Parts>) -> Answer {
        let s3 = self.s3(&parts)?;
        let out = s3.list_buckets().send().await.map_err(failed)?;
        let names: Vec<&str> = out.buckets().iter().filter_map(|b| b.name()).collect();
        Ok(names.join("\n"))
    }

    #[tool(description = "Read an S3 object as text.")]
    async fn get_object(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(ObjectArgs { bucket, key }): Parameters<ObjectArgs>,
    ) -> Answer {
        let s3 = self.s3(&parts)?;
        let out = s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(failed)?;
        let bytes = out.body.collect().await.map_err(failed)?.into_bytes();
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tool(description = "Terminate an EC2 instance. Destructive.")]
    async fn terminate_instance(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(InstanceArgs { instance_id }): Parameters<InstanceArgs>,
    ) -> Answer {
        let config = self.aws.for_mcp_request(&parts).map_err(failed)?;
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let out = ec2
            .terminate_instances()
            .instance_ids(&instance_id)
            .send()
            .await
            .map_err(failed)?;
        let state = out
            .terminating_instances()
            .first()
            .and_then(|i| i.current_state())
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default();
        Ok(format!("{instance_id}: {state}"))
    }
}

impl Tools {
    fn s3(&self, parts: &http::request::Parts) -> Result<aws_sdk_s3::Client, String> {
        let config = self.aws.for_mcp_request(parts).map_err(failed)?;
        // Path-style: the bucket is in the path hoopguard classifies, not in a host name.
        Ok(aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        ))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("AWS tools, guarded per caller by hoopguard")
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
    let bind = arg("--bind", "127.0.0.1:8791");
    let data_dir = std::path::PathBuf::from(arg("--data-dir", "./hoopguard-data"));
    let issuer = arg("--dev-issuer", "http://127.0.0.1:8789/dev");
    let role_arn = arg("--role-arn", "");
    let endpoint = arg("--aws-endpoint", "");
    let region = arg("--region", "us-east-1");
    if role_arn.is_empty() {
        return Err("--role-arn is required: the role assumed for each caller".into());
    }
    let resource = format!("http://{bind}/mcp");

    let dev = DevIssuer::load_or_create(&data_dir, issuer, "hoopguard")?;
    let verifier = Arc::new(
        Verifier::builder()
            .issuer(dev.issuer_verifier_for(std::slice::from_ref(&resource)))
            .build(),
    );
    let rules: Vec<RuleConfig> = toml::from_str::<toml::Table>(POLICY)?["rules"]
        .clone()
        .try_into()?;
    let store = SqliteStore::open(&data_dir.join("approvals.sqlite"))?;
    let policy = Guard::new(Policy::compile(&rules)?, Approvals::new(Arc::new(store)));
    let mask = Arc::new(Engine::new(&MaskConfig::default())?);
    let recorder = Arc::new(Recorder::open(
        &data_dir.join("recordings"),
        Durability::EveryEvent,
    )?);
    let pins = Arc::new(Pins::open(data_dir.join("mcp-tool-pins.json"))?);

    // The AWS side: a role session per caller, to AWS or the given endpoint.
    let sts_endpoint = (!endpoint.is_empty()).then_some(endpoint.as_str());
    // ARNs name the account: the role's (arn:aws:iam::ACCOUNT:role/NAME).
    let account = role_arn.split(':').nth(4).map(str::to_string);
    let broker = Broker::new(
        BrokerKind::AssumeRole {
            role_arn,
            duration: Duration::from_secs(3600),
            session_policy: None,
            external_id: None,
        },
        &region,
        sts_endpoint,
    )
    .await;
    let mut connection = Connection::new(broker);
    connection.endpoint = sts_endpoint.map(str::to_string);
    connection.account = account;
    let minter = Arc::new(Minter::load_or_create(
        &data_dir.join("in-process-aws.key"),
    )?);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let aws_stack = AwsStack::new(
        minter.clone(),
        policy.clone(),
        Arc::new(HashMap::from([("default".to_string(), connection)])),
    )
    .mask(MaskLayer::new(mask.clone()))
    .record(recorder.clone())
    .service(client);
    let aws = CallerAws::new(minter, aws_stack, "default", &region);

    let mcp = StreamableHttpService::new(
        move || {
            Ok(Tools {
                aws: aws.clone(),
                tool_router: Tools::tool_router(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default().with_json_response(true),
    );
    let guarded = guard(
        mcp,
        Stack::new(verifier, &resource, policy, pins, "guarded-aws-example")
            .mask(MaskLayer::new(mask))
            .recorder(recorder),
    );
    let metadata = protected_resource_metadata(&resource, &[dev.issuer().to_string()]);
    let app = axum::Router::new().route_service("/mcp", guarded).route(
        "/.well-known/oauth-protected-resource/mcp",
        axum::routing::get(move || async move { axum::Json(metadata) }),
    );
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    eprintln!("guarded AWS MCP server on {resource}");
    axum::serve(listener, app).await?;
    Ok(())
}
