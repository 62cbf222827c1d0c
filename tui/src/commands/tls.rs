//! The client side of TLS for commands that talk to an Observer API
//! (`holonet observe` and the dashboard). Flag names are `hubble observe`'s, so scripts carry over.

use std::path::PathBuf;

use anyhow::bail;
use holonet_agent::tls::ClientTlsFiles;
use tonic::transport::ClientTlsConfig;

pub(crate) use crate::ui::source::{connect_first, tls_hint};

/// `--tls`, `--tls-ca-cert-files`, `--tls-client-cert-file`,
/// `--tls-client-key-file`, `--tls-server-name`.
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct ClientTlsArgs {
    /// Connect with TLS (implied by a tls:// --server address).
    #[arg(long, help_heading = "Source")]
    pub(crate) tls: bool,
    /// PEM CA certificates the server's certificate must chain to
    /// (comma-separated or repeated) [default: the system's CAs].
    #[arg(
        long,
        value_name = "FILE",
        value_delimiter = ',',
        help_heading = "Source"
    )]
    pub(crate) tls_ca_cert_files: Vec<PathBuf>,
    /// PEM client certificate, for servers that require mutual TLS.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_client_key_file",
        help_heading = "Source"
    )]
    pub(crate) tls_client_cert_file: Option<PathBuf>,
    /// The client certificate's PEM private key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_client_cert_file",
        help_heading = "Source"
    )]
    pub(crate) tls_client_key_file: Option<PathBuf>,
    /// Name the server's certificate must carry, when it is not the host
    /// in --server (e.g. a certificate for a DNS name, reached by IP).
    #[arg(long, value_name = "NAME", help_heading = "Source")]
    pub(crate) tls_server_name: Option<String>,
}

impl ClientTlsArgs {
    /// The server address without a `tls://` prefix, and the TLS settings
    /// when `--tls` or that prefix asks for TLS. TLS flags without TLS are
    /// refused rather than ignored.
    pub(crate) fn config(
        &self,
        server: Option<&str>,
    ) -> anyhow::Result<(Option<String>, Option<ClientTlsConfig>)> {
        let (server, prefixed) = match server {
            Some(s) => match s.strip_prefix("tls://") {
                Some(rest) => (Some(rest.to_string()), true),
                None => (Some(s.to_string()), false),
            },
            None => (None, false),
        };
        let flags_given = !self.tls_ca_cert_files.is_empty()
            || self.tls_client_cert_file.is_some()
            || self.tls_server_name.is_some();
        if !(self.tls || prefixed) {
            if flags_given {
                bail!("--tls-* options need --tls (or a tls:// --server address)");
            }
            return Ok((server, None));
        }
        let files = ClientTlsFiles {
            ca_files: self.tls_ca_cert_files.clone(),
            cert: self.tls_client_cert_file.clone(),
            key: self.tls_client_key_file.clone(),
            server_name: self.tls_server_name.clone(),
        };
        Ok((server, Some(files.load()?)))
    }

    /// Whether a client certificate was given (for hints on refusals).
    pub(crate) fn client_cert(&self) -> bool {
        self.tls_client_cert_file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_asked_for_by_flag_or_prefix_and_stray_flags_are_refused() {
        let none = ClientTlsArgs::default();
        let (server, tls) = none.config(Some("h:1")).unwrap();
        assert_eq!((server.as_deref(), tls.is_none()), (Some("h:1"), true));
        let stray = ClientTlsArgs {
            tls_server_name: Some("x".into()),
            ..Default::default()
        };
        let err = stray.config(Some("h:1")).unwrap_err().to_string();
        assert!(err.contains("need --tls"), "{err}");
        let missing = ClientTlsArgs {
            tls_ca_cert_files: vec!["/nonexistent/ca.pem".into()],
            ..Default::default()
        };
        let err = format!("{:#}", missing.config(Some("tls://h:1")).unwrap_err());
        assert!(
            err.contains("--tls-ca-cert-files /nonexistent/ca.pem"),
            "{err}"
        );
    }
}
