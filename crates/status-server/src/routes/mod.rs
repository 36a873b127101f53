//! One module per route family; `service.rs` dispatches to them.

pub(crate) mod cpu;
pub(crate) mod engine;
pub(crate) mod heap;
pub(crate) mod heap_views;
pub(crate) mod remote;
pub(crate) mod symbol;
