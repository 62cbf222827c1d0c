//! The relay's peers: one gRPC channel per agent, and a watchdog per peer
//! that knows whether it is reachable.
//!
//! Each peer has a lazily connecting tonic channel (it reconnects by itself
//! when used again after a failure) and a monitor task that asks the peer
//! for its ServerStatus: every [`HEALTH_INTERVAL`] while it answers, and
//! after a growing backoff ([`MIN_BACKOFF`] doubling to [`MAX_BACKOFF`])
//! while it does not. Streams that see a peer fail report it here, which
//! wakes the monitor at once. Every change of state is logged once, e.g.
//! `relay: peer 10.0.0.2:4245 unavailable: Connection refused (os error 111)`.

use std::{
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use holonet_proto::observer::{
    GetNodesRequest, ServerStatusRequest, ServerStatusResponse, observer_client::ObserverClient,
};
use tokio::sync::{Notify, watch};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::tls::root_cause;

/// How often a reachable peer is checked.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// First retry delay after a peer became unreachable.
pub const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a TCP (and TLS) connection to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a unary call to a peer may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Hubble's default port, assumed when a peer address has none.
pub const DEFAULT_PORT: u16 = 4245;

/// A peer address that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("relay: peer `{addr}`: {why}")]
pub struct PeerAddrError {
    /// The address as given.
    pub addr: String,
    /// What is wrong with it.
    pub why: String,
}

/// Whether a peer answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Not tried yet.
    Connecting,
    /// It answered its last check or stream.
    Connected,
    /// It did not; `reason` says why.
    Unavailable {
        /// The cause, e.g. "Connection refused (os error 111)".
        reason: String,
    },
}

/// One agent behind the relay.
#[derive(Debug)]
pub struct Peer {
    addr: String,
    channel: Channel,
    tls: bool,
    state: watch::Sender<PeerState>,
    name: Mutex<Option<String>>,
    kick: Notify,
}

/// Normalises a peer address: `host:port`, `host` (port 4245),
/// `http://host:port`; `unix://` and `https://` are refused with a hint.
pub fn normalize_addr(addr: &str) -> Result<String, PeerAddrError> {
    let err = |why: &str| PeerAddrError {
        addr: addr.to_string(),
        why: why.to_string(),
    };
    let bare = addr.strip_prefix("http://").unwrap_or(addr);
    if bare.contains("://") {
        return Err(err(
            "expected host:port (TLS to peers is set with --peer-tls, not a URL scheme)",
        ));
    }
    if bare.is_empty() || bare.contains('/') {
        return Err(err("expected host:port"));
    }
    let has_port = bare.rsplit_once(':').is_some_and(|(host, port)| {
        let host_ok = !host.is_empty()
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        host_ok && port.parse::<u16>().is_ok()
    });
    if has_port {
        Ok(bare.to_string())
    } else if bare.contains(':') && !bare.starts_with('[') {
        Err(err(
            "expected host:port (write an IPv6 address as [addr]:port)",
        ))
    } else {
        Ok(format!("{bare}:{DEFAULT_PORT}"))
    }
}

impl Peer {
    fn new(addr: &str, tls: Option<&ClientTlsConfig>) -> Result<Self, PeerAddrError> {
        let addr = normalize_addr(addr)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(|e| PeerAddrError {
                addr: addr.clone(),
                why: e.to_string(),
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|e| PeerAddrError {
                    addr: addr.clone(),
                    why: format!("TLS: {}", root_cause(&e)),
                })?;
        }
        Ok(Self {
            channel: endpoint.connect_lazy(),
            addr,
            tls: tls.is_some(),
            state: watch::channel(PeerState::Connecting).0,
            name: Mutex::new(None),
            kick: Notify::new(),
        })
    }

