//! Building, binding and serving the whole status server.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use status_api::StoreStatus;
use status_http::{HttpError, ServerConfig};

use crate::config::Config;
use crate::lifecycle::Lifecycle;
use crate::registry::Registry;
use crate::service::Service;
use crate::state::AppState;

/// The status server before it listens. Holds the registry and life cycle that the engine
/// feeds; they stay valid (shared) after binding.
#[derive(Debug)]
pub struct StatusServer {
    state: Arc<AppState>,
}

impl StatusServer {
    /// A server with `config`; the store status starts `Idle`.
    pub fn new(config: Config) -> Self {
        StatusServer {
            state: Arc::new(AppState::new(config)),
        }
    }

    /// The registry of replicated regions that `sync-status` reports.
    pub fn registry(&self) -> Arc<Registry> {
        self.state.registry.clone()
    }

    /// The store life cycle that `store-status` reports.
    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.state.lifecycle.clone()
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The remote GC that the `/tiflash/remote/...` routes drive (owner election, GC trigger,
    /// upload flag); `None` if its election could not start (those routes then answer 500).
    /// An engine plugs in its GC and uploader with `RemoteGc::set_tasks`.
    pub fn remote_gc(&self) -> Option<Arc<remote_gc::RemoteGc>> {
        self.state.remote.get()
    }

    /// Loads the TLS files (if configured) and binds the listen address; the store status
    /// becomes `Ready`. A TLS file that cannot be read or used is an error naming it.
    pub async fn bind(self) -> Result<BoundServer, HttpError> {
        let config = &self.state.config;
        let mut transport = ServerConfig::new(config.status_addr);
        transport.tls = config.tls.clone();
        transport.header_read_timeout = config.header_timeout;
        let server = status_http::Server::bind(transport).await?;
        self.state.lifecycle.set(StoreStatus::Ready);
        Ok(BoundServer {
            state: self.state,
            server,
        })
    }
}

/// A bound server: knows its address, serves when asked.
#[derive(Debug)]
pub struct BoundServer {
    state: Arc<AppState>,
    server: status_http::Server,
}

impl BoundServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// `https` when the server speaks HTTPS with client certificates, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.server.is_tls() {
            "https"
        } else {
            "http"
        }
    }

    /// The registry of replicated regions.
    pub fn registry(&self) -> Arc<Registry> {
        self.state.registry.clone()
    }

    /// The store life cycle.
    pub fn lifecycle(&self) -> Arc<Lifecycle> {
        self.state.lifecycle.clone()
    }

    /// Serves until `shutdown` completes: `Running` while serving, `Stopping` once shutdown
    /// starts (in-flight requests finish), `Terminated` when done.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let lifecycle = self.state.lifecycle.clone();
        lifecycle.set(StoreStatus::Running);
        let service = Arc::new(Service::new(self.state.clone()));
        let stopping = {
            let lifecycle = lifecycle.clone();
            async move {
                shutdown.await;
                lifecycle.set(StoreStatus::Stopping);
            }
        };
        self.server.serve(service, stopping).await;
        lifecycle.set(StoreStatus::Terminated);
    }
}
