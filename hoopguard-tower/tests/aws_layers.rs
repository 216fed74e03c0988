//! The AWS layers' invariants, each with its legitimate twin: requests signed by the AWS SDK's
//! own signer (aws-sigv4) with pseudo-credentials, through `aws::Stack`, to a `service_fn`
//! upstream that keeps what reached it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode,
};
use bytes::Bytes;
use hoopguard_core::approvals::{Approvals, SqliteStore};
use hoopguard_core::audit::AuditLog;
use hoopguard_core::aws::broker::{Broker, BrokerKind, Brokered};
use hoopguard_core::aws::{Minter, PseudoCredentials};
use hoopguard_core::identity::Identity;
use hoopguard_core::policy::{Policy, RuleConfig};
use hoopguard_core::record::{Durability, Recorder};
use hoopguard_tower::BoxError;
use hoopguard_tower::auth::AuthOutcome;
use hoopguard_tower::aws::{Connection, Stack, StreamBody};
use hoopguard_tower::policy::Guard;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tower::ServiceExt;

/// What reached the upstream.
#[derive(Debug, Clone)]
struct Reached {
    method: String,
    uri: String,
    headers: http::HeaderMap,
    /// The body, or the error it ended with.
    body: Result<Bytes, String>,
}

type Log = Arc<Mutex<Vec<Reached>>>;

struct Env {
    minter: Arc<Minter>,
    creds: PseudoCredentials,
    guard: Guard,
    connections: Arc<HashMap<String, Connection>>,
    log: Log,
    recorder: Option<Arc<Recorder>>,
}

async fn env() -> Env {
    let minter = Arc::new(Minter::new(&[7u8; 32]));
    let alice = Identity::new(
        "alice",
        vec!["dev".into()],
        "https://idp",
        SystemTime::now() + Duration::from_secs(3600),
    );
    let creds = minter
        .mint(&alice, "default", Duration::from_secs(900))
        .unwrap();
    let rules: Vec<RuleConfig> = serde_json::from_value(json!([
        {"name": "read-and-write-s3", "effect": "allow", "actions": ["s3:*"]},
        {"name": "describe", "effect": "allow", "actions": ["ec2:Describe*"]},
        {"name": "terminate", "effect": "approve", "actions": ["ec2:TerminateInstances"],
         "approvers": ["managers"]},
    ]))
    .unwrap();
    let guard = Guard::new(
        Policy::compile(&rules).unwrap(),
        Approvals::new(Arc::new(SqliteStore::open_in_memory().unwrap())),
    );
    let broker = Broker::new(
        BrokerKind::Static(Brokered {
            access_key_id: "AKIAUPSTREAMKEY00001".into(),
            secret_access_key: "upstream-secret".into(),
            session_token: None,
            expires: None,
        }),
        "us-east-1",
        None,
    )
    .await;
    let connections = Arc::new(HashMap::from([(
        "default".to_string(),
        Connection::new(broker).endpoint("http://upstream.test"),
    )]));
    Env {
        minter,
        creds,
        guard,
        connections,
        log: Default::default(),
        recorder: None,
    }
}

impl Env {
    /// The stack in front of an upstream that logs every request (reading its whole body) and
    /// answers 200.
    async fn send(&self, req: http::Request<Full<Bytes>>) -> (http::StatusCode, String) {
        let (status, _, body) = self.send_marked(req).await;
        (status, body)
    }

