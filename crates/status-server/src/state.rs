//! The state every route handler can reach.

use std::sync::Arc;

use crate::config::Config;
use crate::lifecycle::Lifecycle;
use crate::registry::Registry;
use crate::routes::heap::HeapRoutes;
use crate::routes::heap_views::HeapViews;
use crate::routes::remote::RemoteRoutes;
use profiling_core::symbolize::Symbolizer;
use profiling_core::CpuProfiler;

/// Shared by all requests. Route families add their own fields here.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) config: Config,
    pub(crate) registry: Arc<Registry>,
    pub(crate) lifecycle: Arc<Lifecycle>,
    /// jemalloc heap routes: dump directory and the running activation.
    pub(crate) heap: Arc<HeapRoutes>,
    /// The in-process symbolizer (`/debug/pprof/symbol`); loads modules on first use.
    pub(crate) symbolizer: Arc<Symbolizer>,
    /// The rendered heap views (`/debug/pprof/heap?jeprof=true…`, `?format=protobuf`): the
    /// symbolizer above and a bounded cache of the frames it resolved for them.
    pub(crate) heap_views: Arc<HeapViews>,
    /// The CPU profiler (`/debug/pprof/profile`): one profile at a time, process-wide.
    pub(crate) cpu: CpuProfiler,
    /// Remote GC owner election and triggers (`/tiflash/remote/...`).
    pub(crate) remote: RemoteRoutes,
    /// Bounds the expensive one-shot work (heap dumps and views, symbol lookups, statistics):
    /// at most [`HEAVY_REQUESTS`] run at once, so a burst of them cannot pile up blocking
    /// threads and memory while the cheap routes keep answering.
    pub(crate) heavy: Arc<tokio::sync::Semaphore>,
}

/// How many expensive requests run at once; more wait up to [`HEAVY_WAIT`] for a slot.
pub(crate) const HEAVY_REQUESTS: usize = 4;
/// How long an expensive request waits for a slot before it gets a 503.
pub(crate) const HEAVY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl AppState {
    pub(crate) fn new(config: Config) -> Self {
        let heap = Arc::new(HeapRoutes::new(
            &config.data_dir,
            config.heap_dump_max_files,
        ));
        let remote = RemoteRoutes::start(&config);
        let symbolizer = Arc::new(Symbolizer::new());
        let heap_views = Arc::new(HeapViews::new(Arc::clone(&symbolizer)));
        AppState {
            config,
            heap,
            registry: Arc::new(Registry::new()),
            lifecycle: Arc::new(Lifecycle::new()),
            symbolizer,
            heap_views,
            cpu: CpuProfiler::new(),
            remote,
            heavy: Arc::new(tokio::sync::Semaphore::new(HEAVY_REQUESTS)),
        }
    }
}
