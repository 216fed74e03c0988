use super::*;
use crate::aws::routes::Seg;

/// An owned request, viewed as [`Parts`].
#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
    service: String,
}

impl Req {
    fn new(service: &str, method: &str, path: &str, query: &str) -> Req {
        Req {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: Vec::new(),
            body: Some(Vec::new()),
            service: service.into(),
        }
    }

    fn header(mut self, n: &str, v: &str) -> Req {
        self.headers.push((n.into(), v.as_bytes().to_vec()));
        self
    }

    fn body(mut self, b: &str) -> Req {
        self.body = Some(b.as_bytes().to_vec());
        self
    }

    fn form(self, b: &str) -> Req {
        self.header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(b)
    }

    fn classify(&self) -> Result<Classified, ClassifyError> {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        classify(&Parts {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &headers,
            body: self.body.as_deref(),
            service: &self.service,
            region: "us-east-1",
            account: Some("123456789012"),
        })
    }

    fn op(&self) -> String {
        match self.classify() {
            Ok(c) => c.operation,
            Err(e) => panic!("{self:?}: {e}"),
        }
    }

    fn refused(&self) -> bool {
        matches!(self.classify(), Err(ClassifyError::Refused(_)))
    }
}

fn actions(c: &Classified) -> Vec<(String, Vec<String>)> {
    let Call::Aws { actions, .. } = &c.call else {
        panic!()
    };
    actions
        .iter()
        .map(|a| (a.action.clone(), a.resources.clone()))
        .collect()
}

fn names(c: &Classified) -> Vec<String> {
    actions(c).into_iter().map(|(a, _)| a).collect()
}

/// A request each protocol's SDKs would send for `op` of `svc`, built from the route table.
fn legit(signing: &str, svc: &Service, protocol: Protocol, op: &routes::Op) -> Option<Req> {
    Some(match protocol {
        Protocol::Json => Req::new(signing, "POST", "/", "")
            .header("x-amz-target", &format!("{}.{}", svc.target?, op.name))
            .header("content-type", "application/x-amz-json-1.0")
            .body("{}"),
        Protocol::Query | Protocol::Ec2 => Req::new(signing, "POST", "/", "")
            .form(&format!("Action={}&Version=2020-01-01", op.name)),
        Protocol::RpcV2Cbor => Req::new(
            signing,
            "POST",
            &format!("/service/{}/operation/{}", svc.target?, op.name),
            "",
        )
        .header("smithy-protocol", "rpc-v2-cbor"),
        Protocol::RestJson | Protocol::RestXml => {
            let r = op.route.as_ref()?;
            let mut path = String::new();
            for s in &r.segs {
                path.push('/');
                path.push_str(match s {
                    Seg::Lit(l) => l,
                    Seg::Label(_) => "lbl",
                    Seg::Greedy(_) => "greedy/key",
                });
            }
            if path.is_empty() {
                path.push('/');
            }
            let mut q: Vec<String> = r
                .literals
                .iter()
                .map(|(k, v)| v.map_or(k.to_string(), |v| format!("{k}={v}")))
                .collect();
            q.extend(
                r.members
                    .iter()
                    .filter(|(_, req, _)| *req)
                    .map(|(m, _, _)| format!("{m}=1")),
            );
            let mut req = Req::new(signing, r.method, &path, &q.join("&"));
            for h in &r.headers {
                req = req.header(h, "1");
            }
            req
        }
    })
}

