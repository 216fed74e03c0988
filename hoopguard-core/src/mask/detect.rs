//! The built-in detectors: each confirms a candidate found by a literal anchor, an `@`, or a run
//! of digits, by hand-written checks (no regex on the hot path).
//!
//! Every detector is bounded: it looks at most [`LOOKBEHIND`] bytes before its anchor and a fixed
//! number after, so a stream can be masked with bounded memory.

/// The most any detector looks back from its trigger position.
pub(crate) const LOOKBEHIND: usize = 96;
/// The longest value a structure-aware field or a PEM block may have; longer ones are masked up
/// to this length.
pub(crate) const MAX_VALUE: usize = 64 * 1024;

/// What a detector found at a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// A match: `start..end` is consumed, `mask_start..mask_end` (inside it) is replaced.
    Match {
        start: usize,
        end: usize,
        mask_start: usize,
        mask_end: usize,
    },
    /// No match at this trigger.
    No,
    /// More data is needed to decide; nothing from `from` on may be emitted yet.
    NeedMore { from: usize },
}

impl Confirm {
    fn whole(start: usize, end: usize) -> Confirm {
        Confirm::Match {
            start,
            end,
            mask_start: start,
            mask_end: end,
        }
    }
}

/// The built-in rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Builtin {
    AwsAccessKeyId,
    AwsSecretAccessKey,
    AwsSessionToken,
    PrivateKey,
    Jwt,
    GithubToken,
    GitlabToken,
    SlackToken,
    SlackWebhook,
    StripeKey,
    GoogleApiKey,
    DbPassword,
    UrlPassword,
    CreditCard,
    Iban,
    Email,
    UsSsn,
    JsonField,
    XmlField,
}

impl Builtin {
    pub(crate) const ALL: [Builtin; 19] = [
        Builtin::AwsAccessKeyId,
        Builtin::AwsSecretAccessKey,
        Builtin::AwsSessionToken,
        Builtin::PrivateKey,
        Builtin::Jwt,
        Builtin::GithubToken,
        Builtin::GitlabToken,
        Builtin::SlackToken,
        Builtin::SlackWebhook,
        Builtin::StripeKey,
        Builtin::GoogleApiKey,
        Builtin::DbPassword,
        Builtin::UrlPassword,
        Builtin::CreditCard,
        Builtin::Iban,
        Builtin::Email,
        Builtin::UsSsn,
        Builtin::JsonField,
        Builtin::XmlField,
    ];

    /// The rule name, as shown in `[MASKED:name]` and configured.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Builtin::AwsAccessKeyId => "aws-access-key-id",
            Builtin::AwsSecretAccessKey => "aws-secret-access-key",
            Builtin::AwsSessionToken => "aws-session-token",
            Builtin::PrivateKey => "private-key",
            Builtin::Jwt => "jwt",
            Builtin::GithubToken => "github-token",
            Builtin::GitlabToken => "gitlab-token",
            Builtin::SlackToken => "slack-token",
            Builtin::SlackWebhook => "slack-webhook",
            Builtin::StripeKey => "stripe-key",
            Builtin::GoogleApiKey => "google-api-key",
            Builtin::DbPassword => "db-password",
            Builtin::UrlPassword => "url-password",
            Builtin::CreditCard => "credit-card",
            Builtin::Iban => "iban",
            Builtin::Email => "email",
            Builtin::UsSsn => "us-ssn",
            Builtin::JsonField => "json-field",
            Builtin::XmlField => "xml-field",
        }
    }

    /// The literal anchors that trigger this detector (none: triggered by `@` or digits).
    pub(crate) fn anchors(self) -> &'static [&'static str] {
        match self {
            Builtin::AwsAccessKeyId => &["AKIA", "ASIA", "ABIA", "ACCA"],
            Builtin::AwsSecretAccessKey => &["aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"],
            Builtin::AwsSessionToken => &[
                "aws_session_token",
                "AWS_SESSION_TOKEN",
                "aws_security_token",
                "AWS_SECURITY_TOKEN",
            ],
            Builtin::PrivateKey => &["-----BEGIN "],
            Builtin::Jwt => &["eyJ"],
            Builtin::GithubToken => &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
            Builtin::GitlabToken => &["glpat-"],
            // One anchor each where the variants share a stem: fewer anchors keep the prefilter
            // on its fastest path (Teddy with at most 32 patterns).
            Builtin::SlackToken => &["xox"],
            Builtin::SlackWebhook => &["hooks.slack.com/services/"],
            Builtin::StripeKey => &["k_live_", "k_test_"],
            Builtin::GoogleApiKey => &["AIza"],
            // `url-password` shares this anchor: the scheme before it decides the rule.
            Builtin::DbPassword => &["://"],
            Builtin::UrlPassword => &[],
            Builtin::CreditCard | Builtin::Iban | Builtin::UsSsn | Builtin::Email => &[],
            // Field names come from the configuration.
            Builtin::JsonField | Builtin::XmlField => &[],
        }
    }
}

