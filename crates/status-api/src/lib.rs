//! `status-api`: the contract of the TiFlash status HTTP API as plain Rust types.
//!
//! This is the bottom crate of the workspace. It turns a request head — method, raw path, raw
//! query and the request's `Content-Type` — into a typed [`Route`] with validated parameters
//! ([`route()`]), and it owns the exact wire form of every reply: [`Reply`] for bodies,
//! [`ApiError`] for every error sentence and status code, and the typed replies of the engine
//! routes ([`StoreStatus`], [`SyncStatus`], [`OwnerInfo`], …).
//!
//! It does no I/O and depends on no runtime or HTTP stack: the transport (`status-http`) and the
//! integration crate (`status-server`) sit above it, and an engine that serves the API through
//! its own HTTP stack can depend on this crate alone.
//!
//! Parsing never panics: a property test feeds [`route()`] arbitrary input.
#![deny(missing_docs)]

mod error;
mod params;
mod reply;
mod routes;
mod symbol;

pub use error::ApiError;
pub use params::{
    CpuProfileFormat, CpuProfileParams, HeapActivateParams, HeapFileName, HeapParams, HeapView,
    JeprofText, MemoryStatusFormat, QueryParams, SyncStatusKey,
};
pub use reply::{
    ContentType, GcReply, MessageReply, OwnerInfo, OwnerStatus, Reply, StoreStatus, SyncStatus,
};
pub use routes::{route, Method, RequestHead, Route, ENGINE_PREFIXES};
pub use symbol::{format_symbol_lines, parse_symbol_addresses, SymbolLine, NUM_SYMBOLS_REPLY};

/// The largest request body any route accepts (16 MiB); larger bodies get 413.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
