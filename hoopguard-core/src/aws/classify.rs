//! What an AWS call does: service, operation, IAM action and, where derivable, resource ARNs.
//!
//! Covered so far: the JSON protocols (`X-Amz-Target`), the query and EC2 protocols (`Action=` in
//! the form body or the query string), and the common S3 operations (path-style) by method and
//! path. Everything else — the rest-json and rest-xml services, which need the route table built
//! from the botocore models — is not classified, and an unclassified call is refused.

use super::routes;
use crate::policy::{AwsAction, Call};

/// A classified call.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The operation, such as `TerminateInstances`.
    pub operation: String,
    /// The call for the policy: IAM action(s) and resources.
    pub call: Call,
}

/// The parts of a request classification looks at.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Raw path.
    pub path: &'a str,
    /// Raw query.
    pub query: &'a str,
    /// `X-Amz-Target`, if any.
    pub target: Option<&'a str>,
    /// `x-amz-copy-source`, if any (S3 CopyObject).
    pub copy_source: Option<&'a str>,
    /// The body (form-encoded for the query protocols).
    pub body: &'a [u8],
    /// The signing service (credential scope).
    pub service: &'a str,
    /// The signing region (credential scope).
    pub region: &'a str,
}

/// The IAM prefix of a signing service name, where they differ.
fn iam_prefix(service: &str) -> &str {
    match service {
        "monitoring" => "cloudwatch",
        "email" => "ses",
        "execute-api" => "execute-api",
        s => s,
    }
}

fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(v) => {
                    out.push(v);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Classifies a call, or says why it cannot be.
pub fn classify(p: &Parts<'_>) -> Result<Classified, String> {
    let region = Some(p.region.to_string());
    let one = |op: String, resources: Vec<String>| Classified {
        call: Call::Aws {
            actions: vec![AwsAction {
                action: format!("{}:{op}", iam_prefix(p.service)),
                resources,
            }],
            region: region.clone(),
        },
        operation: op,
    };
    // Every operation named by the request must be one of the service's.
    let known = |op: String, how: &str| {
        if routes::has_operation(p.service, &op) {
            Ok(one(op, Vec::new()))
        } else {
            Err(format!(
                "{how} names `{op}`, which is not an operation of `{}`",
                p.service
            ))
        }
    };
    if p.service == "s3" {
        return s3(p);
    }
    if !routes::knows_service(p.service) {
        return Err(format!(
            "`{}` is not a service in hoopguard's route table",
            p.service
        ));
    }
    if let Some(target) = p.target {
        let op = target.rsplit('.').next().unwrap_or("");
        if op.is_empty() || !op.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("X-Amz-Target `{target}` names no operation"));
        }
        return known(op.to_string(), "X-Amz-Target");
    }
    // RPC v2 CBOR: `POST /service/{ServiceName}/operation/{Operation}`.
    if let Some(rest) = p.path.strip_prefix("/service/") {
        if let Some((_, op)) = rest.split_once("/operation/") {
            return known(op.to_string(), "the RPC v2 path");
        }
    }
    let form = std::str::from_utf8(p.body).unwrap_or("");
    if let Some(op) = form_value(form, "Action").or_else(|| form_value(p.query, "Action")) {
        if op.is_empty() || !op.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("`Action={op}` is not an operation name"));
        }
        return known(op, "Action=");
    }
    match routes::rest_operation(p.service, p.method, p.path, p.query) {
        Some(op) => Ok(one(op.to_string(), Vec::new())),
        None => Err(format!(
            "{} {} matches no operation of `{}` in hoopguard's route table",
            p.method, p.path, p.service
        )),
    }
}