#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The most bytes before a position that [`boundary_before`] reads: a JSON `\uXXXX` escape, or
/// the backslashes before an escaped byte.
pub(crate) const ESCAPE_CONTEXT: usize = 8;

/// Whether position `i` is at an ASCII word boundary on its left (start of a word). Looks at
/// the bytes before even when they belong to an earlier match, so the answer never depends on
/// how the input was cut into chunks.
///
/// A JSON string escape is not a word: after `\n`, `\t`, `\r`, `\b`, `\f` or `\u0041` a word
/// starts (`"[default]\naws_secret_access_key = …"` holds a keyword at the start of a word). An
/// escaped backslash before the letter (`\\n`, a backslash then `n`) is read the same way: more
/// boundaries can only mean more is masked.
///
/// A byte that is itself escaped (the `n` of `\n`) starts nothing: a match there would leave a
/// lone backslash before the replacement, which is not JSON.
#[inline]
pub(crate) fn boundary_before(hay: &[u8], i: usize) -> bool {
    (i == 0 || !is_word(hay[i - 1]) || after_escape(hay, i)) && !escaped(hay, i)
}

/// Whether the byte at `i` follows an odd number of backslashes (up to
/// [`ESCAPE_CONTEXT`] of them are counted): it is the letter of a JSON escape.
#[inline]
pub(crate) fn escaped(hay: &[u8], i: usize) -> bool {
    let mut n = 0;
    while n < ESCAPE_CONTEXT && n < i && hay[i - 1 - n] == b'\\' {
        n += 1;
    }
    n % 2 == 1
}

/// If position `s` lies inside a JSON escape (its letter, or the hex digits of `\uXXXX`), the
/// position right after that escape. Reads bytes before `s` whatever the scan's floor, so the
/// answer does not depend on how the input was cut into chunks.
fn inside_escape(hay: &[u8], s: usize) -> Option<usize> {
    for k in 1..=5usize.min(s) {
        if hay[s - k] != b'\\' || escaped(hay, s - k) {
            continue;
        }
        return match hay.get(s - k + 1) {
            Some(b'u') => Some(s - k + 6),
            _ if k == 1 => Some(s + 1),
            _ => None,
        };
    }
    None
}

/// Whether a JSON string escape that reads as a letter or digit ends at `i`.
#[inline]
pub(crate) fn after_escape(hay: &[u8], i: usize) -> bool {
    (i >= 2 && hay[i - 2] == b'\\' && matches!(hay[i - 1], b'n' | b't' | b'r' | b'b' | b'f'))
        || (i >= 6
            && hay[i - 6] == b'\\'
            && hay[i - 5] == b'u'
            && hay[i - 4..i].iter().all(u8::is_ascii_hexdigit))
}

/// The input ended before a decision: no match at the real end, wait for more in a stream.
#[inline]
pub(crate) fn out_of_data(eof: bool, from: usize) -> Confirm {
    if eof {
        Confirm::No
    } else {
        Confirm::NeedMore { from }
    }
}

/// Counts bytes of `class` from `at`, up to `max`. Returns (count, hit_end_of_data).
#[inline]
pub(crate) fn run(hay: &[u8], at: usize, max: usize, class: impl Fn(u8) -> bool) -> (usize, bool) {
    let end = hay.len().min(at + max);
    let mut i = at;
    while i < end && class(hay[i]) {
        i += 1;
    }
    (i - at, i == hay.len())
}

/// The end of a value of `min..=max` bytes of `class` starting at `from`, for a match starting
/// at `start`; or the answer when there is none (too short or long, or cut off by the end of the
/// data in a stream that may still grow).
fn value_end(
    hay: &[u8],
    start: usize,
    from: usize,
    min: usize,
    max: usize,
    eof: bool,
    class: impl Fn(u8) -> bool,
) -> Result<usize, Confirm> {
    let (n, at_end) = run(hay, from, max + 1, class);
    if at_end && !eof && n <= max {
        return Err(Confirm::NeedMore { from: start });
    }
    if n < min || n > max {
        return Err(Confirm::No);
    }
    Ok(from + n)
}

