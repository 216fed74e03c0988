//! Every refusal of the verifier, with fixed test keys (testdata/, generated with openssl for
//! these tests only).

use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use std::time::Duration;

use super::verify::unix_now;
use super::*;

const RSA_A: &[u8] = include_bytes!("testdata/rsa_a.pem");
const RSA_A_PUB: &[u8] = include_bytes!("testdata/rsa_a.pub.pem");
const RSA_B: &[u8] = include_bytes!("testdata/rsa_b.pem");
const EC_A: &[u8] = include_bytes!("testdata/ec_a.pem");
const ISS: &str = "https://idp.test";
const AUD: &str = "hoopguard";
const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef";

fn jwk(pem: &[u8], alg: Algorithm, kid: &str) -> Jwk {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(pem).unwrap(),
    };
    let mut j = Jwk::from_encoding_key(&key, alg).unwrap();
    j.common.key_id = Some(kid.into());
    j
}

fn config() -> IssuerConfig {
    IssuerConfig::new(ISS, AUD)
}

fn verifier_with(cfg: IssuerConfig) -> Verifier {
    let set = JwkSet {
        keys: vec![
            jwk(RSA_A, Algorithm::RS256, "a"),
            jwk(EC_A, Algorithm::ES256, "e"),
        ],
    };
    Verifier::builder()
        .issuer(IssuerVerifier::with_keys(&cfg, &set).unwrap())
        .build()
}

fn verifier() -> Verifier {
    verifier_with(config())
}

fn now() -> i64 {
    unix_now() as i64
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "groups": ["dev", "ops"],
           "iat": now(), "exp": now() + 600})
}

