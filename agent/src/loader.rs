//! Loading the TC probe into the kernel and attaching it to interfaces.
//!
//! The probe object is built by `build.rs` and embedded in the binary, so a
//! `holonet` binary always carries the probe it was built with. Loading runs
//! the verifier on both classifiers; attaching uses tcx links where the
//! kernel has them (6.6+) and the `clsact` qdisc with a netlink filter
//! otherwise. Errors name the program, the hook and, for verifier
//! rejections, the tail of the verifier log.

use std::{
    collections::HashMap,
    fmt, fs,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as AyaHashMap, MapData, PerCpuArray, RingBuf},
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType,
        links::{FdLink, PinnedLink},
        tc::{self, NlOptions, TcAttachOptions},
    },
    util::KernelVersion,
};
use probe_common::{event::counter, names};

/// The TC probe object, as built for this agent.
static TC_PROBE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/holonet-tc"));

/// Verifier log lines kept in a load error: the end is where the verifier
/// says what it rejected.
const VERIFIER_LOG_TAIL_LINES: usize = 20;

/// How the classifiers are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TcMode {
    /// tcx where the kernel has it (6.6 and later), clsact otherwise.
    #[default]
    Auto,
    /// tcx links (`BPF_TCX_INGRESS`/`BPF_TCX_EGRESS`).
    Tcx,
    /// A `clsact` qdisc with direct-action `cls_bpf` filters (netlink).
    Clsact,
}

impl TcMode {
    /// The mode `Auto` picks on this kernel, with the reason.
    pub fn resolve(self) -> (Self, &'static str) {
        match self {
            Self::Auto => {
                if KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0)) {
                    (Self::Tcx, "kernel 6.6 or later has tcx links")
                } else {
                    (
                        Self::Clsact,
                        "kernel older than 6.6 has no tcx links; using the clsact qdisc",
                    )
                }
            }
            Self::Tcx => (Self::Tcx, "requested with --tc-mode tcx"),
            Self::Clsact => (Self::Clsact, "requested with --tc-mode clsact"),
        }
    }
}

impl fmt::Display for TcMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
        })
    }
}

/// Loading or attaching the probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The embedded object could not be parsed, or its maps not created.
    #[error("loading the probe object `{object}` failed: {source}")]
    Object {
        /// Object name.
        object: &'static str,
        /// The loader's error.
        #[source]
        source: Box<aya::EbpfError>,
    },
    /// A program expected in the object is not there.
    #[error("program `{program}` is missing from the probe object `{object}`")]
    MissingProgram {
        /// Object name.
        object: &'static str,
        /// Program name.
        program: &'static str,
    },
    /// A map expected in the object is not there or has the wrong type.
    #[error("map `{map}` is missing from the probe object or has an unexpected type")]
    MissingMap {
        /// Map name.
        map: &'static str,
    },
    /// The kernel refused the program (usually the verifier).
    #[error(
        "the kernel rejected program `{program}` for {hook}: {reason}\n--- verifier log (last {VERIFIER_LOG_TAIL_LINES} lines) ---\n{log_tail}"
    )]
    Verifier {
        /// Program name.
        program: &'static str,
        /// The hook it was meant for.
        hook: &'static str,
        /// The syscall's error.
        reason: std::io::Error,
        /// The end of the verifier log.
        log_tail: String,
    },
    /// Loading failed for another reason.
    #[error("loading program `{program}` for {hook} failed: {source}")]
    Load {
        /// Program name.
        program: &'static str,
        /// The hook it was meant for.
        hook: &'static str,
        /// The loader's error.
        #[source]
        source: Box<ProgramError>,
    },
    /// The interface does not exist.
    #[error("network interface `{iface}` does not exist ({source})")]
    NoSuchInterface {
        /// Interface name.
        iface: String,
        /// Why its index could not be read.
        #[source]
        source: std::io::Error,
    },
    /// Pinning failed.
    #[error(transparent)]
    Pin(PinError),
    /// Attaching a loaded program failed.
    #[error("attaching program `{program}` to {iface} {hook} ({mode}) failed: {source}")]
    Attach {
        /// Program name.
        program: &'static str,
        /// Interface name.
        iface: String,
        /// The hook.
        hook: &'static str,
        /// tcx or clsact.
        mode: TcMode,
        /// The loader's error.
        #[source]
        source: Box<ProgramError>,
    },
    /// Recording an attached interface in the probe's `ATTACHED` map failed.
    #[error("recording {iface} in the probe's `{map}` map failed: {source}")]
    MapWrite {
        /// Interface name.
        iface: String,
        /// Map name.
        map: &'static str,
        /// The map's error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
}

