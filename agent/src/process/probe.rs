//! Loading the socket probe and attaching it with kprobes or, where the
//! kernel has none, raw tracepoints.
//!
//! Unlike the TC probe, nothing here enforces anything: if it cannot load,
//! flows simply carry no process, and the agent says why. Its links are not
//! pinned; a restarted agent attaches it anew.

use std::fmt;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{KProbe, ProgramError, RawTracePoint},
};
use probe_common::{names, process::proc_counter};

use super::btf::{Btf, BtfError};
use crate::capabilities::{self, Hook};

/// The socket probe object, as built for this agent.
static PROC_PROBE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/holonet-proc"));

/// Which hooks attribute flows to processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessHook {
    /// kprobes where the kernel has them, raw tracepoints otherwise.
    Auto,
    /// kprobes on `tcp_connect`, `inet_csk_listen_start`/`_stop` and
    /// `tcp_rcv_space_adjust`.
    Kprobe,
    /// Raw tracepoints `inet_sock_set_state`, `net_dev_queue` and
    /// `tcp_rcv_space_adjust`.
    Tracepoint,
    /// No process attribution.
    Off,
}

impl fmt::Display for ProcessHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Kprobe => "kprobe",
            Self::Tracepoint => "tracepoint",
            Self::Off => "off",
        })
    }
}

impl ProcessHook {
    /// The hooks this choice attaches, as `holonet status` names them
    /// (empty for `Auto` and `Off`).
    pub fn hooks(self) -> String {
        let (kind, list) = match self {
            Self::Kprobe => ("kprobes on", names::PROC_KPROBES),
            Self::Tracepoint => ("raw tracepoints", names::PROC_RAW_TRACEPOINTS),
            Self::Auto | Self::Off => return String::new(),
        };
        let targets: Vec<&str> = list.iter().map(|&(_, target)| target).collect();
        match targets.split_last() {
            Some((last, [])) => format!("{kind} {last}"),
            Some((last, rest)) => format!("{kind} {} and {last}", rest.join(", ")),
            None => kind.to_string(),
        }
    }

    /// The hook `Auto` stands for on this kernel, and why; other values
    /// resolve to themselves.
    pub fn resolve(self) -> (Self, String) {
        match self {
            Self::Auto => {
                if capabilities::probe(Hook::Kprobe).available {
                    (Self::Kprobe, "kprobes are available".to_string())
                } else {
                    (
                        Self::Tracepoint,
                        "this kernel has no kprobes (see holonet status); raw tracepoints stand in"
                            .to_string(),
                    )
                }
            }
            Self::Kprobe => (Self::Kprobe, "asked for with --process-hook kprobe".into()),
            Self::Tracepoint => (
                Self::Tracepoint,
                "asked for with --process-hook tracepoint".into(),
            ),
            Self::Off => (Self::Off, "turned off with --process-hook off".into()),
        }
    }
}

/// Why the socket probe is not running.
#[derive(Debug, thiserror::Error)]
pub enum SocketProbeError {
    /// The kernel structure layout could not be learned.
    #[error("the kernel's socket layout is unknown: {0}")]
    Btf(#[from] BtfError),
    /// The embedded object could not be loaded.
    #[error("loading the socket probe failed: {0}")]
    Object(#[source] Box<aya::EbpfError>),
    /// A program or map is missing from the object.
    #[error("`{0}` is missing from the socket probe object")]
    Missing(&'static str),
    /// The kernel refused a program or its attachment.
    #[error("{what} `{program}` on {target} failed: {source}")]
    Program {
        /// "loading" or "attaching".
        what: &'static str,
        /// Program name.
        program: &'static str,
        /// Kernel function or tracepoint.
        target: &'static str,
        /// The loader's error.
        #[source]
        source: Box<ProgramError>,
    },
    /// A map operation failed.
    #[error("{what}: {source}")]
    Map {
        /// What was being done.
        what: &'static str,
        /// The map error.
        #[source]
        source: Box<aya::maps::MapError>,
    },
}

/// Counters of the socket probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketProbeCounters {
    /// Records handed to the agent.
    pub sent: u64,
    /// Records lost to a full ring.
    pub lost: u64,
    /// Sockets whose fields could not be read.
    pub read_failed: u64,
}

/// The loaded and attached socket probe.
pub struct SocketProbe {
    ebpf: Ebpf,
    hook: ProcessHook,
}

impl fmt::Debug for SocketProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocketProbe")
            .field("hook", &self.hook)
            .finish_non_exhaustive()
    }
}

