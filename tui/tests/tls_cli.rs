//! `holonet observe` as a TLS client of `holonet relay` serving mutual TLS
//! (no kernel needed: the relay's only peer is down, which it reports):
//! the right client certificate gets an answer, no certificate and a wrong
//! CA get a clear error, and the server flags refuse half a key pair.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use holonet_lab::{ChildGuard, Pki};

const BIN: &str = env!("CARGO_BIN_EXE_holonet");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn observe(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("observe")
        .args(args)
        .output()
        .expect("holonet observe")
}

#[test]
fn observe_speaks_mutual_tls_to_a_relay() {
    let pki = Pki::new("cli").expect("certificates");
    let p = |name: &str| pki.path(name).to_string_lossy().into_owned();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut relay = Command::new(BIN);
    relay
        .args([
            "relay",
            "--peer",
            "127.0.0.1:1",
            "--listen-address",
            &listen,
        ])
        .args([
            "--tls-cert-file",
            &p("server.pem"),
            "--tls-key-file",
            &p("server.key"),
        ])
        .args(["--tls-client-ca-files", &p("ca.pem")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _relay = ChildGuard::spawn("relay", relay).expect("relay");
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(listen.parse::<SocketAddr>().expect("addr")).is_err() {
        assert!(Instant::now() < deadline, "relay not listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = format!("tls://localhost:{port}");

    let ok = observe(&[
        "--server",
        &server,
        "--tls-ca-cert-files",
        &p("ca.pem"),
        "--tls-client-cert-file",
        &p("client.pem"),
        "--tls-client-key-file",
        &p("client.key"),
        "--last",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:1"),
        "the relay names its peer that is down: {stderr}"
    );

    // --tls with an IP address and the certificate's name given explicitly.
    let by_ip = observe(&[
        "--server",
        &listen,
        "--tls",
        "--tls-ca-cert-files",
        &p("ca.pem"),
        "--tls-client-cert-file",
        &p("client.pem"),
        "--tls-client-key-file",
        &p("client.key"),
        "--tls-server-name",
        "localhost",
        "--last",
        "1",
    ]);
    assert!(
        by_ip.status.success(),
        "{}",
        String::from_utf8_lossy(&by_ip.stderr)
    );

    let no_cert = observe(&[
        "--server",
        &server,
        "--tls-ca-cert-files",
        &p("ca.pem"),
        "--last",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&no_cert.stderr);
    assert!(
        !no_cert.status.success(),
        "mutual TLS refuses a client without a certificate"
    );
    assert!(
        stderr.contains("holonet: error:") && stderr.contains("--tls-client-cert-file"),
        "the error says what to pass: {stderr}"
    );

    let wrong_ca = observe(&[
        "--server",
        &server,
        "--tls-ca-cert-files",
        &p("other-ca.pem"),
        "--tls-client-cert-file",
        &p("client.pem"),
        "--tls-client-key-file",
        &p("client.key"),
    ]);
    let stderr = String::from_utf8_lossy(&wrong_ca.stderr);
    assert!(!wrong_ca.status.success());
    assert!(
        stderr.contains("UnknownIssuer") && stderr.contains("--tls-ca-cert-files"),
        "the error says what is wrong and what to check: {stderr}"
    );

    let plain = observe(&["--server", &listen, "--last", "1", "--timeout", "2s"]);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(!plain.status.success(), "plaintext to a TLS port fails");
    assert!(stderr.contains("--tls"), "{stderr}");

    let stray = observe(&["--server", &listen, "--tls-ca-cert-files", &p("ca.pem")]);
    let stderr = String::from_utf8_lossy(&stray.stderr);
    assert!(
        !stray.status.success() && stderr.contains("need --tls"),
        "{stderr}"
    );

    let half = Command::new(BIN)
        .args(["relay", "--peer", "x", "--tls-cert-file", &p("server.pem")])
        .output()
        .expect("holonet relay");
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("--tls-key-file"));
}
