//! `cargo xtask bench symbol`: the in-process symbolizer against binutils, side by side in one
//! run (docs/performance.md, "Symbolization").
//!
//! 1. Builds the release server (unless `--binary PATH` names one) and picks `--count N`
//!    (default 10,000) distinct addresses inside its functions, from `nm -S` (every function
//!    start, then evenly spaced addresses inside the functions until there are N).
//! 2. Starts the server on a free loopback port, reads its load bias from `/proc/PID/maps`,
//!    and POSTs the runtime addresses to `/debug/pprof/symbol` with curl: once cold, then
//!    `--rounds R` (default 5) times warm, reading the server's resident memory in between.
//! 3. Runs `addr2line -f -i -C -e BINARY` on the same (file) addresses.
//!
//! Prints the times, the ratio binutils / warm server, and the server's RSS growth, and fails
//! if the server resolved fewer than 99% of the addresses.
//!
//! Needs `nm`, `addr2line`, `readelf` (binutils) and `curl`.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::server_proc::{build_release_server, ServerProcess};

/// Options of the benchmark, from the command line.
#[derive(Debug)]
struct Options {
    binary: Option<PathBuf>,
    count: usize,
    rounds: usize,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options {
        binary: None,
        count: 10_000,
        rounds: 5,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--binary" => options.binary = Some(PathBuf::from(value("--binary")?)),
            "--count" => {
                options.count = value("--count")?
                    .parse()
                    .context("--count: expected a number")?
            }
            "--rounds" => {
                options.rounds = value("--rounds")?
                    .parse()
                    .context("--rounds: expected a number")?
            }
            other => {
                bail!("unknown argument '{other}'; expected --binary PATH, --count N, --rounds R")
            }
        }
    }
    ensure!(
        options.count > 0 && options.rounds > 0,
        "--count and --rounds must be at least 1"
    );
    Ok(options)
}

