//! Certificates for loopback TLS: a CA generated on the spot, and server certificates for
//! `127.0.0.1` and `localhost` it signs (a partner stand-in's, a webhook server's).

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// A CA that exists only in this process.
#[derive(Debug)]
pub struct LocalCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM (what `tls.crt` and `tls.key` hold).
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    pub cert_pem: String,
    pub key_pem: String,
}

impl LocalCa {
    pub fn new(common_name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (a webhook configuration's `caBundle`, decoded).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A server certificate for `127.0.0.1`, `localhost` and `names`.
    pub fn server_certificate(&self, names: &[&str]) -> Result<IssuedCertificate, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut sans: Vec<String> = vec!["localhost".to_string()];
        sans.extend(names.iter().map(|n| n.to_string()));
        let mut params = CertificateParams::new(sans)?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A fresh directory under the system's temporary one holding a server certificate for
    /// `names` that this CA signed, as `tls.crt` and `tls.key`: what a mounted Secret gives a
    /// webhook server. The caller removes it when done.
    pub fn serving_directory(&self, names: &[&str]) -> std::io::Result<std::path::PathBuf> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("serving-certs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let issued = self
            .server_certificate(names)
            .map_err(std::io::Error::other)?;
        std::fs::write(dir.join("tls.crt"), issued.cert_pem)?;
        std::fs::write(dir.join("tls.key"), issued.key_pem)?;
        Ok(dir)
    }

    /// A client certificate with `common_name`.
    pub fn client_certificate(&self, common_name: &str) -> Result<IssuedCertificate, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
