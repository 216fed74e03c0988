//! Deciding every call: `allow`, `deny`, or `approve` (a human must say yes first).
//!
//! A [`Policy`] is compiled once from an ordered list of [`RuleConfig`]s and then answers
//! [`Policy::decide`] for a caller ([`Identity`]) and a [`Call`] (an AWS action on resources, an
//! MCP tool with arguments, an MCP resource URI or prompt). Evaluation is what IAM users expect:
//! an explicit deny wins, then approve, then allow; nothing matched → deny. Rules are indexed by
//! action and tool name at compile time, so a decision looks only at rules that could match.
//!
//! Every [`Decision`] names the rule that made it and a human-readable reason, which reaches the
//! caller in the refusal. [`Policy::explain`] also says why the other rules did not match.
//!
//! # Example
//!
//! ```
//! use hoopguard_core::policy::{Call, Effect, Policy, RuleConfig};
//! # use hoopguard_core::identity::Identity;
//! # let alice = Identity::new("alice", vec!["dev".into()], "i", std::time::SystemTime::now());
//!
//! let rules: Vec<RuleConfig> = toml::from_str::<toml::Table>(r#"
//!     [[rules]]
//!     name = "describe"
//!     effect = "allow"
//!     groups = ["dev"]
//!     actions = ["ec2:Describe*"]
//!
//!     [[rules]]
//!     name = "terminate-needs-a-manager"
//!     effect = "approve"
//!     actions = ["ec2:TerminateInstances"]
//!     approvers = ["managers"]
//! "#).unwrap()["rules"].clone().try_into().unwrap();
//! let policy = Policy::compile(&rules).unwrap();
//!
//! let d = policy.decide(&alice, &Call::aws("ec2:DescribeInstances", &[], None));
//! assert_eq!((d.effect, d.rule.as_deref()), (Effect::Allow, Some("describe")));
//! let d = policy.decide(&alice, &Call::aws("ec2:TerminateInstances", &[], None));
//! assert_eq!(d.effect, Effect::Approve);
//! let d = policy.decide(&alice, &Call::aws("iam:CreateUser", &[], None));
//! assert_eq!((d.effect, d.rule), (Effect::Deny, None));
//! ```

mod glob;
mod limits;

pub use limits::{
    CountBy, LimitConfig, LimitError, LimitHit, LimitKey, LimitStore, MAX_CALLS, MemoryLimits, Take,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::Identity;

/// The access levels of the AWS Service Authorization Reference, as `access` conditions name
/// them (`aws::iam` maps each action to one).
pub const ACCESS_LEVELS: &[&str] = &["List", "Read", "Write", "Permissions management", "Tagging"];
use glob::Glob;

/// What a rule does with the calls it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Let the call through.
    Allow,
    /// Refuse the call.
    Deny,
    /// Refuse the call until a human in the approver groups says yes.
    Approve,
}

impl Effect {
    /// `allow`, `deny` or `approve`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::Approve => "approve",
        }
    }
}

/// What an approval grants, once given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantKind {
    /// Exactly the call that was asked for (same requester, action, resources, arguments/body),
    /// once, before it expires.
    #[default]
    Once,
    /// Just-in-time access: calls matching the rule, by the requester, for the rule's `window`.
    Window,
}

/// A condition on one MCP tool argument, addressed by JSON pointer (`/path`, `/options/force`).
///
/// All conditions given in one entry must hold; a missing argument fails every condition.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgCondition {
    /// JSON pointer into the arguments object (RFC 6901), such as `/path`.
    pub pointer: String,
    /// The argument equals this JSON value.
    #[serde(default)]
    pub equals: Option<Value>,
    /// The argument equals one of these JSON values.
    #[serde(default)]
    pub one_of: Option<Vec<Value>>,
    /// The argument is a string matching this wildcard pattern (`*`, `?`).
    #[serde(default)]
    pub glob: Option<String>,
    /// The argument is a string matching this regular expression (anchored at both ends).
    #[serde(default)]
    pub regex: Option<String>,
    /// The argument is a number less than this.
    #[serde(default)]
    pub lt: Option<f64>,
    /// The argument is a number at most this.
    #[serde(default)]
    pub le: Option<f64>,
    /// The argument is a number greater than this.
    #[serde(default)]
    pub gt: Option<f64>,
    /// The argument is a number at least this.
    #[serde(default)]
    pub ge: Option<f64>,
}

