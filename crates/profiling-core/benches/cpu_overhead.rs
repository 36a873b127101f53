//! What a running CPU profile costs the profiled process: a CPU-bound workload timed with and
//! without a profile sampling the whole process.
//!
//! `cargo bench -p profiling-core --features cpu --bench cpu_overhead`
//!
//! Two parts: criterion's usual report for the workload alone and under a 99 Hz profile,
//! then paired runs (baseline and profiled back to back, order alternating, so that load from
//! other processes hits both alike) whose medians give the slowdown ratio, in the thread's own
//! CPU time (robust on a shared machine: waiting for a core is not counted, the signal handler
//! is) and in wall time. Set `CPU_OVERHEAD_PAIRS` to change the number of pairs (default 31).
//!
//! On a busy machine the paired ratios scatter by a few percent, more than a 99 Hz profile
//! costs. The third part measures the cost of one sample directly instead: a sender thread
//! signals the worker with `SIGPROF` thousands of times a second (far above what the timer
//! does), which multiplies the cost until it stands well clear of the noise; the CPU time
//! added per recorded sample, times the frequency, is the overhead at that frequency.
// One `unsafe` call: `pthread_kill`, to deliver SIGPROF to the worker thread at a high rate.
#![allow(unsafe_code)]

use std::hint::black_box;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use profiling_core::{CpuProfiler, ProfileOptions, RunningProfile};

/// A CPU-bound workload of about 10 ms: fill, sort and fold a vector, with real call depth
/// (the sort recurses), so the sampler walks realistic stacks.
fn workload(seed: u64) -> u64 {
    let mut x = seed | 1;
    let mut v: Vec<u64> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    v.sort_unstable();
    v.iter().enumerate().fold(0u64, |acc, (i, &e)| {
        acc.wrapping_mul(31).wrapping_add(e ^ i as u64)
    })
}

fn start_profile(frequency: u32) -> RunningProfile {
    CpuProfiler::new()
        .start(ProfileOptions::new(Duration::from_secs(3600), frequency))
        .expect("start the CPU profiler")
}

fn criterion_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("cpu_overhead");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("baseline", |b| b.iter(|| workload(black_box(7))));
    let profile = start_profile(ProfileOptions::DEFAULT_FREQUENCY);
    group.bench_function("profiled_99hz", |b| b.iter(|| workload(black_box(7))));
    let report = profile.stop().expect("stop");
    group.finish();
    println!("(the 99 Hz profile took {} samples)", report.sample_count());
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time this thread has run, user and system, in nanoseconds: the kernel's
/// `sum_exec_runtime`. Time spent in the `SIGPROF` handler and in signal delivery is charged
/// to the interrupted thread, so it is in here; time spent waiting for a core (other load on
/// the machine) is not.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("read /proc/thread-self/schedstat")
}

/// Runs `reps` workloads; returns (wall seconds, thread CPU seconds).
fn timed(reps: u32) -> (f64, f64) {
    let cpu = thread_cpu_ns();
    let start = Instant::now();
    for i in 0..reps {
        black_box(workload(black_box(u64::from(i) + 7)));
    }
    let wall = start.elapsed().as_secs_f64();
    (wall, (thread_cpu_ns() - cpu) as f64 / 1e9)
}

fn paired(frequency: u32, pairs: usize) {
    // Each run is long enough (about half a second) for the timer to fire many times.
    let reps = 50;
    timed(reps); // warm up
    let (mut base, mut prof) = (Vec::new(), Vec::new());
    let mut samples = 0;
    for i in 0..pairs {
        let mut run_profiled = || {
            let profile = start_profile(frequency);
            let t = timed(reps);
            samples += profile.stop().expect("stop").sample_count();
            t
        };
        if i % 2 == 0 {
            base.push(timed(reps));
            prof.push(run_profiled());
        } else {
            prof.push(run_profiled());
            base.push(timed(reps));
        }
    }
    let profiled_cpu: f64 = prof.iter().map(|t| t.1).sum();
    let per_workload = |v: &[(f64, f64)], cpu: bool| {
        let mut x: Vec<f64> = v.iter().map(|t| if cpu { t.1 } else { t.0 }).collect();
        median(&mut x) * 1e3 / f64::from(reps)
    };
    let ratios = |cpu: bool| {
        let mut r: Vec<f64> = prof
            .iter()
            .zip(&base)
            .map(|(p, b)| if cpu { p.1 / b.1 } else { p.0 / b.0 })
            .collect();
        let m = median(&mut r);
        (m, r[r.len() / 4], r[r.len() * 3 / 4])
    };
    let ((wall_ratio, _, _), (cpu_ratio, q1, q3)) = (ratios(false), ratios(true));
    println!(
        "{frequency:>4} Hz, {pairs} pairs of {reps} workloads: thread CPU time per workload \
         {:.3} ms -> {:.3} ms, median ratio {cpu_ratio:.4} ({:+.2} %, interquartile {q1:.4} to \
         {q3:.4}); wall time {:.3} ms -> \
         {:.3} ms, median ratio {wall_ratio:.4} ({:+.2} %); {samples} samples in {profiled_cpu:.1} \
         CPU-seconds profiled = {:.0} samples per CPU-second",
        per_workload(&base, true),
        per_workload(&prof, true),
        (cpu_ratio - 1.0) * 100.0,
        per_workload(&base, false),
        per_workload(&prof, false),
        (wall_ratio - 1.0) * 100.0,
        samples as f64 / profiled_cpu,
    );
}

