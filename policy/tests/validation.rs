//! Section 8 validation rules and hostile input: every error names file,
//! line, column and field; nothing panics; one bad object spares the others.

use holonet_policy::diag::SourceFile;
use holonet_policy::parse::parse_policies;

fn errors_of(yaml: &str) -> Vec<String> {
    let p = parse_policies(&[SourceFile::new("t.yaml", yaml)]);
    p.errors().map(|d| d.to_string()).collect()
}

fn cnp(spec: &str) -> String {
    let body: String = spec.lines().map(|l| format!("  {l}\n")).collect();
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: t\n  namespace: default\nspec:\n{body}"
    )
}

/// (spec, expected substring of the error, expected field path).
const CASES: &[(&str, &str, &str)] = &[
    (
        "ingress: [{}]",
        "rule must have one of EndpointSelector or NodeSelector",
        "spec",
    ),
    (
        "endpointSelector: {}\nnodeSelector: {}",
        "cannot have both",
        "spec.nodeSelector",
    ),
    (
        "nodeSelector: {}",
        "only allowed in a CiliumClusterwideNetworkPolicy",
        "spec.nodeSelector",
    ),
    (
        "endpointSelector: {matchExpressions: [{key: a, operator: in, values: [x]}]}",
        "not a valid label selector operator",
        "spec.endpointSelector.matchExpressions[0].operator",
    ),
    (
        "endpointSelector: {matchExpressions: [{key: a, operator: In}]}",
        "values must be non-empty",
        "spec.endpointSelector.matchExpressions[0].values",
    ),
    (
        "endpointSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}",
        "values must be empty",
        "spec.endpointSelector.matchExpressions[0].values",
    ),
    (
        "endpointSelector: {matchLabels: {'bad key!': x}}",
        "invalid label key",
        "spec.endpointSelector.matchLabels.bad key!",
    ),
    (
        "endpointSelector: {matchLabels: {a: 'bad value'}}",
        "label value",
        "spec.endpointSelector.matchLabels.a",
    ),
    (
        "endpointSelector: {}\ningress:\n- fromEndpoints: [{}]\n  fromCIDR: [10.0.0.0/8]",
        "Combining FromEndpoints and FromCIDR is not supported yet",
        "spec.ingress[0]",
    ),
    (
        "endpointSelector: {}\negress:\n- toEndpoints: [{}]\n  toEntities: [world]",
        "Combining ToEndpoints and ToEntities is not supported yet",
        "spec.egress[0]",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80'}], rules: {http: [{method: GET}]}}]",
        "L7 rules can only apply to TCP (not ANY)",
        "spec.ingress[0].toPorts[0].rules",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: UDP}], rules: {http: [{method: GET}]}}]",
        "L7 rules can only apply to TCP (not UDP)",
        "spec.ingress[0].toPorts[0].rules",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '0', protocol: TCP}], rules: {http: [{method: GET}]}}]",
        "L7 rules can not be used when a port is 0",
        "spec.ingress[0].toPorts[0].rules",
    ),
    (
        "endpointSelector: {}\negress:\n- toPorts: [{ports: [{port: '53'}], rules: {http: [{}], dns: [{matchPattern: '*'}]}}]",
        "multiple L7 protocol rule types",
        "spec.egress[0].toPorts[0].rules",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '53'}], rules: {dns: [{matchPattern: '*'}]}}]",
        "DNS rules are not allowed on ingress",
        "spec.ingress[0].toPorts[0].rules",
    ),
    (
        "endpointSelector: {}\negress:\n- toPorts: [{rules: {dns: [{matchPattern: '*'}]}}]",
        "need ports",
        "spec.egress[0].toPorts[0].rules",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{path: '/a('}]}}]",
        "invalid regex",
        "spec.ingress[0].toPorts[0].rules.http[0].path",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{method: '(?=GET)'}]}}]",
        "invalid regex",
        "spec.ingress[0].toPorts[0].rules.http[0].method",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{headerMatches: [{value: x}]}]}}]",
        "must have a name",
        "spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].name",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{headerMatches: [{name: a, mismatch: BOGUS}]}]}}]",
        "invalid mismatch action",
        "spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].mismatch",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{headerMatches: [{name: a, secret: {name: s, namespace: n}}]}]}}]",
        "not supported by holonet",
        "spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].secret",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '99999'}]}]",
        "out of range",
        "spec.ingress[0].toPorts[0].ports[0].port",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: 'http'}]}]",
        "named port",
        "spec.ingress[0].toPorts[0].ports[0].port",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: ICMP}]}]",
        "not one of TCP, UDP, SCTP, ANY",
        "spec.ingress[0].toPorts[0].ports[0].protocol",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: tcp}]}]",
        "not one of TCP, UDP, SCTP, ANY",
        "spec.ingress[0].toPorts[0].ports[0].protocol",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '90', endPort: 80}]}]",
        "lower than port",
        "spec.ingress[0].toPorts[0].ports[0].endPort",
    ),
    (
        "endpointSelector: {}\ningress:\n- fromCIDR: [10.0.0.0/33]",
        "invalid CIDR",
        "spec.ingress[0].fromCIDR[0]",
    ),
    (
        "endpointSelector: {}\ningress:\n- fromCIDRSet: [{cidr: 10.0.0.0/8, except: [11.0.0.0/16]}]",
        "not contained",
        "spec.ingress[0].fromCIDRSet[0].except[0]",
    ),
    (
        "endpointSelector: {}\ningress:\n- fromCIDRSet: [{cidr: 10.0.0.0/8, except: ['::/64']}]",
        "not contained",
        "spec.ingress[0].fromCIDRSet[0].except[0]",
    ),
    (
        "endpointSelector: {}\ningress:\n- fromEntities: [everything]",
        "unknown entity",
        "spec.ingress[0].fromEntities[0]",
    ),
    (
        "endpointSelector: {}\ningress:\n- icmps: [{fields: [{type: 8}]}]\n  toPorts: [{ports: [{port: '80'}]}]",
        "icmps cannot be combined with toPorts",
        "spec.ingress[0]",
    ),
    (
        "endpointSelector: {}\ningressDeny:\n- toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{}]}}]",
        "unknown field \"rules\"",
        "spec.ingressDeny[0].toPorts[0].rules",
    ),
    (
        "endpointSelector: {}\negress:\n- toFQDNs: [{matchName: x.com}]",
        "toFQDNs",
        "spec.egress[0].toFQDNs",
    ),
    (
        "endpointSelector: {}\negress:\n- toServices: [{k8sService: {serviceName: a}}]\n  toPorts: [{ports: [{port: '80'}]}]",
        "toServices cannot be combined with toPorts",
        "spec.egress[0]",
    ),
    (
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {kafka: [{topic: x}]}}]",
        "kafka L7 rules is not supported",
        "spec.ingress[0].toPorts[0].rules.kafka",
    ),
    (
        "endpointSelector: {}\ningres:\n- {}",
        "unknown field \"ingres\"",
        "spec.ingres",
    ),
    (
        "endpointSelector: {}\negress:\n- toPorts: [{ports: [{port: '53', endPort: 54}], rules: {dns: [{matchPattern: '*'}]}}]",
        "port ranges",
        "spec.egress[0].toPorts[0].rules",
    ),
];

