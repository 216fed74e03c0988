//! The route table generated from the public botocore service models
//! (`scripts/gen-aws-routes.py` writes `routes.txt`; Apache-2.0, see NOTICE): for every service,
//! its signing name, the protocols it speaks, its endpoint prefix and JSON/CBOR target prefix,
//! and its operations, with the method, URI template, query members and required headers of
//! each REST operation.

use std::collections::HashMap;
use std::sync::LazyLock;

const TABLE: &str = include_str!("routes.txt");

/// An AWS wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `awsJson1_0` / `awsJson1_1`: `POST /` with `X-Amz-Target: Prefix.Operation`.
    Json,
    /// `awsQuery`: `Action=Operation` in the form body or the query string.
    Query,
    /// `ec2Query`: as `Query`.
    Ec2,
    /// `restJson1`: method + URI template.
    RestJson,
    /// `restXml`: method + URI template.
    RestXml,
    /// `rpcv2Cbor`: `POST /service/Prefix/operation/Operation` with `smithy-protocol`.
    RpcV2Cbor,
}

impl Protocol {
    fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "json" => Protocol::Json,
            "query" => Protocol::Query,
            "ec2" => Protocol::Ec2,
            "rest-json" => Protocol::RestJson,
            "rest-xml" => Protocol::RestXml,
            "rpc-v2-cbor" => Protocol::RpcV2Cbor,
            _ => return None,
        })
    }

    /// The name botocore gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::Query => "query",
            Protocol::Ec2 => "ec2",
            Protocol::RestJson => "rest-json",
            Protocol::RestXml => "rest-xml",
            Protocol::RpcV2Cbor => "rpc-v2-cbor",
        }
    }

    /// Whether operations are found by method and URI template.
    pub fn is_rest(self) -> bool {
        matches!(self, Protocol::RestJson | Protocol::RestXml)
    }
}

#[derive(Debug)]
pub(crate) enum Seg {
    Lit(&'static str),
    Label(&'static str),
    Greedy(&'static str),
}

#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) method: &'static str,
    pub(crate) segs: Vec<Seg>,
    /// Query literals of the template (`?uploads`, `?list-type=2`).
    pub(crate) literals: Vec<(&'static str, Option<&'static str>)>,
    /// Query members of the input: wire name, whether it is required, whether it is a list
    /// (and so may be repeated).
    pub(crate) members: Vec<(&'static str, bool, bool)>,
    /// The input takes a map of free-form query parameters.
    pub(crate) any_query: bool,
    /// Header members the input requires (lower case).
    pub(crate) headers: Vec<&'static str>,
}

#[derive(Debug)]
pub(crate) struct Op {
    pub(crate) name: &'static str,
    pub(crate) deprecated: bool,
    pub(crate) route: Option<Route>,
}

/// One service model.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) protocols: Vec<Protocol>,
    pub(crate) endpoint: &'static str,
    pub(crate) target: Option<&'static str>,
    pub(crate) ops: Vec<Op>,
}

impl Service {
    pub(crate) fn speaks(&self, p: Protocol) -> bool {
        self.protocols.contains(&p)
    }

    pub(crate) fn op(&self, name: &str) -> Option<&Op> {
        self.ops.iter().find(|o| o.name == name)
    }
}

static SERVICES: LazyLock<HashMap<&'static str, Vec<Service>>> = LazyLock::new(parse);

fn parse_route(method: &'static str, uri: &'static str, fields: &[&'static str]) -> Route {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    // A trailing `/` is not a segment: SDKs send `/functions/` for `/functions`.
    let segs = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(name) => Seg::Greedy(name),
                    None => Seg::Label(name),
                },
                None => Seg::Lit(s),
            },
        )
        .collect();
    let literals = query
        .split('&')
        .filter(|q| !q.is_empty())
        .map(|q| match q.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (q, None),
        })
        .collect();
    let mut route = Route {
        method,
        segs,
        literals,
        members: Vec::new(),
        any_query: false,
        headers: Vec::new(),
    };
    for f in fields {
        if let Some(q) = f.strip_prefix("q=") {
            for m in q.split(',') {
                if m == "*any*" {
                    route.any_query = true;
                    continue;
                }
                let (m, required) = m.strip_suffix('*').map_or((m, false), |m| (m, true));
                let (m, list) = m.strip_suffix('+').map_or((m, false), |m| (m, true));
                route.members.push((m, required, list));
            }
        } else if let Some(h) = f.strip_prefix("h=") {
            route.headers.extend(h.split(','));
        }
    }
    route
}

