//! Rendering: pure functions from the [`App`] model to a ratatui buffer.
//!
//! Screen, top to bottom: a status header, the active filter in plain
//! words, the panels that are on (side by side with the table on wide
//! terminals), the flow table (or the detail pane), a notice line, the
//! filter bar or command line when open, and a footer that always shows
//! the keys. Only the rows on screen are formatted, so a frame costs the
//! same with 100 or 100,000 flows buffered.

use holonet_proto::{
    flow::{Flow, Verdict},
    holonet::GetCapabilitiesResponse,
};
use ratatui::{
    buffer::Buffer,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph, Widget, Wrap},
};

use super::{
    app::{App, Connection, Mode},
    explain,
    row::{self, Side, fit},
    story::Phase,
    theme::Theme,
};

/// Where each part of the screen goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Areas {
    /// Status header.
    pub(crate) header: Rect,
    /// The story banner (`holonet demo`): caption, then the step's outcome.
    pub(crate) story: Rect,
    /// Active filter line.
    pub(crate) filter: Rect,
    /// Panels that are on, with their areas.
    pub(crate) panels: Vec<(PanelKind, Rect)>,
    /// Flow table or detail pane (header row included).
    pub(crate) table: Rect,
    /// Notice line.
    pub(crate) notice: Rect,
    /// Filter bar / command line.
    pub(crate) input: Rect,
    /// Key hints.
    pub(crate) footer: Rect,
}

/// The toggleable panels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PanelKind {
    /// Verdict counts and rate.
    Counts,
    /// Top dropped.
    Drops,
    /// Service map.
    Map,
    /// Source / agent status.
    Status,
}

const MIN_TABLE_ROWS: u16 = 6;

fn panel_height(app: &App, kind: PanelKind) -> u16 {
    match kind {
        PanelKind::Counts => 2,
        PanelKind::Drops => {
            let n = app.stats().drops.len().clamp(1, 5);
            1 + u16::try_from(n).unwrap_or(5)
        }
        PanelKind::Map => {
            let n = app.stats().edges.len().clamp(1, 6);
            1 + u16::try_from(n).unwrap_or(6)
        }
        PanelKind::Status => {
            let n = if app.source.capabilities.as_ref().is_some_and(Result::is_ok) {
                4
            } else {
                3
            };
            1 + n
        }
    }
}

/// Splits the screen. Never fails: small terminals lose panels first, then
/// the filter and notice lines; the footer stays as long as a line exists.
pub(crate) fn layout(app: &App, area: Rect) -> Areas {
    let mut a = Areas::default();
    let mut y = area.y;
    let mut bottom = area.y + area.height;
    let take_bottom = |bottom: &mut u16, h: u16, y: u16| -> Rect {
        let h = h.min(bottom.saturating_sub(y));
        *bottom -= h;
        Rect::new(area.x, *bottom, area.width, h)
    };
    a.footer = take_bottom(&mut bottom, 1, y);
    if area.height >= 2 {
        a.header = Rect::new(area.x, y, area.width, 1);
        y += 1;
    }
    if app.story.is_some() {
        // The caption is what the demo is about: it goes before the panels
        // and the filter line, and keeps its outcome line when there is room.
        let room = bottom.saturating_sub(y);
        let h = match room {
            r if r >= 12 => 2,
            r if r >= 3 => 1,
            _ => 0,
        };
        a.story = Rect::new(area.x, y, area.width, h);
        y += h;
    }
    let input_h = match &app.mode {
        Mode::Filter(_) => 2,
        Mode::Command(_) => 1,
        _ => 0,
    };
    if input_h > 0 {
        a.input = take_bottom(&mut bottom, input_h, y);
    }
    if app.notice.is_some() && bottom.saturating_sub(y) >= 8 {
        a.notice = take_bottom(&mut bottom, 1, y);
    }
    if bottom.saturating_sub(y) >= 6 {
        a.filter = Rect::new(area.x, y, area.width, 1);
        y += 1;
    }
    let body = Rect::new(area.x, y, area.width, bottom.saturating_sub(y));
    let detail = matches!(app.mode, Mode::Detail { .. });
    let mut kinds = Vec::new();
    if !detail {
        for (on, k) in [
            (app.panels.counts, PanelKind::Counts),
            (app.panels.drops, PanelKind::Drops),
            (app.panels.map, PanelKind::Map),
            (app.panels.status, PanelKind::Status),
        ] {
            if on {
                kinds.push(k);
            }
        }
    }
    if kinds.is_empty() {
        a.table = body;
        return a;
    }
    if body.width >= 130 {
        // Side column on the right.
        let w = (body.width / 3).clamp(44, 64);
        let col = Rect::new(body.x + body.width - w, body.y, w, body.height);
        a.table = Rect::new(body.x, body.y, body.width - w - 1, body.height);
        let mut py = col.y;
        for k in kinds {
            let h = panel_height(app, k).min(col.y + col.height - py);
            if h == 0 {
                break;
            }
            a.panels.push((k, Rect::new(col.x, py, col.width, h)));
            py += h;
            if py < col.y + col.height {
                py += 1;
            }
        }
        return a;
    }
    // Stacked above the table, as long as the table keeps its rows.
    let mut py = body.y;
    for k in kinds {
        let h = panel_height(app, k);
        let used = py - body.y + h;
        if body.height.saturating_sub(used) < MIN_TABLE_ROWS {
            continue;
        }
        a.panels.push((k, Rect::new(body.x, py, body.width, h)));
        py += h;
    }
    a.table = Rect::new(body.x, py, body.width, body.height - (py - body.y));
    a
}