/// A token of `prefix` (the anchor, at `at`) plus `min..=max` bytes of `class`, on ASCII word
/// boundaries.
fn token(
    hay: &[u8],
    at: usize,
    anchor_len: usize,
    min: usize,
    max: usize,
    eof: bool,
    class: impl Fn(u8) -> bool,
) -> Confirm {
    if !boundary_before(hay, at) {
        return Confirm::No;
    }
    let end = match value_end(hay, at, at + anchor_len, min, max, eof, class) {
        Ok(end) => end,
        Err(c) => return c,
    };
    // Right boundary: the next byte must not continue a word.
    if end < hay.len() && is_word(hay[end]) {
        return Confirm::No;
    }
    Confirm::whole(at, end)
}

fn b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The most bytes between a keyword and its value: quotes, spaces, `=` or `:`, escaped or not.
const MAX_SEPARATOR: usize = 24;

/// What the JSON escape at `i` (a backslash) stands for, and its length; `None` when it is cut
/// off by the end of the data.
fn escape_at(hay: &[u8], i: usize) -> Option<(u8, usize)> {
    let c = *hay.get(i + 1)?;
    if c != b'u' {
        return Some((c, 2));
    }
    let hex = hay.get(i + 2..i + 6)?;
    let text = std::str::from_utf8(hex).ok();
    match text.and_then(|t| u16::from_str_radix(t, 16).ok()) {
        Some(v) if v < 0x80 => Some((v as u8, 6)),
        // Not ASCII, or not an escape: nothing a separator is made of.
        _ => Some((0, 6)),
    }
}

/// After a keyword (`aws_secret_access_key`), a separator (`=`, `:`, quotes, spaces — also as
/// JSON escapes: `\"`, `\t`, `\u003d`, inside a JSON string) and the value of `min..=max`
/// bytes of `class`; only the value is masked. A `/` in the value may be written `\/`.
fn keyword_value(
    hay: &[u8],
    at: usize,
    anchor_len: usize,
    min: usize,
    max: usize,
    eof: bool,
    class: impl Fn(u8) -> bool,
) -> Confirm {
    if !boundary_before(hay, at) {
        return Confirm::No;
    }
    let mut i = at + anchor_len;
    let sep_end = hay.len().min(i + MAX_SEPARATOR);
    let mut saw_assign = false;
    while i < sep_end {
        let (b, n) = if hay[i] == b'\\' {
            match escape_at(hay, i) {
                Some((b'\\', 2)) => (b' ', 2),
                Some((b't', 2)) => (b' ', 2),
                Some(e) => e,
                None if eof => break,
                None => return Confirm::NeedMore { from: at },
            }
        } else {
            (hay[i], 1)
        };
        match b {
            b' ' | b'\t' | b'"' | b'\'' => {}
            b'=' | b':' => saw_assign = true,
            _ => break,
        }
        i += n;
    }
    if i >= hay.len() && !eof {
        return Confirm::NeedMore { from: at };
    }
    if !saw_assign {
        return Confirm::No;
    }
    // The value, counting `\/` as one `/`.
    let mut j = i;
    let mut n = 0;
    while j < hay.len() && n <= max {
        if class(hay[j]) {
            j += 1;
        } else if hay[j] == b'\\' && class(b'/') && hay.get(j + 1) == Some(&b'/') {
            j += 2;
        } else if hay[j] == b'\\' && j + 1 == hay.len() && !eof {
            return Confirm::NeedMore { from: at };
        } else {
            break;
        }
        n += 1;
    }
    if j == hay.len() && !eof && n <= max {
        return Confirm::NeedMore { from: at };
    }
    if n < min || n > max {
        return Confirm::No;
    }
    Confirm::Match {
        start: at,
        end: j,
        mask_start: i,
        mask_end: j,
    }
}

