//! What a jemalloc heap dump costs, and what sampling costs, at the sample rate in effect.
//!
//! ```text
//! cargo run --release -p profiling-core --features heap --example heap_dump_cost -- \
//!     [--live-mib 1024] [--stacks 1024] [--dumps 5] [--churn 10000000]
//! MALLOC_CONF=lg_prof_sample:12 cargo run …   # compare another sample rate
//! ```
//!
//! It runs on jemalloc with the server's options (`prof:true,prof_active:false,
//! lg_prof_sample:19`; `MALLOC_CONF` overrides), then:
//! 1. allocation churn (allocate and free 256-byte blocks) with `prof.active` off and on,
//!    best of 5 alternating rounds: the cost of sampling per allocation;
//! 2. with sampling on, keeps `--live-mib` MiB alive in 64 KiB blocks spread over
//!    `--stacks` distinct call stacks (a heap with many allocation sites);
//! 3. dumps `--dumps` times: time per dump (median) and dump size.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use profiling_core::heap;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[allow(unsafe_code)] // Exported for jemalloc, which reads it as `const char *malloc_conf`.
#[export_name = "malloc_conf"]
static MALLOC_CONF: &u8 = &CONF[0];
const CONF: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

const BLOCK: usize = 64 << 10;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, got {v}"))
        })
        .unwrap_or(default)
}

/// Allocates `n` blocks from a call stack chosen by `path` (one of 2^depth stacks): each level
/// calls `left` or `right` from a different call site.
#[inline(never)]
fn left(depth: u32, path: u64, n: usize, out: &mut Vec<Vec<u8>>) {
    if depth == 0 {
        leaf(n, out)
    } else if path & 1 == 0 {
        left(depth - 1, path >> 1, n, out)
    } else {
        right(depth - 1, path >> 1, n, out)
    }
    black_box(depth);
}

#[inline(never)]
fn right(depth: u32, path: u64, n: usize, out: &mut Vec<Vec<u8>>) {
    if depth == 0 {
        leaf(n, out)
    } else if path & 1 == 0 {
        left(depth - 1, path >> 1, n, out)
    } else {
        right(depth - 1, path >> 1, n, out)
    }
    black_box(depth);
}

#[inline(never)]
fn leaf(n: usize, out: &mut Vec<Vec<u8>>) {
    for _ in 0..n {
        out.push(black_box(vec![1u8; BLOCK]));
    }
}

fn churn(count: u64) -> Duration {
    let t = Instant::now();
    for i in 0..count {
        black_box(vec![i as u8; 256]);
    }
    t.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let live_mib = arg(&args, "--live-mib", 1024);
    let stacks = arg(&args, "--stacks", 1024).max(1);
    let dumps = arg(&args, "--dumps", 5).max(1);
    let churn_count = arg(&args, "--churn", 10_000_000);
    assert!(
        heap::is_enabled(),
        "heap profiling is off: MALLOC_CONF must not say prof:false"
    );
    let lg = heap::lg_prof_sample().unwrap();
    println!(
        "lg_prof_sample: {lg} (one sample per {} KiB allocated)",
        (1u64 << lg) >> 10
    );

    // Alternate off and on rounds and keep the fastest of each: the machine's noise only adds.
    churn(churn_count / 10);
    let (mut off, mut on) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        heap::set_prof_active(false).unwrap();
        off = off.min(churn(churn_count));
        heap::set_prof_active(true).unwrap();
        on = on.min(churn(churn_count));
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / churn_count as f64;
    println!(
        "churn of {churn_count} x 256 B (best of 5): {:.1} ns/alloc sampling off, {:.1} ns/alloc sampling on ({:+.1}%)",
        per(off),
        per(on),
        (per(on) / per(off) - 1.0) * 100.0
    );

    let depth = 64 - (stacks - 1).leading_zeros();
    let blocks = (live_mib << 20) as usize / BLOCK;
    let mut live: Vec<Vec<u8>> = Vec::with_capacity(blocks);
    let per_stack = blocks / stacks as usize;
    for path in 0..stacks {
        left(depth, path, per_stack.max(1), &mut live);
    }
    println!(
        "live heap: {} MiB in {} blocks of 64 KiB over {stacks} call stacks (depth {depth})",
        (live.len() * BLOCK) >> 20,
        live.len()
    );

    let dir = std::env::temp_dir().join(format!("heap-dump-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut times = Vec::new();
    let mut size = 0;
    for i in 0..dumps {
        let path = dir.join(format!("{i}.heap"));
        let t = Instant::now();
        size = heap::dump_to(&path).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    let text = std::fs::read_to_string(dir.join("0.heap")).unwrap();
    let sampled_stacks = text.lines().filter(|l| l.starts_with('@')).count();
    println!(
        "dump: median {:.1} ms (min {:.1}, max {:.1}) over {dumps} dumps, {size} bytes, {sampled_stacks} sampled stacks",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
    );
    std::fs::remove_dir_all(&dir).unwrap();
    heap::set_prof_active(false).unwrap();
    drop(black_box(live));
}
