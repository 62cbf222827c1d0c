//! Property tests: selector matching against a direct reading of the
//! Kubernetes rules, and the kernel DFA walk against the `regex` crate.

use std::collections::BTreeMap;

use holonet_policy::l7::{RequestLineRule, compile_request_line, walk};
use holonet_policy::labels::{Label, LabelSet};
use holonet_policy::selector::{Operator, Requirement, Selector};
use proptest::prelude::*;

const KEYS: &[&str] = &["app", "org", "tier", "env"];
const VALUES: &[&str] = &["a", "b", "c"];

fn labels_strategy() -> impl Strategy<Value = BTreeMap<String, String>> {
    proptest::collection::btree_map(
        proptest::sample::select(KEYS).prop_map(str::to_string),
        proptest::sample::select(VALUES).prop_map(str::to_string),
        0..4,
    )
}

fn req_strategy() -> impl Strategy<Value = Requirement> {
    (
        proptest::sample::select(KEYS),
        0..4u8,
        proptest::collection::vec(proptest::sample::select(VALUES), 1..3),
        proptest::sample::select(&["any", "k8s", "container"][..]),
    )
        .prop_map(|(k, op, vals, src)| {
            let op = [
                Operator::In,
                Operator::NotIn,
                Operator::Exists,
                Operator::DoesNotExist,
            ][op as usize];
            let values = if matches!(op, Operator::In | Operator::NotIn) {
                vals.iter().map(|v| v.to_string()).collect()
            } else {
                vec![]
            };
            Requirement {
                source: src.into(),
                key: k.into(),
                op,
                values,
            }
        })
}

/// The specification, written independently of the implementation.
fn spec_matches(reqs: &[Requirement], pod: &BTreeMap<String, String>) -> bool {
    reqs.iter().all(|r| {
        // Pod labels are k8s-sourced: any: and k8s: see them, container: sees nothing.
        let value = if r.source == "container" {
            None
        } else {
            pod.get(&r.key)
        };
        match r.op {
            Operator::In => value.is_some_and(|v| r.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    })
}

proptest! {
    #[test]
    fn selector_matching_follows_kubernetes(pod in labels_strategy(), reqs in proptest::collection::vec(req_strategy(), 0..4)) {
        let set = LabelSet::new(pod.iter().map(|(k, v)| Label { source: "k8s".into(), key: k.clone(), value: v.clone() }).collect());
        let sel = Selector { requirements: reqs.clone() };
        prop_assert_eq!(sel.matches(&set), spec_matches(&reqs, &pod));
    }
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "get", "GETS", "OPTIONS", "",
];
const METHOD_RES: &[Option<&str>] = &[
    None,
    Some("GET"),
    Some("GET|HEAD"),
    Some("^POST$"),
    Some("(?i)put"),
    Some("[A-Z]+"),
    Some("G.*"),
    Some(r"\w+"),
];
const PATH_RES: &[Option<&str>] = &[
    None,
    Some("/"),
    Some("/v1/.*"),
    Some("/intersystems/fhir/r5/Patient/DarthVader"),
    Some(r"/api/v[0-9]+/items/\d+"),
    Some("^/public(/.*)?$"),
    Some("/a?b"),
    Some(r"/x\?y=[^&]*"),
    Some("(?i)/Foo/(bar|baz)"),
    Some(r"/w\b.*"),
    Some("/[[:alpha:]]+"),
];

fn path_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "/",
                "/v1/",
                "/v1",
                "/v1/a/b?c=d",
                "/intersystems/fhir/r5/Patient/DarthVader",
                "/api/v2/items/42",
                "/api/v2/items/x",
                "/public",
                "/public/x",
                "/ab",
                "/b",
                "/x?y=1",
                "/x?y=1&z=2",
                "/foo/BAR",
                "/FOO/baz",
                "/w",
                "/w-x",
                "/wx",
                "/abc",
                "",
            ][..]
        )
        .prop_map(str::to_string),
        "/[a-zA-Z0-9/?=&._~%-]{0,100}",
        "[ -~]{0,40}",
        "/\\PC{0,20}",
    ]
}

fn full(re: &str) -> regex::Regex {
    let t = holonet_policy::re2::translate(re).unwrap();
    regex::Regex::new(&format!("^(?:{t})$")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]
    #[test]
    fn dfa_walk_agrees_with_regex_crate(
        rule_idx in proptest::collection::vec((0..METHOD_RES.len(), 0..PATH_RES.len()), 1..4),
        method in proptest::sample::select(METHODS),
        paths in proptest::collection::vec(path_strategy(), 1..16),
    ) {
        let rules: Vec<RequestLineRule<'_>> = rule_idx.iter().map(|&(m, p)| RequestLineRule { method: METHOD_RES[m], path: PATH_RES[p] }).collect();
        let table = compile_request_line(&rules).unwrap();
        for path in &paths {
            let expected = if path.contains(' ') || method.contains(' ') {
                None
            } else {
                rules.iter().position(|r| {
                    r.method.is_none_or(|m| full(m).is_match(method)) && r.path.is_none_or(|p| full(p).is_match(path))
                })
            };
            let got = walk(&table, method, path);
            if table.flags & probe_common::l7::L7_DFA_FLAG_MERGED != 0 {
                prop_assert_eq!(got.is_some(), expected.is_some(), "merged: method {:?} path {:?} rules {:?}", method, path, rules);
            } else {
                prop_assert_eq!(got, expected, "method {:?} path {:?} rules {:?}", method, path, rules);
            }
        }
    }
}