pub use crate::datapath::load::PolicyLoadError;

/// Pinning the probe, or finding what an earlier agent pinned, failed.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}", path.display())]
pub struct PinError {
    /// What was being done.
    pub what: &'static str,
    /// The bpffs path involved.
    pub path: PathBuf,
    /// Why it failed.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl PinError {
    fn new(
        what: &'static str,
        path: &Path,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            what,
            path: path.to_path_buf(),
            source: source.into(),
        }
    }
}

/// Where a persistent probe lives in bpffs: `root/<abi>/maps/<MAP>` and
/// `root/<abi>/links/<ifindex>_<hook>_<agent>` (bpffs refuses dots in names),
/// where `<abi>` names the probe
/// object (a new build gets fresh maps, never ones laid out differently).
#[derive(Debug)]
struct Pins {
    root: PathBuf,
    dir: PathBuf,
    /// This agent's suffix for link pins.
    owner: String,
    /// Links of an earlier agent on the interfaces this one attached to,
    /// detached by [`TcProbe::retire_replaced`].
    replaced: Vec<PathBuf>,
}

/// Where bpffs is mounted by convention.
const BPFFS: &str = "/sys/fs/bpf";

/// Mounts bpffs at /sys/fs/bpf when `root` lies there and nothing is
/// mounted yet (as Cilium's agent does); pins elsewhere must already be on
/// a bpffs.
fn ensure_bpffs(root: &Path) -> Result<(), PinError> {
    if !root.starts_with(BPFFS) {
        return Ok(());
    }
    let mounts = fs::read_to_string("/proc/self/mounts")
        .map_err(|e| PinError::new("reading", Path::new("/proc/self/mounts"), e))?;
    let mounted = mounts.lines().any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(_), Some(point), Some(kind)) = (fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        kind == "bpf" && point == BPFFS
    });
    if mounted {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf", BPFFS])
        .status()
        .map_err(|e| PinError::new("running mount -t bpf for", Path::new(BPFFS), e))?;
    if !status.success() {
        return Err(PinError::new(
            "mounting bpffs at",
            Path::new(BPFFS),
            format!("mount -t bpf exited with {status}"),
        ));
    }
    log::info!("mounted bpffs at {BPFFS}");
    Ok(())
}

/// A short, stable name for the probe object's layout (FNV-1a of its bytes).
fn probe_abi() -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in TC_PROBE_OBJECT {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Short hook names used in link pin names.
fn hook_pin_name(attach_type: TcAttachType) -> &'static str {
    match attach_type {
        TcAttachType::Ingress => "ingress",
        TcAttachType::Egress => "egress",
        TcAttachType::Custom(_) => "custom",
    }
}

