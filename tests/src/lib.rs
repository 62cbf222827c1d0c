//! Shared helpers for holonet's end-to-end tests.
//!
//! These tests need root: they create network namespaces and load BPF
//! programs into the running kernel. [`privileged`] decides whether a test
//! may run and makes sure a skip is never silent: outside CI a test that
//! cannot run says so loudly on stderr; under `CI=true` a missing privilege
//! fails the test.

use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use holonet_agent::{
    clock::MonotonicClock,
    events::EventReader,
    flow::Flow,
    loader::{TcMode, TcProbe},
};
use probe_common::event::FlowEvent;

/// Returns true if this process may run privileged tests. Under `CI=true`
/// a missing privilege panics instead of skipping.
pub fn privileged(test: &str) -> bool {
    let why = if holonet_lab::is_root() {
        return true;
    } else {
        "it needs root to create network namespaces and load BPF programs"
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    eprintln!(
        "\n*** SKIPPED {test}: {why}. Run the test suite as root (scripts/test does) to exercise it. ***\n"
    );
    false
}

/// A loaded probe plus a background task collecting its events.
pub struct ProbeHarness {
    /// The probe (kept alive so its programs stay attached).
    pub probe: TcProbe,
    events: tokio::sync::mpsc::UnboundedReceiver<FlowEvent>,
    collected: Vec<FlowEvent>,
    clock: MonotonicClock,
}

impl std::fmt::Debug for ProbeHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeHarness")
            .field("collected", &self.collected.len())
            .finish_non_exhaustive()
    }
}

impl ProbeHarness {
    /// Loads the probe in `mode`, attaches it to `ifaces` and starts reading.
    /// Must run inside a tokio runtime.
    pub fn start(mode: TcMode, ifaces: &[&str]) -> Self {
        let mut probe = TcProbe::load(mode).unwrap_or_else(|e| panic!("loading the probe: {e}"));
        for iface in ifaces {
            probe
                .attach(iface)
                .unwrap_or_else(|e| panic!("attaching to {iface}: {e}"));
        }
        let mut reader = EventReader::new(probe.take_events().expect("EVENTS map"))
            .expect("registering the ring buffer");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                batch.clear();
                if reader.read_batch(&mut batch, 256).await.is_err() {
                    return;
                }
                for e in batch.drain(..) {
                    if tx.send(e).is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            probe,
            events: rx,
            collected: Vec::new(),
            clock: MonotonicClock::measure(),
        }
    }

    /// Collects events until `done` holds for the events between `a` and `b`
    /// (either direction), then keeps listening for `settle` to catch any
    /// extra event, and returns them all as flows. Panics after `timeout`.
    pub async fn flows_between(
        &mut self,
        a: IpAddr,
        b: IpAddr,
        done: impl Fn(&[Flow]) -> bool,
        timeout: Duration,
        settle: Duration,
    ) -> Vec<Flow> {
        let deadline = Instant::now() + timeout;
        loop {
            let flows = self.matching(a, b);
            if done(&flows) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {timeout:?} waiting for flows between {a} and {b}; got:\n{}",
                render(&flows)
            );
            if let Ok(Some(event)) = tokio::time::timeout(left, self.events.recv()).await {
                self.collected.push(event);
            }
        }
        let settle_until = Instant::now() + settle;
        while let Ok(Some(event)) = tokio::time::timeout(
            settle_until.saturating_duration_since(Instant::now()),
            self.events.recv(),
        )
        .await
        {
            self.collected.push(event);
        }
        self.matching(a, b)
    }

    fn matching(&self, a: IpAddr, b: IpAddr) -> Vec<Flow> {
        let names: HashMap<u32, String> = self.probe.interfaces().clone();
        self.collected
            .iter()
            .map(|e| Flow::from_event(e, &self.clock, &names))
            .filter(|f| {
                let (s, d) = (f.source.ip(), f.destination.ip());
                (s == a && d == b) || (s == b && d == a)
            })
            .collect()
    }
}

/// Flows as text, one per line, for assertion messages.
pub fn render(flows: &[Flow]) -> String {
    flows.iter().map(|f| format!("  {f}\n")).collect::<String>()
}
