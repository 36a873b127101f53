//! The crate's error type.

use std::time::Duration;

/// What can go wrong in the owner election and its triggers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work (no endpoints, a TTL out of range, a malformed address).
    #[error("invalid remote GC configuration: {0}")]
    Config(String),

    /// A background thread could not be started.
    #[error("could not start thread '{name}'")]
    Spawn {
        /// The thread's name.
        name: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The election has been shut down.
    #[error("the owner election has stopped")]
    Stopped,

    /// An etcd request failed: etcd refused it, or it could not be sent.
    #[error("etcd {op} failed: {message}")]
    Etcd {
        /// The request (`LeaseGrant`, `Campaign`, …).
        op: &'static str,
        /// What etcd or the transport said (gRPC code and message).
        message: String,
    },

    /// An etcd request got no answer in time.
    #[error("etcd {op} got no answer within {timeout:?}")]
    Timeout {
        /// The request.
        op: &'static str,
        /// How long it waited.
        timeout: Duration,
    },
}

impl Error {
    /// The error and all its causes, joined by `": "`: one line for a log or a reply.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(e) = cur {
            out.push_str(": ");
            out.push_str(&e.to_string());
            cur = e.source();
        }
        out
    }
}
