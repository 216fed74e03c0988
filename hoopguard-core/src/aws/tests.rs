use std::time::{Duration, SystemTime};

use super::sigv4::testing::sign;
use super::*;

fn alice(ttl: u64) -> Identity {
    Identity {
        subject: "alice".into(),
        groups: vec!["dev".into()],
        issuer: "https://idp".into(),
        expires_at: SystemTime::now() + Duration::from_secs(ttl),
        claims: Default::default(),
        namespace: None,
    }
}

fn amz_now() -> (String, String) {
    let t = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    // 2026-11-26T10:00:00Z → 20261126T100000Z
    let compact: String = t.chars().filter(|c| c.is_ascii_digit()).collect();
    (
        format!("{}T{}Z", &compact[..8], &compact[8..14]),
        compact[..8].to_string(),
    )
}

/// The AWS SigV4 test suite's `get-vanilla` case (public test vector): an independent check of
/// the canonical form and the key derivation.
#[test]
fn the_aws_get_vanilla_vector() {
    let headers: Vec<(&str, &[u8])> = vec![
        ("host", b"example.amazonaws.com"),
        ("x-amz-date", b"20150830T123600Z"),
    ];
    let empty = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b""));
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &headers,
        body_sha256: Some(&empty),
    };
    let auth = sign(
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "AKIDEXAMPLE",
        &req,
        "20150830",
        "us-east-1",
        "service",
        &["host", "x-amz-date"],
    );
    assert_eq!(
        auth,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );
}

fn view(headers: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect()
}

/// The S3 request these tests sign and verify.
fn request<'a>(headers: &'a [(&'a str, &'a [u8])], query: &'a str) -> Request<'a> {
    Request {
        method: "GET",
        path: "/bucket/key%20name",
        query,
        headers,
        body_sha256: None,
    }
}

struct Signed {
    headers: Vec<(String, Vec<u8>)>,
}

impl Signed {
    fn new(creds: &PseudoCredentials, secret: &str, query: &str) -> Signed {
        let (amz, date) = amz_now();
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            ("host".into(), b"127.0.0.1:8787".to_vec()),
            ("x-amz-date".into(), amz.into_bytes()),
            (
                "x-amz-security-token".into(),
                creds.token.clone().into_bytes(),
            ),
            ("x-amz-content-sha256".into(), b"UNSIGNED-PAYLOAD".to_vec()),
        ];
        let view = view(&headers);
        let auth = sign(
            secret,
            &creds.access_key_id,
            &request(&view, query),
            &date,
            "us-east-1",
            "s3",
            &[
                "host",
                "x-amz-content-sha256",
                "x-amz-date",
                "x-amz-security-token",
            ],
        );
        headers.push(("authorization".into(), auth.into_bytes()));
        Signed { headers }
    }

    fn verify(&self, minter: &Minter, query: &str) -> Result<Verified, SigError> {
        let view = view(&self.headers);
        verify_request(minter, &request(&view, query), SystemTime::now())
    }

    fn set(&mut self, name: &str, value: &[u8]) {
        for (n, v) in &mut self.headers {
            if n == name {
                *v = value.to_vec();
            }
        }
    }
}

#[test]
fn a_request_signed_with_the_pseudo_secret_verifies() {
    let m = Minter::new(&[1u8; 32]);
    let creds = m
        .mint(&alice(3600), "default", Duration::from_secs(900))
        .unwrap();
    assert!(creds.access_key_id.starts_with(KEY_PREFIX));
    assert_eq!(creds.secret_access_key.len(), 40);
    let s = Signed::new(&creds, &creds.secret_access_key, "list-type=2&prefix=a%2Fb");
    let v = s.verify(&m, "list-type=2&prefix=a%2Fb").unwrap();
    assert_eq!(
        (
            v.session.subject.as_str(),
            v.region.as_str(),
            v.service.as_str()
        ),
        ("alice", "us-east-1", "s3")
    );
    // Debug output never shows the secret or the token.
    let dbg = format!("{creds:?}");
    assert!(!dbg.contains(&creds.secret_access_key) && !dbg.contains(&creds.token));
}

