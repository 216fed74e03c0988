//! `hoopguard`: the gateway binary. See `hoopguard --help`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hoopguard_cli::config::Config;
use hoopguard_cli::{approvals_cli, explain, serve, telemetry};
use hoopguard_core::identity::Identity;
use hoopguard_core::policy::Call;

/// mimalloc rather than the system allocator: the data path allocates and frees many small
/// buffers across worker threads, where glibc's arenas spent more time than any one layer
/// (see the README's performance section for the measurement).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a bad configuration or bad arguments.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(
    name = "hoopguard",
    version,
    about = "An open gateway that lets AI agents reach AWS and MCP servers without static keys",
    long_about = None
)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "HOOPGUARD_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter (tracing's EnvFilter syntax), such as `info` or `hoopguard=debug`.
    #[arg(long, global = true, default_value = "info", env = "HOOPGUARD_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (AWS, MCP and admin listeners).
    Serve {
        /// The configuration file; without it, the built-in quickstart.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Ask a running gateway's health endpoint; exits 0 on `200`, 1 otherwise. For container
    /// health checks, where the image has no shell and no curl.
    Health {
        /// The endpoint (plain HTTP).
        #[arg(long, default_value = "http://127.0.0.1:8789/healthz")]
        url: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// Validate a configuration and print what it sets up. Exits 2 on an error.
    Check {
        /// The configuration file; without it, the built-in quickstart.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Print a token from the local development issuer (only where the config enables it).
    ///
    /// The token is printed without a trailing newline when stdout is not a terminal, so
    /// `hoopguard dev-token --sub alice > token` makes a file AWS SDKs accept as
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
    DevToken {
        /// The configuration file; without it, the built-in quickstart.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The subject.
        #[arg(long)]
        sub: String,
        /// Groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Lifetime, such as `15m` or `1h` (at most 24h).
        #[arg(long, default_value = "1h", value_parser = hoopguard_core::duration::parse)]
        ttl: std::time::Duration,
        /// More audiences, such as the MCP listener's resource URI (repeat or comma-separate).
        #[arg(long = "audience", value_delimiter = ',')]
        audiences: Vec<String>,
        /// Write the token to this file (mode 0600, no trailing newline) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Mask stdin to stdout, streaming, with the configured rules.
    Mask {
        /// The configuration whose `[mask]` rules to use; without it, the defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Which structure-aware rules apply: JSON fields, XML elements, both (auto) or none.
        #[arg(long, value_enum)]
        format: Option<MaskFormat>,
        /// Print bytes, matches per rule and throughput to stderr at the end.
        #[arg(long)]
        stats: bool,
        /// List the built-in rules (on or off under the configuration) with where each format
        /// is published, and exit.
        #[arg(long)]
        rules: bool,
    },
    /// Read session recordings: list, show, verify, export, replay.
    Sessions {
        /// The configuration whose data directory holds the recordings (default: quickstart).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Work with the policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Guard a stdio MCP server: run it as a child and decide, mask and record what passes
    /// between this process's stdin/stdout and it.
    Wrap {
        /// The configuration (policy, identity, mask, data directory).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A file holding the caller's token.
        #[arg(long, conflicts_with = "token_env")]
        token_file: Option<PathBuf>,
        /// An environment variable holding the caller's token.
        #[arg(long)]
        token_env: Option<String>,
        /// The server to run, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Approve or deny pending calls, as an approver (over the admin API).
    Approvals {
        #[command(flatten)]
        conn: AdminConn,
        #[command(subcommand)]
        command: ApprovalsCommand,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// The recorded sessions, optionally filtered.
    List {
        /// Only this subject's sessions (`*` matches any run of characters).
        #[arg(long)]
        subject: Option<String>,
        /// Only sessions with an event this recent (`1h`, `30m`).
        #[arg(long, value_parser = hoopguard_core::duration::parse)]
        since: Option<std::time::Duration>,
        /// Only sessions with a call to this action or tool (`ec2:*`, `ec2:TerminateInstances`, `echo`).
        #[arg(long)]
        action: Option<String>,
        /// Only sessions with a call decided so (`allow`, `deny`, `approve`, `error`); with
        /// `--action`, the same call.
        #[arg(long)]
        decision: Option<String>,
    },
    /// One session's timeline.
    Show {
        /// The session id.
        id: String,
    },
    /// Check the hash chain of one session, or all; with `--public-key`, also the signed
    /// digests (removed, cut or rewritten sessions); names what is broken, exits 1.
    Verify {
        /// The session id (default: every session).
        id: Option<String>,
        /// The digest signing key's public half (base64, as `keygen` printed it), to check the
        /// signed digests with.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Make an Ed25519 key for signing digests: writes the private key (PKCS#8, mode 0600) to
    /// FILE and its public key to FILE.pub, and prints the public key for auditors.
    Keygen {
        /// Where to write the private key; keep it outside the data directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// One session as JSON.
    Export {
        /// The session id.
        id: String,
    },
    /// Re-play a session step by step with its original timing.
    Replay {
        /// The session id.
        id: String,
        /// How many times faster than real time.
        #[arg(long, default_value = "1")]
        speed: f64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum MaskFormat {
    Auto,
    Json,
    Xml,
    Text,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the decision for a caller and a call, the rule that made it, and why the other
    /// rules did not match.
    Explain {
        /// The configuration file; without it, the built-in quickstart.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The caller's subject.
        #[arg(long)]
        subject: String,
        /// The caller's groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// An AWS action, such as `ec2:TerminateInstances`.
        #[arg(long, group = "what")]
        aws_action: Option<String>,
        /// A resource ARN of the AWS action (repeatable).
        #[arg(long, requires = "aws_action")]
        resource: Vec<String>,
        /// The AWS region.
        #[arg(long, requires = "aws_action")]
        region: Option<String>,
        /// An MCP tool name.
        #[arg(long, group = "what")]
        mcp_tool: Option<String>,
        /// The tool's arguments, as a JSON object.
        #[arg(long, requires = "mcp_tool")]
        args: Option<String>,
        /// An MCP resource URI (resources/read).
        #[arg(long, group = "what")]
        mcp_resource: Option<String>,
        /// An MCP prompt name (prompts/get).
        #[arg(long, group = "what")]
        mcp_prompt: Option<String>,
        /// The AWS connection or MCP server the call goes through (for limits on
        /// `connections`; without it, every limit that could match is listed).
        #[arg(long)]
        connection: Option<String>,
    },
}

#[derive(clap::Args)]
struct AdminConn {
    /// The admin API, such as `http://127.0.0.1:8789`; default: the admin listener of --config.
    #[arg(long, global = true, env = "HOOPGUARD_ADMIN_URL")]
    admin: Option<String>,
    /// The configuration whose admin listener to use (default: the built-in quickstart).
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// A file holding the approver's OIDC token (else HOOPGUARD_TOKEN).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum ApprovalsCommand {
    /// Approvals you asked for or may decide.
    List {
        /// pending (default), approved, denied, expired, used or all.
        #[arg(long, default_value = "pending")]
        status: String,
    },
    /// One approval in detail.
    Show {
        /// The approval id (`apr_…`).
        id: String,
    },
    /// Say yes.
    Approve {
        /// The approval id (`apr_…`).
        id: String,
        /// Why (recorded with the vote).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Say no; ends the request.
    Deny {
        /// The approval id (`apr_…`).
        id: String,
        /// Why (required, recorded and shown to the requester).
        #[arg(long)]
        reason: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = match cli.log_format {
        LogFormat::Human => telemetry::LogFormat::Human,
        LogFormat::Json => telemetry::LogFormat::Json,
    };
    // `serve` installs its subscriber once its configuration (which may export traces) is read.
    if !matches!(cli.command, Command::Serve { .. }) {
        if let Err(e) = telemetry::init(log_format, &cli.log, None) {
            return fail(1, &e);
        }
    }
    match cli.command {
        Command::Health { url, timeout } => match health(&url, timeout) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(1, &format!("{url}: {e}")),
        },
        Command::Check { config } => match Config::load(config.as_deref()) {
            Ok((cfg, source)) => {
                print!("{}", cfg.summary(&source));
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_CONFIG, &e.to_string()),
        },
        Command::Serve { config } => {
            let (cfg, source) = match Config::load(config.as_deref()) {
                Ok(x) => x,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            let telemetry = match telemetry::init(log_format, &cli.log, Some(&cfg.telemetry)) {
                Ok(t) => t,
                Err(e) => return fail(EXIT_CONFIG, &e),
            };
            tracing::info!(config = %source, version = env!("CARGO_PKG_VERSION"), "starting hoopguard");
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
            };
            let served = rt.block_on(serve::run(cfg, source, shutdown_signal()));
            drop(rt);
            telemetry.shutdown();
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, &e),
            }
        }
        Command::DevToken {
            config,
            sub,
            groups,
            ttl,
            audiences,
            out,
        } => dev_token(config, &sub, &groups, ttl, &audiences, out),
        Command::Policy {
            command:
                PolicyCommand::Explain {
                    config,
                    subject,
                    groups,
                    aws_action,
                    resource,
                    region,
                    mcp_tool,
                    args,
                    mcp_resource,
                    mcp_prompt,
                    connection,
                },
        } => {
            let (cfg, _) = match Config::load(config.as_deref()) {
                Ok(x) => x,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            let call = match (aws_action, mcp_tool, mcp_resource, mcp_prompt) {
                (Some(a), _, _, _) => {
                    let r: Vec<&str> = resource.iter().map(String::as_str).collect();
                    let mut call = Call::aws(&a, &r, region.as_deref());
                    // The access level, from the Service Authorization Reference, as the
                    // gateway classifies it.
                    if let Call::Aws { actions, .. } = &mut call {
                        actions[0].access =
                            hoopguard_core::aws::iam::access_level(&a).map(str::to_string);
                    }
                    call
                }
                (_, Some(t), _, _) => {
                    let args = match args.as_deref().map(serde_json::from_str).transpose() {
                        Ok(a) => a.unwrap_or_else(|| serde_json::json!({})),
                        Err(e) => return fail(EXIT_CONFIG, &format!("--args is not JSON: {e}")),
                    };
                    Call::tool(&t, args)
                }
                (_, _, Some(uri), _) => Call::McpResource { uri },
                (_, _, _, Some(name)) => Call::McpPrompt { name },
                _ => {
                    return fail(
                        EXIT_CONFIG,
                        "say what to explain: --aws-action, --mcp-tool, --mcp-resource or --mcp-prompt",
                    );
                }
            };
            let policy = match cfg.compile_policy() {
                Ok(p) => p,
                Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
            };
            let who = Identity::new(
                subject,
                groups.into_iter().filter(|g| !g.is_empty()).collect(),
                "(explain)",
                std::time::SystemTime::now(),
            );
            print!(
                "{}",
                explain::render(&policy, &who, &call, connection.as_deref())
            );
            ExitCode::SUCCESS
        }
        Command::Approvals { conn, command } => approvals(conn, command),
        Command::Mask {
            config,
            format,
            stats,
            rules,
        } => mask(config, format, stats, rules),
        Command::Sessions { config, command } => sessions(config, command),
        Command::Wrap {
            config,
            token_file,
            token_env,
            command,
        } => wrap(config, token_file, token_env, command),
    }
}

fn wrap(
    config: Option<PathBuf>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    command: Vec<String>,
) -> ExitCode {
    use hoopguard_cli::wrap::{TokenSource, run};
    let (cfg, _) = match Config::load(config.as_deref()) {
        Ok(x) => x,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    let token = match (token_file, token_env) {
        (Some(f), _) => TokenSource::File(f),
        (None, Some(v)) => TokenSource::Env(v),
        (None, None) => {
            return fail(
                EXIT_CONFIG,
                "the caller's identity is needed: --token-file FILE or --token-env VAR",
            );
        }
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    match rt.block_on(run(cfg, token, command)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => fail(1, &e),
    }
}

fn sessions(config: Option<PathBuf>, command: SessionsCommand) -> ExitCode {
    use hoopguard_cli::sessions_cli;

    let (cfg, _) = match Config::load(config.as_deref()) {
        Ok(x) => x,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    // A key is made without reading any recording.
    if let SessionsCommand::Keygen { out } = &command {
        return match sessions_cli::keygen(out) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &e),
        };
    }
    let rec = match sessions_cli::Recordings::open(&cfg) {
        Ok(r) => r,
        Err(e) => return fail(1, &e),
    };
    let result = match command {
        SessionsCommand::List {
            subject,
            since,
            action,
            decision,
        } => sessions_cli::list(
            &rec,
            &hoopguard_core::record::Query {
                subject,
                since,
                action,
                decision,
                limit: None,
            },
        )
        .map(|t| (t, true)),
        SessionsCommand::Show { id } => sessions_cli::show(&rec, &id).map(|t| (t, true)),
        SessionsCommand::Verify { id, public_key } => {
            match sessions_cli::verify(&rec, id.as_deref()) {
                Ok((mut text, mut ok)) => match (public_key, rec.dir()) {
                    (Some(_), None) => {
                        return fail(
                            1,
                            "signed digests are kept only with recordings in the data directory (record.store = \"local\"); the shared database's recordings are hash-chained, not yet signed",
                        );
                    }
                    (Some(path), Some(dir)) => {
                        match sessions_cli::verify_digests(dir, &path, id.as_deref()) {
                            Ok((more, signed_ok)) => {
                                text.push_str(&more);
                                ok &= signed_ok;
                                Ok((text, ok))
                            }
                            Err(e) => return fail(1, &e),
                        }
                    }
                    (None, dir) => {
                        if dir.is_some_and(|d| {
                            hoopguard_core::record::digest::digests_dir(d).exists()
                        }) {
                            text.push_str("note    signed digests are there but were not checked: pass --public-key\n");
                        }
                        Ok((text, ok))
                    }
                },
                Err(e) => Err(e),
            }
        }
        // Made above, before the recordings were opened.
        SessionsCommand::Keygen { .. } => Ok((String::new(), true)),
        SessionsCommand::Export { id } => sessions_cli::export(&rec, &id).map(|t| (t, true)),
        SessionsCommand::Replay { id, speed } => {
            sessions_cli::replay(&rec, &id, speed, &mut std::io::stdout())
                .map(|()| (String::new(), true))
        }
    };
    match result {
        Ok((text, ok)) => {
            print!("{text}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(1, &e.to_string()),
    }
}

/// Standard output without the line buffering of `std::io::stdout` (which searches every write
/// for a newline): the masker writes whole chunks.
fn raw_stdout() -> Box<dyn std::io::Write> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
            return Box::new(std::fs::File::from(fd));
        }
    }
    Box::new(std::io::stdout().lock())
}

fn mask(config: Option<PathBuf>, format: Option<MaskFormat>, stats: bool, rules: bool) -> ExitCode {
    use std::io::Read;

    let mut mcfg = match Config::load_mask(config.as_deref()) {
        Ok(m) => m,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    if let Some(f) = format {
        mcfg.format = match f {
            MaskFormat::Auto => hoopguard_core::mask::Format::Auto,
            MaskFormat::Json => hoopguard_core::mask::Format::Json,
            MaskFormat::Xml => hoopguard_core::mask::Format::Xml,
            MaskFormat::Text => hoopguard_core::mask::Format::Text,
        };
    }
    let engine = match hoopguard_core::mask::Engine::new(&mcfg) {
        Ok(e) => std::sync::Arc::new(e),
        Err(e) => return fail(EXIT_CONFIG, &format!("mask.{e}")),
    };
    if rules {
        let on = engine.builtin_rules();
        let catalog = hoopguard_core::mask::builtin_rule_catalog();
        println!("{} built-in rules, {} on:", catalog.len(), on.len());
        for (name, source) in catalog {
            let state = if on.contains(&name) { "on " } else { "off" };
            println!("  {state} {name:<34} {source}");
        }
        return ExitCode::SUCCESS;
    }
    let started = std::time::Instant::now();
    let mut stream = engine.stream();
    let mut stdin = std::io::stdin().lock();
    let mut stdout = raw_stdout();
    let mut buf = vec![0u8; 256 * 1024];
    let mut out = Vec::with_capacity(512 * 1024);
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return fail(1, &format!("reading stdin: {e}")),
        };
        out.clear();
        stream.push(&buf[..n], &mut out);
        if let Err(e) = stdout.write_all(&out) {
            return fail(1, &format!("writing stdout: {e}"));
        }
    }
    out.clear();
    stream.finish(&mut out);
    if let Err(e) = stdout.write_all(&out).and_then(|()| stdout.flush()) {
        return fail(1, &format!("writing stdout: {e}"));
    }
    if stats {
        let s = stream.stats();
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        eprintln!(
            "bytes in {}, out {}; {} matches; {:.1} MB/s",
            s.bytes_in,
            s.bytes_out,
            s.total_matches(),
            s.bytes_in as f64 / secs / 1e6
        );
        for (rule, n) in &s.matches {
            eprintln!("  {rule}: {n}");
        }
    }
    ExitCode::SUCCESS
}

fn approvals(conn: AdminConn, command: ApprovalsCommand) -> ExitCode {
    let base = match approvals_cli::admin_url(conn.admin, conn.config.as_deref()) {
        Ok(b) => b,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let token = match approvals_cli::token(conn.token_file) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_CONFIG, &e),
    };
    let client = match approvals_cli::Client::new(base, token) {
        Ok(c) => c,
        Err(e) => return fail(1, &e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    let result = rt.block_on(async {
        match command {
            ApprovalsCommand::List { status } => client.list(&status).await.map(|v| {
                if conn.json {
                    format!("{v:#}\n")
                } else {
                    approvals_cli::render_list(&v)
                }
            }),
            ApprovalsCommand::Show { id } => client.show(&id).await.map(|v| {
                if conn.json {
                    format!("{v:#}\n")
                } else {
                    approvals_cli::render_one(&v)
                }
            }),
            ApprovalsCommand::Approve { id, reason } => {
                client.vote(&id, true, reason).await.map(|v| {
                    if conn.json {
                        format!("{v:#}\n")
                    } else {
                        format!(
                            "recorded your approval; approval {id} is now {}\n",
                            v["status"].as_str().unwrap_or("?")
                        )
                    }
                })
            }
            ApprovalsCommand::Deny { id, reason } => {
                client.vote(&id, false, Some(reason)).await.map(|v| {
                    if conn.json {
                        format!("{v:#}\n")
                    } else {
                        format!(
                            "recorded your denial; approval {id} is now {}\n",
                            v["status"].as_str().unwrap_or("?")
                        )
                    }
                })
            }
        }
    });
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e),
    }
}

fn dev_token(
    config: Option<PathBuf>,
    sub: &str,
    groups: &[String],
    ttl: std::time::Duration,
    audiences: &[String],
    out: Option<PathBuf>,
) -> ExitCode {
    let (cfg, source) = match Config::load(config.as_deref()) {
        Ok(x) => x,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    let dev = match serve::dev_issuer(&cfg) {
        Ok(Some(d)) => d,
        Ok(None) => {
            return fail(
                EXIT_CONFIG,
                &format!(
                    "{source}: the development issuer is not enabled; set `[identity.dev_issuer] enabled = true` (local use only) or get a token from your identity provider"
                ),
            );
        }
        Err(e) => return fail(1, &e),
    };
    let groups: Vec<String> = groups
        .iter()
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    let token = match dev.mint_for(sub, &groups, ttl, audiences) {
        Ok(t) => t,
        Err(e) => return fail(EXIT_CONFIG, &e.to_string()),
    };
    let written = match out {
        Some(path) => write_private(&path, token.as_bytes()),
        None => {
            let mut stdout = std::io::stdout();
            let newline = if stdout.is_terminal() { "\n" } else { "" };
            write!(stdout, "{token}{newline}").and_then(|()| stdout.flush())
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &format!("cannot write the token: {e}")),
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// `GET url` over plain HTTP/1.1; `Ok` on a `200`.
fn health(url: &str, timeout: std::time::Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// URLs are checked (the admin listener's own address)".into());
    }
    let host = uri.host().ok_or("the URL names no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or("cannot resolve the host")?;
    let mut conn = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect: {e}"))?;
    conn.set_read_timeout(Some(timeout)).ok();
    conn.set_write_timeout(Some(timeout)).ok();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\nUser-Agent: hoopguard-health\r\n\r\n"
    )
    .map_err(|e| format!("cannot send: {e}"))?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < head.len() {
        match conn.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("no answer: {e}")),
        }
        if head[..n].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line.split_whitespace().nth(1).unwrap_or("");
    if line.starts_with("HTTP/1.") && status == "200" {
        Ok(())
    } else {
        Err(format!(
            "answered `{}`",
            line.lines().next().unwrap_or("").trim()
        ))
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("hoopguard: {message}");
    ExitCode::from(code)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = term => tracing::info!("received SIGTERM"),
    }
}
