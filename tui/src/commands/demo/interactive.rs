//! `holonet demo` on a terminal: the story plays over the live dashboard.
//!
//! The dashboard (the same one `holonet tui` opens) is fed straight from
//! the demo's own flow store, so it shows this demo's flows even when
//! another agent already holds port 4245. The story runs beside it in the
//! same task: each step's caption and outcome go to the banner, steps
//! advance on a timer (`--step-seconds`) or when `n` is pressed, and once
//! the story is over the dashboard stays open, with the background traffic
//! still flowing, until `q`. Errors while playing are shown in the banner
//! and returned after the dashboard closes, so the caller cleans up and
//! reports them on a restored terminal.

use std::{sync::Arc, time::Duration};

use holonet_agent::observer::store::{FlowStore, Follower};
use tokio::{
    sync::mpsc::{self, Sender, UnboundedReceiver},
    time::Instant,
};

use super::{
    NODE, Stage,
    story::{Checked, Played, STORY, Step},
};
use crate::ui::{
    self, Embedded,
    app::{AgentStatus, Msg, SourceMsg},
    explain::{PolicyContext, PolicyUpdate},
    source::Batcher,
    story::{Outcome, Phase, Story},
};

/// How the dashboard looks and how fast the story goes.
#[derive(Debug)]
pub(super) struct Pace {
    /// Time from the start of one step to the start of the next.
    pub(super) step: Duration,
    /// What the header says the flows come from.
    pub(super) label: String,
}

/// What the story did before the dashboard closed.
#[derive(Debug, Default)]
pub(super) struct Told {
    /// The requests played, in order.
    pub(super) checked: Vec<Checked>,
    /// Steps played.
    pub(super) steps: usize,
    /// Why the story stopped early, if it failed.
    pub(super) error: Option<anyhow::Error>,
}

/// Plays the story over the dashboard until the user quits.
pub(super) async fn play(stage: &mut Stage, pace: Pace) -> anyhow::Result<Told> {
    let (tx, rx) = mpsc::channel::<Msg>(256);
    let (next_tx, mut next_rx) = mpsc::unbounded_channel();
    let feed = tokio::spawn(feed(Arc::clone(&stage.store), tx.clone()));
    let mut told = Told::default();
    let dashboard = ui::run_embedded(
        Embedded {
            label: pace.label,
            capacity: 100_000,
            fps: 30,
            color: "auto".to_owned(),
        },
        rx,
        next_tx,
    );
    let result = {
        let story = tell(stage, &tx, &mut next_rx, pace.step, &mut told);
        tokio::pin!(story);
        tokio::select! {
            r = dashboard => r,
            () = &mut story => Ok(()),
        }
    };
    feed.abort();
    result.map(|()| told)
}

/// Sends the story's state to the dashboard (which may have closed).
async fn show(tx: &Sender<Msg>, story: &Story) {
    let _ = tx.send(Msg::Story(story.clone())).await;
}

/// Plays every step, then waits forever (the dashboard decides when to
/// stop); a failed step stops the story and is kept in `told.error`.
async fn tell(
    stage: &mut Stage,
    tx: &Sender<Msg>,
    next: &mut UnboundedReceiver<()>,
    every: Duration,
    told: &mut Told,
) {
    let total = STORY.len();
    explain_with_applied(stage, tx).await;
    for (i, step) in STORY.iter().enumerate() {
        let started = Instant::now();
        let mut story = Story {
            step: i + 1,
            total,
            caption: step.caption().to_owned(),
            outcome: None,
            phase: Phase::Playing,
        };
        show(tx, &story).await;
        match stage.play(step).await {
            Ok(Played::Quiet) => {}
            Ok(Played::Note(text)) => {
                story.outcome = Some(Outcome {
                    text,
                    as_expected: true,
                });
            }
            Ok(Played::Request(c)) => {
                let text = if c.ok() {
                    format!("{}: {}, as the story says", c.what, c.shown())
                } else {
                    format!(
                        "{}: {}, but the story says {}",
                        c.what,
                        c.shown(),
                        c.expected
                    )
                };
                story.outcome = Some(Outcome {
                    text,
                    as_expected: c.ok(),
                });
                told.checked.push(c);
            }
            Err(e) => {
                story.phase = Phase::Failed(format!("step {}: {e:#}", i + 1));
                show(tx, &story).await;
                told.error = Some(e.context(format!("step {} ({})", i + 1, step.caption())));
                return std::future::pending().await;
            }
        }
        told.steps = i + 1;
        if matches!(step, Step::Apply { .. }) {
            explain_with_applied(stage, tx).await;
        }
        wait_for_next(tx, next, &mut story, started + every).await;
    }
    let ok = told.checked.iter().filter(|c| c.ok()).count();
    let last = Story {
        step: total,
        total,
        caption: String::new(),
        outcome: None,
        phase: Phase::Over {
            ok,
            requests: told.checked.len(),
        },
    };
    show(tx, &last).await;
    std::future::pending().await
}

