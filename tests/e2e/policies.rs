//! The example policies under `policies/`: each is a whole configuration that `hoopguard check`
//! accepts, and each `# expect:` line in it is a decision `hoopguard policy explain` must print.
//!
//! An expectation reads `# expect: <allow|deny|approve> <rule, or ->` then the explain arguments
//! (whitespace-separated, so JSON arguments are written without spaces). `-` means no rule
//! matched (denied by default). Every rule of a file must be named by one of its expectations, so
//! a rule nobody checks cannot sit in an example.

use std::path::{Path, PathBuf};

use crate::support::run_hoopguard;

/// The environment the examples need (their secrets come from it, never from the file).
const ENV: &[(&str, &str)] = &[
    (
        "HOOPGUARD_GATEWAY_KEY",
        "a-test-gateway-key-of-at-least-32-bytes!",
    ),
    ("HOOPGUARD_DATA_DIR", "/nonexistent/hoopguard-policies-test"),
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T0000/B0000/test",
    ),
];

fn policy_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// One `# expect:` line.
struct Expectation {
    effect: String,
    rule: String,
    args: Vec<String>,
}

fn expectations(text: &str) -> Vec<Expectation> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect:"))
        .map(|l| {
            let mut words = l.split_whitespace().map(str::to_string);
            let effect = words.next().expect("an effect after `# expect:`");
            let rule = words.next().expect("a rule (or -) after the effect");
            let mut args: Vec<String> = words.collect();
            if !args.iter().any(|a| a == "--subject") {
                args.extend(["--subject".into(), "agent".into()]);
            }
            Expectation { effect, rule, args }
        })
        .collect()
}

/// The rule names a policy file defines.
fn rule_names(text: &str) -> Vec<String> {
    let doc: toml::Table = text.parse().expect("the example is TOML");
    doc.get("policy")
        .and_then(|p| p.get("rules"))
        .and_then(|r| r.as_array())
        .map(|rules| {
            rules
                .iter()
                .map(|r| r["name"].as_str().expect("a rule name").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `policy explain` for one expectation; `Err` says what differed.
fn check(file: &Path, exp: &Expectation) -> Result<(), String> {
    let mut args = vec!["policy", "explain", "--config", file.to_str().unwrap()];
    args.extend(exp.args.iter().map(String::as_str));
    let (st, out, err) = run_hoopguard(&args, ENV);
    let out = String::from_utf8_lossy(&out);
    if !st.success() {
        return Err(format!("explain {:?} failed: {err}", exp.args));
    }
    let want = if exp.rule == "-" {
        format!("decision:  {} (no rule matched", exp.effect)
    } else {
        format!("decision:  {} (rule `{}`)", exp.effect, exp.rule)
    };
    if out.lines().any(|l| l.starts_with(&want)) {
        Ok(())
    } else {
        Err(format!(
            "{}: {:?}\n  expected `{want}`\n  got:\n{out}",
            file.display(),
            exp.args
        ))
    }
}

#[test]
fn every_example_policy_is_a_valid_config_and_decides_as_its_comments_say() {
    let files = policy_files();
    assert!(files.len() >= 5, "the examples are missing: {files:?}");
    let mut failures = Vec::new();
    for file in &files {
        let (st, out, err) = run_hoopguard(&["check", "--config", file.to_str().unwrap()], ENV);
        assert!(
            st.success(),
            "{}: hoopguard check refused it: {err}",
            file.display()
        );
        assert!(
            String::from_utf8_lossy(&out).starts_with("config OK"),
            "{}",
            file.display()
        );

        let text = std::fs::read_to_string(file).unwrap();
        let exps = expectations(&text);
        assert!(
            exps.len() >= 5,
            "{}: only {} expectations",
            file.display(),
            exps.len()
        );
        for rule in rule_names(&text) {
            assert!(
                exps.iter().any(|e| e.rule == rule),
                "{}: rule `{rule}` is named by no `# expect:` line",
                file.display()
            );
        }
        // Each policy shows what it allows and what it refuses.
        assert!(
            exps.iter().any(|e| e.effect == "allow"),
            "{}",
            file.display()
        );
        assert!(
            exps.iter().any(|e| e.effect == "deny"),
            "{}",
            file.display()
        );
        for exp in &exps {
            if let Err(e) = check(file, exp) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The check above can fail: the same lines with the effect or the rule changed are caught.
#[test]
fn a_wrong_expectation_is_caught() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/ec2-operator.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let exps = expectations(&text);
    let terminate = exps
        .iter()
        .find(|e| e.rule == "terminate-production")
        .expect("the production termination expectation");
    assert!(check(&file, terminate).is_ok());
    let wrong_effect = Expectation {
        effect: "allow".into(),
        rule: terminate.rule.clone(),
        args: terminate.args.clone(),
    };
    assert!(check(&file, &wrong_effect).is_err());
    let wrong_rule = Expectation {
        effect: terminate.effect.clone(),
        rule: "terminate-staging".into(),
        args: terminate.args.clone(),
    };
    assert!(check(&file, &wrong_rule).is_err());
    let no_rule = Expectation {
        effect: "deny".into(),
        rule: "-".into(),
        args: terminate.args.clone(),
    };
    assert!(check(&file, &no_rule).is_err());
}
