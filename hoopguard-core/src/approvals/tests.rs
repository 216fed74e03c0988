use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::webhook::{Format, Notifier, WebhookConfig};
use super::*;
use crate::policy::{Effect, Policy, RuleConfig};

fn who(sub: &str, groups: &[&str]) -> Identity {
    Identity {
        subject: sub.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        issuer: "https://idp.test".into(),
        expires_at: SystemTime::now(),
        claims: Default::default(),
        namespace: None,
    }
}

fn policy(extra: &str) -> Policy {
    let text = format!(
        r#"
[[rules]]
name = "terminate"
effect = "approve"
actions = ["ec2:TerminateInstances"]
approvers = ["managers"]
{extra}

[[rules]]
name = "jit-admin"
effect = "approve"
tools = ["admin_*"]
approvers = ["managers"]
grant = "window"
window = "2s"

[[rules]]
name = "two-keys"
effect = "approve"
tools = ["launch"]
approvers = ["managers", "security"]
quorum = 2
"#
    );
    let t: toml::Table = toml::from_str(&text).unwrap();
    Policy::compile(&t["rules"].clone().try_into::<Vec<RuleConfig>>().unwrap()).unwrap()
}

fn spec(p: &Policy, who: &Identity, call: &Call) -> ApprovalSpec {
    let d = p.decide(who, call);
    assert_eq!(d.effect, Effect::Approve, "{}", d.reason);
    (*d.approval.unwrap()).clone()
}

fn memory() -> Approvals {
    Approvals::new(Arc::new(SqliteStore::open_in_memory().unwrap()))
}

const I1: &str = "arn:aws:ec2:us-east-1:1:instance/i-1";
const I2: &str = "arn:aws:ec2:us-east-1:1:instance/i-2";

async fn pending(a: &Approvals, who: &Identity, call: &Call, spec: &ApprovalSpec) -> Approval {
    match a.gate(who, call, spec, None).await.unwrap() {
        Gate::Pending(p) => *p,
        Gate::Granted { .. } => panic!("expected a pending approval"),
    }
}

async fn granted(a: &Approvals, who: &Identity, call: &Call, spec: &ApprovalSpec) -> bool {
    matches!(
        a.gate(who, call, spec, None).await.unwrap(),
        Gate::Granted { .. }
    )
}

async fn once_grant_covers_exactly_one_call(a: Approvals) {
    let p = policy("");
    let (alice, maria) = (who("alice", &["dev"]), who("maria", &["managers"]));
    let call = Call::aws("ec2:TerminateInstances", &[I1], Some("us-east-1"));
    let s = spec(&p, &alice, &call);

    let first = pending(&a, &alice, &call, &s).await;
    assert!(first.id.starts_with("apr_"));
    assert_eq!(
        first.summary,
        format!("ec2:TerminateInstances on {I1} in us-east-1")
    );
    // Asking again while pending gives the same approval, not a new one.
    assert_eq!(pending(&a, &alice, &call, &s).await.id, first.id);

    let decided = a
        .decide(&maria, &first.id, true, Some("fine".into()))
        .await
        .unwrap();
    assert_eq!(decided.status, Status::Approved);

    // Another resource is not covered; another requester is not covered.
    let other = Call::aws("ec2:TerminateInstances", &[I2], Some("us-east-1"));
    assert!(!granted(&a, &alice, &other, &s).await);
    assert!(!granted(&a, &who("bob", &["dev"]), &call, &s).await);
    // A different body is not covered either.
    let asked = Asked {
        binding: Some("abc".into()),
        details: Value::Null,
    };
    let g = a.gate(&alice, &call, &s, Some(&asked)).await.unwrap();
    assert!(matches!(g, Gate::Pending(_)));

    assert!(granted(&a, &alice, &call, &s).await);
    let used = a.store().get(&first.id).await.unwrap().unwrap();
    assert_eq!(used.status, Status::Used);
    // Used up: the same call needs a new approval.
    let again = pending(&a, &alice, &call, &s).await;
    assert_ne!(again.id, first.id);
}

