//! The integration harness: builds and spawns the real `status-server` binary on a free
//! loopback port with its own data directory, waits until it listens, drives it over real
//! HTTP (a tiny std-only client, or the real `curl`), and stops it.
//!
//! Every process a test starts is owned by a guard that kills it on drop, panics included.
#![allow(clippy::unwrap_used)]

pub mod etcd;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The workspace root (parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The `status-server` binary under test: `$STATUS_SERVER_BIN` if set (xtask sets it), else
/// built once per test process with `cargo build -p status-server`.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("STATUS_SERVER_BIN") {
            return PathBuf::from(bin);
        }
        build_with_cargo(&["build", "-p", "status-server", "--bin", "status-server"]);
        target_dir().join("debug").join("status-server")
    })
    .clone()
}

/// Runs `cargo <args>` in the workspace and panics with its output if it fails.
pub fn build_with_cargo(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    // cargo sets CARGO_PKG_* and CARGO_MANIFEST_* for this test process. Build scripts that
    // track them (ring's does) would see them change and rebuild on every alternation between
    // this inner build and the outer `cargo test`: drop them.
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str() {
            if key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_MANIFEST_")
                || key == "CARGO_CRATE_NAME"
                || key == "CARGO_PRIMARY_PACKAGE"
            {
                cmd.env_remove(key);
            }
        }
    }
    let out = cmd
        .args(args)
        .current_dir(workspace_root())
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a command is on PATH; panics (never skips) when a required tool is missing.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("required tool '{name}' is not installed; `cargo xtask test` installs it")
        })
}

/// A running server process, killed on drop.
#[derive(Debug)]
pub struct TestServer {
    child: Option<Child>,
    addr: SocketAddr,
    data_dir: tempfile::TempDir,
    stderr: Arc<Mutex<String>>,
}

/// How to start a [`TestServer`].
#[derive(Debug, Default, Clone)]
pub struct ServerOptions {
    /// Extra flags after `--status-addr 127.0.0.1:0 --data-dir <tmp>`.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Environment variables to remove.
    pub env_remove: Vec<String>,
    /// The program to run instead of the server binary (e.g. an example).
    pub program: Option<PathBuf>,
}

impl TestServer {
    /// Starts the server binary with default options plus `args`.
    pub fn start(args: &[&str]) -> TestServer {
        TestServer::start_with(ServerOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        })
    }

    /// Starts with full options; waits (up to 30 s) for the `listening on` line.
    pub fn start_with(opts: ServerOptions) -> TestServer {
        let data_dir = tempfile::Builder::new()
            .prefix("status-test-")
            .tempdir()
            .unwrap();
        let program = opts.program.clone().unwrap_or_else(server_binary);
        let mut cmd = Command::new(&program);
        if opts.program.is_none() {
            cmd.arg("--status-addr")
                .arg("127.0.0.1:0")
                .arg("--data-dir")
                .arg(data_dir.path().join("data"));
        }
        cmd.args(&opts.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.env("RUST_BACKTRACE", "1");
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        for k in &opts.env_remove {
            cmd.env_remove(k);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let sink = stderr.clone();
            let mut pipe = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut sent = false;
            while let Some(Ok(line)) = lines.next() {
                if !sent {
                    if let Some(addr) = line.split("://").nth(1) {
                        let _ = tx.send(addr.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let mut server = TestServer {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            data_dir,
            stderr,
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => server.addr = addr.parse().unwrap(),
            Err(_) => panic!(
                "server did not report its address within 30 s; stderr:\n{}",
                server.stderr()
            ),
        }
        server
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The temporary directory that holds the server's data dir (`<tmp>/data`).
    pub fn temp_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The data dir passed with `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.path().join("data")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> HttpResponse {
        http_request(self.addr, "GET", path, &[], b"")
    }

    /// Any request.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http_request(self.addr, method, path, headers, body)
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`, `STOP`, `CONT`) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        signal_pid(self.pid(), sig);
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends a signal to a process with the `kill` command.
pub fn signal_pid(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header (lowercased name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header value by lowercase name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) and close before it has read a large body: keep what it
    // sent even if our write or the end of our read fails.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if raw.is_empty() => panic!("reading the response from {addr}: {e}"),
            Err(_) => break,
        }
    }
    parse_response(&raw, method == "HEAD")
}

/// Parses a raw HTTP/1.1 response (Content-Length or read-to-close bodies).
pub fn parse_response(raw: &[u8], head_only: bool) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if head_only {
        body.clear();
    } else if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// Runs the real `curl` with `args` and returns (exit status, stdout bytes, stderr text).
pub fn curl(args: &[&str]) -> (ExitStatus, Vec<u8>, String) {
    require_tool("curl");
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "120"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status,
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// jemalloc's `stats.allocated` of a running server, read from `/debug/pprof/memory_status`.
pub fn allocated_bytes(server: &TestServer) -> u64 {
    let r = server.get("/debug/pprof/memory_status");
    assert_eq!(r.status, 200, "{}", r.text());
    let json: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    json["jemalloc"]["stats"]["allocated"].as_u64().unwrap()
}

/// Makes the server hold about 8 MiB (for heap dumps that have samples): a request whose
/// 12 MiB body is two-thirds sent stays in the server's body buffer until the returned
/// connection is dropped. Returns once the server's allocated bytes show it (at most 10 s).
pub fn hold_memory(server: &TestServer) -> TcpStream {
    let before = allocated_bytes(server);
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    write!(
        slow,
        "POST /debug/pprof/symbol HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        12 << 20
    )
    .unwrap();
    slow.write_all(&vec![b'0'; 8 << 20]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while allocated_bytes(server) < before + (7 << 20) {
        assert!(
            Instant::now() < deadline,
            "the server did not take in the 8 MiB body within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    slow
}

/// Every GET route of the server, each path as a client would call it with no parameters (the
/// hostile-input and TLS tests build their requests from it).
pub const GET_ROUTES: &[&str] = &[
    "/debug/pprof/profile",
    "/debug/pprof/set_prof_active",
    "/debug/pprof/set_prof_inactive",
    "/debug/pprof/heap",
    "/debug/pprof/heap_activate",
    "/debug/pprof/heap_list",
    "/debug/pprof/heap_deactivate",
    "/debug/pprof/heap_file/000001.heap",
    "/debug/pprof/symbol",
    "/debug/pprof/cmdline",
    "/debug/pprof/arena_purge",
    "/debug/pprof/memory_status",
    "/tiflash/store-status",
    "/tifash/store-status",
    "/tiflash/sync-status/1",
    "/tiflash/sync-status/keyspace/1/table/1",
    "/tiflash/remote/owner/info",
    "/tiflash/remote/owner/resign",
    "/tiflash/remote/gc",
    "/tiflash/remote/upload",
    "/tiflash/livez",
    "/tiflash/readyz",
];
