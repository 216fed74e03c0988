//! The one TOML configuration file: parsing, `${ENV}` substitution, validation with key paths.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hoopguard_core::approvals::webhook::WebhookConfig;
use hoopguard_core::identity::IssuerConfig;
use hoopguard_core::mask::{Engine, MaskConfig};
use hoopguard_core::policy::{Policy, RuleConfig};
use serde::Deserialize;

/// The quickstart configuration built into the binary: local development issuer, loopback
/// listeners, data directory `./hoopguard-data` (or `$HOOPGUARD_DATA_DIR`).
pub const QUICKSTART: &str = include_str!("../quickstart.toml");

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where hoopguard keeps its state (development key, approvals, recordings).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The listeners to start.
    #[serde(default)]
    pub listeners: Listeners,
    /// Who may call.
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Process-wide settings.
    #[serde(default)]
    pub server: ServerConfig,
    /// The rules that decide every call.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Human approvals: notifications.
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// Masking of responses (and of `hoopguard mask`).
    #[serde(default)]
    pub mask: MaskConfig,
    /// Session recording.
    #[serde(default)]
    pub record: RecordConfig,
    /// The MCP data path.
    #[serde(default)]
    pub mcp: McpConfig,
    /// The AWS data path.
    #[serde(default)]
    pub aws: AwsConfig,
    /// Where the state replicas share lives (PostgreSQL); the embedded store without it.
    #[serde(default)]
    pub store: StoreConfig,
    /// Traces, the audit stream, metric labels.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`: what hoopguard tells tracing systems and SIEMs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Every decision as one JSON line (schema `hoopguard.decision.v1`,
    /// [`hoopguard_core::audit`]): a file path (appended to) or `stdout`. Default: none.
    #[serde(default)]
    pub audit: Option<String>,
    /// Count decisions per caller in `/metrics` (`hoopguard_subject_decisions_total`): one
    /// series per subject, so only where the callers are few. Default `false`.
    #[serde(default)]
    pub subject_labels: bool,
    /// Export traces over OTLP/HTTP (protobuf) to this collector: its base URL
    /// (`http://collector:4318`, to which `/v1/traces` is added) or the full traces URL.
    /// Default: none (no traces are exported).
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The `service.name` traces carry. Default `hoopguard`.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Continue a caller's trace when it sends a W3C `traceparent`. Off by default: callers
    /// are agents, and one that sends trace context would choose the trace its calls are
    /// filed under. Turn it on when the agents' own tracing is trusted.
    #[serde(default)]
    pub accept_trace_context: bool,
}

fn default_service_name() -> String {
    "hoopguard".into()
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            audit: None,
            subject_labels: false,
            otlp_endpoint: None,
            service_name: default_service_name(),
            accept_trace_context: false,
        }
    }
}

impl TelemetryConfig {
    /// The URL spans are posted to: `otlp_endpoint`, with `/v1/traces` added to a base URL.
    pub fn traces_url(&self) -> Option<String> {
        let url = self.otlp_endpoint.as_deref()?.trim_end_matches('/');
        Some(if url.ends_with("/v1/traces") {
            url.to_string()
        } else {
            format!("{url}/v1/traces")
        })
    }
}

/// `[store]`: the state that several replicas share — approvals and session revocations — in
/// PostgreSQL. Without `url` (the default) it stays in SQLite in `data_dir`, for one process.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://user[:password]@host:5432/database`. Write a password as `${VAR}`, or use
    /// `url_file`.
    #[serde(default)]
    pub url: Option<String>,
    /// The URL read from this file (a mounted secret); its surrounding whitespace is ignored.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The PostgreSQL schema hoopguard's tables live in (created if missing). Default: the
    /// connection's `search_path` (normally `public`).
    #[serde(default)]
    pub schema: Option<String>,
    /// How often each replica reads the revocations made on any replica. Default `250ms`.
    #[serde(
        default = "default_revocation_poll",
        with = "hoopguard_core::duration::serde"
    )]
    pub revocation_poll: Duration,
    /// When the revocations could not be read for this long, calls are refused (503) until
    /// the database answers again: nobody can say whether their session was revoked. Default
    /// `3s`.
    #[serde(
        default = "default_revocation_stale_after",
        with = "hoopguard_core::duration::serde"
    )]
    pub revocation_stale_after: Duration,
}

impl std::fmt::Debug for StoreConfig {
    // Never the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &self.url.as_ref().map(|_| "…"))
            .field("url_file", &self.url_file)
            .field("schema", &self.schema)
            .field("revocation_poll", &self.revocation_poll)
            .field("revocation_stale_after", &self.revocation_stale_after)
            .finish()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            url_file: None,
            schema: None,
            revocation_poll: default_revocation_poll(),
            revocation_stale_after: default_revocation_stale_after(),
        }
    }
}

fn default_revocation_poll() -> Duration {
    Duration::from_millis(250)
}

fn default_revocation_stale_after() -> Duration {
    Duration::from_secs(3)
}

impl StoreConfig {
    /// Whether a shared database is configured.
    pub fn is_shared(&self) -> bool {
        self.url.is_some() || self.url_file.is_some()
    }

    /// The database URL, from `url` or `url_file`; `None` for the embedded store.
    pub fn database_url(&self) -> Result<Option<String>, String> {
        match (&self.url, &self.url_file) {
            (Some(u), _) => Ok(Some(u.clone())),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(|t| Some(t.trim().to_string()))
                .map_err(|e| format!("store.url_file: cannot read {}: {e}", f.display())),
            (None, None) => Ok(None),
        }
    }
}

/// `[mcp]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// Where MCP clients connect on the MCP listener. Default `/mcp`.
    #[serde(default = "default_mcp_path")]
    pub path: String,
    /// This gateway's resource URI: tokens must name it in `aud` (RFC 8707), and the
    /// protected-resource metadata announces it. Default `http://<listeners.mcp.bind><path>`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Who approves calls to a tool whose definition changed since it was first listed
    /// (pinned). Default: none — such calls are refused and the tool is hidden.
    #[serde(default)]
    pub changed_tool_approvers: Vec<String>,
    /// The MCP server behind the gateway. Without it the MCP listener authenticates and answers
    /// 503.
    #[serde(default)]
    pub upstream: Option<McpUpstream>,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            path: default_mcp_path(),
            resource: None,
            changed_tool_approvers: Vec::new(),
            upstream: None,
        }
    }
}

fn default_mcp_path() -> String {
    "/mcp".into()
}

/// `[mcp.upstream]`: a streamable-HTTP MCP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpUpstream {
    /// Its endpoint, such as `http://127.0.0.1:3001/mcp`.
    pub url: String,
    /// The name its tool pins are kept under. Default: the URL.
    #[serde(default)]
    pub name: Option<String>,
    /// A header hoopguard sends upstream with every request (the client's token never is),
    /// such as `Authorization`.
    #[serde(default)]
    pub header: Option<String>,
    /// The header's value (use `${VAR}`), or:
    #[serde(default)]
    pub value: Option<String>,
    /// a file holding it (read at start, trailing newline removed).
    #[serde(default)]
    pub value_file: Option<PathBuf>,
    /// How long to wait for the server to start answering. Default `60s`.
    #[serde(
        default = "default_upstream_timeout",
        with = "hoopguard_core::duration::serde"
    )]
    pub timeout: Duration,
}

