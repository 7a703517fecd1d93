//! HTTPS served by the hub itself: the certificate chain and private key
//! from PEM files, handed to rustls (ring provider) through a resolver that
//! can swap them while the server runs, so that a renewed certificate is
//! picked up without a restart ([`TlsReloader::reload`], which the binary
//! calls on SIGHUP). New connections get the new pair; open streams keep
//! the session they have.
//!
//! The handshake happens on the connection's own thread, at its first read
//! (`vendor/tiny_http/src/ssl/rustls.rs`), so a slow or silent client holds
//! up nothing but its connection, under the same idle and head timeouts as
//! a plain one.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use log::info;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::kx_group;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::Error;

/// Where the certificate and its key are, as PEM files (`--tls-cert`,
/// `--tls-key`). The certificate file may hold the chain after the
/// server's own certificate, as certbot's `fullchain.pem` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    pub key: PathBuf,
}

/// The pair being served, and where to read it again.
pub(crate) struct Certificates {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// Reads the pair.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `tls_cert` or `tls_key`: a file that
    /// cannot be read, holds no certificate or key, or a key that does not
    /// belong to the certificate.
    pub(crate) fn load(files: TlsFiles) -> Result<Arc<Certificates>, Error> {
        // ring builds with nothing but the C compiler a Rust build already
        // has, and quickly; rustls deprecates its provider because it has
        // no post-quantum key exchange (X25519MLKEM768), which aws-lc-rs
        // has at the price of a much longer C build. The README says so.
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        // X25519 first: what browsers, curl and OpenSSL send a key share
        // for, and about four times cheaper than P-384, which ring's
        // default order puts first (BENCHMARKS.md, "HTTPS").
        provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
        let provider = Arc::new(provider);
        let pair = read_pair(&files, &provider)?;
        Ok(Arc::new(Certificates {
            files,
            provider,
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// The rustls settings for the server: TLS 1.2 and 1.3, no client
    /// certificates, ALPN `http/1.1` (the hub speaks nothing else), and
    /// this resolver for the certificate.
    pub(crate) fn server_config(self: &Arc<Certificates>) -> Result<rustls::ServerConfig, Error> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("tls_cert", &e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Reads the files again and, if the pair is good, serves it from now
    /// on; else keeps the pair it had.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        let pair = read_pair(&self.files, &self.provider)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(pair);
        info!(
            "TLS certificate reloaded from {}",
            self.files.cert.display()
        );
        Ok(())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        ))
    }
}

/// Reloads the certificate and key of a running server: see
/// [`Server::tls_reloader`](super::Server::tls_reloader).
#[derive(Clone, Debug)]
pub struct TlsReloader(pub(crate) Arc<Certificates>);

impl TlsReloader {
    /// Reads the certificate and key files again. If they hold a good pair,
    /// new connections get it from now on and open ones go on; if not, the
    /// server keeps serving the pair it had.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `tls_cert` or `tls_key`, saying what
    /// is wrong with the files.
    pub fn reload(&self) -> Result<(), Error> {
        self.0.reload()
    }
}

fn tls_error(field: &'static str, why: &str) -> Error {
    Error::InvalidConfig {
        field,
        why: why.to_owned(),
    }
}

fn read_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, Error> {
    let cert_path = files.cert.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error("tls_cert", &format!("{cert_path}: {e}")))?;
    if chain.is_empty() {
        let why = format!("{cert_path} holds no PEM certificate");
        return Err(tls_error("tls_cert", &why));
    }
    let key_path = files.key.display();
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls_error("tls_key", &format!("{key_path}: {e}")))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        let why = format!("{key_path} is not the key of the certificate in {cert_path}: {e}");
        tls_error("tls_key", &why)
    })
}
