//! The engine routes end to end against the real binary: store-status, sync-status, livez,
//! readyz, every 400/404/405 case, HEAD, and the SIGTERM life cycle.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use integration_tests::{curl, TestServer};

#[test]
fn store_status_under_both_prefixes_without_newline() {
    let server = TestServer::start(&[]);
    for prefix in ["/tiflash", "/tifash"] {
        let r = server.get(&format!("{prefix}/store-status"));
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "Running");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    let (status, body, _) = curl(&[&server.url("/tiflash/store-status")]);
    assert!(status.success());
    assert_eq!(body, b"Running");
}

#[test]
fn sync_status_of_an_unknown_table_is_zero() {
    let server = TestServer::start(&[]);
    for path in [
        "/tiflash/sync-status/100",
        "/tifash/sync-status/keyspace/1/table/100",
        "/tiflash/sync-status/0",
    ] {
        let r = server.get(path);
        assert_eq!((r.status, r.text().as_str()), (200, "0\n\n"), "{path}");
    }
}

#[test]
fn bad_ids_and_shapes_are_400_with_a_sentence() {
    let server = TestServer::start(&[]);
    for (path, needle) in [
        ("/tiflash/sync-status/100abc", "table id '100abc'"),
        ("/tiflash/sync-status/-1", "table id '-1'"),
        ("/tiflash/sync-status/9223372036854775808", "table id"),
        (
            "/tiflash/sync-status/keyspace/1/tabel/1",
            "invalid sync-status path",
        ),
        (
            "/tiflash/sync-status/keyspace/4294967296/table/1",
            "keyspace id",
        ),
        ("/tiflash/sync-status/keyspace/x/table/1", "keyspace id 'x'"),
        ("/tiflash/sync-status/", "invalid sync-status path"),
        ("/tiflash/sync-status/1/", "invalid sync-status path"),
        (
            "/tiflash/store-status?verbose=1",
            "unknown query parameter 'verbose'",
        ),
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.text().contains(needle), "{path}: {}", r.text());
        assert!(
            r.text().ends_with('\n') && r.text().lines().count() == 1,
            "{path}: one sentence"
        );
    }
}

#[test]
fn unknown_paths_404_and_wrong_methods_405() {
    let server = TestServer::start(&[]);
    let r = server.get("/x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "path not found: GET /x\n")
    );
    assert_eq!(server.get("/tiflash/store-status/extra").status, 404);
    assert_eq!(server.get("/tiflash/").status, 404);
    let r = server.request("POST", "/tiflash/store-status", &[], b"x");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert!(r.text().contains("method POST is not allowed"));
    assert_eq!(
        server
            .request("DELETE", "/tiflash/sync-status/1", &[], b"")
            .status,
        405
    );
    // HEAD: same status and headers, no body.
    let r = server.request("HEAD", "/tiflash/store-status", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("7"));
    assert!(r.body.is_empty());
    assert_eq!(server.request("HEAD", "/nope", &[], b"").status, 404);
}

#[test]
fn livez_and_readyz() {
    let server = TestServer::start(&[]);
    let r = server.get("/tiflash/livez");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = server.get("/tiflash/readyz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
}

#[test]
fn oversized_body_is_413_and_server_keeps_serving() {
    let server = TestServer::start(&[]);
    let body = vec![b'a'; 16 * 1024 * 1024 + 1];
    let r = server.request("POST", "/tiflash/store-status", &[], &body);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(server.get("/tiflash/store-status").text(), "Running");
}

#[test]
fn sigterm_stops_with_exit_status_zero() {
    let mut server = TestServer::start(&[]);
    assert_eq!(server.get("/tiflash/store-status").status, 200);
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits within 10 s");
    assert!(status.success(), "exit status {status:?}");
    let log = server.stderr();
    for state in ["Running", "Stopping", "Terminated"] {
        assert!(
            log.contains(&format!("status={state}")),
            "log lacks {state}: {log}"
        );
    }
}

#[test]
fn sigint_also_stops_cleanly() {
    let mut server = TestServer::start(&[]);
    server.signal("INT");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits within 10 s");
    assert!(status.success());
}

#[test]
fn config_file_sets_keys_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("status.toml");
    std::fs::write(
        &cfg,
        "status-addr = \"127.0.0.1:1\"\nlog-level = \"debug\"\n",
    )
    .unwrap();
    // The flag `--status-addr 127.0.0.1:0` (set by the harness) wins over the file's port 1.
    let server = TestServer::start(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(server.get("/tiflash/store-status").status, 200);
    assert!(
        server.stderr().contains("DEBUG"),
        "log-level from the file applies"
    );
}

#[test]
fn bad_flags_and_config_refuse_to_start() {
    let bin = integration_tests::server_binary();
    let out = std::process::Command::new(&bin)
        .args(["--status-addr", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("status-addr 'nope'"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "no-such-key = 1\n").unwrap();
    let out = std::process::Command::new(&bin)
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
