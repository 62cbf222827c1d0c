//! Fuzz the YAML → policy parser and validator, then resolve what parses.
#![no_main]

use std::sync::Arc;

use holonet_policy::diag::SourceFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = holonet_policy::parse::parse_policies(&[SourceFile::new("fuzz.yaml", text)]);
    for e in parsed.errors() {
        assert!(e.origin.line >= 1 && e.origin.column >= 1);
    }
    if !parsed.policies.is_empty() {
        let eps = SourceFile::new(
            "e.yaml",
            "endpoints:\n- {name: a, labels: {app: a, org: empire}, ip: 10.0.0.1}\n- {name: b, namespace: x, labels: {app: b}, ip: 10.0.0.2}\n",
        );
        let cluster = Arc::new(holonet_policy::endpoints::parse_endpoints(&eps).unwrap());
        let r = holonet_policy::resolve::resolve(&parsed.policies, cluster.clone());
        for p in r.by_identity.values() {
            let _ = p.ingress.entries(&cluster);
            let _ = p.egress.entries(&cluster);
        }
    }
});