/// Confirms `rule` triggered by its anchor at `at` (length `anchor_len`). `lo` is the earliest
/// position a match may start at (the end of the previous match).
pub(crate) fn confirm_anchor(
    rule: Builtin,
    hay: &[u8],
    at: usize,
    anchor_len: usize,
    lo: usize,
    eof: bool,
) -> Confirm {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    match rule {
        Builtin::AwsAccessKeyId => token(hay, at, 4, 16, 16, eof, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit()
        }),
        Builtin::AwsSecretAccessKey => keyword_value(hay, at, anchor_len, 40, 40, eof, b64),
        Builtin::AwsSessionToken => {
            keyword_value(hay, at, anchor_len, 100, 2048, eof, |b| b64(b) || b == b'=')
        }
        Builtin::GoogleApiKey => token(hay, at, 4, 35, 35, eof, b64url),
        Builtin::GithubToken if anchor_len == 11 => token(hay, at, 11, 82, 82, eof, |b| {
            b.is_ascii_alphanumeric() || b == b'_'
        }),
        Builtin::GithubToken => token(hay, at, 4, 36, 251, eof, alnum),
        Builtin::GitlabToken => token(hay, at, 6, 20, 20, eof, b64url),
        Builtin::SlackToken => {
            if hay.len() < at + 5 {
                return out_of_data(eof, at);
            }
            if !matches!(hay[at + 3], b'b' | b'a' | b'p' | b'r' | b's') || hay[at + 4] != b'-' {
                return Confirm::No;
            }
            token(hay, at, 5, 10, 250, eof, |b| {
                b.is_ascii_alphanumeric() || b == b'-'
            })
        }
        Builtin::StripeKey => {
            // The anchor is `k_live_`/`k_test_`; the key starts one byte before, at `sk_`/`rk_`.
            if at == 0 || !matches!(hay[at - 1], b's' | b'r') {
                return Confirm::No;
            }
            token(hay, at - 1, 8, 10, 99, eof, alnum)
        }
        Builtin::SlackWebhook => slack_webhook(hay, at, lo, anchor_len, eof),
        Builtin::Jwt => jwt(hay, at, eof),
        Builtin::PrivateKey => pem(hay, at, eof),
        Builtin::DbPassword => db_password(hay, at, lo, eof, &DB_SCHEMES),
        Builtin::UrlPassword => db_password(hay, at, lo, eof, &URL_SCHEMES),
        _ => Confirm::No,
    }
}

fn slack_webhook(hay: &[u8], at: usize, lo: usize, anchor_len: usize, eof: bool) -> Confirm {
    // Mask the whole URL from its scheme when present.
    let start = ["https://", "http://"]
        .iter()
        .find(|s| at >= s.len() + lo && hay[at - s.len()..at] == *s.as_bytes())
        .map(|s| at - s.len())
        .unwrap_or(at);
    let body = at + anchor_len;
    let (n, at_end) = run(hay, body, 200, |b| b.is_ascii_alphanumeric() || b == b'/');
    if at_end && !eof {
        return Confirm::NeedMore { from: start };
    }
    let path = &hay[body..body + n];
    if path.iter().filter(|&&b| b == b'/').count() != 2 || n < 20 {
        return Confirm::No;
    }
    Confirm::whole(start, body + n)
}

/// `eyJ…` `.` `eyJ…` `.` signature: a JWS whose header and claims are JSON objects.
fn jwt(hay: &[u8], at: usize, eof: bool) -> Confirm {
    if !boundary_before(hay, at) {
        return Confirm::No;
    }
    let mut i = at;
    for (part, (min, max)) in [(0, (10, 4096)), (1, (10, 16384)), (2, (16, 2048))] {
        let (n, at_end) = run(hay, i, max + 1, b64url);
        if at_end && !eof {
            return Confirm::NeedMore { from: at };
        }
        if n < min || n > max {
            return Confirm::No;
        }
        if part == 1 && !hay[i..].starts_with(b"eyJ") {
            return Confirm::No;
        }
        i += n;
        if part < 2 {
            if i >= hay.len() {
                return out_of_data(eof, at);
            }
            if hay[i] != b'.' {
                return Confirm::No;
            }
            i += 1;
        }
    }
    Confirm::whole(at, i)
}