/// Renders the whole dashboard into `buf`.
pub(crate) fn render(app: &App, area: Rect, buf: &mut Buffer) {
    let areas = layout(app, area);
    let t = app.options.theme;
    header(app, areas.header, buf);
    story_banner(app, areas.story, buf);
    filter_line(app, areas.filter, buf);
    for (k, r) in &areas.panels {
        match k {
            PanelKind::Counts => counts_panel(app, *r, buf),
            PanelKind::Drops => drops_panel(app, *r, buf),
            PanelKind::Map => map_panel(app, *r, buf),
            PanelKind::Status => status_panel(app, *r, buf),
        }
    }
    match app.mode {
        Mode::Detail { scroll } => detail(app, scroll, areas.table, buf),
        _ => table(app, areas.table, buf),
    }
    if let Some(n) = &app.notice {
        if areas.notice.height > 0 {
            let (glyph, style) = if n.error {
                ("! ", t.error())
            } else {
                ("• ", Style::new())
            };
            put(buf, areas.notice, 0, &format!("{glyph}{}", n.text), style);
        }
    }
    input(app, areas.input, buf);
    footer(app, areas.footer, buf);
    if app.mode == Mode::Help {
        help(app, area, buf);
    }
}

/// Writes `text` on line `dy` of `r`, cut to the width.
fn put(buf: &mut Buffer, r: Rect, dy: u16, text: &str, style: Style) -> u16 {
    if r.width == 0 || dy >= r.height {
        return 0;
    }
    let (x, _) = buf.set_stringn(r.x, r.y + dy, text, usize::from(r.width), style);
    x - r.x
}

/// Writes spans on one line, cut to the width.
fn put_line(buf: &mut Buffer, r: Rect, dy: u16, line: &Line<'_>) {
    if r.width == 0 || dy >= r.height {
        return;
    }
    buf.set_line(r.x, r.y + dy, line, r.width);
}

fn header(app: &App, r: Rect, buf: &mut Buffer) {
    if r.height == 0 {
        return;
    }
    let t = app.options.theme;
    let mut spans = vec![Span::styled("holonet ", t.title())];
    match &app.source.connection {
        Connection::Connecting(a) => {
            spans.push(Span::styled(format!("○ CONNECTING {a}"), t.warn()))
        }
        Connection::Live(a) => spans.push(Span::styled(format!("● LIVE {a}"), t.ok())),
        // The reason is on the notice line; the header stays short.
        Connection::Retrying(_) => {
            spans.push(Span::styled("✗ DISCONNECTED, retrying", t.error()));
        }
        Connection::Failed(e) => spans.push(Span::styled(format!("✗ FAILED: {e}"), t.error())),
        Connection::Replay(name) => {
            let r = app.source.replay.clone().unwrap_or_default();
            let state = if r.done {
                "■ END"
            } else if r.paused {
                "⏸ PAUSED"
            } else {
                "▶ REPLAY"
            };
            let style = if r.paused { t.warn() } else { t.ok() };
            spans.push(Span::styled(format!("{state} {name}"), style));
            spans.push(Span::raw(format!(
                " {} @{}",
                r.speed,
                row::time_cell(r.position.as_ref(), false)
            )));
            if r.skipped > 0 {
                spans.push(Span::styled(
                    format!(" │ {} lines skipped", row::thousands(r.skipped)),
                    t.warn(),
                ));
            }
        }
    }
    spans.push(Span::raw(" │ "));
    if let Some(_f) = &app.freeze {
        spans.push(Span::styled(
            format!("⏸ FROZEN +{} new", row::thousands(app.frozen_new() as u64)),
            t.warn(),
        ));
    } else if app.follow {
        spans.push(Span::raw("FOLLOW"));
    } else {
        spans.push(Span::styled("SCROLL (G: follow)", t.warn()));
    }
    spans.push(Span::raw(format!(
        " │ {}/{} flows",
        row::thousands(app.view.len() as u64),
        row::thousands(app.store.len() as u64)
    )));
    let lost = app.source.lost_upstream + app.source.lost_here;
    spans.push(Span::raw(" │ "));
    spans.push(Span::styled(
        format!("lost {}", row::thousands(lost)),
        if lost > 0 { t.error() } else { Style::new() },
    ));
    put_line(buf, r, 0, &Line::from(spans));
}

