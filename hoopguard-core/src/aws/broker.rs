//! Brokers: the short-lived real AWS credentials a call is re-signed with.
//!
//! * [`BrokerKind::AssumeRole`]: the gateway's own credentials (the standard AWS provider
//!   chain: environment, profile, container, instance) call `sts:AssumeRole` with
//!   `SourceIdentity` and `RoleSessionName` from the subject, session tags from the subject and
//!   groups, and the configured inline session policy, so CloudTrail names the human or agent.
//! * [`BrokerKind::WebIdentity`]: `sts:AssumeRoleWithWebIdentity` with the caller's own OIDC
//!   token, where the identity provider is federated with IAM. The token is only seen when the
//!   caller fetches pseudo-credentials, so the exchange happens then ([`Broker::prime`]) and the
//!   result is cached for that pseudo-credential session.
//! * [`BrokerKind::Static`]: fixed credentials for local development. Every agent shares them
//!   and AWS cannot tell agents apart; hoopguard logs a warning when it starts with one.
//!
//! Credentials are cached per (connection, subject, groups, session policy) and refreshed
//! [`REFRESH_MARGIN`] before they expire; concurrent calls for one key wait for a single STS
//! call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_sts::error::DisplayErrorContext;

use super::Session;

/// Cached credentials are replaced when they have less than this left.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The most cache entries kept before expired ones are swept.
const MAX_CACHED: usize = 10_000;

/// Real AWS credentials from a broker. `Debug` shows the key id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Brokered {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token, for temporary credentials.
    pub session_token: Option<String>,
    /// When they expire (`None`: static credentials).
    pub expires: Option<SystemTime>,
}

impl std::fmt::Debug for Brokered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brokered")
            .field("access_key_id", &self.access_key_id)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

impl Brokered {
    fn fresh(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| e > now + REFRESH_MARGIN)
    }
}

/// How a connection gets its credentials.
#[derive(Clone)]
#[non_exhaustive]
pub enum BrokerKind {
    /// `sts:AssumeRole` with the gateway's own credentials.
    AssumeRole {
        /// The role to assume.
        role_arn: String,
        /// How long the role session lasts (900 s or more).
        duration: Duration,
        /// An inline session policy (JSON) narrowing the role.
        session_policy: Option<String>,
        /// The role's external id, if its trust policy asks for one.
        external_id: Option<String>,
    },
    /// `sts:AssumeRoleWithWebIdentity` with the caller's OIDC token.
    WebIdentity {
        /// The role to assume.
        role_arn: String,
        /// How long the role session lasts (900 s or more).
        duration: Duration,
    },
    /// Fixed credentials, for local development only.
    Static(Brokered),
}

impl std::fmt::Debug for BrokerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl BrokerKind {
    /// `assume_role`, `web_identity` or `static`.
    pub fn name(&self) -> &'static str {
        match self {
            BrokerKind::AssumeRole { .. } => "assume_role",
            BrokerKind::WebIdentity { .. } => "web_identity",
            BrokerKind::Static(_) => "static",
        }
    }
}

/// Why no credentials could be had. The messages carry no secret.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// STS refused or failed.
    #[error("STS {operation} failed: {message}")]
    Sts {
        /// `AssumeRole` or `AssumeRoleWithWebIdentity`.
        operation: &'static str,
        /// What STS (or the SDK) said.
        message: String,
    },
    /// The connection's static credentials are not set.
    #[error(
        "the connection's static credentials are empty; set access_key_id and secret_access_key"
    )]
    NotConfigured,
    /// A web-identity session whose token this replica never saw.
    #[error(
        "no web-identity credentials for this session on this gateway; fetch credentials from the credentials endpoint again"
    )]
    NoWebIdentity,
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Brokered>>>>;

