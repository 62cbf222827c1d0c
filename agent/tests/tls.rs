//! TLS and mutual TLS on the gRPC listener, and the relay dialling peers
//! over mutual TLS, with certificates made at test time by the `openssl`
//! command (scripts/bootstrap installs it): plain TLS works, mutual TLS
//! refuses a client without a certificate, a client trusting another CA
//! fails and says why.

use std::{sync::Arc, time::Duration};

use holonet_agent::{
    observer::{
        server::{self, Listen},
        service::ObserverService,
        store::FlowStore,
    },
    relay::{
        peers::{PeerSet, PeerState, status_reason},
        service::{RelayOptions, RelayService},
    },
    tls::{ClientTlsFiles, ServerTlsFiles},
};
use holonet_lab::Pki;
use holonet_proto::observer::{ServerStatusRequest, observer_client::ObserverClient};
use tonic::transport::{Channel, Endpoint};

fn server(pki: &Pki, mutual: bool) -> ServerTlsFiles {
    ServerTlsFiles {
        cert: pki.path("server.pem"),
        key: pki.path("server.key"),
        client_cas: if mutual {
            vec![pki.path("ca.pem")]
        } else {
            vec![]
        },
    }
}

fn client(pki: &Pki, ca: &str, with_cert: bool) -> ClientTlsFiles {
    ClientTlsFiles {
        ca_files: vec![pki.path(ca)],
        cert: with_cert.then(|| pki.path("client.pem")),
        key: with_cert.then(|| pki.path("client.key")),
        server_name: None,
    }
}

/// An agent serving TLS on loopback; returns its address and a stopper.
async fn tls_agent(
    files: &ServerTlsFiles,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let store = Arc::new(FlowStore::new(16));
    let listeners = server::bind(&Listen {
        tcp: Some("127.0.0.1:0".parse().expect("addr")),
        unix: None,
        allow_remote: false,
    })
    .await
    .expect("bind")
    .with_tls(files.load().expect("server TLS files"));
    let addr = listeners.tcp_addr().expect("tcp");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(
        listeners,
        ObserverService::new(store, "tls-node"),
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop)
}

/// Connects and asks for ServerStatus; the error text a person would read.
async fn status_over_tls(
    addr: std::net::SocketAddr,
    client: &ClientTlsFiles,
    host: &str,
) -> Result<u64, String> {
    let endpoint = Endpoint::from_shared(format!("https://{host}:{}", addr.port()))
        .expect("uri")
        .tls_config(client.load().expect("client TLS files"))
        .expect("tls config")
        .connect_timeout(Duration::from_secs(5));
    let channel: Channel = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return Err(holonet_agent::tls::root_cause(&e)),
    };
    ObserverClient::new(channel)
        .server_status(ServerStatusRequest {})
        .await
        .map(|r| r.into_inner().max_flows)
        .map_err(|s| status_reason(&s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_mutual_tls_accept_the_right_clients_only() {
    let pki = Pki::new("grpc").expect("certificates");

    // Plain TLS: the server is verified, the client needs no certificate.
    let (addr, _stop) = tls_agent(&server(&pki, false)).await;
    assert_eq!(
        status_over_tls(addr, &client(&pki, "ca.pem", false), "localhost").await,
        Ok(16)
    );
    assert_eq!(
        status_over_tls(addr, &client(&pki, "ca.pem", false), "127.0.0.1").await,
        Ok(16)
    );
    // A client that trusts another CA refuses the server, and says why.
    let err = status_over_tls(addr, &client(&pki, "other-ca.pem", false), "localhost")
        .await
        .expect_err("the wrong CA must fail");
    assert!(
        err.contains("UnknownIssuer") || err.contains("certificate"),
        "{err}"
    );
    // Plaintext against a TLS port fails too.
    let plain = ObserverClient::connect(format!("http://{addr}")).await;
    let refused = match plain {
        Err(_) => true,
        Ok(mut c) => c.server_status(ServerStatusRequest {}).await.is_err(),
    };
    assert!(refused, "plaintext must not get through");

    // Mutual TLS: no client certificate, no answer; with one, an answer.
    let (addr, _stop2) = tls_agent(&server(&pki, true)).await;
    let err = status_over_tls(addr, &client(&pki, "ca.pem", false), "localhost")
        .await
        .expect_err("a client without a certificate must be refused");
    assert!(!err.is_empty());
    assert_eq!(
        status_over_tls(addr, &client(&pki, "ca.pem", true), "localhost").await,
        Ok(16)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_dials_peers_over_mutual_tls_and_reports_a_wrong_ca() {
    let pki = Pki::new("relay").expect("certificates");
    let (addr, _stop) = tls_agent(&server(&pki, true)).await;
    let peer = format!("localhost:{}", addr.port());

    let good = client(&pki, "ca.pem", true).load().expect("client files");
    let peers = Arc::new(PeerSet::start(std::slice::from_ref(&peer), Some(&good)).expect("peers"));
    let state = peers.peers()[0].settled(Duration::from_secs(10)).await;
    assert_eq!(state, PeerState::Connected);
    assert_eq!(peers.peers()[0].name(), "tls-node");
    let relay = RelayService::new(Arc::clone(&peers), RelayOptions::default());
    let status = holonet_proto::observer_encoded::observer_server::Observer::server_status(
        &relay,
        tonic::Request::new(ServerStatusRequest {}),
    )
    .await
    .expect("status")
    .into_inner();
    assert_eq!(status.num_connected_nodes.map(|v| v.value), Some(1));

    let wrong = client(&pki, "other-ca.pem", true)
        .load()
        .expect("client files");
    let peers = PeerSet::start(&[peer], Some(&wrong)).expect("peers");
    match peers.peers()[0].settled(Duration::from_secs(10)).await {
        PeerState::Unavailable { reason } => assert!(
            reason.contains("UnknownIssuer") || reason.contains("certificate"),
            "{reason}"
        ),
        other => panic!("a peer with an untrusted certificate is unavailable, not {other:?}"),
    }
}
