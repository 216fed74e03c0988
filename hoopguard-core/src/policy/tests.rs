//! Table-driven decision tests: wildcards, precedence, groups, argument conditions, default deny,
//! ARNs with wildcards in account and region.

use serde_json::json;

use super::*;

const POLICY: &str = r#"
[[rules]]
name = "describe-anything"
effect = "allow"
groups = ["dev", "ops"]
actions = ["ec2:Describe*", "ec2:Get*"]

[[rules]]
name = "no-prod-terminate"
effect = "deny"
actions = ["ec2:TerminateInstances"]
resources = ["arn:aws:ec2:*:111111111111:instance/*"]
reason = "production instances are never terminated by agents"

[[rules]]
name = "terminate-needs-manager"
effect = "approve"
groups = ["dev", "ops"]
actions = ["ec2:TerminateInstances", "ec2:StopInstances"]
approvers = ["managers"]

[[rules]]
name = "ops-stop"
effect = "allow"
groups = ["ops"]
actions = ["ec2:StopInstances"]

[[rules]]
name = "s3-team-bucket"
effect = "allow"
groups = ["dev"]
actions = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
resources = ["arn:aws:s3:::team-bucket", "arn:aws:s3:::team-bucket/*"]

[[rules]]
name = "s3-secrets-deny"
effect = "deny"
actions = ["s3:*"]
resources = ["arn:aws:s3:::team-bucket/secrets/*"]

[[rules]]
name = "eu-only-lambda"
effect = "allow"
groups = ["dev"]
actions = ["lambda:Invoke*"]
regions = ["eu-*"]

[[rules]]
name = "admins-everything"
effect = "allow"
subjects = ["root-agent"]
actions = ["*"]

[[rules]]
name = "admins-but-not-iam-users"
effect = "deny"
subjects = ["root-agent"]
actions = ["iam:CreateUser"]

[[rules]]
name = "any-account-dynamo"
effect = "allow"
groups = ["dev"]
actions = ["dynamodb:GetItem", "dynamodb:Query"]
resources = ["arn:aws:dynamodb:us-east-?:*:table/orders*"]

[[rules]]
name = "read-tmp"
effect = "allow"
groups = ["dev"]
tools = ["read_file"]
args = [{ pointer = "/path", glob = "/tmp/*" }]

[[rules]]
name = "no-etc"
effect = "deny"
tools = ["read_file", "write_file"]
args = [{ pointer = "/path", regex = "/etc/.*" }]

[[rules]]
name = "write-small"
effect = "allow"
groups = ["dev"]
tools = ["write_file"]
args = [{ pointer = "/path", glob = "/tmp/*" }, { pointer = "/size", le = 1024 }]

[[rules]]
name = "delete-approve"
effect = "approve"
tools = ["delete_*"]
approvers = ["managers"]
grant = "window"
window = "30m"

[[rules]]
name = "echo"
effect = "allow"
tools = ["echo"]

[[rules]]
name = "mode"
effect = "allow"
groups = ["ops"]
tools = ["deploy"]
args = [{ pointer = "/env", one_of = ["staging", "dev"] }, { pointer = "/force", equals = false }]

[[rules]]
name = "replicas"
effect = "allow"
groups = ["ops"]
tools = ["scale"]
args = [{ pointer = "/replicas", gt = 0, lt = 10 }]

[[rules]]
name = "docs"
effect = "allow"
uris = ["file:///docs/*"]

[[rules]]
name = "prompts"
effect = "allow"
groups = ["dev"]
prompts = ["summarize", "review-*"]
"#;

fn policy() -> Policy {
    let t: toml::Table = toml::from_str(POLICY).unwrap();
    let rules: Vec<RuleConfig> = t["rules"].clone().try_into().unwrap();
    Policy::compile(&rules).unwrap()
}

fn who(sub: &str, groups: &[&str]) -> Identity {
    Identity {
        subject: sub.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        issuer: "https://idp.test".into(),
        expires_at: std::time::SystemTime::now(),
        claims: Default::default(),
        namespace: None,
    }
}

const DEV: &[&str] = &["dev"];
const OPS: &[&str] = &["ops"];
const NONE: &[&str] = &[];
const PROD_I: &str = "arn:aws:ec2:us-east-1:111111111111:instance/i-0abc";
const TEST_I: &str = "arn:aws:ec2:us-east-1:222222222222:instance/i-0def";

