//! The process allocator, chosen by the binary alone: jemalloc with heap profiling compiled in
//! and enabled at start, so every heap route works with no environment set up.
//!
//! jemalloc reads its options, in order, from the `malloc_conf` symbol below and then from the
//! `MALLOC_CONF` environment variable; later settings win, so `MALLOC_CONF=prof:false` turns
//! heap profiling off (the heap routes then answer 501) and `MALLOC_CONF=prof_active:true`
//! samples from the first allocation. On targets where jemalloc keeps its `_rjem_` prefix
//! (Apple, Android, DragonFly) the symbol is `_rjem_malloc_conf` and the variable
//! `_RJEM_MALLOC_CONF`. See docs/heap-profiling.md.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The options, as jemalloc's `const char *malloc_conf`:
///
/// - `prof:true`: heap profiling is available (it can only be chosen at start);
/// - `prof_active:false`: but no allocation is sampled until `set_prof_active` or
///   `heap_activate` turns sampling on, so an idle server pays nothing for it;
/// - `lg_prof_sample:19`: when sampling, one sample per 2^19 B = 512 KiB allocated on average
///   (jemalloc's own default, also TiKV's): a few samples per second on a busy server, cheap
///   enough to leave on for hours, yet every allocation site that holds more than a few MiB
///   shows up. Smaller values (e.g. 12 = 4 KiB) catch small sites but make sampling (a stack
///   walk each time) a measurable cost; measured in docs/performance.md.
const CONF: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

/// jemalloc reads this symbol before `main` runs. A `&u8` is a thin pointer to the first byte,
/// which is exactly the `const char *` that jemalloc declares.
#[allow(unsafe_code)] // An exported symbol must have the C type the reader expects; it does.
#[cfg_attr(
    any(
        target_vendor = "apple",
        target_os = "android",
        target_os = "dragonfly"
    ),
    export_name = "_rjem_malloc_conf"
)]
#[cfg_attr(
    not(any(
        target_vendor = "apple",
        target_os = "android",
        target_os = "dragonfly"
    )),
    export_name = "malloc_conf"
)]
static MALLOC_CONF: &u8 = &CONF[0];
