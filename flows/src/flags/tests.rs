//! Flag construction mirrors the hubble CLI; the `--filter` encoding is
//! checked exhaustively against its intended meaning.

use holonet_proto::flow::{Endpoint, EventTypeFilter, Flow, FlowFilter, Verdict};

use super::*;
use crate::filter::FlowFilterSet;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

fn build(args: &[&str]) -> Result<Filters, FlagError> {
    FilterArgs::from_argv(args, &["output", "last", "since"], &['o']).build()
}

#[test]
fn label_and_verdict_become_two_entries_as_in_hubble_docs() {
    let f = build(&["--label", "org=payer", "--verdict", "DROPPED"]).unwrap();
    assert_eq!(
        f.whitelist,
        vec![
            FlowFilter {
                source_label: s(&["org=payer"]),
                verdict: vec![Verdict::Dropped as i32],
                ..Default::default()
            },
            FlowFilter {
                destination_label: s(&["org=payer"]),
                verdict: vec![Verdict::Dropped as i32],
                ..Default::default()
            },
        ]
    );
    assert!(f.blacklist.is_empty());
}

#[test]
fn non_bidirectional_flags_collapse_to_one_entry() {
    let f = build(&[
        "--verdict",
        "DROPPED",
        "--verdict",
        "AUDIT",
        "--http-method",
        "GET",
    ])
    .unwrap();
    assert_eq!(
        f.whitelist,
        vec![FlowFilter {
            verdict: vec![Verdict::Dropped as i32, Verdict::Audit as i32],
            http_method: s(&["GET"]),
            ..Default::default()
        }]
    );
    assert_eq!(build(&[]).unwrap(), Filters::default());
}

