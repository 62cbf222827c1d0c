//! Kubernetes label selectors over Cilium labels, as Hubble's label filters
//! evaluate them.
//!
//! Syntax (Kubernetes `labels.Parse`): requirements separated by commas, all
//! of which must hold: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`,
//! `k` (exists), `!k` (does not exist), `k>3`, `k<3`. The empty selector
//! selects everything.
//!
//! Cilium semantics (cilium/cilium `pkg/hubble/filters/labelparser.go` and
//! `pkg/labels`): flow labels are `source:key=value` (`k8s:org=payer`,
//! `reserved:world`). A selector key may carry a source prefix
//! (`k8s:org=payer`), which then only matches labels of that source; a key
//! without one gets the source `any` and matches a label of any source with
//! that key. Keys are validated the way Kubernetes validates the translated
//! key (`source.key`), values as Kubernetes label values.
//!
//! Matching never allocates: flow labels are split on the fly.

use std::{fmt, str::FromStr};

/// A parsed label selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// One requirement of a selector, e.g. `k8s:org in (payer, empire)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// Label source the key must come from; `None` means `any`.
    pub source: Option<String>,
    /// Label key without the source.
    pub key: String,
    /// The operator and its operands.
    pub op: Operator,
}

/// Selector operators, as in Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// `k=v` or `k==v`: the label exists with value `v`.
    Equals(String),
    /// `k!=v`: the label is absent or its value differs from `v`.
    NotEquals(String),
    /// `k in (a,b)`: the label exists with one of the values.
    In(Vec<String>),
    /// `k notin (a,b)`: the label is absent or has none of the values.
    NotIn(Vec<String>),
    /// `k`: the label exists.
    Exists,
    /// `!k`: the label is absent.
    DoesNotExist,
    /// `k>n`: the label exists with an integer value greater than `n`.
    GreaterThan(i64),
    /// `k<n`: the label exists with an integer value less than `n`.
    LessThan(i64),
}

