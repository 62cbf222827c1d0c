//! Pairs HTTP responses with the requests they answer, for the response
//! flow's latency and its method and URL (as Hubble reports them).
//!
//! The probe reports each packet once, where it is delivered: between two
//! attached pods, a request at the server's veth and its response at the
//! client's (see the probe's `route` module), so the pair may come from two
//! interfaces and is matched by connection alone. A response is paired with
//! the oldest unanswered request on its connection, which is exactly
//! HTTP/1.1's order, pipelining included; where a kernel reports a packet
//! at both interfaces, each copy of a response takes one copy of its
//! request. Memory is bounded: at most [`MAX_CONNECTIONS`] connections with
//! at most [`MAX_PENDING`] unanswered requests each; the oldest connection
//! is forgotten first.

use std::{collections::VecDeque, net::SocketAddr, sync::Arc};

use crate::{
    flow::{Flow, FlowKind, HttpRequest, Verdict},
    hashing::FastMap,
};

/// Connections with unanswered requests the tracker remembers.
pub const MAX_CONNECTIONS: usize = 16_384;
/// Unanswered requests remembered per connection.
pub const MAX_PENDING: usize = 16;

/// The connection a request was sent on: client, server.
type Key = (SocketAddr, SocketAddr);

/// Unanswered requests of a connection, oldest first, with their kernel
/// times.
type Pending = VecDeque<(u64, Arc<HttpRequest>)>;

/// Unanswered requests by connection.
#[derive(Debug, Default)]
pub struct LatencyTracker {
    /// Unanswered requests (kernel time, request), with the generation the
    /// connection's entry was created in.
    pending: FastMap<Key, (u64, Pending)>,
    /// Creation order of `pending`'s entries (key, generation); entries
    /// answered since are skipped lazily.
    order: VecDeque<(Key, u64)>,
    generation: u64,
}

