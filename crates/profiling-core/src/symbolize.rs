//! The in-process symbolizer: runtime addresses of this process → function names, inlined
//! frames (innermost first) and file:line.
//!
//! [`Symbolizer`] finds the module (executable or shared library) that contains an address with
//! `dl_iterate_phdr`, so ASLR and PIE are handled by each module's load bias, then reads that
//! module's file through a read-only mapping:
//!
//! * the symbol tables (`.symtab` and `.dynsym`) give the name of the function that contains the
//!   address, by binary search in a sorted table built once per module;
//! * the DWARF debug info, read with `gimli` into a compact per-unit index built on first use,
//!   adds the functions inlined at the address and, on request, file:line (for a stripped
//!   module, a separate debug file found by build id or `.gnu_debuglink` is used when
//!   installed).
//!
//! Rust names are demangled without their hash (`alloc::vec::Vec<T>::push`); C and C++ names are
//! kept as the symbol table spells them (jeprof and pprof demangle C++ themselves).
//!
//! Everything is loaded on first use and cached per module; a [`Symbolizer`] is `Send + Sync`
//! and meant to be shared (one per process is enough). Memory stays bounded: files are mapped,
//! not read (clean pages the kernel can drop); at most [`SymbolizerOptions::max_loaded_modules`]
//! modules keep their tables, least recently used first out; the DWARF index keeps only function
//! and inlined-call ranges (line tables are streamed, never kept); and [`Symbolizer::trim`]
//! gives everything back. See `docs/symbolization.md`.
//!
//! ```
//! # fn main() {
//! use profiling_core::symbolize::Symbolizer;
//!
//! #[inline(never)]
//! fn some_function() {}
//!
//! let symbolizer = Symbolizer::new();
//! let symbol = symbolizer.resolve(some_function as *const () as usize as u64).expect("resolved");
//! assert!(symbol.name().ends_with("some_function"));
//! # }
//! ```

mod demangle;
mod dwarf;
mod elf;
mod sys;

use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::error_chain;
use dwarf::RawFrame;
use elf::ModuleDebug;

/// One frame of a resolved address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function: Rust names demangled without the hash, others as in the symbol table.
    pub function: String,
    /// The source file, when the module has DWARF line info for the address.
    pub file: Option<String>,
    /// The source line (for an outer frame of an inlined call: the line of the call).
    pub line: Option<u32>,
}

/// A resolved address: its module and its frames, innermost (inlined) first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// The runtime address that was looked up.
    pub address: u64,
    /// The file of the module that contains it.
    pub module: Arc<Path>,
    /// The frames, innermost first; the last one is the function the code belongs to. Never
    /// empty.
    pub frames: Vec<Frame>,
}

impl Symbol {
    /// The frames' function names joined by `--`, innermost first: the form of
    /// `/debug/pprof/symbol` replies.
    pub fn name(&self) -> String {
        let mut out = String::new();
        for (i, frame) in self.frames.iter().enumerate() {
            if i > 0 {
                out.push_str("--");
            }
            out.push_str(&frame.function);
        }
        out
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x} {}", self.address, self.name())
    }
}

/// How much to find for each address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Detail {
    /// Function names and inlined frames only (what `/debug/pprof/symbol` needs): no line
    /// table is read.
    Names,
    /// Names plus file:line of every frame (reads the line tables of the units involved).
    #[default]
    Locations,
}

/// A module (executable, shared library) loaded in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Its file.
    pub path: Arc<Path>,
    /// Its load bias: runtime address minus file address.
    pub bias: u64,
    /// The runtime `[start, end)` ranges of its loaded segments.
    pub ranges: Vec<(u64, u64)>,
}

/// Limits of a [`Symbolizer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SymbolizerOptions {
    /// How many modules keep their symbol table and DWARF state loaded at once; the least
    /// recently used one is dropped (and reloaded when needed) beyond that. At least 1.
    pub max_loaded_modules: usize,
}

impl Default for SymbolizerOptions {
    fn default() -> Self {
        SymbolizerOptions {
            max_loaded_modules: 16,
        }
    }
}

impl SymbolizerOptions {
    /// Sets [`SymbolizerOptions::max_loaded_modules`].
    pub fn max_loaded_modules(mut self, n: usize) -> Self {
        self.max_loaded_modules = n.max(1);
        self
    }
}

/// Resolves runtime addresses of this process. `Send + Sync`: share one (in an `Arc`).
pub struct Symbolizer {
    options: SymbolizerOptions,
    modules: RwLock<Option<Arc<ModuleSet>>>,
    /// Modules whose tables are loaded, most recently used last.
    loaded: Mutex<VecDeque<Arc<Module>>>,
}

