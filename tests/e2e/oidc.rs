//! Tokens issued by `oidc-provider-mock` — someone else's OIDC provider — verified by a running
//! `hoopguard serve` through OIDC discovery, including a key rotation and the provider going down.

use std::time::Duration;

use crate::support::{Gateway, OidcProvider, reqwest::blocking_client};

/// The MCP listener's resource URI in these tests: tokens are issued for it (the provider's
/// client id becomes the token's audience).
const RESOURCE: &str = "https://gateway.test/mcp";
/// The client id the agents' AWS tokens are issued for.
const AWS_CLIENT: &str = "hoopguard-aws-agents";

fn issuer_config(provider: &OidcProvider, extra: &str) -> String {
    format!(
        "[[identity.issuers]]\nissuer = \"{}\"\naudiences = [\"{RESOURCE}\", \"{AWS_CLIENT}\"]\njwks_min_refresh_interval = \"1s\"\n{extra}\n[aws.connections.default]\nbroker = \"static\"\n[mcp]\nresource = \"{RESOURCE}\"\n",
        provider.issuer()
    )
}

/// (status, body JSON) of a call to the MCP listener with `Authorization: Bearer <token>`.
fn call_mcp(gw: &Gateway, token: &str) -> (u16, serde_json::Value) {
    let resp = blocking_client()
        .post(gw.url(gw.mcp, "/mcp"))
        .bearer_auth(token)
        .body("{}")
        .send()
        .expect("call the MCP listener");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or_default())
}

/// Whether the token got past authentication: with no MCP server configured, the MCP path
/// then answers 503 with a JSON-RPC error (an authentication failure is a 401, or a 503 with a
/// `reason`).
fn authenticated(gw: &Gateway, token: &str) -> Result<(), String> {
    let (status, body) = call_mcp(gw, token);
    let passed = status == 503
        && body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no MCP server"));
    if passed {
        Ok(())
    } else {
        Err(format!("{status}: {body}"))
    }
}

#[test]
fn tokens_from_a_real_provider_verify_through_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path());
    let gw = Gateway::start(dir.path(), &issuer_config(&provider, ""), &[]);
    let token = provider.token("alice", &["dev", "ops"], RESOURCE);

    // Authenticated: past the token check, the MCP path says no server is configured.
    authenticated(&gw, &token).unwrap();

    // A token for the MCP resource opens neither the AWS credentials endpoint nor the admin
    // API: each listener takes the tokens meant for it.
    let creds = |t: &str| {
        blocking_client()
            .get(gw.url(gw.aws, "/v1/aws/credentials"))
            .header("authorization", t)
            .send()
            .unwrap()
    };
    let resp = creds(&token);
    assert_eq!(resp.status(), 401);
    assert!(resp.text().unwrap().contains("wrong_audience"));
    let admin = blocking_client()
        .get(gw.url(gw.admin, "/v1/approvals"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(admin.status(), 401);
    // The twin: a token for the AWS client id gets credentials (the raw token, as SDKs send the
    // token file's content), but is no MCP token.
    let aws_token = provider.token("alice", &["dev", "ops"], AWS_CLIENT);
    assert_eq!(creds(&aws_token).status(), 200);
    assert!(authenticated(&gw, &aws_token).is_err());

    // A token for another audience is refused with the reason.
    let other = provider.token("alice", &["dev"], "some-other-client");
    let (status, body) = call_mcp(&gw, &other);
    assert_eq!(status, 401);
    assert_eq!(body["reason"], "wrong_audience");

    // A tampered token is refused; the metrics count both outcomes.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    parts[1] = parts[1].replace(
        &parts[1][4..8].to_string(),
        if &parts[1][4..8] == "AAAA" {
            "BBBB"
        } else {
            "AAAA"
        },
    );
    let (status, body) = call_mcp(&gw, &parts.join("."));
    assert_eq!(status, 401);
    assert!(
        ["bad_signature", "malformed"].contains(&body["reason"].as_str().unwrap()),
        "{body}"
    );
    let metrics = blocking_client()
        .get(gw.url(gw.admin, "/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"hoopguard_auth_total{listener="mcp",outcome="authenticated"} 1"#),
        "{metrics}"
    );
    assert!(
        // The other client's token, and the AWS token.
        metrics.contains(r#"hoopguard_auth_total{listener="mcp",outcome="wrong_audience"} 2"#),
        "{metrics}"
    );

    // Nothing secret in the logs: neither token appears.
    let log = gw.proc.output();
    assert!(
        !log.contains(&token[token.len() - 40..]),
        "token leaked into the log"
    );
    assert!(
        !log.contains(&other[other.len() - 40..]),
        "token leaked into the log"
    );
}

#[test]
fn key_rotation_at_the_provider_is_accepted_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut provider = OidcProvider::start(dir.path());
    let gw = Gateway::start(dir.path(), &issuer_config(&provider, ""), &[]);
    let before = provider.token("alice", &["dev"], RESOURCE);
    authenticated(&gw, &before).unwrap();

    // A new process is a new RSA key; the gateway has only the old one cached.
    provider.rotate();
    let after = provider.token("bob", &["ops"], RESOURCE);
    assert_ne!(before, after);
    std::thread::sleep(Duration::from_millis(1100)); // past jwks_min_refresh_interval
    authenticated(&gw, &after).expect("a token signed with the rotated key");
    assert!(gw.proc.output().contains("fetched JWKS"));
}

#[test]
fn provider_down_keeps_cached_keys_and_fails_closed_without_any() {
    let dir = tempfile::tempdir().unwrap();

    // Down from the start: nothing cached, every token refused with 503, not ready.
    let mut provider = OidcProvider::not_started(dir.path());
    let gw_dir = dir.path().join("first");
    std::fs::create_dir_all(&gw_dir).unwrap();
    let gw = Gateway::start(
        &gw_dir,
        &issuer_config(&provider, "http_timeout = \"2s\"\n"),
        &[],
    );
    let ready = blocking_client()
        .get(gw.url(gw.admin, "/readyz"))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 503);
    provider.launch();
    let token = provider.token("alice", &[], RESOURCE);
    provider.stop();
    let (status, body) = call_mcp(&gw, &token);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "keys_unavailable");
    drop(gw);

    // Up at the start, then down: the keys fetched earlier keep working.
    provider.launch();
    let gw_dir = dir.path().join("second");
    std::fs::create_dir_all(&gw_dir).unwrap();
    let gw = Gateway::start(
        &gw_dir,
        &issuer_config(&provider, "jwks_ttl = \"1s\"\n"),
        &[],
    );
    let first = provider.token("alice", &[], RESOURCE);
    let second = provider.token("carol", &[], RESOURCE);
    authenticated(&gw, &first).unwrap();
    let ready = blocking_client()
        .get(gw.url(gw.admin, "/readyz"))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 200);
    provider.stop();
    std::thread::sleep(Duration::from_millis(1500)); // past jwks_ttl: a refetch is due and fails
    authenticated(&gw, &second).expect("cached keys must keep working");
    assert!(
        gw.proc
            .output()
            .contains("keeping the keys fetched earlier")
    );
}
