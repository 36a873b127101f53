//! A real etcd server for the remote GC tests: Debian's `etcd` (package `etcd-server`, or
//! `$ETCD_BIN`) on free loopback ports with its own temporary data directory. The guard kills
//! it on drop, panics included.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{require_tool, signal_pid};

/// A running etcd; killed on drop.
#[derive(Debug)]
pub struct Etcd {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcd_bin() -> PathBuf {
    match std::env::var_os("ETCD_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => require_tool("etcd"),
    }
}

/// Whether etcd at `endpoint` answers `/health` with `"health":"true"` within 2 s.
pub fn healthy(endpoint: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(endpoint) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health HTTP/1.0\r\nHost: {endpoint}\r\n\r\n");
    let mut body = String::new();
    s.write_all(req.as_bytes()).is_ok()
        && s.read_to_string(&mut body).is_ok()
        && body.contains("\"health\":\"true\"")
}

impl Etcd {
    /// Starts a single-member etcd and waits (up to 20 s) until it is healthy.
    pub fn start() -> Etcd {
        let dir = tempfile::Builder::new()
            .prefix("etcd-test-")
            .tempdir()
            .unwrap();
        let log_path = dir.path().join("etcd.log");
        // A free port can be taken between the probe and etcd's bind: try a few times.
        for _attempt in 0..3 {
            let (client, peer) = (free_port(), free_port());
            let log = std::fs::File::create(&log_path).unwrap();
            let mut child = Command::new(etcd_bin())
                .args(["--name", "test", "--data-dir"])
                .arg(dir.path().join("data"))
                .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
                .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
                .arg(format!(
                    "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
                ))
                .arg(format!("--initial-cluster=test=http://127.0.0.1:{peer}"))
                .args(["--logger=zap", "--log-level=warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run etcd: {e}"));
            let endpoint = format!("127.0.0.1:{client}");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
                if healthy(&endpoint) {
                    return Etcd {
                        child,
                        endpoint,
                        dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir.path().join("data"));
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("etcd did not become healthy; its log:\n{log}");
    }

    /// The client endpoint, `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What etcd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// Freezes etcd with SIGSTOP: its connections stay open and nothing is answered.
    pub fn freeze(&self) {
        signal_pid(self.pid(), "STOP");
    }

    /// Resumes a frozen etcd with SIGCONT.
    pub fn thaw(&self) {
        signal_pid(self.pid(), "CONT");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
