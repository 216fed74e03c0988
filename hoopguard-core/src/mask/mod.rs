//! Masking secrets and personal data in what comes back, fast, whole or streaming.
//!
//! An [`Engine`] holds the compiled rules: hand-written detectors (AWS keys and tokens, private
//! keys, JWTs, GitHub/GitLab/Slack/Stripe/Google tokens, passwords in database and web URLs, card
//! numbers with Luhn, IBANs with their checksum, email addresses, US SSNs); 121 token formats
//! kept as data (`rules`: OpenAI, Anthropic, npm, PyPI, Docker Hub, Vault, Azure, Datadog, …);
//! 16 rules that find a value by the key it is assigned to (`DD_API_KEY=…`, `"db_password": …`),
//! with an entropy check; the values of named JSON fields and XML elements (`SecretAccessKey`,
//! `Password`, …); and custom regex rules from the configuration. Each match is replaced by
//! `[MASKED:rule]`, by the rule name and the last characters (`keep_last`), or by a keyed hash
//! (`hash`, a stable pseudonym). Replacements never contain quotes or backslashes, so JSON stays
//! valid; word boundaries see through JSON string escapes (`\n`, `\u000a`), so a secret inside
//! a JSON string is found as it would be outside one.
//!
//! How it stays fast: a Teddy/Aho-Corasick pass over the detectors' literal anchors and the field
//! names; a pass over word starts for the token formats whose anchor starts a word (a bit set of
//! their first bytes, `words`); a second Teddy pass over the other token anchors and the keyed
//! rules' key stems; `memchr` for `@`; a skip-scan for digit runs; then hand-written confirmation
//! at each candidate. Custom rules run as one `regex-automata` multi-pattern regex. Word
//! boundaries are ASCII, so non-ASCII text never slows it down.
//!
//! [`Stream`] masks chunk by chunk with bounded memory, holding back only what a match could
//! still span. For every input and every way of cutting it into chunks, the output equals
//! [`Engine::mask`] of the whole input (a property test checks this).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use hoopguard_core::mask::{Engine, MaskConfig};
//!
//! let engine = Arc::new(Engine::new(&MaskConfig::default()).unwrap());
//! let (out, stats) = engine.mask(br#"{"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}"#);
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     r#"{"AccessKeyId": "[MASKED:aws-access-key-id]", "SecretAccessKey": "[MASKED:json-field]"}"#
//! );
//! assert_eq!(stats.matches["aws-access-key-id"], 1);
//!
//! // The same, streamed in pieces.
//! let mut stream = engine.stream();
//! let mut streamed = Vec::new();
//! stream.push(b"token: ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ01234", &mut streamed);
//! stream.push(b"56789 end", &mut streamed);
//! stream.finish(&mut streamed);
//! assert_eq!(streamed, b"token: [MASKED:github-token] end");
//! ```

mod detect;
mod rules;
mod words;

use std::collections::BTreeMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use detect::{Builtin, Confirm, DigitRules, ESCAPE_CONTEXT, LOOKBEHIND};
use rules::RULES;
use words::WordAnchors;

/// What replaces a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `[MASKED:rule]`.
    #[default]
    Redact,
    /// `[MASKED:rule…1234]`: the rule and the last `keep_last` letters and digits.
    KeepLast,
    /// `[MASKED:rule:3f9a0c…]`: an HMAC of the value, so equal values look equal.
    Hash,
}

/// A validator for custom rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Validator {
    /// The digits of the match pass the Luhn check.
    Luhn,
}

/// How the input is structured, which decides whether the field rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON fields and XML elements both apply.
    #[default]
    Auto,
    /// JSON fields apply.
    Json,
    /// XML elements apply.
    Xml,
    /// Neither applies; only the detectors.
    Text,
}

/// A custom rule (`[[mask.rules]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// The rule name, shown in `[MASKED:name]`.
    pub name: String,
    /// The pattern (regex-automata syntax). Must have a bounded length (no `*` or `+` without
    /// an upper bound), at most 4096 bytes.
    pub regex: String,
    /// Mask only this capture group (1 = the first), not the whole match.
    #[serde(default)]
    pub group: Option<usize>,
    /// The match must also pass this check.
    #[serde(default)]
    pub validator: Option<Validator>,
    /// One of these words (any case) must appear within 64 bytes before the match.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// What replaces the match.
    #[serde(default)]
    pub action: Action,
}

/// The masking configuration (`[mask]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Field names (JSON members, XML elements) whose values are always masked. Default: the
    /// AWS and common credential fields; set to replace the list.
    #[serde(default = "default_fields")]
    pub fields: Vec<String>,
    /// Built-in rules to turn off, by name (`email`, `credit-card`, …).
    #[serde(default)]
    pub disable: Vec<String>,
    /// Actions for built-in rules by name (default `redact`).
    #[serde(default)]
    pub actions: BTreeMap<String, Action>,
    /// How many trailing letters and digits `keep_last` keeps. Default 4.
    #[serde(default = "default_keep")]
    pub keep_last: usize,
    /// The key for `hash` pseudonyms (at least 16 bytes). Default: a random key per process,
    /// so pseudonyms are stable within one run only.
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Custom rules.
    #[serde(default)]
    pub rules: Vec<CustomRule>,
    /// Which structure-aware rules apply.
    #[serde(default)]
    pub format: Format,
    /// Content-type prefixes whose bodies pass unmasked (binary objects), for the HTTP layer.
    /// Default: `MaskLayer`'s list (images, audio, video, fonts, archives, PDF,
    /// `application/octet-stream`, `binary/octet-stream`); set to replace it.
    #[serde(default)]
    pub passthrough_types: Option<Vec<String>>,
}

impl Default for MaskConfig {
    fn default() -> Self {
        MaskConfig {
            fields: default_fields(),
            disable: Vec::new(),
            actions: BTreeMap::new(),
            keep_last: default_keep(),
            hash_key: None,
            rules: Vec::new(),
            format: Format::Auto,
            passthrough_types: None,
        }
    }
}

fn default_keep() -> usize {
    4
}

/// The default structure-aware fields.
pub fn default_fields() -> Vec<String> {
    [
        "SecretAccessKey",
        "SessionToken",
        "Password",
        "MasterUserPassword",
        "SecretString",
        "SecretBinary",
        "PrivateKey",
        "AuthorizationToken",
        "ClientSecret",
        "password",
        "secret",
        "client_secret",
        "private_key",
        "access_token",
        "refresh_token",
    ]
    .map(String::from)
    .to_vec()
}

/// A mistake in the masking configuration, naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct MaskConfigError {
    /// The key, such as `rules[2].regex`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// The longest custom pattern match.
const MAX_CUSTOM_LEN: usize = 4096;

