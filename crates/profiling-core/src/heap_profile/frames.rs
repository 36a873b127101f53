//! Which frames belong to the allocator, and the short names shown in flame graphs and tables.

use crate::symbolize::Frame;

/// C allocator entry points (jeprof's own skip list for heap profiles, plus jemalloc's
/// non-standard API and glibc's aliases).
const C_ENTRY_POINTS: &[&str] = &[
    "malloc",
    "calloc",
    "realloc",
    "free",
    "cfree",
    "memalign",
    "posix_memalign",
    "aligned_alloc",
    "valloc",
    "pvalloc",
    "reallocarray",
    "mallocx",
    "rallocx",
    "xallocx",
    "sallocx",
    "dallocx",
    "sdallocx",
    "sdallocx_noflags",
    "nallocx",
    "malloc_default",
    "newImpl",
    "do_malloc",
    "__libc_malloc",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_memalign",
    "__posix_memalign",
    "operator new",
    "operator new[]",
    "__builtin_new",
    "__builtin_vec_new",
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
];

/// Prefixes of jemalloc's internal functions (static ones keep their plain C names) and of the
/// prefixed symbols of `tikv-jemalloc-sys` (`_rjem_je_prof_backtrace`, `_rjem_mallocx`, …).
const C_PREFIXES: &[&str] = &[
    "_rjem_",
    "je_",
    "prof_backtrace",
    "prof_alloc_prep",
    "prof_tctx_create",
    "imalloc",
    "ialloc",
    "iralloc",
    "irealloc",
    "ifree",
    "isfree",
    "arena_malloc",
    "arena_ralloc",
    "tcache_alloc",
    "do_rallocx",
];

/// Rust's allocation shims and the global-allocator plumbing.
const RUST_PREFIXES: &[&str] = &[
    "__rust_alloc",
    "__rust_realloc",
    "__rust_alloc_zeroed",
    "__rdl_",
    "__rg_",
    "alloc::alloc::",
    "std::alloc::",
    "<alloc::alloc::Global as core::alloc::Allocator>::",
    "<std::alloc::System as core::alloc::global::GlobalAlloc>::",
    "tikv_jemallocator::",
    "jemallocator::",
];

/// Source files whose inlined frames are allocator plumbing: `alloc::alloc` (Global,
/// `exchange_malloc`), `std::alloc` (System), the `GlobalAlloc` trait, and jemalloc itself (its
/// C sources in `tikv-jemalloc-sys`, the Rust wrapper `tikv-jemallocator`).
fn is_allocator_file(file: &str) -> bool {
    file.ends_with("/alloc/src/alloc.rs")
        || file.ends_with("/std/src/alloc.rs")
        || file.ends_with("/core/src/alloc/global.rs")
        || file.contains("jemalloc")
}

/// Whether a frame is allocator code: jemalloc (profiling and malloc), the C allocation entry
/// points, or Rust's global-allocator plumbing (`__rust_alloc`, `alloc::alloc::*`, any
/// `GlobalAlloc` impl, `tikv_jemallocator`).
///
/// Frames of collections (`alloc::raw_vec::…`, `Vec::push`) are not: they are where the
/// program asked for memory.
pub(crate) fn is_allocator_frame(frame: &Frame) -> bool {
    if let Some(file) = frame.file.as_deref() {
        if is_allocator_file(file) {
            return true;
        }
    }
    is_allocator_name(&frame.function)
}

pub(crate) fn is_allocator_name(name: &str) -> bool {
    // Rust's allocator shims are `__rustc::__rust_alloc` in v0-mangled names.
    let name = name.strip_prefix("__rustc::").unwrap_or(name);
    let bare = name.trim_start_matches('_');
    if C_ENTRY_POINTS.contains(&name)
        || C_ENTRY_POINTS.contains(&bare)
        || C_PREFIXES.iter().any(|p| name.starts_with(p))
        || RUST_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        return true;
    }
    // `<T as core::alloc::global::GlobalAlloc>::alloc` for any global allocator `T`.
    name.starts_with('<')
        && (name.contains(" as core::alloc::global::GlobalAlloc>::")
            || name.contains(" as core::alloc::GlobalAlloc>::"))
}

/// The name shown in flame graphs, folded stacks, the text table and pprof: the function's
/// name without generic arguments, which for monomorphized inlined frames run to thousands of
/// characters and carry little (`poll_read<hyper::proto::h1::dispatch::Server<…>>` →
/// `poll_read`, `<alloc::vec::Vec<T,A> as core::ops::drop::Drop>::drop` →
/// `<alloc::vec::Vec as core::ops::drop::Drop>::drop`), and `<T>::f` written `T::f`. The
/// angle brackets of a qualified path (`<A as B>::f`) stay. Folded stacks separate frames with
/// `;`, so a `;` in a name becomes `:`.
pub(crate) fn display_name(name: &str) -> String {
    let mut short = strip_generic_args(name);
    if short.is_empty() {
        short = name.to_string();
    }
    let short = unwrap_inherent_path(&short).unwrap_or(short);
    short.replace(';', ":").replace(['\n', '\r'], " ")
}

