//! The AWS CLI (awscli v1, PyPI) configured only by the container-credentials variables and the
//! endpoint: it fetches pseudo-credentials from hoopguard, signs with them, and hoopguard verifies
//! every signature, classifies the call and decides it (with approvals). Forwarding is not built
//! yet, so an allowed call ends in `NotImplemented`.

const POLICY: &str = r#"
[identity.dev_issuer]
enabled = true

[[policy.rules]]
name = "read-only"
effect = "allow"
groups = ["dev"]
actions = ["sts:GetCallerIdentity", "ec2:Describe*", "dynamodb:List*"]

[[policy.rules]]
name = "team-bucket"
effect = "allow"
groups = ["dev"]
actions = ["s3:ListBucket", "s3:GetObject"]
resources = ["arn:aws:s3:::team-bucket", "arn:aws:s3:::team-bucket/*"]

[[policy.rules]]
name = "terminate-needs-a-manager"
effect = "approve"
groups = ["dev"]
actions = ["ec2:TerminateInstances"]
approvers = ["managers"]
"#;

use std::path::Path;
use std::process::Command;

use crate::support::{Gateway, reqwest::blocking_client, run_hoopguard, venv};

fn aws(gw: &Gateway, token_file: &Path, args: &[&str], extra: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(venv().join("bin/aws"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", token_file.parent().unwrap())
        .env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            gw.url(gw.aws, "/v1/aws/credentials"),
        )
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file)
        .env("AWS_ENDPOINT_URL", gw.url(gw.aws, ""))
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run aws");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_aws_cli_is_authenticated_classified_and_decided_with_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), POLICY, &[]);
    let token = dir.path().join("alice.token");
    let (st, _, err) = run_hoopguard(
        &[
            "dev-token",
            "--config",
            gw.config.to_str().unwrap(),
            "--sub",
            "alice",
            "--groups",
            "dev",
            "--out",
            token.to_str().unwrap(),
        ],
        &[],
    );
    assert!(st.success(), "{err}");

    // Query (sts, ec2), rest-xml (s3, with a query string), json (dynamodb): every signature
    // verified with the pseudo-secret the CLI fetched.
    for (args, op) in [
        (&["sts", "get-caller-identity"][..], "GetCallerIdentity"),
        (&["ec2", "describe-instances"][..], "DescribeInstances"),
        (
            &[
                "s3api",
                "list-objects-v2",
                "--bucket",
                "team-bucket",
                "--prefix",
                "a/b c",
            ][..],
            "ListObjectsV2",
        ),
        (&["dynamodb", "list-tables"][..], "ListTables"),
    ] {
        let (ok, out) = aws(&gw, &token, args, &[]);
        assert!(!ok);
        assert!(
            out.contains(&format!(
                "(NotImplemented) when calling the {op} operation: authenticated as `alice`"
            )),
            "{args:?}: {out}"
        );
        assert!(out.contains("allowed by rule"), "{out}");
    }

    // Denied by default, with the reason; another bucket is not the team bucket.
    let (_, out) = aws(&gw, &token, &["iam", "list-users"], &[]);
    assert!(
        out.contains(
            "(AccessDenied) when calling the ListUsers operation: no rule allows `iam:ListUsers`"
        ),
        "{out}"
    );
    let (_, out) = aws(
        &gw,
        &token,
        &["s3api", "list-objects-v2", "--bucket", "other-bucket"],
        &[],
    );
    assert!(out.contains("(AccessDenied)"), "{out}");
    // A REST service whose routes are not classified yet: refused, never passed.
    let (_, out) = aws(&gw, &token, &["lambda", "list-functions"], &[]);
    assert!(
        out.contains("(AccessDenied)") && out.contains("could not classify"),
        "{out}"
    );

    // The risky call: refused with an approval id; a manager approves; the retry passes, once.
    let terminate = ["ec2", "terminate-instances", "--instance-ids", "i-0abc123"];
    let (_, out) = aws(&gw, &token, &terminate, &[]);
    assert!(
        out.contains("(AccessDenied)") && out.contains("is pending"),
        "{out}"
    );
    let id = out
        .split("Approval ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let manager = dir.path().join("maria.token");
    let config = gw.config.to_str().unwrap();
    let (st, _, err) = run_hoopguard(
        &[
            "dev-token",
            "--config",
            config,
            "--sub",
            "maria",
            "--groups",
            "managers",
            "--out",
            manager.to_str().unwrap(),
        ],
        &[],
    );
    assert!(st.success(), "{err}");
    let (st, approved, err) = run_hoopguard(
        &[
            "approvals",
            "--config",
            config,
            "--token-file",
            manager.to_str().unwrap(),
            "approve",
            &id,
        ],
        &[],
    );
    assert!(st.success(), "{err}");
    assert!(String::from_utf8_lossy(&approved).contains("now approved"));
    let (_, out) = aws(&gw, &token, &terminate, &[]);
    assert!(
        out.contains("(NotImplemented) when calling the TerminateInstances operation"),
        "{out}"
    );
    assert!(
        out.contains("allowed by rule `terminate-needs-a-manager`"),
        "{out}"
    );
    let (_, out) = aws(&gw, &token, &terminate, &[]);
    assert!(
        out.contains("(AccessDenied)") && out.contains("is pending") && !out.contains(&id),
        "a once grant is used up: {out}"
    );
    // The approval for one instance does not cover another.
    let (_, out) = aws(
        &gw,
        &token,
        &["ec2", "terminate-instances", "--instance-ids", "i-0def456"],
        &[],
    );
    assert!(out.contains("is pending"), "{out}");

    // The credentials endpoint, as the SDK calls it.
    let creds: serde_json::Value = blocking_client()
        .get(gw.url(gw.aws, "/v1/aws/credentials"))
        .header("authorization", std::fs::read_to_string(&token).unwrap())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let akid = creds["AccessKeyId"].as_str().unwrap().to_string();
    let secret = creds["SecretAccessKey"].as_str().unwrap().to_string();
    let session = creds["Token"].as_str().unwrap().to_string();
    assert!(akid.starts_with("HGPK"), "{creds}");
    assert!(creds["Expiration"].as_str().unwrap().ends_with('Z'));

    // A wrong secret: the signature does not match.
    let wrong = [
        ("AWS_ACCESS_KEY_ID", akid.as_str()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("AWS_SESSION_TOKEN", session.as_str()),
    ];
    let (ok, out) = aws(&gw, &token, &["sts", "get-caller-identity"], &wrong);
    assert!(!ok);
    assert!(out.contains("(SignatureDoesNotMatch)"), "{out}");

    // A foreign access key (real-looking AWS keys, no hoopguard token): refused.
    let foreign = [
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
    ];
    let (ok, out) = aws(&gw, &token, &["sts", "get-caller-identity"], &foreign);
    assert!(!ok);
    assert!(out.contains("(InvalidClientTokenId)"), "{out}");

    // A token file the IdP never issued: no credentials at all.
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "not-a-token").unwrap();
    let (ok, out) = aws(&gw, &bad, &["sts", "get-caller-identity"], &[]);
    assert!(!ok);
    assert!(!out.contains("NotImplemented"), "{out}");

    // Nothing secret in the gateway's log.
    let log = gw.proc.output();
    for s in [&secret, &session, &std::fs::read_to_string(&token).unwrap()] {
        assert!(!log.contains(s.as_str()), "a secret reached the log");
    }

    // The calls were recorded — one recording per pseudo-credential session (each `aws` process
    // fetched its own credentials) — and every recording verifies.
    let (st, out, err) = run_hoopguard(&["sessions", "--config", config, "list"], &[]);
    assert!(st.success(), "{err}");
    let out = String::from_utf8(out).unwrap();
    let ids: Vec<String> = out
        .lines()
        .filter(|l| l.contains("alice"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|id| id.starts_with("aws-"))
        .map(String::from)
        .collect();
    assert!(ids.len() >= 8, "{out}");
    let (st, out, _) = run_hoopguard(&["sessions", "--config", config, "verify"], &[]);
    assert!(st.success(), "{}", String::from_utf8_lossy(&out));
    let mut timelines = String::new();
    for id in &ids {
        let (_, out, _) = run_hoopguard(&["sessions", "--config", config, "show", id], &[]);
        timelines.push_str(&String::from_utf8(out).unwrap());
    }
    for expected in [
        "ec2:TerminateInstances in us-east-1 → approve",
        "ec2:TerminateInstances in us-east-1 → allow",
        "iam:ListUsers in us-east-1 → deny",
        "sts:GetCallerIdentity in us-east-1 → allow",
    ] {
        assert!(
            timelines.contains(expected),
            "{expected} missing from {timelines}"
        );
    }
    // No credential, token or secret anywhere in the data directory.
    let data = dir.path().join("data");
    for s in [&secret, &session, &std::fs::read_to_string(&token).unwrap()] {
        assert_no_file_contains(&data, s);
    }
}

fn assert_no_file_contains(dir: &Path, needle: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_file_contains(&path, needle);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "a secret was written to {}",
                path.display()
            );
        }
    }
}
