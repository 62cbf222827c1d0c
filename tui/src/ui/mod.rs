//! The terminal UI: a live incident dashboard over Hubble flows.
//!
//! Architecture (The Elm Architecture, see docs/tui.md):
//! - [`app`]: the model, the [`app::Msg`] enum and the pure update;
//! - [`view`]: pure rendering of the model into a ratatui buffer;
//! - [`store`]: the bounded flow buffer and the incrementally filtered view;
//! - [`filter`]: the filter grammar shared by the command line and the bar;
//! - [`row`]: how a flow reads in the table; [`theme`]: colours and styles;
//! - [`explain`]: why a flow was dropped, from each source that can know;
//! - [`source`]: producers (live gRPC stream, recording player);
//! - [`story`]: the caption banner of a story told over the dashboard
//!   (`holonet demo`, whose driver feeds flows and captions through
//!   [`run_embedded`]);
//! - [`terminal`]: the terminal guard; [`run`] is the event loop.
//!
//! Producers and the crossterm event stream send messages through bounded
//! channels; the loop applies them with `update` and redraws on a frame
//! timer when something changed. Logs go to a file, never the terminal.

pub(crate) mod app;
pub(crate) mod explain;
pub(crate) mod filter;
pub(crate) mod row;
pub(crate) mod source;
pub(crate) mod store;
pub(crate) mod story;
pub(crate) mod terminal;
pub(crate) mod theme;
pub(crate) mod view;

#[cfg(test)]
mod tests;

use std::{
    io::{self, IsTerminal},
    path::PathBuf,
    time::Duration,
};

use anyhow::{Context, bail};
use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures_util::StreamExt;
use ratatui::{Terminal, backend::CrosstermBackend};
use tokio::{signal::unix::SignalKind, sync::mpsc};

use app::{App, Connection, Effect, Msg, Options, ReplayCmd, Speed};
use filter::ActiveFilter;
use holonet_proto::flow::Flow;
use source::Recording;

/// Where flows come from.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// An agent or relay (`--server`, default the local agent).
    Server {
        /// The address, or None for the defaults.
        address: Option<String>,
        /// Connection timeout.
        timeout: Duration,
        /// TLS settings (`--tls ...`), None for plain connections.
        tls: Option<tonic::transport::ClientTlsConfig>,
    },
    /// A recording (`--input-file`).
    Recording(Recording),
}

/// Everything `holonet tui` was asked to do.
#[derive(Debug)]
pub(crate) struct Config {
    /// The flow source.
    pub(crate) input: Input,
    /// Initial filter.
    pub(crate) filter: ActiveFilter,
    /// Buffer size.
    pub(crate) capacity: usize,
    /// Replay speed.
    pub(crate) speed: Speed,
    /// Frames per second at most.
    pub(crate) fps: u32,
    /// `--color`.
    pub(crate) color: String,
    /// Policies for local drop explanations.
    pub(crate) policy: Option<explain::PolicyContext>,
    /// Start with replay paused.
    pub(crate) start_paused: bool,
}

/// The log file: `$XDG_STATE_HOME/holonet/tui.log`, else
/// `/tmp/holonet-tui-<uid>.log`.
pub(crate) fn log_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir).join("holonet");
        if std::fs::create_dir_all(&dir).is_ok() {
            return dir.join("tui.log");
        }
    }
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").map_or(0, |m| m.uid());
    PathBuf::from(format!("/tmp/holonet-tui-{uid}.log"))
}

/// Runs the dashboard until the user quits. The terminal is restored on
/// every way out.
pub(crate) fn run(cfg: Config) -> anyhow::Result<()> {
    if !io::stdout().is_terminal() {
        bail!(
            "the dashboard needs a terminal on stdout; for pipes and scripts use `holonet observe` (same filters)"
        );
    }
    if let Input::Recording(rec) = &cfg.input {
        source::check_recording(rec).with_context(|| format!("opening {}", rec.label()))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(cfg))
}