/// The rules whose keywords share the anchors [`AWS_KEYWORD_ANCHORS`].
const AWS_KEYWORD_RULES: [Builtin; 2] = [Builtin::AwsSecretAccessKey, Builtin::AwsSessionToken];
/// The start every AWS credential keyword shares (`aws_secret_access_key`, `AWS_SESSION_TOKEN`,
/// `aws_security_token`, …): one anchor per case instead of one per keyword.
const AWS_KEYWORD_ANCHORS: [&str; 2] = ["aws_se", "AWS_SE"];

/// What an anchor literal triggers.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Builtin(Builtin),
    /// The start of an AWS credential keyword: which one follows decides the rule.
    AwsKeyword,
    /// A substring shared by some field names: index into `Engine::field_anchors`.
    Field(usize),
    /// A token rule's anchor: index into [`RULES`].
    Token(usize),
    /// A part of a key that names a credential: the keyed rules decide.
    KeyStem,
}

/// Bytes a stream keeps before what it has not written yet: the longest lead of a token rule, a
/// byte before it, and a JSON `\uXXXX` escape before that.
const STREAM_CONTEXT: usize = rules::MAX_LEAD + 1 + ESCAPE_CONTEXT;

/// The most anchors in one automaton: Teddy's fastest (slim) form takes 32 patterns.
const ANCHORS_PER_SET: usize = 32;
/// The most automata: the built-in detectors and field names in one, the token rules in the
/// rest.
const MAX_SETS: usize = 8;

/// One anchor automaton and what each of its patterns triggers (with the pattern's length).
struct AnchorSet {
    automaton: AhoCorasick,
    triggers: Vec<(Trigger, usize)>,
}

/// Builds an automaton over `patterns`, longer ones first, so that a longer anchor wins where
/// two start at one position.
fn anchor_set(
    patterns: Vec<String>,
    triggers: Vec<(Trigger, usize)>,
) -> Result<AnchorSet, MaskConfigError> {
    let mut order: Vec<usize> = (0..patterns.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(patterns[i].len()));
    let sorted: Vec<&str> = order.iter().map(|&i| patterns[i].as_str()).collect();
    let automaton = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .build(&sorted)
        .map_err(|e| MaskConfigError {
            key: "fields".into(),
            message: format!("cannot build the anchor automaton: {e}"),
        })?;
    Ok(AnchorSet {
        automaton,
        triggers: order.iter().map(|&i| triggers[i]).collect(),
    })
}

/// The longest field name.
const MAX_FIELD_NAME: usize = 64;

/// The anchors for field names, few enough that the whole anchor set stays on the prefilter's
/// fastest path (Teddy with at most 32 patterns): names that share a word are anchored on it
/// (`Secret` for `SecretAccessKey`, `SecretString` and `ClientSecret`; `token` for
/// `access_token` and `refresh_token`), chosen greedily by how many names one covers. Only
/// words — from a name's start, a capital, or after `_`/`-`, at least five bytes, or the whole
/// name — so an anchor is not a fragment that AWS documents are full of (`rivate` is in every
/// `PrivateIpAddress`). Each anchor lists its names with the anchor's offset in them (an anchor
/// that another one starts with is listed under both, as the longer one wins where both match).
fn field_anchors(names: &[String]) -> Vec<(String, Vec<(usize, usize)>)> {
    let words = |n: &str| -> Vec<(usize, String)> {
        let b = n.as_bytes();
        let mut out = Vec::new();
        for i in 0..b.len() {
            let starts = i == 0 || b[i].is_ascii_uppercase() || matches!(b[i - 1], b'_' | b'-');
            if !starts {
                continue;
            }
            for j in (i + 5).min(b.len())..=b.len() {
                if j - i >= 5 || (i == 0 && j == b.len()) {
                    out.push((i, n[i..j].to_string()));
                }
            }
        }
        out
    };
    let words: Vec<Vec<(usize, String)>> = names.iter().map(|n| words(n)).collect();
    let mut left: Vec<usize> = (0..names.len()).collect();
    let mut out: Vec<(String, Vec<(usize, usize)>)> = Vec::new();
    while !left.is_empty() {
        // The word covering most of the names left; then the longest; then the first by order.
        let mut best: Option<(usize, &str)> = None;
        for &i in &left {
            for (_, w) in &words[i] {
                let covers = left
                    .iter()
                    .filter(|&&k| words[k].iter().any(|(_, x)| x == w))
                    .count();
                let better = match best {
                    None => true,
                    Some((c, b)) => {
                        (covers, w.len(), std::cmp::Reverse(w.as_str()))
                            > (c, b.len(), std::cmp::Reverse(b))
                    }
                };
                if better {
                    best = Some((covers, w));
                }
            }
        }
        let Some((_, word)) = best else { break };
        let word = word.to_string();
        let mut hits = Vec::new();
        left.retain(|&k| match words[k].iter().find(|(_, x)| *x == word) {
            Some(&(off, _)) => {
                hits.push((k, off));
                false
            }
            None => true,
        });
        out.push((word, hits));
    }
    // Where one anchor is a prefix of another, the longer one also reports the shorter one's
    // names: the automaton reports one pattern per position, the longer one.
    let all = out.clone();
    for (word, hits) in &mut out {
        for (other, theirs) in &all {
            if other != word && word.starts_with(other.as_str()) {
                hits.extend(theirs.iter().copied());
            }
        }
    }
    out
}

struct Custom {
    name: String,
    /// The same pattern with its capture groups, anchored, for `group`.
    captures: Option<regex_automata::meta::Regex>,
    group: Option<usize>,
    validator: Option<Validator>,
    keywords: Vec<Vec<u8>>,
    action: Action,
}

/// Compiled masking rules. Immutable and cheap to share (`Arc`).
pub struct Engine {
    /// The anchor automata: the built-in detectors and field names first, then the token rules.
    sets: Vec<AnchorSet>,
    /// The token rules whose anchors start words, found by word starts.
    words: Option<WordAnchors>,
    /// Whether a keyed rule is on: a field anchor that is not a field hands over to them.
    keyed: bool,
    field_names: Vec<Vec<u8>>,
    /// The configured fields, for form bodies (whatever `format` says).
    form_fields: Vec<Vec<u8>>,
    field_anchors: Vec<Vec<(usize, usize)>>,
    builtin_on: [bool; Builtin::ALL.len()],
    builtin_action: [Action; Builtin::ALL.len()],
    /// Which token rules are on, and their actions, by index into [`RULES`].
    token_on: Vec<bool>,
    token_action: Vec<Action>,
    json: bool,
    xml: bool,
    email: bool,
    digits: DigitRules,
    custom: Option<regex_automata::meta::Regex>,
    customs: Vec<Custom>,
    keep_last: usize,
    hash_key: aws_lc_rs::hmac::Key,
    /// Bytes at the end of a chunk whose triggers wait for more data.
    window: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "anchors",
                &self.sets.iter().map(|s| s.triggers.len()).sum::<usize>(),
            )
            .field("custom", &self.customs.len())
            .finish_non_exhaustive()
    }
}