/// Runs workloads on a thread of its own on request; answers with its thread CPU seconds.
struct Worker {
    requests: mpsc::Sender<u32>,
    replies: mpsc::Receiver<f64>,
    thread: std::thread::JoinHandle<()>,
}

impl Worker {
    fn start() -> Worker {
        let (requests, rx) = mpsc::channel::<u32>();
        let (tx, replies) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("overhead-worker".into())
            .spawn(move || {
                for reps in rx {
                    let _ = tx.send(timed(reps).1);
                }
            })
            .expect("spawn the worker");
        Worker {
            requests,
            replies,
            thread,
        }
    }

    /// Runs `reps` workloads on the worker; returns its CPU seconds for them.
    fn run(&self, reps: u32) -> f64 {
        self.requests.send(reps).expect("worker alive");
        self.replies.recv().expect("worker reply")
    }

    fn stop(self) {
        drop(self.requests);
        let _ = self.thread.join();
    }
}

/// Sends SIGPROF to `worker` every `interval` until `stop`.
fn storm(worker: libc::pthread_t, interval: Duration, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `worker` is a live thread (joined only after every storm has ended), and a
        // profile is running whenever a storm does, so SIGPROF has a handler.
        unsafe { libc::pthread_kill(worker, libc::SIGPROF) };
        std::thread::sleep(interval);
    }
}

fn per_sample_cost(pairs: usize) {
    let reps = 50;
    let worker = Worker::start();
    let tid = worker.thread.as_pthread_t();
    worker.run(reps); // warm up
    let (mut costs, mut rates, mut added) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pairs {
        // Baseline: a profile runs, but at 1 Hz its timer barely fires during a run.
        let idle = start_profile(1);
        let base = worker.run(reps);
        let base_samples = idle.stop().expect("stop").sample_count();
        // Storm: the same, with thousands of SIGPROFs a second aimed at the worker.
        let profile = start_profile(1);
        let stop = AtomicBool::new(false);
        let stormed = std::thread::scope(|s| {
            s.spawn(|| storm(tid, Duration::from_micros(100), &stop));
            let cpu = worker.run(reps);
            stop.store(true, Ordering::Relaxed);
            cpu
        });
        let samples = profile.stop().expect("stop").sample_count();
        let extra = samples.saturating_sub(base_samples).max(1) as f64;
        costs.push((stormed - base) / extra);
        rates.push(extra / stormed);
        added.push(stormed / base - 1.0);
    }
    worker.stop();
    println!(
        "per-sample cost, {pairs} pairs of {reps} workloads: a storm of {:.0} samples per \
         CPU-second adds {:+.1} % CPU time, {:.1} us per sample => {:.2} % at 99 Hz, {:.2} % \
         at 250 Hz (the timer's ceiling with CONFIG_HZ=250)",
        median(&mut rates),
        median(&mut added) * 100.0,
        median(&mut costs) * 1e6,
        median(&mut costs) * 99.0 * 100.0,
        median(&mut costs) * 250.0 * 100.0,
    );
}

criterion_group!(benches, criterion_benches);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo test --benches` runs benches in test mode: keep that fast.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let pairs = std::env::var("CPU_OVERHEAD_PAIRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(31);
    for frequency in [
        ProfileOptions::DEFAULT_FREQUENCY,
        ProfileOptions::MAX_FREQUENCY,
    ] {
        paired(frequency, pairs);
    }
    per_sample_cost(pairs);
}
