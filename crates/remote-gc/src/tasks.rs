//! What the engine plugs in: its remote GC and its checkpoint uploader.

use std::fmt;

use crate::{OwnerElection, UploadFlag};

/// Why a GC pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcReason {
    /// Someone asked for it (`GET /tiflash/remote/gc`).
    Requested,
    /// The periodic interval elapsed while this node was the owner.
    Interval,
}

impl fmt::Display for GcReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GcReason::Requested => "requested",
            GcReason::Interval => "interval",
        })
    }
}

/// One GC pass, as handed to [`RemoteTasks::run_gc`].
#[derive(Debug)]
pub struct GcRun<'a> {
    pub(crate) reason: GcReason,
    pub(crate) election: &'a dyn OwnerElection,
}

impl GcRun<'_> {
    /// Why this pass runs.
    pub fn reason(&self) -> GcReason {
        self.reason
    }

    /// Whether this node is still the owner. A long GC checks it before each destructive
    /// step and stops as soon as it turns `false`: ownership can be lost mid-pass.
    pub fn still_owner(&self) -> bool {
        self.election.is_owner()
    }
}

/// The engine's side of the remote GC: the tasks the triggers run.
///
/// Both methods are called on a dedicated thread (`run_gc` on `remote-gc`) or from a route
/// handler (`wake_uploader`); `wake_uploader` must return quickly.
pub trait RemoteTasks: Send + Sync + fmt::Debug + 'static {
    /// Run one remote GC pass. Called only while this node is the owner, one pass at a time.
    fn run_gc(&self, run: &GcRun<'_>);

    /// The upload flag was just set: wake the checkpoint uploader, which then
    /// [`take`](UploadFlag::take)s the flag and uploads all data.
    fn wake_uploader(&self, flag: &UploadFlag);
}

/// The tasks of the stand-alone server, which has no remote store: it logs what it was asked
/// to do, and its "uploader" consumes the upload flag at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogTasks;

impl RemoteTasks for LogTasks {
    fn run_gc(&self, run: &GcRun<'_>) {
        tracing::info!(reason = %run.reason(), "remote GC pass requested (no remote store in this build: nothing to collect)");
    }

    fn wake_uploader(&self, flag: &UploadFlag) {
        if flag.take() {
            tracing::info!("checkpoint upload of all data requested (no remote store in this build: nothing to upload)");
        }
    }
}