/// One connection's broker with its credential cache.
pub struct Broker {
    kind: BrokerKind,
    sts: Option<aws_sdk_sts::Client>,
    cache: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Broker {
    /// A broker. STS brokers build an STS client for `region` (through `sts_endpoint` when
    /// given), with the gateway's credentials from the standard AWS provider chain.
    pub async fn new(kind: BrokerKind, region: &str, sts_endpoint: Option<&str>) -> Broker {
        let sts = match kind {
            BrokerKind::Static(_) => None,
            _ => {
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(region.to_string()));
                if matches!(kind, BrokerKind::WebIdentity { .. }) {
                    // The caller's token is the credential; the gateway signs nothing.
                    loader = loader.no_credentials();
                }
                let shared = loader.load().await;
                let mut conf = aws_sdk_sts::config::Builder::from(&shared);
                if let Some(e) = sts_endpoint {
                    conf = conf.endpoint_url(e);
                }
                Some(aws_sdk_sts::Client::from_conf(conf.build()))
            }
        };
        Broker {
            kind,
            sts,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The broker's kind.
    pub fn kind(&self) -> &BrokerKind {
        &self.kind
    }

    fn slot(&self, key: String) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            let now = SystemTime::now();
            cache.retain(|_, slot| {
                slot.try_lock()
                    .map(|c| c.as_ref().is_some_and(|b| b.fresh(now)))
                    .unwrap_or(true)
            });
        }
        cache.entry(key).or_default().clone()
    }

    fn key(&self, session: &Session) -> String {
        match &self.kind {
            BrokerKind::WebIdentity { .. } => format!("wi\0{}", session.sid),
            _ => format!(
                "{}\0{}\0{}",
                session.connection,
                session.subject,
                session.groups.join("\0")
            ),
        }
    }

    /// Credentials for a call in `session`, from the cache or a fresh STS call.
    pub async fn credentials(&self, session: &Session) -> Result<Arc<Brokered>, BrokerError> {
        if let BrokerKind::Static(c) = &self.kind {
            if c.access_key_id.is_empty() || c.secret_access_key.is_empty() {
                return Err(BrokerError::NotConfigured);
            }
            return Ok(Arc::new(c.clone()));
        }
        let slot = self.slot(self.key(session));
        let mut held = slot.lock().await;
        if let Some(c) = held.as_ref().filter(|c| c.fresh(SystemTime::now())) {
            return Ok(c.clone());
        }
        let fresh = match &self.kind {
            BrokerKind::AssumeRole { .. } => Arc::new(self.assume_role(session).await?),
            // Exchanged by whichever replica issued the session, sealed inside it.
            _ => match &session.web_identity {
                Some(c) if c.fresh(SystemTime::now()) => c.clone(),
                _ => return Err(BrokerError::NoWebIdentity),
            },
        };
        *held = Some(fresh.clone());
        Ok(fresh)
    }

    /// For web-identity connections, exchanges the caller's token when it fetches
    /// pseudo-credentials and returns what STS gave, for the session to carry sealed
    /// ([`Minter::seal`](super::Minter::seal)); other brokers do nothing here (`None`).
    pub async fn prime(
        &self,
        session: &Session,
        token: &str,
    ) -> Result<Option<Arc<Brokered>>, BrokerError> {
        let BrokerKind::WebIdentity { role_arn, duration } = &self.kind else {
            return Ok(None);
        };
        let sts = self.sts.as_ref().expect("STS brokers have a client");
        let out = sts
            .assume_role_with_web_identity()
            .role_arn(role_arn)
            .role_session_name(session_name(&session.subject))
            .web_identity_token(token)
            .duration_seconds(duration.as_secs().clamp(900, 43_200) as i32)
            .send()
            .await
            .map_err(|e| BrokerError::Sts {
                operation: "AssumeRoleWithWebIdentity",
                message: DisplayErrorContext(e).to_string(),
            })?;
        let creds = Arc::new(brokered(out.credentials, "AssumeRoleWithWebIdentity")?);
        let slot = self.slot(self.key(session));
        *slot.lock().await = Some(creds.clone());
        Ok(Some(creds))
    }