/// The story's caption (reversed, so it reads as a banner without colour)
/// with the timer hint on the right, and the step's outcome below it.
fn story_banner(app: &App, r: Rect, buf: &mut Buffer) {
    let Some(story) = &app.story else { return };
    if r.height == 0 || r.width == 0 {
        return;
    }
    let t = app.options.theme;
    let failed = matches!(story.phase, Phase::Failed(_));
    let banner = if failed {
        t.error().add_modifier(Modifier::REVERSED)
    } else {
        t.title().add_modifier(Modifier::REVERSED)
    };
    buf.set_style(Rect::new(r.x, r.y, r.width, 1), banner);
    let width = usize::from(r.width);
    let hint = story.hint().map(|h| format!(" {h} "));
    let hint_len = hint.as_ref().map_or(0, |h| h.chars().count());
    // The hint only shows when the caption keeps most of the line.
    let (hint, room) = if hint_len + 20 <= width {
        (hint, width - hint_len)
    } else {
        (None, width)
    };
    put(
        buf,
        r,
        0,
        &fit(&format!(" {}", story.headline()), room),
        banner,
    );
    if let Some(h) = hint {
        let x = r.x + u16::try_from(room).unwrap_or(0);
        buf.set_stringn(x, r.y, &h, hint_len, banner);
    }
    if r.height < 2 {
        return;
    }
    if let Some(o) = &story.outcome {
        let (glyph, style) = if o.as_expected {
            ("✓ ", t.ok())
        } else {
            ("✗ ", t.error())
        };
        put(buf, r, 1, &format!("  {glyph}{}", o.text), style);
    } else if matches!(story.phase, Phase::Over { .. }) {
        // Where to go from here, for someone who just watched the story.
        put(
            buf,
            r,
            1,
            "  explore: / filters (e.g. org=payer --verdict DROPPED) · Enter says why a flow was dropped · ? every key",
            t.dim(),
        );
    }
}

fn filter_line(app: &App, r: Rect, buf: &mut Buffer) {
    if r.height == 0 {
        return;
    }
    let t = app.options.theme;
    let line = Line::from(vec![
        Span::styled("filter: ", t.title()),
        Span::raw(app.filter.description.clone()),
    ]);
    put_line(buf, r, 0, &line);
}

