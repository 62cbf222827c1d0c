//! Drains probe events into the flow store.

use std::{collections::HashMap, sync::Arc};

use holonet_proto::flow::{LostEvent, LostEventSource};

use super::{
    convert::{UuidSource, to_proto},
    endpoints::EndpointDirectory,
    policy_names::PolicyNames,
    store::{FlowStore, StoredEvent},
};
use crate::{
    clock::MonotonicClock,
    events::{EventReader, ReadError},
    flow::Flow,
    latency::LatencyTracker,
};

/// Events drained from the ring buffer per wake-up.
const BATCH: usize = 4096;

/// What the pipeline needs to turn events into flows.
#[derive(Debug)]
pub struct Pipeline {
    /// Kernel time to wall time.
    pub clock: MonotonicClock,
    /// Interface names by ifindex.
    pub interfaces: HashMap<u32, String>,
    /// This node's name, stamped on every flow.
    pub node_name: String,
    /// Who each address is; replaced whenever the endpoints file changes.
    pub endpoints: tokio::sync::watch::Receiver<Arc<EndpointDirectory>>,
    /// The policies in force, to name the ones behind each verdict.
    policy_names: Option<tokio::sync::watch::Receiver<Option<Arc<PolicyNames>>>>,
    uuids: UuidSource,
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
            clock: MonotonicClock::measure(),
            interfaces,
            node_name: node_name.into(),
            endpoints,
            policy_names: None,
            uuids: UuidSource::new(),
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

    /// Reads events until the ring buffer fails, storing every flow and
    /// handing each decoded flow to `observe` (printing, tests).
    pub async fn run(
        mut self,
        mut reader: EventReader,
        store: Arc<FlowStore>,
        mut observe: impl FnMut(&Flow),
    ) -> Result<(), ReadError> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut latency = LatencyTracker::new();
        loop {
            batch.clear();
            reader.read_batch(&mut batch, BATCH).await?;
            let mut stored = Vec::with_capacity(batch.len());
            let endpoints = Arc::clone(&self.endpoints.borrow_and_update());
            let names = self
                .policy_names
                .as_mut()
                .and_then(|rx| rx.borrow_and_update().clone());
            for event in &batch {
                let mut flow = Flow::from_event(event, &self.clock, &self.interfaces);
                latency.observe(&mut flow);
                observe(&flow);
                let mut converted = to_proto(&flow, &self.node_name, &endpoints, &mut self.uuids);
                if let Some(names) = &names {
                    names.annotate(&mut converted);
                }
                stored.push(StoredEvent::Flow(converted));
            }
            store.push_batch(stored);
        }
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
