//! The filter grammar shared by the command line and the `/` filter bar.
//!
//! The bar takes the same words as the command line: Hubble's filter flags
//! (`--verdict DROPPED --from-label app=payer --not --http-method GET`) and
//! holonet's `--filter SELECTOR`. As a shorthand, a word that is not a flag
//! is a `--filter` selector, so typing `org=payer` is `--filter org=payer`.
//! Quote values with spaces: `"org in (payer,empire)"`.
//!
//! Parsing is pure and validates everything the server would (flag names,
//! values, label selectors, regexes, CIDRs), so a filter the bar accepts
//! never fails later, and a bad one is explained while it is typed.

use holonet_flows::{
    filter::FlowFilterSet,
    flags::{FilterArgs, FilterFlag, FilterToken},
    selector::Selector,
};

/// A filter ready to apply, with the words it came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActiveFilter {
    /// The flags in order.
    pub(crate) args: FilterArgs,
    /// The compiled whitelist/blacklist.
    pub(crate) set: FlowFilterSet,
    /// The active filter in plain words, for the header.
    pub(crate) description: String,
    /// Label keys the filter mentions (shown next to pod names).
    pub(crate) label_keys: Vec<String>,
}

impl ActiveFilter {
    /// Compiles flags that came from the command line or the bar.
    pub(crate) fn from_args(args: FilterArgs) -> Result<Self, String> {
        let filters = args.build().map_err(|e| e.to_string())?;
        let set = FlowFilterSet::new(&filters.whitelist, &filters.blacklist)
            .map_err(|e| format!("invalid filter: {e}"))?;
        let description = args.describe();
        let label_keys = label_keys(&args);
        Ok(Self {
            args,
            set,
            description,
            label_keys,
        })
    }

    /// The filter written back in the bar's grammar (to edit it).
    pub(crate) fn text(&self) -> String {
        to_text(&self.args)
    }
}

/// Parses and validates what was typed in the filter bar.
pub(crate) fn parse(input: &str) -> Result<ActiveFilter, String> {
    ActiveFilter::from_args(parse_args(input)?)
}

/// The words of the bar as filter flags (without compiling them).
pub(crate) fn parse_args(input: &str) -> Result<FilterArgs, String> {
    let words = split_words(input)?;
    let mut args = FilterArgs::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if word == "--not" || word == "!" && words.get(i).is_some_and(|w| w.starts_with('-')) {
            args.not();
            continue;
        }
        let (flag, inline) = if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            match FilterFlag::from_name(name) {
                Some(f) => (f, inline),
                None => return Err(unknown_flag(&format!("--{name}"))),
            }
        } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let c = chars.next().unwrap_or('-');
            let rest: String = chars.collect();
            match FilterFlag::from_short(c) {
                Some(f) => (
                    f,
                    (!rest.is_empty()).then(|| rest.trim_start_matches('=').to_owned()),
                ),
                None => return Err(unknown_flag(&format!("-{c}"))),
            }
        } else {
            // A bare word is a label selector for either side.
            (FilterFlag::Filter, Some(word.clone()))
        };
        if !flag.takes_value() {
            if inline.is_some() {
                return Err(format!("--{} takes no value", flag.name()));
            }
            args.push(flag, "");
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => match words.get(i) {
                Some(v) if !v.starts_with("--") => {
                    i += 1;
                    v.clone()
                }
                _ => return Err(format!("--{} needs a value", flag.name())),
            },
        };
        if value.trim().is_empty() {
            return Err(format!("--{} needs a value", flag.name()));
        }
        if matches!(
            flag,
            FilterFlag::Filter | FilterFlag::Label | FilterFlag::FromLabel | FilterFlag::ToLabel
        ) {
            Selector::parse(&value).map_err(|e| format!("--{}: {e}", flag.name()))?;
        }
        args.push(flag, value);
    }
    Ok(args)
}

