//! Which hook types this kernel offers, and for each missing one, why.
//!
//! Probing loads trivial programs and creates tiny maps (through aya's
//! feature probes) and looks at the kernel's tracing and PMU files; it
//! attaches nothing, so it is safe to run on a production node. It needs the
//! same privileges as the agent (CAP_BPF and CAP_PERFMON, or root).

use std::{fmt, path::Path};

use aya::{
    maps::MapType,
    programs::ProgramType,
    sys::{is_map_supported, is_program_supported},
    util::KernelVersion,
};

use crate::process::ProcessHook;

/// A hook type holonet can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// TC classifier on a clsact qdisc (netlink).
    TcClsact,
    /// TC classifier through a tcx link.
    Tcx,
    /// kprobes (dynamic kernel function probes).
    Kprobe,
    /// fentry/fexit (BPF trampolines).
    Fentry,
    /// Tracepoints (static kernel trace events).
    Tracepoint,
    /// Raw tracepoints.
    RawTracepoint,
    /// BPF ring buffer maps.
    RingBuffer,
    /// Kernel BTF (needed by fentry and CO-RE).
    Btf,
    /// The `bpf_loop` helper, which runs the L7 checks' byte loops.
    BpfLoop,
}

impl Hook {
    /// Every hook, in the order `holonet status` lists them.
    pub const ALL: [Self; 9] = [
        Self::TcClsact,
        Self::Tcx,
        Self::Kprobe,
        Self::Fentry,
        Self::Tracepoint,
        Self::RawTracepoint,
        Self::RingBuffer,
        Self::BpfLoop,
        Self::Btf,
    ];

    /// The short name shown to users.
    pub fn name(self) -> &'static str {
        match self {
            Self::TcClsact => "tc (clsact)",
            Self::Tcx => "tcx",
            Self::Kprobe => "kprobe",
            Self::Fentry => "fentry/fexit",
            Self::Tracepoint => "tracepoint",
            Self::RawTracepoint => "raw tracepoint",
            Self::RingBuffer => "ring buffer",
            Self::Btf => "BTF",
            Self::BpfLoop => "bpf_loop helper",
        }
    }
}

/// The oldest kernel holonet can serve: the `bpf_loop` helper, which runs
/// the L7 checks' byte loops, arrived in Linux 5.17 (BPF ring buffers, which
/// carry every event to the agent, in 5.8). (The kernels the probes were
/// verified on are in docs/kernels.md.)
pub const MIN_KERNEL: &str = "5.17";

/// Whether holonet needs a hook, and what for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// holonet cannot run without it.
    Required,
    /// holonet runs without it; the text says what it is used for.
    Optional(&'static str),
}

impl Hook {
    /// Whether holonet needs this hook.
    pub fn need(self) -> Need {
        match self {
            Self::TcClsact | Self::RingBuffer | Self::BpfLoop => Need::Required,
            Self::Tcx => Need::Optional("preferred TC attachment (6.6+); clsact otherwise"),
            Self::Kprobe => {
                Need::Optional("process attribution (preferred); raw tracepoints otherwise")
            }
            Self::Tracepoint => Need::Optional(
                "not used: the process fallback uses raw tracepoints, which need no tracefs",
            ),
            Self::RawTracepoint => Need::Optional("process attribution where kprobes are missing"),
            Self::Fentry => Need::Optional("not used yet"),
            Self::Btf => Need::Optional(
                "process attribution reads socket fields at offsets found in it; the TC probe does not need it",
            ),
        }
    }
}

/// Why holonet cannot run on this kernel, as one sentence, or `None` when
/// every [`Need::Required`] hook is available in `caps`.
pub fn unsupported(caps: &[Capability]) -> Option<String> {
    let missing: Vec<&Capability> = caps
        .iter()
        .filter(|c| c.hook.need() == Need::Required && !c.available)
        .collect();
    if missing.is_empty() {
        return None;
    }
    if missing
        .iter()
        .any(|c| c.detail.contains("Operation not permitted"))
    {
        return Some(format!(
            "holonet cannot probe kernel {}: it was not allowed to load BPF programs; run it as \
             root (or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON).",
            kernel_release()
        ));
    }
    let names: Vec<&str> = missing.iter().map(|c| c.hook.name()).collect();
    let details: Vec<&str> = missing.iter().map(|c| c.detail.as_str()).collect();
    Some(format!(
        "holonet cannot run on kernel {}, which lacks {} ({}): it needs Linux {MIN_KERNEL} or \
         later with BPF ring buffers, the bpf_loop helper and TC classifiers (clsact).",
        kernel_release(),
        names.join(" and "),
        details.join("; "),
    ))
}

