//! IAM-style wildcards: `*` matches any run of characters (including none), `?` exactly one.

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    pattern: String,
    case_insensitive: bool,
    has_wildcard: bool,
}

impl Glob {
    /// A pattern matched exactly as written (ARNs, URIs, subjects, tool names).
    pub(crate) fn new(pattern: &str) -> Self {
        Glob {
            pattern: pattern.to_string(),
            case_insensitive: false,
            has_wildcard: pattern.contains(['*', '?']),
        }
    }

    /// A pattern matched ignoring ASCII case (IAM action names are case-insensitive).
    pub(crate) fn ignore_case(pattern: &str) -> Self {
        Glob {
            pattern: pattern.to_ascii_lowercase(),
            case_insensitive: true,
            has_wildcard: pattern.contains(['*', '?']),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.pattern
    }

    pub(crate) fn has_wildcard(&self) -> bool {
        self.has_wildcard
    }

    /// Whether the pattern is `*` alone (matches anything, even an unknown value).
    pub(crate) fn is_any(&self) -> bool {
        self.pattern == "*"
    }

    /// Whether `text` matches. Text of a case-insensitive pattern must already be lowercase.
    pub(crate) fn matches(&self, text: &str) -> bool {
        if !self.has_wildcard {
            return if self.case_insensitive {
                self.pattern.eq_ignore_ascii_case(text)
            } else {
                self.pattern == text
            };
        }
        wildcard_match(
            self.pattern.as_bytes(),
            text.as_bytes(),
            self.case_insensitive,
        )
    }
}

/// Linear-time wildcard matching (greedy with one backtrack point, as in shell globbing).
fn wildcard_match(p: &[u8], t: &[u8], ci: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if ci {
            a == b.to_ascii_lowercase()
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || (p[pi] != b'*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let g = Glob::ignore_case("ec2:Describe*");
        assert!(g.matches("ec2:describeinstances"));
        assert!(g.matches("EC2:DescribeInstances"));
        assert!(!g.matches("ec2:terminateinstances"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*b*c").matches("aXXbYYc"));
        assert!(!Glob::new("a*b*c").matches("aXXbYY"));
        assert!(Glob::new("a?c").matches("abc"));
        assert!(!Glob::new("a?c").matches("ac"));
        assert!(Glob::new("arn:aws:s3:::bucket/*").matches("arn:aws:s3:::bucket/a/b"));
        assert!(!Glob::new("arn:aws:s3:::bucket/*").matches("arn:aws:s3:::bucket2/a"));
        assert!(!Glob::new("Exact").matches("exact"));
        assert!(Glob::new("**a").matches("a"));
    }
}