use Effect::{Allow as A, Approve as P, Deny as D};

/// subject, groups, call, expected effect, expected rule.
type Case<'a> = (&'a str, &'a [&'a str], Call, Effect, Option<&'a str>);

#[test]
fn decision_table() {
    let p = policy();
    let aws = |a: &str, r: &[&str], region: Option<&str>| Call::aws(a, r, region);
    let tool = |n: &str, args: Value| Call::tool(n, args);
    #[rustfmt::skip]
    let cases: Vec<Case<'_>> = vec![
        // wildcards in actions, case-insensitive
        ("alice", DEV, aws("ec2:DescribeInstances", &[], None), A, Some("describe-anything")),
        ("alice", DEV, aws("ec2:describeinstances", &[], None), A, Some("describe-anything")),
        ("alice", DEV, aws("EC2:DescribeVpcs", &[], None), A, Some("describe-anything")),
        ("alice", DEV, aws("ec2:GetConsoleOutput", &[], None), A, Some("describe-anything")),
        ("alice", OPS, aws("ec2:DescribeInstances", &[], None), A, Some("describe-anything")),
        // groups
        ("bob", NONE, aws("ec2:DescribeInstances", &[], None), D, None),
        ("bob", &["qa"], aws("ec2:DescribeInstances", &[], None), D, None),
        ("bob", &["qa", "dev"], aws("ec2:DescribeInstances", &[], None), A, Some("describe-anything")),
        // deny wins over approve and allow; ARN wildcard in region
        ("alice", DEV, aws("ec2:TerminateInstances", &[PROD_I], Some("us-east-1")), D, Some("no-prod-terminate")),
        ("alice", OPS, aws("ec2:TerminateInstances", &["arn:aws:ec2:eu-west-1:111111111111:instance/i-1"], None), D, Some("no-prod-terminate")),
        ("alice", DEV, aws("ec2:TerminateInstances", &[TEST_I], None), P, Some("terminate-needs-manager")),
        // an unknown resource matches deny rules' resource patterns (conservative)
        ("alice", DEV, aws("ec2:TerminateInstances", &[], None), D, Some("no-prod-terminate")),
        // approve beats allow
        ("olga", OPS, aws("ec2:StopInstances", &[TEST_I], None), P, Some("terminate-needs-manager")),
        ("mallory", NONE, aws("ec2:StopInstances", &[TEST_I], None), D, None),
        ("mallory", NONE, aws("ec2:TerminateInstances", &[TEST_I], None), D, None),
        // resources
        ("alice", DEV, aws("s3:GetObject", &["arn:aws:s3:::team-bucket/report.csv"], None), A, Some("s3-team-bucket")),
        ("alice", DEV, aws("s3:ListBucket", &["arn:aws:s3:::team-bucket"], None), A, Some("s3-team-bucket")),
        ("alice", DEV, aws("s3:GetObject", &["arn:aws:s3:::other-bucket/report.csv"], None), D, None),
        ("alice", DEV, aws("s3:GetObject", &["arn:aws:s3:::team-bucket-2/x"], None), D, None),
        ("alice", DEV, aws("s3:GetObject", &["arn:aws:s3:::team-bucket/secrets/key"], None), D, Some("s3-secrets-deny")),
        ("alice", DEV, aws("s3:PutObject", &["arn:aws:s3:::team-bucket/secrets/key"], None), D, Some("s3-secrets-deny")),
        ("alice", DEV, aws("s3:DeleteObject", &["arn:aws:s3:::team-bucket/a"], None), D, None),
        // an unknown resource does not satisfy an allow rule that names resources
        ("alice", DEV, aws("s3:GetObject", &[], None), D, Some("s3-secrets-deny")),
        // every resource must be allowed
        ("alice", DEV, aws("s3:GetObject", &["arn:aws:s3:::team-bucket/a", "arn:aws:s3:::other/b"], None), D, None),
        ("alice", DEV, aws("s3:GetObject", &["arn:aws:s3:::team-bucket/a", "arn:aws:s3:::team-bucket/b"], None), A, Some("s3-team-bucket")),
        // regions
        ("alice", DEV, aws("lambda:InvokeFunction", &[], Some("eu-west-1")), A, Some("eu-only-lambda")),
        ("alice", DEV, aws("lambda:InvokeFunction", &[], Some("us-east-1")), D, None),
        ("alice", DEV, aws("lambda:InvokeFunction", &[], None), D, None),
        // subjects, and `*`
        ("root-agent", NONE, aws("iam:ListUsers", &[], None), A, Some("admins-everything")),
        ("root-agent", NONE, aws("sts:GetCallerIdentity", &[], None), A, Some("admins-everything")),
        ("root-agent", NONE, aws("iam:CreateUser", &[], None), D, Some("admins-but-not-iam-users")),
        ("root-agent", NONE, aws("ec2:TerminateInstances", &[PROD_I], None), D, Some("no-prod-terminate")),
        ("root-agent-2", NONE, aws("iam:ListUsers", &[], None), D, None),
        // wildcards in account and region of ARNs
        ("alice", DEV, aws("dynamodb:GetItem", &["arn:aws:dynamodb:us-east-1:333333333333:table/orders"], None), A, Some("any-account-dynamo")),
        ("alice", DEV, aws("dynamodb:Query", &["arn:aws:dynamodb:us-east-2:444444444444:table/orders-2026"], None), A, Some("any-account-dynamo")),
        ("alice", DEV, aws("dynamodb:GetItem", &["arn:aws:dynamodb:us-west-2:333333333333:table/orders"], None), D, None),
        ("alice", DEV, aws("dynamodb:GetItem", &["arn:aws:dynamodb:us-east-1:333333333333:table/users"], None), D, None),
        ("alice", DEV, aws("dynamodb:PutItem", &["arn:aws:dynamodb:us-east-1:333333333333:table/orders"], None), D, None),
        // several actions in one call (CopyObject: read the source, write the target)
        ("alice", DEV, Call::Aws { actions: vec![
            AwsAction { action: "s3:GetObject".into(), resources: vec!["arn:aws:s3:::team-bucket/a".into()], access: None },
            AwsAction { action: "s3:PutObject".into(), resources: vec!["arn:aws:s3:::team-bucket/b".into()], access: None },
        ], region: None }, A, Some("s3-team-bucket")),
        ("alice", DEV, Call::Aws { actions: vec![
            AwsAction { action: "s3:GetObject".into(), resources: vec!["arn:aws:s3:::team-bucket/secrets/a".into()], access: None },
            AwsAction { action: "s3:PutObject".into(), resources: vec!["arn:aws:s3:::team-bucket/b".into()], access: None },
        ], region: None }, D, Some("s3-secrets-deny")),
        // MCP tools: argument conditions
        ("alice", DEV, tool("read_file", json!({"path": "/tmp/notes.txt"})), A, Some("read-tmp")),
        ("alice", DEV, tool("read_file", json!({"path": "/home/alice/notes.txt"})), D, None),
        ("alice", DEV, tool("read_file", json!({"path": "/etc/passwd"})), D, Some("no-etc")),
        ("alice", DEV, tool("read_file", json!({})), D, None),
        ("alice", DEV, tool("read_file", json!({"path": 42})), D, None),
        ("bob", OPS, tool("read_file", json!({"path": "/tmp/notes.txt"})), D, None),
        ("alice", DEV, tool("write_file", json!({"path": "/tmp/a", "size": 100})), A, Some("write-small")),
        ("alice", DEV, tool("write_file", json!({"path": "/tmp/a", "size": 1024})), A, Some("write-small")),
        ("alice", DEV, tool("write_file", json!({"path": "/tmp/a", "size": 1025})), D, None),
        ("alice", DEV, tool("write_file", json!({"path": "/tmp/a"})), D, None),
        ("alice", DEV, tool("write_file", json!({"path": "/etc/hosts", "size": 1})), D, Some("no-etc")),
        ("alice", DEV, tool("delete_file", json!({"path": "/tmp/a"})), P, Some("delete-approve")),
        ("nobody", NONE, tool("delete_bucket", json!({})), P, Some("delete-approve")),
        ("nobody", NONE, tool("echo", json!({"text": "hi"})), A, Some("echo")),
        ("nobody", NONE, tool("echo2", json!({"text": "hi"})), D, None),
        ("nobody", NONE, tool("Echo", json!({})), D, None),
        ("olga", OPS, tool("deploy", json!({"env": "staging", "force": false})), A, Some("mode")),
        ("olga", OPS, tool("deploy", json!({"env": "prod", "force": false})), D, None),
        ("olga", OPS, tool("deploy", json!({"env": "dev", "force": true})), D, None),
        ("olga", OPS, tool("scale", json!({"replicas": 3})), A, Some("replicas")),
        ("olga", OPS, tool("scale", json!({"replicas": 10})), D, None),
        ("olga", OPS, tool("scale", json!({"replicas": 0})), D, None),
        ("olga", OPS, tool("scale", json!({"replicas": "3"})), D, None),
        ("olga", OPS, tool("echo", json!("not an object")), D, None),
        // MCP resources and prompts
        ("nobody", NONE, Call::McpResource { uri: "file:///docs/readme.md".into() }, A, Some("docs")),
        ("nobody", NONE, Call::McpResource { uri: "file:///etc/passwd".into() }, D, None),
        ("alice", DEV, Call::McpPrompt { name: "summarize".into() }, A, Some("prompts")),
        ("alice", DEV, Call::McpPrompt { name: "review-code".into() }, A, Some("prompts")),
        ("alice", DEV, Call::McpPrompt { name: "jailbreak".into() }, D, None),
        ("olga", OPS, Call::McpPrompt { name: "summarize".into() }, D, None),
        // an AWS rule never matches an MCP call and vice versa
        ("root-agent", NONE, tool("anything", json!({})), D, None),
    ];
    assert!(cases.len() >= 50, "{} cases", cases.len());
    for (i, (sub, groups, call, effect, rule)) in cases.iter().enumerate() {
        let d = p.decide(&who(sub, groups), call);
        assert_eq!(
            (d.effect, d.rule.as_deref()),
            (*effect, *rule),
            "case {i}: {sub} {groups:?} {} → {}",
            call.summary(),
            d.reason
        );
        assert!(!d.reason.is_empty());
        assert_eq!(
            d.approval.is_some(),
            d.effect == Effect::Approve,
            "case {i}"
        );
    }
}