    /// [`Env::send`], with the authentication outcome the answer is marked with.
    async fn send_marked(
        &self,
        req: http::Request<Full<Bytes>>,
    ) -> (http::StatusCode, Option<AuthOutcome>, String) {
        let log = self.log.clone();
        let upstream = tower::service_fn(move |req: http::Request<StreamBody>| {
            let log = log.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .map_err(|e| e.to_string());
                let failed = body.as_ref().err().cloned();
                log.lock().unwrap().push(Reached {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body,
                });
                // A real client fails the request when its body fails.
                match failed {
                    Some(e) => Err::<http::Response<String>, BoxError>(e.into()),
                    None => Ok(http::Response::new("<ok/>".to_string())),
                }
            }
        });
        let mut stack = Stack::new(
            self.minter.clone(),
            self.guard.clone(),
            self.connections.clone(),
        )
        .verify(|v| v.virtual_host_suffixes(vec!["localhost".into()]));
        if let Some(r) = &self.recorder {
            stack = stack.record(r.clone());
        }
        let resp = stack.service(upstream).oneshot(req).await.unwrap();
        let status = resp.status();
        let outcome = resp.extensions().get::<AuthOutcome>().cloned();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, outcome, String::from_utf8_lossy(&body).into_owned())
    }

    fn reached(&self) -> Vec<Reached> {
        self.log.lock().unwrap().clone()
    }

    /// A request signed by aws-sigv4 with the pseudo-credentials. `signed_body` is what the
    /// signature covers, `body` what is sent (the same for an honest caller).
    fn sign(&self, r: Req<'_>) -> http::Request<Full<Bytes>> {
        let url = format!("http://{}{}", r.host, r.path_and_query);
        let mut settings = SigningSettings::default();
        if r.service == "s3" {
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        if r.presign {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(Duration::from_secs(300));
        }
        let identity = aws_credential_types::Credentials::new(
            &self.creds.access_key_id,
            &self.creds.secret_access_key,
            Some(self.creds.token.clone()),
            None,
            "test",
        )
        .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name(r.service)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let mut headers: Vec<(&str, &str)> = vec![("host", r.host)];
        headers.extend_from_slice(r.headers);
        let hash = hoopguard_core::aws::sha256_hex(r.signed_body);
        let signable = SignableRequest::new(
            r.method,
            &url,
            headers.iter().copied(),
            if r.presign {
                SignableBody::UnsignedPayload
            } else {
                SignableBody::Precomputed(hash)
            },
        )
        .unwrap();
        let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
            .unwrap()
            .into_parts();
        let mut b = http::Request::builder().method(r.method).uri(&url);
        for (n, v) in &headers {
            b = b.header(*n, *v);
        }
        let mut req = b.body(Full::new(Bytes::from(r.body.to_vec()))).unwrap();
        instructions.apply_to_request_http1x(&mut req);
        // What a server sees: origin-form.
        *req.uri_mut() = req
            .uri()
            .path_and_query()
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        req
    }
}

#[derive(Clone, Copy)]
struct Req<'a> {
    method: &'a str,
    host: &'a str,
    path_and_query: &'a str,
    service: &'a str,
    headers: &'a [(&'a str, &'a str)],
    signed_body: &'a [u8],
    body: &'a [u8],
    presign: bool,
}

const EC2_FORM: &[(&str, &str)] = &[(
    "content-type",
    "application/x-www-form-urlencoded; charset=utf-8",
)];

