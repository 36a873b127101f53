//! jemalloc heap routes: `set_prof_active`, `set_prof_inactive`, `heap`, `heap_activate`,
//! `heap_list`, `heap_file/<name>`, `heap_deactivate`, `arena_purge`, `memory_status`.
//!
//! Dumps, purges, statistics and file reads run in `spawn_blocking`, never on the async
//! workers. Every file lives under `<data-dir>/heap-profiles/` (see docs/heap-profiling.md).

use super::sentence;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use profiling_core::heap::{self, HeapDumper, HeapDumperConfig, HeapError};
use status_api::{
    ApiError, ContentType, HeapActivateParams, HeapFileName, HeapParams, HeapView,
    MemoryStatusFormat, Reply,
};

use super::heap_views::HeapViews;

/// The state of the heap routes: where dumps go and the running activation, if any.
#[derive(Debug)]
pub(crate) struct HeapRoutes {
    /// `<data-dir>/heap-profiles`: activations get a private directory in it, one-shot dumps
    /// pass through a hidden temporary file in it.
    dump_root: PathBuf,
    /// Dumps an activation keeps (`--heap-dump-max-files`).
    max_files: usize,
    active: Mutex<Option<HeapDumper>>,
}

impl HeapRoutes {
    /// Also removes the dumps that a crashed earlier server left in `<data-dir>/heap-profiles`.
    pub(crate) fn new(data_dir: &Path, max_files: usize) -> Self {
        let dump_root = data_dir.join("heap-profiles");
        let stale = heap::remove_stale_dumps(&dump_root);
        if stale > 0 {
            tracing::info!(removed = stale, dir = %dump_root.display(), "removed heap dumps left by a process that is gone");
        }
        HeapRoutes {
            dump_root,
            max_files,
            active: Mutex::new(None),
        }
    }

