//! Token verification: cold (signature checked every time, cache off) against cached (the
//! verified-token cache answers), for RS256 and ES256, in the same run.
//!
//! `cargo bench --bench identity`

use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use hoopguard::core::identity::{IssuerConfig, IssuerVerifier, Verifier};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const RSA: &[u8] = include_bytes!("../hoopguard-core/src/identity/testdata/rsa_a.pem");
const EC: &[u8] = include_bytes!("../hoopguard-core/src/identity/testdata/ec_a.pem");

fn setup(alg: Algorithm, cache: usize) -> (Verifier, String) {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC).unwrap(),
        _ => EncodingKey::from_rsa_pem(RSA).unwrap(),
    };
    let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some("k".into());
    let cfg = IssuerConfig::new("https://idp.bench", "hoopguard");
    let verifier = Verifier::builder()
        .cache_capacity(cache)
        .issuer(IssuerVerifier::with_keys(&cfg, &JwkSet { keys: vec![jwk] }).unwrap())
        .build();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": "https://idp.bench", "aud": "hoopguard", "sub": "alice",
        "groups": ["dev", "ops"], "iat": now, "exp": now + 3600,
    });
    let mut header = Header::new(alg);
    header.kid = Some("k".into());
    (
        verifier,
        jsonwebtoken::encode(&header, &claims, &key).unwrap(),
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("verify");
    for (name, alg) in [("RS256", Algorithm::RS256), ("ES256", Algorithm::ES256)] {
        let (cold, token) = setup(alg, 0);
        group.bench_function(format!("{name}/cold"), |b| {
            b.to_async(&rt)
                .iter(|| async { cold.verify(&token).await.unwrap() })
        });
        let (cached, token) = setup(alg, 10_000);
        rt.block_on(cached.verify(&token)).unwrap();
        group.bench_function(format!("{name}/cached"), |b| {
            b.to_async(&rt)
                .iter(|| async { cached.verify(&token).await.unwrap() })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