#[test]
fn refusals() {
    let m = Minter::new(&[1u8; 32]);
    let creds = m
        .mint(&alice(3600), "default", Duration::from_secs(900))
        .unwrap();
    // Wrong secret.
    let s = Signed::new(&creds, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "");
    assert_eq!(s.verify(&m, "").unwrap_err(), SigError::Mismatch);
    // A changed query after signing.
    let s = Signed::new(&creds, &creds.secret_access_key, "prefix=a");
    assert_eq!(s.verify(&m, "prefix=b").unwrap_err(), SigError::Mismatch);
    // A forged token, and a token from another gateway's key.
    let mut s = Signed::new(&creds, &creds.secret_access_key, "");
    s.set("x-amz-security-token", b"hg1.eyJ.AAAA");
    assert_eq!(s.verify(&m, "").unwrap_err(), SigError::UnknownKey);
    let other = Minter::new(&[2u8; 32]);
    let s = Signed::new(&creds, &creds.secret_access_key, "");
    assert_eq!(s.verify(&other, "").unwrap_err(), SigError::UnknownKey);
    // Skew.
    let mut s = Signed::new(&creds, &creds.secret_access_key, "");
    s.set("x-amz-date", b"20200101T000000Z");
    assert!(matches!(
        s.verify(&m, "").unwrap_err(),
        SigError::Skew | SigError::Malformed(_)
    ));
    // SigV2, presigned, unsigned.
    let mut s = Signed::new(&creds, &creds.secret_access_key, "");
    s.set("authorization", b"AWS AKIDEXAMPLE:signature");
    assert!(matches!(
        s.verify(&m, "").unwrap_err(),
        SigError::Unsupported(_)
    ));
    let view: Vec<(&str, &[u8])> = vec![("host", b"h")];
    let req = Request {
        method: "GET",
        path: "/",
        query: "X-Amz-Signature=abc",
        headers: &view,
        body_sha256: None,
    };
    assert!(matches!(
        verify_request(&m, &req, SystemTime::now()).unwrap_err(),
        SigError::Malformed(_)
    ));
    let req = Request {
        method: "GET",
        path: "/",
        query: "",
        headers: &view,
        body_sha256: None,
    };
    assert_eq!(
        verify_request(&m, &req, SystemTime::now()).unwrap_err(),
        SigError::Missing
    );
}

#[test]
fn credentials_never_outlive_the_identity() {
    let m = Minter::new(&[1u8; 32]);
    let c = m
        .mint(&alice(600), "default", Duration::from_secs(3600))
        .unwrap();
    let s = m.open(&c.token).unwrap();
    let left = s.exp.saturating_sub(
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    );
    assert!(left <= 600, "{left}");
    assert_eq!(
        m.mint(&alice(30), "default", Duration::from_secs(3600))
            .unwrap_err(),
        CredError::TooShort
    );
}

/// A URL presigned by the AWS SDK's own signer (aws-sigv4) with the pseudo-credentials.
fn presign(creds: &PseudoCredentials, secret: &str, path: &str, at: SystemTime) -> String {
    use aws_sigv4::http_request::{
        PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
        UriPathNormalizationMode,
    };
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(300));
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        secret,
        Some(creds.token.clone()),
        None,
        "test",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(at)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let url = format!("http://127.0.0.1:8787{path}");
    let signable = SignableRequest::new(
        "GET",
        &url,
        std::iter::once(("host", "127.0.0.1:8787")),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let (instructions, _) = aws_sigv4::http_request::sign(signable, &params)
        .unwrap()
        .into_parts();
    let mut req = http::Request::builder().uri(&url).body(()).unwrap();
    instructions.apply_to_request_http1x(&mut req);
    req.uri().query().unwrap().to_string()
}

#[test]
fn urls_presigned_with_the_pseudo_credentials_verify_and_nothing_else() {
    let m = Minter::new(&[3u8; 32]);
    let creds = m
        .mint(&alice(3600), "default", Duration::from_secs(3600))
        .unwrap();
    let headers: Vec<(&str, &[u8])> = vec![("host", b"127.0.0.1:8787")];
    let now = SystemTime::now();
    let check = |query: &str, path: &str, at: SystemTime| {
        verify_request(
            &m,
            &Request {
                method: "GET",
                path,
                query,
                headers: &headers,
                body_sha256: None,
            },
            at,
        )
    };
    let q = presign(&creds, &creds.secret_access_key, "/bucket/report.csv", now);
    let v = check(&q, "/bucket/report.csv", now).unwrap();
    assert!(v.presigned);
    assert_eq!(v.session.subject, "alice");
    // Another object, another secret, after its expiry, a date in the future.
    assert_eq!(
        check(&q, "/bucket/other.csv", now).unwrap_err(),
        SigError::Mismatch
    );
    let wrong = presign(
        &creds,
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "/bucket/report.csv",
        now,
    );
    assert_eq!(
        check(&wrong, "/bucket/report.csv", now).unwrap_err(),
        SigError::Mismatch
    );
    assert_eq!(
        check(&q, "/bucket/report.csv", now + Duration::from_secs(301)).unwrap_err(),
        SigError::Expired
    );
    let future = presign(
        &creds,
        &creds.secret_access_key,
        "/bucket/report.csv",
        now + Duration::from_secs(3600),
    );
    assert_eq!(
        check(&future, "/bucket/report.csv", now).unwrap_err(),
        SigError::Skew
    );
    // Presigned with a key this gateway never issued.
    let other = Minter::new(&[4u8; 32])
        .mint(&alice(3600), "default", Duration::from_secs(3600))
        .unwrap();
    let foreign = presign(&other, &other.secret_access_key, "/bucket/report.csv", now);
    assert_eq!(
        check(&foreign, "/bucket/report.csv", now).unwrap_err(),
        SigError::UnknownKey
    );
}

