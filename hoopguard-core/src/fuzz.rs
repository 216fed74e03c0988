//! The fuzz targets' bodies: each takes arbitrary bytes, drives one parser with them, and panics
//! only when an invariant breaks. `fuzz/` runs them under libFuzzer (`cargo fuzz run NAME`);
//! `tests/fuzz_corpus.rs` runs the committed corpus through the same functions as a plain test,
//! so the targets cannot rot where no fuzzer can be installed.
//!
//! Each input is read as a small script: its first bytes choose the cuts and options, the rest
//! is the data.

use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

/// A fuzz target: arbitrary bytes in, a panic only when an invariant breaks.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("sigv4", sigv4),
    ("chunked", chunked),
    ("classify", classify),
    ("percent", percent),
    ("jsonrpc_sse", jsonrpc_sse),
    ("mask_stream", mask_stream),
];

/// Cuts `data` into pieces at the positions `seed` suggests (none past the end).
fn cuts<'a>(seed: &[u8], data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    for &s in seed {
        if at >= data.len() {
            break;
        }
        let n = (usize::from(s) % 97 + 1).min(data.len() - at);
        out.push(&data[at..at + n]);
        at += n;
    }
    out.push(&data[at..]);
    out
}

/// The first `n` bytes as options, and the rest.
fn split(data: &[u8], n: usize) -> (&[u8], &[u8]) {
    data.split_at(n.min(data.len()))
}

/// A request written as text: method, target (`path?query`), header lines, an empty line, the
/// body.
struct Script {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: String,
}

impl Script {
    fn parse(data: &[u8]) -> Script {
        let text = String::from_utf8_lossy(data);
        let mut lines = text.split('\n');
        let method = lines.next().unwrap_or("GET").to_string();
        let target = lines.next().unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = Vec::new();
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()));
            }
        }
        Script {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers,
            body: lines.collect::<Vec<_>>().join("\n"),
        }
    }

    fn headers(&self) -> Vec<(&str, &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect()
    }
}

static MINTER: LazyLock<crate::aws::Minter> = LazyLock::new(|| crate::aws::Minter::new(&[7; 32]));

/// SigV4: a request made of arbitrary method, path, query, headers and body, checked from its
/// head and then whole. Never panics; a request the fuzzer forged never verifies (it cannot know
/// the gateway key).
pub fn sigv4(data: &[u8]) {
    let r = Script::parse(data);
    let view = r.headers();
    let hash = crate::aws::sha256_hex(r.body.as_bytes());
    let req = crate::aws::Request {
        method: &r.method,
        path: &r.path,
        query: &r.query,
        headers: &view,
        body_sha256: Some(&hash),
    };
    if let Ok(head) = crate::aws::check_head(&MINTER, &req, SystemTime::now()) {
        let _ = head.declared_payload();
        assert!(
            head.verify(&req).is_err(),
            "a forged request verified: {req:?}"
        );
    }
}

/// `aws-chunked` de-framing: the same bytes pushed whole or cut anywhere give the same payload
/// and the same verdict.
pub fn chunked(data: &[u8]) {
    use crate::aws::chunked::{ChunkSeed, Dechunker, Framing};
    let (opts, body) = split(data, 8);
    let framing = if opts.first().is_some_and(|b| b & 1 == 1) {
        Framing::Signed
    } else {
        Framing::UnsignedTrailer
    };
    let seed = || {
        (framing == Framing::Signed).then(|| {
            ChunkSeed::from_secret(
                "secret",
                "20260101T000000Z",
                "us-east-1",
                "s3",
                &"0".repeat(64),
            )
        })
    };
    let run = |pieces: &[&[u8]]| -> Result<Vec<u8>, String> {
        let mut d = Dechunker::new(framing, seed(), None);
        let mut out = Vec::new();
        for p in pieces {
            for b in d.push(p).map_err(|e| e.to_string())? {
                out.extend_from_slice(&b);
            }
        }
        d.finish().map_err(|e| e.to_string())?;
        Ok(out)
    };
    let whole = run(&[body]);
    let cut = run(&cuts(&opts[opts.len().min(1)..], body));
    assert_eq!(whole.is_ok(), cut.is_ok(), "whole {whole:?} vs cut {cut:?}");
    if let (Ok(a), Ok(b)) = (&whole, &cut) {
        assert_eq!(a, b);
        assert!(a.len() <= body.len());
    }
}

