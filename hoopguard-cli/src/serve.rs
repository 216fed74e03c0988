//! `hoopguard serve`: binds the configured listeners and runs until shut down.
//!
//! * **aws**: the credentials endpoint, and AWS calls through `hoopguard_tower::aws::Stack`
//!   (verified, classified, decided, recorded, re-signed and forwarded; see the `aws` module).
//! * **mcp**: the MCP data path (`hoopguard_tower::mcp::Stack` in front of the configured MCP
//!   server; see the `mcp` module).
//! * **admin**: `/healthz`, `/readyz`, `/metrics` (Prometheus text), the development issuer's
//!   discovery document and JWKS when it is enabled, and the approvals API.
//!
//! Shutdown (SIGINT/SIGTERM, or the future given to [`run`]) stops accepting, lets in-flight calls
//! finish for up to `server.shutdown_grace`, then returns.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use hoopguard_core::approvals::webhook::Notifier;
use hoopguard_core::approvals::{ApprovalStore, Approvals, PgStore, SqliteStore};
use hoopguard_core::audit::AuditLog;
use hoopguard_core::identity::dev::DevIssuer;
use hoopguard_core::identity::{IssuerVerifier, Verifier};
use hoopguard_core::policy::Policy;
use hoopguard_core::shared::Database;
use hoopguard_tower::metrics::{Metrics, MetricsLayer};
use hoopguard_tower::policy::Guard;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::{Config, Source};
use crate::sessions_cli::Recordings;

