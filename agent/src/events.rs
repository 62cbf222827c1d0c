//! Reading the probe's ring buffer asynchronously, in batches.
//!
//! The probe submits records without waking the reader unless a burst
//! fills a good part of the ring; the reader drains everything available
//! (up to a batch limit) on those wake-ups and on a short timer, so events
//! cost no wake-up each. The timer is short (a millisecond) while events
//! flow, so each batch is small and the reader never holds a CPU for long
//! in front of the workload it observes; it backs off to
//! `EVENTS_POLL_INTERVAL_MS` while the ring stays empty.

use aya::maps::{MapData, RingBuf};
use std::time::Duration;

use probe_common::event::{EVENTS_POLL_INTERVAL_MS, FlowEvent};
use tokio::io::{Interest, unix::AsyncFd};

/// How often the reader drains the ring without a wake-up while events flow.
const BUSY_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// How often it looks once the ring has stayed empty for a while.
const IDLE_POLL_INTERVAL: Duration = Duration::from_millis(EVENTS_POLL_INTERVAL_MS);

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
    /// The wait before the next look at an empty ring: doubles from
    /// `busy_interval` up to `IDLE_POLL_INTERVAL` while it stays empty.
    poll_interval: Duration,
    /// The wait after a look that found events (see [`Self::set_node_saturated`]).
    busy_interval: Duration,
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
        Ok(Self {
            ring,
            malformed: 0,
            poll_interval: BUSY_POLL_INTERVAL,
            busy_interval: BUSY_POLL_INTERVAL,
        })
    }

    /// Tells the reader whether the node's CPUs are saturated (see
    /// `observer::courtesy`). Small, frequent batches keep the reader from
    /// holding up the workload's requests when the CPUs have room; when they
    /// are saturated, each extra wake-up is taken from the workload, so the
    /// reader then looks as seldom as when idle and drains larger batches.
    pub fn set_node_saturated(&mut self, saturated: bool) {
        self.busy_interval = if saturated {
            IDLE_POLL_INTERVAL
        } else {
            BUSY_POLL_INTERVAL
        };
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
    /// reader also looks on a timer: every millisecond while events come,
    /// backing off to every `EVENTS_POLL_INTERVAL_MS` while none do.
    pub async fn read_batch(
        &mut self,
        out: &mut Vec<FlowEvent>,
        max: usize,
    ) -> Result<usize, ReadError> {
        loop {
            let added = self.read_ready(out, max);
            if added > 0 {
                self.poll_interval = self.busy_interval;
                return Ok(added);
            }
            tokio::select! {
                guard = self.ring.readable_mut() => guard?.clear_ready(),
                () = tokio::time::sleep(self.poll_interval) => {
                    self.poll_interval = backed_off(self.poll_interval);
                }
            }
        }
    }
}

/// The wait before the next look after a look that found the ring empty.
fn backed_off(interval: Duration) -> Duration {
    (interval * 2).min(IDLE_POLL_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_ring_is_polled_less_and_less_often_down_to_the_idle_interval() {
        let mut interval = BUSY_POLL_INTERVAL;
        let mut waits = vec![interval];
        while interval < IDLE_POLL_INTERVAL {
            interval = backed_off(interval);
            waits.push(interval);
        }
        assert_eq!(
            waits,
            [1, 2, 4, 8, 10].map(Duration::from_millis),
            "from 1 ms, doubling, capped at EVENTS_POLL_INTERVAL_MS"
        );
        assert_eq!(backed_off(IDLE_POLL_INTERVAL), IDLE_POLL_INTERVAL);
    }
}
