//! The store life cycle reported by `/tiflash/store-status`.

use std::sync::atomic::{AtomicU8, Ordering};

use status_api::StoreStatus;

/// The current [`StoreStatus`], shared between the server and the embedding engine.
///
/// The server moves it through Idle → Ready (bound) → Running (serving) → Stopping (shutdown
/// requested) → Terminated (stopped); an engine may set any state at any time.
#[derive(Debug)]
pub struct Lifecycle(AtomicU8);

impl Lifecycle {
    /// A life cycle that starts `Idle`.
    pub fn new() -> Self {
        Lifecycle(AtomicU8::new(StoreStatus::Idle as u8))
    }

    /// The current status.
    pub fn get(&self) -> StoreStatus {
        StoreStatus::from_u8(self.0.load(Ordering::Acquire)).unwrap_or(StoreStatus::Idle)
    }

    /// Sets the status.
    pub fn set(&self, status: StoreStatus) {
        let old = self.0.swap(status as u8, Ordering::AcqRel);
        if old != status as u8 {
            tracing::info!(status = %status, "store status changed");
        }
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}