/// Why a selector could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid label selector `{input}`: {message} (at byte {position})")]
pub struct SelectorError {
    /// The selector as given.
    pub input: String,
    /// Byte offset of the problem.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token<'a> {
    Ident(&'a str),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

fn is_special(b: u8) -> bool {
    matches!(b, b'!' | b'=' | b'(' | b')' | b',' | b'<' | b'>')
}

impl<'a> Lexer<'a> {
    /// Returns the next token and the byte offset where it starts.
    fn next_token(&mut self) -> (Token<'a>, usize) {
        let bytes = self.input.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&b) = bytes.get(self.pos) else {
            return (Token::End, start);
        };
        let next = bytes.get(self.pos + 1).copied();
        let (tok, len) = match (b, next) {
            (b'!', Some(b'=')) => (Token::NotEq, 2),
            (b'!', _) => (Token::Not, 1),
            (b'=', Some(b'=')) => (Token::DoubleEq, 2),
            (b'=', _) => (Token::Eq, 1),
            (b'>', _) => (Token::Gt, 1),
            (b'<', _) => (Token::Lt, 1),
            (b'(', _) => (Token::Open, 1),
            (b')', _) => (Token::Close, 1),
            (b',', _) => (Token::Comma, 1),
            _ => {
                let mut end = self.pos;
                while end < bytes.len()
                    && !bytes[end].is_ascii_whitespace()
                    && !is_special(bytes[end])
                {
                    end += 1;
                }
                // Identifiers end at ASCII bytes only, so `start..end` is a
                // char boundary range.
                let ident = self.input.get(start..end).unwrap_or("");
                self.pos = end;
                return (Token::Ident(ident), start);
            }
        };
        self.pos += len;
        (tok, start)
    }

    fn peek(&mut self) -> (Token<'a>, usize) {
        let saved = self.pos;
        let t = self.next_token();
        self.pos = saved;
        t
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    input: &'a str,
}

impl<'a> Parser<'a> {
    fn err(&self, position: usize, message: impl Into<String>) -> SelectorError {
        SelectorError {
            input: self.input.to_owned(),
            position,
            message: message.into(),
        }
    }

    fn parse(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if matches!(self.lexer.peek().0, Token::End) {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            match self.lexer.next_token() {
                (Token::End, _) => break,
                (Token::Comma, _) => {}
                (t, pos) => {
                    return Err(self.err(
                        pos,
                        format!("expected `,` or end of selector, found {}", describe(&t)),
                    ));
                }
            }
        }
        Ok(Selector { requirements })
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let (tok, pos) = self.lexer.next_token();
        let (negated, (tok, pos)) = match tok {
            Token::Not => (true, self.lexer.next_token()),
            t => (false, (t, pos)),
        };
        let Token::Ident(raw_key) = tok else {
            return Err(self.err(
                pos,
                format!("expected a label key, found {}", describe(&tok)),
            ));
        };
        if raw_key == "in" || raw_key == "notin" {
            return Err(self.err(
                pos,
                format!("expected a label key, found keyword `{raw_key}`"),
            ));
        }
        let (source, key) = split_key(raw_key);
        validate_key(source.unwrap_or("any"), key).map_err(|m| self.err(pos, m))?;
        let source = source.map(str::to_owned);
        let key = key.to_owned();
        if negated {
            return Ok(Requirement {
                source,
                key,
                op: Operator::DoesNotExist,
            });
        }
        let (op_tok, op_pos) = self.lexer.peek();
        let op = match op_tok {
            Token::End | Token::Comma => Operator::Exists,
            Token::Eq | Token::DoubleEq => {
                self.lexer.next_token();
                Operator::Equals(self.exact_value()?)
            }
            Token::NotEq => {
                self.lexer.next_token();
                Operator::NotEquals(self.exact_value()?)
            }
            Token::Gt | Token::Lt => {
                self.lexer.next_token();
                let (t, p) = self.lexer.next_token();
                let Token::Ident(v) = t else {
                    return Err(self.err(p, format!("expected an integer, found {}", describe(&t))));
                };
                let n: i64 = v
                    .parse()
                    .map_err(|_| self.err(p, format!("`{v}` is not an integer")))?;
                if matches!(op_tok, Token::Gt) {
                    Operator::GreaterThan(n)
                } else {
                    Operator::LessThan(n)
                }
            }
            Token::Ident("in") => {
                self.lexer.next_token();
                Operator::In(self.value_set()?)
            }
            Token::Ident("notin") => {
                self.lexer.next_token();
                Operator::NotIn(self.value_set()?)
            }
            t => {
                return Err(self.err(
                    op_pos,
                    format!(
                        "expected an operator (=, ==, !=, in, notin, <, >), found {}",
                        describe(&t)
                    ),
                ));
            }
        };
        Ok(Requirement { source, key, op })
    }

    fn exact_value(&mut self) -> Result<String, SelectorError> {
        match self.lexer.peek() {
            (Token::End | Token::Comma, _) => Ok(String::new()),
            (Token::Ident(v), pos) => {
                self.lexer.next_token();
                validate_value(v).map_err(|m| self.err(pos, m))?;
                Ok(v.to_owned())
            }
            (t, pos) => Err(self.err(pos, format!("expected a value, found {}", describe(&t)))),
        }
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        let (t, pos) = self.lexer.next_token();
        if !matches!(t, Token::Open) {
            return Err(self.err(pos, format!("expected `(`, found {}", describe(&t))));
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            let (t, pos) = self.lexer.next_token();
            match t {
                Token::Ident(v) if expect_value => {
                    validate_value(v).map_err(|m| self.err(pos, m))?;
                    values.push(v.to_owned());
                    expect_value = false;
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Token::Close => {
                    if expect_value && !values.is_empty() {
                        values.push(String::new());
                    }
                    break;
                }
                t => {
                    return Err(self.err(
                        pos,
                        format!("expected a value, `,` or `)`, found {}", describe(&t)),
                    ));
                }
            }
        }
        if values.is_empty() {
            return Err(self.err(pos, "the value set of `in` and `notin` must not be empty"));
        }
        Ok(values)
    }
}

fn describe(t: &Token<'_>) -> String {
    match t {
        Token::Ident(s) => format!("`{s}`"),
        Token::Not => "`!`".into(),
        Token::Eq => "`=`".into(),
        Token::DoubleEq => "`==`".into(),
        Token::NotEq => "`!=`".into(),
        Token::Gt => "`>`".into(),
        Token::Lt => "`<`".into(),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::Comma => "`,`".into(),
        Token::End => "end of selector".into(),
    }
}

/// `k8s:org` → (Some("k8s"), "org"); `org` → (None, "org").
fn split_key(raw: &str) -> (Option<&str>, &str) {
    match raw.split_once(':') {
        Some((src, key)) => (Some(src), key),
        None => (None, raw),
    }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Kubernetes `IsQualifiedName` applied to the translated key
/// `source.key`, as Hubble hands it to the Kubernetes parser.
fn validate_key(source: &str, key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("empty label key".into());
    }
    let translated_len = source.len() + 1 + key.len();
    let (prefix_len, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => {
            let full_prefix_len = source.len() + 1 + prefix.len();
            let prefix_ok = !prefix.is_empty()
                && full_prefix_len <= 253
                && source.bytes().chain(prefix.bytes()).all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !prefix_ok || prefix.contains('/') {
                return Err(format!(
                    "label key `{key}`: the prefix must be a lowercase DNS subdomain"
                ));
            }
            (full_prefix_len, name)
        }
        None => (0, key),
    };
    let name_len = if prefix_len == 0 {
        translated_len
    } else {
        name.len()
    };
    let bytes = name.as_bytes();
    let name_ok = !bytes.is_empty()
        && name_len <= 63
        && bytes.first().is_some_and(|b| is_alnum(*b))
        && bytes.last().is_some_and(|b| is_alnum(*b))
        && bytes
            .iter()
            .all(|b| is_alnum(*b) || matches!(b, b'-' | b'_' | b'.'));
    if !name_ok {
        return Err(format!(
            "label key `{key}`: must be 63 characters or less (source included), begin and end with an alphanumeric character and contain only alphanumerics, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

/// Kubernetes `IsValidLabelValue`.
fn validate_value(v: &str) -> Result<(), String> {
    let b = v.as_bytes();
    let ok = b.is_empty()
        || (b.len() <= 63
            && b.first().is_some_and(|c| is_alnum(*c))
            && b.last().is_some_and(|c| is_alnum(*c))
            && b.iter()
                .all(|c| is_alnum(*c) || matches!(c, b'-' | b'_' | b'.')));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "label value `{v}`: must be 63 characters or less, begin and end with an alphanumeric character and contain only alphanumerics, `-`, `_` and `.`"
        ))
    }
}

/// Splits a Cilium label `source:key=value` into its parts, the way
/// `labels.ParseLabel` does (no `:` means source `unspec`; `$host` means
/// `reserved:host`).
pub fn split_label(label: &str) -> (&str, &str, &str) {
    let (source, rest) = if let Some(rest) = label.strip_prefix('$') {
        ("reserved", rest)
    } else {
        match label.split_once(':') {
            Some((s, r)) => (s, r),
            None => ("unspec", label),
        }
    };
    match rest.split_once('=') {
        Some((k, v)) => (source, k, v),
        None => (source, rest, ""),
    }
}

impl Requirement {
    /// Value of the first flow label this requirement's key selects.
    fn lookup<'l, I>(&self, labels: I) -> Option<&'l str>
    where
        I: IntoIterator<Item = &'l str>,
    {
        labels.into_iter().find_map(|l| {
            let (src, key, value) = split_label(l);
            let source_ok = match &self.source {
                None => true,
                Some(s) => s == "any" || s == src,
            };
            (source_ok && key == self.key).then_some(value)
        })
    }

    /// Whether the requirement holds for these flow labels.
    pub fn matches<'l, I>(&self, labels: I) -> bool
    where
        I: IntoIterator<Item = &'l str>,
    {
        let found = self.lookup(labels);
        match &self.op {
            Operator::Exists => found.is_some(),
            Operator::DoesNotExist => found.is_none(),
            Operator::Equals(v) => found == Some(v.as_str()),
            Operator::NotEquals(v) => found != Some(v.as_str()),
            Operator::In(vs) => found.is_some_and(|f| vs.iter().any(|v| v == f)),
            Operator::NotIn(vs) => !found.is_some_and(|f| vs.iter().any(|v| v == f)),
            Operator::GreaterThan(n) => found
                .and_then(|f| f.parse::<i64>().ok())
                .is_some_and(|f| f > *n),
            Operator::LessThan(n) => found
                .and_then(|f| f.parse::<i64>().ok())
                .is_some_and(|f| f < *n),
        }
    }
}

impl Selector {
    /// Parses a selector; see the module documentation for the syntax.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        Parser {
            lexer: Lexer { input, pos: 0 },
            input,
        }
        .parse()
    }

    /// Whether this selector selects everything (it has no requirements).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, all of which must hold.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether all requirements hold for these Cilium labels.
    pub fn matches(&self, labels: &[String]) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(labels.iter().map(String::as_str)))
    }
}

