//! Remote GC routes: `/tiflash/remote/owner/info`, `owner/resign`, `gc`, `upload`.
//!
//! The owner election is embedded (this node always owns) unless `--etcd-endpoints` is set;
//! see `docs/remote-gc.md`.

use std::sync::Arc;

use remote_gc::{
    EmbeddedElection, LogTasks, OwnerElection, Ownership, RemoteGc, DEFAULT_GC_INTERVAL,
};
use status_api::{ApiError, GcReply, MessageReply, OwnerInfo, OwnerStatus, Reply};

use crate::config::Config;

/// The remote GC of this server, or why it could not start.
#[derive(Debug)]
pub(crate) struct RemoteRoutes {
    remote: Result<Arc<RemoteGc>, String>,
}

impl RemoteRoutes {
    /// Start the election the configuration asks for, with the logging tasks.
    pub(crate) fn start(config: &Config) -> Self {
        let remote = election(config)
            .and_then(|election| RemoteGc::start(election, Arc::new(LogTasks), DEFAULT_GC_INTERVAL))
            .map(Arc::new)
            .map_err(|e| {
                let text = format!(
                    "the remote GC owner election could not start: {}",
                    e.chain()
                );
                tracing::error!("{text}");
                text
            });
        RemoteRoutes { remote }
    }

    /// The running remote GC, for an embedding engine.
    pub(crate) fn get(&self) -> Option<Arc<RemoteGc>> {
        self.remote.as_ref().ok().cloned()
    }

    fn remote(&self) -> Result<&RemoteGc, ApiError> {
        self.remote
            .as_deref()
            .map_err(|e| ApiError::Internal(e.clone()))
    }
}

impl Drop for RemoteRoutes {
    fn drop(&mut self) {
        // Hand ownership over at once rather than after a lease TTL.
        if let Ok(remote) = &self.remote {
            remote.shutdown();
        }
    }
}

#[cfg(feature = "etcd")]
fn election(config: &Config) -> Result<Arc<dyn OwnerElection>, remote_gc::Error> {
    if config.etcd_endpoints.is_empty() {
        return Ok(Arc::new(EmbeddedElection::new(config.engine_addr.clone())));
    }
    let etcd =
        remote_gc::EtcdConfig::new(config.etcd_endpoints.clone(), config.engine_addr.clone())
            .with_ttl(config.owner_ttl);
    Ok(Arc::new(remote_gc::EtcdElection::start(etcd)?))
}

#[cfg(not(feature = "etcd"))]
fn election(config: &Config) -> Result<Arc<dyn OwnerElection>, remote_gc::Error> {
    // Config::resolve refuses etcd endpoints in a build without the `etcd` feature.
    Ok(Arc::new(EmbeddedElection::new(config.engine_addr.clone())))
}

fn wire(owner: Ownership) -> (OwnerStatus, String) {
    match owner {
        Ownership::IsOwner(id) => (OwnerStatus::IsOwner, id),
        Ownership::NotOwner(id) => (OwnerStatus::NotOwner, id),
        Ownership::NoLeader => (OwnerStatus::NoLeader, String::new()),
        Ownership::Error(text) => (OwnerStatus::GrpcError, text),
    }
}

/// `GET /tiflash/remote/owner/info`
pub(crate) async fn owner_info(routes: &RemoteRoutes) -> Result<Reply, ApiError> {
    let (status, owner_id) = wire(routes.remote()?.owner().await);
    Ok(Reply::json(&OwnerInfo { status, owner_id }))
}

/// `GET /tiflash/remote/owner/resign`
pub(crate) async fn owner_resign(routes: &RemoteRoutes) -> Result<Reply, ApiError> {
    match routes.remote()?.resign().await {
        Ok(true) => Ok(Reply::json(&MessageReply::resigned())),
        Ok(false) => Ok(Reply::json(&MessageReply::not_owner())),
        Err(e) => Err(ApiError::Internal(format!(
            "resigning the remote GC ownership failed: {}",
            e.chain()
        ))),
    }
}

/// `GET /tiflash/remote/gc`
pub(crate) async fn gc(routes: &RemoteRoutes) -> Result<Reply, ApiError> {
    let (owner, execute) = routes.remote()?.trigger_gc().await;
    let (status, owner_id) = wire(owner);
    Ok(Reply::json(&GcReply {
        status,
        owner_id,
        execute,
    }))
}

/// `GET /tiflash/remote/upload`
pub(crate) fn upload(routes: &RemoteRoutes) -> Result<Reply, ApiError> {
    routes.remote()?.request_upload();
    Ok(Reply::json(&MessageReply::upload_flag_set()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn body(r: &Reply) -> &str {
        std::str::from_utf8(&r.body).unwrap()
    }

    #[tokio::test]
    async fn embedded_node_answers_as_the_owner() {
        let config = Config {
            engine_addr: "10.1.1.1:3930".into(),
            ..Config::default()
        };
        let routes = RemoteRoutes::start(&config);
        let r = owner_info(&routes).await.unwrap();
        assert_eq!(r.content_type.as_str(), "application/json");
        assert_eq!(
            body(&r),
            r#"{"status":"IsOwner","owner_id":"10.1.1.1:3930"}"#
        );
        assert_eq!(
            body(&gc(&routes).await.unwrap()),
            r#"{"status":"IsOwner","owner_id":"10.1.1.1:3930","execute":"true"}"#
        );
        assert_eq!(
            body(&upload(&routes).unwrap()),
            r#"{"message":"flag_set=true"}"#
        );
        assert_eq!(
            body(&owner_resign(&routes).await.unwrap()),
            r#"{"message":"Done"}"#
        );
        assert_eq!(
            body(&owner_info(&routes).await.unwrap()),
            r#"{"status":"IsOwner","owner_id":"10.1.1.1:3930"}"#
        );
    }

    #[test]
    fn ownership_maps_to_the_wire_status() {
        assert_eq!(
            wire(Ownership::NoLeader),
            (OwnerStatus::NoLeader, String::new())
        );
        assert_eq!(
            wire(Ownership::NotOwner("b:1".into())),
            (OwnerStatus::NotOwner, "b:1".into())
        );
        assert_eq!(
            wire(Ownership::Error("etcd Leader got no answer".into())).0,
            OwnerStatus::GrpcError
        );
    }

    #[test]
    fn a_failed_start_is_a_500_sentence() {
        let routes = RemoteRoutes {
            remote: Err("the remote GC owner election could not start: x".into()),
        };
        assert_eq!(upload(&routes).unwrap_err().status(), 500);
    }
}
