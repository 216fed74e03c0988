//! The token rules, as data: one row per credential format, compiled by the engine into literal
//! anchors (found in one pass) and confirmed by [`confirm`] at each anchor, with no regex.
//!
//! A row says what a token looks like: its literal anchor (the vendor's fixed prefix, or a fixed
//! part inside it), the bytes before the anchor that belong to it (`lead`), then its parts —
//! runs of a byte [`Class`] with a length range, each followed by a literal — and how much of it
//! is replaced (the whole token, or only what follows a non-secret anchor such as
//! `AccountKey=`). Each row cites where the format is published. Every rule is written here from
//! the vendor's description of its own tokens; the tests generate a true positive and near
//! misses for every row from the row itself.
//!
//! Boundaries are ASCII and see through JSON string escapes: a token right after an escaped
//! newline (`\n`) inside a JSON string is at the start of a word.

use super::detect::{Confirm, after_escape, boundary_before, is_word, out_of_data, run};

/// The most bytes a rule's lead may have: a stream keeps this much context (and a byte more,
/// and an escape) before what it has not written, so a lead is counted the same whatever the
/// chunks.
pub(crate) const MAX_LEAD: usize = 49;

/// A set of bytes, as flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Class(u16);

impl Class {
    pub(crate) const UPPER: Class = Class(1);
    pub(crate) const LOWER: Class = Class(1 << 1);
    pub(crate) const DIGIT: Class = Class(1 << 2);
    /// `a`–`f`.
    pub(crate) const HEX_LOWER: Class = Class(1 << 3);
    /// `A`–`F`.
    pub(crate) const HEX_UPPER: Class = Class(1 << 4);
    pub(crate) const DASH: Class = Class(1 << 5);
    pub(crate) const UNDERSCORE: Class = Class(1 << 6);
    pub(crate) const DOT: Class = Class(1 << 7);
    pub(crate) const PLUS: Class = Class(1 << 8);
    pub(crate) const SLASH: Class = Class(1 << 9);
    pub(crate) const EQUALS: Class = Class(1 << 10);
    pub(crate) const TILDE: Class = Class(1 << 11);
    pub(crate) const AT: Class = Class(1 << 12);
    pub(crate) const PERCENT: Class = Class(1 << 13);
    /// `!#$^*()?|`: what passwords hold besides letters, digits and the classes above.
    pub(crate) const PUNCT: Class = Class(1 << 14);

    pub(crate) const ALNUM: Class = Class::UPPER.or(Class::LOWER).or(Class::DIGIT);
    pub(crate) const ALPHA: Class = Class::UPPER.or(Class::LOWER);
    pub(crate) const UPPER_ALNUM: Class = Class::UPPER.or(Class::DIGIT);
    pub(crate) const LOWER_ALNUM: Class = Class::LOWER.or(Class::DIGIT);
    pub(crate) const HEX: Class = Class::DIGIT.or(Class::HEX_LOWER).or(Class::HEX_UPPER);
    pub(crate) const LOWER_HEX: Class = Class::DIGIT.or(Class::HEX_LOWER);
    pub(crate) const B64: Class = Class::ALNUM.or(Class::PLUS).or(Class::SLASH);
    pub(crate) const B64URL: Class = Class::ALNUM.or(Class::DASH).or(Class::UNDERSCORE);
    pub(crate) const HEX_DASH: Class = Class::HEX.or(Class::DASH);

    /// Both sets.
    pub(crate) const fn or(self, other: Class) -> Class {
        Class(self.0 | other.0)
    }

    /// Whether `b` is in the set.
    #[inline]
    pub(crate) fn has(self, b: u8) -> bool {
        let flag = match b {
            b'a'..=b'f' => {
                if self.0 & Class::HEX_LOWER.0 != 0 {
                    return true;
                }
                Class::LOWER.0
            }
            b'A'..=b'F' => {
                if self.0 & Class::HEX_UPPER.0 != 0 {
                    return true;
                }
                Class::UPPER.0
            }
            b'g'..=b'z' => Class::LOWER.0,
            b'G'..=b'Z' => Class::UPPER.0,
            b'0'..=b'9' => Class::DIGIT.0,
            b'-' => Class::DASH.0,
            b'_' => Class::UNDERSCORE.0,
            b'.' => Class::DOT.0,
            b'+' => Class::PLUS.0,
            b'/' => Class::SLASH.0,
            b'=' => Class::EQUALS.0,
            b'~' => Class::TILDE.0,
            b'@' => Class::AT.0,
            b'%' => Class::PERCENT.0,
            b'!' | b'#' | b'$' | b'^' | b'*' | b'(' | b')' | b'?' | b'|' => Class::PUNCT.0,
            _ => 0,
        };
        self.0 & flag != 0
    }

    /// The bytes of the set, in order (for generating test vectors).
    #[cfg(test)]
    pub(crate) fn bytes(self) -> Vec<u8> {
        (0..=255u8).filter(|&b| self.has(b)).collect()
    }
}

/// A run of `min..=max` bytes of `class`, then the literal `then` (may be empty).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Part {
    pub(crate) class: Class,
    pub(crate) min: u16,
    pub(crate) max: u16,
    pub(crate) then: &'static str,
}

/// What of a token is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extent {
    /// From its first byte (the lead, else the anchor) to its last.
    Whole,
    /// What follows the anchor (the anchor names the value: `AccountKey=`, `Bearer `).
    AfterAnchor,
}

/// A check beyond the shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    None,
    /// The value is standard base64 of `user:password` in printable ASCII.
    BasicAuth,
}

/// A value found by the key it is assigned to (`DD_API_KEY=…`, `"db_password": "…"`,
/// `<DbPassword>…</DbPassword>`): the anchors are words the key contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keyed {
    /// The least Shannon entropy of the value, in tenths of a bit per byte (0: none).
    pub(crate) entropy_tenths: u8,
}

/// One credential format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRule {
    /// The rule name, as shown in `[MASKED:name]` and configured.
    pub(crate) name: &'static str,
    /// The literals that trigger it; the token's parts follow each.
    pub(crate) anchors: &'static [&'static str],
    /// `min..=max` bytes of this class right before the anchor belong to the token.
    pub(crate) lead: Option<(Class, u8, u8)>,
    pub(crate) parts: &'static [Part],
    pub(crate) extent: Extent,
    pub(crate) check: Check,
    /// Found by its key: the anchors are words in the key, the one part is the value.
    pub(crate) keyed: Option<Keyed>,
    /// Where the format is published.
    pub(crate) source: &'static str,
}

/// A part: `n` bytes of `class` (`min..=max`).
const fn p(class: Class, min: u16, max: u16) -> Part {
    Part {
        class,
        min,
        max,
        then: "",
    }
}

/// A part followed by a literal.
const fn pt(class: Class, min: u16, max: u16, then: &'static str) -> Part {
    Part {
        class,
        min,
        max,
        then,
    }
}

