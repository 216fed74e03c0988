//! Clients who never authenticate cannot make the gateway hold memory or connections: unknown
//! keys are refused from the headers before a byte of body is read, buffered bodies share one
//! budget, headers must arrive in time, and one address holds a bounded number of connections.
//! Each flood runs against the real binary, its memory and open files read from `/proc`, while a
//! legitimate AWS CLI call (from another loopback address) goes through.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::aws::{agent_env, output};
use crate::support::{Gateway, Moto, venv};

fn config(moto: &Moto) -> String {
    format!(
        r#"
[identity.dev_issuer]
enabled = true

[server]
header_read_timeout = "2s"
max_connections_per_client = 100

[aws]
max_policy_body = 4194304
max_buffered = 9437184

[aws.connections.default]
broker = "assume_role"
role_arn = "{role}"
endpoint = "{endpoint}"

[[policy.rules]]
name = "whoami"
effect = "allow"
groups = ["dev"]
actions = ["sts:GetCallerIdentity"]
"#,
        role = moto.role_arn,
        endpoint = moto.url()
    )
}

/// `VmHWM` (peak resident memory) and the number of open files of a process.
fn peak_kib_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    (hwm, fds)
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let std = s.connect(to).await.unwrap().into_std().unwrap();
        std.set_nonblocking(false).unwrap();
        std
    })
}

/// The legitimate call, from 127.0.0.1, made while a flood runs.
fn legitimate_call(gw: &Gateway, token: &std::path::Path) {
    let mut cmd = std::process::Command::new(venv().join("bin/aws"));
    cmd.args(["sts", "get-caller-identity"]);
    agent_env(&mut cmd, gw, token);
    let (ok, out) = output(cmd.output().unwrap());
    assert!(
        ok && out.contains("assumed-role/agents/alice"),
        "the legitimate call failed during the flood: {out}"
    );
}

/// Reads until the server closes the connection or `limit` passes; whether it closed.
fn closed_within(s: &mut std::net::TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn floods_from_clients_who_never_authenticate_hold_neither_memory_nor_connections() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(dir.path());
    let gw = Gateway::start_with_env(dir.path(), &config(&moto), &[], &moto.gateway_env());
    let token = gw.dev_token("alice", "dev", None);
    let pid = gw.proc.pid();
    let aws: SocketAddr = format!("127.0.0.1:{}", gw.aws).parse().unwrap();
    legitimate_call(&gw, &token);
    let (base_kib, base_fds) = peak_kib_and_fds(pid);

    // 1. Sixty clients each announce a 9 MiB body under an unknown access key and a zero
    // signature, then send it: each is refused from its headers; the body is never buffered.
    let date = String::from_utf8(
        std::process::Command::new("date")
            .args(["-u", "+%Y%m%dT%H%M%SZ"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let body = vec![b'x'; 9 * 1024 * 1024];
    let mut flood = Vec::new();
    for i in 0..60 {
        let mut s = connect_from("127.0.0.2", aws);
        let head = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Amz-Date: {date}\r\nX-Amz-Security-Token: hg1.forged{i}.x\r\nAuthorization: AWS4-HMAC-SHA256 Credential=HGPKUNKNOWN{i:05}/{}/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature={}\r\nContent-Length: {}\r\n\r\n",
            &date[..8],
            "0".repeat(64),
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        flood.push(s);
    }
    // Each is answered from its headers alone — the old gateway read the whole body first —
    // and its body, sent after the answer, is never read.
    let senders: Vec<_> = flood
        .into_iter()
        .map(|mut s| {
            let body = body.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut answer = vec![0u8; 4096];
                let n = s.read(&mut answer).unwrap_or(0);
                let _ = s.write_all(&body);
                String::from_utf8_lossy(&answer[..n]).into_owned()
            })
        })
        .collect();
    legitimate_call(&gw, &token);
    for t in senders {
        let answer = t.join().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 403") && answer.contains("InvalidClientTokenId"),
            "{answer}"
        );
    }
    let (after_kib, _) = peak_kib_and_fds(pid);
    let grew_mib = after_kib.saturating_sub(base_kib) / 1024;
    eprintln!(
        "unauthenticated 60 × 9 MiB bodies: peak RSS {} MiB → {} MiB",
        base_kib / 1024,
        after_kib / 1024
    );
    assert!(
        grew_mib < 64,
        "the peak RSS grew by {grew_mib} MiB under bodies that were never authenticated"
    );

    // 2. An authenticated caller holds at most `aws.max_buffered` (9 MiB here): two 4 MiB bodies
    // in flight, a third is refused with SlowDown at once rather than grow memory.
    let creds = gw.pseudo_credentials(&token);
    let signed_head = |len: usize| {
        format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Amz-Date: {date}\r\nX-Amz-Security-Token: {}\r\nAuthorization: AWS4-HMAC-SHA256 Credential={}/{}/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature={}\r\nContent-Length: {len}\r\n\r\n",
            creds["Token"].as_str().unwrap(),
            creds["AccessKeyId"].as_str().unwrap(),
            &date[..8],
            "0".repeat(64),
        )
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from("127.0.0.3", aws);
        s.write_all(signed_head(4 * 1024 * 1024).as_bytes())
            .unwrap();
        s.write_all(&[b'x'; 1024]).unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect_from("127.0.0.3", aws);
    third
        .write_all(signed_head(4 * 1024 * 1024).as_bytes())
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = third.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("SlowDown"),
        "{answer}"
    );
    legitimate_call(&gw, &token);
    drop(held);

    // 3. Slow headers: 300 connections from one address, each trickling a header line every
    // 500 ms. The address holds at most 100 of them (the rest are closed at once), and every
    // one is closed when the header-read timeout (2 s) passes; the gateway's open files stay
    // bounded, and the legitimate caller, from another address, gets through.
    let mut slow: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut s = connect_from("127.0.0.4", aws);
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
            s
        })
        .collect();
    let start = Instant::now();
    let mut max_fds = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        for s in &mut slow {
            let _ = s.write_all(b"X-Slow: 1\r\n");
        }
        max_fds = max_fds.max(peak_kib_and_fds(pid).1);
        std::thread::sleep(Duration::from_millis(500));
    }
    legitimate_call(&gw, &token);
    eprintln!("slow headers: the gateway held at most {max_fds} files (at rest {base_fds})");
    assert!(
        max_fds < base_fds + 100 + 40,
        "{max_fds} open files with 300 slow connections from one address (at rest {base_fds})"
    );
    let open_after: usize = slow
        .iter_mut()
        .map(|s| usize::from(!closed_within(s, Duration::from_secs(4))))
        .sum();
    assert_eq!(
        open_after, 0,
        "connections that never finished their headers are still open"
    );
    legitimate_call(&gw, &token);
}
