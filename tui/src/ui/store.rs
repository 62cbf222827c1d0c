//! The bounded flow buffer and the filtered view over it.
//!
//! [`Store`] keeps the newest `capacity` flows, each with a sequence number.
//! [`View`] is the list of sequence numbers that pass the active filter,
//! plus the aggregates the panels show (verdict counts, rate, top drops,
//! service map), all maintained incrementally: a new flow is matched once
//! when it arrives, an evicted flow is subtracted once when it leaves, and
//! only a filter change walks the whole buffer again. A frame therefore
//! never re-filters anything.

use std::collections::{BTreeMap, HashMap, VecDeque};

use holonet_flows::filter::FlowFilterSet;
use holonet_proto::flow::{Flow, Verdict};

use super::row::{self, Side};

/// How many seconds of rate history the sparkline keeps.
pub(crate) const RATE_SECONDS: usize = 120;

/// One buffered flow.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Position in arrival order, never reused.
    pub(crate) seq: u64,
    /// The flow as received.
    pub(crate) flow: Box<Flow>,
}

/// The newest `capacity` flows, oldest first.
#[derive(Debug)]
pub(crate) struct Store {
    entries: VecDeque<Entry>,
    capacity: usize,
    next_seq: u64,
    evicted: u64,
}

impl Store {
    /// An empty buffer holding at most `capacity` flows (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            entries: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity,
            next_seq: 0,
            evicted: 0,
        }
    }

    /// Appends a flow; returns its sequence number and the flow evicted to
    /// make room, if any.
    pub(crate) fn push(&mut self, flow: Box<Flow>) -> (u64, Option<Entry>) {
        let evicted = if self.entries.len() >= self.capacity {
            self.evicted += 1;
            self.entries.pop_front()
        } else {
            None
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.push_back(Entry { seq, flow });
        (seq, evicted)
    }

    /// The flow with this sequence number, if still buffered.
    pub(crate) fn get(&self, seq: u64) -> Option<&Entry> {
        let first = self.entries.front()?.seq;
        let idx = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.entries.get(idx)
    }

    /// Buffered flows, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// How many flows are buffered.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The most flows kept.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Flows pushed out of the buffer so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The sequence number the next flow will get.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Oldest and newest buffered flow.
    pub(crate) fn ends(&self) -> Option<(&Flow, &Flow)> {
        Some((&self.entries.front()?.flow, &self.entries.back()?.flow))
    }

    /// Empties the buffer (a replay seeking backwards starts again).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
}

/// A source → destination pair with an HTTP method and path: one line of
/// the "top dropped" panel.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DropKey {
    /// Source name (namespace/workload or IP).
    pub(crate) src: String,
    /// Destination name.
    pub(crate) dst: String,
    /// HTTP method, or the L4 protocol and port for L3/L4 drops.
    pub(crate) method: String,
    /// HTTP path, DNS name, or the drop reason for L3/L4 drops.
    pub(crate) path: String,
}

/// Counts of one service-map edge, by verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EdgeCounts {
    /// FORWARDED flows.
    pub(crate) forwarded: u64,
    /// DROPPED flows.
    pub(crate) dropped: u64,
    /// AUDIT flows.
    pub(crate) audit: u64,
    /// Any other verdict.
    pub(crate) other: u64,
}

/// Aggregates over the flows of a view.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    /// Flows per verdict, indexed by the Verdict number (0..=7, 8 = other).
    pub(crate) verdicts: [u64; 9],
    /// Dropped flows per (source, destination, method, path).
    pub(crate) drops: HashMap<DropKey, u64>,
    /// Flows per (source, destination).
    pub(crate) edges: HashMap<(String, String), EdgeCounts>,
    /// Flows per second of flow time: (all, dropped).
    pub(crate) rate: BTreeMap<i64, (u64, u64)>,
    /// Flows seen with L7 HTTP / DNS records (capability evidence).
    pub(crate) http_seen: u64,
    /// Flows with a DNS record.
    pub(crate) dns_seen: u64,
}

fn verdict_slot(v: i32) -> usize {
    usize::try_from(v).ok().filter(|v| *v <= 7).unwrap_or(8)
}

