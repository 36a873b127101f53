//! Names as the symbolizer prints them: Rust names demangled without their hash, every other
//! name (C, C++, assembly) exactly as the symbol table or the debug info spells it, since jeprof
//! and pprof demangle C++ names themselves.

use std::borrow::Cow;

/// Bytes from the file as text (names are ASCII in practice: validate fast, repair if not).
pub(super) fn text(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

/// A name from a symbol table (`.symtab`, `.dynsym`), where the language is unknown.
pub(super) fn symbol_name(raw: &[u8]) -> String {
    let raw = text(raw);
    if is_rust_symbol(&raw) {
        if let Ok(demangled) = rustc_demangle::try_demangle(&raw) {
            return format!("{demangled:#}");
        }
    }
    raw.into_owned()
}

/// A function name from DWARF: a linkage name (mangled) or a plain `DW_AT_name`.
pub(super) fn dwarf_name(raw: &str, language: Option<gimli::DwLang>) -> String {
    let rust = match language {
        Some(gimli::DW_LANG_Rust) => true,
        Some(_) => false,
        None => is_rust_symbol(raw),
    };
    if rust {
        if let Ok(demangled) = rustc_demangle::try_demangle(raw) {
            return format!("{demangled:#}");
        }
    }
    raw.to_owned()
}

/// Whether a DWARF name is a linkage (mangled) name rather than a bare `DW_AT_name`.
pub(super) fn is_mangled(raw: &str) -> bool {
    raw.starts_with("_Z")
        || raw.starts_with("_R")
        || raw.starts_with("__Z")
        || raw.starts_with("__R")
}

/// Rust's v0 mangling (`_R…`), or the legacy one (`_ZN…17h<16 hex digits>E`, perhaps followed
/// by a `.llvm.…`-style suffix). C++ names also start with `_ZN` but never end in that hash.
fn is_rust_symbol(raw: &str) -> bool {
    if raw.starts_with("_R") || raw.starts_with("__R") {
        return true;
    }
    if !(raw.starts_with("_ZN") || raw.starts_with("__ZN")) {
        return false;
    }
    // The hash is the last path segment; a suffix after it starts with '.' (`.llvm.1234`).
    let bytes = raw.as_bytes();
    let Some(at) = raw.rfind("17h") else {
        return false;
    };
    let hash = &bytes[at + 3..];
    hash.len() >= 17
        && hash[..16].iter().all(u8::is_ascii_hexdigit)
        && hash[16] == b'E'
        && (hash.len() == 17 || hash[17] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_legacy_names_lose_their_hash() {
        let raw = b"_ZN4core3ptr85drop_in_place$LT$std..rt..lang_start$LT$$LP$$RP$$GT$..$u7b$$u7b$closure$u7d$$u7d$$GT$17h0c7c1b8e8b7bd2a1E";
        assert_eq!(
            symbol_name(raw),
            "core::ptr::drop_in_place<std::rt::lang_start<()>::{{closure}}>"
        );
        assert_eq!(
            symbol_name(b"_ZN3std2rt10lang_start17h0123456789abcdefE.llvm.1234"),
            "std::rt::lang_start"
        );
    }

    #[test]
    fn rust_v0_names_are_demangled() {
        assert_eq!(symbol_name(b"_RNvCs1234_7mycrate3foo"), "mycrate::foo");
    }

    #[test]
    fn c_and_cpp_names_are_kept() {
        assert_eq!(symbol_name(b"malloc"), "malloc");
        assert_eq!(symbol_name(b"_ZN3foo3barEv"), "_ZN3foo3barEv");
        assert_eq!(symbol_name(b"_ZN3foo3barE"), "_ZN3foo3barE");
        assert_eq!(
            dwarf_name("_ZN3foo3barEv", Some(gimli::DW_LANG_C_plus_plus)),
            "_ZN3foo3barEv"
        );
    }

    #[test]
    fn dwarf_names_follow_the_language() {
        assert_eq!(
            dwarf_name(
                "_ZN3std2rt10lang_start17h0123456789abcdefE",
                Some(gimli::DW_LANG_Rust)
            ),
            "std::rt::lang_start"
        );
        assert_eq!(
            dwarf_name("wrapping_mul", Some(gimli::DW_LANG_Rust)),
            "wrapping_mul"
        );
        assert_eq!(dwarf_name("main", Some(gimli::DW_LANG_C99)), "main");
        assert!(is_mangled("_ZN3std2rt10lang_start17h0123456789abcdefE"));
        assert!(!is_mangled("wrapping_mul"));
    }
}
