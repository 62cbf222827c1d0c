//! Drains probe events into the flow store.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use holonet_proto::flow::{LostEvent, LostEventSource};
use probe_common::event::{EVENTS_RING_BYTES, FlowEvent};
use tokio::task::{JoinError, JoinHandle};

use super::{
    endpoints::EndpointDirectory,
    ingest::{AttributeProcesses, Enrichment, FlowIngest},
    policy_names::PolicyNames,
    store::{FlowStore, StoredEvent},
};
use crate::{
    clock::MonotonicClock,
    events::{EventReader, ReadError},
    flow::Flow,
    process::SharedFeed,
};

/// Events drained from the ring buffer per wake-up.
const BATCH: usize = 4096;

/// Events converted between two looks at the clock.
const CHUNK: usize = 8;

/// How long the pipeline converts before it offers the CPU to other tasks.
const YIELD_AFTER: Duration = Duration::from_micros(10);

/// A yield that took longer than this gave the CPU to a task that needed
/// more than a moment: the CPU is contended, stepping aside again would only
/// add switches.
const CONTENDED: Duration = Duration::from_micros(200);

/// Below this share of idle CPU time the node counts as saturated.
const SATURATED_IDLE_SHARE: f64 = 0.10;

/// How often the node's idle CPU time is read.
const LOAD_REFRESH: Duration = Duration::from_millis(250);

/// Keeps a batch's conversion from holding a CPU in front of the workload
/// it observes.
///
/// The scheduler lets a running task finish its slice (near a millisecond)
/// before a task woken on the same CPU, so a request of the workload could
/// wait for a whole batch; that showed in its tail latency (under light
/// load, p99 three times what it was without the agent, even with batches
/// of a millisecond's events). Every `YIELD_AFTER` of work the pipeline
/// yields: a woken request runs at once, and an idle CPU costs only the
/// system call. When a yield shows the CPU contended (the other task ran
/// for `CONTENDED`), the rest of the batch runs without stepping aside.
/// On a saturated node (see [`NodeLoad`]) it does not yield at all, and the
/// reader drains larger batches: there, yields and wake-ups only cost the
/// workload throughput (b/a fell from about 0.8 to 0.75 with them in the
/// wrk benchmark).
struct CpuCourtesy {
    running_since: Instant,
    stepping_aside: bool,
}

impl CpuCourtesy {
    fn new() -> Self {
        Self {
            running_since: Instant::now(),
            stepping_aside: true,
        }
    }

    /// Called as a batch's conversion starts.
    fn start_batch(&mut self, node_saturated: bool) {
        self.running_since = Instant::now();
        self.stepping_aside = !node_saturated;
    }

    /// Yields the CPU when the pipeline has converted for `YIELD_AFTER`
    /// since it last did, unless the CPU showed itself contended.
    fn step_aside_if_due(&mut self) {
        if !self.due() {
            return;
        }
        let before = Instant::now();
        std::thread::yield_now();
        let after = Instant::now();
        self.stepped_aside(after - before, after);
    }

    fn due(&self) -> bool {
        self.stepping_aside && self.running_since.elapsed() >= YIELD_AFTER
    }

    /// Notes a yield that took `took` and ended at `at`.
    fn stepped_aside(&mut self, took: Duration, at: Instant) {
        self.stepping_aside = took < CONTENDED;
        self.running_since = at;
    }
}

/// Whether the node's CPUs have idle time, from `/proc/stat`, read at most
/// every `LOAD_REFRESH`. When it cannot be read the node counts as not
/// saturated (the agent stays courteous).
struct NodeLoad {
    last: Option<CpuTimes>,
    read_at: Option<Instant>,
    saturated: bool,
}

/// Idle and total CPU time of all CPUs, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    idle: u64,
    total: u64,
}

impl NodeLoad {
    fn new() -> Self {
        Self {
            last: None,
            read_at: None,
            saturated: false,
        }
    }

    /// Is the node saturated (idle share below `SATURATED_IDLE_SHARE` over
    /// the last `LOAD_REFRESH`)?
    fn saturated(&mut self) -> bool {
        if self.read_at.is_none_or(|at| at.elapsed() >= LOAD_REFRESH) {
            self.read_at = Some(Instant::now());
            let now = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|stat| cpu_times(&stat));
            self.saturated = match (self.last, now) {
                (Some(before), Some(now)) => {
                    idle_share(before, now).is_some_and(|share| share < SATURATED_IDLE_SHARE)
                }
                _ => false,
            };
            self.last = now;
        }
        self.saturated
    }
}

