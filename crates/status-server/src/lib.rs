//! `status-server`: the TiFlash status server, ready to embed or to run.
//!
//! This is the integration crate. It maps each [`status_api::Route`] to the domain crates
//! (`profiling-core`, `remote-gc`) and serves them through `status-http`. An engine embeds the
//! whole server in a few lines:
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use status_server::{Config, StatusServer, StoreStatus};
//!
//! let server = StatusServer::new(Config::default());
//! server.registry().add_region(None, 100, 7); // table 100 has region 7 here
//! let bound = server.bind().await?;           // Ready
//! println!("listening on {}", bound.local_addr());
//! bound.serve(async { let _ = tokio::signal::ctrl_c().await; }).await; // Running … Terminated
//! # Ok(()) }
//! ```
//!
//! Main types: [`StatusServer`] (build, bind, serve), [`Config`] (every setting, also read
//! from a TOML file), [`Registry`] (the replicated regions that `sync-status` reports) and
//! [`Lifecycle`] (the store status).
#![deny(missing_docs)]

mod config;
mod lifecycle;
mod registry;
mod routes;
mod server;
mod service;
mod state;

pub use config::{Config, ConfigError, Settings};
pub use lifecycle::Lifecycle;
pub use registry::Registry;
pub use server::{BoundServer, StatusServer};
pub use status_api::StoreStatus;
