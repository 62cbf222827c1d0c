//! The agent's flow store: a bounded ring of recent events.
//!
//! One writer (the probe pipeline) appends batches; any number of readers
//! (GetFlows streams, the exporter) copy out ranges by sequence number and
//! wait for new entries through a watch channel. The lock is held only to
//! push a batch or to clone `Arc`s out, so a slow reader never slows the
//! writer: it falls behind, and when the ring has overwritten what it had
//! not read yet, it learns how many events it lost (Hubble's
//! `HUBBLE_RING_BUFFER` lost events).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use tokio::sync::watch;

pub use super::stored::{AddressParts, FlowPolicies, SharedFlowParts, StoredEvent, StoredFlow};

/// Default number of events kept (Hubble's maximum ring size is 65,535).
pub const DEFAULT_CAPACITY: usize = 65_536;

/// What a reader gets for a range request.
#[derive(Debug)]
pub struct Range {
    /// Events in order, starting at the requested sequence number or the
    /// oldest one still stored.
    pub events: Vec<Arc<StoredEvent>>,
    /// Events the reader asked for that were already overwritten.
    pub overwritten: u64,
    /// Sequence number to ask for next.
    pub next_seq: u64,
}

/// Figures for `ServerStatus`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StoreStatus {
    /// Events currently stored.
    pub num_flows: u64,
    /// Capacity.
    pub max_flows: u64,
    /// Events ever stored.
    pub seen_flows: u64,
    /// Time since the store was created.
    pub uptime: Duration,
    /// Flows per second over the last minute.
    pub flows_rate: f64,
}

#[derive(Debug)]
struct Ring {
    events: VecDeque<(Instant, Arc<StoredEvent>)>,
    /// Sequence number of `events[0]`.
    first_seq: u64,
}

/// The bounded event ring shared by the pipeline and the readers.
#[derive(Debug)]
pub struct FlowStore {
    ring: Mutex<Ring>,
    capacity: usize,
    started: Instant,
    /// Publishes the sequence number one past the newest event.
    newest: watch::Sender<u64>,
    /// Set when the agent shuts down, so following readers end their streams.
    closed: std::sync::atomic::AtomicBool,
}

impl FlowStore {
    /// A store holding at most `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity),
                first_seq: 0,
            }),
            capacity,
            started: Instant::now(),
            newest: watch::channel(0).0,
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Tells every reader that no more events will come: followers finish
    /// their streams (so a graceful server shutdown does not wait forever).
    pub fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        self.newest.send_modify(|_| {});
    }

    /// Whether [`FlowStore::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A panic while holding the lock cannot leave the ring inconsistent
        // (every mutation is a single push/pop), so poisoning is ignored.
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Capacity in events.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends events, overwriting the oldest when full, and wakes readers.
    /// Callers that build a large batch pass it as `Arc`s: a batch of
    /// thousands of flows by value is megabytes, allocated and paged in
    /// afresh each time. The overwritten events are freed after the lock is
    /// released.
    pub fn push_batch<E: Into<Arc<StoredEvent>>>(&self, batch: impl IntoIterator<Item = E>) {
        let now = Instant::now();
        let mut evicted = Vec::new();
        let next = {
            let mut ring = self.lock();
            for event in batch {
                if ring.events.len() == self.capacity
                    && let Some((_, old)) = ring.events.pop_front()
                {
                    evicted.push(old);
                    ring.first_seq += 1;
                }
                ring.events.push_back((now, event.into()));
            }
            ring.first_seq + ring.events.len() as u64
        };
        self.newest.send_replace(next);
        drop(evicted);
    }

    /// Sequence number one past the newest event.
    pub fn next_seq(&self) -> u64 {
        *self.newest.borrow()
    }

    /// A receiver that changes whenever events are appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.newest.subscribe()
    }

    /// Up to `max` events starting at `from_seq`.
    pub fn range(&self, from_seq: u64, max: usize) -> Range {
        let ring = self.lock();
        let overwritten = ring.first_seq.saturating_sub(from_seq);
        let start = from_seq.max(ring.first_seq);
        let skip = usize::try_from(start - ring.first_seq).unwrap_or(usize::MAX);
        let events: Vec<Arc<StoredEvent>> = ring
            .events
            .iter()
            .skip(skip)
            .take(max)
            .map(|(_, e)| Arc::clone(e))
            .collect();
        Range {
            next_seq: start + events.len() as u64,
            events,
            overwritten,
        }
    }

    /// Every stored event, oldest first, and the sequence number after them.
    pub fn snapshot(&self) -> (Vec<Arc<StoredEvent>>, u64) {
        let range = self.range(0, usize::MAX);
        (range.events, range.next_seq)
    }

    /// Figures for `ServerStatus`.
    pub fn status(&self) -> StoreStatus {
        let ring = self.lock();
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        let recent = ring
            .events
            .iter()
            .rev()
            .take_while(|(at, _)| now.duration_since(*at) <= minute)
            .filter(|(_, e)| matches!(**e, StoredEvent::Flow(_)))
            .count();
        let uptime = now.duration_since(self.started);
        let window = uptime.min(minute).as_secs_f64().max(1.0);
        StoreStatus {
            num_flows: ring.events.len() as u64,
            max_flows: self.capacity as u64,
            seen_flows: ring.first_seq + ring.events.len() as u64,
            uptime,
            flows_rate: recent as f64 / window,
        }
    }
}

