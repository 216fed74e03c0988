//! The AWS data path end to end, against moto with signature checking on: the AWS CLI (awscli
//! v1) and boto3, configured only by the container-credentials variables and the endpoint, reach
//! moto through hoopguard. hoopguard verifies every signature made with its pseudo-credentials,
//! classifies and decides the call (with approvals), assumes the agents' role for the subject,
//! re-signs and forwards, masks the answer and records it.

fn policy(moto: &Moto, federated_port: u16) -> String {
    format!(
        r#"
[identity.dev_issuer]
enabled = true

[record]
auditors = ["security"]

[aws]
max_policy_body = 65536
unclassified_approvers = ["managers"]

[aws.connections.default]
broker = "assume_role"
role_arn = "{role}"
endpoint = "{endpoint}"

[aws.connections.no-sts]
broker = "assume_role"
role_arn = "{role}"
endpoint = "{endpoint}"
sts_endpoint = "http://127.0.0.1:9"

[aws.connections.federated]
broker = "web_identity"
role_arn = "arn:aws:iam::123456789012:role/federated-agents"
endpoint = "http://127.0.0.1:{federated_port}"

[aws.connections.nowhere]
broker = "static"
access_key_id = "AKIDNOWHERE"
secret_access_key = "nowhere-static-secret"
endpoint = "http://127.0.0.1:9"

[[policy.rules]]
name = "agents-work"
effect = "allow"
groups = ["dev"]
actions = [
  "sts:GetCallerIdentity", "ec2:Describe*", "ec2:RunInstances",
  "s3:CreateBucket", "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:ListAllMyBuckets",
  "secretsmanager:CreateSecret", "secretsmanager:GetSecretValue",
  "dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query",
  "ssm:PutParameter", "ssm:GetParameter",
]

[[policy.rules]]
name = "terminate-needs-a-manager"
effect = "approve"
groups = ["dev"]
actions = ["ec2:TerminateInstances"]
approvers = ["managers"]
"#,
        role = moto.role_arn,
        endpoint = moto.url()
    )
}

use std::path::Path;
use std::process::Command;

use crate::support::{
    Gateway, Moto, approval_id, reqwest::blocking_client, root, run_hoopguard, venv,
};

/// The three variables an agent gets, and nothing else AWS-related.
pub(crate) fn agent_env(cmd: &mut Command, gw: &Gateway, token_file: &Path) {
    cmd.env_clear()
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
}