/// The key of a drop in the "top dropped" panel.
pub(crate) fn drop_key(flow: &Flow) -> DropKey {
    let src = row::peer_name(flow, Side::Source);
    let dst = row::peer_name(flow, Side::Destination);
    if let Some(h) = row::http(flow) {
        return DropKey {
            src,
            dst,
            method: h.method.clone(),
            path: row::url_path(&h.url).to_owned(),
        };
    }
    if let Some(q) = row::dns_query(flow) {
        return DropKey {
            src,
            dst,
            method: "DNS".to_owned(),
            path: q.to_owned(),
        };
    }
    let (_, dport) = row::ports(flow);
    DropKey {
        src,
        dst,
        method: match dport {
            Some(p) => format!("{}/{p}", row::l4_name(flow)),
            None => row::l4_name(flow).to_owned(),
        },
        path: row::drop_reason_name(flow).to_owned(),
    }
}

impl Stats {
    fn apply(&mut self, flow: &Flow, add: bool) {
        fn bump(n: &mut u64, add: bool) {
            if add {
                *n += 1;
            } else {
                *n = n.saturating_sub(1);
            }
        }
        bump(&mut self.verdicts[verdict_slot(flow.verdict)], add);
        let dropped = flow.verdict == Verdict::Dropped as i32;
        if dropped {
            let key = drop_key(flow);
            if add {
                *self.drops.entry(key).or_default() += 1;
            } else if let Some(n) = self.drops.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.drops.remove(&key);
                }
            }
        }
        let edge_key = (
            row::peer_name(flow, Side::Source),
            row::peer_name(flow, Side::Destination),
        );
        let remove_edge = {
            let e = self.edges.entry(edge_key.clone()).or_default();
            match Verdict::try_from(flow.verdict) {
                Ok(Verdict::Forwarded) => bump(&mut e.forwarded, add),
                Ok(Verdict::Dropped) => bump(&mut e.dropped, add),
                Ok(Verdict::Audit) => bump(&mut e.audit, add),
                _ => bump(&mut e.other, add),
            }
            *e == EdgeCounts::default()
        };
        if remove_edge {
            self.edges.remove(&edge_key);
        }
        if let Some(t) = &flow.time {
            let slot = self.rate.entry(t.seconds).or_default();
            bump(&mut slot.0, add);
            if dropped {
                bump(&mut slot.1, add);
            }
            if *slot == (0, 0) {
                self.rate.remove(&t.seconds);
            }
            // Keep the rate history bounded even when flows are not evicted.
            while self.rate.len() > RATE_SECONDS * 2 {
                self.rate.pop_first();
            }
        }
        match flow.l7.as_ref().and_then(|l| l.record.as_ref()) {
            Some(holonet_proto::flow::layer7::Record::Http(_)) => bump(&mut self.http_seen, add),
            Some(holonet_proto::flow::layer7::Record::Dns(_)) => bump(&mut self.dns_seen, add),
            None => {}
        }
    }

    /// Flows counted, all verdicts.
    pub(crate) fn total(&self) -> u64 {
        self.verdicts.iter().sum()
    }

    /// The `n` most frequent drops, most frequent first (ties by name).
    pub(crate) fn top_drops(&self, n: usize) -> Vec<(DropKey, u64)> {
        let mut v: Vec<(DropKey, u64)> = self.drops.iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// The `n` busiest edges; edges with drops first, then by volume.
    pub(crate) fn top_edges(&self, n: usize) -> Vec<((String, String), EdgeCounts)> {
        let mut v: Vec<_> = self.edges.iter().map(|(k, c)| (k.clone(), *c)).collect();
        v.sort_by(|a, b| {
            (b.1.dropped > 0)
                .cmp(&(a.1.dropped > 0))
                .then_with(|| {
                    let ta = a.1.forwarded + a.1.dropped + a.1.audit + a.1.other;
                    let tb = b.1.forwarded + b.1.dropped + b.1.audit + b.1.other;
                    tb.cmp(&ta)
                })
                .then_with(|| a.0.cmp(&b.0))
        });
        v.truncate(n);
        v
    }

    /// Per-second counts (all, dropped) for the `n` seconds ending at the
    /// newest second seen, oldest first.
    pub(crate) fn rate_series(&self, n: usize) -> Vec<(u64, u64)> {
        let Some((&last, _)) = self.rate.last_key_value() else {
            return Vec::new();
        };
        let n_i = i64::try_from(n).unwrap_or(0);
        (last - n_i + 1..=last)
            .map(|s| self.rate.get(&s).copied().unwrap_or((0, 0)))
            .collect()
    }
}