#[test]
fn reasons_name_the_rule_or_say_nothing_matched() {
    let p = policy();
    let d = p.decide(
        &who("alice", DEV),
        &Call::aws("ec2:TerminateInstances", &[PROD_I], None),
    );
    assert_eq!(
        d.reason,
        "production instances are never terminated by agents"
    );
    let d = p.decide(&who("alice", DEV), &Call::aws("iam:CreateUser", &[], None));
    assert!(
        d.reason
            .contains("no rule allows `iam:CreateUser` for `alice`"),
        "{}",
        d.reason
    );
    let d = p.decide(
        &who("alice", DEV),
        &Call::aws("ec2:TerminateInstances", &[TEST_I], None),
    );
    assert!(
        d.reason.contains("requires approval by managers"),
        "{}",
        d.reason
    );
    let spec = d.approval.unwrap();
    assert_eq!((spec.grant, spec.quorum), (GrantKind::Once, 1));
    let d = p.decide(&who("alice", DEV), &Call::tool("delete_x", json!({})));
    let spec = d.approval.unwrap();
    assert_eq!(spec.grant, GrantKind::Window);
    assert_eq!(spec.window, Some(Duration::from_secs(1800)));
}

#[test]
fn explain_says_why_rules_did_not_match() {
    let p = policy();
    let e = p.explain(
        &who("alice", DEV),
        &Call::aws("ec2:TerminateInstances", &[TEST_I], None),
        None,
    );
    assert_eq!(e.decision.effect, Effect::Approve);
    let by_name = |n: &str| e.rules.iter().find(|r| r.rule == n).unwrap().clone();
    assert!(by_name("terminate-needs-manager").mismatch.is_none());
    assert!(
        by_name("no-prod-terminate")
            .mismatch
            .as_ref()
            .unwrap()
            .contains("resource")
    );
    assert!(
        by_name("describe-anything")
            .mismatch
            .as_ref()
            .unwrap()
            .contains("action")
    );
    assert!(
        by_name("ops-stop")
            .mismatch
            .as_ref()
            .unwrap()
            .contains("groups")
    );
    assert!(
        by_name("admins-everything")
            .mismatch
            .as_ref()
            .unwrap()
            .contains("subject")
    );
    assert!(
        e.rules.iter().all(|r| r.rule != "echo"),
        "MCP rules are not listed for AWS calls"
    );

    let e = p.explain(
        &who("alice", DEV),
        &Call::tool("write_file", json!({"path": "/tmp/a", "size": 5000})),
        None,
    );
    let w = e.rules.iter().find(|r| r.rule == "write-small").unwrap();
    assert!(
        w.mismatch
            .as_ref()
            .unwrap()
            .contains("`/size` = 5000 fails le 1024"),
        "{w:?}"
    );
}

