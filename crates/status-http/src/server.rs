//! The accept loop, the TLS handshake and common-name check, the per-connection service and
//! graceful shutdown.

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
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::body::{read_capped, BodyError};
use crate::catch::CatchUnwind;
use crate::config::ServerConfig;
use crate::malformed::SentenceIo;
use crate::tls::{check_peer, TlsState};
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
    /// TLS settings could not be used.
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// A TLS file could not be read.
    #[error("cannot read the TLS {what} {}", path.display())]
    TlsFile {
        /// Which file (`CA certificate file`, `certificate file`, `private key file`).
        what: &'static str,
        /// Its path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// A bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
    tls: Option<Arc<TlsState>>,
}

impl Server {
    /// Loads the TLS files if [`ServerConfig::tls`] is set, then binds the listen address
    /// (port 0 picks a free port). A TLS file that cannot be read or used is an error naming it.
    pub async fn bind(config: ServerConfig) -> Result<Server, HttpError> {
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(TlsState::load(files.clone())?)),
            None => None,
        };
        let bind_err = |source| HttpError::Bind {
            addr: config.addr,
            source,
        };
        let listener = TcpListener::bind(config.addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(Server {
            listener,
            local_addr,
            config,
            tls,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the server speaks HTTPS (with client certificates).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
    /// finish for up to [`ServerConfig::shutdown_grace`].
    pub async fn serve<H: Handler>(self, handler: Arc<H>, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            local_addr,
            config,
            tls,
        } = self;
        let config = Arc::new(config);
        let graceful = GracefulShutdown::new();
        let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%local_addr, scheme, "status server listening");
        tokio::pin!(shutdown);
        // Every connection task, so that the ones still running when the grace period ends
        // can be aborted rather than left behind.
        let mut connections = tokio::task::JoinSet::new();

        loop {
            // Reap finished connection tasks so the set stays as small as the open connections.
            while connections.try_join_next().is_some() {}
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
            let conn = Connection {
                handler: handler.clone(),
                config: config.clone(),
                watcher: graceful.watcher(),
                remote_addr,
            };
            let tls = tls.clone();
            connections.spawn(async move {
                match tls {
                    None => conn.serve_plain(stream).await,
                    Some(tls) => conn.serve_tls(stream, &tls).await,
                }
                drop(permit);
            });
        }

        drop(listener);
        tracing::info!("status server stopped accepting; finishing in-flight requests");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(config.shutdown_grace) => {
                tracing::warn!(
                    grace = ?config.shutdown_grace,
                    open = connections.len(),
                    "shutdown grace period over; aborting the remaining connections"
                );
            }
        }
        // Aborting drops each connection's in-flight handler future (which cancels the work
        // it started, e.g. a CPU profile) and closes its socket.
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

/// One accepted connection, before its first request.
struct Connection<H> {
    handler: Arc<H>,
    config: Arc<ServerConfig>,
    watcher: Watcher,
    remote_addr: SocketAddr,
}

/// How a connection to the HTTPS port began.
enum Handshake {
    Done(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    PlainHttp(TcpStream),
    Failed(String),
}

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

impl<H: Handler> Connection<H> {
    async fn serve_plain(self, stream: TcpStream) {
        let info = ConnInfo {
            remote_addr: self.remote_addr,
            peer_common_name: None,
        };
        self.serve_http(stream, info, None).await;
    }

    async fn serve_tls(self, stream: TcpStream, tls: &TlsState) {
        let remote_addr = self.remote_addr;
        let acceptor = tls.acceptor();
        // The handshake gets the header timeout: a client that connects and stays silent is
        // dropped just like one that never finishes its request head.
        let handshake = async move {
            let mut first = [0u8; 1];
            match stream.peek(&mut first).await {
                Ok(0) => return Handshake::Failed("closed before the TLS handshake".into()),
                Ok(_) if first[0] == TLS_HANDSHAKE_RECORD => {}
                Ok(_) if first[0].is_ascii_alphabetic() => return Handshake::PlainHttp(stream),
                Ok(_) => return Handshake::Failed("not a TLS handshake".into()),
                Err(e) => return Handshake::Failed(e.to_string()),
            }
            match acceptor.accept(stream).await {
                Ok(s) => Handshake::Done(Box::new(s)),
                Err(e) => Handshake::Failed(e.to_string()),
            }
        };
        let stream = match tokio::time::timeout(self.config.header_read_timeout, handshake).await {
            Ok(Handshake::Done(s)) => s,
            Ok(Handshake::PlainHttp(stream)) => {
                tracing::debug!(%remote_addr, "plain HTTP on the HTTPS port; refused");
                refuse_plain_http(stream).await;
                return;
            }
            Ok(Handshake::Failed(e)) => {
                tracing::debug!(%remote_addr, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%remote_addr, "TLS handshake timed out");
                return;
            }
        };
        let (_, session) = stream.get_ref();
        let check = check_peer(
            session.peer_certificates().and_then(|c| c.first()),
            tls.allowed_cn(),
        );
        if let Some(reason) = &check.denied {
            tracing::info!(%remote_addr, cn = ?check.common_name, reason, "client certificate not allowed; every request gets 403");
        }
        let info = ConnInfo {
            remote_addr,
            peer_common_name: check.common_name,
        };
        self.serve_http(*stream, info, check.denied.map(Arc::from))
            .await;
    }

    /// Serves HTTP/1.1 on `io`. With `denied` set, every request gets 403 with that sentence
    /// and the handler never runs.
    async fn serve_http<IO>(self, io: IO, info: ConnInfo, denied: Option<Arc<str>>)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            handler,
            config,
            watcher,
            remote_addr,
        } = self;
        let header_read_timeout = config.header_read_timeout;
        let service = service_fn(move |req| {
            let handler = handler.clone();
            let info = info.clone();
            let denied = denied.clone();
            let config = config.clone();
            // Boxed: the request's future holds the handler's and is large; hyper moves the
            // future it gets, so a pointer is cheaper to hand over.
            Box::pin(async move {
                Ok::<_, Infallible>(serve_one(handler, info, denied.as_deref(), req, &config).await)
            })
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(SentenceIo::new(io)), service);
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(%remote_addr, error = %e, "connection ended with an error");
        }
    }
}