impl FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = match &self.source {
            Some(s) => format!("{s}:{}", self.key),
            None => self.key.clone(),
        };
        match &self.op {
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::Equals(v) => write!(f, "{key}={v}"),
            Operator::NotEquals(v) => write!(f, "{key}!={v}"),
            Operator::In(vs) => write!(f, "{key} in ({})", vs.join(",")),
            Operator::NotIn(vs) => write!(f, "{key} notin ({})", vs.join(",")),
            Operator::GreaterThan(n) => write!(f, "{key}>{n}"),
            Operator::LessThan(n) => write!(f, "{key}<{n}"),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ls: &[&str]) -> Vec<String> {
        ls.iter().map(|s| (*s).to_owned()).collect()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn operators_follow_kubernetes_semantics() {
        let payer = labels(&["k8s:org=payer", "k8s:app=ledger", "k8s:tier=3"]);
        let none = labels(&["reserved:world"]);
        let table: &[(&str, bool, bool)] = &[
            // selector, matches payer, matches world
            ("org=payer", true, false),
            ("org==payer", true, false),
            ("org=empire", false, false),
            ("org!=empire", true, true),
            ("org!=payer", false, true),
            ("org in (empire, payer)", true, false),
            ("org in (empire)", false, false),
            ("org notin (empire)", true, true),
            ("org notin (payer,empire)", false, true),
            ("org", true, false),
            ("!org", false, true),
            ("org=payer,app=ledger", true, false),
            ("org=payer,app=other", false, false),
            ("org=payer, !app", false, false),
            ("tier>2", true, false),
            ("tier<3", false, false),
            ("", true, true),
            ("reserved:world", false, true),
            ("world", false, true),
        ];
        for (s, p, w) in table {
            assert_eq!(sel(s).matches(&payer), *p, "{s} on payer");
            assert_eq!(sel(s).matches(&none), *w, "{s} on world");
        }
    }

    #[test]
    fn sources_restrict_matches_but_any_matches_all() {
        let l = labels(&["k8s:org=payer", "container:role=x"]);
        assert!(sel("k8s:org=payer").matches(&l));
        assert!(sel("any:org=payer").matches(&l));
        assert!(!sel("container:org=payer").matches(&l));
        assert!(sel("role=x").matches(&l));
        assert!(!sel("k8s:role=x").matches(&l));
        // Dotted keys without a source keep their dots (any source).
        let ns = labels(&["k8s:io.kubernetes.pod.namespace=default"]);
        assert!(sel("io.kubernetes.pod.namespace=default").matches(&ns));
        assert!(sel("k8s:io.kubernetes.pod.namespace in (default)").matches(&ns));
        assert!(sel("app.kubernetes.io/name").matches(&labels(&["k8s:app.kubernetes.io/name=x"])));
    }

    #[test]
    fn bad_selectors_are_errors_with_positions() {
        for bad in [
            "org in (",
            "org in ()",
            "org in payer",
            "org =",
            "=payer",
            "org==payer)",
            "org payer",
            "org=pay er",
            "org=-bad",
            "!",
            "org,",
            ",",
            "k>x",
            "k8s:",
            "Bad/Key=x",
            "in=x",
            "org=(x)",
        ] {
            let r = Selector::parse(bad);
            if bad == "org =" {
                // `org =` is `org=` with an empty value, valid in Kubernetes.
                assert!(r.is_ok(), "{bad}");
                continue;
            }
            let e = r.expect_err(bad);
            assert!(e.position <= bad.len(), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "org=payer",
            "k8s:org in (a,b)",
            "!x",
            "a!=b,c notin (d)",
            "n>5",
        ] {
            let p = sel(s);
            assert_eq!(sel(&p.to_string()), p, "{s}");
        }
    }

    #[test]
    fn split_label_handles_cilium_forms() {
        assert_eq!(split_label("k8s:org=payer"), ("k8s", "org", "payer"));
        assert_eq!(split_label("reserved:world"), ("reserved", "world", ""));
        assert_eq!(split_label("$host"), ("reserved", "host", ""));
        assert_eq!(split_label("plain=x"), ("unspec", "plain", "x"));
        assert_eq!(split_label("k8s:a=b=c"), ("k8s", "a", "b=c"));
    }
}
