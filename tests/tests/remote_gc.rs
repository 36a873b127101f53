//! The remote GC routes end to end: the embedded election, and two (then three) real server
//! processes electing an owner on a real etcd with a 3 s lease TTL: one owner that both name,
//! `gc` executed only there, resign, `kill -9` of the owner, a frozen etcd (SIGSTOP/SIGCONT),
//! with a sampler asking every node every 100 ms that never sees two owners.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration_tests::etcd::Etcd;
use integration_tests::{parse_response, server_binary, ServerOptions, TestServer};
use serde_json::Value;

const TTL: Duration = Duration::from_secs(3);

/// `GET path` that tolerates a dead or slow node: `None` instead of a panic.
fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    if raw.is_empty() {
        return None;
    }
    let r = parse_response(&raw, false);
    Some((r.status, r.text()))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `(status, owner_id)` from `owner/info`, `None` if the node does not answer.
fn owner_info(addr: SocketAddr) -> Option<(String, String)> {
    let (code, body) = try_get(addr, "/tiflash/remote/owner/info")?;
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    Some((
        v["status"].as_str().unwrap().to_owned(),
        v["owner_id"].as_str().unwrap().to_owned(),
    ))
}

fn is_owner(addr: SocketAddr) -> bool {
    owner_info(addr).is_some_and(|(status, _)| status == "IsOwner")
}