/// Opens the development issuer if the configuration enables it.
pub fn dev_issuer(cfg: &Config) -> Result<Option<DevIssuer>, String> {
    let (Some(url), Some(dev)) = (cfg.dev_issuer_url(), &cfg.identity.dev_issuer) else {
        return Ok(None);
    };
    DevIssuer::load_or_create(&cfg.data_dir, url, dev.audience.clone())
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Builds the token verifier from the configured issuers (and the development issuer, which
/// also accepts tokens minted for the MCP listener's resource URI). The first configured
/// issuer is the primary one (see [`hoopguard_core::identity::Namespace`]).
pub fn verifier(cfg: &Config, dev: Option<&DevIssuer>) -> Result<Verifier, String> {
    let mut b = Verifier::builder().cache_capacity(cfg.identity.token_cache_size);
    for (i, iss) in cfg.identity.issuers.iter().enumerate() {
        let v = IssuerVerifier::remote(iss)
            .map_err(|e| format!("identity.issuers[{i}].{}: {}", e.key, e.message))?;
        b = b.issuer(v);
    }
    if let Some(dev) = dev {
        let extra: Vec<String> = cfg.mcp_resource().into_iter().collect();
        b = b.issuer(dev.issuer_verifier_for(&extra));
    }
    Ok(b.build())
}

/// Hands the peer address of the connection to the layers that record it.
async fn client_addr(mut req: axum::extract::Request) -> axum::extract::Request {
    let addr = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(a) = addr {
        req.extensions_mut()
            .insert(hoopguard_tower::record::ClientAddr(a));
    }
    req
}

/// Opens the recordings `[record]` names — the data directory's (segments, index, digests) or,
/// with `record.store`, the shared database's — with the masking of recorded bodies and the
/// failure mode; also returns where an auditor reads them.
pub(crate) fn open_recorder(
    cfg: &Config,
    mask: Arc<hoopguard_core::mask::Engine>,
) -> Result<(hoopguard_core::record::Recorder, Recordings), String> {
    use hoopguard_core::record::{Durability, JsonlStore, Recorder};
    let finish = |r: Recorder| {
        r.with_best_effort(cfg.record.on_failure == crate::config::OnRecordFailure::BestEffort)
            .with_masker(mask.clone(), cfg.record.body_cap as usize)
    };
    if let Some(url) = cfg.records_in_database()? {
        let store = Arc::new(
            hoopguard_core::record::PgStore::connect(&url, cfg.store.schema.as_deref())
                .map_err(|e| format!("store: cannot open the recordings: {e}"))?,
        );
        tracing::info!(
            "recordings are in the shared store (PostgreSQL): one chain per session across replicas"
        );
        return Ok((
            finish(Recorder::new(store.clone())),
            Recordings::Database(store),
        ));
    }
    let dir = cfg.data_dir.join("recordings");
    let dir = dir.as_path();
    let durability = match cfg.record.durability {
        crate::config::DurabilityName::EveryEvent => Durability::EveryEvent,
        crate::config::DurabilityName::Batched => Durability::Batched,
    };
    let fail = |e: hoopguard_core::record::RecordError| {
        format!("cannot open the recordings in {}: {e}", dir.display())
    };
    let store = JsonlStore::open(dir, durability)
        .map_err(fail)?
        .with_segment_size(cfg.record.segment_size);
    let mut recorder = Recorder::new(Arc::new(store));
    if let Some(key) = signing_key(cfg)? {
        tracing::info!(
            public_key = %key.public_key().to_base64(),
            key_id = %key.public_key().key_id(),
            "recordings are signed: digests every {}",
            hoopguard_core::duration::format(cfg.record.digest_interval)
        );
        let digester = hoopguard_core::record::digest::Digester::open(dir, key).map_err(fail)?;
        recorder = recorder.with_digester(Arc::new(digester));
    } else {
        tracing::warn!(
            "recordings are hash-chained but not signed: someone who can write the data directory can rewrite them undetected; set record.signing_key_file (see `hoopguard sessions keygen`)"
        );
    }
    Ok((
        finish(recorder.with_index(dir).map_err(fail)?),
        Recordings::Dir(dir.to_path_buf()),
    ))
}

/// The digest signing key `[record]` names, if any.
pub fn signing_key(
    cfg: &Config,
) -> Result<Option<hoopguard_core::record::digest::SigningKey>, String> {
    use hoopguard_core::record::digest::SigningKey;
    match (&cfg.record.signing_key_file, &cfg.record.signing_key_env) {
        (Some(f), _) => SigningKey::load(f)
            .map(Some)
            .map_err(|e| format!("record.signing_key_file: {e}")),
        (None, Some(var)) => {
            let v = std::env::var(var).map_err(|_| {
                format!("record.signing_key_env: the environment variable {var} is not set")
            })?;
            SigningKey::parse(v.as_bytes())
                .map(Some)
                .map_err(|e| format!("record.signing_key_env ({var}): {e}"))
        }
        (None, None) => Ok(None),
    }
}

/// Connects to the database `[store]` names (running its migrations), if it names one.
pub async fn shared_store(cfg: &Config) -> Result<Option<Database>, String> {
    let Some(url) = cfg.store.database_url()? else {
        return Ok(None);
    };
    let db = Database::connect(&url, cfg.store.schema.as_deref())
        .await
        .map_err(|e| format!("store: {e}"))?;
    let version = db.version().await.map_err(|e| format!("store: {e}"))?;
    tracing::info!(
        schema_version = version,
        "approvals and revocations are in the shared store (PostgreSQL)"
    );
    Ok(Some(db))
}

/// The guard: `policy` with the approvals store and the rate limits' counts — in the shared
/// database when there is one (counted across replicas), else SQLite and this process's memory.
/// Every decision goes to the audit stream when `telemetry.audit` names one.
pub fn guard(cfg: &Config, policy: Policy, shared: Option<&Database>) -> Result<Guard, String> {
    let mut guard = Guard::new(policy, approvals(cfg, shared)?);
    if let Some(db) = shared {
        guard = guard.with_limit_store(Arc::new(db.clone()));
    }
    if let Some(log) = audit_log(cfg)? {
        guard = guard.with_audit(log);
    }
    Ok(guard)
}

/// The audit stream `telemetry.audit` names: a file (appended to) or `stdout`.
fn audit_log(cfg: &Config) -> Result<Option<Arc<AuditLog>>, String> {
    Ok(match cfg.telemetry.audit.as_deref() {
        None => None,
        Some("stdout") => Some(Arc::new(AuditLog::to_stdout())),
        Some(path) => Some(Arc::new(AuditLog::to_file(Path::new(path)).map_err(
            |e| {
                format!(
                    "telemetry.audit: cannot open {path}: {e}; give a writable file or `stdout`"
                )
            },
        )?)),
    })
}

/// Opens the approvals store — the shared database when there is one, else SQLite in the data
/// directory — and the webhooks.
pub fn approvals(cfg: &Config, shared: Option<&Database>) -> Result<Approvals, String> {
    let store: Arc<dyn ApprovalStore> = match shared {
        Some(db) => Arc::new(PgStore::new(db.clone())),
        None => {
            let path = cfg.data_dir.join("approvals.sqlite");
            Arc::new(SqliteStore::open(&path).map_err(|e| e.to_string())?)
        }
    };
    let notifier = Notifier::new(cfg.approvals.webhooks.clone(), Duration::from_millis(500))?;
    Ok(Approvals::new(store).with_notifier(notifier))
}

/// `recorder`, consulting the revocations made on any replica when there is a shared store (read
/// before this returns, then every `store.revocation_poll`).
pub async fn share_revocations(
    cfg: &Config,
    shared: Option<&Database>,
    recorder: hoopguard_core::record::Recorder,
) -> Result<Arc<hoopguard_core::record::Recorder>, String> {
    let Some(db) = shared else {
        return Ok(Arc::new(recorder));
    };
    let revoked = Arc::new(hoopguard_core::record::Revoked::new(
        cfg.store.revocation_stale_after,
    ));
    let recorder = Arc::new(recorder.with_revoked(revoked.clone()));
    db.watch_revocations(revoked.clone(), recorder.clone(), cfg.store.revocation_poll);
    // Serve nothing before the revocations are known (calls would be refused as stale).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !revoked.is_fresh() {
        if tokio::time::Instant::now() >= deadline {
            return Err("store: cannot read the revocations within 10s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(recorder)
}

/// The MCP tool pins: in `<data_dir>/mcp-tool-pins.json`, or with a shared store in its
/// `tool_pins` table (read once before anything is served, then kept in step every
/// `store.revocation_poll`).
pub async fn pins(
    cfg: &Config,
    shared: Option<&Database>,
) -> Result<Arc<hoopguard_core::mcp::Pins>, String> {
    let Some(db) = shared else {
        let path = cfg.data_dir.join("mcp-tool-pins.json");
        return hoopguard_core::mcp::Pins::open(path.clone())
            .map(Arc::new)
            .map_err(|e| format!("cannot read the MCP tool pins {}: {e}", path.display()));
    };
    let pins = Arc::new(hoopguard_core::mcp::Pins::in_memory());
    db.sync_pins(&pins)
        .await
        .map_err(|e| format!("store: cannot read the MCP tool pins: {e}"))?;
    db.watch_pins(pins.clone(), cfg.store.revocation_poll);
    Ok(pins)
}

/// Runs the gateway until `shutdown` completes, then drains for up to the grace period.
///
/// With a configuration file, SIGHUP reloads the policy from it (atomically; a broken file is
/// logged and the running policy kept). Other settings need a restart.
pub async fn run(
    cfg: Config,
    source: Source,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    run_recording_into(cfg, source, shutdown, None).await
}

/// [`run`], recording into `store` instead of the data directory's recordings when one is given
/// (for measuring what recording costs, or for a store of your own; no index then).
pub async fn run_recording_into(
    cfg: Config,
    source: Source,
    shutdown: impl Future<Output = ()>,
    store: Option<Arc<dyn hoopguard_core::record::Store>>,
) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create the data directory {}: {e}; set `data_dir` to a writable path",
            cfg.data_dir.display()
        )
    })?;
    let dev = dev_issuer(&cfg)?.map(Arc::new);
    if let Some(d) = &dev {
        tracing::warn!(
            issuer = d.issuer(),
            data_dir = %cfg.data_dir.display(),
            "the development issuer is enabled: anyone who can read the data directory can mint any identity; for local use only"
        );
    }
    let verifier = Arc::new(verifier(&cfg, dev.as_deref())?);
    for name in ["aws", "admin"] {
        if cfg.listener_audiences(name).is_empty() {
            tracing::warn!(
                listener = name,
                "the {name} listener accepts no token audience (every issuer's audience is the MCP resource URI); set `listeners.{name}.audiences`"
            );
        }
    }
    let metrics = Arc::new(if cfg.telemetry.subject_labels {
        Metrics::with_subject_labels()
    } else {
        Metrics::new()
    });
    let policy = cfg.compile_policy().map_err(|e| e.to_string())?;
    if policy.is_empty() {
        tracing::warn!("the policy has no rules: every AWS and MCP call will be denied");
    }
    let shared = shared_store(&cfg).await?;
    let guard = guard(&cfg, policy, shared.as_ref())?.with_metrics(metrics.clone(), "gateway");
    let audit = guard.audit_log().cloned();
    if let Some(log) = &audit {
        metrics.watch_audit(log.clone());
    }
    if let Source::File(path) = &source {
        reload_on_sighup(path.clone(), guard.clone());
    }
    let minter = Arc::new(match &cfg.aws.gateway_key {
        Some(k) => hoopguard_core::aws::Minter::new(k.as_bytes())
            .with_previous(&cfg.aws.previous_gateway_keys),
        None => {
            let path = cfg.data_dir.join("aws-gateway.key");
            hoopguard_core::aws::Minter::load_or_create(&path).map_err(|e| {
                format!(
                    "cannot read or create the gateway key {}: {e}",
                    path.display()
                )
            })?
        }
    });

    let mask_engine = Arc::new(
        hoopguard_core::mask::Engine::new(&cfg.mask)
            .map_err(|e| format!("mask.{}: {}", e.key, e.message))?,
    );
    // One pooled client for both data paths.
    let client = crate::upstream::client()?;
    let (recorder, recordings) = match store {
        Some(store) => (
            hoopguard_core::record::Recorder::new(store)
                .with_best_effort(
                    cfg.record.on_failure == crate::config::OnRecordFailure::BestEffort,
                )
                .with_masker(mask_engine.clone(), cfg.record.body_cap as usize),
            Recordings::Dir(cfg.data_dir.join("recordings")),
        ),
        None => open_recorder(&cfg, mask_engine.clone())?,
    };
    let recorder = share_revocations(&cfg, shared.as_ref(), recorder).await?;
    if cfg.record.durability == crate::config::DurabilityName::Batched {
        let r = recorder.clone();
        let every = cfg.record.sync_interval.max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = r.sync() {
                    tracing::error!(error = %e, "cannot flush the recordings to disk");
                }
            }
        });
    }
    if let Some(wanted) = recorder.digest_wanted() {
        let r = recorder.clone();
        let every = cfg.record.digest_interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = wanted.notified() => {}
                }
                let r = r.clone();
                match tokio::task::spawn_blocking(move || r.digest()).await {
                    Ok(Ok(Some(made))) => tracing::info!(
                        digest = made.seq,
                        sessions = made.sessions,
                        removed = made.removed,
                        "signed a digest of the recordings"
                    ),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot sign a digest of the recordings")
                    }
                    Err(e) => tracing::error!(error = %e, "cannot sign a digest of the recordings"),
                }
            }
        });
    }
    let retention = hoopguard_core::record::Retention {
        max_age: cfg.record.max_age,
        max_size: cfg.record.max_size,
    };
    if retention != Default::default() {
        let r = recorder.clone();
        let every = cfg.record.retention_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let r = r.clone();
                match tokio::task::spawn_blocking(move || r.retain(&retention)).await {
                    Ok(Ok(removed)) if removed.segments > 0 => tracing::info!(
                        segments = removed.segments,
                        bytes = removed.bytes,
                        sessions = removed.sessions.len(),
                        "retention removed old recordings"
                    ),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                    Err(e) => tracing::error!(error = %e, "retention failed"),
                }
            }
        });
    }
    let mask_layer = hoopguard_tower::mask::MaskLayer::from_config(mask_engine, &cfg.mask);

    let pins = pins(&cfg, shared.as_ref()).await?;

    // Bind everything first, so a busy port fails the start rather than half of it.
    let mut bound = Vec::new();
    for (name, l) in cfg.listener_list() {
        let listener = TcpListener::bind(l.bind).await.map_err(|e| {
            format!(
                "cannot bind the {name} listener on {}: {e}; change `listeners.{name}.bind`",
                l.bind
            )
        })?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let router = match name {
            "aws" => crate::aws::router(crate::aws::AwsSetup {
                verifier: verifier.clone(),
                minter: minter.clone(),
                guard: guard.clone(),
                recorder: recorder.clone(),
                connections: connections(&cfg).await,
                ttl: cfg.aws.credentials_ttl,
                upstream_timeout: cfg.aws.upstream_timeout,
                max_body: cfg.aws.max_policy_body,
                mask: mask_layer.clone(),
                client: client.clone(),
                unclassified_approvers: cfg.aws.unclassified_approvers.clone(),
                s3_virtual_host_suffixes: cfg.aws.s3_virtual_host_suffixes.clone(),
                max_buffered: cfg.aws.max_buffered,
                audiences: cfg.listener_audiences("aws"),
                body_read_timeout: cfg.aws.body_read_timeout,
            })
            .layer(MetricsLayer::new(metrics.clone(), "aws")),
            "mcp" => crate::mcp::router(crate::mcp::McpSetup {
                verifier: verifier.clone(),
                guard: guard.clone(),
                recorder: recorder.clone(),
                mask: mask_layer.clone(),
                pins: pins.clone(),
                client: client.clone(),
                path: cfg.mcp.path.clone(),
                resource: cfg
                    .mcp
                    .resource
                    .clone()
                    .unwrap_or_else(|| format!("http://{addr}{}", cfg.mcp.path)),
                issuers: cfg
                    .identity
                    .issuers
                    .iter()
                    .map(|i| i.issuer.clone())
                    .chain(cfg.dev_issuer_url())
                    .collect(),
                upstream: cfg.mcp.upstream.clone(),
                changed_tool_approvers: cfg.mcp.changed_tool_approvers.clone(),
            })?
            .layer(MetricsLayer::new(metrics.clone(), "mcp")),
            _ => admin::router(AdminState {
                verifier: verifier.clone(),
                metrics: metrics.clone(),
                dev: dev.clone(),
                guard: guard.clone(),
                recordings: recordings.clone(),
                recorder: recorder.clone(),
                audiences: cfg.listener_audiences("admin"),
                auditors: Arc::new(
                    cfg.record
                        .auditors
                        .iter()
                        .chain(&cfg.aws.unclassified_approvers)
                        .chain(&cfg.mcp.changed_tool_approvers)
                        .cloned()
                        .collect(),
                ),
                shared: shared.clone(),
            })
            .layer(MetricsLayer::new(metrics.clone(), "admin")),
        };
        let router = router.layer(axum::middleware::map_request(client_addr));
        tracing::info!(listener = name, %addr, "listening");
        let limits = crate::listen::Limits {
            header_read_timeout: cfg.server.header_read_timeout,
            idle_timeout: cfg.server.idle_timeout,
            max_connections: l.max_connections.unwrap_or(cfg.server.max_connections),
            max_connections_per_client: l
                .max_connections_per_client
                .unwrap_or(cfg.server.max_connections_per_client),
        };
        bound.push((name, listener, router, limits));
    }

    // Fetch the issuers' keys now rather than on the first call.
    let warm = verifier.clone();
    tokio::spawn(async move {
        for iss in warm.issuers() {
            if !iss.warm_up().await {
                tracing::warn!(
                    issuer = iss.issuer(),
                    "no signing keys yet; tokens of this issuer are refused until they can be fetched"
                );
            }
        }
    });

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for (name, listener, router, limits) in bound {
        let rx = stop_rx.clone();
        servers.spawn(async move {
            let res = crate::listen::serve(name, listener, router, limits, rx).await;
            (name, res)
        });
    }

    tokio::select! {
        () = shutdown => {}
        Some(done) = servers.join_next() => {
            // A server ended on its own: that is an error, stop the rest.
            let _ = stop_tx.send(true);
            return Err(match done {
                Ok((name, Err(e))) => format!("the {name} listener failed: {e}"),
                Ok((name, Ok(()))) => format!("the {name} listener stopped unexpectedly"),
                Err(e) => format!("a listener task failed: {e}"),
            });
        }
    }
    let grace = cfg.server.shutdown_grace;
    tracing::info!(
        grace = %hoopguard_core::duration::format(grace),
        "shutting down: no new connections; waiting for in-flight calls"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while let Some(done) = servers.join_next().await {
            if let Ok((name, Err(e))) = done {
                tracing::warn!(listener = name, error = %e, "listener ended with an error");
            }
        }
    })
    .await;
    match recorder.end_all("gateway shutdown") {
        Ok(n) => tracing::info!(sessions = n, "recorded the end of the open sessions"),
        Err(e) => tracing::error!(error = %e, "cannot record the end of the open sessions"),
    }
    match recorder.digest() {
        Ok(Some(made)) => tracing::info!(digest = made.seq, "signed the last digest"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot sign the last digest of the recordings"),
    }
    if let Some(log) = audit {
        // What is queued is written before the process exits.
        log.close();
    }
    match drained {
        Ok(()) => tracing::info!("stopped cleanly"),
        Err(_) => {
            tracing::warn!(
                remaining = servers.len(),
                "grace period over; closing the remaining connections"
            );
            servers.abort_all();
        }
    }
    Ok(())
}

