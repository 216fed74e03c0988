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
        assert_eq!(masked(&e, n), n);
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
    let out = masked(&e, "https://user:pass@example.com/");
    assert!(!out.contains("db-password"), "{out}");
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
fn the_default_rules_keep_the_prefilter_at_32_anchors_or_fewer() {
    // Teddy's fast (slim) form takes at most 32 patterns; one more and it falls to the fat form.
    let e = Engine::new(&MaskConfig::default()).unwrap();
    assert!(e.triggers.len() <= 32, "{} anchors", e.triggers.len());
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
