//! Latency and throughput of `tools/call` through hoopguard's MCP proxy against the same rmcp
//! echo server called directly, in one run: p50 and p99 at concurrency 1, calls per second at
//! concurrency 8 (the shape of the field notes' comparison with nginx and agentgateway).
//!
//! `cargo run --release --example mcp-load -- [--seconds 5]`
//!
//! Client, gateway (authentication, policy, batched recording, SSE masking) and server share
//! this process and the machine's cores.

#[path = "../benches/support/inproc.rs"]
mod inproc;
#[path = "../benches/support/mcp.rs"]
mod support;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let up = support::upstream().await;
    let (url, token) = support::gateway(dir.path(), up).await;
    let direct = support::Session::open(&format!("http://{up}/mcp"), None).await;
    let through = support::Session::open(&url, Some(&token)).await;
    println!("tools/call of an echo tool (rmcp, SSE answers), {seconds} s per row");
    println!(
        "{:<32} {:>10} {:>10} {:>10}",
        "path", "calls/s", "p50", "p99"
    );
    let mut rows = Vec::new();
    for (c, name, s) in [
        (1, "direct, concurrency 1", &direct),
        (1, "hoopguard, concurrency 1", &through),
        (8, "direct, concurrency 8", &direct),
        (8, "hoopguard, concurrency 8", &through),
    ] {
        let s = s.clone();
        let r = inproc::load(c, seconds, move |n| {
            let s = s.clone();
            async move { s.echo(n + 1).await }
        })
        .await;
        println!("{name:<32} {:>10.0} {:>10.2?} {:>10.2?}", r.0, r.1, r.2);
        rows.push(r);
    }
    println!(
        "added p50 at concurrency 1: {:.2?} ({:.2}×); throughput at concurrency 8 vs direct: {:.2}×",
        rows[1].1.saturating_sub(rows[0].1),
        rows[1].1.as_secs_f64() / rows[0].1.as_secs_f64(),
        rows[3].0 / rows[2].0
    );
}
