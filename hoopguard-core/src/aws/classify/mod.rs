//! What an AWS call does: service, operation, IAM actions with their access levels, and the
//! resource ARNs they touch.
//!
//! # The principle
//!
//! hoopguard decides on exactly what upstream will act on, and refuses anything it cannot read
//! unambiguously. The operation, the resources and the approval binding are all derived from the
//! parts of the request that AWS itself dispatches on, for that service's protocol, and nothing
//! else reaches upstream that could change what AWS does. Concretely:
//!
//! * **One protocol, read its own way.** Each service speaks the protocols its model lists
//!   (`routes.txt`, from botocore). A request names its operation only by its protocol's marker:
//!   `X-Amz-Target: Prefix.Operation` (json), `Action=` in the form body or the query string
//!   (query, ec2), `POST /service/Prefix/operation/Operation` with `smithy-protocol`
//!   (rpc-v2-cbor), or method + URI template (rest-json, rest-xml). A request carrying the
//!   marker of a protocol its service does not speak, the markers of two protocols, one marker
//!   twice, or a target prefix that is not its service's, is refused — never read one way here
//!   and another way at AWS.
//! * **Every parameter accounted for.** A REST request's query parameters must all be members
//!   of the operation the route matched (a subresource the operation does not take, such as a
//!   second one in `?tagging&acl`, is refused, not ignored); only list members may repeat; query
//!   calls may not repeat a parameter or carry parameters in both the query string and the body;
//!   JSON bodies may not repeat a key. Path segments are percent-decoded once, as AWS does, before
//!   they are matched; dot segments and empty segments are refused outside S3, and an S3 bucket
//!   name never needs encoding, so an encoded one is refused.
//! * **IAM actions from the Service Authorization Reference** ([`iam`](super::iam)): an
//!   operation's IAM actions and access levels, and for S3 the headers and parameters that change
//!   the action (`versionId` → `s3:GetObjectVersion`, `x-amz-acl` → also `s3:PutObjectAcl`,
//!   `x-amz-tagging`, object lock, `x-amz-bypass-governance-retention`, the copy source).
//! * **Resources from the request's own parameters**, filled into the reference's ARN formats;
//!   where they cannot be filled for certain, the action's resources are unknown (allow rules
//!   that name resources do not match; deny and approve rules do).
//!
//! A request hoopguard understands but cannot name (an operation missing from its table) is
//! [`ClassifyError::Unknown`]: refused, or sent to the `unclassified_approvers` when configured.
//! Everything ambiguous is [`ClassifyError::Refused`], which no approval can pass.
//!
//! # Example
//!
//! ```
//! use hoopguard_core::aws::classify::{classify, ClassifyError, Parts};
//! use hoopguard_core::policy::Call;
//!
//! let headers: Vec<(&str, &[u8])> = vec![("content-type", b"application/x-www-form-urlencoded")];
//! let mut p = Parts {
//!     method: "POST", path: "/", query: "", headers: &headers,
//!     body: Some(b"Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0abc"),
//!     service: "ec2", region: "us-east-1", account: Some("123456789012"),
//! };
//! let c = classify(&p).unwrap();
//! assert_eq!(c.operation, "TerminateInstances");
//! let Call::Aws { actions, .. } = &c.call else { unreachable!() };
//! assert_eq!(actions[0].action, "ec2:TerminateInstances");
//! assert_eq!(actions[0].access.as_deref(), Some("Write"));
//! assert_eq!(actions[0].resources, ["arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"]);
//!
//! // The same body with a JSON target naming a harmless operation: refused, not guessed.
//! let headers: Vec<(&str, &[u8])> = vec![
//!     ("content-type", b"application/x-www-form-urlencoded"),
//!     ("x-amz-target", b"AmazonEC2.DescribeInstances"),
//! ];
//! p.headers = &headers;
//! assert!(matches!(classify(&p), Err(ClassifyError::Refused(_))));
//! ```

use serde_json::{Map, Value};

use super::iam::{self, Derived, Lookup};
use super::pct;
use super::routes::{self, Protocol, Service};
use crate::policy::{AwsAction, Call};

/// The parts of a request classification looks at: what will be forwarded.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The path as it will be sent upstream (path-style for S3), still percent-encoded.
    pub path: &'a str,
    /// The query as it will be sent upstream (no presigned-URL signature), still encoded.
    pub query: &'a str,
    /// The request's headers, names in lower case.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body, when it is inspected (`None`: an S3 object upload, streamed).
    pub body: Option<&'a [u8]>,
    /// The signing service (credential scope).
    pub service: &'a str,
    /// The signing region (credential scope).
    pub region: &'a str,
    /// The AWS account the connection reaches, when known (for ARNs that name one).
    pub account: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn header_values(&self, name: &str) -> Vec<&'a [u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .collect()
    }

    /// The one value of a header: `Ok(None)` when absent, `Err` when sent twice or not text.
    fn header(&self, name: &str) -> Result<Option<&'a str>, ClassifyError> {
        match self.header_values(name).as_slice() {
            [] => Ok(None),
            [v] => std::str::from_utf8(v)
                .map(Some)
                .map_err(|_| refused(format!("the `{name}` header is not text"))),
            _ => Err(refused(format!(
                "the `{name}` header is sent more than once"
            ))),
        }
    }
}

