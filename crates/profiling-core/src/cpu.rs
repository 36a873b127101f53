//! CPU profiling: a sampler on pprof-rs with frame-pointer unwinding, one profile at a time.
//!
//! [`CpuProfiler`] starts a [`RunningProfile`]; while it exists the whole process is sampled
//! (`SIGPROF` driven by `ITIMER_PROF`, so every thread that burns CPU is seen) and any other
//! start fails with [`CpuError::Busy`]. Dropping the running profile stops sampling and frees
//! the slot. [`RunningProfile::wait`] blocks until the profile's duration is over or its
//! [`CancelToken`] is cancelled, then symbolizes the samples into a [`CpuProfile`], which
//! renders as a pprof protobuf ([`CpuProfile::encode_protobuf`]) or an interactive SVG flame
//! graph ([`CpuProfile::flamegraph_svg`]).
//!
//! Starting, waiting and rendering block: call them from a blocking thread
//! (`tokio::task::spawn_blocking` or a thread of your own), never from an async worker.
//!
//! ```no_run
//! use std::time::Duration;
//! use profiling_core::{CancelToken, CpuProfiler, ProfileOptions};
//!
//! let profiler = CpuProfiler::new();
//! let cancel = CancelToken::new();
//! let profile = profiler.profile(ProfileOptions::new(Duration::from_secs(10), 99), &cancel)?;
//! std::fs::write("cpu.svg", profile.flamegraph_svg()?)?;
//! std::fs::write("cpu.pb", profile.encode_protobuf()?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Why frame pointers and a blocklist, and what they cost: `docs/profiling.md`.

mod cancel;
mod leaf;
mod render;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use cancel::{CancelOnDrop, CancelToken};
pub use render::CpuProfile;

/// Shared objects whose code the sampler never unwinds through: a sample whose interrupted
/// instruction is in one of them is dropped, and a stack walk stops at the first frame in one.
///
/// These libraries are built without frame pointers, and the unwinder's own helpers live in
/// them (`libgcc_s`); `vdso` has unreliable unwind data. This is the list pprof-rs recommends.
pub const DEFAULT_BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

