//! Compiling HTTP rule sets into the kernel's request-line DFA table
//! ([`probe_common::l7::L7DfaTable`]), and the user-space walk over it.
//!
//! Exists because the kernel decides L7 verdicts with one map lookup and a
//! bounded walk. Each rule's method and path regexes are combined into one
//! anchored pattern over `METHOD SP target`; anchors are rewritten so `^`/`$`
//! keep their per-field meaning, using SP as the line terminator. The DFA is
//! minimised, its byte classes merged, and it is refused (never truncated)
//! when it exceeds the table limits.

use std::collections::HashMap;

use probe_common::l7::{
    L7_DFA_DEAD_STATE, L7_DFA_FLAG_MERGED, L7_DFA_MAGIC, L7_DFA_MAX_CLASSES, L7_DFA_MAX_STATES,
    L7_DFA_VERSION, L7DfaTable,
};
use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::nfa::thompson;
use regex_automata::util::look::LookMatcher;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{Class, ClassBytes, ClassBytesRange, Hir, Repetition};

use crate::re2::{self, DFA_SIZE_LIMIT, Part};
use crate::{dns::DnsRule, http::HttpRule};

/// Why a rule set could not be compiled into a kernel table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum L7CompileError {
    /// The minimised DFA has more states than the table holds.
    #[error(
        "the HTTP rules need {states} DFA states; the kernel table holds at most {max} (split or simplify the rules)"
    )]
    TooManyStates {
        /// States needed.
        states: usize,
        /// The limit.
        max: usize,
    },
    /// The DFA distinguishes more byte classes than the table holds.
    #[error(
        "the HTTP rules need {classes} byte classes; the kernel table holds at most {max} (simplify the rules)"
    )]
    TooManyClasses {
        /// Classes needed.
        classes: usize,
        /// The limit.
        max: usize,
    },
    /// A regex did not parse.
    #[error("rule {rule}: {message}")]
    Regex {
        /// Index of the rule.
        rule: usize,
        /// What is wrong.
        message: String,
    },
    /// The regex engine refused to build the automaton (size limits).
    #[error("cannot build the DFA: {0}")]
    Build(String),
    /// More rules than a table can name.
    #[error("{0} HTTP rules; a table names at most 65534")]
    TooManyRules(usize),
}

/// A compiled table and which rules it contains.
#[derive(Clone, Debug)]
pub struct CompiledTable {
    /// The table to store in the kernel map.
    pub table: Box<L7DfaTable>,
    /// For each rule index the table can report (`accept - 1`), the index of
    /// the rule in the input slice. A merged table (`flags` has
    /// `L7_DFA_FLAG_MERGED`) reports only "matched" (`accept == 1`): find
    /// the rule with [`HttpRule::matches`] in user space.
    pub rule_index: Vec<usize>,
    /// Input rules left out because they constrain host or headers (the
    /// kernel cannot check those; leaving them out fails closed).
    pub excluded: Vec<usize>,
}

/// One request-line rule: method and path regexes (`None`: any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLineRule<'a> {
    /// Method regex.
    pub method: Option<&'a str>,
    /// Path regex.
    pub path: Option<&'a str>,
}

fn any_token() -> Hir {
    // `[^ ]*` over Unicode scalar values (a method or target never contains SP).
    let cls = regex_syntax::hir::ClassUnicode::new([
        regex_syntax::hir::ClassUnicodeRange::new('\0', '\x1f'),
        regex_syntax::hir::ClassUnicodeRange::new('!', char::MAX),
    ]);
    Hir::repetition(Repetition {
        min: 0,
        max: None,
        greedy: true,
        sub: Box::new(Hir::class(Class::Unicode(cls))),
    })
}

fn rule_hir(rule: &RequestLineRule<'_>, i: usize) -> Result<Hir, L7CompileError> {
    let part = |p: Option<&str>, which: Part| -> Result<Hir, L7CompileError> {
        match p {
            None | Some("") => Ok(any_token()),
            Some(p) => re2::parse_hir(p)
                .map(|h| re2::rewrite_looks(&h, which))
                .map_err(|message| L7CompileError::Regex { rule: i, message }),
        }
    };
    let sp = Hir::class(Class::Bytes(ClassBytes::new([ClassBytesRange::new(
        b' ', b' ',
    )])));
    Ok(Hir::concat(vec![
        part(rule.method, Part::Method)?,
        sp,
        part(rule.path, Part::Path)?,
    ]))
}

