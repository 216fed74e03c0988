//! Test vectors for every built-in detector (at least five positive and five negative each), the
//! field rules, custom rules, actions, and the streaming invariant.
//!
//! Vectors are written for these tests; token shapes follow the providers' published formats.
//! Credentials here are fake: valid in shape only.

use std::sync::Arc;

use super::*;

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(&MaskConfig::default()).unwrap())
}

fn masked(e: &Engine, input: &str) -> String {
    String::from_utf8(e.mask(input.as_bytes()).0).unwrap()
}

/// (rule, positives, negatives): each positive is masked as a whole inside `x <p> y`; each
/// negative passes unchanged.
fn vectors() -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        (
            "aws-access-key-id",
            s(&[
                "AKIAIOSFODNN7EXAMPLE",
                "ASIAY34FZKBOKMUTVV7A",
                "AKIA2E0A8F3B244C9986",
                "ABIAZZZZZZZZZZZZZZZZ",
                "ACCA1234567890ABCDEF",
                "AKIAQWERTYUIOPASDFGH",
            ]),
            s(&[
                "AKIAIOSFODNN7EXAMPL",
                "AKIAIOSFODNN7EXAMPLEX",
                "XAKIAIOSFODNN7EXAMPLE",
                "akiaiosfodnn7example",
                "AKIA-IOSFODNN7EXAMPL",
                "AKIAiosfodnn7EXAMPLE",
            ]),
        ),
        (
            "github-token",
            s(&[
                "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
                "gho_16C7e42F292c6912E7710c838347Ae178B4a",
                "ghu_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij",
                "ghs_0123456789abcdefghijABCDEFGHIJ012345",
                "ghr_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
                "github_pat_11ABCDEFG0123456789abc_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
            ]),
            s(&[
                "ghp_short",
                "ghx_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
                "xghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
                "ghp-aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
                "github_pat_tooshort",
                "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ012345678",
            ]),
        ),
        (
            "gitlab-token",
            s(&[
                "glpat-abcdefghij0123456789",
                "glpat-ABCDEFGHIJ_KLMNOPQRS",
                "glpat-aaaaaaaaaaaaaaaaaaaa",
                "glpat-0123456789-_abcdefgh",
                "glpat-ZyXwVuTsRqPoNmLkJiHg",
            ]),
            s(&[
                "glpat-short",
                "glpat-abcdefghij01234567890",
                "xglpat-abcdefghij0123456789",
                "glpat_abcdefghij0123456789",
                "glpat-abcdefghij012345678",
            ]),
        ),
        (
            "slack-token",
            s(&[
                "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
                "xoxp-1234567890-1234567890-1234567890-abcdef",
                "xoxa-2-abcdefghijkl",
                "xoxr-abcdef0123456789",
                "xoxs-1111111111-222222",
            ]),
            s(&[
                "xoxb-short",
                "xoxz-123456789012-1234567890123",
                "axoxb-123456789012-1234567890123",
                "xoxb_123456789012-1234567890123",
                "xox-123456789012",
            ]),
        ),
        (
            "slack-webhook",
            s(&[
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/TABCDEFGH/BABCDEFGH/abcdefghijklmnopqrstuvwx",
                "http://hooks.slack.com/services/T1/B2/abcdefghijklmnopqrstuvwxyz",
                "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/0123456789abcdef01234567",
                "https://hooks.slack.com/services/TZZZZZZZZ/BZZZZZZZZ/ZZZZZZZZZZZZZZZZZZZZZZZZ",
            ]),
            s(&[
                "https://hooks.slack.com/services/",
                "https://hooks.slack.com/services/T1",
                "https://hooks.slack.com/services/T1/B2",
                "https://hooks.slack.com/apps/T1/B2/abcdefghijklmnopqrstuv",
                "https://example.com/services/T1/B2/abcdefghijklmnopqrstuv",
            ]),
        ),
        (
            "stripe-key",
            s(&[
                "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
                "rk_live_abcdefghij0123456789",
                "rk_test_ABCDEFGHIJ",
                "sk_live_51H8abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
            ]),
            s(&[
                "sk_live_short",
                "sk_prod_4eC39HqLyjWDarjtT1zdp7dc",
                "pk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "xsk_live_4eC39HqLyjWDarjtT1zdp7dc",
                "sk_live-4eC39HqLyjWDarjtT1zdp7dc",
            ]),
        ),
        (
            "google-api-key",
            s(&[
                "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
                "AIzaSyA-1234567890abcdefghijklmnopqrstu",
                "AIza012345678901234567890123456789012_-",
                "AIzaZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
                "AIzaabcdefghijklmnopqrstuvwxyz012345678",
            ]),
            s(&[
                "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQ",
                "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQeX",
                "xAIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
                "aIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe",
                "AIza",
            ]),
        ),
        (
            "jwt",
            s(&[
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                "eyJhbGciOiJSUzI1NiIsImtpZCI6ImEifQ.eyJpc3MiOiJodHRwczovL2lkcCJ9.c2lnbmF0dXJlc2lnbmF0dXJlc2ln",
                "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhIjoxfQ0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhbGljZSJ9.QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo",
                "eyJraWQiOiJrMSIsImFsZyI6IlBTMjU2In0.eyJleHAiOjE3MDAwMDAwMDB9.x-_x-_x-_x-_x-_x-_x-_",
            ]),
            s(&[
                "eyJhbGciOiJIUzI1NiJ9",
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0",
                "eyJhbGciOiJIUzI1NiJ9.notjson000.dozjgNryP4J3jVmNHl0w5N_XgL0",
                "xeyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0",
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.short",
            ]),
        ),
        (
            "email",
            s(&[
                "alice@example.com",
                "bob.smith+tag@mail.example.co.uk",
                "x_y-z%1@sub-domain.example.org",
                "a@b.io",
                "UPPER.Case@Example.COM",
            ]),
            s(&[
                "alice@",
                "@example.com",
                "alice@example",
                "alice@example.c",
                "alice@example.c0m",
            ]),
        ),
        (
            "credit-card",
            s(&[
                "4111111111111111",
                "4111 1111 1111 1111",
                "5500-0000-0000-0004",
                "378282246310005",
                "6011111111111117",
                "3530111333300000",
            ]),
            s(&[
                "4111111111111112",
                "1234567812345678",
                "4111 1111  1111 1111",
                "41111111111111111111",
                "4111-1111 1111-1111",
                "411111111111",
            ]),
        ),
        (
            "us-ssn",
            s(&[
                "123-45-6789",
                "078-05-1120",
                "219-09-9999",
                "457-55-5462",
                "001-01-0001",
            ]),
            s(&[
                "000-12-3456",
                "666-12-3456",
                "900-12-3456",
                "123-00-4567",
                "123-45-0000",
                "123-456-789",
            ]),
        ),
        (
            "iban",
            s(&[
                "DE89370400440532013000",
                "GB29NWBK60161331926819",
                "DE89 3704 0044 0532 0130 00",
                "FR1420041010050500013M02606",
                "NL91ABNA0417164300",
                "GB82 WEST 1234 5698 7654 32",
            ]),
            s(&[
                "DE89370400440532013001",
                "GB29NWBK60161331926818",
                "XX89370400440532013000",
                "DE8937040044053201300",
                "NL91ABNA04171643001",
            ]),
        ),
    ]
}