fn compile_err(toml_text: &str) -> RuleError {
    let t: toml::Table = toml::from_str(toml_text).unwrap();
    let rules: Vec<RuleConfig> = t["rules"].clone().try_into().unwrap();
    Policy::compile(&rules).unwrap_err()
}

#[test]
fn bad_rules_are_errors_naming_the_rule() {
    let e = compile_err(
        "[[rules]]\nname = \"x\"\neffect = \"allow\"\nactions = [\"s3:Get*\"]\nresources = [\"bucket/*\"]\n",
    );
    assert_eq!((e.index, e.name.as_str(), e.key), (0, "x", "resources"));
    let e = compile_err("[[rules]]\nname = \"x\"\neffect = \"allow\"\nactions = [\"GetObject\"]\n");
    assert_eq!(e.key, "actions");
    let e = compile_err("[[rules]]\nname = \"x\"\neffect = \"allow\"\n");
    assert_eq!(e.key, "actions");
    let e = compile_err(
        "[[rules]]\nname = \"x\"\neffect = \"allow\"\nactions = [\"s3:*\"]\ntools = [\"t\"]\n",
    );
    assert!(e.message.contains("not both"));
    let e = compile_err("[[rules]]\nname = \"x\"\neffect = \"approve\"\nactions = [\"s3:*\"]\n");
    assert_eq!(e.key, "approvers");
    let e = compile_err(
        "[[rules]]\nname = \"x\"\neffect = \"approve\"\napprovers = [\"m\"]\nactions = [\"s3:*\"]\ngrant = \"window\"\n",
    );
    assert_eq!(e.key, "window");
    let e = compile_err(
        "[[rules]]\nname = \"x\"\neffect = \"approve\"\napprovers = [\"m\"]\nactions = [\"s3:*\"]\nhold = \"5m\"\n",
    );
    assert_eq!(e.key, "hold");
    let e = compile_err(
        "[[rules]]\nname = \"x\"\neffect = \"allow\"\ntools = [\"t\"]\nargs = [{ pointer = \"/a\", regex = \"(\" }]\n",
    );
    assert_eq!(e.key, "args");
    let e = compile_err(
        "[[rules]]\nname = \"x\"\neffect = \"allow\"\ntools = [\"t\"]\nargs = [{ pointer = \"/a\", regex = \"\\\\w{1000}{1000}\" }]\n",
    );
    assert!(
        e.message.contains("size limit") || e.message.contains("too big"),
        "{e}"
    );
    let e = compile_err(
        "[[rules]]\nname = \"x\"\neffect = \"allow\"\ntools = [\"t\"]\nargs = [{ pointer = \"a\", equals = 1 }]\n",
    );
    assert_eq!(e.key, "args");
    let e = compile_err(
        "[[rules]]\nname = \"x\"\neffect = \"allow\"\ntools = [\"t\"]\nargs = [{ pointer = \"/a\" }]\n",
    );
    assert!(e.message.contains("says nothing"));
    let e = compile_err(
        "[[rules]]\nname = \"x\"\neffect = \"allow\"\ntools = [\"t\"]\n[[rules]]\nname = \"x\"\neffect = \"deny\"\ntools = [\"u\"]\n",
    );
    assert_eq!((e.index, e.key), (1, "name"));
    let t: toml::Table =
        toml::from_str("[[rules]]\nname = \"x\"\neffect = \"permit\"\ntools = [\"t\"]\n").unwrap();
    let r: Result<Vec<RuleConfig>, _> = t["rules"].clone().try_into();
    assert!(
        r.unwrap_err()
            .to_string()
            .contains("unknown variant `permit`")
    );
}