/// Runs the benchmark; `args` are the words after `cargo xtask bench symbol`.
pub fn run(args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    for tool in ["nm", "addr2line", "readelf", "curl"] {
        ensure!(on_path(tool), "'{tool}' is not installed (binutils / curl)");
    }
    let binary = match &options.binary {
        Some(binary) => binary.clone(),
        None => build_release_server()?,
    };
    let binary =
        fs::canonicalize(&binary).with_context(|| format!("no binary at {}", binary.display()))?;
    let functions = functions(&binary)?;
    let file_addresses = pick_addresses(&functions, options.count);
    ensure!(
        file_addresses.len() == options.count,
        "{} has room for only {} distinct addresses in functions",
        binary.display(),
        file_addresses.len()
    );
    let first_load_vaddr = first_load_vaddr(&binary)?;

    let work = std::env::temp_dir().join(format!("xtask-bench-symbol-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let result = measure(&options, &binary, &file_addresses, first_load_vaddr, &work);
    let _ = fs::remove_dir_all(&work);
    result
}

fn measure(
    options: &Options,
    binary: &Path,
    file_addresses: &[u64],
    first_load_vaddr: u64,
    work: &Path,
) -> Result<()> {
    let server = Server::start(binary, &work.join("data"))?;
    let bias = server.load_bias(binary, first_load_vaddr)?;
    let body_path = work.join("addresses.txt");
    let body: Vec<String> = file_addresses
        .iter()
        .map(|a| format!("{:#x}", a + bias))
        .collect();
    fs::write(&body_path, body.join("+"))?;

    let rss_start = server.rss()?;
    let (cold, reply) = post(&server.url, &body_path)?;
    let rss_cold = server.rss()?;
    let mut warm = Vec::with_capacity(options.rounds);
    for _ in 0..options.rounds {
        let (time, again) = post(&server.url, &body_path)?;
        ensure!(again == reply, "a warm reply differs from the cold one");
        warm.push(time);
    }
    let rss_warm = server.rss()?;
    warm.sort();
    let warm_median = warm[warm.len() / 2];

    let resolved = reply.lines().count();
    let inlined = reply.lines().filter(|l| l.contains("--")).count();
    let sample: Vec<&str> = reply
        .lines()
        .step_by((resolved / 3).max(1))
        .take(3)
        .collect();

    let input: String = file_addresses.iter().map(|a| format!("{a:#x}\n")).collect();
    let started = Instant::now();
    let mut child = Command::new("addr2line")
        .args(["-f", "-i", "-C", "-e"])
        .arg(binary)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("run addr2line")?;
    let mut stdin = child.stdin.take().context("addr2line stdin")?;
    let writer = std::thread::Builder::new()
        .name("addr2line-input".into())
        .spawn(move || stdin.write_all(input.as_bytes()))?;
    let output = child.wait_with_output()?;
    let binutils = started.elapsed();
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("addr2line input thread panicked"))??;
    ensure!(
        output.status.success(),
        "addr2line failed: {}",
        output.status
    );
    let binutils_lines = output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "symbolization: {} distinct addresses in the functions of {}",
        file_addresses.len(),
        binary.display()
    );
    println!(
        "  server POST /debug/pprof/symbol, cold: {:>9.1} ms",
        ms(cold)
    );
    println!(
        "  server POST /debug/pprof/symbol, warm: {:>9.1} ms (median of {}, min {:.1} ms)",
        ms(warm_median),
        warm.len(),
        ms(warm[0])
    );
    println!(
        "  binutils addr2line -f -i -C:           {:>9.1} ms",
        ms(binutils)
    );
    println!(
        "  ratio binutils / warm server:          {:>9.1}x (target >= 20x)",
        binutils.as_secs_f64() / warm_median.as_secs_f64()
    );
    println!(
        "  ratio binutils / cold server:          {:>9.1}x",
        binutils.as_secs_f64() / cold.as_secs_f64()
    );
    println!(
        "  server RSS: {:.1} MiB at start, {:.1} MiB after cold, {:.1} MiB after warm; growth {:.1} MiB (target < 64 MiB)",
        mib(rss_start.total),
        mib(rss_cold.total),
        mib(rss_warm.total),
        mib(rss_warm.total.saturating_sub(rss_start.total))
    );
    println!(
        "    of which anonymous (heap) {:.1} MiB, file pages (mapped binary) {:.1} MiB",
        mib(rss_warm.anon.saturating_sub(rss_start.anon)),
        mib(rss_warm.file.saturating_sub(rss_start.file))
    );
    println!(
        "  server resolved {resolved} of {} addresses, {inlined} with inlined frames",
        file_addresses.len()
    );
    println!("  binutils printed {binutils_lines} lines (function + file:line per frame)");
    for line in sample {
        println!("    e.g. {line}");
    }
    ensure!(
        resolved * 100 >= file_addresses.len() * 99,
        "the server resolved only {resolved} of {} addresses",
        file_addresses.len()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// `(start, size)` of every sized function symbol (`nm -S`, types t/T/w/W), deduplicated by start.
fn functions(binary: &Path) -> Result<Vec<(u64, u64)>> {
    let out = Command::new("nm")
        .args(["--defined-only", "-S", "--no-demangle"])
        .arg(binary)
        .output()
        .context("run nm")?;
    ensure!(out.status.success(), "nm failed on {}", binary.display());
    let mut by_start = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [address, size, kind, _name] = fields[..] {
            if !matches!(kind, "t" | "T" | "w" | "W") {
                continue;
            }
            let (Ok(address), Ok(size)) = (
                u64::from_str_radix(address, 16),
                u64::from_str_radix(size, 16),
            ) else {
                continue;
            };
            if address > 0 && size > 0 {
                let entry = by_start.entry(address).or_insert(size);
                *entry = (*entry).max(size);
            }
        }
    }
    ensure!(
        !by_start.is_empty(),
        "{} has no function symbols (stripped?)",
        binary.display()
    );
    Ok(by_start.into_iter().collect())
}

/// `count` distinct addresses inside functions: every function start first, then addresses at
/// an even stride through the functions' bytes, so large functions get proportionally more.
fn pick_addresses(functions: &[(u64, u64)], count: usize) -> Vec<u64> {
    let mut picked: BTreeSet<u64> = functions
        .iter()
        .map(|&(start, _)| start)
        .take(count)
        .collect();
    let total: u64 = functions.iter().map(|&(_, size)| size).sum();
    let mut divisions = 2u64;
    while picked.len() < count && divisions < total {
        let stride = (total / divisions).max(1);
        let mut offset = stride / 2;
        let mut base = 0u64;
        for &(start, size) in functions {
            while offset < base + size && picked.len() < count {
                picked.insert(start + (offset - base));
                offset += stride;
            }
            base += size;
        }
        divisions *= 2;
    }
    picked.into_iter().collect()
}

/// The `p_vaddr` of the first `PT_LOAD` segment (`readelf -lW`).
fn first_load_vaddr(binary: &Path) -> Result<u64> {
    let out = Command::new("readelf")
        .args(["-lW"])
        .arg(binary)
        .output()
        .context("run readelf")?;
    ensure!(
        out.status.success(),
        "readelf -l failed on {}",
        binary.display()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("LOAD"))
        .context("no LOAD segment")?;
    let vaddr = line
        .split_whitespace()
        .nth(2)
        .context("malformed LOAD line")?;
    u64::from_str_radix(vaddr.trim_start_matches("0x"), 16).context("malformed LOAD address")
}

/// Resident memory of a process, KiB.
#[derive(Debug, Clone, Copy)]
struct Rss {
    total: u64,
    anon: u64,
    file: u64,
}

/// The server under test (a [`ServerProcess`], killed on drop) and its symbol URL.
struct Server {
    process: ServerProcess,
    url: String,
}

impl Server {
    /// Starts `binary` on a free loopback port with `data_dir`, logging warnings and errors only.
    fn start(binary: &Path, data_dir: &Path) -> Result<Server> {
        let process = ServerProcess::start(
            "status-server",
            Command::new(binary)
                .args([
                    "--status-addr",
                    "127.0.0.1:0",
                    "--log-level",
                    "warn",
                    "--data-dir",
                ])
                .arg(data_dir)
                .stderr(Stdio::null()),
        )?;
        let url = format!("http://{}/debug/pprof/symbol", process.addr());
        Ok(Server { process, url })
    }

    fn load_bias(&self, binary: &Path, first_load_vaddr: u64) -> Result<u64> {
        let maps = fs::read_to_string(format!("/proc/{}/maps", self.process.pid()))?;
        for line in maps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 6
                && Path::new(fields[5]) == binary
                && fields[2].trim_start_matches('0').is_empty()
            {
                let start = fields[0].split('-').next().context("malformed maps line")?;
                let start = u64::from_str_radix(start, 16)?;
                return Ok(start - (first_load_vaddr & !0xfff));
            }
        }
        bail!("{} is not mapped in the server process", binary.display())
    }

    fn rss(&self) -> Result<Rss> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.process.pid()))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .unwrap_or(0)
        };
        Ok(Rss {
            total: field("VmRSS:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
        })
    }
}

