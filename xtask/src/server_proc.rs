//! The servers the benchmarks and `dist` work with: the release build of the status server
//! ([`build_release_server`]) and a guard around a started server process
//! ([`ServerProcess`]), shared by `bench heap`, `bench symbol` and `load`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::{cargo, root, run_cmd};

/// How long a started server has to print its address.
const ADDRESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the release status server (`cargo build --release -p status-server --bin
/// status-server`) and returns the path of the binary.
pub(crate) fn build_release_server() -> Result<PathBuf> {
    run_cmd(cargo().args([
        "build",
        "--release",
        "-p",
        "status-server",
        "--bin",
        "status-server",
    ]))?;
    Ok(target_dir().join("release").join("status-server"))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root when
/// relative), else `target` in the workspace root.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        Some(p) => root().join(p),
        None => root().join("target"),
    }
}

/// A server process started by a task (the status server, or the bare hyper example), killed
/// (by its own pid) and waited for when dropped.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `cmd` with stdin closed and stdout piped, and waits (up to 30 s) for the address
    /// of its `… listening on http://ADDR` line (`status-server listening on http://ADDR`,
    /// `bare-hyper listening on http://ADDR`). Arguments, environment and stderr are left as
    /// `cmd` has them. A thread named after `name` reads stdout to its end, so the server never
    /// blocks on a full pipe. `name` says which server in errors.
    pub(crate) fn start(name: &str, cmd: &mut Command) -> Result<ServerProcess> {
        let program = Path::new(cmd.get_program()).display().to_string();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {name} ({program})"))?;
        // From here on the guard owns the child: any failure below kills it.
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let stdout = server
            .child
            .stdout
            .take()
            .with_context(|| format!("{name}: no stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("{name}-stdout"))
            .spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if !sent {
                        if let Some(addr) = line.split("http://").nth(1) {
                            let _ = tx.send(addr.trim().to_string());
                            sent = true;
                        }
                    }
                }
            })
            .with_context(|| format!("{name}: cannot start the stdout reader"))?;
        let addr = rx.recv_timeout(ADDRESS_TIMEOUT).with_context(|| {
            format!(
                "{name} did not report its address within {} s",
                ADDRESS_TIMEOUT.as_secs()
            )
        })?;
        server.addr = addr
            .parse()
            .with_context(|| format!("{name} reported a bad address '{addr}'"))?;
        Ok(server)
    }

    /// The process id of the server.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address the server reported it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_and_kills_on_drop() {
        let server = ServerProcess::start(
            "fake",
            Command::new("sh").args([
                "-c",
                "echo starting; echo 'fake listening on http://127.0.0.1:4567'; exec sleep 60",
            ]),
        )
        .unwrap();
        assert_eq!(server.addr(), SocketAddr::from(([127, 0, 0, 1], 4567)));
        let proc_dir = PathBuf::from(format!("/proc/{}", server.pid()));
        assert!(proc_dir.exists());
        drop(server);
        assert!(!proc_dir.exists(), "the process was not killed and reaped");
    }

    #[test]
    fn fails_when_no_address_is_printed() {
        let error = ServerProcess::start("silent", Command::new("sh").args(["-c", "echo hi"]))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("silent did not report its address within 30 s")
        );
    }
}