#[test]
fn every_detector_has_positive_and_negative_vectors() {
    let e = engine();
    let mut failures = Vec::new();
    for (rule, pos, neg) in vectors() {
        assert!(pos.len() >= 5 && neg.len() >= 5, "{rule}");
        for p in &pos {
            let out = masked(&e, &format!("x {p} y"));
            if out != format!("x [MASKED:{rule}] y") {
                failures.push(format!("{rule} must mask {p}: {out}"));
            }
        }
        for n in &neg {
            let out = masked(&e, &format!("x {n} y"));
            if out.contains(&format!("[MASKED:{rule}")) {
                failures.push(format!("{rule} must not match {n}: {out}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn keyword_rules_mask_only_the_value() {
    let e = engine();
    let cases = [
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = [MASKED:aws-secret-access-key]",
        ),
        (
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            "AWS_SECRET_ACCESS_KEY=[MASKED:aws-secret-access-key]\n",
        ),
        (
            "export AWS_SECRET_ACCESS_KEY='wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
            "export AWS_SECRET_ACCESS_KEY='[MASKED:aws-secret-access-key]'",
        ),
        (
            "\"aws_secret_access_key\": \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"",
            "\"aws_secret_access_key\": \"[MASKED:aws-secret-access-key]\"",
        ),
        (
            "aws_secret_access_key: 0123456789012345678901234567890123456789",
            "aws_secret_access_key: [MASKED:aws-secret-access-key]",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(masked(&e, input), want);
    }
    let negatives = [
        "aws_secret_access_key = short",
        "aws_secret_access_key is documented here",
        "my_aws_secret_access_key_x = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEYTOOLONG",
        "AWS_SECRET_ACCESS_KEY",
    ];
    for n in negatives {
        // Not this rule (a key that merely contains `secret` may be another rule's).
        let out = masked(&e, n);
        assert!(!out.contains("aws-secret-access-key"), "{out}");
        assert!(
            out.contains("short")
                || out.contains("documented")
                || out.contains("generic")
                || out == n,
            "{out}"
        );
    }
    let token = "FwoGZXIvYXdzEJr//////////wEaDExampleSessionTokenValueThatIsLongEnoughToBeRealisticAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    let session = [
        format!("aws_session_token = {token}"),
        format!("AWS_SESSION_TOKEN={token}"),
        format!("export AWS_SESSION_TOKEN='{token}'"),
        format!("aws_security_token: {token}"),
        format!("\"AWS_SECURITY_TOKEN\": \"{token}\""),
    ];
    for input in &session {
        let out = masked(&e, input);
        assert!(
            out.contains("[MASKED:aws-session-token]") && !out.contains(&token[..20]),
            "{out}"
        );
    }
    let long = format!("aws_session_token = {}", "A".repeat(3000));
    let glued = format!("my_aws_session_token_x={token}");
    for n in [
        "aws_session_token = short",
        "aws_session_token is set by the SDK",
        "AWS_SESSION_TOKEN",
        glued.as_str(),
        long.as_str(),
    ] {
        assert_eq!(masked(&e, n), n);
    }
}

#[test]
fn private_keys_are_masked_from_begin_to_end() {
    let e = engine();
    let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\naFDrBz9vFqU4yMVDE0Ng8dGlkMrnhyUhwiYbXTGJAmRdkwBJjbTuCGXp2wIDAQAB\n-----END RSA PRIVATE KEY-----";
    for wrapper in ["{}", "before\n{}\nafter", "\"{}\""] {
        let input = wrapper.replace("{}", key);
        assert_eq!(
            masked(&e, &input),
            wrapper.replace("{}", "[MASKED:private-key]")
        );
    }
    let json_escaped = key.replace('\n', "\\n");
    assert_eq!(
        masked(&e, &format!("{{\"k\": \"{json_escaped}\"}}")),
        "{\"k\": \"[MASKED:private-key]\"}"
    );
    for label in [
        "OPENSSH PRIVATE KEY",
        "EC PRIVATE KEY",
        "PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ] {
        let k = format!("-----BEGIN {label}-----\nabc\n-----END {label}-----");
        assert_eq!(masked(&e, &k), "[MASKED:private-key]", "{label}");
    }
    for n in [
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        "-----BEGIN ",
        "-----BEGIN PGP SIGNATURE-----",
        "BEGIN RSA PRIVATE KEY",
    ] {
        assert_eq!(masked(&e, n), n);
    }
    // No END: masked to the end of the input rather than leaked.
    assert_eq!(
        masked(&e, "x -----BEGIN PRIVATE KEY-----\nMIIE"),
        "x [MASKED:private-key]"
    );
}

#[test]
fn database_passwords_are_masked_inside_connection_strings() {
    let e = engine();
    let cases = [
        (
            "postgres://app:s3cr3t@db.internal:5432/app",
            "postgres://app:[MASKED:db-password]@db.internal:5432/app",
        ),
        (
            "postgresql://u:p%40ss@h/db",
            "postgresql://u:[MASKED:db-password]@h/db",
        ),
        (
            "mysql://root:hunter2@127.0.0.1/mysql",
            "mysql://root:[MASKED:db-password]@127.0.0.1/mysql",
        ),
        (
            "mongodb+srv://admin:Pa55w0rd!@cluster0.mongodb.net/test",
            "mongodb+srv://admin:[MASKED:db-password]@cluster0.mongodb.net/test",
        ),
        (
            "redis://default:abc123@cache:6379",
            "redis://default:[MASKED:db-password]@cache:6379",
        ),
        (
            "{\"DATABASE_URL\": \"amqp://guest:guest@rabbit\"}",
            "{\"DATABASE_URL\": \"amqp://guest:[MASKED:db-password]@rabbit\"}",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(masked(&e, input), want);
    }
    // Either URL rule works without the other.
    let only_url = Engine::new(&MaskConfig {
        disable: vec!["db-password".into()],
        ..MaskConfig::default()
    })
    .unwrap();
    assert_eq!(
        masked(&only_url, "https://u:pw@h postgres://u:pw@h"),
        "https://u:[MASKED:url-password]@h postgres://u:pw@h"
    );
    let only_db = Engine::new(&MaskConfig {
        disable: vec!["url-password".into()],
        ..MaskConfig::default()
    })
    .unwrap();
    assert_eq!(
        masked(&only_db, "https://u:pw@h postgres://u:pw@h"),
        "https://u:pw@h postgres://u:[MASKED:db-password]@h"
    );
    // Web, file-transfer and directory URLs are `url-password`.
    for (input, want) in [
        (
            "https://user:pass@example.com/",
            "https://user:[MASKED:url-password]@example.com/",
        ),
        (
            "https://x-access-token:s3cr3t-t0ken@github.com/org/repo.git",
            "https://x-access-token:[MASKED:url-password]@github.com/org/repo.git",
        ),
        (
            "ftp://anon:pw123@ftp.example.org/pub",
            "ftp://anon:[MASKED:url-password]@ftp.example.org/pub",
        ),
        (
            "sftp://deploy:Zx9!q@files:22/in",
            "sftp://deploy:[MASKED:url-password]@files:22/in",
        ),
        (
            "{\"proxy\": \"http://me:pw@proxy:3128\"}",
            "{\"proxy\": \"http://me:[MASKED:url-password]@proxy:3128\"}",
        ),
    ] {
        assert_eq!(masked(&e, input), want);
    }
    for n in [
        "https://example.com:8443/a@b",
        "https://example.com/a:b",
        "xhttps://a:b@c",
        "http://[::1]:8080/",
        "https://example.com/?q=a:b@c",
    ] {
        assert_eq!(masked(&e, n), n);
    }
    for n in [
        "postgres://db.internal:5432/app",
        "postgres://app@db/app",
        "mysql://:@host",
        "xpostgres://app:secret@db",
    ] {
        assert_eq!(masked(&e, n), n);
    }
}

#[test]
fn json_fields_and_xml_elements_are_masked_whatever_the_value() {
    let e = engine();
    let json = r#"{"Credentials":{"AccessKeyId":"ASIAEXAMPLEEXAMPLE12","SecretAccessKey":"x","SessionToken":"a\"b\\c","Expiration":"2026-11-26T10:00:00Z"},"Password":null,"password":"p w","Other":"SecretAccessKey"}"#;
    let out = masked(&e, json);
    assert_eq!(
        out,
        r#"{"Credentials":{"AccessKeyId":"[MASKED:aws-access-key-id]","SecretAccessKey":"[MASKED:json-field]","SessionToken":"[MASKED:json-field]","Expiration":"2026-11-26T10:00:00Z"},"Password":null,"password":"[MASKED:json-field]","Other":"SecretAccessKey"}"#
    );
    let _: serde_json::Value = serde_json::from_str(&out).expect("still valid JSON");
    let pretty = "{\n  \"SecretString\" :  \"{\\\"user\\\":\\\"u\\\"}\"\n}";
    assert_eq!(
        masked(&e, pretty),
        "{\n  \"SecretString\" :  \"[MASKED:json-field]\"\n}"
    );

    let xml = "<AssumeRoleResult><Credentials><AccessKeyId>ASIAEXAMPLEEXAMPLE12</AccessKeyId><SecretAccessKey>wJalr/K7MDENG</SecretAccessKey><SessionToken>FwoGZX</SessionToken></Credentials></AssumeRoleResult>";
    assert_eq!(
        masked(&e, xml),
        "<AssumeRoleResult><Credentials><AccessKeyId>[MASKED:aws-access-key-id]</AccessKeyId><SecretAccessKey>[MASKED:xml-field]</SecretAccessKey><SessionToken>[MASKED:xml-field]</SessionToken></Credentials></AssumeRoleResult>"
    );
    for n in [
        "<SecretAccessKey/>",
        "<SecretAccessKey></SecretAccessKey>",
        "<SecretAccessKey>x</Other>",
        "SecretAccessKey: x",
        "\"SecretAccessKey\": 5",
    ] {
        assert_eq!(masked(&e, n), n);
    }
    // A value cut off by the end of the input is masked to the end, never passed through.
    assert_eq!(
        masked(&e, "<Password>hunter2"),
        "<Password>[MASKED:xml-field]"
    );
    assert_eq!(
        masked(&e, r#"{"Password":"hunter2"#),
        r#"{"Password":"[MASKED:json-field]"#
    );
    // --format text turns the field rules off; json keeps only JSON.
    let text = Engine::new(&MaskConfig {
        format: Format::Text,
        ..MaskConfig::default()
    })
    .unwrap();
    assert_eq!(masked(&text, r#"{"Password":"x"}"#), r#"{"Password":"x"}"#);
    let only_json = Engine::new(&MaskConfig {
        format: Format::Json,
        ..MaskConfig::default()
    })
    .unwrap();
    assert_eq!(
        masked(&only_json, "<Password>x</Password>"),
        "<Password>x</Password>"
    );
}

#[test]
fn actions_keep_last_and_hash() {
    let mut cfg = MaskConfig::default();
    cfg.actions.insert("credit-card".into(), Action::KeepLast);
    cfg.actions.insert("email".into(), Action::Hash);
    cfg.hash_key = Some("0123456789abcdef-test-key".into());
    let e = Engine::new(&cfg).unwrap();
    assert_eq!(
        masked(&e, "card 4111 1111 1111 1111."),
        "card [MASKED:credit-card…1111]."
    );
    let a = masked(&e, "alice@example.com");
    let b = masked(&e, "to alice@example.com and bob@example.com");
    assert!(
        a.starts_with("[MASKED:email:") && a.len() == "[MASKED:email:]".len() + 12,
        "{a}"
    );
    assert!(
        b.contains(&a),
        "equal values give equal pseudonyms: {a} in {b}"
    );
    assert_eq!(b.matches("[MASKED:email:").count(), 2);
    assert_ne!(b.replacen(&a, "", 1).find(&a), Some(0));
    // The same key gives the same pseudonym in another engine.
    let e2 = Engine::new(&cfg).unwrap();
    assert_eq!(masked(&e2, "alice@example.com"), a);
}

#[test]
fn custom_rules() {
    let cfg = MaskConfig {
        rules: vec![
            CustomRule {
                name: "employee-id".into(),
                regex: r"EMP-[0-9]{6}".into(),
                group: None,
                validator: None,
                keywords: vec![],
                action: Action::Redact,
            },
            CustomRule {
                name: "api-secret".into(),
                regex: r"secret=([A-Za-z0-9]{8,32})".into(),
                group: Some(1),
                validator: None,
                keywords: vec![],
                action: Action::Redact,
            },
            CustomRule {
                name: "account".into(),
                regex: r"[0-9]{11}".into(),
                group: None,
                validator: Some(Validator::Luhn),
                keywords: vec!["account".into()],
                action: Action::Redact,
            },
        ],
        ..MaskConfig::default()
    };
    let e = Engine::new(&cfg).unwrap();
    assert_eq!(masked(&e, "id EMP-123456 ok"), "id [MASKED:employee-id] ok");
    assert_eq!(
        masked(&e, "url?secret=abcdefgh123&x=1"),
        "url?secret=[MASKED:api-secret]&x=1"
    );
    assert_eq!(
        masked(&e, "Account no. 79927398713"),
        "Account no. [MASKED:account]"
    );
    assert_eq!(
        masked(&e, "order no. 79927398713"),
        "order no. 79927398713",
        "keyword missing"
    );
    assert_eq!(
        masked(&e, "account 79927398714"),
        "account 79927398714",
        "Luhn fails"
    );

    let bad = |regex: &str, group: Option<usize>| {
        let cfg = MaskConfig {
            rules: vec![CustomRule {
                name: "r".into(),
                regex: regex.into(),
                group,
                validator: None,
                keywords: vec![],
                action: Action::Redact,
            }],
            ..MaskConfig::default()
        };
        Engine::new(&cfg).unwrap_err()
    };
    assert!(bad(r"a+", None).message.contains("unbounded"));
    assert!(bad(r"[a-z]{1,9000}", None).message.contains("limit"));
    assert!(bad(r"(", None).message.contains("not a valid pattern"));
    assert_eq!(bad(r"a{1,3}", Some(1)).key, "rules[0].group");
    assert!(bad(r"a?", None).message.contains("empty"));
    let e = Engine::new(&MaskConfig {
        disable: vec!["nope".into()],
        ..MaskConfig::default()
    })
    .unwrap_err();
    assert_eq!(e.key, "disable");
}

#[test]
fn disabled_rules_do_not_fire() {
    let e = Engine::new(&MaskConfig {
        disable: vec!["email".into(), "credit-card".into()],
        ..MaskConfig::default()
    })
    .unwrap();
    assert_eq!(
        masked(&e, "alice@example.com 4111111111111111"),
        "alice@example.com 4111111111111111"
    );
    assert!(!e.builtin_rules().contains(&"email"));
}

#[test]
fn non_ascii_and_binary_input_pass_through() {
    let e = engine();
    let input = "Grüße, 東京 — ключ AKIAIOSFODNN7EXAMPLE ✓ ünïcödé@example.com";
    // The local part before `@` is not ASCII, so this is not an address the rule knows.
    assert_eq!(
        masked(&e, input),
        "Grüße, 東京 — ключ [MASKED:aws-access-key-id] ✓ ünïcödé@example.com"
    );
    assert_eq!(
        masked(&e, "почта: bob@example.com"),
        "почта: [MASKED:email]"
    );
    let binary: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let (out, _) = e.mask(&binary);
    assert_eq!(out, binary);
    let invalid = b"\xff\xfe AKIAIOSFODNN7EXAMPLE \xc3\x28";
    let (out, _) = e.mask(invalid);
    assert_eq!(
        out,
        b"\xff\xfe [MASKED:aws-access-key-id] \xc3\x28".to_vec()
    );
}

#[test]
fn stream_holds_back_little_and_matches_whole_buffer() {
    let e = engine();
    let input = format!(
        "{}AKIAIOSFODNN7EXAMPLE{}",
        "a ".repeat(50_000),
        " b".repeat(50_000)
    );
    let mut s = e.stream();
    let mut out = Vec::new();
    for chunk in input.as_bytes().chunks(4096) {
        s.push(chunk, &mut out);
        assert!(s.held() <= 256, "held {}", s.held());
    }
    s.finish(&mut out);
    assert_eq!(out, e.mask(input.as_bytes()).0);
    assert_eq!(s.stats().matches["aws-access-key-id"], 1);
    assert_eq!(s.stats().bytes_in, input.len() as u64);
    assert_eq!(s.stats().bytes_out, out.len() as u64);
}

/// A corpus with every kind of match, near-misses and JSON/XML structure, for the chunking
/// property below.
fn corpus() -> String {
    let mut s = String::new();
    for (_, pos, neg) in vectors() {
        for p in pos {
            s.push_str(&format!("[{p}] "));
        }
        for n in neg {
            s.push_str(&format!("{n}\n"));
        }
    }
    s.push_str(r#"{"SecretAccessKey":"abc\"def","Password":"p","x":"alice@example.com"}<SessionToken>tok</SessionToken>"#);
    s.push_str("postgres://app:s3cr3t@db/app -----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY----- ");
    s.push_str("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY 123-45-6789 4111-1111-1111-1111");
    // The token rules' vectors, bare and inside JSON strings after escapes.
    for (_, pos, neg) in token_vectors() {
        for (t, _, _) in pos {
            s.push_str(&format!("{t} \"a\\n{t}\\u000a\" "));
        }
        for n in neg {
            s.push_str(&format!("{n}\\n"));
        }
    }
    s.push_str(r#"{"v":"{\"password\": \"a\\\"b\", \"k\":\"\\naws_secret_access_key = wJalrXUtnFEMI\/K7MDENG\/bPxRfiCYEXAMPLEKEY\"}"}"#);
    s
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// The streaming invariant: for every way of cutting the input into chunks, the output
    /// equals whole-buffer masking.
    #[test]
    fn any_chunking_gives_the_whole_buffer_result(cuts in proptest::collection::vec(0usize..20_000, 0..40), seed in 0usize..1000) {
        let e = engine();
        let base = corpus();
        // Vary the input too: rotate the corpus.
        let k = seed * 7 % base.len();
        let input = format!("{}{}", &base[base.floor_char_boundary(k)..], &base[..base.floor_char_boundary(k)]);
        let bytes = input.as_bytes();
        let whole = e.mask(bytes).0;
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut s = e.stream();
        let mut out = Vec::new();
        let mut last = 0;
        for c in cuts {
            s.push(&bytes[last..c], &mut out);
            last = c;
        }
        s.push(&bytes[last..], &mut out);
        s.finish(&mut out);
        proptest::prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&whole));
    }

    /// Byte-at-a-time streaming of arbitrary short inputs built from tricky pieces.
    #[test]
    fn tiny_chunks_agree(pieces in proptest::collection::vec(proptest::sample::select(vec![
        "AKIA", "IOSFODNN7EXAMPLE", "@", "example.com", "4111", " 1111", "-", "\"", "Password", "\":\"",
        "<", ">", "</", "SecretAccessKey", "eyJ", "abc", ".", "postgres", "://", "u:p", "DE89", "3704 0044 0532 0130 00",
        "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "ghp_", "0123456789abcdefghij0123456789abcdef", " ", "\n",
        "\\n", "\\\"", "\\u000a", "\\", "aws_secret_access_key", " = ", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "12345678", "9:AA", "0123456789abcdefghijABCDEFGHIJ_-xyz", "0123456789abcdef0123456789abcdef", "-us1",
        ".atlasv1.", "Q~", "sk-ant-api03-", "Basic ", "YWxpY2U6c2VjcmV0", "AccountKey=", "==",
    ]), 0..30)) {
        let e = engine();
        let input = pieces.concat();
        let whole = e.mask(input.as_bytes()).0;
        let mut s = e.stream();
        let mut out = Vec::new();
        for b in input.as_bytes() {
            s.push(std::slice::from_ref(b), &mut out);
        }
        s.finish(&mut out);
        proptest::prop_assert_eq!(out, whole);
    }
}

#[test]
fn swar_lanes_agree_with_the_byte_table() {
    for b in 0..=255u8 {
        for pos in 0..8 {
            let mut w = [b'x'; 8];
            w[pos] = b;
            let lanes = super::digitish_lanes(u64::from_le_bytes(w));
            let got = lanes & (0x80u64 << (pos * 8)) != 0;
            assert_eq!(got, super::digitish(b), "byte {b:#x} at {pos}");
            assert_eq!(
                lanes & !(0x80u64 << (pos * 8)),
                0,
                "other lanes stay clear for {b:#x}"
            );
        }
    }
}

#[test]
fn form_bodies_have_their_named_fields_masked() {
    let engine = Engine::new(&MaskConfig::default()).unwrap();
    let (out, stats) = engine.mask_form(
        b"Action=CreateLoginProfile&UserName=bob&Password=Hunter2Hunter2xx&Version=2010-05-08",
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Action=CreateLoginProfile&UserName=bob&Password=[MASKED:form-field]&Version=2010-05-08"
    );
    assert_eq!(stats.matches["form-field"], 1);
    let (out, _) = engine.mask_form(b"Entries.member.1.SecretString=abc&Flag&Empty=&Name=x");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Entries.member.1.SecretString=[MASKED:form-field]&Flag&Empty=&Name=x"
    );
    // Detectors still run over the rest.
    let (out, _) = engine.mask_form(b"Action=X&Note=AKIAIOSFODNN7EXAMPLE");
    assert!(
        !String::from_utf8(out)
            .unwrap()
            .contains("AKIAIOSFODNN7EXAMPLE")
    );
    // Names that only contain a field name are not fields.
    let (out, _) = engine.mask_form(b"PasswordPolicy=strict");
    assert_eq!(out, b"PasswordPolicy=strict");
}

/// The digit-run search as a plain byte loop: every run of digitish bytes, in order, checked
/// with the same rules. The windowed (SSE2) search must find exactly what it finds.
fn reference_next_digit_run(
    hay: &[u8],
    from: usize,
    scan_start: usize,
    rules: super::DigitRules,
) -> Option<usize> {
    let mut i = from;
    while i < hay.len() {
        if !super::digitish(hay[i]) {
            i += 1;
            continue;
        }
        let mut s = i;
        while s > from && super::digitish(hay[s - 1]) {
            s -= 1;
        }
        let e = super::skip_digitish(hay, i);
        if let Some(d) = super::qualifying_start(hay, s, e, from, scan_start, rules) {
            return Some(d);
        }
        i = e + 1;
    }
    None
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// Runs of digits, spaces and dashes next to capitals and other bytes, at every length and
    /// offset: the windowed search and the byte loop agree for every rule set.
    #[test]
    fn the_windowed_digit_search_finds_what_a_byte_loop_finds(
        bytes in proptest::collection::vec(proptest::sample::select(
            b"0123456789012345678901234567890123456789 -  --ADEGBx:\"._".to_vec()), 0..400),
        from_pick in 0usize..400,
        rules_pick in 0u8..8,
    ) {
        let from = from_pick.min(bytes.len());
        let rules = super::DigitRules {
            card: rules_pick & 1 != 0,
            ssn: rules_pick & 2 != 0,
            iban: rules_pick & 4 != 0,
        };
        for scan_start in [0, from] {
            proptest::prop_assert_eq!(
                super::next_digit_run(&bytes, from, scan_start, rules),
                reference_next_digit_run(&bytes, from, scan_start, rules),
                "from {} in {:?}", from, String::from_utf8_lossy(&bytes)
            );
        }
    }
}

#[test]
fn the_windowed_digit_search_agrees_on_the_corpus() {
    let text = corpus();
    let hay = text.as_bytes();
    let rules = super::DigitRules {
        card: true,
        ssn: true,
        iban: true,
    };
    let (mut a, mut b) = (0, 0);
    let mut found = 0;
    while let (Some(x), Some(y)) = (
        super::next_digit_run(hay, a, 0, rules),
        reference_next_digit_run(hay, b, 0, rules),
    ) {
        assert_eq!(x, y);
        found += 1;
        a = super::skip_digitish(hay, x);
        b = a;
    }
    assert_eq!(
        super::next_digit_run(hay, a, 0, rules),
        reference_next_digit_run(hay, b, 0, rules)
    );
    assert!(found > 3, "{found}");
}

#[test]
fn the_default_rules_keep_each_prefilter_at_32_anchors_or_fewer() {
    // Teddy's fast (slim) form takes at most 32 patterns; one more and it falls to the fat form.
    let e = Engine::new(&MaskConfig::default()).unwrap();
    for set in &e.sets {
        assert!(set.triggers.len() <= 32, "{} anchors", set.triggers.len());
    }
    // Two Teddy passes: the detectors and fields; the other token anchors and the key stems
    // the field anchors do not cover. Every other token anchor is found by word starts.
    assert_eq!(
        e.sets.len(),
        2,
        "{:?}",
        e.sets.iter().map(|s| s.triggers.len()).collect::<Vec<_>>()
    );
    let anchors = super::field_anchors(&default_fields());
    let words: Vec<&str> = anchors.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(
        words,
        [
            "Secret",
            "Password",
            "secret",
            "Token",
            "token",
            "private_key",
            "PrivateKey",
            "password"
        ]
    );
}

#[test]
fn names_behind_a_shared_anchor_and_keywords_behind_a_shared_prefix_still_match() {
    let e = Engine::new(&MaskConfig::default()).unwrap();
    for (input, gone) in [
        (r#"{"ClientSecret":"abc123def"}"#, "abc123def"),
        (r#"{"MasterUserPassword":"pw-1234567"}"#, "pw-1234567"),
        (r#"{"refresh_token":"rt-99887766"}"#, "rt-99887766"),
        (r#"<SessionToken>tok-556677</SessionToken>"#, "tok-556677"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI",
        ),
        (
            "AWS_SESSION_TOKEN=FwoGZXIvYXdzEJr//////////wEaDOExampleSessionTokenValueThatIsLongEnoughToCount1234567890abcdefghijklmnopqrstuvwxyz",
            "FwoGZXIvYXdz",
        ),
        (
            "aws_security_token: FwoGZXIvYXdzEJr//////////wEaDOExampleSessionTokenValueThatIsLongEnoughToCount1234567890abcdefghijklmnopqrstuvwxyz",
            "FwoGZXIvYXdz",
        ),
    ] {
        let (out, _) = e.mask(input.as_bytes());
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains(gone), "{input} → {out}");
        // And streamed a byte at a time.
        let mut s = Arc::new(Engine::new(&MaskConfig::default()).unwrap()).stream();
        let mut streamed = Vec::new();
        for b in input.as_bytes() {
            s.push(std::slice::from_ref(b), &mut streamed);
        }
        s.finish(&mut streamed);
        assert_eq!(String::from_utf8(streamed).unwrap(), out);
    }
    // A word inside another is not a field: PrivateIpAddress is not PrivateKey.
    let (out, _) = e.mask(br#"{"PrivateIpAddress":"10.0.0.1","NextToken":"abc"}"#);
    assert_eq!(out, br#"{"PrivateIpAddress":"10.0.0.1","NextToken":"abc"}"#);
}

/// A small deterministic PRNG (xorshift), so generated vectors are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn pick(&mut self, from: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| from[(self.next() % from.len() as u64) as usize] as char)
            .collect()
    }
}

/// A token of `rule` with the first part `first` bytes long (the others at their minimum),
/// the first anchor, or `anchor`; with its secret part (what masking replaces).
fn token_of(
    rule: &rules::TokenRule,
    rng: &mut Rng,
    anchor: &str,
    lens: &dyn Fn(usize, &rules::Part) -> usize,
) -> (String, String) {
    let lead = rule
        .lead
        .map(|(c, min, _)| rng.pick(&c.bytes(), min as usize))
        .unwrap_or_default();
    let mut body = String::new();
    if rule.check == rules::Check::BasicAuth {
        use base64::Engine as _;
        let creds = format!("alice:{}", rng.pick(b"abcdefghijk0123456789", 12));
        body = base64::engine::general_purpose::STANDARD.encode(creds);
    } else {
        for (k, part) in rule.parts.iter().enumerate() {
            body.push_str(&rng.pick(&part.class.bytes(), lens(k, part)));
            body.push_str(part.then);
        }
    }
    let token = format!("{lead}{anchor}{body}");
    let secret = match rule.extent {
        rules::Extent::Whole => token.clone(),
        rules::Extent::AfterAnchor => body,
    };
    (token, secret)
}

/// For every token rule: true positives (each anchor, parts at their minimum and maximum
/// length) and near misses (a part one byte short or long, glued to a word, the anchor's case
/// changed, a foreign byte inside), all generated from the rule's row.
/// A token rule's true positive: (text, secret, the text as masked).
type Positive = (String, String, String);

/// A value for a keyed rule, `n` bytes of its class, starting with a letter or digit (a value
/// starting with `$` or `{` is a placeholder) and never a single repeated byte.
fn keyed_value(rule: &rules::TokenRule, rng: &mut Rng, n: usize) -> String {
    let class = rule.parts[0].class.bytes();
    let alnum: Vec<u8> = class
        .iter()
        .copied()
        .filter(u8::is_ascii_alphanumeric)
        .collect();
    let mut v = rng.pick(&alnum, 1);
    v.push_str(&rng.pick(&class, n - 1));
    v
}

/// A keyed rule's positives: a key holding each of its words (and a stem that triggers the
/// keyed rules) as an environment variable, a JSON member, YAML and an XML element, with
/// values of the least and the most length.
fn keyed_vectors(rule: &rules::TokenRule, rng: &mut Rng) -> (Vec<Positive>, Vec<String>) {
    let name = rule.name;
    let part = rule.parts[0];
    let mut pos = Vec::new();
    for (i, word) in rule.anchors.iter().enumerate() {
        for (j, len) in [part.min, part.max].into_iter().enumerate() {
            let v = keyed_value(rule, rng, len as usize);
            let m = format!("[MASKED:{name}]");
            let upper = word.to_ascii_uppercase();
            let (env, json, yaml, xml) = (
                format!("MY_{upper}_KEY"),
                format!("{word}_token"),
                format!("app.{word}_key"),
                format!("{word}Token"),
            );
            let forms = [
                (format!("{env}={v}"), format!("{env}={m}")),
                (format!(r#""{json}": "{v}""#), format!(r#""{json}": "{m}""#)),
                (format!("{yaml}: '{v}'"), format!("{yaml}: '{m}'")),
                (format!("<{xml}>{v}</{xml}>"), format!("<{xml}>{m}</{xml}>")),
            ];
            for (f, (text, want)) in forms.into_iter().enumerate() {
                // Not every form for every word and length: enough to cover each.
                if (i + j + f) % 2 == 0 || rule.anchors.len() == 1 {
                    pos.push((text, v.clone(), want));
                }
            }
        }
    }
    let w = rule.anchors[0].to_ascii_uppercase();
    let a = format!("{w}_KEY");
    let v = keyed_value(rule, rng, part.min as usize);
    let neg = vec![
        format!("{a}={}", keyed_value(rule, rng, part.min as usize - 1)),
        format!("{a}={}", keyed_value(rule, rng, part.max as usize + 1)),
        // The key names something about the secret, not the secret.
        format!("{a}_ID={v}"),
        format!(r#""{w}_KEY_ARN": "{v}""#),
        // No assignment; a quoted key with a value that is not a string; inside an ARN.
        format!("{a} {v}"),
        format!(r#""{a}": {v}"#),
        format!("arn:aws:secretsmanager:us-east-1:1:secret:{a}:{v}"),
        // Placeholders and values too plain to be generated.
        format!("{a}=${{{}}}", "A".repeat(part.min as usize)),
        format!("{a}={}", "a".repeat(part.min as usize)),
    ];
    (pos, neg)
}

fn token_vectors() -> Vec<(&'static str, Vec<Positive>, Vec<String>)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::new();
    for rule in RULES {
        if rule.keyed.is_some() {
            let (pos, neg) = keyed_vectors(rule, &mut rng);
            out.push((rule.name, pos, neg));
            continue;
        }
        let mut pos = Vec::new();
        let mut neg = Vec::new();
        let masked_token = |(token, secret): (String, String)| {
            let kept = &token[..token.len() - secret.len()];
            let want = format!("{kept}[MASKED:{}]", rule.name);
            (token, secret, want)
        };
        for anchor in rule.anchors {
            pos.push(masked_token(token_of(rule, &mut rng, anchor, &|_, p| {
                p.min as usize
            })));
            pos.push(masked_token(token_of(rule, &mut rng, anchor, &|_, p| {
                p.max as usize
            })));
        }
        let anchor = rule.anchors[0];
        if rule.check == rules::Check::BasicAuth {
            // Base64 that is not `user:password`, and not base64 at all.
            neg.push(format!("{anchor}aGVsbG8gd29ybGQgaGVsbG8="));
            neg.push(format!("{anchor}not-base64-at-all"));
        } else {
            let last = rule.parts.len() - 1;
            if rule.parts[0].min > 1 {
                let short = |k: usize, p: &rules::Part| {
                    if k == 0 {
                        p.min as usize - 1
                    } else {
                        p.min as usize
                    }
                };
                neg.push(token_of(rule, &mut rng, anchor, &short).0);
            }
            let long = |k: usize, p: &rules::Part| {
                if k == last {
                    p.max as usize + 1
                } else {
                    p.min as usize
                }
            };
            let long = token_of(rule, &mut rng, anchor, &long).0;
            // Grown by a byte of its class, unless that reads as the next word anyway.
            neg.push(long);
            let (max, _) = token_of(rule, &mut rng, anchor, &|_, p| p.max as usize);
            neg.push(format!("{max}x"));
            if rule.parts[0].min >= 4 {
                let (t, _) = token_of(rule, &mut rng, anchor, &|_, p| p.min as usize);
                let lead = rule.lead.map(|(_, min, _)| min as usize).unwrap_or(0);
                let mid = lead + anchor.len() + rule.parts[0].min as usize / 2;
                neg.push(format!("{}!{}", &t[..mid], &t[mid + 1..]));
            }
        }
        let (t, _) = token_of(rule, &mut rng, anchor, &|_, p| p.min as usize);
        neg.push(format!("x{t}"));
        // The anchor with its first letter's case changed (unless that is another anchor).
        if let Some(i) = anchor.find(|c: char| c.is_ascii_alphabetic()) {
            let mut flipped: Vec<u8> = anchor.bytes().collect();
            flipped[i] ^= 0x20;
            let flipped = String::from_utf8(flipped).unwrap();
            if !rule.anchors.contains(&flipped.as_str()) {
                let (t, _) = token_of(rule, &mut rng, &flipped, &|_, p| p.min as usize);
                neg.push(t);
            }
        }
        out.push((rule.name, pos, neg));
    }
    out
}

#[test]
fn the_rule_table_is_consistent() {
    // Names are unique, across the detectors and the token rules.
    let catalog = builtin_rule_catalog();
    let mut names: Vec<&str> = catalog.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate rule names");
    for r in RULES {
        assert!(r.source.starts_with("https://"), "{}: no source", r.name);
        assert!(!r.parts.is_empty() && !r.anchors.is_empty(), "{}", r.name);
        // A lead fits in what the scanner looks back.
        assert!(
            r.lead
                .is_none_or(|(_, _, max)| max as usize <= rules::MAX_LEAD)
        );
        for p in r.parts {
            assert!(p.min >= 1 && p.min <= p.max, "{}", r.name);
            // A part's run must not swallow the literal after it.
            if let Some(b) = p.then.bytes().next() {
                assert!(
                    !p.class.has(b),
                    "{}: `{}` is in the part's class",
                    r.name,
                    p.then
                );
            }
        }
    }
    // Where one anchor starts another (`pat` and `pat.`), the automaton reports the longer
    // one; the shorter one's rule must not be able to match there.
    let all: Vec<(&str, &rules::TokenRule)> = RULES
        .iter()
        .flat_map(|r| r.anchors.iter().map(move |a| (*a, r)))
        .collect();
    for (a, ra) in &all {
        for (b, rb) in &all {
            // Keyed rules' words are looked for in keys, not by an automaton.
            if ra.keyed.is_some() || rb.keyed.is_some() {
                continue;
            }
            if a != b && b.starts_with(a) {
                let next = b.as_bytes()[a.len()];
                assert!(
                    !ra.parts[0].class.has(next),
                    "`{a}` ({}) and `{b}` ({}) overlap",
                    ra.name,
                    rb.name
                );
            }
            assert!(a != b || std::ptr::eq(*ra, *rb), "`{a}` twice");
        }
    }
    // The key stems share an automaton with the anchors that do not start words: none is a
    // prefix of another there, and all have three bytes or more (Teddy's longest fingerprint).
    let others: Vec<&str> = RULES
        .iter()
        .filter(|r| r.keyed.is_none() && !words::starts_words(r))
        .flat_map(|r| r.anchors.iter().copied())
        .chain(rules::KEY_STEMS.iter().map(|(s, _)| *s))
        .collect();
    for a in &others {
        assert!(a.len() >= 3, "`{a}`");
        for b in &others {
            assert!(a == b || !b.starts_with(a), "`{a}` and `{b}`");
        }
    }
    // What the word-start search finds is long enough for its length filter, and has no byte
    // that filter stops at.
    for r in RULES.iter().filter(|r| words::starts_words(r)) {
        for a in r.anchors {
            let least: usize = a.len()
                + r.parts
                    .iter()
                    .map(|p| p.min as usize + p.then.len())
                    .sum::<usize>();
            assert!(least >= words::MIN_TOKEN, "{}: {least} bytes", r.name);
            assert!(!a.bytes().any(words::stops_token), "{a}");
        }
        for p in r.parts {
            assert!(
                !p.class.bytes().into_iter().any(words::stops_token),
                "{}",
                r.name
            );
            assert!(!p.then.bytes().any(words::stops_token), "{}", r.name);
        }
    }
    assert!(catalog.len() >= 150, "{} rules", catalog.len());
}

#[test]
fn every_token_rule_masks_its_format_and_not_its_near_misses() {
    // Without the field rules, which would mask `"password": …` first under their own name.
    let e = Engine::new(&MaskConfig {
        fields: Vec::new(),
        ..MaskConfig::default()
    })
    .unwrap();
    let mut failures = Vec::new();
    for (rule, pos, neg) in token_vectors() {
        for (token, _, want) in &pos {
            let out = masked(&e, &format!("x {token} y"));
            if out != format!("x {want} y") {
                failures.push(format!("{rule} must mask {token}: {out}"));
            }
        }
        for n in &neg {
            let out = masked(&e, &format!("x {n} y"));
            if out.contains(&format!("[MASKED:{rule}")) {
                failures.push(format!("{rule} must not match {n}: {out}"));
            }
        }
    }
    assert!(failures.is_empty(), "{:#?}", failures);
}

/// Every positive vector, of the detectors and the token rules: (rule, text, secret).
fn all_positives() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (rule, pos, _) in vectors() {
        for p in pos {
            out.push((rule.to_string(), p.clone(), p));
        }
    }
    for (rule, pos, _) in token_vectors() {
        for (t, s, _) in pos {
            out.push((rule.to_string(), t, s));
        }
    }
    let key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    out.push((
        "aws-secret-access-key".into(),
        format!("aws_secret_access_key = {key}"),
        key.into(),
    ));
    let token = "FwoGZXIvYXdzEJr//////////wEaDExampleSessionTokenValueThatIsLongEnoughToBeRealisticAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
    out.push((
        "aws-session-token".into(),
        format!("aws_session_token={token}"),
        token.into(),
    ));
    out.push((
        "db-password".into(),
        "postgres://app:Sup3rS3cret@db.internal:5432/app".into(),
        "Sup3rS3cret".into(),
    ));
    out.push((
        "private-key".into(),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----".into(),
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ".into(),
    ));
    out
}

/// Masks `doc` and returns the JSON it still is, with the value at `path` decoded.
fn masked_json(e: &Engine, doc: &str) -> (String, serde_json::Value) {
    let out = masked(e, doc);
    let v = serde_json::from_str(&out).unwrap_or_else(|err| panic!("{out} is not JSON: {err}"));
    (out, v)
}

#[test]
fn secrets_inside_json_strings_are_masked_and_the_json_stays_valid() {
    let e = engine();
    let mut failures = Vec::new();
    for (n, (rule, text, secret)) in all_positives().into_iter().enumerate() {
        // A file with the secret on its own line, stored as a JSON string (an SSM parameter, a
        // Secrets Manager value, a log line): escaped newlines, tabs, quotes around it.
        let file = format!("[default]\n{text}\n\tnext = \"line\"\n");
        let as_string = serde_json::to_string(&file).unwrap();
        let unicode = as_string.replace("\\n", "\\u000a");
        // JSON that holds JSON: the file inside an object, serialized into a string.
        let inner = serde_json::to_string(&serde_json::json!({ "config": file })).unwrap();
        let nested = serde_json::to_string(&inner).unwrap();
        for (form, value) in [
            ("escaped", &as_string),
            ("\\u000a", &unicode),
            ("nested", &nested),
        ] {
            let doc = format!(r#"{{"Parameter":{{"Value":{value}}}}}"#);
            let (out, v) = masked_json(&e, &doc);
            let decoded = v["Parameter"]["Value"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if decoded.contains(&secret) || !out.contains("[MASKED:") {
                failures.push(format!("{rule} ({form}): {out}"));
            }
            // Streamed in small chunks (1 to 29 bytes), the same.
            let mut s = e.stream();
            let mut streamed = Vec::new();
            for chunk in doc.as_bytes().chunks(n % 29 + 1) {
                s.push(chunk, &mut streamed);
            }
            s.finish(&mut streamed);
            if String::from_utf8_lossy(&streamed) != out {
                failures.push(format!("{rule} ({form}) streamed differs"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures: {:#?}",
        failures.len(),
        failures
    );
}

#[test]
fn the_ssm_credentials_file_defect_is_fixed() {
    // An `~/.aws/credentials` file stored as an SSM parameter: the keyword follows `\n`.
    let e = engine();
    let doc = r#"{"Parameter":{"Name":"/ci/aws","Value":"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"}}"#;
    assert_eq!(
        masked(&e, doc),
        r#"{"Parameter":{"Name":"/ci/aws","Value":"[default]\naws_access_key_id = [MASKED:aws-access-key-id]\naws_secret_access_key = [MASKED:aws-secret-access-key]\n"}}"#
    );
    // JSON with escaped slashes (`\/`), and the keyword quoted inside a JSON string.
    let doc =
        r#"{"v":"{\"aws_secret_access_key\": \"wJalrXUtnFEMI\/K7MDENG\/bPxRfiCYEXAMPLEKEY\"}"}"#;
    assert_eq!(
        masked(&e, doc),
        r#"{"v":"{\"aws_secret_access_key\": \"[MASKED:aws-secret-access-key]\"}"}"#
    );
    // Legitimate twins: a keyword that is documented, not assigned, stays.
    let doc = r#"{"v":"set\naws_secret_access_key in your profile"}"#;
    assert_eq!(masked(&e, doc), doc);
}

#[test]
fn json_fields_inside_json_strings_are_masked() {
    let e = engine();
    let doc = r#"{"SecretString":"x","Value":"{\"password\": \"hunter2 with \\\"quotes\\\" and \\\\ slash\", \"user\": \"app\"}"}"#;
    let (out, v) = masked_json(&e, doc);
    let inner: serde_json::Value = serde_json::from_str(v["Value"].as_str().unwrap()).unwrap();
    assert_eq!(inner["password"], "[MASKED:json-field]", "{out}");
    assert_eq!(inner["user"], "app");
    // Whatever chunking, the same.
    let mut s = e.stream();
    let mut streamed = Vec::new();
    for b in doc.as_bytes() {
        s.push(std::slice::from_ref(b), &mut streamed);
    }
    s.finish(&mut streamed);
    assert_eq!(String::from_utf8(streamed).unwrap(), out);
    // A name that only ends like a field stays.
    let doc = r#"{"Value":"{\"old_password_hint\": \"blue\"}"}"#;
    assert_eq!(masked(&e, doc), doc);
}

#[test]
fn an_escaped_letter_starts_no_token_and_a_capped_value_keeps_its_escapes() {
    let e = engine();
    // `\n` then `pm_…` is a newline and `pm_…`, not an npm token; `\\` then `npm_…` is one.
    let body = "a".repeat(36);
    for doc in [
        format!(r#"{{"m":"\npm_{body}"}}"#),
        format!(r#"{{"m":"\rk_live_{body}"}}"#),
    ] {
        let (out, _) = masked_json(&e, &doc);
        assert_eq!(out, doc);
    }
    let doc = format!(r#"{{"m":"\\npm_{body}"}}"#);
    let (out, _) = masked_json(&e, &doc);
    assert!(out.contains("[MASKED:npm-token]"), "{out}");
    // An escape straddling the 64 KiB cap of a field value is masked whole.
    for tail in [r#"\x"#, r#"\\\""#, r#"\"b"#] {
        let doc = format!(r#"{{"password":"{}{tail}"}}"#, "a".repeat(64 * 1024 - 1));
        let out = masked(&e, &doc);
        assert!(
            out.starts_with(r#"{"password":"[MASKED:json-field]"#),
            "{}",
            &out[..40]
        );
        let whole: serde_json::Result<serde_json::Value> = serde_json::from_str(&out);
        let streamed = {
            let mut s = e.stream();
            let mut o = Vec::new();
            for c in doc.as_bytes().chunks(4093) {
                s.push(c, &mut o);
            }
            s.finish(&mut o);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(streamed, out);
        // Valid whenever the input was (the `\x` input is not JSON to begin with).
        if serde_json::from_str::<serde_json::Value>(&doc).is_ok() {
            assert!(whole.is_ok(), "{}", &out[out.len() - 40..]);
        }
    }
}

#[test]
fn keyed_rules_read_keys_as_words() {
    let e = engine();
    let v = "Zx81kQp0vLm3Rt7sW2yB9nCd";
    for (doc, gone) in [
        (format!("X-API-KEY: {v}"), true),
        (
            "DD-API-KEY: 0123456789abcdef0123456789abcdef".to_string(),
            true,
        ),
        (format!("API_TOKEN_STAGE={v}"), true),
        ("DB_PASSWORD=*Tr0ub4dor&3x".to_string(), true),
        (r#"{"db_password": "$uperS3cret!"}"#.to_string(), true),
        (format!("API_TOKEN_STAGE_ID={v}"), false),
        (format!(r#"{{"ApiKeySource": "{v}"}}"#), false),
    ] {
        let out = masked(&e, &doc);
        assert_eq!(
            !out.contains(v)
                && !out.contains("0123456789abcdef0123")
                && !out.contains("Tr0ub")
                && !out.contains("uperS3"),
            gone,
            "{out}"
        );
    }
}

#[test]
fn email_after_an_escape_keeps_the_json_valid() {
    let e = engine();
    let doc = r#"{"v":"to:\njane@example.com\u000abob@example.org"}"#;
    let (_, v) = masked_json(&e, doc);
    assert_eq!(v["v"], "to:\n[MASKED:email]\n[MASKED:email]");
    // An address that is only an escape is none, whatever the chunks.
    let doc = format!("{}\"\\u0041@example.com\"", "x ".repeat(300));
    let whole = masked(&e, &doc);
    for size in 1..=40 {
        let mut s = e.stream();
        let mut o = Vec::new();
        for c in doc.as_bytes().chunks(size) {
            s.push(c, &mut o);
        }
        s.finish(&mut o);
        assert_eq!(String::from_utf8(o).unwrap(), whole, "chunks of {size}");
    }
}

/// What AWS answers are full of and must survive every rule: resource ids, ETags, request ids,
/// hashes, ARNs, pagination and idempotency tokens, base64 of ordinary data, version ids, and
/// keys that name a secret without holding one.
const DECOYS: &[&str] = &[
    r#"{"InstanceId": "i-0123456789abcdef0", "ImageId": "ami-0abcdef1234567890", "VolumeId": "vol-049df61146c4d7901"}"#,
    r#"{"GroupId": "sg-903004f8", "SubnetId": "subnet-0bb1c79de3EXAMPLE", "VpcId": "vpc-0a60eb65b4EXAMPLE"}"#,
    r#"{"ETag": "\"d41d8cd98f00b204e9800998ecf8427e\"", "VersionId": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nrjfkd"}"#,
    r#"{"ResponseMetadata": {"RequestId": "c2ad4a52-6d4e-4e29-8d10-e54b8b9b1f1a", "HostId": "Ke1LSx8lMYqy0SVNDqMPX2PZrzmPCHqv0BaxzXCKAWk3CWp3IZlf2QDhWz6fmnAtD0bxRV/Qb8A="}}"#,
    r#"{"CodeSha256": "Y9Bc6pwsSaH6p2CzvO1BAyTwyQpCxPqJkd0ReJmnC8A=", "Sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}"#,
    r#"{"Arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf", "SecretId": "prod/db", "SecretName": "prod/db-credentials"}"#,
    r#"{"SecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-key-x1Y2z3", "SecretVersionId": "EXAMPLE1-90ab-cdef-fedc-ba987SECRET1"}"#,
    r#"{"NextToken": "eyJOZXh0VG9rZW4iOiBudWxsLCAiYm90b190cnVuY2F0ZV9hbW91bnQiOiAyfQ==", "ClientToken": "5b9c6a1e-33a1-4f0c-9d6b-0a4d8f2e7c11"}"#,
    r#"{"KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "KeyId": "mrk-1234abcd12ab34cd56ef1234567890ab"}"#,
    r#"{"UserData": "IyEvYmluL2Jhc2gKeXVtIHVwZGF0ZSAteQp5dW0gaW5zdGFsbCAteSBodHRwZAo=", "EventId": "8f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8"}"#,
    r#"{"PasswordLastUsed": "2026-11-30T12:00:00Z", "PasswordResetRequired": false, "MinimumPasswordLength": 14}"#,
    r#"{"PasswordPolicy": {"RequireSymbols": true, "MaxPasswordAge": 90, "PasswordReusePrevention": 24}}"#,
    r#"{"ApiKeySource": "HEADER", "apiKeyRequired": true, "ApiKeyId": "a1b2c3d4e5f6g7h8i9j0", "apiKeySelectionExpression": "$request.header.x-api-key"}"#,
    r#"{"SecretString": null, "AuthTokenEnabled": true, "TokenType": "Bearer", "PrivateIpAddress": "10.0.0.12"}"#,
    r#"<CreateAccessKeyResponse><RequestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</RequestId><UserName>Bob</UserName></CreateAccessKeyResponse>"#,
    r#"<ListObjectsV2Result><Key>photos/2026/11/cat.jpg</Key><ETag>"9b2cf535f27731c974343645a3985328"</ETag><ContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</ContinuationToken></ListObjectsV2Result>"#,
    "x-amz-id-2: 2YjDK1q6hb7+Fb9S5bL9pdQ3ZqN9q0JZ3c1gL8Qmxh9XJ7sYq5Gk1sK3wD0vWl8R9rQ7ZzL1xYw=",
    "DB_PASSWORD_FILE=/run/secrets/db DD_API_KEY_SECRET_ARN=arn:aws:secretsmanager:us-east-1:1:secret:dd",
    "password=${DB_PASSWORD} api_key={{ .Values.apiKey }} secret=******************** token=changeme",
    "see the password section; the api_key field is optional; rotate your secret often",
    "commit 3f9a0c1b2d4e5f60718293a4b5c6d7e8f9012345 Merge branch 'feature/api-key-rotation'",
    "sk-proj- is how project keys start; ghp_ prefixes classic tokens; AKIA is an access key id",
];

#[test]
fn decoys_survive_every_rule() {
    let e = engine();
    let mut failures = Vec::new();
    for d in DECOYS {
        let out = masked(&e, d);
        if out != *d {
            failures.push(out);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn keyed_rules_work_whatever_the_fields() {
    let value = "Zx81kQp0vLm3Rt7sW2yB9nCd";
    let docs = [
        format!(r#"{{"stripe_secret_key": "{value}"}}"#),
        format!(r#"{{"db_password": "{value}"}}"#),
        "TWILIO_AUTH_TOKEN=0123456789abcdef0123456789abcdef".to_string(),
        format!(r#"{{"githubAuthToken": "{value}"}}"#),
    ];
    for fields in [default_fields(), vec!["Password".to_string()], Vec::new()] {
        let e = Engine::new(&MaskConfig {
            fields: fields.clone(),
            ..MaskConfig::default()
        })
        .unwrap();
        for d in &docs {
            let out = masked(&e, d);
            assert!(out.contains("[MASKED:"), "{fields:?}: {out}");
            assert!(
                !out.contains(value) && !out.contains("0123456789abcdef0123"),
                "{out}"
            );
        }
    }
}
