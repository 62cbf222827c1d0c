//! gRPC listeners: a unix socket and a loopback TCP port by default.
//!
//! The Observer service (and, on an agent, holonet's own `holonet.Agent`)
//! and `grpc.health.v1` (SERVING for
//! `hubble.server.Observer`, which `hubble status` checks first) are served
//! on every listener. A TCP address outside loopback is refused unless the
//! operator explicitly allows it: flows reveal who talks to whom.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use holonet_proto::{
    holonet::agent_server::AgentServer,
    observer_encoded::observer_server::{Observer, ObserverServer},
};
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::{Server, ServerTlsConfig};

use crate::agent_service::AgentService;

/// The health-check service name the `hubble` CLI asks for.
pub const HEALTH_SERVICE: &str = "hubble.server.Observer";

/// Default TCP address, Hubble's port on loopback.
pub const DEFAULT_TCP: &str = "127.0.0.1:4245";

/// Default unix socket.
pub const DEFAULT_UNIX_SOCKET: &str = "/run/holonet/hubble.sock";

/// Where the agent listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// TCP address, if any.
    pub tcp: Option<SocketAddr>,
    /// Unix socket path, if any.
    pub unix: Option<PathBuf>,
    /// Accept a TCP address outside loopback.
    pub allow_remote: bool,
}

/// Starting a listener failed.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// A non-loopback address without `allow_remote`.
    #[error(
        "refusing to serve flows on {addr}, which is reachable from other machines; \
         use a loopback address, or pass --allow-remote if that is really intended"
    )]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Binding the TCP port failed.
    #[error("listening on {addr}: {source}")]
    Tcp {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Creating the unix socket failed.
    #[error("listening on unix socket {path}: {source}")]
    Unix {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server stopped with an error.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Refuses `addr` when it is reachable from other machines and the operator
/// did not say so explicitly: every listener holonet opens (gRPC, metrics)
/// follows this one rule.
pub fn check_local(addr: SocketAddr, allow_remote: bool) -> Result<(), ListenError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(ListenError::NotLoopback { addr });
    }
    Ok(())
}

/// Bound listeners, ready to serve.
#[derive(Debug)]
pub struct BoundListeners {
    tcp: Option<(SocketAddr, TcpListener)>,
    unix: Option<(PathBuf, UnixListener)>,
    tls: Option<ServerTlsConfig>,
}

impl BoundListeners {
    /// Serves TLS (mutual TLS if the config names client CAs) on the TCP
    /// listener. The unix socket stays plain: file permissions guard it,
    /// and local tools should not need certificates.
    pub fn with_tls(mut self, tls: ServerTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Whether the TCP listener will speak TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The TCP address actually bound (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().map(|(a, _)| *a)
    }

    /// The unix socket path.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix.as_ref().map(|(p, _)| p.as_path())
    }
}

/// Binds the listeners (so errors surface before the agent reports ready).
pub async fn bind(listen: &Listen) -> Result<BoundListeners, ListenError> {
    let tcp = match listen.tcp {
        Some(addr) => {
            check_local(addr, listen.allow_remote)?;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ListenError::Tcp { addr, source })?;
            let bound = listener
                .local_addr()
                .map_err(|source| ListenError::Tcp { addr, source })?;
            Some((bound, listener))
        }
        None => None,
    };
    let unix = match &listen.unix {
        Some(path) => {
            let err = |source| ListenError::Unix {
                path: path.clone(),
                source,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(err)?;
            }
            // A socket left by a previous agent would make bind fail.
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(e)),
            }
            let listener = UnixListener::bind(path).map_err(err)?;
            Some((path.clone(), listener))
        }
        None => None,
    };
    Ok(BoundListeners {
        tcp,
        unix,
        tls: None,
    })
}

/// Serves the Observer and health services on every bound listener until
/// `shutdown` resolves. Generic over the Observer implementation so the
/// agent (its own flow store) and the relay (merged peers) share one
/// listener setup, health service and shutdown path.
pub async fn serve<S: Observer + Clone>(
    listeners: BoundListeners,
    service: S,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ListenError> {
    serve_with_agent(listeners, service, None, shutdown).await
}

/// [`serve`], plus holonet's own `holonet.Agent` service when given (the
/// agent serves it; the relay does not).
pub async fn serve_with_agent<S: Observer + Clone>(
    listeners: BoundListeners,
    service: S,
    agent: Option<AgentService>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ListenError> {
    let agent = agent.map(AgentServer::new);
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(HEALTH_SERVICE, tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let Some((_, listener)) = listeners.tcp {
        let mut builder = Server::builder();
        if let Some(tls) = listeners.tls.clone() {
            builder = builder.tls_config(tls)?;
        }
        let router = builder
            .add_service(health.clone())
            .add_service(ObserverServer::new(service.clone()))
            .add_optional_service(agent.clone());
        let stop = stopped(stop_rx.clone());
        tasks.spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop)
                .await
        });
    }
    let unix_path = listeners.unix.as_ref().map(|(p, _)| p.clone());
    if let Some((_, listener)) = listeners.unix {
        let router = Server::builder()
            .add_service(health)
            .add_service(ObserverServer::new(service))
            .add_optional_service(agent);
        let stop = stopped(stop_rx);
        tasks.spawn(async move {
            router
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), stop)
                .await
        });
    }
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(err)) = done {
            result = Err(ListenError::Serve(err));
        }
    }
    if let Some(path) = unix_path {
        let _ = std::fs::remove_file(path);
    }
    result
}
