//! `hoopguard wrap -- CMD ARGS…`: the MCP guard around a stdio MCP server.
//!
//! The server runs as a child process; hoopguard sits between this process's stdin/stdout (the
//! MCP client) and the child's, reading newline-delimited JSON-RPC. Each message from the client
//! is decided like on the MCP listener (`tools/call` on name and arguments, `resources/read`,
//! `prompts/get`; approvals; every decision recorded), and refused calls are answered by
//! hoopguard without reaching the server. Each message from the server has its tool lists
//! filtered and pinned and is masked before the client sees it. The caller's identity is the
//! token given to `wrap` (a file or an environment variable), verified once at start.
//! The child's stderr passes through.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use hoopguard_core::identity::Identity;
use hoopguard_core::mask::Engine;
use hoopguard_core::mcp::{Ask, error, filter_tools, parse_line, response_id};
use hoopguard_tower::mcp::McpGuard;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, mpsc};

use crate::config::Config;

/// Where the caller's token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A file (trailing newline removed).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

/// How long the server may take to exit once the client has gone.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest line read from either side.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// Runs `command` under the guard until it exits; returns its exit code.
pub async fn run(cfg: Config, token: TokenSource, command: Vec<String>) -> Result<i32, String> {
    let raw = match &token {
        TokenSource::File(p) => std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read the token file {}: {e}", p.display()))?,
        TokenSource::Env(v) => std::env::var(v)
            .map_err(|_| format!("the environment variable {v} holding the token is not set"))?,
    };
    let raw = raw.trim();
    let dev = crate::serve::dev_issuer(&cfg)?;
    let verifier = crate::serve::verifier(&cfg, dev.as_ref())?;
    let who: Arc<Identity> = verifier
        .verify(raw)
        .await
        .map_err(|e| format!("the token was refused: {e}"))?;
    if cfg.telemetry.audit.as_deref() == Some("stdout") {
        return Err("telemetry.audit = \"stdout\" would write audit lines into the MCP channel `wrap` speaks on its stdout; give a file path".into());
    }
    let policy = cfg.compile_policy().map_err(|e| e.to_string())?;
    let shared = crate::serve::shared_store(&cfg).await?;
    let guard = crate::serve::guard(&cfg, policy, shared.as_ref())?;
    let engine =
        Arc::new(Engine::new(&cfg.mask).map_err(|e| format!("mask.{}: {}", e.key, e.message))?);
    let recorder = crate::serve::share_revocations(
        &cfg,
        shared.as_ref(),
        crate::serve::open_recorder(&cfg, engine.clone())?.0,
    )
    .await?;
    let pins = crate::serve::pins(&cfg, shared.as_ref()).await?;
    let server = format!("stdio:{}", command.join(" "));
    let mcp = Arc::new(
        McpGuard::new(guard, pins, server)
            .approve_changed_tools(cfg.mcp.changed_tool_approvers.clone())
            .record(recorder)
            .transport("stdio"),
    );
    // One session per run of the wrapped server.
    let session = format!("wrap-{}-{}", who.subject, std::process::id());

    let (program, args) = command
        .split_first()
        .ok_or("no command to run: hoopguard wrap --config FILE --token-file F -- CMD ARGS…")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    tracing::info!(subject = %who.subject, command = %command.join(" "), "wrapping a stdio MCP server");
    let mut child_in = child.stdin.take().expect("piped");
    let child_out = child.stdout.take().expect("piped");

    // Everything the client sees goes through one writer, a line at a time.
    let (to_client, mut client_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(mut line) = client_rx.recv().await {
            line.push(b'\n');
            if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
                break;
            }
        }
    });
    let list_ids: Arc<Mutex<HashSet<String>>> = Arc::default();

    // Server → client: tool lists filtered, every line masked.
    let from_server = {
        let (to_client, list_ids, mcp, who, engine) = (
            to_client.clone(),
            list_ids.clone(),
            mcp.clone(),
            who.clone(),
            engine.clone(),
        );
        tokio::spawn(async move {
            let mut lines = BufReader::new(child_out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if line.len() > MAX_LINE {
                    tracing::error!("the server sent a line over the limit; dropped");
                    continue;
                }
                let mut out = line.into_bytes();
                // Only an answer to a pending tools/list is parsed and rewritten.
                let pending = !list_ids.lock().await.is_empty();
                if let Some(mut v) = pending
                    .then(|| serde_json::from_slice::<Value>(&out).ok())
                    .flatten()
                {
                    let id = response_id(&v).map(Value::to_string);
                    if let Some(id) = id {
                        if list_ids.lock().await.remove(&id) {
                            filter_tools(&mut v, |t| mcp.keeps(&who, t));
                            out = v.to_string().into_bytes();
                        }
                    }
                }
                let (masked, _) = engine.mask(&out);
                if to_client.send(masked).await.is_err() {
                    break;
                }
            }
        })
    };

    // Client → server: every call decided first.
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let item = match parse_line(line.as_bytes()) {
            Ok(item) => item,
            Err(e) => {
                let answer = error(e.id.as_ref(), e.code, &e.message, None);
                let _ = to_client.send(answer.to_string().into_bytes()).await;
                continue;
            }
        };
        match &item.ask {
            Ask::Decide(call) => {
                if let Err(refusal) = mcp.decide(&who, call, &session).await {
                    let answer = refusal.to_error(item.id.as_ref());
                    let _ = to_client.send(answer.to_string().into_bytes()).await;
                    continue;
                }
            }
            Ask::ListTools => {
                if let Some(id) = &item.id {
                    list_ids.lock().await.insert(id.to_string());
                }
            }
            Ask::Pass => {}
        }
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        if child_in.write_all(&bytes).await.is_err() || child_in.flush().await.is_err() {
            break;
        }
    }
    // The client is gone: its session ends; close the server's input and give it a moment to
    // finish; a server that keeps running without a client is stopped.
    mcp.end(&who, &session, "client closed");
    drop(child_in);
    let status = match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            tracing::info!("the server did not exit when its input closed; stopping it");
            let _ = child.kill().await;
            child.wait().await
        }
    }
    .map_err(|e| format!("waiting for `{program}`: {e}"))?;
    let _ = from_server.await;
    drop(to_client);
    let _ = writer.await;
    Ok(status.code().unwrap_or(1))
}
