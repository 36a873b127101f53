//! The CPU profiler against a real busy thread: names in both renderings, one profile at a
//! time, cancellation.
#![cfg(feature = "cpu")]
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pprof::protos::Message;
use profiling_core::{CancelToken, CpuError, CpuProfiler, ProfileOptions};

/// The profiler is process-wide; the tests of this file take turns.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Parses strictly (well-formedness), allowing the SVG 1.1 DOCTYPE inferno writes.
fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(svg, options).unwrap()
}

/// A leaf function (no calls, not even in a debug build) that burns CPU.
#[inline(never)]
fn cpu_test_busy_leaf(mut x: u64, rounds: u64) -> u64 {
    let mut i = 0;
    while i < rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        i += 1;
    }
    x
}

/// Runs `cpu_test_busy_leaf` on a thread named `cpu-test-busy` until dropped.
struct Busy {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Busy {
    fn start() -> Busy {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cpu-test-busy".into())
            .spawn(move || {
                let mut acc = 1;
                while !flag.load(Ordering::Relaxed) {
                    acc = cpu_test_busy_leaf(std::hint::black_box(acc), 100_000) | 1;
                }
                acc
            })
            .unwrap();
        Busy {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn busy_leaf_function_is_named_in_protobuf_and_flame_graph() {
    let _serial = serial();
    let busy = Busy::start();
    let profile = CpuProfiler::new()
        .profile(
            ProfileOptions::new(Duration::from_secs(2), 499),
            &CancelToken::new(),
        )
        .unwrap();
    drop(busy);
    assert_eq!(profile.frequency(), 499);
    assert!(profile.duration() >= Duration::from_secs(2));
    assert!(profile.sample_count() > 0, "{profile:?}");

    // Folded stacks: the busy function is the innermost frame (the leaf) of samples taken on
    // the busy thread, and the thread name leads the line.
    let folded = profile.folded();
    let leaf_lines: Vec<&String> = folded
        .iter()
        .filter(|l| {
            let stack = l.rsplit_once(' ').unwrap().0;
            stack.ends_with("cpu::cpu_test_busy_leaf")
        })
        .collect();
    assert!(!leaf_lines.is_empty(), "no sample in the leaf: {folded:#?}");
    assert!(leaf_lines.iter().all(|l| l.starts_with("cpu-test-busy;")));
    // Frame pointers carry the walk past the closure into std's thread start.
    assert!(
        leaf_lines.iter().any(|l| l.contains("thread_start")),
        "shallow stacks: {leaf_lines:#?}"
    );

    // The protobuf: what `go tool pprof` needs.
    let bytes = profile.encode_protobuf().unwrap();
    let p = pprof::protos::Profile::parse_from_bytes(&bytes).unwrap();
    let s = |i: i64| p.string_table[usize::try_from(i).unwrap()].as_str();
    assert_eq!(s(0), "");
    let types: Vec<(&str, &str)> = p.sample_type.iter().map(|t| (s(t.ty), s(t.unit))).collect();
    assert_eq!(types, [("samples", "count"), ("cpu", "nanoseconds")]);
    let period_type = p.period_type.as_ref().unwrap();
    assert_eq!(
        (s(period_type.ty), s(period_type.unit)),
        ("cpu", "nanoseconds")
    );
    assert_eq!(p.period, 1_000_000_000 / 499);
    assert!(p.duration_nanos >= 2_000_000_000);
    assert!(p.time_nanos > 0);
    let function_names: HashMap<u64, &str> = p.function.iter().map(|f| (f.id, s(f.name))).collect();
    let location_function: HashMap<u64, u64> = p
        .location
        .iter()
        .map(|l| (l.id, l.line[0].function_id))
        .collect();
    let mut leaf_samples = 0;
    let mut total = 0;
    for sample in &p.sample {
        assert_eq!(sample.value.len(), 2);
        assert_eq!(sample.value[1], sample.value[0] * 1_000_000_000 / 499);
        total += sample.value[0];
        let thread: Vec<&str> = sample
            .label
            .iter()
            .filter(|l| s(l.key) == "thread")
            .map(|l| s(l.str))
            .collect();
        assert_eq!(thread.len(), 1, "every sample carries its thread");
        let leaf = function_names[&location_function[&sample.location_id[0]]];
        if leaf.ends_with("cpu::cpu_test_busy_leaf") {
            assert_eq!(thread, ["cpu-test-busy"]);
            leaf_samples += sample.value[0];
        }
    }
    assert!(leaf_samples > 0);
    assert_eq!(u64::try_from(total).unwrap(), profile.sample_count());

    // The flame graph: well-formed SVG with inferno's search and zoom script.
    let svg = String::from_utf8(profile.flamegraph_svg().unwrap()).unwrap();
    let doc = parse_svg(&svg);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(svg.contains("cpu::cpu_test_busy_leaf"));
    assert!(svg.contains("cpu-test-busy"));
    assert!(svg.contains("function search("), "no search script");
    assert!(svg.contains("function zoom("), "no zoom script");
}

#[test]
fn a_second_profile_is_busy_until_the_first_is_dropped() {
    let _serial = serial();
    let profiler = CpuProfiler::new();
    let first = profiler
        .start(ProfileOptions::new(Duration::from_secs(60), 99))
        .unwrap();
    assert!(profiler.is_running());
    // Another handle, same process: still one profile at a time.
    let other = CpuProfiler::new();
    let err = other
        .start(ProfileOptions::new(Duration::from_secs(1), 99))
        .unwrap_err();
    assert!(matches!(err, CpuError::Busy), "{err:?}");
    assert!(err.to_string().contains("Already in Profiling"));
    // A blocking profile call is refused the same way, without waiting.
    let err = other
        .profile(
            ProfileOptions::new(Duration::from_secs(60), 99),
            &CancelToken::new(),
        )
        .unwrap_err();
    assert!(matches!(err, CpuError::Busy), "{err:?}");

    drop(first);
    assert!(!profiler.is_running());
    let again = other
        .start(ProfileOptions::new(Duration::from_secs(1), 99))
        .unwrap();
    let profile = again.stop().unwrap();
    assert!(profile.duration() < Duration::from_secs(60));
}

#[test]
fn cancelling_stops_a_long_profile_at_once_and_frees_the_slot() {
    let _serial = serial();
    let profiler = CpuProfiler::new();
    let token = CancelToken::new();
    let guard = token.drop_guard();
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let profiler = profiler.clone();
        let token = token.clone();
        std::thread::Builder::new()
            .name("cpu-test-waiter".into())
            .spawn(move || {
                let result =
                    profiler.profile(ProfileOptions::new(Duration::from_secs(3600), 99), &token);
                tx.send((result.map(|_| ()), Instant::now())).unwrap();
            })
            .unwrap()
    };
    // Wait (bounded) until the profile runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !profiler.is_running() {
        assert!(Instant::now() < deadline, "the profile never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let cancelled_at = Instant::now();
    drop(guard);
    let (result, returned_at) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    waiter.join().unwrap();
    assert!(matches!(result, Err(CpuError::Cancelled)), "{result:?}");
    // It returned long before the hour was over, and the slot is free again.
    assert!(returned_at.duration_since(cancelled_at) < Duration::from_secs(30));
    assert!(!profiler.is_running());
    drop(
        profiler
            .start(ProfileOptions::new(Duration::from_secs(1), 99))
            .unwrap(),
    );
}

#[test]
fn frequencies_outside_the_timer_range_are_refused() {
    let _serial = serial();
    let profiler = CpuProfiler::new();
    for f in [0, ProfileOptions::MAX_FREQUENCY + 1, u32::MAX] {
        let err = profiler
            .start(ProfileOptions::new(Duration::from_secs(1), f))
            .unwrap_err();
        assert!(
            matches!(err, CpuError::InvalidFrequency(g) if g == f),
            "{err:?}"
        );
    }
    assert!(!profiler.is_running());
}

#[test]
fn a_profile_without_samples_still_renders() {
    let _serial = serial();
    // 1 Hz for 10 ms of an idle process: no sample is due.
    let profile = CpuProfiler::new()
        .profile(
            ProfileOptions::new(Duration::from_millis(10), 1),
            &CancelToken::new(),
        )
        .unwrap();
    assert_eq!(profile.sample_count(), 0);
    let svg = String::from_utf8(profile.flamegraph_svg().unwrap()).unwrap();
    parse_svg(&svg);
    assert!(svg.contains("no thread used CPU"));
    let p = pprof::protos::Profile::parse_from_bytes(&profile.encode_protobuf().unwrap()).unwrap();
    assert!(p.sample.is_empty());
    assert_eq!(p.sample_type.len(), 2);
}
