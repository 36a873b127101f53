//! jemalloc heap profiling, usable without HTTP.
//!
//! The process must run on jemalloc with profiling compiled in (`tikv-jemalloc-sys` with its
//! `profiling` feature, which this crate's `heap` feature enables) and enabled at start
//! (`opt.prof`, set by `MALLOC_CONF=prof:true` or by the binary's `malloc_conf` symbol). This
//! module never chooses the allocator; the binary does.
//!
//! - [`is_enabled`]: was the process started with heap profiling on?
//! - [`prof_active`] / [`set_prof_active`]: jemalloc's sampling switch `prof.active`.
//! - [`dump_to`] / [`dump_to_vec`]: a `heap_v2` dump (`prof.dump`), written to a temporary
//!   name in the same directory and renamed, so a file under its final name is always complete.
//! - [`purge_arenas`]: purge every arena, reporting resident bytes before and after.
//! - [`stats_json`] / [`stats_text`]: `malloc_stats_print` output.
//! - [`HeapDumper`]: one named thread that dumps every N seconds into a private directory and
//!   keeps the newest [`DEFAULT_MAX_FILES`] files (configurable).
//!
//! Every function that needs profiling answers [`HeapError::NotEnabled`] when it is off.

mod ctl;
mod dumper;
mod time;

use std::ffi::CString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use dumper::{HeapDumpFile, HeapDumper, HeapDumperConfig, DEFAULT_MAX_FILES};
pub use time::format_local_time;