/// A classified call.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The operation, such as `TerminateInstances`.
    pub operation: String,
    /// The protocol the request spoke.
    pub protocol: Protocol,
    /// The endpoint prefix of the service that runs it (`streams.dynamodb`, `email`): the
    /// upstream host is built from it.
    pub endpoint: String,
    /// The call for the policy: IAM action(s), access levels and resources.
    pub call: Call,
    /// Every parameter of the call, as AWS will read it (not masked): for query calls the form
    /// fields, for JSON and CBOR the body, for REST `{"path", "query", "body"}`.
    pub params: Value,
}

/// Why a call is not classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    /// The request is ambiguous or malformed: it could be read as more than one call. Always
    /// refused; no approval covers it.
    #[error("{0}")]
    Refused(String),
    /// The request is clear but names something outside hoopguard's tables. Refused, or sent for
    /// approval where the operator configured approvers for such calls.
    #[error("{0}")]
    Unknown(String),
}

/// The most parameters a call may carry (query, form fields): more is refused rather than
/// read, so no request makes classification slow.
const MAX_PARAMS: usize = 4096;

fn refused(why: impl Into<String>) -> ClassifyError {
    ClassifyError::Refused(why.into())
}

fn unknown(why: impl Into<String>) -> ClassifyError {
    ClassifyError::Unknown(why.into())
}

fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// The protocol markers a request carries.
#[derive(Debug, Default)]
struct Markers {
    target: Option<String>,
    action_in_query: bool,
    action_in_body: bool,
    cbor_header: Option<String>,
    cbor_path: Option<(String, String)>,
}

impl Markers {
    fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.target.is_some() {
            out.push("X-Amz-Target (json)");
        }
        if self.action_in_query || self.action_in_body {
            out.push("Action= (query)");
        }
        if self.cbor_header.is_some() || self.cbor_path.is_some() {
            out.push("/service/…/operation/… or smithy-protocol (rpc-v2-cbor)");
        }
        out
    }
}

/// The endpoint prefix calls of a signing name go to when hoopguard cannot name their operation
/// (an approved unclassified call): the one all its services share, else the signing name.
pub fn endpoint_of(signing_name: &str) -> String {
    let services = routes::services(signing_name);
    match services.first() {
        Some(first) if services.iter().all(|s| s.endpoint == first.endpoint) => {
            first.endpoint.to_string()
        }
        _ => signing_name.to_string(),
    }
}

/// Classifies a call, or says why it cannot be. See the [module docs](self).
pub fn classify(p: &Parts<'_>) -> Result<Classified, ClassifyError> {
    let services = routes::services(p.service);
    if services.is_empty() {
        return Err(unknown(format!(
            "`{}` is not a service in hoopguard's route table",
            p.service
        )));
    }
    // A header AWS reads, sent twice, may be joined, or one of them taken: refused.
    for (i, (name, _)) in p.headers.iter().enumerate() {
        let read_by_aws = name.starts_with("x-amz-")
            || name.starts_with("x-amzn-")
            || name.starts_with("content-")
            || matches!(*name, "smithy-protocol" | "host" | "authorization");
        if read_by_aws && p.headers[..i].iter().any(|(n, _)| n == name) {
            return Err(refused(format!(
                "the `{name}` header is sent more than once"
            )));
        }
    }
    let query =
        pct::pairs(p.query).ok_or_else(|| refused("the query string is not UTF-8 once decoded"))?;
    let content_type = p.header("content-type")?;
    let form_body = match p.body {
        Some(b) if is_form(content_type) => Some(
            std::str::from_utf8(b)
                .ok()
                .and_then(pct::pairs)
                .ok_or_else(|| refused("the form body is not UTF-8 once decoded"))?,
        ),
        _ => None,
    };
    let mut m = Markers::default();
    if let Some(t) = p.header("x-amz-target")? {
        m.target = Some(t.to_string());
    }
    if let Some(s) = p.header("smithy-protocol")? {
        m.cbor_header = Some(s.to_string());
    }
    let count = |pairs: &[(String, String)], k: &str| pairs.iter().filter(|(n, _)| n == k).count();
    let in_query = count(&query, "Action");
    let in_body = form_body.as_deref().map_or(0, |f| count(f, "Action"));
    if in_query + in_body > 1 {
        return Err(refused("`Action` is given more than once"));
    }
    m.action_in_query = in_query == 1;
    m.action_in_body = in_body == 1;
    let segs: Vec<&str> = p.path.split('/').skip(1).collect();
    if let ["service", svc, "operation", op] = segs.as_slice() {
        m.cbor_path = Some((
            pct::decode_str(svc, false).unwrap_or_default(),
            pct::decode_str(op, false).unwrap_or_default(),
        ));
    }
    let names = m.names();
    if names.len() > 1 {
        return Err(refused(format!(
            "the request names its operation in two protocols ({}); AWS reads only one of them",
            names.join(" and ")
        )));
    }
    let found = if m.target.is_some() {
        json_call(p, services, &m)?
    } else if m.action_in_query || m.action_in_body {
        query_call(p, services, &query, form_body)?
    } else if m.cbor_header.is_some() || m.cbor_path.is_some() {
        cbor_call(p, services, &m)?
    } else {
        rest_call(p, services, &query)?
    };
    finish(p, found)
}

