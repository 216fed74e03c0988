//! Decision latency with 10, 1,000 and 10,000 rules: the indexed engine against a full scan of
//! the same compiled rules (the baseline), in the same run. Then the rate-limit hot path: one
//! call through `Guard::authorize` with 0 (the baseline), 1 and 10 limits matching it, counted
//! in the embedded store.
//!
//! `cargo bench --bench policy`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hoopguard::core::approvals::{Approvals, SqliteStore};
use hoopguard::core::identity::Identity;
use hoopguard::core::policy::{Call, Effect, LimitConfig, Policy, RuleConfig};
use hoopguard::tower::policy::{Guard, Site, Verdict};

/// `n` rules over 50 services: mostly exact allows, every 10th a wildcard, some denies and
/// approvals, each for one of 20 groups, half with resource patterns.
fn rules(n: usize) -> Vec<RuleConfig> {
    (0..n)
        .map(|i| {
            let svc = format!("svc{}", i % 50);
            let action = if i % 10 == 0 {
                format!("{svc}:Get{}*", i % 7)
            } else {
                format!("{svc}:Op{i}")
            };
            let effect = match i % 20 {
                0 => Effect::Deny,
                1 => Effect::Approve,
                _ => Effect::Allow,
            };
            let mut v = serde_json::json!({
                "name": format!("rule-{i}"),
                "effect": effect,
                "groups": [format!("g{}", i % 20)],
                "actions": [action],
            });
            if i % 2 == 0 {
                v["resources"] = serde_json::json!([format!("arn:aws:{svc}:*:*:thing/{i}/*")]);
            }
            if effect == Effect::Approve {
                v["approvers"] = serde_json::json!(["managers"]);
            }
            serde_json::from_value(v).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in [10usize, 1_000, 10_000] {
        let policy = Policy::compile(&rules(n)).unwrap();
        // A call that an exact rule allows, in the middle of the list.
        let i = (n / 2) | 3;
        let who = Identity::new(
            "agent-7",
            vec![format!("g{}", i % 20), "dev".into()],
            "https://idp",
            std::time::SystemTime::now(),
        );
        let svc = format!("svc{}", i % 50);
        let resource = format!("arn:aws:{svc}:us-east-1:1:thing/{i}/x");
        let call = Call::aws(&format!("{svc}:Op{i}"), &[&resource], Some("us-east-1"));
        assert_eq!(policy.decide(&who, &call).effect, Effect::Allow);
        assert_eq!(
            policy.decide(&who, &call),
            policy.decide_by_scan(&who, &call)
        );
        group.bench_with_input(BenchmarkId::new("indexed", n), &call, |b, call| {
            b.iter(|| policy.decide(black_box(&who), black_box(call)))
        });
        group.bench_with_input(BenchmarkId::new("scan", n), &call, |b, call| {
            b.iter(|| policy.decide_by_scan(black_box(&who), black_box(call)))
        });
        // Nothing matches: the default deny.
        let miss = Call::aws("svc3:Nothing", &[], None);
        group.bench_with_input(
            BenchmarkId::new("indexed-default-deny", n),
            &miss,
            |b, call| b.iter(|| policy.decide(black_box(&who), black_box(call))),
        );
    }
    group.finish();
}

/// `Guard::authorize` for a call matched by `n` limits, each far from full (a window of a day
/// and a billion calls, so every iteration is counted and none refused).
fn limits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let rules: Vec<RuleConfig> = serde_json::from_value(serde_json::json!([
        {"name": "s3", "effect": "allow", "actions": ["s3:*"]},
    ]))
    .unwrap();
    let call = Call::aws("s3:GetObject", &["arn:aws:s3:::b/k"], Some("us-east-1"));
    let who = Identity::new(
        "agent-7",
        vec!["dev".into()],
        "https://idp",
        std::time::SystemTime::now(),
    );
    let site = Site {
        connection: Some("default"),
        ..Site::of("aws")
    };
    let mut group = c.benchmark_group("limits");
    for n in [0usize, 1, 10] {
        let limits: Vec<LimitConfig> = (0..n)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "name": format!("limit-{i}"), "actions": ["s3:*"],
                    "calls": 1_000_000_000u32, "per": "1d",
                    "by": if i % 2 == 0 { serde_json::json!(["caller"]) } else { serde_json::json!(["caller", "connection"]) },
                }))
                .unwrap()
            })
            .collect();
        let guard = Guard::new(
            Policy::compile_with_limits(&rules, &limits).unwrap(),
            Approvals::new(std::sync::Arc::new(SqliteStore::open_in_memory().unwrap())),
        );
        let v = rt.block_on(guard.authorize(&site, &who, &call, None));
        assert!(matches!(v, Verdict::Allow { .. }), "{v:?}");
        group.bench_function(BenchmarkId::new("authorize", n), |b| {
            b.iter(|| rt.block_on(guard.authorize(black_box(&site), &who, black_box(&call), None)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, limits);
criterion_main!(benches);
