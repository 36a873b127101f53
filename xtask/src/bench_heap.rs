//! `cargo xtask bench heap`: the in-process heap flame graph against
//! `jeprof --svg`, side by side in one run on the same server (docs/performance.md, "Heap
//! views").
//!
//! 1. Builds the release server and starts it on a free loopback port with a scratch data
//!    directory, twice: at the default sample rate, and sampling densely from the start
//!    (`MALLOC_CONF=prof_active:true,lg_prof_sample:12`, many more stacks). Sends it some
//!    traffic, turns heap sampling on and makes it hold memory (three request bodies, 4, 8 and
//!    12 MiB of 16 MiB each, partly received).
//! 2. `GET /debug/pprof/heap?jeprof=true&text=svg` once cold (first use of the symbolizer),
//!    then takes the raw dump `GET /debug/pprof/heap` that jeprof will read, then times the SVG
//!    request warm, several times. Each SVG request dumps, parses, symbolizes and renders; the
//!    server holds the same memory throughout, so each sees the same stacks as the raw dump
//!    (the run prints the `Total` of a text view taken right after the raw dump next to
//!    jeprof's on that dump: they differ by at most what the requests in flight hold).
//! 3. Times `jeprof --svg <binary> <dump>` (perl, binutils and graphviz `dot`) on the dump.
//!
//! Prints the times and the ratio. Needs `jeprof` (libjemalloc-dev) and `dot` (graphviz).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use crate::server_proc::{build_release_server, ServerProcess};

const WARM_ROUNDS: usize = 10;
const JEPROF_ROUNDS: usize = 3;

/// Runs the benchmark and prints its table.
pub fn run() -> Result<()> {
    for tool in ["jeprof", "dot"] {
        ensure!(
            on_path(tool),
            "'{tool}' is not installed (libjemalloc-dev, graphviz)"
        );
    }
    let binary = build_release_server()?;
    let work = std::env::temp_dir().join(format!("xtask-bench-heap-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let result = SCENARIOS
        .iter()
        .try_for_each(|scenario| measure(&binary, &work, scenario));
    let _ = fs::remove_dir_all(&work);
    result
}

/// A server configuration to measure.
struct Scenario {
    name: &'static str,
    /// `MALLOC_CONF` for the server, if any.
    malloc_conf: Option<&'static str>,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "default sampling (one sample per 512 KiB), sampling on just before",
        malloc_conf: None,
    },
    Scenario {
        name: "dense sampling (one sample per 4 KiB, MALLOC_CONF=prof_active:true,lg_prof_sample:12), \
               sampling on from the start",
        malloc_conf: Some("prof_active:true,lg_prof_sample:12"),
    },
];

fn measure(binary: &Path, work: &Path, scenario: &Scenario) -> Result<()> {
    let data_dir = work.join("data");
    let _ = fs::remove_dir_all(&data_dir);
    let server = start_server(binary, &data_dir, scenario.malloc_conf)?;
    // Some traffic first, so the profile holds the server's usual state, not just the bodies.
    for path in [
        "/debug/pprof/symbol",
        "/debug/pprof/cmdline",
        "/tiflash/store-status",
        "/debug/pprof/memory_status",
        "/debug/pprof/heap_list",
    ] {
        for _ in 0..20 {
            get(server.addr(), path)?;
        }
    }
    let (status, body) = get(server.addr(), "/debug/pprof/set_prof_active")?;
    ensure!(status == 200, "set_prof_active: {status} {}", lossy(&body));
    let held: Vec<TcpStream> = [4usize, 8, 12]
        .iter()
        .map(|&mib| hold_body(server.addr(), mib << 20))
        .collect::<Result<_>>()?;
    std::thread::sleep(Duration::from_millis(300));

    let svg_path = "/debug/pprof/heap?jeprof=true&text=svg";
    let (cold, cold_svg) = timed_get(server.addr(), svg_path)?;

    let (status, dump) = get(server.addr(), "/debug/pprof/heap")?;
    ensure!(status == 200, "raw dump: {status} {}", lossy(&dump));
    let dump_path = work.join("bench.heap");
    fs::write(&dump_path, &dump)?;
    let stacks = dump
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"@"))
        .count();
    let (status, text) = get(server.addr(), "/debug/pprof/heap?jeprof=true&text=text")?;
    ensure!(status == 200, "text view: {status}");

    let mut warm = Vec::with_capacity(WARM_ROUNDS);
    let mut svg_bytes = cold_svg.len();
    for _ in 0..WARM_ROUNDS {
        let (time, svg) = timed_get(server.addr(), svg_path)?;
        svg_bytes = svg.len();
        warm.push(time);
    }
    warm.sort();
    let warm_median = warm[warm.len() / 2];
    drop(held);

    let mut jeprof = Vec::with_capacity(JEPROF_ROUNDS);
    let mut jeprof_svg = 0;
    for _ in 0..JEPROF_ROUNDS {
        let started = Instant::now();
        let out = Command::new("jeprof")
            .arg("--svg")
            .arg(binary)
            .arg(&dump_path)
            .stderr(Stdio::null())
            .output()
            .context("run jeprof")?;
        jeprof.push(started.elapsed());
        ensure!(
            out.status.success() && out.stdout.starts_with(b"<?xml"),
            "jeprof --svg failed: {}",
            out.status
        );
        jeprof_svg = out.stdout.len();
    }
    jeprof.sort();
    let jeprof_median = jeprof[jeprof.len() / 2];

    let out = Command::new("jeprof")
        .args(["--text", "--show_bytes"])
        .arg(binary)
        .arg(&dump_path)
        .stderr(Stdio::null())
        .output()
        .context("run jeprof --text")?;
    let theirs = total(&lossy(&out.stdout)).context("jeprof --text printed no Total")?;
    let ours = total(&lossy(&text)).context("the text view has no Total")?;
    // Two dumps of the same state: they differ only by what the requests in flight hold,
    // which at the default rate can be one sample (512 KiB) more or less.
    let difference = (ours - theirs).abs() / theirs;
    ensure!(
        difference <= 0.05,
        "the text view and jeprof disagree: ours {ours} B, jeprof {theirs} B"
    );

    println!(
        "heap views, {}: flame graph of one heap_v2 dump ({stacks} stacks, {} bytes) of {}",
        scenario.name,
        dump.len(),
        binary.display()
    );
    println!(
        "  GET heap?jeprof=true&text=svg, cold:   {:>9.1} ms ({} bytes of SVG)",
        ms(cold),
        cold_svg.len()
    );
    println!(
        "  GET heap?jeprof=true&text=svg, warm:   {:>9.1} ms (median of {WARM_ROUNDS}, min {:.1} ms; {svg_bytes} bytes)",
        ms(warm_median),
        ms(warm[0])
    );
    println!(
        "  jeprof --svg <binary> <dump>:          {:>9.1} ms (median of {JEPROF_ROUNDS}; {jeprof_svg} bytes)",
        ms(jeprof_median)
    );
    println!(
        "  ratio jeprof / warm server:            {:>9.1}x (target >= 50x)",
        jeprof_median.as_secs_f64() / warm_median.as_secs_f64()
    );
    println!(
        "  ratio jeprof / cold server:            {:>9.1}x",
        jeprof_median.as_secs_f64() / cold.as_secs_f64()
    );
    println!(
        "  Total in use: ours {ours:.0} B (text view right after the dump), jeprof {theirs:.0} B \
         ({:.2}% apart)",
        difference * 100.0
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The `Total: N B` of a `--show_bytes` text report.
fn total(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("Total: "))?;
    line.trim_start_matches("Total: ")
        .trim_end_matches(" B")
        .trim()
        .parse()
        .ok()
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(tool).is_file())
}

