//! Cilium DNS rules (`rules.dns`: `matchName`, `matchPattern`).
//!
//! Exists because DNS L7 rules decide which queries the DNS proxy answers;
//! names compare case-insensitively with an implied trailing dot, and `*`
//! in a pattern matches DNS characters within one label.

use std::fmt;

use crate::model::Origin;

/// One item of `rules.dns`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsRule {
    /// Where the rule is.
    pub origin: Origin,
    /// `matchName`, lowercased, with a trailing dot.
    pub match_name: Option<String>,
    /// `matchPattern`, lowercased, with a trailing dot.
    pub match_pattern: Option<String>,
}

/// Lowercases a DNS name and makes it fully qualified.
pub fn normalize(name: &str) -> String {
    let mut n = name.trim().to_ascii_lowercase();
    if !n.ends_with('.') {
        n.push('.');
    }
    n
}

fn is_dns_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Checks a `matchName` (Cilium's allowed characters).
pub fn validate_name(s: &str) -> Result<(), String> {
    let t = s.trim_end_matches('.');
    if t.is_empty()
        || !t
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(is_dns_char))
    {
        return Err(format!(
            "invalid matchName {s:?}: use letters, digits, '-', '_' and dots"
        ));
    }
    Ok(())
}

/// Checks a `matchPattern` (DNS characters, dots and `*`).
pub fn validate_pattern(s: &str) -> Result<(), String> {
    let t = s.trim_end_matches('.');
    if t == "*" {
        return Ok(());
    }
    if t.is_empty()
        || !t
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|c| is_dns_char(c) || c == b'*'))
    {
        return Err(format!(
            "invalid matchPattern {s:?}: use letters, digits, '-', '_', '*' and dots"
        ));
    }
    Ok(())
}

fn glob_label(pat: &[u8], s: &[u8]) -> bool {
    // dp[j]: pat[..i] matches s[..j]; O(len(pat) * len(s)).
    let mut dp = vec![false; s.len() + 1];
    dp[0] = true;
    for &pc in pat {
        let mut next = vec![false; s.len() + 1];
        if pc == b'*' {
            next[0] = dp[0];
            for j in 1..=s.len() {
                next[j] = dp[j] || (next[j - 1] && is_dns_char(s[j - 1]));
            }
        } else {
            for j in 1..=s.len() {
                next[j] = dp[j - 1] && s[j - 1] == pc;
            }
        }
        dp = next;
    }
    dp[s.len()]
}

/// Whether a (normalised) pattern matches a (normalised) name.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*." {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    p.len() == n.len()
        && p.iter()
            .zip(&n)
            .all(|(p, n)| p.len() <= 255 && glob_label(p.as_bytes(), n.as_bytes()))
}

impl DnsRule {
    /// Whether the query name is allowed by this rule.
    pub fn matches(&self, query: &str) -> bool {
        let q = normalize(query);
        self.match_name.as_ref().is_some_and(|n| *n == q)
            || self
                .match_pattern
                .as_ref()
                .is_some_and(|p| pattern_matches(p, &q))
    }
}

impl fmt::Display for DnsRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.match_name, &self.match_pattern) {
            (Some(n), Some(p)) => write!(f, "matchName {n} or matchPattern {p}"),
            (Some(n), None) => write!(f, "matchName {n}"),
            (None, Some(p)) => write!(f, "matchPattern {p}"),
            (None, None) => f.write_str("nothing"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> DnsRule {
        DnsRule {
            origin: Origin::default(),
            match_name: None,
            match_pattern: Some(normalize(p)),
        }
    }

    #[test]
    fn pattern_semantics() {
        assert!(pat("*").matches("anything.example.com"));
        assert!(pat("*.cilium.io").matches("sub.cilium.io"));
        assert!(!pat("*.cilium.io").matches("cilium.io"));
        assert!(!pat("*.cilium.io").matches("sub.sub.cilium.io"));
        assert!(pat("part*ial.com").matches("partial.com"));
        assert!(pat("*.cilium.io").matches("SUB.Cilium.IO."));
        let n = DnsRule {
            origin: Origin::default(),
            match_name: Some(normalize("Cilium.io")),
            match_pattern: None,
        };
        assert!(n.matches("cilium.io."));
        assert!(!n.matches("www.cilium.io"));
    }

    #[test]
    fn validation() {
        assert!(validate_name("cilium.io").is_ok());
        assert!(validate_name("bad name").is_err());
        assert!(validate_pattern("*.*.svc.cluster.local.").is_ok());
        assert!(validate_pattern("a..b").is_err());
    }
}