/// Detaches and removes everything pinned under `root` by any agent (every
/// probe build). Returns the number of links detached.
pub fn remove_pinned(root: &Path) -> Result<usize, PinError> {
    let mut detached = 0;
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(PinError::new("reading", root, e)),
    };
    for abi in entries.filter_map(Result::ok) {
        let links = abi.path().join("links");
        for link in fs::read_dir(&links)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            let path = link.path();
            match PinnedLink::from_pin(&path) {
                Ok(pinned) => {
                    let link = pinned
                        .unpin()
                        .map_err(|e| PinError::new("unpinning link", &path, e))?;
                    drop(link);
                    detached += 1;
                }
                Err(e) => {
                    log::warn!("{}: not a pinned link ({e}); removing it", path.display());
                    let _ = fs::remove_file(&path);
                }
            }
        }
        let maps = abi.path().join("maps");
        for map in fs::read_dir(&maps)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            fs::remove_file(map.path())
                .map_err(|e| PinError::new("removing pinned map", &map.path(), e))?;
        }
        for dir in [&links, &maps, &abi.path()] {
            let _ = fs::remove_dir(dir);
        }
    }
    fs::remove_dir(root).map_err(|e| PinError::new("removing", root, e))?;
    Ok(detached)
}

/// The two classifiers and where each goes.
const PROGRAMS: [(&str, TcAttachType, &str); 2] = [
    (
        names::TC_INGRESS_PROGRAM,
        TcAttachType::Ingress,
        "tc ingress (pod egress)",
    ),
    (
        names::TC_EGRESS_PROGRAM,
        TcAttachType::Egress,
        "tc egress (pod ingress)",
    ),
];

/// Counters the probe keeps per CPU, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCounters {
    /// Packets the probe looked at.
    pub packets: u64,
    /// Events written to the ring buffer.
    pub events_sent: u64,
    /// Events lost because the ring buffer was full.
    pub events_lost: u64,
    /// Packets whose headers could not be parsed.
    pub parse_errors: u64,
    /// Segments dropped on L7-enforced connections because no request line
    /// could be read from them (fail closed).
    pub l7_unparsable: u64,
    /// HTTP requests denied by L7 rules.
    pub l7_denied: u64,
    /// HTTP requests checked against L7 rules and allowed.
    pub l7_allowed: u64,
    /// IP fragments dropped on enforcing endpoints.
    pub fragments_dropped: u64,
    /// Repeated drops of one stream not reported as events (one event per
    /// stream every 5 s).
    pub drops_aggregated: u64,
    /// Forwarded packets left to the receiving interface to report (each
    /// packet between two attached interfaces is one event).
    pub events_deferred: u64,
}

/// The loaded TC probe. Dropping it detaches every program it attached,
/// unless it was loaded with [`TcProbe::load_pinned`].
pub struct TcProbe {
    ebpf: Ebpf,
    mode: TcMode,
    mode_reason: &'static str,
    interfaces: HashMap<u32, String>,
    pins: Option<Pins>,
}

impl fmt::Debug for TcProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcProbe")
            .field("mode", &self.mode)
            .field("interfaces", &self.interfaces)
            .finish_non_exhaustive()
    }
}

/// aya-log's level codes (see `aya_log_common::Level`).
fn probe_log_level() -> u8 {
    match log::max_level() {
        log::LevelFilter::Off => 0,
        log::LevelFilter::Error => 1,
        log::LevelFilter::Warn => 2,
        log::LevelFilter::Info => 3,
        log::LevelFilter::Debug => 4,
        log::LevelFilter::Trace => 5,
    }
}

impl TcProbe {
    /// Loads the probe object and both classifiers into the kernel.
    pub fn load(mode: TcMode) -> Result<Self, ProbeError> {
        Self::load_with(mode, None)
    }