/// `-----BEGIN … PRIVATE KEY-----` to the matching `-----END … PRIVATE KEY-----`, at most
/// [`MAX_VALUE`] bytes (a longer block is masked up to that length).
fn pem(hay: &[u8], at: usize, eof: bool) -> Confirm {
    let head_end = hay.len().min(at + 64);
    let head = &hay[at..head_end];
    let Some(close) = find(head, b"-----", 11) else {
        return if head_end == hay.len() && !eof {
            Confirm::NeedMore { from: at }
        } else {
            Confirm::No
        };
    };
    let label = &head[11..close];
    if !(label.ends_with(b"PRIVATE KEY") || label == b"PGP PRIVATE KEY BLOCK") || label.len() > 40 {
        return Confirm::No;
    }
    let limit = hay.len().min(at + MAX_VALUE);
    let mut end_marker = b"-----END ".to_vec();
    end_marker.extend_from_slice(label);
    end_marker.extend_from_slice(b"-----");
    match memchr::memmem::find(&hay[at + close + 5..limit], &end_marker) {
        Some(k) => Confirm::whole(at, at + close + 5 + k + end_marker.len()),
        None => unterminated(at, at, limit, eof),
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    memchr::memmem::find(&hay[from..], needle).map(|i| i + from)
}

/// Database, broker and service schemes whose URLs carry credentials (`db-password`).
pub(crate) const DB_SCHEMES: [&[u8]; 22] = [
    b"postgresql",
    b"postgres",
    b"mysql",
    b"mariadb",
    b"mongodb+srv",
    b"mongodb",
    b"rediss",
    b"redis",
    b"amqps",
    b"amqp",
    b"mssql",
    b"sqlserver",
    b"jdbc:postgresql",
    b"jdbc:mysql",
    b"clickhouse",
    b"couchbases",
    b"couchbase",
    b"nats",
    b"kafka",
    b"mqtts",
    b"mqtt",
    b"cloudinary",
];

/// Web, file-transfer, mail and directory schemes (`url-password`): the password in
/// `https://user:PASSWORD@host` (a `.git-credentials` line, a proxy URL).
pub(crate) const URL_SCHEMES: [&[u8]; 12] = [
    b"https", b"http", b"sftp", b"ftps", b"ftp", b"smtps", b"smtp", b"ldaps", b"ldap", b"wss",
    b"ws", b"ssh",
];

/// `scheme://user:PASSWORD@host` for one of `schemes`: masks the password.
pub(crate) fn db_password(
    hay: &[u8],
    at: usize,
    lo: usize,
    eof: bool,
    schemes: &[&[u8]],
) -> Confirm {
    let Some(scheme) = schemes
        .iter()
        .find(|s| at >= s.len() + lo && hay[at - s.len()..at].eq_ignore_ascii_case(s))
    else {
        return Confirm::No;
    };
    let start = at - scheme.len();
    if !boundary_before(hay, start) {
        return Confirm::No;
    }
    let user_at = at + 3;
    let stop = |b: u8| {
        !matches!(
            b,
            b':' | b'@' | b'/' | b'"' | b'\'' | b' ' | b'\n' | b'\r' | b'\t' | b'\\' | b'<' | b'>'
        )
    };
    let (u, at_end) = run(hay, user_at, 129, stop);
    if at_end && !eof {
        return Confirm::NeedMore { from: start };
    }
    let colon = user_at + u;
    if u == 0 || u > 128 || colon >= hay.len() || hay[colon] != b':' {
        return Confirm::No;
    }
    let pw_at = colon + 1;
    let (p, at_end) = run(hay, pw_at, 129, stop);
    if at_end && !eof {
        return Confirm::NeedMore { from: start };
    }
    let at_sign = pw_at + p;
    if p == 0 || p > 128 || at_sign >= hay.len() || hay[at_sign] != b'@' {
        return Confirm::No;
    }
    Confirm::Match {
        start,
        end: at_sign,
        mask_start: pw_at,
        mask_end: at_sign,
    }
}

/// An email address around the `@` at `at`.
pub(crate) fn email(hay: &[u8], at: usize, lo: usize, eof: bool) -> Confirm {
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut s = at;
    let floor = lo.max(at.saturating_sub(64));
    while s > floor && local(hay[s - 1]) {
        s -= 1;
    }
    // A JSON escape before the address (`\njane@…`, `\u000ajane@…`) is not part of it.
    if let Some(after) = inside_escape(hay, s) {
        s = after.min(at);
    }
    // Leading dots are not part of an address.
    while s < at && hay[s] == b'.' {
        s += 1;
    }
    if s == at {
        return Confirm::No;
    }
    let domain = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    let (n, at_end) = run(hay, at + 1, 254, domain);
    if at_end && !eof {
        return Confirm::NeedMore { from: s };
    }
    if n == 0 || n > 253 {
        return Confirm::No;
    }
    let mut d = &hay[at + 1..at + 1 + n];
    while d.last() == Some(&b'.') || d.last() == Some(&b'-') {
        d = &d[..d.len() - 1];
    }
    let Some(dot) = d.iter().rposition(|&b| b == b'.') else {
        return Confirm::No;
    };
    let tld = &d[dot + 1..];
    if dot == 0 || tld.len() < 2 || tld.len() > 24 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return Confirm::No;
    }
    Confirm::whole(s, at + 1 + d.len())
}