fn spark(series: &[u64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let s = &series[series.len().saturating_sub(width)..];
    let max = s.iter().copied().max().unwrap_or(0);
    s.iter()
        .map(|v| {
            if *v == 0 || max == 0 {
                ' '
            } else {
                let i = usize::try_from(v.saturating_mul(7) / max).unwrap_or(7);
                BARS[i.min(7)]
            }
        })
        .collect()
}

fn counts_panel(app: &App, r: Rect, buf: &mut Buffer) {
    let t = app.options.theme;
    let s = app.stats();
    let v = |x: Verdict| s.verdicts[x as usize];
    let other = s.total() - v(Verdict::Forwarded) - v(Verdict::Dropped) - v(Verdict::Audit);
    let mut spans = Vec::new();
    for (verdict, n) in [
        (Verdict::Forwarded, v(Verdict::Forwarded)),
        (Verdict::Dropped, v(Verdict::Dropped)),
        (Verdict::Audit, v(Verdict::Audit)),
    ] {
        spans.push(Span::styled(
            row::verdict_name(verdict as i32),
            t.verdict(verdict as i32),
        ));
        spans.push(Span::raw(format!(" {}  ", row::thousands(n))));
    }
    spans.push(Span::raw(format!("other {}", row::thousands(other))));
    put_line(buf, r, 0, &Line::from(spans));
    if r.height < 2 {
        return;
    }
    let series = s.rate_series(60);
    let all: Vec<u64> = series.iter().map(|x| x.0).collect();
    let drops: Vec<u64> = series.iter().map(|x| x.1).collect();
    let last = |v: &[u64]| v.last().copied().unwrap_or(0);
    let half = usize::from(r.width / 2).saturating_sub(14).max(1);
    let line = Line::from(vec![
        Span::styled("flows/s ", t.dim()),
        Span::styled(format!("{:>5} ", last(&all)), Style::new()),
        Span::styled(format!("{:<half$}", spark(&all, half)), t.ok()),
        Span::styled("  drops/s ", t.dim()),
        Span::styled(
            format!("{:>4} ", last(&drops)),
            t.verdict(Verdict::Dropped as i32),
        ),
        Span::styled(spark(&drops, half), t.verdict(Verdict::Dropped as i32)),
    ]);
    put_line(buf, r, 1, &line);
}

fn panel_title(t: Theme, r: Rect, buf: &mut Buffer, title: &str) {
    let text = format!("── {title} ");
    let w = put(buf, r, 0, &text, t.title());
    if w < r.width {
        let rest = "─".repeat(usize::from(r.width - w));
        buf.set_stringn(r.x + w, r.y, rest, usize::from(r.width - w), t.dim());
    }
}

fn drops_panel(app: &App, r: Rect, buf: &mut Buffer) {
    let t = app.options.theme;
    panel_title(t, r, buf, "Top dropped (source → destination  method path)");
    let rows = usize::from(r.height.saturating_sub(1));
    let top = app.stats().top_drops(rows);
    if top.is_empty() {
        put(buf, r, 1, "  no drops", t.dim());
        return;
    }
    let dropped = t.verdict(Verdict::Dropped as i32);
    let short = r.width < 110;
    // On narrow screens the namespace goes first, then the path is cut
    // from the left so its end (the resource) stays visible.
    let name = |s: &str| -> String {
        if short {
            s.rsplit('/').next().unwrap_or(s).to_owned()
        } else {
            s.to_owned()
        }
    };
    for (i, (k, n)) in top.iter().enumerate() {
        let head = format!("{:>6} ", row::thousands(*n));
        let peers = format!("{} → {}  ", name(&k.src), name(&k.dst));
        let method = format!("{} ", k.method);
        let used = head.chars().count() + peers.chars().count() + method.chars().count();
        let room = usize::from(r.width).saturating_sub(used);
        let line = Line::from(vec![
            Span::styled(head, dropped),
            Span::raw(peers),
            Span::styled(method, Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(fit_left(&k.path, room)),
        ]);
        put_line(buf, r, u16::try_from(i + 1).unwrap_or(u16::MAX), &line);
    }
}

fn map_panel(app: &App, r: Rect, buf: &mut Buffer) {
    let t = app.options.theme;
    panel_title(t, r, buf, "Service map (who talks to whom)");
    let rows = usize::from(r.height.saturating_sub(1));
    let edges = app.stats().top_edges(rows);
    if edges.is_empty() {
        put(buf, r, 1, "  no flows", t.dim());
        return;
    }
    for (i, ((src, dst), c)) in edges.iter().enumerate() {
        // The arrow says the verdict in glyphs too: ─▶ forwarded only,
        // ─✗ some dropped, ─? audited.
        let (arrow, style) = if c.dropped > 0 {
            ("─✗", t.verdict(Verdict::Dropped as i32))
        } else if c.audit > 0 {
            ("─?", t.verdict(Verdict::Audit as i32))
        } else {
            ("─▶", t.verdict(Verdict::Forwarded as i32))
        };
        let mut counts = Vec::new();
        if c.forwarded > 0 {
            counts.push(Span::styled(
                format!(" fwd {}", row::thousands(c.forwarded)),
                t.verdict(Verdict::Forwarded as i32),
            ));
        }
        if c.dropped > 0 {
            counts.push(Span::styled(
                format!(" drop {}", row::thousands(c.dropped)),
                t.verdict(Verdict::Dropped as i32),
            ));
        }
        if c.audit > 0 {
            counts.push(Span::styled(
                format!(" audit {}", row::thousands(c.audit)),
                t.verdict(Verdict::Audit as i32),
            ));
        }
        if c.other > 0 {
            counts.push(Span::raw(format!(" other {}", row::thousands(c.other))));
        }
        let mut spans = vec![
            Span::raw(format!("  {src} ")),
            Span::styled(arrow, style),
            Span::raw(format!(" {dst} ")),
        ];
        spans.extend(counts);
        put_line(
            buf,
            r,
            u16::try_from(i + 1).unwrap_or(u16::MAX),
            &Line::from(spans),
        );
    }
}

fn status_lines(app: &App) -> Vec<String> {
    let mut lines = Vec::new();
    match (&app.source.agent, &app.source.replay) {
        (_, Some(rp)) => {
            lines.push(format!(
                "recording: {} events played, {} lines skipped{}",
                row::thousands(rp.events),
                row::thousands(rp.skipped),
                if rp.done { ", end reached" } else { "" }
            ));
        }
        (Some(a), None) => {
            let nodes = match (a.connected_nodes, a.unavailable_nodes) {
                (Some(c), u) => format!(
                    "nodes {c} connected, {} unavailable{}",
                    u.unwrap_or(0),
                    if a.unavailable_names.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", a.unavailable_names.join(", "))
                    }
                ),
                (None, _) => "nodes: 1 (a single agent)".to_owned(),
            };
            lines.push(format!(
                "agent {} up {} │ {nodes} │ agent buffer {}/{} flows, {:.1} flows/s",
                if a.version.is_empty() {
                    "?"
                } else {
                    &a.version
                },
                row::human_duration_ns(a.uptime_ns),
                row::thousands(a.num_flows),
                row::thousands(a.max_flows),
                a.flows_rate
            ));
        }
        (None, None) => lines.push("agent: no ServerStatus answer yet".to_owned()),
    }
    let window = match app.store.ends() {
        Some((first, last)) => {
            let span = row::ts_nanos(last.time.as_ref()) - row::ts_nanos(first.time.as_ref());
            format!(
                "{}–{} ({})",
                row::time_cell(first.time.as_ref(), false),
                row::time_cell(last.time.as_ref(), false),
                row::human_duration_ns(u64::try_from(span.max(0)).unwrap_or(0))
            )
        }
        None => "empty".to_owned(),
    };
    lines.push(format!(
        "lost: {} upstream, {} here │ buffer {}/{} flows ({} evicted), window {window}",
        row::thousands(app.source.lost_upstream),
        row::thousands(app.source.lost_here),
        row::thousands(app.store.len() as u64),
        row::thousands(app.store.capacity() as u64),
        row::thousands(app.store.evicted()),
    ));
    let s = app.view.stats();
    let mut seen = Vec::new();
    if s.http_seen > 0 {
        seen.push("HTTP");
    }
    if s.dns_seen > 0 {
        seen.push("DNS");
    }
    if s.verdicts[Verdict::Dropped as usize] > 0 {
        seen.push("drops");
    }
    let seen = if seen.is_empty() {
        "L3/L4 only".to_owned()
    } else {
        seen.join(", ")
    };
    match &app.source.capabilities {
        Some(Ok(caps)) => lines.extend(capability_lines(caps)),
        Some(Err(why)) => lines.push(format!(
            "capabilities: not reported ({why}); seen in flows: {seen}"
        )),
        None => lines.push(format!(
            "capabilities: not reported by the source; seen in flows: {seen}"
        )),
    }
    lines
}

/// The agent's kernel and datapath in two lines: what runs where, then
/// which features are on and which are not (with the first reason).
pub(crate) fn capability_lines(caps: &GetCapabilitiesResponse) -> Vec<String> {
    let mut head = format!(
        "node {}: kernel {}, tc via {}, policies: {}",
        caps.node_name, caps.kernel_release, caps.tc_mode, caps.policy_mode
    );
    if !caps.pin_dir.is_empty() {
        head.push_str(", pinned");
    }
    let missing: Vec<&str> = caps
        .kernel_capabilities
        .iter()
        .filter(|c| !c.available)
        .map(|c| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        head.push_str(&format!("; kernel lacks {}", missing.join(", ")));
    }
    let on: Vec<&str> = caps
        .features
        .iter()
        .filter(|f| f.active)
        .map(|f| f.name.as_str())
        .collect();
    let off: Vec<String> = caps
        .features
        .iter()
        .filter(|f| !f.active)
        .map(|f| format!("{} ({})", f.name, f.detail))
        .collect();
    let mut features = format!("active: {}", on.join(", "));
    if !off.is_empty() {
        features.push_str(&format!(" │ off: {}", off.join("; ")));
    }
    vec![head, features]
}

fn status_panel(app: &App, r: Rect, buf: &mut Buffer) {
    let t = app.options.theme;
    panel_title(t, r, buf, "Source status");
    for (i, l) in status_lines(app).iter().enumerate() {
        put(
            buf,
            r,
            u16::try_from(i + 1).unwrap_or(u16::MAX),
            &format!("  {l}"),
            Style::new(),
        );
    }
}

/// Table columns, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    /// Flow time.
    Time,
    /// Node name.
    Node,
    /// Source endpoint.
    Source,
    /// Destination endpoint.
    Destination,
    /// Verdict.
    Verdict,
    /// Flow type.
    Type,
    /// HTTP method.
    Method,
    /// HTTP path / DNS name.
    Path,
    /// HTTP status code.
    Code,
    /// L7 latency.
    Latency,
    /// The processes at both ends (holonet agents, TCP flows).
    Process,
    /// Drop reason.
    Reason,
}

