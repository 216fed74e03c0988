//! Webhook notifications for approvals: generic JSON or a Slack-compatible payload, sent in the
//! background with retries and backoff. A failing webhook never blocks or loses an approval.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Approval;

/// The payload shape a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{"event": "approval.requested", "approval": {…}, "approve_with": "…"}`.
    #[default]
    Json,
    /// `{"text": "…"}`, as Slack incoming webhooks take it.
    Slack,
}

/// One webhook, as written in the configuration (`[[approvals.webhooks]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST. Treated as a secret: logs show only its host.
    pub url: String,
    /// `json` (default) or `slack`.
    #[serde(default)]
    pub format: Format,
    /// Attempts before giving up. Default 5.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_attempts() -> u32 {
    5
}

/// What happened to an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new pending approval.
    Requested,
    /// Approved or denied.
    Decided,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Requested => "approval.requested",
            Event::Decided => "approval.decided",
        }
    }
}

/// Sends approval events to the configured webhooks.
#[derive(Debug, Clone)]
pub struct Notifier {
    hooks: Arc<Vec<WebhookConfig>>,
    #[cfg(feature = "webhooks")]
    client: Option<reqwest::Client>,
    #[cfg_attr(not(feature = "webhooks"), allow(dead_code))]
    first_backoff: Duration,
}

impl Notifier {
    /// Sends nothing.
    pub fn none() -> Self {
        Notifier {
            hooks: Arc::new(Vec::new()),
            #[cfg(feature = "webhooks")]
            client: None,
            first_backoff: Duration::from_millis(500),
        }
    }

    /// Sends to `hooks`; backoff starts at `first_backoff` and doubles per attempt. Without
    /// the `webhooks` feature, an error unless `hooks` is empty.
    #[cfg(not(feature = "webhooks"))]
    pub fn new(hooks: Vec<WebhookConfig>, first_backoff: Duration) -> Result<Self, String> {
        if !hooks.is_empty() {
            return Err(
                "webhooks are configured, but hoopguard-core was built without its \
                        `webhooks` feature"
                    .into(),
            );
        }
        Ok(Notifier {
            first_backoff,
            ..Notifier::none()
        })
    }

    /// Sends to `hooks`; backoff starts at `first_backoff` and doubles per attempt.
    #[cfg(feature = "webhooks")]
    pub fn new(hooks: Vec<WebhookConfig>, first_backoff: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Notifier {
            hooks: Arc::new(hooks),
            client: Some(client),
            first_backoff,
        })
    }

    /// Sends `event` about `approval` to every webhook, in the background.
    #[cfg(not(feature = "webhooks"))]
    pub fn send(&self, _event: Event, _approval: &Approval) {
        debug_assert!(self.hooks.is_empty(), "built by new, which refuses hooks");
    }

    /// Sends `event` about `approval` to every webhook, in the background.
    #[cfg(feature = "webhooks")]
    pub fn send(&self, event: Event, approval: &Approval) {
        let Some(client) = &self.client else { return };
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        for hook in self.hooks.iter() {
            let body = payload(hook.format, event, approval);
            let (client, hook, backoff) = (client.clone(), hook.clone(), self.first_backoff);
            let id = approval.id.clone();
            tokio::spawn(async move { deliver(client, hook, body, backoff, event, id).await });
        }
    }
}

#[cfg(feature = "webhooks")]
async fn deliver(
    client: reqwest::Client,
    hook: WebhookConfig,
    body: Value,
    first_backoff: Duration,
    event: Event,
    id: String,
) {
    let host = host_of(&hook.url);
    let mut wait = first_backoff;
    for attempt in 1..=hook.attempts.max(1) {
        let result = client.post(&hook.url).json(&body).send().await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(%host, event = event.name(), approval = %id, attempt, "webhook delivered");
                return;
            }
            Ok(r) => tracing::warn!(%host, event = event.name(), approval = %id, attempt,
                status = r.status().as_u16(), "webhook refused the notification"),
            Err(e) => tracing::warn!(%host, event = event.name(), approval = %id, attempt,
                error = %e.without_url(), "webhook unreachable"),
        }
        if attempt < hook.attempts {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    tracing::error!(%host, event = event.name(), approval = %id,
        "webhook failed after every attempt; the approval itself is unaffected");
}

#[cfg(feature = "webhooks")]
fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split(['/', '?']).next())
        .unwrap_or("?")
        .to_string()
}

#[cfg_attr(not(feature = "webhooks"), allow(dead_code))]
fn payload(format: Format, event: Event, a: &Approval) -> Value {
    let approve_with = format!("hoopguard approvals approve {}", a.id);
    match format {
        Format::Json => json!({
            "event": event.name(),
            "approval": a,
            "approve_with": approve_with,
            "deny_with": format!("hoopguard approvals deny {} --reason '…'", a.id),
        }),
        Format::Slack => {
            let text = match event {
                Event::Requested => {
                    // Every parameter, as the approver must judge them (masked already).
                    let mut lines = String::new();
                    for (k, v) in super::flatten(&a.details) {
                        if lines.len() > 2500 {
                            lines.push_str("…\n");
                            break;
                        }
                        lines.push_str(&format!("{k} = {v}\n"));
                    }
                    let details = if lines.is_empty() {
                        String::new()
                    } else {
                        format!("\n```{lines}```")
                    };
                    format!(
                        ":raised_hand: *{}* asks for approval (rule `{}`): {}{details}\nApprovers: {}. Approve: `{approve_with}`",
                        a.requester,
                        a.rule,
                        a.summary,
                        a.approvers.join(", ")
                    )
                }
                Event::Decided => {
                    let by: Vec<String> = a.votes.iter().map(|v| v.approver.clone()).collect();
                    format!(
                        "Approval `{}` for *{}* ({}) is *{}* (by {})",
                        a.id,
                        a.requester,
                        a.summary,
                        a.status.as_str(),
                        by.join(", ")
                    )
                }
            };
            json!({ "text": text })
        }
    }
}
