//! Patched: HTTPS on rustls only (upstream also offered OpenSSL). The
//! handshake happens on the connection's own thread, at its first read, not
//! on the accept thread, so a slow handshake holds up only its connection.

pub(crate) mod rustls;
pub(crate) use self::rustls::RustlsContext as SslContextImpl;
pub(crate) use self::rustls::RustlsStream as SslStream;