#[test]
fn empty_policy_denies_everything() {
    let p = Policy::compile(&[]).unwrap();
    assert!(p.is_empty());
    assert_eq!(
        p.decide(&who("a", DEV), &Call::aws("s3:ListBuckets", &[], None))
            .effect,
        Effect::Deny
    );
    assert_eq!(
        p.decide(&who("a", DEV), &Call::tool("echo", json!({})))
            .effect,
        Effect::Deny
    );
}

proptest::proptest! {
    /// The index never changes a decision: indexed and full-scan evaluation agree on any call.
    #[test]
    fn the_index_agrees_with_a_full_scan(
        svc in proptest::sample::select(vec!["ec2", "EC2", "s3", "lambda", "dynamodb", "iam", "sts", "kms"]),
        op in proptest::sample::select(vec!["DescribeInstances", "TerminateInstances", "StopInstances", "GetObject",
            "PutObject", "ListBucket", "InvokeFunction", "GetItem", "Query", "CreateUser", "getconsoleoutput", "Decrypt"]),
        resource in proptest::option::of(proptest::sample::select(vec![PROD_I, TEST_I,
            "arn:aws:s3:::team-bucket/a", "arn:aws:s3:::team-bucket/secrets/x", "arn:aws:s3:::other/x",
            "arn:aws:dynamodb:us-east-1:3:table/orders", "arn:aws:dynamodb:eu-west-1:3:table/orders"])),
        region in proptest::option::of(proptest::sample::select(vec!["us-east-1", "eu-west-1"])),
        sub in proptest::sample::select(vec!["alice", "root-agent", "olga", "nobody"]),
        groups in proptest::sample::subsequence(vec!["dev", "ops", "qa"], 0..3),
        tool in proptest::sample::select(vec!["read_file", "write_file", "delete_x", "echo", "deploy", "scale", "other"]),
        path in proptest::sample::select(vec!["/tmp/a", "/etc/passwd", "/home/x"]),
        n in 0i64..2000,
    ) {
        let p = policy();
        let w = who(sub, &groups);
        let resources: Vec<&str> = resource.into_iter().collect();
        let aws = Call::aws(&format!("{svc}:{op}"), &resources, region);
        proptest::prop_assert_eq!(p.decide(&w, &aws), p.decide_by_scan(&w, &aws));
        let args = json!({"path": path, "size": n, "replicas": n % 12, "env": "staging", "force": n % 2 == 0});
        let mcp = Call::tool(tool, args);
        proptest::prop_assert_eq!(p.decide(&w, &mcp), p.decide_by_scan(&w, &mcp));
    }
}

