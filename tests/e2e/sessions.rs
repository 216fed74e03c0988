//! `hoopguard sessions` as an auditor runs it, on recordings written by the recorder. (The data
//! paths that will write them in production are not built yet.)

use hoopguard::core::record::{Durability, Recorder};
use serde_json::json;

use crate::support::{GatewayPorts, run_hoopguard};

fn sessions(config: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["sessions", "--config", config];
    all.extend_from_slice(args);
    let (st, out, err) = run_hoopguard(&all, &[]);
    (
        st.code().unwrap_or(-1),
        String::from_utf8(out).unwrap(),
        err,
    )
}

#[test]
fn list_show_export_replay_and_verify_catch_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("hoopguard.toml");
    std::fs::write(
        &config,
        format!(
            "{}[identity.dev_issuer]\nenabled = true\n",
            GatewayPorts::new().toml(&data)
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let rec = Recorder::open(&data.join("recordings"), Durability::EveryEvent).unwrap();
    rec.append(
        "aws-alice-1",
        "start",
        json!({"subject": "alice", "groups": ["dev"]}),
    )
    .unwrap();
    rec.append(
        "aws-alice-1",
        "call",
        json!({"action": "ec2:DescribeInstances", "decision": "allow"}),
    )
    .unwrap();
    rec.append(
        "aws-alice-1",
        "call",
        json!({"action": "ec2:TerminateInstances", "decision": "approve"}),
    )
    .unwrap();
    rec.append("aws-alice-1", "end", json!({"reason": "token expired"}))
        .unwrap();
    rec.append("mcp-bob-1", "start", json!({"subject": "bob"}))
        .unwrap();
    drop(rec);

    let (code, out, err) = sessions(config, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("aws-alice-1") && out.contains("alice") && out.contains("mcp-bob-1"),
        "{out}"
    );

    let (code, out, _) = sessions(config, &["show", "aws-alice-1"]);
    assert_eq!(code, 0);
    assert!(out.contains("ec2:TerminateInstances → approve"), "{out}");
    assert!(out.contains("token expired"), "{out}");

    let (_, out, _) = sessions(config, &["export", "aws-alice-1"]);
    let events: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(events.as_array().unwrap().len(), 4);

    let (code, out, _) = sessions(config, &["replay", "aws-alice-1", "--speed", "1000"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 4, "{out}");

    let (code, out, _) = sessions(config, &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok      aws-alice-1: 4 events"), "{out}");

    // One flipped byte in event 2: verify names event 3 (the first that no longer follows).
    let path = data.join("recordings/aws-alice-1.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replacen("DescribeInstances", "DescribeInstanceS", 1),
    )
    .unwrap();
    let (code, out, _) = sessions(config, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("BROKEN  session `aws-alice-1`: event 3"),
        "{out}"
    );
    assert!(out.contains("ok      mcp-bob-1"), "{out}");
    let (code, _, err) = sessions(config, &["show", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no recording of session `nope`"), "{err}");
}
