//! The jemalloc heap routes end to end against the real binary, read by the real `jeprof`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use integration_tests::{curl, require_tool, server_binary, ServerOptions, TestServer};

fn is_heap_v2(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.starts_with("heap_v2/") && text.contains("\nMAPPED_LIBRARIES:\n")
}

/// `jeprof --text <server binary> <dump>`: the report, or a panic with jeprof's stderr.
fn jeprof_text(dump: &Path) -> String {
    let jeprof = require_tool("jeprof");
    let out = Command::new(jeprof)
        .args(["--text", "--show_bytes"])
        .arg(server_binary())
        .arg(dump)
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

/// One `heap_list` line: `<absolute path>\t\t<YYYY-MM-DD HH:MM:SS>`.
fn parse_list_line(line: &str) -> (PathBuf, String) {
    let (path, time) = line
        .split_once("\t\t")
        .unwrap_or_else(|| panic!("no tab pair in {line:?}"));
    let path = PathBuf::from(path);
    assert!(path.is_absolute(), "{line:?}");
    let b = time.as_bytes();
    assert!(
        b.len() == 19
            && (b[4], b[7], b[10], b[13], b[16]) == (b'-', b'-', b' ', b':', b':')
            && time.chars().filter(char::is_ascii_digit).count() == 14,
        "time of {line:?}"
    );
    (path, time.to_string())
}

use integration_tests::hold_memory;

#[test]
fn raw_dump_is_read_by_jeprof_and_shows_server_functions() {
    let server = TestServer::start(&[]);
    let r = server.get("/debug/pprof/set_prof_active");
    assert_eq!(
        (r.status, r.text().trim()),
        (200, "set prof.active succeed")
    );

    let slow = hold_memory(&server);

    let r = server.get("/debug/pprof/heap");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(is_heap_v2(&r.body), "{}", r.text());
    drop(slow);

    let dump = server.temp_dir().join("raw.heap");
    std::fs::write(&dump, &r.body).unwrap();
    let report = jeprof_text(&dump);
    // The body buffer was allocated by the server's own transport crate.
    assert!(report.contains("status_http::"), "jeprof report:\n{report}");
    // The one-shot dump left nothing in the data directory.
    let root = server.data_dir().join("heap-profiles");
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);

    let r = server.get("/debug/pprof/set_prof_inactive");
    assert_eq!(
        (r.status, r.text().trim()),
        (200, "set prof.active succeed")
    );
}

