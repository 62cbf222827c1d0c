//! Process attribution: which process sent or received each TCP flow.
//!
//! The socket probe (`probe-ebpf/src/proc.rs`) reports sockets from the
//! context of the process that owns them: connects, listeners and reads.
//! [`btf`] finds the kernel structure offsets it needs, [`probe`] loads and
//! attaches it (kprobes where the kernel has them, raw tracepoints
//! otherwise), [`scan`] finds the listeners open before it was, and
//! [`feed`] drains its records into a [`table::ProcessTable`], which the
//! flow pipeline asks for each flow's two ends.

pub mod btf;
pub mod feed;
pub mod netns;
pub mod probe;
pub mod scan;
pub mod table;

pub use feed::{ProcessFeed, SharedFeed};
pub use probe::{ProcessHook, SocketProbe, SocketProbeError};
pub use table::{ProcessInfo, ProcessTable};

/// Process attribution as an agent started it: the probe and its feed while
/// it runs, and the sentence `holonet status` shows either way.
#[derive(Debug)]
pub struct ProcessAttribution {
    /// The attached socket probe (dropping it detaches it).
    pub probe: Option<SocketProbe>,
    /// What the pipeline asks for each flow.
    pub feed: Option<SharedFeed>,
    /// Which hooks are in use and why, or why attribution is off.
    pub detail: String,
}

impl ProcessAttribution {
    /// Whether flows get processes.
    pub fn active(&self) -> bool {
        self.feed.is_some()
    }
}

/// Starts process attribution with `hook` (resolving `Auto` on this
/// kernel). A failure is not fatal: it is logged and described in
/// [`ProcessAttribution::detail`]. Must be called within a tokio runtime.
pub fn start(hook: ProcessHook) -> ProcessAttribution {
    let (hook, why) = hook.resolve();
    let off = |detail: String| ProcessAttribution {
        probe: None,
        feed: None,
        detail,
    };
    if hook == ProcessHook::Off {
        return off(format!("off: {why}"));
    }
    let hooks = hook.hooks();
    let started = SocketProbe::load(hook).and_then(|mut probe| {
        let ring = probe.take_events()?;
        Ok((probe, ring))
    });
    match started {
        Ok((probe, ring)) => {
            // Listeners opened before the probe was attached; later ones,
            // and closes of these, arrive through the ring and are applied
            // after them.
            let existing = scan::existing_listeners(std::path::Path::new("/proc"));
            let mut feed = ProcessFeed::with_table(ring, ProcessTable::default());
            feed.apply_existing(&existing);
            ProcessAttribution {
                probe: Some(probe),
                feed: Some(feed.share()),
                detail: format!(
                    "{hooks} ({why}); TCP flows only; {} listeners already open were found in /proc",
                    existing.len()
                ),
            }
        }
        Err(err) => {
            log::warn!("process attribution is off: {err}");
            off(format!("failed: {hooks} could not be used ({why}): {err}"))
        }
    }
}
