//! `holonet relay`: one Observer API in front of several agents.
//!
//! Thin: parses flags, builds the peer set and the relay service from
//! `holonet_agent::relay`, and serves them on the same listeners as the
//! agent (loopback only unless `--allow-remote`).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::{Context, anyhow};
use holonet_agent::{
    observer::server::{self, Listen},
    relay::{
        peers::PeerSet,
        service::{RelayOptions, RelayService},
    },
    tls::{ClientTlsFiles, ServerTlsFiles},
};
use holonet_flows::timespec;

use super::signals::shutdown_signal;

/// The long help of `holonet relay` (set on the subcommand in main.rs: a
/// doc comment there would otherwise replace it).
pub(crate) const LONG_ABOUT: &str = "Serve one Hubble Observer API in front of several holonet agents (or Hubble \
agents): GetFlows asks every peer with the same request (filters, --last/--first, --since, \
--until, field mask) and merges the answers in time order, stamping each flow's node name \
where a peer left it empty. Without --follow the merge is exact; with --follow each flow is \
held for --sort-window so slower peers' older flows can overtake it.\n\n\
A peer that is down does not stop the relay: it is reported in the log, in ServerStatus \
(`hubble status` prints \"Unavailable Nodes\"), in GetNodes and as a node \
status event in GetFlows streams, and retried with backoff; following streams receive its \
flows again once it is back, including those it recorded while the relay could not reach it.\n\n\
Note: `--last N` is per peer, as with Hubble Relay: three peers give up to 3N flows.";

/// Arguments of `holonet relay`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
      holonet relay --peer 10.0.0.2:4245 --peer 10.0.0.3:4245 --listen-address 127.0.0.1:4246\n  \
      holonet observe --server 127.0.0.1:4246 --last 20 --print-node-name\n  \
      holonet relay --peer node-a --peer node-b --peer-tls --peer-tls-ca-cert-files ca.pem \\\n      \
      --peer-tls-client-cert-file relay.pem --peer-tls-client-key-file relay-key.pem\n  \
      hubble status --server 127.0.0.1:4246          # Connected Nodes: 2/2")]
pub(crate) struct RelayArgs {
    /// An agent to relay: host:port, or host (port 4245). Repeat for several.
    #[arg(long = "peer", value_name = "ADDR", required = true)]
    peers: Vec<String>,
    /// TCP address the relay serves on ("none" to disable). Pick another port
    /// than the local agent's (127.0.0.1:4245 by default).
    #[arg(long, default_value = "127.0.0.1:4246", value_name = "ADDR")]
    listen_address: String,
    /// Unix socket the relay also serves on.
    #[arg(long, default_value = "none", value_name = "PATH")]
    unix_socket: String,
    /// Allow --listen-address outside loopback (flows reveal who talks to whom).
    #[arg(long)]
    allow_remote: bool,
    /// Follow mode: how long each flow waits so older flows from slower
    /// peers can go first (0s: no reordering).
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    sort_window: String,
    /// Follow mode: the most flows held for sorting at once.
    #[arg(long, default_value_t = 4096, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    sort_buffer: u64,
    /// Responses buffered per peer and stream before the relay stops reading
    /// that peer until the client catches up.
    #[arg(long, default_value_t = 128, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    peer_buffer: u64,

    /// Serve TLS with this PEM certificate (with --tls-key-file).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key_file",
        help_heading = "TLS (server)"
    )]
    tls_cert_file: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert_file",
        help_heading = "TLS (server)"
    )]
    tls_key_file: Option<PathBuf>,
    /// Require client certificates signed by these CAs (mutual TLS).
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "tls_cert_file",
          help_heading = "TLS (server)")]
    tls_client_ca_files: Vec<PathBuf>,

    /// Connect to peers over TLS.
    #[arg(long, help_heading = "TLS (to peers)")]
    peer_tls: bool,
    /// CAs the peers' certificates must chain to (default: the system's).
    #[arg(long, value_name = "FILE", num_args = 1.., requires = "peer_tls",
          help_heading = "TLS (to peers)")]
    peer_tls_ca_cert_files: Vec<PathBuf>,
    /// Client certificate for peers that require mutual TLS.
    #[arg(
        long,
        value_name = "FILE",
        requires = "peer_tls_client_key_file",
        requires = "peer_tls",
        help_heading = "TLS (to peers)"
    )]
    peer_tls_client_cert_file: Option<PathBuf>,
    /// Its private key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "peer_tls_client_cert_file",
        help_heading = "TLS (to peers)"
    )]
    peer_tls_client_key_file: Option<PathBuf>,
    /// Name the peers' certificates must carry, when it is not their host.
    #[arg(
        long,
        value_name = "NAME",
        requires = "peer_tls",
        help_heading = "TLS (to peers)"
    )]
    peer_tls_server_name: Option<String>,
}

