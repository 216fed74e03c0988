//! What operators watch, end to end: the audit stream, `/metrics` and OpenTelemetry traces of
//! one gateway in front of moto (signature checking on, behind `tests/peers/logging_upstream.py`,
//! which logs what reaches it) and `@modelcontextprotocol/server-everything`, driven by the AWS
//! CLI and the official Python MCP SDK. The traces go to a real OTLP/HTTP receiver
//! (`tests/peers/otlp_receiver.py`, decoding with the official protobuf definitions from PyPI
//! `opentelemetry-proto`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::aws::{aws, aws_ok};
use crate::support::{
    Everything, Gateway, Moto, Proc, free_port, mcp_client, reqwest::blocking_client, root, venv,
    wait_for_port,
};

/// `tests/peers/otlp_receiver.py`: the spans it received, one JSON object per line in `out`.
struct Receiver {
    port: u16,
    out: PathBuf,
    _proc: Proc,
}

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        let out = dir.join("spans.jsonl");
        let log = dir.join("otlp-receiver.log");
        let mut cmd = Command::new(venv().join("bin/python"));
        cmd.arg(root().join("tests/peers/otlp_receiver.py"))
            .arg(&out)
            .stdin(Stdio::null());
        let proc = Proc::spawn(cmd, log);
        let started = Instant::now();
        let port = loop {
            if let Some(p) = proc
                .output()
                .lines()
                .next()
                .and_then(|l| l.trim().parse().ok())
            {
                break p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the OTLP receiver did not start: {}",
                proc.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        wait_for_port(port, Duration::from_secs(10));
        Receiver {
            port,
            out,
            _proc: proc,
        }
    }

    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until `done` holds for the spans received (the exporter sends in batches).
    fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no {what} within 30 s; received: {spans:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn config(moto: &Moto, upstream: u16, everything: &Everything, dir: &Path, otlp: u16) -> String {
    format!(
        r#"
[identity.dev_issuer]
enabled = true

[telemetry]
audit = "{audit}"
otlp_endpoint = "http://127.0.0.1:{otlp}"
service_name = "hoopguard-e2e"
accept_trace_context = true

[aws.connections.default]
broker = "assume_role"
role_arn = "{role}"
endpoint = "http://127.0.0.1:{upstream}"

[mcp.upstream]
url = "{mcp}"
name = "everything"

[[policy.rules]]
name = "who-am-i"
effect = "allow"
groups = ["dev"]
actions = ["sts:GetCallerIdentity"]

[[policy.rules]]
name = "no-terminations"
effect = "deny"
reason = "agents do not terminate instances"
actions = ["ec2:TerminateInstances"]

[[policy.rules]]
name = "dev-tools"
effect = "allow"
groups = ["dev"]
tools = ["echo"]

[[policy.rules]]
name = "no-logging-toggles"
effect = "deny"
tools = ["toggle-simulated-logging"]
"#,
        audit = dir.join("audit.jsonl").display(),
        role = moto.role_arn,
        mcp = everything.url(),
    )
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

#[test]
fn every_decision_reaches_the_audit_stream_the_metrics_and_the_traces() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let upstream_port = free_port();
    let upstream_log = dir.path().join("upstream.jsonl");
    std::fs::write(&upstream_log, "").unwrap();
    let mut cmd = Command::new(venv().join("bin/python"));
    cmd.arg(root().join("tests/peers/logging_upstream.py"))
        .arg(upstream_port.to_string())
        .arg(moto.url())
        .arg(&upstream_log)
        .stdin(Stdio::null());
    let _upstream = Proc::spawn(cmd, dir.path().join("logging-upstream.log"));
    wait_for_port(upstream_port, Duration::from_secs(30));
    let everything = Everything::start(dir.path(), &[]);
    let receiver = Receiver::start(dir.path());
    let mut env = moto.gateway_env().to_vec();
    // Export every 200 ms rather than the SDK's default 5 s (the SDK's own setting).
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "200"));
    let gw = Gateway::start_with_env(
        dir.path(),
        &config(&moto, upstream_port, &everything, dir.path(), receiver.port),
        &[],
        &env,
    );
    let alice = gw.dev_token("alice", "dev", None);
    let url = gw.url(gw.mcp, "/mcp");
    let alice_mcp = gw.dev_token("alice", "dev", Some(&url));

    // AWS: one call allowed, one denied by a rule.
    let out = aws_ok(&gw, &alice, &["sts", "get-caller-identity"]);
    assert!(out.contains("assumed-role"), "{out}");
    let (ok, out) = aws(
        &gw,
        &alice,
        &["ec2", "terminate-instances", "--instance-ids", "i-0123"],
        &[],
    );
    assert!(
        !ok && out.contains("agents do not terminate instances"),
        "{out}"
    );
    // MCP: one tool allowed, one denied.
    let results = mcp_client(
        &url,
        Some(&alice_mcp),
        &[
            "call",
            "echo",
            r#"{"message":"hello"}"#,
            "call",
            "toggle-simulated-logging",
            "{}",
        ],
    )
    .unwrap();
    assert!(results[0].to_string().contains("hello"), "{results:?}");
    assert!(results[1].get("error").is_some(), "{results:?}");
    // A caller that is itself traced: its trace goes on through hoopguard.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let resp = blocking_client()
        .post(&url)
        .bearer_auth(std::fs::read_to_string(&alice_mcp).unwrap().trim())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .body(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The audit stream: one line per decision, in its versioned schema.
    let audit_path = dir.path().join("audit.jsonl");
    let started = Instant::now();
    let lines: Vec<Value> = loop {
        let lines: Vec<Value> = std::fs::read_to_string(&audit_path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= 4 || started.elapsed() > Duration::from_secs(10) {
            // A little longer: a fifth (duplicate) line would show up too.
            std::thread::sleep(Duration::from_millis(500));
            break std::fs::read_to_string(&audit_path)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let find = |decision: &str, rule: &str| -> &Value {
        lines
            .iter()
            .find(|l| l["decision"] == decision && l["rule"] == rule)
            .unwrap_or_else(|| panic!("no {decision} by {rule} in {lines:#?}"))
    };
    assert_eq!(lines.len(), 4, "one line per decision: {lines:#?}");
    for l in &lines {
        assert_eq!(l["schema"], "hoopguard.decision.v1", "{l}");
        assert_eq!(l["subject"], "alice", "{l}");
        // AWS calls are made with pseudo-credentials, minted for the token's subject and issuer:
        // both paths name the issuer of the token.
        let issuer = l["issuer"].as_str().unwrap();
        assert!(issuer.starts_with("http://127.0.0.1:"), "{l}");
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    let sts = find("allow", "who-am-i");
    assert_eq!(
        (&sts["protocol"], &sts["connection"], &sts["call"]["kind"]),
        (&"aws".into(), &"default".into(), &"aws".into()),
        "{sts}"
    );
    assert_eq!(sts["call"]["actions"][0]["action"], "sts:GetCallerIdentity");
    assert!(
        sts["session"].as_str().unwrap().starts_with("aws-"),
        "{sts}"
    );
    assert!(
        sts["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{sts}"
    );
    let ec2 = find("deny", "no-terminations");
    assert_eq!(
        ec2["call"]["actions"][0]["action"],
        "ec2:TerminateInstances"
    );
    assert_eq!(ec2["reason"], "agents do not terminate instances");
    let echo = find("allow", "dev-tools");
    assert_eq!(
        (&echo["protocol"], &echo["connection"], &echo["call"]),
        (
            &"mcp".into(),
            &"everything".into(),
            &serde_json::json!({"kind": "tool", "name": "echo"})
        ),
        "no arguments: {echo}"
    );
    find("deny", "no-logging-toggles");

    // /metrics: by rule, by connection, the time to record, the audit lines.
    let metrics = blocking_client()
        .get(gw.url(gw.admin, "/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    for series in [
        r#"hoopguard_rule_decisions_total{rule="no-terminations",decision="deny"} 1"#,
        r#"hoopguard_rule_decisions_total{rule="dev-tools",decision="allow"} 1"#,
        r#"hoopguard_connection_decisions_total{protocol="aws",connection="default",decision="allow"} 1"#,
        r#"hoopguard_connection_decisions_total{protocol="mcp",connection="everything",decision="deny"} 1"#,
        r#"hoopguard_audit_lines_total{outcome="written"} 4"#,
        r#"hoopguard_audit_lines_total{outcome="dropped"} 0"#,
        "hoopguard_record_seconds_count 4",
    ] {
        assert!(
            metrics.lines().any(|l| l == series),
            "no `{series}` in:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("alice"),
        "no subject labels unless configured"
    );
    // Both SigV4-signed AWS calls were authenticated (the credential fetches may add theirs).
    let aws_auth = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(r#"hoopguard_auth_total{listener="aws",outcome="authenticated"} "#)
        })
        .unwrap_or_else(|| panic!("no AWS authentications in:\n{metrics}"));
    assert!(aws_auth.parse::<u64>().unwrap() >= 2, "{aws_auth}");

    // Traces: the allowed AWS call's span, its steps as children, the decision on it.
    let spans = receiver.wait_for("traces of the four calls", |s| {
        s.iter().filter(|s| s["name"] == "hoopguard.aws").count() >= 2
            && s.iter().any(|s| s["name"] == "hoopguard.upstream")
            && s.iter()
                .filter(|s| {
                    s["name"] == "hoopguard.mcp" && !attr(s, "hoopguard.decision").is_null()
                })
                .count()
                >= 2
            && s.iter().any(|s| s["trace_id"] == caller_trace)
    });
    let aws_call = spans
        .iter()
        .find(|s| s["name"] == "hoopguard.aws" && attr(s, "hoopguard.rule") == "who-am-i")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(aws_call["kind"], 2, "a server span: {aws_call}");
    assert_eq!(aws_call["parent_span_id"], "", "{aws_call}");
    assert_eq!(aws_call["resource"]["service.name"], "hoopguard-e2e");
    for (key, want) in [
        ("hoopguard.subject", "alice"),
        ("hoopguard.connection", "default"),
        ("hoopguard.decision", "allow"),
        ("hoopguard.call", "sts:GetCallerIdentity in us-east-1"),
    ] {
        assert_eq!(attr(aws_call, key), want, "{key}: {aws_call}");
    }
    assert_eq!(attr(aws_call, "http.response.status_code"), 200);
    assert!(
        aws_call["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "decided"),
        "{aws_call}"
    );
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == aws_call["span_id"])
        .collect();
    let names: Vec<&str> = children
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for step in [
        "hoopguard.auth",
        "hoopguard.classify",
        "hoopguard.record",
        "hoopguard.broker",
        "hoopguard.upstream",
        "hoopguard.mask",
        "hoopguard.record_answer",
    ] {
        assert!(names.contains(&step), "no {step} under the call: {names:?}");
    }
    // The answer's steps last while its body streams and say how much of it they saw.
    for step in ["hoopguard.mask", "hoopguard.record_answer"] {
        let s = children.iter().find(|s| s["name"] == step).unwrap();
        let bytes = attr(s, "hoopguard.bytes");
        assert!(bytes.as_u64().is_some_and(|b| b > 100), "{step}: {s}");
    }
    for c in &children {
        assert_eq!(c["trace_id"], aws_call["trace_id"]);
    }
    let up = children
        .iter()
        .find(|s| s["name"] == "hoopguard.upstream")
        .unwrap();
    assert_eq!(up["kind"], 3, "a client span: {up}");
    assert_eq!(attr(up, "http.response.status_code"), 200, "{up}");
    // Upstream got the trace context: this trace, the upstream span as its parent.
    let reached = std::fs::read_to_string(&upstream_log).unwrap();
    let want = format!(
        "00-{}-{}-01",
        aws_call["trace_id"].as_str().unwrap(),
        up["span_id"].as_str().unwrap()
    );
    assert!(
        reached.contains(&want),
        "upstream did not get traceparent {want}: {reached}"
    );
    // The denied call: its span says so, and nothing went upstream under it.
    let denied = spans
        .iter()
        .find(|s| s["name"] == "hoopguard.aws" && attr(s, "hoopguard.rule") == "no-terminations")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(attr(denied, "hoopguard.decision"), "deny");
    assert!(
        !spans
            .iter()
            .any(|s| s["parent_span_id"] == denied["span_id"] && s["name"] == "hoopguard.upstream"),
        "{spans:#?}"
    );
    // MCP: the decisions on its calls' spans; the traced caller's trace went on.
    assert!(
        spans.iter().any(|s| s["name"] == "hoopguard.mcp"
            && attr(s, "hoopguard.decision") == "deny"
            && attr(s, "hoopguard.rule") == "no-logging-toggles"
            && attr(s, "hoopguard.connection") == "everything"),
        "{spans:#?}"
    );
    let continued = spans
        .iter()
        .find(|s| s["trace_id"] == caller_trace && s["name"] == "hoopguard.mcp")
        .unwrap_or_else(|| panic!("the caller's trace did not go on: {spans:#?}"));
    assert_eq!(continued["parent_span_id"], caller_span, "{continued}");

    // Nothing secret in the audit stream or the traces (span and event attributes): the
    // tokens, the tool's argument, the signature of the AWS call.
    let audit = std::fs::read_to_string(&audit_path).unwrap();
    let traces = std::fs::read_to_string(&receiver.out).unwrap();
    let first: Value = serde_json::from_str(reached.lines().next().unwrap()).unwrap();
    let signature = first["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "authorization")
        .and_then(|h| h[1].as_str()?.split("Signature=").nth(1))
        .unwrap_or_else(|| panic!("no signature upstream: {first}"))
        .to_string();
    for secret in [
        std::fs::read_to_string(&alice).unwrap().trim().to_string(),
        std::fs::read_to_string(&alice_mcp)
            .unwrap()
            .trim()
            .to_string(),
        "hello".to_string(),
        signature,
    ] {
        assert!(!audit.contains(&secret), "{secret} in the audit stream");
        assert!(!traces.contains(&secret), "{secret} in the traces");
    }
}