impl McpConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if !self.path.starts_with('/') || self.path.starts_with("/.well-known") {
            return Err((
                "mcp.path".into(),
                "must start with `/` (and not be under /.well-known)".into(),
            ));
        }
        if let Some(r) = &self.resource {
            if !(r.starts_with("https://") || r.starts_with("http://")) {
                return Err(("mcp.resource".into(), "must be an http(s) URL".into()));
            }
        }
        if let Some(u) = &self.upstream {
            if !(u.url.starts_with("https://") || u.url.starts_with("http://"))
                || u.url.parse::<http::Uri>().is_err()
            {
                return Err(("mcp.upstream.url".into(), "must be an http(s) URL".into()));
            }
            match (&u.header, &u.value, &u.value_file) {
                (None, None, None) => {}
                (Some(h), Some(_), None) | (Some(h), None, Some(_)) => {
                    if http::HeaderName::try_from(h.as_str()).is_err() {
                        return Err((
                            "mcp.upstream.header".into(),
                            format!("`{h}` is not a header name"),
                        ));
                    }
                }
                (None, _, _) => {
                    return Err((
                        "mcp.upstream.header".into(),
                        "a value needs a header name".into(),
                    ));
                }
                _ => {
                    return Err((
                        "mcp.upstream.value".into(),
                        "set exactly one of `value` and `value_file` with `header`".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Configuration text as a TOML table with its `${VARS}` substituted (`env` looks them up).
fn table(
    text: &str,
    source_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<toml::Table, ConfigError> {
    let err = |key: String, message: String| ConfigError {
        source_name: source_name.to_string(),
        key,
        message,
    };
    let mut value: toml::Table = toml::from_str(text)
        .map_err(|e| err(String::new(), format!("not valid TOML: {}", e.message())))?;
    substitute_table(&mut value, "", env).map_err(|(k, m)| err(k, m))?;
    Ok(value)
}

/// `[record]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// `every_event` (fsync before a call goes on: nothing acknowledged is lost) or `batched`
    /// (fsync every `sync_interval`: a crash may lose the last interval, never corrupt earlier
    /// events). Default `every_event`.
    #[serde(default = "default_durability")]
    pub durability: DurabilityName,
    /// How often batched recordings are flushed to disk. Default `1s`.
    #[serde(
        default = "default_sync_interval",
        with = "hoopguard_core::duration::serde"
    )]
    pub sync_interval: Duration,
    /// When a call cannot be recorded (disk full, permissions): `refuse` it (default), or
    /// `best_effort` — let it through unrecorded and log the gap.
    #[serde(default)]
    pub on_failure: OnRecordFailure,
    /// A session's recording starts a new segment file past this size (`64MiB`; a number of
    /// bytes or `KiB`/`MiB`/`GiB`).
    #[serde(default = "default_segment_size", with = "byte_size")]
    pub segment_size: u64,
    /// Remove segments last written longer ago than this (`90d`). Default: kept.
    #[serde(default, with = "hoopguard_core::duration::serde_opt")]
    pub max_age: Option<Duration>,
    /// Then remove the oldest segments until the recordings fit in this (`10GiB`). Default:
    /// no limit.
    #[serde(default, with = "opt_byte_size")]
    pub max_size: Option<u64>,
    /// How often retention runs (also once at start). Default `1h`.
    #[serde(
        default = "default_retention_interval",
        with = "hoopguard_core::duration::serde"
    )]
    pub retention_interval: Duration,
    /// How much of each request and response body is recorded, after masking (`64KiB`).
    #[serde(default = "default_body_cap", with = "byte_size")]
    pub body_cap: u64,
    /// The Ed25519 key (PKCS#8, DER or base64; `hoopguard sessions keygen` makes one) that
    /// signs digests of the recordings, read from this file — never inside `data_dir`, which it
    /// protects. Without it (or `signing_key_env`), recordings are hash-chained only.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// The same key from this environment variable (base64 of the PKCS#8 document).
    #[serde(default)]
    pub signing_key_env: Option<String>,
    /// How often a signed digest is made when something changed (and at once when a session
    /// ends). Default `5m`.
    #[serde(
        default = "default_digest_interval",
        with = "hoopguard_core::duration::serde"
    )]
    pub digest_interval: Duration,
    /// Groups whose members may read recordings through the admin API (approvers of any rule
    /// may too).
    #[serde(default)]
    pub auditors: Vec<String>,
    /// Where recordings are kept: `auto` (default: in the shared database when `[store]` names
    /// one, so every replica writes each session into one chain; else in the data directory),
    /// `local` (each replica's data directory), or `database`.
    #[serde(default)]
    pub store: RecordStoreName,
}

/// `[record] store`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStoreName {
    /// The shared database when there is one, else the data directory.
    #[default]
    Auto,
    /// The data directory (`<data_dir>/recordings`), per replica.
    Local,
    /// The shared database (`[store]`).
    Database,
}

fn default_digest_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_segment_size() -> u64 {
    hoopguard_core::record::DEFAULT_SEGMENT_SIZE
}

fn default_retention_interval() -> Duration {
    Duration::from_secs(3600)
}

fn default_body_cap() -> u64 {
    64 * 1024
}

/// A size: a number of bytes, or a string with `B`, `KiB`, `MiB`, `GiB` or `TiB`.
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write e.g. 512KiB, 64MiB or 10GiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        "TiB" | "TB" | "T" => 1 << 40,
        u => {
            return Err(format!(
                "unknown size unit `{u}` in `{text}`; use KiB, MiB, GiB or TiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeText {
    Bytes(u64),
    Text(String),
}

mod byte_size {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match super::SizeText::deserialize(d)? {
            super::SizeText::Bytes(n) => Ok(n),
            super::SizeText::Text(t) => super::parse_size(&t).map_err(serde::de::Error::custom),
        }
    }
}

mod opt_byte_size {
    use serde::Deserializer;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        super::byte_size::deserialize(d).map(Some)
    }
}

/// `[record] on_failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRecordFailure {
    /// Refuse the call (fail closed).
    #[default]
    Refuse,
    /// Let it through unrecorded; log the gap.
    BestEffort,
}

impl Default for RecordConfig {
    fn default() -> Self {
        RecordConfig {
            durability: default_durability(),
            sync_interval: default_sync_interval(),
            on_failure: OnRecordFailure::Refuse,
            segment_size: default_segment_size(),
            max_age: None,
            max_size: None,
            retention_interval: default_retention_interval(),
            body_cap: default_body_cap(),
            auditors: Vec::new(),
            signing_key_file: None,
            signing_key_env: None,
            digest_interval: default_digest_interval(),
            store: RecordStoreName::Auto,
        }
    }
}

/// Durability settings by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityName {
    /// fsync every event.
    EveryEvent,
    /// fsync on an interval.
    Batched,
}

fn default_durability() -> DurabilityName {
    DurabilityName::EveryEvent
}

fn default_sync_interval() -> Duration {
    Duration::from_secs(1)
}

