//! One module's file: its symbol table (sorted, binary-searched) and its DWARF (through
//! `addr2line`, for inlined frames and file:line), both read from a read-only mapping of the
//! file, never copied to the heap.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use memmap2::Mmap;

use object::{CompressionFormat, Object, ObjectSection, ObjectSymbol, SymbolKind};

use super::dwarf::{DwarfIndex, RawFrame, Slice};
use super::sys;

/// Why a module's file could not be read; logged, never shown to clients.
#[derive(Debug, thiserror::Error)]
pub(super) enum LoadError {
    #[error("cannot open or map {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not an object file this build can parse")]
    Parse {
        path: PathBuf,
        #[source]
        source: object::Error,
    },
}

impl LoadError {
    /// Whether trying again later may succeed: running out of file descriptors or memory is
    /// transient, a missing, unreadable or unparsable file is not.
    pub(super) fn is_transient(&self) -> bool {
        match self {
            LoadError::Io { source, .. } => !matches!(
                source.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::PermissionDenied
                    | io::ErrorKind::InvalidData
            ),
            LoadError::Parse { .. } => false,
        }
    }
}

/// Identity of a file on disk: the same file is mapped once per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct FileKey {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// Every file this process has mapped for symbolization, by identity.
///
/// Mappings live as long as the process (like the loader's own mappings of the same files), so
/// that the parsed tables can borrow from them with a `'static` lifetime and be dropped and
/// rebuilt freely. There is at most one mapping per distinct file, and the set of files is the
/// modules of this process plus their separate debug files, so this is bounded. A mapping costs
/// address space; the pages it touches are clean file pages that the kernel may reclaim.
static MAPPED_FILES: Mutex<BTreeMap<FileKey, &'static Mmap>> = Mutex::new(BTreeMap::new());

fn map_file(path: &Path) -> Result<&'static Mmap, LoadError> {
    let io_err = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let key = FileKey {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
    };
    let mut files = MAPPED_FILES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(data) = files.get(&key) {
        return Ok(data);
    }
    let map: &'static Mmap = Box::leak(Box::new(sys::map_file(&file).map_err(io_err)?));
    files.insert(key, map);
    Ok(map)
}

