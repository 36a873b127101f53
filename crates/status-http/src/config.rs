//! Transport settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the transport listens and what it tolerates.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Listen address; port 0 picks a free port.
    pub addr: SocketAddr,
    /// How long a client may take to send a complete request head.
    pub header_read_timeout: Duration,
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
    /// Defaults for `addr`: 10 s header timeout, 1024 connections, 16 MiB bodies, 30 s grace.
    pub fn new(addr: SocketAddr) -> Self {
        ServerConfig {
            addr,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_body_bytes: 16 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            tls: None,
        }
    }
}

/// Paths of the PEM files for HTTPS with client certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The CA that client certificates must be signed by.
    pub ca_path: PathBuf,
    /// The server's certificate chain.
    pub cert_path: PathBuf,
    /// The server's private key.
    pub key_path: PathBuf,
    /// Common names allowed to call; empty: any certificate the CA signed.
    pub allowed_cn: Vec<String>,
}