    async fn assume_role(&self, session: &Session) -> Result<Brokered, BrokerError> {
        let BrokerKind::AssumeRole {
            role_arn,
            duration,
            session_policy,
            external_id,
        } = &self.kind
        else {
            unreachable!("called for assume_role brokers only")
        };
        let sts = self.sts.as_ref().expect("STS brokers have a client");
        let tag = |k: &str, v: &str| {
            aws_sdk_sts::types::Tag::builder()
                .key(k)
                .value(tag_value(v))
                .build()
                .expect("key and value are set")
        };
        let mut req = sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name(&session.subject))
            .source_identity(session_name(&session.subject))
            .duration_seconds(duration.as_secs().clamp(900, 43_200) as i32)
            .tags(tag("hoopguard-subject", &session.subject))
            .tags(tag("hoopguard-connection", &session.connection));
        if !session.groups.is_empty() {
            req = req.tags(tag("hoopguard-groups", &session.groups.join(":")));
        }
        if let Some(p) = session_policy {
            req = req.policy(p);
        }
        if let Some(x) = external_id {
            req = req.external_id(x);
        }
        let out = req.send().await.map_err(|e| BrokerError::Sts {
            operation: "AssumeRole",
            message: DisplayErrorContext(e).to_string(),
        })?;
        tracing::info!(subject = %session.subject, role = %role_arn, "assumed a role for the subject");
        brokered(out.credentials, "AssumeRole")
    }
}

fn brokered(
    creds: Option<aws_sdk_sts::types::Credentials>,
    operation: &'static str,
) -> Result<Brokered, BrokerError> {
    let c = creds.ok_or(BrokerError::Sts {
        operation,
        message: "the answer held no credentials".into(),
    })?;
    let expires = SystemTime::try_from(c.expiration).ok();
    Ok(Brokered {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: Some(c.session_token),
        expires,
    })
}

/// A `RoleSessionName`/`SourceIdentity` from a subject: `[\w+=,.@-]`, 2 to 64 characters.
pub fn session_name(subject: &str) -> String {
    let mut s: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while s.len() < 2 {
        s.push('-');
    }
    if s.to_ascii_lowercase().starts_with("aws:") {
        s.replace_range(..4, "aws-");
    }
    s
}

/// A session tag value: `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, at most 256 characters.
fn tag_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(256)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_legal_for_sts() {
        assert_eq!(session_name("alice@example.com"), "alice@example.com");
        assert_eq!(session_name("a"), "a-");
        assert_eq!(session_name(""), "--");
        assert_eq!(session_name("user:42/x y"), "user-42-x-y");
        assert_eq!(session_name(&"x".repeat(100)).len(), 64);
        assert_eq!(tag_value("dev:ops/α;x"), "dev:ops/α-x");
    }

    #[tokio::test]
    async fn static_credentials_need_both_parts() {
        let s = Session {
            sid: "s".into(),
            subject: "alice".into(),
            groups: vec![],
            connection: "default".into(),
            exp: 0,
            ns: None,
            iss: None,
            sealed: None,
            web_identity: None,
            key: 0,
        };
        let empty = Brokered {
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: None,
            expires: None,
        };
        let b = Broker::new(BrokerKind::Static(empty), "us-east-1", None).await;
        assert!(matches!(
            b.credentials(&s).await,
            Err(BrokerError::NotConfigured)
        ));
        let b = Broker::new(
            BrokerKind::WebIdentity {
                role_arn: "arn:aws:iam::1:role/r".into(),
                duration: Duration::from_secs(900),
            },
            "us-east-1",
            Some("http://127.0.0.1:9"),
        )
        .await;
        // A session whose token was never exchanged here cannot be served.
        assert!(matches!(
            b.credentials(&s).await,
            Err(BrokerError::NoWebIdentity)
        ));
        assert!(!format!("{:?}", b).contains("secret"));
    }
}