#[test]
fn groups_and_subjects_of_several_issuers_never_collide() {
    use crate::identity::Namespace;
    let of = |issuer: &str, primary: bool, sub: &str, groups: &[&str]| {
        let mut w = who(sub, groups);
        w.namespace = Some(Namespace {
            name: issuer.into(),
            primary,
        });
        w
    };
    let rules = r#"
        [[rules]]
        name = "managers"
        effect = "allow"
        groups = ["managers"]
        actions = ["ec2:TerminateInstances"]

        [[rules]]
        name = "partner-admins"
        effect = "allow"
        groups = ["partner:admins"]
        actions = ["ec2:RebootInstances"]

        [[rules]]
        name = "alice-only"
        effect = "allow"
        subjects = ["alice"]
        actions = ["s3:ListAllMyBuckets"]
    "#;
    let t: toml::Table = toml::from_str(rules).unwrap();
    let p = Policy::compile(&t["rules"].clone().try_into::<Vec<RuleConfig>>().unwrap()).unwrap();
    let terminate = Call::aws("ec2:TerminateInstances", &[], None);
    let reboot = Call::aws("ec2:RebootInstances", &[], None);
    let list = Call::aws("s3:ListAllMyBuckets", &[], None);
    let corp = of("corp", true, "alice", &["managers"]);
    let partner = of("partner", false, "alice", &["managers", "admins"]);
    // A bare group is the primary issuer's: the partner's `managers` is not it.
    assert_eq!(p.decide(&corp, &terminate).effect, Effect::Allow);
    assert_eq!(p.decide(&partner, &terminate).effect, Effect::Deny);
    // `partner:admins` is the partner's group only.
    assert_eq!(p.decide(&partner, &reboot).effect, Effect::Allow);
    assert_eq!(
        p.decide(&of("corp", true, "bob", &["admins"]), &reboot)
            .effect,
        Effect::Deny
    );
    // The same goes for subjects.
    assert_eq!(p.decide(&corp, &list).effect, Effect::Allow);
    assert_eq!(p.decide(&partner, &list).effect, Effect::Deny);
    assert_eq!(partner.principal(), "partner:alice");
}

