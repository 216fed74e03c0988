//! Human approvals: a call under an `approve` rule waits for a yes from an approver.
//!
//! [`Approvals::gate`] is asked for every call the policy sends for approval. If a grant covers
//! the call it answers [`Gate::Granted`] (a `once` grant is used up by that); otherwise it opens
//! a pending approval (or finds the one already open for the same call), notifies the webhooks,
//! and answers [`Gate::Pending`] with the id the caller needs. [`Approvals::decide`] records an
//! approver's vote: the approver must be in the rule's approver groups, never the requester;
//! distinct approvers count towards the quorum; a deny by anyone ends it.
//!
//! State lives behind the [`ApprovalStore`] trait; [`SqliteStore`] is the embedded default (feature `sqlite`).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use hoopguard_core::approvals::{Approvals, Gate, SqliteStore};
//! use hoopguard_core::policy::{Call, Policy, RuleConfig};
//! # use hoopguard_core::identity::Identity;
//! # fn who(s: &str, g: &[&str]) -> Identity {
//! #     Identity::new(s, g.iter().map(|x| x.to_string()).collect(), "i", std::time::SystemTime::now())
//! # }
//!
//! let rules: Vec<RuleConfig> = toml::from_str::<toml::Table>(r#"
//!     [[rules]]
//!     name = "terminate"
//!     effect = "approve"
//!     actions = ["ec2:TerminateInstances"]
//!     approvers = ["managers"]
//! "#).unwrap()["rules"].clone().try_into().unwrap();
//! let policy = Policy::compile(&rules).unwrap();
//! let approvals = Approvals::new(Arc::new(SqliteStore::open_in_memory().unwrap()));
//!
//! let (alice, manager) = (who("alice", &["dev"]), who("maria", &["managers"]));
//! let call = Call::aws("ec2:TerminateInstances", &["arn:aws:ec2:us-east-1:1:instance/i-1"], None);
//! let spec = policy.decide(&alice, &call).approval.unwrap();
//!
//! let Gate::Pending(pending) = approvals.gate(&alice, &call, &spec, None).await.unwrap() else { panic!() };
//! approvals.decide(&manager, &pending.id, true, Some("ok".into())).await.unwrap();
//! assert!(matches!(approvals.gate(&alice, &call, &spec, None).await.unwrap(), Gate::Granted { .. }));
//! // Used up: the same call needs a new approval.
//! assert!(matches!(approvals.gate(&alice, &call, &spec, None).await.unwrap(), Gate::Pending(_)));
//! # }
//! ```

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
pub mod webhook;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::identity::Identity;
use crate::policy::{ApprovalSpec, Call, GrantKind};
use webhook::{Event, Notifier};

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for approvers.
    Pending,
    /// Approved: the grant is usable (a `once` grant until used or expired).
    Approved,
    /// Denied by an approver.
    Denied,
    /// Nobody decided in time, or the grant ran out unused.
    Expired,
    /// A `once` grant that was used.
    Used,
}

impl Status {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Used => "used",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "approved" => Status::Approved,
            "denied" => Status::Denied,
            "expired" => Status::Expired,
            "used" => Status::Used,
            _ => return None,
        })
    }
}

/// One approver's vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The approver's subject.
    pub approver: String,
    /// Yes or no.
    pub approve: bool,
    /// Why, as the approver wrote it.
    pub reason: Option<String>,
    /// When (Unix seconds).
    pub at: u64,
}

/// An approval request and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// `apr_` and 20 random characters.
    pub id: String,
    /// Where it stands.
    pub status: Status,
    /// Who asked.
    pub requester: String,
    /// The requester's groups when they asked.
    pub requester_groups: Vec<String>,
    /// What was asked, in words (`ec2:TerminateInstances on arn:…`).
    pub summary: String,
    /// What was asked, as data: AWS actions and resources, or the MCP tool and its arguments
    /// (masked).
    pub call: Value,
    /// Everything the approver is shown of the request, masked: for AWS the operation, every
    /// parameter, the bucket and key, the headers that reach AWS; `null` when the call is all.
    #[serde(default)]
    pub details: Value,
    /// SHA-256 of requester, call and binding: a `once` grant covers only this digest.
    pub digest: String,
    /// The rule that asked for approval.
    pub rule: String,
    /// What approving grants.
    pub grant: GrantKind,
    /// For `window` grants, its length in seconds.
    pub window_secs: Option<u64>,
    /// Groups whose members may approve.
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub quorum: u32,
    /// The votes so far.
    pub votes: Vec<Vote>,
    /// Created (Unix seconds).
    pub created_at: u64,
    /// A pending request expires at this time; after approval, a `once` grant does.
    pub expires_at: u64,
    /// Decided (Unix seconds).
    pub decided_at: Option<u64>,
    /// A `window` grant lasts until this time.
    pub window_ends_at: Option<u64>,
    /// A `once` grant was used at this time.
    pub used_at: Option<u64>,
}