async fn approvers_must_be_in_the_groups_and_never_the_requester(a: Approvals) {
    let p = policy("");
    let boss = who("boss", &["managers", "dev"]);
    let call = Call::aws("ec2:TerminateInstances", &[I1], None);
    let s = spec(&p, &boss, &call);
    let req = pending(&a, &boss, &call, &s).await;

    let e = a.decide(&boss, &req.id, true, None).await.unwrap_err();
    assert_eq!(e, VoteError::SelfApproval("boss".into()));
    let e = a
        .decide(&who("dave", &["dev"]), &req.id, true, None)
        .await
        .unwrap_err();
    assert!(matches!(e, VoteError::NotApprover { .. }));
    let e = a
        .decide(&who("maria", &["managers"]), "apr_nope", true, None)
        .await
        .unwrap_err();
    assert!(matches!(e, VoteError::NotFound(_)));
    assert_eq!(
        a.store().get(&req.id).await.unwrap().unwrap().status,
        Status::Pending
    );
}

async fn quorum_counts_distinct_approvers_and_any_deny_ends_it(a: Approvals) {
    let p = policy("");
    let alice = who("alice", &["dev"]);
    let call = Call::tool("launch", json!({"target": "moon"}));
    let s = spec(&p, &alice, &call);
    let req = pending(&a, &alice, &call, &s).await;

    let after = a
        .decide(&who("maria", &["managers"]), &req.id, true, None)
        .await
        .unwrap();
    assert_eq!(after.status, Status::Pending);
    let e = a
        .decide(&who("maria", &["managers"]), &req.id, true, None)
        .await
        .unwrap_err();
    assert_eq!(e, VoteError::AlreadyVoted("maria".into()));
    let after = a
        .decide(&who("sam", &["security"]), &req.id, true, None)
        .await
        .unwrap();
    assert_eq!(after.status, Status::Approved);
    assert_eq!(after.approvals(), 2);

    let req = pending(
        &a,
        &alice,
        &Call::tool("launch", json!({"target": "mars"})),
        &s,
    )
    .await;
    a.decide(&who("maria", &["managers"]), &req.id, true, None)
        .await
        .unwrap();
    let after = a
        .decide(
            &who("sam", &["security"]),
            &req.id,
            false,
            Some("no".into()),
        )
        .await
        .unwrap();
    assert_eq!(after.status, Status::Denied);
    let e = a
        .decide(&who("max", &["managers"]), &req.id, true, None)
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        VoteError::AlreadyDecided {
            status: "denied",
            ..
        }
    ));
}

async fn window_grant_lasts_its_window_then_stops(a: Approvals) {
    let p = policy("");
    let alice = who("alice", &["dev"]);
    let first = Call::tool("admin_restart", json!({}));
    let s = spec(&p, &alice, &first);
    let req = pending(&a, &alice, &first, &s).await;
    a.decide(&who("maria", &["managers"]), &req.id, true, None)
        .await
        .unwrap();

    // Any call under the rule, any number of times, inside the window.
    assert!(granted(&a, &alice, &first, &s).await);
    assert!(granted(&a, &alice, &first, &s).await);
    assert!(granted(&a, &alice, &Call::tool("admin_wipe", json!({"x": 1})), &s).await);
    // Not for someone else.
    assert!(!granted(&a, &who("bob", &[]), &first, &s).await);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert!(!granted(&a, &alice, &first, &s).await);
}

async fn pending_requests_expire(a: Approvals) {
    let p = policy("expires = \"1s\"");
    let alice = who("alice", &["dev"]);
    let call = Call::aws("ec2:TerminateInstances", &[I1], None);
    let s = spec(&p, &alice, &call);
    let req = pending(&a, &alice, &call, &s).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = a
        .decide(&who("maria", &["managers"]), &req.id, true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            VoteError::AlreadyDecided {
                status: "expired",
                ..
            }
        ),
        "{e}"
    );
    // A new request is opened for the same call.
    assert_ne!(pending(&a, &alice, &call, &s).await.id, req.id);
}

async fn concurrent_decisions_one_wins_the_other_is_told(a: Approvals) {
    let p = policy("");
    let alice = who("alice", &["dev"]);
    let call = Call::aws("ec2:TerminateInstances", &[I1], None);
    let s = spec(&p, &alice, &call);
    for _ in 0..10 {
        let req = pending(&a, &alice, &call, &s).await;
        let (m1, m2) = (who("maria", &["managers"]), who("max", &["managers"]));
        let (r1, r2) = tokio::join!(
            a.decide(&m1, &req.id, true, None),
            a.decide(&m2, &req.id, false, None)
        );
        assert!(r1.is_ok() != r2.is_ok(), "{r1:?} {r2:?}");
        let loser = r1.err().or(r2.err()).unwrap();
        assert!(matches!(loser, VoteError::AlreadyDecided { .. }), "{loser}");
        // Clear the way for the next round.
        let _ = a.gate(&alice, &call, &s, None).await;
    }
}