fn limits(toml_text: &str) -> Result<Policy, RuleError> {
    let t: toml::Table = toml::from_str(toml_text).unwrap();
    let limits: Vec<LimitConfig> = t["limits"].clone().try_into().unwrap();
    Policy::compile_with_limits(&[], &limits)
}

#[test]
fn limits_count_what_they_match_as_a_deny_rule_would() {
    let p = limits(
        r#"
        [[limits]]
        name = "writes-per-day"
        access = ["Write"]
        calls = 100
        per = "1d"

        [[limits]]
        name = "agents-s3-deletes"
        groups = ["agents"]
        actions = ["s3:DeleteObject*"]
        resources = ["arn:aws:s3:::prod-*"]
        calls = 5
        per = "1m"
        reason = "slow down"

        [[limits]]
        name = "big-queries"
        tools = ["query"]
        args = [{ pointer = "/rows", gt = 1000 }]
        calls = 1
        per = "10s"
        "#,
    )
    .unwrap();
    let agent = who("agent-7", &["agents"]);
    let dev = who("dev", &["dev"]);
    let names = |p: &Policy, w: &Identity, c: &Call| -> Vec<String> {
        p.limits_for(w, c, None)
            .into_iter()
            .map(|k| k.limit)
            .collect()
    };
    let mut delete = Call::aws("s3:DeleteObject", &["arn:aws:s3:::prod-data/k"], None);
    if let Call::Aws { actions, .. } = &mut delete {
        actions[0].access = Some("Write".into());
    }
    assert_eq!(
        names(&p, &agent, &delete),
        ["writes-per-day", "agents-s3-deletes"]
    );
    // Another group: only the limit for everyone.
    assert_eq!(names(&p, &dev, &delete), ["writes-per-day"]);
    // Another bucket: not the S3 limit.
    let mut other = Call::aws("s3:DeleteObject", &["arn:aws:s3:::scratch/k"], None);
    if let Call::Aws { actions, .. } = &mut other {
        actions[0].access = Some("Write".into());
    }
    assert_eq!(names(&p, &agent, &other), ["writes-per-day"]);
    // A resource that cannot be derived counts (what cannot be read is never exempt), and so
    // does an action of unknown access level.
    let unknown = Call::aws("s3:DeleteObject", &[], None);
    assert_eq!(
        names(&p, &agent, &unknown),
        ["writes-per-day", "agents-s3-deletes"]
    );
    // A read counts against none.
    let mut read = Call::aws("s3:GetObject", &["arn:aws:s3:::prod-data/k"], None);
    if let Call::Aws { actions, .. } = &mut read {
        actions[0].access = Some("Read".into());
    }
    assert!(names(&p, &agent, &read).is_empty());
    // MCP limits with argument conditions.
    assert_eq!(
        names(&p, &dev, &Call::tool("query", json!({"rows": 5000}))),
        ["big-queries"]
    );
    assert!(names(&p, &dev, &Call::tool("query", json!({"rows": 10}))).is_empty());

    let keys = p.limits_for(&agent, &delete, None);
    assert_eq!(keys[1].per_ms, 60_000);
    assert_eq!(keys[1].calls, 5);
    assert_eq!(keys[1].reason, "slow down");
    assert_eq!(keys[1].scope, agent.principal());
    assert!(
        keys[0].reason.contains("at most 100 calls per 1day"),
        "{}",
        keys[0].reason
    );
    // Explain names them.
    let e = p.explain(&agent, &delete, None);
    assert_eq!(e.limits.len(), 2);
}

