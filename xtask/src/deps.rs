//! The system tools the test suite drives, installed through apt-get when missing.

use anyhow::{bail, Result};

use crate::run_cmd;

/// (command the tests run, Debian package that provides it).
const TOOLS: &[(&str, &str)] = &[
    ("curl", "curl"),
    ("kill", "procps"),
    ("perl", "perl"),
    ("jeprof", "libjemalloc-dev"),
    ("go", "golang-go"),
    ("etcd", "etcd-server"),
    ("addr2line", "binutils"),
    ("wrk", "wrk"),
    ("dot", "graphviz"),
];

fn on_path(cmd: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(cmd).is_file())
}

/// Installs the Debian packages of every missing tool; fails loudly when that is impossible.
pub(crate) fn ensure_test_tools() -> Result<()> {
    let mut missing: Vec<&str> = TOOLS
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!(
        "xtask: installing missing test tools: {}",
        missing.join(" ")
    );
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false);
    if !is_root {
        bail!("the test suite needs these Debian packages: {}; install them (as root: apt-get install {})", missing.join(" "), missing.join(" "));
    }
    run_cmd(
        std::process::Command::new("apt-get")
            .arg("update")
            .arg("-qq"),
    )?;
    run_cmd(
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still: Vec<&str> = TOOLS
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .map(|(cmd, _)| *cmd)
        .collect();
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(", "));
    }
    Ok(())
}