pub(crate) fn output(out: std::process::Output) -> (bool, String) {
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `aws ARGS` with the pseudo-credentials `creds` fixed in the environment (one credential
/// session), calling `gw`.
pub(crate) fn aws_with(
    creds: &serde_json::Value,
    gw: &Gateway,
    home: &Path,
    args: &[&str],
) -> (bool, String) {
    let s = |k: &str| creds[k].as_str().unwrap().to_string();
    let out = Command::new(venv().join("bin/aws"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_ACCESS_KEY_ID", s("AccessKeyId"))
        .env("AWS_SECRET_ACCESS_KEY", s("SecretAccessKey"))
        .env("AWS_SESSION_TOKEN", s("Token"))
        .env("AWS_ENDPOINT_URL", gw.url(gw.aws, ""))
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .expect("run aws");
    crate::aws::output(out)
}

pub(crate) fn aws(
    gw: &Gateway,
    token_file: &Path,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (bool, String) {
    let mut cmd = Command::new(venv().join("bin/aws"));
    cmd.args(args);
    agent_env(&mut cmd, gw, token_file);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    output(cmd.output().expect("run aws"))
}

/// `aws …` that must succeed; returns its output.
pub(crate) fn aws_ok(gw: &Gateway, token_file: &Path, args: &[&str]) -> String {
    let (ok, out) = aws(gw, token_file, args, &[]);
    assert!(ok, "aws {args:?} failed: {out}");
    out
}

pub(crate) fn python(
    gw: &Gateway,
    token_file: &Path,
    script: &str,
    args: &[&str],
) -> (bool, String) {
    let mut cmd = Command::new(venv().join("bin/python"));
    cmd.arg(root().join("tests/peers").join(script)).args(args);
    agent_env(&mut cmd, gw, token_file);
    output(cmd.output().expect("run python"))
}

#[test]
fn agents_reach_moto_through_hoopguard_with_their_own_role_session() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let (federated_port, _federated) = Moto::start_without_auth(dir.path());
    let gw = Gateway::start_with_env(
        dir.path(),
        &policy(&moto, federated_port),
        &[],
        &moto.gateway_env(),
    );
    let token = gw.dev_token("alice", "dev", None);

    // Who AWS sees: the agents' role, in a session named after the subject.
    let out = aws_ok(&gw, &token, &["sts", "get-caller-identity"]);
    assert!(out.contains("assumed-role/agents/alice"), "{out}");

    // S3: make a bucket, upload 20 MiB (multipart: the CLI's threshold is 8 MiB), list,
    // download byte-identical.
    let big = dir.path().join("big.bin");
    let data: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    aws_ok(&gw, &token, &["s3", "mb", "s3://team-bucket"]);
    aws_ok(
        &gw,
        &token,
        &[
            "s3",
            "cp",
            big.to_str().unwrap(),
            "s3://team-bucket/big.bin",
        ],
    );
    let out = aws_ok(&gw, &token, &["s3", "ls", "s3://team-bucket/"]);
    assert!(out.contains("20971520 big.bin"), "{out}");
    let back = dir.path().join("back.bin");
    aws_ok(
        &gw,
        &token,
        &[
            "s3",
            "cp",
            "s3://team-bucket/big.bin",
            back.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the download differs from the upload"
    );

    // The CLI presigns S3 URLs with SigV2: refused. boto3 presigns with SigV4 and the
    // pseudo-credentials: hoopguard checks the URL and fetches the object with the brokered
    // credentials; altered, it is refused.
    let out = aws_ok(&gw, &token, &["s3", "presign", "s3://team-bucket/big.bin"]);
    let resp = blocking_client().get(out.trim()).send().unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().unwrap().contains("SigV2"));
    let (ok, out) = python(&gw, &token, "boto3_calls.py", &["presign"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let url = v["presigned"].as_str().unwrap().to_string();
    assert!(
        url.contains("X-Amz-Signature=") && url.contains("HGPK"),
        "{url}"
    );
    let resp = blocking_client().get(&url).send().unwrap();
    assert_eq!(resp.status(), 200, "{url}: {:?}", resp.text());
    assert!(
        resp.bytes().unwrap()[..] == data[..],
        "the presigned download differs"
    );
    let resp = blocking_client()
        .get(url.replace("big.bin", "other.bin"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().unwrap().contains("SignatureDoesNotMatch"));

    // Virtual-host addressing (bucket in the host name): classified and forwarded path-style.
    let (ok, out) = python(&gw, &token, "boto3_calls.py", &["virtual"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(v["virtual_keys"], serde_json::json!(["big.bin"]), "{v}");
    assert_eq!(v["virtual_size"], data.len(), "{v}");

    // An aws-chunked upload (unsigned chunks with a checksum trailer), signed by botocore:
    // de-framed on the way, so the stored object is the plain bytes.
    let small = dir.path().join("chunked.txt");
    let text: Vec<u8> = b"chunked upload through hoopguard\n".repeat(5000);
    std::fs::write(&small, &text).unwrap();
    let (ok, out) = python(
        &gw,
        &token,
        "chunked_put.py",
        &[
            &gw.url(gw.aws, ""),
            "team-bucket",
            "chunked.txt",
            small.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}");
    let got = dir.path().join("chunked.back");
    aws_ok(
        &gw,
        &token,
        &[
            "s3",
            "cp",
            "s3://team-bucket/chunked.txt",
            got.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read(&got).unwrap() == text,
        "the chunked upload was stored framed"
    );

    // EC2: run and describe instances.
    let out = aws_ok(
        &gw,
        &token,
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
    let ami = out.trim().to_string();
    let out = aws_ok(
        &gw,
        &token,
        &[
            "ec2",
            "run-instances",
            "--image-id",
            &ami,
            "--instance-type",
            "t3.micro",
            "--query",
            "Instances[0].InstanceId",
            "--output",
            "text",
        ],
    );
    let instance = out.trim().to_string();
    assert!(instance.starts_with("i-"), "{out}");
    let out = aws_ok(
        &gw,
        &token,
        &["ec2", "describe-instances", "--instance-ids", &instance],
    );
    assert!(out.contains(&instance), "{out}");

    // Secrets Manager: the secret comes back masked.
    aws_ok(
        &gw,
        &token,
        &[
            "secretsmanager",
            "create-secret",
            "--name",
            "db",
            "--secret-string",
            "hunter2-correct-horse",
        ],
    );
    let out = aws_ok(
        &gw,
        &token,
        &["secretsmanager", "get-secret-value", "--secret-id", "db"],
    );
    assert!(out.contains("[MASKED:"), "{out}");
    assert!(!out.contains("hunter2-correct-horse"), "{out}");

    // DynamoDB: put, get and query (the answers are re-checked by botocore's CRC32: hoopguard
    // drops x-amz-crc32 when it masks).
    aws_ok(
        &gw,
        &token,
        &[
            "dynamodb",
            "create-table",
            "--table-name",
            "notes",
            "--attribute-definitions",
            "AttributeName=id,AttributeType=S",
            "--key-schema",
            "AttributeName=id,KeyType=HASH",
            "--billing-mode",
            "PAY_PER_REQUEST",
        ],
    );
    aws_ok(
        &gw,
        &token,
        &[
            "dynamodb",
            "put-item",
            "--table-name",
            "notes",
            "--item",
            r#"{"id":{"S":"1"},"text":{"S":"hello"}}"#,
        ],
    );
    let out = aws_ok(
        &gw,
        &token,
        &[
            "dynamodb",
            "get-item",
            "--table-name",
            "notes",
            "--key",
            r#"{"id":{"S":"1"}}"#,
        ],
    );
    assert!(out.contains("hello"), "{out}");
    let out = aws_ok(
        &gw,
        &token,
        &[
            "dynamodb",
            "query",
            "--table-name",
            "notes",
            "--key-condition-expression",
            "id = :v",
            "--expression-attribute-values",
            r#"{":v":{"S":"1"}}"#,
        ],
    );
    assert!(out.contains("\"Count\": 1"), "{out}");

    // SSM parameters.
    aws_ok(
        &gw,
        &token,
        &[
            "ssm",
            "put-parameter",
            "--name",
            "/app/mode",
            "--value",
            "blue",
            "--type",
            "String",
        ],
    );
    let out = aws_ok(
        &gw,
        &token,
        &["ssm", "get-parameter", "--name", "/app/mode"],
    );
    assert!(out.contains("blue"), "{out}");

    // boto3, with the same three variables; and the header tricks and an oversized body.
    let (ok, out) = python(&gw, &token, "boto3_calls.py", &["tricks"]);
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(
        v["arn"]
            .as_str()
            .unwrap()
            .contains("assumed-role/agents/alice"),
        "{v}"
    );
    assert_eq!(v["item"]["text"]["S"], "hello", "{v}");
    assert!(
        v["x_forwarded_host"]
            .as_str()
            .unwrap()
            .contains("(InvalidRequest)"),
        "{v}"
    );
    // A signed Host naming another server changes nothing: the call still went to moto.
    assert!(
        v["host_trick_arn"]
            .as_str()
            .unwrap()
            .contains("assumed-role/agents/alice"),
        "{v}"
    );
    assert!(
        v["oversized"]
            .as_str()
            .unwrap()
            .contains("RequestEntityTooLarge"),
        "{v}"
    );

    // web_identity: the caller's own token exchanged (AssumeRoleWithWebIdentity, at a moto
    // without auth) when it fetched credentials; its calls are signed with what came back.
    let via_federated = gw.url(gw.aws, "/v1/aws/credentials/federated");
    let (ok, out) = aws(
        &gw,
        &token,
        &["sts", "get-caller-identity"],
        &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", via_federated.as_str())],
    );
    assert!(ok, "{out}");
    assert!(out.contains("assumed-role/federated-agents/alice"), "{out}");

    // STS down and the AWS endpoint unreachable: clear 5xx errors in the protocol's format.
    let via = |conn: &str| {
        [(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            gw.url(gw.aws, &format!("/v1/aws/credentials/{conn}")),
        )]
    };
    let [(k, v)] = via("no-sts");
    let (ok, out) = aws(
        &gw,
        &token,
        &["sts", "get-caller-identity"],
        &[(k, v.as_str())],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("(ServiceUnavailable)") && out.contains("STS AssumeRole failed"),
        "{out}"
    );
    let [(k, v)] = via("nowhere");
    let (ok, out) = aws(
        &gw,
        &token,
        &["sts", "get-caller-identity"],
        &[(k, v.as_str())],
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("(ServiceUnavailable)") && out.contains("could not reach http://127.0.0.1:9"),
        "{out}"
    );

    // Denied by default, with the reason.
    let (_, out) = aws(&gw, &token, &["iam", "list-users"], &[]);
    assert!(
        out.contains(
            "(AccessDenied) when calling the ListUsers operation: no rule allows `iam:ListUsers`"
        ),
        "{out}"
    );
    // REST-JSON, classified from the generated route table: denied by default like any other.
    let (_, out) = aws(&gw, &token, &["lambda", "list-functions"], &[]);
    assert!(
        out.contains("no rule allows `lambda:ListFunctions`"),
        "{out}"
    );
    // Every S3 operation is classified from the route table, with its IAM action and resource.
    let (_, out) = aws(
        &gw,
        &token,
        &["s3api", "get-bucket-versioning", "--bucket", "team-bucket"],
        &[],
    );
    assert!(
        out.contains("no rule allows `s3:GetBucketVersioning` on `arn:aws:s3:::team-bucket`"),
        "{out}"
    );
    let manager = gw.dev_token("maria", "managers", None);
    let config = gw.config.to_str().unwrap();

    // The risky call: refused with an approval id; a manager approves; the retry goes through,
    // once.
    let terminate = [
        "ec2",
        "terminate-instances",
        "--instance-ids",
        instance.as_str(),
    ];
    let (_, out) = aws(&gw, &token, &terminate, &[]);
    assert!(
        out.contains("(AccessDenied)") && out.contains("is pending"),
        "{out}"
    );
    let id = approval_id(&out);
    let approved = gw.approve(&manager, &id);
    assert!(approved.contains("now approved"));
    let out = aws_ok(&gw, &token, &terminate);
    assert!(
        out.contains("shutting-down") || out.contains("terminated"),
        "{out}"
    );
    let (_, out) = aws(&gw, &token, &terminate, &[]);
    assert!(
        out.contains("(AccessDenied)") && out.contains("is pending") && !out.contains(&id),
        "a once grant is used up: {out}"
    );

    // The credentials endpoint, as the SDK calls it.
    let creds = gw.pseudo_credentials(&token);
    let akid = creds["AccessKeyId"].as_str().unwrap().to_string();
    let secret = creds["SecretAccessKey"].as_str().unwrap().to_string();
    let session = creds["Token"].as_str().unwrap().to_string();
    assert!(akid.starts_with("HGPK"), "{creds}");

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
    // A foreign access key — the gateway's own real moto key — is not a hoopguard key.
    let foreign = [
        ("AWS_ACCESS_KEY_ID", moto.gateway_key_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", moto.gateway_secret.as_str()),
    ];
    let (ok, out) = aws(&gw, &token, &["sts", "get-caller-identity"], &foreign);
    assert!(!ok);
    assert!(out.contains("(InvalidClientTokenId)"), "{out}");
    // A token the IdP never issued: the SDK cannot get credentials at all.
    let bad = dir.path().join("bad.token");
    std::fs::write(&bad, "not-a-token").unwrap();
    let (ok, out) = aws(&gw, &bad, &["sts", "get-caller-identity"], &[]);
    assert!(!ok && !out.contains("assumed-role"), "{out}");
    // An expired token: refused, and the SDK can no longer refresh.
    let expired = dir.path().join("expired.token");
    let (st, _, err) = run_hoopguard(
        &[
            "dev-token",
            "--config",
            config,
            "--sub",
            "alice",
            "--groups",
            "dev",
            "--ttl",
            "1s",
            "--out",
            expired.to_str().unwrap(),
        ],
        &[],
    );
    assert!(st.success(), "{err}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (ok, out) = aws(&gw, &expired, &["sts", "get-caller-identity"], &[]);
    assert!(!ok && !out.contains("assumed-role"), "{out}");
    assert!(out.contains("credentials"), "{out}");

    // Nothing secret in the gateway's log: pseudo-credentials, tokens, the gateway's key, the
    // secret that was masked.
    let log = gw.proc.output();
    for s in [
        secret.as_str(),
        session.as_str(),
        &std::fs::read_to_string(&token).unwrap(),
        moto.gateway_secret.as_str(),
        "hunter2-correct-horse",
        "nowhere-static-secret",
    ] {
        assert!(!log.contains(s), "a secret reached the log");
    }

    // Every call was recorded, with its decision and the upstream's status; recordings verify.
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
    assert!(ids.len() >= 10, "{out}");
    // Filters: subject, action (IAM wildcards), decision, recency.
    let filtered = |args: &[&str]| {
        let mut a = vec!["sessions", "--config", config, "list"];
        a.extend_from_slice(args);
        let (st, out, err) = run_hoopguard(&a, &[]);
        assert!(st.success(), "{err}");
        String::from_utf8(out)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("aws-"))
            .count()
    };
    assert!(filtered(&["--action", "ec2:Terminate*", "--decision", "approve"]) >= 1);
    assert!(
        filtered(&[
            "--subject",
            "alice",
            "--since",
            "1h",
            "--action",
            "s3:PutObject"
        ]) >= 1
    );
    assert_eq!(filtered(&["--action", "iam:*", "--decision", "allow"]), 0);
    assert_eq!(filtered(&["--subject", "nobody"]), 0);
    let (st, out, _) = run_hoopguard(&["sessions", "--config", config, "verify"], &[]);
    assert!(st.success(), "{}", String::from_utf8_lossy(&out));
    let mut timelines = String::new();
    for id in &ids {
        let (_, out, _) = run_hoopguard(&["sessions", "--config", config, "show", id], &[]);
        timelines.push_str(&String::from_utf8(out).unwrap());
    }
    for expected in [
        &format!("ec2:TerminateInstances on arn:aws:ec2:us-east-1:123456789012:instance/{instance} in us-east-1 → approve"),
        &format!("ec2:TerminateInstances on arn:aws:ec2:us-east-1:123456789012:instance/{instance} in us-east-1 → allow"),
        "iam:ListUsers in us-east-1 → deny",
        "sts:GetCallerIdentity in us-east-1 → allow",
    ]
    .iter()
    .map(|s| s.to_string())
    {
        assert!(
            timelines.contains(&expected),
            "{expected} missing from {timelines}"
        );
    }
    // The answers were recorded after masking: the secret's value is recorded masked.
    assert!(
        timelines.contains("· 200 ·") || timelines.contains("200 ·"),
        "responses in the timelines: {timelines}"
    );
    let mut exported = String::new();
    for id in &ids {
        let (_, out, _) = run_hoopguard(&["sessions", "--config", config, "export", id], &[]);
        exported.push_str(&String::from_utf8(out).unwrap());
    }
    assert!(
        exported.contains("SecretString") && exported.contains("[MASKED:"),
        "masked answers recorded"
    );
    // Each session's start names the client and its user agent; the request bodies are
    // recorded masked (the secret's value went up in CreateSecret's body).
    assert!(
        exported.contains(r#""client": "127.0.0.1:"#),
        "client address recorded"
    );
    assert!(
        exported.contains(r#""user_agent": "aws-cli/"#),
        "user agent recorded"
    );
    let create_secret: Vec<String> = ids
        .iter()
        .flat_map(|id| {
            let (_, out, _) = run_hoopguard(&["sessions", "--config", config, "export", id], &[]);
            let events: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
            events
        })
        .filter(|e| e["data"]["operation"] == "CreateSecret")
        .map(|e| {
            e["data"]["request"]["body"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(create_secret.len(), 1, "{create_secret:?}");
    let body: serde_json::Value = serde_json::from_str(&create_secret[0]).unwrap();
    assert_eq!(body["Name"], "db", "{body}");
    assert_eq!(body["SecretString"], "[MASKED:json-field]", "{body}");

    // The same reads on the admin API, for approvers and auditors only.
    let admin = |who: &Path, path: &str| gw.admin(who, path, None);
    let auditor = gw.dev_token("sam", "security", None);
    let (status, body) = admin(&token, "/v1/sessions");
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("auditors"),
        "{body}"
    );
    for reader in [&auditor, &manager] {
        let (status, body) = admin(reader, "/v1/sessions?subject=alice&action=ec2:Terminate*");
        assert_eq!(status, 200, "{body}");
        let found = body["sessions"].as_array().unwrap();
        assert!(!found.is_empty(), "{body}");
        assert!(found.iter().all(|s| s["subject"] == "alice"), "{body}");
    }
    let (status, body) = admin(&auditor, "/v1/sessions?since=nonsense");
    assert_eq!(status, 400, "{body}");
    let (status, body) = admin(&auditor, &format!("/v1/sessions/{}", ids[0]));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["type"], "start", "{body}");
    let (status, body) = admin(&auditor, &format!("/v1/sessions/{}/verify", ids[0]));
    assert_eq!(
        (status, &body["ok"]),
        (200, &serde_json::json!(true)),
        "{body}"
    );
    let (status, _) = admin(&auditor, "/v1/sessions/no-such-session");
    assert_eq!(status, 404);

    // No credential, token or masked secret anywhere in the data directory.
    let data = dir.path().join("data");
    for s in [
        secret.as_str(),
        session.as_str(),
        &std::fs::read_to_string(&token).unwrap(),
        moto.gateway_secret.as_str(),
        "hunter2-correct-horse",
    ] {
        assert_no_file_contains(&data, s);
    }
}

pub fn assert_no_file_contains(dir: &Path, needle: &str) {
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
