//! Two `hoopguard serve` replicas on one PostgreSQL (`[store] url`), the AWS CLI alternating
//! between them, tokens from a real OIDC provider, moto with signature checking behind: an
//! approval asked through one replica and approved on the other is honoured by the first, a
//! `once` grant raced from both is used once, a revocation on one refuses the session on the
//! other, a session whose calls landed on both is one recording that verifies on either; with
//! the database cut off, calls are refused with 503 until it is back.
//!
//! The database is `HOOPGUARD_TEST_DATABASE_URL` (set by `bash scripts/test.sh`, which finds or
//! starts one), else the server on 127.0.0.1:5432; each test works in a schema of its own.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::{
    Gateway, Moto, OidcProvider, approval_id, reqwest::blocking_client, run_hoopguard, venv,
};

/// The client id the tokens are issued for (the AWS and admin listeners' audience).
const CLIENT: &str = "hoopguard-agents";

fn database_url() -> String {
    std::env::var("HOOPGUARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn fresh_schema(tag: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!("hg_test_{t}_e2e_{tag}_{}", std::process::id())
}

fn config(
    provider: &OidcProvider,
    moto: &Moto,
    federated_port: u16,
    url: &str,
    schema: &str,
) -> String {
    format!(
        r#"
[[identity.issuers]]
issuer = "{issuer}"
audiences = ["{CLIENT}"]

[store]
url = "{url}"
schema = "{schema}"
revocation_poll = "200ms"
revocation_stale_after = "2s"

[record]
auditors = ["security"]

[aws]
gateway_key = "replicas-share-this-gateway-key-0123456789"

[aws.connections.default]
broker = "assume_role"
role_arn = "{role}"
endpoint = "{endpoint}"

[aws.connections.federated]
broker = "web_identity"
role_arn = "arn:aws:iam::123456789012:role/federated-agents"
endpoint = "http://127.0.0.1:{federated_port}"

[[policy.rules]]
name = "agents-read"
effect = "allow"
groups = ["dev"]
actions = ["sts:GetCallerIdentity", "ec2:Describe*", "ec2:RunInstances"]

[[policy.rules]]
name = "terminate-needs-a-manager"
effect = "approve"
groups = ["dev"]
actions = ["ec2:TerminateInstances"]
approvers = ["managers"]
"#,
        issuer = provider.issuer(),
        role = moto.role_arn,
        endpoint = moto.url(),
    )
}

fn token_file(dir: &Path, provider: &OidcProvider, sub: &str, groups: &[&str]) -> PathBuf {
    let path = dir.join(format!("{sub}.token"));
    std::fs::write(&path, provider.token(sub, groups, CLIENT)).unwrap();
    path
}

/// `aws ARGS` as the holder of `token`: credentials from `creds`' endpoint, calls to `calls`.
fn aws_command(creds: &Gateway, calls: &Gateway, token: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(venv().join("bin/aws"));
    cmd.args(args);
    crate::aws::agent_env(&mut cmd, creds, token);
    cmd.env("AWS_ENDPOINT_URL", calls.url(calls.aws, ""));
    cmd
}

fn aws(creds: &Gateway, calls: &Gateway, token: &Path, args: &[&str]) -> (bool, String) {
    crate::aws::output(
        aws_command(creds, calls, token, args)
            .output()
            .expect("run aws"),
    )
}

fn start_pair(dir: &Path, text: &str, moto: &Moto) -> (Gateway, Gateway) {
    let (da, db) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&da).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    // Both at once: their migrations race, one applies them.
    let env = moto.gateway_env();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Gateway::start_with_env(&da, text, &[], &env));
        let b = s.spawn(|| Gateway::start_with_env(&db, text, &[], &env));
        (a.join().unwrap(), b.join().unwrap())
    });
    (a, b)
}

