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
//!
//! This crate depends on no HTTP crate; `status-server` maps its results to routes.
#![deny(missing_docs)]
