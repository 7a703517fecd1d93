//! HTTPS for the load generator (`--tls-ca FILE`): a rustls client with the
//! ring provider, as the hub itself uses, that trusts only the CA in that
//! PEM file, offers ALPN `http/1.1` and X25519 first. The server's name is its IP address
//! (`--addr`), so the certificate must name it (`IP:127.0.0.1`).
//!
//! Subscribers drive a [`rustls::ClientConnection`] over their non-blocking
//! sockets themselves (`subscribe.rs`); publishers and the handshake mode
//! use [`Wire`], a blocking stream that is TCP or TLS over TCP.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// What every TLS connection of a run shares.
#[derive(Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl Client {
    /// A client for the server at `addr` that trusts the certificates in
    /// `ca_file`. Without `resumption`, every handshake is a full one (no
    /// session tickets or IDs are kept).
    pub fn new(ca_file: &Path, addr: SocketAddr, resumption: bool) -> Result<Client, String> {
        let what = ca_file.display();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| format!("{what}: {e}"))? {
            let cert = cert.map_err(|e| format!("{what}: {e}"))?;
            roots.add(cert).map_err(|e| format!("{what}: {e}"))?;
        }
        if roots.is_empty() {
            return Err(format!("{what} holds no PEM certificate"));
        }
        // The hub's own provider (src/server/tls.rs says why ring), which
        // rustls deprecates for its lack of post-quantum key exchange.
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        // ring's default order puts P-384 first, and a rustls client sends
        // a key share for its first group only, so every handshake would
        // be a P-384 one (slow in ring). Browsers, curl and OpenSSL offer
        // X25519 first (Chromium and Firefox beside a post-quantum hybrid
        // that ring lacks): so does the load generator.
        provider.kx_groups = vec![
            rustls::crypto::ring::kx_group::X25519,
            rustls::crypto::ring::kx_group::SECP256R1,
            rustls::crypto::ring::kx_group::SECP384R1,
        ];
        let provider = Arc::new(provider);
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if !resumption {
            config.resumption = rustls::client::Resumption::disabled();
        }
        Ok(Client {
            config: Arc::new(config),
            name: ServerName::IpAddress(addr.ip().into()),
        })
    }

    /// A new session, nothing sent yet.
    pub fn session(&self) -> io::Result<ClientConnection> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone()).map_err(io::Error::other)
    }
}

/// A blocking connection: plain TCP, or TLS over it.
pub enum Wire {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Wire {
    /// Wraps a connected socket; with `tls`, the handshake happens at the
    /// first read or write, or in [`Wire::handshake`].
    pub fn new(tcp: TcpStream, tls: Option<&Client>) -> io::Result<Wire> {
        Ok(match tls {
            None => Wire::Plain(tcp),
            Some(client) => Wire::Tls(Box::new(StreamOwned::new(client.session()?, tcp))),
        })
    }

    /// Completes the TLS handshake now (nothing to do on plain TCP).
    pub fn handshake(&mut self) -> io::Result<()> {
        if let Wire::Tls(tls) = self {
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock)?;
            }
        }
        Ok(())
    }
}

impl Wire {
    /// Whether the TLS handshake resumed a session.
    pub fn resumed(&self) -> bool {
        match self {
            Wire::Plain(_) => false,
            Wire::Tls(tls) => tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(tcp) => tcp.read(buf),
            Wire::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(tcp) => tcp.write(buf),
            Wire::Tls(tls) => tls.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.write_all(buf),
            // One record for the whole request, then onto the socket.
            Wire::Tls(tls) => {
                tls.conn.writer().write_all(buf)?;
                tls.flush()
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(tcp) => tcp.flush(),
            Wire::Tls(tls) => tls.flush(),
        }
    }
}