    fn active(&self) -> MutexGuard<'_, Option<HeapDumper>> {
        // A panic while the lock was held cannot leave the Option half-updated.
        self.active.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn api_error(e: HeapError) -> ApiError {
    match e {
        HeapError::NotEnabled => ApiError::NotImplemented(e.to_string()),
        HeapError::AlreadyRunning => ApiError::Conflict(already_active()),
        e => ApiError::Internal(sentence(&e)),
    }
}

/// What a `HEAD` of a state-changing heap route answers instead of acting: the status a `GET`
/// would get (501 without heap profiling, 409 for a second activation), else `None` (200).
pub(crate) fn head_precondition(
    routes: &HeapRoutes,
    route: &status_api::Route,
) -> Result<(), ApiError> {
    match route {
        status_api::Route::SetProfActive(_) => require_enabled(),
        status_api::Route::HeapActivate(_) => {
            require_enabled()?;
            if routes.active().is_some() {
                return Err(ApiError::Conflict(already_active()));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn already_active() -> String {
    "a heap profile is already active; stop it with /debug/pprof/heap_deactivate first".into()
}

fn require_enabled() -> Result<(), ApiError> {
    if heap::is_enabled() {
        Ok(())
    } else {
        Err(api_error(HeapError::NotEnabled))
    }
}

/// Runs blocking heap work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HeapError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(api_error),
        Err(e) => Err(ApiError::Internal(format!(
            "heap profiling task failed: {e}"
        ))),
    }
}

/// `set_prof_active` / `set_prof_inactive`.
pub(crate) fn set_prof_active(active: bool) -> Result<Reply, ApiError> {
    heap::set_prof_active(active).map_err(api_error)?;
    Ok(Reply::text("set prof.active succeed\n"))
}

/// `GET /debug/pprof/heap`: a fresh raw `heap_v2` dump, or a view of one (`heap_views`).
pub(crate) async fn dump(
    routes: &Arc<HeapRoutes>,
    views: &Arc<HeapViews>,
    params: HeapParams,
) -> Result<Reply, ApiError> {
    require_enabled()?;
    match params.view {
        HeapView::RawDump => Ok(Reply::binary(raw_dump(routes).await?)),
        // jeprof's views and pprof, rendered in-process from a fresh dump.
        view => super::heap_views::render(routes, views, view).await,
    }
}

/// A fresh raw `heap_v2` dump, taken off the async workers.
pub(crate) async fn raw_dump(routes: &Arc<HeapRoutes>) -> Result<Vec<u8>, ApiError> {
    let routes = Arc::clone(routes);
    blocking(move || heap::dump_to_vec(&routes.dump_root)).await
}

/// `GET /debug/pprof/heap_activate?interval=N`.
pub(crate) async fn activate(
    routes: &Arc<HeapRoutes>,
    params: HeapActivateParams,
) -> Result<Reply, ApiError> {
    require_enabled()?;
    if routes.active().is_some() {
        return Err(ApiError::Conflict(already_active()));
    }
    let config = HeapDumperConfig {
        interval: params.interval,
        max_files: routes.max_files,
    };
    let root = routes.dump_root.clone();
    // A concurrent activation loses inside `start` (one dumper per process): 409 as well.
    let dumper = blocking(move || HeapDumper::start(&root, config)).await?;
    let lost = {
        let mut active = routes.active();
        match *active {
            // Unreachable while `start` admits one dumper per process; stop ours, keep theirs.
            Some(_) => Some(dumper),
            None => {
                *active = Some(dumper);
                None
            }
        }
    };
    if let Some(dumper) = lost {
        let _ = tokio::task::spawn_blocking(move || dumper.stop()).await;
        return Err(ApiError::Conflict(already_active()));
    }
    Ok(Reply::text("activate heap profile success\n"))
}

/// `GET /debug/pprof/heap_list`: `<absolute path>\t\t<YYYY-MM-DD HH:MM:SS>` per dump, newest
/// first; empty when no activation runs.
pub(crate) async fn list(routes: &Arc<HeapRoutes>) -> Result<Reply, ApiError> {
    let routes = Arc::clone(routes);
    let body = blocking(move || {
        let dumps = routes
            .active()
            .as_ref()
            .map(HeapDumper::dumps)
            .unwrap_or_default();
        Ok(dumps
            .iter()
            .map(|d| {
                format!(
                    "{}\t\t{}\n",
                    d.path.display(),
                    heap::format_local_time(d.modified)
                )
            })
            .collect::<String>())
    })
    .await?;
    Ok(Reply::text(body))
}

/// `GET /debug/pprof/heap_file/<name>`: one dump that `heap_list` shows; any other name is 404.
pub(crate) async fn file(
    routes: &Arc<HeapRoutes>,
    name: HeapFileName,
    method: &str,
    path: &str,
) -> Result<Reply, ApiError> {
    let not_found = || ApiError::NotFound {
        method: method.to_string(),
        path: path.to_string(),
    };
    let file = routes
        .active()
        .as_ref()
        .and_then(|d| d.dump_path(name.as_str()));
    let Some(file) = file else {
        return Err(not_found());
    };
    match tokio::task::spawn_blocking(move || std::fs::read(&file).map_err(|e| (file, e))).await {
        Ok(Ok(bytes)) => Ok(Reply::binary(bytes)),
        // Rotated away or deactivated since the lookup: it is no longer listed either.
        Ok(Err((_, e))) if e.kind() == std::io::ErrorKind::NotFound => Err(not_found()),
        Ok(Err((file, e))) => Err(ApiError::Internal(format!(
            "cannot read heap dump '{}': {e}",
            file.display()
        ))),
        Err(e) => Err(ApiError::Internal(format!(
            "heap profiling task failed: {e}"
        ))),
    }
}

/// `GET /debug/pprof/heap_deactivate`.
pub(crate) async fn deactivate(routes: &Arc<HeapRoutes>) -> Result<Reply, ApiError> {
    let Some(dumper) = routes.active().take() else {
        return Ok(Reply::text("no heap profile is running\n"));
    };
    blocking(move || dumper.stop()).await?;
    Ok(Reply::text("deactivate heap profile success\n"))
}

/// `GET /debug/pprof/arena_purge`.
pub(crate) async fn arena_purge() -> Result<Reply, ApiError> {
    let report = blocking(heap::purge_arenas).await?;
    Ok(Reply::text(format!(
        "purge OK\nresident bytes before: {}\nresident bytes after: {}\n",
        report.resident_before, report.resident_after
    )))
}

/// `GET /debug/pprof/memory_status`.
pub(crate) async fn memory_status(format: MemoryStatusFormat) -> Result<Reply, ApiError> {
    Ok(match format {
        MemoryStatusFormat::Json => {
            Reply::new(200, ContentType::Json, blocking(heap::stats_json).await?)
        }
        MemoryStatusFormat::Text => Reply::text(blocking(heap::stats_text).await?),
    })
}