/// Compiles request-line rules into a kernel table that names the matching
/// rule; if that does not fit, into a merged table
/// ([`L7_DFA_FLAG_MERGED`]: accepting states hold 1). Errors only when even
/// the merged table exceeds the limits.
pub fn compile_request_line(
    rules: &[RequestLineRule<'_>],
) -> Result<Box<L7DfaTable>, L7CompileError> {
    match compile_request_line_with(rules, false) {
        Err(L7CompileError::TooManyStates { .. } | L7CompileError::TooManyClasses { .. })
            if rules.len() > 1 =>
        {
            compile_request_line_with(rules, true)
        }
        other => other,
    }
}

/// Compiles request-line rules; `merged` builds one pattern for all rules
/// (smaller, but accepting states then name no rule).
pub fn compile_request_line_with(
    rules: &[RequestLineRule<'_>],
    merged: bool,
) -> Result<Box<L7DfaTable>, L7CompileError> {
    if rules.len() > 65534 {
        return Err(L7CompileError::TooManyRules(rules.len()));
    }
    let mut table = Box::new(L7DfaTable::zeroed());
    table.magic = L7_DFA_MAGIC;
    table.version = L7_DFA_VERSION;
    table.num_rules = rules.len() as u16;
    table.num_states = 1;
    table.num_classes = 1;
    if rules.is_empty() {
        return Ok(table);
    }
    let hirs = rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule_hir(r, i))
        .collect::<Result<Vec<_>, _>>()?;
    table_from_hirs(table, hirs, merged)
}

/// Builds the kernel table for `hirs` (one pattern per rule, or all merged
/// into one) into `table`, whose header fields are set.
fn table_from_hirs(
    mut table: Box<L7DfaTable>,
    mut hirs: Vec<Hir>,
    merged: bool,
) -> Result<Box<L7DfaTable>, L7CompileError> {
    if merged {
        hirs = vec![Hir::alternation(hirs)];
        table.flags = L7_DFA_FLAG_MERGED;
    }
    let mut lm = LookMatcher::new();
    lm.set_line_terminator(b' ');
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .look_matcher(lm)
                .nfa_size_limit(Some(DFA_SIZE_LIMIT)),
        )
        .build_many_from_hir(&hirs)
        .map_err(|e| L7CompileError::Build(e.to_string()))?;
    let dfa = dense::Builder::new()
        .configure(
            dense::Config::new()
                .start_kind(StartKind::Anchored)
                .match_kind(MatchKind::All)
                .minimize(true)
                .unicode_word_boundary(false)
                .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
        )
        .build_from_nfa(&nfa)
        .map_err(|e| L7CompileError::Build(e.to_string()))?;
    let start = dfa
        .start_state(&start::Config::new().anchored(Anchored::Yes))
        .map_err(|e| L7CompileError::Build(e.to_string()))?;
    let classes = dfa.byte_classes();
    let n_classes = classes.alphabet_len() - 1;
    let reps: Vec<u8> = classes
        .representatives(0..=255)
        .filter_map(|u| u.as_u8())
        .collect();
    // Breadth-first numbering; the dead state is 0.
    let mut ids: HashMap<StateID, u16> = HashMap::new();
    let mut order: Vec<StateID> = Vec::new();
    let mut rows: Vec<Vec<u16>> = vec![vec![0; n_classes]];
    let mut accept: Vec<u16> = vec![0];
    let mut queue = std::collections::VecDeque::new();
    let dead_start = dfa.is_dead_state(start);
    if !dead_start {
        ids.insert(start, 1);
        order.push(start);
        queue.push_back(start);
    }
    while let Some(s) = queue.pop_front() {
        let mut row = vec![0u16; n_classes];
        for &b in &reps {
            let next = dfa.next_state(s, b);
            if dfa.is_quit_state(next) {
                return Err(L7CompileError::Build(
                    "the regex needs look-around the kernel table cannot express".into(),
                ));
            }
            let id = if dfa.is_dead_state(next) {
                L7_DFA_DEAD_STATE
            } else if let Some(id) = ids.get(&next) {
                *id
            } else {
                let id = order.len() + 1;
                if id >= L7_DFA_MAX_STATES {
                    return Err(L7CompileError::TooManyStates {
                        states: id + 1,
                        max: L7_DFA_MAX_STATES,
                    });
                }
                ids.insert(next, id as u16);
                order.push(next);
                queue.push_back(next);
                id as u16
            };
            row[classes.get(b) as usize] = id;
        }
        rows.push(row);
        let eoi = dfa.next_eoi_state(s);
        let acc = if dfa.is_match_state(eoi) {
            (0..dfa.match_len(eoi))
                .map(|k| dfa.match_pattern(eoi, k).as_usize())
                .min()
                .map_or(0, |p| p as u16 + 1)
        } else {
            0
        };
        accept.push(acc);
    }
    // Merge byte classes whose columns are identical in every state.
    let mut col_id: HashMap<Vec<u16>, u8> = HashMap::new();
    let mut class_map = vec![0u8; n_classes];
    for (c, slot) in class_map.iter_mut().enumerate() {
        let col: Vec<u16> = rows.iter().map(|r| r[c]).collect();
        let next = col_id.len();
        let id = *col_id.entry(col).or_insert(next.min(255) as u8);
        if col_id.len() > L7_DFA_MAX_CLASSES {
            return Err(L7CompileError::TooManyClasses {
                classes: col_id.len(),
                max: L7_DFA_MAX_CLASSES,
            });
        }
        *slot = id;
    }
    let merged = col_id.len();
    for b in 0..=255u8 {
        table.byte_class[b as usize] = class_map[classes.get(b) as usize];
    }
    for (s, row) in rows.iter().enumerate() {
        for (c, &next) in row.iter().enumerate() {
            table.transitions[s * L7_DFA_MAX_CLASSES + class_map[c] as usize] =
                next * L7_DFA_MAX_CLASSES as u16;
        }
        table.accept[s] = accept[s];
    }
    table.num_states = rows.len() as u16;
    table.num_classes = merged as u16;
    table.start_state = if dead_start { L7_DFA_DEAD_STATE } else { 1 };
    Ok(table)
}

