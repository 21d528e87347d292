//! The webhook's serving certificate: `tls.crt` and `tls.key` from a directory (the mounted
//! Secret cert-manager keeps renewed) or from the operator's own Secret
//! ([`super::certificates`]), swapped in while connections keep being served when they
//! change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {source}; mount the webhook's certificate Secret there")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} holds no PEM certificate")]
    NoCertificate { origin: String },
    #[error("{origin} holds no usable PEM private key: {message}")]
    BadKey { origin: String, message: String },
}

/// The files as last read, and the key they make.
#[derive(Debug)]
struct Loaded {
    files: (Vec<u8>, Vec<u8>),
    key: Arc<CertifiedKey>,
}

/// The certificate the server presents; cheap to clone, clones share it.
#[derive(Clone, Debug)]
pub struct ServingCertificate {
    /// Where the files are; `None` when the operator issues the certificate itself.
    dir: Option<PathBuf>,
    current: Arc<RwLock<Option<Loaded>>>,
}

impl ServingCertificate {
    /// Nothing loaded yet; [`Self::reload`] reads the files.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            current: Arc::default(),
        }
    }

    /// Nothing loaded yet; [`Self::install`] gives it the certificate the operator issued.
    pub fn issued_by_operator() -> Self {
        Self {
            dir: None,
            current: Arc::default(),
        }
    }

    /// Whether a certificate is being served.
    pub fn is_loaded(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// The directory the files are read from, if they are.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Reads the files again; returns whether the certificate changed. On error the
    /// certificate loaded before (if any) stays in use.
    pub fn reload(&self) -> Result<bool, CertificateError> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        let cert_path = dir.join("tls.crt");
        let key_path = dir.join("tls.key");
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| CertificateError::Unreadable {
                path: path.to_path_buf(),
                source,
            })
        };
        let files = (read(&cert_path)?, read(&key_path)?);
        self.install(
            files,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )
    }

    /// Serves `cert_pem` (the chain) with `key_pem` from the next handshake on; returns
    /// whether they differ from what was served. On error what was served stays.
    /// `cert_origin` and `key_origin` name where they came from, for the error.
    pub fn install(
        &self,
        files: (Vec<u8>, Vec<u8>),
        cert_origin: &str,
        key_origin: &str,
    ) -> Result<bool, CertificateError> {
        if self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|l| l.files == files)
        {
            return Ok(false);
        }
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&files.0)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(CertificateError::NoCertificate {
                origin: cert_origin.to_string(),
            });
        }
        let bad_key = |message: String| CertificateError::BadKey {
            origin: key_origin.to_string(),
            message,
        };
        let key = PrivateKeyDer::from_pem_slice(&files.1).map_err(|e| bad_key(e.to_string()))?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| bad_key(e.to_string()))?;
        let key = Arc::new(CertifiedKey::new(chain, signing));
        key.keys_match().map_err(|e| {
            bad_key(format!(
                "it does not belong to the certificate in {cert_origin} ({e})"
            ))
        })?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Loaded { files, key });
        Ok(true)
    }

    /// A TLS server configuration that presents whatever certificate is current at each
    /// handshake.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self.clone()));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|l| l.key.clone())
    }
}
