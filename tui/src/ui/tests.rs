//! View snapshots (ratatui TestBackend + insta), buffer-cell checks for
//! verdict colours and the selection, and update-logic tests driven by
//! messages, all on the seed story's recording (tests/data/seed.jsonl).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyEventState, KeyModifiers};
use holonet_flows::recording::{Line as RecLine, parse_line};
use holonet_proto::{
    flow::{Flow, Verdict},
    observer::get_flows_response::ResponseTypes,
    wkt::Timestamp,
};
use ratatui::{
    Terminal,
    backend::TestBackend,
    buffer::Buffer,
    layout::Rect,
    style::{Color, Modifier},
};

use super::{
    app::{
        App, Connection, Effect, Event, Mode, Msg, Options, ReplayCmd, ReplayState, SourceMsg,
        Speed,
    },
    explain::{self, PolicyContext},
    filter::{self, ActiveFilter},
    story::{Outcome, Phase, Story},
    theme::Theme,
    view,
};

const SEED: &str = include_str!("../../tests/data/seed.jsonl");

/// The flows of the seed recording, in order.
pub(crate) fn seed_flows() -> Vec<Flow> {
    SEED.lines()
        .filter_map(|l| match parse_line(l.as_bytes()) {
            Ok(RecLine::Event(r)) => match r.response_types {
                Some(ResponseTypes::Flow(f)) => Some(f),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn app_with(capacity: usize, color: bool, filter: &str, replay: bool) -> App {
    let options = Options {
        capacity,
        theme: Theme { color },
        policy: None,
        log_path: "/tmp/holonet-tui-0.log".to_owned(),
        replay_speed: Some(Speed::Factor(1.0)),
        ask_agent: !replay,
    };
    let conn = if replay {
        Connection::Replay("seed.jsonl".to_owned())
    } else {
        Connection::Live("unix:///run/holonet/hubble.sock".to_owned())
    };
    let mut app = App::new(options, filter::parse(filter).unwrap(), conn);
    app.update(Msg::Resize(80, 24));
    app
}

/// The seed story loaded into a dashboard (replay at 10:48:59).
fn seed_app(color: bool, filter: &str) -> App {
    let mut app = app_with(100_000, color, filter, true);
    let flows = seed_flows();
    let last = flows.last().and_then(|f| f.time);
    app.update(Msg::Events(
        flows
            .into_iter()
            .map(|f| Event::Flow(Box::new(f)))
            .collect(),
    ));
    app.update(Msg::Source(SourceMsg::Replay(ReplayState {
        position: last,
        first: Some(Timestamp {
            seconds: 1_726_742_900,
            nanos: 10_000_000,
        }),
        speed: "1x".to_owned(),
        paused: false,
        done: true,
        events: 306,
        skipped: 0,
    })));
    app
}

fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn type_text(app: &mut App, s: &str) {
    for c in s.chars() {
        app.update(key(KeyCode::Char(c)));
    }
}

fn draw(app: &mut App, w: u16, h: u16) -> Terminal<TestBackend> {
    app.update(Msg::Resize(w, h));
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| f.render_widget(view::Dashboard(app), f.area()))
        .unwrap();
    t
}

fn buffer(app: &mut App, w: u16, h: u16) -> Buffer {
    app.update(Msg::Resize(w, h));
    let mut buf = Buffer::empty(Rect::new(0, 0, w, h));
    view::render(app, buf.area, &mut buf);
    buf
}

fn line(buf: &Buffer, y: u16) -> String {
    (0..buf.area.width)
        .map(|x| buf[(x, y)].symbol())
        .collect::<String>()
}

/// Every line of the buffer.
fn screen(buf: &Buffer) -> String {
    (0..buf.area.height)
        .map(|y| line(buf, y))
        .collect::<Vec<_>>()
        .join("\n")
}

fn find(buf: &Buffer, needle: &str) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for y in 0..buf.area.height {
        let l = line(buf, y);
        let mut from = 0;
        while let Some(i) = l[from..].find(needle) {
            let byte = from + i;
            let x = l[..byte].chars().count();
            out.push((u16::try_from(x).unwrap(), y));
            from = byte + needle.len();
        }
    }
    out
}

// ---- snapshots -----------------------------------------------------------

#[test]
fn snapshot_main_view_80x24() {
    let mut app = seed_app(true, "");
    insta::assert_snapshot!("main_80x24", draw(&mut app, 80, 24).backend());
}

#[test]
fn snapshot_payer_filter_120x30() {
    let mut app = seed_app(true, "org=payer");
    insta::assert_snapshot!("payer_120x30", draw(&mut app, 120, 30).backend());
}

#[test]
fn snapshot_wide_with_all_panels_160x40() {
    let mut app = seed_app(true, "");
    app.update(key(KeyCode::Char('3')));
    app.update(key(KeyCode::Char('4')));
    insta::assert_snapshot!("wide_panels_160x40", draw(&mut app, 160, 40).backend());
}

#[test]
fn snapshot_detail_of_a_payer_drop() {
    let mut app = seed_app(true, "org=payer --verdict DROPPED --type l7");
    app.update(key(KeyCode::Enter));
    assert!(matches!(app.mode, Mode::Detail { .. }));
    insta::assert_snapshot!("detail_drop_100x40", draw(&mut app, 100, 40).backend());
}

#[test]
fn snapshot_help_overlay() {
    let mut app = seed_app(true, "");
    app.update(key(KeyCode::Char('?')));
    insta::assert_snapshot!("help_100x30", draw(&mut app, 100, 30).backend());
}

#[test]
fn snapshot_filter_bar_with_an_error() {
    let mut app = seed_app(true, "");
    app.update(key(KeyCode::Char('/')));
    type_text(&mut app, "--colour red");
    insta::assert_snapshot!("filter_error_80x24", draw(&mut app, 80, 24).backend());
}

#[test]
fn snapshot_empty_live_view_and_tiny_terminal() {
    let mut app = app_with(10, true, "", false);
    insta::assert_snapshot!("empty_live_80x24", draw(&mut app, 80, 24).backend());
    let mut app = seed_app(true, "");
    insta::assert_snapshot!("tiny_20x5", draw(&mut app, 20, 5).backend());
}

// ---- buffer cells: colours and selection ---------------------------------

#[test]
fn verdicts_are_coloured_and_spelled_out() {
    let mut app = seed_app(true, "");
    let buf = buffer(&mut app, 120, 40);
    let dropped = find(&buf, "DROPPED");
    let forwarded = find(&buf, "FORWARDED");
    assert!(!dropped.is_empty() && !forwarded.is_empty());
    for (x, y) in dropped {
        let c = &buf[(x, y)];
        assert_eq!(c.fg, Color::Red, "DROPPED at {x},{y}");
        assert!(c.modifier.contains(Modifier::BOLD));
    }
    for (x, y) in forwarded {
        assert_eq!(buf[(x, y)].fg, Color::Green, "FORWARDED at {x},{y}");
    }
    // AUDIT in the counts panel is yellow.
    let (x, y) = find(&buf, "AUDIT")[0];
    assert_eq!(buf[(x, y)].fg, Color::Yellow);
}

#[test]
fn no_color_keeps_words_and_selection() {
    let mut app = seed_app(false, "");
    let buf = buffer(&mut app, 120, 40);
    let all: Vec<(u16, u16)> = buf
        .area
        .positions()
        .map(|p| (p.x, p.y))
        .filter(|p| buf[*p].fg != Color::Reset || buf[*p].bg != Color::Reset)
        .collect();
    assert!(
        all.is_empty(),
        "coloured cells with NO_COLOR: {:?}",
        &all[..all.len().min(5)]
    );
    assert!(!find(&buf, "DROPPED").is_empty());
    // The selected (newest) row is reversed and marked with ▶.
    let marks = find(&buf, "▶ ");
    let (_, y) = *marks.last().unwrap();
    assert!(buf[(10, y)].modifier.contains(Modifier::REVERSED));
    assert!(!buf[(10, y - 1)].modifier.contains(Modifier::REVERSED));
}

#[test]
fn nothing_overlaps_at_80x24_and_columns_fit_any_width() {
    for w in 0..=300u16 {
        let cols = view::columns(w);
        let total: u16 =
            cols.iter().map(|c| c.1).sum::<u16>() + cols.len().saturating_sub(1) as u16;
        assert!(total + 2 <= w.max(2), "width {w}: {total}");
    }
    let cols = view::columns(80);
    let names: Vec<view::Col> = cols.iter().map(|c| c.0).collect();
    for c in [
        view::Col::Time,
        view::Col::Source,
        view::Col::Destination,
        view::Col::Verdict,
        view::Col::Path,
    ] {
        assert!(names.contains(&c), "{c:?} missing at 80 columns");
    }
    let mut app = seed_app(true, "");
    let buf = buffer(&mut app, 80, 24);
    // The footer always shows the keys; the header the state.
    assert!(line(&buf, 23).starts_with("q quit"), "{}", line(&buf, 23));
    assert!(line(&buf, 0).starts_with("holonet"), "{}", line(&buf, 0));
}

#[test]
fn any_terminal_size_renders_without_panicking() {
    let mut app = seed_app(true, "org=payer");
    for (w, h) in [
        (0, 0),
        (1, 1),
        (20, 5),
        (5, 20),
        (33, 7),
        (80, 24),
        (300, 100),
    ] {
        let _ = buffer(&mut app, w, h);
        app.update(key(KeyCode::Enter));
        let _ = buffer(&mut app, w, h);
        app.update(key(KeyCode::Esc));
        app.update(key(KeyCode::Char('?')));
        let _ = buffer(&mut app, w, h);
        app.update(key(KeyCode::Esc));
        app.update(key(KeyCode::Char('/')));
        let _ = buffer(&mut app, w, h);
        app.update(key(KeyCode::Esc));
    }
    let buf = buffer(&mut app, 20, 5);
    assert!(line(&buf, 4).starts_with("q quit"));
}

// ---- update logic --------------------------------------------------------

#[test]
fn only_key_presses_count() {
    let mut app = seed_app(true, "");
    let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    release.state = KeyEventState::NONE;
    assert_eq!(app.update(Msg::Key(release)), None);
    assert_eq!(app.update(key(KeyCode::Char('q'))), Some(Effect::Quit));
    assert_eq!(app.update(ctrl('c')), Some(Effect::Quit));
    assert_eq!(app.update(ctrl('l')), Some(Effect::Redraw));
    assert_eq!(app.update(Msg::Quit), Some(Effect::Quit));
}

#[test]
fn filter_bar_validates_as_you_type_and_applies_to_history() {
    let mut app = seed_app(true, "");
    let all = app.view.len();
    assert_eq!(all, seed_flows().len());
    app.update(key(KeyCode::Char('/')));
    type_text(&mut app, "--verdic");
    let Mode::Filter(bar) = &app.mode else {
        panic!("no bar")
    };
    assert!(
        bar.check
            .as_ref()
            .unwrap_err()
            .contains("unknown filter flag --verdic")
    );
    type_text(&mut app, "t DROPPED org=payer");
    let Mode::Filter(bar) = &app.mode else {
        panic!("no bar")
    };
    assert!(bar.check.is_ok(), "{:?}", bar.check);
    app.update(key(KeyCode::Enter));
    assert_eq!(app.mode, Mode::Table);
    let drops = seed_flows()
        .iter()
        .filter(|f| f.verdict == Verdict::Dropped as i32)
        .count();
    assert_eq!(app.view.len(), drops);
    assert!(app.filter.description.contains("DROPPED"));
    // A bad filter is not applied: Enter keeps the bar open with the error.
    app.update(key(KeyCode::Char('/')));
    type_text(&mut app, " --http-path (");
    app.update(key(KeyCode::Enter));
    assert!(matches!(app.mode, Mode::Filter(_)));
    assert_eq!(app.view.len(), drops);
    app.update(key(KeyCode::Esc));
    assert_eq!(app.mode, Mode::Table);
    // New flows go through the same filter.
    let before = app.view.len();
    let mut f = seed_flows()[0].clone();
    app.update(Msg::Events(vec![Event::Flow(Box::new(f.clone()))]));
    assert_eq!(app.view.len(), before);
    f.verdict = Verdict::Dropped as i32;
    for l in &mut f.source.as_mut().unwrap().labels {
        if l == "k8s:org=empire" {
            *l = "k8s:org=payer".into();
        }
    }
    app.update(Msg::Events(vec![Event::Flow(Box::new(f))]));
    assert_eq!(app.view.len(), before + 1);
}

#[test]
fn scrolling_follow_and_detail() {
    let mut app = seed_app(true, "");
    let n = app.view.len();
    assert!(app.follow);
    assert_eq!(app.selected_index(), Some(n - 1));
    app.update(key(KeyCode::Char('k')));
    app.update(key(KeyCode::Up));
    assert!(!app.follow);
    assert_eq!(app.selected_index(), Some(n - 3));
    // New flows do not move a scrolled selection.
    let f = seed_flows()[0].clone();
    app.update(Msg::Events(vec![Event::Flow(Box::new(f))]));
    assert_eq!(app.selected_index(), Some(n - 3));
    app.update(key(KeyCode::Char('g')));
    assert_eq!(app.selected_index(), Some(0));
    app.update(key(KeyCode::PageDown));
    let page = app.table_rows();
    assert_eq!(app.selected_index(), Some(page));
    let (start, end) = app.window(page);
    assert!(start <= page && page < end);
    app.update(key(KeyCode::Char('G')));
    assert!(app.follow);
    assert_eq!(app.selected_index(), Some(n));
    app.update(key(KeyCode::Enter));
    assert_eq!(app.mode, Mode::Detail { scroll: 0 });
    app.update(key(KeyCode::Char('j')));
    assert_eq!(app.mode, Mode::Detail { scroll: 1 });
    app.update(key(KeyCode::Esc));
    assert_eq!(app.mode, Mode::Table);
    app.update(Msg::Mouse(crossterm::event::MouseEvent {
        kind: crossterm::event::MouseEventKind::ScrollUp,
        column: 0,
        row: 0,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.selected_index(), Some(n - 3));
}

#[test]
fn space_freezes_a_live_view() {
    let mut app = app_with(1000, true, "", false);
    let flows = seed_flows();
    app.update(Msg::Events(
        flows[..10]
            .iter()
            .cloned()
            .map(|f| Event::Flow(Box::new(f)))
            .collect(),
    ));
    assert_eq!(app.update(key(KeyCode::Char(' '))), None);
    let counts = app.stats().total();
    app.update(Msg::Events(
        flows[10..30]
            .iter()
            .cloned()
            .map(|f| Event::Flow(Box::new(f)))
            .collect(),
    ));
    assert_eq!(app.visible_len(), 10);
    assert_eq!(app.frozen_new(), 20);
    assert_eq!(app.stats().total(), counts);
    let buf = buffer(&mut app, 100, 30);
    assert!(
        line(&buf, 0).contains("FROZEN +20 new"),
        "{}",
        line(&buf, 0)
    );
    app.update(key(KeyCode::Char(' ')));
    assert_eq!(app.visible_len(), 30);
    // It was following before the freeze, and nobody moved: it follows again.
    assert!(app.follow);
    assert_eq!(app.selected_index(), Some(29));
    // Freeze, move, unfreeze: the selection stays where it was put.
    app.update(key(KeyCode::Char(' ')));
    app.update(key(KeyCode::Char('k')));
    app.update(key(KeyCode::Char(' ')));
    assert!(!app.follow);
    assert_eq!(app.selected_index(), Some(28));
}

#[test]
fn replay_keys_and_commands() {
    let mut app = seed_app(true, "");
    assert_eq!(
        app.update(key(KeyCode::Char(' '))),
        Some(Effect::Replay(ReplayCmd::Pause(true)))
    );
    assert_eq!(
        app.update(key(KeyCode::Char('.'))),
        Some(Effect::Replay(ReplayCmd::Step))
    );
    assert_eq!(
        app.update(key(KeyCode::Char('+'))),
        Some(Effect::Replay(ReplayCmd::Speed(Speed::Factor(2.0))))
    );
    app.update(key(KeyCode::Char('-')));
    assert_eq!(
        app.update(key(KeyCode::Char('-'))),
        Some(Effect::Replay(ReplayCmd::Speed(Speed::Factor(0.5))))
    );
    let pos = app.source.replay.as_ref().and_then(|r| r.position).unwrap();
    let pos_ns = i128::from(pos.seconds) * 1_000_000_000 + i128::from(pos.nanos);
    app.update(key(KeyCode::Char(':')));
    type_text(&mut app, "seek -30s");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        Some(Effect::Replay(ReplayCmd::SeekTo(pos_ns - 30_000_000_000)))
    );
    app.update(key(KeyCode::Char(':')));
    type_text(&mut app, "seek 10:48:30");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        Some(Effect::Replay(ReplayCmd::SeekTo(
            1_726_742_910 * 1_000_000_000
        )))
    );
    app.update(key(KeyCode::Char(':')));
    type_text(&mut app, "speed max");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        Some(Effect::Replay(ReplayCmd::Speed(Speed::Max)))
    );
    for bad in ["speed 1000", "speed 0.01", "seek yesterday", "frobnicate"] {
        app.update(key(KeyCode::Char(':')));
        type_text(&mut app, bad);
        assert_eq!(app.update(key(KeyCode::Enter)), None, "{bad}");
        assert!(app.notice.as_ref().is_some_and(|n| n.error), "{bad}");
    }
    // A backwards seek resets the buffer when the player says so.
    app.update(Msg::Source(SourceMsg::Reset));
    assert_eq!(app.store.len(), 0);
    assert_eq!(app.view.len(), 0);
}

#[test]
fn buffer_stays_bounded() {
    let mut app = app_with(50, true, "--verdict DROPPED", false);
    let flows = seed_flows();
    for chunk in flows.chunks(7) {
        app.update(Msg::Events(
            chunk
                .iter()
                .cloned()
                .map(|f| Event::Flow(Box::new(f)))
                .collect(),
        ));
    }
    assert_eq!(app.store.len(), 50);
    assert_eq!(app.store.evicted(), (flows.len() - 50) as u64);
    let expect = flows[flows.len() - 50..]
        .iter()
        .filter(|f| f.verdict == Verdict::Dropped as i32)
        .count();
    assert_eq!(app.view.len(), expect);
    assert_eq!(app.stats().total(), expect as u64);
    app.update(Msg::Events(vec![Event::Lost {
        source: "HUBBLE_RING_BUFFER".into(),
        count: 7,
    }]));
    assert_eq!(app.source.lost_upstream, 7);
}

// ---- explanations --------------------------------------------------------

fn payer_l7_drop() -> Flow {
    seed_flows()
        .into_iter()
        .find(|f| f.verdict == Verdict::Dropped as i32 && f.l7.is_some())
        .unwrap()
}

#[test]
fn drop_explanation_from_the_flow_names_its_source() {
    let s = explain::from_flow(&payer_l7_drop());
    assert!(s.source.contains("agent"));
    assert!(
        s.lines
            .iter()
            .any(|l| l == "Drop reason: POLICY_DENIED (Policy denied)."),
        "{:?}",
        s.lines
    );
    assert!(
        s.lines
            .iter()
            .any(|l| l.contains("does not name the policy")),
        "{:?}",
        s.lines
    );
    let l4 = seed_flows()
        .into_iter()
        .find(|f| f.verdict == Verdict::Dropped as i32 && f.l7.is_none())
        .unwrap();
    let s = explain::from_flow(&l4);
    assert!(
        s.lines
            .iter()
            .any(|l| l.contains("CiliumClusterwideNetworkPolicy denyall-coruscanthealth")),
        "{:?}",
        s.lines
    );
    // Without policies the pane says the engine was not consulted.
    let all = explain::explain(&payer_l7_drop(), None, None);
    assert!(all[1].lines[0].starts_with("Not consulted"));
}

#[test]
fn capabilities_say_what_is_on_what_is_off_and_why() {
    use holonet_proto::holonet::{Capability, Feature, GetCapabilitiesResponse};
    let caps = GetCapabilitiesResponse {
        node_name: "n1".into(),
        kernel_release: "6.18.0".into(),
        tc_mode: "tcx".into(),
        policy_mode: "audit".into(),
        pin_dir: "/sys/fs/bpf/holonet".into(),
        kernel_capabilities: vec![
            Capability {
                name: "tcx".into(),
                available: true,
                detail: "ok".into(),
            },
            Capability {
                name: "kprobe".into(),
                available: false,
                detail: "no kprobe_events".into(),
            },
        ],
        features: vec![
            Feature {
                name: "L7 HTTP policy".into(),
                active: true,
                detail: "in the kernel".into(),
            },
            Feature {
                name: "process attribution".into(),
                active: false,
                detail: "off: turned off with --process-hook off".into(),
            },
        ],
        ..Default::default()
    };
    assert_eq!(
        view::capability_lines(&caps),
        [
            "node n1: kernel 6.18.0, tc via tcx, policies: audit, pinned; kernel lacks kprobe",
            "active: L7 HTTP policy │ off: process attribution (off: turned off with --process-hook off)",
        ]
    );
}

#[test]
fn drop_explanation_from_local_policies_lists_what_was_allowed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ctx = PolicyContext::load(
        &[root.join("policies/galactic-fhir")],
        &root.join("policies/endpoints/galactic-fhir.yaml"),
    )
    .unwrap();
    let s = explain::from_policies(&ctx, &payer_l7_drop());
    assert!(s.source.contains("not reported by the agent"));
    let text = s.lines.join("\n");
    assert!(
        text.contains("Verdict by these policies: DROPPED"),
        "{text}"
    );
    assert!(text.contains("Anakin"), "{text}");
    assert!(text.contains("Allowed would be"), "{text}");
    assert!(text.contains("DarthVader"), "{text}");
    // An empire request is explained as allowed.
    let empire = seed_flows()
        .into_iter()
        .find(|f| {
            f.verdict == Verdict::Forwarded as i32 && super::row::path(f).ends_with("DarthVader")
        })
        .unwrap();
    let s = explain::from_policies(&ctx, &empire);
    assert!(s.lines[0].contains("FORWARDED"), "{:?}", s.lines);
}