/// The common S3 operations, path-style (`/bucket/key`).
fn s3(p: &Parts<'_>) -> Result<Classified, String> {
    let path = p.path.trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((b, k)) => (b, Some(k)),
        None => (path, None),
    };
    let has = |name: &str| {
        p.query
            .split('&')
            .any(|q| q == name || q.starts_with(&format!("{name}=")))
    };
    // Only these parameters leave an object read or write what it is; any other names a
    // subresource (`?acl`, `?tagging`, …) that is another operation.
    let plain = |allowed: &[&str]| {
        p.query.split('&').all(|kv| {
            let k = kv.split('=').next().unwrap_or("");
            k.is_empty() || k == "x-id" || allowed.contains(&k) || k.starts_with("response-")
        })
    };
    let (op, action): (&str, &str) =
        match (p.method, bucket.is_empty(), key.filter(|k| !k.is_empty())) {
            ("GET", true, _) => ("ListBuckets", "ListAllMyBuckets"),
            ("GET", false, None) if has("list-type") => ("ListObjectsV2", "ListBucket"),
            ("GET", false, None) if has("location") => ("GetBucketLocation", "GetBucketLocation"),
            ("GET", false, None) if has("policy") => ("GetBucketPolicy", "GetBucketPolicy"),
            ("GET", false, None) if p.query.is_empty() => ("ListObjects", "ListBucket"),
            ("HEAD", false, None) => ("HeadBucket", "ListBucket"),
            ("PUT", false, None) if p.query.is_empty() => ("CreateBucket", "CreateBucket"),
            ("PUT", false, None) if has("policy") => ("PutBucketPolicy", "PutBucketPolicy"),
            ("DELETE", false, None) if p.query.is_empty() => ("DeleteBucket", "DeleteBucket"),
            ("POST", false, None) if has("delete") => ("DeleteObjects", "DeleteObject"),
            ("GET", false, None) if has("uploads") => {
                ("ListMultipartUploads", "ListBucketMultipartUploads")
            }
            ("GET", false, Some(_)) if plain(&["versionId", "partNumber"]) => {
                ("GetObject", "GetObject")
            }
            ("GET", false, Some(_)) if has("uploadId") => ("ListParts", "ListMultipartUploadParts"),
            ("GET", false, Some(_)) if has("tagging") => ("GetObjectTagging", "GetObjectTagging"),
            ("GET", false, Some(_)) if has("acl") => ("GetObjectAcl", "GetObjectAcl"),
            ("HEAD", false, Some(_)) if plain(&["versionId", "partNumber"]) => {
                ("HeadObject", "GetObject")
            }
            ("POST", false, Some(_)) if has("uploads") => ("CreateMultipartUpload", "PutObject"),
            ("POST", false, Some(_)) if has("uploadId") => ("CompleteMultipartUpload", "PutObject"),
            ("PUT", false, Some(_)) if has("uploadId") && p.copy_source.is_some() => {
                ("UploadPartCopy", "PutObject")
            }
            ("PUT", false, Some(_)) if has("uploadId") && has("partNumber") => {
                ("UploadPart", "PutObject")
            }
            ("PUT", false, Some(_)) if has("tagging") => ("PutObjectTagging", "PutObjectTagging"),
            ("PUT", false, Some(_)) if plain(&[]) && p.copy_source.is_some() => {
                ("CopyObject", "PutObject")
            }
            ("PUT", false, Some(_)) if plain(&[]) => ("PutObject", "PutObject"),
            ("DELETE", false, Some(_)) if has("uploadId") => {
                ("AbortMultipartUpload", "AbortMultipartUpload")
            }
            ("DELETE", false, Some(_)) if plain(&["versionId"]) => ("DeleteObject", "DeleteObject"),
            _ => {
                return Err(format!(
                    "S3 {} {} is not an operation this version of hoopguard classifies",
                    p.method, p.path
                ));
            }
        };
    let arn = |b: &str, k: Option<&str>| match k {
        Some(k) => format!("arn:aws:s3:::{b}/{}", percent_decode(k)),
        None => format!("arn:aws:s3:::{b}"),
    };
    let mut actions = vec![AwsAction {
        action: format!("s3:{action}"),
        resources: if bucket.is_empty() {
            Vec::new()
        } else {
            vec![arn(bucket, key)]
        },
    }];
    if let Some(src) = p.copy_source {
        // CopyObject reads the source too.
        let src = percent_decode(src.trim_start_matches('/'));
        let (b, k) = src.split_once('/').unwrap_or((&src, ""));
        let k = k.split('?').next().unwrap_or(k);
        actions.insert(
            0,
            AwsAction {
                action: "s3:GetObject".into(),
                resources: vec![format!("arn:aws:s3:::{b}/{k}")],
            },
        );
    }
    Ok(Classified {
        operation: op.to_string(),
        call: Call::Aws {
            actions,
            region: Some(p.region.to_string()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(
        method: &'a str,
        path: &'a str,
        query: &'a str,
        body: &'a [u8],
        service: &'a str,
    ) -> Parts<'a> {
        Parts {
            method,
            path,
            query,
            target: None,
            copy_source: None,
            body,
            service,
            region: "us-east-1",
        }
    }

    fn action(c: &Classified) -> (String, Vec<String>) {
        let Call::Aws { actions, .. } = &c.call else {
            panic!()
        };
        (
            actions.last().unwrap().action.clone(),
            actions.last().unwrap().resources.clone(),
        )
    }

    #[test]
    fn s3_multipart_and_subresources_are_their_own_operations() {
        for (method, path, query, op, act) in [
            (
                "POST",
                "/b/k",
                "uploads",
                "CreateMultipartUpload",
                "s3:PutObject",
            ),
            (
                "PUT",
                "/b/k",
                "partNumber=1&uploadId=x",
                "UploadPart",
                "s3:PutObject",
            ),
            (
                "POST",
                "/b/k",
                "uploadId=x",
                "CompleteMultipartUpload",
                "s3:PutObject",
            ),
            (
                "DELETE",
                "/b/k",
                "uploadId=x",
                "AbortMultipartUpload",
                "s3:AbortMultipartUpload",
            ),
            (
                "GET",
                "/b/k",
                "uploadId=x",
                "ListParts",
                "s3:ListMultipartUploadParts",
            ),
            (
                "GET",
                "/b",
                "uploads",
                "ListMultipartUploads",
                "s3:ListBucketMultipartUploads",
            ),
            (
                "GET",
                "/b/k",
                "versionId=3&response-content-type=x",
                "GetObject",
                "s3:GetObject",
            ),
            (
                "GET",
                "/b/k",
                "tagging",
                "GetObjectTagging",
                "s3:GetObjectTagging",
            ),
            ("GET", "/b/k", "acl", "GetObjectAcl", "s3:GetObjectAcl"),
            ("PUT", "/b/k", "x-id=PutObject", "PutObject", "s3:PutObject"),
        ] {
            let c = classify(&parts(method, path, query, b"", "s3")).unwrap();
            assert_eq!(
                (c.operation.as_str(), action(&c).0.as_str()),
                (op, act),
                "{method} {path}?{query}"
            );
        }
        // A subresource hoopguard does not know is not read as the object itself.
        for (method, query) in [
            ("GET", "retention"),
            ("PUT", "legal-hold"),
            ("DELETE", "tagging"),
        ] {
            assert!(
                classify(&parts(method, "/b/k", query, b"", "s3")).is_err(),
                "{method} ?{query}"
            );
        }
    }

    #[test]
    fn query_json_and_s3() {
        let c = classify(&parts(
            "POST",
            "/",
            "",
            b"Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-1",
            "ec2",
        ))
        .unwrap();
        assert_eq!(
            (c.operation.as_str(), action(&c).0.as_str()),
            ("TerminateInstances", "ec2:TerminateInstances")
        );
        let c = classify(&parts(
            "GET",
            "/",
            "Action=GetCallerIdentity&Version=2011-06-15",
            b"",
            "sts",
        ))
        .unwrap();
        assert_eq!(action(&c).0, "sts:GetCallerIdentity");
        let mut p = parts("POST", "/", "", b"{}", "dynamodb");
        p.target = Some("DynamoDB_20120810.ListTables");
        assert_eq!(action(&classify(&p).unwrap()).0, "dynamodb:ListTables");
        let c = classify(&parts(
            "GET",
            "/team-bucket",
            "list-type=2&prefix=a%2Fb",
            b"",
            "s3",
        ))
        .unwrap();
        assert_eq!(
            (c.operation.as_str(), action(&c)),
            (
                "ListObjectsV2",
                (
                    "s3:ListBucket".into(),
                    vec!["arn:aws:s3:::team-bucket".into()]
                )
            )
        );
        let c = classify(&parts("HEAD", "/b/dir/file%20x.txt", "", b"", "s3")).unwrap();
        assert_eq!(
            action(&c),
            (
                "s3:GetObject".into(),
                vec!["arn:aws:s3:::b/dir/file x.txt".into()]
            )
        );
        let mut p = parts("PUT", "/b/copy", "", b"", "s3");
        p.copy_source = Some("/src/orig");
        let c = classify(&p).unwrap();
        let Call::Aws { actions, .. } = &c.call else {
            panic!()
        };
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0].resources, ["arn:aws:s3:::src/orig"]);
        assert_eq!(c.operation, "CopyObject");
        assert_eq!(
            action(&classify(&parts("GET", "/", "", b"", "s3")).unwrap()).0,
            "s3:ListAllMyBuckets"
        );
    }

    #[test]
    fn what_cannot_be_classified_is_an_error() {
        assert!(classify(&parts("GET", "/2015-03-31/nothing-here", "", b"", "lambda")).is_err());
        assert!(classify(&parts("POST", "/", "", b"Action=ListThings", "made-up")).is_err());
        assert!(
            classify(&parts(
                "POST",
                "/",
                "",
                b"Action=TerminateEverything",
                "ec2"
            ))
            .is_err()
        );
        assert!(classify(&parts("POST", "/", "", b"Action=Bad%20Op", "sts")).is_err());
        assert!(classify(&parts("PATCH", "/b/k", "", b"", "s3")).is_err());
        let mut p = parts("POST", "/", "", b"", "dynamodb");
        p.target = Some("DynamoDB_20120810.");
        assert!(classify(&p).is_err());
        p.target = Some("DynamoDB_20120810.DropEverything");
        assert!(classify(&p).is_err());
    }
}
