//! `status-http`: the transport under the status server.
//!
//! A hyper 1 + tokio HTTP/1.1 server behind a small [`Handler`] trait: the handler gets a
//! complete request (`http::Request<Bytes>`, body already read and capped) and returns a
//! complete response. Around it this crate enforces the limits every route needs:
//!
//! - a header read timeout, so slow or idle clients cannot hold a connection;
//! - a cap on open connections;
//! - a cap on request bodies (413 beyond it, checked against `Content-Length` first);
//! - a handler that panics answers 500, and the server keeps serving;
//! - graceful shutdown: stop accepting, let in-flight requests finish up to a deadline;
//! - an access log line per request through `tracing` (target `access`).
//!
//! `HEAD` requests are passed to the handler as they are; the transport sends the handler's
//! status and headers without the body. TLS plugs in at [`ServerConfig::tls`].
//!
//! It knows no route and no domain type: `status-server` supplies the handler.
#![deny(missing_docs)]

mod body;
mod catch;
mod config;
mod server;

pub use config::{ServerConfig, TlsConfig};
pub use server::{ConnInfo, Handler, HttpError, Server};

/// The request a [`Handler`] receives: head plus the complete body.
pub type Request = http::Request<bytes::Bytes>;
/// The response a [`Handler`] returns.
pub type Response = http::Response<bytes::Bytes>;