/// The DNS characters a `*` of a `matchPattern` stands for, lower case (the
/// kernel lower-cases names before the walk).
fn dns_label_chars() -> Hir {
    Hir::class(Class::Bytes(ClassBytes::new([
        ClassBytesRange::new(b'-', b'-'),
        ClassBytesRange::new(b'0', b'9'),
        ClassBytesRange::new(b'_', b'_'),
        ClassBytesRange::new(b'a', b'z'),
    ])))
}

/// The pattern of one DNS rule over a normalised name (lower case, with the
/// trailing dot): `matchName` literally, `matchPattern` with each `*` as any
/// run of DNS characters within a label, and `*` alone as any name.
fn dns_rule_hir(rule: &DnsRule) -> Hir {
    let mut alternatives = Vec::new();
    if let Some(name) = &rule.match_name {
        alternatives.push(Hir::literal(name.as_bytes()));
    }
    if let Some(pattern) = &rule.match_pattern {
        if pattern == "*." {
            let any = Hir::class(Class::Bytes(ClassBytes::new([ClassBytesRange::new(
                0, 255,
            )])));
            alternatives.push(Hir::repetition(Repetition {
                min: 0,
                max: None,
                greedy: true,
                sub: Box::new(any),
            }));
        } else {
            let mut parts = Vec::new();
            for piece in pattern.split_inclusive('*') {
                let literal = piece.strip_suffix('*');
                parts.push(Hir::literal(literal.unwrap_or(piece).as_bytes()));
                if literal.is_some() {
                    parts.push(Hir::repetition(Repetition {
                        min: 0,
                        max: None,
                        greedy: true,
                        sub: Box::new(dns_label_chars()),
                    }));
                }
            }
            alternatives.push(Hir::concat(parts));
        }
    }
    Hir::alternation(alternatives)
}

