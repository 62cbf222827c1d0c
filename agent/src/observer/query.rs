//! One GetFlows request, validated and executed against the flow store.
//!
//! Semantics follow Hubble's server: matching flows are counted after
//! filtering and sent oldest first; `number` picks the newest N (or the
//! oldest N with `first`); `since`/`until` bound by flow time; with `follow`
//! the stream then continues with new flows until the client goes away.
//! Lost events are passed through and do not count towards `number`; a
//! reader that falls behind the ring gets a `HUBBLE_RING_BUFFER` lost event.

use std::sync::Arc;

use holonet_flows::filter::FlowFilterSet;
use holonet_proto::{
    encoded::EncodedGetFlowsResponse,
    flow::{Flow, LostEvent, LostEventSource},
    observer::GetFlowsRequest,
    wkt::Timestamp,
};
use tokio::sync::mpsc;
use tonic::Status;

use super::{
    mask::FieldMask,
    store::{FlowStore, Follower, StoredEvent, StoredFlow},
};

/// Events read from the store per wake-up in follow mode.
const FOLLOW_BATCH: usize = 1024;

/// A validated GetFlows request.
#[derive(Debug)]
pub struct FlowQuery {
    limit: Option<u64>,
    first: bool,
    follow: bool,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    filters: FlowFilterSet,
    mask: FieldMask,
    node_name: String,
}