impl Approval {
    /// The status as of `now`, counting expiry that the store has not written yet.
    pub fn status_at(&self, now: u64) -> Status {
        match self.status {
            Status::Pending if now >= self.expires_at => Status::Expired,
            Status::Approved if self.grant == GrantKind::Once && now >= self.expires_at => {
                Status::Expired
            }
            Status::Approved
                if self.grant == GrantKind::Window
                    && self.window_ends_at.is_some_and(|e| now >= e) =>
            {
                Status::Expired
            }
            s => s,
        }
    }

    /// How many distinct approvers said yes.
    pub fn approvals(&self) -> usize {
        self.votes.iter().filter(|v| v.approve).count()
    }
}

/// A request to open, as the store receives it.
#[derive(Debug, Clone)]
pub struct NewApproval {
    /// The approval as it starts (status pending, no votes).
    pub approval: Approval,
}

/// Storage failed; the call is refused (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("approval store: {0}")]
pub struct StoreError(pub String);

/// Why a vote was not recorded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VoteError {
    /// No approval with that id.
    #[error("no approval `{0}`")]
    NotFound(String),
    /// It is no longer pending.
    #[error("approval `{id}` is already {status}; nothing changed")]
    AlreadyDecided {
        /// The approval.
        id: String,
        /// What it is now.
        status: &'static str,
    },
    /// This approver already voted.
    #[error("`{0}` already voted on this approval; the quorum needs distinct approvers")]
    AlreadyVoted(String),
    /// The approver is not in the rule's approver groups.
    #[error("`{subject}` is not in the approver groups {groups:?} of this approval")]
    NotApprover {
        /// The would-be approver.
        subject: String,
        /// The groups that may approve.
        groups: Vec<String>,
    },
    /// A requester can never approve their own request.
    #[error("`{0}` asked for this approval and cannot approve or deny it themselves")]
    SelfApproval(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// State of approvals, behind a trait so a shared database can replace the embedded one.
///
/// Implementations make each method atomic: two votes on one approval never both win, and a
/// `once` grant is taken by exactly one call.
#[async_trait::async_trait]
pub trait ApprovalStore: Send + Sync + std::fmt::Debug {
    /// Opens `new`, unless a pending, unexpired approval for the same requester and digest
    /// exists: then returns that one. The bool says whether a new one was created.
    async fn open(&self, new: NewApproval, now: u64) -> Result<(Approval, bool), StoreError>;
    /// One approval.
    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError>;
    /// Approvals, newest first, optionally only those with `status` (as of `now`).
    async fn list(
        &self,
        status: Option<Status>,
        now: u64,
        limit: usize,
    ) -> Result<Vec<Approval>, StoreError>;
    /// Records a vote on a pending approval and settles it (approved at quorum, denied at the
    /// first no). Refuses votes on anything not pending and second votes by one approver.
    async fn vote(&self, id: &str, vote: Vote, now: u64) -> Result<Approval, VoteError>;
    /// A grant covering a call: an approved, unexpired `once` approval with this requester and
    /// digest (marked used by this call), or an approved `window` approval of this rule and
    /// requester still inside its window.
    async fn take_grant(
        &self,
        requester: &str,
        digest: &str,
        rule: &str,
        now: u64,
    ) -> Result<Option<Approval>, StoreError>;
}

/// Applies `vote` to `a` (loaded as of `now`) the way every store settles one: refused on
/// anything no longer pending (then `a.status` says what it became, for the store to save),
/// refused for a second vote by one approver; approved at quorum, denied at the first no.
///
/// Stores call this inside their transaction, so two stores never settle differently.
pub fn apply_vote(a: &mut Approval, vote: Vote, now: u64) -> Result<(), VoteError> {
    let status = a.status_at(now);
    if status != Status::Pending {
        a.status = status;
        return Err(VoteError::AlreadyDecided {
            id: a.id.clone(),
            status: status.as_str(),
        });
    }
    if a.votes.iter().any(|v| v.approver == vote.approver) {
        return Err(VoteError::AlreadyVoted(vote.approver));
    }
    let approve = vote.approve;
    a.votes.push(vote);
    if !approve {
        a.status = Status::Denied;
        a.decided_at = Some(now);
    } else if a.approvals() >= a.quorum as usize {
        a.status = Status::Approved;
        a.decided_at = Some(now);
        match a.grant {
            // A once grant stays usable as long as the request could wait.
            GrantKind::Once => a.expires_at = now + (a.expires_at - a.created_at),
            GrantKind::Window => a.window_ends_at = Some(now + a.window_secs.unwrap_or(0)),
        }
    }
    Ok(())
}

/// An approval as the stores keep it (its JSON document).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn decode(doc: &str) -> Result<Approval, StoreError> {
    serde_json::from_str(doc).map_err(|e| StoreError(format!("corrupt approval record: {e}")))
}