/// Hands the dashboard the policies applied so far, so its detail pane
/// explains drops the way the kernel decided them now (the same engine as
/// `holonet policy trace`). A flow from an earlier step met fewer
/// policies; the pane's attribution line says which set it used.
async fn explain_with_applied(stage: &Stage, tx: &Sender<Msg>) {
    let mut files: Vec<String> = std::fs::read_dir(&stage.policy_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    match PolicyContext::load(
        std::slice::from_ref(&stage.policy_dir),
        &stage.endpoints_file,
    ) {
        Ok(mut ctx) => {
            ctx.origin = if files.is_empty() {
                "the demo's policies as applied now: none yet, everything is allowed".to_owned()
            } else {
                format!(
                    "the demo's policies as applied now ({}); flows from earlier steps met fewer",
                    files.join(", ")
                )
            };
            let _ = tx.send(Msg::Policies(PolicyUpdate(Arc::new(ctx)))).await;
        }
        Err(e) => log::warn!("explaining flows with the demo's policies: {e:#}"),
    }
}

/// Counts down to `deadline` in the banner, second by second, or returns
/// as soon as `n` is pressed.
async fn wait_for_next(
    tx: &Sender<Msg>,
    next: &mut UnboundedReceiver<()>,
    story: &mut Story,
    deadline: Instant,
) {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        let seconds = u64::try_from(left.as_millis().div_ceil(1000)).unwrap_or(u64::MAX);
        story.phase = Phase::Waiting { seconds };
        show(tx, story).await;
        // Sleep to the next whole second left.
        let nap = left.saturating_sub(Duration::from_secs(seconds.saturating_sub(1)));
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            n = next.recv() => {
                if n.is_some() {
                    return;
                }
                // The dashboard is gone; the caller stops the story.
                return std::future::pending().await;
            }
        }
    }
}

/// Streams the store to the dashboard from its first event on, batching
/// like the live gRPC source, with the store's figures for the status
/// panel every two seconds.
async fn feed(store: Arc<FlowStore>, tx: Sender<Msg>) {
    let mut batch = Batcher::new(tx.clone());
    let mut follower = Follower::new(Arc::clone(&store), 0);
    let mut retry = tokio::time::interval(Duration::from_millis(30));
    let mut status = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            range = follower.next_batch(2048) => {
                let Some(range) = range else { break };
                for event in &range.events {
                    batch.push_response(event.to_response(NODE));
                }
                if !batch.flush() {
                    return;
                }
            }
            _ = retry.tick(), if batch.has_pending() => {
                if !batch.flush() {
                    return;
                }
            }
            _ = status.tick() => {
                let s = store.status();
                let figures = AgentStatus {
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    num_flows: s.num_flows,
                    max_flows: s.max_flows,
                    seen_flows: s.seen_flows,
                    uptime_ns: u64::try_from(s.uptime.as_nanos()).unwrap_or(u64::MAX),
                    flows_rate: s.flows_rate,
                    ..AgentStatus::default()
                };
                if tx.try_send(Msg::Source(SourceMsg::Status(figures))).is_err() && tx.is_closed() {
                    return;
                }
            }
        }
    }
    while batch.has_pending() && batch.flush() {
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}
