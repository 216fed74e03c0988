//! An MCP server built on rmcp and aws-sdk-rust whose own AWS calls are guarded per caller
//! in-process (`examples/guarded-aws-mcp-server.rs`, `hoopguard_tower::aws::sdk`), driven by
//! the official Python MCP client, against moto with signature checking on.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{
    Gateway, Moto, RmcpExample, approval_id, mcp_client, root, run_hoopguard, venv,
};

/// Made directly in moto with a session of the agents' role (setup, not under test): buckets,
/// objects, two instances. Prints the instance ids.
const SETUP: &str = r#"
import json, sys
import boto3
endpoint, role = sys.argv[1], sys.argv[2]
sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
c = sts.assume_role(RoleArn=role, RoleSessionName="setup")["Credentials"]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
          aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["SessionToken"])
s3 = boto3.client("s3", **kw)
for b in ["team-bucket", "private-hr"]:
    s3.create_bucket(Bucket=b)
s3.put_object(Bucket="team-bucket", Key="config.json", ContentType="application/json",
              Body=b'{"region":"us-east-1","aws_access_key_id":"AKIAI44QH8DHBEXAMPLE"}')
s3.put_object(Bucket="private-hr", Key="salaries.csv", Body=b"alice,100\n")
ec2 = boto3.client("ec2", **kw)
image = ec2.describe_images()["Images"][0]["ImageId"]
out = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2)
print(json.dumps([i["InstanceId"] for i in out["Instances"]]))
"#;

#[test]
fn an_mcp_servers_own_aws_calls_are_guarded_per_caller() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let setup = dir.path().join("setup.py");
    std::fs::write(&setup, SETUP).unwrap();
    let out = Command::new(venv().join("bin/python"))
        .arg(&setup)
        .args([moto.url(), moto.role_arn.clone()])
        .envs(moto.gateway_env())
        .env_remove("AWS_ENDPOINT_URL")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let instances: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();

    // The gateway gives the example its development issuer and approvals; it proxies nothing.
    let gw = Gateway::start(dir.path(), "[identity.dev_issuer]\nenabled = true\n", &[]);
    let server = RmcpExample::start_aws(
        &["--role-arn", &moto.role_arn, "--aws-endpoint", &moto.url()],
        dir.path(),
        &gw,
        &moto.gateway_env(),
    );
    let url = server.url();
    let alice = gw.dev_token("alice", "dev", Some(&url));
    let terminate = |id: &str| json!({ "instance_id": id }).to_string();
    let (first, second) = (terminate(&instances[0]), terminate(&instances[1]));
    let r = mcp_client(
        &url,
        Some(&alice),
        &[
            "call",
            "whoami",
            "{}",
            "call",
            "list_buckets",
            "{}",
            "call",
            "get_object",
            r#"{"bucket":"team-bucket","key":"config.json"}"#,
            "call",
            "get_object",
            r#"{"bucket":"private-hr","key":"salaries.csv"}"#,
            "call",
            "terminate_instance",
            &first,
        ],
    )
    .unwrap();
    let text = |v: &Value| v["text"].as_str().unwrap_or_default().to_string();
    // AWS sees a session of the role assumed for the MCP caller, not the server.
    assert!(text(&r[0]).contains("assumed-role/agents/alice"), "{r:?}");
    assert_eq!(r[0]["is_error"], false);
    assert!(text(&r[1]).contains("team-bucket") && text(&r[1]).contains("private-hr"));
    // A secret in the object reaches the caller masked.
    let config = text(&r[2]);
    assert!(
        config.contains("[MASKED:aws-access-key-id]") && !config.contains("AKIAI44QH8DHBEXAMPLE"),
        "{config}"
    );
    // The twin of the allowed read: denied by the rule that names the bucket, as a tool error.
    assert_eq!(r[3]["is_error"], true, "{r:?}");
    assert!(text(&r[3]).contains("no-private-buckets"), "{r:?}");
    assert!(!text(&r[3]).contains("alice,100"));
    // Terminating needs a manager: the tool error names the approval.
    assert_eq!(r[4]["is_error"], true, "{r:?}");
    let id = approval_id(&text(&r[4]));
    let maria = gw.dev_token("maria", "managers", None);
    let (st, shown, err) = run_hoopguard(
        &[
            "approvals",
            "--config",
            gw.config.to_str().unwrap(),
            "--token-file",
            maria.to_str().unwrap(),
            "show",
            &id,
        ],
        &[],
    );
    assert!(st.success(), "{err}");
    let shown = String::from_utf8_lossy(&shown);
    assert!(
        shown.contains(&instances[0]) && shown.contains("alice"),
        "the approver sees the call: {shown}"
    );
    gw.approve(&maria, &id);

    // The retry of that exact call goes through, once; the other instance is not covered.
    let r = mcp_client(
        &url,
        Some(&alice),
        &[
            "call",
            "terminate_instance",
            &first,
            "call",
            "terminate_instance",
            &first,
            "call",
            "terminate_instance",
            &second,
        ],
    )
    .unwrap();
    assert_eq!(r[0]["is_error"], false, "{r:?}");
    assert!(text(&r[0]).starts_with(&instances[0]), "{r:?}");
    assert_eq!(r[1]["is_error"], true, "once: {r:?}");
    assert_eq!(r[2]["is_error"], true, "{r:?}");
    assert!(text(&r[2]).contains("is pending"), "{r:?}");

    // The recording of the MCP session holds the tool call and the AWS call it made.
    let recordings = dir.path().join("data/recordings");
    let mut both = false;
    for entry in std::fs::read_dir(&recordings).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(id) = name
            .strip_suffix(".jsonl")
            .filter(|n| n.starts_with("mcp-"))
        else {
            continue;
        };
        let events = hoopguard::core::record::read_session(&recordings, id).unwrap();
        let calls: Vec<&Value> = events
            .iter()
            .filter(|e| e.kind == "call")
            .map(|e| &e.data)
            .collect();
        let tool = calls
            .iter()
            .any(|d| d["call"].to_string().contains("get_object"));
        let aws = calls
            .iter()
            .any(|d| d["service"] == "s3" && d["operation"] == "GetObject");
        both |= tool && aws;
        // Nothing secret in any recording.
        let all = std::fs::read_to_string(recordings.join(&name)).unwrap();
        assert!(!all.contains("AKIAI44QH8DHBEXAMPLE"), "{name}");
    }
    assert!(
        both,
        "no MCP session recording holds both the tool and the AWS call"
    );
    server.stop();
}