/// The stores' name of a grant kind (`once`, `window`).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn grant_name(g: GrantKind) -> &'static str {
    match g {
        GrantKind::Once => "once",
        GrantKind::Window => "window",
    }
}

/// What exactly a caller asked, beyond the call the policy sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Asked {
    /// The digest of everything that changes what upstream does (for AWS,
    /// [`aws::binding`](crate::aws::binding)); a `once` grant then covers only that exact
    /// request. `None` when the call itself is all there is (MCP: the tool and the canonical
    /// JSON of its arguments, which the call holds).
    pub binding: Option<String>,
    /// What the approver is shown (masked before it is stored, listed, shown or sent).
    pub details: Value,
}

/// What [`Approvals::gate`] concluded.
#[derive(Debug, Clone)]
pub enum Gate {
    /// A grant covers the call.
    Granted {
        /// The approval that granted it.
        approval_id: String,
    },
    /// The call waits for approval.
    Pending(Box<Approval>),
}

/// The approvals workflow over a store, with notifications.
#[derive(Debug, Clone)]
pub struct Approvals {
    store: Arc<dyn ApprovalStore>,
    notifier: Notifier,
    masker: Arc<crate::mask::Engine>,
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Approvals {
    /// Over `store`, without notifications.
    pub fn new(store: Arc<dyn ApprovalStore>) -> Self {
        Approvals {
            store,
            notifier: Notifier::none(),
            masker: crate::mask::default_engine(),
        }
    }

    /// Masks what is stored and shown with `engine` (default: the default rules). Nothing of a
    /// call reaches the store, the webhooks or the logs unmasked.
    pub fn with_masker(mut self, engine: Arc<crate::mask::Engine>) -> Self {
        self.masker = engine;
        self
    }

    /// The masking engine approvals are masked with (for callers that log calls).
    pub fn masker(&self) -> &Arc<crate::mask::Engine> {
        &self.masker
    }

    /// Sends events to these webhooks.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ApprovalStore> {
        &self.store
    }

