//! `hoopguard approvals list|show|approve|deny`: an approver's side, over the admin API.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::Config;

/// Where the admin API is and who is asking.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// Finds the admin URL: `--admin`, else the config's admin listener, else the quickstart's.
pub fn admin_url(
    explicit: Option<String>,
    config: Option<&std::path::Path>,
) -> Result<String, String> {
    if let Some(u) = explicit {
        return Ok(u.trim_end_matches('/').to_string());
    }
    let (cfg, _) = Config::load(config).map_err(|e| e.to_string())?;
    let admin = cfg.listeners.admin.ok_or_else(|| {
        "the configuration has no [listeners.admin]; give --admin URL".to_string()
    })?;
    Ok(format!("http://{}", admin.bind))
}

/// Reads the approver's token from `--token-file` or `HOOPGUARD_TOKEN`.
pub fn token(file: Option<PathBuf>) -> Result<String, String> {
    if let Some(f) = file {
        let t = std::fs::read_to_string(&f)
            .map_err(|e| format!("cannot read the token file {}: {e}", f.display()))?;
        return Ok(t.trim().to_string());
    }
    match std::env::var("HOOPGUARD_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
        _ => Err(
            "no token: give the approver's token with --token-file FILE or HOOPGUARD_TOKEN".into(),
        ),
    }
}

impl Client {
    /// A client for the admin API at `base` with `token`.
    pub fn new(base: String, token: String) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Client { base, token, http })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, String> {
        let resp = req.bearer_auth(&self.token).send().await.map_err(|e| {
            format!(
                "cannot reach the admin API at {}: {}",
                self.base,
                e.without_url()
            )
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let msg = body["message"].as_str().unwrap_or("no details");
        let code = body["reason"]
            .as_str()
            .or(body["error"].as_str())
            .unwrap_or("error");
        Err(format!("{} ({code}): {msg}", status.as_u16()))
    }

    /// `GET /v1/approvals?status=…`.
    pub async fn list(&self, status: &str) -> Result<Value, String> {
        self.send(
            self.http
                .get(format!("{}/v1/approvals", self.base))
                .query(&[("status", status)]),
        )
        .await
    }

    /// `GET /v1/approvals/{id}`.
    pub async fn show(&self, id: &str) -> Result<Value, String> {
        self.send(self.http.get(format!("{}/v1/approvals/{id}", self.base)))
            .await
    }

    /// `POST /v1/approvals/{id}/approve|deny`.
    pub async fn vote(
        &self,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Value, String> {
        let verb = if approve { "approve" } else { "deny" };
        self.send(
            self.http
                .post(format!("{}/v1/approvals/{id}/{verb}", self.base))
                .json(&json!({ "reason": reason })),
        )
        .await
    }
}

fn time(secs: &Value) -> String {
    match secs.as_u64() {
        Some(s) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(s))
                .to_string()
        }
        None => "-".into(),
    }
}

/// The strings of a JSON array, comma-separated.
fn joined(v: &Value) -> String {
    v.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A table of approvals.
pub fn render_list(v: &Value) -> String {
    let list = v["approvals"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        return "no approvals\n".into();
    }
    let mut out = format!(
        "{:<25} {:<9} {:<14} {:<24} {:<21} {}\n",
        "ID", "STATUS", "REQUESTER", "RULE", "EXPIRES", "CALL"
    );
    for a in list {
        out.push_str(&format!(
            "{:<25} {:<9} {:<14} {:<24} {:<21} {}\n",
            a["id"].as_str().unwrap_or("?"),
            a["status"].as_str().unwrap_or("?"),
            a["requester"].as_str().unwrap_or("?"),
            a["rule"].as_str().unwrap_or("?"),
            time(&a["expires_at"]),
            a["summary"].as_str().unwrap_or("?"),
        ));
    }
    out
}

/// One approval in detail.
pub fn render_one(a: &Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    line(&mut out, "id", a["id"].as_str().unwrap_or("?").into());
    line(
        &mut out,
        "status",
        a["status"].as_str().unwrap_or("?").into(),
    );
    line(
        &mut out,
        "requester",
        format!(
            "{} (groups: {})",
            a["requester"].as_str().unwrap_or("?"),
            joined(&a["requester_groups"])
        ),
    );
    line(
        &mut out,
        "call",
        a["summary"].as_str().unwrap_or("?").into(),
    );
    line(&mut out, "detail", a["call"].to_string());
    let d = &a["details"];
    if d.is_object() {
        line(
            &mut out,
            "request",
            format!(
                "{} {} {} ({} in {}, connection {})",
                d["operation"].as_str().unwrap_or("?"),
                d["method"].as_str().unwrap_or("?"),
                d["path"].as_str().unwrap_or("?"),
                d["service"].as_str().unwrap_or("?"),
                d["region"].as_str().unwrap_or("?"),
                d["connection"].as_str().unwrap_or("?"),
            ),
        );
        for (k, v) in hoopguard_core::approvals::flatten(d) {
            if !matches!(
                k.split('.').next(),
                Some("params" | "headers" | "query" | "body" | "bucket" | "key")
            ) {
                continue;
            }
            out.push_str(&format!("  {k} = {v}\n"));
        }
    }
    line(&mut out, "rule", a["rule"].as_str().unwrap_or("?").into());
    let grant = match (a["grant"].as_str(), a["window_secs"].as_u64()) {
        (Some("window"), Some(w)) => format!(
            "window of {}",
            hoopguard_core::duration::format(Duration::from_secs(w))
        ),
        (Some(g), _) => g.to_string(),
        _ => "?".into(),
    };
    line(&mut out, "grant", grant);
    line(
        &mut out,
        "approvers",
        format!("{} (quorum {})", joined(&a["approvers"]), a["quorum"]),
    );
    line(&mut out, "created", time(&a["created_at"]));
    line(&mut out, "expires", time(&a["expires_at"]));
    if !a["window_ends_at"].is_null() {
        line(&mut out, "window ends", time(&a["window_ends_at"]));
    }
    for v in a["votes"].as_array().cloned().unwrap_or_default() {
        line(
            &mut out,
            "vote",
            format!(
                "{} by {} at {}{}",
                if v["approve"].as_bool() == Some(true) {
                    "approve"
                } else {
                    "deny"
                },
                v["approver"].as_str().unwrap_or("?"),
                time(&v["at"]),
                v["reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        );
    }
    out
}
