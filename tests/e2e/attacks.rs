//! The decision cannot be talked past. Every attack below is sent exactly as an attacker would —
//! signed by botocore with the agent's own pseudo-credentials (`tests/peers/signed_requests.py`),
//! or as raw bytes — to a gateway whose AWS endpoint is an upstream that logs every request it
//! receives (`tests/peers/logging_upstream.py`, in front of moto). Each attack must not reach the
//! upstream; its legitimate twin must, so a gateway that refuses everything fails too.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::aws::{agent_env, assert_no_file_contains};
use crate::support::{
    Gateway, Moto, Proc, approval_id, free_port, root, run_hoopguard, venv, wait_for_port,
};

fn policy(upstream: &str, moto: &Moto) -> String {
    format!(
        r#"
[identity.dev_issuer]
enabled = true

[record]
auditors = ["security"]

[aws]
unclassified_approvers = ["managers"]

[aws.connections.default]
broker = "assume_role"
role_arn = "{role}"
endpoint = "{upstream}"
sts_endpoint = "{moto}"

[[policy.rules]]
name = "read-only-everywhere"
effect = "allow"
groups = ["dev"]
access = ["List", "Read"]

[[policy.rules]]
name = "agents-work"
effect = "allow"
groups = ["dev"]
actions = ["s3:CreateBucket", "s3:PutObject", "s3:DeleteObject"]

[[policy.rules]]
name = "scratch-tables-only"
effect = "allow"
groups = ["dev"]
actions = ["dynamodb:DeleteTable"]
resources = ["arn:aws:dynamodb:*:*:table/scratch-*"]

[[policy.rules]]
name = "no-versions-no-acls"
effect = "deny"
actions = ["s3:DeleteObjectVersion", "s3:GetObjectVersion", "s3:PutObjectAcl", "s3:PutBucketAcl"]

[[policy.rules]]
name = "prod-bucket-is-off-limits"
effect = "deny"
actions = ["s3:*"]
resources = ["arn:aws:s3:::prod-bucket", "arn:aws:s3:::prod-bucket/*"]

[[policy.rules]]
name = "terminate-needs-a-manager"
effect = "approve"
groups = ["dev"]
actions = ["ec2:TerminateInstances"]
approvers = ["managers"]

[[policy.rules]]
name = "bucket-config-needs-a-manager"
effect = "approve"
groups = ["dev"]
actions = ["s3:PutBucketTagging", "s3:PutBucketPublicAccessBlock"]
approvers = ["managers"]

[[policy.rules]]
name = "new-secrets-need-a-manager"
effect = "approve"
groups = ["dev"]
actions = ["secretsmanager:CreateSecret"]
approvers = ["managers"]

[[policy.rules]]
name = "deploys-need-a-manager"
effect = "approve"
groups = ["dev"]
tools = ["deploy"]
approvers = ["managers"]
"#,
        role = moto.role_arn,
        moto = moto.url(),
    )
}

struct Env {
    gw: Gateway,
    alice: PathBuf,
    maria: PathBuf,
    log: PathBuf,
    _upstream: Proc,
    _moto: Moto,
}

impl Env {
    fn start(dir: &Path) -> Env {
        let moto = Moto::start(dir);
        let port = free_port();
        let log = dir.join("upstream.jsonl");
        std::fs::write(&log, "").unwrap();
        let mut cmd = Command::new(venv().join("bin/python"));
        cmd.arg(root().join("tests/peers/logging_upstream.py"))
            .arg(port.to_string())
            .arg(moto.url())
            .arg(&log)
            .stdin(Stdio::null());
        let upstream = Proc::spawn(cmd, dir.join("logging-upstream.log"));
        wait_for_port(port, Duration::from_secs(30));
        let gw = Gateway::start_with_env(
            dir,
            &policy(&format!("http://127.0.0.1:{port}"), &moto),
            &[],
            &moto.gateway_env(),
        );
        let alice = gw.dev_token("alice", "dev", None);
        let maria = gw.dev_token("maria", "managers", None);
        Env {
            gw,
            alice,
            maria,
            log,
            _upstream: upstream,
            _moto: moto,
        }
    }

