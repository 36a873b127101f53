//! A burst of expensive requests is queued (at most a few run at once), every one is answered,
//! and the cheap routes keep answering meanwhile.
#![allow(clippy::unwrap_used)]

use integration_tests::TestServer;

#[test]
fn a_burst_of_heavy_requests_is_served_and_status_keeps_answering() {
    let server = TestServer::start(&[]);
    let addr = server.addr();
    let heavy: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                let path = match i % 3 {
                    0 => "/debug/pprof/heap?jeprof=true&text=text",
                    1 => "/debug/pprof/memory_status",
                    _ => "/debug/pprof/heap",
                };
                integration_tests::http_request(addr, "GET", path, &[], b"").status
            })
        })
        .collect();
    let symbols = std::thread::spawn(move || {
        integration_tests::http_request(addr, "POST", "/debug/pprof/symbol", &[], b"0x1+0x2").status
    });
    for _ in 0..20 {
        assert_eq!(server.get("/tiflash/store-status").text(), "Running");
    }
    for h in heavy {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert_eq!(symbols.join().unwrap(), 200);
}