/// Reloads the policy from `path` on every SIGHUP.
fn reload_on_sighup(path: std::path::PathBuf, guard: Guard) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; policy reload is off");
            return;
        };
        while hup.recv().await.is_some() {
            match Config::load(Some(&path)).and_then(|(cfg, _)| {
                cfg.compile_policy()
                    .map_err(|e| crate::config::ConfigError {
                        source_name: path.display().to_string(),
                        key: "policy".into(),
                        message: e.to_string(),
                    })
            }) {
                Ok(policy) => {
                    let n = policy.len();
                    guard.swap_policy(policy);
                    tracing::info!(
                        rules = n,
                        "policy reloaded (other settings take effect at restart)"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, "policy reload failed; the running policy stays")
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (path, guard);
}

/// The configured AWS connections with their brokers.
async fn connections(cfg: &Config) -> HashMap<String, hoopguard_tower::aws::Connection> {
    let mut out = HashMap::new();
    for (name, c) in &cfg.aws.connections {
        let kind = c.broker_kind();
        if let hoopguard_core::aws::broker::BrokerKind::Static(creds) = &kind {
            if creds.access_key_id.is_empty() {
                tracing::warn!(
                    connection = %name,
                    "AWS connection `{name}` uses the static broker without credentials: its calls are refused until access_key_id and secret_access_key are set"
                );
            } else {
                tracing::warn!(
                    connection = %name,
                    "AWS connection `{name}` uses the STATIC broker: every agent shares one set of keys and AWS cannot tell them apart. For local development only; use assume_role in production"
                );
            }
        }
        let broker =
            hoopguard_core::aws::broker::Broker::new(kind, &c.region, c.sts_endpoint()).await;
        let mut conn = hoopguard_tower::aws::Connection::new(broker);
        conn.endpoint = c.endpoint.clone();
        conn.account = c.account();
        out.insert(name.clone(), conn);
    }
    out
}