/// POSTs the body file with curl; the wall time (curl start to exit) and the reply.
fn post(url: &str, body: &Path) -> Result<(Duration, String)> {
    let started = Instant::now();
    let out = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "300",
            "-X",
            "POST",
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .arg(url)
        .output()
        .context("run curl")?;
    let elapsed = started.elapsed();
    ensure!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((
        elapsed,
        String::from_utf8(out.stdout).context("the reply is not UTF-8")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_distinct_addresses_inside_functions() {
        let functions = [(0x1000, 0x10), (0x2000, 0x400), (0x3000, 0x4)];
        let picked = pick_addresses(&functions, 100);
        assert_eq!(picked.len(), 100);
        assert!(picked.contains(&0x1000) && picked.contains(&0x2000) && picked.contains(&0x3000));
        assert!(picked
            .iter()
            .all(|&a| functions.iter().any(|&(s, n)| s <= a && a < s + n)));
        assert_eq!(pick_addresses(&functions, 2), vec![0x1000, 0x2000]);
    }

    #[test]
    fn parses_arguments() {
        let args: Vec<String> = ["--count", "50", "--binary", "/x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse_args(&args).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (o.count, o.rounds, o.binary),
            (50, 5, Some(PathBuf::from("/x")))
        );
        assert!(parse_args(&["--what".to_string()]).is_err());
    }
}