fn ec2(body: &'static [u8]) -> Req<'static> {
    Req {
        method: "POST",
        host: "127.0.0.1:8787",
        path_and_query: "/",
        service: "ec2",
        headers: EC2_FORM,
        signed_body: body,
        body,
        presign: false,
    }
}

fn s3(method: &'static str, host: &'static str, path: &'static str) -> Req<'static> {
    Req {
        method,
        host,
        path_and_query: path,
        service: "s3",
        headers: &[],
        signed_body: b"",
        body: b"",
        presign: false,
    }
}

#[tokio::test]
async fn the_bytes_decided_on_are_the_bytes_forwarded() {
    let e = env().await;
    let body: &[u8] = b"Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0abc";
    let (status, _) = e.send(e.sign(ec2(body))).await;
    assert_eq!(status, 200);
    let reached = e.reached();
    assert_eq!(reached.len(), 1);
    assert_eq!(reached[0].body.as_deref().unwrap(), body);
    assert_eq!(reached[0].uri, "http://upstream.test/");
    // Re-signed with the connection's credentials, not the caller's pseudo-credentials.
    let auth = reached[0].headers["authorization"].to_str().unwrap();
    assert!(auth.contains("Credential=AKIAUPSTREAMKEY00001/"), "{auth}");
    assert!(!reached[0].headers.contains_key("x-amz-security-token"));

    // A body other than the one signed is refused before anything is decided or sent.
    let mut tampered = ec2(body);
    tampered.body = b"Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0abc";
    let (status, text) = e.send(e.sign(tampered)).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert_eq!(e.reached().len(), 1);

    // A call that needs approval is refused with the approval id, and not sent.
    let (status, text) = e
        .send(e.sign(ec2(
            b"Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0abc",
        )))
        .await;
    assert_eq!(status, 403);
    assert!(text.contains("is pending: an approver runs"), "{text}");
    assert_eq!(e.reached().len(), 1);
}

#[tokio::test]
async fn a_streamed_upload_whose_bytes_are_not_the_signed_ones_is_aborted() {
    let e = env().await;
    let mut put = s3("PUT", "127.0.0.1:8787", "/team-bucket/report.csv");
    put.signed_body = b"the signed contents";
    put.body = b"the signed contents";
    let (status, text) = e.send(e.sign(put)).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(e.reached()[0].method, "PUT");
    assert_eq!(
        e.reached()[0].body.as_deref().unwrap(),
        b"the signed contents"
    );

    put.body = b"other bytes, same size";
    let (status, text) = e.send(e.sign(put)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("SHA-256"), "{text}");
    // It streamed, so upstream saw it begin — and end in an error, never complete.
    let reached = e.reached();
    assert_eq!(reached.len(), 2);
    assert!(reached[1].body.is_err());
}

#[tokio::test]
async fn presigned_parameters_never_go_upstream() {
    let e = env().await;
    let mut get = s3(
        "GET",
        "127.0.0.1:8787",
        "/team-bucket/report.csv?versionId=v1",
    );
    get.presign = true;
    let req = e.sign(get);
    assert!(req.uri().query().unwrap().contains("X-Amz-Signature="));
    let (status, text) = e.send(req).await;
    assert_eq!(status, 200, "{text}");
    let uri = &e.reached()[0].uri;
    assert!(
        uri.ends_with("/team-bucket/report.csv?versionId=v1"),
        "{uri}"
    );
    assert!(!uri.contains("X-Amz-"), "{uri}");
}

#[tokio::test]
async fn forwarded_headers_are_refused_and_virtual_hosts_go_path_style() {
    let e = env().await;
    let (status, text) = e
        .send(e.sign(s3("GET", "team-bucket.localhost:8787", "/report.csv")))
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        e.reached()[0].uri,
        "http://upstream.test/team-bucket/report.csv"
    );

    let mut get = s3("GET", "127.0.0.1:8787", "/team-bucket/report.csv");
    get.headers = &[("forwarded", "host=evil.example")];
    let (status, text) = e.send(e.sign(get)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("Forwarded"), "{text}");
    get.headers = &[("x-forwarded-host", "evil.example")];
    let (status, _) = e.send(e.sign(get)).await;
    assert_eq!(status, 400);
    assert_eq!(e.reached().len(), 1);
}

#[tokio::test]
async fn an_unsigned_request_never_reaches_upstream() {
    let e = env().await;
    let mut req = e.sign(s3("GET", "127.0.0.1:8787", "/team-bucket/report.csv"));
    req.headers_mut().remove("authorization");
    let (status, _) = e.send(req).await;
    assert_eq!(status, 403);
    assert!(e.reached().is_empty());
}

/// A writer the test reads back (the audit log writes from a thread of its own).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn refusals_before_the_call_is_read_are_marked_and_a_revoked_session_is_audited() {
    let mut e = env().await;
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::open(&dir.path().join("rec"), Durability::EveryEvent).unwrap());
    let out = Shared::default();
    let log = Arc::new(AuditLog::to_writer(Box::new(out.clone())));
    e.guard = e.guard.clone().with_audit(log.clone());
    e.recorder = Some(rec.clone());
    let get = || e.sign(s3("GET", "127.0.0.1:8787", "/team-bucket/report.csv"));

    // The twin: a signed call is marked authenticated (and its decision audited).
    let (status, outcome, _) = e.send_marked(get()).await;
    assert_eq!(
        (status, outcome),
        (http::StatusCode::OK, Some(AuthOutcome::Authenticated))
    );
    // An unsigned one is an authentication refusal, by its AWS code.
    let mut unsigned = get();
    unsigned.headers_mut().remove("authorization");
    let (status, outcome, _) = e.send_marked(unsigned).await;
    assert_eq!(
        (status, outcome),
        (
            http::StatusCode::FORBIDDEN,
            Some(AuthOutcome::Refused("MissingAuthenticationToken"))
        )
    );
    // A revoked session: refused, marked, and a decision in the audit stream.
    let sid = e.minter.open(&e.creds.token).unwrap().sid;
    assert!(rec.revoke(&format!("aws-{sid}"), "sam", "test").unwrap());
    let (status, outcome, body) = e.send_marked(get()).await;
    assert_eq!(
        (status, outcome),
        (
            http::StatusCode::FORBIDDEN,
            Some(AuthOutcome::Refused("revoked"))
        ),
        "{body}"
    );
    assert_eq!(e.reached().len(), 1, "only the first call went upstream");
    log.close();
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["decision"], "allow");
    let revoked = &lines[1];
    assert_eq!(revoked["decision"], "deny", "{revoked}");
    assert_eq!(revoked["session"], format!("aws-{sid}"));
    assert_eq!(revoked["connection"], "default");
    assert!(
        revoked["reason"].as_str().unwrap().contains("revoked"),
        "{revoked}"
    );
    // Both name the issuer of the token the credentials were minted for.
    assert!(lines.iter().all(|l| l["issuer"] == "https://idp"), "{text}");
}