/// The `cpu` line of `/proc/stat`: idle (idle + iowait) and the total of
/// user, nice, system, idle, iowait, irq, softirq and steal (guest time is
/// already in user).
fn cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if fields.len() < 5 {
        return None;
    }
    Some(CpuTimes {
        idle: fields[3] + fields[4],
        total: fields.iter().sum(),
    })
}

/// The share of CPU time spent idle between two readings, if any passed.
fn idle_share(before: CpuTimes, now: CpuTimes) -> Option<f64> {
    let total = now.total.checked_sub(before.total).filter(|t| *t > 0)?;
    let idle = now.idle.checked_sub(before.idle)?;
    Some(idle as f64 / total as f64)
}

/// What the pipeline needs to turn events into flows.
#[derive(Debug)]
pub struct Pipeline {
    ingest: FlowIngest,
    /// Who each address is; replaced whenever the endpoints file changes.
    endpoints: tokio::sync::watch::Receiver<Arc<EndpointDirectory>>,
    /// The policies in force, to name the ones behind each verdict.
    policy_names: Option<tokio::sync::watch::Receiver<Option<Arc<PolicyNames>>>>,
    processes: Option<SharedFeed>,
}

impl Pipeline {
    /// A pipeline for `node_name` over the given interfaces, naming
    /// addresses from `endpoints`.
    pub fn new(
        node_name: impl Into<String>,
        interfaces: HashMap<u32, String>,
        endpoints: tokio::sync::watch::Receiver<Arc<EndpointDirectory>>,
    ) -> Self {
        Self {
            ingest: FlowIngest::new(MonotonicClock::measure(), interfaces, node_name.into()),
            endpoints,
            policy_names: None,
            processes: None,
        }
    }

    /// Names the policies behind verdicts (`*_allowed_by`, `*_denied_by`)
    /// from whatever `names` holds when each batch is converted.
    pub fn with_policy_names(
        mut self,
        names: tokio::sync::watch::Receiver<Option<Arc<PolicyNames>>>,
    ) -> Self {
        self.policy_names = Some(names);
        self
    }

    /// Names the processes at both ends of TCP flows from what the socket
    /// probe reported (drained before each batch, so every socket whose
    /// packets are in the batch is known).
    pub fn with_processes(mut self, feed: SharedFeed) -> Self {
        self.processes = Some(feed);
        self
    }

    /// Reads events until the ring buffer fails, storing every flow and
    /// handing each decoded flow to `observe` (printing, tests).
    pub async fn run(
        self,
        reader: EventReader,
        store: Arc<FlowStore>,
        observe: impl FnMut(&Flow),
    ) -> Result<(), ReadError> {
        self.run_until(reader, store, observe, std::future::pending())
            .await
    }

    /// Runs the pipeline on the runtime until the ring fails or
    /// [`RunningPipeline::stop`] is called. Must be called within a tokio
    /// runtime.
    pub fn spawn(
        self,
        reader: EventReader,
        store: Arc<FlowStore>,
        observe: impl FnMut(&Flow) + Send + 'static,
    ) -> RunningPipeline {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run_until(reader, store, observe, async move {
            let _ = stopped.await;
        }));
        RunningPipeline {
            task,
            stop: Some(stop),
        }
    }

    /// [`Self::run`] until `stop` resolves; then what the probe has handed
    /// over by that moment is read and stored too, so an agent that stops
    /// keeps (and records) every event the kernel delivered before it.
    async fn run_until(
        mut self,
        mut reader: EventReader,
        store: Arc<FlowStore>,
        mut observe: impl FnMut(&Flow),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), ReadError> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut stop = std::pin::pin!(stop);
        // After the stop: events still to read, at most a full ring's worth
        // (the probe stays attached and goes on sending meanwhile).
        let mut final_events: Option<usize> = None;
        let mut courtesy = CpuCourtesy::new();
        let mut load = NodeLoad::new();
        loop {
            batch.clear();
            match final_events.as_mut() {
                None => tokio::select! {
                    biased;
                    () = &mut stop => {
                        final_events = Some(EVENTS_RING_BYTES as usize / size_of::<FlowEvent>());
                        continue;
                    }
                    // Cancel-safe: an unfinished read has added nothing yet.
                    read = reader.read_batch(&mut batch, BATCH) => {
                        read?;
                    }
                },
                Some(left) => {
                    let read = reader.read_ready(&mut batch, BATCH.min(*left));
                    if read == 0 {
                        return Ok(());
                    }
                    *left -= read;
                }
            }
            let endpoints = Arc::clone(&self.endpoints.borrow_and_update());
            let names = self
                .policy_names
                .as_mut()
                .and_then(|rx| rx.borrow_and_update().clone());
            let mut processes = self.processes.as_ref().and_then(|feed| feed.lock().ok());
            if let Some(feed) = processes.as_mut() {
                feed.drain();
            }
            let mut with = Enrichment {
                endpoints: &endpoints,
                policy_names: names.as_deref(),
                processes: processes
                    .as_deref_mut()
                    .map(|feed| feed as &mut dyn AttributeProcesses),
            };
            let mut stored = Vec::with_capacity(batch.len());
            let saturated = load.saturated();
            courtesy.start_batch(saturated);
            for chunk in batch.chunks(CHUNK) {
                stored.extend(
                    chunk
                        .iter()
                        .map(|event| self.ingest.convert(event, &mut with, &mut observe)),
                );
                courtesy.step_aside_if_due();
            }
            reader.set_contended(saturated);
            drop(processes);
            store.push_batch(stored);
        }
    }
}