/// Everything that can go wrong in heap profiling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeapError {
    /// The process was not started with jemalloc heap profiling enabled.
    #[error(
        "jemalloc heap profiling is not enabled in this process; start it with heap profiling on \
         (MALLOC_CONF=prof:true, or without prof:false in MALLOC_CONF)"
    )]
    NotEnabled,
    /// A [`HeapDumper`] already runs in this process (there is one `prof.active` switch).
    #[error("a periodic heap profile is already running in this process")]
    AlreadyRunning,
    /// A `mallctl` call failed.
    #[error("jemalloc mallctl '{name}' failed: {} (error code {errno})", ctl::describe(*.errno))]
    Mallctl {
        /// The key.
        name: &'static str,
        /// jemalloc's error code.
        errno: i32,
    },
    /// jemalloc could not write a heap dump (`prof.dump` failed after the file was created).
    #[error("jemalloc could not write the heap dump '{}'", .path.display())]
    Dump {
        /// The file jemalloc was writing.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("cannot {action} '{}'", .path.display())]
    Io {
        /// What was being done (`create heap dump directory`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A path cannot be passed to jemalloc (it contains a NUL byte).
    #[error("path '{}' contains a NUL byte", .0.display())]
    InvalidPath(PathBuf),
    /// The statistics could not be produced.
    #[error("cannot produce jemalloc statistics")]
    Stats(#[source] io::Error),
}

impl HeapError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        HeapError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    fn mallctl(name: &'static str) -> impl FnOnce(i32) -> HeapError {
        move |errno| HeapError::Mallctl { name, errno }
    }
}

/// Whether the process runs on jemalloc with heap profiling enabled (`opt.prof`).
///
/// `false` also when jemalloc was built without profiling support.
pub fn is_enabled() -> bool {
    ctl::read_bool(c"opt.prof").unwrap_or(false)
}

fn require_enabled() -> Result<(), HeapError> {
    if is_enabled() {
        Ok(())
    } else {
        Err(HeapError::NotEnabled)
    }
}

/// The sample interval in effect, `opt.lg_prof_sample`: on average one allocation sample every
/// `2^lg` bytes allocated.
pub fn lg_prof_sample() -> Result<usize, HeapError> {
    require_enabled()?;
    ctl::read_usize(c"opt.lg_prof_sample").map_err(HeapError::mallctl("opt.lg_prof_sample"))
}

/// Whether allocations are being sampled now (`prof.active`).
pub fn prof_active() -> Result<bool, HeapError> {
    require_enabled()?;
    ctl::read_bool(c"prof.active").map_err(HeapError::mallctl("prof.active"))
}

/// Switches allocation sampling (`prof.active`) and returns the previous setting.
pub fn set_prof_active(active: bool) -> Result<bool, HeapError> {
    require_enabled()?;
    ctl::swap_bool(c"prof.active", active).map_err(HeapError::mallctl("prof.active"))
}

/// A process-wide counter that makes temporary file names unique.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

fn temp_path_for(path: &Path) -> PathBuf {
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{seq}.tmp", std::process::id()))
}

/// Writes a heap profile (jemalloc `heap_v2` text) to `path` and returns its size in bytes.
///
/// The dump is written to a hidden temporary file in the same directory and renamed, so a
/// file under its final name is always complete. The directory must exist.
pub fn dump_to(path: &Path) -> Result<u64, HeapError> {
    require_enabled()?;
    let tmp = temp_path_for(path);
    let c_tmp = CString::new(tmp.as_os_str().as_encoded_bytes())
        .map_err(|_| HeapError::InvalidPath(tmp.clone()))?;
    // Creating the file first gives a precise error (permissions, missing directory, full
    // disk) instead of jemalloc's bare failure; jemalloc then truncates and fills it.
    File::create(&tmp).map_err(|e| HeapError::io("create heap dump file", &tmp, e))?;
    let result = ctl::prof_dump(&c_tmp)
        .map_err(|_| HeapError::Dump { path: tmp.clone() })
        .and_then(|()| {
            fs::rename(&tmp, path).map_err(|e| HeapError::io("rename heap dump to", path, e))
        })
        .and_then(|()| {
            fs::metadata(path)
                .map(|m| m.len())
                .map_err(|e| HeapError::io("read heap dump", path, e))
        });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Takes a heap profile and returns its bytes; the dump passes through a temporary file in
/// `scratch_dir` (created if missing), which is removed before returning.
pub fn dump_to_vec(scratch_dir: &Path) -> Result<Vec<u8>, HeapError> {
    require_enabled()?;
    fs::create_dir_all(scratch_dir)
        .map_err(|e| HeapError::io("create heap dump directory", scratch_dir, e))?;
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let path = scratch_dir.join(format!(".heap-{}-{seq}.heap", std::process::id()));
    dump_to(&path)?;
    let bytes = fs::read(&path).map_err(|e| HeapError::io("read heap dump", &path, e));
    let _ = fs::remove_file(&path);
    bytes
}

/// Removes what a process that died without cleaning up (SIGKILL, OOM) left in `root`: the
/// activation directories (`heap-<pid>-…`) of [`HeapDumper`] and the temporary files
/// (`.heap-<pid>-…`) of [`dump_to_vec`], when process `<pid>` no longer runs. Returns how
/// many entries were removed; a missing `root` is not an error.
pub fn remove_stale_dumps(root: &Path) -> usize {
    let Ok(entries) = fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name
            .strip_prefix("heap-")
            .or_else(|| name.strip_prefix(".heap-"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match gone {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale heap dump")
            }
        }
    }
    removed
}

/// Resident bytes around [`purge_arenas`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    /// `stats.resident` before the purge.
    pub resident_before: usize,
    /// `stats.resident` after the purge.
    pub resident_after: usize,
}

/// `stats.resident` after refreshing the statistics epoch: bytes in physically resident
/// pages mapped by jemalloc.
pub fn resident_bytes() -> Result<usize, HeapError> {
    ctl::advance_epoch().map_err(HeapError::mallctl("epoch"))?;
    ctl::read_usize(c"stats.resident").map_err(HeapError::mallctl("stats.resident"))
}

/// Purges the unused dirty pages of every arena (`arena.<MALLCTL_ARENAS_ALL>.purge`).
///
/// Works whether or not heap profiling is enabled; it needs only jemalloc.
pub fn purge_arenas() -> Result<PurgeReport, HeapError> {
    let resident_before = resident_bytes()?;
    ctl::purge_all_arenas().map_err(HeapError::mallctl("arena.<all>.purge"))?;
    let resident_after = resident_bytes()?;
    Ok(PurgeReport {
        resident_before,
        resident_after,
    })
}

fn stats(json: bool) -> Result<String, HeapError> {
    let mut options = tikv_jemalloc_ctl::stats_print::Options::default();
    options.json_format = json;
    let mut out = Vec::with_capacity(64 * 1024);
    tikv_jemalloc_ctl::stats_print::stats_print(&mut out, options).map_err(HeapError::Stats)?;
    String::from_utf8(out)
        .map_err(|e| HeapError::Stats(io::Error::new(io::ErrorKind::InvalidData, e)))
}

/// jemalloc statistics as JSON (`malloc_stats_print` with option `J`).
pub fn stats_json() -> Result<String, HeapError> {
    stats(true)
}

/// jemalloc statistics as the human-readable report of `malloc_stats_print`.
pub fn stats_text() -> Result<String, HeapError> {
    stats(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_dumps_of_dead_processes_are_removed_and_live_ones_kept() {
        let root = std::env::temp_dir().join(format!("stale-dumps-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        // pid 4194305 is above Linux's largest pid_max: that process cannot exist.
        let dead_dir = root.join("heap-4194305-1700000000000-0");
        let dead_tmp = root.join(".heap-4194305-3.heap");
        let own_dir = root.join(format!("heap-{}-1-0", std::process::id()));
        let other = root.join("notes.txt");
        fs::create_dir_all(&dead_dir).unwrap();
        fs::write(dead_dir.join("000001.heap"), b"heap_v2/524288\n").unwrap();
        fs::write(&dead_tmp, b"").unwrap();
        fs::create_dir_all(&own_dir).unwrap();
        fs::write(&other, b"x").unwrap();
        assert_eq!(remove_stale_dumps(&root), 2);
        assert!(!dead_dir.exists() && !dead_tmp.exists());
        assert!(own_dir.exists() && other.exists());
        assert_eq!(remove_stale_dumps(&root.join("missing")), 0);
        fs::remove_dir_all(&root).unwrap();
    }
}
