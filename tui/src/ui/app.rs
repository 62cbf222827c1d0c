//! The dashboard's model and its pure update function (The Elm
//! Architecture): every input — a key, a batch of flows, a status poll, a
//! signal — is a [`Msg`]; [`App::update`] changes the model and returns the
//! side effect to perform, if any. Nothing here touches the terminal, a
//! socket or a file, so every behaviour is tested by feeding messages.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseEvent, MouseEventKind};
use holonet_proto::{
    flow::Flow,
    holonet::{ExplainFlowResponse, GetCapabilitiesResponse},
    wkt::Timestamp,
};

use super::{
    explain::{PolicyContext, PolicyUpdate},
    filter::{self, ActiveFilter},
    row,
    store::{Stats, Store, View},
    story::Story,
    theme::Theme,
    view,
};

/// One event from a flow source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// A flow.
    Flow(Box<Flow>),
    /// Events lost before they reached the dashboard.
    Lost {
        /// Where they were lost (Hubble's LostEventSource, or this UI).
        source: String,
        /// How many.
        count: u64,
    },
    /// A relay node status message.
    Node(String),
}

/// Replay speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Speed {
    /// Original timing divided by this factor (0.1 to 100).
    Factor(f64),
    /// As fast as possible.
    Max,
}

impl Speed {
    /// The speeds `+` and `-` step through.
    pub(crate) const LADDER: [Speed; 11] = [
        Speed::Factor(0.1),
        Speed::Factor(0.25),
        Speed::Factor(0.5),
        Speed::Factor(1.0),
        Speed::Factor(2.0),
        Speed::Factor(5.0),
        Speed::Factor(10.0),
        Speed::Factor(25.0),
        Speed::Factor(50.0),
        Speed::Factor(100.0),
        Speed::Max,
    ];

    /// Parses `1`, `2.5x`, `0.1`, `max`; factors must lie in 0.1..=100.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("max") || t.eq_ignore_ascii_case("fast") {
            return Ok(Speed::Max);
        }
        let t = t.trim_end_matches(['x', 'X']);
        match t.parse::<f64>() {
            Ok(f) if (0.1..=100.0).contains(&f) => Ok(Speed::Factor(f)),
            _ => Err(format!(
                "speed {s:?}: expected a factor from 0.1 to 100 (e.g. 0.5, 10x) or max"
            )),
        }
    }

    fn step(self, up: bool) -> Self {
        let pos = Self::LADDER.iter().position(|s| match (s, self) {
            (Speed::Max, Speed::Max) => true,
            (Speed::Factor(a), Speed::Factor(b)) => *a >= b - 1e-9,
            _ => false,
        });
        let pos = pos.unwrap_or(Self::LADDER.len() - 1);
        let next = if up {
            (pos + 1).min(Self::LADDER.len() - 1)
        } else {
            pos.saturating_sub(1)
        };
        Self::LADDER[next]
    }

    /// `1x`, `0.25x`, `max`.
    pub(crate) fn label(self) -> String {
        match self {
            Speed::Max => "max".to_owned(),
            Speed::Factor(f) => format!("{f}x"),
        }
    }
}

/// A command to the replay player.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ReplayCmd {
    /// Stop or resume playback.
    Pause(bool),
    /// While paused, play the next flow.
    Step,
    /// Change the speed.
    Speed(Speed),
    /// Jump to a flow time (ns since the epoch); backwards restarts.
    SeekTo(i128),
}

/// Where the player is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ReplayState {
    /// Time of the last flow played.
    pub(crate) position: Option<Timestamp>,
    /// Time of the first flow of the recording.
    pub(crate) first: Option<Timestamp>,
    /// Current speed label.
    pub(crate) speed: String,
    /// Playback paused.
    pub(crate) paused: bool,
    /// The whole recording was played.
    pub(crate) done: bool,
    /// Events played so far.
    pub(crate) events: u64,
    /// Lines skipped so far (garbage).
    pub(crate) skipped: u64,
}

/// What the agent said in ServerStatus.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct AgentStatus {
    /// Agent version.
    pub(crate) version: String,
    /// Flows in the agent's ring.
    pub(crate) num_flows: u64,
    /// Ring capacity.
    pub(crate) max_flows: u64,
    /// Flows seen since start.
    pub(crate) seen_flows: u64,
    /// Uptime.
    pub(crate) uptime_ns: u64,
    /// Relay: connected nodes (None from a plain agent).
    pub(crate) connected_nodes: Option<u32>,
    /// Relay: unavailable nodes.
    pub(crate) unavailable_nodes: Option<u32>,
    /// Their names.
    pub(crate) unavailable_names: Vec<String>,
    /// Flows per second over the last minute.
    pub(crate) flows_rate: f64,
}

