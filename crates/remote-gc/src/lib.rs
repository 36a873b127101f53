//! `remote-gc`: who owns the garbage collection of the shared remote store.
//!
//! In TiFlash's disaggregated mode one write node at a time owns the remote GC: two owners at
//! once would delete data that another node still reads. This crate holds
//!
//! - the owner election, the [`OwnerElection`] trait, with two backends:
//!   [`EmbeddedElection`] (the default: this node is the only candidate and always the owner)
//!   and `EtcdElection` (feature `etcd`: a lease, a campaign on `/tiflash/s3gc/owner`, a watch
//!   on the won key, and a local deadline that makes a node step down *before* etcd can expire
//!   its lease);
//! - the two triggers the status routes drive, bundled in [`RemoteGc`]: the GC wake-up
//!   ([`GcTrigger`], which also runs the GC on an interval while this node is the owner) and
//!   the upload flag ([`UploadFlag`]: set, wake the uploader, the uploader takes it);
//! - [`RemoteTasks`], the small trait through which the engine supplies its GC and its
//!   uploader ([`LogTasks`] only logs what it is asked, for the stand-alone server).
//!
//! It sits beside `profiling-core` under `status-server` and depends on no HTTP crate; the
//! routes in `status-server` map [`Ownership`] to the JSON of the status API.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `etcd` | no | `EtcdElection` and `EtcdConfig`: election on etcd v3 (3.4 and later) over gRPC with `tonic`; needs no `protoc` |
//!
//! # Safety rule of the etcd backend
//!
//! A node calls itself the owner only while `now < sent + ttl - margin`, where `sent` is when
//! it sent the last keep-alive that etcd answered and `ttl` the lease TTL etcd granted. etcd
//! renews a lease no earlier than the request was sent, so the node stops calling itself the
//! owner at least `margin` before etcd can expire the lease and delete its election key, and
//! no other node can win before that key is gone. See `docs/remote-gc.md`.
#![deny(missing_docs)]

mod election;
mod embedded;
mod error;
#[cfg(feature = "etcd")]
mod etcd;
mod remote;
mod tasks;
mod trigger;

pub use election::{BoxFuture, OwnerElection, Ownership, DEFAULT_ELECTION_KEY};
pub use embedded::EmbeddedElection;
pub use error::Error;
#[cfg(feature = "etcd")]
pub use etcd::{EtcdConfig, EtcdElection};
pub use remote::RemoteGc;
pub use tasks::{GcReason, GcRun, LogTasks, RemoteTasks};
pub use trigger::{GcTrigger, UploadFlag, DEFAULT_GC_INTERVAL};