const SERVICES: &[&str] = &[
    "s3",
    "ec2",
    "sts",
    "iam",
    "lambda",
    "dynamodb",
    "monitoring",
    "sqs",
    "kms",
    "ssm",
    "secretsmanager",
    "route53",
    "eks",
    "nope",
];

/// Classification: arbitrary requests for a set of services; never panics, and whatever it
/// classifies names an operation of the route table with IAM actions.
pub fn classify(data: &[u8]) {
    let (opts, rest) = split(data, 1);
    let service = SERVICES[usize::from(opts.first().copied().unwrap_or(0)) % SERVICES.len()];
    let r = Script::parse(rest);
    let view = r.headers();
    let parts = crate::aws::classify::Parts {
        method: &r.method,
        path: &r.path,
        query: &r.query,
        headers: &view,
        body: Some(r.body.as_bytes()),
        service,
        region: "us-east-1",
        account: Some("123456789012"),
    };
    if let Ok(c) = crate::aws::classify::classify(&parts) {
        assert!(!c.operation.is_empty());
        let crate::policy::Call::Aws { actions, .. } = &c.call else {
            panic!("an AWS call classified as something else");
        };
        assert!(!actions.is_empty());
    }
}

/// Percent-decoding: never panics; decoding text without `%` or `+` gives it back.
pub fn percent(data: &[u8]) {
    let decoded = crate::aws::pct::decode(data, true);
    assert!(decoded.len() <= data.len());
    if !data.contains(&b'%') && !data.contains(&b'+') {
        assert_eq!(decoded, data);
    }
    let text = String::from_utf8_lossy(data);
    let _ = crate::aws::pct::decode_str(&text, false);
    let _ = crate::aws::pct::pairs(&text);
}

/// JSON-RPC bodies and server-sent event streams: never panic; events split from a stream cut
/// anywhere are the events split from it whole.
pub fn jsonrpc_sse(data: &[u8]) {
    let _ = crate::mcp::parse(data);
    let _ = crate::mcp::parse_line(data);
    let (opts, stream) = split(data, 8);
    let run = |pieces: &[&[u8]]| {
        let mut e = crate::mcp::sse::Events::new(64 * 1024);
        let mut out = Vec::new();
        for p in pieces {
            match e.push(p) {
                Ok(evs) => out.extend(evs),
                Err(_) => return None,
            }
        }
        Some((out, e.rest().to_vec()))
    };
    let whole = run(&[stream]);
    let cut = run(&cuts(opts, stream));
    if let (Some(a), Some(b)) = (whole, cut) {
        assert_eq!(a, b);
    }
}

static ENGINE: LazyLock<Arc<crate::mask::Engine>> = LazyLock::new(crate::mask::default_engine);

/// Masking: a stream cut anywhere masks exactly as the whole buffer does, and holds back no
/// more than its window.
pub fn mask_stream(data: &[u8]) {
    let (opts, input) = split(data, 12);
    let (whole, _) = ENGINE.mask(input);
    let mut stream = ENGINE.stream();
    let mut out = Vec::new();
    for p in cuts(opts, input) {
        stream.push(p, &mut out);
        assert!(stream.held() <= input.len());
    }
    stream.finish(&mut out);
    assert_eq!(
        out,
        whole,
        "streamed and whole masking differ for {:?}",
        String::from_utf8_lossy(input)
    );
}