/// One rule as written in the configuration (`[[policy.rules]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A unique name, shown in decisions, refusals and approvals.
    pub name: String,
    /// `allow`, `deny` or `approve`.
    pub effect: Effect,
    /// The rule applies only to these subjects (wildcards allowed). Empty: anyone. With several
    /// trusted issuers, `NAME:subject` names a subject of the issuer named `NAME`; a bare
    /// subject is one of the primary (first) issuer's.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// The rule applies only to members of one of these groups. Empty: anyone. With several
    /// trusted issuers, `NAME:group` is a group of the issuer named `NAME`; a bare group is the
    /// primary (first) issuer's.
    #[serde(default)]
    pub groups: Vec<String>,
    /// AWS actions, IAM style (`s3:GetObject`, `ec2:Describe*`, `s3:*`, `*`).
    #[serde(default)]
    pub actions: Vec<String>,
    /// AWS resource ARN patterns (`arn:aws:s3:::bucket/*`, `arn:aws:ec2:*:*:instance/*`).
    /// Empty: any resource.
    #[serde(default)]
    pub resources: Vec<String>,
    /// AWS regions (wildcards allowed). Empty: any region.
    #[serde(default)]
    pub regions: Vec<String>,
    /// AWS access levels from the Service Authorization Reference: `List`, `Read`, `Write`,
    /// `Permissions management`, `Tagging` (case does not matter). The rule matches actions of
    /// these levels; with no `actions`, any action of them (`access = ["List", "Read"]` is
    /// "read-only everywhere"). An action whose level is unknown matches only deny and approve
    /// rules. Empty: any level.
    #[serde(default)]
    pub access: Vec<String>,
    /// MCP tool names (wildcards allowed).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Conditions on MCP tool arguments; all must hold.
    #[serde(default)]
    pub args: Vec<ArgCondition>,
    /// MCP resource URIs for `resources/read` (wildcards allowed).
    #[serde(default)]
    pub uris: Vec<String>,
    /// MCP prompt names for `prompts/get` (wildcards allowed).
    #[serde(default)]
    pub prompts: Vec<String>,
    /// The reason shown to the caller; default names the rule.
    #[serde(default)]
    pub reason: Option<String>,
    /// `approve` rules: the groups whose members may approve.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// `approve` rules: how many distinct approvers must say yes. Default 1.
    #[serde(default = "default_quorum")]
    pub quorum: u32,
    /// `approve` rules: what the approval grants. Default `once`.
    #[serde(default)]
    pub grant: GrantKind,
    /// `approve` rules with `grant = "window"`: how long the access lasts.
    #[serde(default, with = "crate::duration::serde_opt")]
    pub window: Option<Duration>,
    /// `approve` rules: how long a request waits for a decision, and how long a `once` grant
    /// stays usable after it. Default `1h`.
    #[serde(default = "default_approval_ttl", with = "crate::duration::serde")]
    pub expires: Duration,
    /// `approve` rules: hold the caller's connection up to this long waiting for a decision
    /// (off by default: the caller is refused at once with the approval id).
    #[serde(default, with = "crate::duration::serde_opt")]
    pub hold: Option<Duration>,
}

fn default_quorum() -> u32 {
    1
}
fn default_approval_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// The most a hold may last: SDKs time reads out at about a minute.
pub const MAX_HOLD: Duration = Duration::from_secs(50);

/// How an `approve` rule is approved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSpec {
    /// The rule's name.
    pub rule: String,
    /// Groups whose members may approve.
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub quorum: u32,
    /// What the approval grants.
    pub grant: GrantKind,
    /// For `window` grants, how long.
    pub window: Option<Duration>,
    /// How long a pending request (and a `once` grant) lives.
    pub expires: Duration,
    /// How long to hold the caller waiting, if at all.
    pub hold: Option<Duration>,
}

/// A policy mistake, naming the rule (or limit) and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{list}[{index}] (`{name}`).{key}: {message}")]
pub struct RuleError {
    /// `rules` or `limits`.
    pub list: &'static str,
    /// Position in the list.
    pub index: usize,
    /// The rule's name.
    pub name: String,
    /// The key within the rule.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// One call to decide. New kinds of call may be added (MCP revisions bring new ones), so a
/// `match` outside this crate needs a `_` arm.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Call {
    /// An AWS API call: one or more IAM actions, each on its resources.
    Aws {
        /// The IAM actions with the resources each touches (empty: not derivable).
        actions: Vec<AwsAction>,
        /// The region, when known.
        region: Option<String>,
    },
    /// MCP `tools/call`.
    McpTool {
        /// The tool name.
        name: String,
        /// The arguments object.
        args: Value,
    },
    /// MCP `resources/read`.
    McpResource {
        /// The resource URI.
        uri: String,
    },
    /// MCP `prompts/get`.
    McpPrompt {
        /// The prompt name.
        name: String,
    },
}

/// One IAM action of an AWS call and the resources it touches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsAction {
    /// `service:Action`, such as `s3:GetObject`.
    pub action: String,
    /// Resource ARNs; empty when they cannot be derived.
    #[serde(default)]
    pub resources: Vec<String>,
    /// The action's access level in the AWS Service Authorization Reference (`List`, `Read`,
    /// `Write`, `Permissions management`, `Tagging`); `None` when it is not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

impl Call {
    /// An AWS call of one action.
    pub fn aws(action: &str, resources: &[&str], region: Option<&str>) -> Call {
        Call::Aws {
            actions: vec![AwsAction {
                action: action.to_string(),
                resources: resources.iter().map(|r| r.to_string()).collect(),
                access: None,
            }],
            region: region.map(String::from),
        }
    }

    /// An MCP tool call.
    pub fn tool(name: &str, args: Value) -> Call {
        Call::McpTool {
            name: name.to_string(),
            args,
        }
    }

    /// The call as data, object keys sorted so equal calls give equal JSON:
    /// `{"kind": "aws", "actions": [{"action", "resources"}], "region"}`,
    /// `{"kind": "mcp_tool", "tool", "args"}`, `{"kind": "mcp_resource", "uri"}`,
    /// `{"kind": "mcp_prompt", "prompt"}`.
    pub fn to_json(&self) -> Value {
        let v = match self {
            Call::Aws { actions, region } => {
                serde_json::json!({"kind": "aws", "actions": actions, "region": region})
            }
            Call::McpTool { name, args } => {
                serde_json::json!({"kind": "mcp_tool", "tool": name, "args": args})
            }
            Call::McpResource { uri } => serde_json::json!({"kind": "mcp_resource", "uri": uri}),
            Call::McpPrompt { name } => serde_json::json!({"kind": "mcp_prompt", "prompt": name}),
        };
        canonical_json(v)
    }