/// An operation found, before IAM mapping.
struct Found {
    service: &'static Service,
    op: &'static str,
    protocol: Protocol,
    params: Value,
    /// Name → values, for ARN placeholders.
    scalars: Vec<(String, String)>,
    /// Whether the request carries structured parameters (lists of structures, nested
    /// members) that were not read for ARNs: a resource type it names nowhere else may be
    /// named there (SSM `SendCommand` `Targets`), so it is unknown, not absent.
    unread: bool,
}

fn foreign(p: &Parts<'_>, services: &[Service], protocol: &str) -> ClassifyError {
    let spoken: Vec<&str> = services
        .iter()
        .flat_map(|s| s.protocols.iter().map(|p| p.as_str()))
        .collect();
    refused(format!(
        "the request carries a {protocol} marker, but `{}` speaks {}: AWS would not read the operation from it",
        p.service,
        spoken.join(", ")
    ))
}

fn json_call(
    p: &Parts<'_>,
    services: &'static [Service],
    m: &Markers,
) -> Result<Found, ClassifyError> {
    let target = m.target.as_deref().unwrap_or("");
    let Some((prefix, op)) = target.rsplit_once('.') else {
        return Err(refused(format!(
            "X-Amz-Target `{target}` names no operation"
        )));
    };
    let (svc, op) = by_target(p, services, prefix, op, Protocol::Json, "X-Amz-Target")?;
    if p.method != "POST" || p.path != "/" || !p.query.is_empty() {
        return Err(refused(
            "a JSON-protocol call is `POST /` without a query string",
        ));
    }
    let params = json_body(p.body)?;
    let (scalars, unread) = top_level(&params);
    Ok(Found {
        service: svc,
        op,
        protocol: Protocol::Json,
        params,
        scalars,
        unread,
    })
}

/// The service whose JSON/CBOR target prefix the request names, speaking `protocol`, and its
/// operation `op`.
fn by_target(
    p: &Parts<'_>,
    services: &'static [Service],
    prefix: &str,
    op: &str,
    protocol: Protocol,
    how: &str,
) -> Result<(&'static Service, &'static str), ClassifyError> {
    if !services.iter().any(|s| s.speaks(protocol)) {
        return Err(foreign(p, services, protocol.as_str()));
    }
    let named: Vec<&'static Service> = services
        .iter()
        .filter(|s| s.target == Some(prefix))
        .collect();
    if named.is_empty() {
        return Err(refused(format!(
            "{how} names `{prefix}`, which is not the target prefix of `{}`",
            p.service
        )));
    }
    if !named.iter().any(|s| s.speaks(protocol)) {
        return Err(foreign(p, services, protocol.as_str()));
    }
    one_service(p, named.into_iter().filter(|s| s.speaks(protocol)), op, how)
}

/// The one service among `candidates` that has operation `op` (several may, at one endpoint).
fn one_service(
    p: &Parts<'_>,
    candidates: impl Iterator<Item = &'static Service>,
    op: &str,
    how: &str,
) -> Result<(&'static Service, &'static str), ClassifyError> {
    let mut hits = candidates.filter_map(|s| Some((s, s.op(op)?.name)));
    let Some((svc, name)) = hits.next() else {
        return Err(unknown(format!(
            "{how} names `{op}`, which is not an operation of `{}`",
            p.service
        )));
    };
    if hits.any(|(s, _)| s.endpoint != svc.endpoint) {
        return Err(refused(format!(
            "{how} names `{op}`, an operation of more than one `{}` endpoint",
            p.service
        )));
    }
    Ok((svc, name))
}

fn json_body(body: Option<&[u8]>) -> Result<Value, ClassifyError> {
    let body = body.unwrap_or_default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    let v = crate::json::parse_strict(body)
        .map_err(|e| refused(format!("the JSON body cannot be read unambiguously: {e}")))?;
    if !v.is_object() {
        return Err(refused("the JSON body is not an object"));
    }
    Ok(v)
}

