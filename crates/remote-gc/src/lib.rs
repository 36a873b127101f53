//! `remote-gc`: who owns the garbage collection of the shared remote store.
//!
//! In TiFlash's disaggregated mode one write node at a time owns the remote GC. This crate
//! holds the owner election (an embedded single-node backend by default, etcd behind the
//! `etcd` feature) and the two triggers the status routes drive: the GC wake-up and the upload
//! flag. It depends on no HTTP crate.
#![deny(missing_docs)]
