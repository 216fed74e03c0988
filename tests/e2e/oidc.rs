//! Tokens issued by `oidc-provider-mock` — someone else's OIDC provider — verified by a running
//! `hoopguard serve` through OIDC discovery, including a key rotation and the provider going down.

use std::time::Duration;

use crate::support::{Gateway, OidcProvider, reqwest::blocking_client};

fn issuer_config(provider: &OidcProvider, extra: &str) -> String {
    format!(
        "[[identity.issuers]]\nissuer = \"{}\"\naudiences = [\"hoopguard\"]\njwks_min_refresh_interval = \"1s\"\n{extra}\n[aws.connections.default]\nbroker = \"static\"\n",
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

#[test]
fn tokens_from_a_real_provider_verify_through_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let provider = OidcProvider::start(dir.path());
    let gw = Gateway::start(dir.path(), &issuer_config(&provider, ""), &[]);
    let token = provider.token("alice", &["dev", "ops"], "hoopguard");

    // Authenticated: the (not yet built) data path answers 501 and names the caller.
    let (status, body) = call_mcp(&gw, &token);
    assert_eq!(status, 501, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("`alice`"),
        "{body}"
    );

    // The AWS credentials endpoint takes the raw token, as SDKs send the token file's content.
    let resp = blocking_client()
        .get(gw.url(gw.aws, "/v1/aws/credentials"))
        .header("authorization", &token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);

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
        metrics.contains(r#"hoopguard_auth_total{listener="mcp",outcome="wrong_audience"} 1"#),
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
    let before = provider.token("alice", &["dev"], "hoopguard");
    assert_eq!(call_mcp(&gw, &before).0, 501);

    // A new process is a new RSA key; the gateway has only the old one cached.
    provider.rotate();
    let after = provider.token("bob", &["ops"], "hoopguard");
    assert_ne!(before, after);
    std::thread::sleep(Duration::from_millis(1100)); // past jwks_min_refresh_interval
    let (status, body) = call_mcp(&gw, &after);
    assert_eq!(status, 501, "token signed with the rotated key: {body}");
    assert!(body["message"].as_str().unwrap().contains("`bob`"));
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
    let token = provider.token("alice", &[], "hoopguard");
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
    let first = provider.token("alice", &[], "hoopguard");
    let second = provider.token("carol", &[], "hoopguard");
    assert_eq!(call_mcp(&gw, &first).0, 501);
    let ready = blocking_client()
        .get(gw.url(gw.admin, "/readyz"))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 200);
    provider.stop();
    std::thread::sleep(Duration::from_millis(1500)); // past jwks_ttl: a refetch is due and fails
    let (status, body) = call_mcp(&gw, &second);
    assert_eq!(status, 501, "cached keys must keep working: {body}");
    assert!(
        gw.proc
            .output()
            .contains("keeping the keys fetched earlier")
    );
}