async fn a_once_grant_is_taken_by_exactly_one_of_concurrent_calls(a: Approvals) {
    let p = policy("");
    let alice = who("alice", &["dev"]);
    let call = Call::aws("ec2:TerminateInstances", &[I1], None);
    let s = spec(&p, &alice, &call);
    let req = pending(&a, &alice, &call, &s).await;
    a.decide(&who("maria", &["managers"]), &req.id, true, None)
        .await
        .unwrap();
    let results =
        futures_util::future::join_all((0..8).map(|_| a.gate(&alice, &call, &s, None))).await;
    let granted = results
        .iter()
        .filter(|r| matches!(r, Ok(Gate::Granted { .. })))
        .count();
    assert_eq!(granted, 1);
}

#[tokio::test]
async fn approvals_survive_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("approvals.sqlite");
    let p = policy("");
    let alice = who("alice", &["dev"]);
    let call = Call::aws("ec2:TerminateInstances", &[I1], None);
    let s = spec(&p, &alice, &call);
    let id = {
        let a = Approvals::new(Arc::new(SqliteStore::open(&path).unwrap()));
        pending(&a, &alice, &call, &s).await.id
    };
    let a = Approvals::new(Arc::new(SqliteStore::open(&path).unwrap()));
    a.decide(&who("maria", &["managers"]), &id, true, None)
        .await
        .unwrap();
    drop(a);
    let a = Approvals::new(Arc::new(SqliteStore::open(&path).unwrap()));
    assert!(granted(&a, &alice, &call, &s).await);
}

async fn hold_waits_for_a_decision(a: Approvals) {
    let p = policy("hold = \"10s\"");
    let alice = who("alice", &["dev"]);
    let call = Call::aws("ec2:TerminateInstances", &[I1], None);
    let s = spec(&p, &alice, &call);
    let a2 = a.clone();
    let approver = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let list = a2
                .store()
                .list(Some(Status::Pending), now(), 10)
                .await
                .unwrap();
            if let Some(req) = list.first() {
                a2.decide(&who("maria", &["managers"]), &req.id, true, None)
                    .await
                    .unwrap();
                return;
            }
        }
        panic!("no pending approval appeared");
    });
    let started = std::time::Instant::now();
    assert!(
        granted(&a, &alice, &call, &s).await,
        "the held call goes through once approved"
    );
    assert!(started.elapsed() < Duration::from_secs(9));
    approver.await.unwrap();
}

async fn visibility_requester_and_approvers_only(a: Approvals) {
    let p = policy("");
    let alice = who("alice", &["dev"]);
    let call = Call::aws("ec2:TerminateInstances", &[I1], None);
    let s = spec(&p, &alice, &call);
    let req = pending(&a, &alice, &call, &s).await;
    assert_eq!(a.visible_to(&alice, None).await.unwrap().len(), 1);
    assert_eq!(
        a.visible_to(&who("maria", &["managers"]), Some(Status::Pending))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        a.visible_to(&who("eve", &["dev"]), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        a.get_for(&who("eve", &["dev"]), &req.id)
            .await
            .unwrap()
            .is_none()
    );
}

/// Runs each store-semantics test above against the embedded store and against PostgreSQL (the
/// store replicas share): both must settle every case alike.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::memory()).await
            })*
        }
        mod postgres_store {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::shared_store().await).await
            })*
        }
    };
}

on_every_store!(
    once_grant_covers_exactly_one_call,
    approvers_must_be_in_the_groups_and_never_the_requester,
    quorum_counts_distinct_approvers_and_any_deny_ends_it,
    window_grant_lasts_its_window_then_stops,
    pending_requests_expire,
    concurrent_decisions_one_wins_the_other_is_told,
    a_once_grant_is_taken_by_exactly_one_of_concurrent_calls,
    hold_waits_for_a_decision,
    visibility_requester_and_approvers_only,
);

async fn shared_store() -> Approvals {
    let db = crate::shared::test_database().await;
    Approvals::new(Arc::new(PgStore::new(db)))
}

async fn recv(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("webhook delivered in time")
        .expect("receiver running")
}