    /// Loads the probe so that it outlives this process: its maps are pinned
    /// under `root` (reused when an earlier agent with the same probe build
    /// pinned them: connection tracking and policies carry over), and
    /// [`TcProbe::attach`] pins its tcx links there and takes over from the
    /// links an earlier agent left on the same interfaces. Needs tcx.
    pub fn load_pinned(mode: TcMode, root: &Path) -> Result<Self, ProbeError> {
        if mode.resolve().0 != TcMode::Tcx {
            return Err(ProbeError::Pin(PinError::new(
                "pinning needs tcx links (kernel 6.6 or later); the clsact mode cannot be pinned:",
                root,
                "use --no-pin",
            )));
        }
        ensure_bpffs(root).map_err(ProbeError::Pin)?;
        let dir = root.join(probe_abi());
        for sub in ["maps", "links"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path)
                .map_err(|e| ProbeError::Pin(PinError::new("creating", &path, e)))?;
        }
        let owner = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        Self::load_with(
            mode,
            Some(Pins {
                root: root.to_path_buf(),
                dir,
                owner,
                replaced: Vec::new(),
            }),
        )
    }

    fn load_with(mode: TcMode, pins: Option<Pins>) -> Result<Self, ProbeError> {
        let (mode, mode_reason) = mode.resolve();
        let level = probe_log_level();
        let mut loader = EbpfLoader::new();
        loader.override_global("AYA_LOG_LEVEL", &level, false);
        if let Some(pins) = &pins {
            for name in names::DATAPATH_MAPS {
                loader.map_pin_path(name, pins.dir.join("maps").join(name));
            }
        }
        let mut ebpf = loader
            .load(TC_PROBE_OBJECT)
            .map_err(|source| ProbeError::Object {
                object: names::TC_OBJECT,
                source: Box::new(source),
            })?;
        for (program, _, hook) in PROGRAMS {
            load_classifier(&mut ebpf, program, hook)?;
        }
        // The L7 halves are separate programs (the verifier checks each on
        // its own), entered by tail call; without them L7-enforced flows
        // fail closed.
        for (program, slot, hook) in [
            (
                names::TC_L7_PROGRAM,
                names::L7_JUMP_HTTP,
                "tc (HTTP checks, tail call)",
            ),
            (
                names::TC_DNS_PROGRAM,
                names::L7_JUMP_DNS,
                "tc (DNS checks, tail call)",
            ),
        ] {
            let fd = load_classifier(&mut ebpf, program, hook)?
                .fd()
                .map_err(|source| ProbeError::Load {
                    program,
                    hook,
                    source: Box::new(source),
                })?
                .try_clone()
                .map_err(|e| ProbeError::Load {
                    program,
                    hook,
                    source: Box::new(ProgramError::IOError(e)),
                })?;
            let map = names::L7_JUMP_MAP;
            let mut jump = aya::maps::ProgramArray::try_from(
                ebpf.map_mut(map).ok_or(ProbeError::MissingMap { map })?,
            )
            .map_err(|_| ProbeError::MissingMap { map })?;
            jump.set(slot, &fd, 0)
                .map_err(|_| ProbeError::MissingMap { map })?;
        }
        Ok(Self {
            ebpf,
            mode,
            mode_reason,
            interfaces: HashMap::new(),
            pins,
        })
    }

    /// Where this probe is pinned, if it is.
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pins.as_ref().map(|p| p.dir.as_path())
    }

    /// Detaches the links an earlier agent left on the interfaces this one
    /// attached to. Call it once this probe's maps hold the policies, so
    /// enforcement has no gap while one agent takes over from another.
    /// Returns how many links were detached.
    pub fn retire_replaced(&mut self) -> Result<usize, ProbeError> {
        let Some(pins) = &mut self.pins else {
            return Ok(0);
        };
        let mut retired = 0;
        for path in pins.replaced.drain(..) {
            let pinned = match PinnedLink::from_pin(&path) {
                Ok(pinned) => pinned,
                Err(e) => {
                    log::warn!("{}: not a pinned link any more ({e})", path.display());
                    continue;
                }
            };
            let link = pinned
                .unpin()
                .map_err(|e| ProbeError::Pin(PinError::new("unpinning link", &path, e)))?;
            drop(link);
            retired += 1;
        }
        // Directories of other probe builds whose links are all gone hold
        // only maps nobody uses any more.
        for abi in fs::read_dir(&pins.root)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            let path = abi.path();
            if path == pins.dir {
                continue;
            }
            let links_left = fs::read_dir(path.join("links"))
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if !links_left {
                for map in fs::read_dir(path.join("maps"))
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                {
                    let _ = fs::remove_file(map.path());
                }
                let _ = fs::remove_dir(path.join("maps"));
                let _ = fs::remove_dir(path.join("links"));
                let _ = fs::remove_dir(&path);
            }
        }
        Ok(retired)
    }

    /// How the classifiers are attached, and why.
    pub fn mode(&self) -> (TcMode, &'static str) {
        (self.mode, self.mode_reason)
    }

    /// Interfaces attached so far, by ifindex.
    pub fn interfaces(&self) -> &HashMap<u32, String> {
        &self.interfaces
    }

    /// Attaches both classifiers to `iface` (ingress and egress).
    pub fn attach(&mut self, iface: &str) -> Result<u32, ProbeError> {
        let ifindex = ifindex(iface)?;
        if self.mode == TcMode::Clsact {
            // An existing clsact qdisc is fine; a real failure shows up as an
            // attach error below, with the interface and hook named.
            if let Err(err) = tc::qdisc_add_clsact(iface) {
                log::debug!("adding clsact to {iface}: {err} (may already exist)");
            }
        }
        for (program, attach_type, hook) in PROGRAMS {
            let options = match self.mode {
                TcMode::Clsact => TcAttachOptions::Netlink(NlOptions::default()),
                TcMode::Tcx | TcMode::Auto => TcAttachOptions::TcxOrder(LinkOrder::default()),
            };
            let mode = self.mode;
            let attach_err = |source| ProbeError::Attach {
                program,
                iface: iface.to_string(),
                hook,
                mode,
                source: Box::new(source),
            };
            let classifier = classifier(&mut self.ebpf, program)?;
            let link_id = classifier
                .attach_with_options(iface, attach_type, options)
                .map_err(attach_err)?;
            if let Some(pins) = &mut self.pins {
                let prefix = format!("{ifindex}_{}_", hook_pin_name(attach_type));
                // Links an earlier agent pinned for this interface and hook
                // (any probe build): retired once this probe enforces.
                for abi in fs::read_dir(&pins.root)
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                {
                    for link in fs::read_dir(abi.path().join("links"))
                        .into_iter()
                        .flatten()
                        .filter_map(Result::ok)
                    {
                        if link.file_name().to_string_lossy().starts_with(&prefix) {
                            pins.replaced.push(link.path());
                        }
                    }
                }
                let link = classifier.take_link(link_id).map_err(attach_err)?;
                let path = pins
                    .dir
                    .join("links")
                    .join(format!("{prefix}{}", pins.owner));
                let fd_link = FdLink::try_from(link).map_err(|e| {
                    ProbeError::Pin(PinError::new("pinning the tcx link at", &path, e))
                })?;
                // The pin keeps the link attached after this process ends.
                fd_link.pin(&path).map_err(|e| {
                    ProbeError::Pin(PinError::new("pinning the tcx link at", &path, e))
                })?;
            }
        }
        // From now on a packet routed here from another attached interface
        // is reported here only (the probe's `route` module).
        let map = names::ATTACHED_MAP;
        let mut attached: AyaHashMap<_, u32, u8> = self
            .ebpf
            .map_mut(map)
            .ok_or(ProbeError::MissingMap { map })
            .and_then(|m| AyaHashMap::try_from(m).map_err(|_| ProbeError::MissingMap { map }))?;
        attached
            .insert(ifindex, 1, 0)
            .map_err(|source| ProbeError::MapWrite {
                iface: iface.to_string(),
                map,
                source: Box::new(source),
            })?;
        self.interfaces.insert(ifindex, iface.to_string());
        Ok(ifindex)
    }

    /// Takes the `EVENTS` ring buffer out of the probe (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        let map = self
            .ebpf
            .take_map(names::EVENTS_MAP)
            .ok_or(ProbeError::MissingMap {
                map: names::EVENTS_MAP,
            })?;
        RingBuf::try_from(map).map_err(|_| ProbeError::MissingMap {
            map: names::EVENTS_MAP,
        })
    }

    /// Starts forwarding the probe's aya-log messages to the `log` crate.
    /// Must be called within a tokio runtime; a probe without log statements
    /// is not an error.
    pub fn forward_probe_logs(&mut self) {
        match aya_log::EbpfLogger::init(&mut self.ebpf) {
            // SAFETY: the logger owns its ring buffer's file descriptor for
            // its whole lifetime and always returns that same descriptor.
            Ok(logger) => match unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(
                    logger,
                    tokio::io::Interest::READABLE,
                )
            } {
                Ok(mut fd) => {
                    tokio::spawn(async move {
                        loop {
                            let Ok(mut guard) = fd.readable_mut().await else {
                                break;
                            };
                            guard.get_inner_mut().flush();
                            guard.clear_ready();
                        }
                    });
                }
                Err(err) => log::warn!("cannot poll the probe's log buffer: {err}"),
            },
            Err(err) => log::debug!("probe logging not available: {err}"),
        }
    }

    /// Replaces the contents of the enforcement maps with `compiled`.
    /// `ifindex_of` names the interface of each local endpoint; endpoints
    /// without one are skipped (and returned, so the caller can say so).
    /// Entries are written before stale ones are removed, so no connection
    /// sees a gap in its policy.
    pub fn load_policy(
        &mut self,
        compiled: &crate::datapath::compile::CompiledDatapath,
        ifindex_of: impl Fn(&crate::datapath::compile::EndpointRecord) -> Option<u32>,
    ) -> Result<Vec<String>, PolicyLoadError> {
        crate::datapath::load::apply(&mut self.ebpf, compiled, ifindex_of)
    }

    /// Enforces a loaded configuration on the endpoints this probe can see:
    /// each local endpoint is bound to the attached interface the host
    /// routes its address through. Returns the endpoints left unenforced
    /// because no attached interface leads to them.
    pub fn apply_config(
        &mut self,
        config: &crate::datapath::config::Config,
    ) -> Result<Vec<String>, PolicyLoadError> {
        let attached: HashMap<String, u32> = self
            .interfaces
            .iter()
            .map(|(ifindex, name)| (name.clone(), *ifindex))
            .collect();
        self.load_policy(&config.compiled, |ep| {
            crate::datapath::config::route_interface(ep.ip)
                .and_then(|iface| attached.get(&iface).copied())
        })
    }

    /// Reads and sums the probe's per-CPU counters.
    pub fn counters(&self) -> Result<ProbeCounters, ProbeError> {
        let missing = ProbeError::MissingMap {
            map: names::COUNTERS_MAP,
        };
        let map = self.ebpf.map(names::COUNTERS_MAP).ok_or(missing)?;
        let array = PerCpuArray::<_, u64>::try_from(map).map_err(|_| ProbeError::MissingMap {
            map: names::COUNTERS_MAP,
        })?;
        let sum = |slot: u32| sum_per_cpu(&array, slot);
        Ok(ProbeCounters {
            packets: sum(counter::PACKETS),
            events_sent: sum(counter::EVENTS_SENT),
            events_lost: sum(counter::EVENTS_LOST),
            parse_errors: sum(counter::PARSE_ERRORS),
            l7_unparsable: sum(counter::L7_UNPARSABLE),
            l7_denied: sum(counter::L7_DENIED),
            l7_allowed: sum(counter::L7_ALLOWED),
            fragments_dropped: sum(counter::FRAGMENTS_DROPPED),
            drops_aggregated: sum(counter::DROPS_AGGREGATED),
            events_deferred: sum(counter::EVENTS_DEFERRED),
        })
    }
}

