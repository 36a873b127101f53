//! CPU profiling end to end: `/debug/pprof/profile` from the real binary, read by a browser's
//! XML parser stand-in, by the real `go tool pprof`, one profile at a time, cancelled by a
//! client that goes away, and never in the way of the other routes.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use integration_tests::{curl, http_request, parse_response, require_tool, TestServer};

/// Keeps the server busy (so a profile has samples) from two client threads until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..2)
            .map(|i| {
                let stop = stop.clone();
                std::thread::Builder::new()
                    .name(format!("load-{i}"))
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            let r = http_request(addr, "GET", "/tiflash/sync-status/42", &[], b"");
                            assert_eq!(r.status, 200);
                        }
                    })
                    .unwrap()
            })
            .collect();
        Load { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Sends a request on a connection of its own and returns the connection unread.
fn send_only(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream
}

/// Whether a CPU profile is running, asked without taking one: `HEAD` answers what a `GET`
/// would (409 while busy) without profiling.
fn profiling(server: &TestServer) -> bool {
    let r = server.request("HEAD", "/debug/pprof/profile", &[], b"");
    assert!(r.status == 200 || r.status == 409, "HEAD: {}", r.status);
    r.status == 409
}

/// Waits (bounded) until the server reports a CPU profile running.
fn wait_until_profiling(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !profiling(server) {
        assert!(Instant::now() < deadline, "the profile never started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn go_pprof_top(target: &str, tmp: &std::path::Path) -> String {
    let go = require_tool("go");
    let out = Command::new(go)
        .args(["tool", "pprof", "-top", target])
        // go tool pprof saves what it fetches under $PPROF_TMPDIR (default ~/pprof).
        .env("PPROF_TMPDIR", tmp)
        .env("HOME", tmp)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "go tool pprof -top {target} failed:\n{stdout}\n{stderr}"
    );
    stdout + &stderr
}

/// `go tool pprof -top` output has the profile type, the duration and at least one row with a
/// Rust function of the server.
fn assert_top_report(report: &str) {
    assert!(report.contains("Type: cpu"), "{report}");
    assert!(report.contains("Duration: "), "{report}");
    assert!(report.contains("flat%"), "{report}");
    let rows: Vec<&str> = report
        .lines()
        .filter(|l| l.contains('%') && l.contains("::"))
        .collect();
    assert!(!rows.is_empty(), "no function rows:\n{report}");
}

#[test]
fn flame_graph_from_curl_is_well_formed_interactive_svg_of_the_server() {
    let server = TestServer::start(&[]);
    let load = Load::start(server.addr());
    let (status, body, err) = curl(&[
        "--fail",
        "--write-out",
        "\n%{content_type}",
        &server.url("/debug/pprof/profile?seconds=2"),
    ]);
    drop(load);
    assert!(status.success(), "{err}");
    let text = String::from_utf8(body).unwrap();
    let (svg, content_type) = text.rsplit_once('\n').unwrap();
    assert_eq!(content_type, "image/svg+xml");
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(svg, options)
        .unwrap_or_else(|e| panic!("not well-formed XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    // inferno's interactive parts: search and zoom.
    assert!(svg.contains("function search("));
    assert!(svg.contains("function zoom("));
    // Frames of the server itself, with names, under its worker threads.
    assert!(svg.contains("tokio"), "no tokio frame in the flame graph");
    assert!(
        svg.contains("status_server") || svg.contains("hyper::"),
        "no server frame"
    );
    // The same route with format=svg, and an unknown format, are flame graphs too.
    for q in ["format=svg", "format=whatever"] {
        let r = server.get(&format!("/debug/pprof/profile?seconds=1&{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("image/svg+xml"), "{q}");
        assert!(r.text().contains("<svg"), "{q}");
    }
}

#[test]
fn protobuf_is_read_by_go_tool_pprof_from_a_file_and_from_the_url() {
    let server = TestServer::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let load = Load::start(server.addr());

    // Asked for by the query.
    let r = server.get("/debug/pprof/profile?seconds=2&format=protobuf");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let file = tmp.path().join("cpu.pb");
    std::fs::write(&file, &r.body).unwrap();
    assert_top_report(&go_pprof_top(file.to_str().unwrap(), tmp.path()));

    // Asked for by the request's Content-Type (TiDB's way), alias format=pprof.
    let r = server.request(
        "GET",
        "/debug/pprof/profile?seconds=1",
        &[("Content-Type", "application/protobuf")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let r = server.get("/debug/pprof/profile?seconds=1&format=pprof");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));

    // Straight from the URL, as a user would type it.
    let url = server.url("/debug/pprof/profile?format=protobuf&seconds=2");
    let report = go_pprof_top(&url, tmp.path());
    drop(load);
    assert_top_report(&report);
}

#[test]
fn a_second_profile_gets_409_at_once_and_the_first_completes() {
    let server = TestServer::start(&[]);
    let addr = server.addr();
    let first = std::thread::Builder::new()
        .name("first-profile".into())
        .spawn(move || http_request(addr, "GET", "/debug/pprof/profile?seconds=3", &[], b""))
        .unwrap();
    wait_until_profiling(&server);
    let started = Instant::now();
    let r = server.get("/debug/pprof/profile?seconds=1&format=protobuf");
    let took = started.elapsed();
    assert_eq!(r.status, 409);
    assert!(r.text().contains("Already in Profiling"), "{}", r.text());
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    // Refused without waiting for the running profile (3 s) to end.
    assert!(took < Duration::from_secs(2), "409 took {took:?}");
    let first = first.join().unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("content-type"), Some("image/svg+xml"));
    // The slot is free again.
    assert_eq!(server.get("/debug/pprof/profile?seconds=1").status, 200);
}

#[test]
fn a_client_that_disconnects_cancels_its_profile_and_frees_the_slot() {
    let server = TestServer::start(&[]);
    // An hour-long profile, then the client goes away.
    let stream = send_only(server.addr(), "/debug/pprof/profile?seconds=3600");
    wait_until_profiling(&server);
    drop(stream);
    // The slot frees within moments, not in an hour.
    let deadline = Instant::now() + Duration::from_secs(10);
    while profiling(&server) {
        assert!(
            Instant::now() < deadline,
            "the abandoned profile still holds the slot"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = server.get("/debug/pprof/profile?seconds=1&format=protobuf");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        server.stderr().contains("CPU profile cancelled"),
        "no cancellation logged:\n{}",
        server.stderr()
    );
}

#[test]
fn store_status_answers_promptly_while_a_profile_runs() {
    let server = TestServer::start(&[]);
    // A protobuf profile at the highest frequency: sampling, then symbolizing.
    let mut stream = send_only(
        server.addr(),
        "/debug/pprof/profile?seconds=3&frequency=1000&format=protobuf",
    );
    wait_until_profiling(&server);
    let mut latencies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while profiling(&server) {
        assert!(Instant::now() < deadline, "the profile never ended");
        let start = Instant::now();
        let r = server.get("/tiflash/store-status");
        latencies.push(start.elapsed());
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "Running");
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_response(&raw, false).status, 200);
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "store-status during a profile: {} requests, median {median:?}, max {max:?}",
        latencies.len()
    );
    assert!(latencies.len() >= 10, "too few requests during the profile");
    // A few milliseconds on an idle machine; the bounds leave room for a loaded CI host but
    // not for a request that waits on sampling or rendering (seconds).
    assert!(median < Duration::from_millis(50), "median {median:?}");
    assert!(max < Duration::from_millis(1000), "max {max:?}");
}

#[test]
fn bad_parameters_get_400_with_a_sentence_and_the_server_keeps_serving() {
    let server = TestServer::start(&[]);
    for (query, names) in [
        ("seconds=0", "seconds"),
        ("seconds=-1", "seconds"),
        ("seconds=abc", "seconds"),
        ("seconds=3601", "seconds"),
        ("seconds=99999999999999999999999999", "seconds"),
        ("seconds=", "seconds"),
        ("frequency=0", "frequency"),
        ("frequency=1000000", "frequency"),
        ("frequency=1.5", "frequency"),
        ("frequency=-99", "frequency"),
    ] {
        let r = server.get(&format!("/debug/pprof/profile?{query}"));
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        let text = r.text();
        assert!(text.contains(names), "{query}: {text}");
        assert!(text.contains("expected"), "{query}: {text}");
    }
    // HEAD answers the headers of a GET without taking a profile.
    let r = server.request("HEAD", "/debug/pprof/profile?format=protobuf", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let r = server.get("/tiflash/store-status");
    assert_eq!((r.status, r.text().as_str()), (200, "Running"));
}

#[test]
fn cmdline_is_the_process_arguments_joined_by_nul() {
    let server = TestServer::start(&[]);
    let r = server.get("/debug/pprof/cmdline");
    assert_eq!(r.status, 200);
    let args: Vec<String> = r
        .body
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(args[0].ends_with("status-server"), "{args:?}");
    let data_dir = server.data_dir();
    let expected = [
        "--status-addr",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    assert_eq!(&args[1..], &expected, "{args:?}");
}