/// News from a source task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SourceMsg {
    /// Dialling an address.
    Connecting(String),
    /// Streaming from an address.
    Connected(String),
    /// Lost the stream; retrying.
    Disconnected(String),
    /// Gave up (or a recording could not be read).
    Failed(String),
    /// A ServerStatus answer.
    Status(AgentStatus),
    /// The agent's `holonet.Agent` GetCapabilities answer, or why there is
    /// none (a relay or a Hubble server does not serve it).
    Capabilities(Result<GetCapabilitiesResponse, String>),
    /// Player position.
    Replay(ReplayState),
    /// The player restarted from the beginning: forget buffered flows.
    Reset,
    /// Something worth a line in the notice bar.
    Notice(String),
}

/// Everything that can happen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// A mouse event.
    Mouse(MouseEvent),
    /// The terminal was resized.
    Resize(u16, u16),
    /// A batch of events from the source.
    Events(Vec<Event>),
    /// Source state.
    Source(SourceMsg),
    /// Where the story told over the dashboard is (`holonet demo`).
    Story(Story),
    /// The policies to explain flows with from now on (`holonet demo`
    /// sends the set it has applied so far after each step).
    Policies(PolicyUpdate),
    /// The agent's answer to an explanation asked for with
    /// [`Effect::Explain`], for the flow with this [`flow_key`].
    Explained {
        /// Which flow.
        key: String,
        /// The answer, or why there is none.
        answer: Result<ExplainFlowResponse, String>,
    },
    /// SIGTERM, SIGHUP, SIGINT.
    Quit,
}

/// Identifies a flow for an explanation answered later: its UUID, or its
/// time and summary when it has none.
pub(crate) fn flow_key(flow: &Flow) -> String {
    if flow.uuid.is_empty() {
        format!("{:?} {}", flow.time, flow.summary)
    } else {
        flow.uuid.clone()
    }
}

/// The agent's explanation of the flow in the detail pane.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentExplanation {
    /// Which flow ([`flow_key`]).
    pub(crate) key: String,
    /// `None` while the agent has not answered.
    pub(crate) answer: Option<Result<ExplainFlowResponse, String>>,
}

/// A side effect for the runtime to perform.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// Leave (the terminal is restored by the guard).
    Quit,
    /// Clear the screen and draw everything again (Ctrl-L).
    Redraw,
    /// Tell the replay player.
    Replay(ReplayCmd),
    /// Ask the story's driver for the next step now (`n` during the demo).
    NextStep,
    /// Ask the agent why this flow got its verdict.
    Explain(Box<Flow>),
}

/// A one-line text editor (filter bar, command line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LineEdit {
    /// The text.
    pub(crate) text: String,
    /// Cursor position in characters.
    pub(crate) cursor: usize,
}

impl LineEdit {
    fn new(text: String) -> Self {
        let cursor = text.chars().count();
        Self { text, cursor }
    }

    fn byte(&self, char_idx: usize) -> usize {
        self.text
            .char_indices()
            .nth(char_idx)
            .map_or(self.text.len(), |(b, _)| b)
    }

    /// Applies an editing key; returns whether the text changed.
    fn key(&mut self, k: &KeyEvent) -> bool {
        let len = self.text.chars().count();
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        match k.code {
            KeyCode::Char('u') if ctrl => {
                self.text.clear();
                self.cursor = 0;
                true
            }
            KeyCode::Char('a') if ctrl => {
                self.cursor = 0;
                false
            }
            KeyCode::Char('e') if ctrl => {
                self.cursor = len;
                false
            }
            KeyCode::Char(c) if !ctrl => {
                let b = self.byte(self.cursor);
                self.text.insert(b, c);
                self.cursor += 1;
                true
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let b = self.byte(self.cursor - 1);
                self.text.remove(b);
                self.cursor -= 1;
                true
            }
            KeyCode::Delete if self.cursor < len => {
                let b = self.byte(self.cursor);
                self.text.remove(b);
                true
            }
            KeyCode::Left => {
                self.cursor = self.cursor.saturating_sub(1);
                false
            }
            KeyCode::Right => {
                self.cursor = (self.cursor + 1).min(len);
                false
            }
            KeyCode::Home => {
                self.cursor = 0;
                false
            }
            KeyCode::End => {
                self.cursor = len;
                false
            }
            _ => false,
        }
    }
}

