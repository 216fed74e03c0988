//! The AWS data path: one signed `sts:GetCallerIdentity` call sent straight to a fast local
//! upstream, against the same call through hoopguard (SigV4 verification, classification, policy,
//! recording, brokering from the static broker, re-signing, forwarding, masking), with recording
//! batched, with an fsync per event, and with a store that keeps nothing (what recording costs)
//! — all in the same run, same client, same upstream.
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

criterion_group!(benches, bench);
criterion_main!(benches);
