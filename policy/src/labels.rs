//! Cilium labels: `source:key=value`, label sets, and key validation.
//!
//! Exists because selectors match on labels with a *source* (`k8s`,
//! `reserved`, `any`, ...) and Cilium's key syntax and normalisation must be
//! reproduced exactly for policies to select the same endpoints.

use std::fmt;

/// Label source of Kubernetes-derived labels.
pub const SOURCE_K8S: &str = "k8s";
/// Label source of Cilium's reserved identities.
pub const SOURCE_RESERVED: &str = "reserved";
/// Selector source that matches labels of any source.
pub const SOURCE_ANY: &str = "any";
/// The namespace label key every pod carries.
pub const POD_NAMESPACE_KEY: &str = "io.kubernetes.pod.namespace";
/// The service-account label key.
pub const SERVICE_ACCOUNT_KEY: &str = "io.cilium.k8s.policy.serviceaccount";
/// The cluster-name label key.
pub const CLUSTER_KEY: &str = "io.cilium.k8s.policy.cluster";
/// Prefix of namespace labels copied onto pods.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

/// One label of an endpoint or identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Where the label comes from (`k8s`, `reserved`, ...).
    pub source: String,
    /// The key without the source.
    pub key: String,
    /// The value (empty for reserved labels).
    pub value: String,
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.source, self.key)
        } else {
            write!(f, "{}:{}={}", self.source, self.key, self.value)
        }
    }
}

/// A sorted, de-duplicated set of labels: the input of identity allocation
/// and selector matching.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSet {
    labels: Vec<Label>,
}

impl LabelSet {
    /// Builds a set from labels (sorted; a later duplicate key of the same source wins).
    pub fn new(mut labels: Vec<Label>) -> Self {
        labels.sort();
        labels.dedup_by(|b, a| a.source == b.source && a.key == b.key);
        Self { labels }
    }

    /// The labels, sorted by source, key, value.
    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.labels.iter()
    }

    /// Values of labels with `key` whose source matches `source` (`any` matches all).
    pub fn values<'a>(&'a self, source: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
        self.labels
            .iter()
            .filter(move |l| l.key == key && (source == SOURCE_ANY || l.source == source))
            .map(|l| l.value.as_str())
    }

    /// Whether a label with `key` from `source` (or any source) exists.
    pub fn has(&self, source: &str, key: &str) -> bool {
        self.values(source, key).next().is_some()
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in self.labels.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{l}")?;
        }
        Ok(())
    }
}

/// Splits a selector or label key into (source, key) the way Cilium does:
/// `$name` is `reserved:name`, `src:key` has source `src`, and a key without
/// a colon gets `default_source`.
pub fn split_source<'a>(raw: &'a str, default_source: &'a str) -> (&'a str, &'a str) {
    if let Some(rest) = raw.strip_prefix('$') {
        return (SOURCE_RESERVED, rest);
    }
    match raw.find(':') {
        Some(i) => (&raw[..i], &raw[i + 1..]),
        None => (default_source, raw),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
}

/// Checks a label value with Kubernetes rules: at most 63 characters,
/// alphanumerics, `-`, `_`, `.`, starting and ending with an alphanumeric
/// (or empty).
pub fn validate_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 {
        return Err(format!("label value {v:?} is longer than 63 characters"));
    }
    let ok = v.chars().all(is_name_char)
        && v.starts_with(|c: char| c.is_ascii_alphanumeric())
        && v.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "label value {v:?} must be alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
        ))
    }
}

/// Checks a selector key the way Cilium's selector validation does: the key
/// `source:name` becomes `source.name`, which must be a Kubernetes qualified
/// name (optional DNS-subdomain prefix and `/`, then a name of at most 63
/// characters).
pub fn validate_key(source: &str, key: &str) -> Result<(), String> {
    let ext = format!("{source}.{key}");
    let (prefix, name) = match ext.rfind('/') {
        Some(i) => (Some(&ext[..i]), &ext[i + 1..]),
        None => (None, ext.as_str()),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part.len() <= 63
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "invalid label key {source}:{key}: the prefix before '/' must be a lowercase DNS subdomain"
            ));
        }
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(is_name_char)
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid label key {source}:{key}: the name must be 1 to 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
        ))
    }
}

/// Pod label keys Cilium's default identity-label filter leaves out of
/// security identities (so no selector can match on them).
pub fn is_ignored_pod_label(key: &str) -> bool {
    matches!(
        key,
        "pod-template-hash" | "controller-revision-hash" | "pod-template-generation"
    ) || key.starts_with("statefulset.kubernetes.io/")
        || key.starts_with("batch.kubernetes.io/")
        || key.starts_with("apps.kubernetes.io/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_source_rules() {
        assert_eq!(split_source("org", SOURCE_ANY), ("any", "org"));
        assert_eq!(split_source("k8s:org", SOURCE_ANY), ("k8s", "org"));
        assert_eq!(split_source("$host", SOURCE_ANY), ("reserved", "host"));
        assert_eq!(
            split_source("reserved:host", SOURCE_ANY),
            ("reserved", "host")
        );
    }

    #[test]
    fn key_and_value_validation() {
        assert!(validate_key("k8s", "io.kubernetes.pod.namespace").is_ok());
        assert!(validate_key("any", "app.kubernetes.io/name").is_ok());
        assert!(validate_key("any", "App.io/name").is_err());
        assert!(validate_key("any", "x-").is_err());
        assert!(validate_key("any", "a:b").is_err());
        assert!(validate_value("empire").is_ok());
        assert!(validate_value("").is_ok());
        assert!(validate_value("bad value").is_err());
        assert!(validate_value(&"a".repeat(64)).is_err());
    }

    #[test]
    fn any_source_matches_every_source() {
        let s = LabelSet::new(vec![Label {
            source: "k8s".into(),
            key: "org".into(),
            value: "empire".into(),
        }]);
        assert!(s.has("any", "org"));
        assert!(s.has("k8s", "org"));
        assert!(!s.has("container", "org"));
    }
}