fn parse() -> HashMap<&'static str, Vec<Service>> {
    let mut map: HashMap<&'static str, Vec<Service>> = HashMap::new();
    let mut current: Option<(&'static str, Service)> = None;
    for line in TABLE.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(head) = line.strip_prefix('@') {
            if let Some((name, svc)) = current.take() {
                map.entry(name).or_default().push(svc);
            }
            let mut f = head.split(' ');
            let signing = f.next().unwrap_or("");
            let protocols = f
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(Protocol::parse)
                .collect();
            let endpoint = f.next().unwrap_or(signing);
            let target = f.next().filter(|t| *t != "-");
            current = Some((
                signing,
                Service {
                    protocols,
                    endpoint,
                    target,
                    ops: Vec::new(),
                },
            ));
            continue;
        }
        let Some((_, svc)) = current.as_mut() else {
            continue;
        };
        let fields: Vec<&'static str> = line.split(' ').collect();
        let name = fields[0];
        let deprecated = fields.last() == Some(&"d") && fields.len() > 1;
        let route = (fields.len() >= 3 && fields[2].starts_with('/'))
            .then(|| parse_route(fields[1], fields[2], &fields[3..]));
        svc.ops.push(Op {
            name,
            deprecated,
            route,
        });
    }
    if let Some((name, svc)) = current {
        map.entry(name).or_default().push(svc);
    }
    map
}

/// The services with this signing name (several share some: `dynamodb` and its streams).
pub(crate) fn services(signing_name: &str) -> &'static [Service] {
    SERVICES.get(signing_name).map(Vec::as_slice).unwrap_or(&[])
}

/// Every signing name in the table (for tests that walk all of them).
#[cfg(test)]
pub(crate) fn signing_names() -> Vec<&'static str> {
    SERVICES.keys().copied().collect()
}

