//! Fuzz the request-line DFA compiler: arbitrary method/path regexes must
//! compile or fail with an error (never panic, never exceed the table), and
//! a compiled table's walk must agree with per-rule matching.
#![no_main]

use holonet_policy::l7::{RequestLineRule, compile_request_line, walk};
use holonet_policy::re2::FullMatcher;
use libfuzzer_sys::fuzz_target;
use probe_common::l7::{L7_DFA_FLAG_MERGED, L7_DFA_MAX_STATES};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Format: rules separated by '\n', each `method\tpath`; the last line is the probe input `method\tpath`.
    let mut lines: Vec<&str> = text.split('\n').collect();
    let probe = lines.pop().unwrap_or("");
    if lines.len() > 8 {
        return;
    }
    let rules: Vec<RequestLineRule<'_>> = lines
        .iter()
        .map(|l| {
            let (m, p) = l.split_once('\t').unwrap_or((l, ""));
            RequestLineRule {
                method: Some(m).filter(|m| !m.is_empty()),
                path: Some(p).filter(|p| !p.is_empty()),
            }
        })
        .collect();
    let Ok(table) = compile_request_line(&rules) else {
        return;
    };
    assert!((table.num_states as usize) <= L7_DFA_MAX_STATES);
    let (pm, pp) = probe.split_once('\t').unwrap_or((probe, "/"));
    let got = walk(&table, pm, pp);
    if pm.contains(' ') || pp.contains(' ') {
        assert_eq!(got, None);
        return;
    }
    let expected = rules.iter().position(|r| {
        let ok = |re: Option<&str>, s: &str| {
            re.is_none_or(|re| FullMatcher::new(re).map(|m| m.is_match(s)).unwrap_or(false))
        };
        ok(r.method, pm) && ok(r.path, pp)
    });
    if table.flags & L7_DFA_FLAG_MERGED != 0 {
        assert_eq!(
            got.is_some(),
            expected.is_some(),
            "merged: rules {rules:?} probe {pm:?} {pp:?}"
        );
    } else {
        assert_eq!(got, expected, "rules {rules:?} probe {pm:?} {pp:?}");
    }
});
