//! Reading the probe's ring buffer asynchronously, in batches.
//!
//! The probe submits records without waking the reader unless a burst
//! fills a good part of the ring; the reader drains everything available
//! (up to a batch limit) on those wake-ups and on a short timer, so events
//! cost no wake-up each.

use aya::maps::{MapData, RingBuf};
use std::time::Duration;

use probe_common::event::{EVENTS_POLL_INTERVAL_MS, FlowEvent};
use tokio::io::{Interest, unix::AsyncFd};

/// How often the reader drains the ring without a wake-up.
const POLL_INTERVAL: Duration = Duration::from_millis(EVENTS_POLL_INTERVAL_MS);

/// Reading the ring buffer failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Registering the ring buffer with the async runtime, or waiting on it, failed.
    #[error("waiting on the EVENTS ring buffer: {0}")]
    Poll(#[from] std::io::Error),
}

/// Drains `FlowEvent` records from the `EVENTS` ring buffer.
pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
    malformed: u64,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("malformed", &self.malformed)
            .finish_non_exhaustive()
    }
}

impl EventReader {
    /// Wraps the ring buffer taken from the loaded probe. Must be called from
    /// within a tokio runtime with I/O enabled.
    pub fn new(ring: RingBuf<MapData>) -> Result<Self, ReadError> {
        // SAFETY: `RingBuf<MapData>` owns the map's file descriptor for its
        // whole lifetime and always returns that same descriptor from
        // `as_raw_fd`; the `AsyncFd` takes ownership of it, so the descriptor
        // stays open and unchanged until the registration is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|err| ReadError::Poll(err.into()))?;
        Ok(Self { ring, malformed: 0 })
    }

    /// Items that did not decode as a `FlowEvent` (a probe/agent mismatch);
    /// they are counted and skipped, never passed on.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Appends the events available now, up to `max`, to `out` without
    /// waiting; returns how many were added.
    pub fn read_ready(&mut self, out: &mut Vec<FlowEvent>, max: usize) -> usize {
        let start = out.len();
        let ring = self.ring.get_mut();
        while out.len() - start < max {
            let Some(item) = ring.next() else { break };
            match FlowEvent::decode(&item) {
                Ok(event) => out.push(event),
                Err(err) => {
                    self.malformed += 1;
                    log::warn!("skipping a ring-buffer record: {err}");
                }
            }
        }
        out.len() - start
    }

    /// Waits until at least one event is available, then appends everything
    /// available, up to `max` events, to `out`. Returns how many were added.
    ///
    /// The probe wakes the reader only when a burst fills a good part of the
    /// ring (waking it per event would cost more than the event), so the
    /// reader also looks every `EVENTS_POLL_INTERVAL_MS`.
    pub async fn read_batch(
        &mut self,
        out: &mut Vec<FlowEvent>,
        max: usize,
    ) -> Result<usize, ReadError> {
        loop {
            let added = self.read_ready(out, max);
            if added > 0 {
                return Ok(added);
            }
            tokio::select! {
                guard = self.ring.readable_mut() => guard?.clear_ready(),
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }
}