    /// Checks for a grant covering `call` by `who` under `spec`'s rule; else opens (or finds)
    /// the pending approval. With `spec.hold`, waits up to that long for a decision.
    ///
    /// `asked` carries the binding of the exact request (a `once` grant then covers only it) and
    /// what the approver is shown. The digest is made of the call as asked; what is stored is
    /// masked.
    pub async fn gate(
        &self,
        who: &Identity,
        call: &Call,
        spec: &ApprovalSpec,
        asked: Option<&Asked>,
    ) -> Result<Gate, StoreError> {
        let requester = who.principal();
        let digest = call_digest(&requester, call, asked.and_then(|a| a.binding.as_deref()));
        if let Some(a) = self
            .store
            .take_grant(&requester, &digest, &spec.rule, now())
            .await?
        {
            return Ok(Gate::Granted { approval_id: a.id });
        }
        let t = now();
        let new = NewApproval {
            approval: Approval {
                id: new_id(),
                status: Status::Pending,
                requester: requester.clone(),
                requester_groups: who.groups.clone(),
                summary: self.masker.mask_text(&call.summary()),
                call: self.masker.mask_json(&call.to_json()),
                details: asked.map_or(Value::Null, |a| self.masker.mask_json(&a.details)),
                digest: digest.clone(),
                rule: spec.rule.clone(),
                grant: spec.grant,
                window_secs: spec.window.map(|w| w.as_secs()),
                approvers: spec.approvers.clone(),
                quorum: spec.quorum,
                votes: Vec::new(),
                created_at: t,
                expires_at: t + spec.expires.as_secs().max(1),
                decided_at: None,
                window_ends_at: None,
                used_at: None,
            },
        };
        let (pending, created) = self.store.open(new, t).await?;
        if created {
            tracing::info!(approval = %pending.id, requester = %pending.requester, rule = %pending.rule,
                call = %pending.summary, "approval requested");
            self.notifier.send(Event::Requested, &pending);
        }
        if let Some(hold) = spec.hold {
            let deadline = tokio::time::Instant::now() + hold;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                match self.store.get(&pending.id).await? {
                    Some(a) if a.status == Status::Pending => continue,
                    Some(a) if a.status == Status::Approved => {
                        if let Some(a) = self
                            .store
                            .take_grant(&requester, &digest, &spec.rule, now())
                            .await?
                        {
                            return Ok(Gate::Granted { approval_id: a.id });
                        }
                        break;
                    }
                    _ => break,
                }
            }
            if let Some(a) = self.store.get(&pending.id).await? {
                return Ok(Gate::Pending(Box::new(a)));
            }
        }
        Ok(Gate::Pending(Box::new(pending)))
    }

    /// Records `approver`'s vote on approval `id`.
    pub async fn decide(
        &self,
        approver: &Identity,
        id: &str,
        approve: bool,
        reason: Option<String>,
    ) -> Result<Approval, VoteError> {
        let a = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| VoteError::NotFound(id.to_string()))?;
        let who = approver.principal();
        if !a.approvers.iter().any(|g| approver.in_group(g)) {
            return Err(VoteError::NotApprover {
                subject: who,
                groups: a.approvers.clone(),
            });
        }
        if a.requester == who {
            return Err(VoteError::SelfApproval(who));
        }
        let reason = reason
            .map(|r| r.chars().take(1000).collect::<String>())
            .filter(|r| !r.trim().is_empty());
        let vote = Vote {
            approver: who.clone(),
            approve,
            reason,
            at: now(),
        };
        let after = self.store.vote(id, vote, now()).await?;
        tracing::info!(approval = %after.id, approver = %who, approve,
            status = after.status.as_str(), "approval vote recorded");
        if after.status != Status::Pending {
            self.notifier.send(Event::Decided, &after);
        }
        Ok(after)
    }

    /// Approvals `who` may see: those they asked for, and those they may decide.
    pub async fn visible_to(
        &self,
        who: &Identity,
        status: Option<Status>,
    ) -> Result<Vec<Approval>, StoreError> {
        let all = self.store.list(status, now(), 1000).await?;
        Ok(all
            .into_iter()
            .filter(|a| may_see(who, a))
            .map(|mut a| {
                a.status = a.status_at(now());
                a
            })
            .collect())
    }

    /// One approval, if `who` may see it.
    pub async fn get_for(&self, who: &Identity, id: &str) -> Result<Option<Approval>, StoreError> {
        Ok(self
            .store
            .get(id)
            .await?
            .filter(|a| may_see(who, a))
            .map(|mut a| {
                a.status = a.status_at(now());
                a
            }))
    }
}

fn may_see(who: &Identity, a: &Approval) -> bool {
    a.requester == who.principal() || a.approvers.iter().any(|g| who.in_group(g))
}