/// What masking did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Matches by rule name.
    pub matches: BTreeMap<String, u64>,
}

impl Stats {
    /// All matches, over all rules.
    pub fn total_matches(&self) -> u64 {
        self.matches.values().sum()
    }
}

/// An engine with the default rules, compiled once: for what must be masked where no configured
/// engine was given (approvals and logs of a library user who set none).
pub fn default_engine() -> Arc<Engine> {
    static DEFAULT: std::sync::LazyLock<Arc<Engine>> = std::sync::LazyLock::new(|| {
        Arc::new(Engine::new(&MaskConfig::default()).expect("the default rules compile"))
    });
    DEFAULT.clone()
}

fn builtin_index(b: Builtin) -> usize {
    Builtin::ALL.iter().position(|x| *x == b).unwrap_or(0)
}

impl Engine {
    /// Compiles the rules.
    pub fn new(cfg: &MaskConfig) -> Result<Engine, MaskConfigError> {
        // Built-in detectors first, then the token rules: one list of names.
        let names: Vec<&str> = Builtin::ALL
            .iter()
            .map(|b| b.name())
            .chain(RULES.iter().map(|r| r.name))
            .collect();
        let mut on = vec![true; names.len()];
        for d in &cfg.disable {
            let i = names
                .iter()
                .position(|n| n == d)
                .ok_or_else(|| MaskConfigError {
                    key: "disable".into(),
                    message: format!("no built-in rule `{d}`; `hoopguard mask --rules` lists them"),
                })?;
            on[i] = false;
        }
        let mut actions = vec![Action::Redact; names.len()];
        for (name, action) in &cfg.actions {
            let i = names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| MaskConfigError {
                    key: format!("actions.{name}"),
                    message: format!("no built-in rule `{name}`"),
                })?;
            actions[i] = *action;
        }
        let n_builtin = Builtin::ALL.len();
        let mut builtin_on = [true; Builtin::ALL.len()];
        builtin_on.copy_from_slice(&on[..n_builtin]);
        let mut builtin_action = [Action::Redact; Builtin::ALL.len()];
        builtin_action.copy_from_slice(&actions[..n_builtin]);
        let token_on = on[n_builtin..].to_vec();
        let token_action = actions[n_builtin..].to_vec();
        let json = builtin_on[builtin_index(Builtin::JsonField)]
            && matches!(cfg.format, Format::Auto | Format::Json);
        let xml = builtin_on[builtin_index(Builtin::XmlField)]
            && matches!(cfg.format, Format::Auto | Format::Xml);