/// A row: the anchors, then the parts.
const fn t(
    name: &'static str,
    anchors: &'static [&'static str],
    parts: &'static [Part],
    source: &'static str,
) -> TokenRule {
    TokenRule {
        name,
        anchors,
        lead: None,
        parts,
        extent: Extent::Whole,
        check: Check::None,
        keyed: None,
        source,
    }
}

/// A keyed row: words of the key (each case as written), the value, its least entropy in
/// tenths of a bit per byte.
const fn k(
    name: &'static str,
    keywords: &'static [&'static str],
    value: &'static [Part],
    entropy_tenths: u8,
    source: &'static str,
) -> TokenRule {
    TokenRule {
        name,
        anchors: keywords,
        lead: None,
        parts: value,
        extent: Extent::AfterAnchor,
        check: Check::None,
        keyed: Some(Keyed { entropy_tenths }),
        source,
    }
}

impl TokenRule {
    /// Bytes of `class` before the anchor are part of the token.
    const fn lead(mut self, class: Class, min: u8, max: u8) -> TokenRule {
        self.lead = Some((class, min, max));
        self
    }

    /// Only what follows the anchor is replaced.
    const fn after_anchor(mut self) -> TokenRule {
        self.extent = Extent::AfterAnchor;
        self
    }

    const fn check(mut self, check: Check) -> TokenRule {
        self.check = check;
        self
    }
}

use Class as C;

/// What a generated secret (an API key, a token) is made of.
const SECRET: Class = C::B64URL
    .or(C::DOT)
    .or(C::PLUS)
    .or(C::SLASH)
    .or(C::EQUALS)
    .or(C::TILDE);
/// What a password is made of (no quotes, spaces, `\`, `<`, `&`, `,`, `;`, `:` or brackets:
/// those end it).
const PASSWORD: Class = SECRET.or(C::AT).or(C::PERCENT).or(C::PUNCT);

/// Base64url and dots (tokens made of dotted base64url pieces).
const B64URL_DOT: Class = C::B64URL.or(C::DOT);
/// Standard base64 with padding.
const B64_PAD: Class = C::B64.or(C::EQUALS);