/// The leaves of a JSON value as `dotted.path = value` pairs, in order (`params.InstanceId.1 =
/// i-0abc`): how approvers read the details of a call in a terminal or a chat message.
pub fn flatten(v: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        let key = |k: &str| {
            if prefix.is_empty() {
                k.to_string()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    walk(&key(k), v, out);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, v) in a.iter().enumerate() {
                    walk(&key(&(i + 1).to_string()), v, out);
                }
            }
            Value::Null => {}
            Value::String(s) => out.push((prefix.to_string(), s.clone())),
            other => out.push((prefix.to_string(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

/// `apr_` and 20 random base32 characters.
fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    aws_lc_rs::rand::fill(&mut bytes).unwrap_or_default();
    let s: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("apr_{s}")
}

/// SHA-256 (hex) of requester, call and request binding: what a `once` grant covers.
pub fn call_digest(requester: &str, call: &Call, binding: Option<&str>) -> String {
    let doc = json!({"binding": binding, "call": call.to_json(), "requester": requester});
    hex::encode(Sha256::digest(
        crate::policy::canonical_json(doc).to_string().as_bytes(),
    ))
}

/// What the guard concluded about one call (`hoopguard_tower::policy::Guard::authorize`): the
/// policy's decision combined with the approvals. Holds the refusal texts, so every protocol
/// (AWS XML and JSON, JSON-RPC, plain JSON) tells the caller the same thing.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// The call may proceed.
    Allow {
        /// The allowing rule.
        rule: Option<String>,
        /// The approval whose grant covered the call, if one did.
        approval_id: Option<String>,
    },
    /// The call is refused.
    Deny {
        /// The denying rule (`None`: nothing matched).
        rule: Option<String>,
        /// Why, for the caller.
        reason: String,
    },
    /// The call waits for a human.
    Pending {
        /// The pending approval.
        approval: Box<Approval>,
        /// Why, for the caller.
        reason: String,
    },
    /// The approval store (or the rate-limit store) failed; the call is refused.
    Unavailable {
        /// What failed, as the caller is told: "the approval store failed (…)".
        reason: String,
    },
    /// A rate limit or budget is used up for this caller; the call is refused until its window
    /// ends.
    Throttled {
        /// The limit's name.
        rule: String,
        /// Until the limit's window ends.
        retry_after: std::time::Duration,
        /// Why, for the caller.
        reason: String,
    },
}

impl Verdict {
    /// `allow`, `deny`, `approve` (pending) or `error`.
    pub fn decision(&self) -> &'static str {
        match self {
            Verdict::Allow { .. } => "allow",
            Verdict::Deny { .. } => "deny",
            Verdict::Pending { .. } => "approve",
            Verdict::Unavailable { .. } => "error",
            Verdict::Throttled { .. } => "throttle",
        }
    }

    /// Whole seconds until a throttled call may be retried (at least 1); `None` otherwise.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Verdict::Throttled { retry_after, .. } => {
                Some((retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1))
            }
            _ => None,
        }
    }

    /// The deciding rule, the approval id and the reason, for a recording.
    pub fn parts(&self) -> (Option<String>, Option<String>, Option<String>) {
        match self {
            Verdict::Allow { rule, approval_id } => (rule.clone(), approval_id.clone(), None),
            Verdict::Deny { rule, reason } => (rule.clone(), None, Some(reason.clone())),
            Verdict::Pending { approval, reason } => (
                Some(approval.rule.clone()),
                Some(approval.id.clone()),
                Some(reason.clone()),
            ),
            Verdict::Unavailable { reason } => (None, None, Some(reason.clone())),
            Verdict::Throttled { rule, reason, .. } => {
                (Some(rule.clone()), None, Some(reason.clone()))
            }
        }
    }

    /// What the caller is told of a refusal (`None` for `Allow`): the reason, and for a
    /// pending approval its id and the command that approves it. Every protocol's refusal says
    /// this text.
    pub fn message(&self) -> Option<String> {
        match self {
            Verdict::Allow { .. } => None,
            Verdict::Deny { reason, .. } => Some(reason.clone()),
            Verdict::Pending { approval, reason } => Some(format!(
                "{reason}. Approval {id} is pending: an approver runs `hoopguard approvals approve {id}`; then retry the same call.",
                id = approval.id
            )),
            Verdict::Unavailable { reason } => Some(format!(
                "the call was refused because {reason}; try again later"
            )),
            Verdict::Throttled { reason, .. } => Some(format!(
                "{reason}; retry in {} s",
                self.retry_after_secs().unwrap_or(1)
            )),
        }
    }

    /// The refusal as JSON for the caller (`None` for `Allow`).
    pub fn refusal_json(&self) -> Option<serde_json::Value> {
        let message = self.message()?;
        Some(match self {
            Verdict::Allow { .. } => return None,
            Verdict::Deny { rule, .. } => serde_json::json!({
                "error": "denied", "decision": "deny", "rule": rule, "message": message,
            }),
            Verdict::Pending { approval, .. } => serde_json::json!({
                "error": "approval_required",
                "decision": "approve",
                "rule": approval.rule,
                "approval_id": approval.id,
                "approvers": approval.approvers,
                "expires_at": approval.expires_at,
                "message": message,
            }),
            Verdict::Unavailable { .. } => serde_json::json!({
                "error": "unavailable", "decision": "error", "message": message,
            }),
            Verdict::Throttled { rule, .. } => serde_json::json!({
                "error": "rate_limited", "decision": "throttle", "rule": rule,
                "retry_after": self.retry_after_secs(), "message": message,
            }),
        })
    }
}

#[cfg(test)]
mod tests;