const COLS: [(Col, &str, u16, u16); 12] = [
    (Col::Time, "TIME", 8, 12),
    (Col::Node, "NODE", 10, 26),
    (Col::Source, "SOURCE", 15, 48),
    (Col::Destination, "DESTINATION", 15, 48),
    (Col::Verdict, "VERDICT", 9, 9),
    (Col::Type, "TYPE", 13, 13),
    (Col::Method, "METHOD", 6, 7),
    (Col::Path, "PATH", 15, 60),
    (Col::Code, "CODE", 4, 4),
    (Col::Latency, "LATENCY", 7, 8),
    (Col::Reason, "DROP REASON", 13, 22),
    (Col::Process, "PROCESSES", 14, 36),
];

const PRIORITY: [Col; 12] = [
    Col::Verdict,
    Col::Source,
    Col::Destination,
    Col::Time,
    Col::Method,
    Col::Path,
    Col::Code,
    Col::Type,
    Col::Reason,
    Col::Latency,
    Col::Node,
    Col::Process,
];

/// Width of the selection marker column.
const MARK: u16 = 2;

/// Which columns fit in `width`, and how wide each is (display order).
/// Columns are added by priority while their minimum widths fit; the rest
/// of the width grows endpoints and path first.
pub(crate) fn columns(width: u16) -> Vec<(Col, u16)> {
    let avail = width.saturating_sub(MARK);
    let spec = |c: Col| COLS.iter().find(|s| s.0 == c).copied().unwrap_or(COLS[0]);
    let mut chosen: Vec<Col> = Vec::new();
    let mut used: u16 = 0;
    for c in PRIORITY {
        let sep = u16::from(!chosen.is_empty());
        let need = spec(c).2 + sep;
        if used + need <= avail {
            chosen.push(c);
            used += need;
        }
    }
    let mut widths: Vec<(Col, u16)> = COLS
        .iter()
        .filter(|s| chosen.contains(&s.0))
        .map(|s| (s.0, s.2))
        .collect();
    let mut spare = avail.saturating_sub(used);
    // Grow a group of columns evenly, one character at a time, up to a cap.
    let mut grow = |cols: &[Col], cap: Option<u16>, spare: &mut u16| loop {
        let mut grew = false;
        for c in cols {
            if *spare == 0 {
                return;
            }
            if let Some(w) = widths.iter_mut().find(|w| w.0 == *c) {
                let max = cap.unwrap_or(spec(*c).3).min(spec(*c).3);
                if w.1 < max {
                    w.1 += 1;
                    *spare -= 1;
                    grew = true;
                }
            }
        }
        if !grew {
            return;
        }
    };
    grow(
        &[Col::Source, Col::Destination, Col::Path],
        Some(24),
        &mut spare,
    );
    grow(&[Col::Time], None, &mut spare);
    grow(
        &[Col::Source, Col::Destination, Col::Path],
        Some(36),
        &mut spare,
    );
    grow(
        &[
            Col::Reason,
            Col::Node,
            Col::Latency,
            Col::Method,
            Col::Process,
        ],
        None,
        &mut spare,
    );
    grow(
        &[Col::Source, Col::Destination, Col::Path],
        None,
        &mut spare,
    );
    if spare > 0 {
        if let Some(w) = widths.iter_mut().find(|w| w.0 == Col::Path) {
            w.1 += spare;
        }
    }
    widths
}

