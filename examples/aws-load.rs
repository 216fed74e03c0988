//! Load and streaming figures for the AWS data path, measured in one run against the same fast
//! local upstream, directly and through hoopguard (recording batched):
//!
//! * requests per second and latency (p50, p99) of signed `sts:GetCallerIdentity` calls from
//!   `--concurrency` clients for `--seconds`;
//! * a 1 GiB object uploaded (`PutObject`, payload signed with its SHA-256, streamed and checked
//!   by hoopguard) and downloaded (`GetObject`, passed through unmasked as binary), with the
//!   process's peak resident memory.
//!
//! `cargo run --release --example aws-load -- [--concurrency 16] [--seconds 5] [--object-mib 1024]`
//!
//! Client, gateway and upstream share this process (and its 2 cores here), so the peak memory
//! is an upper bound for the gateway's.

use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::SignableBody;

#[path = "../benches/support/inproc.rs"]
mod inproc;
#[path = "../benches/support/aws.rs"]
mod support;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn put_object(base: &str, creds: &Credentials, size: u64) -> Duration {
    const CHUNK: u64 = 1 << 20;
    // The SDK hashes the body first (payload signing over plain HTTP), then streams it.
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for off in (0..size).step_by(CHUNK as usize) {
        ctx.update(&support::object_chunk(
            off,
            (size - off).min(CHUNK) as usize,
        ));
    }
    let hash: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let url = format!("{base}/bench-bucket/big.bin");
    let len = size.to_string();
    let headers = [("content-length", len.as_str())];
    let signed = support::signed_headers(
        creds,
        "s3",
        "PUT",
        &url,
        &headers,
        SignableBody::Precomputed(hash),
    );
    let stream = futures_util::stream::iter((0..size).step_by(CHUNK as usize).map(move |off| {
        Ok::<_, std::io::Error>(support::object_chunk(off, (size - off).min(CHUNK) as usize))
    }));
    let mut req = reqwest::Client::new()
        .put(&url)
        .header("content-length", &len)
        .body(reqwest::Body::wrap_stream(stream));
    for (n, v) in signed {
        req = req.header(n, v);
    }
    let t = Instant::now();
    let resp = req.send().await.unwrap();
    let status = resp.status();
    assert!(status.is_success(), "{status}: {:?}", resp.text().await);
    t.elapsed()
}

async fn get_object(base: &str, creds: &Credentials, size: u64) -> Duration {
    let url = format!("{base}/bench-bucket/object-{size}");
    let signed = support::signed_headers(creds, "s3", "GET", &url, &[], SignableBody::Bytes(b""));
    let mut req = reqwest::Client::new().get(&url);
    for (n, v) in signed {
        req = req.header(n, v);
    }
    let t = Instant::now();
    let mut resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let (mut n, mut off_ok) = (0u64, true);
    while let Some(chunk) = resp.chunk().await.unwrap() {
        off_ok &= chunk[..] == support::object_chunk(n, chunk.len())[..];
        n += chunk.len() as u64;
    }
    assert_eq!(n, size);
    assert!(off_ok, "the downloaded bytes differ");
    t.elapsed()
}

#[tokio::main]
async fn main() {
    let concurrency = arg("--concurrency", 16);
    let seconds = arg("--seconds", 5);
    let size = arg("--object-mib", 1024) << 20;
    let dir = tempfile::tempdir().unwrap();
    let up = support::upstream().await;
    let (gw, creds) = support::gateway(&dir.path().join("gw"), up, "batched").await;
    let direct = (format!("http://{up}"), support::direct_credentials());
    let rss_start = peak_rss_mib();

    println!("sts:GetCallerIdentity, {concurrency} concurrent clients, {seconds} s each");
    println!("{:<20} {:>10} {:>10} {:>10}", "path", "req/s", "p50", "p99");
    let client = reqwest::Client::new();
    let sts = |base: String, creds: Credentials| {
        let client = client.clone();
        move |_n: u64| {
            let (client, base, creds) = (client.clone(), base.clone(), creds.clone());
            async move { support::sts_call(&client, &base, &creds).await }
        }
    };
    let d = inproc::load(
        concurrency as usize,
        seconds,
        sts(direct.0.clone(), direct.1.clone()),
    )
    .await;
    let h = inproc::load(
        concurrency as usize,
        seconds,
        sts(gw.clone(), creds.clone()),
    )
    .await;
    for (name, (rps, p50, p99)) in [("direct", d), ("through hoopguard", h)] {
        println!("{name:<20} {rps:>10.0} {:>10.2?} {:>10.2?}", p50, p99);
    }
    println!(
        "ratio (hoopguard/direct): req/s {:.2}, p50 {:.2}, p99 {:.2}",
        h.0 / d.0,
        h.1.as_secs_f64() / d.1.as_secs_f64(),
        h.2.as_secs_f64() / d.2.as_secs_f64()
    );

    let rss_after_load = peak_rss_mib();
    let mib = (size >> 20) as f64;
    println!("\n{mib} MiB object");
    let up_d = put_object(&direct.0, &direct.1, size).await;
    let up_h = put_object(&gw, &creds, size).await;
    let down_d = get_object(&direct.0, &direct.1, size).await;
    let down_h = get_object(&gw, &creds, size).await;
    for (name, t) in [
        ("upload direct", up_d),
        ("upload through hoopguard", up_h),
        ("download direct", down_d),
        ("download through hoopguard", down_h),
    ] {
        println!(
            "{name:<28} {:>8.2?} {:>8.0} MiB/s",
            t,
            mib / t.as_secs_f64()
        );
    }
    println!(
        "peak RSS of the whole process: {:.1} MiB at the end; {rss_after_load:.1} MiB before the object; {rss_start:.1} MiB at start",
        peak_rss_mib(),
    );
}
