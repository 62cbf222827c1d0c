//! The socket probe's ring buffer, drained into the process table.
//!
//! The flow pipeline drains it before converting each batch of flow events:
//! a socket's record is written before its packets reach the TC probe, so
//! every record a flow event could need is in the table by then. A
//! background task also drains it on a timer, so records do not pile up
//! while no flows arrive.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use probe_common::process::{ProcessEvent, proc_kind};

use super::{
    netns::NetnsAddresses,
    table::{ProcessInfo, ProcessTable},
};

/// How often the background task drains the ring.
pub const DRAIN_INTERVAL: Duration = Duration::from_millis(100);

/// The ring and the table it feeds.
pub struct ProcessFeed {
    ring: RingBuf<MapData>,
    table: ProcessTable,
    namespaces: NetnsAddresses,
}

impl std::fmt::Debug for ProcessFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessFeed")
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

/// The feed as the pipeline and the drain task share it.
pub type SharedFeed = Arc<Mutex<ProcessFeed>>;

impl ProcessFeed {
    /// A feed over the socket probe's `PROC_EVENTS` ring whose records
    /// update `table` (which may hold what was known before the probe was
    /// attached).
    pub fn with_table(ring: RingBuf<MapData>, table: ProcessTable) -> Self {
        Self {
            ring,
            table,
            namespaces: NetnsAddresses::new("/proc"),
        }
    }

    /// Applies every record waiting in the ring; returns how many.
    pub fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            match ProcessEvent::decode(&item) {
                Ok(event) => {
                    // A listener's namespace tells it apart from others on
                    // the same port in other pods.
                    let netns = (event.kind == proc_kind::LISTEN)
                        .then(|| self.namespaces.learn_pid(event.tgid))
                        .flatten();
                    self.table.apply(&event, netns);
                    n += 1;
                }
                Err(err) => log::warn!("skipping a socket-probe record: {err}"),
            }
        }
        n
    }

    /// The processes at both ends of a flow (see
    /// [`ProcessTable::attribute`]), telling listeners in different network
    /// namespaces apart by the namespaces' addresses.
    pub fn attribute(
        &mut self,
        source: SocketAddr,
        destination: SocketAddr,
        is_reply: Option<bool>,
    ) -> (Option<ProcessInfo>, Option<ProcessInfo>) {
        let namespaces = &mut self.namespaces;
        self.table
            .attribute(source, destination, is_reply, &mut |netns, ip| {
                namespaces.owns(netns, ip)
            })
    }

    /// Applies records found another way (listeners open before the probe
    /// was attached), with their processes' namespaces.
    pub fn apply_existing(&mut self, events: &[ProcessEvent]) {
        for event in events {
            let netns = self.namespaces.learn_pid(event.tgid);
            self.table.apply(event, netns);
        }
    }

    /// Wraps the feed for sharing and starts draining it every
    /// [`DRAIN_INTERVAL`]; the task ends when the last other holder drops it.
    /// Must be called within a tokio runtime.
    pub fn share(self) -> SharedFeed {
        let shared = Arc::new(Mutex::new(self));
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DRAIN_INTERVAL).await;
                let Some(feed) = weak.upgrade() else { break };
                let Ok(mut feed) = feed.lock() else { break };
                feed.drain();
            }
        });
        shared
    }
}