/// Sends the head and `sent` bytes of a POST whose declared body is larger, and keeps the
/// connection open: the server holds the partial body in memory until it closes.
fn hold_body(addr: SocketAddr, sent: usize) -> Result<TcpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    write!(
        stream,
        "POST /debug/pprof/symbol HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        16 << 20
    )?;
    stream.write_all(&vec![b'0'; sent])?;
    Ok(stream)
}

fn timed_get(addr: SocketAddr, path: &str) -> Result<(Duration, Vec<u8>)> {
    let started = Instant::now();
    let (status, body) = get(addr, path)?;
    let elapsed = started.elapsed();
    ensure!(status == 200, "GET {path}: {status} {}", lossy(&body));
    Ok((elapsed, body))
}

/// One HTTP/1.1 GET on a fresh connection, read to the end: (status, body).
fn get(addr: SocketAddr, path: &str) -> Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of the response head")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status code")?;
    let mut body = raw[split + 4..].to_vec();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())
            .flatten()
    });
    if let Some(length) = length {
        body.truncate(length);
    }
    Ok((status, body))
}

/// Starts the server under test (killed when dropped) on a free loopback port with `data_dir`,
/// with `MALLOC_CONF=malloc_conf` if given.
fn start_server(
    binary: &Path,
    data_dir: &Path,
    malloc_conf: Option<&str>,
) -> Result<ServerProcess> {
    let mut command = Command::new(binary);
    if let Some(conf) = malloc_conf {
        command.env("MALLOC_CONF", conf);
    }
    command
        .args(["--status-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stderr(Stdio::null());
    ServerProcess::start("status-server", &mut command)
}
