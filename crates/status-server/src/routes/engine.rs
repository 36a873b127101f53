//! Engine status routes: `store-status`, `sync-status`, `livez`, `readyz`.

use status_api::{ApiError, Reply, StoreStatus, SyncStatusKey};

use crate::state::AppState;

pub(crate) fn store_status(state: &AppState) -> Reply {
    state.lifecycle.get().to_reply()
}

pub(crate) fn sync_status(state: &AppState, key: SyncStatusKey) -> Reply {
    state.registry.sync_status(key).to_reply()
}

pub(crate) fn livez() -> Reply {
    Reply::text("ok\n")
}

pub(crate) fn readyz(state: &AppState) -> Result<Reply, ApiError> {
    match state.lifecycle.get() {
        StoreStatus::Running => Ok(Reply::text("ok\n")),
        other => Err(ApiError::Unavailable(format!(
            "not ready: store status is {other}, ready only while Running"
        ))),
    }
}