/// A pipeline spawned with [`Pipeline::spawn`].
#[derive(Debug)]
pub struct RunningPipeline {
    task: JoinHandle<Result<(), ReadError>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningPipeline {
    /// Resolves when the pipeline ends by itself (the ring failed, or its
    /// task panicked). Cancel-safe.
    pub async fn ended(&mut self) -> Result<Result<(), ReadError>, JoinError> {
        (&mut self.task).await
    }

    /// Stores what the probe handed over by now and ends the pipeline, so
    /// a stopping agent or demo keeps (and records) every event the kernel
    /// delivered before the stop. Gives up after `within` (the task is then
    /// aborted) and returns false.
    pub async fn stop(&mut self, within: Duration) -> bool {
        if self.task.is_finished() {
            return true;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if tokio::time::timeout(within, &mut self.task).await.is_err() {
            self.task.abort();
            return false;
        }
        true
    }
}

/// A lost-events record for events the kernel could not hand over because
/// the ring buffer was full.
pub fn kernel_lost(count: u64) -> StoredEvent {
    let now = chrono::Utc::now();
    StoredEvent::Lost(LostEvent {
        source: LostEventSource::PerfEventRingBuffer.into(),
        num_events_lost: count,
        cpu: None,
        first: Some(now.into()),
        last: Some(now.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_steps_aside_after_a_stretch_of_work_until_the_cpu_is_contended() {
        let mut courtesy = CpuCourtesy::new();
        courtesy.start_batch(false);
        let a_while_ago = Instant::now() - 10 * YIELD_AFTER;

        // A quick yield (nobody waited, or a request ran for a moment):
        // the next stretch of work ends with a yield again.
        courtesy.stepped_aside(Duration::from_micros(5), a_while_ago);
        assert!(courtesy.due(), "due again once YIELD_AFTER has passed");
        courtesy.stepped_aside(Duration::from_micros(5), Instant::now() + YIELD_AFTER);
        assert!(!courtesy.due(), "not due right after a yield");

        // A yield that gave the CPU away for long: the rest of the batch
        // runs without stepping aside; the next batch is courteous again.
        courtesy.stepped_aside(CONTENDED, a_while_ago);
        assert!(!courtesy.due(), "contended: no more yields in this batch");
        courtesy.start_batch(false);
        courtesy.running_since = a_while_ago;
        assert!(courtesy.due(), "each batch starts courteous");

        // On a saturated node it never yields.
        courtesy.start_batch(true);
        courtesy.running_since = a_while_ago;
        assert!(!courtesy.due(), "no yields on a saturated node");
    }

    #[test]
    fn the_idle_share_comes_from_the_cpu_line_of_proc_stat() {
        let before = "cpu  100 5 50 800 20 3 2 10 7 0\ncpu0 50 2 25 400 10 1 1 5 3 0\nintr 1\n";
        let after = "cpu  190 5 60 802 20 3 2 10 9 0\ncpu0 95 2 30 401 10 1 1 5 4 0\n";
        let before = cpu_times(before).expect("a cpu line");
        assert_eq!(
            before,
            CpuTimes {
                idle: 820,
                total: 990
            },
            "guest time not counted twice"
        );
        let after = cpu_times(after).expect("a cpu line");
        let share = idle_share(before, after).expect("time passed");
        assert!((share - 2.0 / 102.0).abs() < 1e-9, "{share}");
        assert!(share < SATURATED_IDLE_SHARE);

        assert_eq!(idle_share(after, after), None, "no time passed");
        assert_eq!(cpu_times("cpu0 1 2 3 4 5\n"), None, "no aggregate line");
        assert_eq!(
            cpu_times("cpu  1 x 3 4 5\n"),
            None,
            "a field that is not a number"
        );
        assert_eq!(cpu_times("cpu  1 2 3\n"), None, "too few fields");
    }
}