/// `[aws]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// The gateway key that seals pseudo-credentials (32+ bytes; share it between replicas).
    /// Default: a key created in the data directory (`aws-gateway.key`).
    #[serde(default)]
    pub gateway_key: Option<String>,
    /// Gateway keys of before a rotation: pseudo-credentials they minted are still accepted
    /// (until they expire, at most `credentials_ttl`); new ones are minted with `gateway_key`.
    /// Empty entries are ignored (`"${HOOPGUARD_PREVIOUS_GATEWAY_KEY:-}"` outside a rotation).
    #[serde(default)]
    pub previous_gateway_keys: Vec<String>,
    /// How long pseudo-credentials last (never past the caller's token). Default `1h`.
    #[serde(
        default = "default_creds_ttl",
        with = "hoopguard_core::duration::serde"
    )]
    pub credentials_ttl: Duration,
    /// The AWS connections agents may ask credentials for, by name
    /// (`/v1/aws/credentials/<name>`; `default` is the bare path).
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
    /// How long hoopguard waits for an AWS endpoint to answer. Default `60s`.
    #[serde(
        default = "default_upstream_timeout",
        with = "hoopguard_core::duration::serde"
    )]
    pub upstream_timeout: Duration,
    /// The largest request body hoopguard buffers to inspect (query and JSON APIs, S3 control
    /// calls); larger ones get 413. Object uploads are streamed, whatever their size.
    /// Default 10 MiB.
    #[serde(default = "default_max_body")]
    pub max_policy_body: usize,
    /// Host names whose subdomains are S3 buckets (virtual-host requests: `bucket.SUFFIX`); such
    /// requests are classified and forwarded path-style. Default `["localhost"]`, what SDKs use
    /// with `AWS_ENDPOINT_URL=http://localhost:PORT`.
    #[serde(default = "default_vhost_suffixes")]
    pub s3_virtual_host_suffixes: Vec<String>,
    /// An operation hoopguard cannot classify is refused; with approvers named here, it is sent
    /// to them for approval instead (once, for that exact request). Default: none (refused).
    /// A request that is ambiguous (two protocols' markers, a repeated parameter) is always
    /// refused.
    #[serde(default)]
    pub unclassified_approvers: Vec<String>,
    /// The most request-body bytes held in memory across all calls at once; a call that would
    /// go beyond it is refused with 503 `SlowDown` rather than wait. Default 256 MiB.
    #[serde(default = "default_max_buffered")]
    pub max_buffered: usize,
    /// How long a caller may take to send a buffered body, and the longest pause inside a
    /// streamed upload. Default `30s`.
    #[serde(
        default = "default_body_read_timeout",
        with = "hoopguard_core::duration::serde"
    )]
    pub body_read_timeout: Duration,
}

/// The gateway keys are never printed, only whether they are set.
impl std::fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfig")
            .field("gateway_key", &self.gateway_key.as_ref().map(|_| "(set)"))
            .field("previous_gateway_keys", &self.previous_gateway_keys.len())
            .field("credentials_ttl", &self.credentials_ttl)
            .field("connections", &self.connections)
            .field("upstream_timeout", &self.upstream_timeout)
            .field("max_policy_body", &self.max_policy_body)
            .field("s3_virtual_host_suffixes", &self.s3_virtual_host_suffixes)
            .field("unclassified_approvers", &self.unclassified_approvers)
            .field("max_buffered", &self.max_buffered)
            .field("body_read_timeout", &self.body_read_timeout)
            .finish()
    }
}

fn default_max_buffered() -> usize {
    256 * 1024 * 1024
}

fn default_body_read_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            gateway_key: None,
            previous_gateway_keys: Vec::new(),
            credentials_ttl: default_creds_ttl(),
            connections: BTreeMap::new(),
            upstream_timeout: default_upstream_timeout(),
            max_policy_body: default_max_body(),
            unclassified_approvers: Vec::new(),
            s3_virtual_host_suffixes: default_vhost_suffixes(),
            max_buffered: default_max_buffered(),
            body_read_timeout: default_body_read_timeout(),
        }
    }
}

/// `[aws.connections.NAME]`: one AWS account/role and how its credentials are brokered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// `assume_role`, `web_identity` or `static` (local development only).
    pub broker: BrokerName,
    /// The role to assume (`assume_role`, `web_identity`).
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The region of the STS endpoint. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// How long a brokered role session lasts (15m to 12h). Default `1h`.
    #[serde(
        default = "default_creds_ttl",
        with = "hoopguard_core::duration::serde"
    )]
    pub duration: Duration,
    /// An inline session policy (JSON) that narrows the role for every agent.
    #[serde(default)]
    pub session_policy: Option<String>,
    /// The external id the role's trust policy asks for.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Send every call of this connection to this URL instead of the AWS endpoint for its
    /// service and region (a VPC endpoint, LocalStack, moto).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The STS endpoint. Default: `endpoint`, else the SDK's regional STS endpoint.
    #[serde(default)]
    pub sts_endpoint: Option<String>,
    /// `static` only: the access key id.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// `static` only: the secret access key (use `${VAR}` rather than writing it here).
    #[serde(default)]
    pub secret_access_key: Option<String>,
    /// `static` only: a session token, for temporary credentials.
    #[serde(default)]
    pub session_token: Option<String>,
    /// The 12-digit AWS account this connection reaches, for the resource ARNs policies match
    /// (`arn:aws:ec2:REGION:ACCOUNT:instance/…`). Default: the account of `role_arn`; a
    /// `static` connection without it leaves ARNs that name an account unknown (allow rules
    /// that name such resources then do not match; deny and approve rules do).
    #[serde(default)]
    pub account: Option<String>,
}

/// The brokers a connection can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerName {
    /// `sts:AssumeRole` with the gateway's own credentials.
    AssumeRole,
    /// `sts:AssumeRoleWithWebIdentity` with the caller's token.
    WebIdentity,
    /// Fixed credentials, local development only.
    Static,
}

impl ConnectionConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        let needs_role = matches!(
            self.broker,
            BrokerName::AssumeRole | BrokerName::WebIdentity
        );
        match (&self.role_arn, needs_role) {
            (None, true) => {
                return Err(("role_arn", "this broker needs the role to assume".into()));
            }
            (Some(r), true) if !r.starts_with("arn:") || r.split(':').count() < 6 => {
                return Err(("role_arn", format!("`{r}` is not a role ARN")));
            }
            (Some(_), false) => {
                return Err((
                    "role_arn",
                    "only assume_role and web_identity use a role".into(),
                ));
            }
            _ => {}
        }
        if needs_role && !(900..=43_200).contains(&self.duration.as_secs()) {
            return Err((
                "duration",
                "must be between 15m and 12h (what STS accepts)".into(),
            ));
        }
        if self.broker != BrokerName::Static
            && (self.access_key_id.is_some() || self.secret_access_key.is_some())
        {
            return Err((
                "access_key_id",
                "keys belong to `static` connections only; STS brokers use the gateway's own credentials (the AWS provider chain)".into(),
            ));
        }
        if self.broker != BrokerName::AssumeRole
            && (self.session_policy.is_some() || self.external_id.is_some())
        {
            return Err((
                "session_policy",
                "only assume_role uses a session policy or external id".into(),
            ));
        }
        if let Some(p) = &self.session_policy {
            if serde_json::from_str::<serde_json::Value>(p).is_err() {
                return Err(("session_policy", "is not JSON".into()));
            }
        }
        for (key, url) in [
            ("endpoint", &self.endpoint),
            ("sts_endpoint", &self.sts_endpoint),
        ] {
            if let Some(u) = url {
                let ok = (u.starts_with("https://") || u.starts_with("http://"))
                    && u.parse::<http::Uri>().is_ok_and(|uri| {
                        uri.host().is_some() && uri.path_and_query().is_none_or(|p| p == "/")
                    });
                if !ok {
                    return Err((
                        key,
                        format!("`{u}` is not an http(s) URL with a host and no path"),
                    ));
                }
            }
        }
        if self.region.is_empty() {
            return Err(("region", "must not be empty".into()));
        }
        if let Some(a) = &self.account {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                return Err(("account", format!("`{a}` is not a 12-digit AWS account id")));
            }
        }
        Ok(())
    }

    /// The account the connection reaches: `account`, else the account of `role_arn`.
    pub fn account(&self) -> Option<String> {
        self.account.clone().or_else(|| {
            let a = self.role_arn.as_deref()?.split(':').nth(4)?;
            (a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())).then(|| a.to_string())
        })
    }

    /// The core broker this connection describes.
    pub fn broker_kind(&self) -> hoopguard_core::aws::broker::BrokerKind {
        use hoopguard_core::aws::broker::{BrokerKind, Brokered};
        match self.broker {
            BrokerName::AssumeRole => BrokerKind::AssumeRole {
                role_arn: self.role_arn.clone().unwrap_or_default(),
                duration: self.duration,
                session_policy: self.session_policy.clone(),
                external_id: self.external_id.clone(),
            },
            BrokerName::WebIdentity => BrokerKind::WebIdentity {
                role_arn: self.role_arn.clone().unwrap_or_default(),
                duration: self.duration,
            },
            BrokerName::Static => BrokerKind::Static(Brokered {
                access_key_id: self.access_key_id.clone().unwrap_or_default(),
                secret_access_key: self.secret_access_key.clone().unwrap_or_default(),
                session_token: self.session_token.clone().filter(|t| !t.is_empty()),
                expires: None,
            }),
        }
    }

    /// The STS endpoint override, if any.
    pub fn sts_endpoint(&self) -> Option<&str> {
        self.sts_endpoint.as_deref().or(self.endpoint.as_deref())
    }
}

