//! The selection half of `hubble observe`: building a `GetFlowsRequest` from
//! `--last/--first/--all/--follow/--since/--until` (cilium/cilium
//! `hubble/cmd/observe/flows.go` `getFlowsRequest`) and applying such a
//! request locally to a recording (`io_reader_observer.go`, as
//! `hubble observe --input-file` does).

use std::collections::VecDeque;

use holonet_proto::{
    observer::{GetFlowsRequest, GetFlowsResponse, get_flows_response::ResponseTypes},
    wkt::Timestamp,
};

use crate::{
    filter::{FilterError, FlowFilterSet},
    flags::Filters,
};

/// Flows printed by a plain `hubble observe` (`defaults.FlowPrintCount`).
pub const DEFAULT_LAST: u64 = 20;

/// Largest `--last` applied locally (hubble's limit).
pub const MAX_LOCAL_LAST: u64 = 1_000_000;

/// The selector flags of `hubble observe`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// `--first N` (0 = unset).
    pub first: u64,
    /// `--last N` (0 = unset).
    pub last: u64,
    /// `--all`.
    pub all: bool,
    /// `-f/--follow`.
    pub follow: bool,
    /// `--since`, already resolved.
    pub since: Option<Timestamp>,
    /// `--until`, already resolved.
    pub until: Option<Timestamp>,
}

/// Conflicting selector flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectionError(String);

/// Builds the request exactly as `hubble observe` does.
pub fn flows_request(sel: &Selection, filters: Filters) -> Result<GetFlowsRequest, SelectionError> {
    let first = sel.first > 0;
    let last = sel.last > 0;
    let conflict =
        |a: &str, b: &str| Err(SelectionError(format!("cannot set both --{a} and --{b}")));
    if first && last {
        return conflict("first", "last");
    }
    if first && sel.all {
        return conflict("first", "all");
    }
    if first && sel.follow {
        return conflict("first", "follow");
    }
    if last && sel.all {
        return conflict("last", "all");
    }
    let mut number = sel.last;
    if sel.since.is_none() && sel.until.is_none() && !first {
        if sel.all {
            number = u64::MAX;
        } else if sel.last == 0 && !sel.follow {
            number = DEFAULT_LAST;
        }
    }
    if first {
        number = sel.first;
    }
    Ok(GetFlowsRequest {
        number,
        first,
        follow: sel.follow,
        whitelist: filters.whitelist,
        blacklist: filters.blacklist,
        since: sel.since,
        until: sel.until,
        ..Default::default()
    })
}

/// What to do with one event offered to a [`Replay`].
#[derive(Debug, Clone, PartialEq)]
pub enum Offer {
    /// Print it now.
    Emit(Box<GetFlowsResponse>),
    /// Kept for `--last`, printed by [`Replay::finish`].
    Buffered,
    /// Filtered out.
    Skipped,
    /// `--first N` is satisfied: stop reading.
    Done,
}

/// Applies a `GetFlowsRequest` to a stream of recorded events, like
/// hubble's `--input-file` reader: since/until on the event time, the
/// filters, then `--first N` (stop after N) or `--last N` (keep the last N).
#[derive(Debug)]
pub struct Replay {
    number: u64,
    first: bool,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
    filters: FlowFilterSet,
    ring: Option<VecDeque<Box<GetFlowsResponse>>>,
    returned: u64,
}

/// The request cannot be applied locally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// A filter is invalid.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// `--last` above the local limit.
    #[error("--last must be <= 1_000_000, got {0}")]
    LastTooLarge(u64),
}

fn time_key(t: Option<&Timestamp>) -> i128 {
    // A missing time is Go's zero time, 0001-01-01.
    t.map_or(-62_135_596_800 * 1_000_000_000, |t| t.as_nanos())
}

impl Replay {
    /// Prepares to apply `req`.
    pub fn new(req: &GetFlowsRequest) -> Result<Self, ReplayError> {
        let filters = FlowFilterSet::new(&req.whitelist, &req.blacklist)?;
        let n = req.number;
        let ring = if !req.first && n != 0 && n != u64::MAX {
            if n > MAX_LOCAL_LAST {
                return Err(ReplayError::LastTooLarge(n));
            }
            Some(VecDeque::with_capacity(
                usize::try_from(n).unwrap_or(0).min(4096),
            ))
        } else {
            None
        };
        Ok(Self {
            number: n,
            first: req.first && n != 0 && n != u64::MAX,
            since: req.since,
            until: req.until,
            filters,
            ring,
            returned: 0,
        })
    }

    /// Whether an event passes since/until and the filters. Events that
    /// are not flows only pass when there is no whitelist (hubble evaluates
    /// the filters against a missing flow).
    pub fn selects(&self, resp: &GetFlowsResponse) -> bool {
        let t = time_key(resp.time.as_ref());
        if self.since.is_some_and(|s| s.as_nanos() > t)
            || self.until.is_some_and(|u| u.as_nanos() < t)
        {
            return false;
        }
        match &resp.response_types {
            Some(ResponseTypes::Flow(f)) => self.filters.matches(f),
            _ => self.filters.whitelist_is_empty(),
        }
    }

    /// True once `--first N` has been satisfied: nothing more will be
    /// emitted, so the caller can stop reading.
    pub fn is_done(&self) -> bool {
        self.first && self.returned >= self.number
    }

