//! Rate limits and budgets end to end: a runaway boto3 loop through hoopguard in front of moto
//! (signature checking on) runs into its limits, the SDK's own retry logic backs off on the
//! throttling answers, and every refused attempt is in the recording.

use crate::aws::{aws_ok, python};
use crate::support::{Gateway, Moto, reqwest::blocking_client, run_hoopguard};

fn day() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400
}

#[test]
fn a_runaway_boto3_loop_is_throttled_in_the_sdks_own_terms_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let config = format!(
        r#"
[identity.dev_issuer]
enabled = true

[aws.connections.default]
broker = "assume_role"
role_arn = "{role}"
endpoint = "{endpoint}"

[[policy.rules]]
name = "agents-work"
effect = "allow"
groups = ["dev"]
actions = ["sts:GetCallerIdentity", "s3:CreateBucket", "s3:ListBucket"]

# Windows of a UTC day, so the test cannot straddle one (see `day()` below).
[[policy.limits]]
name = "identity-checks"
actions = ["sts:GetCallerIdentity"]
calls = 3
per = "1d"

[[policy.limits]]
name = "bucket-listings"
groups = ["dev"]
actions = ["s3:ListBucket"]
calls = 2
per = "1d"
"#,
        role = moto.role_arn,
        endpoint = moto.url()
    );
    let gw = Gateway::start_with_env(dir.path(), &config, &[], &moto.gateway_env());
    let token = gw.dev_token("alice", "dev", None);
    aws_ok(&gw, &token, &["s3", "mb", "s3://loop-bucket"]);

    let started = day();
    let (ok, out) = python(&gw, &token, "boto3_throttle.py", &["6", "loop-bucket"]);
    assert!(ok, "{out}");
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let results = |svc: &str| -> Vec<String> {
        v[svc]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["result"].as_str().unwrap().to_string())
            .collect()
    };
    if day() == started {
        // STS (query protocol): `Throttling`, which botocore retries with backoff; S3:
        // `503 SlowDown`, likewise. Refused attempts do not count, so exactly the limit passes.
        assert_eq!(
            results("sts"),
            ["ok", "ok", "ok", "Throttling", "Throttling", "Throttling"],
            "{v}"
        );
        assert_eq!(
            results("s3"),
            ["ok", "ok", "SlowDown", "SlowDown", "SlowDown", "SlowDown"],
            "{v}"
        );
    }
    let refused = v["sts"][3].clone();
    assert_eq!(refused["status"], 400, "{refused}");
    assert_eq!(
        refused["retries"], 2,
        "the SDK retried the throttled call: {refused}"
    );
    let retry_after: u64 = refused["retry_after"].as_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry_after), "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("limit `identity-checks`: at most 3 calls per 1day for `alice`"),
        "{message}"
    );
    let slow = v["s3"][2].clone();
    assert_eq!(
        (slow["status"].as_u64(), slow["retries"].as_u64()),
        (Some(503), Some(2)),
        "{slow}"
    );

    // Another caller has their own budget (the legitimate twin).
    let bob = gw.dev_token("bob", "dev", None);
    let (ok, out) = python(&gw, &bob, "boto3_throttle.py", &["1", "loop-bucket"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["sts"][0]["result"], "ok", "{v}");
    assert_eq!(v["s3"][0]["result"], "ok", "{v}");

    // Every refused attempt is recorded with the limit that refused it.
    let config = gw.config.to_str().unwrap();
    let (st, out, err) = run_hoopguard(
        &["sessions", "--config", config, "list", "--subject", "alice"],
        &[],
    );
    assert!(st.success(), "{err}");
    let ids: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| l.contains("alice"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(!ids.is_empty());
    let mut throttled = Vec::new();
    for id in &ids {
        let (_, out, _) = run_hoopguard(&["sessions", "--config", config, "export", id], &[]);
        let events: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
        throttled.extend(
            events
                .into_iter()
                .filter(|e| e["data"]["decision"] == "throttle")
                .map(|e| (e["data"]["operation"].clone(), e["data"]["rule"].clone())),
        );
    }
    let sts = throttled
        .iter()
        .filter(|(op, rule)| op == "GetCallerIdentity" && rule == "identity-checks")
        .count();
    let s3 = throttled
        .iter()
        .filter(|(op, rule)| op == "ListObjectsV2" && rule == "bucket-listings")
        .count();
    // Each refused call was tried three times (botocore standard mode, max_attempts = 2:
    // two retries with backoff), each attempt recorded.
    assert_eq!((sts, s3, throttled.len()), (9, 12, 21), "{throttled:?}");
    let (st, out, _) = run_hoopguard(
        &[
            "sessions",
            "--config",
            config,
            "list",
            "--decision",
            "throttle",
        ],
        &[],
    );
    assert!(st.success());
    assert!(String::from_utf8(out).unwrap().contains("alice"));

    // The decisions are counted.
    let metrics = blocking_client()
        .get(gw.url(gw.admin, "/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"hoopguard_decisions_total{listener="gateway",decision="throttle"} 21"#),
        "{metrics}"
    );
    let (st, out, _) = run_hoopguard(&["check", "--config", config], &[]);
    assert!(st.success());
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("limit `identity-checks`: at most 3 calls per 1day for each caller (counted in this process)")
    );
}