/// Answers a plain HTTP request on the HTTPS port with a 400 sentence, then closes.
async fn refuse_plain_http(mut stream: TcpStream) {
    const BODY: &str = "this port serves HTTPS with client certificates: use an https:// URL and present a client certificate\n";
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent (bounded), so that closing does not reset the connection
        // before the client has read the reply.
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

async fn serve_one<H: Handler>(
    handler: Arc<H>,
    info: ConnInfo,
    denied: Option<&str>,
    req: hyper::Request<Incoming>,
    config: &ServerConfig,
) -> http::Response<Full<Bytes>> {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let remote = info.remote_addr;
    let cn = info.peer_common_name.clone();
    let limit = config.max_body_bytes;

    let response = if let Some(sentence) = denied {
        // Before anything else, the body included: no route is exempt.
        plain(StatusCode::FORBIDDEN, sentence.to_string())
    } else if (method == Method::GET || method == Method::HEAD) && has_body(&parts.headers) {
        plain(
            StatusCode::BAD_REQUEST,
            format!("a {method} request must not carry a body"),
        )
    } else if !has_body(&parts.headers) {
        // No Content-Length and no Transfer-Encoding: HTTP/1.1 says there is no body, so
        // there is nothing to read or time.
        call(handler, info, parts, Bytes::new(), &path).await
    } else {
        // Boxed: this branch's state is large, and keeping it out of line keeps the future
        // that hyper moves around for every request small.
        let reading = Box::pin(tokio::time::timeout(
            config.body_read_timeout,
            read_capped(&parts.headers, body, limit),
        ));
        match reading.await {
            Err(_) => plain(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within {} s",
                    config.body_read_timeout.as_secs_f64()
                ),
            ),
            Ok(Err(BodyError::TooLarge)) => plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large: the limit is {limit} bytes"),
            ),
            Ok(Err(BodyError::Broken(e))) => plain(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}"),
            ),
            Ok(Ok(bytes)) => call(handler, info, parts, bytes, &path).await,
        }
    };

    // Every request at debug, requests answered with an error status at info: pollers such
    // as TiDB's sync-status loop would otherwise flood the log, and a write per request costs
    // about as much as serving it (docs/performance.md).
    let status = response.status().as_u16();
    macro_rules! access {
        ($level:ident) => {
            tracing::$level!(
                target: "access",
                %remote,
                cn = cn.as_deref().unwrap_or("-"),
                %method,
                %path,
                status,
                bytes = response.body().len(),
                elapsed_ms = start.elapsed().as_secs_f64() * 1e3,
            )
        };
    }
    if status >= 400 {
        access!(info);
    } else {
        access!(debug);
    }

    let (mut parts, body) = response.into_parts();
    // Error replies always say what they are; this also keeps them apart from hyper's own
    // automatic replies to unparsable requests (see `malformed`).
    if parts.status.as_u16() >= 400 && !parts.headers.contains_key(header::CONTENT_TYPE) {
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    if method == Method::HEAD {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        return http::Response::from_parts(parts, Full::new(Bytes::new()));
    }
    http::Response::from_parts(parts, Full::new(body))
}

/// Runs the handler on the complete request; a panic becomes a 500 sentence.
async fn call<H: Handler>(
    handler: Arc<H>,
    info: ConnInfo,
    mut parts: http::request::Parts,
    body: Bytes,
    path: &str,
) -> Response {
    parts.extensions.insert(info);
    let method = parts.method.clone();
    let req = Request::from_parts(parts, body);
    let handling = handler.handle(req);
    match CatchUnwind::new(handling).await {
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

/// Whether the request head announces a body (a non-zero `Content-Length` or any
/// `Transfer-Encoding`).
fn has_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
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
