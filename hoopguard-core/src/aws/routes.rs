//! The route table generated from the public botocore service models
//! (`scripts/gen-aws-routes.py` writes `routes.txt`; Apache-2.0, see NOTICE): for every service,
//! its signing name, protocol and operations, with the method and URI template of each REST
//! operation.

use std::collections::HashMap;
use std::sync::LazyLock;

const TABLE: &str = include_str!("routes.txt");

#[derive(Debug)]
enum Seg {
    Lit(&'static str),
    Label,
    Greedy,
}

#[derive(Debug)]
struct Route {
    op: &'static str,
    method: &'static str,
    segs: Vec<Seg>,
    /// Query literals of the template (`?uploads`, `?list-type=2`).
    query: Vec<(&'static str, Option<&'static str>)>,
}

#[derive(Debug)]
struct Service {
    protocol: &'static str,
    ops: Vec<&'static str>,
    routes: Vec<Route>,
}

static SERVICES: LazyLock<HashMap<&'static str, Vec<Service>>> = LazyLock::new(parse);

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
            let protocol = f.next().unwrap_or("");
            current = Some((
                signing,
                Service {
                    protocol,
                    ops: Vec::new(),
                    routes: Vec::new(),
                },
            ));
            continue;
        }
        let Some((_, svc)) = current.as_mut() else {
            continue;
        };
        let mut f = line.splitn(3, ' ');
        let op = f.next().unwrap_or("");
        svc.ops.push(op);
        if let (Some(method), Some(uri)) = (f.next(), f.next()) {
            let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
            // A trailing `/` is not a segment: SDKs send `/functions/` for `/functions`.
            let segs = path
                .trim_start_matches('/')
                .trim_end_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.starts_with('{') && s.ends_with("+}") {
                        Seg::Greedy
                    } else if s.starts_with('{') && s.ends_with('}') {
                        Seg::Label
                    } else {
                        Seg::Lit(s)
                    }
                })
                .collect();
            let query = query
                .split('&')
                .filter(|q| !q.is_empty())
                .map(|q| match q.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (q, None),
                })
                .collect();
            svc.routes.push(Route {
                op,
                method,
                segs,
                query,
            });
        }
    }
    if let Some((name, svc)) = current {
        map.entry(name).or_default().push(svc);
    }
    map
}

/// Whether a service with this signing name is in the table.
pub(crate) fn knows_service(signing_name: &str) -> bool {
    SERVICES.contains_key(signing_name)
}

/// Whether `op` is an operation of a service with this signing name (any protocol).
pub(crate) fn has_operation(signing_name: &str, op: &str) -> bool {
    SERVICES
        .get(signing_name)
        .is_some_and(|svcs| svcs.iter().any(|s| s.ops.contains(&op)))
}

/// The REST operation of a service with this signing name that `method path?query` is, by the
/// most specific matching URI template.
pub(crate) fn rest_operation(
    signing_name: &str,
    method: &str,
    path: &str,
    query: &str,
) -> Option<&'static str> {
    let svcs = SERVICES.get(signing_name)?;
    let req: Vec<&str> = path
        .trim_start_matches('/')
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|q| !q.is_empty())
        .map(|q| q.split_once('=').unwrap_or((q, "")))
        .collect();
    let mut best: Option<(usize, &'static str)> = None;
    for svc in svcs.iter().filter(|s| s.protocol.starts_with("rest-")) {
        for r in svc.routes.iter().filter(|r| r.method == method) {
            let Some(lits) = matches(&r.segs, &req) else {
                continue;
            };
            let query_ok = r.query.iter().all(|(k, v)| {
                params
                    .iter()
                    .any(|(pk, pv)| pk == k && v.is_none_or(|v| *pv == v))
            });
            if !query_ok {
                continue;
            }
            let score = lits * 4 + r.query.len() * 8;
            if best.is_none_or(|(b, _)| score > b) {
                best = Some((score, r.op));
            }
        }
    }
    best.map(|(_, op)| op)
}

/// The number of literal segments matched, if the path matches the template.
fn matches(segs: &[Seg], req: &[&str]) -> Option<usize> {
    let mut lits = 0;
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            Seg::Greedy => {
                let rest = req.get(i..)?;
                return (!rest.is_empty() && !rest.join("/").is_empty()).then_some(lits);
            }
            Seg::Label => {
                if req.get(i).is_none_or(|s| s.is_empty()) {
                    return None;
                }
            }
            Seg::Lit(l) => {
                if req.get(i) != Some(l) {
                    return None;
                }
                lits += 1;
            }
        }
    }
    (req.len() == segs.len()).then_some(lits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_covers_the_protocols_and_finds_rest_routes() {
        assert!(SERVICES.len() > 300, "{}", SERVICES.len());
        for p in [
            "json",
            "query",
            "ec2",
            "rest-json",
            "rest-xml",
            "rpc-v2-cbor",
        ] {
            assert!(SERVICES.values().flatten().any(|s| s.protocol == p), "{p}");
        }
        assert!(has_operation("ec2", "TerminateInstances"));
        assert!(!has_operation("ec2", "TerminateEverything"));
        assert_eq!(
            rest_operation("lambda", "GET", "/2015-03-31/functions/", ""),
            Some("ListFunctions")
        );
        assert_eq!(
            rest_operation("lambda", "GET", "/2015-03-31/functions", ""),
            Some("ListFunctions")
        );
        assert_eq!(
            rest_operation(
                "lambda",
                "POST",
                "/2015-03-31/functions/my-fn/invocations",
                ""
            ),
            Some("Invoke")
        );
        assert_eq!(
            rest_operation("lambda", "DELETE", "/2015-03-31/functions/my-fn", ""),
            Some("DeleteFunction")
        );
        assert_eq!(rest_operation("lambda", "PATCH", "/nothing", ""), None);
        assert_eq!(
            rest_operation("s3", "GET", "/bucket", "list-type=2&prefix=a"),
            Some("ListObjectsV2")
        );
    }
}
