//! `cargo xtask`: the repository's tasks.
//!
//! - `run [ARGS…]`   build and start the server (release) with its embedded defaults
//! - `test`          install what the suite needs, then fmt, tidy, clippy, docs, every test
//! - `bench`         the measurements of docs/performance.md, printed as ratios
//! - `load`          status-server under wrk load vs bare hyper, idle and while profiling
//! - `dist`          release binary + README + docs in a tar.gz with SHA256SUMS
//! - `tidy`          the architecture invariants of ARCHITECTURE.md, from `cargo metadata`

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

mod bench_heap;
mod bench_symbol;
mod deps;
mod dist;
mod load;
mod server_proc;
mod tidy;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "run" => run(&rest),
        "test" => test(),
        "bench" => bench(&rest),
        "load" => load::run(),
        "dist" => dist::dist(),
        "tidy" => tidy::tidy(),
        _ => {
            eprintln!("usage: cargo xtask <run [ARGS…] | test | bench | load | dist | tidy>");
            if task.is_empty() || task == "help" || task == "--help" {
                Ok(())
            } else {
                bail!("unknown task '{task}'")
            }
        }
    }
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A `cargo` command in the workspace root, with the environment every build needs.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs a command, failing loudly with its name when it fails.
pub(crate) fn run_cmd(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: $ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

fn run(args: &[String]) -> Result<()> {
    run_cmd(
        cargo()
            .args([
                "run",
                "--release",
                "-p",
                "status-server",
                "--bin",
                "status-server",
                "--",
            ])
            .args(args),
    )
}

fn test() -> Result<()> {
    deps::ensure_test_tools()?;
    run_cmd(cargo().args(["fmt", "--all", "--check"]))?;
    tidy::tidy()?;
    run_cmd(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    run_cmd(
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    // Each library crate builds and tests alone, with no features: what a downstream engine
    // that takes only that crate gets.
    for krate in ["status-api", "status-http", "profiling-core", "remote-gc"] {
        run_cmd(cargo().args(["test", "-p", krate]))?;
    }
    run_cmd(cargo().args([
        "build",
        "-p",
        "status-server",
        "--bin",
        "status-server",
        "--examples",
    ]))?;
    let bin = root().join("target").join("debug").join("status-server");
    run_cmd(
        cargo()
            .args(["test", "--workspace", "--all-features"])
            .env("STATUS_SERVER_BIN", bin),
    )?;
    eprintln!("xtask: all checks and tests passed");
    Ok(())
}

/// `cargo xtask bench [all|symbol|heap|load|cpu|heap-dump] [ARGS…]`: every measurement of
/// docs/performance.md, each printed side by side with the tool users would otherwise use.
fn bench(args: &[String]) -> Result<()> {
    let (which, rest) = match args.split_first() {
        Some((w, rest)) => (w.as_str(), rest),
        None => ("all", &[][..]),
    };
    let cpu = || {
        run_cmd(cargo().args([
            "bench",
            "-p",
            "profiling-core",
            "--features",
            "cpu",
            "--bench",
            "cpu_overhead",
        ]))
    };
    let heap_dump = || {
        run_cmd(cargo().args([
            "run",
            "--release",
            "-p",
            "profiling-core",
            "--features",
            "heap",
            "--example",
            "heap_dump_cost",
        ]))
    };
    match which {
        "symbol" => bench_symbol::run(rest),
        "heap" => bench_heap::run(),
        "load" => load::run(),
        "cpu" => cpu(),
        "heap-dump" => heap_dump(),
        "all" => {
            bench_symbol::run(rest)?;
            bench_heap::run()?;
            heap_dump()?;
            cpu()?;
            load::run()
        }
        other => {
            bail!("unknown benchmark '{other}': expected all, symbol, heap, load, cpu or heap-dump")
        }
    }
}
