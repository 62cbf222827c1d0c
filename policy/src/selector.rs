//! Endpoint selectors: Kubernetes label selectors over Cilium labels.
//!
//! Exists because every subject and peer of a policy is a selector, and
//! matching must follow Kubernetes semantics (`NotIn` matches a missing key)
//! with Cilium's label sources (`any:` matches every source).

use std::fmt;

use crate::labels::{LabelSet, POD_NAMESPACE_KEY, SOURCE_ANY, SOURCE_K8S, SOURCE_RESERVED};

/// A selector operator (case-sensitive in the YAML, as in Kubernetes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// Key present with a value in the list (`matchLabels` entries are `In` with one value).
    In,
    /// Key absent, or its value not in the list.
    NotIn,
    /// Key present.
    Exists,
    /// Key absent.
    DoesNotExist,
}

impl Operator {
    /// Parses the exact spelling Kubernetes accepts.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "In" => Self::In,
            "NotIn" => Self::NotIn,
            "Exists" => Self::Exists,
            "DoesNotExist" => Self::DoesNotExist,
            _ => return None,
        })
    }
}

/// One requirement of a selector; all requirements of a selector are ANDed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    /// Label source the key must come from (`any` for all sources).
    pub source: String,
    /// Label key.
    pub key: String,
    /// The operator.
    pub op: Operator,
    /// Values for `In` / `NotIn` (sorted).
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        match self.op {
            Operator::In => labels
                .values(&self.source, &self.key)
                .any(|v| self.values.iter().any(|x| x == v)),
            Operator::NotIn => !labels
                .values(&self.source, &self.key)
                .any(|v| self.values.iter().any(|x| x == v)),
            Operator::Exists => labels.has(&self.source, &self.key),
            Operator::DoesNotExist => !labels.has(&self.source, &self.key),
        }
    }
}

/// A label selector after Cilium's namespace rewriting: the AND of its
/// requirements. An empty selector matches everything it is applied to.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    /// The requirements (ANDed).
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether a requirement uses `key` with source `k8s` or `any`
    /// (Cilium's `HasKey(k8s:key) || HasKey(any:key)`).
    pub fn mentions_k8s_or_any(&self, key: &str) -> bool {
        self.requirements
            .iter()
            .any(|r| r.key == key && (r.source == SOURCE_K8S || r.source == SOURCE_ANY))
    }

    /// Whether any requirement uses a `reserved:` key.
    pub fn has_reserved_key(&self) -> bool {
        self.requirements
            .iter()
            .any(|r| r.source == SOURCE_RESERVED)
    }

    /// Cilium's `AddMatch`: sets `source:key = value`, replacing an
    /// existing equality on the same source and key.
    pub fn add_match(&mut self, source: &str, key: &str, value: &str) {
        self.requirements.retain(|r| {
            !(r.source == source && r.key == key && r.op == Operator::In && r.values.len() == 1)
        });
        self.requirements.push(Requirement {
            source: source.into(),
            key: key.into(),
            op: Operator::In,
            values: vec![value.into()],
        });
        self.requirements.sort();
    }

    /// Adds `source:key Exists`.
    pub fn add_exists(&mut self, source: &str, key: &str) {
        self.requirements.push(Requirement {
            source: source.into(),
            key: key.into(),
            op: Operator::Exists,
            values: vec![],
        });
        self.requirements.sort();
    }

    /// Rewrites a CNP peer selector (`fromEndpoints`/`toEndpoints`) for the
    /// policy namespace `ns`, or a CCNP one when `ns` is `None`, following
    /// Cilium 1.16 `getEndpointSelector` (reference section 3.3).
    pub fn scope_peer(&mut self, ns: Option<&str>) {
        if self.has_reserved_key() || self.mentions_k8s_or_any(POD_NAMESPACE_KEY) {
            return;
        }
        match ns {
            Some(ns) => self.add_match(SOURCE_K8S, POD_NAMESPACE_KEY, ns),
            None => self.add_exists(SOURCE_K8S, POD_NAMESPACE_KEY),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{} (everything)");
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match r.op {
                Operator::In if r.values.len() == 1 => {
                    write!(f, "{}:{}={}", r.source, r.key, r.values[0])?
                }
                Operator::In => write!(f, "{}:{} in ({})", r.source, r.key, r.values.join(","))?,
                Operator::NotIn => {
                    write!(f, "{}:{} notin ({})", r.source, r.key, r.values.join(","))?
                }
                Operator::Exists => write!(f, "{}:{} exists", r.source, r.key)?,
                Operator::DoesNotExist => write!(f, "!{}:{}", r.source, r.key)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Label;

    fn set(pairs: &[(&str, &str, &str)]) -> LabelSet {
        LabelSet::new(
            pairs
                .iter()
                .map(|(s, k, v)| Label {
                    source: (*s).into(),
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
        )
    }

    fn req(source: &str, key: &str, op: Operator, values: &[&str]) -> Requirement {
        Requirement {
            source: source.into(),
            key: key.into(),
            op,
            values: values.iter().map(|v| (*v).into()).collect(),
        }
    }

    #[test]
    fn operators_follow_kubernetes() {
        let l = set(&[("k8s", "org", "empire")]);
        assert!(req("any", "org", Operator::In, &["empire"]).matches(&l));
        assert!(!req("any", "org", Operator::In, &["Empire"]).matches(&l));
        assert!(
            req("any", "class", Operator::NotIn, &["x"]).matches(&l),
            "missing key matches NotIn"
        );
        assert!(!req("any", "org", Operator::NotIn, &["empire"]).matches(&l));
        assert!(req("k8s", "org", Operator::Exists, &[]).matches(&l));
        assert!(!req("container", "org", Operator::Exists, &[]).matches(&l));
        assert!(req("any", "x", Operator::DoesNotExist, &[]).matches(&l));
    }

    #[test]
    fn operator_spelling_is_case_sensitive() {
        assert_eq!(Operator::parse("In"), Some(Operator::In));
        assert_eq!(Operator::parse("in"), None);
        assert_eq!(Operator::parse("notin"), None);
    }

    #[test]
    fn peer_scoping() {
        let mut s = Selector::default();
        s.scope_peer(Some("default"));
        assert_eq!(s.requirements.len(), 1);
        assert_eq!(s.requirements[0].values, vec!["default".to_string()]);

        let mut s = Selector {
            requirements: vec![req("any", POD_NAMESPACE_KEY, Operator::NotIn, &["x"])],
        };
        s.scope_peer(Some("default"));
        assert_eq!(
            s.requirements.len(),
            1,
            "explicit namespace key is left alone"
        );

        let mut s = Selector {
            requirements: vec![req("reserved", "host", Operator::Exists, &[])],
        };
        s.scope_peer(None);
        assert_eq!(s.requirements.len(), 1, "reserved selectors are left alone");

        let mut s = Selector::default();
        s.scope_peer(None);
        assert_eq!(s.requirements[0].op, Operator::Exists);
    }
}