fn query_call(
    p: &Parts<'_>,
    services: &'static [Service],
    query: &[(String, String)],
    form: Option<Vec<(String, String)>>,
) -> Result<Found, ClassifyError> {
    let form = form.unwrap_or_default();
    let (params, where_) = match (query.is_empty(), form.is_empty()) {
        (_, true) => (query.to_vec(), "query string"),
        (true, false) => (form, "body"),
        (false, false) => {
            return Err(refused(
                "a query-protocol call carries parameters in both the query string and the body",
            ));
        }
    };
    if p.body.is_some_and(|b| !b.is_empty()) && where_ == "query string" {
        return Err(refused(
            "a query-protocol call with a body needs `Content-Type: application/x-www-form-urlencoded`",
        ));
    }
    if params.len() > MAX_PARAMS {
        return Err(refused(format!(
            "the call has more than {MAX_PARAMS} parameters"
        )));
    }
    // A name twice — or twice but for case (`Action` and `action`) — is read one way here and
    // perhaps another way by the service.
    let mut seen = std::collections::HashSet::with_capacity(params.len());
    for (k, _) in &params {
        if !seen.insert(k.to_ascii_lowercase()) {
            return Err(refused(format!(
                "the parameter `{k}` is given more than once"
            )));
        }
    }
    if p.path != "/" || !matches!(p.method, "GET" | "POST") {
        return Err(refused("a query-protocol call is `GET /` or `POST /`"));
    }
    let op = params
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let speaking: Vec<&'static Service> = services
        .iter()
        .filter(|s| s.speaks(Protocol::Query) || s.speaks(Protocol::Ec2))
        .collect();
    if speaking.is_empty() {
        return Err(foreign(p, services, "query"));
    }
    let (svc, op) = one_service(p, speaking.iter().copied(), op, "`Action=`")?;
    let protocol = if svc.speaks(Protocol::Ec2) {
        Protocol::Ec2
    } else {
        Protocol::Query
    };
    let mut obj = Map::new();
    let mut scalars = Vec::new();
    let mut unread = false;
    for (k, v) in &params {
        obj.insert(k.clone(), Value::String(v.clone()));
        // `InstanceId.1` is the first of the list `InstanceId`; deeper names are structures.
        let top = match k.split_once('.') {
            Some((t, n)) if n.bytes().all(|b| b.is_ascii_digit()) => t,
            Some(_) => {
                unread = true;
                continue;
            }
            None => k.as_str(),
        };
        scalars.push((top.to_string(), v.clone()));
    }
    Ok(Found {
        service: svc,
        op,
        protocol,
        params: Value::Object(obj),
        scalars,
        unread,
    })
}

fn cbor_call(
    p: &Parts<'_>,
    services: &'static [Service],
    m: &Markers,
) -> Result<Found, ClassifyError> {
    let (Some((prefix, op)), Some("rpc-v2-cbor")) = (&m.cbor_path, m.cbor_header.as_deref()) else {
        return Err(refused(
            "an rpc-v2-cbor call is `POST /service/Prefix/operation/Operation` with `smithy-protocol: rpc-v2-cbor`",
        ));
    };
    if p.method != "POST" || !p.query.is_empty() {
        return Err(refused(
            "an rpc-v2-cbor call is a POST without a query string",
        ));
    }
    let (svc, op) = by_target(p, services, prefix, op, Protocol::RpcV2Cbor, "the RPC path")?;
    let params = cbor_body(p.body.unwrap_or_default())?;
    let (scalars, unread) = top_level(&params);
    Ok(Found {
        service: svc,
        op,
        protocol: Protocol::RpcV2Cbor,
        params,
        scalars,
        unread,
    })
}