        let mut patterns: Vec<String> = Vec::new();
        let mut triggers = Vec::new();
        // The longest literal a trigger must see whole (a keyword behind a shared prefix).
        let mut longest_literal = 0;
        let mut keywords = false;
        for b in Builtin::ALL {
            if !builtin_on[builtin_index(b)] {
                continue;
            }
            if AWS_KEYWORD_RULES.contains(&b) {
                // `aws_secret_access_key`, `aws_session_token`, … share one anchor per case.
                keywords = true;
                longest_literal = b
                    .anchors()
                    .iter()
                    .map(|a| a.len())
                    .fold(longest_literal, usize::max);
                continue;
            }
            for a in b.anchors() {
                patterns.push(a.to_string());
                triggers.push((Trigger::Builtin(b), a.len()));
            }
        }
        // `url-password` shares `db-password`'s anchor.
        if builtin_on[builtin_index(Builtin::UrlPassword)]
            && !builtin_on[builtin_index(Builtin::DbPassword)]
        {
            patterns.push("://".into());
            triggers.push((Trigger::Builtin(Builtin::DbPassword), 3));
        }
        if keywords {
            for a in AWS_KEYWORD_ANCHORS {
                patterns.push(a.to_string());
                triggers.push((Trigger::AwsKeyword, a.len()));
            }
        }
        let mut field_table = Vec::new();
        let mut field_words: Vec<String> = Vec::new();
        if json || xml {
            for (i, f) in cfg.fields.iter().enumerate() {
                if f.is_empty()
                    || f.len() > MAX_FIELD_NAME
                    || !f
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(MaskConfigError {
                        key: format!("fields[{i}]"),
                        message: format!(
                            "`{f}` is not a field name (1 to {MAX_FIELD_NAME} letters, digits, _ and -)"
                        ),
                    });
                }
            }
            for (k, (anchor, hits)) in field_anchors(&cfg.fields).into_iter().enumerate() {
                field_words.push(anchor.clone());
                triggers.push((Trigger::Field(k), anchor.len()));
                patterns.push(anchor);
                field_table.push(hits);
            }
        }
        let mut max_anchor = patterns
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max(longest_literal);
        let mut sets = Vec::new();
        if !patterns.is_empty() {
            sets.push(anchor_set(patterns, triggers)?);
        }
        // The token rules' anchors that do not start words (found by `words`), and the key
        // stems of the keyed rules, in automata of at most ANCHORS_PER_SET each.
        let mut others: Vec<(Trigger, &str)> = RULES
            .iter()
            .enumerate()
            .filter(|(k, r)| token_on[*k] && r.keyed.is_none() && !words::starts_words(r))
            .flat_map(|(k, r)| r.anchors.iter().map(move |a| (Trigger::Token(k), *a)))
            .collect();
        let keyed = RULES
            .iter()
            .zip(&token_on)
            .any(|(r, on)| *on && r.keyed.is_some());
        if keyed {
            others.extend(
                rules::KEY_STEMS
                    .iter()
                    .filter(|(_, covered_by)| {
                        covered_by.is_empty()
                            || !covered_by
                                .iter()
                                .all(|w| field_words.iter().any(|f| f == w))
                    })
                    .map(|(a, _)| (Trigger::KeyStem, *a)),
            );
        }
        for chunk in others.chunks(ANCHORS_PER_SET) {
            max_anchor = chunk
                .iter()
                .map(|(_, a)| a.len())
                .fold(max_anchor, usize::max);
            sets.push(anchor_set(
                chunk.iter().map(|(_, a)| a.to_string()).collect(),
                chunk.iter().map(|(t, a)| (*t, a.len())).collect(),
            )?);
        }
        let words = WordAnchors::new(&token_on);
        if let Some(w) = &words {
            max_anchor = max_anchor.max(w.longest());
        }
        if sets.len() > MAX_SETS {
            return Err(MaskConfigError {
                key: "fields".into(),
                message: format!(
                    "too many anchors: {} automata, at most {MAX_SETS}",
                    sets.len()
                ),
            });
        }

        let mut customs = Vec::new();
        let mut sources = Vec::new();
        let mut max_custom = 0;
        for (i, r) in cfg.rules.iter().enumerate() {
            let err = |key: &str, message: String| MaskConfigError {
                key: format!("rules[{i}].{key}"),
                message: format!("(rule `{}`) {message}", r.name),
            };
            if r.name.is_empty() || names.contains(&r.name.as_str()) {
                return Err(err(
                    "name",
                    "must be non-empty and not the name of a built-in rule".into(),
                ));
            }
            let hir = regex_syntax::ParserBuilder::new()
                .build()
                .parse(&r.regex)
                .map_err(|e| err("regex", format!("not a valid pattern: {e}")))?;
            let max = hir.properties().maximum_len().ok_or_else(|| {
                err(
                    "regex",
                    "unbounded: every repetition needs an upper bound, like {1,64}".into(),
                )
            })?;
            if max > MAX_CUSTOM_LEN {
                return Err(err(
                    "regex",
                    format!("may match up to {max} bytes; the limit is {MAX_CUSTOM_LEN}"),
                ));
            }
            if hir.properties().minimum_len() == Some(0) {
                return Err(err("regex", "matches the empty string".into()));
            }
            if let Some(g) = r.group {
                if g == 0 || g > hir.properties().explicit_captures_len() {
                    return Err(err(
                        "group",
                        format!("the pattern has no capture group {g}"),
                    ));
                }
            }
            if r.keywords.iter().any(|k| k.is_empty() || k.len() > 32) {
                return Err(err(
                    "keywords",
                    "each keyword must have 1 to 32 bytes".into(),
                ));
            }
            max_custom = max_custom.max(max);
            let captures = match r.group {
                Some(_) => Some(
                    regex_automata::meta::Regex::builder()
                        .syntax(
                            regex_automata::util::syntax::Config::new()
                                .unicode(false)
                                .utf8(false),
                        )
                        .configure(regex_automata::meta::Config::new().utf8_empty(false))
                        .build(&r.regex)
                        .map_err(|e| err("regex", e.to_string()))?,
                ),
                None => None,
            };
            sources.push(r.regex.clone());
            customs.push(Custom {
                name: r.name.clone(),
                captures,
                group: r.group,
                validator: r.validator,
                keywords: r
                    .keywords
                    .iter()
                    .map(|k| k.to_ascii_lowercase().into_bytes())
                    .collect(),
                action: r.action,
            });
        }
        let custom = if sources.is_empty() {
            None
        } else {
            Some(
                regex_automata::meta::Regex::builder()
                    .syntax(
                        regex_automata::util::syntax::Config::new()
                            .unicode(false)
                            .utf8(false),
                    )
                    .configure(
                        regex_automata::meta::Config::new()
                            .utf8_empty(false)
                            .hybrid_cache_capacity(8 * 1024 * 1024),
                    )
                    .build_many(&sources)
                    .map_err(|e| MaskConfigError {
                        key: "rules".into(),
                        message: format!("the patterns do not compile together: {e}"),
                    })?,
            )
        };
        let key_bytes: Vec<u8> = match &cfg.hash_key {
            Some(k) if k.len() >= 16 => k.as_bytes().to_vec(),
            Some(_) => {
                return Err(MaskConfigError {
                    key: "hash_key".into(),
                    message: "must be at least 16 bytes".into(),
                });
            }
            // Only the hash action needs a key; seeding the system RNG costs milliseconds.
            None if !cfg
                .actions
                .values()
                .chain(cfg.rules.iter().map(|r| &r.action))
                .any(|a| *a == Action::Hash) =>
            {
                vec![0u8; 32]
            }
            None => {
                let mut k = vec![0u8; 32];
                aws_lc_rs::rand::fill(&mut k).map_err(|_| MaskConfigError {
                    key: "hash_key".into(),
                    message: "no randomness for a key".into(),
                })?;
                k
            }
        };
        let on = |b: Builtin| builtin_on[builtin_index(b)];
        Ok(Engine {
            keyed,
            sets,
            words,
            form_fields: cfg.fields.iter().map(|f| f.as_bytes().to_vec()).collect(),
            field_names: if json || xml {
                cfg.fields.iter().map(|f| f.as_bytes().to_vec()).collect()
            } else {
                Vec::new()
            },
            field_anchors: field_table,
            builtin_on,
            builtin_action,
            token_on,
            token_action,
            json,
            xml,
            email: on(Builtin::Email),
            digits: DigitRules {
                card: on(Builtin::CreditCard),
                ssn: on(Builtin::UsSsn),
                iban: on(Builtin::Iban),
            },
            custom,
            customs,
            keep_last: cfg.keep_last.min(16),
            hash_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key_bytes),
            window: max_anchor.max(max_custom) + 1,
        })
    }

    /// Masks a whole buffer.
    pub fn mask(&self, input: &[u8]) -> (Vec<u8>, Stats) {
        let mut out = Vec::with_capacity(input.len());
        let mut stats = Stats::default();
        self.scan(input, 0, true, &mut out, &mut stats);
        stats.bytes_in = input.len() as u64;
        stats.bytes_out = out.len() as u64;
        (out, stats)
    }

    /// A JSON value as it would be masked inside a JSON document (field names and values): for
    /// what is stored or shown as data — tool arguments, AWS parameters, headers.
    pub fn mask_json(&self, v: &serde_json::Value) -> serde_json::Value {
        let text = serde_json::to_vec(v).unwrap_or_default();
        let (masked, _) = self.mask(&text);
        serde_json::from_slice(&masked).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&masked).into_owned())
        })
    }

    /// Text masked whole (a log line, a summary).
    pub fn mask_text(&self, s: &str) -> String {
        String::from_utf8_lossy(&self.mask(s.as_bytes()).0).into_owned()
    }

    /// Masks an `application/x-www-form-urlencoded` body (the AWS query protocol's requests):
    /// the value of every parameter named by a configured field — as the whole name or its
    /// last dotted part, `Password` or `Member.1.Password` — is redacted as `[MASKED:form-field]`,
    /// then the whole body is masked like any other.
    pub fn mask_form(&self, body: &[u8]) -> (Vec<u8>, Stats) {
        let mut out = Vec::with_capacity(body.len());
        let mut fields = 0u64;
        for (i, pair) in body.split(|&b| b == b'&').enumerate() {
            if i > 0 {
                out.push(b'&');
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], Some(&pair[eq + 1..])),
                None => (pair, None),
            };
            let last = name.rsplit(|&b| b == b'.').next().unwrap_or(name);
            out.extend_from_slice(name);
            match value {
                Some(v) if !v.is_empty() && self.form_fields.iter().any(|f| f == last) => {
                    out.extend_from_slice(b"=[MASKED:form-field]");
                    fields += 1;
                }
                Some(v) => {
                    out.push(b'=');
                    out.extend_from_slice(v);
                }
                None => {}
            }
        }
        let (masked, mut stats) = self.mask(&out);
        if fields > 0 {
            *stats.matches.entry("form-field".into()).or_default() += fields;
        }
        stats.bytes_in = body.len() as u64;
        (masked, stats)
    }

    /// A streaming masker over this engine.
    pub fn stream(self: &Arc<Self>) -> Stream {
        Stream {
            engine: self.clone(),
            pending: Vec::new(),
            start: 0,
            stats: Stats::default(),
        }
    }

    /// Masks `hay[from..]`, writing to `out`; `hay[..from]` is context already written. Returns
    /// how far it got: everything before is written; the rest must be offered again with more
    /// data (never less than `from`, all of it when `eof`).
    fn scan(
        &self,
        hay: &[u8],
        from: usize,
        eof: bool,
        out: &mut Vec<u8>,
        stats: &mut Stats,
    ) -> usize {
        let len = hay.len();
        // Triggers at or past `cutoff` wait for more data (an anchor may be cut short, a custom
        // pattern may not have all its bytes yet).
        let cutoff = if eof {
            len
        } else {
            len.saturating_sub(self.window)
        };
        let mut pos = from;
        let mut hold = len;
        // Each source's next trigger at or after its cursor; `None` once it has no more.
        // Per anchor automaton: (position, pattern), its cursor, whether it has no more.
        let sets = self.sets.len();
        let mut next_anchor: [Option<(usize, usize)>; MAX_SETS] = [None; MAX_SETS];
        let mut anchor_from = [from; MAX_SETS];
        let mut anchors_done = [false; MAX_SETS];
        let mut next_at: Option<usize> = None;
        let mut at_from = from;
        let mut at_done = !self.email;
        let mut next_word: Option<usize> = None;
        let mut word_from = from;
        let mut words_done = self.words.is_none();
        let mut next_digit: Option<usize> = None;
        let mut digit_from = from;
        let mut digits_done = !(self.digits.card || self.digits.ssn || self.digits.iban);
        let mut next_custom: Option<(usize, usize, usize)> = None; // (start, end, pattern)
        let mut custom_from = from;
        let mut custom_done = self.custom.is_none();
        loop {
            for k in 0..sets {
                if !anchors_done[k] && next_anchor[k].is_none_or(|(p, _)| p < anchor_from[k]) {
                    next_anchor[k] = if anchor_from[k] < len {
                        self.sets[k]
                            .automaton
                            .find(aho_corasick::Input::new(hay).span(anchor_from[k]..len))
                            .map(|m| (m.start(), m.pattern().as_usize()))
                    } else {
                        None
                    };
                    anchors_done[k] = next_anchor[k].is_none();
                }
            }
            if !words_done && next_word.is_none_or(|p| p < word_from) {
                next_word = match &self.words {
                    Some(w) if word_from < len => w.next(hay, word_from, eof),
                    _ => None,
                };
                words_done = next_word.is_none();
            }
            if !at_done && next_at.is_none_or(|p| p < at_from) {
                next_at = if at_from < len {
                    memchr::memchr(b'@', &hay[at_from..]).map(|i| i + at_from)
                } else {
                    None
                };
                at_done = next_at.is_none();
            }
            if !digits_done && next_digit.is_none_or(|p| p < digit_from) {
                next_digit = next_digit_run(hay, digit_from, from, self.digits);
                digits_done = next_digit.is_none();
            }
            if !custom_done && next_custom.is_none_or(|(s, _, _)| s < custom_from) {
                next_custom = match &self.custom {
                    Some(re) if custom_from < len => re
                        .search(&regex_automata::Input::new(hay).span(custom_from..len))
                        .map(|m| (m.start(), m.end(), m.pattern().as_usize())),
                    _ => None,
                };
                custom_done = next_custom.is_none();
            }
            // The earliest trigger wins; ties go to anchors (by automaton), then @, digits,
            // custom rules.
            let mut best: Option<(usize, Source)> = None;
            let mut consider = |p: Option<usize>, src: Source| {
                if let Some(p) = p {
                    if best.is_none_or(|(b, _)| p < b) {
                        best = Some((p, src));
                    }
                }
            };
            for (k, next) in next_anchor.iter().enumerate().take(sets) {
                consider(next.map(|(p, _)| p), Source::Anchor(k));
            }
            consider(next_word, Source::Words);
            consider(next_at, Source::At);
            consider(next_digit, Source::Digits);
            consider(next_custom.map(|(s, _, _)| s), Source::Custom);
            let Some((t, src)) = best else { break };
            if t >= cutoff {
                hold = hold.min(t.saturating_sub(LOOKBEHIND));
                break;
            }
            let (confirm, rule) = match src {
                Source::Anchor(k) => {
                    let (p, pat) = next_anchor[k].unwrap_or_default();
                    anchor_from[k] = p + 1;
                    let (trigger, alen) = self.sets[k].triggers[pat];
                    match trigger {
                        Trigger::Builtin(Builtin::DbPassword) => self.confirm_url(hay, p, pos, eof),
                        Trigger::Builtin(b) => (
                            detect::confirm_anchor(b, hay, p, alen, pos, eof),
                            Rule::Builtin(b),
                        ),
                        Trigger::Field(k) => match self.confirm_field(hay, p, k, pos, eof) {
                            (Confirm::No, _) if self.keyed => {
                                let (c, r) =
                                    rules::confirm_key(&self.token_on, hay, p, alen, pos, eof);
                                (c, Rule::Token(r.unwrap_or(0)))
                            }
                            found => found,
                        },
                        Trigger::AwsKeyword => self.confirm_aws_keyword(hay, p, pos, eof),
                        Trigger::Token(r) => (
                            rules::confirm(&RULES[r], hay, p, alen, pos, eof),
                            Rule::Token(r),
                        ),
                        Trigger::KeyStem => {
                            let (c, r) = rules::confirm_key(&self.token_on, hay, p, alen, pos, eof);
                            (c, Rule::Token(r.unwrap_or(0)))
                        }
                    }
                }
                Source::Words => {
                    word_from = t + 1;
                    match &self.words {
                        Some(w) => {
                            let (c, rule) = w.confirm(hay, t, pos, eof);
                            (c, Rule::Token(rule.unwrap_or(0)))
                        }
                        None => (Confirm::No, Rule::Token(0)),
                    }
                }
                Source::At => {
                    at_from = t + 1;
                    (
                        detect::email(hay, t, pos, eof),
                        Rule::Builtin(Builtin::Email),
                    )
                }
                Source::Digits => {
                    digit_from = skip_digitish(hay, t);
                    let c = detect::digits(hay, t, pos, eof, self.digits);
                    let rule = match c {
                        Confirm::Match { start, .. } if start < t => Builtin::Iban,
                        Confirm::Match { start, end, .. }
                            if end - start == 11 && hay[start + 3] == b'-' =>
                        {
                            Builtin::UsSsn
                        }
                        _ => Builtin::CreditCard,
                    };
                    (c, Rule::Builtin(rule))
                }
                Source::Custom => {
                    let (s, e, pat) = next_custom.unwrap_or_default();
                    custom_from = s + 1;
                    (
                        self.confirm_custom(hay, s, e, pat, pos, eof),
                        Rule::Custom(pat),
                    )
                }
            };
            match confirm {
                Confirm::Match {
                    start,
                    end,
                    mask_start,
                    mask_end,
                } if start >= pos => {
                    out.extend_from_slice(&hay[pos..mask_start]);
                    self.replace(rule, &hay[mask_start..mask_end], out);
                    out.extend_from_slice(&hay[mask_end..end]);
                    *stats
                        .matches
                        .entry(self.rule_name(rule).to_string())
                        .or_default() += 1;
                    pos = end;
                    for a in anchor_from.iter_mut().take(sets) {
                        *a = (*a).max(end);
                    }
                    at_from = at_from.max(end);
                    word_from = word_from.max(end);
                    digit_from = digit_from.max(end);
                    custom_from = custom_from.max(end);
                }
                Confirm::NeedMore { from: f } if !eof => {
                    hold = hold.min(f.max(pos).saturating_sub(LOOKBEHIND));
                    break;
                }
                _ => {}
            }
        }
        let limit = if eof {
            len
        } else {
            hold.min(len.saturating_sub(self.window + LOOKBEHIND))
        };
        let upto = limit.max(pos);
        out.extend_from_slice(&hay[pos..upto]);
        upto
    }

    /// A password in a URL at the `://` at `p`: `db-password` or `url-password` by scheme.
    fn confirm_url(&self, hay: &[u8], p: usize, lo: usize, eof: bool) -> (Confirm, Rule) {
        for b in [Builtin::DbPassword, Builtin::UrlPassword] {
            if self.builtin_on[builtin_index(b)] {
                let c = detect::confirm_anchor(b, hay, p, 3, lo, eof);
                if c != Confirm::No {
                    return (c, Rule::Builtin(b));
                }
            }
        }
        (Confirm::No, Rule::Builtin(Builtin::DbPassword))
    }

    /// The AWS credential keyword starting at `p` (its shared anchor found there), then its
    /// value.
    fn confirm_aws_keyword(&self, hay: &[u8], p: usize, lo: usize, eof: bool) -> (Confirm, Rule) {
        let mut wait = None;
        for b in AWS_KEYWORD_RULES {
            if !self.builtin_on[builtin_index(b)] {
                continue;
            }
            for lit in b.anchors() {
                let lit = lit.as_bytes();
                let have = &hay[p..hay.len().min(p + lit.len())];
                if have.len() == lit.len() && have == lit {
                    return (
                        detect::confirm_anchor(b, hay, p, lit.len(), lo, eof),
                        Rule::Builtin(b),
                    );
                }
                if have.len() < lit.len() && !eof && lit.starts_with(have) {
                    wait = Some(b);
                }
            }
        }
        match wait {
            Some(b) => (Confirm::NeedMore { from: p }, Rule::Builtin(b)),
            None => (Confirm::No, Rule::Builtin(Builtin::AwsSecretAccessKey)),
        }
    }

    /// A field name around the anchor at `p` (anchor `k`), then its JSON or XML value.
    fn confirm_field(
        &self,
        hay: &[u8],
        p: usize,
        k: usize,
        lo: usize,
        eof: bool,
    ) -> (Confirm, Rule) {
        for &(name, off) in &self.field_anchors[k] {
            let Some(start) = p.checked_sub(off) else {
                continue;
            };
            let n = &self.field_names[name];
            if start + n.len() > hay.len() {
                if !eof && hay[start..].iter().zip(n.iter()).all(|(a, b)| a == b) {
                    return (
                        Confirm::NeedMore {
                            from: start.saturating_sub(1),
                        },
                        Rule::Builtin(Builtin::JsonField),
                    );
                }
                continue;
            }
            if &hay[start..start + n.len()] != n.as_slice() {
                continue;
            }
            if self.json {
                let c = detect::json_field(hay, start, n.len(), lo, eof);
                if c != Confirm::No {
                    return (c, Rule::Builtin(Builtin::JsonField));
                }
            }
            if self.xml {
                let c = detect::xml_field(hay, start, n.len(), lo, eof);
                if c != Confirm::No {
                    return (c, Rule::Builtin(Builtin::XmlField));
                }
            }
        }
        (Confirm::No, Rule::Builtin(Builtin::JsonField))
    }

    fn confirm_custom(
        &self,
        hay: &[u8],
        s: usize,
        e: usize,
        pat: usize,
        lo: usize,
        eof: bool,
    ) -> Confirm {
        let c = &self.customs[pat];
        if e == hay.len() && !eof {
            return Confirm::NeedMore { from: s };
        }
        if !c.keywords.is_empty() {
            let window = &hay[s.saturating_sub(64).max(lo)..s];
            let lower = window.to_ascii_lowercase();
            if !c
                .keywords
                .iter()
                .any(|k| memchr::memmem::find(&lower, k).is_some())
            {
                return Confirm::No;
            }
        }
        let (mut ms, mut me) = (s, e);
        if let (Some(g), Some(re)) = (c.group, &c.captures) {
            let mut caps = re.create_captures();
            re.captures(
                regex_automata::Input::new(hay)
                    .span(s..e)
                    .anchored(regex_automata::Anchored::Yes),
                &mut caps,
            );
            match caps.get_group(g) {
                Some(span) => (ms, me) = (span.start, span.end),
                None => return Confirm::No,
            }
        }
        if c.validator == Some(Validator::Luhn) {
            let d: Vec<u8> = hay[ms..me]
                .iter()
                .filter(|b| b.is_ascii_digit())
                .map(|b| b - b'0')
                .collect();
            if d.len() < 2 || !detect::luhn(&d) {
                return Confirm::No;
            }
        }
        Confirm::Match {
            start: s,
            end: e,
            mask_start: ms,
            mask_end: me,
        }
    }

    fn rule_name(&self, rule: Rule) -> &str {
        match rule {
            Rule::Builtin(b) => b.name(),
            Rule::Token(r) => RULES[r].name,
            Rule::Custom(i) => &self.customs[i].name,
        }
    }

    fn replace(&self, rule: Rule, value: &[u8], out: &mut Vec<u8>) {
        let action = match rule {
            Rule::Builtin(b) => self.builtin_action[builtin_index(b)],
            Rule::Token(r) => self.token_action[r],
            Rule::Custom(i) => self.customs[i].action,
        };
        out.extend_from_slice(b"[MASKED:");
        out.extend_from_slice(self.rule_name(rule).as_bytes());
        match action {
            Action::Redact => {}
            Action::KeepLast => {
                let kept: Vec<u8> = value
                    .iter()
                    .rev()
                    .filter(|b| b.is_ascii_alphanumeric())
                    .take(self.keep_last)
                    .copied()
                    .collect();
                out.extend_from_slice("…".as_bytes());
                out.extend(kept.iter().rev());
            }
            Action::Hash => {
                let tag = aws_lc_rs::hmac::sign(&self.hash_key, value);
                out.push(b':');
                out.extend_from_slice(hex::encode(&tag.as_ref()[..6]).as_bytes());
            }
        }
        out.push(b']');
    }

    /// The names of the built-in rules that are on: the detectors, then the token rules.
    pub fn builtin_rules(&self) -> Vec<&'static str> {
        Builtin::ALL
            .iter()
            .filter(|b| self.builtin_on[builtin_index(**b)])
            .map(|b| b.name())
            .chain(
                RULES
                    .iter()
                    .zip(&self.token_on)
                    .filter(|(_, on)| **on)
                    .map(|(r, _)| r.name),
            )
            .collect()
    }
}

