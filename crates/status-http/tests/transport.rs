//! The transport's limits, against a tiny handler: keep-alive, HEAD, 413, panic → 500,
//! header read timeout, connection cap, graceful shutdown with a deadline.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use status_http::{ConnInfo, Handler, Request, Response, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Echo;

impl Handler for Echo {
    async fn handle(&self, req: Request) -> Response {
        match req.uri().path() {
            "/panic" => panic!("boom"),
            "/slow" => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                http::Response::new(Bytes::from_static(b"slow done"))
            }
            "/forever" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                http::Response::new(Bytes::new())
            }
            "/peer" => {
                let info = req.extensions().get::<ConnInfo>().unwrap();
                http::Response::new(Bytes::from(info.remote_addr.ip().to_string()))
            }
            _ => http::Response::new(Bytes::from(format!(
                "{} {} {}",
                req.method(),
                req.uri().path(),
                req.body().len()
            ))),
        }
    }
}

async fn start(
    cfg: impl FnOnce(&mut ServerConfig),
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    cfg(&mut config);
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(Arc::new(Echo), async move {
        let _ = rx.await;
    }));
    (addr, tx, task)
}

async fn roundtrip(stream: &mut TcpStream, req: &str) -> String {
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let mut out = Vec::new();
    // Read one response: headers, then Content-Length bytes.
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed early: {:?}",
            String::from_utf8_lossy(&out)
        );
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= len || req.starts_with("HEAD") {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn keep_alive_head_and_body_cap() {
    let (addr, stop, task) = start(|c| c.max_body_bytes = 10).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let r = roundtrip(&mut s, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("GET /a 0"),
        "{r}"
    );
    // Same connection again: keep-alive.
    let r = roundtrip(
        &mut s,
        "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    assert!(r.ends_with("POST /b 3"), "{r}");
    let r = roundtrip(&mut s, "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        r.contains("content-length: 9") && r.ends_with("\r\n\r\n"),
        "{r}"
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    let r = roundtrip(
        &mut s,
        "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n",
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 413") && r.contains("the limit is 10 bytes"),
        "{r}"
    );
    // Chunked bodies without Content-Length are capped too.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let r = roundtrip(&mut s, "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nc\r\n0123456789ab\r\n0\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(roundtrip(&mut s, "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ends_with("127.0.0.1"));
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_panicking_handler_gives_500_and_the_server_keeps_serving() {
    let (addr, stop, task) = start(|_| {}).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let r = roundtrip(&mut s, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(
        r.starts_with("HTTP/1.1 500") && r.contains("the server keeps serving"),
        "{r}"
    );
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(roundtrip(&mut s, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .starts_with("HTTP/1.1 200"));
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn half_sent_headers_are_dropped_after_the_header_timeout() {
    let (addr, stop, task) = start(|c| c.header_read_timeout = Duration::from_millis(300)).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    // The server closes the connection (maybe after a 408) within a bounded time.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slow client not dropped");
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "dropped too early: {:?}",
        start.elapsed()
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let (addr, stop, task) = start(|c| {
        c.max_connections = 2;
        c.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    // Two idle connections hold both slots until the header timeout drops them.
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let r = roundtrip(&mut c, "GET /third HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(r.ends_with("GET /third 0"));
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "third connection was served while the cap was full ({waited:?})"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_then_stops_accepting() {
    let (addr, stop, task) = start(|_| {}).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.ends_with("slow done"), "{out}");
    task.await.unwrap();
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn shutdown_grace_bounds_a_request_that_never_ends() {
    let (addr, stop, task) = start(|c| c.shutdown_grace = Duration::from_millis(300)).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("serve returns after the grace period")
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    // The request that never ends was aborted: its connection is closed, not left running.
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut rest)).await;
    assert!(
        eof.is_ok(),
        "the connection of the never-ending request is still open"
    );
}