impl fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let loaded = self
            .loaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Symbolizer")
            .field("options", &self.options)
            .field("loaded_modules", &loaded)
            .finish()
    }
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

/// The modules of the process at one moment, with their segments sorted for lookup.
#[derive(Debug)]
struct ModuleSet {
    generation: Option<sys::Generation>,
    /// `(start, end, index into modules)`, sorted by start.
    ranges: Vec<(u64, u64, usize)>,
    modules: Vec<Arc<Module>>,
}

impl ModuleSet {
    fn find(&self, address: u64) -> Option<&Arc<Module>> {
        let after = self.ranges.partition_point(|r| r.0 <= address);
        let &(_, end, index) = self.ranges[..after].last()?;
        (address < end).then(|| &self.modules[index])
    }
}

struct Module {
    /// `dlpi_name` as the loader reported it (empty for the main program).
    loader_name: Vec<u8>,
    path: Arc<Path>,
    /// The path to open: `/proc/self/exe` for the main program.
    open_path: PathBuf,
    bias: u64,
    ranges: Vec<(u64, u64)>,
    state: Mutex<ModuleState>,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.path)
            .field("bias", &format_args!("{:#x}", self.bias))
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum ModuleState {
    NotLoaded,
    Loaded(Arc<ModuleDebug>),
    /// The file could not be read (the vDSO, a deleted library): its addresses resolve to nothing.
    Unreadable,
}

impl Symbolizer {
    /// A symbolizer with default [`SymbolizerOptions`]. Nothing is read until the first lookup.
    pub fn new() -> Self {
        Self::with_options(SymbolizerOptions::default())
    }

    /// A symbolizer with the given limits.
    pub fn with_options(options: SymbolizerOptions) -> Self {
        Symbolizer {
            options: SymbolizerOptions {
                max_loaded_modules: options.max_loaded_modules.max(1),
            },
            modules: RwLock::new(None),
            loaded: Mutex::new(VecDeque::new()),
        }
    }

    /// Resolves one runtime address, with file:line; `None` when it lies in no module or no
    /// symbol or debug info covers it.
    pub fn resolve(&self, address: u64) -> Option<Symbol> {
        self.resolve_all(&[address]).pop().flatten()
    }

    /// Resolves many addresses, in order, with file:line ([`Detail::Locations`]).
    pub fn resolve_all(&self, addresses: &[u64]) -> Vec<Option<Symbol>> {
        self.resolve_all_with(addresses, Detail::Locations)
    }

    /// Resolves many addresses, in order. Cheaper than resolving each alone: the list of
    /// modules is refreshed at most once per call (when an address lies in no known module, in
    /// case a library was loaded since), and each line table involved is read once.
    pub fn resolve_all_with(&self, addresses: &[u64], detail: Detail) -> Vec<Option<Symbol>> {
        let mut set = self.module_set();
        let mut refreshed = false;
        // The last module used and its tables: consecutive addresses often share a module.
        let mut current: Option<(Arc<Module>, Option<Arc<ModuleDebug>>)> = None;
        let mut out = Vec::with_capacity(addresses.len());
        // The modules this call used: their mapped pages leave the resident set at the end.
        let mut used: Vec<Arc<ModuleDebug>> = Vec::new();
        // For Detail::Locations: (index in out, module tables, unit, address in the file, frames).
        let mut pending: Vec<Pending> = Vec::new();
        for &address in addresses {
            let mut module = set.find(address).cloned();
            if module.is_none() && !refreshed {
                refreshed = true;
                if let Some(newer) = self.refresh(&set) {
                    set = newer;
                    module = set.find(address).cloned();
                }
            }
            let Some(module) = module else {
                out.push(None);
                continue;
            };
            let debug = match &current {
                Some((m, debug)) if Arc::ptr_eq(m, &module) => debug.clone(),
                _ => {
                    let debug = self.debug(&module);
                    if let Some(debug) = &debug {
                        if !used.iter().any(|u| Arc::ptr_eq(u, debug)) {
                            used.push(Arc::clone(debug));
                        }
                    }
                    current = Some((Arc::clone(&module), debug.clone()));
                    debug
                }
            };
            let Some(debug) = debug else {
                out.push(None);
                continue;
            };
            let svma = address.wrapping_sub(module.bias);
            let mut raw = Vec::new();
            let unit = debug.dwarf_frames(svma, &mut raw);
            match (detail, unit) {
                (Detail::Locations, Some(unit)) => {
                    pending.push(Pending {
                        index: out.len(),
                        module,
                        debug,
                        unit,
                        svma,
                        raw,
                    });
                    out.push(None);
                }
                _ => {
                    // Names only: no call-site line without its file.
                    raw.iter_mut().for_each(|frame| frame.line = None);
                    out.push(finish(&module, &debug, address, raw));
                }
            }
        }
        if !pending.is_empty() {
            fill_locations(&mut pending);
            for p in pending {
                out[p.index] = finish(
                    &p.module,
                    &p.debug,
                    p.svma.wrapping_add(p.module.bias),
                    p.raw,
                );
            }
        }
        // Tables live on the heap; the file pages this call touched (indexing, the names it
        // read) are not needed until the next call, which maps back the few it reads.
        for debug in used {
            debug.release_pages();
        }
        out
    }

