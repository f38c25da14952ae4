//! The keys and certificates of the throwaway control plane, made with the
//! `openssl` command: a CA, the API server's serving certificate for
//! 127.0.0.1 (so every client verifies the server, as in a real cluster),
//! and the key pair that signs ServiceAccount tokens. Elliptic-curve keys,
//! because they are made in milliseconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Context, Outcome};

/// The files [`Pki::make`] writes.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate clients trust.
    pub ca_cert: PathBuf,
    /// The API server's certificate (for 127.0.0.1 and localhost).
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// The private key that signs ServiceAccount tokens.
    pub sa_key: PathBuf,
    /// Its public half, which verifies them.
    pub sa_pub: PathBuf,
}

impl Pki {
    /// Makes everything under `dir`.
    pub fn make(dir: &Path) -> Outcome<Pki> {
        std::fs::create_dir_all(dir).context(format!("cannot create {}", dir.display()))?;
        let f = |name: &str| dir.join(name);
        let pki = Pki {
            ca_cert: f("ca.crt"),
            server_cert: f("apiserver.crt"),
            server_key: f("apiserver.key"),
            sa_key: f("sa.key"),
            sa_pub: f("sa.pub"),
        };
        let ca_key = f("ca.key");
        let csr = f("apiserver.csr");
        let ext = f("apiserver.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n\
             extendedKeyUsage=serverAuth\n",
        )
        .context("cannot write the certificate's extensions")?;
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        openssl(
            &[
                &["req", "-x509", "-nodes", "-days", "2"],
                &ec[..],
                &["-subj", "/CN=rds-csi-k8s-e2e-ca", "-keyout"],
                &[p(&ca_key), "-out", p(&pki.ca_cert)],
            ]
            .concat(),
        )?;
        openssl(
            &[
                &["req", "-nodes"],
                &ec[..],
                &["-subj", "/CN=kube-apiserver", "-keyout"],
                &[p(&pki.server_key), "-out", p(&csr)],
            ]
            .concat(),
        )?;
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            p(&csr),
            "-CA",
            p(&pki.ca_cert),
            "-CAkey",
            p(&ca_key),
            "-CAcreateserial",
            "-extfile",
            p(&ext),
            "-out",
            p(&pki.server_cert),
        ])?;
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            p(&pki.sa_key),
        ])?;
        openssl(&[
            "ec",
            "-in",
            p(&pki.sa_key),
            "-pubout",
            "-out",
            p(&pki.sa_pub),
        ])?;
        Ok(pki)
    }
}

fn p(path: &Path) -> &str {
    // Paths under the tier's scratch folder, which is made from UTF-8 parts.
    path.to_str().unwrap_or_default()
}

fn openssl(args: &[&str]) -> Outcome {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .context("cannot run openssl (Debian: apt-get install openssl)")?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_certificate_is_for_loopback_and_signed_by_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::make(dir.path()).unwrap();
        let verify = Command::new("openssl")
            .args(["verify", "-CAfile", p(&pki.ca_cert), p(&pki.server_cert)])
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(&pki.server_cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("IP Address:127.0.0.1"), "{text}");
        assert!(pki.sa_pub.is_file() && pki.sa_key.is_file());
    }
}