impl SocketProbe {
    /// Loads the probe, tells it the kernel's socket layout and attaches it
    /// with `hook` (`Kprobe` or `Tracepoint`; `Auto` and `Off` must have
    /// been resolved by the caller).
    pub fn load(hook: ProcessHook) -> Result<Self, SocketProbeError> {
        let layout = Btf::from_kernel()?.sock_layout()?;
        let mut ebpf = EbpfLoader::new()
            .load(PROC_PROBE_OBJECT)
            .map_err(|e| SocketProbeError::Object(Box::new(e)))?;
        {
            let map = ebpf
                .map_mut(names::SOCK_LAYOUT_MAP)
                .ok_or(SocketProbeError::Missing(names::SOCK_LAYOUT_MAP))?;
            let mut array = Array::<_, probe_common::process::SockLayout>::try_from(map)
                .map_err(|_| SocketProbeError::Missing(names::SOCK_LAYOUT_MAP))?;
            array
                .set(0, layout, 0)
                .map_err(|source| SocketProbeError::Map {
                    what: "storing the socket layout",
                    source: Box::new(source),
                })?;
        }
        let program_error = |what, program, target| {
            move |source| SocketProbeError::Program {
                what,
                program,
                target,
                source: Box::new(source),
            }
        };
        match hook {
            ProcessHook::Kprobe => {
                for &(program, function) in names::PROC_KPROBES {
                    let probe: &mut KProbe = ebpf
                        .program_mut(program)
                        .and_then(|p| p.try_into().ok())
                        .ok_or(SocketProbeError::Missing(program))?;
                    probe
                        .load()
                        .map_err(program_error("loading", program, function))?;
                    probe.attach(function, 0).map_err(program_error(
                        "attaching",
                        program,
                        function,
                    ))?;
                }
            }
            ProcessHook::Tracepoint | ProcessHook::Auto | ProcessHook::Off => {
                for &(program, tracepoint) in names::PROC_RAW_TRACEPOINTS {
                    let probe: &mut RawTracePoint = ebpf
                        .program_mut(program)
                        .and_then(|p| p.try_into().ok())
                        .ok_or(SocketProbeError::Missing(program))?;
                    probe
                        .load()
                        .map_err(program_error("loading", program, tracepoint))?;
                    probe.attach(tracepoint).map_err(program_error(
                        "attaching",
                        program,
                        tracepoint,
                    ))?;
                }
            }
        }
        Ok(Self { ebpf, hook })
    }

    /// The hooks in use.
    pub fn hook(&self) -> ProcessHook {
        self.hook
    }

    /// Takes the `PROC_EVENTS` ring buffer out of the probe (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>, SocketProbeError> {
        let map = self
            .ebpf
            .take_map(names::PROC_EVENTS_MAP)
            .ok_or(SocketProbeError::Missing(names::PROC_EVENTS_MAP))?;
        RingBuf::try_from(map).map_err(|_| SocketProbeError::Missing(names::PROC_EVENTS_MAP))
    }

    /// Reads and sums the per-CPU counters.
    pub fn counters(&self) -> Result<SocketProbeCounters, SocketProbeError> {
        let map = self
            .ebpf
            .map(names::PROC_COUNTERS_MAP)
            .ok_or(SocketProbeError::Missing(names::PROC_COUNTERS_MAP))?;
        let array = PerCpuArray::<_, u64>::try_from(map)
            .map_err(|_| SocketProbeError::Missing(names::PROC_COUNTERS_MAP))?;
        let sum = |slot: u32| crate::loader::sum_per_cpu(&array, slot);
        Ok(SocketProbeCounters {
            sent: sum(proc_counter::SENT),
            lost: sum(proc_counter::LOST),
            read_failed: sum(proc_counter::READ_FAILED),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_sentences_name_every_attached_hook() {
        assert_eq!(
            ProcessHook::Kprobe.hooks(),
            "kprobes on tcp_connect, inet_csk_listen_start, inet_csk_listen_stop, \
             tcp_rcv_space_adjust and tcp_set_state"
        );
        assert_eq!(
            ProcessHook::Tracepoint.hooks(),
            "raw tracepoints inet_sock_set_state, net_dev_queue and tcp_rcv_space_adjust"
        );
        assert_eq!(ProcessHook::Off.hooks(), "");
    }
}