/// The token rules. Names are unique and no anchor is a prefix of another (tests check both).
pub(crate) const RULES: &[TokenRule] = &[
    // --- AI providers ---
    t(
        "openai-api-key",
        &["sk-proj-", "sk-svcacct-", "sk-admin-"],
        &[p(C::B64URL, 40, 300)],
        // Project, service-account and admin keys (platform.openai.com/docs/api-reference/authentication).
        "https://platform.openai.com/docs/api-reference/authentication",
    ),
    t(
        "anthropic-api-key",
        &["sk-ant-api03-", "sk-ant-admin01-"],
        &[p(C::B64URL, 80, 120)],
        "https://docs.anthropic.com/en/api/getting-started",
    ),
    t(
        "huggingface-token",
        &["hf_", "api_org_"],
        &[p(C::ALPHA, 34, 34)],
        "https://huggingface.co/docs/hub/security-tokens",
    ),
    t(
        "groq-api-key",
        &["gsk_"],
        &[p(C::ALNUM, 52, 52)],
        "https://console.groq.com/docs/api-keys",
    ),
    t(
        "replicate-api-token",
        &["r8_"],
        &[p(C::ALNUM, 37, 37)],
        "https://replicate.com/docs/reference/http#authentication",
    ),
    t(
        "perplexity-api-key",
        &["pplx-"],
        &[p(C::ALNUM, 48, 48)],
        "https://docs.perplexity.ai/guides/getting-started",
    ),
    t(
        "xai-api-key",
        &["xai-"],
        &[p(C::ALNUM, 80, 80)],
        "https://docs.x.ai/docs/overview",
    ),
    // --- Source hosting, packages, CI ---
    t(
        "gitlab-deploy-token",
        &["gldt-"],
        &[p(C::B64URL, 20, 64)],
        // Token prefixes: docs.gitlab.com/ee/security/tokens/#token-prefixes
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "gitlab-runner-token",
        &["glrt-", "glrtr-", "GR1348941"],
        &[p(C::B64URL, 20, 64)],
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "gitlab-pipeline-trigger-token",
        &["glptt-"],
        &[p(C::LOWER_HEX, 40, 40)],
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "gitlab-ci-job-token",
        &["glcbt-"],
        &[p(C::B64URL, 20, 80)],
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "gitlab-oauth-secret",
        &["gloas-"],
        &[p(C::B64URL, 64, 64)],
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "gitlab-feed-token",
        &["glft-"],
        &[p(C::B64URL, 20, 64)],
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "gitlab-incoming-mail-token",
        &["glimt-"],
        &[p(C::B64URL, 25, 25)],
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "gitlab-agent-token",
        &["glagent-"],
        &[p(C::B64URL, 50, 64)],
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "gitlab-scim-token",
        &["glsoat-"],
        &[p(C::B64URL, 20, 64)],
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "gitlab-feature-flag-token",
        &["glffct-"],
        &[p(C::B64URL, 20, 64)],
        "https://docs.gitlab.com/ee/security/tokens/#token-prefixes",
    ),
    t(
        "bitbucket-app-password",
        &["ATBB"],
        &[p(C::ALNUM, 32, 32)],
        "https://support.atlassian.com/bitbucket-cloud/docs/app-passwords/",
    ),
    t(
        "atlassian-api-token",
        &["ATATT3"],
        &[p(C::B64URL.or(C::EQUALS), 150, 250)],
        "https://support.atlassian.com/atlassian-account/docs/manage-api-tokens-for-your-atlassian-account/",
    ),
    t(
        "npm-token",
        &["npm_"],
        &[p(C::ALNUM, 36, 36)],
        "https://github.blog/2021-09-23-announcing-npms-new-access-token-format/",
    ),
    t(
        "npmrc-auth-token",
        &["_authToken="],
        &[p(C::B64URL.or(C::DOT).or(C::EQUALS).or(C::PLUS).or(C::SLASH), 16, 512)],
        "https://docs.npmjs.com/cli/v10/configuring-npm/npmrc#auth-related-configuration",
    )
    .after_anchor(),
    t(
        "pypi-token",
        &["pypi-AgE"],
        &[p(C::B64URL, 50, 400)],
        // A macaroon whose base64 starts with the location (pypi.org/help/#apitoken).
        "https://pypi.org/help/#apitoken",
    ),
    t(
        "rubygems-api-key",
        &["rubygems_"],
        &[p(C::LOWER_HEX, 48, 48)],
        "https://guides.rubygems.org/api-key-scopes/",
    ),
    t(
        "clojars-token",
        &["CLOJARS_"],
        &[p(C::LOWER_ALNUM, 60, 60)],
        "https://github.com/clojars/clojars-web/wiki/Deploy-Tokens",
    ),
    t(
        "docker-hub-token",
        &["dckr_pat_", "dckr_oat_"],
        &[p(C::B64URL, 20, 40)],
        "https://docs.docker.com/security/for-developers/access-tokens/",
    ),
    t(
        "jfrog-api-key",
        &["AKCp"],
        &[p(C::ALNUM, 60, 80)],
        "https://jfrog.com/help/r/jfrog-platform-administration-documentation/api-key",
    ),
    t(
        "jfrog-reference-token",
        &["cmVmdGtu"],
        &[p(C::B64URL, 56, 80)],
        // Base64 of `reftkn`.
        "https://jfrog.com/help/r/jfrog-platform-administration-documentation/reference-tokens",
    ),
    t(
        "sourcegraph-token",
        &["sgp_"],
        &[p(C::ALNUM.or(C::UNDERSCORE), 40, 80)],
        "https://sourcegraph.com/docs/cli/how-tos/creating_an_access_token",
    ),
    t(
        "sonar-token",
        &["squ_", "sqp_", "sqa_"],
        &[p(C::LOWER_HEX, 40, 40)],
        "https://docs.sonarsource.com/sonarqube/latest/user-guide/user-account/generating-and-using-tokens/",
    ),
    t(
        "buildkite-token",
        &["bkua_"],
        &[p(C::LOWER_HEX, 40, 40)],
        "https://buildkite.com/docs/apis/managing-api-tokens",
    ),
    t(
        "circleci-token",
        &["CCIPAT_", "CCIPRJ_"],
        &[p(C::ALNUM.or(C::UNDERSCORE), 50, 80)],
        "https://circleci.com/docs/managing-api-tokens/",
    ),
    t(
        "octopus-deploy-api-key",
        &["API-"],
        &[p(C::UPPER_ALNUM, 25, 32)],
        "https://octopus.com/docs/octopus-rest-api/how-to-create-an-api-key",
    ),
    t(
        "pulumi-access-token",
        &["pul-"],
        &[p(C::LOWER_HEX, 40, 40)],
        "https://www.pulumi.com/docs/pulumi-cloud/access-management/access-tokens/",
    ),
    t(
        "terraform-cloud-token",
        &[".atlasv1."],
        &[p(C::B64URL, 60, 70)],
        "https://developer.hashicorp.com/terraform/cloud-docs/users-teams-organizations/api-tokens",
    )
    .lead(C::ALNUM, 14, 14),
    t(
        "vault-token",
        &["hvs.", "hvb.", "hvr."],
        &[p(C::B64URL, 24, 400)],
        "https://developer.hashicorp.com/vault/docs/concepts/tokens#token-prefixes",
    ),
    t(
        "prefect-api-key",
        &["pnu_"],
        &[p(C::ALNUM, 36, 36)],
        "https://docs.prefect.io/latest/cloud/users/api-keys/",
    ),
    t(
        "readme-api-key",
        &["rdme_"],
        &[p(C::LOWER_ALNUM, 70, 70)],
        "https://docs.readme.com/main/reference/intro/authentication",
    ),
    t(
        "infracost-api-key",
        &["ico-"],
        &[p(C::ALNUM, 32, 32)],
        "https://www.infracost.io/docs/features/cli_commands/#api-key",
    ),
    t(
        "harness-token",
        &["pat.", "sat."],
        &[
            pt(C::B64URL, 22, 22, "."),
            pt(C::LOWER_HEX, 24, 24, "."),
            p(C::ALNUM, 20, 20),
        ],
        "https://developer.harness.io/docs/platform/automation/api/add-and-manage-api-keys/",
    ),
    // --- Cloud providers ---
    t(
        "azure-ad-client-secret",
        // The digit before `Q~` is part of the anchor: three-byte anchors keep the prefilter's
        // fingerprints at three bytes.
        &["0Q~", "1Q~", "2Q~", "3Q~", "4Q~", "5Q~", "6Q~", "7Q~", "8Q~", "9Q~"],
        &[p(C::ALNUM.or(C::UNDERSCORE).or(C::TILDE).or(C::DOT).or(C::DASH), 31, 34)],
        // Three characters, a digit, `Q~`, then 31-34 characters (Microsoft Entra client secrets).
        "https://learn.microsoft.com/en-us/purview/sit-defn-client-secret-api-key",
    )
    .lead(C::ALNUM.or(C::UNDERSCORE).or(C::TILDE).or(C::DOT), 3, 3),
    t(
        "azure-storage-account-key",
        &["AccountKey="],
        &[pt(C::B64, 86, 86, "==")],
        "https://learn.microsoft.com/en-us/azure/storage/common/storage-configure-connection-string",
    )
    .after_anchor(),
    t(
        "azure-shared-access-key",
        &["SharedAccessKey="],
        &[pt(C::B64, 43, 43, "=")],
        "https://learn.microsoft.com/en-us/azure/service-bus-messaging/service-bus-sas",
    )
    .after_anchor(),
    t(
        "azure-sas-signature",
        &["sig="],
        &[p(C::B64.or(C::PERCENT).or(C::EQUALS), 40, 120)],
        "https://learn.microsoft.com/en-us/rest/api/storageservices/create-service-sas",
    )
    .after_anchor(),
    t(
        "google-oauth-client-secret",
        &["GOCSPX-"],
        &[p(C::B64URL, 28, 28)],
        "https://support.google.com/cloud/answer/15549257",
    ),
    t(
        "google-oauth-access-token",
        &["ya29."],
        &[p(C::B64URL, 30, 2048)],
        "https://developers.google.com/identity/protocols/oauth2",
    ),
    t(
        "google-oauth-refresh-token",
        &["1//0"],
        &[p(C::B64URL, 40, 512)],
        "https://developers.google.com/identity/protocols/oauth2",
    ),
    t(
        "firebase-cloud-messaging-key",
        &[":APA91b"],
        &[p(C::B64URL, 134, 134)],
        "https://firebase.google.com/docs/cloud-messaging/auth-server",
    )
    .lead(C::B64URL, 11, 11),
    t(
        "alibaba-access-key-id",
        &["LTAI"],
        &[p(C::ALNUM, 12, 20)],
        "https://www.alibabacloud.com/help/en/ram/user-guide/create-an-accesskey-pair",
    ),
    t(
        "tencent-secret-id",
        &["AKID"],
        &[p(C::ALNUM, 32, 32)],
        "https://www.tencentcloud.com/document/product/598/32675",
    ),
    t(
        "yandex-api-key",
        &["AQVN"],
        &[p(C::B64URL, 35, 38)],
        "https://yandex.cloud/en/docs/iam/concepts/authorization/api-key",
    ),
    t(
        "digitalocean-token",
        &["dop_v1_", "doo_v1_", "dor_v1_"],
        &[p(C::LOWER_HEX, 64, 64)],
        "https://docs.digitalocean.com/reference/api/create-personal-access-token/",
    ),
    t(
        "heroku-api-key",
        &["HRKU-"],
        &[p(C::B64URL, 40, 80)],
        "https://devcenter.heroku.com/articles/authentication",
    ),
    t(
        "fly-io-token",
        &["fo1_", "fm2_"],
        &[p(B64_PAD.or(C::DASH).or(C::UNDERSCORE), 43, 2048)],
        "https://fly.io/docs/security/tokens/",
    ),
    t(
        "cloudflare-origin-ca-key",
        &["v1.0-"],
        &[pt(C::LOWER_HEX, 24, 24, "-"), p(C::LOWER_HEX, 146, 146)],
        "https://developers.cloudflare.com/fundamentals/api/get-started/ca-keys/",
    ),
    t(
        "planetscale-token",
        &["pscale_tkn_", "pscale_pw_", "pscale_oauth_"],
        &[p(C::B64URL.or(C::DOT).or(C::EQUALS), 32, 64)],
        "https://planetscale.com/docs/concepts/service-tokens",
    ),
    t(
        "supabase-token",
        &["sbp_", "sb_secret_"],
        &[p(C::B64URL, 30, 64)],
        "https://supabase.com/docs/guides/api/api-keys",
    ),
    t(
        "netlify-token",
        &["nfp_"],
        &[p(C::ALNUM, 36, 40)],
        "https://docs.netlify.com/api/get-started/#authentication",
    ),
    t(
        "doppler-token",
        &["dp.pt.", "dp.st.", "dp.ct.", "dp.sa.", "dp.scim.", "dp.audit."],
        &[p(C::ALNUM.or(C::DOT).or(C::DASH).or(C::UNDERSCORE), 40, 80)],
        "https://docs.doppler.com/docs/token-formats",
    ),
    t(
        "scalingo-api-token",
        &["tk-us-"],
        &[p(C::B64URL, 48, 48)],
        "https://doc.scalingo.com/platform/user-management/api-tokens",
    ),
    // --- Monitoring and operations ---
    t(
        "grafana-cloud-token",
        &["glc_"],
        &[p(B64_PAD, 32, 400)],
        "https://grafana.com/docs/grafana-cloud/account-management/authentication-and-permissions/access-policies/",
    ),
    t(
        "grafana-service-account-token",
        &["glsa_"],
        &[pt(C::ALNUM, 32, 32, "_"), p(C::LOWER_HEX, 8, 8)],
        "https://grafana.com/docs/grafana/latest/administration/service-accounts/",
    ),
    t(
        "new-relic-user-key",
        &["NRAK-"],
        &[p(C::UPPER_ALNUM, 27, 27)],
        "https://docs.newrelic.com/docs/apis/intro-apis/new-relic-api-keys/",
    ),
    t(
        "new-relic-insert-key",
        &["NRII-"],
        &[p(C::B64URL, 32, 32)],
        "https://docs.newrelic.com/docs/apis/intro-apis/new-relic-api-keys/",
    ),
    t(
        "new-relic-browser-key",
        &["NRJS-"],
        &[p(C::LOWER_HEX, 19, 19)],
        "https://docs.newrelic.com/docs/apis/intro-apis/new-relic-api-keys/",
    ),
    t(
        "sentry-org-token",
        &["sntrys_"],
        &[p(B64_PAD.or(C::UNDERSCORE), 60, 600)],
        "https://docs.sentry.io/account/auth-tokens/",
    ),
    t(
        "sentry-user-token",
        &["sntryu_"],
        &[p(C::LOWER_HEX, 64, 64)],
        "https://docs.sentry.io/account/auth-tokens/",
    ),
    t(
        "dynatrace-token",
        &["dt0c01.", "dt0s01.", "dt0s02.", "dt0s08."],
        &[pt(C::UPPER_ALNUM, 24, 24, "."), p(C::UPPER_ALNUM, 64, 64)],
        "https://docs.dynatrace.com/docs/manage/identity-access-management/access-tokens-and-oauth-clients/access-tokens",
    ),
    t(
        "linear-api-key",
        &["lin_api_"],
        &[p(C::ALNUM, 40, 40)],
        "https://developers.linear.app/docs/graphql/working-with-the-graphql-api#personal-api-keys",
    ),
    t(
        "postman-api-key",
        &["PMAK-"],
        &[pt(C::LOWER_HEX, 24, 24, "-"), p(C::LOWER_HEX, 34, 34)],
        "https://learning.postman.com/docs/developer/postman-api/authentication/",
    ),
    t(
        "frameio-token",
        &["fio-u-"],
        &[p(C::B64URL, 64, 64)],
        "https://developer.frame.io/docs/getting-started/authentication",
    ),
    t(
        "notion-token",
        // `ntn_` since 2024; the older `secret_…` tokens are caught by `generic-secret` where
        // a key names them (`secret_` starts too many words to be an anchor of its own).
        &["ntn_"],
        &[p(C::ALNUM, 43, 46)],
        "https://developers.notion.com/docs/authorization",
    ),
    t(
        "airtable-token",
        &["pat"],
        &[pt(C::ALNUM, 14, 14, "."), p(C::LOWER_HEX, 64, 64)],
        "https://airtable.com/developers/web/guides/personal-access-tokens",
    ),
    t(
        "contentful-token",
        &["CFPAT-"],
        &[p(C::B64URL, 43, 43)],
        "https://www.contentful.com/developers/docs/references/authentication/",
    ),
    t(
        "typeform-token",
        &["tfp_"],
        &[p(C::B64URL, 40, 80)],
        "https://www.typeform.com/developers/get-started/personal-access-token/",
    ),
    t(
        "launchdarkly-key",
        &["sdk-", "api-"],
        &[p(C::HEX_DASH, 36, 36)],
        "https://docs.launchdarkly.com/home/account/api",
    ),
    t(
        "okta-api-token",
        &["SSWS "],
        &[p(C::B64URL, 42, 42)],
        "https://developer.okta.com/docs/guides/create-an-api-token/",
    )
    .after_anchor(),
    t(
        "mapbox-secret-token",
        &["sk.eyJ"],
        &[p(B64URL_DOT, 60, 400)],
        "https://docs.mapbox.com/accounts/guides/tokens/",
    ),
    // --- Messaging and e-mail ---
    t(
        "sendgrid-api-key",
        &["SG."],
        &[pt(C::B64URL, 22, 22, "."), p(C::B64URL, 43, 43)],
        "https://www.twilio.com/docs/sendgrid/ui/account-and-settings/api-keys",
    ),
    t(
        "mailchimp-api-key",
        &["-us"],
        &[p(C::DIGIT, 1, 2)],
        "https://mailchimp.com/developer/marketing/docs/fundamentals/#api-structure",
    )
    .lead(C::LOWER_HEX, 32, 32),
    t(
        "mailgun-api-key",
        &["key-"],
        &[p(C::LOWER_HEX, 32, 32)],
        "https://documentation.mailgun.com/docs/mailgun/api-reference/authentication/",
    ),
    t(
        "slack-app-token",
        &["xapp-"],
        &[p(C::ALNUM.or(C::DASH), 20, 250)],
        "https://api.slack.com/authentication/token-types#app-level",
    ),
    t(
        "slack-config-token",
        &["xoxe.xox", "xoxe-"],
        &[p(C::ALNUM.or(C::DASH), 20, 250)],
        "https://api.slack.com/authentication/config-tokens",
    ),
    t(
        "discord-webhook",
        &["discord.com/api/webhooks/", "discordapp.com/api/webhooks/"],
        &[pt(C::DIGIT, 17, 20, "/"), p(C::B64URL, 60, 80)],
        "https://discord.com/developers/docs/resources/webhook",
    ),
    t(
        "teams-webhook",
        &["webhook.office.com/webhookb2/"],
        &[p(C::HEX_DASH.or(C::AT).or(C::SLASH).or(C::ALNUM), 60, 300)],
        "https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook",
    ),
    t(
        "telegram-bot-token",
        &[":AA"],
        &[p(C::B64URL, 33, 33)],
        "https://core.telegram.org/bots/api#authorizing-your-bot",
    )
    .lead(C::DIGIT, 8, 10),
    // --- Payments and commerce ---
    t(
        "stripe-webhook-secret",
        &["whsec_"],
        &[p(C::ALNUM, 32, 64)],
        "https://docs.stripe.com/webhooks#verify-official-libraries",
    ),
    t(
        "shopify-token",
        &["shpat_", "shpca_", "shppa_", "shpss_"],
        &[p(C::HEX, 32, 32)],
        "https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens",
    ),
    t(
        "square-token",
        &["sq0atp-", "sq0csp-", "EAAA"],
        &[p(C::B64URL, 22, 60)],
        "https://developer.squareup.com/docs/build-basics/access-tokens",
    ),
    t(
        "shippo-api-token",
        &["shippo_live_", "shippo_test_"],
        &[p(C::LOWER_HEX, 40, 40)],
        "https://docs.goshippo.com/docs/guides_general/authentication/",
    ),
    t(
        "flutterwave-secret-key",
        &["FLWSECK_TEST-", "FLWSECK-"],
        &[pt(C::LOWER_HEX, 32, 32, "-X")],
        "https://developer.flutterwave.com/docs/integration-guides/authentication",
    ),
    t(
        "plaid-access-token",
        &["access-sandbox-", "access-development-", "access-production-"],
        &[p(C::HEX_DASH, 36, 36)],
        "https://plaid.com/docs/api/tokens/",
    ),
    t(
        "easypost-api-key",
        &["EZAK", "EZTK"],
        &[p(C::ALNUM, 54, 54)],
        "https://docs.easypost.com/docs/authentication",
    ),
    t(
        "duffel-token",
        &["duffel_live_", "duffel_test_"],
        &[p(C::B64URL, 43, 43)],
        "https://duffel.com/docs/api/overview/making-requests/authentication",
    ),
    t(
        "adobe-client-secret",
        &["p8e-"],
        &[p(C::B64URL, 32, 32)],
        "https://developer.adobe.com/developer-console/docs/guides/authentication/",
    ),
    // --- More services ---
    t(
        "openrouter-api-key",
        &["sk-or-v1-"],
        &[p(C::LOWER_HEX, 64, 64)],
        "https://openrouter.ai/docs/api-reference/authentication",
    ),
    t(
        "elevenlabs-api-key",
        &["sk_"],
        &[p(C::LOWER_HEX, 48, 48)],
        "https://elevenlabs.io/docs/api-reference/authentication",
    ),
    t(
        "nvidia-api-key",
        &["nvapi-"],
        &[p(C::B64URL, 64, 64)],
        "https://docs.api.nvidia.com/nim/reference/authentication",
    ),
    t(
        "pinecone-api-key",
        &["pcsk_"],
        &[p(C::B64URL, 40, 100)],
        "https://docs.pinecone.io/guides/projects/manage-api-keys",
    ),
    t(
        "langsmith-api-key",
        &["lsv2_pt_", "lsv2_sk_"],
        &[pt(C::LOWER_HEX, 32, 32, "_"), p(C::LOWER_HEX, 10, 10)],
        "https://docs.smith.langchain.com/administration/how_to_guides/organization_management/create_account_api_key",
    ),
    t(
        "amazon-bedrock-api-key",
        &["ABSKQmVkcm9ja0FQSUtleS"],
        &[p(B64_PAD, 40, 400)],
        // Base64 of `BedrockAPIKey-`, after `ABSK`.
        "https://docs.aws.amazon.com/bedrock/latest/userguide/api-keys-how.html",
    ),
    t(
        "amazon-mws-token",
        &["amzn.mws."],
        &[p(C::HEX_DASH, 36, 36)],
        "https://developer-docs.amazon.com/sp-api/docs/sp-api-for-mws-developers",
    ),
    t(
        "figma-token",
        &["figd_"],
        &[p(C::B64URL, 40, 40)],
        "https://www.figma.com/developers/api#access-tokens",
    ),
    t(
        "linear-oauth-token",
        &["lin_oauth_"],
        &[p(C::LOWER_HEX, 64, 64)],
        "https://developers.linear.app/docs/oauth/authentication",
    ),
    t(
        "hubspot-private-app-token",
        &["pat-na1-", "pat-eu1-"],
        &[p(C::HEX_DASH, 36, 36)],
        "https://developers.hubspot.com/docs/api/private-apps",
    ),
    t(
        "clickup-api-token",
        &["pk_"],
        &[pt(C::DIGIT, 6, 10, "_"), p(C::UPPER_ALNUM, 32, 32)],
        "https://clickup.com/api/developer-portal/authentication/",
    ),
    t(
        "dropbox-short-lived-token",
        &["sl."],
        &[p(C::B64URL, 130, 150)],
        "https://developers.dropbox.com/oauth-guide",
    ),
    t(
        "neon-api-key",
        &["napi_"],
        &[p(C::LOWER_ALNUM, 64, 64)],
        "https://neon.tech/docs/manage/api-keys",
    ),
    t(
        "render-api-key",
        &["rnd_"],
        &[p(C::ALNUM, 32, 32)],
        "https://render.com/docs/api#1-create-an-api-key",
    ),
    t(
        "docker-swarm-join-token",
        &["SWMTKN-1-"],
        &[pt(C::LOWER_ALNUM, 50, 50, "-"), p(C::LOWER_ALNUM, 25, 25)],
        "https://docs.docker.com/engine/swarm/join-nodes/",
    ),
    t(
        "azure-app-configuration-secret",
        &[";Secret="],
        &[p(B64_PAD, 40, 48)],
        "https://learn.microsoft.com/en-us/azure/azure-app-configuration/howto-disable-access-key-authentication",
    )
    .after_anchor(),
    t(
        "elastic-api-key",
        &["ApiKey "],
        &[p(B64_PAD, 20, 200)],
        "https://www.elastic.co/guide/en/elasticsearch/reference/current/security-api-create-api-key.html",
    )
    .after_anchor(),
    t(
        "splunk-hec-token",
        &["Splunk "],
        &[p(C::HEX_DASH, 36, 36)],
        "https://docs.splunk.com/Documentation/Splunk/latest/Data/UsetheHTTPEventCollector",
    )
    .after_anchor(),
    t(
        "honeycomb-api-key",
        &["hcaik_", "hcxik_", "hcamk_", "hcxmk_"],
        &[p(C::LOWER_ALNUM, 58, 64)],
        "https://docs.honeycomb.io/get-started/configure/environments/manage-api-keys/",
    ),
    t(
        "tailscale-key",
        &["tskey-"],
        &[p(C::ALNUM.or(C::DASH), 20, 100)],
        "https://tailscale.com/kb/1085/auth-keys",
    ),
    t(
        "onepassword-service-account-token",
        &["ops_eyJ"],
        &[p(B64_PAD.or(C::DASH).or(C::UNDERSCORE), 100, 4096)],
        "https://developer.1password.com/docs/service-accounts/",
    ),
    t(
        "onepassword-secret-key",
        &["A3-"],
        &[
            pt(C::UPPER_ALNUM, 6, 6, "-"),
            pt(C::UPPER_ALNUM, 6, 6, "-"),
            pt(C::UPPER_ALNUM, 5, 5, "-"),
            pt(C::UPPER_ALNUM, 5, 5, "-"),
            pt(C::UPPER_ALNUM, 5, 5, "-"),
            p(C::UPPER_ALNUM, 5, 5),
        ],
        "https://support.1password.com/secret-key-security/",
    ),
    t(
        "akamai-client-token",
        &["akab-"],
        &[pt(C::LOWER_ALNUM, 16, 16, "-"), p(C::LOWER_ALNUM, 16, 16)],
        "https://techdocs.akamai.com/developer/docs/edgegrid",
    ),
    t(
        "kubeconfig-client-key",
        &["client-key-data: "],
        &[p(B64_PAD, 64, 16384)],
        "https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/",
    )
    .after_anchor(),
    // --- Keys and generic credentials ---
    t(
        "age-secret-key",
        &["AGE-SECRET-KEY-1"],
        &[p(C::UPPER_ALNUM, 58, 58)],
        "https://age-encryption.org/v1",
    ),
    t(
        "basic-auth",
        &["Basic ", "basic "],
        // At least `a:bcdefgh`.
        &[p(B64_PAD, 12, 1024)],
        "https://www.rfc-editor.org/rfc/rfc7617",
    )
    .after_anchor()
    .check(Check::BasicAuth),
    t(
        "bearer-token",
        &["Bearer ", "bearer "],
        &[p(B64URL_DOT.or(C::TILDE).or(C::PLUS).or(C::SLASH).or(C::EQUALS), 20, 4096)],
        "https://www.rfc-editor.org/rfc/rfc6750#section-2.1",
    )
    .after_anchor(),
    // --- Found by their key: no fixed prefix, so the key must name them. The key words are
    // lower case and looked for in the key, any case; a rule is tried where a key holds one
    // of KEY_STEMS. Vendors first: the generic rules after them catch what they do not. ---
    k(
        "datadog-key",
        &["datadog", "dd_api_key", "dd_app_key", "dd-api-key"],
        &[p(C::LOWER_HEX, 32, 40)],
        30,
        // API keys are 32 hex digits, application keys 40.
        "https://docs.datadoghq.com/account_management/api-app-keys/",
    ),
    k(
        "twilio-auth-token",
        &["twilio"],
        &[p(C::LOWER_HEX, 32, 32)],
        30,
        "https://www.twilio.com/docs/iam/api/authtoken",
    ),
    k(
        "heroku-legacy-api-key",
        &["heroku"],
        &[p(C::HEX_DASH, 36, 36)],
        30,
        "https://devcenter.heroku.com/articles/authentication",
    ),
    k(
        "cloudflare-api-token",
        &["cloudflare", "cf_api"],
        &[p(C::B64URL, 37, 40)],
        35,
        "https://developers.cloudflare.com/fundamentals/api/get-started/create-token/",
    ),
    k(
        "azure-devops-pat",
        &["devops", "ado_pat", "azdo"],
        &[p(C::ALNUM, 52, 84)],
        35,
        "https://learn.microsoft.com/en-us/azure/devops/organizations/accounts/use-personal-access-tokens-to-authenticate",
    ),
    k(
        "mistral-api-key",
        &["mistral"],
        &[p(C::ALNUM, 32, 32)],
        35,
        "https://docs.mistral.ai/getting-started/quickstart/",
    ),
    k(
        "cohere-api-key",
        &["cohere", "co_api_key"],
        &[p(C::ALNUM, 40, 40)],
        35,
        "https://docs.cohere.com/reference/about",
    ),
    k(
        "wandb-api-key",
        &["wandb"],
        &[p(C::LOWER_HEX, 40, 40)],
        30,
        "https://docs.wandb.ai/guides/track/environment-variables/",
    ),
    k(
        "algolia-api-key",
        &["algolia"],
        &[p(C::LOWER_HEX, 32, 32)],
        30,
        "https://www.algolia.com/doc/guides/security/api-keys/",
    ),
    k(
        "pagerduty-api-key",
        &["pagerduty"],
        &[p(C::B64URL.or(C::PLUS), 20, 20)],
        30,
        "https://support.pagerduty.com/main/docs/api-access-keys",
    ),
    k(
        "fastly-api-token",
        &["fastly"],
        &[p(C::B64URL, 32, 32)],
        35,
        "https://www.fastly.com/documentation/reference/api/auth-tokens/",
    ),
    k(
        "snyk-token",
        &["snyk"],
        &[p(C::HEX_DASH, 36, 36)],
        30,
        "https://docs.snyk.io/snyk-api/authentication-for-api",
    ),
    k(
        "generic-password",
        &["password", "passwd", "passphrase"],
        &[p(PASSWORD, 6, 128)],
        0,
        // Assigned to a key naming a password (connection settings, `.env`, YAML, XML).
        "https://cwe.mitre.org/data/definitions/798.html",
    ),
    k(
        "generic-api-key",
        &["api_key", "apikey", "api-key", "app_key", "appkey"],
        &[p(SECRET, 20, 256)],
        35,
        "https://cwe.mitre.org/data/definitions/798.html",
    ),
    k(
        "generic-auth-token",
        &["auth_token", "authtoken", "api_token", "apitoken", "access_token", "accesstoken", "bearer_token", "private_token"],
        &[p(SECRET, 20, 512)],
        35,
        "https://cwe.mitre.org/data/definitions/798.html",
    ),
    k(
        "generic-secret",
        &["secret"],
        &[p(SECRET, 20, 256)],
        35,
        "https://cwe.mitre.org/data/definitions/798.html",
    ),
];

