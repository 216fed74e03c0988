//! The AWS data path: one signed `sts:GetCallerIdentity` call sent straight to a fast local
//! upstream, against the same call through hoopguard (SigV4 verification, classification, policy,
//! recording, brokering from the static broker, re-signing, forwarding, masking), with recording
//! batched, with an fsync per event, and with a store that keeps nothing (what recording costs)
//! — all in the same run, same client, same upstream.
//!
//! A second group, `aws_decide`, times what the gateway does to *read* one call in-process —
//! classification (protocol markers, the route table, IAM actions and ARNs) and the approval
//! binding digest — against the SigV4 check of the same request as the baseline.
//!
//! `cargo bench --bench aws`

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/inproc.rs"]
mod inproc;
#[path = "support/aws.rs"]
mod support;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (up, unrecorded, batched, every) = rt.block_on(async {
        let up = support::upstream().await;
        let unrecorded = support::gateway(&dir.path().join("off"), up, "off").await;
        let batched = support::gateway(&dir.path().join("batched"), up, "batched").await;
        let every = support::gateway(&dir.path().join("every"), up, "every_event").await;
        (up, unrecorded, batched, every)
    });
    let client = reqwest::Client::new();
    let direct = (format!("http://{up}"), support::direct_credentials());
    let mut g = c.benchmark_group("aws_call");
    for (name, (base, creds)) in [
        ("direct", &direct),
        ("through_hoopguard_unrecorded", &unrecorded),
        ("through_hoopguard_batched", &batched),
        ("through_hoopguard_every_event", &every),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| support::sts_call(&client, base, creds));
        });
    }
    g.finish();
}

fn decide(c: &mut Criterion) {
    use hoopguard_core::aws::binding::{Binding, Body};
    use hoopguard_core::aws::classify::{Parts, classify};
    let minter = hoopguard_core::aws::Minter::new(&[9; 32]);
    let who = hoopguard_core::identity::Identity::new(
        "bench",
        vec!["dev".into()],
        "bench",
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    let pc = minter
        .mint(&who, "default", std::time::Duration::from_secs(3600))
        .unwrap();
    let creds = aws_credential_types::Credentials::new(
        pc.access_key_id.clone(),
        pc.secret_access_key.clone(),
        Some(pc.token.clone()),
        None,
        "bench",
    );
    let body =
        b"Action=TerminateInstances&Version=2016-11-15&InstanceId.1=i-0abc&InstanceId.2=i-0def";
    let url = "http://127.0.0.1:8787/";
    let ctype = (
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    );
    let mut owned: Vec<(String, Vec<u8>)> = vec![
        ("host".into(), b"127.0.0.1:8787".to_vec()),
        (ctype.0.into(), ctype.1.as_bytes().to_vec()),
    ];
    for (n, v) in support::signed_headers(
        &creds,
        "ec2",
        "POST",
        url,
        &[("host", "127.0.0.1:8787"), ctype],
        aws_sigv4::http_request::SignableBody::Bytes(body),
    ) {
        owned.push((n, v.into_bytes()));
    }
    let headers: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let hash = hoopguard_core::aws::sha256_hex(body);
    let req = hoopguard_core::aws::Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body_sha256: Some(&hash),
    };
    assert!(
        hoopguard_core::aws::verify_request(&minter, &req, std::time::SystemTime::now()).is_ok()
    );
    let parts = |service, method, path, query, body| Parts {
        method,
        path,
        query,
        headers: &headers,
        body,
        service,
        region: "us-east-1",
        account: Some("123456789012"),
    };
    let ec2 = parts("ec2", "POST", "/", "", Some(&body[..]));
    let s3 = parts(
        "s3",
        "GET",
        "/team-bucket/reports/2026/q3.csv",
        "versionId=3",
        Some(&b""[..]),
    );
    assert!(classify(&ec2).is_ok() && classify(&s3).is_ok());
    let mut g = c.benchmark_group("aws_decide");
    g.bench_function("sigv4_verify_baseline", |b| {
        b.iter(|| {
            hoopguard_core::aws::verify_request(&minter, &req, std::time::SystemTime::now())
                .unwrap()
        })
    });
    g.bench_function("classify_ec2_form", |b| b.iter(|| classify(&ec2).unwrap()));
    g.bench_function("classify_s3_get_version", |b| {
        b.iter(|| classify(&s3).unwrap())
    });
    g.bench_function("binding_digest", |b| {
        b.iter(|| {
            Binding {
                service: "ec2",
                region: "us-east-1",
                connection: "default",
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body: Body::Sha256(&hash),
            }
            .digest()
        })
    });
    g.finish();
}

criterion_group!(benches, bench, decide);
criterion_main!(benches);
