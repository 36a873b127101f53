//! Hostile and slow clients at the transport: requests hyper cannot parse still get a sentence,
//! bodies on GET, lying and stalled bodies, and hundreds of half-sent heads.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use status_http::{Handler, Request, Response, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Echo;

impl Handler for Echo {
    async fn handle(&self, req: Request) -> Response {
        http::Response::new(Bytes::from(format!(
            "{} {} {}",
            req.method(),
            req.uri().path(),
            req.body().len()
        )))
    }
}

struct Running {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(cfg: impl FnOnce(&mut ServerConfig)) -> Running {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    cfg(&mut config);
    let server = Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(Arc::new(Echo), async move {
        let _ = rx.await;
    }));
    Running { addr, stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap();
    }

    /// Sends `raw` (then half-closes if asked) and reads until the server closes.
    async fn exchange(&self, raw: &[u8], half_close: bool) -> String {
        let s = TcpStream::connect(self.addr).await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        // Write while reading: the server may answer and close before it read everything.
        let owned = raw.to_vec();
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&owned).await;
            if half_close {
                let _ = wr.shutdown().await;
            }
            wr
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        writer.abort();
        assert!(
            read.is_ok(),
            "no end of reply to {:?}; got {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(80)]),
            String::from_utf8_lossy(&out)
        );
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn healthy(&self) {
        let r = self
            .exchange(
                b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                false,
            )
            .await;
        assert!(
            r.starts_with("HTTP/1.1 200") && r.ends_with("GET /ok 0"),
            "{r}"
        );
    }
}

/// Status code and body of one reply; the body must be one sentence with a content type.
fn sentence(reply: &str) -> (u16, String) {
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no reply head in {reply:?}"));
    let status = head[9..12].parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; charset=utf-8"),
        "{reply}"
    );
    assert!(
        body.ends_with('\n') && body.lines().count() == 1 && body.len() > 10,
        "not one sentence: {reply:?}"
    );
    (status, body.to_string())
}

#[tokio::test]
async fn requests_hyper_cannot_parse_get_a_sentence_too() {
    let server = start(|_| {}).await;
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let many_headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_headers = format!("GET / HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n");
    let huge_head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(1_000_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "NUL in the path",
            b"GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "malformed HTTP request",
        ),
        (
            "space in the path",
            b"GET /a b c HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "malformed HTTP request",
        ),
        (
            "bad version",
            b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "malformed HTTP request",
        ),
        (
            "garbage",
            b"\x01\x02\x03 garbage\r\n\r\n".to_vec(),
            400,
            "malformed HTTP request",
        ),
        (
            "bad header name",
            b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n".to_vec(),
            400,
            "malformed HTTP request",
        ),
        (
            "negative Content-Length",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
            400,
            "malformed HTTP request",
        ),
        (
            "overflowing Content-Length",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"
                .to_vec(),
            400,
            "malformed HTTP request",
        ),
        (
            "conflicting Content-Length",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_vec(),
            400,
            "malformed HTTP request",
        ),
        (
            "target over 64 KiB",
            long_target.into_bytes(),
            414,
            "request target too long",
        ),
        (
            "150 headers",
            many_headers.into_bytes(),
            431,
            "request head too large",
        ),
        (
            "1 MB header",
            huge_head.into_bytes(),
            431,
            "request head too large",
        ),
    ];
    for (what, raw, status, needle) in cases {
        let reply = server.exchange(&raw, false).await;
        let (got, body) = sentence(&reply);
        assert_eq!(got, status, "{what}: {reply}");
        assert!(body.starts_with(needle), "{what}: {body}");
        server.healthy().await;
    }
    server.stop().await;
}

#[tokio::test]
async fn bodies_on_get_lying_and_stalled_bodies() {
    let server = start(|c| c.body_read_timeout = Duration::from_millis(500)).await;

    for raw in [
        &b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc"[..],
        b"HEAD /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ] {
        let reply = server.exchange(raw, false).await;
        if raw.starts_with(b"HEAD") {
            // No body on HEAD: the status and headers tell.
            assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
            assert!(reply.contains("content-type: text/plain"), "{reply}");
            continue;
        }
        let (status, body) = sentence(&reply);
        assert_eq!(status, 400, "{reply}");
        assert!(body.contains("must not carry a body"), "{body}");
    }
    // Content-Length: 0 on a GET is fine.
    let reply = server
        .exchange(
            b"GET /z HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            false,
        )
        .await;
    assert!(reply.ends_with("GET /z 0"), "{reply}");

    // Announces 100 bytes, sends 10 and stops writing: 400 at once.
    let reply = server
        .exchange(
            b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
            true,
        )
        .await;
    let (status, body) = sentence(&reply);
    assert_eq!(status, 400, "{reply}");
    assert!(
        body.starts_with("could not read the request body"),
        "{body}"
    );

    // Announces 100 bytes, sends 10 and stalls: 408 after the body timeout.
    let start = Instant::now();
    let reply = server
        .exchange(
            b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
            false,
        )
        .await;
    let (status, body) = sentence(&reply);
    assert_eq!(status, 408, "{reply}");
    assert!(
        body.starts_with("request body not received within 0.5 s"),
        "{body}"
    );
    assert!(start.elapsed() >= Duration::from_millis(450));

    // Sends more than it announces: the rest is read as the next request, which is garbage.
    let reply = server
        .exchange(
            b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcdef\r\n\r\n",
            false,
        )
        .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("POST /p 3"), "{reply}");
    let second = &reply[reply.find("POST /p 3").unwrap() + "POST /p 3".len()..];
    let (status, _) = sentence(second);
    assert_eq!(status, 400, "{reply}");

    server.healthy().await;
    server.stop().await;
}

#[tokio::test]
async fn hundreds_of_half_sent_heads_do_not_delay_a_normal_client() {
    let server = start(|c| c.header_read_timeout = Duration::from_secs(2)).await;
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /tiflash/store-status HTTP/1.1\r\nHost: x\r\nX-Half: ")
            .await
            .unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..5 {
        let start = Instant::now();
        server.healthy().await;
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "a normal client waited {:?}",
            start.elapsed()
        );
    }
    // Every slow connection is closed by the server after the header timeout.
    let start = Instant::now();
    for s in &mut slow {
        let mut buf = [0u8; 256];
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a slow client was not dropped");
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    server.healthy().await;
    server.stop().await;
}