#[test]
fn periodic_dumps_are_listed_downloaded_and_removed() {
    let server = TestServer::start(&[]);
    assert_eq!(
        server.get("/debug/pprof/heap_list").text(),
        "",
        "nothing active yet"
    );

    let r = server.get("/debug/pprof/heap_activate?interval=1");
    assert_eq!(
        (r.status, r.text().trim()),
        (200, "activate heap profile success")
    );
    let slow = hold_memory(&server);
    let r = server.get("/debug/pprof/heap_activate?interval=5");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("already active"), "{}", r.text());

    std::thread::sleep(Duration::from_secs(3));
    // Two dumps are due by now; a machine under load gets a few more seconds to write them.
    let deadline = Instant::now() + Duration::from_secs(7);
    while server.get("/debug/pprof/heap_list").text().lines().count() < 2
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = server.get("/debug/pprof/heap_list");
    assert_eq!(r.status, 200);
    let lines: Vec<(PathBuf, String)> = r.text().lines().map(parse_list_line).collect();
    assert!(
        lines.len() >= 2,
        "after 3 s with interval=1: {:?}",
        r.text()
    );
    let data_dir = server.data_dir().canonicalize().unwrap();
    let dump_dir = lines[0].0.parent().unwrap().to_path_buf();
    assert!(
        dump_dir.starts_with(data_dir.join("heap-profiles")),
        "{dump_dir:?} not under {data_dir:?}"
    );
    let names: Vec<String> = lines
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for pair in names.windows(2) {
        assert!(pair[0] > pair[1], "newest first: {names:?}");
    }
    for pair in lines.windows(2) {
        assert!(pair[0].1 >= pair[1].1, "times newest first: {lines:?}");
    }
    assert!(names.contains(&"000001.heap".to_string()), "{names:?}");

    for (path, _) in &lines {
        assert_eq!(path.parent().unwrap(), dump_dir);
        let name = path.file_name().unwrap().to_str().unwrap();
        let r = server.get(&format!("/debug/pprof/heap_file/{name}"));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert!(is_heap_v2(&r.body), "{name}");
        assert_eq!(
            r.body,
            std::fs::read(path).unwrap(),
            "{name} is the listed file"
        );
    }
    // The oldest dump through curl, read by jeprof against the binary.
    let file = server.temp_dir().join("000001.heap");
    let (status, _, err) = curl(&[
        "--fail",
        "-o",
        file.to_str().unwrap(),
        &server.url("/debug/pprof/heap_file/000001.heap"),
    ]);
    assert!(status.success(), "{err}");
    let report = jeprof_text(&file);
    assert!(report.contains("status_http::"), "jeprof report:\n{report}");
    drop(slow);

    // Only listed names can be fetched.
    for path in [
        "/debug/pprof/heap_file/999999.heap",
        "/debug/pprof/heap_file/..%2F000001.heap",
        "/debug/pprof/heap_file/../heap_file/000001.heap",
        "/debug/pprof/heap_file/000001.txt",
    ] {
        assert_eq!(server.get(path).status, 404, "{path}");
    }

    let r = server.get("/debug/pprof/heap_deactivate");
    assert_eq!(
        (r.status, r.text().trim()),
        (200, "deactivate heap profile success")
    );
    assert!(!dump_dir.exists(), "deactivate removes the directory");
    let left: Vec<_> = std::fs::read_dir(data_dir.join("heap-profiles"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "nothing left on disk: {left:?}");
    assert_eq!(server.get("/debug/pprof/heap_list").text(), "");
    assert_eq!(server.get("/debug/pprof/heap_file/000001.heap").status, 404);
    let r = server.get("/debug/pprof/heap_deactivate");
    assert_eq!(
        (r.status, r.text().trim()),
        (200, "no heap profile is running")
    );

    // A new activation after the deactivation starts over.
    assert_eq!(
        server
            .get("/debug/pprof/heap_activate?interval=3600")
            .status,
        200
    );
    assert_eq!(server.get("/debug/pprof/heap_deactivate").status, 200);
}

#[test]
fn cpu_profile_runs_during_a_heap_activation() {
    let server = TestServer::start(&[]);
    assert_eq!(
        server.get("/debug/pprof/heap_activate?interval=1").status,
        200
    );
    let r = server.get("/debug/pprof/profile?seconds=2&format=protobuf");
    assert_eq!(
        r.status,
        200,
        "CPU profile during a heap activation: {}",
        r.text()
    );
    // The activation kept dumping while the CPU profile ran.
    assert!(!server.get("/debug/pprof/heap_list").text().is_empty());
    let r = server.get("/debug/pprof/heap_deactivate");
    assert_eq!(
        (r.status, r.text().trim()),
        (200, "deactivate heap profile success")
    );
}

#[test]
fn activation_interval_is_bounds_checked() {
    let server = TestServer::start(&[]);
    for bad in ["0", "86401", "x", "-1"] {
        let r = server.get(&format!("/debug/pprof/heap_activate?interval={bad}"));
        assert_eq!(r.status, 400, "interval={bad}: {}", r.text());
        assert!(r.text().contains("'interval'"), "{}", r.text());
    }
    assert_eq!(
        server.get("/debug/pprof/heap_list").text(),
        "",
        "a refused activation starts nothing"
    );
}

#[test]
fn malloc_conf_prof_false_gives_501_with_a_way_to_enable_it() {
    let server = TestServer::start_with(ServerOptions {
        env: vec![("MALLOC_CONF".into(), "prof:false".into())],
        ..Default::default()
    });
    for path in [
        "/debug/pprof/heap",
        "/debug/pprof/heap_activate?interval=1",
        "/debug/pprof/set_prof_active",
        "/debug/pprof/set_prof_inactive",
    ] {
        let r = server.get(path);
        assert_eq!(r.status, 501, "{path}: {}", r.text());
        assert!(
            r.text().contains("MALLOC_CONF=prof:true"),
            "{path}: {}",
            r.text()
        );
        assert!(r.text().ends_with('\n') && !r.text().trim().is_empty());
    }
    assert_eq!(server.get("/debug/pprof/heap_list").text(), "");
    // Purge and statistics need jemalloc only, not profiling.
    assert_eq!(server.get("/debug/pprof/arena_purge").status, 200);
    assert_eq!(server.get("/debug/pprof/memory_status").status, 200);
    assert!(
        !server.data_dir().exists(),
        "nothing written with profiling off"
    );
}