/// The end of the loop after a terminal I/O error. A terminal that went
/// away (SIGHUP, a closed SSH session: EIO, ENXIO, a broken pipe) ends the
/// dashboard quietly, logged, since there is nobody left to tell; any other
/// error is reported.
fn io_end(e: io::Error, what: &str) -> anyhow::Result<()> {
    let gone = matches!(e.raw_os_error(), Some(5 | 6)) || e.kind() == io::ErrorKind::BrokenPipe;
    if gone {
        log::warn!("{what}: the terminal went away ({e}); leaving");
        Ok(())
    } else {
        Err(anyhow::Error::new(e).context(what.to_owned()))
    }
}

async fn run_async(cfg: Config) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel::<Msg>(64);
    let (replay_tx, replay_rx) = std::sync::mpsc::channel::<ReplayCmd>();
    let (explain_tx, explain_rx) = mpsc::unbounded_channel::<Flow>();
    let connection = match &cfg.input {
        Input::Server { address, .. } => {
            Connection::Connecting(address.clone().unwrap_or_else(|| "local agent".to_owned()))
        }
        Input::Recording(r) => Connection::Replay(r.label()),
    };
    let log_path = log_path().display().to_string();
    let mut app = App::new(
        Options {
            capacity: cfg.capacity,
            theme: theme::Theme::from_env(&cfg.color),
            policy: cfg.policy.map(std::sync::Arc::new),
            log_path,
            replay_speed: Some(cfg.speed),
            ask_agent: matches!(cfg.input, Input::Server { .. }),
        },
        cfg.filter,
        connection,
    );
    match cfg.input {
        Input::Server {
            address,
            timeout,
            tls,
        } => {
            let capacity = u64::try_from(cfg.capacity).unwrap_or(u64::MAX);
            tokio::spawn(source::live(
                source::LiveSource {
                    server: address,
                    timeout,
                    tls,
                    backfill: capacity,
                },
                tx.clone(),
                explain_rx,
            ));
        }
        Input::Recording(rec) => {
            let tx = tx.clone();
            let speed = cfg.speed;
            std::thread::Builder::new()
                .name("holonet-replay".to_owned())
                .spawn(move || source::replay(rec, speed, tx, replay_rx))
                .context("starting the replay thread")?;
            if cfg.start_paused {
                if let Some(Effect::Replay(c)) = app.update(Msg::Key(
                    crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(' ')),
                )) {
                    let _ = replay_tx.send(c);
                }
            }
        }
    }
    drop(tx);
    event_loop(&mut app, rx, cfg.fps, |effect| match effect {
        Effect::Replay(c) => {
            let _ = replay_tx.send(c);
        }
        Effect::Explain(flow) => {
            let _ = explain_tx.send(*flow);
        }
        _ => {}
    })
    .await
}

/// A dashboard whose flows and story come from its owner rather than a
/// server or a recording: `holonet demo` feeds it from its own flow store.
#[derive(Debug)]
pub(crate) struct Embedded {
    /// What the header says the flows come from.
    pub(crate) label: String,
    /// Flows kept in memory.
    pub(crate) capacity: usize,
    /// Frames per second at most.
    pub(crate) fps: u32,
    /// `--color`.
    pub(crate) color: String,
}

/// Runs a dashboard fed through `rx` (flows, source status, the story's
/// captions) until the user quits; each `n` (next step) is sent on
/// `next_step`. The terminal is restored on every way out, SIGTERM, SIGHUP
/// and SIGINT included, which quit like `q` does so the owner can clean up.
pub(crate) async fn run_embedded(
    cfg: Embedded,
    rx: mpsc::Receiver<Msg>,
    next_step: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    if !io::stdout().is_terminal() {
        bail!("the dashboard needs a terminal on stdout");
    }
    let mut app = App::new(
        Options {
            capacity: cfg.capacity,
            theme: theme::Theme::from_env(&cfg.color),
            policy: None,
            log_path: log_path().display().to_string(),
            replay_speed: None,
            ask_agent: false,
        },
        filter::parse("").unwrap_or_default(),
        Connection::Live(cfg.label),
    );
    event_loop(&mut app, rx, cfg.fps, |effect| {
        if effect == Effect::NextStep {
            let _ = next_step.send(());
        }
    })
    .await
}

