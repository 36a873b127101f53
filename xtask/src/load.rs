//! `cargo xtask bench` / `cargo xtask load`: the status server under load, against a bare hyper
//! hello-world server, with wrk (Debian package `wrk`).
//!
//! Both servers are release builds on loopback, started by this task and stopped at its end.
//! wrk hammers `GET /tiflash/store-status` with 64 connections; the bare hyper server
//! (`crates/status-http/examples/bare_hyper.rs`) answers the same 7-byte body. Rounds of
//! bare / ours alternate so that both see the same machine; the medians are compared. Then the
//! same load runs while a CPU profile (`/debug/pprof/profile`) and a heap activation
//! (`/debug/pprof/heap_activate?interval=1`) are running, if this build serves those routes.
//!
//! Printed: requests per second of each, our ratio to bare hyper (target ≥ 0.9), p99 latency
//! idle and during profiling (target: within 2× idle), and errors (must be zero: any error
//! fails the task). Numbers go to docs/performance.md.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::server_proc::{build_release_server, target_dir, ServerProcess};
use crate::{cargo, run_cmd};

const CONNECTIONS: u32 = 64;
const THREADS: u32 = 2;
const ROUNDS: usize = 5;
const ROUND_SECS: u64 = 5;
const PROFILED_SECS: u64 = 10;
const PATH: &str = "/tiflash/store-status";