/// The filter bar: what is typed and whether it is valid, re-checked on
/// every key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilterBar {
    /// The text being edited.
    pub(crate) edit: LineEdit,
    /// Plain-words description if valid, else the error.
    pub(crate) check: Result<String, String>,
}

impl FilterBar {
    fn new(text: String) -> Self {
        let mut bar = Self {
            edit: LineEdit::new(text),
            check: Ok(String::new()),
        };
        bar.validate();
        bar
    }

    fn validate(&mut self) {
        self.check = filter::parse(&self.edit.text).map(|f| f.description);
    }
}

/// What has the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The flow table.
    Table,
    /// The detail pane of the selected flow.
    Detail {
        /// Lines scrolled.
        scroll: u16,
    },
    /// The `/` filter bar.
    Filter(FilterBar),
    /// The `:` command line.
    Command(LineEdit),
    /// The `?` help overlay.
    Help,
}

/// The toggleable panels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Panels {
    /// Verdict counts and rate sparkline (`1`).
    pub(crate) counts: bool,
    /// Top dropped (`2`).
    pub(crate) drops: bool,
    /// Service map (`3`).
    pub(crate) map: bool,
    /// Agent / source status (`4`).
    pub(crate) status: bool,
}

impl Default for Panels {
    fn default() -> Self {
        Self {
            counts: true,
            drops: true,
            map: false,
            status: false,
        }
    }
}

/// How the source is doing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Connection {
    /// Not yet connected.
    Connecting(String),
    /// Streaming.
    Live(String),
    /// Stream lost, retrying.
    Retrying(String),
    /// Gave up.
    Failed(String),
    /// Playing a recording.
    Replay(String),
}

/// The state of the flow source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SourceState {
    /// Connection.
    pub(crate) connection: Connection,
    /// Last ServerStatus.
    pub(crate) agent: Option<AgentStatus>,
    /// What the agent reported of its kernel and datapath (`None` until it
    /// answered, or for recordings).
    pub(crate) capabilities: Option<Result<GetCapabilitiesResponse, String>>,
    /// Player state (recordings only).
    pub(crate) replay: Option<ReplayState>,
    /// Events the agent (or relay) reported lost.
    pub(crate) lost_upstream: u64,
    /// Events this dashboard dropped because it fell behind.
    pub(crate) lost_here: u64,
}

/// A message for the notice line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// The text.
    pub(crate) text: String,
    /// An error (red) or information.
    pub(crate) error: bool,
}

/// Settings fixed at start.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Flow buffer size.
    pub(crate) capacity: usize,
    /// Colours and styles.
    pub(crate) theme: Theme,
    /// Policies for local explanations (replaced by [`Msg::Policies`]).
    pub(crate) policy: Option<Arc<PolicyContext>>,
    /// Where logs go.
    pub(crate) log_path: String,
    /// Initial replay speed (recordings only).
    pub(crate) replay_speed: Option<Speed>,
    /// Whether the source is an agent that can be asked to explain flows
    /// (`holonet.Agent` ExplainFlow).
    pub(crate) ask_agent: bool,
}

/// A frozen display (space, live sources).
#[derive(Debug, Clone)]
pub(crate) struct Freeze {
    /// Flows with a sequence number below this are shown.
    pub(crate) bound: u64,
    /// Panel aggregates at the moment of freezing.
    pub(crate) stats: Stats,
    /// The row pinned when freezing a following table: if it is still the
    /// selection when unfreezing, following resumes.
    pub(crate) resume_follow: Option<u64>,
}