/// The flows of the store that pass a filter, with their aggregates.
#[derive(Debug, Default)]
pub(crate) struct View {
    seqs: VecDeque<u64>,
    filter: FlowFilterSet,
    stats: Stats,
}

impl View {
    /// A view of `store` through `filter` (walks the buffer once).
    pub(crate) fn build(store: &Store, filter: FlowFilterSet) -> Self {
        let mut v = Self {
            seqs: VecDeque::new(),
            filter,
            stats: Stats::default(),
        };
        for e in store.iter() {
            v.offer(e.seq, &e.flow);
        }
        v
    }

    /// Matches a new flow; returns whether it passed.
    pub(crate) fn offer(&mut self, seq: u64, flow: &Flow) -> bool {
        if !self.filter.matches(flow) {
            return false;
        }
        self.seqs.push_back(seq);
        self.stats.apply(flow, true);
        true
    }

    /// Forgets a flow the store evicted (a no-op if it was not in the view).
    pub(crate) fn evict(&mut self, entry: &Entry) {
        if self.seqs.front() == Some(&entry.seq) {
            self.seqs.pop_front();
            self.stats.apply(&entry.flow, false);
        }
    }

    /// Sequence numbers of the matching flows, oldest first.
    pub(crate) fn seqs(&self) -> &VecDeque<u64> {
        &self.seqs
    }

    /// How many flows match.
    pub(crate) fn len(&self) -> usize {
        self.seqs.len()
    }

    /// Aggregates of the matching flows.
    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Index of the first matching flow with a sequence number ≥ `seq`.
    pub(crate) fn index_at_or_after(&self, seq: u64) -> usize {
        self.seqs.partition_point(|s| *s < seq)
    }

    /// Empties the view (with the store).
    pub(crate) fn clear(&mut self) {
        self.seqs.clear();
        self.stats = Stats::default();
    }
}

#[cfg(test)]
mod tests {
    use holonet_proto::flow::FlowFilter;

    use super::*;

    fn flow(verdict: Verdict, sec: i64) -> Box<Flow> {
        Box::new(Flow {
            verdict: verdict as i32,
            time: Some(holonet_proto::wkt::Timestamp {
                seconds: sec,
                nanos: 0,
            }),
            ip: Some(holonet_proto::flow::Ip {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn eviction_keeps_store_and_view_bounded_and_consistent() {
        let filter = FlowFilterSet::new(
            &[FlowFilter {
                verdict: vec![Verdict::Dropped as i32],
                ..Default::default()
            }],
            &[],
        )
        .unwrap();
        let mut store = Store::new(4);
        let mut view = View::build(&store, filter.clone());
        for i in 0..10 {
            let v = if i % 2 == 0 {
                Verdict::Dropped
            } else {
                Verdict::Forwarded
            };
            let (seq, evicted) = store.push(flow(v, i));
            if let Some(e) = evicted {
                view.evict(&e);
            }
            let f = store.get(seq).map(|e| e.flow.clone()).unwrap();
            view.offer(seq, &f);
        }
        assert_eq!(store.len(), 4);
        assert_eq!(store.evicted(), 6);
        // Buffered: seqs 6..=9; drops among them: 6 and 8.
        assert_eq!(view.seqs().iter().copied().collect::<Vec<_>>(), vec![6, 8]);
        assert_eq!(view.stats().verdicts[Verdict::Dropped as usize], 2);
        assert_eq!(view.stats().top_drops(5)[0].1, 2);
        assert_eq!(view.stats().rate.len(), 2);
        // Rebuilding from scratch gives the same result as the increments.
        let rebuilt = View::build(&store, filter);
        assert_eq!(rebuilt.seqs(), view.seqs());
        assert_eq!(rebuilt.stats().verdicts, view.stats().verdicts);
        assert!(store.get(5).is_none());
        assert!(store.get(9).is_some());
    }

    #[test]
    fn rate_series_fills_gaps() {
        let mut store = Store::new(100);
        let mut view = View::default();
        for s in [10, 10, 12] {
            let (seq, _) = store.push(flow(Verdict::Forwarded, s));
            view.offer(seq, &store.get(seq).unwrap().flow.clone());
        }
        assert_eq!(view.stats().rate_series(3), vec![(2, 0), (0, 0), (1, 0)]);
    }
}