/// Which hooks process attribution uses on a kernel with `caps`, and why;
/// what an agent started with `--process-hook auto` does.
pub fn process_attribution(caps: &[Capability]) -> String {
    let find = |hook: Hook| caps.iter().find(|c| c.hook == hook);
    let has = |hook: Hook| find(hook).is_some_and(|c| c.available);
    if !has(Hook::Btf) {
        return format!(
            "not available: the socket probe needs kernel BTF ({}); flows carry no process",
            find(Hook::Btf).map_or("not probed", |c| c.detail.as_str())
        );
    }
    if has(Hook::Kprobe) {
        format!("{} (this kernel has kprobes)", ProcessHook::Kprobe.hooks())
    } else if has(Hook::RawTracepoint) {
        format!(
            "{}, because kprobes are missing ({})",
            ProcessHook::Tracepoint.hooks(),
            find(Hook::Kprobe).map_or("not probed", |c| c.detail.as_str())
        )
    } else {
        "not available: neither kprobes nor raw tracepoints; flows carry no process".to_string()
    }
}

/// Probes the hooks holonet cannot do without; the error is the sentence of
/// [`unsupported`]. The agent calls this before loading anything.
pub fn ensure_supported() -> Result<(), String> {
    let caps: Vec<Capability> = Hook::ALL
        .into_iter()
        .filter(|h| h.need() == Need::Required)
        .map(probe)
        .collect();
    unsupported(&caps).map_or(Ok(()), Err)
}

/// The result of probing one hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capability {
    /// The hook probed.
    pub hook: Hook,
    /// Whether holonet can use it here.
    pub available: bool,
    /// Why not (or, when available, how it was confirmed).
    pub detail: String,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<15} {:<9} {}",
            self.hook.name(),
            if self.available { "yes" } else { "MISSING" },
            self.detail
        )
    }
}

fn yes(hook: Hook, detail: impl Into<String>) -> Capability {
    Capability {
        hook,
        available: true,
        detail: detail.into(),
    }
}

fn no(hook: Hook, detail: impl Into<String>) -> Capability {
    Capability {
        hook,
        available: false,
        detail: detail.into(),
    }
}

/// An error with its chain of causes, for the detail column.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn program_type(hook: Hook, ty: ProgramType, what: &str) -> Result<(), Capability> {
    match is_program_supported(ty) {
        Ok(true) => Ok(()),
        Ok(false) => Err(no(
            hook,
            format!("the kernel refuses to load {what} programs"),
        )),
        Err(err) => Err(no(
            hook,
            format!("probing {what} programs failed: {}", chain(&err)),
        )),
    }
}

/// Where tracefs is mounted, if it is.
fn tracefs_events() -> Option<&'static str> {
    [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_dir())
}

