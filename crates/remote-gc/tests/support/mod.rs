//! A real etcd server for the tests: `etcd` (Debian's `etcd-server`, or `$ETCD_BIN`) on free
//! loopback ports with its own data directory, killed when the guard drops (also on panic).

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running etcd; killed on drop.
#[derive(Debug)]
pub struct Etcd {
    child: Child,
    /// `127.0.0.1:PORT` of the client URL.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn etcd_bin() -> PathBuf {
    std::env::var_os("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

fn wait_healthy(child: &mut Child, endpoint: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(mut s) = TcpStream::connect(endpoint) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let req = format!("GET /health HTTP/1.0\r\nHost: {endpoint}\r\n\r\n");
            let mut body = String::new();
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_to_string(&mut body).is_ok()
                && body.contains("\"health\":\"true\"")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl Etcd {
    /// Start etcd and wait until it answers `/health`.
    pub fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("etcd.log");
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
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {:?} (install Debian's etcd-server): {e}",
                        etcd_bin()
                    )
                });
            let endpoint = format!("127.0.0.1:{client}");
            if wait_healthy(&mut child, &endpoint, Duration::from_secs(20)) {
                return Etcd {
                    child,
                    endpoint,
                    _dir: dir,
                };
            }
            // Most likely a port taken between the probe and etcd's bind: try other ports.
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir.path().join("data"));
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("etcd did not become healthy; its log:\n{log}");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} etcd");
    }

    /// Freeze etcd (SIGSTOP): connections stay open, nothing is answered.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Thaw a frozen etcd (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
