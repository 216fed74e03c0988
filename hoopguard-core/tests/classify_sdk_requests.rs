//! The classifier agrees with the operation name the SDK sent, for real requests serialized by
//! botocore across all six protocols (recorded by `scripts/record-aws-requests.py` into
//! `tests/data/aws-requests.jsonl`).
//!
//! Every request must classify to exactly the SDK's operation — or, for S3 operations outside
//! the hand-written S3 table, be refused. A request classified as a *different* operation
//! would let a policy allow something by accident; that is the failure this test exists for.

use base64::Engine as _;
use hoopguard_core::aws::classify::{Parts, classify};

#[test]
fn every_recorded_request_classifies_to_the_operation_the_sdk_sent() {
    let data = include_str!("data/aws-requests.jsonl");
    let (mut agreed, mut refused_s3, mut wrong, mut refused_other) = (0, 0, Vec::new(), Vec::new());
    for line in data.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        let s = |k: &str| r[k].as_str().unwrap().to_string();
        let h = |k: &str| r["headers"][k].as_str().map(str::to_string);
        let body = base64::engine::general_purpose::STANDARD
            .decode(s("body"))
            .unwrap();
        let (service, op, method, path, query) = (
            s("service"),
            s("operation"),
            s("method"),
            s("path"),
            s("query"),
        );
        let target = h("x-amz-target");
        let copy = h("x-amz-copy-source");
        let got = classify(&Parts {
            method: &method,
            path: &path,
            query: &query,
            target: target.as_deref(),
            copy_source: copy.as_deref(),
            body: &body,
            service: &service,
            region: "us-east-1",
        });
        match got {
            Ok(c) if c.operation == op => agreed += 1,
            Ok(c) => wrong.push(format!("{service} {op}: classified as {}", c.operation)),
            Err(_) if service.starts_with("s3") => refused_s3 += 1,
            Err(e) => refused_other.push(format!("{service} {op}: {e}")),
        }
    }
    eprintln!(
        "{agreed} agreed, {refused_s3} S3 requests refused (outside the hand-written S3 table)"
    );
    assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
    assert!(
        refused_other.is_empty(),
        "refused:\n{}",
        refused_other.join("\n")
    );
    assert!(agreed >= 700, "{agreed}");
}