fn default_vhost_suffixes() -> Vec<String> {
    vec!["localhost".into()]
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_upstream_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_max_body() -> usize {
    10 * 1024 * 1024
}

fn default_creds_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// `[policy]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `[[policy.rules]]`, in order. With none, every call is denied.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// `[[policy.limits]]`: rate limits and budgets per caller, counted per process (or, with
    /// `[store]`, across replicas).
    #[serde(default)]
    pub limits: Vec<hoopguard_core::policy::LimitConfig>,
}

/// `[approvals]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// `[[approvals.webhooks]]`: notified of each new pending approval and each decision.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./hoopguard-data")
}

/// `[listeners.*]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    /// Where AWS SDKs and the CLI connect (credentials endpoint and AWS API).
    pub aws: Option<Listener>,
    /// Where MCP clients connect.
    pub mcp: Option<Listener>,
    /// Health, readiness, metrics, the development issuer and (later) the approvals API.
    pub admin: Option<Listener>,
}

/// One listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// The address to bind, such as `127.0.0.1:8787`.
    pub bind: SocketAddr,
    /// The most connections this listener holds open at once. Default: `server.max_connections`.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// The most connections one client address holds open here. Default:
    /// `server.max_connections_per_client`.
    #[serde(default)]
    pub max_connections_per_client: Option<usize>,
    /// `aws` and `admin` listeners: the token audiences they accept (the token's `aud` must
    /// name one). Default: every trusted issuer's audiences except the MCP listener's resource
    /// URI, so a token meant for the MCP resource opens neither. The MCP listener always
    /// accepts tokens for its resource URI (`mcp.resource`) only.
    #[serde(default)]
    pub audiences: Option<Vec<String>>,
}

/// `[identity]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Trusted OIDC issuers.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// The local development issuer.
    #[serde(default)]
    pub dev_issuer: Option<DevIssuerConfig>,
    /// How many verified tokens to remember (by hash). 0 turns the cache off.
    #[serde(default = "default_cache_size")]
    pub token_cache_size: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            issuers: Vec::new(),
            dev_issuer: None,
            token_cache_size: default_cache_size(),
        }
    }
}

fn default_cache_size() -> usize {
    10_000
}

/// `[identity.dev_issuer]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevIssuerConfig {
    /// Must be true for the development issuer to exist at all.
    #[serde(default)]
    pub enabled: bool,
    /// The audience of its tokens. Default `hoopguard`.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Its issuer URL. Default `http://<admin listener>/dev`, where its discovery and JWKS are
    /// served.
    #[serde(default)]
    pub issuer: Option<String>,
}

fn default_audience() -> String {
    "hoopguard".into()
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// How long in-flight calls may take to finish after SIGINT/SIGTERM. Default `30s`.
    #[serde(default = "default_grace", with = "hoopguard_core::duration::serde")]
    pub shutdown_grace: Duration,
    /// How long a client may take to send a request's headers — and, on a kept-alive
    /// connection, to start its next request — before the connection is closed. Default `10s`.
    #[serde(
        default = "default_header_read_timeout",
        with = "hoopguard_core::duration::serde"
    )]
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed (a stalled body
    /// or answer). Default `5m`.
    #[serde(
        default = "default_idle_timeout",
        with = "hoopguard_core::duration::serde"
    )]
    pub idle_timeout: Duration,
    /// The most connections each listener holds open; beyond it new ones are closed at once.
    /// Default 4096.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// The most connections one client address holds open on a listener. Default 256.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            shutdown_grace: default_grace(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_connections_per_client(),
        }
    }
}

fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_max_connections() -> usize {
    4096
}

fn default_max_connections_per_client() -> usize {
    256
}

fn default_grace() -> Duration {
    Duration::from_secs(30)
}

/// Whether `path` lies inside `dir` (both made absolute, symbolic links resolved where they
/// exist).
pub(crate) fn inside(path: &Path, dir: &Path) -> bool {
    let abs = |p: &Path| {
        std::fs::canonicalize(p).unwrap_or_else(|_| {
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir().unwrap_or_default().join(p)
            };
            // The parent may exist even when the file does not.
            match (
                p.parent().and_then(|d| std::fs::canonicalize(d).ok()),
                p.file_name(),
            ) {
                (Some(d), Some(f)) => d.join(f),
                _ => p,
            }
        })
    };
    abs(path).starts_with(abs(dir))
}

/// A configuration error: where (file, key) and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {key}{sep}{message}", sep = if key.is_empty() { "" } else { ": " })]
pub struct ConfigError {
    /// The file, or `quickstart (built in)`.
    pub source_name: String,
    /// The full key path, such as `identity.issuers[0].audiences` (empty for file-level errors).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Where a configuration came from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A file on disk.
    File(PathBuf),
    /// The built-in quickstart.
    Quickstart,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Quickstart => f.write_str("quickstart (built in)"),
        }
    }
}