impl FlowQuery {
    /// Validates a request; problems become `INVALID_ARGUMENT`.
    pub fn new(req: &GetFlowsRequest, node_name: &str) -> Result<Self, Status> {
        let filters = FlowFilterSet::new(&req.whitelist, &req.blacklist)
            .map_err(|e| Status::invalid_argument(format!("invalid filter: {e}")))?;
        let mask = FieldMask::new(
            req.field_mask
                .as_ref()
                .map(|m| m.paths.as_slice())
                .unwrap_or_default(),
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        for (name, ts) in [("since", req.since), ("until", req.until)] {
            if let Some(ts) = ts {
                if ts.to_datetime().is_none() {
                    return Err(Status::invalid_argument(format!(
                        "{name}: timestamp {}s {}ns is out of range",
                        ts.seconds, ts.nanos
                    )));
                }
            }
        }
        if let (Some(since), Some(until)) = (req.since, req.until) {
            if since.as_nanos() > until.as_nanos() {
                return Err(Status::invalid_argument("since is later than until"));
            }
        }
        // number 0: all history without follow, none with follow (what
        // `hubble observe -f` without --last asks for).
        let limit = match (req.number, req.follow) {
            (0, false) => None,
            (n, _) => Some(n),
        };
        Ok(Self {
            limit,
            first: req.first,
            follow: req.follow,
            since: req.since,
            until: req.until,
            filters,
            mask,
            node_name: node_name.to_string(),
        })
    }

    fn in_time_range(&self, flow: &Flow) -> bool {
        let Some(time) = flow.time else {
            return self.since.is_none() && self.until.is_none();
        };
        let t = time.as_nanos();
        self.since.is_none_or(|s| t >= s.as_nanos()) && self.until.is_none_or(|u| t <= u.as_nanos())
    }

    fn selects(&self, stored: &StoredFlow) -> bool {
        let flow = stored.without_shared();
        self.in_time_range(flow) && self.filters.matches_parts(flow, &stored.shared_parts())
    }

    fn past_until(&self, flow: &Flow) -> bool {
        match (self.until, flow.time) {
            (Some(until), Some(time)) => time.as_nanos() > until.as_nanos(),
            _ => false,
        }
    }

    /// The response for a stored event, encoded straight from the store
    /// (a masked flow is copied first, with only the asked-for fields).
    fn response(&self, event: &StoredEvent) -> EncodedGetFlowsResponse {
        match event {
            StoredEvent::Flow(stored) if self.mask == FieldMask::All => {
                let flow = stored.without_shared();
                EncodedGetFlowsResponse::flow_with_shared(
                    flow,
                    &stored.encoding_parts(),
                    stored.node_name(),
                    flow.time.as_ref(),
                )
            }
            StoredEvent::Flow(stored) => {
                let flow = stored.without_shared();
                EncodedGetFlowsResponse::flow(
                    &self.mask.apply(&stored.to_flow()),
                    stored.node_name(),
                    flow.time.as_ref(),
                )
            }
            StoredEvent::Lost(lost) => self.lost_response(*lost),
        }
    }

    fn lost_response(&self, lost: LostEvent) -> EncodedGetFlowsResponse {
        let now: Timestamp = chrono::Utc::now().into();
        EncodedGetFlowsResponse::lost_events(&lost, &self.node_name, Some(&now))
    }

    /// The stored events this query returns from history, in order.
    pub fn select_history<'a>(&self, history: &'a [Arc<StoredEvent>]) -> Vec<&'a StoredEvent> {
        let matching: Vec<&StoredEvent> = history
            .iter()
            .map(|e| &**e)
            .filter(|e| match e {
                StoredEvent::Flow(f) => self.selects(f),
                StoredEvent::Lost(_) => true,
            })
            .collect();
        let Some(limit) = self.limit else {
            return matching;
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let is_flow = |e: &&&StoredEvent| matches!(***e, StoredEvent::Flow(_));
        if self.first {
            // Up to and including the limit-th flow.
            let end = if limit == 0 {
                0
            } else {
                matching
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| is_flow(e))
                    .nth(limit - 1)
                    .map_or(matching.len(), |(i, _)| i + 1)
            };
            matching[..end].to_vec()
        } else {
            let start = if limit == 0 {
                matching.len()
            } else {
                matching
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(|(_, e)| is_flow(e))
                    .nth(limit - 1)
                    .map_or(0, |(i, _)| i)
            };
            matching[start..].to_vec()
        }
    }

    /// Streams the answer into `tx` until done or until the client leaves.
    pub async fn run(
        self,
        store: Arc<FlowStore>,
        tx: mpsc::Sender<Result<EncodedGetFlowsResponse, Status>>,
    ) {
        // Anything appended after this snapshot is picked up by the follower,
        // which starts at `next_seq`. Responses are encoded as they are
        // sent; the snapshot keeps the selected flows alive until then.
        let (history, next_seq) = store.snapshot();
        for event in self.select_history(&history) {
            if tx.send(Ok(self.response(event))).await.is_err() {
                return;
            }
        }
        drop(history);
        if !self.follow {
            return;
        }
        let mut follower = Follower::new(store, next_seq);
        loop {
            let range = tokio::select! {
                range = follower.next_batch(FOLLOW_BATCH) => match range {
                    Some(range) => range,
                    None => return,
                },
                () = tx.closed() => return,
            };
            if range.overwritten > 0 {
                let lost = LostEvent {
                    source: LostEventSource::HubbleRingBuffer.into(),
                    num_events_lost: range.overwritten,
                    ..Default::default()
                };
                if tx.send(Ok(self.lost_response(lost))).await.is_err() {
                    return;
                }
            }
            for event in &range.events {
                let send = match &**event {
                    StoredEvent::Flow(flow) => {
                        if self.past_until(flow.without_shared()) {
                            return;
                        }
                        self.selects(flow)
                    }
                    StoredEvent::Lost(_) => true,
                };
                if send && tx.send(Ok(self.response(event))).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(n: i64) -> StoredEvent {
        StoredEvent::from(Flow {
            time: Some(Timestamp {
                seconds: n,
                nanos: 0,
            }),
            node_name: "n".into(),
            ..Default::default()
        })
    }

    fn lost() -> StoredEvent {
        StoredEvent::Lost(LostEvent {
            num_events_lost: 3,
            ..Default::default()
        })
    }

    fn seconds(events: &[&StoredEvent]) -> Vec<i64> {
        events
            .iter()
            .map(|e| match e {
                StoredEvent::Flow(f) => f.without_shared().time.map_or(-1, |t| t.seconds),
                StoredEvent::Lost(_) => -99,
            })
            .collect()
    }

    fn query(req: GetFlowsRequest) -> FlowQuery {
        FlowQuery::new(&req, "n").expect("valid")
    }

    fn history() -> Vec<Arc<StoredEvent>> {
        [flow(1), flow(2), lost(), flow(3), flow(4), flow(5)]
            .into_iter()
            .map(Arc::new)
            .collect()
    }

    #[test]
    fn number_picks_the_newest_flows_oldest_first() {
        let h = history();
        let q = query(GetFlowsRequest {
            number: 2,
            ..Default::default()
        });
        assert_eq!(seconds(&q.select_history(&h)), [4, 5]);
    }

    #[test]
    fn lost_events_do_not_count_towards_number() {
        let h = history();
        let q = query(GetFlowsRequest {
            number: 3,
            ..Default::default()
        });
        assert_eq!(seconds(&q.select_history(&h)), [3, 4, 5]);
        let q = query(GetFlowsRequest {
            number: 4,
            ..Default::default()
        });
        assert_eq!(seconds(&q.select_history(&h)), [2, -99, 3, 4, 5]);
    }

    #[test]
    fn first_picks_the_oldest_flows() {
        let h = history();
        let q = query(GetFlowsRequest {
            number: 2,
            first: true,
            ..Default::default()
        });
        assert_eq!(seconds(&q.select_history(&h)), [1, 2]);
        let q = query(GetFlowsRequest {
            number: 3,
            first: true,
            ..Default::default()
        });
        assert_eq!(seconds(&q.select_history(&h)), [1, 2, -99, 3]);
    }

    #[test]
    fn since_and_until_bound_by_flow_time() {
        let h = history();
        let q = query(GetFlowsRequest {
            since: Some(Timestamp {
                seconds: 2,
                nanos: 0,
            }),
            until: Some(Timestamp {
                seconds: 4,
                nanos: 0,
            }),
            ..Default::default()
        });
        assert_eq!(seconds(&q.select_history(&h)), [2, -99, 3, 4]);
    }

    #[test]
    fn follow_without_number_sends_no_history() {
        let h = history();
        let q = query(GetFlowsRequest {
            follow: true,
            ..Default::default()
        });
        assert!(q.select_history(&h).is_empty());
    }

    #[test]
    fn huge_numbers_mean_everything() {
        let h = history();
        let q = query(GetFlowsRequest {
            number: u64::MAX,
            ..Default::default()
        });
        assert_eq!(seconds(&q.select_history(&h)), [1, 2, -99, 3, 4, 5]);
    }

    #[test]
    fn bad_requests_are_invalid_arguments() {
        let bad_range = GetFlowsRequest {
            since: Some(Timestamp {
                seconds: 5,
                nanos: 0,
            }),
            until: Some(Timestamp {
                seconds: 4,
                nanos: 0,
            }),
            ..Default::default()
        };
        let err = FlowQuery::new(&bad_range, "n").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let bad_time = GetFlowsRequest {
            since: Some(Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(
            FlowQuery::new(&bad_time, "n").unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        let bad_mask = GetFlowsRequest {
            field_mask: Some(holonet_proto::pbjson_types::FieldMask {
                paths: vec!["bogus".into()],
            }),
            ..Default::default()
        };
        let err = FlowQuery::new(&bad_mask, "n").unwrap_err();
        assert!(err.message().contains("bogus"), "{err:?}");
    }
}
