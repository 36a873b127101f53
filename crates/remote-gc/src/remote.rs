//! [`RemoteGc`]: the election and the two triggers, as the status routes use them.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::{Error, GcRun, GcTrigger, OwnerElection, Ownership, RemoteTasks, UploadFlag};

/// The engine's tasks, replaceable while the GC thread runs.
#[derive(Debug)]
struct Swappable(RwLock<Arc<dyn RemoteTasks>>);

impl Swappable {
    fn get(&self) -> Arc<dyn RemoteTasks> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl RemoteTasks for Swappable {
    fn run_gc(&self, run: &GcRun<'_>) {
        self.get().run_gc(run);
    }

    fn wake_uploader(&self, flag: &UploadFlag) {
        self.get().wake_uploader(flag);
    }
}

/// The remote-GC side of a write node: its owner election, the GC trigger and the upload
/// flag. One per process; the status routes call it.
#[derive(Debug)]
pub struct RemoteGc {
    election: Arc<dyn OwnerElection>,
    gc: GcTrigger,
    upload: Arc<UploadFlag>,
    tasks: Arc<Swappable>,
}

impl RemoteGc {
    /// Start the GC thread (a pass every `gc_interval` while this node owns, and on request).
    pub fn start(
        election: Arc<dyn OwnerElection>,
        tasks: Arc<dyn RemoteTasks>,
        gc_interval: Duration,
    ) -> Result<Self, Error> {
        let tasks = Arc::new(Swappable(RwLock::new(tasks)));
        let gc = GcTrigger::start(
            Arc::clone(&election),
            Arc::clone(&tasks) as Arc<dyn RemoteTasks>,
            gc_interval,
        )?;
        Ok(RemoteGc {
            election,
            gc,
            upload: Arc::new(UploadFlag::new()),
            tasks,
        })
    }

    /// Replace the engine's tasks (for an engine that embeds a server started with the
    /// default [`LogTasks`](crate::LogTasks)). The next GC pass and upload wake-up use them.
    pub fn set_tasks(&self, tasks: Arc<dyn RemoteTasks>) {
        *self.tasks.0.write().unwrap_or_else(PoisonError::into_inner) = tasks;
    }

    /// The owner election.
    pub fn election(&self) -> &Arc<dyn OwnerElection> {
        &self.election
    }

    /// The GC trigger.
    pub fn gc(&self) -> &GcTrigger {
        &self.gc
    }

    /// The upload flag, for the engine's uploader to wait on and take.
    pub fn upload_flag(&self) -> &Arc<UploadFlag> {
        &self.upload
    }

    /// Who owns the remote GC (`owner/info`).
    pub async fn owner(&self) -> Ownership {
        self.election.owner().await
    }

    /// Give up ownership (`owner/resign`): `Ok(true)` if this node was the owner.
    pub async fn resign(&self) -> Result<bool, Error> {
        self.election.resign().await
    }

    /// `remote/gc`: who owns, and whether the GC was woken (only on the owner).
    pub async fn trigger_gc(&self) -> (Ownership, bool) {
        let owner = self.election.owner().await;
        let executed = owner.is_owner() && self.gc.trigger();
        (owner, executed)
    }

    /// Stop the election (the owner hands ownership over at once); blocks for at most a few
    /// seconds. Call it on shutdown, off the async workers.
    pub fn shutdown(&self) {
        self.election.close();
    }

    /// `remote/upload`: set the upload flag and wake the uploader.
    pub fn request_upload(&self) {
        self.upload.set();
        self.tasks.wake_uploader(&self.upload);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use super::*;
    use crate::{EmbeddedElection, GcRun};

    #[derive(Debug, Default)]
    struct Count {
        wakes: Mutex<u32>,
    }

    impl RemoteTasks for Count {
        fn run_gc(&self, _run: &GcRun<'_>) {}
        fn wake_uploader(&self, flag: &UploadFlag) {
            assert!(
                flag.is_set(),
                "the flag is set before the uploader is woken"
            );
            *self.wakes.lock().unwrap() += 1;
        }
    }

    #[tokio::test]
    async fn embedded_node_executes_gc_and_sets_the_upload_flag() {
        let tasks = Arc::new(Count::default());
        let remote = RemoteGc::start(
            Arc::new(EmbeddedElection::new("127.0.0.1:3930")),
            tasks.clone(),
            Duration::from_secs(3600),
        )
        .unwrap();
        let (owner, executed) = remote.trigger_gc().await;
        assert_eq!(owner, Ownership::IsOwner("127.0.0.1:3930".into()));
        assert!(executed);
        remote.request_upload();
        assert_eq!(*tasks.wakes.lock().unwrap(), 1);
        assert!(
            remote.upload_flag().take(),
            "the flag waits for the uploader to take it"
        );
        assert!(remote.resign().await.unwrap());
        assert!(remote.owner().await.is_owner());

        let other = Arc::new(Count::default());
        remote.set_tasks(other.clone());
        remote.request_upload();
        assert_eq!(
            (*tasks.wakes.lock().unwrap(), *other.wakes.lock().unwrap()),
            (1, 1),
            "the new tasks are woken"
        );
    }
}
