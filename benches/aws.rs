//! The AWS data path: one signed `sts:GetCallerIdentity` call sent straight to a fast local
//! upstream, against the same call through hoopguard (SigV4 verification, classification, policy,
//! recording, brokering from the static broker, re-signing, forwarding, masking), with recording
//! batched and with an fsync per event — all in the same run, same client, same upstream.
//!
//! `cargo bench --bench aws`

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use criterion::{Criterion, criterion_group, criterion_main};
use hoopguard_cli::config::{Config, Source};

const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const ANSWER: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:sts::123456789012:assumed-role/agents/bench</Arn><UserId>AROA:bench</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#;

/// A fast upstream: answers every request with the same small XML document.
async fn upstream() -> SocketAddr {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    use http_body_util::BodyExt;
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "text/xml")
                            .body(http_body_util::Full::new(bytes::Bytes::from(ANSWER)))
                            .unwrap(),
                    )
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a gateway in this process; returns its AWS listener and pseudo-credentials.
async fn gateway(dir: &std::path::Path, up: SocketAddr, durability: &str) -> (String, Credentials) {
    let (aws, admin) = (free_port(), free_port());
    let text = format!(
        r#"
data_dir = "{data}"
[listeners.aws]
bind = "127.0.0.1:{aws}"
[listeners.admin]
bind = "127.0.0.1:{admin}"
[identity.dev_issuer]
enabled = true
[record]
durability = "{durability}"
[aws.connections.default]
broker = "static"
access_key_id = "AKIDBENCH"
secret_access_key = "bench-secret"
endpoint = "http://{up}"
[[policy.rules]]
name = "bench"
effect = "allow"
groups = ["dev"]
actions = ["sts:GetCallerIdentity"]
"#,
        data = dir.display()
    );
    let cfg = Config::parse(&text, "bench", &|_| None).unwrap();
    let dev = hoopguard_cli::serve::dev_issuer(&cfg).unwrap().unwrap();
    tokio::spawn(async move {
        hoopguard_cli::serve::run(cfg, Source::Quickstart, std::future::pending())
            .await
            .unwrap()
    });
    let token = dev.mint("bench", &["dev".into()], Duration::from_secs(3600)).unwrap();
    let base = format!("http://127.0.0.1:{aws}");
    let client = reqwest::Client::new();
    let creds: serde_json::Value = loop {
        match client
            .get(format!("{base}/v1/aws/credentials"))
            .header("authorization", &token)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => break r.json().await.unwrap(),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let s = |k: &str| creds[k].as_str().unwrap().to_string();
    let creds = Credentials::new(
        s("AccessKeyId"),
        s("SecretAccessKey"),
        Some(s("Token")),
        None,
        "bench",
    );
    (base, creds)
}

/// One signed GetCallerIdentity call, as an SDK makes it.
async fn call(client: &reqwest::Client, base: &str, creds: &Credentials) {
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let url = format!("{base}/");
    let headers = [("content-type", "application/x-www-form-urlencoded")];
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().copied(),
        SignableBody::Bytes(BODY.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(BODY);
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    let _ = resp.bytes().await.unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (up, batched, every) = rt.block_on(async {
        let up = upstream().await;
        let batched = gateway(&dir.path().join("batched"), up, "batched").await;
        let every = gateway(&dir.path().join("every"), up, "every_event").await;
        (up, batched, every)
    });
    let client = reqwest::Client::new();
    let direct = (
        format!("http://{up}"),
        Credentials::new("AKIDBENCH", "bench-secret", None, None, "bench"),
    );
    let mut g = c.benchmark_group("aws_call");
    for (name, (base, creds)) in [
        ("direct", &direct),
        ("through_hoopguard_batched", &batched),
        ("through_hoopguard_every_event", &every),
    ] {
        let base = Arc::new(base.clone());
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| call(&client, &base, creds));
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
