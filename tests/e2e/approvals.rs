//! The approval lifecycle end to end: `hoopguard serve`, the admin API, and the
//! `hoopguard approvals` CLI as a manager uses it, with tokens from the development issuer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Gateway, reqwest::blocking_client, run_hoopguard};

const POLICY: &str = r#"
[identity.dev_issuer]
enabled = true

[[policy.rules]]
name = "describe"
effect = "allow"
groups = ["dev"]
actions = ["ec2:Describe*"]

[[policy.rules]]
name = "terminate-needs-manager"
effect = "approve"
groups = ["dev"]
actions = ["ec2:TerminateInstances"]
approvers = ["managers"]

[[policy.rules]]
name = "jit-admin-tools"
effect = "approve"
tools = ["admin_*"]
approvers = ["managers"]
grant = "window"
window = "3s"
"#;

struct Env {
    gw: Gateway,
}

impl Env {
    fn start(dir: &Path) -> Env {
        Env {
            gw: Gateway::start(dir, POLICY, &[]),
        }
    }

    /// A token file for `sub` in `groups`, from the development issuer.
    fn token(&self, sub: &str, groups: &str) -> PathBuf {
        self.gw.dev_token(sub, groups, None)
    }

    /// `POST /v1/authorize` as the holder of `token`.
    fn authorize(&self, token: &Path, call: Value) -> (u16, Value) {
        let resp = blocking_client()
            .post(self.gw.url(self.gw.admin, "/v1/authorize"))
            .bearer_auth(std::fs::read_to_string(token).unwrap())
            .json(&json!({ "call": call }))
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json().unwrap())
    }

    /// `hoopguard approvals ARGS…` as the holder of `token`: (success, stdout, stderr).
    fn cli(&self, token: &Path, args: &[&str]) -> (bool, String, String) {
        let mut all = vec![
            "approvals",
            "--config",
            self.gw.config.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let (st, out, err) = run_hoopguard(&all, &[]);
        (st.success(), String::from_utf8(out).unwrap(), err)
    }
}

fn terminate(instance: &str) -> Value {
    json!({"kind": "aws", "actions": [{"action": "ec2:TerminateInstances",
           "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{instance}")]}],
           "region": "us-east-1"})
}

fn pending_id(status: u16, body: &Value) -> String {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "approval_required", "{body}");
    body["approval_id"].as_str().unwrap().to_string()
}

#[test]
fn approve_once_then_the_call_passes_once() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(dir.path());
    let (alice, maria, dave) = (
        env.token("alice", "dev"),
        env.token("maria", "managers"),
        env.token("dave", "dev"),
    );

    // Allowed and default-denied calls need nobody.
    let (st, body) = env.authorize(
        &alice,
        json!({"kind": "aws", "actions": [{"action": "ec2:DescribeInstances"}]}),
    );
    assert_eq!(
        (st, body["decision"].as_str()),
        (200, Some("allow")),
        "{body}"
    );
    let (st, body) = env.authorize(
        &alice,
        json!({"kind": "aws", "actions": [{"action": "iam:CreateUser"}]}),
    );
    assert_eq!(st, 403);
    assert_eq!(body["decision"], "deny");
    assert!(
        body["message"].as_str().unwrap().contains("no rule allows"),
        "{body}"
    );

    // The risky call is refused with an approval id and the command that approves it.
    let (st, body) = env.authorize(&alice, terminate("i-1"));
    let id = pending_id(st, &body);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("hoopguard approvals approve {id}"))
    );
    // A retry before approval is the same request, not a new one.
    let (st, body) = env.authorize(&alice, terminate("i-1"));
    assert_eq!(pending_id(st, &body), id);

    // The manager sees it, the requester sees it, another developer does not.
    let (ok, out, err) = env.cli(&maria, &["list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&id) && out.contains("alice") && out.contains("ec2:TerminateInstances"),
        "{out}"
    );
    let (ok, out, _) = env.cli(&dave, &["list"]);
    assert!(ok);
    assert!(!out.contains(&id), "{out}");
    // Someone outside the approver groups cannot approve.
    let (ok, _, err) = env.cli(&dave, &["approve", &id]);
    assert!(!ok);
    assert!(err.contains("not_an_approver"), "{err}");

    let (ok, out, err) = env.cli(&maria, &["approve", &id, "--reason", "ticket OPS-1"]);
    assert!(ok, "{err}");
    assert!(out.contains("now approved"), "{out}");
    let (ok, out, _) = env.cli(&maria, &["show", &id]);
    assert!(ok);
    assert!(
        out.contains("approve by maria") && out.contains("ticket OPS-1"),
        "{out}"
    );

    // Approval for i-1 does not cover i-2.
    let (st, body) = env.authorize(&alice, terminate("i-2"));
    assert_ne!(pending_id(st, &body), id);
    // Nor does it cover another requester.
    let (st, body) = env.authorize(&dave, terminate("i-1"));
    pending_id(st, &body);

    // The retry goes through, once.
    let (st, body) = env.authorize(&alice, terminate("i-1"));
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["approval_id"], id.as_str());
    let (st, body) = env.authorize(&alice, terminate("i-1"));
    let again = pending_id(st, &body);
    assert_ne!(again, id, "the same call again needs a new approval");

    // Deciding twice is refused; a denial needs a reason and ends the request.
    let (ok, _, err) = env.cli(&maria, &["approve", &id]);
    assert!(!ok);
    assert!(err.contains("409"), "{err}");
    let (ok, _, err) = env.cli(&maria, &["deny", &again]);
    assert!(!ok, "clap requires --reason");
    assert!(err.contains("--reason"), "{err}");
    let (ok, out, err) = env.cli(&maria, &["deny", &again, "--reason", "not today"]);
    assert!(ok, "{err}");
    assert!(out.contains("now denied"), "{out}");
    let metrics = blocking_client()
        .get(env.gw.url(env.gw.admin, "/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"hoopguard_decisions_total{listener="gateway",decision="approve"}"#),
        "{metrics}"
    );
}