impl LatencyTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers a request that went on, or completes a response with the
    /// request it answers and the time between them.
    pub fn observe(&mut self, flow: &mut Flow) {
        match &mut flow.kind {
            FlowKind::HttpRequest(request) if flow.verdict != Verdict::Dropped => {
                let key = (flow.source, flow.destination);
                if !self.pending.contains_key(&key) {
                    if self.pending.len() >= MAX_CONNECTIONS {
                        self.forget_oldest();
                    }
                    self.generation += 1;
                    self.order.push_back((key, self.generation));
                    self.pending.insert(key, (self.generation, VecDeque::new()));
                    if self.order.len() > 4 * MAX_CONNECTIONS {
                        let pending = &self.pending;
                        self.order
                            .retain(|(k, g)| pending.get(k).is_some_and(|(live, _)| live == g));
                    }
                }
                let Some((_, queue)) = self.pending.get_mut(&key) else {
                    return;
                };
                if queue.len() >= MAX_PENDING {
                    queue.pop_front();
                }
                queue.push_back((flow.ktime_ns, Arc::clone(request)));
            }
            FlowKind::HttpResponse(response) => {
                let key = (flow.destination, flow.source);
                let Some((_, queue)) = self.pending.get_mut(&key) else {
                    return;
                };
                if let Some((sent, request)) = queue.pop_front() {
                    response.latency_ns = flow.ktime_ns.saturating_sub(sent);
                    response.request = Some(request);
                }
                if queue.is_empty() {
                    self.pending.remove(&key);
                }
            }
            _ => {}
        }
    }

    /// Drops the connection remembered longest.
    fn forget_oldest(&mut self) {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .pending
                .get(&key)
                .is_some_and(|(live, _)| *live == generation)
            {
                self.pending.remove(&key);
                return;
            }
        }
    }

    /// Connections with unanswered requests.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// No unanswered requests.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        clock::MonotonicClock,
        flow::{Flow, HttpResponse},
    };
    use probe_common::event::{FlowEvent, family, hook, kind, verdict};

    fn event(
        kind_: u8,
        from: ([u8; 4], u16),
        to: ([u8; 4], u16),
        ktime: u64,
        payload: &[u8],
    ) -> Flow {
        let mut e = FlowEvent::zeroed();
        e.kind = kind_;
        e.family = family::IPV4;
        e.l4_proto = 6;
        e.hook = hook::TC_INGRESS;
        e.verdict = verdict::FORWARDED;
        e.ifindex = 7;
        e.saddr[..4].copy_from_slice(&from.0);
        e.daddr[..4].copy_from_slice(&to.0);
        e.sport = from.1;
        e.dport = to.1;
        e.ktime_ns = ktime;
        e.payload[..payload.len()].copy_from_slice(payload);
        e.payload_len = payload.len() as u16;
        Flow::from_event(
            &e,
            &MonotonicClock::measure(),
            &std::collections::HashMap::new(),
        )
    }

    const CLIENT: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
    const SERVER: ([u8; 4], u16) = ([10, 0, 0, 2], 80);

    fn response_of(flow: &Flow) -> &HttpResponse {
        match &flow.kind {
            FlowKind::HttpResponse(r) => r,
            other => panic!("not a response: {other:?}"),
        }
    }

    #[test]
    fn pipelined_responses_answer_requests_in_order() {
        let mut tracker = LatencyTracker::new();
        for (t, path) in [(1_000, "/a"), (2_000, "/b")] {
            let line = format!("GET {path} HTTP/1.1\r\n\r\n");
            tracker.observe(&mut event(
                kind::HTTP_REQUEST,
                CLIENT,
                SERVER,
                t,
                line.as_bytes(),
            ));
        }
        let mut first = event(
            kind::HTTP_RESPONSE,
            SERVER,
            CLIENT,
            5_000_000,
            b"HTTP/1.1 200 OK\r\n\r\n",
        );
        tracker.observe(&mut first);
        let mut second = event(
            kind::HTTP_RESPONSE,
            SERVER,
            CLIENT,
            9_000_000,
            b"HTTP/1.1 404 Not Found\r\n",
        );
        tracker.observe(&mut second);
        let (a, b) = (response_of(&first), response_of(&second));
        assert_eq!((a.code, a.latency_ns), (200, 5_000_000 - 1_000));
        assert_eq!(a.request.as_ref().map(|r| r.path.as_str()), Some("/a"));
        assert_eq!((b.code, b.latency_ns), (404, 9_000_000 - 2_000));
        assert_eq!(b.request.as_ref().map(|r| r.path.as_str()), Some("/b"));
        assert!(tracker.is_empty(), "answered requests are forgotten");
    }

    #[test]
    fn a_response_reported_at_the_clients_veth_answers_a_request_reported_at_the_servers() {
        let mut tracker = LatencyTracker::new();
        let mut request = event(
            kind::HTTP_REQUEST,
            CLIENT,
            SERVER,
            1_000,
            b"GET /x HTTP/1.1\r\n\r\n",
        );
        request.ifindex = 11;
        tracker.observe(&mut request);
        let mut response = event(
            kind::HTTP_RESPONSE,
            SERVER,
            CLIENT,
            3_000_000,
            b"HTTP/1.1 200 OK\r\n",
        );
        response.ifindex = 12;
        tracker.observe(&mut response);
        let r = response_of(&response);
        assert_eq!(r.latency_ns, 3_000_000 - 1_000);
        assert_eq!(r.request.as_ref().map(|r| r.path.as_str()), Some("/x"));
    }

    #[test]
    fn a_response_without_a_request_stays_unpaired() {
        let mut tracker = LatencyTracker::new();
        let mut lone = event(
            kind::HTTP_RESPONSE,
            SERVER,
            CLIENT,
            5,
            b"HTTP/1.1 200 OK\r\n",
        );
        tracker.observe(&mut lone);
        let r = response_of(&lone);
        assert_eq!((r.latency_ns, r.request.is_none()), (0, true));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut tracker = LatencyTracker::new();
        for port in 0..(MAX_CONNECTIONS as u16 + 10) {
            let client = ([10, 0, 0, 1], port);
            tracker.observe(&mut event(
                kind::HTTP_REQUEST,
                client,
                SERVER,
                1,
                b"GET / HTTP/1.1\r\n\r\n",
            ));
        }
        assert_eq!(tracker.len(), MAX_CONNECTIONS);
        for _ in 0..(MAX_PENDING + 5) {
            tracker.observe(&mut event(
                kind::HTTP_REQUEST,
                CLIENT,
                SERVER,
                1,
                b"GET / HTTP/1.1\r\n\r\n",
            ));
        }
        let key = (
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        );
        assert_eq!(tracker.pending[&key].1.len(), MAX_PENDING);
    }
}