/// Every built-in rule: (name, where its format is published — empty for the detectors and
/// field rules written from the formats' specifications in `detect`).
pub fn builtin_rule_catalog() -> Vec<(&'static str, &'static str)> {
    Builtin::ALL
        .iter()
        .map(|b| (b.name(), ""))
        .chain(RULES.iter().map(|r| (r.name, r.source)))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Builtin(Builtin),
    Token(usize),
    Custom(usize),
}

/// Where a trigger came from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Anchor(usize),
    Words,
    At,
    Digits,
    Custom,
}

/// The fewest digitish bytes any digit rule needs in one run (the skip-scan's step): an IBAN's
/// long run of account digits (10), an SSN (11), a card number (13).
const MIN_DIGITS: usize = 10;

/// Digits, spaces and dashes, by byte value.
static DIGITISH: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = true;
        b += 1;
    }
    t[b' ' as usize] = true;
    t[b'-' as usize] = true;
    t
};

#[inline(always)]
fn digitish(b: u8) -> bool {
    DIGITISH[b as usize]
}

/// Whether the digit run `hay[d..e]` (from its first digit) could be a card number (13+
/// digits), a US SSN (`ddd-dd-dddd`) or the long digit run of an IBAN (8+ digits, no dashes,
/// right after letters of the account number). Cheap checks, so that dates, timestamps and
/// numbers in JSON are skipped without confirming.
fn worth_confirming(hay: &[u8], d: usize, e: usize, rules: DigitRules) -> bool {
    let mut run = &hay[d..e];
    while matches!(run.last(), Some(b' ' | b'-')) {
        run = &run[..run.len() - 1];
    }
    let digits = run.iter().filter(|b| b.is_ascii_digit()).count();
    if rules.card && digits >= 13 {
        return true;
    }
    if rules.ssn && run.len() == 11 && run[3] == b'-' && run[6] == b'-' {
        return true;
    }
    if rules.iban && digits >= MIN_DIGITS && !run.contains(&b'-') && d > 0 {
        let before = hay[d - 1];
        return before.is_ascii_uppercase()
            || (before == b' '
                && d > 1
                && (hay[d - 2].is_ascii_uppercase() || hay[d - 2].is_ascii_digit()));
    }
    false
}

