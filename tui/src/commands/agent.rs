//! `holonet agent`: load the probes on interfaces and print every flow.
//!
//! For now the agent prints flows as lines on stdout; the gRPC Observer API,
//! the flow store and recording build on the same pipeline.

use std::{
    collections::HashMap,
    io::{ErrorKind, Write},
    process::ExitCode,
};

use anyhow::Context;
use holonet_agent::{
    clock::MonotonicClock,
    events::EventReader,
    flow::Flow,
    loader::{TcMode, TcProbe},
};

/// How to attach the TC classifiers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TcModeArg {
    /// tcx on kernels 6.6 and later, clsact before.
    #[default]
    Auto,
    /// tcx links only.
    Tcx,
    /// clsact qdisc with netlink filters only.
    Clsact,
}

impl From<TcModeArg> for TcMode {
    fn from(arg: TcModeArg) -> Self {
        match arg {
            TcModeArg::Auto => Self::Auto,
            TcModeArg::Tcx => Self::Tcx,
            TcModeArg::Clsact => Self::Clsact,
        }
    }
}

/// Arguments of `holonet agent`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Load holonet's TC probe, attach it to the given interfaces (ingress and \
egress), and print one line per flow event until Ctrl-C or SIGTERM: every TCP SYN, FIN and \
RST, and every HTTP/1.x request line.\n\nAttach it to the host-side veth of each pod: TC \
ingress there is the pod's egress (from-endpoint), TC egress the pod's ingress \
(to-endpoint). Needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON).",
    after_help = "Example:\n  holonet agent --iface lxc1234 --iface lxc5678\n  \
      holonet agent --iface veth0 --tc-mode clsact | grep http-request"
)]
pub(crate) struct AgentArgs {
    /// Interface to attach to (repeat for several).
    #[arg(long = "iface", short = 'i', value_name = "NAME", required = true)]
    ifaces: Vec<String>,
    /// How to attach the TC classifiers.
    #[arg(long, value_enum, default_value_t)]
    tc_mode: TcModeArg,
}

/// Prints flows from `reader` until the ring buffer fails or stdout closes.
pub(crate) async fn print_flows(
    mut reader: EventReader,
    clock: MonotonicClock,
    interfaces: HashMap<u32, String>,
) -> anyhow::Result<()> {
    const BATCH: usize = 1024;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        reader.read_batch(&mut batch, BATCH).await?;
        let mut out = std::io::stdout().lock();
        for event in &batch {
            let line = Flow::from_event(event, &clock, &interfaces);
            if let Err(err) = writeln!(out, "{line}") {
                // `holonet agent | head` closing the pipe is a normal end.
                if err.kind() == ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(err.into());
            }
        }
        out.flush()?;
    }
}

/// Resolves when the process is asked to stop (Ctrl-C, SIGTERM, SIGHUP).
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let term = async {
        match term.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    let hup = async {
        match hup.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        () = hup => {}
    }
}

pub(crate) fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut probe = TcProbe::load(args.tc_mode.into()).context("loading the TC probe")?;
        probe.forward_probe_logs();
        for iface in &args.ifaces {
            probe
                .attach(iface)
                .with_context(|| format!("attaching the TC probe to {iface}"))?;
        }
        let (mode, why) = probe.mode();
        eprintln!(
            "holonet agent: watching {} via {mode} ({why}); Ctrl-C to stop",
            args.ifaces.join(", ")
        );
        let reader = EventReader::new(probe.take_events()?)?;
        let interfaces = probe.interfaces().clone();
        tokio::select! {
            result = print_flows(reader, MonotonicClock::measure(), interfaces) => result?,
            () = shutdown_signal() => {}
        }
        let counters = probe.counters()?;
        eprintln!(
            "holonet agent: {} packets seen, {} events, {} lost, {} unparsable packets",
            counters.packets, counters.events_sent, counters.events_lost, counters.parse_errors
        );
        Ok(ExitCode::SUCCESS)
    })
}
