//! Criterion benchmarks of the in-process symbolizer on this benchmark binary (a release build
//! with the workspace's debug info): 1,000 distinct addresses inside its functions, taken from
//! its own symbol table and moved by its load bias.
//!
//! `cargo bench -p profiling-core --features symbolize --bench symbolize`
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use object::{Object, ObjectSymbol, SymbolKind};
use profiling_core::symbolize::{Detail, Symbolizer};

const ADDRESSES: usize = 1000;

/// Runtime addresses inside the functions of this binary: every function's middle byte, spread
/// evenly over the symbol table.
fn addresses() -> Vec<u64> {
    let exe = std::fs::canonicalize("/proc/self/exe").unwrap();
    let data = std::fs::read(&exe).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let mut functions: Vec<(u64, u64)> = file
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0 && s.address() > 0)
        .map(|s| (s.address(), s.size()))
        .collect();
    functions.sort_unstable();
    functions.dedup_by_key(|f| f.0);
    let bias = Symbolizer::new()
        .modules()
        .into_iter()
        .find(|m| *m.path == *exe)
        .unwrap()
        .bias;
    let step = (functions.len() / ADDRESSES).max(1);
    functions
        .iter()
        .step_by(step)
        .take(ADDRESSES)
        .map(|&(start, size)| start + size / 2 + bias)
        .collect()
}

fn bench(c: &mut Criterion) {
    let addresses = addresses();
    let warm = Symbolizer::new();
    let resolved = warm
        .resolve_all_with(&addresses, Detail::Names)
        .iter()
        .flatten()
        .count();
    assert!(
        resolved * 100 >= addresses.len() * 99,
        "resolved only {resolved} of {}",
        addresses.len()
    );

    let mut group = c.benchmark_group("symbolize");
    group.throughput(Throughput::Elements(addresses.len() as u64));
    group.bench_function("names_warm", |b| {
        b.iter(|| black_box(warm.resolve_all_with(black_box(&addresses), Detail::Names)))
    });
    group.bench_function("locations_warm", |b| {
        b.iter(|| black_box(warm.resolve_all_with(black_box(&addresses), Detail::Locations)))
    });
    group.sample_size(10);
    group.bench_function("names_cold", |b| {
        b.iter_batched(
            Symbolizer::new,
            |s| black_box(s.resolve_all_with(&addresses, Detail::Names)),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let one = addresses[addresses.len() / 2];
    c.bench_function("symbolize/one_address_warm", |b| {
        b.iter(|| black_box(warm.resolve(black_box(one))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