/// For each byte of `w`, the high bit set when it is a digit, a space or a dash (SWAR: eight
/// bytes at once, no branches).
#[inline(always)]
fn digitish_lanes(w: u64) -> u64 {
    const L: u64 = 0x0101_0101_0101_0101;
    const H: u64 = 0x8080_8080_8080_8080;
    let low7 = w & !H;
    // x >= '0' and x <= '9', for bytes below 0x80 (no carries cross lanes).
    let digit = (low7 + 0x50 * L) & (0xB9 * L - low7) & !w & H;
    let zero = |y: u64| !(((y & !H) + !H) | y) & H;
    digit | zero(w ^ (b' ' as u64 * L)) | zero(w ^ (b'-' as u64 * L))
}

/// Window positions 2..50: each has two bytes before it and fourteen after it in the window.
const WINDOW: u64 = ((1u64 << 48) - 1) << 2;
/// Bytes a window needs from its first position on.
const WINDOW_AHEAD: usize = 62;

/// The byte classes of a 64-byte window as bit masks (bit `k` for byte `k`): digits, spaces,
/// dashes, capitals.
struct Classes {
    digit: u64,
    space: u64,
    dash: u64,
    upper: u64,
}

/// SSE2 (every x86-64; safe wrappers from `safe_arch`): four 16-byte compares per class and a
/// `pmovmskb` each.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn classes(w: &[u8; 64]) -> Classes {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, cmp_lt_mask_i8_m128i, load_unaligned_m128i, m128i,
        move_mask_i8_m128i, set_splat_i8_m128i, sub_i8_m128i,
    };
    // `lo <= x < lo + n`: shift the range to start at -128, then one signed compare.
    let range = |v: m128i, lo: u8, n: u8| {
        let shifted = sub_i8_m128i(v, set_splat_i8_m128i(lo.wrapping_sub(128) as i8));
        cmp_lt_mask_i8_m128i(shifted, set_splat_i8_m128i((n as i8).wrapping_add(-128)))
    };
    let mut c = Classes {
        digit: 0,
        space: 0,
        dash: 0,
        upper: 0,
    };
    for q in 0..4 {
        let v = load_unaligned_m128i(w[q * 16..q * 16 + 16].try_into().expect("16 bytes"));
        let m = |x: m128i| u64::from(move_mask_i8_m128i(x) as u16) << (q * 16);
        c.digit |= m(range(v, b'0', 10));
        c.upper |= m(range(v, b'A', 26));
        c.space |= m(cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b' ' as i8)));
        c.dash |= m(cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'-' as i8)));
    }
    c
}

