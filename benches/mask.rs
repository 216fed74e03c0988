//! Masking throughput on four corpora, against baselines measured in the same run:
//!
//! * `hoopguard-detectors-stream-64k`: the same engine with the rule table off (the detectors
//!   and field rules of the first release), streamed the same way, to show what the table costs;
//! * `naive`: one regex-automata `meta::Regex` over regexes of all the built-in rules, every
//!   match replaced (what most maskers do);
//! * `memchr`: a memchr scan of the same bytes for a byte that is not there (the ceiling).
//!
//! `cargo bench --bench mask` (corpora of 64 MiB; `HOOPGUARD_BENCH_MIB=16` for smaller).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hoopguard::core::mask::{Engine, MaskConfig};
use regex_automata::meta::Regex;

#[path = "support/corpus.rs"]
mod corpus;

/// The built-in rules as plain regexes, for the naive baseline (field and PEM lengths capped at
/// 4 KiB: larger counted repetitions do not compile within the default size limit).
const NAIVE: &[&str] = &[
    r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
    r"(?i:aws_secret_access_key)[ \t'=:]{1,8}[A-Za-z0-9/+]{40}",
    r"(?i:aws_session_token|aws_security_token)[ \t'=:]{1,8}[A-Za-z0-9/+=]{100,2048}",
    r"-----BEGIN [A-Z ]{0,30}PRIVATE KEY-----[^-]{0,4096}-----END [A-Z ]{0,30}PRIVATE KEY-----",
    r"eyJ[A-Za-z0-9_-]{10,4096}\.eyJ[A-Za-z0-9_-]{10,4096}\.[A-Za-z0-9_-]{16,2048}",
    r"gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{82}",
    r"glpat-[A-Za-z0-9_-]{20}",
    r"xox[baprs]-[A-Za-z0-9-]{10,250}",
    r"https?://hooks\.slack\.com/services/[A-Za-z0-9/]{20,200}",
    r"[sr]k_(?:live|test)_[A-Za-z0-9]{10,99}",
    r"AIza[A-Za-z0-9_-]{35}",
    r"(?i:postgres(?:ql)?|mysql|mongodb(?:\+srv)?|redis|amqp)://[^:/\s]{1,128}:[^@/\s]{1,128}@",
    r"(?-u:\b)[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{1,7}(?-u:\b)",
    r"(?-u:\b)[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?-u:\b)",
    r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}",
    r"(?-u:\b)[0-9]{3}-[0-9]{2}-[0-9]{4}(?-u:\b)",
    r#""(?:SecretAccessKey|SessionToken|Password|MasterUserPassword|SecretString|SecretBinary|PrivateKey|AuthorizationToken|ClientSecret|password|secret|client_secret|private_key|access_token|refresh_token)"\s*:\s*"(?:[^"\\]|\\.){1,4096}""#,
    r"<(?:SecretAccessKey|SessionToken|Password|MasterUserPassword|SecretString|PrivateKey)>[^<]{1,4096}</",
];

fn naive() -> Regex {
    Regex::builder()
        .syntax(
            regex_automata::util::syntax::Config::new()
                .unicode(false)
                .utf8(false),
        )
        .configure(Regex::config().utf8_empty(false))
        .build_many(NAIVE)
        .expect("naive patterns compile")
}

fn naive_mask(re: &Regex, hay: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut last = 0;
    for m in re.find_iter(hay) {
        out.extend_from_slice(&hay[last..m.start()]);
        out.extend_from_slice(b"[MASKED]");
        last = m.end();
    }
    out.extend_from_slice(&hay[last..]);
}

/// Masks `data` as `MaskLayer` does, in 64 KiB chunks, into `out`; returns the bytes written.
fn stream_64k(engine: &Arc<Engine>, data: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let mut s = engine.stream();
    for chunk in data.chunks(64 * 1024) {
        s.push(chunk, out);
    }
    s.finish(out);
    out.len()
}

fn bench(c: &mut Criterion) {
    // Full size when benchmarking; tiny when `cargo test` runs this once to check it works.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let mib: usize = std::env::var("HOOPGUARD_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benchmarking { 64 } else { 1 });
    let size = mib * 1024 * 1024;
    let corpora = [
        ("json-clean", corpus::aws_json(size, false, 1)),
        ("json-dense", corpus::aws_json(size, true, 2)),
        ("xml", corpus::aws_xml(size, 3)),
        ("text-unicode", corpus::unicode_text(size, 4)),
    ];
    let engine = Arc::new(Engine::new(&MaskConfig::default()).unwrap());
    let detectors_only = Arc::new(
        Engine::new(&MaskConfig {
            disable: hoopguard::core::mask::builtin_rule_catalog()
                .into_iter()
                .filter(|(_, source)| !source.is_empty())
                .map(|(name, _)| name.to_string())
                .collect(),
            ..MaskConfig::default()
        })
        .unwrap(),
    );
    let re = naive();
    for (name, data) in &corpora {
        let (_, stats) = engine.mask(data);
        eprintln!(
            "{name}: {} bytes, {} matches {:?}",
            data.len(),
            stats.total_matches(),
            stats.matches
        );
        let mut group = c.benchmark_group(format!("mask/{name}"));
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.sample_size(10);
        let mut out = Vec::with_capacity(data.len() + 1024);
        group.bench_function("hoopguard", |b| {
            b.iter(|| black_box(engine.mask(black_box(data))))
        });
        group.bench_function("hoopguard-stream-64k", |b| {
            b.iter(|| black_box(stream_64k(&engine, data, &mut out)))
        });
        group.bench_function("hoopguard-detectors-stream-64k", |b| {
            b.iter(|| black_box(stream_64k(&detectors_only, data, &mut out)))
        });
        group.bench_function("naive", |b| {
            b.iter(|| naive_mask(&re, black_box(data), &mut out))
        });
        group.bench_function("memchr", |b| {
            b.iter(|| black_box(memchr::memchr(0x01, black_box(data))))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
