//! A bare hyper 1 hello-world server: the yardstick of `cargo xtask bench`.
//!
//! Same runtime shape as the status server (multi-threaded tokio, HTTP/1.1 with keep-alive,
//! `TCP_NODELAY`), none of its work: no limits, no access log, no routing. It answers every
//! request with a fixed 7-byte `text/plain` body, as long as `store-status` answers `Running`.
//!
//! ```text
//! cargo run --release -p status-http --example bare-hyper -- 127.0.0.1:0
//! ```
//! prints `bare-hyper listening on http://ADDR` and serves until killed.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()
        .expect("usage: bare-hyper HOST:PORT");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bare-hyper-worker")
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await.unwrap();
        println!(
            "bare-hyper listening on http://{}",
            listener.local_addr().unwrap()
        );
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    let mut resp = http::Response::new(Full::new(Bytes::from_static(b"Running")));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("text/plain; charset=utf-8"),
                    );
                    Ok::<_, Infallible>(resp)
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