/// What triggers the keyed rules: parts of the keys that name credentials, in the cases keys
/// are written in (`db_password`, `MasterUserPassword`, `DD_API_KEY`, `twilioAuthToken`,
/// `AZURE_DEVOPS_PAT`). Few, so that they share one prefilter with the other anchors. A stem is
/// left out where the field rules' anchors (listed with it) already stop at every key holding
/// it: `Secret` and `secret` stop wherever `ecret` would, and a field anchor that is not a field
/// hands over to the keyed rules.
pub(crate) const KEY_STEMS: &[(&str, &[&str])] = &[
    ("assword", &["password", "Password"]),
    ("asswd", &[]),
    ("ASSW", &[]),
    ("assphrase", &[]),
    ("ecret", &["secret", "Secret"]),
    ("ECRET", &[]),
    ("_key", &[]),
    ("_KEY", &[]),
    ("-key", &[]),
    ("-KEY", &[]),
    ("-Key", &[]),
    ("piKey", &[]),
    ("pikey", &[]),
    ("PIKEY", &[]),
    ("_token", &["token"]),
    ("_TOKEN", &[]),
    ("Token", &["Token"]),
    ("_pat", &[]),
    ("_PAT", &[]),
];

/// Key endings (lower case) that say the value is about a secret, not the secret itself:
/// `SecretId`, `PasswordLastUsed`, `ApiKeyRequired`, `DD_API_KEY_FILE`.
const NOT_SECRET_KEYS: &[&str] = &[
    "id",
    "ids",
    "arn",
    "arns",
    "name",
    "names",
    "type",
    "types",
    "length",
    "policy",
    "policies",
    "used",
    "required",
    "enabled",
    "reset",
    "age",
    "date",
    "time",
    "status",
    "version",
    "versions",
    "count",
    "hint",
    "file",
    "path",
    "url",
    "uri",
    "prefix",
    "format",
    "source",
    "rotation",
    "expiry",
    "expires",
    "expiration",
    "created",
    "updated",
    "changed",
    "label",
    "description",
    "field",
    "ref",
    "algorithm",
    "provider",
    "mode",
    "size",
    "header",
    "location",
    "region",
    "hash",
    "digest",
    "list",
    "set",
    "last",
    "env",
    "var",
    "selector",
    "secretkeyref",
];

