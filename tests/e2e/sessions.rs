//! `hoopguard sessions` as an auditor runs it, on recordings written by the recorder and by a
//! gateway the AWS CLI goes through.

use std::process::Command;
use std::time::Duration;

use hoopguard::core::record::{Durability, Recorder};
use serde_json::json;

use crate::support::{Gateway, GatewayPorts, root, run_hoopguard, venv};

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

/// Pseudo-credentials from the gateway's credentials endpoint for the token in `token_file`.
/// The AWS CLI with these credentials (the same session every time) through the gateway; what it
/// printed.
fn aws_cli_with(
    gw: &Gateway,
    creds: &serde_json::Value,
    home: &std::path::Path,
    args: &[&str],
) -> String {
    crate::aws::aws_with(creds, gw, home, args).1
}

/// An approver or auditor revokes an AWS credential session on the admin API: its end is
/// recorded (`revoked`, by whom, why) and its calls are refused from then on, across a restart;
/// a developer may not revoke, a reason is required, a second revocation is a conflict.
#[test]
fn a_revoked_aws_session_is_refused_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    // Allowed calls go to an endpoint that is not there (so they fail upstream, not on policy).
    let extra = "[identity.dev_issuer]\nenabled = true\n\n[record]\nauditors = [\"security\"]\n\n[aws.connections.default]\nbroker = \"static\"\naccess_key_id = \"AKIDNOWHERE\"\nsecret_access_key = \"nowhere-static-secret\"\nendpoint = \"http://127.0.0.1:9\"\n\n[[policy.rules]]\nname = \"describe\"\neffect = \"allow\"\ngroups = [\"dev\"]\nactions = [\"ec2:Describe*\"]\n";
    let mut gw = Gateway::start(dir.path(), extra, &[]);
    let alice = gw.dev_token("alice", "dev", None);
    let sam = gw.dev_token("sam", "security", None);
    let creds = gw.pseudo_credentials(&alice);
    let describe =
        |gw: &Gateway| aws_cli_with(gw, &creds, dir.path(), &["ec2", "describe-instances"]);
    let before = describe(&gw);
    assert!(
        !before.contains("AccessDenied") && !before.contains("revoked"),
        "{before}"
    );
    let admin = |who: &std::path::Path, path: &str, body: Option<&str>| {
        let body = body.map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap());
        gw.admin(who, path, body.as_ref())
    };
    let (status, found) = admin(&sam, "/v1/sessions?subject=alice", None);
    assert_eq!(status, 200, "{found}");
    let id = found["sessions"][0]["id"].as_str().unwrap().to_string();
    let revoke = format!("/v1/sessions/{id}/revoke");
    let (status, body) = admin(&alice, &revoke, Some(r#"{"reason": "mine"}"#));
    assert_eq!(status, 403, "a developer may not revoke: {body}");
    let (status, body) = admin(&sam, &revoke, Some("{}"));
    assert_eq!(status, 400, "{body}");
    let (status, body) = admin(&sam, &revoke, Some(r#"{"reason": "leaked credentials"}"#));
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin(&sam, &revoke, Some(r#"{"reason": "again"}"#));
    assert_eq!(status, 409, "{body}");
    let after = describe(&gw);
    assert!(
        after.contains("(AccessDenied)") && after.contains("revoked"),
        "{after}"
    );
    // A restart does not bring it back.
    assert!(gw.proc.terminate(Duration::from_secs(30)).success());
    gw = Gateway::start(dir.path(), extra, &[]);
    let again = describe(&gw);
    assert!(again.contains("revoked"), "{again}");
    assert!(gw.proc.terminate(Duration::from_secs(30)).success());
    let config = gw.config.to_str().unwrap();
    let (_, out, _) = sessions(config, &["export", &id]);
    let events: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["type"], "end", "{out}");
    assert_eq!(last["data"]["reason"], "revoked");
    assert_eq!(last["data"]["by"], "sam");
    assert_eq!(last["data"]["why"], "leaked credentials");
    let (code, out, _) = sessions(config, &["verify", &id]);
    assert_eq!(code, 0, "{out}");
}

/// An AWS credential session as the AWS CLI drives it: its start names the client and user
/// agent; a clean stop ends it; the same (still valid) credentials after a restart start it
/// again, marked as resumed, instead of adding calls after its end.
#[test]
fn an_aws_session_goes_on_after_a_restart_with_a_new_start() {
    let dir = tempfile::tempdir().unwrap();
    // No rules: every call is denied, recorded, and never forwarded (no upstream is needed).
    let extra = "[identity.dev_issuer]\nenabled = true\n\n[aws.connections.default]\nbroker = \"static\"\naccess_key_id = \"AKIDNOWHERE\"\nsecret_access_key = \"nowhere-static-secret\"\nendpoint = \"http://127.0.0.1:9\"\n";
    let mut gw = Gateway::start(dir.path(), extra, &[]);
    let token = gw.dev_token("alice", "dev", None);
    let raw = std::fs::read_to_string(&token).unwrap();
    let creds = gw.pseudo_credentials(&token);
    let describe = |gw: &Gateway| {
        let text = aws_cli_with(gw, &creds, dir.path(), &["ec2", "describe-instances"]);
        assert!(text.contains("(AccessDenied)"), "{text}");
    };
    describe(&gw);
    assert!(gw.proc.terminate(Duration::from_secs(30)).success());
    gw = Gateway::start(dir.path(), extra, &[]);
    describe(&gw);
    assert!(gw.proc.terminate(Duration::from_secs(30)).success());

    let config = gw.config.to_str().unwrap();
    let (code, out, err) = sessions(config, &["list"]);
    assert_eq!(code, 0, "{err}");
    let ids: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.starts_with("aws-"))
        .collect();
    assert_eq!(ids.len(), 1, "{out}");
    let (_, out, _) = sessions(config, &["export", ids[0]]);
    let events: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["start", "call", "end", "start", "call", "end"],
        "{out}"
    );
    for (i, resumed) in [(0, false), (3, true)] {
        let d = &events[i]["data"];
        assert_eq!(d["resumed"], resumed, "{out}");
        assert_eq!(d["subject"], "alice");
        assert!(
            d["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{d}"
        );
        assert!(
            d["user_agent"].as_str().unwrap().starts_with("aws-cli/"),
            "{d}"
        );
    }
    assert_eq!(events[2]["data"]["reason"], "gateway shutdown");
    assert_eq!(
        events[1]["data"]["action"],
        "ec2:DescribeInstances in us-east-1"
    );
    assert_eq!(events[1]["data"]["decision"], "deny");
    assert_eq!(events[1]["data"]["request"]["method"], "POST");
    let (code, out, _) = sessions(config, &["verify", ids[0]]);
    assert_eq!(code, 0, "{out}");
    // Nothing of the credentials or the token in the data directory.
    for secret in [
        raw.trim(),
        creds["SecretAccessKey"].as_str().unwrap(),
        creds["Token"].as_str().unwrap(),
    ] {
        crate::aws::assert_no_file_contains(&dir.path().join("data"), secret);
    }
}

/// `kill -9` of a gateway while three boto3 agents call through it (small segments, so the kill
/// can land around a rotation): restarted on the same data directory, it cuts any torn tail, and
/// every recording verifies; the index counts what the files hold.
#[test]
fn a_gateway_killed_under_load_reopens_recordings_that_verify() {
    for durability in ["every_event", "batched"] {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!(
            "[identity.dev_issuer]\nenabled = true\n\n[record]\ndurability = \"{durability}\"\nsegment_size = \"4KiB\"\n\n[aws.connections.default]\nbroker = \"static\"\naccess_key_id = \"AKIDNOWHERE\"\nsecret_access_key = \"nowhere-static-secret\"\nendpoint = \"http://127.0.0.1:9\"\n"
        );
        let mut gw = Gateway::start(dir.path(), &extra, &[]);
        let token = gw.dev_token("alice", "dev", None);
        let agents: Vec<std::process::Child> = (0..3)
            .map(|_| {
                let mut cmd = Command::new(venv().join("bin/python"));
                cmd.arg(root().join("tests/peers/boto3_load.py")).arg("8");
                crate::aws::agent_env(&mut cmd, &gw, &token);
                cmd.stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        // Let them call for a while, then kill the gateway mid-write.
        let recordings = dir.path().join("data/recordings");
        let started = std::time::Instant::now();
        let size = || -> u64 {
            std::fs::read_dir(&recordings)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.file_name().to_str().unwrap_or("").ends_with(".jsonl"))
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0)
        };
        while size() < 64 * 1024 && started.elapsed() < Duration::from_secs(6) {
            std::thread::sleep(Duration::from_millis(20));
        }
        gw.proc.kill();
        let mut calls = 0;
        for a in agents {
            let out = a.wait_with_output().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
            calls += v["calls"].as_u64().unwrap();
        }
        // Restarted on the same directory: the store is reopened (torn tails cut).
        let mut gw = Gateway::start(dir.path(), &extra, &[]);
        assert!(gw.proc.terminate(Duration::from_secs(30)).success());
        let config = gw.config.to_str().unwrap();
        let (code, out, err) = sessions(config, &["verify"]);
        assert_eq!(code, 0, "{durability}: {out}{err}");
        let verified: usize = out
            .lines()
            .filter_map(|l| {
                l.split(": ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        assert!(verified > 30, "{durability}: {out}");
        // (Most of the agents' calls come after the kill and fail fast: printed, not asserted.)
        eprintln!("{durability}: {calls} calls by the agents, {verified} events verified");
        let rotated = std::fs::read_dir(&recordings)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_str().unwrap().ends_with(".2.jsonl")
            })
            .count();
        assert!(
            rotated > 0,
            "{durability}: no session reached a second segment"
        );
        let (code, out, _) = sessions(config, &["list"]);
        assert_eq!(code, 0);
        let listed: usize = out
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
            .sum();
        assert_eq!(
            listed, verified,
            "{durability}: the index counts what the files hold: {out}"
        );
    }
}

/// Rewrites a session as someone who can write the data directory would: drops event `n` and
/// chains the rest again (every `prev`, `seq` and the head), so the plain hash chain verifies.
fn drop_and_rechain(recordings: &std::path::Path, session: &str, n: usize) {
    let path = recordings.join(format!("{session}.jsonl"));
    let mut events: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    events.remove(n - 1);
    let mut prev = "0".repeat(64);
    let mut out = String::new();
    for (i, e) in events.iter_mut().enumerate() {
        e["seq"] = json!(i + 1);
        e["prev"] = json!(prev);
        let line = serde_json::to_string(e).unwrap();
        prev = hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, line.as_bytes()).as_ref());
        out.push_str(&line);
        out.push('\n');
    }
    std::fs::write(&path, out).unwrap();
    let head_path = recordings.join(format!("{session}.head"));
    let mut head: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&head_path).unwrap()).unwrap();
    head["seq"] = json!(events.len());
    head["hash"] = json!(prev);
    std::fs::write(&head_path, serde_json::to_vec(&head).unwrap()).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// With a signing key outside the data directory, the gateway signs digests of its recordings;
/// an auditor's `sessions verify --public-key` then catches what the plain chain cannot: a
/// dropped event re-chained, a session deleted.
#[test]
fn signed_digests_catch_a_rewritten_or_deleted_recording() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = keys.join("digest.key");
    let (st, out, err) =
        run_hoopguard(&["sessions", "keygen", "--out", key.to_str().unwrap()], &[]);
    assert!(st.success(), "{err}");
    let public_file = keys.join("digest.key.pub");
    let public = std::fs::read_to_string(&public_file).unwrap();
    assert!(String::from_utf8_lossy(&out).contains(public.trim()));
    let extra = format!(
        "[identity.dev_issuer]\nenabled = true\n\n[record]\nauditors = [\"security\"]\nsigning_key_file = {key:?}\ndigest_interval = \"1s\"\n\n[aws.connections.default]\nbroker = \"static\"\naccess_key_id = \"AKIDNOWHERE\"\nsecret_access_key = \"nowhere-static-secret\"\nendpoint = \"http://127.0.0.1:9\"\n\n[[policy.rules]]\nname = \"describe\"\neffect = \"allow\"\ngroups = [\"dev\"]\nactions = [\"ec2:Describe*\"]\n"
    );
    let mut gw = Gateway::start(dir.path(), &extra, &[]);
    let config = gw.config.to_str().unwrap().to_string();
    let alice = gw.dev_token("alice", "dev", None);
    let sam = gw.dev_token("sam", "security", None);
    // The public key is published to auditors.
    let (status, k) = gw.admin(&sam, "/v1/sessions-digest-key", None);
    assert_eq!(status, 200, "{k}");
    assert_eq!(k["public_key"].as_str(), Some(public.trim()));
    let creds = gw.pseudo_credentials(&alice);
    for args in [
        &["ec2", "describe-instances"][..],
        &["iam", "list-users"],
        &["ec2", "describe-vpcs"],
    ] {
        aws_cli_with(&gw, &creds, dir.path(), args);
    }
    assert!(gw.proc.terminate(Duration::from_secs(30)).success());
    let log = gw.proc.output();
    assert!(log.contains("signed"), "{log}");

    let verify = |signed: bool| {
        let mut args = vec!["verify"];
        if signed {
            args.extend(["--public-key", public_file.to_str().unwrap()]);
        }
        sessions(&config, &args)
    };
    // The legitimate twin: untouched, both verify.
    let (code, out, err) = verify(true);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signed digests"), "{out}");
    let recordings = dir.path().join("data/recordings");
    let id = std::fs::read_dir(&recordings)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".head").map(str::to_string)
        })
        .find(|n| n.starts_with("aws-"))
        .unwrap();
    // Drop the denied `iam:ListUsers` call and chain the rest again: the plain chain is fooled.
    drop_and_rechain(&recordings, &id, 3);
    let (code, out, _) = verify(false);
    assert_eq!(code, 0, "the hash chain alone cannot see it: {out}");
    let (code, out, _) = verify(true);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&id) && out.contains("BROKEN"), "{out}");
    // Deleting the whole session is seen too.
    for ext in ["jsonl", "head"] {
        std::fs::remove_file(recordings.join(format!("{id}.{ext}"))).unwrap();
    }
    let (code, out, _) = verify(true);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("`{id}` is missing")), "{out}");
    // A key inside the data directory is refused: whoever could rewrite the recordings could
    // read it.
    let inside = dir.path().join("data/digest.key");
    std::fs::copy(&key, &inside).unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&gw.config)
            .unwrap()
            .replace(&format!("{key:?}"), &format!("{inside:?}")),
    )
    .unwrap();
    let (st, _, err) = run_hoopguard(&["check", "--config", bad.to_str().unwrap()], &[]);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("record.signing_key_file"), "{err}");
}
