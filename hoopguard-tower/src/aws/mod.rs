//! The AWS data path as tower layers: a caller signs with hoopguard's pseudo-credentials, and
//! its call reaches AWS — re-signed with real credentials for that caller — only if the policy
//! allows exactly what AWS will execute.
//!
//! One layer per module, in this order (what [`Stack`] assembles):
//!
//! 1. [`SigV4Verify`] ([`verify`]): the caller's signature, from the head first (nothing of an
//!    unauthenticated body is read); the body buffered for inspection or streamed as a checked
//!    [`AwsBody`]; the request rewritten into what AWS will receive (path-style S3, no presign
//!    parameters, only forwarded headers). Inserts [`Verified`](hoopguard_core::aws::Verified),
//!    `Arc<Identity>`, [`ErrorFormat`].
//! 2. [`Classify`] ([`classify`]): operation, IAM actions, resources, parameters, read the way
//!    the service's protocol says. Inserts [`AwsCall`].
//! 3. [`Decide`] ([`decide`]): policy and approvals (bound to the exact request), the call's
//!    recording before it goes on. Inserts the [`Verdict`](crate::policy::Verdict).
//! 4. [`Resign`] ([`resign`]): brokered credentials, the allowlisted endpoint, SigV4 again, any
//!    HTTP client.
//!
//! Outside them, [`MaskLayer`](crate::mask::MaskLayer) masks the answers and
//! [`RecordLayer`](crate::record::RecordLayer) records them. Each layer refuses, in the
//! caller's protocol, a request the layers before it did not prepare: leaving one out fails
//! closed, never open.
//!
//! ```no_run
//! # async fn run(minter: std::sync::Arc<hoopguard_core::aws::Minter>,
//! #     guard: hoopguard_tower::policy::Guard,
//! #     broker: hoopguard_core::aws::broker::Broker) {
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use hoopguard_tower::aws::{Connection, Stack, StreamBody};
//!
//! let connections = HashMap::from([("default".to_string(), Connection::new(broker))]);
//! // Any client of `http::Request<StreamBody>`: hyper's, reqwest's through a shim, a test's.
//! let client = tower::service_fn(|_req: http::Request<StreamBody>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
//! });
//! let service = Stack::new(minter, guard, Arc::new(connections)).service(client);
//! # let _ = service;
//! # }
//! ```

pub mod body;
pub mod classify;
pub mod decide;
pub mod refusal;
pub mod resign;
#[cfg(feature = "aws-sdk")]
pub mod sdk;
pub mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use body::{AwsBody, StreamBody};
pub use classify::{AwsCall, Classify, ClassifyLayer};
pub use decide::{Decide, DecideLayer, RecordInto};
use hoopguard_core::aws::Minter;
use hoopguard_core::record::Recorder;
use http::{HeaderMap, Response, StatusCode};
pub use refusal::ErrorFormat;
pub use resign::{Connection, Resign, ResignLayer};
pub use verify::{SigV4Verify, SigV4VerifyLayer};

use crate::body::OwnBody;
use crate::mask::MaskLayer;
use crate::policy::Guard;
use crate::record::RecordLayer;

/// The rule name of refusals of requests that cannot be read unambiguously.
pub const UNREADABLE: &str = "hoopguard:unreadable-request";

/// The recording id of a pseudo-credential session.
pub fn session_id(session: &hoopguard_core::aws::Session) -> String {
    format!("aws-{}", session.sid)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A request's headers as name/value pairs (names are lower case in `http`).
fn pairs(headers: &HeaderMap) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect()
}

/// The refusal of a request a layer got without what the layers before it add: a wiring
/// mistake, refused (never passed on).
fn unwired<B: OwnBody>(layer: &str) -> Response<B> {
    tracing::error!(
        layer,
        "an AWS layer got a request the layers before it did not prepare; refused"
    );
    ErrorFormat::QueryXml.refuse(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        &format!(
            "refused: {layer} got a request that was not verified, classified and decided by the layers before it (SigV4Verify → Classify → Decide → Resign)"
        ),
    )
}

/// The whole AWS data path, in order: [`TraceLayer`](crate::trace::TraceLayer) →
/// [`RecordLayer`] → [`MaskLayer`] → [`SigV4Verify`] → [`Classify`] → [`Decide`] → [`Resign`] →
/// [`UpstreamTraceLayer`](crate::trace::UpstreamTraceLayer) → the client. See the
/// [module docs](self).
#[derive(Debug, Clone)]
pub struct Stack {
    verify: SigV4VerifyLayer,
    connections: Arc<HashMap<String, Connection>>,
    decide: DecideLayer,
    upstream_timeout: Option<Duration>,
    mask: MaskLayer,
    recorder: Option<Arc<Recorder>>,
}

/// A client wrapped by [`Stack::service`].
pub type Guarded<C> = crate::trace::Trace<
    crate::record::RecordService<
        crate::mask::Mask<SigV4Verify<Classify<Decide<Resign<crate::trace::UpstreamTrace<C>>>>>>,
    >,
>;

impl Stack {
    /// Calls signed with `minter`'s pseudo-credentials, decided by `guard`, re-signed with the
    /// credentials of their `connections`; answers masked by the default rules, nothing
    /// recorded.
    pub fn new(
        minter: Arc<Minter>,
        guard: Guard,
        connections: Arc<HashMap<String, Connection>>,
    ) -> Self {
        Stack {
            verify: SigV4VerifyLayer::new(minter).guard(guard.clone()),
            connections,
            decide: DecideLayer::new(guard),
            upstream_timeout: None,
            mask: MaskLayer::new(hoopguard_core::mask::default_engine()),
            recorder: None,
        }
    }

    /// Adjusts the signature check: body limits, timeouts, virtual-host suffixes.
    pub fn verify(mut self, f: impl FnOnce(SigV4VerifyLayer) -> SigV4VerifyLayer) -> Self {
        self.verify = f(self.verify);
        self
    }

    /// Who approves calls hoopguard cannot classify (none: refused).
    pub fn unclassified_approvers(mut self, approvers: Vec<String>) -> Self {
        self.decide = self.decide.unclassified_approvers(approvers);
        self
    }

    /// How long upstream may take to begin its answer.
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_timeout = Some(timeout);
        self
    }

    /// Masks answers with `mask`.
    pub fn mask(mut self, mask: MaskLayer) -> Self {
        self.mask = mask;
        self
    }

    /// Records sessions, calls and answers into `recorder`, and refuses the calls of sessions
    /// revoked there.
    pub fn record(mut self, recorder: Arc<Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The data path in front of `client`.
    pub fn service<C>(self, client: C) -> Guarded<C> {
        let mut verify = self.verify;
        let mut decide = self.decide;
        let record = match &self.recorder {
            Some(r) => {
                verify = verify.revocations(r.clone());
                decide = decide.record(r.clone());
                RecordLayer::new(r.clone())
            }
            None => RecordLayer::disabled(),
        };
        let mut resign = ResignLayer::new(self.connections.clone());
        if let Some(t) = self.upstream_timeout {
            resign = resign.upstream_timeout(t);
        }
        tower::ServiceBuilder::new()
            .layer(crate::trace::TraceLayer::new("hoopguard.aws"))
            .layer(record)
            .layer(self.mask)
            .layer(verify)
            .layer(ClassifyLayer::new(self.connections))
            .layer(decide)
            .layer(resign)
            .layer(crate::trace::UpstreamTraceLayer::new())
            .service(client)
    }
}
