//! `cargo xtask tidy`: the architecture invariants of ARCHITECTURE.md, checked from
//! `cargo metadata` and the sources. Also run as a `#[test]` of this crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{cargo, root};

/// Crates that may not be direct dependencies of a crate that must know no HTTP.
const HTTP_CRATES: &[&str] = &[
    "hyper",
    "hyper-util",
    "http",
    "http-body-util",
    "status-http",
    "axum",
    "reqwest",
];
/// The whole dependency list `status-api` may have.
const API_ALLOWED: &[&str] = &["bytes", "serde", "serde_json", "thiserror"];
/// The domain crates `status-http` must not know.
const DOMAIN_CRATES: &[&str] = &["status-api", "profiling-core", "remote-gc", "status-server"];
/// Dependencies only the binary may choose (normal dependencies).
const BINARY_ONLY: &[&str] = &["tikv-jemallocator", "tracing-subscriber"];
/// The only library and binary sources that may `allow(unsafe_code)`: the modules that talk to
/// jemalloc, signals, the dynamic loader and libc time, and the binary's exported `malloc_conf`.
const UNSAFE_FILES: &[&str] = &[
    "crates/profiling-core/src/heap/ctl.rs",
    "crates/profiling-core/src/heap/time.rs",
    "crates/profiling-core/src/cpu/leaf.rs",
    "crates/profiling-core/src/symbolize/sys.rs",
    "crates/status-server/src/allocator.rs",
];
/// Source files allowed to `#[global_allocator]` / install a subscriber.
const BINARY_FILES: &[&str] = &[
    "crates/status-server/src/main.rs",
    "crates/status-server/src/allocator.rs",
];

pub(crate) fn tidy() -> Result<()> {
    let problems = check_all()?;
    if problems.is_empty() {
        eprintln!("xtask: tidy: architecture invariants hold");
        return Ok(());
    }
    for p in &problems {
        eprintln!("tidy: {p}");
    }
    bail!("{} architecture invariant(s) broken", problems.len())
}

fn check_all() -> Result<Vec<String>> {
    let deps = workspace_deps()?;
    let mut problems = Vec::new();
    let normal = |name: &str| deps.get(name).cloned().unwrap_or_default();

    for d in normal("status-api") {
        if !API_ALLOWED.contains(&d.as_str()) {
            problems.push(format!(
                "status-api depends on '{d}': it may only use {API_ALLOWED:?} (no I/O, no runtime)"
            ));
        }
    }
    for d in normal("status-http") {
        if DOMAIN_CRATES.contains(&d.as_str()) {
            problems.push(format!("status-http depends on domain crate '{d}'"));
        }
    }
    for krate in ["profiling-core", "remote-gc", "status-api"] {
        for d in normal(krate) {
            if HTTP_CRATES.contains(&d.as_str()) {
                problems.push(format!("{krate} depends on HTTP crate '{d}'"));
            }
        }
    }
    for (krate, list) in &deps {
        if krate == "status-server" {
            continue;
        }
        for d in list {
            if BINARY_ONLY.contains(&d.as_str()) {
                problems.push(format!("{krate} depends on '{d}': only the server binary chooses the allocator and the log subscriber"));
            }
        }
    }
    problems.extend(check_sources(&root())?);
    Ok(problems)
}

/// Package name → names of its normal (non-dev, non-build) dependencies.
fn workspace_deps() -> Result<BTreeMap<String, Vec<String>>> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("parse cargo metadata")?;
    let mut map = BTreeMap::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default().to_string();
        let deps = pkg["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect();
        map.insert(name, deps);
    }
    Ok(map)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn check_sources(root: &Path) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let crates = root.join("crates");
    for entry in std::fs::read_dir(&crates)
        .context("read crates/")?
        .flatten()
    {
        let lib = entry.path().join("src/lib.rs");
        if let Ok(text) = std::fs::read_to_string(&lib) {
            if !text.contains("#![deny(missing_docs)]") {
                problems.push(format!("{} lacks #![deny(missing_docs)]", rel(root, &lib)));
            }
        }
        let mut files = Vec::new();
        rust_files(&entry.path().join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let name = rel(root, &file);
            let binary_file = BINARY_FILES.contains(&name.as_str());
            if !binary_file
                && (text.contains("#[global_allocator]") || text.contains("tracing_subscriber::"))
            {
                problems.push(format!(
                    "{name} installs a global allocator or a log subscriber: only the binary may"
                ));
            }
            if text.contains("allow(unsafe_code)") && !UNSAFE_FILES.contains(&name.as_str()) {
                problems.push(format!(
                    "{name} allows unsafe code: only {UNSAFE_FILES:?} may (add a file there only with a reason)"
                ));
            }
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                if line.contains("unsafe {") && !line.trim_start().starts_with("//") {
                    // The comment block right above the line (or the line itself) must say why.
                    let above = lines[..i]
                        .iter()
                        .rev()
                        .take_while(|l| l.trim_start().starts_with("//"));
                    if !line.contains("SAFETY:")
                        && !above.into_iter().any(|l| l.contains("SAFETY:"))
                    {
                        problems.push(format!(
                            "{name}:{}: unsafe block without a // SAFETY: comment",
                            i + 1
                        ));
                    }
                }
            }
        }
    }
    Ok(problems)
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn architecture_invariants_hold() {
        let problems = super::check_all().expect("tidy runs");
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