/// Removes every generic argument list: a `<` right after a name (`Vec<T>`, `f::<T>`, whose
/// `::` goes too), with everything up to its matching `>` (`->` is not a bracket). A `<` that
/// opens a qualified path (at the start, after a space, `<`, `(`, `[`, `&`, `*` or `,`) stays.
fn strip_generic_args(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len());
    let mut copied = 0; // bytes[..copied] are handled
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        out.push_str(&name[copied..i]);
        copied = i;
        let generic = out
            .as_bytes()
            .last()
            .is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'}' | b':'));
        if !generic {
            i += 1;
            continue;
        }
        let Some(close) = matching_close(bytes, i) else {
            break; // unbalanced: keep the rest as it is
        };
        if out.ends_with("::") {
            out.truncate(out.len() - 2);
        }
        i = close + 1;
        copied = i;
    }
    out.push_str(&name[copied..]);
    out
}

/// The index of the `>` that closes the `<` at `open`.
fn matching_close(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, &c) in bytes.iter().enumerate().skip(open) {
        match c {
            b'<' => depth += 1,
            b'>' if j > 0 && bytes[j - 1] == b'-' => {}
            b'>' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// `<T>::f` → `T::f` (an inherent method written as a qualified path, no trait involved).
fn unwrap_inherent_path(name: &str) -> Option<String> {
    if !name.starts_with('<') {
        return None;
    }
    let close = matching_close(name.as_bytes(), 0)?;
    let inner = &name[1..close];
    let rest = &name[close + 1..];
    (!inner.contains(" as ") && rest.starts_with("::") && !inner.is_empty())
        .then(|| format!("{inner}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(name: &str, file: Option<&str>) -> Frame {
        Frame {
            function: name.into(),
            file: file.map(Into::into),
            line: None,
        }
    }

    #[test]
    fn allocator_frames() {
        for name in [
            "prof_backtrace_impl",
            "_rjem_je_prof_backtrace",
            "_rjem_je_malloc_default",
            "imalloc_body",
            "malloc",
            "calloc",
            "posix_memalign",
            "__rust_alloc",
            "__rust_realloc",
            "__rustc::__rust_alloc",
            "__rustc::__rust_alloc_zeroed",
            "__rdl_alloc",
            "alloc::alloc::exchange_malloc",
            "alloc::alloc::Global::alloc_impl",
            "<alloc::alloc::Global as core::alloc::Allocator>::allocate",
            "<tikv_jemallocator::Jemalloc as core::alloc::global::GlobalAlloc>::alloc",
            "<my::Counting as core::alloc::global::GlobalAlloc>::realloc",
            "std::alloc::__default_lib_allocator::__rdl_alloc",
        ] {
            assert!(is_allocator_frame(&frame(name, None)), "{name}");
        }
        for (name, file) in [
            ("alloc_impl", "/rustc/abc/library/alloc/src/alloc.rs"),
            ("allocate", "/rustc/abc/library/alloc/src/alloc.rs"),
            (
                "alloc",
                "/root/.cargo/registry/src/x/tikv-jemallocator-0.7.0/src/lib.rs",
            ),
            ("tsd_post_reentrancy_raw", "/x/jemalloc/include/tsd.h"),
        ] {
            assert!(is_allocator_frame(&frame(name, Some(file))), "{name}");
        }
        for name in [
            "alloc::raw_vec::RawVecInner<A>::try_allocate_in",
            "alloc::vec::Vec<T,A>::push",
            "bytes::bytes_mut::BytesMut::reserve_inner",
            "my_crate::allocate_buffers",
            "mallocate",
            "0x55bdda4a4003",
        ] {
            assert!(!is_allocator_frame(&frame(name, None)), "{name}");
        }
        assert!(!is_allocator_frame(&frame(
            "try_allocate_in<alloc::alloc::Global>",
            Some("/rustc/abc/library/alloc/src/raw_vec/mod.rs")
        )));
    }

    #[test]
    fn display_names_drop_generic_arguments() {
        for (name, short) in [
            ("try_allocate_in<alloc::alloc::Global>", "try_allocate_in"),
            (
                "core::ptr::drop_in_place<alloc::vec::Vec<u8>>",
                "core::ptr::drop_in_place",
            ),
            (
                "core::mem::size_of_val_raw::<dyn core::ops::function::FnOnce<(), Output = ()>>",
                "core::mem::size_of_val_raw",
            ),
            ("call<fn() -> u32>", "call"),
            (
                "<hyper::proto::h1::io::Buffered<T,B> as hyper::proto::h1::io::MemRead>::read_mem",
                "<hyper::proto::h1::io::Buffered as hyper::proto::h1::io::MemRead>::read_mem",
            ),
            (
                "<alloc::vec::Vec<T,A> as alloc::vec::spec_extend::SpecExtend<T,I>>::spec_extend",
                "<alloc::vec::Vec as alloc::vec::spec_extend::SpecExtend>::spec_extend",
            ),
            (
                "std::thread::lifecycle::spawn_unchecked::<test::run_test::{closure#1}, ()>::{closure#1}",
                "std::thread::lifecycle::spawn_unchecked::{closure#1}",
            ),
            (
                "<alloc::raw_vec::RawVecInner>::try_allocate_in",
                "alloc::raw_vec::RawVecInner::try_allocate_in",
            ),
            (
                "tokio::runtime::task::core::Core<T,S>::poll",
                "tokio::runtime::task::core::Core::poll",
            ),
            ("<<A as B>::C as D>::f", "<<A as B>::C as D>::f"),
            ("<a::B as c::D>", "<a::B as c::D>"),
            ("{closure#0}<x::Y>", "{closure#0}"),
            ("plain", "plain"),
            ("a;b", "a:b"),
            ("unbalanced<x", "unbalanced<x"),
            ("x>y", "x>y"),
            ("<>", "<>"),
        ] {
            assert_eq!(display_name(name), short, "{name}");
        }
    }
}
