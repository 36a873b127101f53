//! CPU profiling routes: `/debug/pprof/profile` (flame graph or pprof protobuf) and
//! `/debug/pprof/cmdline`.
//!
//! Sampling waits and rendering run in `spawn_blocking`; the handler future only awaits them.
//! It holds a [`CancelOnDrop`](profiling_core::CancelOnDrop) guard: when the client goes away,
//! hyper drops the future, the guard cancels the profile and the sampler stops and frees its
//! slot at once (see docs/profiling.md).

use super::sentence;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use profiling_core::{CancelToken, CpuError, CpuProfiler, ProfileOptions};
use status_api::{ApiError, ContentType, CpuProfileFormat, CpuProfileParams, Reply};

/// `GET /debug/pprof/profile`: profiles the whole process for `params.duration`.
///
/// `head` (a `HEAD` request) answers with the status and media type a `GET` would have,
/// without taking a profile.
pub(crate) async fn profile(
    profiler: &CpuProfiler,
    data_dir: &Path,
    params: CpuProfileParams,
    head: bool,
) -> Result<Reply, ApiError> {
    let content_type = match params.format {
        CpuProfileFormat::Protobuf => ContentType::OctetStream,
        CpuProfileFormat::FlameGraph => ContentType::Svg,
    };
    // The cheap check first, on this worker: a second client gets its 409 at once.
    if profiler.is_running() {
        return Err(api_error(CpuError::Busy));
    }
    if head {
        return Ok(Reply::new(200, content_type, bytes::Bytes::new()));
    }
    keep_temp_files_in(data_dir).await?;
    let cancel = CancelToken::new();
    // Dropped with this future when the client disconnects: cancels the sampling at once.
    let _cancel_on_drop = cancel.drop_guard();
    let profiler = profiler.clone();
    let options = ProfileOptions::new(params.duration, params.frequency);
    let format = params.format;
    let rendered = tokio::task::spawn_blocking(move || {
        let profile = profiler.profile(options, &cancel)?;
        match format {
            CpuProfileFormat::Protobuf => profile.encode_protobuf(),
            CpuProfileFormat::FlameGraph => profile.flamegraph_svg(),
        }
    })
    .await;
    match rendered {
        Ok(Ok(body)) => Ok(Reply::new(200, content_type, body)),
        Ok(Err(e)) => Err(api_error(e)),
        Err(e) => Err(ApiError::Internal(format!(
            "the CPU profiling task failed: {e}"
        ))),
    }
}

/// pprof-rs keeps its sample spill file in the temporary directory and leaves one behind per
/// process. The server writes only under its data directory, so before the first profile the
/// process-wide temporary directory of the `tempfile` crate (which pprof-rs uses) is pinned to
/// `<data-dir>/tmp`, emptied of what an earlier run left there.
async fn keep_temp_files_in(data_dir: &Path) -> Result<(), ApiError> {
    // Set once the override is in place; a failure is not remembered, the next profile retries.
    static PINNED: OnceLock<()> = OnceLock::new();
    if PINNED.get().is_some() {
        return Ok(());
    }
    let dir = data_dir.join("tmp");
    let pinned = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "cannot create the profiler's temporary directory {}: {e}",
                dir.display()
            )
        })?;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
        // Err only when already pinned to another directory; pprof then keeps using that one.
        let _ = tempfile::env::override_temp_dir(&dir);
        Ok::<(), String>(())
    })
    .await
    .map_err(|e| format!("the profiler's temporary directory task failed: {e}"))
    .and_then(|r| r);
    pinned.map_err(ApiError::Internal)?;
    let _ = PINNED.set(());
    Ok(())
}

/// `GET /debug/pprof/cmdline`: the process's arguments joined by NUL bytes, as Go's
/// `net/http/pprof` serves them (jeprof's remote mode reads the program name from it).
pub(crate) fn cmdline() -> Reply {
    let mut body = Vec::new();
    for (i, arg) in std::env::args_os().enumerate() {
        if i > 0 {
            body.push(0);
        }
        body.extend_from_slice(arg.as_bytes());
    }
    Reply::text(body)
}

fn api_error(e: CpuError) -> ApiError {
    match e {
        CpuError::Busy => ApiError::Conflict(e.to_string()),
        CpuError::InvalidFrequency(_) => ApiError::BadRequest(e.to_string()),
        e => ApiError::Internal(sentence(&e)),
    }
}