fn sign(alg: Algorithm, kid: Option<&str>, pem: &[u8], claims: &Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
        Algorithm::HS256 => EncodingKey::from_secret(pem),
        _ => EncodingKey::from_rsa_pem(pem).unwrap(),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(String::from);
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

fn rs(claims: &Value) -> String {
    sign(Algorithm::RS256, Some("a"), RSA_A, claims)
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

async fn refusal(v: &Verifier, token: &str) -> AuthError {
    v.verify(token).await.expect_err("token must be refused")
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

#[tokio::test]
async fn accepts_rs256_and_es256() {
    let v = verifier();
    let id = v.verify(&rs(&claims())).await.unwrap();
    assert_eq!(id.subject, "alice");
    assert_eq!(id.groups, ["dev", "ops"]);
    assert_eq!(id.issuer, ISS);
    let es = sign(Algorithm::ES256, Some("e"), EC_A, &claims());
    assert_eq!(v.verify(&es).await.unwrap().subject, "alice");
}

#[tokio::test]
async fn accepts_token_without_kid_by_trying_compatible_keys() {
    let v = verifier();
    let t = sign(Algorithm::RS256, None, RSA_A, &claims());
    assert_eq!(v.verify(&t).await.unwrap().subject, "alice");
}

#[tokio::test]
async fn refuses_tampered_signature() {
    let v = verifier();
    let t = rs(&claims());
    let (rest, sig) = t.rsplit_once('.').unwrap();
    let mut sig: Vec<u8> = sig.bytes().collect();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{rest}.{}", String::from_utf8(sig).unwrap());
    assert_eq!(refusal(&v, &tampered).await, AuthError::BadSignature);
}

#[tokio::test]
async fn refuses_tampered_claims() {
    let v = verifier();
    let t = rs(&claims());
    let parts: Vec<&str> = t.split('.').collect();
    let forged = b64(&with(claims(), "sub", json!("mallory")));
    let t2 = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert_eq!(refusal(&v, &t2).await, AuthError::BadSignature);
}

#[tokio::test]
async fn refuses_alg_none_in_any_case() {
    let v = verifier();
    for alg in ["none", "None", "NONE"] {
        let t = format!(
            "{}.{}.",
            b64(&json!({"alg": alg, "typ": "JWT"})),
            b64(&claims())
        );
        assert_eq!(
            refusal(&v, &t).await,
            AuthError::AlgorithmNotAllowed("none".into())
        );
        let t = format!("{t}c2ln");
        assert_eq!(
            refusal(&v, &t).await,
            AuthError::AlgorithmNotAllowed("none".into())
        );
    }
}

#[tokio::test]
async fn refuses_hs256_signed_with_the_rsa_public_key() {
    // The classic key-confusion attack: HMAC keyed with the published RSA public key.
    let v = verifier();
    let t = sign(Algorithm::HS256, Some("a"), RSA_A_PUB, &claims());
    assert_eq!(
        refusal(&v, &t).await,
        AuthError::AlgorithmNotAllowed("HS256".into())
    );
    // Even where HMAC is configured, only the configured secret is ever used.
    let mut cfg = config();
    cfg.hmac_secret = Some(HMAC_SECRET.into());
    cfg.algorithms.push("HS256".into());
    let v = verifier_with(cfg);
    assert_eq!(refusal(&v, &t).await, AuthError::BadSignature);
    let good = sign(Algorithm::HS256, None, HMAC_SECRET.as_bytes(), &claims());
    assert_eq!(v.verify(&good).await.unwrap().subject, "alice");
}

#[tokio::test]
async fn refuses_algorithm_outside_the_allow_list() {
    let mut cfg = config();
    cfg.algorithms = vec!["ES256".into()];
    let v = verifier_with(cfg);
    assert_eq!(
        refusal(&v, &rs(&claims())).await,
        AuthError::AlgorithmNotAllowed("RS256".into())
    );
    let t = format!("{}.{}.c2ln", b64(&json!({"alg": "XS999"})), b64(&claims()));
    assert_eq!(
        refusal(&v, &t).await,
        AuthError::AlgorithmNotAllowed("XS999".into())
    );
}

#[tokio::test]
async fn refuses_a_key_of_the_wrong_type_for_the_algorithm() {
    // ES256 header but kid names the RSA key: no compatible key.
    let v = verifier();
    let t = sign(Algorithm::ES256, Some("a"), EC_A, &claims());
    assert_eq!(refusal(&v, &t).await, AuthError::UnknownKey);
}

#[tokio::test]
async fn refuses_expired() {
    let v = verifier();
    let c = with(claims(), "exp", json!(now() - 3600));
    assert_eq!(refusal(&v, &rs(&c)).await, AuthError::Expired);
}

#[tokio::test]
async fn accepts_expiry_within_leeway() {
    let v = verifier();
    let c = with(claims(), "exp", json!(now() - 5));
    assert!(v.verify(&rs(&c)).await.is_ok());
}

#[tokio::test]
async fn refuses_nbf_in_the_future() {
    let v = verifier();
    let c = with(claims(), "nbf", json!(now() + 3600));
    assert_eq!(refusal(&v, &rs(&c)).await, AuthError::NotYetValid);
}

#[tokio::test]
async fn refuses_iat_in_the_future() {
    let v = verifier();
    let c = with(claims(), "iat", json!(now() + 3600));
    assert_eq!(refusal(&v, &rs(&c)).await, AuthError::IssuedInFuture);
}

#[tokio::test]
async fn refuses_wrong_issuer() {
    let v = verifier();
    let c = with(claims(), "iss", json!("https://evil.test"));
    assert_eq!(refusal(&v, &rs(&c)).await, AuthError::UntrustedIssuer);
}

#[tokio::test]
async fn refuses_wrong_audience_and_accepts_audience_arrays() {
    let v = verifier();
    let c = with(claims(), "aud", json!("someone-else"));
    assert_eq!(refusal(&v, &rs(&c)).await, AuthError::WrongAudience);
    let c = with(claims(), "aud", json!(["someone-else", "other"]));
    assert_eq!(refusal(&v, &rs(&c)).await, AuthError::WrongAudience);
    let c = with(claims(), "aud", json!(["someone-else", AUD]));
    assert!(v.verify(&rs(&c)).await.is_ok());
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        refusal(&v, &rs(&c)).await,
        AuthError::MissingClaim("aud".into())
    );
}

#[tokio::test]
async fn refuses_unknown_kid() {
    let v = verifier();
    let t = sign(Algorithm::RS256, Some("b"), RSA_B, &claims());
    assert_eq!(refusal(&v, &t).await, AuthError::UnknownKey);
    // Without a kid, a foreign key simply fails to verify.
    let t = sign(Algorithm::RS256, None, RSA_B, &claims());
    assert_eq!(refusal(&v, &t).await, AuthError::BadSignature);
}

#[tokio::test]
async fn refuses_malformed_tokens() {
    let v = verifier();
    let good = rs(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        "abc".to_string(),
        "a.b".to_string(),
        "a.b.c.d.e".to_string(),
        format!("!!!.{}.{}", parts[1], parts[2]),
        format!("{}.%%%.{}", parts[0], parts[2]),
        format!("{}.{}.{}", b64(&json!("just a string")), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64(&json!([1, 2, 3])), parts[2]),
        format!(
            "{}.{}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"{not json"),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{}.{}.***", parts[0], parts[1]),
    ];
    for t in &cases {
        let e = refusal(&v, t).await;
        assert!(
            matches!(e, AuthError::Malformed(_) | AuthError::BadSignature),
            "{t}: {e:?}"
        );
    }
    // The header and claims shapes are checked before any key is looked at.
    assert!(matches!(
        refusal(&v, &cases[0]).await,
        AuthError::Malformed(_)
    ));
    assert!(matches!(
        refusal(&v, &cases[2]).await,
        AuthError::Malformed(m) if m.contains("JWE")
    ));
}

#[tokio::test]
async fn refuses_oversized_and_empty() {
    let v = verifier();
    let big = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert_eq!(
        refusal(&v, &big).await,
        AuthError::Oversized {
            limit: MAX_TOKEN_BYTES
        }
    );
    assert_eq!(refusal(&v, "").await, AuthError::Missing);
}

#[tokio::test]
async fn error_text_never_contains_the_token() {
    let v = verifier();
    let t = rs(&with(claims(), "exp", json!(now() - 3600)));
    let e = refusal(&v, &t).await;
    assert!(!e.to_string().contains(&t[..20]));
    assert!(!format!("{e:?}").contains(&t[..20]));
}

#[tokio::test]
async fn reads_nested_and_string_group_claims() {
    let mut cfg = config();
    cfg.groups_claim = "realm_access.roles".into();
    let v = verifier_with(cfg);
    let c = with(claims(), "realm_access", json!({"roles": ["admin", "dev"]}));
    assert_eq!(v.verify(&rs(&c)).await.unwrap().groups, ["admin", "dev"]);

    let mut cfg = config();
    cfg.groups_claim = "https://example.com/groups".into();
    let v = verifier_with(cfg);
    let c = with(claims(), "https://example.com/groups", json!("ops"));
    assert_eq!(v.verify(&rs(&c)).await.unwrap().groups, ["ops"]);

    let v = verifier();
    let c = with(claims(), "groups", json!([1, 2]));
    assert_eq!(
        refusal(&v, &rs(&c)).await,
        AuthError::InvalidClaim("groups".into())
    );
    let mut c = claims();
    c.as_object_mut().unwrap().remove("groups");
    assert!(v.verify(&rs(&c)).await.unwrap().groups.is_empty());
}

#[tokio::test]
async fn requires_a_subject() {
    let v = verifier();
    let mut c = claims();
    c.as_object_mut().unwrap().remove("sub");
    assert_eq!(
        refusal(&v, &rs(&c)).await,
        AuthError::MissingClaim("sub".into())
    );
    let c = with(claims(), "sub", json!(42));
    assert_eq!(
        refusal(&v, &rs(&c)).await,
        AuthError::InvalidClaim("sub".into())
    );
}

#[tokio::test]
async fn caches_verified_tokens_but_not_refusals() {
    let v = verifier();
    let t = rs(&claims());
    let a = v.verify(&t).await.unwrap();
    let b = v.verify(&t).await.unwrap();
    assert!(
        Arc::ptr_eq(&a, &b),
        "second verification comes from the cache"
    );
    let expired = rs(&with(claims(), "exp", json!(now() - 3600)));
    assert_eq!(refusal(&v, &expired).await, AuthError::Expired);
    assert_eq!(refusal(&v, &expired).await, AuthError::Expired);

    let no_cache = Verifier::builder()
        .cache_capacity(0)
        .issuer(
            IssuerVerifier::with_keys(
                &config(),
                &JwkSet {
                    keys: vec![jwk(RSA_A, Algorithm::RS256, "a")],
                },
            )
            .unwrap(),
        )
        .build();
    let a = no_cache.verify(&t).await.unwrap();
    let b = no_cache.verify(&t).await.unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
}

#[tokio::test]
async fn cached_token_stops_working_when_it_expires() {
    let mut cfg = config();
    cfg.leeway = Duration::ZERO;
    let v = verifier_with(cfg);
    let t = rs(&with(claims(), "exp", json!(now() + 1)));
    assert!(v.verify(&t).await.is_ok());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(refusal(&v, &t).await, AuthError::Expired);
}

#[tokio::test]
async fn fails_closed_when_the_jwks_is_unreachable() {
    // A closed port on loopback: the provider is down and nothing is cached.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cfg = config();
    cfg.jwks_url = Some(format!("http://127.0.0.1:{port}/jwks"));
    cfg.http_timeout = Duration::from_secs(2);
    let v = Verifier::builder()
        .issuer(IssuerVerifier::remote(&cfg).unwrap())
        .build();
    let e = refusal(&v, &rs(&claims())).await;
    assert!(matches!(e, AuthError::KeysUnavailable(_)), "{e:?}");
    assert!(e.is_unavailable());
    assert!(!v.issuers().next().unwrap().has_keys());
}

#[test]
fn config_refuses_none_and_hmac_without_secret() {
    let mut cfg = config();
    cfg.algorithms = vec!["none".into()];
    assert_eq!(cfg.validate().unwrap_err().key, "algorithms");
    cfg.algorithms = vec!["HS256".into()];
    let e = cfg.validate().unwrap_err();
    assert!(e.message.contains("hmac_secret"), "{e}");
    cfg.algorithms = vec!["RS257".into()];
    assert!(cfg.validate().unwrap_err().message.contains("unknown"));
    let mut cfg = config();
    cfg.audiences.clear();
    assert_eq!(cfg.validate().unwrap_err().key, "audiences");
    let mut cfg = config();
    cfg.hmac_secret = Some("short".into());
    assert_eq!(cfg.validate().unwrap_err().key, "hmac_secret");
    let mut cfg = config();
    cfg.issuer = "idp-without-scheme".into();
    assert_eq!(cfg.validate().unwrap_err().key, "issuer");
}

#[test]
fn every_refusal_has_a_distinct_code() {
    let all = [
        AuthError::Missing,
        AuthError::Oversized { limit: 1 },
        AuthError::Malformed(String::new()),
        AuthError::AlgorithmNotAllowed(String::new()),
        AuthError::UntrustedIssuer,
        AuthError::UnknownKey,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::IssuedInFuture,
        AuthError::WrongAudience,
        AuthError::MissingClaim(String::new()),
        AuthError::InvalidClaim(String::new()),
        AuthError::KeysUnavailable(String::new()),
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(AuthError::code).collect();
    assert_eq!(codes.len(), all.len());
}