/// Cuts from the left, keeping the end (`…/Patient/Anakin`).
fn fit_left(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width || width == 0 {
        return fit(s, width);
    }
    let mut out = String::from("…");
    out.extend(s.chars().skip(n - (width - 1)));
    out
}

fn cell(flow: &Flow, c: Col, w: u16, keys: &[String]) -> String {
    let w = usize::from(w);
    match c {
        Col::Time => row::time_cell(flow.time.as_ref(), w >= 12),
        Col::Node => fit_left(&flow.node_name, w),
        Col::Source => fit(&row::endpoint_cell(flow, Side::Source, w, keys), w),
        Col::Destination => fit(&row::endpoint_cell(flow, Side::Destination, w, keys), w),
        Col::Verdict => row::verdict_name(flow.verdict).to_owned(),
        Col::Type => row::flow_kind(flow).to_owned(),
        Col::Method => fit(row::method(flow), w),
        // Keep the end of a URL path, the start of a DNS name.
        Col::Path if row::http(flow).is_some() => fit_left(row::path(flow), w),
        Col::Path => fit(row::path(flow), w),
        Col::Code => row::status(flow),
        Col::Latency => row::latency(flow),
        Col::Reason => fit(row::drop_reason_name(flow), w),
        Col::Process => holonet_flows::fields::processes(flow)
            .map(|(source, destination)| fit(&format!("{source} → {destination}"), w))
            .unwrap_or_default(),
    }
}

fn table(app: &App, r: Rect, buf: &mut Buffer) {
    if r.height == 0 || r.width == 0 {
        return;
    }
    let t = app.options.theme;
    let cols = columns(r.width);
    // Header row.
    let mut x = r.x + MARK;
    for (c, w) in &cols {
        let title = COLS.iter().find(|s| s.0 == *c).map_or("", |s| s.1);
        buf.set_stringn(
            x,
            r.y,
            fit(title, usize::from(*w)),
            usize::from(*w),
            t.header(),
        );
        x += w + 1;
    }
    let rows = usize::from(r.height - 1);
    let n = app.visible_len();
    if n == 0 {
        let msg = if app.store.len() == 0 {
            match &app.source.connection {
                Connection::Replay(_) => "No flows in the recording yet.".to_owned(),
                Connection::Failed(e) => format!("No flows: {e}"),
                Connection::Retrying(e) => {
                    format!("No flows: {e}. Retrying; is `holonet agent` running?")
                }
                _ => "No flows yet: waiting for the agent.".to_owned(),
            }
        } else {
            format!(
                "No flows match the filter ({} buffered). Press / to change it, :clear to remove it.",
                row::thousands(app.store.len() as u64)
            )
        };
        let area = Rect::new(r.x, r.y + 1, r.width, r.height - 1);
        Paragraph::new(msg)
            .style(t.dim())
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    let (start, end) = app.window(rows);
    let sel = app.selected_index();
    let seqs = app.view.seqs();
    for (i, idx) in (start..end).enumerate() {
        let Some(entry) = seqs.get(idx).and_then(|s| app.store.get(*s)) else {
            continue;
        };
        let y = r.y + 1 + u16::try_from(i).unwrap_or(u16::MAX - 1);
        if y >= r.y + r.height {
            break;
        }
        let selected = Some(idx) == sel;
        let flow = &entry.flow;
        let base = if selected { t.selected() } else { Style::new() };
        if selected {
            buf.set_style(Rect::new(r.x, y, r.width, 1), base);
            buf.set_stringn(r.x, y, "▶ ", usize::from(MARK), base);
        }
        let mut x = r.x + MARK;
        for (c, w) in &cols {
            let text = cell(flow, *c, *w, &app.filter.label_keys);
            let style = if *c == Col::Verdict {
                base.patch(t.verdict(flow.verdict))
            } else {
                base
            };
            buf.set_stringn(x, y, &text, usize::from(*w), style);
            x += w + 1;
        }
    }
}

/// Splits `text` into lines of at most `width` characters at spaces (hard
/// cuts for longer words); continuation lines get `indent` spaces.
pub(crate) fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let width = width.max(indent + 8);
    let body = text.trim_start_matches(' ');
    let lead = text.len() - body.len();
    let mut out: Vec<String> = Vec::new();
    let mut cur = " ".repeat(lead);
    let mut len = lead;
    let mut words_in_line = 0usize;
    for word in body.split(' ').filter(|w| !w.is_empty()) {
        let mut chars: Vec<char> = word.chars().collect();
        loop {
            let sep = usize::from(words_in_line > 0);
            if len + sep + chars.len() <= width {
                if sep == 1 {
                    cur.push(' ');
                }
                cur.extend(chars.iter());
                len += sep + chars.len();
                words_in_line += 1;
                break;
            }
            if words_in_line > 0 {
                out.push(std::mem::replace(&mut cur, " ".repeat(indent)));
                len = indent;
                words_in_line = 0;
                continue;
            }
            // A word longer than a whole line is cut.
            let rest = chars.split_off(width.saturating_sub(len).max(1).min(chars.len()));
            cur.extend(chars.iter());
            out.push(std::mem::replace(&mut cur, " ".repeat(indent)));
            len = indent;
            chars = rest;
            if chars.is_empty() {
                break;
            }
        }
    }
    if words_in_line > 0 || out.is_empty() {
        out.push(cur);
    }
    out
}