    /// What reached the upstream so far.
    fn upstream(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Sends the requests, signed by botocore as alice; their answers.
    fn send(&self, reqs: &[Value]) -> Vec<Value> {
        let mut cmd = Command::new(venv().join("bin/python"));
        cmd.arg(root().join("tests/peers/signed_requests.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        agent_env(&mut cmd, &self.gw, &self.alice);
        let mut child = cmd.spawn().unwrap();
        let mut input = String::new();
        for r in reqs {
            input.push_str(&r.to_string());
            input.push('\n');
        }
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Sends one request; its answer and what of it reached the upstream.
    fn one(&self, req: Value) -> (Value, Vec<Value>) {
        let before = self.upstream().len();
        let answer = self.send(&[req]).remove(0);
        let reached = self.upstream().split_off(before);
        (answer, reached)
    }

    /// An attack: answered by hoopguard with `status`, and nothing reaches the upstream.
    fn refused(&self, what: &str, req: Value, status: u16) -> Value {
        let (answer, reached) = self.one(req);
        assert!(
            reached.is_empty(),
            "{what}: reached the upstream: {reached:?} (answer {answer})"
        );
        assert_eq!(answer["status"], status, "{what}: {answer}");
        answer
    }

    /// A legitimate twin: it reaches the upstream, once, as `target`.
    fn passes(&self, what: &str, req: Value, target: &str) -> Value {
        let (answer, reached) = self.one(req);
        assert_eq!(
            reached.len(),
            1,
            "{what}: expected one request upstream, got {reached:?} (answer {answer})"
        );
        assert!(
            reached[0]["target"].as_str().unwrap().starts_with(target),
            "{what}: upstream saw {} ({answer})",
            reached[0]["target"]
        );
        reached.into_iter().next().unwrap()
    }

    fn approve(&self, id: &str) -> String {
        self.gw.approve(&self.maria, id)
    }

    fn show(&self, id: &str) -> String {
        let config = self.gw.config.to_str().unwrap();
        let args = [
            "approvals",
            "--config",
            config,
            "--token-file",
            self.maria.to_str().unwrap(),
            "show",
            id,
        ];
        let (st, out, err) = run_hoopguard(&args, &[]);
        assert!(st.success(), "{err}");
        String::from_utf8(out).unwrap()
    }
}

fn req(service: &str, method: &str, path: &str, query: &str) -> Value {
    json!({"service": service, "method": method, "path": path, "query": query})
}

fn form(service: &str, body: &str) -> Value {
    json!({"service": service, "method": "POST", "path": "/", "body": body,
        "headers": [["content-type", "application/x-www-form-urlencoded; charset=utf-8"]]})
}

fn target(service: &str, target: &str, body: &str) -> Value {
    json!({"service": service, "method": "POST", "path": "/", "body": body,
        "headers": [["x-amz-target", target], ["content-type", "application/x-amz-json-1.1"]]})
}

fn with_header(mut r: Value, name: &str, value: &str) -> Value {
    let h = r
        .as_object_mut()
        .unwrap()
        .entry("headers")
        .or_insert(json!([]));
    h.as_array_mut().unwrap().push(json!([name, value]));
    r
}

fn pending_id(answer: &Value) -> String {
    let body = answer["body"].as_str().unwrap();
    assert!(body.contains("is pending"), "{answer}");
    approval_id(body)
}

#[test]
fn attacks_never_reach_aws_and_their_legitimate_twins_do() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::start(dir.path());
    for bucket in ["team-bucket", "harmless-bucket"] {
        env.passes(
            "create a bucket",
            req("s3", "PUT", &format!("/{bucket}"), ""),
            &format!("/{bucket}"),
        );
    }

    // 1. Protocol confusion. Lambda is REST: DeleteFunction does not become ListFunctions (which
    // the read-only rule allows) by a JSON target or an `Action=`.
    let delete_fn = req("lambda", "DELETE", "/2015-03-31/functions/prod-fn", "");
    let a = env.refused(
        "Lambda DELETE with X-Amz-Target ListFunctions",
        with_header(delete_fn.clone(), "x-amz-target", "AWSLambda.ListFunctions"),
        400,
    );
    assert!(a["body"].as_str().unwrap().contains("json marker"), "{a}");
    env.refused(
        "Lambda DELETE with ?Action=ListFunctions",
        req(
            "lambda",
            "DELETE",
            "/2015-03-31/functions/prod-fn",
            "Action=ListFunctions",
        ),
        400,
    );
    env.refused("Lambda DeleteFunction itself (not allowed)", delete_fn, 403);
    env.passes(
        "ListFunctions",
        req("lambda", "GET", "/2015-03-31/functions/", ""),
        "/2015-03-31/functions",
    );
    // EC2 is a query service: a JSON target naming DescribeInstances does not carry a
    // TerminateInstances body past its approval — and opens no approval either.
    let pending_before = env
        .gw
        .admin(&env.maria, "/v1/approvals?status=pending", None)
        .1;
    env.refused(
        "EC2 TerminateInstances body with X-Amz-Target DescribeInstances",
        with_header(
            form(
                "ec2",
                "Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0prod",
            ),
            "x-amz-target",
            "AmazonEC2.DescribeInstances",
        ),
        400,
    );
    let pending_after = env
        .gw
        .admin(&env.maria, "/v1/approvals?status=pending", None)
        .1;
    assert_eq!(
        pending_before, pending_after,
        "the ambiguous call opened an approval"
    );
    env.passes(
        "DescribeInstances",
        form("ec2", "Action=DescribeInstances&Version=2016-11-15"),
        "/",
    );

    // 2. An approval covers that exact call only. A GET query call has no body: the binding is
    // the canonical query.
    let terminate = |ids: &str| {
        req(
            "ec2",
            "GET",
            "/",
            &format!("Action=TerminateInstances&Version=2016-11-15&{ids}"),
        )
    };
    let a = env.refused(
        "TerminateInstances i-harmless",
        terminate("InstanceId.1=i-harmless"),
        403,
    );
    let id = pending_id(&a);
    // The approver sees every parameter.
    let shown = env.show(&id);
    assert!(
        shown.contains("params.InstanceId.1 = i-harmless"),
        "{shown}"
    );
    assert!(
        shown.contains("arn:aws:ec2:us-east-1:123456789012:instance/i-harmless"),
        "{shown}"
    );
    env.approve(&id);
    let a = env.refused(
        "the approved call with other instances",
        terminate("InstanceId.1=i-PRODUCTION&InstanceId.2=i-harmless"),
        403,
    );
    assert_ne!(pending_id(&a), id);
    env.refused(
        "the approved call with an extra parameter",
        terminate("InstanceId.1=i-harmless&DryRun=false"),
        403,
    );
    // The same parameters in another order are the same call: the twin passes, once.
    env.passes(
        "the approved call, reordered",
        req(
            "ec2",
            "GET",
            "/",
            "InstanceId.1=i-harmless&Version=2016-11-15&Action=TerminateInstances",
        ),
        "/?",
    );
    env.refused(
        "the approved call again",
        terminate("InstanceId.1=i-harmless"),
        403,
    );

    // S3 bucket configuration: approving one subresource does not approve another.
    let a = env.refused(
        "DeleteBucketTagging",
        req("s3", "DELETE", "/team-bucket", "tagging"),
        403,
    );
    let tagging = pending_id(&a);
    env.approve(&tagging);
    env.refused(
        "DeletePublicAccessBlock after a DeleteBucketTagging approval",
        req("s3", "DELETE", "/team-bucket", "publicAccessBlock"),
        403,
    );
    env.passes(
        "the approved DeleteBucketTagging",
        req("s3", "DELETE", "/team-bucket", "tagging"),
        "/team-bucket?tagging",
    );
    // An unknown subresource goes to the unclassified approvers, bound to its query.
    let a = env.refused(
        "an unknown subresource",
        req("s3", "GET", "/team-bucket", "made-up-a"),
        403,
    );
    let unknown = pending_id(&a);
    env.approve(&unknown);
    env.refused(
        "another unknown subresource after that approval",
        req("s3", "GET", "/team-bucket", "made-up-b"),
        403,
    );
    env.passes(
        "the approved unknown subresource",
        req("s3", "GET", "/team-bucket", "made-up-a"),
        "/team-bucket?made-up-a",
    );
    // Virtual-host buckets are bound by name: a grant for harmless-bucket is not one for
    // team-bucket.
    let port = env.gw.aws;
    let vhost = |bucket: &str| {
        let mut r = req("s3", "DELETE", "/", "tagging");
        r["host"] = json!(format!("{bucket}.localhost:{port}"));
        r
    };
    let a = env.refused(
        "DeleteBucketTagging on harmless-bucket.localhost",
        vhost("harmless-bucket"),
        403,
    );
    env.approve(&pending_id(&a));
    env.refused(
        "the same on team-bucket.localhost",
        vhost("team-bucket"),
        403,
    );
    env.passes(
        "the approved virtual-host call, sent path-style",
        vhost("harmless-bucket"),
        "/harmless-bucket?tagging",
    );

    // 4. S3 actions as fine as AWS's: versions and ACLs are their own actions, and a deny on
    // them holds.
    env.refused(
        "DeleteObject with versionId (s3:DeleteObjectVersion)",
        req(
            "s3",
            "DELETE",
            "/team-bucket/k",
            "versionId=3HL4kqtJlcpXroDTDmJ",
        ),
        403,
    );
    env.passes(
        "DeleteObject",
        req("s3", "DELETE", "/team-bucket/k", ""),
        "/team-bucket/k",
    );
    env.refused(
        "GetObject with versionId (s3:GetObjectVersion)",
        req(
            "s3",
            "GET",
            "/team-bucket/k",
            "versionId=3HL4kqtJlcpXroDTDmJ",
        ),
        403,
    );
    let put = json!({"service": "s3", "method": "PUT", "path": "/team-bucket/k", "body": "data"});
    env.refused(
        "PutObject with x-amz-acl (also s3:PutObjectAcl)",
        with_header(put.clone(), "x-amz-acl", "public-read"),
        403,
    );
    env.passes("PutObject", put, "/team-bucket/k");
    env.passes(
        "GetObject",
        req("s3", "GET", "/team-bucket/k", ""),
        "/team-bucket/k",
    );
    let (a, reached) = env.one(req("s3", "GET", "/team-bucket/k", "tagging&acl"));
    assert!(
        reached.is_empty(),
        "two subresources at once reached the upstream: {a}"
    );
    // Resources outside S3: the allow rule names tables by ARN; access levels are read too.
    env.refused(
        "DeleteTable orders (not a scratch table)",
        target(
            "dynamodb",
            "DynamoDB_20120810.DeleteTable",
            r#"{"TableName":"orders"}"#,
        ),
        403,
    );
    env.passes(
        "DeleteTable scratch-1",
        target(
            "dynamodb",
            "DynamoDB_20120810.DeleteTable",
            r#"{"TableName":"scratch-1"}"#,
        ),
        "/",
    );
    env.refused(
        "CreateVpc (Write, outside the read-only rule)",
        form(
            "ec2",
            "Action=CreateVpc&Version=2016-11-15&CidrBlock=10.0.0.0%2F16",
        ),
        403,
    );

    // 7. Parser edges: an encoded bucket name does not dodge a deny; a bucket deny holds.
    env.refused(
        "DeleteObject on pr%6Fd-bucket",
        req("s3", "DELETE", "/pr%6Fd-bucket/k", ""),
        400,
    );
    env.refused(
        "DeleteObject on prod-bucket",
        req("s3", "DELETE", "/prod-bucket/k", ""),
        403,
    );
    // DeleteObjects names its keys in XML: read strictly, so no key hides from the decision.
    let delete = |body: &str| {
        json!({"service": "s3", "method": "POST", "path": "/team-bucket", "query": "delete",
            "body": body, "headers": [["content-md5", "AAAAAAAAAAAAAAAAAAAAAA=="]]})
    };
    env.refused(
        "DeleteObjects with a key behind `<Object\\n>`",
        delete("<Delete><Object><Key>k</Key></Object><Object\n><Key>prod/secret</Key></Object></Delete>"),
        400,
    );
    env.passes(
        "DeleteObjects",
        delete("<Delete><Object><Key>k</Key></Object></Delete>"),
        "/team-bucket?delete",
    );
    // A JSON body with a key twice.
    env.refused(
        "DeleteTable with two TableNames",
        target(
            "dynamodb",
            "DynamoDB_20120810.DeleteTable",
            r#"{"TableName":"scratch-1","TableName":"orders"}"#,
        ),
        400,
    );
    raw_parser_edges(&env);

    // 5. Nothing secret is stored where calls are written or shown, even for calls that go
    // pending: the query, form fields, JSON bodies and MCP tool arguments.
    // GitHub tokens (`ghp_` and 36 characters) and an AWS access key id: kinds the default
    // masking rules know.
    let token = |word: &str| {
        let mut s = word.repeat(9);
        s.truncate(36);
        format!("ghp_{s}")
    };
    let (in_query, in_json, in_args) = (token("Query"), token("Json"), token("Args"));
    let (in_query, in_json, in_args) = (in_query.as_str(), in_json.as_str(), in_args.as_str());
    let in_form = "AKIAFORMFIELDSECRET7";
    let a = env.refused(
        "a secret in the query of a pending call",
        req(
            "s3",
            "GET",
            "/team-bucket",
            &format!("made-up-c&token={in_query}"),
        ),
        403,
    );
    let q = pending_id(&a);
    let a = env.refused(
        "a secret in a form field of a pending call",
        form(
            "ec2",
            &format!("Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-1&ClientToken={in_form}"),
        ),
        403,
    );
    pending_id(&a);
    let a = env.refused(
        "a secret in the JSON body of a pending call",
        target(
            "secretsmanager",
            "secretsmanager.CreateSecret",
            &format!(r#"{{"Name":"db","SecretString":"{in_json}"}}"#),
        ),
        403,
    );
    pending_id(&a);
    let (st, body) = env.gw.admin(
        &env.alice,
        "/v1/authorize",
        Some(&json!({"call": {"kind": "mcp_tool", "tool": "deploy", "args": {"env": "prod", "token": in_args}}})),
    );
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["error"], "approval_required", "{body}");
    // What the approver sees is masked, but there.
    let shown = env.show(&q);
    assert!(
        shown.contains("[MASKED:") && shown.contains("made-up-c"),
        "{shown}"
    );
    let (_, listed) = env
        .gw
        .admin(&env.maria, "/v1/approvals?status=pending", None);
    let listed = listed.to_string();
    let data = dir.path().join("data");
    let mut gw = env.gw;
    let log_now = gw.proc.output();
    for s in [in_query, in_form, in_json, in_args] {
        assert!(!listed.contains(s), "the admin API showed {s}");
        assert!(!log_now.contains(s), "the log holds {s}");
        // With the gateway running: SQLite files and their WALs included.
        assert_no_file_contains(&data, s);
    }
    assert!(gw.proc.terminate(Duration::from_secs(30)).success());
    for s in [in_query, in_form, in_json, in_args] {
        assert_no_file_contains(&data, s);
        assert!(!gw.proc.output().contains(s));
    }
}

/// Requests no SDK sends: raw bytes on the socket.
fn raw_parser_edges(env: &Env) {
    let raw = |bytes: &[u8]| -> String {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", env.gw.aws)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    };
    // A multi-byte character after `%` in a presigned signature: answered, not a panic.
    let answer = raw(
        "GET /?X-Amz-Signature=%a\u{20ac} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    // Two credential scopes in one Authorization header: refused, not read one way here and
    // another way there.
    let now = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%Y%m%dT%H%M%SZ"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let (now, day) = (now.trim(), &now[..8]);
    let answer = raw(format!(
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Date: {now}\r\nAuthorization: AWS4-HMAC-SHA256 Credential=HGPKA/{day}/us-east-1/s3/aws4_request, Credential=HGPKA/{day}/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature={}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "0".repeat(64)
    ).as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("IncompleteSignature"),
        "{answer}"
    );
    let log = env.gw.proc.output();
    assert!(!log.contains("panicked"), "{log}");
}
