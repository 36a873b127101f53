//! One module per route family; `service.rs` dispatches to them.

pub(crate) mod engine;
