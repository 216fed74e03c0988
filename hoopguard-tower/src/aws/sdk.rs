//! Guarding the AWS calls a Rust service makes on behalf of its callers, in-process (feature
//! `aws-sdk`): an MCP server built on rmcp and aws-sdk-rust gets per-caller policy, approvals,
//! brokered credentials, masking and recording for the AWS calls its tools make, the same as
//! agents get through `hoopguard serve` — and CloudTrail and the recording name the human
//! who called the tool, not the server.
//!
//! [`CallerAws`] holds the AWS [`Stack`](super::Stack) (in front of a real HTTP client) and the
//! [`Minter`]. [`CallerAws::sdk_config`] gives, for one caller, an [`SdkConfig`] whose
//! credentials are pseudo-credentials sealed for that caller and whose HTTP client is a
//! connector into the stack: each SDK request is signed by the SDK itself, then verified,
//! classified, decided (an approval-gated call fails with the approval id in its message),
//! recorded, re-signed with the caller's brokered credentials (`assume_role` with the caller as
//! source identity), forwarded and its answer masked — all in this process.
//!
//! The caller is explicit: a tool handler reads it from the request the guarded MCP service
//! got ([`CallerAws::for_mcp_request`], from rmcp's `Extension<http::request::Parts>`), so no
//! task-local can leak one caller's identity into another's task. Calls made for an MCP
//! request are recorded in that MCP session's recording, next to the tool call.
//!
//! `examples/guarded-aws-mcp-server.rs` is a complete server; in a tool:
//!
//! ```ignore
//! # async fn tool(aws: hoopguard_tower::aws::sdk::CallerAws, parts: http::request::Parts)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! // rmcp hands the tool `Extension(parts): Extension<http::request::Parts>`.
//! let config = aws.for_mcp_request(&parts)?;
//! let s3 = aws_sdk_s3::Client::from_conf(
//!     aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build(),
//! );
//! let buckets = s3.list_buckets().send().await?; // decided for the MCP caller
//! # let _ = buckets; Ok(()) }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_types::SdkConfig;
use aws_types::region::Region;
use bytes::Bytes;
use hoopguard_core::aws::{Minter, PseudoCredentials};
use hoopguard_core::identity::Identity;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

use super::decide::RecordInto;
use crate::BoxError;

/// The host the SDK is pointed at: requests never leave the process under it.
pub const IN_PROCESS_HOST: &str = "hoopguard.in-process";

/// The largest request body the connector takes from the SDK (it is inspected whole).
const MAX_SDK_BODY: usize = 64 * 1024 * 1024;

/// The AWS stack as the connector calls it.
type StackService = BoxCloneSyncService<
    http::Request<Full<Bytes>>,
    http::Response<UnsyncBoxBody<Bytes, BoxError>>,
    Infallible,
>;

/// Why no SDK configuration was made for a caller.
#[derive(Debug, thiserror::Error)]
pub enum CallerError {
    /// The request carries no verified caller (no `AuthLayer` before the service).
    #[error("the request has no verified caller: guard the MCP service with hoopguard's Stack")]
    NoCaller,
    /// Pseudo-credentials could not be made (the caller's token expires within a minute).
    #[error("no AWS credentials for this caller: {0}")]
    Credentials(String),
}

/// Per-caller AWS guarding for a service's own AWS calls. See the [module docs](self).
#[derive(Clone)]
pub struct CallerAws {
    minter: Arc<Minter>,
    stack: StackService,
    connection: String,
    region: String,
    ttl: Duration,
    /// Pseudo-credentials by caller, reused until near their expiry (one credential session,
    /// and so one brokered role session, per caller rather than per call).
    cache: Arc<Mutex<HashMap<String, PseudoCredentials>>>,
}

