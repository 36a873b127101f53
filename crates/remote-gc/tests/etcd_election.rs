//! The etcd election against a real etcd server (TTL 3 s): one owner among candidates,
//! resign and close hand ownership over, a frozen etcd makes the owner step down before its
//! lease can expire, and sampling every 10 ms never sees two owners.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use remote_gc::{EtcdConfig, EtcdElection, OwnerElection, Ownership};
use support::Etcd;

const TTL: Duration = Duration::from_secs(3);

fn candidate(etcd: &Etcd, id: &str, key: &str) -> Arc<EtcdElection> {
    let config = EtcdConfig::new([etcd.endpoint.clone()], id)
        .with_ttl(TTL)
        .with_election_key(key);
    Arc::new(EtcdElection::start(config).unwrap())
}

/// Samples the candidates every 10 ms on a thread and records the most owners seen at once.
struct Sampler {
    stop: Arc<AtomicBool>,
    most: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    fn start(nodes: Vec<Arc<EtcdElection>>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let most = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, most) = (Arc::clone(&stop), Arc::clone(&most));
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let owners = nodes.iter().filter(|n| n.is_owner()).count();
                    most.fetch_max(owners, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Sampler {
            stop,
            most,
            thread: Some(thread),
        }
    }

    fn most_owners(&mut self) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.most.load(Ordering::SeqCst)
    }
}

/// Wait (bounded) until `f` holds; the time it took.
fn wait_for(limit: Duration, what: &str, f: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn owners(nodes: &[&Arc<EtcdElection>]) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| n.is_owner())
        .map(|n| n.id().to_owned())
        .collect()
}

#[test]
fn one_owner_and_resign_and_close_hand_over() {
    let etcd = Etcd::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = "/tiflash/s3gc/owner";
    let a = candidate(&etcd, "127.0.0.1:3931", key);
    let b = candidate(&etcd, "127.0.0.1:3932", key);
    let mut sampler = Sampler::start(vec![Arc::clone(&a), Arc::clone(&b)]);

    wait_for(Duration::from_secs(10), "an owner is elected", || {
        owners(&[&a, &b]).len() == 1
    });
    let first = owners(&[&a, &b]).remove(0);
    let (owner, other) = if first == a.id() { (&a, &b) } else { (&b, &a) };
    // Both agree on who owns.
    assert_eq!(
        rt.block_on(owner.owner()),
        Ownership::IsOwner(first.clone())
    );
    assert_eq!(
        rt.block_on(other.owner()),
        Ownership::NotOwner(first.clone())
    );
    // Ownership is stable while both renew (two TTLs).
    std::thread::sleep(TTL * 2);
    assert_eq!(owners(&[&a, &b]), std::slice::from_ref(&first));

    // Resign: only the owner can, and ownership moves to the other candidate.
    assert!(
        !rt.block_on(other.resign()).unwrap(),
        "a non-owner cannot resign"
    );
    assert!(rt.block_on(owner.resign()).unwrap());
    assert!(!owner.is_owner());
    let moved = wait_for(
        Duration::from_secs(5),
        "the other candidate owns after a resign",
        || other.is_owner(),
    );
    eprintln!("resign -> new owner in {moved:?}");
    assert_eq!(
        rt.block_on(owner.owner()),
        Ownership::NotOwner(other.id().to_owned())
    );

    // Close (clean shutdown) of the new owner: the first one, campaigning again, takes over.
    let mut rx = owner.subscribe();
    let t = Instant::now();
    other.close();
    assert!(!other.is_owner());
    wait_for(
        Duration::from_secs(5),
        "the remaining candidate owns after a close",
        || owner.is_owner(),
    );
    eprintln!("close -> new owner in {:?}", t.elapsed());
    assert!(
        rx.has_changed().unwrap() && *rx.borrow_and_update(),
        "subscribers see the change"
    );

    assert!(sampler.most_owners() <= 1, "two owners at once");
}

#[test]
fn frozen_etcd_makes_the_owner_step_down_within_the_ttl() {
    let etcd = Etcd::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = "/tiflash/s3gc/owner";
    let a = candidate(&etcd, "127.0.0.1:3931", key);
    let b = candidate(&etcd, "127.0.0.1:3932", key);
    let mut sampler = Sampler::start(vec![Arc::clone(&a), Arc::clone(&b)]);
    wait_for(Duration::from_secs(10), "an owner is elected", || {
        owners(&[&a, &b]).len() == 1
    });

    etcd.freeze();
    let step_down = wait_for(TTL, "the owner steps down while etcd is frozen", || {
        owners(&[&a, &b]).is_empty()
    });
    eprintln!("etcd frozen -> owner stepped down after {step_down:?}");
    // While etcd is frozen nobody owns, and the status answer is an error, promptly.
    std::thread::sleep(TTL);
    assert!(owners(&[&a, &b]).is_empty());
    let t = Instant::now();
    assert!(matches!(rt.block_on(a.owner()), Ownership::Error(_)));
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "owner() is bounded in time"
    );

    etcd.thaw();
    let back = wait_for(TTL * 4, "an owner again after etcd is back", || {
        owners(&[&a, &b]).len() == 1
    });
    eprintln!("etcd thawed -> owner again after {back:?}");
    let owner = owners(&[&a, &b]).remove(0);
    wait_for(Duration::from_secs(5), "both agree on the owner", || {
        let other = if owner == a.id() { &b } else { &a };
        rt.block_on(other.owner()) == Ownership::NotOwner(owner.clone())
    });
    assert!(sampler.most_owners() <= 1, "two owners at once");
}
