//! The accept loop, per-connection service and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::body::{read_capped, BodyError};
use crate::catch::CatchUnwind;
use crate::config::ServerConfig;
use crate::{Request, Response};

/// Serves requests: the one thing the transport asks of the layer above.
///
/// The request's extensions carry a [`ConnInfo`]. The returned future may be dropped before it
/// completes when the client goes away; a handler that starts long work should stop it then.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, req: Request) -> impl Future<Output = Response> + Send;
}

/// What the transport knows about the connection a request came on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// The common name of the client certificate, on TLS connections that presented one.
    pub peer_common_name: Option<String>,
}

/// Errors that stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// TLS settings could not be loaded.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
}

/// A bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
}

impl Server {
    /// Binds the listen address (port 0 picks a free port).
    pub async fn bind(config: ServerConfig) -> Result<Server, HttpError> {
        let bind_err = |source| HttpError::Bind {
            addr: config.addr,
            source,
        };
        let listener = TcpListener::bind(config.addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        if config.tls.is_some() {
            return Err(HttpError::Tls(
                "this build of status-http serves plain HTTP only".into(),
            ));
        }
        Ok(Server {
            listener,
            local_addr,
            config,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish for up to [`ServerConfig::shutdown_grace`].
    pub async fn serve<H: Handler>(self, handler: Arc<H>, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            local_addr,
            config,
        } = self;
        let config = Arc::new(config);
        let graceful = GracefulShutdown::new();
        let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
        tracing::info!(%local_addr, "status server listening");
        tokio::pin!(shutdown);

        loop {
            let permit = tokio::select! {
                () = &mut shutdown => break,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, remote_addr) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let info = ConnInfo {
                remote_addr,
                peer_common_name: None,
            };
            let handler = handler.clone();
            let cfg = config.clone();
            let service = service_fn(move |req| {
                let handler = handler.clone();
                let info = info.clone();
                let limit = cfg.max_body_bytes;
                async move { Ok::<_, Infallible>(serve_one(handler, info, req, limit).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_read_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%remote_addr, error = %e, "connection ended with an error");
                }
                drop(permit);
            });
        }

        drop(listener);
        tracing::info!("status server stopped accepting; finishing in-flight requests");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(config.shutdown_grace) => {
                tracing::warn!(grace = ?config.shutdown_grace, "shutdown grace period over; dropping remaining connections");
            }
        }
    }
}

async fn serve_one<H: Handler>(
    handler: Arc<H>,
    info: ConnInfo,
    req: hyper::Request<Incoming>,
    limit: usize,
) -> http::Response<Full<Bytes>> {
    let start = Instant::now();
    let (mut parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let remote = info.remote_addr;

    let response = match read_capped(&parts.headers, body, limit).await {
        Err(BodyError::TooLarge) => plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body too large: the limit is {limit} bytes"),
        ),
        Err(BodyError::Broken(e)) => plain(
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {e}"),
        ),
        Ok(bytes) => {
            parts.extensions.insert(info);
            let req = Request::from_parts(parts, bytes);
            match CatchUnwind::new(handler.handle(req)).await {
                Ok(resp) => resp,
                Err(panic) => {
                    tracing::error!(%method, %path, %panic, "request handler panicked");
                    plain(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("internal error while serving {method} {path}; the server keeps serving"),
                    )
                }
            }
        }
    };

    tracing::info!(
        target: "access",
        %remote,
        %method,
        path = %path,
        status = response.status().as_u16(),
        bytes = response.body().len(),
        elapsed_ms = start.elapsed().as_secs_f64() * 1e3,
    );

    let (mut parts, body) = response.into_parts();
    if method == Method::HEAD {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        return http::Response::from_parts(parts, Full::new(Bytes::new()));
    }
    http::Response::from_parts(parts, Full::new(body))
}

fn plain(status: StatusCode, sentence: String) -> Response {
    let mut resp = http::Response::new(Bytes::from(format!("{sentence}\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
