//! `/debug/pprof/symbol`: the symbol protocol of jeprof's and pprof's remote mode. `GET` says
//! that this server symbolizes; `POST` (or `GET ?ADDR+ADDR`) turns runtime addresses of this
//! process into names with the in-process [`Symbolizer`].

use std::sync::Arc;

use bytes::Bytes;
use profiling_core::symbolize::{Detail, Symbolizer};
use status_api::{ApiError, Reply, SymbolLine};

/// `GET /debug/pprof/symbol`: `num_symbols: 1`.
pub(crate) fn count() -> Reply {
    Reply::text(status_api::NUM_SYMBOLS_REPLY)
}

/// `POST /debug/pprof/symbol` (the body) or `GET /debug/pprof/symbol?…` (the raw query):
/// addresses joined by `+`; one `0x<hex> <name>` line per resolved address, in request order.
/// Parsing and symbolizing run on the blocking pool, off the async workers.
pub(crate) async fn resolve(symbolizer: &Arc<Symbolizer>, input: Bytes) -> Result<Reply, ApiError> {
    let symbolizer = Arc::clone(symbolizer);
    tokio::task::spawn_blocking(move || resolve_blocking(&symbolizer, &input))
        .await
        .map_err(|e| ApiError::Internal(format!("symbolization task failed: {e}")))?
}

fn resolve_blocking(symbolizer: &Symbolizer, input: &[u8]) -> Result<Reply, ApiError> {
    let addresses = status_api::parse_symbol_addresses(input)?;
    let lines: Vec<SymbolLine> = symbolizer
        .resolve_all_with(&addresses, Detail::Names)
        .into_iter()
        .flatten()
        .map(|symbol| SymbolLine {
            address: symbol.address,
            name: symbol.name(),
        })
        .collect();
    Ok(Reply::text(status_api::format_symbol_lines(&lines)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn known_function() -> u32 {
        std::hint::black_box(7)
    }

    #[test]
    fn resolves_in_request_order_and_leaves_out_the_unknown() {
        let symbolizer = Symbolizer::new();
        let f = known_function as *const () as usize as u64;
        let body = format!("{f:#X}+0x8+{f:x}");
        let reply = resolve_blocking(&symbolizer, body.as_bytes()).expect("reply");
        let text = String::from_utf8(reply.body.to_vec()).expect("utf-8");
        let name = "status_server::routes::symbol::tests::known_function";
        assert_eq!(text, format!("{f:#x} {name}\n{f:#x} {name}\n"));
    }

    #[test]
    fn malformed_tokens_are_named() {
        let symbolizer = Symbolizer::new();
        let err = resolve_blocking(&symbolizer, b"0x10+zz").expect_err("malformed");
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("'zz'"));
    }
}
