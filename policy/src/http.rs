//! Cilium HTTP rules (`rules.http`) and how one request is matched.
//!
//! Exists because the L7 decision must follow Envoy as Cilium configures it:
//! every set field of one rule must match (AND), rules are ORed, regexes are
//! RE2 full-string, header names are case-insensitive, values exact.

use std::fmt;

use crate::model::Origin;
use crate::re2::FullMatcher;

/// One HTTP request as traced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request-target, query string included.
    pub path: String,
    /// The `:authority` / `Host` value, if sent.
    pub host: Option<String>,
    /// Headers as (name, value).
    pub headers: Vec<(String, String)>,
}

/// A header constraint from `headers` or `headerMatches`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderRequirement {
    /// Header name (compared case-insensitively).
    pub name: String,
    /// Required exact value; `None`: the header must be present.
    pub value: Option<String>,
    /// `mismatch: LOG`: a mismatch is logged and the rule still matches.
    pub log_only: bool,
}

impl HeaderRequirement {
    /// Whether the request satisfies the requirement (ignoring `log_only`).
    pub fn satisfied_by(&self, req: &HttpRequest) -> bool {
        let mut found = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(&self.name));
        match &self.value {
            None => found.next().is_some(),
            Some(v) => found.any(|(_, x)| x == v),
        }
    }
}

impl fmt::Display for HeaderRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "header {}: {}", self.name, v)?,
            None => write!(f, "header {} present", self.name)?,
        }
        if self.log_only {
            f.write_str(" (mismatch only logged)")?;
        }
        Ok(())
    }
}

/// One item of `rules.http`.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRule {
    /// Where the rule is.
    pub origin: Origin,
    /// `method` regex (absent: any method).
    pub method: Option<FullMatcher>,
    /// `path` regex (absent: any path).
    pub path: Option<FullMatcher>,
    /// `host` regex (absent: any host).
    pub host: Option<FullMatcher>,
    /// `headers` and `headerMatches`.
    pub headers: Vec<HeaderRequirement>,
}

impl HttpRule {
    /// Whether the rule can be decided from the request line alone (no host
    /// or header constraint that could fail).
    pub fn request_line_only(&self) -> bool {
        self.host.is_none() && self.headers.iter().all(|h| h.log_only)
    }

    /// Whether `req` satisfies every constraint of the rule.
    pub fn matches(&self, req: &HttpRequest) -> bool {
        self.method.as_ref().is_none_or(|m| m.is_match(&req.method))
            && self.path.as_ref().is_none_or(|m| m.is_match(&req.path))
            && self
                .host
                .as_ref()
                .is_none_or(|m| m.is_match(req.host.as_deref().unwrap_or("")))
            && self
                .headers
                .iter()
                .all(|h| h.log_only || h.satisfied_by(req))
    }
}

impl fmt::Display for HttpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        parts.push(format!(
            "method {}",
            self.method.as_ref().map_or("<any>", |m| m.pattern())
        ));
        parts.push(format!(
            "path {}",
            self.path.as_ref().map_or("<any>", |m| m.pattern())
        ));
        if let Some(h) = &self.host {
            parts.push(format!("host {}", h.pattern()));
        }
        for h in &self.headers {
            parts.push(h.to_string());
        }
        f.write_str(&parts.join(", "))
    }
}

/// Parses a Cilium `headers` string: `"Name"` or `"Name: value"`, split at
/// the first space, a trailing `:` removed from the name.
pub fn parse_header_string(s: &str) -> HeaderRequirement {
    let (name, value) = match s.split_once(' ') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (s, None),
    };
    HeaderRequirement {
        name: name.strip_suffix(':').unwrap_or(name).to_string(),
        value,
        log_only: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(method: Option<&str>, path: Option<&str>) -> HttpRule {
        HttpRule {
            origin: Origin::default(),
            method: method.map(|m| FullMatcher::new(m).unwrap()),
            path: path.map(|p| FullMatcher::new(p).unwrap()),
            host: None,
            headers: vec![],
        }
    }

    fn req(m: &str, p: &str) -> HttpRequest {
        HttpRequest {
            method: m.into(),
            path: p.into(),
            ..Default::default()
        }
    }

    #[test]
    fn fields_are_anded_and_absent_means_any() {
        let r = rule(Some("GET"), Some("/a"));
        assert!(r.matches(&req("GET", "/a")));
        assert!(!r.matches(&req("POST", "/a")));
        assert!(
            !r.matches(&req("GET", "/a?x=1")),
            "query string is part of the path"
        );
        assert!(!r.matches(&req("GET", "/a/")));
        assert!(!r.matches(&req("GET", "//a")));
        assert!(rule(None, Some("/a")).matches(&req("DELETE", "/a")));
        assert!(rule(None, None).matches(&req("X", "/anything")));
    }

    #[test]
    fn header_strings_and_matching() {
        let h = parse_header_string("X-My-Header: true");
        assert_eq!(h.name, "X-My-Header");
        assert_eq!(h.value.as_deref(), Some("true"));
        let p = parse_header_string("X-Token");
        assert_eq!(p.value, None);
        let mut r = req("GET", "/");
        r.headers.push(("x-my-header".into(), "true".into()));
        assert!(h.satisfied_by(&r), "names are case-insensitive");
        r.headers[0].1 = "True".into();
        assert!(!h.satisfied_by(&r), "values are exact");
        assert!(!p.satisfied_by(&r));
    }

    #[test]
    fn host_includes_port() {
        let mut r = rule(None, None);
        r.host = Some(FullMatcher::new("api.example.com").unwrap());
        let mut q = req("GET", "/");
        q.host = Some("api.example.com:8080".into());
        assert!(!r.matches(&q));
        q.host = Some("api.example.com".into());
        assert!(r.matches(&q));
        assert!(!r.request_line_only());
    }
}