/// Probes one hook.
pub fn probe(hook: Hook) -> Capability {
    let kernel = KernelVersion::current().ok();
    let result = match hook {
        Hook::TcClsact => program_type(hook, ProgramType::SchedClassifier, "sched_cls").map(|()| {
            yes(
                hook,
                "sched_cls programs load; attached with a netlink filter",
            )
        }),
        Hook::Tcx => {
            program_type(hook, ProgramType::SchedClassifier, "sched_cls").and_then(
                |()| match kernel {
                    Some(v) if v >= KernelVersion::new(6, 6, 0) => {
                        Ok(yes(hook, format!("kernel {v} has tcx links (6.6+)")))
                    }
                    Some(v) => Err(no(
                        hook,
                        format!("kernel {v} is older than 6.6, which introduced tcx links"),
                    )),
                    None => Err(no(hook, "the kernel version could not be read")),
                },
            )
        }
        Hook::Kprobe => program_type(hook, ProgramType::KProbe, "kprobe").and_then(|()| {
            if Path::new("/sys/bus/event_source/devices/kprobe").exists() {
                Ok(yes(hook, "kprobe PMU present"))
            } else {
                Err(no(
                    hook,
                    "no kprobe PMU (/sys/bus/event_source/devices/kprobe is missing): \
                     the kernel was built without CONFIG_KPROBES",
                ))
            }
        }),
        Hook::Fentry => {
            if !Path::new("/sys/kernel/btf/vmlinux").exists() {
                Err(no(
                    hook,
                    "needs kernel BTF, and /sys/kernel/btf/vmlinux is missing",
                ))
            } else {
                match is_program_supported(ProgramType::Tracing) {
                    Ok(true) => Ok(yes(
                        hook,
                        "tracing programs load and attach to a trampoline",
                    )),
                    Ok(false) => Err(no(
                        hook,
                        "the kernel refuses BPF_PROG_TYPE_TRACING programs or cannot attach \
                         BPF trampolines (no fentry/fexit on this kernel)",
                    )),
                    Err(err) => Err(no(
                        hook,
                        format!(
                            "BPF_PROG_TYPE_TRACING programs cannot be loaded here: {}",
                            chain(&err)
                        ),
                    )),
                }
            }
        }
        Hook::Tracepoint => {
            program_type(hook, ProgramType::TracePoint, "tracepoint").and_then(|()| {
                match tracefs_events() {
                    Some(dir) => Ok(yes(hook, format!("tracefs events at {dir}"))),
                    None => Err(no(
                        hook,
                        "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)",
                    )),
                }
            })
        }
        Hook::RawTracepoint => program_type(hook, ProgramType::RawTracePoint, "raw_tracepoint")
            .map(|()| yes(hook, "raw_tracepoint programs load")),
        Hook::RingBuffer => match is_map_supported(MapType::RingBuf) {
            Ok(true) => Ok(yes(hook, "BPF_MAP_TYPE_RINGBUF maps can be created")),
            Ok(false) => Err(no(
                hook,
                "BPF_MAP_TYPE_RINGBUF maps cannot be created, which needs Linux 5.8+; \
                 holonet cannot report events without them",
            )),
            Err(err) => Err(no(
                hook,
                format!("probing ring buffers failed: {}", chain(&err)),
            )),
        },
        Hook::BpfLoop => {
            if KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(5, 17, 0)) {
                Ok(yes(hook, "kernel 5.17 or later has the bpf_loop helper"))
            } else {
                Err(no(
                    hook,
                    "the bpf_loop helper needs Linux 5.17+; the L7 checks (HTTP and DNS) \
                     cannot be loaded without it",
                ))
            }
        }
        Hook::Btf => {
            if Path::new("/sys/kernel/btf/vmlinux").exists() {
                Ok(yes(hook, "/sys/kernel/btf/vmlinux"))
            } else {
                Err(no(
                    hook,
                    "/sys/kernel/btf/vmlinux is missing (kernel built without CONFIG_DEBUG_INFO_BTF)",
                ))
            }
        }
    };
    result.unwrap_or_else(|missing| missing)
}

/// Probes every hook in [`Hook::ALL`].
pub fn probe_all() -> Vec<Capability> {
    Hook::ALL.into_iter().map(probe).collect()
}

/// The running kernel's version, as a string for reports.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_without_ring_buffers_is_refused_in_one_sentence() {
        let mut caps: Vec<Capability> = Hook::ALL.into_iter().map(|h| yes(h, "fine")).collect();
        assert_eq!(unsupported(&caps), None);
        // Optional hooks missing: still served.
        for cap in caps.iter_mut().filter(|c| c.hook.need() != Need::Required) {
            cap.available = false;
        }
        assert_eq!(unsupported(&caps), None);
        let ring = caps
            .iter_mut()
            .find(|c| c.hook == Hook::RingBuffer)
            .expect("ring buffer probed");
        *ring = no(Hook::RingBuffer, "no ring buffers here");
        let text = unsupported(&caps).expect("refused");
        assert!(text.starts_with("holonet cannot run on kernel "), "{text}");
        assert!(
            text.ends_with(
                ", which lacks ring buffer (no ring buffers here): it needs Linux 5.17 or later \
                 with BPF ring buffers, the bpf_loop helper and TC classifiers (clsact)."
            ),
            "{text}"
        );
        assert_eq!(text.matches(". ").count(), 0, "one sentence: {text}");
    }
}