impl std::fmt::Debug for CallerAws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerAws")
            .field("connection", &self.connection)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl CallerAws {
    /// Guards SDK calls through `stack` (an [`aws::Stack`](super::Stack)'s service in front of
    /// a real client, built with the same `minter`), as callers of `connection` in `region`,
    /// with pseudo-credentials of at most an hour.
    pub fn new<S, B>(minter: Arc<Minter>, stack: S, connection: &str, region: &str) -> Self
    where
        S: Service<http::Request<Full<Bytes>>, Response = http::Response<B>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let stack =
            BoxCloneSyncService::new(stack.map_response(|r: http::Response<B>| {
                r.map(|b| b.map_err(Into::into).boxed_unsync())
            }));
        CallerAws {
            minter,
            stack,
            connection: connection.into(),
            region: region.into(),
            ttl: Duration::from_secs(3600),
            cache: Default::default(),
        }
    }

    /// The SDK configuration for the MCP caller of `parts`, the HTTP request a guarded MCP
    /// service got (rmcp hands it to tools as `Extension<http::request::Parts>`); its AWS calls
    /// are recorded in that MCP session.
    pub fn for_mcp_request(&self, parts: &http::request::Parts) -> Result<SdkConfig, CallerError> {
        let who = crate::auth::caller(&parts.extensions).ok_or(CallerError::NoCaller)?;
        let session = parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let recording = crate::mcp::recording_id(session, &who.subject);
        self.sdk_config(who, Some(recording))
    }

    /// The SDK configuration for `who`; with `recording`, its calls are recorded there rather
    /// than in a credential session of their own.
    pub fn sdk_config(
        &self,
        who: &Identity,
        recording: Option<String>,
    ) -> Result<SdkConfig, CallerError> {
        let creds = self.credentials(who)?;
        let connector = Connector {
            stack: self.stack.clone(),
            recording: recording.map(RecordInto),
        };
        Ok(SdkConfig::builder()
            .behavior_version(
                aws_smithy_runtime_api::client::behavior_version::BehaviorVersion::latest(),
            )
            .region(Region::new(self.region.clone()))
            .endpoint_url(format!("http://{IN_PROCESS_HOST}"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                creds.access_key_id,
                creds.secret_access_key,
                Some(creds.token),
                None,
                "hoopguard-caller",
            )))
            .http_client(SharedHttpClient::new(connector))
            .build())
    }

    fn credentials(&self, who: &Identity) -> Result<PseudoCredentials, CallerError> {
        let key = format!(
            "{}\0{}\0{}",
            who.principal(),
            who.issuer,
            who.groups.join(",")
        );
        let now = SystemTime::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |c: &PseudoCredentials| {
            humantime::parse_rfc3339(&c.expiration)
                .is_ok_and(|exp| exp > now + Duration::from_secs(120))
        };
        if let Some(c) = cache.get(&key).filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = self
            .minter
            .mint(who, &self.connection, self.ttl)
            .map_err(|e| CallerError::Credentials(e.to_string()))?;
        cache.retain(|_, c| fresh(c));
        cache.insert(key, c.clone());
        Ok(c)
    }
}

/// The SDK's HTTP client: into the stack, in-process.
#[derive(Clone)]
struct Connector {
    stack: StackService,
    recording: Option<RecordInto>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

impl HttpClient for Connector {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let stack = self.stack.clone();
        let recording = self.recording.clone();
        HttpConnectorFuture::new(async move {
            let req = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(e.into()))?;
            let (mut parts, body) = req.into_parts();
            let bytes = match body.bytes() {
                Some(b) => Bytes::copy_from_slice(b),
                None => http_body_util::Limited::new(body, MAX_SDK_BODY)
                    .collect()
                    .await
                    .map_err(ConnectorError::user)?
                    .to_bytes(),
            };
            // What a server would see: the signed host, origin-form.
            if let Some(authority) = parts.uri.authority() {
                if !parts.headers.contains_key(http::header::HOST) {
                    let host = http::HeaderValue::from_str(authority.as_str())
                        .map_err(|e| ConnectorError::user(e.into()))?;
                    parts.headers.insert(http::header::HOST, host);
                }
            }
            if let Some(pq) = parts.uri.path_and_query() {
                parts.uri = pq
                    .as_str()
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| ConnectorError::user(e.into()))?;
            }
            if let Some(r) = recording {
                parts.extensions.insert(r);
            }
            let resp = stack
                .oneshot(http::Request::from_parts(parts, Full::new(bytes)))
                .await
                .unwrap_or_else(|never| match never {});
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map_err(ConnectorError::io)?.to_bytes();
            HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from(bytes)))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}
