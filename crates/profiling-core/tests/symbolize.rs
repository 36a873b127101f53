//! The in-process symbolizer on this test binary (a PIE, loaded at a random address) and on
//! the C library it links: names, inlined frames, file:line, unknown addresses, threads.
#![cfg(feature = "symbolize")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use profiling_core::symbolize::{Detail, Symbol, Symbolizer};

#[inline(never)]
fn known_function_of_this_test() -> u64 {
    std::hint::black_box(0x5eed)
}

#[inline(always)]
fn inlined_helper(x: u64) -> u64 {
    std::hint::black_box(x).wrapping_mul(31) ^ 7
}

#[inline(never)]
fn calls_an_inlined_helper(x: u64) -> (u64, u32) {
    (inlined_helper(x), line!())
}

fn address_of(f: fn() -> u64) -> u64 {
    f as *const () as usize as u64
}

fn outermost(symbol: &Symbol) -> &str {
    &symbol.frames.last().unwrap().function
}

#[test]
fn a_function_of_this_binary_resolves_to_its_demangled_name() {
    let symbolizer = Symbolizer::new();
    let address = address_of(known_function_of_this_test);
    let symbol = symbolizer.resolve(address).expect("resolved");
    assert_eq!(symbol.address, address);
    assert_eq!(symbol.name(), "symbolize::known_function_of_this_test");
    let frame = &symbol.frames[0];
    assert!(
        frame
            .file
            .as_deref()
            .unwrap()
            .ends_with("tests/symbolize.rs"),
        "{frame:?}"
    );
    assert!(frame.line.is_some(), "{frame:?}");
    // An address inside the function (not its first byte) names the same function.
    let inside = symbolizer.resolve(address + 1).expect("resolved");
    assert_eq!(outermost(&inside), "symbolize::known_function_of_this_test");
    // The module is this test binary, and it is position independent: runtime addresses are
    // not file addresses.
    let exe = std::fs::canonicalize(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(&*symbol.module, exe.as_path());
    let main = symbolizer
        .modules()
        .into_iter()
        .find(|m| &*m.path == exe.as_path())
        .expect("main module");
    assert_ne!(main.bias, 0, "a PIE test binary has a load bias");
}

#[test]
fn an_inlined_call_shows_its_frames_joined_by_dashes() {
    let (_, call_line) = calls_an_inlined_helper(3);
    let symbolizer = Symbolizer::new();
    let start = calls_an_inlined_helper as *const () as usize as u64;
    // Some instruction of the caller belongs to the inlined helper: scan the caller's bytes.
    let mut inlined = None;
    for address in start..start + 4096 {
        let Some(symbol) = symbolizer.resolve(address) else {
            break;
        };
        if outermost(&symbol) != "symbolize::calls_an_inlined_helper" {
            break;
        }
        if symbol.frames.len() >= 2 {
            inlined = Some(symbol);
            break;
        }
    }
    let symbol = inlined.expect("an address of the caller shows the inlined helper");
    assert_eq!(
        symbol.name(),
        "symbolize::inlined_helper--symbolize::calls_an_inlined_helper"
    );
    // The caller's frame is at the line of the call; the helper's frame in the helper.
    let caller = &symbol.frames[1];
    assert_eq!(caller.line, Some(call_line), "{symbol:?}");
    assert!(caller
        .file
        .as_deref()
        .unwrap()
        .ends_with("tests/symbolize.rs"));
    let helper = &symbol.frames[0];
    assert!(helper.line.unwrap() < call_line, "{symbol:?}");

    // Names only: the same frames, no file:line.
    let names = symbolizer
        .resolve_all_with(&[symbol.address], Detail::Names)
        .pop()
        .flatten()
        .unwrap();
    assert_eq!(names.name(), symbol.name());
    assert!(names
        .frames
        .iter()
        .all(|f| f.file.is_none() && f.line.is_none()));
}

#[test]
fn an_address_inside_libc_resolves_to_a_libc_symbol() {
    let symbolizer = Symbolizer::new();
    let getpid = libc::getpid as *const () as usize as u64;
    for address in [getpid, getpid + 1] {
        let symbol = symbolizer.resolve(address).expect("resolved");
        let file = symbol
            .module
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            file.starts_with("libc"),
            "module {}",
            symbol.module.display()
        );
        assert!(outermost(&symbol).contains("getpid"), "{symbol:?}");
    }
}

#[test]
fn addresses_in_no_module_are_left_out_in_order() {
    let symbolizer = Symbolizer::new();
    let known = address_of(known_function_of_this_test);
    let resolved = symbolizer.resolve_all(&[0x10, known, u64::MAX - 15, known]);
    assert!(resolved[0].is_none());
    assert_eq!(
        resolved[1].as_ref().map(Symbol::name).as_deref(),
        Some("symbolize::known_function_of_this_test")
    );
    assert!(resolved[2].is_none());
    assert!(resolved[3].is_some());
    assert!(symbolizer.resolve(0).is_none());
}

#[test]
fn one_symbolizer_serves_many_threads() {
    let symbolizer = Arc::new(Symbolizer::new());
    let addresses = [
        address_of(known_function_of_this_test),
        libc::getpid as *const () as usize as u64,
    ];
    let expected: Vec<String> = addresses
        .iter()
        .map(|&a| symbolizer.resolve(a).unwrap().name())
        .collect();
    symbolizer.trim();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let symbolizer = Arc::clone(&symbolizer);
            std::thread::Builder::new()
                .name(format!("symbolize-test-{i}"))
                .spawn(move || {
                    let mut last = Vec::new();
                    for _ in 0..50 {
                        last = symbolizer.resolve_all(&addresses);
                    }
                    last
                })
                .unwrap()
        })
        .collect();
    for thread in threads {
        let names: Vec<String> = thread
            .join()
            .unwrap()
            .into_iter()
            .map(|s| s.unwrap().name())
            .collect();
        assert_eq!(names, expected);
    }
}
