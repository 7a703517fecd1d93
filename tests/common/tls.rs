//! A certificate authority made in the test, for HTTPS: it issues server
//! certificates for `localhost` and 127.0.0.1 as PEM files, and makes
//! rustls clients that trust it alone.

// rustls deprecates its ring provider (no post-quantum key exchange); the
// hub uses it too, and says why in src/server/tls.rs.
#![allow(deprecated)]

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA made for one test, and the certificates it signs.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// Where its files go; removed with it.
    pub dir: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "sse-hub test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = std::env::temp_dir().join(format!("sse-hub-tls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TestCa { cert, key, dir }
    }

    /// A server certificate for `localhost` and 127.0.0.1 with this common
    /// name, written as `<file>.pem` and `<file>.key`; returns the two paths
    /// and the certificate's DER.
    pub fn issue(&self, file: &str, common_name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path, cert.der().to_vec())
    }

    /// A client that trusts this CA alone and offers ALPN `http/1.1`.
    pub fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let mut provider = rustls::crypto::ring::default_provider();
        // X25519 first, as browsers and curl offer it.
        provider.kx_groups = vec![
            rustls::crypto::ring::kx_group::X25519,
            rustls::crypto::ring::kx_group::SECP256R1,
        ];
        let provider = Arc::new(provider);
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestCa {
    /// The CA's own certificate as a PEM file, for clients that take one
    /// (`curl --cacert`, `NODE_EXTRA_CA_CERTS`, Python's `ssl`).
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.join("ca.pem");
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }
}