/// Asks every node `owner/info` every 100 ms on a thread. A violation is a node answering
/// IsOwner between two IsOwner answers of another node (requests are sequential, so the
/// order A, B, A brackets B's answer inside A's ownership); the order alternates each round.
struct Sampler {
    nodes: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    violations: Arc<Mutex<Vec<String>>>,
    rounds: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(nodes: Vec<SocketAddr>) -> Sampler {
        let nodes = Arc::new(Mutex::new(nodes));
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let rounds = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (nodes, stop, violations, rounds) = (
                nodes.clone(),
                stop.clone(),
                violations.clone(),
                rounds.clone(),
            );
            std::thread::spawn(move || {
                let mut round = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let mut list = nodes.lock().unwrap().clone();
                    if round % 2 == 1 {
                        list.reverse();
                    }
                    for (i, &a) in list.iter().enumerate() {
                        if !is_owner(a) {
                            continue;
                        }
                        for &b in &list[i + 1..] {
                            if is_owner(b) && is_owner(a) {
                                violations
                                    .lock()
                                    .unwrap()
                                    .push(format!("round {round}: {a} and {b} both IsOwner"));
                            }
                        }
                    }
                    round += 1;
                    rounds.store(round, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Sampler {
            nodes,
            stop,
            violations,
            rounds,
            thread: Some(thread),
        }
    }

    fn set_nodes(&self, nodes: Vec<SocketAddr>) {
        *self.nodes.lock().unwrap() = nodes;
    }

    /// Stops sampling; the violations seen and the number of rounds.
    fn finish(&mut self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.violations.lock().unwrap().clone(),
            self.rounds.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn node(etcd: &Etcd, engine_addr: &str) -> TestServer {
    TestServer::start(&[
        "--etcd-endpoints",
        etcd.endpoint(),
        "--engine-addr",
        engine_addr,
        "--owner-ttl",
        &TTL.as_secs().to_string(),
    ])
}

/// Polls (every 20 ms, bounded) until `f` holds; returns when the successful check *began*
/// (a node answers from its state when the request arrives, even if the reply then waits
/// for etcd).
fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let began = start.elapsed();
        if f() {
            return began;
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until exactly one node says IsOwner and every other says NotOwner naming it; returns
/// the owner's index.
fn agreed_owner(nodes: &[&TestServer], ids: &[&str], limit: Duration) -> usize {
    let mut owner = None;
    wait_for(limit, "every node agrees on one owner", || {
        let infos: Vec<_> = nodes.iter().map(|n| owner_info(n.addr())).collect();
        let owners: Vec<usize> = (0..nodes.len())
            .filter(|&i| matches!(&infos[i], Some((s, _)) if s == "IsOwner"))
            .collect();
        let [o] = owners[..] else { return false };
        owner = Some(o);
        infos.iter().enumerate().all(|(i, info)| {
            let (status, id) = info.clone().unwrap_or_default();
            id == ids[o]
                && (if i == o {
                    status == "IsOwner"
                } else {
                    status == "NotOwner"
                })
        })
    });
    owner.unwrap()
}

#[test]
fn embedded_node_is_always_the_owner() {
    let server = TestServer::start(&[]);
    for prefix in ["/tiflash", "/tifash"] {
        let r = server.get(&format!("{prefix}/remote/owner/info"));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.text(),
            r#"{"status":"IsOwner","owner_id":"127.0.0.1:3930"}"#
        );
    }
    let r = server.get("/tiflash/remote/gc");
    assert_eq!(
        r.text(),
        r#"{"status":"IsOwner","owner_id":"127.0.0.1:3930","execute":"true"}"#
    );
    assert_eq!(
        server.get("/tiflash/remote/upload").text(),
        r#"{"message":"flag_set=true"}"#
    );
    assert_eq!(
        server.get("/tiflash/remote/owner/resign").text(),
        r#"{"message":"Done"}"#
    );
    assert_eq!(server.get("/tiflash/remote/owner/info").status, 200);
    let head = server.request("HEAD", "/tiflash/remote/owner/info", &[], b"");
    assert_eq!((head.status, head.body.len()), (200, 0));
    let post = server.request("POST", "/tiflash/remote/gc", &[], b"");
    assert_eq!(post.status, 405);
    wait_for(
        Duration::from_secs(5),
        "the GC task logs the request",
        || server.stderr().contains("remote GC pass requested"),
    );
    wait_for(
        Duration::from_secs(5),
        "the uploader logs the request",
        || {
            server
                .stderr()
                .contains("checkpoint upload of all data requested")
        },
    );
}

#[test]
fn bad_owner_settings_refuse_to_start() {
    for (args, needle) in [
        (&["--owner-ttl", "0"][..], "owner-ttl '0' is out of range"),
        (&["--etcd-endpoints", ","][..], "names no endpoint"),
        (
            &["--etcd-endpoints", "https://127.0.0.1:2379"][..],
            "only plain http://",
        ),
        (&["--engine-addr", ""][..], "engine-addr is empty"),
    ] {
        let out = Command::new(server_binary())
            .args(["--status-addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn owner_election_on_etcd_survives_resign_kill_and_a_frozen_etcd() {
    let etcd = Etcd::start();
    let ids = ["127.0.0.1:39301", "127.0.0.1:39302", "127.0.0.1:39303"];
    let a = node(&etcd, ids[0]);
    let b = node(&etcd, ids[1]);
    let mut sampler = Sampler::start(vec![a.addr(), b.addr()]);

    // One owner, named by both.
    let o = agreed_owner(&[&a, &b], &ids[..2], Duration::from_secs(15));
    let (owner, other) = if o == 0 { (&a, &b) } else { (&b, &a) };
    let (owner_id, other_id) = (ids[o], ids[1 - o]);

    // gc executes only on the owner: its answer says so and only its GC task runs.
    let gc = json(&try_get(owner.addr(), "/tiflash/remote/gc").unwrap().1);
    assert_eq!(
        (
            gc["status"].as_str(),
            gc["owner_id"].as_str(),
            gc["execute"].as_str()
        ),
        (Some("IsOwner"), Some(owner_id), Some("true"))
    );
    let gc = json(&try_get(other.addr(), "/tiflash/remote/gc").unwrap().1);
    assert_eq!(
        (
            gc["status"].as_str(),
            gc["owner_id"].as_str(),
            gc["execute"].as_str()
        ),
        (Some("NotOwner"), Some(owner_id), Some("false"))
    );
    wait_for(Duration::from_secs(5), "the owner's GC task runs", || {
        owner.stderr().contains("remote GC pass requested")
    });
    assert!(
        !other.stderr().contains("remote GC pass requested"),
        "a non-owner ran the GC"
    );
    for n in [&a, &b] {
        assert_eq!(
            try_get(n.addr(), "/tiflash/remote/upload").unwrap().1,
            r#"{"message":"flag_set=true"}"#
        );
    }

    // Resign: refused by the non-owner, done by the owner; the other node takes over.
    let r = try_get(other.addr(), "/tiflash/remote/owner/resign")
        .unwrap()
        .1;
    assert_eq!(
        r,
        r#"{"message":"This node is not the remote gc owner, can't be resigned."}"#
    );
    let r = try_get(owner.addr(), "/tiflash/remote/owner/resign")
        .unwrap()
        .1;
    assert_eq!(r, r#"{"message":"Done"}"#);
    let took = wait_for(
        Duration::from_secs(5),
        "the other node owns after the resign",
        || is_owner(other.addr()),
    );
    eprintln!("measure: resign -> new owner: {took:?}");
    let o = agreed_owner(&[&a, &b], &ids[..2], Duration::from_secs(5));
    assert_eq!(ids[o], other_id);

    // kill -9 of the owner: the survivor owns within about one TTL.
    let (mut killed, survivor) = if o == 0 { (a, b) } else { (b, a) };
    let killed_at = Instant::now();
    killed.signal("KILL");
    killed.wait_exit(Duration::from_secs(5)).unwrap();
    let took = wait_for(
        TTL + Duration::from_secs(2),
        "the survivor owns after kill -9 of the owner",
        || is_owner(survivor.addr()),
    );
    eprintln!(
        "measure: kill -9 of the owner -> survivor owns: {:?}",
        killed_at.elapsed()
    );
    assert!(took <= TTL + Duration::from_secs(2), "{took:?}");
    drop(killed);

    // A third node joins; the survivor stays the owner.
    let c = node(&etcd, ids[2]);
    sampler.set_nodes(vec![survivor.addr(), c.addr()]);
    let survivor_id = if o == 0 { ids[1] } else { ids[0] };
    let o = agreed_owner(
        &[&survivor, &c],
        &[survivor_id, ids[2]],
        Duration::from_secs(10),
    );
    assert_eq!(o, 0, "the running owner keeps ownership when a node joins");

    // A frozen etcd: the owner steps down within the TTL (before etcd could expire its lease),
    // and nobody owns while etcd is away; the answers are GrpcError, promptly.
    etcd.freeze();
    let frozen_at = Instant::now();
    let took = wait_for(TTL, "the owner steps down while etcd is frozen", || {
        !is_owner(survivor.addr())
    });
    eprintln!("measure: etcd frozen -> owner steps down: {took:?}");
    std::thread::sleep(TTL);
    for n in [&survivor, &c] {
        let t = Instant::now();
        let (status, text) = owner_info(n.addr()).unwrap();
        assert_eq!(status, "GrpcError", "{text}");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "owner/info is bounded in time while etcd is away"
        );
        let gc = json(&try_get(n.addr(), "/tiflash/remote/gc").unwrap().1);
        assert_eq!(gc["execute"].as_str(), Some("false"));
    }
    assert!(frozen_at.elapsed() >= TTL, "checked while still frozen");

    // etcd back: one owner again, agreed by both.
    etcd.thaw();
    let thawed_at = Instant::now();
    agreed_owner(&[&survivor, &c], &[survivor_id, ids[2]], TTL * 4);
    eprintln!(
        "measure: etcd thawed -> owner agreed again: {:?}",
        thawed_at.elapsed()
    );

    let (violations, rounds) = sampler.finish();
    // Rounds take up to a second each while etcd is frozen (the answers wait for etcd).
    assert!(rounds >= 20, "the sampler ran ({rounds} rounds)");
    assert!(violations.is_empty(), "two owners at once: {violations:?}");
}

/// A clean shutdown (SIGTERM) of the owner resigns and revokes its lease: the other node
/// takes over at once, not after the lease TTL (10 s here).
#[test]
fn sigterm_of_the_owner_hands_over_without_waiting_for_the_ttl() {
    let etcd = Etcd::start();
    let ids = ["127.0.0.1:39311", "127.0.0.1:39312"];
    let start = |id: &str| {
        TestServer::start_with(ServerOptions {
            args: [
                "--etcd-endpoints",
                etcd.endpoint(),
                "--engine-addr",
                id,
                "--owner-ttl",
                "10",
            ]
            .map(String::from)
            .to_vec(),
            ..Default::default()
        })
    };
    let (a, b) = (start(ids[0]), start(ids[1]));
    let o = agreed_owner(&[&a, &b], &ids, Duration::from_secs(15));
    let (mut owner, other) = if o == 0 { (a, b) } else { (b, a) };
    let t = Instant::now();
    owner.signal("TERM");
    let status = owner
        .wait_exit(Duration::from_secs(10))
        .expect("the owner exits on SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    wait_for(
        Duration::from_secs(5),
        "the other node owns soon after the owner's clean shutdown",
        || is_owner(other.addr()),
    );
    eprintln!(
        "measure: SIGTERM of the owner (TTL 10 s) -> other owns: {:?}",
        t.elapsed()
    );
    assert!(
        owner
            .stderr()
            .contains("stepped down as the remote GC owner"),
        "{}",
        owner.stderr()
    );
}
