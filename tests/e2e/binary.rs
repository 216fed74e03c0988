//! The `hoopguard` binary as an operator uses it: `check`, `serve`, `dev-token`.

use std::time::Duration;

use crate::support::{Gateway, GatewayPorts, reqwest::blocking_client, run_hoopguard};

#[test]
fn check_accepts_the_quickstart_and_a_real_config() {
    let (st, out, err) = run_hoopguard(&["check"], &[]);
    let out = String::from_utf8(out).unwrap();
    assert!(st.success(), "{err}");
    assert!(out.starts_with("config OK: quickstart (built in)"), "{out}");
    assert!(
        out.contains("development issuer http://127.0.0.1:8789/dev"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.toml");
    std::fs::write(
        &path,
        "[listeners.mcp]\nbind = \"127.0.0.1:9000\"\n[[identity.issuers]]\nissuer = \"https://idp.example.com\"\naudiences = [\"${AUD}\"]\njwks_ttl = \"15m\"\n",
    )
    .unwrap();
    let (st, out, err) = run_hoopguard(
        &["check", "--config", path.to_str().unwrap()],
        &[("AUD", "gw")],
    );
    assert!(st.success(), "{err}");
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("issuer https://idp.example.com (keys by OIDC discovery; audiences gw;"),
        "{out}"
    );
}

#[test]
fn check_names_the_broken_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let base = "[listeners.aws]\nbind = \"127.0.0.1:9000\"\n[[identity.issuers]]\nissuer = \"https://idp.example.com\"\naudiences = [\"gw\"]\n";
    let cases = [
        (
            format!("{base}leewya = \"1m\"\n"),
            "identity.issuers[0].leewya: unknown field",
        ),
        (
            format!("{base}leeway = \"a while\"\n"),
            "identity.issuers[0].leeway:",
        ),
        (
            format!("{base}hmac_secret = \"${{HG_TEST_UNSET_VAR}}\"\n"),
            "identity.issuers[0].hmac_secret: environment variable `HG_TEST_UNSET_VAR` is not set",
        ),
        (
            format!("{base}algorithms = [\"none\"]\n"),
            "identity.issuers[0].algorithms: `none` is never accepted",
        ),
        (
            "[listeners.aws]\nbind = 8787\n".to_string(),
            "listeners.aws.bind:",
        ),
        ("[listeners.aws\n".to_string(), "not valid TOML"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (st, _, err) = run_hoopguard(&["check", "--config", path.to_str().unwrap()], &[]);
        assert_eq!(st.code(), Some(2), "case {i}: {err}");
        assert!(
            err.contains(expected),
            "case {i}: expected `{expected}` in: {err}"
        );
        assert!(
            err.contains(path.to_str().unwrap()),
            "the error names the file: {err}"
        );
    }
    let (st, _, err) = run_hoopguard(&["check", "--config", "/nonexistent/hoopguard.toml"], &[]);
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn serve_answers_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(
        dir.path(),
        "[identity.dev_issuer]\nenabled = true\n",
        &["--log-format", "json"],
    );
    let http = blocking_client();
    let health = http.get(gw.url(gw.admin, "/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().unwrap(), "ok\n");
    let ready = http.get(gw.url(gw.admin, "/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    // `hoopguard health`, the container image's health check: 0 on a 200, 1 otherwise.
    let (st, _, err) = run_hoopguard(&["health", "--url", &gw.url(gw.admin, "/healthz")], &[]);
    assert!(st.success(), "{err}");
    let (st, _, err) = run_hoopguard(&["health", "--url", &gw.url(gw.admin, "/nowhere")], &[]);
    assert_eq!(st.code(), Some(1));
    assert!(err.contains("answered `HTTP/1.1 404"), "{err}");
    // The development issuer serves its discovery document and keys.
    let disc: serde_json::Value = http
        .get(gw.url(gw.admin, "/dev/.well-known/openid-configuration"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(disc["issuer"], format!("http://127.0.0.1:{}/dev", gw.admin));
    let jwks: serde_json::Value = http
        .get(disc["jwks_uri"].as_str().unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "the private key is never served"
    );
    // Unauthenticated calls to the data listeners: 401 with the challenge.
    let resp = http.post(gw.url(gw.mcp, "/mcp")).send().unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer resource_metadata=\"http://127.0.0.1:")
            && challenge.ends_with("/.well-known/oauth-protected-resource/mcp\""),
        "{challenge}"
    );
    let metrics = http
        .get(gw.url(gw.admin, "/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains(r#"hoopguard_requests_total{listener="mcp",status="401"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("hoopguard_request_duration_seconds_bucket"),
        "{metrics}"
    );

    let health_url = gw.url(gw.admin, "/healthz");
    let status = gw.proc.terminate(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
    let (st, _, err) = run_hoopguard(&["health", "--url", &health_url, "--timeout", "1s"], &[]);
    assert_eq!(st.code(), Some(1), "a stopped gateway is not healthy");
    assert!(err.contains("cannot connect"), "{err}");
    let log = gw.proc.output();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("--log-format json printed a non-JSON line ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    assert!(
        log.contains("development issuer is enabled"),
        "the dev issuer warns at start: {log}"
    );
}

#[test]
fn serve_refuses_to_start_on_a_busy_port() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let path = dir.path().join("busy.toml");
    std::fs::write(
        &path,
        format!("data_dir = {:?}\n[listeners.aws]\nbind = \"127.0.0.1:{port}\"\n[listeners.admin]\nbind = \"127.0.0.1:0\"\n[identity.dev_issuer]\nenabled = true\nissuer = \"http://dev.local\"\n", dir.path().join("d").display().to_string()),
    )
    .unwrap();
    let (st, _, err) = run_hoopguard(&["serve", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("cannot bind the aws listener"), "{err}");
    assert!(err.contains("listeners.aws.bind"), "{err}");
}

#[test]
fn dev_token_is_accepted_by_serve_and_refused_where_not_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(
        dir.path(),
        "[identity.dev_issuer]\nenabled = true\n[aws.connections.default]\nbroker = \"static\"\n",
        &[],
    );
    let config = gw.config.to_str().unwrap();

    let (st, token, err) = run_hoopguard(
        &[
            "dev-token",
            "--config",
            config,
            "--sub",
            "alice",
            "--groups",
            "dev,ops",
            "--ttl",
            "10m",
        ],
        &[],
    );
    assert!(st.success(), "{err}");
    assert!(
        !token.ends_with(b"\n"),
        "a token file must not end in a newline (botocore refuses it)"
    );
    let token = String::from_utf8(token).unwrap();

    // As an AWS SDK sends it: the raw token file content.
    let resp = blocking_client()
        .get(gw.url(gw.aws, "/v1/aws/credentials"))
        .header("authorization", &token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().unwrap();
    assert!(
        body["AccessKeyId"].as_str().unwrap().starts_with("HGPK"),
        "{body}"
    );
    // On the MCP listener, as a bearer token, only when issued for its resource URI.
    let resp = blocking_client()
        .post(gw.url(gw.mcp, "/mcp"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resource = gw.url(gw.mcp, "/mcp");
    let (st, for_mcp, err) = run_hoopguard(
        &[
            "dev-token",
            "--config",
            config,
            "--sub",
            "alice",
            "--groups",
            "dev",
            "--audience",
            &resource,
        ],
        &[],
    );
    assert!(st.success(), "{err}");
    let resp = blocking_client()
        .post(&resource)
        .bearer_auth(String::from_utf8(for_mcp).unwrap())
        .send()
        .unwrap();
    assert_eq!(
        resp.status(),
        503,
        "authenticated; no MCP server configured"
    );

    // --out writes a private file without a newline.
    let out = dir.path().join("token");
    let (st, _, err) = run_hoopguard(
        &[
            "dev-token",
            "--config",
            config,
            "--sub",
            "bob",
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    );
    assert!(st.success(), "{err}");
    let written = std::fs::read(&out).unwrap();
    assert!(!written.ends_with(b"\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Too long a lifetime is refused.
    let (st, _, err) = run_hoopguard(
        &[
            "dev-token",
            "--config",
            config,
            "--sub",
            "x",
            "--ttl",
            "48h",
        ],
        &[],
    );
    assert_eq!(st.code(), Some(2));
    assert!(err.contains("lifetime"), "{err}");

    // A config without the development issuer refuses to mint.
    let ports = GatewayPorts::new();
    let other = dir.path().join("no-dev.toml");
    std::fs::write(
        &other,
        format!(
            "{}[[identity.issuers]]\nissuer = \"https://idp.example.com\"\naudiences = [\"gw\"]\n",
            ports.toml(&dir.path().join("d2"))
        ),
    )
    .unwrap();
    let (st, out, err) = run_hoopguard(
        &[
            "dev-token",
            "--config",
            other.to_str().unwrap(),
            "--sub",
            "alice",
        ],
        &[],
    );
    assert_eq!(st.code(), Some(2));
    assert!(out.is_empty());
    assert!(err.contains("development issuer is not enabled"), "{err}");

    // The token never reached the log.
    assert!(!gw.proc.output().contains(&token[token.len() - 40..]));
}