#[test]
fn garbage_recording_lines_are_skipped_and_counted() {
    let data = include_bytes!("../../tests/data/garbage.jsonl");
    let mut reader = holonet_flows::recording::RecordingReader::new(&data[..]);
    let events = reader.by_ref().filter(|r| r.is_ok()).count();
    assert_eq!(events, 5);
    assert_eq!(reader.stats().skipped, 5);
    assert!(reader.stats().skipped_summary().is_some());
}

#[test]
fn speeds_parse_within_bounds() {
    assert_eq!(Speed::parse("10x"), Ok(Speed::Factor(10.0)));
    assert_eq!(Speed::parse("0.1"), Ok(Speed::Factor(0.1)));
    assert_eq!(Speed::parse("MAX"), Ok(Speed::Max));
    assert!(Speed::parse("0").is_err());
    assert!(Speed::parse("101").is_err());
    assert!(Speed::parse("fast-ish").is_err());
    let _ = ActiveFilter::default();
}

// ---- the replay player -----------------------------------------------------

fn collect_flows(
    rx: &mut tokio::sync::mpsc::Receiver<Msg>,
    want: usize,
) -> (usize, Vec<SourceMsg>) {
    collect_for(rx, want, 10_000)
}

fn collect_for(
    rx: &mut tokio::sync::mpsc::Receiver<Msg>,
    want: usize,
    ms: u64,
) -> (usize, Vec<SourceMsg>) {
    let mut n = 0;
    let mut other = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    while n < want && std::time::Instant::now() < deadline {
        match rx.try_recv() {
            Ok(Msg::Events(evs)) => n += evs.iter().filter(|e| matches!(e, Event::Flow(_))).count(),
            Ok(Msg::Source(s)) => other.push(s),
            Ok(_) => {}
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
    (n, other)
}

#[test]
fn player_plays_everything_at_max_speed_and_reports_garbage() {
    use super::source::{Recording, replay};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/garbage.jsonl");
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (ctx, crx) = std::sync::mpsc::channel();
    let rec = Recording::File(path.display().to_string());
    let h = std::thread::spawn(move || replay(rec, Speed::Max, tx, crx));
    let (n, other) = collect_flows(&mut rx, 5);
    assert_eq!(n, 5);
    // The end state and the skipped-lines notice follow.
    let mut seen = other;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !seen
        .iter()
        .any(|s| matches!(s, SourceMsg::Notice(t) if t.contains("unreadable")))
    {
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        if let Ok(Msg::Source(s)) = rx.try_recv() {
            seen.push(s);
        } else {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    assert!(
        seen.iter()
            .any(|s| matches!(s, SourceMsg::Replay(r) if r.done && r.skipped == 5))
    );
    drop(ctx);
    drop(rx);
    h.join().unwrap();
}

#[test]
fn player_pauses_steps_and_seeks_back() {
    use super::source::{Recording, replay};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/seed.jsonl");
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (ctx, crx) = std::sync::mpsc::channel();
    ctx.send(ReplayCmd::Pause(true)).unwrap();
    let rec = Recording::File(path.display().to_string());
    let h = std::thread::spawn(move || replay(rec, Speed::Factor(1.0), tx, crx));
    let (n, _) = collect_for(&mut rx, 2, 300);
    // Paused before the first flow: at most the first one may have been due.
    assert!(n <= 1, "{n} flows while paused");
    for _ in 0..3 {
        ctx.send(ReplayCmd::Step).unwrap();
    }
    let (m, _) = collect_flows(&mut rx, 3 - n);
    assert_eq!(n + m, 3, "three steps, three flows");
    let (extra, _) = collect_for(&mut rx, 1, 300);
    assert_eq!(extra, 0, "nothing plays while paused");
    // Max speed to the end, then seek back to the start: a reset, then all again.
    ctx.send(ReplayCmd::Speed(Speed::Max)).unwrap();
    ctx.send(ReplayCmd::Pause(false)).unwrap();
    let (rest, _) = collect_flows(&mut rx, 303);
    assert_eq!(rest, 303);
    ctx.send(ReplayCmd::SeekTo(0)).unwrap();
    let (again, other) = collect_flows(&mut rx, 306);
    assert!(other.contains(&SourceMsg::Reset), "{other:?}");
    assert_eq!(again, 306);
    drop(ctx);
    drop(rx);
    h.join().unwrap();
}

// ---- the live source against the agent's real Observer server -------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_source_streams_follows_and_reports_status_and_losses() {
    use std::sync::Arc;

    use holonet_agent::{
        agent_service::{AgentFacts, AgentService, PoliciesInForce, capabilities_response},
        observer::{
            pipeline::kernel_lost,
            server::{Listen, bind, serve_with_agent},
            service::ObserverService,
            store::{FlowStore, StoredEvent},
        },
    };

    let store = Arc::new(FlowStore::new(4096));
    let flows = seed_flows();
    store.push_batch(flows[..300].iter().cloned().map(StoredEvent::from));
    let dir = std::env::temp_dir().join(format!("holonet-tui-live-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let sock = dir.join("hubble.sock");
    let listeners = bind(&Listen {
        tcp: None,
        unix: Some(sock.clone()),
        allow_remote: false,
    })
    .await
    .unwrap();
    // The agent explains with the demo's policies.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ctx = PolicyContext::load(
        &[root.join("policies/galactic-fhir")],
        &root.join("policies/endpoints/galactic-fhir.yaml"),
    )
    .unwrap();
    let (_policies_tx, policies_rx) =
        tokio::sync::watch::channel(Some(Arc::new(PoliciesInForce {
            resolved: Arc::clone(ctx.resolved()),
            origin: "policies/galactic-fhir".to_owned(),
        })));
    let agent = AgentService::new(
        capabilities_response(AgentFacts {
            node_name: "kind-worker".to_owned(),
            tc_mode: "tcx (test)".to_owned(),
            policy_mode: "enforce".to_owned(),
            ..Default::default()
        }),
        policies_rx,
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_with_agent(
        listeners,
        ObserverService::new(Arc::clone(&store), "kind-kind/kind-worker"),
        Some(agent),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let (explain_tx, explain_rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(super::source::live(
        super::source::LiveSource {
            server: Some(format!("unix://{}", sock.display())),
            timeout: std::time::Duration::from_secs(5),
            tls: None,
            backfill: 100_000,
        },
        tx,
        explain_rx,
    ));
    let mut app = app_with(100_000, true, "org=payer", false);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut pushed_more = false;
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the live source should deliver within 15 s")
            .expect("channel open");
        app.update(msg);
        if app.store.len() == 300 && !pushed_more {
            // Follow: flows and a lost event pushed after the stream started.
            store.push_batch([kernel_lost(7)]);
            store.push_batch(flows[300..].iter().cloned().map(StoredEvent::from));
            pushed_more = true;
        }
        if app.store.len() == flows.len()
            && app.source.lost_upstream == 7
            && app.source.agent.is_some()
        {
            break;
        }
    }
    assert!(matches!(&app.source.connection, Connection::Live(a) if a.starts_with("unix://")));
    let payer = flows
        .iter()
        .filter(|f| {
            [&f.source, &f.destination].iter().any(|e| {
                e.as_ref()
                    .is_some_and(|e| e.labels.iter().any(|l| l == "k8s:org=payer"))
            })
        })
        .count();
    assert_eq!(app.view.len(), payer);
    let status = app.source.agent.clone().unwrap();
    assert_eq!(status.max_flows, 4096);
    let buf = buffer(&mut app, 120, 30);
    assert!(
        line(&buf, 0).contains("● LIVE unix://"),
        "{}",
        line(&buf, 0)
    );
    assert!(line(&buf, 0).contains("lost 7"), "{}", line(&buf, 0));

    // The agent's capabilities reach the status panel.
    assert!(
        matches!(&app.source.capabilities, Some(Ok(c)) if c.node_name == "kind-worker"),
        "{:?}",
        app.source.capabilities
    );
    app.update(Msg::Key(KeyEvent::from(KeyCode::Char('4'))));
    let text = screen(&buffer(&mut app, 200, 60));
    assert!(text.contains("node kind-worker: kernel"), "{text}");

    // Enter on the payer's L7 drop asks the agent, whose answer fills the
    // detail pane.
    let drop_seq = app
        .view
        .seqs()
        .iter()
        .copied()
        .find(|seq| {
            app.store
                .get(*seq)
                .is_some_and(|e| e.flow.verdict == Verdict::Dropped as i32 && e.flow.l7.is_some())
        })
        .expect("the payer's L7 drop is in view");
    app.follow = false;
    app.selected = Some(drop_seq);
    let Some(Effect::Explain(flow)) = app.update(Msg::Key(KeyEvent::from(KeyCode::Enter))) else {
        panic!("Enter on a live flow asks the agent");
    };
    let waiting = screen(&buffer(&mut app, 160, 60));
    assert!(waiting.contains("Waiting for the answer"), "{waiting}");
    explain_tx.send(*flow).unwrap();
    loop {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the agent should answer within 15 s")
            .expect("channel open");
        let answered = matches!(msg, Msg::Explained { .. });
        app.update(msg);
        if answered {
            break;
        }
    }
    let detail = screen(&buffer(&mut app, 160, 60));
    assert!(
        detail.contains(
            "Explained by the agent from policies/galactic-fhir in force on node kind-worker"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("Verdict by these policies: DROPPED"),
        "{detail}"
    );
    assert!(detail.contains("DarthVader"), "{detail}");
    task.abort();
    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn snapshot_detail_explained_by_local_policies() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let ctx = PolicyContext::load(
        &[root.join("policies/galactic-fhir")],
        &root.join("policies/endpoints/galactic-fhir.yaml"),
    )
    .unwrap();
    let mut app = seed_app(true, "org=payer --verdict DROPPED --type l7");
    app.options.policy = Some(std::sync::Arc::new(ctx));
    app.update(key(KeyCode::Enter));
    let mut t = draw(&mut app, 110, 36);
    let text = format!("{}", t.backend());
    assert!(
        text.contains("Computed here by holonet's policy engine"),
        "{text}"
    );
    assert!(text.contains("Allowed would be"), "{text}");
    // Scrolling moves the pane.
    app.update(key(KeyCode::PageDown));
    t.draw(|f| f.render_widget(view::Dashboard(&app), f.area()))
        .unwrap();
    assert_ne!(format!("{}", t.backend()), text);
    // Relative paths (tests run in tui/) keep the snapshot machine-independent.
    let mut app = seed_app(true, "org=payer --verdict DROPPED --type l7");
    app.options.policy = Some(std::sync::Arc::new(
        PolicyContext::load(
            &[std::path::PathBuf::from("../policies/galactic-fhir")],
            std::path::Path::new("../policies/endpoints/galactic-fhir.yaml"),
        )
        .unwrap(),
    ));
    app.update(key(KeyCode::Enter));
    insta::assert_snapshot!(
        "detail_with_policies_110x36",
        draw(&mut app, 110, 36).backend()
    );
}

#[test]
fn wrapping_keeps_width_and_hangs_indents() {
    let lines = view::wrap("    alpha beta gamma delta epsilon", 16, 6);
    assert!(lines.iter().all(|l| l.chars().count() <= 16), "{lines:?}");
    assert_eq!(lines[0], "    alpha beta");
    assert!(lines[1].starts_with("      gamma"), "{lines:?}");
    let long = view::wrap(&"x".repeat(50), 20, 2);
    assert!(long.iter().all(|l| l.chars().count() <= 20), "{long:?}");
    assert_eq!(long.concat().matches('x').count(), 50);
    assert_eq!(view::wrap("", 10, 2), vec![String::new()]);
}

#[test]
fn a_missing_agent_is_said_plainly() {
    let mut app = app_with(10, true, "", false);
    app.source.connection = Connection::Connecting("unix:///run/holonet/hubble.sock".into());
    app.update(Msg::Source(SourceMsg::Disconnected(
        "cannot reach a Hubble Observer API (…: Connection refused)".into(),
    )));
    let n = app.notice.clone().unwrap();
    assert!(
        n.error && n.text.starts_with("not connected: cannot reach"),
        "{n:?}"
    );
    let buf = buffer(&mut app, 200, 20);
    assert!(
        line(&buf, 0).contains("✗ DISCONNECTED, retrying"),
        "{}",
        line(&buf, 0)
    );
    assert!(!find(&buf, "is `holonet agent` running?").is_empty());
    app.update(Msg::Source(SourceMsg::Connected("unix:///x".into())));
    app.update(Msg::Source(SourceMsg::Disconnected("eof".into())));
    assert!(app.notice.unwrap().text.starts_with("stream lost: eof"));
}

// ---- the demo's story over the dashboard ------------------------------------

/// A live dashboard with the seed's flows and the story at step 5.
fn demo_app(phase: Phase) -> App {
    let mut app = app_with(100_000, true, "", false);
    // The demo's dashboard explains with the policies the demo hands over.
    app.options.ask_agent = false;
    app.update(Msg::Events(
        seed_flows()
            .into_iter()
            .map(|f| Event::Flow(Box::new(f)))
            .collect(),
    ));
    app.update(Msg::Story(Story {
        step: 5,
        total: 15,
        caption: "deny all traffic cluster-wide, except DNS".to_owned(),
        outcome: Some(Outcome {
            text: "1 policy object(s) enforced in the kernel".to_owned(),
            as_expected: true,
        }),
        phase,
    }));
    app
}

#[test]
fn the_story_banner_shows_the_caption_the_timer_and_the_outcome() {
    let mut app = demo_app(Phase::Waiting { seconds: 4 });
    let buf = buffer(&mut app, 100, 30);
    let banner = line(&buf, 1);
    assert!(
        banner.starts_with(" step 5/15: deny all traffic cluster-wide, except DNS"),
        "{banner}"
    );
    assert!(
        banner.trim_end().ends_with("next in 4s (n: now)"),
        "{banner}"
    );
    assert!(
        buf[(1, 1)].modifier.contains(Modifier::REVERSED),
        "the banner reads as a banner without colour"
    );
    assert!(
        line(&buf, 2).contains("✓ 1 policy object(s) enforced in the kernel"),
        "{}",
        line(&buf, 2)
    );
    assert!(line(&buf, 3).starts_with("filter: "), "{}", line(&buf, 3));
    let footer = line(&buf, 29);
    assert!(footer.starts_with("q quit  n next step"), "{footer}");
    // The table still has its rows under the banner.
    assert!(!find(&buf, "DROPPED").is_empty());
    // A story that ended differently from the script says so in red.
    app.update(Msg::Story(Story {
        outcome: Some(Outcome {
            text: "GET DarthVader from payer: HTTP 200, but the story says dropped".to_owned(),
            as_expected: false,
        }),
        ..app.story.clone().unwrap()
    }));
    let buf = buffer(&mut app, 100, 30);
    let (x, y) = find(&buf, "✗ GET DarthVader")[0];
    assert_eq!(y, 2);
    assert_eq!(buf[(x, y)].fg, Color::Red);
}

#[test]
fn n_asks_for_the_next_step_while_there_is_one() {
    let mut app = demo_app(Phase::Playing);
    assert_eq!(app.update(key(KeyCode::Char('n'))), Some(Effect::NextStep));
    app.update(key(KeyCode::Char(':')));
    type_text(&mut app, "next");
    assert_eq!(app.update(key(KeyCode::Enter)), Some(Effect::NextStep));
    app.update(Msg::Story(Story {
        phase: Phase::Over {
            ok: 10,
            requests: 10,
        },
        outcome: None,
        ..app.story.clone().unwrap()
    }));
    assert_eq!(app.update(key(KeyCode::Char('n'))), None);
    let notice = app.notice.clone().unwrap();
    assert!(notice.text.contains("story is over"), "{notice:?}");
    let buf = buffer(&mut app, 120, 30);
    assert!(
        line(&buf, 1).contains("the story is over: 10/10 requests ended as the story says"),
        "{}",
        line(&buf, 1)
    );
    assert!(!line(&buf, 29).contains("next step"), "{}", line(&buf, 29));
    assert!(
        line(&buf, 2).contains("explore: / filters"),
        "{}",
        line(&buf, 2)
    );
    // Without a story, n is not a key of the live dashboard and :next says why.
    let mut plain = app_with(100, true, "", false);
    assert_eq!(plain.update(key(KeyCode::Char('n'))), None);
    plain.update(key(KeyCode::Char(':')));
    type_text(&mut plain, "next");
    assert_eq!(plain.update(key(KeyCode::Enter)), None);
    assert!(plain.notice.clone().unwrap().error);
}

#[test]
fn the_help_lists_the_demo_keys_only_during_the_demo() {
    let app = demo_app(Phase::Playing);
    let help = view::help_lines(&app).join("\n");
    assert!(help.contains("n, :next      next step now"), "{help}");
    let plain = app_with(100, true, "", false);
    assert!(!view::help_lines(&plain).join("\n").contains(":next"));
}

#[test]
fn the_story_banner_fits_any_terminal() {
    for (w, h) in [(1, 1), (20, 3), (20, 5), (40, 12), (80, 24), (200, 60)] {
        let mut app = demo_app(Phase::Failed(
            "applying 10-l7-visibility.yaml: no interface".into(),
        ));
        let buf = buffer(&mut app, w, h);
        if h >= 5 {
            assert!(line(&buf, 1).contains("✗"), "{w}x{h}: {}", line(&buf, 1));
        }
        // The footer keeps the last line.
        if h >= 2 {
            assert!(line(&buf, h - 1).starts_with("q"), "{w}x{h}");
        }
    }
}

#[test]
fn the_demo_hands_over_the_policies_it_applied_for_explanations() {
    let mut app = demo_app(Phase::Playing);
    app.apply_filter(filter::parse("org=payer --verdict DROPPED --type l7").unwrap());
    app.update(key(KeyCode::Enter));
    let before = view::detail_lines(&app, app.selected_flow().unwrap().1, 110);
    let text = |lines: &[ratatui::text::Line<'_>]| {
        lines
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(text(&before).contains("Not consulted"), "{}", text(&before));
    let mut ctx = PolicyContext::load(
        &[std::path::PathBuf::from("../policies/galactic-fhir")],
        std::path::Path::new("../policies/endpoints/galactic-fhir.yaml"),
    )
    .unwrap();
    ctx.origin = "the demo's policies as applied now (3 files)".to_owned();
    let update = explain::PolicyUpdate(std::sync::Arc::new(ctx));
    assert_eq!(update, update.clone());
    assert_eq!(app.update(Msg::Policies(update)), None);
    let after = text(&view::detail_lines(
        &app,
        app.selected_flow().unwrap().1,
        110,
    ));
    assert!(
        after.contains("the demo's policies as applied now (3 files)"),
        "{after}"
    );
    assert!(
        after.contains("Verdict by these policies: DROPPED"),
        "{after}"
    );
}

#[test]
fn processes_show_in_the_detail_pane_and_in_a_wide_table() {
    let mut app = app_with(1000, false, "", false);
    let mut flow = seed_flows().remove(0);
    flow.holonet_source_process = Some(holonet_proto::flow::HolonetProcess {
        pid: 4321,
        command: "curl".into(),
    });
    flow.holonet_destination_process = Some(holonet_proto::flow::HolonetProcess {
        pid: 99,
        command: "fhir-server".into(),
    });
    app.update(Msg::Events(vec![Event::Flow(Box::new(flow))]));
    let detail: Vec<String> = view::detail_lines(&app, app.selected_flow().unwrap().1, 100)
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert!(
        detail.contains(&"  processes: curl[4321] → fhir-server[99]".to_string()),
        "{detail:#?}"
    );
    // The column is the last to fit: absent at 120 columns, present once
    // every other column fits.
    let has = |w: u16| {
        view::columns(w)
            .iter()
            .any(|(c, _)| *c == view::Col::Process)
    };
    assert!(!has(120));
    assert!(has(160));
    let wide = screen(&buffer(&mut app, 240, 20));
    assert!(wide.contains("PROCESSES"), "{wide}");
    assert!(wide.contains("curl[4321] → "), "{wide}");
}