#[test]
fn section_8_rules_each_name_their_field() {
    let mut failures = Vec::new();
    for (spec, want, path) in CASES {
        let errs = errors_of(&cnp(spec));
        let hit = errs.iter().find(|e| e.contains(want));
        match hit {
            Some(e) if e.contains(&format!(": {path}: ")) && e.starts_with("t.yaml:") => {}
            _ => failures.push(format!(
                "spec {spec:?}: want {want:?} at {path}, got {errs:#?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn too_many_ports() {
    let ports: Vec<String> = (1..=41).map(|p| format!("{{port: '{p}'}}")).collect();
    let errs = errors_of(&cnp(&format!(
        "endpointSelector: {{}}\ningress:\n- toPorts: [{{ports: [{}]}}]",
        ports.join(", ")
    )));
    assert!(
        errs.iter().any(|e| e.contains("too many ports")),
        "{errs:?}"
    );
}

#[test]
fn envelope_errors() {
    let e = errors_of(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: ''}\nspec: {endpointSelector: {}}\n",
    );
    assert!(e.iter().any(|e| e.contains("must have name")), "{e:?}");
    let e = errors_of("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\n");
    assert!(
        e.iter().any(|e| e.contains("neither `spec` nor `specs`")),
        "{e:?}"
    );
    let e = errors_of("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n");
    assert!(
        e.iter()
            .any(|e| e.contains("kind \"Service\" is not supported")),
        "{e:?}"
    );
    let e = errors_of(
        "apiVersion: cilium.io/v1\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec: {endpointSelector: {}}\n",
    );
    assert!(e.iter().any(|e| e.contains("apiVersion")), "{e:?}");
    let e = errors_of("- just\n- a list\n");
    assert!(
        e.iter().any(|e| e.contains("expected a policy object")),
        "{e:?}"
    );
}

#[test]
fn one_bad_rule_rejects_the_object_but_not_the_others() {
    let good = cnp("endpointSelector: {matchLabels: {app: a}}\ningress: [{}]");
    let bad = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad}\nspecs:\n- endpointSelector: {}\n- endpointSelector: {matchExpressions: [{key: a, operator: bogus}]}\n";
    let p = parse_policies(&[SourceFile::new("m.yaml", format!("{good}---\n{bad}"))]);
    assert_eq!(p.policies.len(), 1);
    assert_eq!(p.rejected.len(), 1);
    assert_eq!(p.rejected[0].object, "CiliumNetworkPolicy/default/bad");
    let e = p.rejected[0].errors[0].to_string();
    assert!(
        e.starts_with("m.yaml:15:60:"),
        "line and column of the bad operator: {e}"
    );
    assert!(
        e.contains("specs[1].endpointSelector.matchExpressions[0].operator"),
        "{e}"
    );
}

#[test]
fn spec_and_specs_both_count() {
    let y = "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: x}\nspec: {endpointSelector: {}, ingress: [{}]}\nspecs:\n- {endpointSelector: {}, egress: [{}]}\n- {endpointSelector: {}}\n";
    let p = parse_policies(&[SourceFile::new("s.yaml", y)]);
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    assert_eq!(p.policies[0].rules.len(), 3);
    assert!(p.policies[0].namespace.is_none());
}

#[test]
fn cnp_namespace_defaults_to_default() {
    let p = parse_policies(&[SourceFile::new(
        "n.yaml",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec: {endpointSelector: {}}\n",
    )]);
    assert_eq!(p.policies[0].namespace.as_deref(), Some("default"));
}

#[test]
fn lists_are_unpacked() {
    let y = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: cilium.io/v2\n  kind: CiliumNetworkPolicy\n  metadata: {name: a}\n  spec: {endpointSelector: {}}\n- apiVersion: cilium.io/v2\n  kind: CiliumNetworkPolicy\n  metadata: {name: b}\n  spec: {endpointSelector: {}}\n";
    let p = parse_policies(&[SourceFile::new("l.yaml", y)]);
    assert_eq!(p.policies.len(), 2);
}

#[test]
fn host_and_header_rules_warn_about_the_kernel() {
    let y = cnp(
        "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{host: a.com}]}}]",
    );
    let p = parse_policies(&[SourceFile::new("w.yaml", y)]);
    assert!(p.rejected.is_empty());
    assert!(
        p.warnings
            .iter()
            .any(|w| w.message.contains("cannot be checked in the kernel")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn hostile_input_gives_errors_not_panics() {
    let inputs: Vec<String> = vec![
        "{".into(),
        "a: [".into(),
        ":\n:\n::".into(),
        "\t- x".into(),
        "[".repeat(10_000),
        "{a: ".repeat(5_000),
        format!("a: &x [1]\nb: *x\n"),
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec: 5\n".into(),
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: [1]\nspec: {endpointSelector: []}\n".into(),
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: [1]}]}]}]}\n".into(),
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec: {endpointSelector: {}, ingress: [{toPorts: [{ports: [{port: '80', protocol: TCP}], rules: {http: [{path: '((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a'}]}}]}]}\n".into(),
        format!("apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: x}}\nspec: {{endpointSelector: {{}}, ingress: [{{toPorts: [{{ports: [{{port: '80', protocol: TCP}}], rules: {{http: [{{path: '{}'}}]}}}}]}}]}}\n", "a".repeat(10_000)),
        "\u{feff}apiVersion: cilium.io/v2\n\0".into(),
    ];
    for i in &inputs {
        let p = parse_policies(&[SourceFile::new("h.yaml", i.clone())]);
        assert!(!p.rejected.is_empty(), "should reject: {:.80}", i);
        for e in p.errors() {
            assert!(e.origin.line >= 1 && e.origin.column >= 1, "{e}");
        }
    }
}

#[test]
fn huge_file_is_refused_cleanly() {
    let big = "# x\n".repeat(5_000_000);
    let p = parse_policies(&[SourceFile::new("big.yaml", big)]);
    assert!(p.rejected[0].errors[0].message.contains("larger than"));
}

#[test]
fn many_objects_in_one_file() {
    let one = cnp("endpointSelector: {matchLabels: {app: a}}\ningress: [{}]");
    let mut all = String::new();
    for i in 0..500 {
        all.push_str(&one.replace("name: t", &format!("name: t{i}")));
        all.push_str("---\n");
    }
    let p = parse_policies(&[SourceFile::new("many.yaml", all)]);
    assert_eq!(p.policies.len(), 500);
}
