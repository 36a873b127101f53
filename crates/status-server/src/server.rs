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

    /// Binds the listen address; the store status becomes `Ready`.
    pub async fn bind(self) -> Result<BoundServer, HttpError> {
        let transport = ServerConfig::new(self.state.config.status_addr);
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
