//! How an engine embeds the whole status server: build it, feed the registry of replicated
//! regions, set the store status, serve until SIGINT/SIGTERM.
//!
//! `cargo run -p status-server --example embed [HOST:PORT]` (default 127.0.0.1:0), then
//! `curl http://ADDR/tiflash/sync-status/100` prints `3\n1 2 3\n`.

use status_server::{Config, StatusServer, StoreStatus};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let config = Config {
        status_addr: addr.parse()?,
        ..Config::default()
    };
    let server = StatusServer::new(config);

    // The engine owns these handles and updates them as replicas come and go.
    let registry = server.registry();
    let lifecycle = server.lifecycle();
    for region in [3, 1, 2] {
        registry.add_region(None, 100, region);
    }
    registry.set_regions(Some(7), 200, [42]);

    let bound = server.bind().await?;
    println!("embed example listening on http://{}", bound.local_addr());

    let shutdown = async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        // The engine reports its own shutdown before the server stops serving.
        lifecycle.set(StoreStatus::Stopping);
    };
    bound.serve(shutdown).await;
    Ok(())
}