/// Digits and the separators a card number or SSN may use.
#[inline]
pub(crate) fn is_digitish(b: u8) -> bool {
    b.is_ascii_digit() || b == b' ' || b == b'-'
}

/// Card numbers (Luhn, known prefixes), US SSNs and IBANs (mod 97), triggered at the first digit
/// of a run at `at`.
pub(crate) fn digits(hay: &[u8], at: usize, lo: usize, eof: bool, rules: DigitRules) -> Confirm {
    // IBAN: a country code and check digits at most 34 bytes before the digit run (the BBAN
    // may hold letters before its long run of digits).
    if rules.iban {
        let floor = lo.max(at.saturating_sub(34));
        let mut k = at.saturating_sub(2);
        while k >= floor && k + 4 <= hay.len() {
            let h = &hay[k..k + 4];
            if h[0].is_ascii_uppercase()
                && h[1].is_ascii_uppercase()
                && h[2].is_ascii_digit()
                && h[3].is_ascii_digit()
            {
                match iban(hay, k, eof) {
                    Confirm::No => {}
                    other => return other,
                }
            }
            if k == 0 {
                break;
            }
            k -= 1;
        }
    }
    if !boundary_before(hay, at) {
        return Confirm::No;
    }
    let (n, at_end) = run(hay, at, 24, is_digitish);
    if at_end && !eof {
        return Confirm::NeedMore {
            from: at.saturating_sub(2).max(lo),
        };
    }
    let mut span = &hay[at..at + n];
    while matches!(span.last(), Some(b' ' | b'-')) {
        span = &span[..span.len() - 1];
    }
    let end = at + span.len();
    if end < hay.len() && is_word(hay[end]) {
        return Confirm::No;
    }
    if rules.ssn && span.len() == 11 && ssn(span) {
        return Confirm::whole(at, end);
    }
    // Not the digits of a resource id such as `i-0123…` or `vol-0123…`.
    let id_suffix = at >= 2 && hay[at - 1] == b'-' && hay[at - 2].is_ascii_alphabetic();
    if rules.card && !id_suffix && card(span) {
        return Confirm::whole(at, end);
    }
    Confirm::No
}

/// Which digit rules are on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DigitRules {
    pub(crate) card: bool,
    pub(crate) ssn: bool,
    pub(crate) iban: bool,
}

fn ssn(s: &[u8]) -> bool {
    if s[3] != b'-' || s[6] != b'-' {
        return false;
    }
    let d = |r: std::ops::Range<usize>| s[r].iter().all(u8::is_ascii_digit);
    if !(d(0..3) && d(4..6) && d(7..11)) {
        return false;
    }
    let area = &s[0..3];
    area != b"000" && area != b"666" && area[0] != b'9' && &s[4..6] != b"00" && &s[7..11] != b"0000"
}

/// 13–19 digits, separated only by single spaces or dashes in groups, with a known issuer prefix
/// and a valid Luhn check digit.
fn card(s: &[u8]) -> bool {
    let mut digits = [0u8; 19];
    let mut n = 0;
    let mut prev_sep = true;
    let mut sep: Option<u8> = None;
    for &b in s {
        if b.is_ascii_digit() {
            if n == 19 {
                return false;
            }
            digits[n] = b - b'0';
            n += 1;
            prev_sep = false;
        } else {
            // One kind of separator, never doubled.
            if prev_sep || sep.is_some_and(|x| x != b) {
                return false;
            }
            sep = Some(b);
            prev_sep = true;
        }
    }
    if !(13..=19).contains(&n) {
        return false;
    }
    // With separators, the groups must be those printed on cards: fours (the last one shorter),
    // or 4-6-5 / 4-6-4. This keeps UUIDs and similar ids out.
    if sep.is_some() {
        let groups: Vec<usize> = s.split(|b| !b.is_ascii_digit()).map(<[u8]>::len).collect();
        let (last, head) = groups.split_last().unwrap_or((&0, &[]));
        let fours = head.iter().all(|&g| g == 4) && (1..=4).contains(last);
        if !(fours || groups == [4, 6, 5] || groups == [4, 6, 4]) {
            return false;
        }
    }
    let d = &digits[..n];
    let prefix2 = d[0] * 10 + d[1];
    let prefix4 = prefix2 as u32 * 100 + (d[2] * 10 + d[3]) as u32;
    let known = d[0] == 4
        || (51..=55).contains(&prefix2)
        || (2221..=2720).contains(&prefix4)
        || prefix2 == 34
        || prefix2 == 37
        || prefix4 == 6011
        || prefix2 == 65
        || (644..=649).contains(&(prefix4 / 10))
        || prefix2 == 35
        || prefix2 == 36
        || prefix2 == 38
        || (300..=305).contains(&(prefix4 / 10));
    known && luhn(d)
}