#[test]
fn web_identity_credentials_travel_sealed_and_only_a_gateway_with_the_key_opens_them() {
    let (a, b) = (Minter::new(&[7u8; 32]), Minter::new(&[7u8; 32]));
    let mut session = a
        .session(&alice(3600), "federated", Duration::from_secs(900))
        .unwrap();
    let creds = broker::Brokered {
        access_key_id: "ASIAREALKEYFROMSTS00".into(),
        secret_access_key: "real-secret-from-sts-never-in-clear".into(),
        session_token: Some("real-session-token".into()),
        expires: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(4_000_000_000)),
    };
    a.seal(&mut session, &creds).unwrap();
    let issued = a.issue(&session);
    // Nothing of them is readable in what the agent holds.
    for secret in ["real-secret-from-sts", "ASIAREALKEY", "real-session-token"] {
        assert!(!issued.token.contains(secret));
        let decoded = issued
            .token
            .split('.')
            .nth(1)
            .and_then(|p| B64.decode(p).ok())
            .unwrap();
        assert!(!String::from_utf8_lossy(&decoded).contains(secret));
    }
    // Another replica with the same key opens them; the twin without a seal has none.
    let opened = b.open(&issued.token).unwrap();
    assert_eq!(opened.web_identity.as_deref(), Some(&creds));
    let plain = b
        .mint(&alice(3600), "default", Duration::from_secs(900))
        .unwrap();
    assert!(b.open(&plain.token).unwrap().web_identity.is_none());
    // A gateway with another key opens nothing.
    assert_eq!(
        Minter::new(&[8u8; 32]).open(&issued.token),
        Err(CredError::Forged)
    );
    // A seal copied into another session does not open there: it is bound to its session id.
    let mut other = a
        .session(&alice(3600), "federated", Duration::from_secs(900))
        .unwrap();
    other.sealed = session.sealed.clone();
    assert_eq!(a.open(&a.issue(&other).token), Err(CredError::Forged));
    // Debug output never shows them.
    let shown = format!("{opened:?}");
    assert!(
        !shown.contains("real-secret") && !shown.contains("real-session-token"),
        "{shown}"
    );
}

#[test]
fn a_rotated_gateway_accepts_what_the_old_key_minted_and_mints_with_the_new() {
    let (old, new) = ([5u8; 32], [6u8; 32]);
    let before = Minter::new(&old);
    let rotated = Minter::new(&new).with_previous(&[old]);
    // An agent's credentials from before the rotation, with sealed web-identity credentials.
    let mut session = before
        .session(&alice(3600), "federated", Duration::from_secs(900))
        .unwrap();
    let sts = broker::Brokered {
        access_key_id: "ASIAROTATION00000000".into(),
        secret_access_key: "sts-secret".into(),
        session_token: None,
        expires: None,
    };
    before.seal(&mut session, &sts).unwrap();
    let creds = before.issue(&session);
    // The rotated gateway verifies a request signed with them and opens the seal.
    let s = Signed::new(&creds, &creds.secret_access_key, "a=1");
    let v = s.verify(&rotated, "a=1").unwrap();
    assert_eq!(v.session.key, 1);
    assert_eq!(v.session.web_identity.as_deref(), Some(&sts));
    // What it mints now is the new key's: the old gateway refuses it, the new alone accepts it.
    let fresh = rotated
        .mint(&alice(3600), "default", Duration::from_secs(900))
        .unwrap();
    assert_eq!(before.open(&fresh.token), Err(CredError::Forged));
    let s = Signed::new(&fresh, &fresh.secret_access_key, "a=1");
    assert_eq!(s.verify(&rotated, "a=1").unwrap().session.key, 0);
    assert!(s.verify(&Minter::new(&new), "a=1").is_ok());
    // Once the old key is dropped, its credentials are refused (the twin of the first check).
    let s = Signed::new(&creds, &creds.secret_access_key, "a=1");
    assert!(matches!(
        s.verify(&Minter::new(&new), "a=1"),
        Err(SigError::UnknownKey)
    ));
    // The old secret does not verify as a new-key credential (keys never mix).
    let mut forged = creds.clone();
    forged.secret_access_key = fresh.secret_access_key.clone();
    let s = Signed::new(&forged, &forged.secret_access_key, "a=1");
    assert!(s.verify(&rotated, "a=1").is_err());
}
