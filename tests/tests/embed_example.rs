//! `examples/embed.rs` works as documented: it serves the regions it feeds and exits 0 on
//! SIGTERM.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use integration_tests::{build_with_cargo, target_dir, ServerOptions, TestServer};

#[test]
fn embed_example_serves_fed_regions_and_stops_on_sigterm() {
    let program = match std::env::var_os("STATUS_SERVER_BIN") {
        // xtask builds the examples next to the binary.
        Some(bin) => std::path::Path::new(&bin)
            .parent()
            .unwrap()
            .join("examples/embed"),
        None => {
            build_with_cargo(&["build", "-p", "status-server", "--example", "embed"]);
            target_dir().join("debug/examples/embed")
        }
    };
    let mut server = TestServer::start_with(ServerOptions {
        program: Some(program),
        ..Default::default()
    });
    assert_eq!(server.get("/tiflash/sync-status/100").text(), "3\n1 2 3\n");
    assert_eq!(
        server
            .get("/tiflash/sync-status/keyspace/7/table/200")
            .text(),
        "1\n42\n"
    );
    assert_eq!(server.get("/tiflash/store-status").text(), "Running");
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success());
}
