//! The periodic heap dumper: one named thread, a private directory, a bounded set of files.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::{dump_to, require_enabled, set_prof_active, HeapError};
use crate::error_chain;

/// How many dump files a [`HeapDumper`] keeps unless configured otherwise: 32 files, e.g. the
/// last 32 minutes at the default 60 s interval. Older files are removed first.
pub const DEFAULT_MAX_FILES: usize = 32;

/// Settings of a [`HeapDumper`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapDumperConfig {
    /// Time between two dumps; the first dump is taken one interval after the start.
    pub interval: Duration,
    /// How many files to keep (at least 1); the oldest is removed when a new one exceeds it.
    pub max_files: usize,
}

impl Default for HeapDumperConfig {
    fn default() -> Self {
        HeapDumperConfig {
            interval: Duration::from_secs(60),
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// One complete dump written by a [`HeapDumper`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapDumpFile {
    /// The file name: `000001.heap`, `000002.heap`, ….
    pub name: String,
    /// The absolute path.
    pub path: PathBuf,
    /// The file's modification time.
    pub modified: SystemTime,
}

/// Only one dumper may own jemalloc's process-wide `prof.active` switch at a time.
static RUNNING: AtomicBool = AtomicBool::new(false);

/// Holds the process-wide slot; frees it when dropped.
#[derive(Debug)]
struct Slot;

impl Slot {
    fn claim() -> Result<Slot, HeapError> {
        RUNNING
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| Slot)
            .map_err(|_| HeapError::AlreadyRunning)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::Release);
    }
}

#[derive(Debug, Default)]
struct State {
    stop: bool,
    /// Oldest first.
    files: VecDeque<HeapDumpFile>,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one push/pop.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Dumps a heap profile every interval into a private directory, from one thread named
/// `heap-dumper`.
///
/// [`start`](HeapDumper::start) turns `prof.active` on; [`stop`](HeapDumper::stop) (or drop)
/// wakes and joins the thread at once, restores `prof.active` to its value before the start
/// and deletes the directory with every dump in it. One dumper runs per process at a time
/// ([`HeapError::AlreadyRunning`]).
#[derive(Debug)]
pub struct HeapDumper {
    dir: PathBuf,
    config: HeapDumperConfig,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    was_active: bool,
    slot: Option<Slot>,
}

impl HeapDumper {
    /// Creates a private directory under `parent` (created if missing; the new directory is
    /// `0700` on Unix), turns `prof.active` on and starts the thread.
    pub fn start(parent: &Path, config: HeapDumperConfig) -> Result<HeapDumper, HeapError> {
        require_enabled()?;
        let slot = Slot::claim()?;
        let config = HeapDumperConfig {
            interval: config.interval.max(Duration::from_millis(1)),
            max_files: config.max_files.max(1),
        };
        fs::create_dir_all(parent)
            .map_err(|e| HeapError::io("create heap dump directory", parent, e))?;
        let parent = parent
            .canonicalize()
            .map_err(|e| HeapError::io("resolve heap dump directory", parent, e))?;
        let dir = create_private_dir(&parent)?;
        let was_active = match set_prof_active(true) {
            Ok(was) => was,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("heap-dumper".into())
            .spawn({
                let shared = Arc::clone(&shared);
                let dir = dir.clone();
                move || run(&shared, &dir, config)
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                let _ = set_prof_active(was_active);
                let _ = fs::remove_dir_all(&dir);
                return Err(HeapError::io("start the heap dump thread for", &dir, e));
            }
        };
        tracing::info!(dir = %dir.display(), interval = ?config.interval, max_files = config.max_files, "heap dumper started");
        Ok(HeapDumper {
            dir,
            config,
            shared,
            thread: Some(thread),
            was_active,
            slot: Some(slot),
        })
    }

    /// The private directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings in effect.
    pub fn config(&self) -> HeapDumperConfig {
        self.config
    }

    /// The complete dumps now on disk, newest first.
    pub fn dumps(&self) -> Vec<HeapDumpFile> {
        let files: Vec<HeapDumpFile> = self.shared.lock().files.iter().rev().cloned().collect();
        files
            .into_iter()
            .filter_map(
                |mut f| match fs::metadata(&f.path).and_then(|m| m.modified()) {
                    Ok(t) => {
                        f.modified = t;
                        Some(f)
                    }
                    // Rotated away between the copy and now.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                    Err(_) => Some(f),
                },
            )
            .collect()
    }

    /// The path of the dump called `name` if it is one of [`dumps`](HeapDumper::dumps);
    /// `None` for any other name, so no other file can be reached through it.
    pub fn dump_path(&self, name: &str) -> Option<PathBuf> {
        self.shared
            .lock()
            .files
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.path.clone())
    }

    /// The last dump error, if the most recent attempt failed.
    pub fn last_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Stops the thread (at once, not at the next tick), restores `prof.active` and deletes
    /// the directory with every dump in it.
    pub fn stop(mut self) -> Result<(), HeapError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), HeapError> {
        let Some(slot) = self.slot.take() else {
            return Ok(());
        };
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("heap dump thread panicked");
            }
        }
        let restored = set_prof_active(self.was_active).map(drop);
        let removed = match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(HeapError::io("remove heap dump directory", &self.dir, e))
            }
            _ => Ok(()),
        };
        self.shared.lock().files.clear();
        drop(slot);
        tracing::info!(dir = %self.dir.display(), "heap dumper stopped");
        restored.and(removed)
    }
}

impl Drop for HeapDumper {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!(error = %e, "stopping the heap dumper");
        }
    }
}

fn create_private_dir(parent: &Path) -> Result<PathBuf, HeapError> {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    let mut last = None;
    for attempt in 0..100u32 {
        let dir = parent.join(format!("heap-{}-{stamp}-{attempt}", std::process::id()));
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some((dir, e)),
            Err(e) => return Err(HeapError::io("create heap dump directory", &dir, e)),
        }
    }
    let (dir, e) =
        last.unwrap_or_else(|| (parent.to_path_buf(), io::ErrorKind::AlreadyExists.into()));
    Err(HeapError::io("create heap dump directory", &dir, e))
}

/// The thread body: wait for the next tick or a stop, dump, rotate.
fn run(shared: &Shared, dir: &Path, config: HeapDumperConfig) {
    let mut next_seq: u64 = 1;
    let mut next = Instant::now() + config.interval;
    loop {
        {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                let now = Instant::now();
                if now >= next {
                    break;
                }
                state = shared
                    .wake
                    .wait_timeout(state, next - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let name = format!("{next_seq:06}.heap");
        let path = dir.join(&name);
        let result = dump_to(&path);
        let mut state = shared.lock();
        match result {
            Ok(bytes) => {
                tracing::debug!(path = %path.display(), bytes, "heap dump written");
                next_seq += 1;
                state.last_error = None;
                state.files.push_back(HeapDumpFile {
                    name,
                    path,
                    modified: SystemTime::now(),
                });
                while state.files.len() > config.max_files {
                    if let Some(old) = state.files.pop_front() {
                        if let Err(e) = fs::remove_file(&old.path) {
                            tracing::warn!(path = %old.path.display(), error = %e, "removing an old heap dump");
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %error_chain(&e), "periodic heap dump failed");
                state.last_error = Some(error_chain(&e));
            }
        }
        drop(state);
        // Skip ticks missed while a dump was slow instead of dumping in a burst.
        next += config.interval;
        let now = Instant::now();
        if next <= now {
            next = now + config.interval;
        }
    }
}
