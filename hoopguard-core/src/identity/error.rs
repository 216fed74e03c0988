//! Why a token was refused.

/// Why a token was refused, or why no decision could be made.
///
/// The text of each variant says what happened and what to do; none of them ever contains the
/// token or any part of it. [`AuthError::code`] is a stable machine-readable name for logs,
/// metrics and JSON bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token was presented.
    #[error("no token was presented; send `Authorization: Bearer <token>`")]
    Missing,
    /// The token is larger than the configured limit and was not parsed.
    #[error("the token is larger than {limit} bytes and was not parsed")]
    Oversized {
        /// The limit in bytes.
        limit: usize,
    },
    /// The token is not a well-formed signed JWT.
    #[error("the token is malformed: {0}")]
    Malformed(String),
    /// The token's `alg` is not in the issuer's allow-list (`none` never is).
    #[error("the token's signing algorithm `{0}` is not accepted for its issuer")]
    AlgorithmNotAllowed(String),
    /// The token's `iss` is not one this gateway trusts.
    #[error(
        "the token's issuer is not trusted by this gateway; get a token from a configured issuer"
    )]
    UntrustedIssuer,
    /// No key of the issuer matches the token's `kid` and algorithm, even after a JWKS refresh.
    #[error("the token was signed with a key the issuer does not publish (unknown key id)")]
    UnknownKey,
    /// The signature does not verify with the issuer's keys.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// `exp` is in the past (beyond the allowed clock leeway).
    #[error("the token has expired; get a fresh token from your identity provider")]
    Expired,
    /// `nbf` is in the future (beyond the allowed clock leeway).
    #[error("the token is not valid yet (nbf is in the future); check the clocks")]
    NotYetValid,
    /// `iat` is in the future (beyond the allowed clock leeway).
    #[error("the token claims to be issued in the future (iat); check the clocks")]
    IssuedInFuture,
    /// `aud` does not name this gateway.
    #[error("the token's audience does not include this gateway; request a token for it")]
    WrongAudience,
    /// A required claim is missing.
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(String),
    /// A claim has the wrong type or shape.
    #[error("the token's claim `{0}` has the wrong type")]
    InvalidClaim(String),
    /// The issuer's keys could not be obtained and none are cached: nothing can be verified.
    #[error(
        "no signing keys are available for the token's issuer ({0}); the identity provider may be unreachable, try again later"
    )]
    KeysUnavailable(String),
}

impl AuthError {
    /// A stable, machine-readable name for the refusal (`expired`, `bad_signature`, …).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_token",
            AuthError::Oversized { .. } => "oversized",
            AuthError::Malformed(_) => "malformed",
            AuthError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            AuthError::UntrustedIssuer => "untrusted_issuer",
            AuthError::UnknownKey => "unknown_key",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::InvalidClaim(_) => "invalid_claim",
            AuthError::KeysUnavailable(_) => "keys_unavailable",
        }
    }

    /// True when the refusal is the gateway's problem rather than the token's (answer 503, not
    /// 401): the caller should retry later rather than fetch a new token.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable(_))
    }
}

/// Maps a `jsonwebtoken` failure onto the refusal a caller understands.
pub(crate) fn from_jwt(err: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match err.kind() {
        K::InvalidSignature => AuthError::BadSignature,
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidAudience => AuthError::WrongAudience,
        K::InvalidIssuer => AuthError::UntrustedIssuer,
        K::InvalidAlgorithm | K::MissingAlgorithm | K::InvalidAlgorithmName => {
            AuthError::AlgorithmNotAllowed("(mismatched with key)".into())
        }
        K::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
        K::InvalidClaimFormat(c) => AuthError::InvalidClaim(c.clone()),
        K::Base64(_) => AuthError::Malformed("bad base64url encoding".into()),
        K::Json(_) => AuthError::Malformed("bad JSON in header or claims".into()),
        K::Utf8(_) => AuthError::Malformed("not UTF-8".into()),
        K::InvalidToken => AuthError::Malformed("not a JWT".into()),
        K::InvalidEcdsaKey | K::InvalidEddsaKey | K::InvalidRsaKey(_) | K::InvalidKeyFormat => {
            AuthError::BadSignature
        }
        _ => AuthError::Malformed("could not be verified".into()),
    }
}
