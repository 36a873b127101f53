//! The only `unsafe` of the heap module: typed calls to jemalloc's `mallctl`.
//!
//! Each function names one kind of key and passes exactly the C type that key takes, so the
//! callers stay safe. Every call returns jemalloc's error code on failure.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr};
use std::mem::size_of;
use std::ptr::null_mut;

use tikv_jemalloc_sys::mallctl;

/// A non-zero `mallctl` return code (`ENOENT`, `EFAULT`, …).
pub(super) type Errno = i32;

fn check(rc: i32) -> Result<(), Errno> {
    if rc == 0 {
        Ok(())
    } else {
        Err(rc)
    }
}

/// Reads a key whose value is a C `bool` (`opt.prof`, `prof.active`).
pub(super) fn read_bool(name: &CStr) -> Result<bool, Errno> {
    let mut value = false;
    let mut len = size_of::<bool>();
    // SAFETY: `name` is NUL-terminated; every caller names a key of C type `bool`, which has the
    // size and valid values of Rust's `bool`; `value` and `len` live across the call and `len`
    // holds the size of `value`; no new value is passed.
    let rc = unsafe {
        mallctl(
            name.as_ptr(),
            (&raw mut value).cast::<c_void>(),
            &mut len,
            null_mut(),
            0,
        )
    };
    check(rc)?;
    Ok(value)
}

/// Writes a C `bool` key and returns its previous value (`prof.active`).
pub(super) fn swap_bool(name: &CStr, new: bool) -> Result<bool, Errno> {
    let mut old = false;
    let mut old_len = size_of::<bool>();
    let mut new = new;
    // SAFETY: as in `read_bool`; `new` is a valid `bool` that jemalloc only reads during the call,
    // and its size is passed as `newlen`.
    let rc = unsafe {
        mallctl(
            name.as_ptr(),
            (&raw mut old).cast::<c_void>(),
            &mut old_len,
            (&raw mut new).cast::<c_void>(),
            size_of::<bool>(),
        )
    };
    check(rc)?;
    Ok(old)
}

/// Reads a key whose value is a C `size_t` (`stats.resident`, `opt.lg_prof_sample`).
pub(super) fn read_usize(name: &CStr) -> Result<usize, Errno> {
    let mut value: usize = 0;
    let mut len = size_of::<usize>();
    // SAFETY: `name` is NUL-terminated; every caller names a key of C type `size_t`, which is
    // `usize` in Rust; `value` and `len` live across the call; no new value is passed.
    let rc = unsafe {
        mallctl(
            name.as_ptr(),
            (&raw mut value).cast::<c_void>(),
            &mut len,
            null_mut(),
            0,
        )
    };
    check(rc)?;
    Ok(value)
}

/// Advances the statistics epoch, so that `stats.*` reads return fresh values.
pub(super) fn advance_epoch() -> Result<(), Errno> {
    let mut epoch: u64 = 1;
    // SAFETY: `epoch` takes a `uint64_t`; `epoch` lives across the call and jemalloc only reads
    // it; its size is passed as `newlen`; no old value is requested.
    let rc = unsafe {
        mallctl(
            c"epoch".as_ptr(),
            null_mut(),
            null_mut(),
            (&raw mut epoch).cast::<c_void>(),
            size_of::<u64>(),
        )
    };
    check(rc)
}

/// `prof.dump`: jemalloc writes a heap profile to `path` (it creates or truncates the file).
pub(super) fn prof_dump(path: &CStr) -> Result<(), Errno> {
    let mut filename: *const c_char = path.as_ptr();
    // SAFETY: `prof.dump` takes a `const char *` file name; `filename` points to the
    // NUL-terminated `path`, which outlives the call (jemalloc does not keep the pointer);
    // `filename` itself lives across the call and its size is passed as `newlen`.
    let rc = unsafe {
        mallctl(
            c"prof.dump".as_ptr(),
            null_mut(),
            null_mut(),
            (&raw mut filename).cast::<c_void>(),
            size_of::<*const c_char>(),
        )
    };
    check(rc)
}

/// `arena.<MALLCTL_ARENAS_ALL>.purge`: return the unused dirty pages of every arena to the OS.
pub(super) fn purge_all_arenas() -> Result<(), Errno> {
    // MALLCTL_ARENAS_ALL is 4096 in jemalloc 5 (`jemalloc_macros.h`).
    // SAFETY: `arena.<i>.purge` takes neither an old nor a new value, and jemalloc requires all
    // four pointers to be null and the length zero, as passed here; the name is NUL-terminated.
    let rc = unsafe {
        mallctl(
            c"arena.4096.purge".as_ptr(),
            null_mut(),
            null_mut(),
            null_mut(),
            0,
        )
    };
    check(rc)
}

/// What a `mallctl` error code means, for error sentences.
pub(super) fn describe(errno: Errno) -> &'static str {
    match errno {
        libc::ENOENT => "unknown key, or the feature is off in this process",
        libc::EINVAL => "value of the wrong size",
        libc::EPERM => "key cannot be read or written this way",
        libc::EAGAIN => "jemalloc could not allocate memory",
        libc::EFAULT => "jemalloc failed to carry it out",
        _ => "unexpected error code",
    }
}
