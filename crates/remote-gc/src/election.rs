//! The owner-election trait and its answer type.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

use crate::Error;

/// The election key TiFlash campaigns on.
pub const DEFAULT_ELECTION_KEY: &str = "/tiflash/s3gc/owner";

/// A boxed, sendable future, as the object-safe [`OwnerElection`] methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who owns the remote GC, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// This node is the owner; the string is its own id (engine address).
    IsOwner(String),
    /// Another node is the owner; the string is the owner's id as it campaigned.
    NotOwner(String),
    /// Nobody is the owner right now (an election is in progress).
    NoLeader,
    /// The election backend could not be asked; the string says why.
    Error(String),
}

impl Ownership {
    /// Whether this answer says that this node is the owner.
    pub fn is_owner(&self) -> bool {
        matches!(self, Ownership::IsOwner(_))
    }
}

/// An owner election among the write nodes.
///
/// Implementations must never let two nodes answer `true` from [`is_owner`](Self::is_owner)
/// at the same moment; everything else (who is reported as the owner, how fast a new owner is
/// found) is best effort.
pub trait OwnerElection: Send + Sync + fmt::Debug {
    /// This node's id in the election (its engine address).
    fn id(&self) -> &str;

    /// Whether this node is the owner right now. Cheap and local: it asks no server, so the
    /// GC may call it before every step.
    fn is_owner(&self) -> bool;

    /// Who is the owner: [`Ownership::IsOwner`] from local state when this node is, otherwise
    /// the backend is asked (bounded in time).
    fn owner(&self) -> BoxFuture<'_, Ownership>;

    /// Give up ownership. `Ok(true)` if this node was the owner (it stepped down, and a new
    /// campaign follows), `Ok(false)` if it was not.
    fn resign(&self) -> BoxFuture<'_, Result<bool, Error>>;

    /// A receiver of this node's ownership (`true` while it owns). `changed().await` on it
    /// waits for the next change.
    fn subscribe(&self) -> watch::Receiver<bool>;

    /// Stop campaigning: step down, give ownership back to the other candidates at once
    /// (instead of after a lease TTL) and stop background work. Blocks for at most a few
    /// seconds; idempotent. The default does nothing.
    fn close(&self) {}
}