/// A per-CPU counter slot summed over the CPUs (0 when unreadable).
pub(crate) fn sum_per_cpu<T: std::borrow::Borrow<MapData>>(
    array: &PerCpuArray<T, u64>,
    slot: u32,
) -> u64 {
    array
        .get(&slot, 0)
        .map(|values| values.iter().sum())
        .unwrap_or(0)
}

/// Loads one classifier into the kernel; a verifier rejection keeps the
/// tail of the verifier log.
fn load_classifier<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
    hook: &'static str,
) -> Result<&'a mut SchedClassifier, ProbeError> {
    let classifier = classifier(ebpf, program)?;
    classifier.load().map_err(|err| match err {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => ProbeError::Verifier {
            program,
            hook,
            reason: io_error,
            log_tail: tail(&verifier_log.to_string(), VERIFIER_LOG_TAIL_LINES),
        },
        source => ProbeError::Load {
            program,
            hook,
            source: Box::new(source),
        },
    })?;
    Ok(classifier)
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    program: &'static str,
) -> Result<&'a mut SchedClassifier, ProbeError> {
    ebpf.program_mut(program)
        .and_then(|p| p.try_into().ok())
        .ok_or(ProbeError::MissingProgram {
            object: names::TC_OBJECT,
            program,
        })
}