fn unknown_flag(flag: &str) -> String {
    let bare = flag.trim_start_matches('-');
    let mut near: Vec<&str> = FilterFlag::all()
        .map(|f| f.name())
        .filter(|n| {
            !bare.is_empty() && (n.contains(bare) || bare.contains(*n) || n.starts_with(&bare[..1]))
        })
        .take(4)
        .collect();
    if near.is_empty() {
        near = vec!["verdict", "from-label", "to-label", "http-path"];
    }
    format!(
        "unknown filter flag {flag}; did you mean {}? (press ? for the list)",
        near.iter()
            .map(|n| format!("--{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Splits like a shell: whitespace separates words, `'…'` and `"…"` quote,
/// `\` escapes the next character.
pub(crate) fn split_words(input: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = input.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    in_word = true;
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Writes flags back as text the bar parses to the same flags.
pub(crate) fn to_text(args: &FilterArgs) -> String {
    let quote = |v: &str| {
        if !v.is_empty()
            && v.chars()
                .all(|c| !c.is_whitespace() && !matches!(c, '\'' | '"' | '\\'))
        {
            v.to_owned()
        } else {
            format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
        }
    };
    let mut out: Vec<String> = Vec::new();
    for tok in &args.tokens {
        match tok {
            FilterToken::Not => out.push("--not".to_owned()),
            FilterToken::Flag(f, v) if f.takes_value() => {
                out.push(format!("--{} {}", f.name(), quote(v)))
            }
            FilterToken::Flag(f, _) => out.push(format!("--{}", f.name())),
        }
    }
    out.join(" ")
}

/// Label keys the selector flags of a filter mention (`org` in `org=payer`).
fn label_keys(args: &FilterArgs) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for tok in &args.tokens {
        if let FilterToken::Flag(
            FilterFlag::Filter | FilterFlag::Label | FilterFlag::FromLabel | FilterFlag::ToLabel,
            v,
        ) = tok
        {
            if let Ok(sel) = Selector::parse(v) {
                for r in sel.requirements() {
                    if !keys.contains(&r.key) && !r.key.starts_with("io.") {
                        keys.push(r.key.clone());
                    }
                }
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use holonet_proto::flow::{Endpoint, Flow, Verdict};

    use super::*;

    fn payer_drop() -> Flow {
        Flow {
            verdict: Verdict::Dropped as i32,
            source: Some(Endpoint {
                labels: vec!["k8s:org=payer".into()],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn bare_words_are_either_side_selectors() {
        let f = parse("org=payer").unwrap();
        assert_eq!(
            f.args.tokens,
            vec![FilterToken::Flag(FilterFlag::Filter, "org=payer".into())]
        );
        assert!(f.set.matches(&payer_drop()));
        assert!(!f.set.matches(&Flow::default()));
        assert_eq!(f.label_keys, vec!["org".to_owned()]);
        assert!(f.description.contains("org=payer"), "{}", f.description);
    }

    #[test]
    fn flags_not_and_quotes() {
        let f = parse("--verdict DROPPED --not --http-method=PUT 'org in (payer,empire)'").unwrap();
        assert_eq!(f.args.tokens.len(), 4);
        assert!(f.set.matches(&payer_drop()));
        let mut fwd = payer_drop();
        fwd.verdict = Verdict::Forwarded as i32;
        assert!(!f.set.matches(&fwd));
        // Round trip through the text form.
        let again = parse(&f.text()).unwrap();
        assert_eq!(again.args, f.args);
        assert!(parse("-n galactic-fhir").is_ok());
    }

    #[test]
    fn empty_input_is_all_flows() {
        let f = parse("   ").unwrap();
        assert!(f.set.is_empty());
        assert_eq!(f.description, "all flows");
    }

    #[test]
    fn bad_input_is_explained_never_panics() {
        let e = parse("--colour red").unwrap_err();
        assert!(e.starts_with("unknown filter flag --colour"), "{e}");
        let e = parse("--http-path '('").unwrap_err();
        assert!(e.contains("http_path"), "{e}");
        let e = parse("--verdict").unwrap_err();
        assert_eq!(e, "--verdict needs a value");
        let e = parse("--verdict NOPE").unwrap_err();
        assert!(e.to_lowercase().contains("verdict"), "{e}");
        let e = parse("'org=payer").unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
        let e = parse("org in (payer").unwrap_err();
        assert!(!e.is_empty());
        let e = parse("--not").unwrap_err();
        assert!(e.contains("--not"), "{e}");
        let e = parse("--ipv4=yes").unwrap_err();
        assert!(e.contains("takes no value"), "{e}");
        let e = parse("-z x").unwrap_err();
        assert!(e.contains("-z"), "{e}");
        for junk in [
            "\"",
            "\\",
            "--",
            "-",
            "--=",
            "==",
            "( )",
            "!",
            "--not --not -4",
        ] {
            let _ = parse(junk);
        }
    }
}
