//! Transport settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the transport listens and what it tolerates.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address; port 0 picks a free port.
    pub addr: SocketAddr,
    /// How long a client may take to send a complete request head; on HTTPS connections the
    /// TLS handshake gets the same time again before it.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body once its head has arrived; slower
    /// bodies get 408.
    pub body_read_timeout: Duration,
    /// Most connections open at once; further clients wait in the accept queue.
    pub max_connections: usize,
    /// Largest request body in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests may run after shutdown starts.
    pub shutdown_grace: Duration,
    /// HTTPS with client certificates when set.
    pub tls: Option<TlsConfig>,
}

impl ServerConfig {
    /// Defaults for `addr`: 10 s header timeout, 30 s body timeout, 1024 connections, 16 MiB
    /// bodies, 30 s grace.
    pub fn new(addr: SocketAddr) -> Self {
        ServerConfig {
            addr,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_body_bytes: 16 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// Paths of the PEM files for HTTPS with client certificates.
///
/// Clients must present a certificate signed by the CA. The files are read at
/// [`Server::bind`](crate::Server::bind) (an unreadable or unusable file is an error there) and
/// read again, for new connections, when they change on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The CA that client certificates must be signed by.
    pub ca_path: PathBuf,
    /// The server's certificate chain.
    pub cert_path: PathBuf,
    /// The server's private key.
    pub key_path: PathBuf,
    /// Common names allowed to call; empty: any certificate the CA signed. A client whose
    /// certificate's common name is not listed gets 403 on every request, before the handler.
    pub allowed_cn: Vec<String>,
}
