//! `holonet status`: what this kernel offers holonet, and why not.

use std::process::ExitCode;

use holonet_agent::{
    capabilities::{self, Need},
    loader::TcMode,
};

/// Arguments of `holonet status`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Probe the running kernel for the hook types holonet can use (tc/clsact, tcx, \
kprobe, fentry, tracepoint, raw tracepoint, ring buffer, BTF) and say, for each missing one, \
why. Probing loads tiny throw-away programs and attaches nothing; it needs root (or CAP_BPF \
and CAP_PERFMON).\n\nExit status: 0 when holonet can run here (a TC hook and ring buffers \
are available), 1 otherwise, with one sentence saying what the kernel lacks."
)]
pub(crate) struct StatusArgs {}

pub(crate) fn run(_args: StatusArgs) -> anyhow::Result<ExitCode> {
    let caps = capabilities::probe_all();
    println!("kernel: {}", capabilities::kernel_release());
    println!(
        "minimum: Linux {} with BPF ring buffers and TC classifiers (clsact); \
         tcx (6.6+) preferred, kprobes optional",
        capabilities::MIN_KERNEL
    );
    println!();
    println!("{:<15} {:<9} {:<9} detail", "hook", "available", "needed");
    for cap in &caps {
        let (need, what) = match cap.hook.need() {
            Need::Required => ("required", String::new()),
            Need::Optional(what) => ("optional", format!(" [{what}]")),
        };
        println!(
            "{:<15} {:<9} {:<9} {}{what}",
            cap.hook.name(),
            if cap.available { "yes" } else { "MISSING" },
            need,
            cap.detail
        );
    }
    println!();
    let (mode, why) = TcMode::Auto.resolve();
    println!("in use:");
    println!("  flow probe and enforcement: tc classifiers via {mode} ({why})");
    println!(
        "  process attribution: {}",
        capabilities::process_attribution(&caps)
    );
    match capabilities::unsupported(&caps) {
        None => Ok(ExitCode::SUCCESS),
        Some(sentence) => {
            println!();
            println!("{sentence}");
            Ok(ExitCode::FAILURE)
        }
    }
}
