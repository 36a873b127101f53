//! The rendered heap views (`/debug/pprof/heap?jeprof=true&text=…`, `?format=protobuf`) end to
//! end against the real binary, checked by the real `jeprof` and `go tool pprof`.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use integration_tests::{require_tool, server_binary, ServerOptions, TestServer};

/// Turns sampling on and makes the server hold about 8 MiB (see the harness's `hold_memory`).
fn hold_memory(server: &TestServer) -> TcpStream {
    let r = server.get("/debug/pprof/set_prof_active");
    assert_eq!(r.status, 200, "{}", r.text());
    integration_tests::hold_memory(server)
}

/// What the held body weighs in a profile at least: the client has written 8 MiB, but the
/// kernel's socket buffers may still hold a few MiB of it that the server has not read.
const HELD_AT_LEAST: f64 = 2.0 * 1048576.0;

fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(svg, options)
        .unwrap_or_else(|e| panic!("SVG not well-formed: {e}"))
}

/// The `Total: N B` of a jeprof-style text report.
fn total_of(text: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("Total: "))
        .unwrap_or_else(|| panic!("no Total line in:\n{text}"));
    line.trim_start_matches("Total: ")
        .trim_end_matches(" B")
        .parse()
        .unwrap_or_else(|_| panic!("bad Total line {line:?}"))
}