/// Compiles a set of Cilium DNS rules (`matchName` / `matchPattern`) into a
/// kernel table over the query name as the kernel spells it: lower case,
/// labels joined by dots, with the trailing dot (`www.cilium.io.`). An
/// accepting state names the lowest-numbered matching rule, as for HTTP.
pub fn compile_dns_rules(rules: &[DnsRule]) -> Result<Box<L7DfaTable>, L7CompileError> {
    if rules.len() > 65534 {
        return Err(L7CompileError::TooManyRules(rules.len()));
    }
    let build = |merged: bool| {
        let mut table = Box::new(L7DfaTable::zeroed());
        table.magic = L7_DFA_MAGIC;
        table.version = L7_DFA_VERSION;
        table.num_rules = rules.len() as u16;
        table.num_states = 1;
        table.num_classes = 1;
        if rules.is_empty() {
            return Ok(table);
        }
        table_from_hirs(table, rules.iter().map(dns_rule_hir).collect(), merged)
    };
    match build(false) {
        Err(L7CompileError::TooManyStates { .. } | L7CompileError::TooManyClasses { .. })
            if rules.len() > 1 =>
        {
            build(true)
        }
        other => other,
    }
}

/// Walks a DNS table over a normalised query name (lower case, trailing
/// dot): the matching rule's index, as the kernel decides it.
pub fn walk_dns(table: &L7DfaTable, name: &str) -> Option<usize> {
    match table.walk(name.as_bytes()) {
        0 => None,
        n => Some(usize::from(n) - 1),
    }
}

/// Compiles a set of Cilium HTTP rules: rules that constrain host or headers
/// are left out (fail closed) and listed in [`CompiledTable::excluded`].
pub fn compile_http_rules(rules: &[HttpRule]) -> Result<CompiledTable, L7CompileError> {
    let mut rule_index = Vec::new();
    let mut excluded = Vec::new();
    let mut lines = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        if r.request_line_only() {
            rule_index.push(i);
            lines.push(RequestLineRule {
                method: r.method.as_ref().map(|m| m.pattern()),
                path: r.path.as_ref().map(|m| m.pattern()),
            });
        } else {
            excluded.push(i);
        }
    }
    let table = compile_request_line(&lines)?;
    Ok(CompiledTable {
        table,
        rule_index,
        excluded,
    })
}