#[test]
fn memory_status_is_json_by_default_and_text_on_request() {
    let server = TestServer::start(&[]);
    let r = server.get("/debug/pprof/memory_status");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(
        json["jemalloc"]["stats"]["resident"].as_u64().unwrap() > 0,
        "{json}"
    );
    assert_eq!(
        json["jemalloc"]["config"]["prof"],
        serde_json::Value::Bool(true)
    );

    let r = server.get("/debug/pprof/memory_status?format=text");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(r.text().contains("Begin jemalloc statistics") && r.text().contains("Allocated:"));

    let r = server.get("/debug/pprof/memory_status?format=xml");
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn arena_purge_reports_resident_bytes() {
    let server = TestServer::start(&[]);
    let r = server.get("/debug/pprof/arena_purge");
    assert_eq!(r.status, 200);
    let text = r.text();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("purge OK"));
    let mut bytes = Vec::new();
    for label in ["resident bytes before: ", "resident bytes after: "] {
        let line = lines.next().unwrap_or_default();
        let n: u64 = line
            .strip_prefix(label)
            .unwrap_or_else(|| panic!("{text}"))
            .parse()
            .unwrap();
        bytes.push(n);
    }
    assert!(bytes[0] > 0 && bytes[1] > 0, "{text}");
}

#[test]
fn unwritable_data_dir_is_a_500_and_the_server_keeps_serving() {
    let server = TestServer::start(&[]);
    // The data directory is created on first use; a plain file in its place cannot hold dumps.
    std::fs::write(server.data_dir(), b"not a directory").unwrap();

    let r = server.get("/debug/pprof/heap_activate?interval=1");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().contains("cannot create heap dump directory"),
        "{}",
        r.text()
    );
    let r = server.get("/debug/pprof/heap");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().contains(server.data_dir().to_str().unwrap()),
        "{}",
        r.text()
    );

    // Still serving, and a failed activation holds no slot.
    assert_eq!(server.get("/tiflash/store-status").text(), "Running");
    assert_eq!(server.get("/debug/pprof/heap_list").text(), "");
    std::fs::remove_file(server.data_dir()).unwrap();
    assert_eq!(
        server.get("/debug/pprof/heap_activate?interval=60").status,
        200
    );
    assert_eq!(server.get("/debug/pprof/heap_deactivate").status, 200);
}

#[test]
fn dumps_stop_with_the_server() {
    let mut server = TestServer::start(&[]);
    assert_eq!(
        server.get("/debug/pprof/heap_activate?interval=1").status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/debug/pprof/heap_list").text().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!server.get("/debug/pprof/heap_list").text().is_empty());
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    let root = server.data_dir().join("heap-profiles");
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert!(
        left.is_empty(),
        "a clean shutdown removes the activation's files: {left:?}"
    );
}

#[test]
fn heap_dump_max_files_bounds_the_files_kept() {
    let server = TestServer::start(&["--heap-dump-max-files", "2"]);
    let r = server.get("/debug/pprof/heap_activate?interval=1");
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut newest_seen = String::new();
    // Wait for the fourth dump; by then the first two must be gone.
    while Instant::now() < deadline && !newest_seen.ends_with("000004.heap") {
        std::thread::sleep(Duration::from_millis(200));
        let list = server.get("/debug/pprof/heap_list").text();
        assert!(list.lines().count() <= 2, "more than 2 dumps kept:\n{list}");
        if let Some(first) = list.lines().next() {
            newest_seen = parse_list_line(first).0.to_string_lossy().into_owned();
        }
    }
    assert!(
        newest_seen.ends_with("000004.heap"),
        "dumps did not advance: {newest_seen}"
    );
    assert_eq!(server.get("/debug/pprof/heap_deactivate").status, 200);
    let out = std::process::Command::new(server_binary())
        .args(["--heap-dump-max-files", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("heap-dump-max-files '0'"));
}
