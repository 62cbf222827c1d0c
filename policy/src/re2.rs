//! RE2-flavoured regular expressions, matched against a whole string.
//!
//! Exists because Cilium hands HTTP `method`, `path` and `host` to Envoy as
//! Google RE2 full-string matchers. This module translates the few RE2
//! syntax points where Rust's regex dialect differs (`\d \w \s \b` are ASCII
//! in RE2, `\Q...\E` quoting) and builds anchored DFAs with `regex-automata`,
//! used both by the user-space decision and by the kernel table compiler.

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{Hir, HirKind, Look};

/// Deepest group nesting accepted in one regex.
pub const NEST_LIMIT: u32 = 64;
/// Longest regex accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;
/// Memory limit for building one DFA.
pub const DFA_SIZE_LIMIT: usize = 16 * 1024 * 1024;

/// Translates RE2-only syntax into Rust regex syntax with the same meaning.
pub fn translate(pattern: &str) -> Result<String, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!("regex is longer than {MAX_PATTERN_LEN} bytes"));
    }
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut class_depth = 0usize;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    return Err("regex ends with a lone backslash".into());
                };
                match n {
                    'd' => out.push_str("[0-9]"),
                    'D' => out.push_str("[^0-9]"),
                    'w' => out.push_str("[0-9A-Za-z_]"),
                    'W' => out.push_str("[^0-9A-Za-z_]"),
                    's' => out.push_str("[\\t\\n\\f\\r ]"),
                    'S' => out.push_str("[^\\t\\n\\f\\r ]"),
                    'b' if class_depth == 0 => out.push_str("(?-u:\\b)"),
                    'B' if class_depth == 0 => out.push_str("(?-u:\\B)"),
                    'Q' if class_depth == 0 => {
                        let mut lit = String::new();
                        loop {
                            match chars.next() {
                                None => break,
                                Some('\\') if chars.peek() == Some(&'E') => {
                                    chars.next();
                                    break;
                                }
                                Some(x) => lit.push(x),
                            }
                        }
                        out.push_str(&regex_syntax::escape(&lit));
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            '[' => {
                if class_depth > 0 && chars.peek() == Some(&':') {
                    // POSIX class `[:alpha:]`: copy through `:]`.
                    out.push('[');
                    let mut prev = '\0';
                    for x in chars.by_ref() {
                        out.push(x);
                        if prev == ':' && x == ']' {
                            break;
                        }
                        prev = x;
                    }
                    continue;
                }
                if class_depth > 0 && !at_class_start {
                    // RE2 has no nested classes: `[` inside a class is literal.
                    out.push_str("\\[");
                    continue;
                }
                if class_depth > 0 {
                    out.push_str("\\[");
                    continue;
                }
                class_depth = 1;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                if chars.peek() == Some(&']') {
                    chars.next();
                    out.push_str("\\]");
                }
                class_start = false;
            }
            ']' if class_depth > 0 => {
                class_depth = 0;
                out.push(']');
            }
            '&' | '-' | '~' if class_depth > 0 && chars.peek() == Some(&c) => {
                // Rust treats `&&`, `--`, `~~` in a class as set operations; RE2 as literals.
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// Parses a (translated) pattern into Rust's regex HIR with RE2-compatible
/// flags: Unicode-aware, UTF-8 only, nesting bounded.
pub fn parse_hir(pattern: &str) -> Result<Hir, String> {
    let translated = translate(pattern)?;
    regex_syntax::ParserBuilder::new()
        .nest_limit(NEST_LIMIT)
        .unicode(true)
        .utf8(true)
        .build()
        .parse(&translated)
        .map_err(|e| {
            let text = e.to_string();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid regex");
            format!("invalid regex {pattern:?}: {}", last.trim())
        })
}

/// Which part of the request line a regex applies to in the combined
/// kernel pattern (see [`rewrite_looks`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// A standalone string (host, header value): no rewriting.
    Whole,
    /// The method, followed by the SP of the request line.
    Method,
    /// The request-target, preceded by the SP.
    Path,
}

/// Rewrites anchors so a regex written for a standalone method (or path)
/// keeps its meaning inside `METHOD SP PATH` when the line terminator is SP:
/// `$` of a method becomes "before SP", `^` of a path becomes "after SP".
/// Unicode word boundaries become ASCII ones (RE2's meaning, and DFAs need it).
pub fn rewrite_looks(hir: &Hir, part: Part) -> Hir {
    match hir.kind() {
        HirKind::Look(look) => {
            let l = match (part, *look) {
                (Part::Method, Look::End | Look::EndLF | Look::EndCRLF) => Look::EndLF,
                (Part::Path, Look::Start | Look::StartLF | Look::StartCRLF) => Look::StartLF,
                (_, Look::WordUnicode) => Look::WordAscii,
                (_, Look::WordUnicodeNegate) => Look::WordAsciiNegate,
                (_, Look::WordStartUnicode) => Look::WordStartAscii,
                (_, Look::WordEndUnicode) => Look::WordEndAscii,
                (_, Look::WordStartHalfUnicode) => Look::WordStartHalfAscii,
                (_, Look::WordEndHalfUnicode) => Look::WordEndHalfAscii,
                (_, l) => l,
            };
            Hir::look(l)
        }
        HirKind::Repetition(r) => {
            let mut r = r.clone();
            r.sub = Box::new(rewrite_looks(&r.sub, part));
            Hir::repetition(r)
        }
        HirKind::Capture(c) => Hir::capture(regex_syntax::hir::Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(rewrite_looks(&c.sub, part)),
        }),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(|h| rewrite_looks(h, part)).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(|h| rewrite_looks(h, part)).collect())
        }
        _ => hir.clone(),
    }
}

