//! Drains probe events into the flow store.

use std::{collections::HashMap, sync::Arc, time::Duration};

use holonet_proto::flow::{LostEvent, LostEventSource};
use probe_common::event::{EVENTS_RING_BYTES, FlowEvent};
use tokio::task::{JoinError, JoinHandle};

use super::{
    courtesy::{CHUNK, CpuCourtesy, NodeLoad},
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
            reader.set_node_saturated(saturated);
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
