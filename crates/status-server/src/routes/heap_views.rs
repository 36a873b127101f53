//! The rendered views of `GET /debug/pprof/heap`: `jeprof=true` with `text=svg` (default),
//! `text=text`, `text=collapsed` or `text=raw`, and `format=protobuf`.
//!
//! Each request takes a fresh dump (through `routes::heap`), then parses, symbolizes and
//! renders it in `spawn_blocking` with the server's shared symbolizer. No external program
//! runs (no perl, objdump, nm, addr2line, c++filt or dot). See docs/heap-views.md.

use std::sync::Arc;

use profiling_core::heap_profile::{HeapProfileError, HeapReport};
use profiling_core::symbolize::Symbolizer;
use status_api::{ApiError, ContentType, HeapView, JeprofText, Reply};

use super::heap::{raw_dump, HeapRoutes};

/// Renders `view` from a fresh dump of this process.
pub(crate) async fn render(
    routes: &Arc<HeapRoutes>,
    symbolizer: &Arc<Symbolizer>,
    view: HeapView,
) -> Result<Reply, ApiError> {
    let dump = raw_dump(routes).await?;
    if view == HeapView::RawDump {
        return Ok(Reply::binary(dump));
    }
    let symbolizer = Arc::clone(symbolizer);
    match tokio::task::spawn_blocking(move || render_blocking(&dump, &symbolizer, view)).await {
        Ok(reply) => reply.map_err(|e| ApiError::Internal(sentence(&e))),
        Err(e) => Err(ApiError::Internal(format!("heap view task failed: {e}"))),
    }
}

fn render_blocking(
    dump: &[u8],
    symbolizer: &Symbolizer,
    view: HeapView,
) -> Result<Reply, HeapProfileError> {
    let report = HeapReport::from_dump(dump, symbolizer)?;
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

/// The error and its causes as one sentence.
fn sentence(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