fn optional(value: &str) -> Option<&str> {
    (!value.eq_ignore_ascii_case("none") && !value.is_empty()).then_some(value)
}

pub(crate) fn run(args: RelayArgs) -> anyhow::Result<ExitCode> {
    let listen = Listen {
        tcp: optional(&args.listen_address)
            .map(|a| {
                a.parse::<SocketAddr>()
                    .with_context(|| format!("--listen-address `{a}` is not an IP:port address"))
            })
            .transpose()?,
        unix: optional(&args.unix_socket).map(PathBuf::from),
        allow_remote: args.allow_remote,
    };
    let sort_window = timespec::parse_go_duration(&args.sort_window)
        .and_then(|ns| u64::try_from(ns).ok())
        .map(Duration::from_nanos)
        .ok_or_else(|| anyhow!("--sort-window: invalid duration {:?}", args.sort_window))?;
    let options = RelayOptions {
        sort_window,
        sort_buffer: usize::try_from(args.sort_buffer).unwrap_or(usize::MAX),
        peer_buffer: usize::try_from(args.peer_buffer).unwrap_or(usize::MAX),
    };
    let server_tls = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => Some(
            ServerTlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_cas: args.tls_client_ca_files.clone(),
            }
            .load()
            .context("relay: server TLS")?,
        ),
        _ => None,
    };
    let peer_tls = if args.peer_tls {
        Some(
            ClientTlsFiles {
                ca_files: args.peer_tls_ca_cert_files.clone(),
                cert: args.peer_tls_client_cert_file.clone(),
                key: args.peer_tls_client_key_file.clone(),
                server_name: args.peer_tls_server_name.clone(),
            }
            .load()
            .context("relay: TLS to peers")?,
        )
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let peers = Arc::new(PeerSet::start(&args.peers, peer_tls.as_ref())?);
        let mut listeners = server::bind(&listen).await.context("relay")?;
        if let Some(tls) = server_tls {
            listeners = listeners.with_tls(tls);
        }
        let mut serving = Vec::new();
        if let Some(addr) = listeners.tcp_addr() {
            let scheme = if listeners.tls_enabled() {
                "tls"
            } else {
                "http"
            };
            serving.push(format!("{scheme}://{addr}"));
        }
        if let Some(path) = listeners.unix_path() {
            serving.push(format!("unix://{}", path.display()));
        }
        let names: Vec<&str> = peers.peers().iter().map(|p| p.addr()).collect();
        eprintln!(
            "holonet relay: serving on {} for {} peer(s): {}; Ctrl-C to stop",
            if serving.is_empty() {
                "nothing".to_string()
            } else {
                serving.join(" and ")
            },
            names.len(),
            names.join(", ")
        );
        let service = RelayService::new(Arc::clone(&peers), options);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut server_task = tokio::spawn(server::serve(listeners, service, async move {
            let _ = stop_rx.await;
        }));
        tokio::select! {
            () = shutdown_signal() => {}
            done = &mut server_task => {
                return match done {
                    Ok(Ok(())) => Ok(ExitCode::SUCCESS),
                    Ok(Err(err)) => Err(anyhow::Error::new(err).context("relay")),
                    Err(err) => Err(err.into()),
                };
            }
        }
        // Following clients never end their streams by themselves: give
        // them a moment, then stop regardless.
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(2), server_task).await;
        Ok(ExitCode::SUCCESS)
    })
}