/// Owns the terminal and applies messages (keys, signals, what `rx`
/// brings) to `app` until it quits; effects other than quitting and
/// redrawing go to `on_effect`.
async fn event_loop(
    app: &mut App,
    mut rx: mpsc::Receiver<Msg>,
    fps: u32,
    mut on_effect: impl FnMut(Effect),
) -> anyhow::Result<()> {
    let mut sigterm = tokio::signal::unix::signal(SignalKind::terminate())?;
    let mut sighup = tokio::signal::unix::signal(SignalKind::hangup())?;
    let mut sigint = tokio::signal::unix::signal(SignalKind::interrupt())?;

    let guard = terminal::TerminalGuard::enter().context("taking over the terminal")?;
    let mut terminal =
        Terminal::new(CrosstermBackend::new(io::stdout())).context("creating the terminal")?;
    terminal.clear()?;
    let size = terminal.size()?;
    app.update(Msg::Resize(size.width, size.height));
    let mut events = EventStream::new();
    let frame = Duration::from_micros(1_000_000 / u64::from(fps.clamp(1, 120)));
    let mut ticker = tokio::time::interval(frame);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result: anyhow::Result<()> = loop {
        let msg = tokio::select! {
            biased;
            ev = events.next() => match ev {
                Some(Ok(TermEvent::Key(k))) if k.kind == KeyEventKind::Press => Some(Msg::Key(k)),
                Some(Ok(TermEvent::Mouse(m))) => Some(Msg::Mouse(m)),
                Some(Ok(TermEvent::Resize(w, h))) => Some(Msg::Resize(w, h)),
                Some(Ok(_)) => None,
                Some(Err(e)) => break io_end(e, "reading the terminal"),
                None => break Ok(()),
            },
            _ = sigterm.recv() => Some(Msg::Quit),
            _ = sighup.recv() => Some(Msg::Quit),
            _ = sigint.recv() => Some(Msg::Quit),
            _ = ticker.tick() => {
                if app.dirty {
                    app.dirty = false;
                    if let Err(e) = terminal.draw(|f| f.render_widget(view::Dashboard(app), f.area())) {
                        break io_end(e, "drawing");
                    }
                }
                None
            }
            // Last: a source that always has flows ready (a replay at max
            // speed) must not starve the keys or the frame timer.
            m = rx.recv(), if !rx.is_closed() => m,
        };
        let Some(msg) = msg else { continue };
        let key = matches!(msg, Msg::Key(_));
        match app.update(msg) {
            Some(Effect::Quit) => break Ok(()),
            Some(Effect::Redraw) => {
                if let Err(e) = terminal.clear() {
                    break io_end(e, "clearing the screen");
                }
                app.dirty = true;
            }
            Some(other) => on_effect(other),
            None => {}
        }
        if key && app.dirty {
            // A key press shows in the very next frame.
            app.dirty = false;
            if let Err(e) = terminal.draw(|f| f.render_widget(view::Dashboard(app), f.area())) {
                break io_end(e, "drawing");
            }
        }
    };
    // ratatui's Terminal prints to stderr from its Drop when it cannot show
    // the cursor, which panics when the terminal is gone (SIGHUP). Show it
    // here; if that fails there is no terminal left, so skip that Drop.
    if terminal.show_cursor().is_err() {
        std::mem::forget(terminal);
    } else {
        drop(terminal);
    }
    drop(guard);
    log::info!("dashboard closed");
    result
}
