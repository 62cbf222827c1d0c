//! Throw-away certificates for TLS tests, made by the `openssl` command
//! (scripts/bootstrap installs it): two CAs, a server certificate for
//! `localhost` and `127.0.0.1`, and a client certificate, in a temporary
//! directory that is removed on drop.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A temporary directory of PEM files: `ca.pem`/`ca.key`,
/// `other-ca.pem`/`other-ca.key` (a CA nothing is signed by, to test
/// refusals), `server.pem`/`server.key` and `client.pem`/`client.key`
/// (both signed by `ca`).
#[derive(Debug)]
pub struct Pki {
    dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("running openssl (scripts/bootstrap installs it): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

impl Pki {
    /// Makes the certificates in a fresh directory named after `tag` and
    /// this process.
    pub fn new(tag: &str) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!("holonet-pki-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let pki = Self { dir };
        let dir = pki.dir.as_path();
        for ca in ["ca", "other-ca"] {
            let subject = format!("/CN=holonet test {ca}");
            let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    &subject,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                    "-keyout",
                    &key,
                    "-out",
                    &pem,
                ],
            )?;
        }
        for (name, ext) in [
            (
                "server",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            let ext_file = format!("{name}.ext");
            std::fs::write(dir.join(&ext_file), ext).map_err(|e| e.to_string())?;
            let subject = format!("/CN=holonet test {name}");
            let (key, csr, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-subj",
                    &subject,
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                ],
            )?;
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-extfile",
                    &ext_file,
                    "-out",
                    &pem,
                ],
            )?;
        }
        Ok(pki)
    }

    /// A file of the set, e.g. `ca.pem`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