    /// Offers the next recorded event.
    pub fn offer(&mut self, resp: Box<GetFlowsResponse>) -> Offer {
        if self.is_done() {
            return Offer::Done;
        }
        if !self.selects(&resp) {
            return Offer::Skipped;
        }
        if let Some(ring) = &mut self.ring {
            if ring.len() as u64 >= self.number {
                ring.pop_front();
            }
            ring.push_back(resp);
            return Offer::Buffered;
        }
        self.returned += 1;
        Offer::Emit(resp)
    }

    /// The events kept for `--last`, oldest first.
    pub fn finish(self) -> impl Iterator<Item = Box<GetFlowsResponse>> {
        self.ring.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use holonet_proto::flow::{Flow, FlowFilter, Verdict};

    use super::*;

    fn ev(sec: i64, verdict: Verdict) -> GetFlowsResponse {
        let t = Some(Timestamp {
            seconds: sec,
            nanos: 0,
        });
        GetFlowsResponse {
            time: t,
            node_name: String::new(),
            response_types: Some(ResponseTypes::Flow(Flow {
                time: t,
                verdict: verdict as i32,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn requests_are_built_like_hubble() {
        let req = |sel: Selection| flows_request(&sel, Filters::default());
        assert_eq!(req(Selection::default()).unwrap().number, 20);
        let all = req(Selection {
            all: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (all.number, all.first, all.follow),
            (u64::MAX, false, false)
        );
        let follow = req(Selection {
            follow: true,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((follow.number, follow.follow), (0, true));
        let first = req(Selection {
            first: 5,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((first.number, first.first), (5, true));
        let since = Some(Timestamp {
            seconds: 10,
            nanos: 0,
        });
        let s = req(Selection {
            since,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((s.number, s.since), (0, since));
        let s = req(Selection {
            since,
            last: 3,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.number, 3);
        for bad in [
            Selection {
                first: 1,
                last: 1,
                ..Default::default()
            },
            Selection {
                first: 1,
                all: true,
                ..Default::default()
            },
            Selection {
                first: 1,
                follow: true,
                ..Default::default()
            },
            Selection {
                last: 1,
                all: true,
                ..Default::default()
            },
        ] {
            assert!(req(bad).is_err(), "{bad:?}");
        }
    }

    fn run(req: GetFlowsRequest, events: Vec<GetFlowsResponse>) -> Vec<i64> {
        let mut r = Replay::new(&req).unwrap();
        let mut out = Vec::new();
        for e in events {
            match r.offer(Box::new(e)) {
                Offer::Emit(e) => out.push(e.time.unwrap().seconds),
                Offer::Done => break,
                Offer::Buffered | Offer::Skipped => {}
            }
        }
        out.extend(r.finish().map(|e| e.time.unwrap().seconds));
        out
    }

    #[test]
    fn first_last_since_until_and_filters_apply_locally() {
        let events: Vec<_> = (1..=10)
            .map(|i| {
                ev(
                    i,
                    if i % 2 == 0 {
                        Verdict::Dropped
                    } else {
                        Verdict::Forwarded
                    },
                )
            })
            .collect();
        let base = GetFlowsRequest::default();
        assert_eq!(
            run(
                GetFlowsRequest {
                    number: 3,
                    ..base.clone()
                },
                events.clone()
            ),
            vec![8, 9, 10]
        );
        assert_eq!(
            run(
                GetFlowsRequest {
                    number: 3,
                    first: true,
                    ..base.clone()
                },
                events.clone()
            ),
            vec![1, 2, 3]
        );
        assert_eq!(
            run(
                GetFlowsRequest {
                    number: u64::MAX,
                    ..base.clone()
                },
                events.clone()
            )
            .len(),
            10
        );
        let since = Some(Timestamp {
            seconds: 4,
            nanos: 0,
        });
        let until = Some(Timestamp {
            seconds: 6,
            nanos: 0,
        });
        assert_eq!(
            run(
                GetFlowsRequest {
                    since,
                    until,
                    ..base.clone()
                },
                events.clone()
            ),
            vec![4, 5, 6]
        );
        let dropped = FlowFilter {
            verdict: vec![Verdict::Dropped as i32],
            ..Default::default()
        };
        assert_eq!(
            run(
                GetFlowsRequest {
                    number: 2,
                    whitelist: vec![dropped.clone()],
                    ..base.clone()
                },
                events.clone()
            ),
            vec![8, 10]
        );
        assert_eq!(
            run(
                GetFlowsRequest {
                    number: 2,
                    first: true,
                    blacklist: vec![dropped],
                    ..base.clone()
                },
                events
            ),
            vec![1, 3]
        );
        assert!(matches!(
            Replay::new(&GetFlowsRequest {
                number: 2_000_000,
                ..base
            }),
            Err(ReplayError::LastTooLarge(2_000_000))
        ));
    }

    #[test]
    fn non_flow_events_pass_only_without_whitelist() {
        let lost = GetFlowsResponse {
            time: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            node_name: String::new(),
            response_types: Some(ResponseTypes::LostEvents(Default::default())),
        };
        let r = Replay::new(&GetFlowsRequest::default()).unwrap();
        assert!(r.selects(&lost));
        let r = Replay::new(&GetFlowsRequest {
            whitelist: vec![FlowFilter {
                verdict: vec![1],
                ..Default::default()
            }],
            ..Default::default()
        })
        .unwrap();
        assert!(!r.selects(&lost));
    }
}