/// The whole model.
#[derive(Debug)]
pub(crate) struct App {
    /// Buffered flows.
    pub(crate) store: Store,
    /// Flows passing the filter.
    pub(crate) view: View,
    /// The active filter.
    pub(crate) filter: ActiveFilter,
    /// Keyboard focus.
    pub(crate) mode: Mode,
    /// Stick to the newest flow.
    pub(crate) follow: bool,
    /// Selected flow (when not following).
    pub(crate) selected: Option<u64>,
    /// First row shown (when not following).
    pub(crate) top: Option<u64>,
    /// Display frozen (live sources).
    pub(crate) freeze: Option<Freeze>,
    /// Panels shown.
    pub(crate) panels: Panels,
    /// Terminal size.
    pub(crate) size: (u16, u16),
    /// Source state.
    pub(crate) source: SourceState,
    /// The notice line.
    pub(crate) notice: Option<Notice>,
    /// Fixed settings.
    pub(crate) options: Options,
    /// Replay speed requested.
    pub(crate) speed: Speed,
    /// The story told over the dashboard, if any (`holonet demo`).
    pub(crate) story: Option<Story>,
    /// The agent's explanation of the flow in the detail pane.
    pub(crate) agent_explanation: Option<AgentExplanation>,
    /// Frame needs drawing.
    pub(crate) dirty: bool,
}

impl App {
    /// A dashboard with an initial filter, before any flow arrived.
    pub(crate) fn new(options: Options, filter: ActiveFilter, connection: Connection) -> Self {
        let store = Store::new(options.capacity);
        let view = View::build(&store, filter.set.clone());
        let speed = options.replay_speed.unwrap_or(Speed::Factor(1.0));
        let replay = matches!(connection, Connection::Replay(_)).then(|| ReplayState {
            speed: speed.label(),
            ..Default::default()
        });
        Self {
            store,
            view,
            filter,
            mode: Mode::Table,
            follow: true,
            selected: None,
            top: None,
            freeze: None,
            panels: Panels::default(),
            size: (80, 24),
            source: SourceState {
                connection,
                agent: None,
                capabilities: None,
                replay,
                lost_upstream: 0,
                lost_here: 0,
            },
            notice: None,
            options,
            speed,
            story: None,
            agent_explanation: None,
            dirty: true,
        }
    }

    /// Whether the source is a recording.
    pub(crate) fn is_replay(&self) -> bool {
        self.source.replay.is_some()
    }

    /// Number of rows the table may show (filtered, up to the freeze).
    pub(crate) fn visible_len(&self) -> usize {
        match &self.freeze {
            Some(f) => self.view.index_at_or_after(f.bound),
            None => self.view.len(),
        }
    }

    /// Flows that arrived since the display was frozen.
    pub(crate) fn frozen_new(&self) -> usize {
        self.view.len().saturating_sub(self.visible_len())
    }

    /// Aggregates the panels show (frozen ones while frozen).
    pub(crate) fn stats(&self) -> &Stats {
        match &self.freeze {
            Some(f) => &f.stats,
            None => self.view.stats(),
        }
    }

    /// Index (in the view) of the selected row.
    pub(crate) fn selected_index(&self) -> Option<usize> {
        let n = self.visible_len();
        if n == 0 {
            return None;
        }
        if self.follow {
            return Some(n - 1);
        }
        let seq = self.selected?;
        Some(self.view.index_at_or_after(seq).min(n - 1))
    }

    /// The selected flow.
    pub(crate) fn selected_flow(&self) -> Option<(u64, &Flow)> {
        let idx = self.selected_index()?;
        let seq = *self.view.seqs().get(idx)?;
        self.store.get(seq).map(|e| (seq, &*e.flow))
    }

    /// Rows `[start, end)` of the view shown in a table of `rows` lines.
    pub(crate) fn window(&self, rows: usize) -> (usize, usize) {
        let n = self.visible_len();
        if rows == 0 || n == 0 {
            return (0, 0);
        }
        let Some(sel) = self.selected_index() else {
            return (0, 0);
        };
        let mut start = match (self.follow, self.top) {
            (false, Some(top)) => self.view.index_at_or_after(top),
            _ => n.saturating_sub(rows),
        };
        if sel < start {
            start = sel;
        }
        if sel >= start + rows {
            start = sel + 1 - rows;
        }
        start = start.min(n.saturating_sub(rows));
        (start, (start + rows).min(n))
    }

    /// Table rows at the current size.
    pub(crate) fn table_rows(&self) -> usize {
        let (w, h) = self.size;
        let areas = view::layout(self, ratatui::layout::Rect::new(0, 0, w, h));
        usize::from(areas.table.height.saturating_sub(1))
    }

    fn move_selection(&mut self, delta: isize) {
        let Some(idx) = self.selected_index() else {
            return;
        };
        let n = self.visible_len();
        let new = idx.saturating_add_signed(delta).min(n.saturating_sub(1));
        self.select_index(new);
    }