    /// The address (`host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the relay speaks TLS to this peer.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The node name the peer reported, or its address before it ever
    /// answered.
    pub fn name(&self) -> String {
        self.name
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| self.addr.clone())
    }

    /// A client on the peer's channel.
    pub fn client(&self) -> ObserverClient<Channel> {
        ObserverClient::new(self.channel.clone())
    }

    /// The current state.
    pub fn state(&self) -> PeerState {
        self.state.borrow().clone()
    }

    /// Follows the state.
    pub fn watch(&self) -> watch::Receiver<PeerState> {
        self.state.subscribe()
    }

    /// The message a person reads when this peer is down.
    pub fn unavailable_message(&self, reason: &str) -> String {
        format!("relay: peer {} unavailable: {reason}", self.addr)
    }

    fn set(&self, new: PeerState) {
        let old = self.state.send_replace(new.clone());
        match (&old, &new) {
            (PeerState::Connected, PeerState::Connected) => {}
            (_, PeerState::Connected) => {
                log::info!("relay: peer {} ({}) connected", self.addr, self.name());
            }
            (PeerState::Unavailable { .. }, PeerState::Unavailable { .. }) => {}
            (_, PeerState::Unavailable { reason }) => {
                log::warn!("{}", self.unavailable_message(reason));
            }
            _ => {}
        }
    }

    /// A stream or call saw the peer fail: mark it and check it again now.
    pub fn report_failure(&self, reason: String) {
        self.set(PeerState::Unavailable { reason });
        self.kick.notify_one();
    }

    /// Asks the peer for its status; learns its node name the first time.
    pub async fn status(&self) -> Result<ServerStatusResponse, String> {
        let mut client = self.client();
        let status =
            tokio::time::timeout(CALL_TIMEOUT, client.server_status(ServerStatusRequest {}))
                .await
                .map_err(|_| format!("no answer within {CALL_TIMEOUT:?}"))?
                .map_err(|s| status_reason(&s))?
                .into_inner();
        let known = self
            .name
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        if !known {
            if let Ok(Ok(nodes)) =
                tokio::time::timeout(CALL_TIMEOUT, client.get_nodes(GetNodesRequest {})).await
            {
                if let [node] = nodes.into_inner().nodes.as_slice() {
                    if !node.name.is_empty() {
                        *self
                            .name
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some(node.name.clone());
                    }
                }
            }
        }
        Ok(status)
    }

    /// Waits until the peer has been tried at least once, at most `limit`.
    pub async fn settled(&self, limit: Duration) -> PeerState {
        let mut rx = self.watch();
        let _ = tokio::time::timeout(limit, rx.wait_for(|s| *s != PeerState::Connecting)).await;
        self.state()
    }
}

/// A gRPC status from a peer as the reason a person reads: the innermost
/// transport error when there is one ("Connection refused (os error 111)",
/// "invalid peer certificate: UnknownIssuer"), else the status message.
pub fn status_reason(status: &tonic::Status) -> String {
    let cause = root_cause(status);
    if cause.contains("deadline has elapsed") || cause.contains("timed out") {
        return format!("no connection within {CONNECT_TIMEOUT:?}");
    }
    if cause.is_empty() || cause == status.to_string() {
        if status.message().is_empty() {
            format!("{:?}", status.code())
        } else {
            status.message().to_string()
        }
    } else {
        cause
    }
}

async fn monitor(peer: Weak<Peer>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let Some(peer) = peer.upgrade() else {
            return;
        };
        match peer.status().await {
            Ok(_) => {
                peer.set(PeerState::Connected);
                backoff = MIN_BACKOFF;
                tokio::select! {
                    () = tokio::time::sleep(HEALTH_INTERVAL) => {}
                    () = peer.kick.notified() => {}
                }
            }
            Err(reason) => {
                peer.set(PeerState::Unavailable { reason });
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                drop(peer);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Every peer of a relay, each watched by its own monitor task (which ends
/// when the set is dropped).
#[derive(Debug)]
pub struct PeerSet {
    peers: Vec<Arc<Peer>>,
}

impl PeerSet {
    /// Channels to `addrs` (with `tls` when given) and their monitors.
    /// Must run inside a tokio runtime.
    pub fn start(addrs: &[String], tls: Option<&ClientTlsConfig>) -> Result<Self, PeerAddrError> {
        let mut peers = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let peer = Arc::new(Peer::new(addr, tls)?);
            if peers.iter().any(|p: &Arc<Peer>| p.addr == peer.addr) {
                return Err(PeerAddrError {
                    addr: addr.clone(),
                    why: "given twice".to_string(),
                });
            }
            peers.push(peer);
        }
        for peer in &peers {
            tokio::spawn(monitor(Arc::downgrade(peer)));
        }
        Ok(Self { peers })
    }

    /// The peers, in the order given.
    pub fn peers(&self) -> &[Arc<Peer>] {
        &self.peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised_or_refused_with_a_reason() {
        assert_eq!(normalize_addr("10.0.0.2:4245").unwrap(), "10.0.0.2:4245");
        assert_eq!(normalize_addr("node-1").unwrap(), "node-1:4245");
        assert_eq!(normalize_addr("http://h:1").unwrap(), "h:1");
        assert_eq!(normalize_addr("[::1]:9").unwrap(), "[::1]:9");
        assert_eq!(normalize_addr("[::1]").unwrap(), "[::1]:4245");
        for bad in ["unix:///x", "https://h:1", "", "h:1/x", "::1"] {
            let err = normalize_addr(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("relay: peer `{bad}`")), "{err}");
        }
    }
}