/// Elsewhere: a byte at a time.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn classes(w: &[u8; 64]) -> Classes {
    let bits = |f: fn(u8) -> bool| {
        w.iter()
            .enumerate()
            .fold(0u64, |m, (k, &x)| m | (u64::from(f(x)) << k))
    };
    Classes {
        digit: bits(|x| x.is_ascii_digit()),
        space: bits(|x| x == b' '),
        dash: bits(|x| x == b'-'),
        upper: bits(|x| x.is_ascii_uppercase()),
    }
}

/// The positions of `w` where a qualifying digit run could start: a digit not after a digit,
/// followed by what [`worth_confirming`] needs at least — 13 digitish bytes for a card, the
/// `ddd-dd-dddd` shape for an SSN, 10 digitish bytes after a capital (or a capital or digit and
/// a space) for an IBAN. A superset: every candidate is confirmed byte by byte.
#[inline(always)]
fn digit_candidates(w: &[u8; 64], rules: DigitRules) -> u64 {
    let Classes {
        digit,
        space,
        dash,
        upper,
    } = classes(w);
    let dish = digit | space | dash;
    // r_n: bit k when bytes k..k+n are all digitish.
    let r2 = dish & (dish >> 1);
    let r4 = r2 & (r2 >> 2);
    let r8 = r4 & (r4 >> 4);
    let mut c = 0;
    if rules.card {
        c |= r8 & (r4 >> 8) & (dish >> 12);
    }
    if rules.ssn {
        c |= r2 & (dish >> 2) & (dash >> 3) & (r2 >> 4) & (dash >> 6) & (r4 >> 7);
    }
    if rules.iban {
        let before = (upper << 1) | ((space << 1) & ((upper | digit) << 2));
        c |= r8 & (r2 >> 8) & before;
    }
    digit & !(digit << 1) & c
}