    /// Reads what [`Call::to_json`] writes; the error says what is missing.
    pub fn from_json(v: &Value) -> Result<Call, String> {
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or_else(|| format!("`{k}` (a string) is missing"))
        };
        match v.get("kind").and_then(Value::as_str) {
            Some("aws") => {
                let actions: Vec<AwsAction> =
                    serde_json::from_value(v.get("actions").cloned().unwrap_or(Value::Null))
                        .map_err(|e| {
                            format!("`actions` must be a list of {{action, resources}}: {e}")
                        })?;
                if actions.is_empty() {
                    return Err("`actions` must name at least one action".into());
                }
                let region = v.get("region").and_then(Value::as_str).map(String::from);
                Ok(Call::Aws { actions, region })
            }
            Some("mcp_tool") => Ok(Call::McpTool {
                name: field("tool")?,
                args: v
                    .get("args")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default())),
            }),
            Some("mcp_resource") => Ok(Call::McpResource { uri: field("uri")? }),
            Some("mcp_prompt") => Ok(Call::McpPrompt {
                name: field("prompt")?,
            }),
            _ => Err("`kind` must be one of aws, mcp_tool, mcp_resource, mcp_prompt".into()),
        }
    }

    /// A one-line human description: `ec2:TerminateInstances on arn:…`, `tool delete_file`.
    pub fn summary(&self) -> String {
        match self {
            Call::Aws { actions, region } => {
                let parts: Vec<String> = actions
                    .iter()
                    .map(|a| {
                        if a.resources.is_empty() {
                            a.action.clone()
                        } else {
                            format!("{} on {}", a.action, a.resources.join(", "))
                        }
                    })
                    .collect();
                match region {
                    Some(r) => format!("{} in {r}", parts.join("; ")),
                    None => parts.join("; "),
                }
            }
            Call::McpTool { name, .. } => format!("tool `{name}`"),
            Call::McpResource { uri } => format!("resource `{uri}`"),
            Call::McpPrompt { name } => format!("prompt `{name}`"),
        }
    }
}

/// `v` with every object's keys in sorted order (for digests that must not depend on the
/// order a client wrote its JSON in).
pub fn canonical_json(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical_json(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(canonical_json).collect()),
        other => other,
    }
}

/// A decision with the rule that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Allow, deny or approve.
    pub effect: Effect,
    /// The deciding rule; `None` for the default deny.
    pub rule: Option<String>,
    /// Why, in words the caller can act on.
    pub reason: String,
    /// For `approve`: how to get it approved.
    pub approval: Option<Arc<ApprovalSpec>>,
}

/// Why one rule did or did not match, from [`Policy::explain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleVerdict {
    /// The rule's name.
    pub rule: String,
    /// Its effect.
    pub effect: Effect,
    /// `None` when it matched; otherwise the first reason it did not.
    pub mismatch: Option<String>,
}

/// A decision and the verdict of every rule that could apply to the call's kind.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The decision, as [`Policy::decide`] gives it.
    pub decision: Decision,
    /// Each rule of the same kind (AWS or MCP), in order.
    pub rules: Vec<RuleVerdict>,
    /// The limits the call counts against, if it is allowed.
    pub limits: Vec<LimitKey>,
}

enum Cond {
    Equals(Value),
    OneOf(Vec<Value>),
    Glob(Glob),
    Regex(regex::Regex),
    Lt(f64),
    Le(f64),
    Gt(f64),
    Ge(f64),
}

struct ArgRule {
    pointer: String,
    conds: Vec<Cond>,
}

enum Target {
    Aws {
        actions: Vec<Glob>,
        resources: Vec<Glob>,
        regions: Vec<Glob>,
        /// Access levels, lower case.
        access: Vec<String>,
    },
    Mcp {
        tools: Vec<Glob>,
        args: Vec<ArgRule>,
        uris: Vec<Glob>,
        prompts: Vec<Glob>,
    },
}

struct Rule {
    name: String,
    effect: Effect,
    reason: Option<String>,
    subjects: Vec<Glob>,
    groups: Vec<String>,
    target: Target,
    approval: Option<Arc<ApprovalSpec>>,
}

/// A compiled `[[policy.limits]]` entry.
struct Limit {
    /// Which callers and calls it counts (a deny-like matcher).
    rule: Rule,
    /// Which connections it counts (empty: any).
    connections: Vec<Glob>,
    /// Whose count a call goes to.
    by: Vec<CountBy>,
    calls: u32,
    per: Duration,
}

/// Rule ids by exact key, by key prefix before `:` for wildcard patterns, and any.
#[derive(Default)]
struct Index {
    exact: HashMap<String, Vec<u32>>,
    by_prefix: HashMap<String, Vec<u32>>,
    any: Vec<u32>,
}

impl Index {
    fn add(&mut self, key: &Glob, id: u32) {
        if !key.has_wildcard() {
            self.exact
                .entry(key.as_str().to_string())
                .or_default()
                .push(id);
            return;
        }
        match key.as_str().split_once(':') {
            Some((prefix, _)) if !prefix.contains(['*', '?']) => self
                .by_prefix
                .entry(prefix.to_string())
                .or_default()
                .push(id),
            _ => self.any.push(id),
        }
    }

