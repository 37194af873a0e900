//! Certificates for the TLS tests, made with openssl: a CA, a server certificate for
//! 127.0.0.1 and localhost, and a client certificate.

use anyhow::{ensure, Result};

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, made with
/// the openssl command line.
pub struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    pub fn make() -> Result<Certs> {
        let dir = tempfile::tempdir()?;
        let run = |args: &[&str]| -> Result<()> {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()?;
            ensure!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        };
        std::fs::write(
            dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )?;
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=gregor-test-ca",
        ])?;
        for (name, subject) in [
            ("server", "/CN=localhost"),
            ("client", "/O=acme/OU=eng/CN=alice"),
        ] {
            run(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                subject,
            ])?;
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ])?;
        }
        Ok(Certs { dir })
    }

    /// The server's key and certificate in one PEM keystore file; its path.
    pub fn server_keystore(&self) -> Result<String> {
        let key_and_chain = format!("{}{}", self.read("server.key")?, self.read("server.pem")?);
        std::fs::write(self.dir.path().join("server-keystore.pem"), key_and_chain)?;
        Ok(self.path("server-keystore.pem"))
    }

    pub fn path(&self, f: &str) -> String {
        self.dir.path().join(f).display().to_string()
    }

    pub fn read(&self, f: &str) -> Result<String> {
        Ok(std::fs::read_to_string(self.dir.path().join(f))?)
    }

    pub fn roots(&self) -> Result<rustls::RootCertStore> {
        let mut roots = rustls::RootCertStore::empty();
        for (_, der) in gregor::security::keystore::pem_blocks(&self.read("ca.pem")?)
            .map_err(anyhow::Error::msg)?
        {
            roots.add(rustls::pki_types::CertificateDer::from(der))?;
        }
        Ok(roots)
    }

    pub fn client_identity(
        &self,
    ) -> Result<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )> {
        self.identity("client")
    }

    /// The chain and key of `name` ("client", or "server": the certificate of CN=localhost).
    pub fn identity(
        &self,
        name: &str,
    ) -> Result<(
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    )> {
        let certs = gregor::security::keystore::pem_blocks(&self.read(&format!("{name}.pem"))?)
            .map_err(anyhow::Error::msg)?;
        let key = gregor::security::keystore::pem_blocks(&self.read(&format!("{name}.key"))?)
            .map_err(anyhow::Error::msg)?;
        Ok((
            certs.into_iter().map(|(_, d)| d.into()).collect(),
            rustls::pki_types::PrivateKeyDer::Pkcs8(key[0].1.clone().into()),
        ))
    }
}