#[test]
fn namespace_becomes_pod_prefix_on_each_side() {
    let f = build(&["-n", "foo"]).unwrap();
    assert_eq!(
        f.whitelist,
        vec![
            FlowFilter {
                source_pod: s(&["foo/"]),
                ..Default::default()
            },
            FlowFilter {
                destination_pod: s(&["foo/"]),
                ..Default::default()
            },
        ]
    );
    let f = build(&["--namespace", "foo", "--pod", "web"]).unwrap();
    assert_eq!(f.whitelist[0].source_pod, s(&["foo/web"]));
    assert_eq!(f.whitelist[1].destination_pod, s(&["foo/web"]));
    let f = build(&["--from-namespace", "a", "--to-service", "b/svc"]).unwrap();
    assert_eq!(f.whitelist.len(), 1);
    assert_eq!(f.whitelist[0].source_pod, s(&["a/"]));
    assert_eq!(f.whitelist[0].destination_service, s(&["b/svc"]));
    assert!(
        build(&[
            "--namespace",
            "foo",
            "--from-namespace",
            "foo",
            "--from-pod",
            "bar/x"
        ])
        .unwrap_err()
        .to_string()
        .contains("cannot be combined")
            || build(&["--from-namespace", "foo", "--from-pod", "bar/x"])
                .unwrap_err()
                .to_string()
                .contains("namespace conflict")
    );
    let err = build(&["--from-namespace", "foo", "--from-pod", "bar/x"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"namespace conflict: "foo" does not contain "bar/x""#
    );
}

#[test]
fn not_sends_only_the_next_flag_to_one_accumulated_blacklist() {
    let f = build(&[
        "--not",
        "--http-method",
        "put",
        "--not",
        "--to-namespace",
        "foo",
        "--verdict",
        "DROPPED",
    ])
    .unwrap();
    assert_eq!(
        f.blacklist,
        vec![FlowFilter {
            http_method: s(&["put"]),
            destination_pod: s(&["foo/"]),
            ..Default::default()
        }]
    );
    assert_eq!(
        f.whitelist,
        vec![FlowFilter {
            verdict: vec![Verdict::Dropped as i32],
            ..Default::default()
        }]
    );
    let f = build(&["--not", "-n", "kube-system"]).unwrap();
    assert!(f.whitelist.is_empty());
    assert_eq!(
        f.blacklist,
        vec![
            FlowFilter {
                source_pod: s(&["kube-system/"]),
                ..Default::default()
            },
            FlowFilter {
                destination_pod: s(&["kube-system/"]),
                ..Default::default()
            },
        ]
    );
}

#[test]
fn misplaced_not_and_conflicts_are_errors() {
    assert_eq!(
        build(&["--verdict", "DROPPED", "--not"])
            .unwrap_err()
            .to_string()
            .split(':')
            .next(),
        Some("trailing --not")
    );
    assert_eq!(
        build(&["--not", "--not", "--verdict", "DROPPED"])
            .unwrap_err()
            .to_string(),
        "consecutive --not statements"
    );
    assert_eq!(
        build(&["--label", "a", "--from-label", "b"])
            .unwrap_err()
            .to_string(),
        "filters --label and --from-label cannot be combined"
    );
    assert!(build(&["--port", "80", "--to-port", "81"]).is_err());
    assert!(build(&["--fqdn", "a.b", "--ip", "1.1.1.1"]).is_err());
    // The same pair is fine when one side is negated (separate trackers).
    assert!(build(&["--label", "a", "--not", "--from-label", "b"]).is_ok());
    for bad in [
        &["--verdict", "dropped"][..],
        &["--tcp-flags", "syn,bogus"],
        &["--traffic-direction", "sideways"],
        &["--type", "nope"],
        &["--type", "trace:nowhere"],
        &["--identity", "nobody"],
        &["--http-header", "novalue"],
        &["--ip-trace-id", "0"],
        &["--drop-reason-desc", "NOPE"],
        &["--filter", "org in ("],
    ] {
        assert!(build(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn value_parsers_follow_hubble() {
    let f = build(&[
        "-t",
        "trace:to-endpoint",
        "--type",
        "l7",
        "-t",
        "drop:133",
        "-t",
        "agent:policy-updated",
    ])
    .unwrap();
    assert_eq!(
        f.whitelist[0].event_type,
        vec![
            EventTypeFilter {
                r#type: 4,
                match_sub_type: true,
                sub_type: 0
            },
            EventTypeFilter {
                r#type: 129,
                match_sub_type: false,
                sub_type: 0
            },
            EventTypeFilter {
                r#type: 1,
                match_sub_type: true,
                sub_type: 133
            },
            EventTypeFilter {
                r#type: 130,
                match_sub_type: true,
                sub_type: 5
            },
        ]
    );
    let f = build(&[
        "--tcp-flags",
        "syn,ACK",
        "--identity",
        "world",
        "--traffic-direction",
        "Ingress",
    ])
    .unwrap();
    let tf = &f.whitelist[0].tcp_flags[0];
    assert!(tf.syn && tf.ack && !tf.fin);
    assert_eq!(f.whitelist[0].source_identity, vec![2]);
    assert_eq!(f.whitelist[1].destination_identity, vec![2]);
    assert_eq!(f.whitelist[0].traffic_direction, vec![1]);
    let f = build(&[
        "-4",
        "--ip-version",
        "v6",
        "--workload",
        "Deployment/web",
        "--http-header",
        "a:b:c",
    ])
    .unwrap();
    assert_eq!(f.whitelist[0].ip_version, vec![1, 2]);
    assert_eq!(f.whitelist[0].source_workload[0].kind, "Deployment");
    assert_eq!(f.whitelist[0].source_workload[0].name, "web");
    assert_eq!(f.whitelist[0].http_header[0].value, "b:c");
}

#[test]
fn argv_scanner_keeps_order_and_skips_other_options() {
    let args = FilterArgs::from_argv(
        [
            "holonet",
            "observe",
            "-o",
            "json",
            "--last",
            "5",
            "--not",
            "-lorg=payer",
            "--label=app=x",
            "-n",
            "ns",
            "-4",
            "--since",
            "--not",
            "--",
            "--verdict",
            "DROPPED",
        ],
        &["last", "since"],
        &['o'],
    );
    assert_eq!(
        args.tokens,
        vec![
            FilterToken::Not,
            FilterToken::Flag(F::Label, "org=payer".into()),
            FilterToken::Flag(F::Label, "app=x".into()),
            FilterToken::Flag(F::Namespace, "ns".into()),
            FilterToken::Flag(F::Ipv4, String::new()),
        ]
    );
}

fn flow_with(src: &[&str], dst: &[&str], verdict: Verdict) -> Flow {
    Flow {
        verdict: verdict as i32,
        source: Some(Endpoint {
            labels: src.iter().map(|l| format!("k8s:{l}")).collect(),
            ..Default::default()
        }),
        destination: Some(Endpoint {
            labels: dst.iter().map(|l| format!("k8s:{l}")).collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn either_side_filters_are_anded_exhaustively() {
    let label_sets: &[&[&str]] = &[
        &[],
        &["a=1"],
        &["b=2"],
        &["a=1", "b=2"],
        &["c=3"],
        &["a=1", "c=3"],
    ];
    let has = |ls: &[&str], l: &str| ls.contains(&l);
    type Expect = Box<dyn Fn(&[&str], &[&str], Verdict) -> bool>;
    let cases: Vec<(Vec<&str>, Expect)> = vec![
        (
            vec!["--filter", "a=1", "--filter", "b=2"],
            Box::new(move |s, d, _| {
                (has(s, "a=1") || has(d, "a=1")) && (has(s, "b=2") || has(d, "b=2"))
            }),
        ),
        (
            vec![
                "--filter",
                "a=1",
                "--filter",
                "b=2",
                "--filter",
                "c=3",
                "--verdict",
                "DROPPED",
            ],
            Box::new(move |s, d, v| {
                (has(s, "a=1") || has(d, "a=1"))
                    && (has(s, "b=2") || has(d, "b=2"))
                    && (has(s, "c=3") || has(d, "c=3"))
                    && v == Verdict::Dropped
            }),
        ),
        (
            vec![
                "--from-label",
                "a=1",
                "--from-label",
                "c=3",
                "--filter",
                "b=2",
            ],
            Box::new(move |s, d, _| {
                (has(s, "a=1") || has(s, "c=3")) && (has(s, "b=2") || has(d, "b=2"))
            }),
        ),
        (
            vec!["--label", "c=3", "--filter", "a=1"],
            Box::new(move |s, d, _| {
                (has(s, "c=3") || has(d, "c=3")) && (has(s, "a=1") || has(d, "a=1"))
            }),
        ),
        (
            vec!["--filter", "a=1", "--not", "--filter", "b=2"],
            Box::new(move |s, d, _| {
                (has(s, "a=1") || has(d, "a=1")) && !(has(s, "b=2") || has(d, "b=2"))
            }),
        ),
    ];
    for (args, want) in cases {
        let f = build(&args).unwrap();
        let set = FlowFilterSet::new(&f.whitelist, &f.blacklist).unwrap();
        for src in label_sets {
            for dst in label_sets {
                for v in [Verdict::Forwarded, Verdict::Dropped] {
                    let flow = flow_with(src, dst, v);
                    assert_eq!(
                        set.matches(&flow),
                        want(src, dst, v),
                        "{args:?} src={src:?} dst={dst:?} {v:?}"
                    );
                }
            }
        }
    }
    let f = build(&["--filter", "a=1", "--filter", "b=2"]).unwrap();
    assert_eq!(f.whitelist.len(), 4);
    assert!(f.whitelist.contains(&FlowFilter {
        source_label: s(&["a=1,b=2"]),
        ..Default::default()
    }));
    let too_many: Vec<String> = (0..=MAX_EITHER_SIDE_SELECTORS)
        .flat_map(|i| ["--filter".to_owned(), format!("k{i}=v")])
        .collect();
    assert!(FilterArgs::from_argv(&too_many, &[], &[]).build().is_err());
    // An empty selector selects everything and adds nothing.
    assert!(build(&["--filter", ""]).unwrap().whitelist.is_empty());
}

#[test]
fn describe_renders_plain_words() {
    let d = |args: &[&str]| FilterArgs::from_argv(args, &[], &[]).describe();
    assert_eq!(
        d(&["--filter", "org=payer", "--verdict", "DROPPED"]),
        "(source org=payer OR destination org=payer) AND verdict DROPPED"
    );
    assert_eq!(
        d(&[
            "--verdict",
            "DROPPED",
            "--verdict",
            "AUDIT",
            "--to-namespace",
            "x"
        ]),
        "verdict (DROPPED OR AUDIT) AND destination namespace x"
    );
    assert_eq!(
        d(&["--not", "-n", "kube-system"]),
        "NOT (source namespace kube-system OR destination namespace kube-system)"
    );
    assert_eq!(
        d(&[
            "--not",
            "--http-method",
            "PUT",
            "--not",
            "--from-pod",
            "a/b"
        ]),
        "NOT (http-method PUT AND source pod a/b)"
    );
    assert_eq!(d(&[]), "all flows");
}

#[test]
fn raw_filters_render_as_proto_json() {
    let f = build(&["--verdict", "DROPPED"]).unwrap();
    assert_eq!(
        raw_filters_json(&f.whitelist),
        r#"[{"verdict":["DROPPED"]}]"#
    );
}
