//! Putting several agents' flow streams into one time order (pure: no I/O,
//! no clocks of its own, so every rule here is unit-tested).
//!
//! Two strategies, because the two kinds of GetFlows differ:
//!
//! - **History** (no `follow`): each peer sends its answer oldest first and
//!   then ends. [`KWayMerge`] holds exactly one pending response per peer
//!   and always emits the oldest of them, so the merged stream is in time
//!   order exactly, whatever the peers' speeds, and holds at most one
//!   response per peer (plus the bounded channel in front of each).
//! - **Follow**: streams never end, so waiting for every peer would stall
//!   on the quietest one. [`ReorderWindow`] holds each response for a fixed
//!   window after it arrived and releases responses oldest first. Responses
//!   that arrive within the window of each other come out in time order; a
//!   response delayed by more than the window is sent as soon as it is
//!   released, possibly after newer ones. The window is also capped in
//!   size: when it is full, the oldest response goes out at once. Hubble
//!   Relay makes the same trade (a 100-flow buffer drained every second).

use std::{
    cmp::Reverse,
    collections::BinaryHeap,
    time::{Duration, Instant},
};

use holonet_proto::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};

/// The order key of a response: its time in nanoseconds since the epoch.
/// A response without a time sorts first (it is sent as soon as possible).
pub fn time_key(resp: &GetFlowsResponse) -> i128 {
    resp.time.map_or(i128::MIN, |t| {
        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos)
    })
}

/// Stamps `node` on a response from a peer that did not name itself: the
/// response's `node_name` always, the flow's `node_name` when the client's
/// field mask keeps that field (`mask_keeps_node_name`), so a masked-out
/// field stays out.
pub fn stamp_node_name(resp: &mut GetFlowsResponse, node: &str, mask_keeps_node_name: bool) {
    if resp.node_name.is_empty() {
        resp.node_name = node.to_string();
    }
    if let Some(ResponseTypes::Flow(flow)) = &mut resp.response_types {
        if flow.node_name.is_empty() && mask_keeps_node_name {
            flow.node_name = resp.node_name.clone();
        }
    }
}

#[derive(Debug)]
enum Slot<T> {
    /// The merge needs this source's next item before it can emit.
    Waiting,
    Ready(i128, T),
    Done,
}

/// Exact k-way merge of sources that are each sorted by key.
///
/// Drive it like this: while [`KWayMerge::needs`] names a source, read
/// that source's next item and [`KWayMerge::offer`] it (`None` when the
/// source ended); then [`KWayMerge::pop`] the oldest. `pop` returning
/// `None` with nothing needed means every source is done.
#[derive(Debug)]
pub struct KWayMerge<T> {
    slots: Vec<Slot<T>>,
}

impl<T> KWayMerge<T> {
    /// A merge over `sources` sources, each waiting for its first item.
    pub fn new(sources: usize) -> Self {
        Self {
            slots: (0..sources).map(|_| Slot::Waiting).collect(),
        }
    }

    /// The first source whose next item is needed before anything can be
    /// emitted.
    pub fn needs(&self) -> Option<usize> {
        self.slots.iter().position(|s| matches!(s, Slot::Waiting))
    }

    /// Hands over the next item of `source` (`None`: the source ended).
    pub fn offer(&mut self, source: usize, item: Option<(i128, T)>) {
        if let Some(slot) = self.slots.get_mut(source) {
            *slot = match item {
                Some((key, item)) => Slot::Ready(key, item),
                None => Slot::Done,
            };
        }
    }

    /// The oldest pending item, once no source is waiting. Ties go to the
    /// lower source index, so the output is deterministic.
    pub fn pop(&mut self) -> Option<T> {
        if self.needs().is_some() {
            return None;
        }
        let (index, _) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Ready(key, _) => Some((i, *key)),
                _ => None,
            })
            .min_by_key(|&(i, key)| (key, i))?;
        match std::mem::replace(&mut self.slots[index], Slot::Waiting) {
            Slot::Ready(_, item) => Some(item),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Held<T> {
    key: i128,
    seq: u64,
    arrived: Instant,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.key, self.seq) == (other.key, other.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.key, self.seq).cmp(&(other.key, other.seq))
    }
}

/// A bounded reorder buffer for endless streams: see the module docs.
#[derive(Debug)]
pub struct ReorderWindow<T> {
    heap: BinaryHeap<Reverse<Held<T>>>,
    window: Duration,
    capacity: usize,
    seq: u64,
}

