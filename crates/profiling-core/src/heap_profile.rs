//! Heap profiles without perl: jemalloc `heap_v2` dumps parsed, symbolized in-process and
//! rendered as jeprof's views, a flame graph or a pprof protobuf.
//!
//! - [`HeapProfile::parse`]: a `heap_v2` dump (sample period, the all-threads counts of each
//!   stack, the `MAPPED_LIBRARIES:` memory map).
//! - [`HeapReport::new`]: symbolizes it with an [`AddressResolver`] (the in-process
//!   [`Symbolizer`] for dumps of this process), removes the
//!   allocator's frames so the top frame is the code that allocated, and estimates real
//!   counts from sampled ones as jeprof does ([`unsample`]).
//! - Views of a report: [`HeapReport::flamegraph_svg`] (interactive SVG of in-use bytes),
//!   [`HeapReport::text`] (`jeprof --text`), [`HeapReport::collapsed`] (folded stacks),
//!   [`HeapReport::jeprof_raw`] (`jeprof --raw`: symbols and the dump, readable by jeprof with
//!   no binary), [`HeapReport::pprof_gzip`] (`go tool pprof` with no binary).
//! - [`HeapReport::capture`]: dump this process and build its report in one call.
//! - [`FrameCache`]: keeps resolved frames across reports of one process, within a memory
//!   budget, so repeated views skip the DWARF work.
//!
//! No external program runs: no perl, objdump, nm, addr2line, c++filt or dot. All of this is
//! CPU work of tens of milliseconds: run it off async workers. See `docs/heap-views.md`.
//!
//! ```no_run
//! use profiling_core::heap_profile::HeapReport;
//! use profiling_core::symbolize::Symbolizer;
//!
//! let symbolizer = Symbolizer::new();
//! let report = HeapReport::capture(std::path::Path::new("/tmp/heap-scratch"), &symbolizer)?;
//! std::fs::write("heap.svg", report.flamegraph_svg()?)?;
//! print!("{}", report.text());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod build_id;
mod cache;
mod frames;
mod parse;
mod pprof_encode;
mod render;
mod report;

use std::path::Path;

pub use cache::{CachedResolver, FrameCache};
pub use parse::{unsample, HeapProfile, HeapStack, MappedRegion};
pub use report::{
    AddressResolver, HeapReport, NoSymbols, ReportLocation, ReportMapping, ReportSample,
};

use crate::heap::{self, HeapError};
use crate::symbolize::Symbolizer;

/// Errors of heap profile parsing and rendering.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeapProfileError {
    /// The dump is not a well-formed `heap_v2` dump.
    #[error("malformed heap_v2 dump at line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// Taking the dump failed.
    #[error("cannot take a heap dump")]
    Dump(#[from] HeapError),
    /// The flame graph could not be rendered.
    #[error("rendering the heap flame graph failed")]
    FlameGraph(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The pprof protobuf could not be encoded or compressed.
    #[error("encoding the heap profile as pprof protobuf failed")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl HeapReport {
    /// Dumps this process's heap ([`heap::dump_to_vec`], through a temporary file in
    /// `scratch_dir`), parses the dump and symbolizes it with `symbolizer`. Blocks.
    pub fn capture(
        scratch_dir: &Path,
        symbolizer: &Symbolizer,
    ) -> Result<HeapReport, HeapProfileError> {
        let dump = heap::dump_to_vec(scratch_dir)?;
        Self::from_dump(&dump, symbolizer)
    }

    /// Parses `dump` and symbolizes it with `resolver`.
    pub fn from_dump(
        dump: &[u8],
        resolver: &dyn AddressResolver,
    ) -> Result<HeapReport, HeapProfileError> {
        let profile = HeapProfile::parse(dump)?;
        Ok(HeapReport::new(&profile, resolver))
    }
}
