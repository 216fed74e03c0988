//! `hoopguard`: the gateway binary. See `hoopguard --help`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use hoopguard_cli::config::Config;
use hoopguard_cli::serve;

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
        /// Write the token to this file (mode 0600, no trailing newline) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    match cli.command {
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
            tracing::info!(config = %source, version = env!("CARGO_PKG_VERSION"), "starting hoopguard");
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
            };
            match rt.block_on(serve::run(cfg, shutdown_signal())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(1, &e),
            }
        }
        Command::DevToken {
            config,
            sub,
            groups,
            ttl,
            out,
        } => dev_token(config, &sub, &groups, ttl, out),
    }
}

fn dev_token(
    config: Option<PathBuf>,
    sub: &str,
    groups: &[String],
    ttl: std::time::Duration,
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
    let token = match dev.mint(sub, &groups, ttl) {
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

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("hoopguard: {message}");
    ExitCode::from(code)
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
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