/// The most bytes of a key before or after its keyword.
const MAX_KEY: usize = 48;

/// Bytes keys are made of.
fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Shannon entropy of `v` in tenths of a bit per byte.
fn entropy_tenths(v: &[u8]) -> u32 {
    let mut counts = [0u32; 256];
    for &b in v {
        counts[b as usize] += 1;
    }
    let n = v.len() as f64;
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    (h * 10.0) as u32
}

/// The keyed rules at a key stem at `at`: the key around it, then each keyed rule that is on
/// and whose word the key holds, in table order, until one matches. Returns the rule with it.
pub(crate) fn confirm_key(
    on: &[bool],
    hay: &[u8],
    at: usize,
    anchor_len: usize,
    lo: usize,
    eof: bool,
) -> (Confirm, Option<usize>) {
    // The key: the run of key bytes around the stem.
    let floor = at.saturating_sub(MAX_KEY + 1);
    let mut ks = at;
    while ks > floor && key_byte(hay[ks - 1]) && !after_escape(hay, ks) {
        ks -= 1;
    }
    // Not a key inside an ARN or a path (`…:secret:prod/db`, `/run/secrets/x`).
    if at - ks > MAX_KEY || ks < lo || (ks > 0 && matches!(hay[ks - 1], b':' | b'/')) {
        return (Confirm::No, None);
    }
    let (rest, at_end) = {
        let from = at + anchor_len;
        let end = hay.len().min(from + MAX_KEY + 1);
        let mut i = from;
        while i < end && key_byte(hay[i]) {
            i += 1;
        }
        (i - from, i == hay.len())
    };
    if at_end && !eof {
        return (Confirm::NeedMore { from: ks }, None);
    }
    if rest > MAX_KEY {
        return (Confirm::No, None);
    }
    let ke = at + anchor_len + rest;
    // The key in lower case, on the stack (keys are short; this runs at every stem).
    let mut buf = [0u8; 2 * MAX_KEY + 16];
    let Some(key) = buf.get_mut(..ke - ks) else {
        return (Confirm::No, None);
    };
    key.copy_from_slice(&hay[ks..ke]);
    key.make_ascii_lowercase();
    let key = &*key;
    if about_a_secret(&hay[ks..ke], key) {
        return (Confirm::No, None);
    }
    let Some((value_at, quote, xml)) = assignment(hay, ks, ke) else {
        return (Confirm::No, None);
    };
    if value_at >= hay.len() {
        return (out_of_data(eof, ks), None);
    }
    for (k, rule) in RULES.iter().enumerate() {
        let Some(keyed) = rule.keyed else { continue };
        if !on[k] || !rule.anchors.iter().any(|w| contains(key, w.as_bytes())) {
            continue;
        }
        match keyed_value(rule, keyed, hay, ks, value_at, quote, xml, eof) {
            Confirm::No => {}
            c => return (c, Some(k)),
        }
    }
    (Confirm::No, None)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// After a key `ks..ke`: where its value starts, the quote around the value, and whether it is
/// an XML element's text; `None` if nothing is assigned to it. Cut off by the end of the data,
/// the value's start is the data's end.
fn assignment(hay: &[u8], ks: usize, ke: usize) -> Option<(usize, Option<&[u8]>, bool)> {
    let mut i = ke;
    if ks > 0 && hay[ks - 1] == b'<' {
        return match hay.get(i) {
            None => Some((hay.len(), None, true)),
            Some(b'>') => Some((i + 1, None, true)),
            Some(_) => None,
        };
    }
    // A quoted key (a JSON member, or one inside a JSON string) takes a quoted value.
    let key_quote = closing_quote(hay, ks, ke);
    i += key_quote.map_or(0, <[u8]>::len);
    let limit = hay.len().min(i + 8);
    while i < limit && matches!(hay[i], b' ' | b'\t') {
        i += 1;
    }
    match hay.get(i) {
        None => return Some((hay.len(), None, false)),
        Some(b'=' | b':') => i += 1,
        Some(_) => return None,
    }
    let limit = hay.len().min(i + 8);
    while i < limit && matches!(hay[i], b' ' | b'\t') {
        i += 1;
    }
    if i >= hay.len() {
        return Some((hay.len(), None, false));
    }
    let quote = match quote_at(hay, i) {
        Ok(q) => q,
        Err(()) => return Some((hay.len(), None, false)),
    };
    if key_quote.is_some() && quote.is_none() {
        return None;
    }
    Some((i + quote.map_or(0, <[u8]>::len), quote, false))
}

/// A keyed rule's value at `i` (for a key from `ks`), ended by its quote, an XML tag or a byte
/// that cannot continue it, of the rule's shape and entropy; only the value is masked.
#[allow(clippy::too_many_arguments)]
fn keyed_value(
    rule: &TokenRule,
    keyed: Keyed,
    hay: &[u8],
    ks: usize,
    i: usize,
    quote: Option<&[u8]>,
    xml: bool,
    eof: bool,
) -> Confirm {
    let part = rule.parts[0];
    let (n, at_end) = run(hay, i, part.max as usize + 1, |b| part.class.has(b));
    if at_end && !eof {
        return Confirm::NeedMore { from: ks };
    }
    if n < part.min as usize || n > part.max as usize {
        return Confirm::No;
    }
    let end = i + n;
    if let Some(q) = quote {
        if hay.len() < end + q.len() {
            return out_of_data(eof, ks);
        }
        if &hay[end..end + q.len()] != q {
            return Confirm::No;
        }
    } else if xml {
        if end < hay.len() && hay[end] != b'<' {
            return Confirm::No;
        }
    } else if end < hay.len() && is_word(hay[end]) {
        return Confirm::No;
    }
    let value = &hay[i..end];
    if placeholder(value) || entropy_tenths(value) < keyed.entropy_tenths as u32 {
        return Confirm::No;
    }
    Confirm::Match {
        start: ks,
        end,
        mask_start: i,
        mask_end: end,
    }
}

/// The most backslashes before a quote: JSON nested three deep.
const MAX_QUOTE: usize = 8;

/// The quote at `i`: `"`, `'`, or a quote escaped for nesting (`\"`, `\\\"`); `Err` when the
/// data ends inside it.
fn quote_at(hay: &[u8], i: usize) -> Result<Option<&[u8]>, ()> {
    let mut j = i;
    while j < hay.len() && j - i < MAX_QUOTE && hay[j] == b'\\' {
        j += 1;
    }
    match hay.get(j) {
        None => Err(()),
        Some(b'"') => Ok(Some(&hay[i..=j])),
        Some(b'\'') if j == i => Ok(Some(&hay[i..=j])),
        Some(_) => Ok(None),
    }
}

/// The quote that closes a key at `ke` opened right before `ks` the same way, if it is quoted.
fn closing_quote(hay: &[u8], ks: usize, ke: usize) -> Option<&[u8]> {
    let open = match hay.get(ks.checked_sub(1)?)? {
        b'"' => {
            let mut s = ks - 1;
            while s > 0 && ks - 1 - s < MAX_QUOTE && hay[s - 1] == b'\\' {
                s -= 1;
            }
            &hay[s..ks]
        }
        b'\'' => &hay[ks - 1..ks],
        _ => return None,
    };
    (hay.len() >= ke + open.len() && &hay[ke..ke + open.len()] == open).then_some(open)
}

/// Whether the key (as written, and lower case) ends with one of [`NOT_SECRET_KEYS`] as a word of
/// its own: after `_`, `-` or `.`, at a lower-to-upper case change (`PasswordLastUsed`), or as the
/// whole key. `API_TOKEN_STAGE` does not end with the word `age`.
fn about_a_secret(key: &[u8], lower: &[u8]) -> bool {
    NOT_SECRET_KEYS.iter().any(|s| {
        let s = s.as_bytes();
        if !lower.ends_with(s) {
            return false;
        }
        let b = key.len() - s.len();
        b == 0
            || matches!(key[b - 1], b'_' | b'-' | b'.')
            || (key[b].is_ascii_uppercase() && key[b - 1].is_ascii_lowercase())
    })
}

/// Values that stand for a secret rather than being one: a variable (`${DB_PASSWORD}`,
/// `$(pass)`, `%(pw)s`, `{{ .password }}`), a redaction (`****`, `xxxx`), a number, a boolean.
fn placeholder(v: &[u8]) -> bool {
    let mut seen = [false; 256];
    let mut distinct = 0;
    for &b in v {
        if !seen[b as usize] {
            seen[b as usize] = true;
            distinct += 1;
        }
    }
    let lower = v.to_ascii_lowercase();
    distinct <= 2
        || v.iter().all(u8::is_ascii_digit)
        || [&b"${"[..], b"$(", b"%(", b"%{", b"{{"]
            .iter()
            .any(|p| v.starts_with(p))
        || [
            &b"true"[..],
            b"false",
            b"null",
            b"none",
            b"undefined",
            b"redacted",
            b"changeme",
        ]
        .contains(&lower.as_slice())
}

/// Confirms `rule` at its anchor at `at` (length `anchor_len`); `lo` is the earliest position a
/// match may start at.
pub(crate) fn confirm(
    rule: &TokenRule,
    hay: &[u8],
    at: usize,
    anchor_len: usize,
    lo: usize,
    eof: bool,
) -> Confirm {
    let start = match rule.lead {
        None => at,
        Some((class, min, max)) => {
            // Counted from the bytes themselves, not from where this scan began; a JSON escape
            // (`\n`) before the lead ends it.
            let floor = at.saturating_sub(max as usize + 1);
            let mut s = at;
            while s > floor && class.has(hay[s - 1]) && !after_escape(hay, s) {
                s -= 1;
            }
            let n = at - s;
            if n < min as usize || n > max as usize {
                return Confirm::No;
            }
            s
        }
    };
    if start < lo || !boundary_before(hay, start) {
        return Confirm::No;
    }
    let mut i = at + anchor_len;
    let mut last = Class(0);
    for part in rule.parts {
        let (n, at_end) = run(hay, i, part.max as usize + 1, |b| part.class.has(b));
        if at_end && !eof {
            return Confirm::NeedMore { from: start };
        }
        if n < part.min as usize || n > part.max as usize {
            return Confirm::No;
        }
        i += n;
        let lit = part.then.as_bytes();
        if !lit.is_empty() {
            let have = &hay[i..hay.len().min(i + lit.len())];
            if have.len() < lit.len() {
                return if !eof && lit.starts_with(have) {
                    Confirm::NeedMore { from: start }
                } else {
                    Confirm::No
                };
            }
            if have != lit {
                return Confirm::No;
            }
            i += lit.len();
            last = Class(0);
        } else {
            last = part.class;
        }
    }
    // The token ends here: the next byte must not continue it.
    if i == hay.len() && !eof {
        return Confirm::NeedMore { from: start };
    }
    if i < hay.len() && (is_word(hay[i]) || last.has(hay[i])) {
        return Confirm::No;
    }
    let value_from = match rule.extent {
        Extent::Whole => start,
        Extent::AfterAnchor => at + anchor_len,
    };
    if rule.check == Check::BasicAuth && !basic_auth(&hay[value_from..i]) {
        return Confirm::No;
    }
    Confirm::Match {
        start,
        end: i,
        mask_start: value_from,
        mask_end: i,
    }
}

/// Whether `v` is standard base64 of printable `user:password`.
fn basic_auth(v: &[u8]) -> bool {
    use base64::Engine as _;
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(v) else {
        return false;
    };
    decoded.contains(&b':') && decoded.iter().all(|b| (0x20..0x7f).contains(b))
}