/// The lines of the detail pane for a flow, wrapped to `width` with
/// hanging indents.
pub(crate) fn detail_lines(app: &App, flow: &Flow, width: u16) -> Vec<Line<'static>> {
    let width = usize::from(width);
    let t = app.options.theme;
    let mut out: Vec<Line<'static>> = Vec::new();
    let verdict = row::verdict_name(flow.verdict);
    out.push(Line::from(vec![
        Span::styled("Flow ", t.title()),
        Span::raw(format!("{} ", row::time_cell(flow.time.as_ref(), true))),
        Span::styled(verdict.to_owned(), t.verdict(flow.verdict)),
        Span::raw(format!(
            "  {}  {} → {}",
            row::flow_kind(flow),
            row::peer_name(flow, Side::Source),
            row::peer_name(flow, Side::Destination)
        )),
    ]));
    if !flow.summary.is_empty() {
        for l in wrap(&format!("  {}", flow.summary), width, 4) {
            out.push(Line::raw(l));
        }
    }
    if let Some((source, destination)) = holonet_flows::fields::processes(flow) {
        for l in wrap(&format!("  processes: {source} → {destination}"), width, 4) {
            out.push(Line::raw(l));
        }
    }
    out.push(Line::raw(""));
    let why = if flow.verdict == Verdict::Dropped as i32 {
        "Why was it dropped?"
    } else {
        "Why this verdict?"
    };
    out.push(Line::styled(why, t.title()));
    for s in explain::explain(
        flow,
        app.options.policy.as_deref(),
        app.agent_explanation.as_ref(),
    ) {
        for l in wrap(&format!("  [{}]", s.source), width, 3) {
            out.push(Line::styled(l, t.dim()));
        }
        for l in s.lines {
            for w in wrap(&format!("    {l}"), width, 6) {
                out.push(Line::raw(w));
            }
        }
    }
    out.push(Line::raw(""));
    out.push(Line::styled("Every field (protojson names)", t.title()));
    let mut fields = Vec::new();
    match serde_json::to_value(flow) {
        Ok(v) => flatten("", &v, &mut fields),
        Err(e) => fields.push(("error".to_owned(), e.to_string())),
    }
    let kw = fields
        .iter()
        .map(|(k, _)| k.len())
        .max()
        .unwrap_or(0)
        .min(40);
    for (k, v) in fields {
        let key = format!("  {k:<kw$} ");
        let klen = key.chars().count();
        let room = width.saturating_sub(klen).max(16);
        for (i, part) in wrap(&v, room, 0).into_iter().enumerate() {
            let head = if i == 0 {
                Span::styled(key.clone(), t.dim())
            } else {
                Span::raw(" ".repeat(klen))
            };
            out.push(Line::from(vec![head, Span::raw(part)]));
        }
    }
    out
}

/// `a.b[0].c: value` lines from JSON.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            if m.is_empty() && !prefix.is_empty() {
                out.push((prefix.to_owned(), "{}".to_owned()));
            }
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            let items: Vec<String> = a.iter().map(scalar).collect();
            out.push((prefix.to_owned(), items.join(", ")));
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        other => out.push((prefix.to_owned(), scalar(other))),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn detail(app: &App, scroll: u16, r: Rect, buf: &mut Buffer) {
    if r.height == 0 {
        return;
    }
    let Some((_, flow)) = app.selected_flow() else {
        put(
            buf,
            r,
            0,
            "The selected flow left the buffer. Esc: back",
            Style::new(),
        );
        return;
    };
    let lines = detail_lines(app, flow, r.width);
    // Never scroll past the last line.
    let max = u16::try_from(lines.len().saturating_sub(1)).unwrap_or(u16::MAX);
    Paragraph::new(lines)
        .scroll((scroll.min(max), 0))
        .render(r, buf);
}

fn input(app: &App, r: Rect, buf: &mut Buffer) {
    if r.height == 0 {
        return;
    }
    let t = app.options.theme;
    let (prompt, edit) = match &app.mode {
        Mode::Filter(bar) => ("/ ", &bar.edit),
        Mode::Command(e) => (": ", e),
        _ => return,
    };
    let w = usize::from(r.width).saturating_sub(prompt.len() + 1).max(1);
    // Scroll the text so the cursor stays visible.
    let chars: Vec<char> = edit.text.chars().collect();
    let start = edit.cursor.saturating_sub(w.saturating_sub(1));
    let shown: String = chars.iter().skip(start).take(w).collect();
    let px = put(buf, r, 0, prompt, t.key());
    buf.set_stringn(r.x + px, r.y, &shown, w, Style::new());
    let cx = r.x + px + u16::try_from(edit.cursor - start).unwrap_or(0);
    if cx < r.x + r.width {
        let ch = chars
            .get(edit.cursor)
            .map_or(" ".to_owned(), |c| c.to_string());
        buf.set_stringn(cx, r.y, ch, 1, t.selected());
    }
    if let Mode::Filter(bar) = &app.mode {
        let (text, style) = match &bar.check {
            Ok(d) => (format!("✓ {d}  (Enter: apply, Esc: cancel)"), t.ok()),
            Err(e) => (format!("✗ {e}"), t.error()),
        };
        put(buf, r, 1, &text, style);
    }
}