/// Errors of the CPU profiler.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CpuError {
    /// Another CPU profile of this process is running. The sentence contains
    /// `Already in Profiling`, the phrase clients of TiKV and TiFlash look for.
    #[error("Already in Profiling: another CPU profile is running; try again when it ends")]
    Busy,
    /// The profile's [`CancelToken`] was cancelled before its duration was over.
    #[error("the CPU profile was cancelled")]
    Cancelled,
    /// The requested sampling frequency is outside what the interval timer can do.
    #[error(
        "invalid CPU sampling frequency {0} Hz: expected 1 to {max}",
        max = ProfileOptions::MAX_FREQUENCY
    )]
    InvalidFrequency(u32),
    /// pprof-rs could not install or run the sampler.
    #[error("the CPU sampler failed")]
    Sampler(#[source] pprof::Error),
    /// The pprof protobuf could not be encoded.
    #[error("encoding the CPU profile as pprof protobuf failed")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The flame graph could not be rendered.
    #[error("rendering the CPU flame graph failed")]
    FlameGraph(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How long and how often to sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileOptions {
    /// How long [`RunningProfile::wait`] samples.
    pub duration: Duration,
    /// Samples per second of CPU time (per process), 1 to [`ProfileOptions::MAX_FREQUENCY`].
    pub frequency: u32,
}

impl ProfileOptions {
    /// The highest frequency accepted. The interval timer has microsecond resolution, but the
    /// kernel delivers process CPU-time signals on its scheduler tick, so rates above `CONFIG_HZ`
    /// (often 250 or 1000) are not honoured anyway (see `docs/profiling.md`).
    pub const MAX_FREQUENCY: u32 = 1000;
    /// The frequency Go's `net/http/pprof` and TiKV use by default: 99 Hz, off the beat of
    /// periodic work that runs at round rates.
    pub const DEFAULT_FREQUENCY: u32 = 99;

    /// Options with the given duration and frequency.
    pub fn new(duration: Duration, frequency: u32) -> Self {
        ProfileOptions {
            duration,
            frequency,
        }
    }
}

/// Whether some CPU profile of this process is running. Private: the only way to take it is
/// [`CpuProfiler::start`], the only way to release it is dropping the [`RunningProfile`].
/// It is process-wide because what it guards is: there is one `SIGPROF` handler and one
/// `ITIMER_PROF` timer per process.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Holds [`ACTIVE`]; releases it when dropped.
#[derive(Debug)]
struct Slot(());

impl Slot {
    fn acquire() -> Result<Slot, CpuError> {
        ACTIVE
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| Slot(()))
            .map_err(|_| CpuError::Busy)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        ACTIVE.store(false, Ordering::Release);
    }
}

/// Starts CPU profiles of this process; a cheap handle, clone it freely.
///
/// At most one profile runs at a time in the whole process, whichever `CpuProfiler` value
/// started it: the sampler's signal handler and timer are process-wide.
#[derive(Debug, Clone)]
pub struct CpuProfiler {
    blocklist: Vec<String>,
}

impl Default for CpuProfiler {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuProfiler {
    /// A profiler with the [`DEFAULT_BLOCKLIST`].
    pub fn new() -> Self {
        CpuProfiler {
            blocklist: DEFAULT_BLOCKLIST.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// A profiler that also skips the shared objects whose path contains one of `extra`
    /// (for a native library built without frame pointers, say).
    pub fn with_extra_blocklist<S: AsRef<str>>(extra: &[S]) -> Self {
        let mut profiler = Self::new();
        profiler
            .blocklist
            .extend(extra.iter().map(|s| s.as_ref().to_owned()));
        profiler
    }

    /// Whether a CPU profile of this process is running now.
    pub fn is_running(&self) -> bool {
        ACTIVE.load(Ordering::Acquire)
    }

    /// Starts sampling the whole process. Fails at once with [`CpuError::Busy`] while another
    /// profile runs. Blocks for a few milliseconds (it scans the loaded shared objects), more
    /// the first time (pprof-rs warms up its unwinder and symbolizer).
    pub fn start(&self, options: ProfileOptions) -> Result<RunningProfile, CpuError> {
        if !(1..=ProfileOptions::MAX_FREQUENCY).contains(&options.frequency) {
            return Err(CpuError::InvalidFrequency(options.frequency));
        }
        let slot = Slot::acquire()?;
        let frequency = i32::try_from(options.frequency)
            .map_err(|_| CpuError::InvalidFrequency(options.frequency))?;
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(frequency)
            .blocklist(&self.blocklist)
            .build()
            .map_err(|e| match e {
                // Someone in this process drives pprof-rs directly: same conflict.
                pprof::Error::Running => CpuError::Busy,
                e => CpuError::Sampler(e),
            })?;
        if !leaf::install() {
            tracing::warn!(
                "could not interpose the leaf-frame SIGPROF handler: sampled stacks will lack \
                 the interrupted function"
            );
        }
        tracing::info!(
            duration_ms = options.duration.as_millis() as u64,
            frequency = options.frequency,
            "CPU profile started"
        );
        Ok(RunningProfile {
            guard,
            _slot: slot,
            options,
            started: Instant::now(),
        })
    }

    /// [`start`](Self::start), then [`RunningProfile::wait`]: samples for `options.duration`
    /// unless `cancel` is cancelled first. Blocking.
    pub fn profile(
        &self,
        options: ProfileOptions,
        cancel: &CancelToken,
    ) -> Result<CpuProfile, CpuError> {
        self.start(options)?.wait(cancel)
    }
}

/// A CPU profile being sampled. Dropping it stops sampling, discards the samples and frees
/// the profiler at once.
#[must_use = "dropping a running profile stops it at once"]
pub struct RunningProfile {
    // Field order matters: the sampler stops (guard dropped) before the slot is released.
    guard: pprof::ProfilerGuard<'static>,
    _slot: Slot,
    options: ProfileOptions,
    started: Instant,
}

impl std::fmt::Debug for RunningProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningProfile")
            .field("options", &self.options)
            .field("elapsed", &self.started.elapsed())
            .finish_non_exhaustive()
    }
}

impl RunningProfile {
    /// The options it was started with.
    pub fn options(&self) -> ProfileOptions {
        self.options
    }

    /// Time since sampling started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Blocks until the profile's duration has passed since it started, then stops and
    /// returns the symbolized samples. If `cancel` is cancelled first, it stops at once,
    /// frees the profiler and returns [`CpuError::Cancelled`].
    pub fn wait(self, cancel: &CancelToken) -> Result<CpuProfile, CpuError> {
        if cancel.wait_until(self.started + self.options.duration) {
            tracing::info!(
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "CPU profile cancelled"
            );
            return Err(CpuError::Cancelled);
        }
        self.stop()
    }

    /// Stops sampling now and returns what was sampled so far, symbolized.
    pub fn stop(self) -> Result<CpuProfile, CpuError> {
        // Symbolizing takes pprof-rs's profiler lock; signals that arrive meanwhile find it
        // taken and return without sampling, so the report holds exactly the sampled period.
        let report = self.guard.report().build().map_err(CpuError::Sampler)?;
        let profile = CpuProfile::new(report, self.options.frequency);
        tracing::info!(
            samples = profile.sample_count(),
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "CPU profile finished"
        );
        Ok(profile)
    }
}