    /// Candidate rule ids for `key`, in rule order, without duplicates.
    fn candidates(&self, key: &str, out: &mut Vec<u32>) {
        out.clear();
        if let Some(v) = self.exact.get(key) {
            out.extend_from_slice(v);
        }
        if let Some((prefix, _)) = key.split_once(':') {
            if let Some(v) = self.by_prefix.get(prefix) {
                out.extend_from_slice(v);
            }
        }
        out.extend_from_slice(&self.any);
        out.sort_unstable();
        out.dedup();
    }
}

/// A compiled policy. Immutable; swap a whole new one in to reload.
pub struct Policy {
    rules: Vec<Rule>,
    /// `[[policy.limits]]`: each a deny-like matcher with its size.
    limits: Vec<Limit>,
    aws: Index,
    tools: Index,
    uris: Vec<u32>,
    prompts: Vec<u32>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.rules.len())
            .field("limits", &self.limits.len())
            .finish_non_exhaustive()
    }
}

/// The largest compiled regex an argument condition may have.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;

impl Policy {
    /// Every group named as approvers by an `approve` rule (sorted, once each).
    pub fn approver_groups(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .rules
            .iter()
            .filter_map(|r| r.approval.as_ref())
            .flat_map(|a| a.approvers.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Compiles and checks the rules. Errors name the rule and the key.
    pub fn compile(configs: &[RuleConfig]) -> Result<Policy, RuleError> {
        let mut p = Policy {
            rules: Vec::with_capacity(configs.len()),
            limits: Vec::new(),
            aws: Index::default(),
            tools: Index::default(),
            uris: Vec::new(),
            prompts: Vec::new(),
        };
        compile_named(
            "rules",
            configs,
            |c| &c.name,
            |index, cfg| {
                let rule = compile_rule(cfg)?;
                let id = index as u32;
                match &rule.target {
                    Target::Aws { actions, .. } => {
                        for a in actions {
                            p.aws.add(a, id);
                        }
                    }
                    Target::Mcp {
                        tools,
                        uris,
                        prompts,
                        ..
                    } => {
                        for t in tools {
                            p.tools.add(t, id);
                        }
                        if !uris.is_empty() {
                            p.uris.push(id);
                        }
                        if !prompts.is_empty() {
                            p.prompts.push(id);
                        }
                    }
                }
                p.rules.push(rule);
                Ok(())
            },
        )?;
        Ok(p)
    }

    /// [`Policy::compile`], with rate limits and budgets ([`LimitConfig`]).
    pub fn compile_with_limits(
        rules: &[RuleConfig],
        limits: &[LimitConfig],
    ) -> Result<Policy, RuleError> {
        let mut p = Policy::compile(rules)?;
        compile_named(
            "limits",
            limits,
            |c| &c.name,
            |_, cfg| {
                cfg.check()?;
                let rule = compile_rule(&cfg.as_rule())?;
                p.limits.push(Limit {
                    rule,
                    connections: cfg.connections.iter().map(|c| Glob::new(c)).collect(),
                    by: cfg.by.clone(),
                    calls: cfg.calls,
                    per: cfg.per,
                });
                Ok(())
            },
        )?;
        Ok(p)
    }

    /// The limits `call` by `who` through `connection` counts against (see [`LimitConfig`]):
    /// each limit whose callers, connections and calls match it, as a deny rule would (an
    /// unknown connection counts). Empty without limits.
    pub fn limits_for(
        &self,
        who: &Identity,
        call: &Call,
        connection: Option<&str>,
    ) -> Vec<LimitKey> {
        if self.limits.is_empty() {
            return Vec::new();
        }
        self.limits
            .iter()
            .filter(|l| {
                principal_mismatch(&l.rule, who).is_none()
                    && (l.connections.is_empty()
                        || connection.is_none_or(|c| l.connections.iter().any(|g| g.matches(c))))
                    && counts(&l.rule, call)
            })
            .map(|l| {
                let calls = l.calls;
                let whose = match (
                    l.by.contains(&CountBy::Caller),
                    l.by.contains(&CountBy::Connection),
                ) {
                    (true, false) => format!("for `{}`", who.subject),
                    (false, true) => format!("through `{}`", connection.unwrap_or("?")),
                    (true, true) => format!(
                        "for `{}` through `{}`",
                        who.subject,
                        connection.unwrap_or("?")
                    ),
                    (false, false) => "in all".to_string(),
                };
                LimitKey {
                    limit: l.rule.name.clone(),
                    scope: LimitKey::scope_of(&l.by, &who.principal(), connection),
                    calls,
                    per_ms: (l.per.as_millis() as u64).max(1),
                    reason: l.rule.reason.clone().unwrap_or_else(|| {
                        format!(
                            "limit `{}`: at most {calls} calls per {} {whose}",
                            l.rule.name,
                            humantime::format_duration(l.per),
                        )
                    }),
                }
            })
            .collect()
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides `call` for `who`.
    pub fn decide(&self, who: &Identity, call: &Call) -> Decision {
        self.decide_with(who, call, true)
    }

    /// The same decision by scanning every rule, without the index: the baseline in the
    /// benchmarks and the oracle in the tests. Not for production use.
    #[doc(hidden)]
    pub fn decide_by_scan(&self, who: &Identity, call: &Call) -> Decision {
        self.decide_with(who, call, false)
    }

    fn decide_with(&self, who: &Identity, call: &Call, indexed: bool) -> Decision {
        let all: Vec<u32> = if indexed {
            Vec::new()
        } else {
            (0..self.rules.len() as u32).collect()
        };
        let mut scratch = Vec::new();
        match call {
            Call::Aws { actions, region } => {
                let mut best: Option<Decision> = None;
                for a in actions {
                    let action = a.action.to_ascii_lowercase();
                    if indexed {
                        self.aws.candidates(&action, &mut scratch);
                    } else {
                        scratch.clone_from(&all);
                    }
                    let unknown = [None];
                    let known: Vec<Option<&str>> =
                        a.resources.iter().map(|r| Some(r.as_str())).collect();
                    let resources: &[Option<&str>] =
                        if known.is_empty() { &unknown } else { &known };
                    for resource in resources {
                        let d = self
                            .decide_one(who, &scratch, call, |rule| {
                                aws_mismatch(
                                    rule,
                                    &action,
                                    a.access.as_deref(),
                                    *resource,
                                    region.as_deref(),
                                )
                                .is_none()
                            })
                            .unwrap_or_else(|| default_deny(who, &a.action, *resource));
                        if d.effect == Effect::Deny {
                            return d;
                        }
                        if best
                            .as_ref()
                            .is_none_or(|b| rank(d.effect) > rank(b.effect))
                        {
                            best = Some(d);
                        }
                    }
                }
                best.unwrap_or_else(|| default_deny(who, "(no action)", None))
            }
            Call::McpTool { name, args } => {
                if !(args.is_object() || args.is_null()) {
                    return Decision {
                        effect: Effect::Deny,
                        rule: None,
                        reason: "tool arguments must be a JSON object".into(),
                        approval: None,
                    };
                }
                if indexed {
                    self.tools.candidates(name, &mut scratch);
                } else {
                    scratch.clone_from(&all);
                }
                self.decide_one(who, &scratch, call, |rule| {
                    mcp_mismatch(rule, call).is_none()
                })
                .unwrap_or_else(|| default_deny_mcp(who, call))
            }
            Call::McpResource { .. } => self
                .decide_one(who, &self.uris, call, |rule| {
                    mcp_mismatch(rule, call).is_none()
                })
                .unwrap_or_else(|| default_deny_mcp(who, call)),
            Call::McpPrompt { .. } => self
                .decide_one(who, &self.prompts, call, |rule| {
                    mcp_mismatch(rule, call).is_none()
                })
                .unwrap_or_else(|| default_deny_mcp(who, call)),
        }
    }

    /// Among `ids` (in rule order), the deciding rule: first deny, else first approve, else
    /// first allow. `None` if none matches.
    fn decide_one(
        &self,
        who: &Identity,
        ids: &[u32],
        call: &Call,
        target_matches: impl Fn(&Rule) -> bool,
    ) -> Option<Decision> {
        let mut approve: Option<&Rule> = None;
        let mut allow: Option<&Rule> = None;
        for &id in ids {
            let rule = &self.rules[id as usize];
            if principal_mismatch(rule, who).is_some() || !target_matches(rule) {
                continue;
            }
            match rule.effect {
                Effect::Deny => return Some(decision(rule, call)),
                Effect::Approve if approve.is_none() => approve = Some(rule),
                Effect::Allow if allow.is_none() => allow = Some(rule),
                _ => {}
            }
        }
        approve.or(allow).map(|r| decision(r, call))
    }

    /// Whether `who` should see tool `name` in a tool list: some allow or approve rule names it
    /// for them (whatever argument conditions it has), and no deny rule without argument
    /// conditions does. Calls are still decided one by one, arguments included.
    pub fn lists_tool(&self, who: &Identity, name: &str) -> bool {
        let mut ids = Vec::new();
        self.tools.candidates(name, &mut ids);
        let mut visible = false;
        for &id in &ids {
            let rule = &self.rules[id as usize];
            let Target::Mcp { tools, args, .. } = &rule.target else {
                continue;
            };
            if principal_mismatch(rule, who).is_some() || !tools.iter().any(|t| t.matches(name)) {
                continue;
            }
            match rule.effect {
                Effect::Deny if args.is_empty() => return false,
                Effect::Allow | Effect::Approve => visible = true,
                Effect::Deny => {}
            }
        }
        visible
    }

    /// The decision, and for every rule of the call's kind whether it matched and if not why;
    /// the limits it counts against through `connection` (unknown: every limit that could).
    pub fn explain(&self, who: &Identity, call: &Call, connection: Option<&str>) -> Explanation {
        let decision = self.decide(who, call);
        let rules = self
            .rules
            .iter()
            .filter(|r| {
                matches!(
                    (&r.target, call),
                    (Target::Aws { .. }, Call::Aws { .. })
                        | (
                            Target::Mcp { .. },
                            Call::McpTool { .. }
                                | Call::McpResource { .. }
                                | Call::McpPrompt { .. }
                        )
                )
            })
            .map(|rule| {
                let mismatch = principal_mismatch(rule, who).or_else(|| match call {
                    Call::Aws { actions, region } => actions.iter().find_map(|a| {
                        let action = a.action.to_ascii_lowercase();
                        let level = a.access.as_deref();
                        if a.resources.is_empty() {
                            aws_mismatch(rule, &action, level, None, region.as_deref())
                        } else {
                            a.resources.iter().find_map(|r| {
                                aws_mismatch(rule, &action, level, Some(r), region.as_deref())
                            })
                        }
                    }),
                    _ => mcp_mismatch(rule, call),
                });
                RuleVerdict {
                    rule: rule.name.clone(),
                    effect: rule.effect,
                    mismatch,
                }
            })
            .collect();
        Explanation {
            decision,
            rules,
            limits: self.limits_for(who, call, connection),
        }
    }
}

/// Runs `compile` on each entry of the list named `list`, after checking its name is set and
/// unique; an error names the list, the entry's position and name, and the key.
fn compile_named<T>(
    list: &'static str,
    items: &[T],
    name: impl Fn(&T) -> &str,
    mut compile: impl FnMut(usize, &T) -> Result<(), (&'static str, String)>,
) -> Result<(), RuleError> {
    let mut names = HashMap::new();
    for (index, item) in items.iter().enumerate() {
        let n = name(item);
        let err = |(key, message): (&'static str, String)| RuleError {
            list,
            index,
            name: n.to_string(),
            key,
            message,
        };
        if n.trim().is_empty() {
            return Err(err(("name", "must not be empty".into())));
        }
        if let Some(first) = names.insert(n.to_string(), index) {
            return Err(err((
                "name",
                format!("is also the name of {list}[{first}]"),
            )));
        }
        compile(index, item).map_err(err)?;
    }
    Ok(())
}

/// Whether `call` is one `rule` (a limit's matcher) counts: any of its actions on any of its
/// resources, or the MCP call.
fn counts(rule: &Rule, call: &Call) -> bool {
    match call {
        Call::Aws { actions, region } => actions.iter().any(|a| {
            let action = a.action.to_ascii_lowercase();
            let level = a.access.as_deref();
            if a.resources.is_empty() {
                aws_mismatch(rule, &action, level, None, region.as_deref()).is_none()
            } else {
                a.resources.iter().any(|r| {
                    aws_mismatch(rule, &action, level, Some(r), region.as_deref()).is_none()
                })
            }
        }),
        _ => mcp_mismatch(rule, call).is_none(),
    }
}

fn rank(e: Effect) -> u8 {
    match e {
        Effect::Allow => 0,
        Effect::Approve => 1,
        Effect::Deny => 2,
    }
}

fn decision(rule: &Rule, call: &Call) -> Decision {
    let reason = rule.reason.clone().unwrap_or_else(|| match rule.effect {
        Effect::Allow => format!("rule `{}` allows {}", rule.name, call.summary()),
        Effect::Deny => format!("rule `{}` denies {}", rule.name, call.summary()),
        Effect::Approve => format!(
            "rule `{}` requires approval by {} for {}",
            rule.name,
            rule.approval
                .as_ref()
                .map(|a| a.approvers.join(" or "))
                .unwrap_or_default(),
            call.summary()
        ),
    });
    Decision {
        effect: rule.effect,
        rule: Some(rule.name.clone()),
        reason,
        approval: rule.approval.clone(),
    }
}

fn default_deny(who: &Identity, action: &str, resource: Option<&str>) -> Decision {
    let on = resource.map(|r| format!(" on `{r}`")).unwrap_or_default();
    Decision {
        effect: Effect::Deny,
        rule: None,
        reason: format!(
            "no rule allows `{action}`{on} for `{}` (nothing matched: denied by default)",
            who.subject
        ),
        approval: None,
    }
}

fn default_deny_mcp(who: &Identity, call: &Call) -> Decision {
    Decision {
        effect: Effect::Deny,
        rule: None,
        reason: format!(
            "no rule allows {} for `{}` (nothing matched: denied by default)",
            call.summary(),
            who.subject
        ),
        approval: None,
    }
}

fn principal_mismatch(rule: &Rule, who: &Identity) -> Option<String> {
    if !rule.subjects.is_empty() {
        let names = who.subject_names();
        if !rule
            .subjects
            .iter()
            .any(|s| names.iter().any(|n| s.matches(n)))
        {
            return Some(format!(
                "subject `{}` is not one of the rule's subjects",
                who.principal()
            ));
        }
    }
    if !rule.groups.is_empty() && !rule.groups.iter().any(|g| who.in_group(g)) {
        return Some(format!(
            "`{}` is in none of the groups {:?}",
            who.subject, rule.groups
        ));
    }
    None
}

/// Why an AWS rule does not match (`None`: it matches). `action` is lowercase. An unknown
/// resource or region matches only a `*` pattern for allow rules, but any pattern for deny and
/// approve rules: what cannot be derived is never allowed by accident.
fn aws_mismatch(
    rule: &Rule,
    action: &str,
    level: Option<&str>,
    resource: Option<&str>,
    region: Option<&str>,
) -> Option<String> {
    let Target::Aws {
        actions,
        resources,
        regions,
        access,
    } = &rule.target
    else {
        return Some("is an MCP rule".into());
    };
    if !actions.iter().any(|a| a.matches(action)) {
        return Some(format!(
            "action `{action}` matches none of {:?}",
            names(actions)
        ));
    }
    let strict = rule.effect == Effect::Allow;
    if !access.is_empty() {
        match level {
            Some(l) if access.iter().any(|a| a.eq_ignore_ascii_case(l)) => {}
            Some(l) => {
                return Some(format!("access level `{l}` is none of {access:?}"));
            }
            None if strict => {
                return Some(
                    "the action's access level is unknown and this allow rule names levels".into(),
                );
            }
            None => {}
        }
    }
    let field_ok = |patterns: &[Glob], value: Option<&str>| {
        patterns.is_empty()
            || match value {
                Some(v) => patterns.iter().any(|p| p.matches(v)),
                None => !strict || patterns.iter().any(Glob::is_any),
            }
    };
    if !field_ok(resources, resource) {
        return Some(match resource {
            Some(r) => format!("resource `{r}` matches none of {:?}", names(resources)),
            None => "the resource cannot be derived and this allow rule names resources".into(),
        });
    }
    if !field_ok(regions, region) {
        return Some(match region {
            Some(r) => format!("region `{r}` matches none of {:?}", names(regions)),
            None => "the region is unknown and this allow rule names regions".into(),
        });
    }
    None
}

fn mcp_mismatch(rule: &Rule, call: &Call) -> Option<String> {
    let Target::Mcp {
        tools,
        args,
        uris,
        prompts,
    } = &rule.target
    else {
        return Some("is an AWS rule".into());
    };
    match call {
        Call::McpTool { name, args: value } => {
            if !tools.iter().any(|t| t.matches(name)) {
                return Some(format!("tool `{name}` matches none of {:?}", names(tools)));
            }
            args.iter().find_map(|a| arg_mismatch(a, value))
        }
        Call::McpResource { uri } => (!uris.iter().any(|u| u.matches(uri)))
            .then(|| format!("resource `{uri}` matches none of {:?}", names(uris))),
        Call::McpPrompt { name } => (!prompts.iter().any(|p| p.matches(name)))
            .then(|| format!("prompt `{name}` matches none of {:?}", names(prompts))),
        Call::Aws { .. } => Some("is an MCP rule".into()),
    }
}

fn arg_mismatch(rule: &ArgRule, args: &Value) -> Option<String> {
    let Some(v) = args.pointer(&rule.pointer) else {
        return Some(format!("argument `{}` is absent", rule.pointer));
    };
    for c in &rule.conds {
        let ok = match c {
            Cond::Equals(x) => v == x,
            Cond::OneOf(xs) => xs.contains(v),
            Cond::Glob(g) => v.as_str().is_some_and(|s| g.matches(s)),
            Cond::Regex(r) => v.as_str().is_some_and(|s| r.is_match(s)),
            Cond::Lt(x) => v.as_f64().is_some_and(|n| n < *x),
            Cond::Le(x) => v.as_f64().is_some_and(|n| n <= *x),
            Cond::Gt(x) => v.as_f64().is_some_and(|n| n > *x),
            Cond::Ge(x) => v.as_f64().is_some_and(|n| n >= *x),
        };
        if !ok {
            let mut shown = v.to_string();
            if shown.len() > 60 {
                let mut cut = 60;
                while !shown.is_char_boundary(cut) {
                    cut -= 1;
                }
                shown.truncate(cut);
                shown.push('…');
            }
            return Some(format!(
                "argument `{}` = {shown} fails {}",
                rule.pointer,
                cond_text(c)
            ));
        }
    }
    None
}

fn cond_text(c: &Cond) -> String {
    match c {
        Cond::Equals(x) => format!("equals {x}"),
        Cond::OneOf(xs) => format!("one_of {}", Value::Array(xs.clone())),
        Cond::Glob(g) => format!("glob `{}`", g.as_str()),
        Cond::Regex(r) => format!("regex `{}`", r.as_str()),
        Cond::Lt(x) => format!("lt {x}"),
        Cond::Le(x) => format!("le {x}"),
        Cond::Gt(x) => format!("gt {x}"),
        Cond::Ge(x) => format!("ge {x}"),
    }
}

fn names(globs: &[Glob]) -> Vec<&str> {
    globs.iter().map(Glob::as_str).collect()
}

fn compile_rule(cfg: &RuleConfig) -> Result<Rule, (&'static str, String)> {
    let is_aws = !cfg.actions.is_empty() || !cfg.access.is_empty();
    let is_mcp = !cfg.tools.is_empty() || !cfg.uris.is_empty() || !cfg.prompts.is_empty();
    let target = match (is_aws, is_mcp) {
        (true, true) => {
            return Err((
                "actions",
                "a rule names AWS actions or MCP tools/uris/prompts, not both; split it in two"
                    .into(),
            ));
        }
        (false, false) => {
            return Err((
                "actions",
                "the rule matches nothing: give `actions` or `access` (AWS) or `tools`, `uris` or `prompts` (MCP)".into(),
            ));
        }
        (true, false) => {
            for a in &cfg.actions {
                if a != "*" && !valid_action(a) {
                    return Err((
                        "actions",
                        format!(
                            "`{a}` is not an IAM action pattern like `s3:GetObject`, `ec2:Describe*` or `*`"
                        ),
                    ));
                }
            }
            for r in &cfg.resources {
                if r != "*" && !valid_arn_pattern(r) {
                    return Err((
                        "resources",
                        format!(
                            "`{r}` is not an ARN pattern (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE, wildcards allowed) or `*`"
                        ),
                    ));
                }
            }
            if !cfg.args.is_empty() {
                return Err(("args", "argument conditions apply to MCP tools only".into()));
            }
            let mut access = Vec::new();
            for a in &cfg.access {
                let Some(level) = ACCESS_LEVELS
                    .iter()
                    .find(|l| l.eq_ignore_ascii_case(a.trim()))
                else {
                    return Err((
                        "access",
                        format!(
                            "`{a}` is not an access level; use {}",
                            ACCESS_LEVELS.join(", ")
                        ),
                    ));
                };
                access.push(level.to_ascii_lowercase());
            }
            let actions = if cfg.actions.is_empty() {
                vec![Glob::ignore_case("*")]
            } else {
                cfg.actions.iter().map(|a| Glob::ignore_case(a)).collect()
            };
            Target::Aws {
                actions,
                resources: cfg.resources.iter().map(|r| Glob::new(r)).collect(),
                regions: cfg.regions.iter().map(|r| Glob::new(r)).collect(),
                access,
            }
        }
        (false, true) => {
            if !cfg.resources.is_empty() || !cfg.regions.is_empty() || !cfg.access.is_empty() {
                return Err((
                    "resources",
                    "`resources`, `regions` and `access` are for AWS rules; MCP rules use `uris`"
                        .into(),
                ));
            }
            if !cfg.args.is_empty() && cfg.tools.is_empty() {
                return Err(("args", "argument conditions need `tools`".into()));
            }
            let args = cfg
                .args
                .iter()
                .map(compile_arg)
                .collect::<Result<Vec<_>, _>>()?;
            Target::Mcp {
                tools: cfg.tools.iter().map(|t| Glob::new(t)).collect(),
                args,
                uris: cfg.uris.iter().map(|u| Glob::new(u)).collect(),
                prompts: cfg.prompts.iter().map(|p| Glob::new(p)).collect(),
            }
        }
    };
    let approval = match cfg.effect {
        Effect::Approve => {
            if cfg.approvers.is_empty() {
                return Err((
                    "approvers",
                    "an approve rule must name the approver groups".into(),
                ));
            }
            if cfg.quorum == 0 {
                return Err(("quorum", "must be at least 1".into()));
            }
            match (cfg.grant, cfg.window) {
                (GrantKind::Window, None) => {
                    return Err((
                        "window",
                        "a window grant needs `window = \"1h\"` (its duration)".into(),
                    ));
                }
                (GrantKind::Once, Some(_)) => {
                    return Err(("window", "only `grant = \"window\"` takes a window".into()));
                }
                _ => {}
            }
            if cfg.hold.is_some_and(|h| h > MAX_HOLD) {
                return Err((
                    "hold",
                    format!(
                        "at most {}: SDKs time out reads at about a minute",
                        crate::duration::format(MAX_HOLD)
                    ),
                ));
            }
            Some(Arc::new(ApprovalSpec {
                rule: cfg.name.clone(),
                approvers: cfg.approvers.clone(),
                quorum: cfg.quorum,
                grant: cfg.grant,
                window: cfg.window,
                expires: cfg.expires,
                hold: cfg.hold,
            }))
        }
        _ => {
            if !cfg.approvers.is_empty() || cfg.window.is_some() || cfg.hold.is_some() {
                return Err((
                    "approvers",
                    "`approvers`, `window` and `hold` belong to `effect = \"approve\"` rules"
                        .into(),
                ));
            }
            None
        }
    };
    Ok(Rule {
        name: cfg.name.clone(),
        effect: cfg.effect,
        reason: cfg.reason.clone(),
        subjects: cfg.subjects.iter().map(|s| Glob::new(s)).collect(),
        groups: cfg.groups.clone(),
        target,
        approval,
    })
}

fn compile_arg(a: &ArgCondition) -> Result<ArgRule, (&'static str, String)> {
    if !(a.pointer.is_empty() || a.pointer.starts_with('/')) {
        return Err((
            "args",
            format!(
                "pointer `{}` must be a JSON pointer starting with `/`",
                a.pointer
            ),
        ));
    }
    let mut conds = Vec::new();
    if let Some(v) = &a.equals {
        conds.push(Cond::Equals(v.clone()));
    }
    if let Some(v) = &a.one_of {
        conds.push(Cond::OneOf(v.clone()));
    }
    if let Some(g) = &a.glob {
        conds.push(Cond::Glob(Glob::new(g)));
    }
    if let Some(r) = &a.regex {
        let re = regex::RegexBuilder::new(&format!("^(?:{r})$"))
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| ("args", format!("regex `{r}` for `{}`: {e}", a.pointer)))?;
        conds.push(Cond::Regex(re));
    }
    for (v, c) in [
        (a.lt, Cond::Lt as fn(f64) -> Cond),
        (a.le, Cond::Le),
        (a.gt, Cond::Gt),
        (a.ge, Cond::Ge),
    ] {
        if let Some(v) = v {
            conds.push(c(v));
        }
    }
    if conds.is_empty() {
        return Err((
            "args",
            format!(
                "the condition on `{}` says nothing: give equals, one_of, glob, regex, lt, le, gt or ge",
                a.pointer
            ),
        ));
    }
    Ok(ArgRule {
        pointer: a.pointer.clone(),
        conds,
    })
}

fn valid_action(a: &str) -> bool {
    match a.split_once(':') {
        Some((svc, op)) => {
            !svc.is_empty()
                && !op.is_empty()
                && svc
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*' || c == '?')
                && op
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
        }
        None => false,
    }
}

fn valid_arn_pattern(r: &str) -> bool {
    let parts: Vec<&str> = r.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && !parts[2].is_empty()
        && !parts[5].is_empty()
}

#[cfg(test)]
mod tests;
