//! `holonet observe` flags that shape the request or the output, against
//! the seed recording: raw JSON allow/deny lists, `--time-format`,
//! `--numeric`, and the combinations refused with a clear message.

use std::process::{Command, Output};

const SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/seed.jsonl");

fn observe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_holonet"))
        .args(["observe", "--input-file", SEED, "--color", "never"])
        .args(args)
        .output()
        .expect("holonet observe")
}

fn lines(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn refused(args: &[&str]) -> String {
    let out = observe(args);
    assert!(!out.status.success(), "{args:?} should be refused");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn raw_allow_and_deny_lists_combine_like_the_filter_flags() {
    let by_flag = lines(&observe(&["--all", "--verdict", "DROPPED"]));
    assert!(!by_flag.is_empty());
    let allowed = lines(&observe(&[
        "--all",
        "--allowlist",
        r#"{"verdict":["DROPPED"]}"#,
    ]));
    assert_eq!(allowed, by_flag);
    // Two objects in one value are two whitelist entries (OR).
    let either = lines(&observe(&[
        "--all",
        "--allowlist",
        r#"{"verdict":["DROPPED"]} {"http_status_code":["403"]}"#,
    ]));
    assert!(either.len() > by_flag.len(), "{either:?}");
    let denied = lines(&observe(&[
        "--all",
        "--denylist",
        r#"{"verdict":["DROPPED"]}"#,
    ]));
    assert!(denied.iter().all(|l| !l.contains(" DROPPED ")));
    let all = lines(&observe(&["--all"]));
    assert_eq!(denied.len() + by_flag.len(), all.len());
    // --print-raw-filters shows them like hubble.
    let raw = lines(&observe(&[
        "--print-raw-filters",
        "--allowlist",
        r#"{"source_pod":["galactic-fhir/payer"]}"#,
    ]));
    assert!(
        raw.iter().any(|l| l.contains("galactic-fhir/payer")),
        "{raw:?}"
    );
    let err = refused(&["--allowlist", "{not json"]);
    assert!(err.contains("invalid --allowlist"), "{err}");
}

#[test]
fn time_formats_and_numeric_output() {
    let rfc = lines(&observe(&["--last", "2", "--time-format", "rfc3339milli"]));
    assert!(rfc[0].starts_with("2024-09-19T10:49:19.5Z: "), "{rfc:?}");
    assert!(rfc[1].starts_with("2024-09-19T10:49:19.501Z: "), "{rfc:?}");
    let day = lines(&observe(&[
        "--last",
        "1",
        "-o",
        "dict",
        "--time-format",
        "YearMonthDay",
    ]));
    assert!(
        day.iter().any(|l| l == "  TIMESTAMP: 2024-09-19"),
        "{day:?}"
    );
    let numeric = lines(&observe(&["--last", "2", "--numeric"]));
    assert_eq!(
        numeric,
        lines(&observe(&["--last", "2", "--ip-translation=false"]))
    );
    assert!(numeric[0].contains("10.244.3.30:40156 (ID:61004) -> 10.244.1.10:52773"));
    let err = refused(&["--time-format", "Kitchen"]);
    assert!(err.contains("RFC3339Nano"), "the names are listed: {err}");
}

#[test]
fn a_field_mask_applies_to_recordings_as_the_agent_applies_it() {
    let masked = lines(&observe(&[
        "--last",
        "2",
        "-o",
        "jsonpb",
        "--field-mask",
        "verdict,source.pod_name",
    ]));
    assert_eq!(masked.len(), 2);
    for line in &masked {
        assert!(line.starts_with(r#"{"flow":{"verdict":"#), "{line}");
        assert!(
            !line.contains("destination") && !line.contains("l7"),
            "{line}"
        );
    }
    let err = refused(&["-o", "jsonpb", "--field-mask", "bogus.path"]);
    assert!(err.contains("`bogus.path` is not a field"), "{err}");
}

#[test]
fn contradictions_are_refused_with_the_reason() {
    let err = refused(&["--field-mask", "time,verdict"]);
    assert!(err.contains("-o json or jsonpb only"), "{err}");
    let err = refused(&["-A", "-n", "galactic-fhir"]);
    assert!(err.contains("--all-namespaces contradicts"), "{err}");
    // -A alone is the default: every namespace.
    assert_eq!(
        lines(&observe(&["--last", "5", "-A"])),
        lines(&observe(&["--last", "5"]))
    );
}