#[test]
fn a_requester_cannot_approve_their_own_request() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(dir.path());
    let boss = env.token("boss", "dev,managers");
    let (st, body) = env.authorize(&boss, terminate("i-9"));
    let id = pending_id(st, &body);
    let (ok, _, err) = env.cli(&boss, &["approve", &id]);
    assert!(!ok);
    assert!(err.contains("self_approval"), "{err}");
    let (st, _) = env.authorize(&boss, terminate("i-9"));
    assert_eq!(st, 403, "still pending");
}

#[test]
fn a_window_grant_works_for_its_duration_then_stops() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(dir.path());
    let (alice, maria) = (env.token("alice", "dev"), env.token("maria", "managers"));
    let tool = |name: &str| json!({"kind": "mcp_tool", "tool": name, "args": {"force": true}});
    let (st, body) = env.authorize(&alice, tool("admin_restart"));
    let id = pending_id(st, &body);
    let (ok, _, err) = env.cli(&maria, &["approve", &id]);
    assert!(ok, "{err}");
    for name in ["admin_restart", "admin_restart", "admin_flush"] {
        let (st, body) = env.authorize(&alice, tool(name));
        assert_eq!(st, 200, "{name} inside the window: {body}");
    }
    std::thread::sleep(Duration::from_millis(3500));
    let (st, body) = env.authorize(&alice, tool("admin_restart"));
    pending_id(st, &body);
}

#[test]
fn a_restart_between_request_and_approval_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::start(dir.path());
    let alice = env.token("alice", "dev");
    let (st, body) = env.authorize(&alice, terminate("i-7"));
    let id = pending_id(st, &body);
    assert!(env.gw.proc.terminate(Duration::from_secs(10)).success());

    // Same data directory, new process (and new ports: tokens are minted again for its issuer).
    env.gw = Gateway::start(dir.path(), POLICY, &[]);
    let maria = env.token("maria", "managers");
    let (ok, out, err) = env.cli(&maria, &["list"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&id),
        "the pending approval survived the restart: {out}"
    );
    let (ok, _, err) = env.cli(&maria, &["approve", &id]);
    assert!(ok, "{err}");
    assert!(env.gw.proc.terminate(Duration::from_secs(10)).success());

    env.gw = Gateway::start(dir.path(), POLICY, &[]);
    let alice = env.token("alice", "dev");
    let (st, body) = env.authorize(&alice, terminate("i-7"));
    assert_eq!(st, 200, "the grant survived the restart: {body}");
}

#[test]
fn sighup_reloads_the_policy_and_keeps_it_when_the_file_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::start(dir.path());
    let alice = env.token("alice", "dev");
    let call = json!({"kind": "aws", "actions": [{"action": "s3:ListBuckets"}]});
    assert_eq!(env.authorize(&alice, call.clone()).0, 403);

    let text = std::fs::read_to_string(&env.gw.config).unwrap();
    std::fs::write(&env.gw.config, format!("{text}\n[[policy.rules]]\nname = \"s3-list\"\neffect = \"allow\"\nactions = [\"s3:ListBuckets\"]\n")).unwrap();
    hup(&env.gw);
    wait_until(|| env.authorize(&alice, call.clone()).0 == 200);

    std::fs::write(
        &env.gw.config,
        format!("{text}\n[[policy.rules]]\nname = \"broken\"\neffect = \"permit\"\n"),
    )
    .unwrap();
    hup(&env.gw);
    wait_until(|| env.gw.proc.output().contains("policy reload failed"));
    assert_eq!(
        env.authorize(&alice, call).0,
        200,
        "the running policy stays"
    );
    assert!(env.gw.proc.terminate(Duration::from_secs(10)).success());
}

fn hup(gw: &Gateway) {
    let st = std::process::Command::new("kill")
        .args(["-HUP", &gw.proc.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

fn wait_until(mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("condition not met within 10s");
}
