//! The GC trigger (a named thread that runs the engine's GC on request and on an interval,
//! only while this node is the owner) and the upload flag.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{Error, GcReason, GcRun, OwnerElection, RemoteTasks};

/// How often the owner runs the remote GC when nobody asks (TiFlash's default: one hour).
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(3600);

/// The shortest interval accepted: anything shorter would make the GC thread spin.
const MIN_GC_INTERVAL: Duration = Duration::from_millis(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded data are plain flags and counters: still valid after a panic elsewhere.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct GcState {
    wake: bool,
    stop: bool,
    passes: u64,
}

#[derive(Debug)]
struct GcShared {
    state: Mutex<GcState>,
    cv: Condvar,
}

/// Wakes the engine's remote GC, only on the owner, and runs it every `interval` while this
/// node is the owner. The passes run one at a time on a thread named `remote-gc`; dropping
/// the trigger stops the thread (after the pass in progress, if any).
#[derive(Debug)]
pub struct GcTrigger {
    shared: Arc<GcShared>,
    election: Arc<dyn OwnerElection>,
    thread: Option<JoinHandle<()>>,
}

impl GcTrigger {
    /// Start the GC thread.
    pub fn start(
        election: Arc<dyn OwnerElection>,
        tasks: Arc<dyn RemoteTasks>,
        interval: Duration,
    ) -> Result<Self, Error> {
        if interval < MIN_GC_INTERVAL {
            return Err(Error::Config(format!(
                "the remote GC interval must be at least {MIN_GC_INTERVAL:?}, got {interval:?}"
            )));
        }
        let shared = Arc::new(GcShared {
            state: Mutex::new(GcState::default()),
            cv: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            let election = Arc::clone(&election);
            std::thread::Builder::new()
                .name("remote-gc".into())
                .spawn(move || gc_loop(&shared, election.as_ref(), tasks.as_ref(), interval))
                .map_err(|source| Error::Spawn {
                    name: "remote-gc",
                    source,
                })?
        };
        Ok(GcTrigger {
            shared,
            election,
            thread: Some(thread),
        })
    }

    /// If this node is the owner, wake the GC now and return `true`; otherwise do nothing and
    /// return `false`. A wake-up while a pass runs queues exactly one more pass.
    pub fn trigger(&self) -> bool {
        if !self.election.is_owner() {
            return false;
        }
        lock(&self.shared.state).wake = true;
        self.shared.cv.notify_all();
        true
    }

    /// How many GC passes have completed since the start.
    pub fn passes(&self) -> u64 {
        lock(&self.shared.state).passes
    }
}

impl Drop for GcTrigger {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the remote-gc thread panicked");
            }
        }
    }
}

