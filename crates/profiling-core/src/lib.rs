//! `profiling-core`: the profiling machinery of the status server, usable without HTTP.
//!
//! Its capabilities are filled in by the profiling issues, each behind a feature so that an
//! engine compiles only what it uses:
//!
//! | feature | what it brings |
//! |---|---|
//! | `cpu` | a CPU sampler (pprof-rs, frame-pointer unwinding) with one-profile-at-a-time guard |
//! | `heap` | jemalloc heap profiling: `prof.active`, dumps, the periodic dump thread, purge, stats |
//! | `symbolize` | an in-process symbolizer for runtime addresses of this process |
//! | `heap-profile` | heap dumps parsed, symbolized and rendered in-process: jeprof's text views, flame graph, pprof |
//!
//! This crate depends on no HTTP crate; `status-server` maps its results to routes.
#![deny(missing_docs)]

#[cfg(feature = "cpu")]
mod cpu;
#[cfg(feature = "cpu")]
pub use cpu::{
    CancelOnDrop, CancelToken, CpuError, CpuProfile, CpuProfiler, ProfileOptions, RunningProfile,
    DEFAULT_BLOCKLIST,
};

#[cfg(feature = "heap")]
pub mod heap;
#[cfg(feature = "heap")]
pub use heap::{HeapDumpFile, HeapDumper, HeapDumperConfig, HeapError, PurgeReport};

#[cfg(feature = "symbolize")]
pub mod symbolize;
#[cfg(feature = "symbolize")]
pub use symbolize::{Detail, Frame, ModuleInfo, Symbol, Symbolizer, SymbolizerOptions};

#[cfg(feature = "heap-profile")]
pub mod heap_profile;
#[cfg(feature = "heap-profile")]
pub use heap_profile::{AddressResolver, HeapProfile, HeapProfileError, HeapReport};

/// An error and its causes as one line, joined by `: ` (for logs and error sentences).
#[cfg(any(feature = "heap", feature = "symbolize"))]
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