fn readyz(gw: &Gateway) -> (u16, serde_json::Value) {
    let resp = blocking_client()
        .get(gw.url(gw.admin, "/readyz"))
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

#[test]
fn two_replicas_on_one_database_share_approvals_grants_and_revocations() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path());
    let moto = Moto::start(dir.path());
    // AssumeRoleWithWebIdentity goes to a moto without signature checks (see testing.md).
    let (federated_port, _federated) = Moto::start_without_auth(dir.path());
    let text = config(
        &provider,
        &moto,
        federated_port,
        &database_url(),
        &fresh_schema("share"),
    );
    let (a, b) = start_pair(dir.path(), &text, &moto);
    for gw in [&a, &b] {
        let (st, body) = readyz(gw);
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["store"]["kind"], "postgres", "{body}");
    }
    let alice = token_file(dir.path(), &provider, "alice", &["dev"]);
    let bob = token_file(dir.path(), &provider, "bob", &["dev"]);
    let maria = token_file(dir.path(), &provider, "maria", &["managers"]);
    let sam = token_file(dir.path(), &provider, "sam", &["security"]);

    // Pseudo-credentials minted by A are good on B: no sticky sessions.
    let (ok, out) = aws(&a, &b, &alice, &["sts", "get-caller-identity"]);
    assert!(ok && out.contains("alice"), "{out}");
    // So are web-identity sessions: A exchanged alice's token with STS and sealed the result
    // into her pseudo-credentials; B, which never saw the token, re-signs with it.
    let mut cmd = aws_command(&a, &b, &alice, &["sts", "get-caller-identity"]);
    cmd.env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        a.url(a.aws, "/v1/aws/credentials/federated"),
    );
    let (ok, out) = crate::aws::output(cmd.output().unwrap());
    assert!(
        ok && out.contains("assumed-role/federated-agents/alice"),
        "{out}"
    );
    let (ok, ami) = aws(
        &a,
        &b,
        &alice,
        &[
            "ec2",
            "describe-images",
            "--owners",
            "amazon",
            "--query",
            "Images[0].ImageId",
            "--output",
            "text",
        ],
    );
    assert!(ok, "{ami}");
    let run = |gw: &Gateway| {
        let (ok, out) = aws(
            gw,
            gw,
            &alice,
            &[
                "ec2",
                "run-instances",
                "--image-id",
                ami.trim(),
                "--instance-type",
                "t3.micro",
                "--query",
                "Instances[0].InstanceId",
                "--output",
                "text",
            ],
        );
        assert!(ok && out.trim().starts_with("i-"), "{out}");
        out.trim().to_string()
    };
    let instance = run(&a);
    let terminate = ["ec2", "terminate-instances", "--instance-ids", &instance];

    // Asked through A, and again through B: one approval, pending on both.
    let (ok, out) = aws(&a, &a, &alice, &terminate);
    assert!(!ok && out.contains("is pending"), "{out}");
    let id = approval_id(&out);
    let (ok, out) = aws(&a, &b, &alice, &terminate);
    assert!(!ok && out.contains(&id), "the same approval on B: {out}");
    // Visible to the manager on B's admin API; approved there.
    let (st, list) = b.admin(&maria, "/v1/approvals?status=pending", None);
    assert_eq!(st, 200, "{list}");
    assert!(list.to_string().contains(&id), "{list}");
    assert!(b.approve(&maria, &id).contains("now approved"));

    // The agent's retry races from both replicas: one goes through, the other is asked anew.
    let racers: Vec<_> = [&a, &b]
        .iter()
        .map(|gw| {
            aws_command(gw, gw, &alice, &terminate)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outcomes: Vec<(bool, String)> = racers
        .into_iter()
        .map(|c| crate::aws::output(c.wait_with_output().unwrap()))
        .collect();
    let won = outcomes.iter().filter(|(ok, _)| *ok).count();
    assert_eq!(
        won, 1,
        "a once grant is used by exactly one call: {outcomes:?}"
    );
    let (ok, out) = aws(&b, &a, &alice, &terminate);
    assert!(
        !ok && out.contains("is pending") && !out.contains(&id),
        "used up on both: {out}"
    );
    // The grant was taken once, on one replica: the approval says used.
    let (_, shown) = a.admin(&maria, &format!("/v1/approvals/{id}"), None);
    assert_eq!(shown["status"], "used", "{shown}");

    // A revocation on B refuses carol's credential session on A within a second; bob's goes on.
    let carol = token_file(dir.path(), &provider, "carol", &["dev"]);
    let (carol_creds, bob_creds) = (a.pseudo_credentials(&carol), a.pseudo_credentials(&bob));
    let whoami = |creds: &serde_json::Value, gw: &Gateway| {
        crate::aws::aws_with(creds, gw, dir.path(), &["sts", "get-caller-identity"])
    };
    let (ok, out) = whoami(&carol_creds, &a);
    assert!(ok && out.contains("carol"), "{out}");
    let (ok, out) = whoami(&bob_creds, &b);
    assert!(ok, "{out}");
    let (st, found) = a.admin(&sam, "/v1/sessions?subject=carol", None);
    assert_eq!(st, 200, "{found}");
    assert_eq!(found["sessions"].as_array().unwrap().len(), 1, "{found}");
    let session = found["sessions"][0]["id"].as_str().unwrap().to_string();
    let (st, body) = b.admin(
        &sam,
        &format!("/v1/sessions/{session}/revoke"),
        Some(&serde_json::json!({"reason": "leaked laptop"})),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        body["recorded_here"], true,
        "B never saw carol's calls, but it records into the shared recordings: {body}"
    );
    let (st, again) = a.admin(
        &sam,
        &format!("/v1/sessions/{session}/revoke"),
        Some(&serde_json::json!({"reason": "again"})),
    );
    assert_eq!(st, 409, "revoked once, whichever replica is asked: {again}");
    let t = Instant::now();
    loop {
        let (ok, out) = whoami(&carol_creds, &a);
        if !ok && out.contains("revoked") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "A still answers a session revoked on B: {out}"
        );
    }
    let (ok, out) = whoami(&carol_creds, &b);
    assert!(!ok && out.contains("revoked"), "{out}");
    let (ok, out) = whoami(&bob_creds, &a);
    assert!(ok, "another session is not revoked: {out}");
    // The session's one recording ends as revoked, naming who did it on B — once, though
    // both replicas learnt of the revocation.
    let (_, shown) = a.admin(&sam, &format!("/v1/sessions/{session}"), None);
    let ends: Vec<&serde_json::Value> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "end")
        .collect();
    assert_eq!(ends.len(), 1, "{shown}");
    assert_eq!(ends[0]["data"]["reason"], "revoked", "{shown}");
    assert_eq!(ends[0]["data"]["why"], "leaked laptop", "{shown}");
    assert_eq!(ends[0]["data"]["by"], "sam", "{shown}");
    std::thread::sleep(Duration::from_millis(600));
    let (_, again) = b.admin(&sam, &format!("/v1/sessions/{session}"), None);
    assert_eq!(
        again["events"], shown["events"],
        "no second end from A's poll"
    );

    // Bob's session took calls on B and then on A: one chain, which verifies on either
    // replica, listed once by each, with the same events.
    let (ok, out) = whoami(&bob_creds, &a);
    assert!(ok, "{out}");
    let (_, on_a) = a.admin(&sam, "/v1/sessions?subject=bob", None);
    let (_, on_b) = b.admin(&sam, "/v1/sessions?subject=bob", None);
    assert_eq!(on_a, on_b);
    let listed = on_a["sessions"].as_array().unwrap();
    let bobs = listed
        .iter()
        .find(|s| s["calls"].as_u64() >= Some(3))
        .unwrap_or_else(|| panic!("bob's session with its three calls: {on_a}"));
    let id = bobs["id"].as_str().unwrap();
    assert_eq!(listed.iter().filter(|s| s["id"] == id).count(), 1, "{on_a}");
    for gw in [&a, &b] {
        let (st, v) = gw.admin(&sam, &format!("/v1/sessions/{id}/verify"), None);
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["events"], bobs["events"], "{v}");
    }
    // The auditor's command reads the same from the database.
    let config = a.config.to_str().unwrap();
    let (st, out, err) = run_hoopguard(&["sessions", "--config", config, "verify", id], &[]);
    let out = String::from_utf8_lossy(&out);
    assert!(st.success() && out.contains("chain intact"), "{out}{err}");
    let (st, out, err) = run_hoopguard(&["sessions", "--config", config, "list"], &[]);
    let out = String::from_utf8_lossy(&out);
    assert!(st.success() && out.contains(id), "{out}{err}");
}