/// `jeprof --text --show_bytes <args…>`.
fn jeprof_text(args: &[&Path]) -> String {
    let out = Command::new(require_tool("jeprof"))
        .args(["--text", "--show_bytes"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("Total:"),
        "jeprof failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn is_allocator(name: &str) -> bool {
    let starts = [
        "prof_", "_rjem_", "je_", "imalloc", "malloc", "calloc", "realloc",
    ];
    let contains = [
        "__rust_alloc",
        "__rust_realloc",
        "__rdl_",
        "alloc::alloc::",
        "tikv_jemallocator",
        "GlobalAlloc>",
    ];
    starts.iter().any(|p| name.starts_with(p)) || contains.iter().any(|p| name.contains(p))
}

/// The folded stacks of the collapsed view, largest first: (frames outermost first, bytes).
fn folded(collapsed: &str) -> Vec<(Vec<String>, u64)> {
    let mut stacks: Vec<(Vec<String>, u64)> = collapsed
        .lines()
        .map(|l| {
            let (stack, bytes) = l.rsplit_once(' ').unwrap();
            (
                stack.split(';').map(str::to_string).collect(),
                bytes.parse().unwrap(),
            )
        })
        .collect();
    stacks.sort_by_key(|s| std::cmp::Reverse(s.1));
    stacks
}

#[test]
fn views_agree_with_jeprof_and_blame_the_servers_code() {
    // The text view and the raw dump for jeprof are two dumps of the same state; at the
    // default rate (one sample per 512 KiB) one small allocation of the request in flight,
    // if sampled, would weigh 512 KiB. Dense sampling makes each sample weigh its own size.
    let server = TestServer::start_with(ServerOptions {
        env: vec![("MALLOC_CONF".into(), "lg_prof_sample:12".into())],
        ..Default::default()
    });
    let slow = hold_memory(&server);
    // Warm the symbolizer first, so that its caches are not new between the two dumps below.
    assert_eq!(
        server.get("/debug/pprof/heap?jeprof=true&text=text").status,
        200
    );

    let raw = server.get("/debug/pprof/heap");
    assert_eq!(raw.status, 200, "{}", raw.text());
    let text = server.get("/debug/pprof/heap?jeprof=true&text=text");
    assert_eq!(text.status, 200, "{}", text.text());
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let collapsed = server.get("/debug/pprof/heap?jeprof=true&text=collapsed");
    assert_eq!(collapsed.status, 200, "{}", collapsed.text());
    drop(slow);

    // The totals agree with the real jeprof on a dump taken just before (the held body is
    // the same allocation, sampled once).
    let dump = server.temp_dir().join("raw.heap");
    std::fs::write(&dump, &raw.body).unwrap();
    let jeprof = jeprof_text(&[&server_binary(), &dump]);
    let (ours, theirs) = (total_of(&text.text()), total_of(&jeprof));
    assert!(
        (ours - theirs).abs() <= theirs * 0.01,
        "ours {ours} vs jeprof {theirs}\n{}\n{jeprof}",
        text.text()
    );
    assert!(ours > HELD_AT_LEAST, "the held body is missing: {ours}");

    // jeprof's top rows are allocator functions (`prof_backtrace_impl` in a release build,
    // `__rust_alloc` in a debug one); ours is code that asked for memory.
    let report = text.text();
    let top = report.lines().nth(1).unwrap();
    let name = top.split_whitespace().nth(5).unwrap();
    assert!(!is_allocator(name), "{top}");
    assert!(!report.contains("prof_backtrace_impl"), "{report}");

    // The largest stack is the held request body: server functions down to the buffer.
    let stacks = folded(&collapsed.text());
    let (frames, bytes) = &stacks[0];
    assert!(*bytes as f64 > HELD_AT_LEAST, "{stacks:?}");
    assert!(!is_allocator(frames.last().unwrap()), "{frames:?}");
    assert!(
        frames
            .iter()
            .any(|f| f.starts_with("status_http::server::")),
        "{frames:?}"
    );
    assert!(
        frames.iter().any(|f| f.contains("hyper::proto::h1")),
        "{frames:?}"
    );
    for (frames, _) in &stacks {
        assert!(!is_allocator(frames.last().unwrap()), "{frames:?}");
    }
}

#[test]
fn svg_is_an_interactive_flame_graph_named_by_server_functions() {
    let server = TestServer::start(&[]);
    let slow = hold_memory(&server);
    for path in [
        "/debug/pprof/heap?jeprof=true",
        "/debug/pprof/heap?jeprof=true&text=svg",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("image/svg+xml"));
        let svg = r.text();
        let doc = parse_svg(&svg);
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(
            doc.descendants().any(|n| n.has_tag_name("script")),
            "interactive"
        );
        assert!(svg.contains("status_http::server::"), "{path}");
        assert!(!svg.contains("prof_backtrace_impl"), "{path}");
    }
    drop(slow);
}

#[test]
fn raw_view_is_read_by_jeprof_without_the_binary() {
    let server = TestServer::start(&[]);
    let slow = hold_memory(&server);
    let r = server.get("/debug/pprof/heap?jeprof=true&text=raw");
    drop(slow);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    let text = r.text();
    assert!(
        text.starts_with("--- symbol\n"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.contains("\n--- heap\nheap_v2/"));
    let file = server.temp_dir().join("heap.raw");
    std::fs::write(&file, &r.body).unwrap();
    // Only the file: the symbols come from it, not from the binary.
    let jeprof = jeprof_text(&[&file]);
    assert!(jeprof.contains("hyper::proto::h1"), "{jeprof}");
    assert!(total_of(&jeprof) > HELD_AT_LEAST, "{jeprof}");
}

#[test]
fn go_tool_pprof_reads_the_protobuf_without_the_binary() {
    let go = require_tool("go");
    let server = TestServer::start(&[]);
    let slow = hold_memory(&server);
    let r = server.get("/debug/pprof/heap?format=protobuf");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(&r.body[..2], b"\x1f\x8b", "gzipped");
    let home = server.temp_dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let file = server.temp_dir().join("heap.pb.gz");
    std::fs::write(&file, &r.body).unwrap();

    let pprof = |args: &[&str], source: &str| {
        let out = Command::new(&go)
            .args(["tool", "pprof"])
            .args(args)
            .arg(source)
            // No binary anywhere pprof looks; its fetched profiles go to a scratch home.
            .env("PPROF_BINARY_PATH", &home)
            .env("HOME", &home)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "go tool pprof {args:?} {source}:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    // From the file, symbolization off: every name comes from the profile itself.
    let top = pprof(&["-top", "-symbolize=none"], file.to_str().unwrap());
    assert!(top.contains("Type: inuse_space"), "{top}");
    assert!(top.contains("hyper::proto::h1"), "{top}");
    assert!(!top.contains("prof_backtrace_impl"), "{top}");
    let objects = pprof(
        &["-top", "-sample_index=inuse_objects"],
        file.to_str().unwrap(),
    );
    assert!(objects.contains("Type: inuse_objects"), "{objects}");
    // The mappings carry the binary's path and build id.
    let raw = pprof(&["-raw"], file.to_str().unwrap());
    assert!(raw.contains(server_binary().to_str().unwrap()), "{raw}");
    // Straight from the server, as a user would run it.
    let url = server.url("/debug/pprof/heap?format=protobuf");
    let top = pprof(&["-top"], &url);
    assert!(top.contains("hyper::proto::h1"), "{top}");
    drop(slow);
}

#[test]
fn every_view_is_served_with_an_empty_path() {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("PATH".into(), String::new())],
        ..Default::default()
    });
    let slow = hold_memory(&server);
    for (query, content_type, starts) in [
        ("", "application/octet-stream", &b"heap_v2/"[..]),
        ("jeprof=true", "image/svg+xml", b"<?xml"),
        ("jeprof=true&text=svg", "image/svg+xml", b"<?xml"),
        (
            "jeprof=true&text=text",
            "text/plain; charset=utf-8",
            b"Total: ",
        ),
        (
            "jeprof=true&text=collapsed",
            "text/plain; charset=utf-8",
            b"",
        ),
        (
            "jeprof=true&text=raw",
            "application/octet-stream",
            b"--- symbol\n",
        ),
        ("format=protobuf", "application/octet-stream", b"\x1f\x8b"),
    ] {
        let r = server.get(&format!("/debug/pprof/heap?{query}"));
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type), "{query}");
        assert!(
            !r.body.is_empty() && r.body.starts_with(starts),
            "{query}: {}",
            String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
        );
    }
    let collapsed = server.get("/debug/pprof/heap?jeprof=true&text=collapsed");
    assert!(collapsed.text().contains("hyper::proto::h1"));
    drop(slow);
}

#[test]
fn views_answer_501_when_heap_profiling_is_off() {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("MALLOC_CONF".into(), "prof:false".into())],
        ..Default::default()
    });
    for query in ["jeprof=true", "jeprof=true&text=text", "format=protobuf"] {
        let r = server.get(&format!("/debug/pprof/heap?{query}"));
        assert_eq!(r.status, 501, "{query}: {}", r.text());
        assert!(r.text().contains("prof"), "{}", r.text());
    }
}