fn ifindex(iface: &str) -> Result<u32, ProbeError> {
    let path = format!("/sys/class/net/{iface}/ifindex");
    let text = fs::read_to_string(&path).map_err(|source| ProbeError::NoSuchInterface {
        iface: iface.to_string(),
        source,
    })?;
    text.trim()
        .parse()
        .map_err(|_| ProbeError::NoSuchInterface {
            iface: iface.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{path} holds `{}`", text.trim()),
            ),
        })
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\nd\n", 2), "c\nd");
        assert_eq!(tail("a\nb", 5), "a\nb");
        assert_eq!(tail("", 3), "");
    }

    #[test]
    fn verifier_errors_name_program_hook_and_log_tail() {
        let log: String = (1..=30).map(|i| format!("insn {i}\n")).collect();
        let err = ProbeError::Verifier {
            program: names::TC_INGRESS_PROGRAM,
            hook: "tc ingress (pod egress)",
            reason: std::io::Error::from_raw_os_error(13),
            log_tail: tail(&log, VERIFIER_LOG_TAIL_LINES),
        };
        let text = err.to_string();
        assert!(text.contains("`holonet_tc_ingress`"), "{text}");
        assert!(text.contains("tc ingress (pod egress)"), "{text}");
        assert!(text.contains("insn 30"), "{text}");
        assert!(text.contains("insn 11"), "{text}");
        assert!(!text.contains("insn 10\n"), "only the tail is kept: {text}");
    }

    #[test]
    fn forced_modes_resolve_to_themselves() {
        assert_eq!(TcMode::Tcx.resolve().0, TcMode::Tcx);
        assert_eq!(TcMode::Clsact.resolve().0, TcMode::Clsact);
        assert_ne!(TcMode::Auto.resolve().0, TcMode::Auto);
    }

    #[test]
    fn unknown_interface_is_named_in_the_error() {
        let err = ifindex("no-such-if0").unwrap_err();
        assert!(
            err.to_string().contains("`no-such-if0` does not exist"),
            "{err}"
        );
    }

    #[test]
    fn embedded_object_contains_both_programs() {
        // Parsing the ELF needs no privileges: the object must define both
        // classifiers and the maps the agent reads.
        let obj = aya_obj_names(TC_PROBE_OBJECT);
        for name in [
            names::TC_INGRESS_PROGRAM,
            names::TC_EGRESS_PROGRAM,
            names::EVENTS_MAP,
            names::COUNTERS_MAP,
        ] {
            assert!(obj.iter().any(|n| n == name), "{name} missing from {obj:?}");
        }
    }

    /// Symbol names in the ELF object, found by scanning for NUL-terminated
    /// strings (enough to check presence without a second ELF parser).
    fn aya_obj_names(bytes: &[u8]) -> Vec<String> {
        bytes
            .split(|b| *b == 0)
            .filter_map(|s| std::str::from_utf8(s).ok())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}