/// A TCP relay to the database that the test can cut and restore: the network between a
/// replica and a real PostgreSQL going away (the database itself is shared by other tests).
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
}

impl Relay {
    fn start(to: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let gate = open.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !gate.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let Ok(server) = TcpStream::connect(&to) else {
                    continue;
                };
                for (mut from, mut into) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let gate = gate.clone();
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            if !gate.load(Ordering::SeqCst) {
                                let _ = from.shutdown(std::net::Shutdown::Both);
                                let _ = into.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => {
                                    let _ = into.shutdown(std::net::Shutdown::Write);
                                    return;
                                }
                                Ok(n) => {
                                    if into.write_all(&buf[..n]).is_err() {
                                        return;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => return,
                            }
                        }
                    });
                }
            }
        });
        Relay { port, open }
    }

    fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

/// `host:port` of a `postgres://user@host:port/db` URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once('@').map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap().to_string()
}

#[test]
fn without_its_database_a_replica_refuses_calls_with_503_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path());
    let moto = Moto::start(dir.path());
    let url = database_url();
    let relay = Relay::start(host_port(&url));
    let via_relay = url.replacen(&host_port(&url), &format!("127.0.0.1:{}", relay.port), 1);
    let text = config(&provider, &moto, 9, &via_relay, &fresh_schema("down"));
    let gw = Gateway::start_with_env(dir.path(), &text, &[], &moto.gateway_env());
    let alice = token_file(dir.path(), &provider, "alice", &["dev"]);
    let (ok, out) = aws(&gw, &gw, &alice, &["sts", "get-caller-identity"]);
    assert!(ok, "{out}");

    relay.set_open(false);
    // Within the staleness allowance (2s) plus a poll, calls are refused, in AWS's format.
    let t = Instant::now();
    let refused = loop {
        let (ok, out) = aws(&gw, &gw, &alice, &["sts", "get-caller-identity"]);
        if !ok {
            break out;
        }
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "still answering: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Refused because the revocations went stale or because the call could not be recorded
    // in the shared recordings, whichever noticed first; never forwarded unrecorded.
    assert!(
        refused.contains("ServiceUnavailable")
            && (refused.contains("shared store") || refused.contains("could not be recorded")),
        "{refused}"
    );
    let (st, body) = readyz(&gw);
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["store"]["ok"], false, "{body}");

    // Back: it recovers without a restart.
    relay.set_open(true);
    let t = Instant::now();
    loop {
        let (ok, out) = aws(&gw, &gw, &alice, &["sts", "get-caller-identity"]);
        if ok {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "did not recover: {out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(readyz(&gw).0, 200);
}