    /// The modules loaded in this process now.
    pub fn modules(&self) -> Vec<ModuleInfo> {
        let set = self.module_set();
        let set = self.refresh(&set).unwrap_or(set);
        set.modules
            .iter()
            .map(|m| ModuleInfo {
                path: Arc::clone(&m.path),
                bias: m.bias,
                ranges: m.ranges.clone(),
            })
            .collect()
    }

    /// Gives back the memory of every loaded module's tables; later lookups load again what
    /// they need. (The file mappings stay: they are clean pages the kernel reclaims at will.)
    pub fn trim(&self) {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        for module in loaded.drain(..) {
            *module.state.lock().unwrap_or_else(PoisonError::into_inner) = ModuleState::NotLoaded;
        }
    }

    /// The current module set, scanning the process the first time.
    fn module_set(&self) -> Arc<ModuleSet> {
        if let Some(set) = self
            .modules
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            return Arc::clone(set);
        }
        let mut guard = self.modules.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = guard.as_ref() {
            return Arc::clone(set);
        }
        let set = Arc::new(scan(None));
        *guard = Some(Arc::clone(&set));
        set
    }

    /// A newer module set if the loader's list changed since `old` was taken.
    fn refresh(&self, old: &Arc<ModuleSet>) -> Option<Arc<ModuleSet>> {
        let generation = sys::generation();
        if generation.is_some() && generation == old.generation {
            return None;
        }
        let mut guard = self.modules.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(current) = guard.as_ref() {
            if !Arc::ptr_eq(current, old) {
                return Some(Arc::clone(current)); // another thread refreshed it
            }
        }
        let set = Arc::new(scan(Some(old)));
        *guard = Some(Arc::clone(&set));
        Some(set)
    }

    /// The module's tables, loading them on first use and evicting the least recently used
    /// module beyond the limit.
    fn debug(&self, module: &Arc<Module>) -> Option<Arc<ModuleDebug>> {
        let debug = {
            let mut state = module.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &*state {
                ModuleState::Loaded(debug) => Arc::clone(debug),
                ModuleState::Unreadable => return None,
                ModuleState::NotLoaded => match ModuleDebug::load(&module.open_path) {
                    Ok(debug) => {
                        let debug = Arc::new(debug);
                        *state = ModuleState::Loaded(Arc::clone(&debug));
                        debug
                    }
                    Err(e) => {
                        tracing::debug!(module = %module.path.display(), error = %error_chain(&e), "module not symbolized");
                        // Out of file descriptors or memory: the next lookup tries again.
                        if !e.is_transient() {
                            *state = ModuleState::Unreadable;
                        }
                        return None;
                    }
                },
            }
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = loaded.iter().position(|m| Arc::ptr_eq(m, module)) {
            loaded.remove(i);
        }
        loaded.push_back(Arc::clone(module));
        while loaded.len() > self.options.max_loaded_modules {
            if let Some(evicted) = loaded.pop_front() {
                *evicted.state.lock().unwrap_or_else(PoisonError::into_inner) =
                    ModuleState::NotLoaded;
            }
        }
        Some(debug)
    }
}

/// An address whose DWARF frames wait for their file:line.
struct Pending {
    index: usize,
    module: Arc<Module>,
    debug: Arc<ModuleDebug>,
    unit: u32,
    svma: u64,
    raw: Vec<RawFrame>,
}

/// Fills in file:line of all pending frames, reading each unit's line table once.
fn fill_locations(pending: &mut [Pending]) {
    pending.sort_unstable_by(|a, b| {
        Arc::as_ptr(&a.debug)
            .cmp(&Arc::as_ptr(&b.debug))
            .then(a.unit.cmp(&b.unit))
    });
    for group in pending.chunk_by_mut(|a, b| Arc::ptr_eq(&a.debug, &b.debug) && a.unit == b.unit) {
        let (debug, unit) = (Arc::clone(&group[0].debug), group[0].unit);
        let mut items: Vec<(u64, &mut Vec<RawFrame>)> =
            group.iter_mut().map(|p| (p.svma, &mut p.raw)).collect();
        debug.fill_locations(unit, &mut items);
    }
}

