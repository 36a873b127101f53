//! The rendered views of `GET /debug/pprof/heap`: `jeprof=true` with `text=svg` (default),
//! `text=text`, `text=collapsed` or `text=raw`, and `format=protobuf`.
//!
//! Each request takes a fresh dump (through `routes::heap`), then parses, symbolizes and
//! renders it in `spawn_blocking` with the server's shared symbolizer (and a bounded cache of
//! the frames it resolved before). No external program runs (no perl, objdump, nm,
//! addr2line, c++filt or dot). See docs/heap-views.md.

use super::sentence;
use std::sync::Arc;

use profiling_core::heap_profile::{FrameCache, HeapProfileError, HeapReport};
use profiling_core::symbolize::Symbolizer;
use status_api::{ApiError, ContentType, HeapView, JeprofText, Reply};

use super::heap::{raw_dump, HeapRoutes};

/// What the views need beyond the dump: the server's symbolizer, and the frames it resolved
/// for earlier views (bounded, `FrameCache::DEFAULT_MAX_BYTES`), so that a dashboard that
/// polls the flame graph does not read the same DWARF line tables each time.
#[derive(Debug)]
pub(crate) struct HeapViews {
    symbolizer: Arc<Symbolizer>,
    frames: FrameCache,
}

impl HeapViews {
    pub(crate) fn new(symbolizer: Arc<Symbolizer>) -> Self {
        HeapViews {
            symbolizer,
            frames: FrameCache::default(),
        }
    }
}

/// Renders `view` from a fresh dump of this process.
pub(crate) async fn render(
    routes: &Arc<HeapRoutes>,
    views: &Arc<HeapViews>,
    view: HeapView,
) -> Result<Reply, ApiError> {
    let dump = raw_dump(routes).await?;
    if view == HeapView::RawDump {
        return Ok(Reply::binary(dump));
    }
    let views = Arc::clone(views);
    match tokio::task::spawn_blocking(move || render_blocking(&dump, &views, view)).await {
        Ok(reply) => reply.map_err(|e| ApiError::Internal(sentence(&e))),
        Err(e) => Err(ApiError::Internal(format!("heap view task failed: {e}"))),
    }
}

fn render_blocking(
    dump: &[u8],
    views: &HeapViews,
    view: HeapView,
) -> Result<Reply, HeapProfileError> {
    let resolver = views.frames.resolver(views.symbolizer.as_ref());
    let report = HeapReport::from_dump(dump, &resolver)?;
    Ok(match view {
        HeapView::Jeprof(JeprofText::Svg) => {
            Reply::new(200, ContentType::Svg, report.flamegraph_svg()?)
        }
        HeapView::Jeprof(JeprofText::Text) => Reply::text(report.text()),
        HeapView::Jeprof(JeprofText::Collapsed) => Reply::text(report.collapsed()),
        // jeprof's `--raw`: the symbols it needs, then the dump; `jeprof --text FILE` reads it
        // with no binary.
        HeapView::Jeprof(JeprofText::Raw) => Reply::binary(report.jeprof_raw()),
        HeapView::Protobuf => Reply::binary(report.pprof_gzip()?),
        HeapView::RawDump => Reply::binary(dump.to_vec()),
    })
}
