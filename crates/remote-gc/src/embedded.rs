//! The embedded election: one node, always the owner.

use tokio::sync::watch;

use crate::{BoxFuture, Error, OwnerElection, Ownership};

/// The default election for a single write node (no etcd configured): this node is the only
/// candidate, so it is always the owner. A resign is answered `Done` and the new campaign
/// that follows is won at once by the same node.
#[derive(Debug)]
pub struct EmbeddedElection {
    id: String,
    owner: watch::Sender<bool>,
}

impl EmbeddedElection {
    /// An election whose only candidate has the id `id` (its engine address).
    pub fn new(id: impl Into<String>) -> Self {
        EmbeddedElection {
            id: id.into(),
            owner: watch::Sender::new(true),
        }
    }
}

impl OwnerElection for EmbeddedElection {
    fn id(&self) -> &str {
        &self.id
    }

    fn is_owner(&self) -> bool {
        true
    }

    fn owner(&self) -> BoxFuture<'_, Ownership> {
        Box::pin(std::future::ready(Ownership::IsOwner(self.id.clone())))
    }

    fn resign(&self) -> BoxFuture<'_, Result<bool, Error>> {
        tracing::info!(id = %self.id, "remote GC owner resigned; the only candidate owns it again");
        Box::pin(std::future::ready(Ok(true)))
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.owner.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_only_candidate_always_owns() {
        let e = EmbeddedElection::new("10.0.0.1:3930");
        assert_eq!(e.id(), "10.0.0.1:3930");
        assert!(e.is_owner());
        assert_eq!(e.owner().await, Ownership::IsOwner("10.0.0.1:3930".into()));
        let rx = e.subscribe();
        assert!(*rx.borrow());
        assert!(matches!(e.resign().await, Ok(true)));
        assert!(
            e.is_owner(),
            "a new campaign follows a resign and the only candidate wins it"
        );
        assert_eq!(e.owner().await, Ownership::IsOwner("10.0.0.1:3930".into()));
        assert!(!rx.has_changed().unwrap_or(true), "ownership never changes");
    }
}
