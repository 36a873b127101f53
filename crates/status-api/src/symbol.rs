//! The wire form of `/debug/pprof/symbol`, the protocol of Go's pprof and jeprof.

use crate::error::{printable, ApiError};
use crate::MAX_BODY_BYTES;

/// The reply to `GET /debug/pprof/symbol`: any count above zero tells jeprof and pprof that
/// the server symbolizes.
pub const NUM_SYMBOLS_REPLY: &str = "num_symbols: 1\n";

/// Parses addresses joined by `+` (a body or a raw query).
///
/// Each token is hexadecimal, with an optional `0x`/`0X` prefix, any case; white space around
/// tokens is ignored and empty tokens are skipped. A `+` is always a separator, never a space.
/// A body that is not UTF-8 or a malformed token is a 400 naming it.
pub fn parse_symbol_addresses(body: &[u8]) -> Result<Vec<u64>, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid symbol request: the body is not UTF-8 text (bad byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let mut out = Vec::new();
    for raw in text.split('+') {
        let token = raw.trim();
        if token.is_empty() {
            continue;
        }
        let hex = token
            .strip_prefix("0x")
            .or_else(|| token.strip_prefix("0X"))
            .unwrap_or(token);
        let valid =
            !hex.is_empty() && hex.len() <= 16 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        match valid.then(|| u64::from_str_radix(hex, 16).ok()).flatten() {
            Some(addr) => out.push(addr),
            None => {
                return Err(ApiError::BadRequest(format!(
                    "invalid address '{}' in symbol request: expected hexadecimal addresses joined by '+', such as 0x56424a39c97e+0x564251100e4c",
                    printable(token, 64)
                )))
            }
        }
    }
    Ok(out)
}

/// One resolved address: the address and its name (inlined frames already joined by `--`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolLine {
    /// The address as requested.
    pub address: u64,
    /// The name; inlined frames joined by `--`, innermost first.
    pub name: String,
}

/// The reply body: `0x<lowercase hex> <name>` a line, in the order given.
pub fn format_symbol_lines(lines: &[SymbolLine]) -> String {
    let mut out = String::with_capacity(lines.len() * 48);
    for line in lines {
        out.push_str(&format!("{:#x} {}\n", line.address, line.name));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_jeprof_bodies() {
        assert_eq!(
            parse_symbol_addresses(b"0x56424a39c97e+0x564251100E4C").unwrap(),
            vec![0x5642_4a39_c97e, 0x5642_5110_0e4c]
        );
        assert_eq!(
            parse_symbol_addresses(b" 10 + 0XfF \n").unwrap(),
            vec![0x10, 0xff]
        );
        assert_eq!(parse_symbol_addresses(b"").unwrap(), Vec::<u64>::new());
        assert!(parse_symbol_addresses(b"0x1 0x2").is_err());
        assert!(parse_symbol_addresses(b"0xzz")
            .unwrap_err()
            .to_string()
            .contains("'0xzz'"));
        assert!(parse_symbol_addresses(b"0x").is_err());
        assert!(parse_symbol_addresses(b"0x10000000000000000").is_err());
        assert!(parse_symbol_addresses(&[0xff, 0xfe])
            .unwrap_err()
            .to_string()
            .contains("UTF-8"));
    }

    #[test]
    fn formats_lines() {
        let body = format_symbol_lines(&[SymbolLine {
            address: 0xABC,
            name: "f--g".into(),
        }]);
        assert_eq!(body, "0xabc f--g\n");
    }
}