/// A webhook receiver that fails the first request and accepts the rest. A stand-in sink: the
/// real receivers (Slack, a ticketing system) cannot be reached from here, and the point is
/// hoopguard's retry, which only a failing receiver exercises.
async fn flaky_receiver() -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    receiver(true).await
}

/// A webhook receiver passing on each body it gets; with `fail_first`, the first is answered 500.
async fn receiver(fail_first: bool) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            n += 1;
            let mut buf = vec![0u8; 65536];
            let mut got = 0;
            // Read headers and the body (Content-Length).
            loop {
                let k = sock.read(&mut buf[got..]).await.unwrap_or(0);
                if k == 0 {
                    break;
                }
                got += k;
                let text = String::from_utf8_lossy(&buf[..got]).to_string();
                if let Some(h) = text.find("\r\n\r\n") {
                    let len = text[..h]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if got >= h + 4 + len {
                        let _ = tx.send(text[h + 4..h + 4 + len].to_string());
                        break;
                    }
                }
            }
            let status = if n == 1 && fail_first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = sock
                .write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    (url, rx)
}

#[tokio::test]
async fn webhooks_are_retried_and_never_block_the_approval() {
    let (url, mut rx) = flaky_receiver().await;
    let notifier = Notifier::new(
        vec![
            WebhookConfig {
                url: url.clone(),
                format: Format::Json,
                attempts: 3,
            },
            WebhookConfig {
                url: "http://127.0.0.1:9/unreachable".into(),
                format: Format::Slack,
                attempts: 2,
            },
        ],
        Duration::from_millis(50),
    )
    .unwrap();
    let a = memory().with_notifier(notifier);
    let p = policy("");
    let alice = who("alice", &["dev"]);
    let call = Call::aws("ec2:TerminateInstances", &[I1], None);
    let s = spec(&p, &alice, &call);
    let req = pending(&a, &alice, &call, &s).await;

    let first = recv(&mut rx).await; // refused with 500
    let second = recv(&mut rx).await; // the retry
    assert_eq!(first, second);
    let body: serde_json::Value = serde_json::from_str(&second).unwrap();
    assert_eq!(body["event"], "approval.requested");
    assert_eq!(body["approval"]["id"], req.id.as_str());
    assert_eq!(
        body["approve_with"],
        format!("hoopguard approvals approve {}", req.id)
    );

    a.decide(&who("maria", &["managers"]), &req.id, true, None)
        .await
        .unwrap();
    let decided: serde_json::Value = serde_json::from_str(&recv(&mut rx).await).unwrap();
    assert_eq!(decided["event"], "approval.decided");
    assert_eq!(decided["approval"]["status"], "approved");
}

#[tokio::test]
async fn what_is_stored_and_sent_is_masked_but_the_grant_binds_the_real_call() {
    let a = memory();
    let alice = who("alice", &["dev"]);
    let secret = "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789";
    let call = Call::tool(
        "deploy",
        serde_json::json!({"token": secret, "env": "prod"}),
    );
    let asked = Asked {
        binding: None,
        details: serde_json::json!({"query": {"X-Token": secret}}),
    };
    let p = policy(
        "[[rules]]\nname = \"deploy\"\neffect = \"approve\"\ntools = [\"deploy\"]\napprovers = [\"managers\"]",
    );
    let s = spec(&p, &alice, &call);
    let Gate::Pending(pending) = a.gate(&alice, &call, &s, Some(&asked)).await.unwrap() else {
        panic!()
    };
    let stored =
        serde_json::to_string(&a.store().get(&pending.id).await.unwrap().unwrap()).unwrap();
    assert!(!stored.contains(secret), "{stored}");
    assert!(stored.contains("[MASKED:github-token]"), "{stored}");
    assert!(stored.contains("prod"), "{stored}");
    a.decide(&who("maria", &["managers"]), &pending.id, true, None)
        .await
        .unwrap();
    // The grant is for the call with its real arguments, not for the masked text.
    let masked = Call::tool(
        "deploy",
        serde_json::json!({"token": "[MASKED:github-token]", "env": "prod"}),
    );
    assert!(!granted(&a, &alice, &masked, &s).await);
    assert!(matches!(
        a.gate(&alice, &call, &s, Some(&asked)).await.unwrap(),
        Gate::Granted { .. }
    ));
}