/// A CBOR body as JSON (byte strings as base64, tags dropped); refused when it is not one
/// CBOR map, or repeats a key.
fn cbor_body(body: &[u8]) -> Result<Value, ClassifyError> {
    if body.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let v: ciborium::Value = ciborium::from_reader(body)
        .map_err(|e| refused(format!("the CBOR body cannot be read: {e}")))?;
    fn conv(v: ciborium::Value, depth: usize) -> Result<Value, ClassifyError> {
        use base64::Engine as _;
        if depth > 64 {
            return Err(refused("the CBOR body is nested too deeply"));
        }
        Ok(match v {
            ciborium::Value::Integer(i) => {
                let n: i128 = i.into();
                i64::try_from(n)
                    .map(Value::from)
                    .or_else(|_| u64::try_from(n).map(Value::from))
                    .unwrap_or(Value::Null)
            }
            ciborium::Value::Bytes(b) => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            ciborium::Value::Float(f) => {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
            ciborium::Value::Text(s) => Value::String(s),
            ciborium::Value::Bool(b) => Value::Bool(b),
            ciborium::Value::Null => Value::Null,
            ciborium::Value::Tag(_, inner) => conv(*inner, depth + 1)?,
            ciborium::Value::Array(a) => Value::Array(
                a.into_iter()
                    .map(|x| conv(x, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            ciborium::Value::Map(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    let ciborium::Value::Text(k) = k else {
                        return Err(refused("a CBOR map key is not text"));
                    };
                    if out.contains_key(&k) {
                        return Err(refused(format!(
                            "the key `{k}` appears twice in the CBOR body"
                        )));
                    }
                    out.insert(k, conv(v, depth + 1)?);
                }
                Value::Object(out)
            }
            _ => Value::Null,
        })
    }
    let v = conv(v, 0)?;
    if !v.is_object() {
        return Err(refused("the CBOR body is not a map"));
    }
    Ok(v)
}

/// The top-level strings (and lists of strings, and numbers) of a JSON object, for ARNs; and
/// whether it holds structures that were not read.
fn top_level(v: &Value) -> (Vec<(String, String)>, bool) {
    let mut out = Vec::new();
    let mut unread = false;
    if let Value::Object(o) = v {
        for (k, v) in o {
            match v {
                Value::String(s) => out.push((k.clone(), s.clone())),
                Value::Number(n) => out.push((k.clone(), n.to_string())),
                Value::Array(items) => {
                    for item in items {
                        match item.as_str() {
                            Some(s) => out.push((k.clone(), s.to_string())),
                            None => unread = true,
                        }
                    }
                }
                Value::Object(_) => unread = true,
                _ => {}
            }
        }
    }
    (out, unread)
}

fn rest_call(
    p: &Parts<'_>,
    services: &'static [Service],
    query: &[(String, String)],
) -> Result<Found, ClassifyError> {
    if !services
        .iter()
        .any(|s| s.protocols.iter().any(|p| p.is_rest()))
    {
        return Err(refused(format!(
            "the request names no operation: `{}` calls name theirs with X-Amz-Target, Action= or an RPC path",
            p.service
        )));
    }
    let s3 = p.service == "s3";
    if query.len() > MAX_PARAMS {
        return Err(refused(format!(
            "the call has more than {MAX_PARAMS} parameters"
        )));
    }
    // S3 reads a `+` in the path as a space; SDKs send `%2B` for a plus. A raw one is not
    // guessed at.
    if s3 && p.path.contains('+') {
        return Err(refused(
            "a raw `+` in an S3 path is read as a space by S3: send `%2B` for a plus, `%20` for a space",
        ));
    }
    let raw = p
        .path
        .strip_prefix('/')
        .ok_or_else(|| refused("the path does not start with `/`"))?;
    let mut segments = Vec::new();
    let parts: Vec<&str> = if raw.is_empty() {
        Vec::new()
    } else {
        raw.split('/').collect()
    };
    for (i, seg) in parts.iter().enumerate() {
        let decoded = pct::decode_str(seg, false)
            .ok_or_else(|| refused("the path is not UTF-8 once decoded"))?;
        if s3 {
            if i == 0 && (seg.contains('%') || decoded.is_empty()) {
                return Err(refused(
                    "an S3 bucket name never needs percent-encoding; send it as it is",
                ));
            }
        } else if decoded == "." || decoded == ".." {
            return Err(refused("the path has `.` or `..` segments"));
        } else if decoded.is_empty() && i + 1 != parts.len() {
            return Err(refused("the path has an empty segment (`//`)"));
        }
        // A trailing `/` is not a segment (SDKs send `/functions/` for `/functions`), except in
        // S3 keys, which may end with one.
        if decoded.is_empty() && i + 1 == parts.len() && !(s3 && i > 1) {
            continue;
        }
        segments.push(decoded);
    }
    let has_header = |h: &str| p.headers.iter().any(|(n, _)| *n == h);
    let m = routes::rest_match(services, p.method, &segments, query, &has_header).map_err(|e| {
        let what = format!("{} {}", p.method, p.path);
        if e.starts_with("matches both") {
            refused(format!("{what} {e}"))
        } else {
            unknown(format!("{what} {e} for `{}`", p.service))
        }
    })?;
    let protocol = if m.service.speaks(Protocol::RestXml) {
        Protocol::RestXml
    } else {
        Protocol::RestJson
    };
    let mut scalars: Vec<(String, String)> = m
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    scalars.extend(query.iter().cloned());
    let mut unread = false;
    let body = match p.body {
        None => Value::String("(streamed)".into()),
        Some([]) => Value::Null,
        Some(b) if protocol == Protocol::RestJson && looks_json(b) => {
            let v = crate::json::parse_strict(b)
                .map_err(|e| refused(format!("the JSON body cannot be read unambiguously: {e}")))?;
            let (more, nested) = top_level(&v);
            scalars.extend(more);
            unread |= nested;
            v
        }
        Some(b) => match std::str::from_utf8(b) {
            Ok(t) => Value::String(t.to_string()),
            Err(_) => Value::String(format!("({} bytes, binary)", b.len())),
        },
    };
    let mut query_obj = Map::new();
    for (k, v) in query {
        match query_obj.get_mut(k) {
            Some(Value::Array(a)) => a.push(Value::String(v.clone())),
            Some(prev) => *prev = Value::Array(vec![prev.clone(), Value::String(v.clone())]),
            None => {
                query_obj.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    let path_obj: Map<String, Value> = m
        .labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    // The SDKs' `x-id` hint, when sent, must name the operation that was matched.
    if let Some((_, hint)) = query.iter().find(|(k, _)| k == "x-id") {
        if hint != m.op.name {
            return Err(refused(format!(
                "`x-id={hint}` names another operation than the request is ({})",
                m.op.name
            )));
        }
    }
    // An XML body other than DeleteObjects' (read on its own) is not read for ARNs.
    unread |= protocol == Protocol::RestXml && p.body.is_some_and(|b| !b.is_empty());
    let params = serde_json::json!({"path": path_obj, "query": query_obj, "body": body});
    Ok(Found {
        service: m.service,
        op: m.op.name,
        protocol,
        params,
        scalars,
        unread,
    })
}

fn looks_json(b: &[u8]) -> bool {
    b.iter()
        .find(|c| !c.is_ascii_whitespace())
        .is_some_and(|c| *c == b'{' || *c == b'[')
}

/// Parameter names that hold the value of an ARN placeholder of another name. (An IAM name
/// `WithPath` is not its bare name: a role's ARN holds its path, which the request does not
/// name, so such ARNs stay unknown.)
const ALIASES: &[(&str, &[&str])] = &[
    ("BucketName", &["Bucket"]),
    ("ObjectName", &["Key"]),
    ("ParameterNameWithoutLeadingSlash", &["Name", "Names"]),
    ("QueueName", &["QueueUrl"]),
];

struct Scalars<'a> {
    values: &'a [(String, String)],
    account: Option<&'a str>,
}

impl Lookup for Scalars<'_> {
    /// Every value of every name the placeholder may go by — the placeholder, its plural, its
    /// aliases — so a decoy under one name cannot hide the one AWS reads under another.
    fn values(&self, placeholder: &str) -> Vec<String> {
        let plural = format!("{placeholder}s");
        let mut names: Vec<&str> = vec![placeholder, &plural];
        if let Some((_, a)) = ALIASES.iter().find(|(p, _)| *p == placeholder) {
            names.extend_from_slice(a);
        }
        let mut out = Vec::new();
        for name in names {
            for (k, v) in self
                .values
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            {
                let v = match placeholder {
                    "ParameterNameWithoutLeadingSlash" => v.trim_start_matches('/').to_string(),
                    // `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`: the name, when the queue
                    // is in the connection's account (else unknown: `:` is not a plain name).
                    "QueueName" if k.eq_ignore_ascii_case("QueueUrl") => {
                        let mut parts = v.rsplit('/');
                        let (name, acct) = (parts.next().unwrap_or(""), parts.next());
                        if acct.is_some() && acct == self.account {
                            name.to_string()
                        } else {
                            format!("{}:{name}", acct.unwrap_or("?"))
                        }
                    }
                    _ => v.clone(),
                };
                out.push(v);
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// One IAM action of the call, with its level and resources (unknown: empty).
fn action(p: &Parts<'_>, prefix: &str, name: &str, lookup: &dyn Lookup, unread: bool) -> AwsAction {
    let known = iam::service(prefix).and_then(|s| Some((s, s.actions.get(name)?)));
    let Some((svc, a)) = known else {
        return AwsAction {
            action: format!("{prefix}:{name}"),
            resources: Vec::new(),
            access: None,
        };
    };
    let mut resources = Vec::new();
    let mut unknown = false;
    for t in &a.types {
        let Some(tpl) = svc.types.get(t) else {
            continue;
        };
        match iam::derive_arns(tpl, p.region, p.account, lookup) {
            Derived::Absent if unread => unknown = true,
            Derived::Absent => {}
            Derived::Arns(arns) => resources.extend(arns),
            Derived::Unknown => unknown = true,
        }
    }
    resources.sort();
    resources.dedup();
    AwsAction {
        action: format!("{prefix}:{name}"),
        resources: if unknown { Vec::new() } else { resources },
        access: Some(a.level.to_string()),
    }
}

fn finish(p: &Parts<'_>, f: Found) -> Result<Classified, ClassifyError> {
    let prefix = iam::prefix(p.service);
    let (names, _) = iam::actions_for(prefix, f.service.endpoint, f.op);
    let lookup = Scalars {
        values: &f.scalars,
        account: p.account,
    };
    let mut actions: Vec<AwsAction> = names
        .iter()
        .map(|n| action(p, prefix, n, &lookup, f.unread))
        .collect();
    if p.service == "s3" {
        s3_actions(p, &f, &lookup, &mut actions)?;
    }
    Ok(Classified {
        operation: f.op.to_string(),
        protocol: f.protocol,
        endpoint: f.service.endpoint.to_string(),
        call: Call::Aws {
            actions,
            region: Some(p.region.to_string()),
        },
        params: f.params,
    })
}

/// What S3 headers and parameters add to or change in the IAM actions of an operation.
fn s3_actions(
    p: &Parts<'_>,
    f: &Found,
    lookup: &Scalars<'_>,
    actions: &mut Vec<AwsAction>,
) -> Result<(), ClassifyError> {
    let has = |h: &str| p.headers.iter().any(|(n, _)| *n == h);
    let starts = |h: &str| p.headers.iter().any(|(n, _)| n.starts_with(h));
    let on_object = f.scalars.iter().any(|(k, _)| k == "Key");
    let version = f.scalars.iter().any(|(k, _)| k == "versionId");
    let s3 = iam::service("s3");
    let exists = |name: &str| s3.is_some_and(|s| s.actions.contains_key(name));
    // `?versionId=` makes an object action its version variant (GetObject → GetObjectVersion).
    if version {
        for a in actions.iter_mut() {
            let name = a.action.trim_start_matches("s3:");
            if let Some(v) = name
                .find("Object")
                .map(|i| format!("{}ObjectVersion{}", &name[..i], &name[i + 6..]))
                .filter(|v| exists(v))
            {
                *a = action(p, "s3", &v, lookup, f.unread);
            }
        }
    }
    let mut add = |name: &str| {
        if !actions.iter().any(|a| a.action == format!("s3:{name}")) && exists(name) {
            actions.push(action(p, "s3", name, lookup, false));
        }
    };
    if has("x-amz-acl") || starts("x-amz-grant-") {
        add(if on_object {
            "PutObjectAcl"
        } else {
            "PutBucketAcl"
        });
    }
    if on_object && has("x-amz-tagging") {
        add("PutObjectTagging");
    }
    if on_object && (has("x-amz-object-lock-mode") || has("x-amz-object-lock-retain-until-date")) {
        add("PutObjectRetention");
    }
    if on_object && has("x-amz-object-lock-legal-hold") {
        add("PutObjectLegalHold");
    }
    if has("x-amz-bypass-governance-retention") {
        add("BypassGovernanceRetention");
    }
    if !on_object && has("x-amz-bucket-object-lock-enabled") {
        add("PutBucketObjectLockConfiguration");
        add("PutBucketVersioning");
    }
    if !on_object && has("x-amz-object-ownership") {
        add("PutBucketOwnershipControls");
    }
    // The copy source is read: s3:GetObject (or GetObjectVersion) on it.
    if let Some(src) = p.header("x-amz-copy-source")? {
        actions.insert(0, copy_source(src)?);
    }
    if f.op == "DeleteObjects" {
        delete_objects(p, actions)?;
    }
    // An access point alias, Object Lambda or Outposts alias, or a directory bucket names no
    // bucket ARN hoopguard can write: the resources of every action are unknown.
    let bucket = f
        .scalars
        .iter()
        .find(|(k, _)| k == "Bucket")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if ["-s3alias", "--ol-s3", "--op-s3", "--x-s3"]
        .iter()
        .any(|s| bucket.ends_with(s))
    {
        for a in actions.iter_mut() {
            a.resources.clear();
        }
    }
    Ok(())
}

fn copy_source(src: &str) -> Result<AwsAction, ClassifyError> {
    let (path, query) = src.split_once('?').unwrap_or((src, ""));
    if path.contains('+') {
        return Err(refused(
            "a raw `+` in x-amz-copy-source is read as a space by S3: send `%2B` or `%20`",
        ));
    }
    // The copy source's own query may name its version, and nothing else.
    let version = match query {
        "" => false,
        q if q.starts_with("versionId=") && !q.contains('&') => true,
        _ => {
            return Err(refused(
                "x-amz-copy-source may carry `?versionId=…` and nothing else",
            ));
        }
    };
    let name = if version {
        "GetObjectVersion"
    } else {
        "GetObject"
    };
    let decoded = pct::decode_str(path.trim_start_matches('/'), false)
        .ok_or_else(|| refused("x-amz-copy-source is not UTF-8 once decoded"))?;
    let resources = match decoded.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() && !b.contains(':') => {
            vec![format!("arn:aws:s3:::{b}/{k}")]
        }
        // An access point ARN or anything else hoopguard cannot read for certain.
        _ => Vec::new(),
    };
    Ok(AwsAction {
        action: format!("s3:{name}"),
        resources,
        access: iam::access_level(&format!("s3:{name}")).map(str::to_string),
    })
}

/// DeleteObjects names its keys in the XML body: each is a resource of s3:DeleteObject (or of
/// s3:DeleteObjectVersion when it names a version). A body hoopguard cannot read strictly is
/// refused.
fn delete_objects(p: &Parts<'_>, actions: &mut Vec<AwsAction>) -> Result<(), ClassifyError> {
    let bucket = p
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    let keys = p
        .body
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(xml_objects);
    actions.retain(|a| a.action != "s3:DeleteObject");
    let one = |name: &str, resources: Vec<String>| AwsAction {
        action: format!("s3:{name}"),
        resources,
        access: iam::access_level(&format!("s3:{name}")).map(str::to_string),
    };
    let Some(objs) = keys else {
        return Err(refused(
            "the DeleteObjects body is not a plain <Delete> document hoopguard reads one way only",
        ));
    };
    let arns = |versioned: bool| -> Vec<String> {
        objs.iter()
            .filter(|(_, v)| *v == versioned)
            .map(|(k, _)| format!("arn:aws:s3:::{bucket}/{k}"))
            .collect()
    };
    let (plain, versioned) = (arns(false), arns(true));
    if !plain.is_empty() {
        actions.push(one("DeleteObject", plain));
    }
    if !versioned.is_empty() {
        actions.push(one("DeleteObjectVersion", versioned));
    }
    Ok(())
}

/// The `(key, names a version)` entries of a DeleteObjects body, read strictly: an optional XML
/// declaration, then `<Delete>` (an `xmlns` attribute allowed) holding `<Quiet>` and `<Object>`s,
/// each with one `<Key>` and at most one `<VersionId>`, `<ETag>`, `<LastModifiedTime>`, `<Size>`;
/// text with the five entities and character references. Anything else — comments, processing
/// instructions, CDATA, a DOCTYPE, other elements, spaces inside tags — is `None`: S3 might read
/// it another way.
fn xml_objects(xml: &str) -> Option<Vec<(String, bool)>> {
    let mut x = Xml { rest: xml };
    x.space();
    if x.rest.starts_with("<?xml ") {
        let end = x.rest.find("?>")?;
        if x.rest[2..end].contains(['<', '>']) {
            return None;
        }
        x.rest = &x.rest[end + 2..];
    }
    x.space();
    x.open("Delete", true)?;
    let mut out = Vec::new();
    loop {
        x.space();
        match x.next_open()? {
            Tag::Close("Delete") => break,
            Tag::Open("Quiet") => {
                x.text()?;
                x.close("Quiet")?;
            }
            Tag::Open("Object") => {
                let (mut key, mut version) = (None, false);
                let mut seen: Vec<&str> = Vec::new();
                loop {
                    x.space();
                    match x.next_open()? {
                        Tag::Close("Object") => break,
                        Tag::Open(
                            name @ ("Key" | "VersionId" | "ETag" | "LastModifiedTime" | "Size"),
                        ) => {
                            if seen.contains(&name) {
                                return None;
                            }
                            seen.push(name);
                            let text = x.text()?;
                            x.close(name)?;
                            match name {
                                "Key" => key = Some(text),
                                "VersionId" => version = true,
                                _ => {}
                            }
                        }
                        _ => return None,
                    }
                }
                out.push((key?, version));
            }
            _ => return None,
        }
    }
    x.space();
    (x.rest.is_empty() && !out.is_empty()).then_some(out)
}

enum Tag<'a> {
    Open(&'a str),
    Close(&'a str),
}

struct Xml<'a> {
    rest: &'a str,
}

impl<'a> Xml<'a> {
    fn space(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', '\r', '\n']);
    }

    /// `<Name>` or `</Name>`, names of ASCII letters only.
    fn next_open(&mut self) -> Option<Tag<'a>> {
        let r = self.rest.strip_prefix('<')?;
        let (close, r) = match r.strip_prefix('/') {
            Some(r) => (true, r),
            None => (false, r),
        };
        let end = r.find('>')?;
        let name = &r[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        self.rest = &r[end + 1..];
        Some(if close {
            Tag::Close(name)
        } else {
            Tag::Open(name)
        })
    }

    /// `<name>`, or with `xmlns` allowed, `<name xmlns="…">`.
    fn open(&mut self, name: &str, xmlns: bool) -> Option<()> {
        let r = self.rest.strip_prefix('<')?.strip_prefix(name)?;
        let r = match r.strip_prefix('>') {
            Some(r) => r,
            None if xmlns => {
                let r = r.strip_prefix(" xmlns=\"")?;
                let end = r.find('"')?;
                if r[..end].contains(['<', '>', '&']) {
                    return None;
                }
                r[end + 1..].strip_prefix('>')?
            }
            None => return None,
        };
        self.rest = r;
        Some(())
    }

    fn close(&mut self, name: &str) -> Option<()> {
        self.rest = self
            .rest
            .strip_prefix("</")?
            .strip_prefix(name)?
            .strip_prefix('>')?;
        Some(())
    }

    /// Text up to the next `<`, unescaped.
    fn text(&mut self) -> Option<String> {
        let end = self.rest.find('<')?;
        let raw = &self.rest[..end];
        self.rest = &self.rest[end..];
        xml_unescape(raw)
    }
}

fn xml_unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail.find(';')?;
        let ent = &tail[1..end];
        let ch = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => char::from_u32(u32::from_str_radix(&e[2..], 16).ok()?)?,
            e if e.starts_with('#') => char::from_u32(e[1..].parse().ok()?)?,
            _ => return None,
        };
        out.push(ch);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests;