    fn select_index(&mut self, idx: usize) {
        let rows = self.table_rows();
        self.selected = self.view.seqs().get(idx).copied();
        self.follow = false;
        let (start, _) = self.window(rows);
        self.top = self.view.seqs().get(start).copied();
        self.dirty = true;
    }

    /// Asks the agent about the selected flow, afresh each time the pane
    /// opens: the policies in force may have changed since.
    fn ask_agent_to_explain(&mut self) -> Option<Effect> {
        if !self.options.ask_agent {
            return None;
        }
        let flow = self.selected_flow()?.1.clone();
        let key = flow_key(&flow);
        self.agent_explanation = Some(AgentExplanation { key, answer: None });
        Some(Effect::Explain(Box::new(flow)))
    }

    fn follow_newest(&mut self) {
        self.follow = true;
        self.selected = None;
        self.top = None;
        self.dirty = true;
    }

    fn set_notice(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
        });
        self.dirty = true;
    }

    /// Replaces the filter and re-filters the buffered history once.
    pub(crate) fn apply_filter(&mut self, filter: ActiveFilter) {
        let keep = self.selected;
        self.view = View::build(&self.store, filter.set.clone());
        self.filter = filter;
        if let Some(f) = &mut self.freeze {
            f.stats = self.view.stats().clone();
        }
        if !self.follow {
            // Stay near the flow that was selected.
            match keep {
                Some(seq) if self.visible_len() > 0 => {
                    let idx = self.view.index_at_or_after(seq).min(self.visible_len() - 1);
                    self.select_index(idx);
                }
                _ => self.follow_newest(),
            }
        }
        self.dirty = true;
    }

    fn ingest(&mut self, events: Vec<Event>) {
        for ev in events {
            match ev {
                Event::Flow(flow) => {
                    let (seq, evicted) = self.store.push(flow);
                    if let Some(e) = evicted {
                        self.view.evict(&e);
                    }
                    if let Some(e) = self.store.get(seq) {
                        self.view.offer(seq, &e.flow);
                    }
                }
                Event::Lost { source, count } => {
                    if source.starts_with("holonet") {
                        self.source.lost_here += count;
                    } else {
                        self.source.lost_upstream += count;
                    }
                    self.set_notice(
                        format!("{} events lost ({source})", row::thousands(count)),
                        true,
                    );
                }
                Event::Node(msg) => self.set_notice(msg, false),
            }
        }
        // A selected flow that was evicted: keep the row index sensible.
        if !self.follow && self.visible_len() == 0 {
            self.follow_newest();
        }
        self.dirty = true;
    }

    /// The newest flow time seen (for seeking relative to "now").
    fn replay_position(&self) -> Option<i128> {
        let pos = self
            .source
            .replay
            .as_ref()
            .and_then(|r| r.position)
            .or_else(|| self.store.ends().and_then(|(_, last)| last.time));
        pos.map(|t| row::ts_nanos(Some(&t)))
    }

    fn on_source(&mut self, msg: SourceMsg) {
        match msg {
            SourceMsg::Connecting(a) => self.source.connection = Connection::Connecting(a),
            SourceMsg::Connected(a) => {
                self.source.connection = Connection::Live(a);
            }
            SourceMsg::Disconnected(e) => {
                let what = if matches!(self.source.connection, Connection::Live(_)) {
                    "stream lost"
                } else {
                    "not connected"
                };
                self.source.connection = Connection::Retrying(e.clone());
                self.set_notice(format!("{what}: {e}; retrying"), true);
            }
            SourceMsg::Failed(e) => {
                if !self.is_replay() {
                    self.source.connection = Connection::Failed(e.clone());
                }
                self.set_notice(e, true);
            }
            SourceMsg::Status(s) => self.source.agent = Some(s),
            SourceMsg::Capabilities(c) => self.source.capabilities = Some(c),
            SourceMsg::Replay(r) => {
                self.source.replay = Some(r);
            }
            SourceMsg::Reset => {
                self.store.clear();
                self.view.clear();
                self.follow_newest();
            }
            SourceMsg::Notice(n) => self.set_notice(n, false),
        }
        self.dirty = true;
    }

    /// The pure update: applies a message, returns the effect to perform.
    pub(crate) fn update(&mut self, msg: Msg) -> Option<Effect> {
        match msg {
            Msg::Key(k) => {
                // Only presses: some terminals also report releases.
                if k.kind != KeyEventKind::Press {
                    return None;
                }
                self.dirty = true;
                self.on_key(k)
            }
            Msg::Mouse(m) => {
                match m.kind {
                    MouseEventKind::ScrollDown => self.scroll(3),
                    MouseEventKind::ScrollUp => self.scroll(-3),
                    _ => {}
                }
                None
            }
            Msg::Resize(w, h) => {
                self.size = (w, h);
                self.dirty = true;
                None
            }
            Msg::Events(evs) => {
                self.ingest(evs);
                None
            }
            Msg::Source(s) => {
                self.on_source(s);
                None
            }
            Msg::Story(s) => {
                self.story = Some(s);
                self.dirty = true;
                None
            }
            Msg::Policies(p) => {
                self.options.policy = Some(p.0);
                self.dirty = true;
                None
            }
            Msg::Explained { key, answer } => {
                if let Some(pending) = &mut self.agent_explanation {
                    if pending.key == key {
                        pending.answer = Some(answer);
                        self.dirty = true;
                    }
                }
                None
            }
            Msg::Quit => Some(Effect::Quit),
        }
    }

    fn scroll(&mut self, delta: isize) {
        match &mut self.mode {
            Mode::Detail { scroll } => {
                *scroll = scroll.saturating_add_signed(i16::try_from(delta).unwrap_or(0));
                self.dirty = true;
            }
            Mode::Table => self.move_selection(delta),
            _ => {}
        }
    }

    fn on_key(&mut self, k: KeyEvent) -> Option<Effect> {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(k.code, KeyCode::Char('c')) {
            return Some(Effect::Quit);
        }
        if ctrl && matches!(k.code, KeyCode::Char('l')) {
            return Some(Effect::Redraw);
        }
        match std::mem::replace(&mut self.mode, Mode::Table) {
            Mode::Filter(mut bar) => {
                match k.code {
                    KeyCode::Esc => {}
                    KeyCode::Enter => match filter::parse(&bar.edit.text) {
                        Ok(f) => {
                            self.set_notice(format!("filter: {}", f.description), false);
                            self.apply_filter(f);
                        }
                        Err(e) => {
                            bar.check = Err(e);
                            self.mode = Mode::Filter(bar);
                        }
                    },
                    _ => {
                        if bar.edit.key(&k) {
                            bar.validate();
                        }
                        self.mode = Mode::Filter(bar);
                    }
                }
                None
            }
            Mode::Command(mut edit) => match k.code {
                KeyCode::Esc => None,
                KeyCode::Enter => self.command(&edit.text),
                _ => {
                    edit.key(&k);
                    self.mode = Mode::Command(edit);
                    None
                }
            },
            Mode::Help => match k.code {
                KeyCode::Char('q') => Some(Effect::Quit),
                _ => None,
            },
            Mode::Detail { scroll } => {
                let mut scroll = scroll;
                let page = u16::try_from(self.table_rows().max(1)).unwrap_or(1);
                match k.code {
                    KeyCode::Esc | KeyCode::Enter | KeyCode::Backspace => return None,
                    KeyCode::Char('q') => return Some(Effect::Quit),
                    KeyCode::Char('j') | KeyCode::Down => scroll = scroll.saturating_add(1),
                    KeyCode::Char('k') | KeyCode::Up => scroll = scroll.saturating_sub(1),
                    KeyCode::PageDown | KeyCode::Char(' ') => scroll = scroll.saturating_add(page),
                    KeyCode::PageUp => scroll = scroll.saturating_sub(page),
                    KeyCode::Char('g') | KeyCode::Home => scroll = 0,
                    KeyCode::Char('?') => {
                        self.mode = Mode::Help;
                        return None;
                    }
                    _ => {}
                }
                self.mode = Mode::Detail { scroll };
                None
            }
            Mode::Table => self.table_key(k),
        }
    }

    fn table_key(&mut self, k: KeyEvent) -> Option<Effect> {
        let page = isize::try_from(self.table_rows().max(1)).unwrap_or(1);
        match k.code {
            KeyCode::Char('q') => return Some(Effect::Quit),
            KeyCode::Esc => {
                self.notice = None;
            }
            KeyCode::Char('j') | KeyCode::Down => self.move_selection(1),
            KeyCode::Char('k') | KeyCode::Up => self.move_selection(-1),
            KeyCode::PageDown => self.move_selection(page),
            KeyCode::PageUp => self.move_selection(-page),
            KeyCode::Char('g') | KeyCode::Home if self.visible_len() > 0 => self.select_index(0),
            KeyCode::Char('G') | KeyCode::End => self.follow_newest(),
            KeyCode::Char(' ') => return self.toggle_pause(),
            KeyCode::Enter => {
                if self.selected_flow().is_some() {
                    if self.follow {
                        // Pin the flow being inspected.
                        if let Some(idx) = self.selected_index() {
                            self.select_index(idx);
                        }
                    }
                    self.mode = Mode::Detail { scroll: 0 };
                    return self.ask_agent_to_explain();
                } else {
                    self.set_notice("no flow selected", false);
                }
            }
            KeyCode::Char('/') => self.mode = Mode::Filter(FilterBar::new(self.filter.text())),
            KeyCode::Char(':') => self.mode = Mode::Command(LineEdit::default()),
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Char('1') => self.panels.counts = !self.panels.counts,
            KeyCode::Char('2') => self.panels.drops = !self.panels.drops,
            KeyCode::Char('3') => self.panels.map = !self.panels.map,
            KeyCode::Char('4') => self.panels.status = !self.panels.status,
            KeyCode::Char('n') if self.story.is_some() => return self.next_step(),
            KeyCode::Char('+') | KeyCode::Char('=') if self.is_replay() => {
                return self.set_speed(self.speed.step(true));
            }
            KeyCode::Char('-') if self.is_replay() => {
                return self.set_speed(self.speed.step(false));
            }
            KeyCode::Char('.') | KeyCode::Char('n') if self.is_replay() => {
                return self.step();
            }
            KeyCode::Char(']') if self.is_replay() => return self.seek_relative(10_000_000_000),
            KeyCode::Char('[') if self.is_replay() => return self.seek_relative(-10_000_000_000),
            _ => {}
        }
        None
    }

    fn toggle_pause(&mut self) -> Option<Effect> {
        if let Some(r) = &mut self.source.replay {
            r.paused = !r.paused;
            let p = r.paused;
            return Some(Effect::Replay(ReplayCmd::Pause(p)));
        }
        match self.freeze.take() {
            Some(f) => {
                if f.resume_follow.is_some() && f.resume_follow == self.selected {
                    self.follow_newest();
                }
            }
            None => {
                let mut resume_follow = None;
                if self.follow {
                    // Keep the newest visible row selected while frozen.
                    if let Some(idx) = self.selected_index() {
                        self.select_index(idx);
                        resume_follow = self.selected;
                    }
                }
                self.freeze = Some(Freeze {
                    bound: self.store.next_seq(),
                    stats: self.view.stats().clone(),
                    resume_follow,
                });
            }
        }
        None
    }

    /// `n` or `:next` during the demo: the next step now, while there is one.
    fn next_step(&mut self) -> Option<Effect> {
        match &self.story {
            Some(s) if s.can_advance() => Some(Effect::NextStep),
            Some(_) => {
                self.set_notice("the story is over; q quits and cleans up", false);
                None
            }
            None => {
                self.set_notice(":next works during `holonet demo`", true);
                None
            }
        }
    }

    fn set_speed(&mut self, s: Speed) -> Option<Effect> {
        self.speed = s;
        if let Some(r) = &mut self.source.replay {
            r.speed = s.label();
        }
        self.set_notice(format!("replay speed {}", s.label()), false);
        Some(Effect::Replay(ReplayCmd::Speed(s)))
    }

    fn step(&mut self) -> Option<Effect> {
        match &mut self.source.replay {
            Some(r) if r.paused => Some(Effect::Replay(ReplayCmd::Step)),
            Some(_) => {
                self.set_notice("step works while paused (space)", false);
                None
            }
            None => None,
        }
    }

    fn seek_relative(&mut self, delta_ns: i128) -> Option<Effect> {
        let Some(pos) = self.replay_position() else {
            self.set_notice("nothing played yet", false);
            return None;
        };
        self.seek_to(pos + delta_ns)
    }

    fn seek_to(&mut self, t: i128) -> Option<Effect> {
        let ts = Timestamp {
            seconds: i64::try_from(t.div_euclid(1_000_000_000)).unwrap_or(0),
            nanos: i32::try_from(t.rem_euclid(1_000_000_000)).unwrap_or(0),
        };
        self.set_notice(
            format!("seeking to {}", row::time_cell(Some(&ts), true)),
            false,
        );
        self.follow_newest();
        Some(Effect::Replay(ReplayCmd::SeekTo(t)))
    }

    /// Runs a `:` command.
    fn command(&mut self, line: &str) -> Option<Effect> {
        let line = line.trim();
        let (cmd, arg) = match line.split_once(char::is_whitespace) {
            Some((c, a)) => (c, a.trim()),
            None => (line, ""),
        };
        match cmd {
            "" => None,
            "q" | "quit" | "exit" => Some(Effect::Quit),
            "help" => {
                self.mode = Mode::Help;
                None
            }
            "filter" | "f" => {
                match filter::parse(arg) {
                    Ok(f) => {
                        self.set_notice(format!("filter: {}", f.description), false);
                        self.apply_filter(f);
                    }
                    Err(e) => self.set_notice(e, true),
                }
                None
            }
            "clear" | "nofilter" => {
                self.apply_filter(ActiveFilter::default());
                self.set_notice("filter cleared: all flows", false);
                None
            }
            "follow" => {
                self.follow_newest();
                None
            }
            "next" => self.next_step(),
            "pause" | "play" | "resume" => {
                let paused = match &self.source.replay {
                    Some(r) => r.paused,
                    None => self.freeze.is_some(),
                };
                if paused == (cmd == "pause") {
                    return None;
                }
                self.toggle_pause()
            }
            "panel" => {
                match arg {
                    "counts" | "1" => self.panels.counts = !self.panels.counts,
                    "drops" | "2" => self.panels.drops = !self.panels.drops,
                    "map" | "3" => self.panels.map = !self.panels.map,
                    "status" | "agent" | "4" => self.panels.status = !self.panels.status,
                    _ => self.set_notice("panel: counts, drops, map or status", true),
                }
                None
            }
            "speed" | "seek" | "step" if !self.is_replay() => {
                self.set_notice(format!(":{cmd} works when replaying a recording"), true);
                None
            }
            "speed" => match Speed::parse(arg) {
                Ok(s) => self.set_speed(s),
                Err(e) => {
                    self.set_notice(e, true);
                    None
                }
            },
            "step" => self.step(),
            "seek" => match self.seek_target(arg) {
                Ok(t) => self.seek_to(t),
                Err(e) => {
                    self.set_notice(e, true);
                    None
                }
            },
            other => {
                self.set_notice(
                    format!(
                        "unknown command :{other} (try :filter, :clear, :pause, :speed, :seek, :panel, :q)"
                    ),
                    true,
                );
                None
            }
        }
    }

    /// `+30s`, `-1m`, `10:48:40`, `start`, or RFC 3339.
    fn seek_target(&self, arg: &str) -> Result<i128, String> {
        let bad = || {
            format!(
                "seek {arg:?}: expected +DURATION, -DURATION (e.g. -30s), HH:MM:SS, start or an RFC 3339 time"
            )
        };
        let first = self
            .source
            .replay
            .as_ref()
            .and_then(|r| r.first)
            .or_else(|| self.store.ends().and_then(|(f, _)| f.time))
            .map(|t| row::ts_nanos(Some(&t)));
        if arg == "start" || arg == "0" {
            return first.ok_or_else(|| "nothing played yet".to_owned());
        }
        if let Some(rest) = arg.strip_prefix('+').or_else(|| arg.strip_prefix('-')) {
            let d = holonet_flows::timespec::parse_go_duration(rest).ok_or_else(bad)?;
            let pos = self
                .replay_position()
                .ok_or_else(|| "nothing played yet".to_owned())?;
            return Ok(if arg.starts_with('-') {
                pos - d
            } else {
                pos + d
            });
        }
        let parts: Vec<&str> = arg.split(':').collect();
        if parts.len() == 3 && !arg.contains('T') {
            let nums: Vec<f64> = parts.iter().filter_map(|p| p.parse::<f64>().ok()).collect();
            if nums.len() == 3 && nums[0] < 24.0 && nums[1] < 60.0 && nums[2] < 60.0 {
                let day_ns = (nums[0] * 3600.0 + nums[1] * 60.0) as i128 * 1_000_000_000
                    + (nums[2] * 1e9) as i128;
                let base = self
                    .replay_position()
                    .or(first)
                    .ok_or_else(|| "nothing played yet".to_owned())?;
                let day = base.div_euclid(86_400_000_000_000) * 86_400_000_000_000;
                return Ok(day + day_ns);
            }
            return Err(bad());
        }
        holonet_flows::timespec::parse_time(arg, Timestamp::default())
            .map(|t| row::ts_nanos(Some(&t)))
            .map_err(|_| bad())
    }
}