/// The start of the next run of digits, spaces and dashes that begins with a digit and is
/// [worth confirming](worth_confirming). A run long enough for any digit rule (10 bytes) holds
/// four digitish bytes at one of the positions `i + 4k` the scan tests eight bytes at a time, so
/// most of the input is passed over without looking at single bytes. A run that reaches the end
/// of the data is returned too: it may still grow.
#[inline(never)]
fn next_digit_run(hay: &[u8], from: usize, scan_start: usize, rules: DigitRules) -> Option<usize> {
    const GROUP_LO: u64 = 0x0000_0000_8080_8080;
    const GROUP_HI: u64 = 0x8080_8080_0000_0000;
    let len = hay.len();
    let mut i = from;
    // 48 positions at a time, from 64-byte windows (two bytes before them, fourteen after), while
    // there is room; only candidates are looked at byte by byte.
    while i + WINDOW_AHEAD <= len {
        let found = if i >= 2 {
            let w: &[u8; 64] = hay[i - 2..i + 62].try_into().expect("64 bytes");
            digit_candidates(w, rules)
        } else {
            // The data's first bytes: nothing before them.
            let mut w = [0u8; 64];
            w[2 - i..].copy_from_slice(&hay[..i + 62]);
            digit_candidates(&w, rules)
        } & WINDOW;
        if found == 0 {
            i += 48;
            continue;
        }
        let d = i + found.trailing_zeros() as usize - 2;
        let mut s = d;
        while s > from && digitish(hay[s - 1]) {
            s -= 1;
        }
        let e = skip_digitish(hay, d);
        if let Some(d) = qualifying_start(hay, s, e, from, scan_start, rules) {
            return Some(d);
        }
        i = e + 1;
    }
    while i + 8 <= len {
        let mut word = [0u8; 8];
        word.copy_from_slice(&hay[i..i + 8]);
        let lanes = digitish_lanes(u64::from_le_bytes(word));
        let k = if lanes & GROUP_LO == GROUP_LO {
            i
        } else if lanes & GROUP_HI == GROUP_HI {
            i + 4
        } else {
            i += 8;
            continue;
        };
        let mut s = k;
        while s > from && digitish(hay[s - 1]) {
            s -= 1;
        }
        let mut e = k + 4;
        while e < len && digitish(hay[e]) {
            e += 1;
        }
        if let Some(d) = qualifying_start(hay, s, e, from, scan_start, rules) {
            return Some(d);
        }
        i = e + 1;
    }
    // Fewer than eight bytes left: only a run cut off by the end of the data can matter.
    let mut s = len;
    while s > i.min(len) && digitish(hay[s - 1]) {
        s -= 1;
    }
    if s == i.min(len) {
        while s > from && digitish(hay[s - 1]) {
            s -= 1;
        }
    }
    if s < len {
        return qualifying_start(hay, s, len, from, scan_start, rules);
    }
    None
}

/// The first digit of the run `hay[s..e]`, if the run is a trigger: it starts with a digit
/// after trimming separators, did not begin before the scan (decided already), and is long
/// enough and shaped right (or reaches the end of the data and may grow).
fn qualifying_start(
    hay: &[u8],
    s: usize,
    e: usize,
    from: usize,
    scan_start: usize,
    rules: DigitRules,
) -> Option<usize> {
    let continues = s == from && s >= scan_start && s > 0 && digitish(hay[s - 1]);
    if continues {
        return None;
    }
    let mut d = s;
    while d < e && !hay[d].is_ascii_digit() {
        d += 1;
    }
    if d >= e {
        return None;
    }
    if e == hay.len() || (e - d >= MIN_DIGITS && worth_confirming(hay, d, e, rules)) {
        Some(d)
    } else {
        None
    }
}

/// The end of the digit run starting at `at`.
fn skip_digitish(hay: &[u8], at: usize) -> usize {
    let mut e = at;
    while e < hay.len() && digitish(hay[e]) {
        e += 1;
    }
    e.max(at + 1)
}

/// Masks a stream chunk by chunk. See the [module docs](self).
#[derive(Debug)]
pub struct Stream {
    engine: Arc<Engine>,
    pending: Vec<u8>,
    /// `pending[..start]` is context already written.
    start: usize,
    stats: Stats,
}

impl Stream {
    /// Masks what can be decided of `chunk` (with what was held back) into `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.stats.bytes_in += chunk.len() as u64;
        self.pending.extend_from_slice(chunk);
        let before = out.len();
        let done = self
            .engine
            .scan(&self.pending, self.start, false, out, &mut self.stats);
        self.stats.bytes_out += (out.len() - before) as u64;
        // Keep context before the first unwritten byte: a token rule's lead and the JSON
        // escape before it are read from there.
        let keep_from = done.saturating_sub(STREAM_CONTEXT);
        self.pending.drain(..keep_from);
        self.start = done - keep_from;
    }

    /// Masks and writes everything held back; the stream is over.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let before = out.len();
        self.engine
            .scan(&self.pending, self.start, true, out, &mut self.stats);
        self.stats.bytes_out += (out.len() - before) as u64;
        self.pending.clear();
        self.start = 0;
    }

    /// Bytes held back, waiting for more data.
    pub fn held(&self) -> usize {
        self.pending.len() - self.start
    }

    /// What masking did so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

#[cfg(test)]
mod tests;
