//! Stand-in for `holonet_flows::filter` until that crate lands: accepts
//! requests without filters and rejects any filter with a clear error, so a
//! filter is never silently ignored.

use holonet_proto::flow::{Flow, FlowFilter};

/// A filter that cannot be evaluated yet.
#[derive(Debug, thiserror::Error)]
#[error("flow filters are not supported by this agent build yet")]
pub(crate) struct FilterError;

/// The compiled filters of one request.
#[derive(Debug, Clone)]
pub(crate) struct FlowFilterSet;

impl FlowFilterSet {
    /// Accepts only empty filter lists.
    pub(crate) fn new(
        whitelist: &[FlowFilter],
        blacklist: &[FlowFilter],
    ) -> Result<Self, FilterError> {
        if whitelist.is_empty() && blacklist.is_empty() {
            Ok(Self)
        } else {
            Err(FilterError)
        }
    }

    /// Every flow matches an empty filter set.
    pub(crate) fn matches(&self, _flow: &Flow) -> bool {
        true
    }
}
