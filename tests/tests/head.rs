//! `HEAD` is answered for every `GET` route and never changes the server.
#![allow(clippy::unwrap_used)]

use integration_tests::TestServer;

#[test]
fn head_on_state_changing_routes_does_nothing() {
    let server = TestServer::start(&[]);
    for path in [
        "/debug/pprof/heap_activate?interval=1",
        "/debug/pprof/set_prof_active",
        "/debug/pprof/arena_purge",
        "/tiflash/remote/owner/resign",
        "/tiflash/remote/gc",
        "/tiflash/remote/upload",
    ] {
        let r = server.request("HEAD", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.is_empty());
        assert!(r.header("content-type").is_some(), "{path}");
    }
    // Nothing was started: no activation runs and nothing was written.
    assert_eq!(server.get("/debug/pprof/heap_list").text(), "");
    assert_eq!(
        server.get("/debug/pprof/heap_deactivate").text().trim(),
        "no heap profile is running"
    );
    assert!(!server.data_dir().join("heap-profiles").exists());
    // HEAD of a reading route matches its GET.
    let get = server.get("/debug/pprof/symbol");
    let head = server.request("HEAD", "/debug/pprof/symbol", &[], b"");
    assert_eq!(
        (head.status, head.header("content-length")),
        (get.status, Some(get.body.len().to_string().as_str()))
    );
    assert_eq!(
        server
            .request("HEAD", "/tiflash/sync-status/abc", &[], b"")
            .status,
        400
    );
}

#[test]
fn head_reports_the_status_a_get_would_get() {
    let server = TestServer::start(&[]);
    assert_eq!(
        server.get("/debug/pprof/heap_activate?interval=60").status,
        200
    );
    // A second activation would be refused: HEAD says so, and the running one is untouched.
    assert_eq!(
        server
            .request("HEAD", "/debug/pprof/heap_activate", &[], b"")
            .status,
        409
    );
    assert_eq!(server.get("/debug/pprof/heap_deactivate").status, 200);

    let off = integration_tests::TestServer::start_with(integration_tests::ServerOptions {
        env: vec![("MALLOC_CONF".into(), "prof:false".into())],
        ..Default::default()
    });
    for path in ["/debug/pprof/set_prof_active", "/debug/pprof/heap_activate"] {
        let get = off.get(path);
        let head = off.request("HEAD", path, &[], b"");
        assert_eq!((get.status, head.status), (501, 501), "{path}");
    }
}