#[test]
fn limits_count_per_connection_as_configured() {
    let p = limits(
        r#"
        [[limits]]
        name = "prod-per-caller"
        actions = ["s3:*"]
        connections = ["prod-*"]
        calls = 10
        per = "1m"

        [[limits]]
        name = "prod-upstream"
        actions = ["s3:*"]
        connections = ["prod-*"]
        by = ["connection"]
        calls = 100
        per = "1s"

        [[limits]]
        name = "each-caller-each-connection"
        tools = ["*"]
        by = ["caller", "connection"]
        calls = 3
        per = "1m"

        [[limits]]
        name = "everyone"
        tools = ["*"]
        by = []
        calls = 1000
        per = "1m"
        "#,
    )
    .unwrap();
    let alice = who("alice", DEV);
    let bob = who("bob", DEV);
    let list = Call::aws("s3:ListBucket", &["arn:aws:s3:::b"], None);
    let keys = |w: &Identity, c: &Call, conn: Option<&str>| -> Vec<(String, String)> {
        p.limits_for(w, c, conn)
            .into_iter()
            .map(|k| (k.limit, k.scope))
            .collect()
    };
    // Through a matching connection: the caller's own count, and one for the connection that
    // alice and bob share.
    let a = keys(&alice, &list, Some("prod-eu"));
    let b = keys(&bob, &list, Some("prod-eu"));
    assert_eq!(a[0], ("prod-per-caller".into(), alice.principal()));
    assert_eq!(a[1], ("prod-upstream".into(), "connection=prod-eu".into()));
    assert_eq!(a[1], b[1], "one count for everyone through the connection");
    assert_ne!(a[0], b[0]);
    // Another connection: neither counts; another prod connection: its own upstream count.
    assert!(keys(&alice, &list, Some("staging")).is_empty());
    assert_ne!(keys(&alice, &list, Some("prod-us"))[1], a[1]);
    // An unknown connection counts against every limit that could match (never exempt).
    assert_eq!(keys(&alice, &list, None).len(), 2);
    // Caller and connection together; `[]` one count for every call.
    let t = Call::tool("echo", json!({}));
    let k = keys(&alice, &t, Some("everything"));
    assert_eq!(
        k[0].1,
        format!("connection=everything\ncaller={}", alice.principal())
    );
    assert_ne!(k[0], keys(&alice, &t, Some("other"))[0]);
    assert_ne!(k[0], keys(&bob, &t, Some("everything"))[0]);
    assert_eq!(k[1], ("everyone".into(), "*".into()));
    assert_eq!(k[1], keys(&bob, &t, Some("other"))[1]);
    // The default reason says whose count it is.
    let r = p.limits_for(&alice, &list, Some("prod-eu"));
    assert!(
        r[1].reason.ends_with("through `prod-eu`"),
        "{}",
        r[1].reason
    );
    // `by` names each part at most once.
    let e = limits("[[limits]]\nname = \"l\"\ntools = [\"*\"]\nby = [\"caller\", \"caller\"]\ncalls = 1\nper = \"1m\"\n")
        .unwrap_err();
    assert_eq!(e.key, "by");
}

#[test]
fn bad_limits_are_errors_naming_the_limit() {
    let base = "[[limits]]\nname = \"l\"\nactions = [\"s3:*\"]\n";
    let e = limits(&format!("{base}calls = 0\nper = \"1m\"\n")).unwrap_err();
    assert_eq!((e.list, e.index, e.key), ("limits", 0, "calls"));
    assert!(e.to_string().starts_with("limits[0] (`l`).calls:"), "{e}");
    let e = limits(&format!("{base}calls = 5\nper = \"0s\"\n")).unwrap_err();
    assert_eq!(e.key, "per");
    let e = limits(&format!("{base}calls = 5\nper = \"400d\"\n")).unwrap_err();
    assert_eq!(e.key, "per");
    let e = limits("[[limits]]\nname = \"l\"\ncalls = 5\nper = \"1m\"\n").unwrap_err();
    assert_eq!(e.key, "actions", "a limit that matches nothing");
    let e = limits(&format!(
        "{base}calls = 5\nper = \"1m\"\n[[limits]]\nname = \"l\"\ntools = [\"t\"]\ncalls = 1\nper = \"1s\"\n"
    ))
    .unwrap_err();
    assert_eq!((e.index, e.key), (1, "name"));
    let t: toml::Table = toml::from_str(&format!(
        "{base}calls = 5\nper = \"1m\"\neffect = \"deny\"\n"
    ))
    .unwrap();
    assert!(
        t["limits"].clone().try_into::<Vec<LimitConfig>>().is_err(),
        "unknown keys are refused"
    );
}