/// Runs the load measurement and prints its table.
pub fn run() -> Result<()> {
    if !on_path("wrk") {
        bail!("the load test needs wrk: install the Debian package (apt-get install wrk)");
    }
    let server_binary = build_release_server()?;
    run_cmd(cargo().args([
        "build",
        "--release",
        "-p",
        "status-http",
        "--example",
        "bare-hyper",
    ]))?;
    let release = target_dir().join("release");
    let work = TempDir::new()?;
    let script = work.path().join("report.lua");
    std::fs::write(&script, WRK_REPORT).context("write the wrk script")?;

    let bare = ServerProcess::start(
        "bare hyper",
        Command::new(release.join("examples").join("bare-hyper")).arg("127.0.0.1:0"),
    )?;
    // The server as shipped: default settings, access log on (to a file, as in production).
    let log = std::fs::File::create(work.path().join("status-server.log"))?;
    let ours = ServerProcess::start(
        "status-server",
        Command::new(server_binary)
            .args(["--status-addr", "127.0.0.1:0", "--data-dir"])
            .arg(work.path().join("data"))
            .stderr(log),
    )?;
    eprintln!(
        "xtask: bare hyper on {}, status-server on {}",
        bare.addr(),
        ours.addr()
    );

    // Warm up both.
    wrk(&script, &bare, 2)?;
    wrk(&script, &ours, 2)?;
    let mut bare_runs = Vec::new();
    let mut idle_runs = Vec::new();
    for round in 0..ROUNDS {
        let b = wrk(&script, &bare, ROUND_SECS)?;
        let o = wrk(&script, &ours, ROUND_SECS)?;
        eprintln!(
            "xtask: round {}: bare {:.0} req/s p99 {:.2} ms {:.2} µs CPU/req | ours {:.0} req/s p99 {:.2} ms {:.2} µs CPU/req",
            round + 1,
            b.rps(),
            b.p99_ms(),
            b.cpu_us_per_request(),
            o.rps(),
            o.p99_ms(),
            o.cpu_us_per_request()
        );
        bare_runs.push(b);
        idle_runs.push(o);
    }

    // The same load during a CPU profile and a heap activation.
    let profile_secs = PROFILED_SECS + 2;
    let profile = {
        let addr = ours.addr();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("load-cpu-profile".into())
            .spawn(move || {
                let _ = tx.send(http_get(
                    addr,
                    &format!("/debug/pprof/profile?seconds={profile_secs}"),
                    Duration::from_secs(profile_secs + 60),
                ));
            })?;
        rx
    };
    let heap = http_get(
        ours.addr(),
        "/debug/pprof/heap_activate?interval=1",
        Duration::from_secs(10),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let profiled = wrk(&script, &ours, PROFILED_SECS)?;
    let cpu = profile
        .recv_timeout(Duration::from_secs(profile_secs + 90))
        .context("the CPU profile request did not finish")??;
    let heap_list = http_get(
        ours.addr(),
        "/debug/pprof/heap_list",
        Duration::from_secs(10),
    )?;
    let deactivate = http_get(
        ours.addr(),
        "/debug/pprof/heap_deactivate",
        Duration::from_secs(10),
    )?;

    let bare_rps = median(bare_runs.iter().map(Run::rps));
    let ours_rps = median(idle_runs.iter().map(Run::rps));
    let idle_p99 = median(idle_runs.iter().map(Run::p99_ms));
    let bare_p99 = median(bare_runs.iter().map(Run::p99_ms));
    let bare_cpu = median(bare_runs.iter().map(Run::cpu_us_per_request));
    let ours_cpu = median(idle_runs.iter().map(Run::cpu_us_per_request));
    let ratio = ours_rps / bare_rps;
    let p99_ratio = profiled.p99_ms() / idle_p99;
    let errors: u64 = bare_runs
        .iter()
        .chain(&idle_runs)
        .chain([&profiled])
        .map(Run::errors)
        .sum();

    let describe = |what: &str, r: &Reply, ok: bool| match r.status {
        404 => format!("{what}: route not built in this binary (404); measured without it"),
        _ if ok => format!("{what}: ran ({} {} bytes)", r.status, r.body.len()),
        s => format!("{what}: answered {s}: {}", r.text().trim()),
    };
    let heap_ok = heap.status == 200;
    let heap_dumps = heap_list.text().lines().count();
    println!();
    println!(
        "load: wrk -t{THREADS} -c{CONNECTIONS}, GET {PATH}, median of {ROUNDS} × {ROUND_SECS} s rounds, release builds, loopback"
    );
    println!(
        "  {}",
        describe(
            &format!("CPU profile ({profile_secs} s)"),
            &cpu,
            cpu.status == 200
        )
    );
    println!(
        "  {}{}",
        describe("heap activation (interval 1 s)", &heap, heap_ok),
        if heap_ok {
            format!(
                "; {heap_dumps} dumps listed, deactivate answered {}",
                deactivate.status
            )
        } else {
            String::new()
        }
    );
    println!("| measurement | requests/s | p99 latency | server CPU per request |");
    println!("|---|---:|---:|---:|");
    println!("| bare hyper hello-world | {bare_rps:.0} | {bare_p99:.2} ms | {bare_cpu:.2} µs |");
    println!("| status-server, idle | {ours_rps:.0} | {idle_p99:.2} ms | {ours_cpu:.2} µs |");
    println!(
        "| status-server, during CPU profile + heap activation | {:.0} | {:.2} ms | {:.2} µs |",
        profiled.rps(),
        profiled.p99_ms(),
        profiled.cpu_us_per_request()
    );
    println!(
        "ratio to bare hyper: {ratio:.3} (target ≥ 0.9: {})",
        verdict(ratio >= 0.9)
    );
    println!(
        "server CPU per request, bare hyper / ours: {:.3} (CPU cost ratio; throughput differs less, wrk shares the machine)",
        bare_cpu / ours_cpu
    );
    println!(
        "p99 during profiling / idle p99: {p99_ratio:.2} (target ≤ 2: {})",
        verdict(p99_ratio <= 2.0)
    );
    println!("errors (connect, read, write, timeout, non-2xx): {errors}");

    drop(ours);
    drop(bare);
    if errors > 0 {
        bail!("{errors} requests failed under load");
    }
    if cpu.status != 200 && cpu.status != 404 {
        bail!("the CPU profile under load answered {}", cpu.status);
    }
    if heap.status != 200 && heap.status != 404 {
        bail!("the heap activation under load answered {}", heap.status);
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn on_path(cmd: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(cmd).is_file())
}

/// wrk's summary, printed by [`WRK_REPORT`] on one line.
const WRK_REPORT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK requests=%d duration_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(99.0),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"#;

/// One wrk run.
#[derive(Debug, Default)]
struct Run {
    requests: f64,
    duration_us: f64,
    p99_us: f64,
    errors: u64,
    /// CPU time (user + system) the server process used during the run.
    server_cpu_us: f64,
}

impl Run {
    fn cpu_us_per_request(&self) -> f64 {
        self.server_cpu_us / self.requests
    }

    fn rps(&self) -> f64 {
        self.requests / (self.duration_us / 1e6)
    }

    fn p99_ms(&self) -> f64 {
        self.p99_us / 1e3
    }

    fn errors(&self) -> u64 {
        self.errors
    }
}

fn wrk(script: &Path, server: &ServerProcess, secs: u64) -> Result<Run> {
    let addr = server.addr();
    let cpu_before = cpu_time_us(server.pid())?;
    let out = Command::new("wrk")
        .arg(format!("-t{THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}{PATH}"))
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed with {}: {text}", out.status);
    }
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("WRK "))
        .with_context(|| format!("no summary in wrk's output: {text}"))?;
    let mut run = Run::default();
    for field in line.split_whitespace() {
        let (k, v) = field.split_once('=').context("malformed wrk summary")?;
        let v: f64 = v.parse().context("malformed wrk number")?;
        match k {
            "requests" => run.requests = v,
            "duration_us" => run.duration_us = v,
            "p99_us" => run.p99_us = v,
            _ => run.errors += v as u64,
        }
    }
    if run.requests <= 0.0 || run.duration_us <= 0.0 {
        bail!("wrk made no requests: {text}");
    }
    run.server_cpu_us = cpu_time_us(server.pid())? - cpu_before;
    Ok(run)
}

/// User + system CPU time of a process so far, from `/proc/PID/stat`, in microseconds.
fn cpu_time_us(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start with field 3, the state;
    // utime and stime are fields 14 and 15, in clock ticks.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .context("malformed /proc stat")
    };
    Ok((ticks(11)? + ticks(12)?) * 1e6 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A reply from [`http_get`].
struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One `GET` on a fresh connection (`Connection: close`), read to the end.
fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("GET {path}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("GET {path}: no reply head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("GET {path}: bad status line in {head:?}"))?;
    Ok(Reply {
        status,
        body: raw[split + 4..].to_vec(),
    })
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("xtask-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
