//! `status-http`: the transport under the status server.
//!
//! A hyper 1 + tokio HTTP/1.1 server behind a small [`Handler`] trait: the handler gets a
//! complete request (`http::Request<Bytes>`, body already read and capped) and returns a
//! complete response. Around it this crate enforces the limits every route needs:
//!
//! - a header read timeout, so slow or idle clients cannot hold a connection, and a body read
//!   timeout (408);
//! - a cap on open connections;
//! - a cap on request bodies (413 beyond it, checked against `Content-Length` first); a `GET` or
//!   `HEAD` with a body is a 400;
//! - a request hyper cannot parse (not HTTP/1.1, a head too large) gets its 400/414/431 with a
//!   one-sentence body like every other error;
//! - a handler that panics answers 500, and the server keeps serving;
//! - graceful shutdown: stop accepting, let in-flight requests finish up to a deadline;
//! - an access log line per request through `tracing` (target `access`).
//!
//! `HEAD` requests are passed to the handler as they are; the transport sends the handler's
//! status and headers without the body.
//!
//! With [`ServerConfig::tls`] set it speaks HTTPS only (rustls, `ring` provider): clients must
//! present a certificate signed by the configured CA; with [`TlsConfig::allowed_cn`] set, a
//! client whose certificate's common name is not listed gets 403 on every request, before the
//! handler runs. The handler finds the common name in [`ConnInfo::peer_common_name`]. Renewed
//! certificate files are picked up for new connections without a restart; plain HTTP on the
//! HTTPS port gets a 400 sentence and the connection is closed.
//!
//! It knows no route and no domain type: `status-server` supplies the handler.
#![deny(missing_docs)]

mod body;
mod catch;
mod config;
mod malformed;
mod server;
mod tls;

pub use config::{ServerConfig, TlsConfig};
pub use server::{ConnInfo, Handler, HttpError, Server};

/// The request a [`Handler`] receives: head plus the complete body.
pub type Request = http::Request<bytes::Bytes>;
/// The response a [`Handler`] returns.
pub type Response = http::Response<bytes::Bytes>;