/// The Luhn checksum over digit values.
pub(crate) fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut v = x as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// IBAN lengths by country (ISO 13616 registry).
fn iban_length(cc: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VG", 24),
        (b"XK", 20),
    ];
    TABLE.iter().find(|(c, _)| &c[..] == cc).map(|(_, n)| *n)
}

/// An IBAN starting at `at` (country code), compact or in groups of four separated by spaces.
fn iban(hay: &[u8], at: usize, eof: bool) -> Confirm {
    if !boundary_before(hay, at) {
        return Confirm::No;
    }
    let Some(len) = iban_length(&hay[at..at + 2]) else {
        return Confirm::No;
    };
    let mut chars = Vec::with_capacity(34);
    let mut i = at;
    let limit = hay.len().min(at + 42);
    while i < limit && chars.len() < len {
        let b = hay[i];
        if b.is_ascii_uppercase() || b.is_ascii_digit() {
            chars.push(b);
            i += 1;
        } else if b == b' '
            && chars.len() % 4 == 0
            && i + 1 < hay.len()
            && hay[i + 1].is_ascii_alphanumeric()
        {
            i += 1;
        } else {
            break;
        }
    }
    if chars.len() < len {
        return if i == hay.len() && !eof {
            Confirm::NeedMore { from: at }
        } else {
            Confirm::No
        };
    }
    if i < hay.len() && is_word(hay[i]) {
        return Confirm::No;
    }
    if i == hay.len() && !eof {
        return Confirm::NeedMore { from: at };
    }
    // Move the first four characters to the end; letters count as 10..35; mod 97 must be 1.
    let mut rem = 0u32;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let v = if c.is_ascii_digit() {
            (c - b'0') as u32
        } else {
            (c - b'A') as u32 + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    if rem == 1 {
        Confirm::whole(at, i)
    } else {
        Confirm::No
    }
}

/// A JSON member `"Name": "value"` whose name was found at `at` (the name without quotes):
/// masks the string value (not the quotes), escapes included. Non-string values are left alone.
pub(crate) fn json_field(hay: &[u8], at: usize, name_len: usize, lo: usize, eof: bool) -> Confirm {
    if at == 0 || at <= lo || hay[at - 1] != b'"' {
        return Confirm::No;
    }
    if at >= 2 && hay[at - 2] == b'\\' {
        return if at - 1 > lo {
            nested_json_field(hay, at, name_len, eof)
        } else {
            Confirm::No
        };
    }
    let mut i = at + name_len;
    if i >= hay.len() {
        return out_of_data(eof, at - 1);
    }
    if hay[i] != b'"' {
        return Confirm::No;
    }
    i += 1;
    let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    while i < hay.len() && ws(hay[i]) {
        i += 1;
    }
    if i < hay.len() && hay[i] != b':' {
        return Confirm::No;
    }
    i += 1;
    while i < hay.len() && ws(hay[i]) {
        i += 1;
    }
    if i >= hay.len() {
        return out_of_data(eof, at - 1);
    }
    if hay[i] != b'"' {
        return Confirm::No;
    }
    let v = i + 1;
    let limit = hay.len().min(v + MAX_VALUE);
    let mut j = v;
    while j < limit {
        match hay[j] {
            b'\\' => j += 2,
            b'"' => break,
            _ => j += 1,
        }
    }
    if j > limit {
        return straddled(at - 1, v, j, hay.len(), eof);
    }
    if j >= limit {
        return unterminated(at - 1, v, limit, eof);
    }
    if j == v {
        return Confirm::No;
    }
    Confirm::Match {
        start: at - 1,
        end: j,
        mask_start: v,
        mask_end: j,
    }
}

/// A JSON member inside a JSON string (`"{\"password\": \"hunter2\"}"`, JSON stored as a
/// string value), whose name was found at `at` after its escaped quote: masks the inner string
/// value, reading the outer string's escapes to find where the inner one ends.
fn nested_json_field(hay: &[u8], at: usize, name_len: usize, eof: bool) -> Confirm {
    let start = at - 2;
    let mut i = at + name_len;
    // `\"`, spaces (or escaped whitespace), `:`, spaces, `\"`.
    let expect_quote = |i: &mut usize| -> Result<(), Confirm> {
        if *i + 2 > hay.len() {
            return Err(out_of_data(eof, start));
        }
        if &hay[*i..*i + 2] != b"\\\"" {
            return Err(Confirm::No);
        }
        *i += 2;
        Ok(())
    };
    let skip_ws = |i: &mut usize| {
        let limit = hay.len().min(*i + MAX_SEPARATOR);
        while *i < limit {
            if hay[*i] == b' ' {
                *i += 1;
            } else if hay[*i] == b'\\' && matches!(hay.get(*i + 1), Some(b'n' | b't' | b'r')) {
                *i += 2;
            } else {
                break;
            }
        }
    };
    if let Err(c) = expect_quote(&mut i) {
        return c;
    }
    skip_ws(&mut i);
    if i >= hay.len() {
        return out_of_data(eof, start);
    }
    if hay[i] != b':' {
        return Confirm::No;
    }
    i += 1;
    skip_ws(&mut i);
    if let Err(c) = expect_quote(&mut i) {
        return c;
    }
    let v = i;
    let limit = hay.len().min(v + MAX_VALUE);
    let mut j = v;
    // Whether the inner string's last character was its own escape (a backslash).
    let mut inner_escape = false;
    while j < limit {
        match hay[j] {
            b'\\' => {
                let Some(&c) = hay.get(j + 1) else {
                    // An escape cut off by the end of the data.
                    return unterminated(start, v, hay.len(), eof);
                };
                if c == b'"' && !inner_escape {
                    // The inner string's closing quote.
                    return if j == v {
                        Confirm::No
                    } else {
                        Confirm::Match {
                            start,
                            end: j,
                            mask_start: v,
                            mask_end: j,
                        }
                    };
                }
                inner_escape = c == b'\\' && !inner_escape;
                j += 2;
                if j > limit {
                    return straddled(start, v, j, hay.len(), eof);
                }
            }
            // The outer string ends: the inner value is cut off there; mask what there is.
            b'"' if j > v => {
                return Confirm::Match {
                    start,
                    end: j,
                    mask_start: v,
                    mask_end: j,
                };
            }
            b'"' => return Confirm::No,
            _ => {
                inner_escape = false;
                j += 1;
            }
        }
    }
    unterminated(start, v, limit, eof)
}

/// A value cut at its cap where an escape straddles the cap (its backslash before, its letter
/// after): masked through the escape's end at `j`, so no lone backslash or escaped quote is left.
fn straddled(start: usize, v: usize, j: usize, len: usize, eof: bool) -> Confirm {
    if j <= len || eof {
        let end = j.min(len);
        Confirm::Match {
            start,
            end,
            mask_start: v,
            mask_end: end,
        }
    } else {
        Confirm::NeedMore { from: start }
    }
}

/// A value opened at `v` (for a match from `start`) whose end was not found before `limit`:
/// longer than [`MAX_VALUE`] or cut off by the end of the input, it is masked to there, never
/// passed through; in a stream that may still grow, wait for more.
fn unterminated(start: usize, v: usize, limit: usize, eof: bool) -> Confirm {
    if limit == v + MAX_VALUE || eof {
        Confirm::Match {
            start,
            end: limit,
            mask_start: v,
            mask_end: limit,
        }
    } else {
        Confirm::NeedMore { from: start }
    }
}

/// An XML element `<Name>value</Name>` whose name was found at `at`: masks the text content.
pub(crate) fn xml_field(hay: &[u8], at: usize, name_len: usize, lo: usize, eof: bool) -> Confirm {
    if at == 0 || at <= lo || hay[at - 1] != b'<' {
        return Confirm::No;
    }
    let open_end = at + name_len;
    if open_end >= hay.len() {
        return out_of_data(eof, at - 1);
    }
    if hay[open_end] != b'>' {
        return Confirm::No;
    }
    let v = open_end + 1;
    let limit = hay.len().min(v + MAX_VALUE);
    match memchr::memchr(b'<', &hay[v..limit]) {
        Some(k) => {
            let close = v + k;
            let mut tag = b"</".to_vec();
            tag.extend_from_slice(&hay[at..open_end]);
            tag.push(b'>');
            if hay.len() < close + tag.len() {
                return out_of_data(eof, at - 1);
            }
            if hay[close..close + tag.len()] != tag[..] || k == 0 {
                return Confirm::No;
            }
            Confirm::Match {
                start: at - 1,
                end: close,
                mask_start: v,
                mask_end: close,
            }
        }
        None => unterminated(at - 1, v, limit, eof),
    }
}
