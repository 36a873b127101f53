//! The state every route handler can reach.

use std::sync::Arc;

use crate::config::Config;
use crate::lifecycle::Lifecycle;
use crate::registry::Registry;

/// Shared by all requests. Route families add their own fields here.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) registry: Arc<Registry>,
    pub(crate) lifecycle: Arc<Lifecycle>,
}

impl AppState {
    pub(crate) fn new(config: Config) -> Self {
        AppState {
            config,
            registry: Arc::new(Registry::new()),
            lifecycle: Arc::new(Lifecycle::new()),
        }
    }
}
