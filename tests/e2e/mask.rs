//! `hoopguard mask` as a user runs it: stdin to stdout, streaming, with bounded memory.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::support::hoopguard;

fn mask(args: &[&str], input: &[u8]) -> (Vec<u8>, String) {
    let mut child = Command::new(hoopguard())
        .arg("mask")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn masks_stdin_with_stats() {
    let input = br#"{"AccessKeyId":"AKIAIOSFODNN7EXAMPLE","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","owner":"alice@example.com"}"#;
    let (out, err) = mask(&["--stats"], input);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"AccessKeyId":"[MASKED:aws-access-key-id]","SecretAccessKey":"[MASKED:json-field]","owner":"[MASKED:email]"}"#
    );
    assert!(err.contains("3 matches"), "{err}");
    assert!(err.contains("aws-access-key-id: 1"), "{err}");
    assert!(err.contains("MB/s"), "{err}");
    // --format text leaves field values alone but still finds detectors, and values assigned
    // to keys that name a secret (`generic-secret`).
    let (out, _) = mask(&["--format", "text"], input);
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        r#"{"AccessKeyId":"[MASKED:aws-access-key-id]","SecretAccessKey":"[MASKED:generic-secret]","owner":"[MASKED:email]"}"#
    );
    let fields = br#"{"SessionToken":"tok-123","Password":"p"}"#;
    let (out, _) = mask(&["--format", "text"], fields);
    assert_eq!(out, fields.to_vec());
    let (out, _) = mask(&[], fields);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"SessionToken":"[MASKED:json-field]","Password":"[MASKED:json-field]"}"#
    );
    // --rules lists every built-in rule with its source.
    let (out, _) = mask(&["--rules"], b"");
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("156 built-in rules, 156 on:"), "{out}");
    assert!(
        out.contains("anthropic-api-key") && out.contains("https://docs.anthropic.com"),
        "{out}"
    );
}

#[test]
fn a_config_with_only_masking_rules_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mask.toml");
    std::fs::write(
        &config,
        "[mask]\ndisable = [\"email\"]\n\n[[mask.rules]]\nname = \"employee-id\"\nregex = 'EMP-[0-9]{6}'\n",
    )
    .unwrap();
    let (out, _) = mask(
        &["--config", config.to_str().unwrap()],
        b"alice@example.com EMP-123456 AKIAIOSFODNN7EXAMPLE",
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "alice@example.com [MASKED:employee-id] [MASKED:aws-access-key-id]"
    );
}

#[test]
fn invalid_utf8_and_binary_pass_through_byte_for_byte() {
    let mut input: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    input.extend_from_slice(b"\xff\xfe ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 \xc3\x28");
    let (out, _) = mask(&[], &input);
    let mut want: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    want.extend_from_slice(b"\xff\xfe [MASKED:github-token] \xc3\x28");
    assert_eq!(out, want);
}

#[test]
fn a_single_huge_line_is_masked_with_bounded_memory() {
    // 64 MiB without a newline, a secret near the end. Peak memory is read from /proc while the
    // input is still open, so it reflects streaming, not the whole input.
    const MIB: usize = 1024 * 1024;
    let mut child = Command::new(hoopguard())
        .arg("mask")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut count = 0usize;
        let mut tail = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = stdout.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            count += n;
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 4096 {
                tail.drain(..tail.len() - 4096);
            }
        }
        (count, tail)
    });
    let mut stdin = child.stdin.take().unwrap();
    let chunk = "abcdefgh ".repeat(MIB / 9 + 1);
    for _ in 0..64 {
        stdin.write_all(chunk.as_bytes()).unwrap();
    }
    stdin.write_all(b"AKIAIOSFODNN7EXAMPLE end").unwrap();
    stdin.flush().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    drop(stdin);
    let (count, tail) = reader.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert!(String::from_utf8_lossy(&tail).ends_with("[MASKED:aws-access-key-id] end"));
    assert_eq!(
        count,
        64 * chunk.len() + "[MASKED:aws-access-key-id] end".len()
    );
    assert!(
        hwm_kib < 48 * 1024,
        "peak memory {hwm_kib} KiB for a 64 MiB line"
    );
}