fn later(now: Instant, d: Duration) -> Instant {
    // An interval too large for the clock means "never": a year is as good.
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

fn gc_loop(
    shared: &GcShared,
    election: &dyn OwnerElection,
    tasks: &dyn RemoteTasks,
    interval: Duration,
) {
    let mut next_tick = later(Instant::now(), interval);
    loop {
        let reason = {
            let mut st = lock(&shared.state);
            loop {
                if st.stop {
                    return;
                }
                if st.wake {
                    st.wake = false;
                    break GcReason::Requested;
                }
                let now = Instant::now();
                if now >= next_tick {
                    next_tick = later(now, interval);
                    break GcReason::Interval;
                }
                st = shared
                    .cv
                    .wait_timeout(st, next_tick - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        };
        // Checked again here: ownership may have moved since the trigger.
        if !election.is_owner() {
            tracing::debug!(%reason, "remote GC pass skipped: this node is not the owner");
            continue;
        }
        tracing::debug!(%reason, "remote GC pass starts");
        let run = GcRun { reason, election };
        if catch_unwind(AssertUnwindSafe(|| tasks.run_gc(&run))).is_err() {
            tracing::error!(%reason, "the remote GC task panicked; the next pass runs as usual");
        }
        lock(&shared.state).passes += 1;
    }
}

/// The flag that makes the next checkpoint upload send all data. The status route sets it and
/// wakes the uploader; the uploader [`take`](Self::take)s it (or blocks in
/// [`wait_timeout`](Self::wait_timeout) until it is set).
#[derive(Debug, Default)]
pub struct UploadFlag {
    set: Mutex<bool>,
    cv: Condvar,
}

impl UploadFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        UploadFlag::default()
    }

    /// Set the flag and wake every thread waiting for it.
    pub fn set(&self) {
        *lock(&self.set) = true;
        self.cv.notify_all();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        *lock(&self.set)
    }

    /// Clear the flag and return whether it was set: the uploader's "consume".
    pub fn take(&self) -> bool {
        std::mem::take(&mut *lock(&self.set))
    }

    /// Wait until the flag is set or `timeout` passes; return whether it is set. Does not
    /// clear it.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let guard = lock(&self.set);
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |set| !*set)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    use tokio::sync::watch;

    use super::*;
    use crate::{BoxFuture, Ownership};

    /// An election whose answer the test flips.
    #[derive(Debug)]
    struct Switch {
        owner: AtomicBool,
        tx: watch::Sender<bool>,
    }

    impl Switch {
        fn new(owner: bool) -> Arc<Self> {
            Arc::new(Switch {
                owner: AtomicBool::new(owner),
                tx: watch::Sender::new(owner),
            })
        }
        fn set(&self, owner: bool) {
            self.owner.store(owner, Ordering::SeqCst);
            self.tx.send_replace(owner);
        }
    }

    impl OwnerElection for Switch {
        fn id(&self) -> &str {
            "me:3930"
        }
        fn is_owner(&self) -> bool {
            self.owner.load(Ordering::SeqCst)
        }
        fn owner(&self) -> BoxFuture<'_, Ownership> {
            let o = if self.is_owner() {
                Ownership::IsOwner("me:3930".into())
            } else {
                Ownership::NotOwner("other:3930".into())
            };
            Box::pin(std::future::ready(o))
        }
        fn resign(&self) -> BoxFuture<'_, Result<bool, Error>> {
            let was = self.owner.swap(false, Ordering::SeqCst);
            Box::pin(std::future::ready(Ok(was)))
        }
        fn subscribe(&self) -> watch::Receiver<bool> {
            self.tx.subscribe()
        }
    }

    /// Tasks that report each GC pass (its reason and whether it still owned) on a channel.
    #[derive(Debug)]
    struct Recorder(Mutex<mpsc::Sender<(GcReason, bool)>>);

    impl RemoteTasks for Recorder {
        fn run_gc(&self, run: &GcRun<'_>) {
            let _ = lock(&self.0).send((run.reason(), run.still_owner()));
        }
        fn wake_uploader(&self, _flag: &UploadFlag) {}
    }

    fn recorder() -> (Arc<Recorder>, mpsc::Receiver<(GcReason, bool)>) {
        let (tx, rx) = mpsc::channel();
        (Arc::new(Recorder(Mutex::new(tx))), rx)
    }

    const LONG: Duration = Duration::from_secs(3600);
    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn trigger_runs_gc_on_the_owner() {
        let election = Switch::new(true);
        let (tasks, rx) = recorder();
        let gc = GcTrigger::start(election, tasks, LONG).unwrap();
        assert!(gc.trigger());
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), (GcReason::Requested, true));
        assert!(gc.trigger());
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), (GcReason::Requested, true));
        let deadline = Instant::now() + WAIT;
        while gc.passes() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(gc.passes(), 2);
    }

    #[test]
    fn trigger_does_nothing_on_a_non_owner() {
        let election = Switch::new(false);
        let (tasks, rx) = recorder();
        let gc = GcTrigger::start(election.clone(), tasks, LONG).unwrap();
        assert!(!gc.trigger());
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "no GC pass on a non-owner"
        );
        assert_eq!(gc.passes(), 0);
        election.set(true);
        assert!(gc.trigger());
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), (GcReason::Requested, true));
    }

    #[test]
    fn interval_runs_only_while_owner() {
        let election = Switch::new(true);
        let (tasks, rx) = recorder();
        let gc = GcTrigger::start(election.clone(), tasks, Duration::from_millis(50)).unwrap();
        for _ in 0..3 {
            assert_eq!(rx.recv_timeout(WAIT).unwrap(), (GcReason::Interval, true));
        }
        election.set(false);
        // A pass already past its ownership check may still report; then nothing more.
        while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "no interval pass while not the owner"
        );
        election.set(true);
        assert_eq!(rx.recv_timeout(WAIT).unwrap(), (GcReason::Interval, true));
        drop(gc);
    }

    #[test]
    fn a_panicking_task_does_not_stop_the_thread() {
        #[derive(Debug)]
        struct Boom(Mutex<mpsc::Sender<()>>);
        impl RemoteTasks for Boom {
            fn run_gc(&self, _run: &GcRun<'_>) {
                let _ = lock(&self.0).send(());
                panic!("engine GC failed");
            }
            fn wake_uploader(&self, _flag: &UploadFlag) {}
        }
        let (tx, rx) = mpsc::channel();
        let gc = GcTrigger::start(Switch::new(true), Arc::new(Boom(Mutex::new(tx))), LONG).unwrap();
        assert!(gc.trigger());
        rx.recv_timeout(WAIT).unwrap();
        assert!(gc.trigger());
        rx.recv_timeout(WAIT).unwrap();
    }

    #[test]
    fn too_short_an_interval_is_refused() {
        let (tasks, _rx) = recorder();
        let err = GcTrigger::start(Switch::new(true), tasks, Duration::ZERO).unwrap_err();
        assert!(err.to_string().contains("interval"), "{err}");
    }

    #[test]
    fn upload_flag_set_wake_take() {
        let flag = Arc::new(UploadFlag::new());
        assert!(!flag.is_set());
        assert!(!flag.take());
        assert!(!flag.wait_timeout(Duration::from_millis(20)));

        let waiter = {
            let flag = Arc::clone(&flag);
            std::thread::spawn(move || flag.wait_timeout(WAIT) && flag.take())
        };
        std::thread::sleep(Duration::from_millis(20));
        flag.set();
        assert!(
            waiter.join().unwrap(),
            "the waiting uploader was woken and took the flag"
        );
        assert!(!flag.is_set(), "taking consumes the flag");

        flag.set();
        flag.set();
        assert!(flag.take());
        assert!(!flag.take(), "two sets before a take are one upload");
    }
}