/// The symbol of `address` from its DWARF frames (innermost first) and the symbol table.
fn finish(
    module: &Module,
    debug: &ModuleDebug,
    address: u64,
    raw: Vec<RawFrame>,
) -> Option<Symbol> {
    let svma = address.wrapping_sub(module.bias);
    // The outermost frame is the function the code belongs to: the symbol table has its full
    // name even when the DWARF (line-tables-only) has only the bare one.
    let needs_symbol = raw.last().is_none_or(|outer| !outer.qualified);
    let mut symbol = if needs_symbol {
        debug.symbol(svma).map(demangle::symbol_name)
    } else {
        None
    };
    let outermost = raw.len().checked_sub(1);
    let mut frames = Vec::with_capacity(raw.len().max(1));
    for (i, frame) in raw.into_iter().enumerate() {
        let name = match symbol.take() {
            Some(name) if Some(i) == outermost => Some(name),
            other => {
                symbol = other;
                frame.name
            }
        };
        if let Some(function) = name {
            frames.push(Frame {
                function,
                file: frame.file,
                line: frame.line,
            });
        }
    }
    if frames.is_empty() {
        frames.push(Frame {
            function: symbol?,
            file: None,
            line: None,
        });
    }
    Some(Symbol {
        address,
        module: Arc::clone(&module.path),
        frames,
    })
}

/// Lists the process's modules, reusing the entries (and their loaded tables) of `old` for the
/// modules that are still there.
fn scan(old: Option<&ModuleSet>) -> ModuleSet {
    let (generation, objects) = sys::loaded_objects();
    let mut modules: Vec<Arc<Module>> = Vec::with_capacity(objects.len());
    for (i, object) in objects.into_iter().enumerate() {
        if object.segments.is_empty() {
            continue;
        }
        let reused = old.and_then(|old| {
            old.modules.iter().find(|m| {
                m.loader_name == object.name && m.bias == object.bias && m.ranges == object.segments
            })
        });
        if let Some(module) = reused {
            modules.push(Arc::clone(module));
            continue;
        }
        let (path, open_path) = if object.name.is_empty() {
            if i > 0 {
                continue; // only the main program is nameless; anything else cannot be opened
            }
            let exe = std::fs::read_link("/proc/self/exe")
                .or_else(|_| std::env::current_exe())
                .unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
            (exe, PathBuf::from("/proc/self/exe"))
        } else {
            let path = PathBuf::from(String::from_utf8_lossy(&object.name).into_owned());
            (path.clone(), path)
        };
        modules.push(Arc::new(Module {
            loader_name: object.name,
            path: Arc::from(path),
            open_path,
            bias: object.bias,
            ranges: object.segments,
            state: Mutex::new(ModuleState::NotLoaded),
        }));
    }
    let mut ranges: Vec<(u64, u64, usize)> = modules
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.ranges.iter().map(move |&(start, end)| (start, end, i)))
        .collect();
    ranges.sort_unstable();
    ModuleSet {
        generation,
        ranges,
        modules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn marker_function_for_unit_test() -> u64 {
        std::hint::black_box(42)
    }

    #[test]
    fn symbolizer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Symbolizer>();
    }

    #[test]
    fn resolves_a_function_of_this_binary() {
        let s = Symbolizer::new();
        let address = marker_function_for_unit_test as *const () as usize as u64;
        let symbol = s.resolve(address).expect("resolved");
        assert_eq!(
            symbol.frames.last().map(|f| f.function.as_str()),
            Some("profiling_core::symbolize::tests::marker_function_for_unit_test")
        );
        assert_eq!(symbol.address, address);
    }

    #[test]
    fn the_main_program_is_a_module() {
        let s = Symbolizer::new();
        let modules = s.modules();
        let here = resolves_a_function_of_this_binary as *const () as usize as u64;
        assert!(modules
            .iter()
            .any(|m| m.ranges.iter().any(|&(a, b)| a <= here && here < b)));
    }

    #[test]
    fn eviction_reloads_modules() {
        let s = Symbolizer::with_options(SymbolizerOptions::default().max_loaded_modules(1));
        let here = marker_function_for_unit_test as *const () as usize as u64;
        let libc_fn = libc::getpid as *const () as usize as u64;
        for _ in 0..3 {
            assert!(s.resolve(here).is_some());
            assert!(s.resolve(libc_fn).is_some());
        }
        assert_eq!(s.loaded.lock().map(|l| l.len()).unwrap_or(0), 1);
    }
}
