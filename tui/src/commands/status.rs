//! `holonet status`: what this kernel offers holonet, and why not.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use holonet_agent::{
    capabilities::{self, Need},
    loader::TcMode,
};
use holonet_proto::holonet::{
    GetCapabilitiesRequest, GetCapabilitiesResponse, agent_client::AgentClient,
};

use super::tls::ClientTlsArgs;

/// Arguments of `holonet status`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Probe the running kernel for the hook types holonet can use (tc/clsact, tcx, \
kprobe, fentry, tracepoint, raw tracepoint, ring buffer, BTF) and say, for each missing one, \
why. Probing loads tiny throw-away programs and attaches nothing; it needs root (or CAP_BPF \
and CAP_PERFMON).\n\nWith --server ADDR, asks a running holonet agent instead (holonet.Agent \
GetCapabilities): its node, kernel, how its probes are attached, its policy mode, and which \
features are on or off and why.\n\nExit status: 0 when holonet can run here (a TC hook and \
ring buffers are available) or the agent answered, 1 otherwise, with one sentence saying why."
)]
pub(crate) struct StatusArgs {
    /// Ask this holonet agent (unix://PATH, host:port, tls://host:port)
    /// instead of probing the local kernel.
    #[arg(long, value_name = "ADDR")]
    server: Option<String>,
    /// How long to wait for the agent.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    timeout: u64,
    /// TLS to the agent.
    #[command(flatten)]
    tls: ClientTlsArgs,
}

pub(crate) fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    if args.server.is_some() {
        return remote(&args);
    }
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

/// `holonet status --server`: the agent's own account of its node.
fn remote(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let (server, tls) = args.tls.config(args.server.as_deref())?;
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let caps = runtime.block_on(async {
        let candidates =
            crate::ui::source::server_candidates(server.as_deref()).map_err(anyhow::Error::msg)?;
        let channel = crate::ui::source::connect_first(&candidates, tls, timeout)
            .await
            .map_err(|e| anyhow!("cannot reach the agent ({e})"))?;
        let mut client = AgentClient::new(channel);
        let call = client.get_capabilities(GetCapabilitiesRequest {});
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) if s.code() == tonic::Code::Unimplemented => Err(anyhow!(
                "the server does not serve holonet.Agent: it is a relay or a Hubble server, \
                 which do not report capabilities"
            )),
            Ok(Err(s)) => Err(anyhow!("GetCapabilities: {}: {}", s.code(), s.message())),
            Err(_) => Err(anyhow!("GetCapabilities: no answer within {timeout:?}")),
        }
    })?;
    print!("{}", describe(&caps));
    Ok(ExitCode::SUCCESS)
}

/// The agent's capabilities as `holonet status` prints them.
fn describe(caps: &GetCapabilitiesResponse) -> String {
    let mut out = format!(
        "node {} (holonet {}), kernel {}\n",
        caps.node_name, caps.version, caps.kernel_release
    );
    out.push_str(&format!("tc: {}\n", caps.tc_mode));
    out.push_str(&format!("policies: {}\n", caps.policy_mode));
    out.push_str(&format!("interfaces: {}\n", caps.interfaces.join(", ")));
    if !caps.pin_dir.is_empty() {
        out.push_str(&format!("pinned under: {}\n", caps.pin_dir));
    }
    out.push_str("\nfeatures:\n");
    for f in &caps.features {
        out.push_str(&format!(
            "  {:<24} {:<4} {}\n",
            f.name,
            if f.active { "on" } else { "off" },
            f.detail
        ));
    }
    out.push_str("\nkernel:\n");
    for c in &caps.kernel_capabilities {
        out.push_str(&format!(
            "  {:<15} {:<9} {}\n",
            c.name,
            if c.available { "yes" } else { "MISSING" },
            c.detail
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use holonet_proto::holonet::{Capability, Feature};

    use super::*;

    #[test]
    fn an_agents_capabilities_read_as_a_report() {
        let text = describe(&GetCapabilitiesResponse {
            node_name: "n1".into(),
            version: "0.1.0".into(),
            kernel_release: "6.18.0".into(),
            tc_mode: "tcx (kernel 6.6+)".into(),
            policy_mode: "enforce".into(),
            interfaces: vec!["veth1".into(), "veth2".into()],
            pin_dir: "/sys/fs/bpf/holonet/abc".into(),
            kernel_capabilities: vec![Capability {
                name: "kprobe".into(),
                available: false,
                detail: "no kprobe_events".into(),
            }],
            features: vec![Feature {
                name: "process attribution".into(),
                active: false,
                detail: "failed: kprobes could not be used".into(),
            }],
        });
        assert_eq!(
            text,
            "node n1 (holonet 0.1.0), kernel 6.18.0\n\
             tc: tcx (kernel 6.6+)\n\
             policies: enforce\n\
             interfaces: veth1, veth2\n\
             pinned under: /sys/fs/bpf/holonet/abc\n\
             \nfeatures:\n  process attribution      off  failed: kprobes could not be used\n\
             \nkernel:\n  kprobe          MISSING   no kprobe_events\n"
        );
    }
}