fn parse(path: &Path, map: &'static Mmap) -> Result<object::File<'static>, LoadError> {
    object::File::parse(&map[..]).map_err(|source| LoadError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// One function symbol: `[start, end)` in file addresses, and its raw name.
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: u64,
    end: u64,
    name: &'static [u8],
}

/// The function symbols of a module (`.symtab` and `.dynsym`), sorted by address.
#[derive(Debug, Default)]
pub(super) struct SymbolTable {
    entries: Vec<Entry>,
}

impl SymbolTable {
    fn build(files: &[&object::File<'static>]) -> Self {
        // (start, size, rank, name): rank orders aliases at the same address.
        let mut raw: Vec<(u64, u64, u8, &'static [u8])> = Vec::new();
        for file in files {
            for symbol in file.symbols().chain(file.dynamic_symbols()) {
                if symbol.kind() != SymbolKind::Text
                    || !symbol.is_definition()
                    || symbol.address() == 0
                {
                    continue;
                }
                let Ok(name) = symbol.name_bytes() else {
                    continue;
                };
                if name.is_empty() {
                    continue;
                }
                raw.push((
                    symbol.address(),
                    symbol.size(),
                    alias_rank(&symbol, name),
                    name,
                ));
            }
        }
        raw.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.2.cmp(&b.2))
                .then(a.3.len().cmp(&b.3.len()))
                .then(a.3.cmp(b.3))
        });
        raw.dedup_by_key(|e| e.0);
        let mut entries = Vec::with_capacity(raw.len());
        for (i, &(start, size, _, name)) in raw.iter().enumerate() {
            let end = if size > 0 {
                start.saturating_add(size)
            } else {
                // An assembly label without a size reaches the next symbol.
                raw.get(i + 1).map_or(u64::MAX, |next| next.0)
            };
            entries.push(Entry { start, end, name });
        }
        entries.shrink_to_fit();
        SymbolTable { entries }
    }

    /// The raw name of the function containing `svma`.
    fn find(&self, svma: u64) -> Option<&'static [u8]> {
        let after = self.entries.partition_point(|e| e.start <= svma);
        // Functions do not nest, but a sized symbol may sit inside a larger one (hand-written
        // assembly): look back a few entries for one that contains the address.
        self.entries[..after]
            .iter()
            .rev()
            .take(4)
            .find(|e| svma < e.end)
            .map(|e| e.name)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Among aliases at one address, prefer a sized symbol, then the name with the fewest leading
/// underscores, then global over weak over local: `getpid` over `__getpid`, `malloc` over
/// `__libc_malloc`, a function over a label.
fn alias_rank(symbol: &object::Symbol<'static, '_>, name: &[u8]) -> u8 {
    let binding = if symbol.is_global() && !symbol.is_weak() {
        0
    } else if symbol.is_weak() {
        1
    } else {
        2
    };
    let sized = u8::from(symbol.size() == 0);
    let underscores = name.iter().take_while(|&&b| b == b'_').count().min(3) as u8;
    sized * 16 + underscores * 4 + binding
}

/// Loads the DWARF sections of `file` (uncompressed ones; compressed DWARF is not read) and
/// indexes its units; `None` when it has none.
fn load_dwarf(file: &object::File<'static>) -> Option<DwarfIndex> {
    let info = file.section_by_name(".debug_info")?;
    if !uncompressed(&info) {
        tracing::debug!("compressed DWARF is not read; using the symbol table");
        return None;
    }
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Slice, gimli::Error> {
        let data = file
            .section_by_name(id.name())
            .filter(uncompressed)
            .and_then(|section| section.data().ok())
            .unwrap_or(&[]);
        Ok(gimli::EndianSlice::new(data, endian))
    };
    DwarfIndex::new(gimli::Dwarf::load(load).ok()?)
}

fn uncompressed(section: &object::Section<'static, '_>) -> bool {
    section
        .compressed_file_range()
        .is_ok_and(|range| range.format == CompressionFormat::None)
}

/// Everything the symbolizer knows about one module's file.
#[derive(Debug)]
pub(super) struct ModuleDebug {
    symbols: SymbolTable,
    dwarf: Option<DwarfIndex>,
    /// The mapped files (the module's, and its debug file's).
    maps: Vec<&'static Mmap>,
}

impl ModuleDebug {
    /// Maps and indexes `path`, and its separate debug file when it has no DWARF of its own.
    pub(super) fn load(path: &Path) -> Result<Self, LoadError> {
        let map = map_file(path)?;
        let mut maps = vec![map];
        let file = parse(path, map)?;
        let mut dwarf = load_dwarf(&file);
        let mut debug_file = None;
        if dwarf.is_none() {
            if let Some((debug_path, debug_map, debug)) = separate_debug_file(path, &file) {
                maps.push(debug_map);
                dwarf = load_dwarf(&debug);
                tracing::debug!(module = %path.display(), debug = %debug_path.display(), "using a separate debug file");
                debug_file = Some(debug);
            }
        }
        let mut files = vec![&file];
        files.extend(debug_file.as_ref());
        let symbols = SymbolTable::build(&files);
        tracing::debug!(module = %path.display(), symbols = symbols.len(), dwarf = dwarf.is_some(), "loaded a module for symbolization");
        Ok(ModuleDebug {
            symbols,
            dwarf,
            maps,
        })
    }

    /// The raw symbol-table name of the function containing `svma`.
    pub(super) fn symbol(&self, svma: u64) -> Option<&'static [u8]> {
        self.symbols.find(svma)
    }

    /// Takes the pages of the mapped files out of the resident set: the tables built from them
    /// live on the heap, and the few names a lookup reads map back in on access.
    pub(super) fn release_pages(&self) {
        for map in &self.maps {
            if let Err(e) = sys::release_pages(map) {
                tracing::debug!(error = %e, "madvise(MADV_DONTNEED) failed");
            }
        }
    }

    /// DWARF frames at `svma`, innermost first (nothing when the module has no DWARF for it),
    /// and the unit they come from, for [`ModuleDebug::fill_locations`].
    pub(super) fn dwarf_frames(&self, svma: u64, out: &mut Vec<RawFrame>) -> Option<u32> {
        self.dwarf.as_ref()?.frames(svma, out)
    }

    /// Fills in file:line of frames that [`ModuleDebug::dwarf_frames`] found in `unit`.
    pub(super) fn fill_locations(&self, unit: u32, items: &mut [(u64, &mut Vec<RawFrame>)]) {
        if let Some(dwarf) = &self.dwarf {
            dwarf.fill_locations(unit, items);
        }
    }
}

/// Finds the separate debug file of `path`: by build id under `/usr/lib/debug/.build-id/`,
/// then by `.gnu_debuglink` next to the file, in its `.debug/` and under `/usr/lib/debug/`.
fn separate_debug_file(
    path: &Path,
    file: &object::File<'static>,
) -> Option<(PathBuf, &'static Mmap, object::File<'static>)> {
    let build_id = file.build_id().ok().flatten().filter(|id| id.len() >= 2);
    let mut candidates = Vec::new();
    if let Some(id) = build_id {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        candidates.push(PathBuf::from(format!(
            "/usr/lib/debug/.build-id/{}/{}.debug",
            &hex[..2],
            &hex[2..]
        )));
    }
    if let Ok(Some((link, _crc))) = file.gnu_debuglink() {
        if let (Ok(link), Some(dir)) = (std::str::from_utf8(link), path.parent()) {
            candidates.push(dir.join(link));
            candidates.push(dir.join(".debug").join(link));
            candidates.push(
                Path::new("/usr/lib/debug")
                    .join(dir.strip_prefix("/").unwrap_or(dir))
                    .join(link),
            );
        }
    }
    candidates
        .into_iter()
        .filter(|c| c != path && c.is_file())
        .find_map(|candidate| {
            let map = map_file(&candidate).ok()?;
            let debug = parse(&candidate, map).ok()?;
            // A debug file for another build would give wrong names: require the same build id.
            if build_id.is_some() && debug.build_id().ok().flatten() != build_id {
                return None;
            }
            Some((candidate, map, debug))
        })
}