/// A change an attacker makes to a request, and what it is.
type Attack = (&'static str, Box<dyn Fn(Req) -> Req>);

/// The markers of the other protocols (and a second one of its own), each added to a request
/// of `protocol`.
fn foreign_markers(protocol: Protocol) -> Vec<Attack> {
    let mut out: Vec<Attack> = Vec::new();
    if protocol != Protocol::Json {
        out.push((
            "X-Amz-Target of another service",
            Box::new(|r| r.header("x-amz-target", "DynamoDB_20120810.ListTables")),
        ));
        out.push((
            "X-Amz-Target naming the service's own kind of operation",
            Box::new(|r| r.header("x-amz-target", "AmazonEC2.DescribeInstances")),
        ));
    } else {
        out.push((
            "a second X-Amz-Target",
            Box::new(|r| r.header("x-amz-target", "DynamoDB_20120810.ListTables")),
        ));
    }
    if !matches!(protocol, Protocol::Query | Protocol::Ec2) {
        out.push((
            "Action= in the query",
            Box::new(|mut r| {
                r.query = if r.query.is_empty() {
                    "Action=ListTables".into()
                } else {
                    format!("{}&Action=ListTables", r.query)
                };
                r
            }),
        ));
        out.push((
            "Action= in a form body",
            Box::new(|r| r.form("Action=ListFunctions")),
        ));
    } else {
        out.push((
            "a second Action=",
            Box::new(|mut r| {
                r.query = "Action=DescribeInstances".into();
                r
            }),
        ));
    }
    if protocol != Protocol::RpcV2Cbor {
        out.push((
            "smithy-protocol",
            Box::new(|r| r.header("smithy-protocol", "rpc-v2-cbor")),
        ));
    } else {
        out.push((
            "a second smithy-protocol",
            Box::new(|r| r.header("smithy-protocol", "rpc-v2-cbor")),
        ));
    }
    out
}

#[test]
fn every_protocol_refuses_every_foreign_marker_and_reads_its_own() {
    let (mut legit_ok, mut attacks) = (0, 0);
    for signing in routes::signing_names() {
        for svc in routes::services(signing) {
            for &protocol in &svc.protocols {
                // One operation per service and protocol keeps this quick; the recorded SDK
                // requests cover many more.
                let Some((op, req)) = svc
                    .ops
                    .iter()
                    .filter(|o| !o.deprecated)
                    .find_map(|o| Some((o, legit(signing, svc, protocol, o)?)))
                else {
                    continue;
                };
                // The legitimate twin: classified as its own operation (or, where two
                // services of one signing name share a route, refused as ambiguous — never
                // another operation).
                match req.classify() {
                    Ok(c) => {
                        assert_eq!(
                            c.operation,
                            op.name,
                            "{signing} {}: {req:?}",
                            protocol.as_str()
                        );
                        legit_ok += 1;
                    }
                    Err(ClassifyError::Refused(e)) if e.contains("matches both") => continue,
                    Err(e) => panic!("{signing} {} {}: {e}: {req:?}", protocol.as_str(), op.name),
                }
                for (what, add) in foreign_markers(protocol) {
                    let attack = add(req.clone());
                    assert!(
                        attack.refused(),
                        "{signing} {} {} with {what} was not refused: {:?} → {:?}",
                        protocol.as_str(),
                        op.name,
                        attack,
                        attack.classify()
                    );
                    attacks += 1;
                }
            }
        }
    }
    assert!(legit_ok > 400, "{legit_ok}");
    assert!(attacks > 1500, "{attacks}");
}

#[test]
fn the_reported_protocol_confusions_are_refused() {
    // Lambda is REST: a JSON target or an Action= does not rename DeleteFunction.
    let delete = Req::new("lambda", "DELETE", "/2015-03-31/functions/prod-fn", "");
    assert_eq!(delete.op(), "DeleteFunction");
    assert!(
        delete
            .clone()
            .header("x-amz-target", "AWSLambda.ListFunctions")
            .refused()
    );
    let mut q = delete.clone();
    q.query = "Action=ListFunctions".into();
    assert!(q.refused());
    // EC2 is a query service: a JSON target on a TerminateInstances body is refused.
    let terminate = Req::new("ec2", "POST", "/", "")
        .form("Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-1");
    assert_eq!(terminate.op(), "TerminateInstances");
    assert!(
        terminate
            .clone()
            .header("x-amz-target", "AmazonEC2.DescribeInstances")
            .refused()
    );
    // Action in both the body and the query, or twice in one.
    let mut both = terminate.clone();
    both.query = "Action=DescribeInstances".into();
    assert!(both.refused());
    assert!(
        Req::new("ec2", "POST", "/", "")
            .form("Action=DescribeInstances&Action=TerminateInstances")
            .refused()
    );
    // A parameter twice: which InstanceId.1 would EC2 take?
    assert!(
        Req::new("ec2", "POST", "/", "")
            .form("Action=TerminateInstances&InstanceId.1=i-a&InstanceId.1=i-b")
            .refused()
    );
    // A JSON body with a key twice.
    let dynamo = Req::new("dynamodb", "POST", "/", "")
        .header("x-amz-target", "DynamoDB_20120810.DeleteTable")
        .header("content-type", "application/x-amz-json-1.0");
    assert_eq!(
        dynamo.clone().body(r#"{"TableName":"a"}"#).op(),
        "DeleteTable"
    );
    assert!(
        dynamo
            .clone()
            .body(r#"{"TableName":"a","TableName":"b"}"#)
            .refused()
    );
    // The streams target prefix on the dynamodb signing name: DynamoDB Streams, at its own
    // endpoint.
    let streams = Req::new("dynamodb", "POST", "/", "")
        .header("x-amz-target", "DynamoDBStreams_20120810.ListStreams")
        .body("{}");
    let c = streams.classify().unwrap();
    assert_eq!(
        (c.operation.as_str(), c.endpoint.as_str()),
        ("ListStreams", "streams.dynamodb")
    );
    // Another service's prefix.
    assert!(
        Req::new("kms", "POST", "/", "")
            .header("x-amz-target", "DynamoDB_20120810.DeleteTable")
            .body("{}")
            .refused()
    );
}

#[test]
fn rest_paths_are_decoded_once_and_odd_ones_refused() {
    let get = |path: &str| Req::new("lambda", "GET", path, "");
    assert_eq!(get("/2015-03-31/functions/my-fn").op(), "GetFunction");
    // An encoded literal is the literal AWS sees.
    assert_eq!(get("/2015-03-31/%66unctions/my-fn").op(), "GetFunction");
    for odd in [
        "/2015-03-31/functions/../functions/my-fn",
        "/2015-03-31/functions/%2E%2E/x",
        "/2015-03-31//functions/my-fn",
        "/2015-03-31/functions/%FF",
    ] {
        assert!(get(odd).refused(), "{odd}");
    }
    // An unknown query parameter is not ignored.
    assert!(
        Req::new(
            "lambda",
            "GET",
            "/2015-03-31/functions/my-fn",
            "Qualifier=1&Sneaky=2"
        )
        .classify()
        .is_err()
    );
}

#[test]
fn s3_actions_follow_the_headers_and_parameters_that_change_them() {
    let s3 = |method: &str, path: &str, query: &str| Req::new("s3", method, path, query);
    let c = s3("GET", "/b/k", "versionId=3").classify().unwrap();
    assert_eq!(c.operation, "GetObject");
    assert_eq!(
        actions(&c),
        [(
            "s3:GetObjectVersion".to_string(),
            vec!["arn:aws:s3:::b/k".to_string()]
        )]
    );
    assert_eq!(
        names(&s3("DELETE", "/b/k", "versionId=3").classify().unwrap()),
        ["s3:DeleteObjectVersion"]
    );
    assert_eq!(
        names(&s3("HEAD", "/b/k", "versionId=3").classify().unwrap()),
        ["s3:GetObjectVersion"]
    );
    assert_eq!(
        names(&s3("GET", "/b/k", "tagging&versionId=1").classify().unwrap()),
        ["s3:GetObjectVersionTagging"]
    );
    assert_eq!(
        names(
            &s3("PUT", "/b/k", "")
                .header("x-amz-acl", "public-read")
                .classify()
                .unwrap()
        ),
        ["s3:PutObject", "s3:PutObjectAcl"]
    );
    assert_eq!(
        names(
            &s3("PUT", "/b/k", "")
                .header(
                    "x-amz-grant-read",
                    "uri=http://acs.amazonaws.com/groups/global/AllUsers"
                )
                .header("x-amz-tagging", "a=b")
                .header("x-amz-object-lock-mode", "GOVERNANCE")
                .header("x-amz-object-lock-legal-hold", "ON")
                .classify()
                .unwrap()
        ),
        [
            "s3:PutObject",
            "s3:PutObjectAcl",
            "s3:PutObjectTagging",
            "s3:PutObjectRetention",
            "s3:PutObjectLegalHold"
        ]
    );
    assert_eq!(
        names(
            &s3("PUT", "/b", "")
                .header("x-amz-acl", "public-read")
                .classify()
                .unwrap()
        ),
        ["s3:CreateBucket", "s3:PutBucketAcl"]
    );
    assert_eq!(
        names(
            &s3("DELETE", "/b/k", "")
                .header("x-amz-bypass-governance-retention", "true")
                .classify()
                .unwrap()
        ),
        ["s3:DeleteObject", "s3:BypassGovernanceRetention"]
    );
    // CopyObject reads the source (a version of it) and writes the destination.
    let c = s3("PUT", "/dst/k", "")
        .header("x-amz-copy-source", "/src/a%20b?versionId=7")
        .classify()
        .unwrap();
    assert_eq!(c.operation, "CopyObject");
    assert_eq!(
        actions(&c),
        [
            (
                "s3:GetObjectVersion".into(),
                vec!["arn:aws:s3:::src/a b".into()]
            ),
            ("s3:PutObject".into(), vec!["arn:aws:s3:::dst/k".into()])
        ]
    );
    // DeleteObjects: the keys of the body are its resources.
    let c = s3("POST", "/b", "delete")
        .body("<Delete><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>1</VersionId></Object></Delete>")
        .classify()
        .unwrap();
    assert_eq!(
        actions(&c),
        [
            ("s3:DeleteObject".into(), vec!["arn:aws:s3:::b/a&b".into()]),
            (
                "s3:DeleteObjectVersion".into(),
                vec!["arn:aws:s3:::b/c".into()]
            )
        ]
    );
    // Two subresources, an unknown one, an encoded bucket: refused or unknown, never guessed.
    assert!(s3("GET", "/b/k", "tagging&acl").classify().is_err());
    assert!(
        s3("DELETE", "/b", "tagging&publicAccessBlock")
            .classify()
            .is_err()
    );
    assert!(s3("GET", "/b/k", "made-up").classify().is_err());
    assert!(s3("DELETE", "/pr%6Fd-bucket/k", "").refused());
    assert!(
        s3("GET", "/b/k", "versionId=1&versionId=2")
            .classify()
            .is_err()
    );
    // Keys are decoded for the ARN; S3 keys may hold what other paths may not.
    assert_eq!(
        actions(&s3("GET", "/b/a%2Fb/../c", "").classify().unwrap())[0].1,
        ["arn:aws:s3:::b/a/b/../c"]
    );
    assert_eq!(s3("GET", "/", "").op(), "ListBuckets");
    assert_eq!(
        s3("GET", "/b", "list-type=2&prefix=x").op(),
        "ListObjectsV2"
    );
    assert_eq!(s3("GET", "/b/", "").op(), "ListObjects");
    assert_eq!(
        s3("PUT", "/b/k", "partNumber=1&uploadId=u").op(),
        "UploadPart"
    );
}

#[test]
fn resources_come_from_the_parameters_aws_reads() {
    let c = Req::new("ec2", "POST", "/", "")
        .form("Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-harmless&InstanceId.2=i-prod")
        .classify()
        .unwrap();
    assert_eq!(
        actions(&c),
        [(
            "ec2:TerminateInstances".into(),
            vec![
                "arn:aws:ec2:us-east-1:123456789012:instance/i-harmless".into(),
                "arn:aws:ec2:us-east-1:123456789012:instance/i-prod".into()
            ]
        )]
    );
    assert_eq!(c.params["InstanceId.2"], "i-prod");
    let c = Req::new(
        "lambda",
        "POST",
        "/2015-03-31/functions/prod-fn/invocations",
        "",
    )
    .classify()
    .unwrap();
    assert_eq!(
        actions(&c),
        [(
            "lambda:InvokeFunction".into(),
            vec!["arn:aws:lambda:us-east-1:123456789012:function:prod-fn".into()]
        )]
    );
    let json = |svc: &str, target: &str, body: &str| {
        Req::new(svc, "POST", "/", "")
            .header("x-amz-target", target)
            .body(body)
            .classify()
            .unwrap()
    };
    assert_eq!(
        actions(&json(
            "dynamodb",
            "DynamoDB_20120810.GetItem",
            r#"{"TableName":"orders","Key":{}}"#
        ))[0]
            .1,
        ["arn:aws:dynamodb:us-east-1:123456789012:table/orders"]
    );
    assert_eq!(
        actions(&json(
            "secretsmanager",
            "secretsmanager.GetSecretValue",
            r#"{"SecretId":"prod/db"}"#
        ))[0]
            .1,
        ["arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db"]
    );
    assert_eq!(
        actions(&json(
            "ssm",
            "AmazonSSM.GetParameter",
            r#"{"Name":"/prod/db/password"}"#
        ))[0]
            .1,
        ["arn:aws:ssm:us-east-1:123456789012:parameter/prod/db/password"]
    );
    // An IAM role's ARN holds its path, which DeleteRole does not name: unknown, never a
    // guess (`role/admin` would dodge a deny on `role/service-role/*`).
    let c = Req::new("iam", "POST", "/", "")
        .form("Action=DeleteRole&Version=2010-05-08&RoleName=admin")
        .classify()
        .unwrap();
    assert!(actions(&c)[0].1.is_empty(), "{:?}", actions(&c));
    // The access level of every action the reference knows.
    let Call::Aws { actions, .. } = &c.call else {
        panic!()
    };
    assert_eq!(
        actions[0].access.as_deref(),
        iam::access_level("iam:DeleteRole")
    );
    assert!(actions[0].access.is_some());
}

#[test]
fn what_a_second_reading_would_find_is_refused_or_unknown() {
    let json = |svc: &str, target: &str, body: &str| {
        Req::new(svc, "POST", "/", "")
            .header("x-amz-target", target)
            .body(body)
    };
    // A decoy under one name does not hide what AWS reads under another: every name counts.
    let c = json(
        "ssm",
        "AmazonSSM.SendCommand",
        r#"{"DocumentName":"AWS-RunShellScript","InstanceId":"i-sandbox","InstanceIds":["i-prod"]}"#,
    )
    .classify()
    .unwrap();
    let (_, res) = &actions(&c)[0];
    assert!(
        res.iter().any(|r| r.ends_with("instance/i-prod")),
        "{res:?}"
    );
    // Instances named through a structure hoopguard does not read: unknown, not absent.
    let c = json(
        "ssm",
        "AmazonSSM.SendCommand",
        r#"{"DocumentName":"AWS-RunShellScript","Targets":[{"Key":"tag:env","Values":["prod"]}]}"#,
    )
    .classify()
    .unwrap();
    assert!(actions(&c)[0].1.is_empty(), "{:?}", actions(&c));
    // DeleteObjects bodies read one way only.
    let del = |body: &str| Req::new("s3", "POST", "/b", "delete").body(body);
    assert!(
        del("<Delete><Object><Key>a</Key></Object></Delete>")
            .classify()
            .is_ok()
    );
    assert!(
        del(r#"<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet><Object><Key>a</Key><VersionId>v</VersionId></Object></Delete>"#)
            .classify()
            .is_ok()
    );
    for body in [
        "<Delete><Object><Key>public</Key></Object><Object\n><Key>secret</Key></Object></Delete>",
        "<Delete><Object><Key>k</Key><VersionId\n>v1</VersionId></Object></Delete>",
        "<Delete><Object><Key>sec<!-- -->ret</Key></Object></Delete>",
        "<Delete><Object><Key><![CDATA[x]]></Key></Object></Delete>",
        "<!DOCTYPE d><Delete><Object><Key>k</Key></Object></Delete>",
        "<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>",
        "<Delete><Object><Other>x</Other><Key>a</Key></Object></Delete>",
    ] {
        assert!(del(body).refused(), "{body}");
    }
    // S3 reads `+` in a path as a space.
    assert!(Req::new("s3", "DELETE", "/data/Finance+Reports/q1", "").refused());
    assert!(
        Req::new("s3", "DELETE", "/data/Finance%2BReports/q1", "")
            .classify()
            .is_ok()
    );
    // Aliases name no bucket ARN hoopguard can write.
    let c = Req::new("s3", "GET", "/myap-abc123-s3alias/secret.csv", "")
        .classify()
        .unwrap();
    assert!(actions(&c)[0].1.is_empty());
    // A copy source's query names its version and nothing else.
    for src in ["/src/k?VersionId=1", "/src/k?versionId=1&x=2", "/src/a+b"] {
        assert!(
            Req::new("s3", "PUT", "/dst/k", "")
                .header("x-amz-copy-source", src)
                .refused(),
            "{src}"
        );
    }
    // The x-id hint must name the operation matched.
    assert!(
        Req::new("s3", "GET", "/b/k", "x-id=GetObject")
            .classify()
            .is_ok()
    );
    assert!(Req::new("s3", "DELETE", "/b/k", "x-id=GetObject").refused());
    // Query parameters twice but for case.
    assert!(
        Req::new("ec2", "POST", "/", "")
            .form("Action=DescribeInstances&action=TerminateInstances")
            .refused()
    );
    // S3 Control's public access block is the account's.
    let c = Req::new(
        "s3",
        "PUT",
        "/v20180820/configuration/publicAccessBlock",
        "",
    )
    .header("x-amz-account-id", "123456789012")
    .classify()
    .unwrap();
    assert_eq!(names(&c), ["s3:PutAccountPublicAccessBlock"]);
    // S3 Express sessions (credentials outside the gateway) are not an S3 operation.
    assert!(
        Req::new("s3", "GET", "/b--use1-az4--x-s3", "session")
            .classify()
            .is_err()
    );
    // Many parameters are refused, not read slowly.
    let many: String = (0..5000).map(|i| format!("&a{i}=")).collect();
    assert!(
        Req::new("ec2", "POST", "/", "")
            .form(&format!("Action=DescribeRegions{many}"))
            .refused()
    );
}