/// The key hints for the current mode, most important first.
pub(crate) fn footer_keys(app: &App) -> Vec<(&'static str, &'static str)> {
    match &app.mode {
        Mode::Filter(_) => vec![
            ("Enter", "apply"),
            ("Esc", "cancel"),
            ("Ctrl-U", "clear"),
            ("e.g.", "org=payer --verdict DROPPED"),
        ],
        Mode::Command(_) => vec![
            ("Enter", "run"),
            ("Esc", "cancel"),
            (":", "filter clear pause speed seek panel q"),
        ],
        Mode::Help => vec![("Esc", "close"), ("q", "quit")],
        Mode::Detail { .. } => vec![
            ("Esc", "back"),
            ("j/k", "scroll"),
            ("PgUp/PgDn", "page"),
            ("?", "help"),
            ("q", "quit"),
        ],
        Mode::Table => {
            let mut v = vec![("q", "quit")];
            if app.story.as_ref().is_some_and(|s| s.can_advance()) {
                v.push(("n", "next step"));
            }
            v.extend([
                (
                    "␣",
                    if app.is_replay() {
                        "play/pause"
                    } else {
                        "freeze"
                    },
                ),
                ("/", "filter"),
                ("↵", "detail"),
                ("?", "help"),
            ]);
            if app.is_replay() {
                v.push(("+/-", "speed"));
                v.push(("[ ]", "seek"));
            }
            v.extend([
                ("j/k", "scroll"),
                ("G", "follow"),
                ("1-4", "panels"),
                (":", "command"),
            ]);
            v
        }
    }
}

fn footer(app: &App, r: Rect, buf: &mut Buffer) {
    if r.height == 0 {
        return;
    }
    let t = app.options.theme;
    let mut spans = Vec::new();
    let mut used = 0usize;
    for (k, label) in footer_keys(app) {
        let len = k.chars().count() + 1 + label.chars().count() + 2;
        if used + len > usize::from(r.width) && used > 0 {
            break;
        }
        spans.push(Span::styled(k, t.key()));
        spans.push(Span::raw(format!(" {label}  ")));
        used += len;
    }
    put_line(buf, r, 0, &Line::from(spans));
}

/// The help text: keys, filter grammar, where logs go.
pub(crate) fn help_lines(app: &App) -> Vec<String> {
    let mut v = vec![
        "Keys".to_owned(),
        "  q, Ctrl-C     quit            Esc        back / close".to_owned(),
        "  space         freeze the table (live) or pause playback (replay)".to_owned(),
        "  j/k ↑/↓       move            PgUp/PgDn  page".to_owned(),
        "  g / G         oldest / newest (G follows new flows)".to_owned(),
        "  mouse wheel   scroll          Enter      flow detail and why".to_owned(),
        "  /             filter bar      :          command line".to_owned(),
        "  1 2 3 4       panels: counts, top dropped, service map, status".to_owned(),
        "  Ctrl-L        redraw          ?          this help".to_owned(),
        "Replay".to_owned(),
        "  + / -         speed (0.1x … 100x, max)   . or n  step while paused".to_owned(),
        "  [ / ]         seek -10s / +10s           :seek +30s | -1m | 10:48:40 | start".to_owned(),
        "  :speed 2.5    any factor from 0.1 to 100, or max".to_owned(),
        "Filters (same words as the command line)".to_owned(),
        "  org=payer                either side has label org=payer (--filter)".to_owned(),
        "  --verdict DROPPED        --from-label app=x  --to-label app=y".to_owned(),
        "  --http-method GET        --http-path '^/api/'  --http-status 5+".to_owned(),
        "  -n NAMESPACE  --pod NS/POD  --ip CIDR  --port 53  --protocol dns".to_owned(),
        "  --not FLAG               exclude; flags AND, repeated flags OR".to_owned(),
        "Commands: :filter ARGS  :clear  :pause  :play  :speed X  :seek T  :panel NAME  :q"
            .to_owned(),
    ];
    if app.story.is_some() {
        v.splice(
            9..9,
            [
                "Demo (holonet demo)".to_owned(),
                "  n, :next      next step now (steps also advance on a timer, --step-seconds)"
                    .to_owned(),
                "  q             quit: stops the traffic, removes the pods, detaches the probe"
                    .to_owned(),
            ],
        );
    }
    v.push(format!("Logs: {}", app.options.log_path));
    v
}

fn help(app: &App, area: Rect, buf: &mut Buffer) {
    let t = app.options.theme;
    let lines = help_lines(app);
    let w = lines
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .saturating_add(4);
    let w = u16::try_from(w).unwrap_or(u16::MAX).min(area.width);
    let h = u16::try_from(lines.len() + 2)
        .unwrap_or(u16::MAX)
        .min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    Clear.render(r, buf);
    let text: Vec<Line<'_>> = lines
        .into_iter()
        .map(|l| {
            if !l.starts_with(' ') && !l.starts_with("Logs") && !l.starts_with("Commands") {
                Line::styled(l, t.title())
            } else {
                Line::raw(l)
            }
        })
        .collect();
    Paragraph::new(text)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Help (Esc to close) "),
        )
        .render(r, buf);
}

/// A ratatui widget drawing the dashboard (for `Frame::render_widget`).
#[derive(Debug)]
pub(crate) struct Dashboard<'a>(pub(crate) &'a App);

impl Widget for Dashboard<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        render(self.0, area, buf);
    }
}