/// The user-space walk: `Some(rule)` (index into the compiled rules) when
/// `METHOD SP path` is accepted, `None` otherwise. For a merged table
/// ([`L7_DFA_FLAG_MERGED`]) a match is reported as `Some(0)` (no rule is
/// named). Fails closed when the method or path contains a space.
pub fn walk(table: &L7DfaTable, method: &str, path: &str) -> Option<usize> {
    if method.contains(' ') || path.contains(' ') {
        return None;
    }
    match table.walk_parts(&[method.as_bytes(), b" ", path.as_bytes()]) {
        0 => None,
        n => Some(n as usize - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rl<'a>(m: Option<&'a str>, p: Option<&'a str>) -> RequestLineRule<'a> {
        RequestLineRule { method: m, path: p }
    }

    #[test]
    fn seed_rule_set() {
        let path = "/intersystems/fhir/r5/Patient/DarthVader";
        let t = compile_request_line(&[rl(Some("GET"), Some(path)), rl(Some("HEAD"), Some(path))])
            .unwrap();
        assert_eq!(walk(&t, "GET", path), Some(0));
        assert_eq!(walk(&t, "HEAD", path), Some(1));
        assert_eq!(walk(&t, "PUT", path), None);
        assert_eq!(
            walk(&t, "GET", "/intersystems/fhir/r5/Patient/LukeSkywalker"),
            None
        );
        assert_eq!(walk(&t, "GET", &format!("{path}?_format=json")), None);
        assert!(
            t.num_states > 40 && (t.num_states as usize) < L7_DFA_MAX_STATES,
            "{}",
            t.num_states
        );
    }

    #[test]
    fn anchors_keep_their_per_field_meaning() {
        let t = compile_request_line(&[rl(Some("^GET$"), Some("^/a$"))]).unwrap();
        assert_eq!(walk(&t, "GET", "/a"), Some(0));
        assert_eq!(walk(&t, "GET", "/ab"), None);
        let t = compile_request_line(&[rl(Some(r"GET\b"), Some(r"/v1/.*"))]).unwrap();
        assert_eq!(walk(&t, "GET", "/v1/x?y"), Some(0));
        assert_eq!(walk(&t, "GET", "/v1"), None);
    }

    #[test]
    fn any_method_and_path() {
        let t = compile_request_line(&[rl(None, Some("/public"))]).unwrap();
        assert_eq!(walk(&t, "DELETE", "/public"), Some(0));
        let t = compile_request_line(&[rl(Some("POST"), None)]).unwrap();
        assert_eq!(walk(&t, "POST", "/anything?at=all"), Some(0));
        assert_eq!(walk(&t, "GET", "/"), None);
        assert_eq!(
            walk(&t, "POST", "/a b"),
            None,
            "a space in the path fails closed"
        );
        let t = compile_request_line(&[]).unwrap();
        assert_eq!(walk(&t, "GET", "/"), None);
    }

    #[test]
    fn too_many_states_is_an_error_not_a_truncation() {
        let paths: Vec<String> = (0..80)
            .map(|i| format!("/service-{i}/v{i}/resource-{}/item", i * 7919))
            .collect();
        let rules: Vec<RequestLineRule<'_>> =
            paths.iter().map(|p| rl(Some("GET"), Some(p))).collect();
        match compile_request_line(&rules) {
            Err(L7CompileError::TooManyStates { max, .. }) => assert_eq!(max, L7_DFA_MAX_STATES),
            other => panic!("expected TooManyStates, got {other:?}"),
        }
    }

    #[test]
    fn falls_back_to_a_merged_table() {
        let paths: Vec<String> = (0..6)
            .map(|i| format!("/fhir/r5/Patient/person-number-{i}"))
            .collect();
        let mut rules = Vec::new();
        for p in &paths {
            for m in ["GET", "HEAD", "OPTIONS"] {
                rules.push(rl(Some(m), Some(p)));
            }
        }
        let named = compile_request_line_with(&rules, false);
        let merged = compile_request_line_with(&rules, true).unwrap();
        assert_eq!(merged.flags, L7_DFA_FLAG_MERGED);
        if let Ok(n) = &named {
            assert!(
                merged.num_states < n.num_states,
                "{} vs {}",
                merged.num_states,
                n.num_states
            );
        }
        let t = compile_request_line(&rules).unwrap();
        assert!(walk(&t, "HEAD", &paths[5]).is_some());
        assert_eq!(walk(&t, "PUT", &paths[5]), None);
    }

    #[test]
    fn bad_regex_names_the_rule() {
        let e =
            compile_request_line(&[rl(Some("GET"), Some("/ok")), rl(Some("("), None)]).unwrap_err();
        assert!(matches!(e, L7CompileError::Regex { rule: 1, .. }), "{e:?}");
    }
}

#[cfg(test)]
mod dns_table_tests {
    use super::*;
    use crate::{
        dns::{DnsRule, normalize},
        model::Origin,
    };

    fn rule(name: Option<&str>, pattern: Option<&str>) -> DnsRule {
        DnsRule {
            origin: Origin::default(),
            match_name: name.map(normalize),
            match_pattern: pattern.map(normalize),
        }
    }

    /// The kernel table decides exactly as `DnsRule::matches` does.
    #[test]
    fn dns_tables_agree_with_the_rule_semantics() {
        let rules = [
            rule(
                Some("coruscanthealth.galactic-fhir.svc.cluster.local"),
                None,
            ),
            rule(None, Some("*.cilium.io")),
            rule(None, Some("api-*.example.com")),
        ];
        let table = compile_dns_rules(&rules).expect("compiles");
        let names = [
            "coruscanthealth.galactic-fhir.svc.cluster.local.",
            "coruscanthealth.galactic-fhir.svc.cluster.local.evil.",
            "www.cilium.io.",
            "cilium.io.",
            "a.b.cilium.io.",
            "api-1.example.com.",
            "api-.example.com.",
            "apix.example.com.",
            "api-1.sub.example.com.",
            "",
            ".",
        ];
        for name in names {
            let expected = rules.iter().position(|r| r.matches(name));
            assert_eq!(walk_dns(&table, name), expected, "{name:?}");
        }
    }

    #[test]
    fn star_alone_matches_every_name() {
        let table = compile_dns_rules(&[rule(None, Some("*"))]).expect("compiles");
        for name in ["a.", "kube-dns.kube-system.svc.cluster.local.", "x.y.z."] {
            assert_eq!(walk_dns(&table, name), Some(0), "{name}");
        }
    }

    #[test]
    fn no_rules_match_nothing() {
        let table = compile_dns_rules(&[]).expect("compiles");
        assert_eq!(walk_dns(&table, "a."), None);
    }
}