impl<T> ReorderWindow<T> {
    /// Holds each item for `window` after it arrived, at most `capacity`
    /// items at once (at least 1). A zero window sends items as they come.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            window,
            capacity: capacity.max(1),
            seq: 0,
        }
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Takes an item with order key `key` that arrived at `now`.
    pub fn push(&mut self, key: i128, item: T, now: Instant) {
        self.seq += 1;
        self.heap.push(Reverse(Held {
            key,
            seq: self.seq,
            arrived: now,
            item,
        }));
    }

    /// The oldest item, if it has been held for the whole window or the
    /// buffer is over capacity.
    pub fn pop_ready(&mut self, now: Instant) -> Option<T> {
        let Reverse(oldest) = self.heap.peek()?;
        let due = now.saturating_duration_since(oldest.arrived) >= self.window;
        if due || self.heap.len() > self.capacity {
            return self.heap.pop().map(|Reverse(h)| h.item);
        }
        None
    }

    /// When the oldest item becomes due (to sleep until then).
    pub fn next_due(&self) -> Option<Instant> {
        self.heap
            .peek()
            .map(|Reverse(oldest)| oldest.arrived + self.window)
    }

    /// Everything held, oldest first (at the end of the stream).
    pub fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.heap.len());
        while let Some(Reverse(h)) = self.heap.pop() {
            out.push(h.item);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use holonet_proto::{flow::Flow, wkt::Timestamp};

    use super::*;

    /// Runs a k-way merge over in-memory sources, recording how many items
    /// were pending at most (the bound on buffering).
    fn merge_all(sources: Vec<Vec<i128>>) -> (Vec<i128>, usize) {
        let mut iters: Vec<_> = sources.into_iter().map(|s| s.into_iter()).collect();
        let mut merge = KWayMerge::new(iters.len());
        let mut out = Vec::new();
        let mut max_pending = 0;
        loop {
            while let Some(i) = merge.needs() {
                merge.offer(i, iters[i].next().map(|k| (k, k)));
            }
            let pending = merge
                .slots
                .iter()
                .filter(|s| matches!(s, Slot::Ready(..)))
                .count();
            max_pending = max_pending.max(pending);
            match merge.pop() {
                Some(k) => out.push(k),
                None => break,
            }
        }
        (out, max_pending)
    }

    #[test]
    fn k_way_merge_is_in_time_order_and_holds_one_item_per_source() {
        let (out, pending) = merge_all(vec![
            vec![1, 4, 7, 10],
            vec![2, 5, 8],
            vec![3, 6, 9, 11, 12],
        ]);
        assert_eq!(out, (1..=12).collect::<Vec<_>>());
        assert!(pending <= 3, "{pending}");
    }

    proptest::proptest! {
        /// Whatever the sources, the merge is their sorted union, and each
        /// source's own order is kept for equal keys.
        #[test]
        fn k_way_merge_is_the_sorted_union(
            mut sources in proptest::collection::vec(
                proptest::collection::vec(-50i128..50, 0..20), 0..6)
        ) {
            for s in &mut sources {
                s.sort_unstable();
            }
            let mut expected: Vec<i128> = sources.iter().flatten().copied().collect();
            expected.sort_unstable();
            let (out, pending) = merge_all(sources.clone());
            proptest::prop_assert_eq!(out, expected);
            proptest::prop_assert!(pending <= sources.len());
        }

        /// Items held long enough come out sorted, however they arrived.
        #[test]
        fn a_full_window_sorts(keys in proptest::collection::vec(-1000i128..1000, 0..50)) {
            let t0 = Instant::now();
            let mut w = ReorderWindow::new(Duration::from_millis(10), keys.len() + 1);
            for (i, k) in keys.iter().enumerate() {
                w.push(*k, *k, t0 + Duration::from_micros(i as u64));
            }
            let later = t0 + Duration::from_secs(1);
            let out: Vec<i128> = std::iter::from_fn(|| w.pop_ready(later)).collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            proptest::prop_assert_eq!(out, sorted);
        }
    }

    #[test]
    fn k_way_merge_handles_empty_and_uneven_sources() {
        assert_eq!(merge_all(vec![]).0, Vec::<i128>::new());
        assert_eq!(merge_all(vec![vec![], vec![]]).0, Vec::<i128>::new());
        assert_eq!(merge_all(vec![vec![], vec![5, 6], vec![1]]).0, [1, 5, 6]);
        // Equal keys: lower source first, each source's own order kept.
        assert_eq!(merge_all(vec![vec![1, 1], vec![1]]).0, [1, 1, 1]);
    }

    #[test]
    fn k_way_merge_waits_for_a_slow_source() {
        let mut merge = KWayMerge::new(2);
        merge.offer(0, Some((5, "a")));
        assert_eq!(merge.needs(), Some(1));
        assert_eq!(merge.pop(), None, "cannot emit before source 1 spoke");
        merge.offer(1, Some((3, "b")));
        assert_eq!(merge.pop(), Some("b"));
        assert_eq!(merge.needs(), Some(1));
        merge.offer(1, None);
        assert_eq!(merge.pop(), Some("a"));
        merge.offer(0, None);
        assert_eq!(merge.needs(), None);
        assert_eq!(merge.pop(), None);
    }

    #[test]
    fn reorder_window_sorts_what_arrives_within_the_window() {
        let t0 = Instant::now();
        let mut w = ReorderWindow::new(Duration::from_millis(100), 100);
        w.push(30, 30, t0);
        w.push(10, 10, t0 + Duration::from_millis(10));
        w.push(20, 20, t0 + Duration::from_millis(20));
        assert_eq!(w.pop_ready(t0 + Duration::from_millis(50)), None);
        assert_eq!(
            w.next_due(),
            Some(t0 + Duration::from_millis(110)),
            "the oldest flow decides"
        );
        let later = t0 + Duration::from_millis(200);
        let out: Vec<_> = std::iter::from_fn(|| w.pop_ready(later)).collect();
        assert_eq!(out, [10, 20, 30]);
        assert!(w.is_empty());
    }

    #[test]
    fn reorder_window_is_bounded() {
        let t0 = Instant::now();
        let mut w = ReorderWindow::new(Duration::from_secs(3600), 2);
        for k in [5, 3, 4] {
            w.push(k, k, t0);
        }
        assert_eq!(w.pop_ready(t0), Some(3), "over capacity: the oldest goes");
        assert_eq!(w.pop_ready(t0), None);
        assert_eq!(w.len(), 2);
        assert_eq!(w.drain(), [4, 5]);
    }

    #[test]
    fn a_late_arrival_is_sent_when_released_not_dropped() {
        let t0 = Instant::now();
        let mut w = ReorderWindow::new(Duration::from_millis(10), 100);
        w.push(100, 100, t0);
        assert_eq!(w.pop_ready(t0 + Duration::from_millis(20)), Some(100));
        w.push(50, 50, t0 + Duration::from_millis(30));
        assert_eq!(w.pop_ready(t0 + Duration::from_millis(45)), Some(50));
    }

    #[test]
    fn zero_window_passes_items_straight_through() {
        let t0 = Instant::now();
        let mut w = ReorderWindow::new(Duration::ZERO, 10);
        w.push(2, 2, t0);
        assert_eq!(w.pop_ready(t0), Some(2));
    }

    #[test]
    fn node_names_are_stamped_only_where_missing() {
        let mut resp = GetFlowsResponse {
            time: Some(Timestamp {
                seconds: 1,
                nanos: 5,
            }),
            response_types: Some(ResponseTypes::Flow(Flow::default())),
            ..Default::default()
        };
        assert_eq!(time_key(&resp), 1_000_000_005);
        stamp_node_name(&mut resp, "node-a", true);
        assert_eq!(resp.node_name, "node-a");
        let Some(ResponseTypes::Flow(f)) = &resp.response_types else {
            panic!("flow");
        };
        assert_eq!(f.node_name, "node-a");
        stamp_node_name(&mut resp, "other", true);
        assert_eq!(resp.node_name, "node-a", "a peer's own name wins");

        let mut masked = GetFlowsResponse {
            response_types: Some(ResponseTypes::Flow(Flow::default())),
            ..Default::default()
        };
        stamp_node_name(&mut masked, "node-b", false);
        assert_eq!(masked.node_name, "node-b");
        let Some(ResponseTypes::Flow(f)) = &masked.response_types else {
            panic!("flow");
        };
        assert!(f.node_name.is_empty(), "a masked-out field stays out");
        assert_eq!(time_key(&masked), i128::MIN);
    }
}