/// A REST route that matched, with its labels (decoded).
#[derive(Debug)]
pub(crate) struct RestMatch {
    pub(crate) service: &'static Service,
    pub(crate) op: &'static Op,
    pub(crate) labels: Vec<(&'static str, String)>,
}

/// The REST operation `method segments?params` is among `services`: the most specific template
/// whose path matches, whose query literals are present, whose required query members and
/// headers are present, and whose members account for every query parameter sent (`x-id`, the
/// SDKs' hint, aside). `Err` says why none or several fit.
pub(crate) fn rest_match(
    services: &'static [Service],
    method: &str,
    segments: &[String],
    params: &[(String, String)],
    has_header: &dyn Fn(&str) -> bool,
) -> Result<RestMatch, String> {
    // The names sent more than once, found once for all routes.
    let mut seen = std::collections::HashSet::with_capacity(params.len());
    let mut repeated: Vec<&str> = Vec::new();
    for (k, _) in params {
        if !seen.insert(k.as_str()) && !repeated.contains(&k.as_str()) {
            repeated.push(k);
        }
    }
    let mut best: Vec<(usize, RestMatch)> = Vec::new();
    for svc in services
        .iter()
        .filter(|s| s.protocols.iter().any(|p| p.is_rest()))
    {
        for op in &svc.ops {
            let Some(r) = op.route.as_ref().filter(|r| r.method == method) else {
                continue;
            };
            let Some((lits, labels)) = match_path(&r.segs, segments) else {
                continue;
            };
            let literal_ok = r.literals.iter().all(|(k, v)| {
                params
                    .iter()
                    .any(|(pk, pv)| pk == k && v.is_none_or(|v| pv == v))
            });
            let required_ok = r
                .members
                .iter()
                .filter(|(_, req, _)| *req)
                .all(|(m, _, _)| params.iter().any(|(k, _)| k == m))
                && r.headers.iter().all(|h| has_header(h));
            let all_known = r.any_query
                || params.iter().all(|(k, _)| {
                    k == "x-id"
                        || r.literals.iter().any(|(l, _)| l == k)
                        || r.members.iter().any(|(m, _, _)| m == k)
                });
            // A parameter sent twice is read one way by one server and another way by the
            // next: only list members may repeat.
            let repeats_ok = repeated
                .iter()
                .all(|k| r.members.iter().any(|(m, _, list)| m == k && *list));
            if !(literal_ok && required_ok && all_known && repeats_ok) {
                continue;
            }
            // Query literals are the most specific, then literal path segments, then the
            // headers the operation requires (CopyObject over PutObject).
            let score = r.literals.len() * 1000 + lits * 10 + r.headers.len();
            best.push((
                score,
                RestMatch {
                    service: svc,
                    op,
                    labels,
                },
            ));
        }
    }
    let Some(top) = best.iter().map(|(s, _)| *s).max() else {
        return Err("matches no operation in hoopguard's route table".into());
    };
    let mut tied: Vec<RestMatch> = best
        .into_iter()
        .filter(|(s, _)| *s == top)
        .map(|(_, m)| m)
        .collect();
    if tied.iter().any(|m| !m.op.deprecated) {
        tied.retain(|m| !m.op.deprecated);
    }
    let first = tied.remove(0);
    if let Some(other) = tied
        .iter()
        .find(|m| m.op.name != first.op.name || m.service.endpoint != first.service.endpoint)
    {
        return Err(format!(
            "matches both {} and {}; hoopguard cannot tell which one AWS would run",
            first.op.name, other.op.name
        ));
    }
    Ok(first)
}

/// The number of literal segments matched and the labels, if the path matches the template.
fn match_path(segs: &[Seg], req: &[String]) -> Option<(usize, Vec<(&'static str, String)>)> {
    let mut lits = 0;
    let mut labels = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            Seg::Greedy(name) => {
                let rest = req.get(i..)?;
                if rest.is_empty() {
                    return None;
                }
                labels.push((*name, rest.join("/")));
                return Some((lits, labels));
            }
            Seg::Label(name) => {
                let v = req.get(i).filter(|s| !s.is_empty())?;
                labels.push((*name, v.clone()));
            }
            Seg::Lit(l) => {
                if req.get(i).map(String::as_str) != Some(*l) {
                    return None;
                }
                lits += 1;
            }
        }
    }
    (req.len() == segs.len()).then_some((lits, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rest(svc: &str, method: &str, path: &str, query: &str) -> Option<&'static str> {
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let params = crate::aws::pct::pairs(query).unwrap();
        rest_match(services(svc), method, &segs, &params, &|_| false)
            .ok()
            .map(|m| m.op.name)
    }

    #[test]
    fn the_table_covers_the_protocols_and_finds_rest_routes() {
        assert!(SERVICES.len() > 300, "{}", SERVICES.len());
        for p in [
            Protocol::Json,
            Protocol::Query,
            Protocol::Ec2,
            Protocol::RestJson,
            Protocol::RestXml,
            Protocol::RpcV2Cbor,
        ] {
            assert!(
                SERVICES.values().flatten().any(|s| s.speaks(p)),
                "{}",
                p.as_str()
            );
        }
        let ec2 = &services("ec2")[0];
        assert!(ec2.op("TerminateInstances").is_some());
        assert!(ec2.op("TerminateEverything").is_none());
        assert_eq!(
            rest("lambda", "GET", "/2015-03-31/functions/", ""),
            Some("ListFunctions")
        );
        assert_eq!(
            rest(
                "lambda",
                "POST",
                "/2015-03-31/functions/my-fn/invocations",
                ""
            ),
            Some("Invoke")
        );
        assert_eq!(
            rest("lambda", "DELETE", "/2015-03-31/functions/my-fn", ""),
            Some("DeleteFunction")
        );
        assert_eq!(rest("lambda", "PATCH", "/nothing", ""), None);
        assert_eq!(
            rest("s3", "GET", "/bucket", "list-type=2&prefix=a"),
            Some("ListObjectsV2")
        );
        assert_eq!(rest("s3", "GET", "/b/k", "uploadId=1"), Some("ListParts"));
        assert_eq!(rest("s3", "GET", "/b/k", "versionId=1"), Some("GetObject"));
        // A subresource the operation does not take is not ignored.
        assert_eq!(rest("s3", "GET", "/b/k", "tagging&acl"), None);
        assert_eq!(rest("s3", "GET", "/b/k", "made-up"), None);
        // A deprecated operation gives way to its replacement on the same route.
        assert_eq!(
            rest("s3", "GET", "/b", "lifecycle"),
            Some("GetBucketLifecycleConfiguration")
        );
    }
}
