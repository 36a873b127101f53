//! One module per route family; `service.rs` dispatches to them.

pub(crate) mod cpu;
pub(crate) mod engine;
pub(crate) mod heap;
pub(crate) mod heap_views;
pub(crate) mod remote;
pub(crate) mod symbol;

/// The error and its causes as one sentence.
pub(crate) fn sentence(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
