//! TLS and mutual TLS for the gRPC API, from PEM files named on the
//! command line (the flags are Hubble's: `--tls-cert-file`,
//! `--tls-key-file`, `--tls-client-ca-files` on servers; `--tls`,
//! `--tls-ca-cert-files`, `--tls-client-cert-file`, `--tls-client-key-file`,
//! `--tls-server-name` on clients).
//!
//! Files are read and checked here, when the command starts, so a wrong
//! path or a key given as a certificate is reported with the file's name
//! instead of as a handshake failure later. rustls with the ring provider
//! does the cryptography (no OpenSSL, no aws-lc).

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// Where Debian keeps the system's trusted CAs (used when a client asks for
/// TLS without naming its own CA files).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{what} {path}: {source}")]
    Read {
        /// Which flag's file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold what it should.
    #[error("{what} {path}: no PEM block `{expected}` in it")]
    NotPem {
        /// Which flag's file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM label looked for.
        expected: &'static str,
    },
    /// A client certificate without its key, or the reverse.
    #[error("--tls-client-cert-file and --tls-client-key-file go together; only one was given")]
    HalfIdentity,
    /// No CA to verify the server against.
    #[error(
        "TLS needs a CA to verify the server: pass --tls-ca-cert-files (no system CA bundle at {SYSTEM_CA_BUNDLE})"
    )]
    NoCa,
}

fn read_pem(what: &'static str, path: &Path, expected: &'static str) -> Result<Vec<u8>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if !String::from_utf8_lossy(&data).contains(expected) {
        return Err(TlsError::NotPem {
            what,
            path: path.to_path_buf(),
            expected,
        });
    }
    Ok(data)
}

fn read_bundle(what: &'static str, paths: &[PathBuf]) -> Result<Vec<u8>, TlsError> {
    let mut bundle = Vec::new();
    for path in paths {
        bundle.extend(read_pem(what, path, "CERTIFICATE-----")?);
        bundle.push(b'\n');
    }
    Ok(bundle)
}

/// A server's certificate, key and (for mutual TLS) the CAs its clients'
/// certificates must chain to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// PEM certificate chain (`--tls-cert-file`).
    pub cert: PathBuf,
    /// PEM private key (`--tls-key-file`).
    pub key: PathBuf,
    /// PEM CA certificates; non-empty means clients must present a
    /// certificate signed by one of them (`--tls-client-ca-files`).
    pub client_cas: Vec<PathBuf>,
}

impl ServerTlsFiles {
    /// Reads and checks the files.
    pub fn load(&self) -> Result<ServerTlsConfig, TlsError> {
        let cert = read_pem("--tls-cert-file", &self.cert, "CERTIFICATE-----")?;
        let key = read_pem("--tls-key-file", &self.key, "PRIVATE KEY-----")?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if !self.client_cas.is_empty() {
            let cas = read_bundle("--tls-client-ca-files", &self.client_cas)?;
            config = config.client_ca_root(Certificate::from_pem(cas));
        }
        Ok(config)
    }

    /// Whether clients must present certificates.
    pub fn mutual(&self) -> bool {
        !self.client_cas.is_empty()
    }
}

/// A client's view of TLS: whom to trust, what to present, which name to
/// expect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// PEM CA certificates the server's certificate must chain to
    /// (`--tls-ca-cert-files`); empty means the system's CA bundle.
    pub ca_files: Vec<PathBuf>,
    /// PEM client certificate, for servers that require mutual TLS.
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry, when it differs from
    /// the host in the address (`--tls-server-name`).
    pub server_name: Option<String>,
}

impl ClientTlsFiles {
    /// Reads and checks the files.
    pub fn load(&self) -> Result<ClientTlsConfig, TlsError> {
        let cas = if self.ca_files.is_empty() {
            let system = PathBuf::from(SYSTEM_CA_BUNDLE);
            if !system.exists() {
                return Err(TlsError::NoCa);
            }
            read_bundle("system CA bundle", &[system])?
        } else {
            read_bundle("--tls-ca-cert-files", &self.ca_files)?
        };
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(cas));
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let cert = read_pem("--tls-client-cert-file", cert, "CERTIFICATE-----")?;
                let key = read_pem("--tls-client-key-file", key, "PRIVATE KEY-----")?;
                config = config.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            _ => return Err(TlsError::HalfIdentity),
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        Ok(config)
    }
}

/// The innermost cause of an error chain, which for transport failures is
/// the one a person can act on ("Connection refused (os error 111)",
/// "invalid peer certificate: UnknownIssuer").
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = err;
    while let Some(next) = last.source() {
        last = next;
    }
    let text = last.to_string();
    if text.is_empty() {
        err.to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_wrong_files_name_the_flag_and_the_file() {
        let files = ServerTlsFiles {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
            client_cas: vec![],
        };
        let err = files.load().unwrap_err().to_string();
        assert!(
            err.starts_with("--tls-cert-file /nonexistent/cert.pem:"),
            "{err}"
        );

        let dir = std::env::temp_dir().join(format!("holonet-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let client = ClientTlsFiles {
            ca_files: vec![not_pem.clone()],
            ..Default::default()
        };
        let err = client.load().unwrap_err().to_string();
        assert!(
            err.contains("--tls-ca-cert-files") && err.contains("CERTIFICATE"),
            "{err}"
        );
        let half = ClientTlsFiles {
            ca_files: vec![],
            cert: Some(not_pem),
            key: None,
            server_name: None,
        };
        if std::path::Path::new(SYSTEM_CA_BUNDLE).exists() {
            assert!(matches!(half.load(), Err(TlsError::HalfIdentity)));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