#[tokio::test]
async fn an_identity_of_another_issuer_is_neither_the_requester_nor_an_approver() {
    use crate::identity::Namespace;
    let of = |issuer: &str, primary: bool, sub: &str, groups: &[&str]| {
        let mut w = who(sub, groups);
        w.namespace = Some(Namespace {
            name: issuer.into(),
            primary,
        });
        w
    };
    let (p, a) = (policy(""), memory());
    let call = Call::aws("ec2:TerminateInstances", &[I1], Some("us-east-1"));
    let alice = of("corp", true, "alice", &["dev"]);
    let s = spec(&p, &alice, &call);
    let pending = pending(&a, &alice, &call, &s).await;
    assert_eq!(pending.requester, "corp:alice");
    // A partner issuer asserting `managers` is not the corp's managers.
    let fake = of("partner", false, "mallory", &["managers"]);
    assert!(matches!(
        a.decide(&fake, &pending.id, true, None).await,
        Err(VoteError::NotApprover { .. })
    ));
    // The partner's `alice` is another person from corp's `alice`; her grant is not corp
    // alice's either.
    let maria = of("corp", true, "maria", &["managers"]);
    a.decide(&maria, &pending.id, true, None).await.unwrap();
    assert!(!granted(&a, &of("partner", false, "alice", &["dev"]), &call, &s).await);
    assert!(granted(&a, &alice, &call, &s).await);
}

#[test]
fn an_mcp_grant_binds_the_tool_and_the_canonical_json_of_its_arguments() {
    let d = |args: Value| call_digest("alice", &Call::tool("deploy", args), None);
    let base = d(json!({"env": "prod", "opts": {"force": false, "n": 1}}));
    // Key order is not part of the call...
    assert_eq!(
        base,
        d(json!({"opts": {"n": 1, "force": false}, "env": "prod"}))
    );
    // ...every value is, at any depth, and so is the tool.
    assert_ne!(
        base,
        d(json!({"env": "prod", "opts": {"force": true, "n": 1}}))
    );
    assert_ne!(
        base,
        d(json!({"env": "prod", "opts": {"force": false, "n": 2}}))
    );
    assert_ne!(
        base,
        d(json!({"env": "prod", "opts": {"force": false, "n": 1}, "extra": 0}))
    );
    assert_ne!(
        base,
        call_digest(
            "alice",
            &Call::tool(
                "deploy2",
                json!({"env": "prod", "opts": {"force": false, "n": 1}})
            ),
            None
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_asked_and_deciding_at_once_send_each_webhook_once() {
    let (url, mut rx) = receiver(false).await;
    let hook = || {
        Notifier::new(
            vec![WebhookConfig {
                url: url.clone(),
                format: Format::Json,
                attempts: 1,
            }],
            Duration::from_millis(50),
        )
        .unwrap()
    };
    let dbs = crate::shared::test_databases(2).await;
    let a = Approvals::new(Arc::new(PgStore::new(dbs[0].clone()))).with_notifier(hook());
    let b = Approvals::new(Arc::new(PgStore::new(dbs[1].clone()))).with_notifier(hook());
    let p = policy("");
    let alice = who("alice", &["dev"]);
    let call = Call::aws("ec2:TerminateInstances", &[I1], None);
    let s = spec(&p, &alice, &call);
    let (ga, gb) = tokio::join!(
        a.gate(&alice, &call, &s, None),
        b.gate(&alice, &call, &s, None)
    );
    let (Gate::Pending(pa), Gate::Pending(_)) = (ga.unwrap(), gb.unwrap()) else {
        panic!("expected pending on both");
    };
    // Two approvers vote at once, one on each replica: one settles it.
    let (m1, m2) = (who("maria", &["managers"]), who("max", &["managers"]));
    let (r1, r2) = tokio::join!(
        a.decide(&m1, &pa.id, true, None),
        b.decide(&m2, &pa.id, true, None)
    );
    assert!(r1.is_ok() != r2.is_ok(), "{r1:?} {r2:?}");
    let first: Value = serde_json::from_str(&recv(&mut rx).await).unwrap();
    let second: Value = serde_json::from_str(&recv(&mut rx).await).unwrap();
    assert_eq!(first["event"], "approval.requested");
    assert_eq!(second["event"], "approval.decided");
    // And nothing more: not once per replica.
    let more = tokio::time::timeout(Duration::from_millis(700), rx.recv()).await;
    assert!(more.is_err(), "a webhook was sent twice: {more:?}");
}
