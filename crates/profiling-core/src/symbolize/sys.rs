//! The only `unsafe` code of the symbolizer: listing the loaded objects with `dl_iterate_phdr`
//! and mapping their files into memory. Every block is one operation with its `// SAFETY:`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Mmap, UncheckedAdvice};

/// One object (the executable, a shared library, the vDSO) as the dynamic loader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LoadedObject {
    /// `dlpi_name`: empty for the main program, the path the loader opened otherwise.
    pub name: Vec<u8>,
    /// `dlpi_addr`: runtime address minus the address in the file (the load bias).
    pub bias: u64,
    /// Runtime `[start, end)` of each `PT_LOAD` segment.
    pub segments: Vec<(u64, u64)>,
}

/// The loader's counters of objects ever added and removed: when they have not moved, the list
/// of loaded objects has not changed.
pub(super) type Generation = (u64, u64);

#[cfg(all(
    target_os = "linux",
    target_pointer_width = "64",
    not(target_env = "uclibc")
))]
mod imp {
    use super::{Generation, LoadedObject};
    use std::ffi::{c_int, c_void, CStr};
    use std::mem::{offset_of, size_of};

    struct Walk {
        objects: Vec<LoadedObject>,
        generation: Option<Generation>,
        only_generation: bool,
    }

    /// Reads the counters if this glibc/musl fills them in (`size` covers them).
    fn counters(info: &libc::dl_phdr_info, size: usize) -> Option<Generation> {
        let needed = offset_of!(libc::dl_phdr_info, dlpi_subs) + size_of::<libc::c_ulonglong>();
        (size >= needed).then_some((info.dlpi_adds, info.dlpi_subs))
    }

    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        size: usize,
        data: *mut c_void,
    ) -> c_int {
        if info.is_null() || data.is_null() {
            return 1;
        }
        // SAFETY: `data` is the `&mut Walk` that `walk` passed to `dl_iterate_phdr`, which calls
        // this function synchronously on the same thread while that borrow is alive.
        let walk = unsafe { &mut *data.cast::<Walk>() };
        // SAFETY: the loader passes a valid, initialised `dl_phdr_info` that lives for the call.
        let info = unsafe { &*info };
        if walk.generation.is_none() {
            walk.generation = counters(info, size);
        }
        if walk.only_generation {
            return 1; // stop after the first object: the counters are the same in every one
        }
        let name = if info.dlpi_name.is_null() {
            Vec::new()
        } else {
            // SAFETY: a non-null `dlpi_name` is a NUL-terminated string owned by the loader that
            // stays valid for the call; it is copied before returning.
            unsafe { CStr::from_ptr(info.dlpi_name) }
                .to_bytes()
                .to_vec()
        };
        let phdrs: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() || info.dlpi_phnum == 0 {
            &[]
        } else {
            // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers of the loaded object,
            // mapped for as long as the object is loaded, which includes this call; they are
            // copied before returning.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let bias = info.dlpi_addr;
        let segments = phdrs
            .iter()
            .filter(|p| p.p_type == libc::PT_LOAD && p.p_memsz > 0)
            .map(|p| {
                let start = bias.wrapping_add(p.p_vaddr);
                (start, start.saturating_add(p.p_memsz))
            })
            .collect();
        walk.objects.push(LoadedObject {
            name,
            bias,
            segments,
        });
        0
    }

    fn walk(only_generation: bool) -> Walk {
        let mut walk = Walk {
            objects: Vec::new(),
            generation: None,
            only_generation,
        };
        let data: *mut Walk = &mut walk;
        // SAFETY: `visit` matches the callback type, never unwinds (it does not panic: it only
        // copies plain data) and uses `data` only as the `&mut Walk` it is, during the call.
        unsafe { libc::dl_iterate_phdr(Some(visit), data.cast::<c_void>()) };
        walk
    }

    pub(super) fn loaded_objects() -> (Option<Generation>, Vec<LoadedObject>) {
        let walk = walk(false);
        (walk.generation, walk.objects)
    }

    pub(super) fn generation() -> Option<Generation> {
        walk(true).generation
    }
}

#[cfg(not(all(
    target_os = "linux",
    target_pointer_width = "64",
    not(target_env = "uclibc")
)))]
mod imp {
    use super::{Generation, LoadedObject};

    pub(super) fn loaded_objects() -> (Option<Generation>, Vec<LoadedObject>) {
        (None, Vec::new())
    }

    pub(super) fn generation() -> Option<Generation> {
        None
    }
}

/// Every object the dynamic loader has loaded, with the loader's generation counters (`None`
/// when the C library does not provide them).
pub(super) fn loaded_objects() -> (Option<Generation>, Vec<LoadedObject>) {
    imp::loaded_objects()
}

/// The loader's generation counters alone: much cheaper than [`loaded_objects`].
pub(super) fn generation() -> Option<Generation> {
    imp::generation()
}

/// Maps a whole file read-only.
pub(super) fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: the mapping is read-only and shared (memmap2 maps with MAP_SHARED), so its bytes
    // are the file's bytes for as long as the file is unchanged. The files mapped here are
    // executables and shared libraries loaded by this process (and their separate debug
    // files), which package managers and deploy tools replace by renaming a new file into
    // place; that leaves this mapping on the old inode, intact. Rewriting such a file in place
    // while it is mapped would change bytes behind the slices borrowed from it (or fault on a
    // truncation): the contract, also the dynamic loader's for the code it maps, is that
    // loaded binaries are not modified in place.
    unsafe { Mmap::map(file) }
}

/// Takes the pages of a mapping out of this process's resident set (`MADV_DONTNEED`); they stay
/// in the page cache and the next access maps them again.
pub(super) fn release_pages(map: &Mmap) -> io::Result<()> {
    // SAFETY: the mapping is a read-only file mapping that this process never writes, so after
    // MADV_DONTNEED every page reads back from the page cache with the bytes it had, under the
    // same contract as `map_file` (the file is not modified in place): slices that borrow the
    // mapping see no change.
    unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) }
}
