//! The library API an engine uses: registry and life cycle handles are live while serving.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use status_server::{Config, StatusServer, StoreStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

#[tokio::test]
async fn engine_feeds_regions_and_sets_status_while_serving() {
    let config = Config {
        status_addr: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    let server = StatusServer::new(config);
    assert_eq!(server.lifecycle().get(), StoreStatus::Idle);
    let bound = server.bind().await.unwrap();
    assert_eq!(bound.lifecycle().get(), StoreStatus::Ready);
    let addr = bound.local_addr();
    let registry = bound.registry();
    let lifecycle = bound.lifecycle();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = stop_rx.await;
    }));

    assert_eq!(get(addr, "/tiflash/sync-status/5").await, "0\n\n");
    registry.add_region(None, 5, 11);
    registry.add_region(None, 5, 10);
    registry.add_region(Some(2), 5, 99);
    assert_eq!(get(addr, "/tiflash/sync-status/5").await, "2\n10 11\n");
    assert_eq!(
        get(addr, "/tiflash/sync-status/keyspace/2/table/5").await,
        "1\n99\n"
    );

    assert_eq!(get(addr, "/tiflash/store-status").await, "Running");
    lifecycle.set(StoreStatus::Stopping);
    assert_eq!(get(addr, "/tifash/store-status").await, "Stopping");
    assert!(get(addr, "/tiflash/readyz").await.contains("Stopping"));

    stop_tx.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(lifecycle.get(), StoreStatus::Terminated);
}