/// A compiled regex that answers "does it match the whole string?".
#[derive(Clone, Debug)]
pub struct FullMatcher {
    dfa: dense::DFA<Vec<u32>>,
    pattern: String,
}

impl FullMatcher {
    /// Compiles an RE2 pattern for whole-string matching.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let hir = rewrite_looks(&parse_hir(pattern)?, Part::Whole);
        let nfa = regex_automata::nfa::thompson::Compiler::new()
            .configure(
                regex_automata::nfa::thompson::Config::new().nfa_size_limit(Some(DFA_SIZE_LIMIT)),
            )
            .build_from_hir(&hir)
            .map_err(|e| format!("regex {pattern:?} is too complex: {e}"))?;
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .start_kind(StartKind::Anchored)
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(false)
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
            )
            .build_from_nfa(&nfa)
            .map_err(|e| format!("regex {pattern:?} is too complex: {e}"))?;
        Ok(Self {
            dfa,
            pattern: pattern.to_string(),
        })
    }

    /// The pattern as written in the policy.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern matches all of `s`.
    pub fn is_match(&self, s: &str) -> bool {
        let Ok(mut sid) = self
            .dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
        else {
            return false;
        };
        for &b in s.as_bytes() {
            sid = self.dfa.next_state(sid, b);
            if self.dfa.is_dead_state(sid) || self.dfa.is_quit_state(sid) {
                return false;
            }
        }
        sid = self.dfa.next_eoi_state(sid);
        self.dfa.is_match_state(sid)
    }
}

impl PartialEq for FullMatcher {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_string_semantics() {
        let m = FullMatcher::new("GET|HEAD").unwrap();
        assert!(m.is_match("GET"));
        assert!(m.is_match("HEAD"));
        assert!(!m.is_match("GETX"));
        assert!(!m.is_match("get"));
        let p = FullMatcher::new("/v1/.*").unwrap();
        assert!(p.is_match("/v1/"));
        assert!(p.is_match("/v1/a/b?c"));
        assert!(!p.is_match("/v1"));
        assert!(FullMatcher::new("/path1$").unwrap().is_match("/path1"));
        assert!(FullMatcher::new("^ext.org$").unwrap().is_match("ext.org"));
        assert!(FullMatcher::new("(?i)get").unwrap().is_match("GeT"));
    }

    #[test]
    fn re2_ascii_classes() {
        let d = FullMatcher::new(r"/u/\d+").unwrap();
        assert!(d.is_match("/u/123"));
        assert!(!d.is_match("/u/١٢"), "RE2 \\d is ASCII only");
        assert!(FullMatcher::new(r"\Qa.b\E").unwrap().is_match("a.b"));
        assert!(!FullMatcher::new(r"\Qa.b\E").unwrap().is_match("axb"));
        assert!(FullMatcher::new(r"[a&&b]").unwrap().is_match("&"));
        assert!(FullMatcher::new(r"[]a]").unwrap().is_match("]"));
        assert!(FullMatcher::new(r"[[:digit:]x]+").unwrap().is_match("1x2"));
        assert!(FullMatcher::new(r"a\bb").is_ok());
    }

    #[test]
    fn bad_regexes_are_errors() {
        assert!(FullMatcher::new("(").is_err());
        assert!(FullMatcher::new("a{2,1}").is_err());
        assert!(
            FullMatcher::new(r"(a)\1").is_err(),
            "no backreferences in RE2"
        );
        assert!(FullMatcher::new("(?=a)").is_err(), "no lookaround in RE2");
        assert!(FullMatcher::new(&"(".repeat(200)).is_err());
        assert!(FullMatcher::new("\\").is_err());
    }
}