impl Config {
    /// Loads the file, or the built-in quickstart when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<(Config, Source), ConfigError> {
        let source = match path {
            Some(p) => Source::File(p.to_path_buf()),
            None => Source::Quickstart,
        };
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| ConfigError {
                source_name: source.to_string(),
                key: String::new(),
                message: format!("cannot read: {e}"),
            })?,
            None => QUICKSTART.to_string(),
        };
        let cfg = Config::parse(&text, &source.to_string(), &|name| std::env::var(name).ok())?;
        Ok((cfg, source))
    }

    /// Only the `[mask]` section of a config file (the built-in rules without one): what
    /// `hoopguard mask` needs, so a file holding just masking rules works.
    pub fn load_mask(path: Option<&Path>) -> Result<MaskConfig, ConfigError> {
        let Some(p) = path else {
            return Ok(Config::load(None)?.0.mask);
        };
        let source_name = p.display().to_string();
        let err = |key: String, message: String| ConfigError {
            source_name: source_name.clone(),
            key,
            message,
        };
        let text = std::fs::read_to_string(p)
            .map_err(|e| err(String::new(), format!("cannot read: {e}")))?;
        let mut value = table(&text, &source_name, &|name| std::env::var(name).ok())?;
        let Some(mask) = value.remove("mask") else {
            return Ok(MaskConfig::default());
        };
        let mask: MaskConfig = serde_path_to_error::deserialize(mask).map_err(|e| {
            err(
                format!("mask.{}", e.path()),
                e.into_inner().message().to_string(),
            )
        })?;
        Engine::new(&mask).map_err(|e| err(format!("mask.{}", e.key), e.message))?;
        Ok(mask)
    }

    /// Parses and validates configuration text; `env` looks up `${VARS}`.
    pub fn parse(
        text: &str,
        source_name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let err = |key: String, message: String| ConfigError {
            source_name: source_name.to_string(),
            key,
            message,
        };
        let value = table(text, source_name, env)?;
        let cfg: Config =
            serde_path_to_error::deserialize(toml::Value::Table(value)).map_err(|e| {
                // The path names the offending key itself, unknown keys included.
                let path = e.path().to_string();
                let key = if path == "." { String::new() } else { path };
                err(key, e.into_inner().message().to_string())
            })?;
        let mut cfg = cfg;
        // `${VAR:-}` gives an empty string: an empty optional setting is an absent one.
        cfg.aws
            .previous_gateway_keys
            .retain(|k| !k.trim().is_empty());
        for conn in cfg.aws.connections.values_mut() {
            for v in [
                &mut conn.role_arn,
                &mut conn.session_policy,
                &mut conn.external_id,
                &mut conn.endpoint,
                &mut conn.sts_endpoint,
                &mut conn.access_key_id,
                &mut conn.secret_access_key,
                &mut conn.session_token,
            ] {
                if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                    *v = None;
                }
            }
        }
        cfg.validate().map_err(|(k, m)| err(k, m))?;
        Ok(cfg)
    }

    /// Whether the recordings go to the shared database (`record.store`).
    pub fn records_shared(&self) -> bool {
        match self.record.store {
            RecordStoreName::Local => false,
            RecordStoreName::Database => true,
            RecordStoreName::Auto => self.store.is_shared(),
        }
    }

    /// The shared database's URL when the recordings are kept there.
    pub fn records_in_database(&self) -> Result<Option<String>, String> {
        if self.records_shared() {
            self.store.database_url()
        } else {
            Ok(None)
        }
    }

    fn validate_store(&self) -> Result<(), (String, String)> {
        let st = &self.store;
        if st.url.is_some() && st.url_file.is_some() {
            return Err((
                "store.url_file".into(),
                "give the database URL as `url` or `url_file`, not both".into(),
            ));
        }
        if let Some(u) = &st.url {
            if !(u.starts_with("postgres://") || u.starts_with("postgresql://")) {
                return Err((
                    "store.url".into(),
                    "the shared store is PostgreSQL: write postgres://user@host:5432/database (a password as ${VAR})".into(),
                ));
            }
        }
        let rec = &self.record;
        if rec.store == RecordStoreName::Database && !st.is_shared() {
            return Err((
                "record.store".into(),
                "`database` keeps the recordings in the shared store: set [store] url (or url_file) too".into(),
            ));
        }
        if self.records_shared() {
            if rec.signing_key_file.is_some() || rec.signing_key_env.is_some() {
                return Err((
                    "record.signing_key_file".into(),
                    "signed digests are not built yet for recordings in the shared database (they are hash-chained there); set record.store = \"local\" to keep signed recordings in each replica's data directory".into(),
                ));
            }
            if rec.max_size.is_some() {
                return Err((
                    "record.max_size".into(),
                    "applies to recordings in the data directory; in the shared database only record.max_age removes ended sessions (size is the database's to watch)".into(),
                ));
            }
        }
        if !st.is_shared() {
            return Ok(());
        }
        if st.revocation_stale_after <= st.revocation_poll {
            return Err((
                "store.revocation_stale_after".into(),
                "must be longer than store.revocation_poll".into(),
            ));
        }
        if self.identity.dev_issuer.as_ref().is_some_and(|d| d.enabled) {
            return Err((
                "identity.dev_issuer".into(),
                "the development issuer's key lives in one replica's data_dir, so replicas would not accept each other's tokens: with a shared [store], trust your IdP ([[identity.issuers]])".into(),
            ));
        }
        if self.listeners.aws.is_some() && self.aws.gateway_key.is_none() {
            return Err((
                "aws.gateway_key".into(),
                "with a shared [store], every replica must mint and verify the same pseudo-credentials: set aws.gateway_key (the same secret on each, e.g. \"${HOOPGUARD_GATEWAY_KEY}\")".into(),
            ));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let l = &self.listeners;
        if l.aws.is_none() && l.mcp.is_none() && l.admin.is_none() {
            return Err((
                "listeners".into(),
                "no listener configured; add [listeners.aws], [listeners.mcp] or [listeners.admin] with `bind = \"127.0.0.1:PORT\"`".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (name, listener) in self.listener_list() {
            if listener.bind.port() != 0 && !seen.insert(listener.bind) {
                return Err((
                    format!("listeners.{name}.bind"),
                    format!("{} is already used by another listener", listener.bind),
                ));
            }
        }
        self.validate_store()?;
        if let Some(url) = &self.telemetry.otlp_endpoint {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err((
                    "telemetry.otlp_endpoint".into(),
                    "traces are sent over OTLP/HTTP: write the collector's URL, such as http://collector:4318".into(),
                ));
            }
        }
        if self
            .telemetry
            .audit
            .as_deref()
            .is_some_and(|a| a.trim().is_empty())
        {
            return Err((
                "telemetry.audit".into(),
                "write a file path or `stdout`, or leave it out for no audit stream".into(),
            ));
        }
        let dev_enabled = self.identity.dev_issuer.as_ref().is_some_and(|d| d.enabled);
        if self.identity.issuers.is_empty() && !dev_enabled {
            return Err((
                "identity".into(),
                "no way to authenticate callers: add an [[identity.issuers]] entry, or enable [identity.dev_issuer] for local use".into(),
            ));
        }
        let mut issuers = HashSet::new();
        for (i, iss) in self.identity.issuers.iter().enumerate() {
            iss.validate()
                .map_err(|e| (format!("identity.issuers[{i}].{}", e.key), e.message))?;
            if !issuers.insert(iss.issuer.trim_end_matches('/')) {
                return Err((
                    format!("identity.issuers[{i}].issuer"),
                    format!("`{}` is listed twice", iss.issuer),
                ));
            }
        }
        // Several issuers: each is named, so their subjects and groups never collide.
        let several = self.identity.issuers.len() + usize::from(dev_enabled) > 1;
        let mut names = HashSet::new();
        if dev_enabled {
            names.insert("dev".to_string());
        }
        for (i, iss) in self.identity.issuers.iter().enumerate() {
            match &iss.name {
                None if several => {
                    return Err((
                        format!("identity.issuers[{i}].name"),
                        "several issuers are trusted: name each (`name = \"corp\"`); policies then write another issuer's groups as `corp:managers` (the development issuer is `dev`; bare names mean the first issuer's)".into(),
                    ));
                }
                Some(n) if !names.insert(n.clone()) => {
                    return Err((
                        format!("identity.issuers[{i}].name"),
                        format!("`{n}` names another issuer too"),
                    ));
                }
                _ => {}
            }
        }
        if let Some(f) = &self.record.signing_key_file {
            if self.record.signing_key_env.is_some() {
                return Err((
                    "record.signing_key_env".into(),
                    "give the digest signing key as a file or an environment variable, not both"
                        .into(),
                ));
            }
            if inside(f, &self.data_dir) {
                return Err((
                    "record.signing_key_file".into(),
                    format!(
                        "{} is inside data_dir: whoever can rewrite the recordings could read the key and sign anything; keep it elsewhere (a secret mount, /etc/hoopguard)",
                        f.display()
                    ),
                ));
            }
        }
        if self
            .listeners
            .mcp
            .as_ref()
            .is_some_and(|l| l.audiences.is_some())
        {
            return Err((
                "listeners.mcp.audiences".into(),
                "the MCP listener accepts tokens for its resource URI only; set `mcp.resource` instead".into(),
            ));
        }
        if let Err(e) = self.compile_policy() {
            let what = if e.list == "limits" { "limit" } else { "rule" };
            return Err((
                format!("policy.{}[{}].{}", e.list, e.index, e.key),
                format!("({what} `{}`) {}", e.name, e.message),
            ));
        }
        self.validate_limit_connections()?;
        if self.aws.gateway_key.as_ref().is_some_and(|k| k.len() < 32) {
            return Err(("aws.gateway_key".into(), "must be at least 32 bytes".into()));
        }
        if !self.aws.previous_gateway_keys.is_empty() && self.aws.gateway_key.is_none() {
            return Err((
                "aws.previous_gateway_keys".into(),
                "a rotation needs the new key too: set aws.gateway_key".into(),
            ));
        }
        for (i, k) in self.aws.previous_gateway_keys.iter().enumerate() {
            if k.len() < 32 {
                return Err((
                    format!("aws.previous_gateway_keys[{i}]"),
                    "must be at least 32 bytes".into(),
                ));
            }
            if Some(k) == self.aws.gateway_key.as_ref() {
                return Err((
                    format!("aws.previous_gateway_keys[{i}]"),
                    "is the current gateway_key; list only the keys it replaces".into(),
                ));
            }
        }
        if self.aws.credentials_ttl < Duration::from_secs(300) {
            return Err((
                "aws.credentials_ttl".into(),
                "must be at least 5m (SDKs refresh a few minutes before expiry)".into(),
            ));
        }
        for (name, conn) in &self.aws.connections {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err((
                    format!("aws.connections.{name}"),
                    format!("`{name}` is not a connection name (letters, digits, - and _)"),
                ));
            }
            conn.validate()
                .map_err(|(k, m)| (format!("aws.connections.{name}.{k}"), m))?;
        }
        self.mcp.validate()?;
        if self.record.segment_size < 4096 {
            return Err(("record.segment_size".into(), "must be at least 4KiB".into()));
        }
        if self.record.retention_interval < Duration::from_secs(1) {
            return Err((
                "record.retention_interval".into(),
                "must be at least 1s".into(),
            ));
        }
        if self.aws.max_policy_body == 0 {
            return Err(("aws.max_policy_body".into(), "must be more than 0".into()));
        }
        if let Err(e) = Engine::new(&self.mask) {
            return Err((format!("mask.{}", e.key), e.message));
        }
        for (i, hook) in self.approvals.webhooks.iter().enumerate() {
            if !(hook.url.starts_with("https://") || hook.url.starts_with("http://")) {
                return Err((
                    format!("approvals.webhooks[{i}].url"),
                    "must be an http(s) URL".into(),
                ));
            }
        }
        if let Some(dev) = self.identity.dev_issuer.as_ref().filter(|d| d.enabled) {
            if dev.audience.is_empty() {
                return Err((
                    "identity.dev_issuer.audience".into(),
                    "must not be empty".into(),
                ));
            }
            if dev.issuer.is_none() && self.listeners.admin.is_none() {
                return Err((
                    "identity.dev_issuer".into(),
                    "needs [listeners.admin] (its discovery and keys are served there) or an explicit `issuer`".into(),
                ));
            }
            if issuers.contains(self.dev_issuer_url().unwrap_or_default().as_str()) {
                return Err((
                    "identity.dev_issuer.issuer".into(),
                    "the same issuer is also listed in [[identity.issuers]]".into(),
                ));
            }
        }
        Ok(())
    }

    /// A limit's `connections` entry without wildcards must name a connection (an AWS
    /// connection, the MCP upstream's name or URL, or a `stdio:` command of `hoopguard wrap`):
    /// a typo would silently count nothing.
    fn validate_limit_connections(&self) -> Result<(), (String, String)> {
        let mcp = self.mcp.upstream.as_ref();
        let known = |c: &str| {
            self.aws.connections.contains_key(c)
                || mcp.is_some_and(|u| u.name.as_deref().unwrap_or(&u.url) == c)
                || c.starts_with("stdio:")
        };
        for (i, l) in self.policy.limits.iter().enumerate() {
            for (j, c) in l.connections.iter().enumerate() {
                if !c.contains(['*', '?']) && !known(c) {
                    let mut names: Vec<&str> =
                        self.aws.connections.keys().map(String::as_str).collect();
                    names.extend(mcp.map(|u| u.name.as_deref().unwrap_or(&u.url)));
                    return Err((
                        format!("policy.limits[{i}].connections[{j}]"),
                        format!(
                            "(limit `{}`) `{c}` is not a connection; the connections are: {}",
                            l.name,
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The compiled policy.
    pub fn compile_policy(&self) -> Result<Policy, hoopguard_core::policy::RuleError> {
        Policy::compile_with_limits(&self.policy.rules, &self.policy.limits)
    }

    /// The configured listeners with their names.
    pub fn listener_list(&self) -> Vec<(&'static str, &Listener)> {
        let l = &self.listeners;
        [("aws", &l.aws), ("mcp", &l.mcp), ("admin", &l.admin)]
            .into_iter()
            .filter_map(|(n, x)| x.as_ref().map(|x| (n, x)))
            .collect()
    }

    /// The MCP listener's resource URI: `mcp.resource`, else `http://<bind><mcp.path>`.
    pub fn mcp_resource(&self) -> Option<String> {
        let l = self.listeners.mcp.as_ref()?;
        Some(
            self.mcp
                .resource
                .clone()
                .unwrap_or_else(|| format!("http://{}{}", l.bind, self.mcp.path)),
        )
    }

    /// The token audiences the `aws` or `admin` listener accepts: its `audiences` setting, by
    /// default every issuer's audience but the MCP resource URI — so a token for the MCP
    /// resource opens neither the credentials endpoint nor the admin API.
    pub fn listener_audiences(&self, name: &str) -> Vec<String> {
        let listener = match name {
            "aws" => &self.listeners.aws,
            _ => &self.listeners.admin,
        };
        if let Some(a) = listener.as_ref().and_then(|l| l.audiences.clone()) {
            return a;
        }
        let resource = self.mcp_resource();
        let mut out: Vec<String> = self
            .identity
            .issuers
            .iter()
            .flat_map(|i| i.audiences.iter().cloned())
            .chain(
                self.identity
                    .dev_issuer
                    .as_ref()
                    .filter(|d| d.enabled)
                    .map(|d| d.audience.clone()),
            )
            .filter(|a| Some(a) != resource.as_ref())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The development issuer's URL, when it is enabled.
    pub fn dev_issuer_url(&self) -> Option<String> {
        let dev = self.identity.dev_issuer.as_ref().filter(|d| d.enabled)?;
        match (&dev.issuer, &self.listeners.admin) {
            (Some(i), _) => Some(i.trim_end_matches('/').to_string()),
            (None, Some(admin)) => Some(format!("http://{}/dev", admin.bind)),
            (None, None) => None,
        }
    }

    /// A few lines saying what is configured, for `hoopguard check`.
    pub fn summary(&self, source: &Source) -> String {
        let mut out = format!("config OK: {source}\n");
        out.push_str(&format!("  data_dir: {}\n", self.data_dir.display()));
        // Never the URL itself: it may hold a password.
        out.push_str(match (&self.store.url, &self.store.url_file) {
            (Some(_), _) => "  store: PostgreSQL (approvals, revocations and tool pins shared by replicas)\n",
            (None, Some(_)) => {
                "  store: PostgreSQL, URL from store.url_file (approvals, revocations and tool pins shared by replicas)\n"
            }
            (None, None) => "  store: embedded (SQLite in data_dir; one process)\n",
        });
        out.push_str(if self.records_shared() {
            "  recordings: in the shared database (one chain per session across replicas)\n"
        } else {
            "  recordings: in data_dir/recordings\n"
        });
        if let Some(a) = &self.telemetry.audit {
            out.push_str(&format!("  audit stream: {a} (hoopguard.decision.v1)\n"));
        }
        if let Some(url) = self.telemetry.traces_url() {
            out.push_str(&format!("  traces: OTLP/HTTP to {url}\n"));
        }
        for (name, l) in self.listener_list() {
            out.push_str(&format!("  listener {name}: {}\n", l.bind));
        }
        if let (Some(url), Some(dev)) = (self.dev_issuer_url(), &self.identity.dev_issuer) {
            out.push_str(&format!(
                "  identity: development issuer {url} (audience {}) — for local use only\n",
                dev.audience
            ));
        }
        for iss in &self.identity.issuers {
            let keys = match &iss.jwks_url {
                Some(u) => format!("JWKS {u}"),
                None => "keys by OIDC discovery".into(),
            };
            out.push_str(&format!(
                "  identity: issuer {} ({keys}; audiences {}; algorithms {})\n",
                iss.issuer,
                iss.audiences.join(", "),
                iss.algorithms.join(", ")
            ));
        }
        let mut counts = [0usize; 3];
        for r in &self.policy.rules {
            counts[r.effect as usize] += 1;
        }
        out.push_str(&format!(
            "  policy: {} rules ({} allow, {} deny, {} approve); anything unmatched is denied\n",
            self.policy.rules.len(),
            counts[hoopguard_core::policy::Effect::Allow as usize],
            counts[hoopguard_core::policy::Effect::Deny as usize],
            counts[hoopguard_core::policy::Effect::Approve as usize]
        ));
        for l in &self.policy.limits {
            out.push_str(&format!(
                "  limit `{}`: at most {} calls per {} {} ({})\n",
                l.name,
                l.calls,
                humantime::format_duration(l.per),
                match (
                    l.by.contains(&hoopguard_core::policy::CountBy::Caller),
                    l.by.contains(&hoopguard_core::policy::CountBy::Connection),
                ) {
                    (true, false) => "for each caller",
                    (false, true) => "for each connection, all callers together",
                    (true, true) => "for each caller on each connection",
                    (false, false) => "for all calls together",
                },
                if self.store.is_shared() {
                    "counted across replicas"
                } else {
                    "counted in this process"
                }
            ));
        }
        out.push_str(&format!(
            "  mask: {} field names, {} custom rules, {} built-in rules off\n",
            self.mask.fields.len(),
            self.mask.rules.len(),
            self.mask.disable.len()
        ));
        if !self.approvals.webhooks.is_empty() {
            out.push_str(&format!(
                "  approvals: {} webhook(s)\n",
                self.approvals.webhooks.len()
            ));
        }
        out.push_str(&format!(
            "  shutdown grace: {}\n",
            hoopguard_core::duration::format(self.server.shutdown_grace)
        ));
        out
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn substitute_table(
    table: &mut toml::Table,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    for (k, v) in table.iter_mut() {
        substitute(v, &join(path, k), env)?;
    }
    Ok(())
}

fn substitute(
    value: &mut toml::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    match value {
        toml::Value::String(s) => {
            *s = expand(s, env).map_err(|m| (path.to_string(), m))?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{path}[{i}]"), env)?;
            }
        }
        toml::Value::Table(t) => substitute_table(t, path, env)?,
        _ => {}
    }
    Ok(())
}

/// Expands `${NAME}` and `${NAME:-default}`; `$${` stands for a literal `${`.
fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or_else(|| {
                "unclosed `${`; write `${NAME}` (or `$${` for a literal)".to_string()
            })?;
            let inner = &tail[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{inner}}}` is not a valid variable reference"));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (write `${{{name}:-default}}` for a fallback)"
                    ));
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", &|name| match name {
            "SECRET" => Some("s3cr3t-value-that-is-long-enough-32b".into()),
            "PORT" => Some("9999".into()),
            _ => None,
        })
    }

    #[test]
    fn gateway_keys_are_never_printed_and_telemetry_is_checked() {
        let cfg = parse(&format!(
            "{ISSUER}[aws]\ngateway_key = \"${{SECRET}}\"\nprevious_gateway_keys = [\"0ld-k3y-that-is-long-enough-for-32-bytes\"]\n[telemetry]\naudit = \"stdout\"\notlp_endpoint = \"http://collector:4318/\"\n"
        ))
        .unwrap();
        let shown = format!("{:?}", cfg.aws);
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("0ld-k3y"),
            "{shown}"
        );
        assert!(shown.contains("gateway_key: Some(\"(set)\")"), "{shown}");
        assert_eq!(
            cfg.telemetry.traces_url().as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let summary = cfg.summary(&Source::Quickstart);
        assert!(summary.contains("audit stream: stdout"), "{summary}");
        let e = parse(&format!(
            "{ISSUER}[telemetry]\notlp_endpoint = \"collector:4317\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "telemetry.otlp_endpoint", "{e}");
    }

    const ISSUER: &str = r#"
[listeners.aws]
bind = "127.0.0.1:8787"
[[identity.issuers]]
issuer = "https://idp.example.com"
audiences = ["hoopguard"]
"#;

    #[test]
    fn record_sizes_and_retention_parse_with_units() {
        let cfg: Config = toml::from_str(
            "[record]\nsegment_size = \"8MiB\"\nmax_size = 1073741824\nmax_age = \"30d\"\nauditors = [\"security\"]\n",
        )
        .unwrap();
        assert_eq!(cfg.record.segment_size, 8 << 20);
        assert_eq!(cfg.record.max_size, Some(1 << 30));
        assert_eq!(cfg.record.max_age, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(cfg.record.body_cap, 64 * 1024);
        for bad in ["segment_size = \"8 parsecs\"", "max_size = \"lots\""] {
            let e = toml::from_str::<Config>(&format!("[record]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("size"), "{e}");
        }
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
    }

    #[test]
    fn quickstart_is_valid() {
        let cfg = Config::parse(QUICKSTART, "quickstart", &|_| None).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("./hoopguard-data"));
        assert_eq!(
            cfg.dev_issuer_url().as_deref(),
            Some("http://127.0.0.1:8789/dev")
        );
        assert_eq!(cfg.listener_list().len(), 3);
    }

    #[test]
    fn unknown_keys_are_named_with_their_full_path() {
        let e = parse(&format!("{ISSUER}colour = \"blue\"\n")).unwrap_err();
        assert_eq!(e.key, "identity.issuers[0].colour", "{e}");
        let e = parse(&format!(
            "{ISSUER}[listeners.web]\nbind = \"127.0.0.1:1\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "listeners.web", "{e}");
        let e = parse(&format!("typo = 1\n{ISSUER}")).unwrap_err();
        assert_eq!(e.key, "typo", "{e}");
        assert!(
            e.to_string().starts_with("test.toml: typo: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = parse("[listeners.aws]\nbind = \"not-an-address\"\n").unwrap_err();
        assert_eq!(e.key, "listeners.aws.bind", "{e}");
        let e = parse(&format!("{ISSUER}leeway = \"soon\"\n")).unwrap_err();
        assert_eq!(e.key, "identity.issuers[0].leeway", "{e}");
        assert!(e.message.contains("15m"), "{e}");
    }

    #[test]
    fn durations_and_env_substitution() {
        let cfg = parse(&format!(
            "[server]\nshutdown_grace = \"1m30s\"\n[listeners.admin]\nbind = \"127.0.0.1:${{PORT}}\"\n{ISSUER}hmac_secret = \"${{SECRET}}\"\nalgorithms = [\"HS256\"]\njwks_ttl = \"15m\"\n"
        ))
        .unwrap();
        assert_eq!(cfg.server.shutdown_grace, Duration::from_secs(90));
        assert_eq!(cfg.listeners.admin.unwrap().bind.port(), 9999);
        let iss = &cfg.identity.issuers[0];
        assert_eq!(
            iss.hmac_secret.as_deref(),
            Some("s3cr3t-value-that-is-long-enough-32b")
        );
        assert_eq!(iss.jwks_ttl, Duration::from_secs(900));
    }

    #[test]
    fn missing_env_var_names_key_and_variable() {
        let e = parse(&format!("{ISSUER}hmac_secret = \"${{NOPE}}\"\n")).unwrap_err();
        assert_eq!(e.key, "identity.issuers[0].hmac_secret");
        assert!(e.message.contains("NOPE"));
        let cfg = parse(&format!(
            "data_dir = \"${{NOPE:-/tmp/x}}/$${{literal}}\"\n{ISSUER}"
        ))
        .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/x/${literal}"));
        let e = parse(&format!("data_dir = \"${{UNCLOSED\"\n{ISSUER}")).unwrap_err();
        assert_eq!(e.key, "data_dir");
    }

    #[test]
    fn policy_errors_name_the_rule() {
        let e = parse(&format!(
            "{ISSUER}[[policy.rules]]\nname = \"ok\"\neffect = \"allow\"\ntools = [\"t\"]\n[[policy.rules]]\nname = \"bad\"\neffect = \"allow\"\nactions = [\"s3:*\"]\nresources = [\"bucket\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "policy.rules[1].resources", "{e}");
        assert!(e.message.contains("rule `bad`"), "{e}");
        let e = parse(&format!(
            "{ISSUER}[[policy.rules]]\nname = \"x\"\neffect = \"permit\"\ntools = [\"t\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "policy.rules[0].effect", "{e}");
        assert!(e.message.contains("unknown variant `permit`"), "{e}");
    }

    #[test]
    fn previous_gateway_keys_need_the_new_key_and_32_bytes_each() {
        let new = "gateway_key = \"${SECRET}\"\n";
        let old = "previous_gateway_keys = [\"an-old-gateway-key-of-at-least-32-bytes\"]\n";
        let cfg = parse(&format!("{ISSUER}[aws]\n{new}{old}")).unwrap();
        assert_eq!(cfg.aws.previous_gateway_keys.len(), 1);
        let e = parse(&format!("{ISSUER}[aws]\n{old}")).unwrap_err();
        assert_eq!(e.key, "aws.previous_gateway_keys", "{e}");
        let e = parse(&format!(
            "{ISSUER}[aws]\n{new}previous_gateway_keys = [\"short\"]\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "aws.previous_gateway_keys[0]", "{e}");
        let e = parse(&format!(
            "{ISSUER}[aws]\n{new}previous_gateway_keys = [\"${{SECRET}}\"]\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("is the current gateway_key"), "{e}");
        // Outside a rotation the deployment configs leave the variable unset: no key at all.
        let cfg = parse(&format!(
            "{ISSUER}[aws]\n{new}previous_gateway_keys = [\"${{HOOPGUARD_UNSET_KEY:-}}\"]\n"
        ))
        .unwrap();
        assert!(cfg.aws.previous_gateway_keys.is_empty());
    }

    #[test]
    fn limits_are_checked_and_named_by_their_key() {
        let limit =
            "[[policy.limits]]\nname = \"l\"\nactions = [\"s3:*\"]\ncalls = 0\nper = \"1m\"\n";
        let e = parse(&format!("{ISSUER}{limit}")).unwrap_err();
        assert_eq!(e.key, "policy.limits[0].calls", "{e}");
        assert!(e.to_string().contains("(limit `l`)"), "{e}");
        let ok = limit.replace("calls = 0", "calls = 5");
        let cfg = parse(&format!("{ISSUER}{ok}")).unwrap();
        let summary = cfg.summary(&Source::Quickstart);
        assert!(
            summary.contains(
                "limit `l`: at most 5 calls per 1m for each caller (counted in this process)"
            ),
            "{summary}"
        );
        // A limit on connections: literal names must name one (a typo would count nothing).
        let on = |conns: &str| {
            format!(
                "{ISSUER}[aws.connections.prod]\nbroker = \"assume_role\"\nrole_arn = \"arn:aws:iam::123456789012:role/r\"\n{}",
                ok.replace(
                    "calls = 5",
                    &format!("calls = 5\nconnections = {conns}\nby = [\"connection\"]")
                )
            )
        };
        let e = parse(&on("[\"prdo\"]")).unwrap_err();
        assert_eq!(e.key, "policy.limits[0].connections[0]", "{e}");
        assert!(e.message.contains("the connections are: prod"), "{e}");
        let cfg = parse(&on("[\"prod\", \"staging-*\"]")).unwrap();
        assert!(
            cfg.summary(&Source::Quickstart)
                .contains("per 1m for each connection, all callers together"),
            "{}",
            cfg.summary(&Source::Quickstart)
        );
    }

    #[test]
    fn a_shared_store_needs_a_shared_gateway_key_and_an_idp_and_never_shows_its_url() {
        let store = "[store]\nurl = \"postgres://hg:${SECRET}@db.internal:5432/hg\"\n";
        // Every replica must verify every other's pseudo-credentials.
        let e = parse(&format!("{ISSUER}{store}")).unwrap_err();
        assert_eq!(e.key, "aws.gateway_key", "{e}");
        let key = "[aws]\ngateway_key = \"${SECRET}\"\n";
        let cfg = parse(&format!("{ISSUER}{store}{key}")).unwrap();
        assert!(cfg.store.is_shared());
        assert_eq!(
            cfg.store.database_url().unwrap().unwrap(),
            "postgres://hg:s3cr3t-value-that-is-long-enough-32b@db.internal:5432/hg"
        );
        let summary = cfg.summary(&Source::Quickstart);
        assert!(summary.contains("store: PostgreSQL"), "{summary}");
        assert!(
            !summary.contains("s3cr3t") && !summary.contains("db.internal"),
            "{summary}"
        );
        // The development issuer's key is one replica's.
        let dev = "[identity.dev_issuer]\nenabled = true\n";
        let e = parse(&format!("{ISSUER}{store}{key}{dev}")).unwrap_err();
        assert_eq!(e.key, "identity.dev_issuer", "{e}");
        // Not some other database; not two URLs; a staleness allowance above the poll.
        let e = parse(&format!("{ISSUER}[store]\nurl = \"mysql://x\"\n")).unwrap_err();
        assert_eq!(e.key, "store.url", "{e}");
        let e = parse(&format!(
            "{ISSUER}{store}url_file = \"/run/secrets/db\"\n{key}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "store.url_file", "{e}");
        let e = parse(&format!("{ISSUER}{store}revocation_poll = \"5s\"\n{key}")).unwrap_err();
        assert_eq!(e.key, "store.revocation_stale_after", "{e}");
        // The twin: without [store], the embedded store, as before.
        let cfg = parse(ISSUER).unwrap();
        assert!(!cfg.store.is_shared());
        assert!(cfg.summary(&Source::Quickstart).contains("store: embedded"));
    }

    #[test]
    fn the_database_url_can_come_from_a_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("db-url");
        std::fs::write(&f, "postgres://hg@db:5432/hg\n").unwrap();
        let text = format!(
            "{ISSUER}[store]\nurl_file = {:?}\n[aws]\ngateway_key = \"${{SECRET}}\"\n",
            f.display().to_string()
        );
        let cfg = parse(&text).unwrap();
        assert_eq!(
            cfg.store.database_url().unwrap().as_deref(),
            Some("postgres://hg@db:5432/hg")
        );
        std::fs::remove_file(&f).unwrap();
        let e = cfg.store.database_url().unwrap_err();
        assert!(e.starts_with("store.url_file: cannot read"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let e = parse("[[identity.issuers]]\nissuer = \"https://a\"\naudiences = [\"x\"]\n")
            .unwrap_err();
        assert_eq!(e.key, "listeners");
        let e = parse("[listeners.aws]\nbind = \"127.0.0.1:1\"\n").unwrap_err();
        assert_eq!(e.key, "identity");
        let e = parse(&format!("{ISSUER}algorithms = [\"none\"]\n")).unwrap_err();
        assert_eq!(e.key, "identity.issuers[0].algorithms");
        let e = parse(&format!(
            "{ISSUER}[listeners.mcp]\nbind = \"127.0.0.1:8787\"\n"
        ))
        .unwrap_err();
        assert_eq!(e.key, "listeners.mcp.bind");
        let e = parse(
            "[listeners.aws]\nbind = \"127.0.0.1:1\"\n[identity.dev_issuer]\nenabled = true\n",
        )
        .unwrap_err();
        assert_eq!(e.key, "identity.dev_issuer");
        let e = parse("not toml at all [").unwrap_err();
        assert_eq!(e.key, "");
        assert!(e.to_string().contains("not valid TOML"));
    }
}