/// A reader that follows the store from a sequence number on: the one loop
/// GetFlows streams, the recorder and the demo's printer share.
#[derive(Debug)]
pub struct Follower {
    store: Arc<FlowStore>,
    newest: watch::Receiver<u64>,
    next: u64,
}

impl Follower {
    /// Follows `store` from sequence number `next` (e.g. `store.next_seq()`
    /// for "new events only").
    pub fn new(store: Arc<FlowStore>, next: u64) -> Self {
        Self {
            newest: store.subscribe(),
            store,
            next,
        }
    }

    /// The next events (at most `max`), waiting until some are appended.
    /// `None` once the store is closed and everything appended was read.
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn next_batch(&mut self, max: usize) -> Option<Range> {
        loop {
            if self.next < self.store.next_seq() {
                let range = self.store.range(self.next, max);
                self.next = range.next_seq;
                return Some(range);
            }
            if self.store.is_closed() || self.newest.changed().await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use holonet_proto::flow::Flow;

    use super::*;

    fn flow(n: u32) -> StoredEvent {
        StoredEvent::from(Flow {
            policy_match_type: n,
            ..Default::default()
        })
    }

    fn numbers(range: &Range) -> Vec<u32> {
        range
            .events
            .iter()
            .map(|e| match &**e {
                StoredEvent::Flow(f) => f.without_shared().policy_match_type,
                StoredEvent::Lost(_) => u32::MAX,
            })
            .collect()
    }

    #[test]
    fn keeps_the_newest_events_up_to_capacity() {
        let store = FlowStore::new(3);
        store.push_batch((1..=5).map(flow));
        let all = store.range(0, usize::MAX);
        assert_eq!(numbers(&all), [3, 4, 5]);
        assert_eq!(all.overwritten, 2);
        assert_eq!(all.next_seq, 5);
        assert_eq!(store.next_seq(), 5);
        let status = store.status();
        assert_eq!(
            (status.num_flows, status.max_flows, status.seen_flows),
            (3, 3, 5)
        );
    }

    #[test]
    fn a_reader_resumes_where_it_stopped() {
        let store = FlowStore::new(10);
        store.push_batch((1..=4).map(flow));
        let first = store.range(0, 2);
        assert_eq!(numbers(&first), [1, 2]);
        let second = store.range(first.next_seq, 10);
        assert_eq!(numbers(&second), [3, 4]);
        assert_eq!(second.overwritten, 0);
        let empty = store.range(second.next_seq, 10);
        assert!(empty.events.is_empty());
        assert_eq!(empty.next_seq, 4);
    }

    #[test]
    fn a_reader_that_fell_behind_learns_how_much_it_lost() {
        let store = FlowStore::new(2);
        store.push_batch((1..=2).map(flow));
        let seen = store.range(0, 10);
        store.push_batch((3..=7).map(flow));
        let after = store.range(seen.next_seq, 10);
        assert_eq!(after.overwritten, 3);
        assert_eq!(numbers(&after), [6, 7]);
    }

    #[tokio::test]
    async fn readers_are_woken_by_new_events() {
        let store = Arc::new(FlowStore::new(8));
        let mut rx = store.subscribe();
        let writer = Arc::clone(&store);
        tokio::spawn(async move { writer.push_batch([flow(1)]) });
        rx.changed().await.expect("sender alive");
        assert_eq!(*rx.borrow(), 1);
    }

    #[tokio::test]
    async fn closing_wakes_readers_and_says_so() {
        let store = Arc::new(FlowStore::new(8));
        let mut rx = store.subscribe();
        let closer = Arc::clone(&store);
        tokio::spawn(async move { closer.close() });
        rx.changed().await.expect("sender alive");
        assert!(store.is_closed());
    }

    #[tokio::test]
    async fn a_follower_reads_new_events_then_ends_after_close() {
        let store = Arc::new(FlowStore::new(8));
        store.push_batch([flow(1)]);
        let mut follower = Follower::new(Arc::clone(&store), store.next_seq());
        let writer = Arc::clone(&store);
        tokio::spawn(async move {
            writer.push_batch([flow(2), flow(3)]);
            writer.close();
        });
        let mut seen = Vec::new();
        while let Some(range) = follower.next_batch(1).await {
            seen.extend(numbers(&range));
        }
        assert_eq!(seen, [2, 3], "only new events, all of them, then the end");
    }

    #[test]
    fn the_rate_counts_flows_of_the_last_minute() {
        let store = FlowStore::new(100);
        store.push_batch((0..30).map(flow));
        let status = store.status();
        // Uptime is under a second, so the window is one second.
        assert!(
            (status.flows_rate - 30.0).abs() < f64::EPSILON,
            "{status:?}"
        );
    }
}
