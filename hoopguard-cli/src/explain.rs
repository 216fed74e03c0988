//! `hoopguard policy explain`: the decision for one caller and call, the rule that made it, and
//! why the other rules did not match.

use hoopguard_core::identity::Identity;
use hoopguard_core::policy::{Call, GrantKind, Policy};

/// The explanation as printed.
pub fn render(policy: &Policy, who: &Identity, call: &Call, connection: Option<&str>) -> String {
    let e = policy.explain(who, call, connection);
    let d = &e.decision;
    let mut out = format!(
        "call:      {} by `{}` (groups: {})\n",
        call.summary(),
        who.subject,
        if who.groups.is_empty() {
            "none".into()
        } else {
            who.groups.join(", ")
        }
    );
    if let Call::Aws { actions, .. } = call {
        for a in actions {
            out.push_str(&format!(
                "access:    {} is {}\n",
                a.action,
                a.access.as_deref().map_or(
                    "of an unknown access level (allow rules by `access` do not match it)".into(),
                    |l| format!("`{l}` (Service Authorization Reference)")
                )
            ));
        }
    }
    out.push_str(&format!(
        "decision:  {}{}\n",
        d.effect.as_str(),
        match &d.rule {
            Some(r) => format!(" (rule `{r}`)"),
            None => " (no rule matched: denied by default)".into(),
        }
    ));
    out.push_str(&format!("reason:    {}\n", d.reason));
    if let Some(a) = &d.approval {
        let grant = match (a.grant, a.window) {
            (GrantKind::Window, Some(w)) => {
                format!("a window of {}", hoopguard_core::duration::format(w))
            }
            _ => "this exact call, once".into(),
        };
        out.push_str(&format!(
            "approval:  by {} (quorum {}), grants {grant}; a request waits up to {}\n",
            a.approvers.join(" or "),
            a.quorum,
            hoopguard_core::duration::format(a.expires)
        ));
    }
    if d.effect != hoopguard_core::policy::Effect::Deny {
        for l in &e.limits {
            out.push_str(&format!(
                "limit:     counts against `{}` (at most {} calls per {} {})\n",
                l.limit,
                l.calls,
                hoopguard_core::duration::format(std::time::Duration::from_millis(l.per_ms)),
                whose(&l.scope)
            ));
        }
    }
    if e.rules.is_empty() {
        out.push_str("rules:     none of this kind\n");
    } else {
        out.push_str("rules:\n");
        for r in &e.rules {
            match &r.mismatch {
                None => out.push_str(&format!(
                    "  + {:<7} {}  matches\n",
                    r.effect.as_str(),
                    r.rule
                )),
                Some(why) => {
                    out.push_str(&format!("  - {:<7} {}  {why}\n", r.effect.as_str(), r.rule))
                }
            }
        }
    }
    out
}

/// Whose count a [`LimitKey`](hoopguard_core::policy::LimitKey)'s scope is, for people.
fn whose(scope: &str) -> String {
    if scope == "*" {
        "counted for every caller together".into()
    } else if scope.starts_with("connection=") {
        format!("counted for {}", scope.replace('\n', ", "))
    } else {
        "for each caller".into()
    }
}
