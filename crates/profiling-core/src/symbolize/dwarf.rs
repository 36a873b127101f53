//! A compact index of a module's DWARF, built lazily per compilation unit.
//!
//! `addr2line` keeps every line-table row (24 bytes each) and every inlined call it has parsed,
//! about 70 MiB for the server binary once all its units are touched. This index keeps only
//! what names need: per unit, the code ranges of its functions and of the calls inlined into
//! them (24 bytes per range, names borrowed from the mapped file). Line tables are not kept:
//! file:line is found by streaming a unit's line program when a caller asks for locations.

use std::collections::HashMap;
use std::sync::OnceLock;

use gimli::{AttributeValue, UnitOffset};

/// DWARF sections as slices of a mapped file.
pub(super) type Slice = gimli::EndianSlice<'static, gimli::RunTimeEndian>;
type Unit = gimli::Unit<Slice>;
type UnitRef<'a> = gimli::UnitRef<'a, Slice>;

const NO_NAME: u32 = u32::MAX;
const NO_FILE: u32 = u32::MAX;
/// How many `DW_AT_abstract_origin`/`DW_AT_specification` links a name lookup follows.
const ORIGIN_HOPS: usize = 16;

/// A frame from DWARF, before the symbolizer chooses the printed name.
#[derive(Debug, Default)]
pub(super) struct RawFrame {
    /// The name, demangled if Rust.
    pub name: Option<String>,
    /// Whether DWARF had the linkage (fully qualified) name rather than a bare one.
    pub qualified: bool,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// File index of `line` in the unit's line program (frames other than the innermost).
    file_index: Option<u64>,
}

/// The DWARF of one module.
pub(super) struct DwarfIndex {
    dwarf: gimli::Dwarf<Slice>,
    units: Box<[UnitSlot]>,
    /// Code ranges of the units, sorted by start.
    ranges: Box<[UnitRange]>,
}

impl std::fmt::Debug for DwarfIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DwarfIndex")
            .field("units", &self.units.len())
            .finish_non_exhaustive()
    }
}

struct UnitSlot {
    header: gimli::UnitHeader<Slice>,
    index: OnceLock<gimli::Result<UnitIndex>>,
}

#[derive(Debug, Clone, Copy)]
struct UnitRange {
    start: u64,
    end: u64,
    unit: u32,
}

/// The functions of one unit and the calls inlined into them.
struct UnitIndex {
    /// Function code ranges, sorted by start.
    ranges: Box<[FunctionRange]>,
    functions: Box<[Function]>,
    /// Per function (`Function::inlined`), sorted by (depth, start).
    inlined: Box<[Inlined]>,
    names: Box<[&'static [u8]]>,
    language: Option<gimli::DwLang>,
}

#[derive(Debug, Clone, Copy)]
struct FunctionRange {
    start: u64,
    end: u64,
    function: u32,
}

#[derive(Debug, Clone, Copy)]
struct Function {
    /// The lowest address of the function: inlined ranges are stored relative to it.
    base: u64,
    name: u32,
    inlined_start: u32,
    inlined_end: u32,
}

#[derive(Debug, Clone, Copy)]
struct Inlined {
    offset: u32,
    len: u32,
    name: u32,
    /// Where the caller (the next outer frame) called this inlined function.
    call_line: u32,
    call_file: u32,
    depth: u16,
}

impl DwarfIndex {
    /// Indexes the units of `dwarf` by address; `None` when it has no unit with code.
    pub(super) fn new(dwarf: gimli::Dwarf<Slice>) -> Option<Self> {
        let mut units = Vec::new();
        let mut ranges = Vec::new();
        let mut headers = dwarf.units();
        while let Ok(Some(header)) = headers.next() {
            let Ok(unit) = dwarf.unit(header) else {
                continue;
            };
            let index = u32::try_from(units.len()).ok()?;
            if let Ok(mut iter) = dwarf.unit_ranges(&unit) {
                while let Ok(Some(range)) = iter.next() {
                    if range.begin != 0 && range.begin < range.end {
                        ranges.push(UnitRange {
                            start: range.begin,
                            end: range.end,
                            unit: index,
                        });
                    }
                }
            }
            units.push(UnitSlot {
                header,
                index: OnceLock::new(),
            });
        }
        if ranges.is_empty() {
            return None;
        }
        ranges.sort_unstable_by_key(|r| (r.start, r.end));
        Some(DwarfIndex {
            dwarf,
            units: units.into_boxed_slice(),
            ranges: ranges.into_boxed_slice(),
        })
    }

    /// The frames at `svma`, innermost first, and the unit they come from; empty when no
    /// function of the DWARF covers the address. Names and call-site lines are filled in;
    /// files and the innermost line only by [`DwarfIndex::fill_locations`].
    pub(super) fn frames(&self, svma: u64, out: &mut Vec<RawFrame>) -> Option<u32> {
        let after = self.ranges.partition_point(|r| r.start <= svma);
        // Unit ranges may overlap (C and assembly units): try the nearest few that contain it.
        for range in self.ranges[..after]
            .iter()
            .rev()
            .take(8)
            .filter(|r| svma < r.end)
        {
            let Some(index) = self.unit_index(range.unit) else {
                continue;
            };
            if index.frames(svma, out) {
                return Some(range.unit);
            }
        }
        None
    }

    fn unit_index(&self, unit: u32) -> Option<&UnitIndex> {
        let slot = self.units.get(unit as usize)?;
        slot.index
            .get_or_init(|| {
                let index = UnitIndex::build(&self.dwarf, slot.header, &self.units);
                if let Err(e) = &index {
                    tracing::debug!(error = %e, "unreadable DWARF unit; its addresses use the symbol table");
                }
                index
            })
            .as_ref()
            .ok()
    }

    /// Fills in file:line for frames found by [`DwarfIndex::frames`] in `unit`: the innermost
    /// frame from the unit's line table, the others' files from their call sites. Streams the
    /// line program once for all of `items`.
    pub(super) fn fill_locations(&self, unit: u32, items: &mut [(u64, &mut Vec<RawFrame>)]) {
        let Some(slot) = self.units.get(unit as usize) else {
            return;
        };
        let Ok(dw_unit) = self.dwarf.unit(slot.header) else {
            return;
        };
        let Some(program) = dw_unit.line_program.clone() else {
            return;
        };
        let unit_ref = gimli::UnitRef::new(&self.dwarf, &dw_unit);
        items.sort_unstable_by_key(|(svma, _)| *svma);
        let targets: Vec<u64> = items.iter().map(|(svma, _)| *svma).collect();
        // (file index, line) of the row covering each target.
        let mut found: Vec<Option<(u64, u32)>> = vec![None; targets.len()];
        let mut rows = program.rows();
        let mut previous: Option<(u64, u64, u32)> = None;
        while let Ok(Some((_, row))) = rows.next_row() {
            let address = row.address();
            if let Some((start, file, line)) = previous {
                if start < address {
                    let from = targets.partition_point(|&t| t < start);
                    let to = targets.partition_point(|&t| t < address);
                    for slot in &mut found[from..to] {
                        *slot = Some((file, line));
                    }
                }
            }
            previous = if row.end_sequence() {
                None
            } else {
                let line = row
                    .line()
                    .map_or(0, |l| u32::try_from(l.get()).unwrap_or(u32::MAX));
                Some((address, row.file_index(), line))
            };
        }
        let header = rows.header().clone();
        let mut files: HashMap<u64, Option<String>> = HashMap::new();
        let mut file_name = |index: u64| -> Option<String> {
            files
                .entry(index)
                .or_insert_with(|| render_file(unit_ref, &header, index))
                .clone()
        };
        for ((_, frames), location) in items.iter_mut().zip(found) {
            if let (Some(first), Some((file, line))) = (frames.first_mut(), location) {
                first.line = (line != 0).then_some(line);
                first.file = file_name(file);
            }
            for frame in frames.iter_mut().skip(1) {
                frame.file = frame.file_index.and_then(&mut file_name);
            }
        }
    }
}

/// The path of file `index` of a line program: the unit's directory, the file's directory, the
/// file name, as `addr2line` renders it.
fn render_file(
    unit: UnitRef<'_>,
    header: &gimli::LineProgramHeader<Slice>,
    index: u64,
) -> Option<String> {
    let file = header.file(index)?;
    let mut path = unit
        .comp_dir
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    if file.directory_index() != 0 {
        if let Some(directory) = file.directory(header) {
            if let Ok(directory) = unit.attr_string(directory) {
                push_path(&mut path, &directory.to_string_lossy());
            }
        }
    }
    push_path(
        &mut path,
        &unit.attr_string(file.path_name()).ok()?.to_string_lossy(),
    );
    Some(path)
}

fn push_path(path: &mut String, part: &str) {
    if part.starts_with('/') {
        *path = part.to_owned();
    } else {
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(part);
    }
}

impl UnitIndex {
    fn frames(&self, svma: u64, out: &mut Vec<RawFrame>) -> bool {
        let after = self.ranges.partition_point(|r| r.start <= svma);
        let Some(range) = self.ranges[..after]
            .iter()
            .rev()
            .take(4)
            .find(|r| svma < r.end)
        else {
            return false;
        };
        let Some(function) = self.functions.get(range.function as usize) else {
            return false;
        };
        let inlined = self
            .inlined
            .get(function.inlined_start as usize..function.inlined_end as usize)
            .unwrap_or(&[]);
        let offset = svma - function.base;
        // The chain of inlined calls, outermost first: one per depth, each found by binary
        // search among the ranges of that depth.
        let mut chain: Vec<&Inlined> = Vec::new();
        let mut rest = inlined;
        loop {
            // Sorted by (depth, start): the last entry at or before (depth, offset) is the only
            // candidate at this depth; deeper ones all come after it.
            let depth = chain.len() as u16;
            let at = rest.partition_point(|i| (i.depth, u64::from(i.offset)) <= (depth, offset));
            match at.checked_sub(1).map(|i| &rest[i]) {
                Some(call)
                    if call.depth == depth
                        && offset < u64::from(call.offset) + u64::from(call.len) =>
                {
                    chain.push(call);
                    rest = &rest[at..];
                }
                _ => break,
            }
        }
        let start = out.len();
        // Innermost first; each frame's line is where it called the next inner frame.
        for (i, call) in chain.iter().enumerate().rev() {
            let mut frame = self.frame(call.name);
            if let Some(inner) = chain.get(i + 1) {
                frame.line = (inner.call_line != 0).then_some(inner.call_line);
                frame.file_index =
                    (inner.call_file != NO_FILE).then_some(u64::from(inner.call_file));
            }
            out.push(frame);
        }
        let mut outer = self.frame(function.name);
        if let Some(first) = chain.first() {
            outer.line = (first.call_line != 0).then_some(first.call_line);
            outer.file_index = (first.call_file != NO_FILE).then_some(u64::from(first.call_file));
        }
        out.push(outer);
        out.len() > start
    }

    fn frame(&self, name: u32) -> RawFrame {
        let raw = self
            .names
            .get(name as usize)
            .map(|n| super::demangle::text(n));
        RawFrame {
            qualified: raw.as_deref().is_some_and(super::demangle::is_mangled),
            name: raw.map(|raw| super::demangle::dwarf_name(&raw, self.language)),
            ..RawFrame::default()
        }
    }

    fn build(
        dwarf: &gimli::Dwarf<Slice>,
        header: gimli::UnitHeader<Slice>,
        units: &[UnitSlot],
    ) -> gimli::Result<Self> {
        let unit = dwarf.unit(header)?;
        let mut builder = Builder {
            dwarf,
            units,
            unit: gimli::UnitRef::new(dwarf, &unit),
            foreign: HashMap::new(),
            names: Vec::new(),
            origins: HashMap::new(),
            ranges: Vec::new(),
            functions: Vec::new(),
            inlined: Vec::new(),
            scratch: Vec::new(),
            language: None,
        };
        builder.walk()?;
        let Builder {
            mut ranges,
            functions,
            inlined,
            names,
            language,
            ..
        } = builder;
        ranges.sort_unstable_by_key(|r| (r.start, r.end));
        Ok(UnitIndex {
            ranges: ranges.into_boxed_slice(),
            functions: functions.into_boxed_slice(),
            inlined: inlined.into_boxed_slice(),
            names: names.into_boxed_slice(),
            language,
        })
    }
}

/// Attributes of a subprogram or inlined subroutine that the index needs.
#[derive(Default)]
struct DieAttrs {
    low_pc: Option<u64>,
    high_pc: Option<u64>,
    size: Option<u64>,
    ranges: Option<gimli::RangeListsOffset<usize>>,
    linkage_name: Option<&'static [u8]>,
    name: Option<&'static [u8]>,
    origin: Option<AttributeValue<Slice>>,
    call_file: Option<u64>,
    call_line: u32,
}

struct Builder<'a> {
    dwarf: &'a gimli::Dwarf<Slice>,
    units: &'a [UnitSlot],
    unit: UnitRef<'a>,
    /// Other units that names refer to (`DW_FORM_ref_addr`), parsed once per build.
    foreign: HashMap<usize, Unit>,
    names: Vec<&'static [u8]>,
    /// Name id by `.debug_info` offset of the DIE a name was taken from.
    origins: HashMap<usize, u32>,
    ranges: Vec<FunctionRange>,
    functions: Vec<Function>,
    inlined: Vec<Inlined>,
    scratch: Vec<(u64, u64)>,
    language: Option<gimli::DwLang>,
}

impl Builder<'_> {
    fn walk(&mut self) -> gimli::Result<()> {
        let unit = self.unit;
        let mut entries = unit.entries_raw(None)?;
        while !entries.is_empty() {
            let depth = entries.next_depth();
            let Some(abbrev) = entries.read_abbreviation()? else {
                continue;
            };
            match abbrev.tag() {
                gimli::DW_TAG_compile_unit | gimli::DW_TAG_partial_unit => {
                    for spec in abbrev.attributes() {
                        let attr = entries.read_attribute(*spec)?;
                        if attr.name() == gimli::DW_AT_language {
                            if let AttributeValue::Language(language) = attr.value() {
                                self.language = Some(language);
                            }
                        }
                    }
                }
                gimli::DW_TAG_subprogram => {
                    let attrs = self.read_attrs(&mut entries, abbrev)?;
                    self.collect_ranges(&attrs)?;
                    if self.scratch.is_empty() {
                        continue; // a declaration or abstract instance: no code here
                    }
                    let function = u32::try_from(self.functions.len())
                        .map_err(|_| gimli::Error::UnsupportedOffset)?;
                    let base = self.scratch.iter().map(|r| r.0).min().unwrap_or(0);
                    for &(start, end) in &self.scratch {
                        self.ranges.push(FunctionRange {
                            start,
                            end,
                            function,
                        });
                    }
                    let name = self.name_of(&attrs)?;
                    let inlined_start = self.inlined.len();
                    self.walk_children(&mut entries, depth, 0, base)?;
                    self.inlined[inlined_start..].sort_unstable_by_key(|i| (i.depth, i.offset));
                    let to_u32 =
                        |n: usize| u32::try_from(n).map_err(|_| gimli::Error::UnsupportedOffset);
                    self.functions.push(Function {
                        base,
                        name,
                        inlined_start: to_u32(inlined_start)?,
                        inlined_end: to_u32(self.inlined.len())?,
                    });
                }
                _ => entries.skip_attributes(abbrev.attributes())?,
            }
        }
        Ok(())
    }

    /// The children of a function (or of an inlined call) at `parent_depth`.
    fn walk_children(
        &mut self,
        entries: &mut gimli::EntriesRaw<'_, Slice>,
        parent_depth: isize,
        depth: u16,
        base: u64,
    ) -> gimli::Result<()> {
        loop {
            if entries.is_empty() {
                return Ok(());
            }
            let next_depth = entries.next_depth();
            if next_depth <= parent_depth {
                return Ok(());
            }
            let Some(abbrev) = entries.read_abbreviation()? else {
                continue;
            };
            match abbrev.tag() {
                gimli::DW_TAG_inlined_subroutine => {
                    let attrs = self.read_attrs(entries, abbrev)?;
                    self.collect_ranges(&attrs)?;
                    if !self.scratch.is_empty() {
                        let name = self.name_of(&attrs)?;
                        let call_file = attrs
                            .call_file
                            .and_then(|f| u32::try_from(f).ok())
                            .unwrap_or(NO_FILE);
                        for &(start, end) in &self.scratch {
                            // Ranges outside the function's first byte (broken DWARF) are dropped.
                            let (Some(offset), Ok(len)) =
                                (start.checked_sub(base), u32::try_from(end - start))
                            else {
                                continue;
                            };
                            let Ok(offset) = u32::try_from(offset) else {
                                continue;
                            };
                            self.inlined.push(Inlined {
                                offset,
                                len,
                                name,
                                call_line: attrs.call_line,
                                call_file,
                                depth,
                            });
                        }
                    }
                    self.walk_children(entries, next_depth, depth.saturating_add(1), base)?;
                }
                gimli::DW_TAG_subprogram => {
                    // A nested subprogram (C++ local class method): not part of this function.
                    entries.skip_attributes(abbrev.attributes())?;
                    while !entries.is_empty() && entries.next_depth() > next_depth {
                        if let Some(abbrev) = entries.read_abbreviation()? {
                            entries.skip_attributes(abbrev.attributes())?;
                        }
                    }
                }
                _ => entries.skip_attributes(abbrev.attributes())?,
            }
        }
    }

    fn read_attrs(
        &mut self,
        entries: &mut gimli::EntriesRaw<'_, Slice>,
        abbrev: &gimli::Abbreviation,
    ) -> gimli::Result<DieAttrs> {
        let unit = self.unit;
        let mut attrs = DieAttrs::default();
        for spec in abbrev.attributes() {
            let attr = entries.read_attribute(*spec)?;
            match attr.name() {
                gimli::DW_AT_low_pc => match attr.value() {
                    AttributeValue::Addr(v) => attrs.low_pc = Some(v),
                    AttributeValue::DebugAddrIndex(i) => attrs.low_pc = Some(unit.address(i)?),
                    _ => {}
                },
                gimli::DW_AT_high_pc => match attr.value() {
                    AttributeValue::Addr(v) => attrs.high_pc = Some(v),
                    AttributeValue::DebugAddrIndex(i) => attrs.high_pc = Some(unit.address(i)?),
                    AttributeValue::Udata(v) => attrs.size = Some(v),
                    _ => {}
                },
                gimli::DW_AT_ranges => attrs.ranges = unit.attr_ranges_offset(attr.value())?,
                gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                    attrs.linkage_name = unit.attr_string(attr.value()).ok().map(|s| s.slice());
                }
                gimli::DW_AT_name => {
                    attrs.name = unit.attr_string(attr.value()).ok().map(|s| s.slice())
                }
                gimli::DW_AT_abstract_origin | gimli::DW_AT_specification => {
                    attrs.origin = Some(attr.value())
                }
                gimli::DW_AT_call_file => {
                    // DWARF 5 numbers files from 0; before, 0 meant "no file".
                    if let AttributeValue::FileIndex(f) = attr.value() {
                        if f > 0 || unit.header.version() >= 5 {
                            attrs.call_file = Some(f);
                        }
                    }
                }
                gimli::DW_AT_call_line => {
                    attrs.call_line = attr
                        .udata_value()
                        .and_then(|l| u32::try_from(l).ok())
                        .unwrap_or(0)
                }
                _ => {}
            }
        }
        Ok(attrs)
    }

    /// The code ranges of a DIE into `self.scratch` (emptied first).
    fn collect_ranges(&mut self, attrs: &DieAttrs) -> gimli::Result<()> {
        self.scratch.clear();
        let mut push = |begin: u64, end: u64| {
            // Address 0 is the tombstone of code the linker discarded.
            if begin != 0 && begin < end {
                self.scratch.push((begin, end));
            }
        };
        if let Some(offset) = attrs.ranges {
            let mut ranges = self.unit.ranges(offset)?;
            while let Some(range) = ranges.next()? {
                push(range.begin, range.end);
            }
        } else if let (Some(low), Some(high)) = (attrs.low_pc, attrs.high_pc) {
            push(low, high);
        } else if let (Some(low), Some(size)) = (attrs.low_pc, attrs.size) {
            push(low, low.wrapping_add(size));
        }
        Ok(())
    }

    /// The name id of a DIE: its linkage name, its name, or its origin's.
    fn name_of(&mut self, attrs: &DieAttrs) -> gimli::Result<u32> {
        if let Some(name) = attrs.linkage_name.or(attrs.name) {
            return Ok(self.push_name(name));
        }
        match attrs.origin {
            Some(origin) => self.origin_name(origin),
            None => Ok(NO_NAME),
        }
    }

    fn push_name(&mut self, name: &'static [u8]) -> u32 {
        let id = u32::try_from(self.names.len()).unwrap_or(NO_NAME);
        if id != NO_NAME {
            self.names.push(name);
        }
        id
    }

    /// The name of the DIE an `abstract_origin`/`specification` points to, interned.
    fn origin_name(&mut self, origin: AttributeValue<Slice>) -> gimli::Result<u32> {
        let Some(key) = self.global_offset(&origin) else {
            return Ok(NO_NAME);
        };
        if let Some(&id) = self.origins.get(&key) {
            return Ok(id);
        }
        let name = self.resolve_origin(origin, ORIGIN_HOPS)?;
        let id = name.map_or(NO_NAME, |n| self.push_name(n));
        self.origins.insert(key, id);
        Ok(id)
    }

    fn global_offset(&self, value: &AttributeValue<Slice>) -> Option<usize> {
        match *value {
            AttributeValue::UnitRef(offset) => {
                offset.to_debug_info_offset(&self.unit.header).map(|o| o.0)
            }
            AttributeValue::DebugInfoRef(offset) => Some(offset.0),
            _ => None,
        }
    }

    fn resolve_origin(
        &mut self,
        origin: AttributeValue<Slice>,
        hops: usize,
    ) -> gimli::Result<Option<&'static [u8]>> {
        if hops == 0 {
            return Ok(None);
        }
        let (unit_start, offset) = match origin {
            AttributeValue::UnitRef(offset) => (None, offset),
            AttributeValue::DebugInfoRef(target) => {
                // The unit whose header is the last one at or before the target offset.
                let at = self.units.partition_point(|u| {
                    u.header
                        .debug_info_offset()
                        .is_some_and(|o| o.0 <= target.0)
                });
                let Some(slot) = at.checked_sub(1).map(|i| &self.units[i]) else {
                    return Ok(None);
                };
                let Some(offset) = target.to_unit_offset(&slot.header) else {
                    return Ok(None);
                };
                let Some(start) = slot.header.debug_info_offset() else {
                    return Ok(None);
                };
                if !self.foreign.contains_key(&start.0) {
                    let unit = self.dwarf.unit(slot.header)?;
                    self.foreign.insert(start.0, unit);
                }
                (Some(start.0), offset)
            }
            _ => return Ok(None),
        };
        let (name, next) = {
            let unit = match unit_start.and_then(|s| self.foreign.get(&s)) {
                Some(foreign) => gimli::UnitRef::new(self.dwarf, foreign),
                None => self.unit,
            };
            // A reference inside a foreign unit is relative to that unit: make it global.
            match read_name(unit, offset)? {
                (name, Some(AttributeValue::UnitRef(o))) if unit_start.is_some() => (
                    name,
                    o.to_debug_info_offset(&unit.header)
                        .map(AttributeValue::DebugInfoRef),
                ),
                other => other,
            }
        };
        match (name, next) {
            (Some(name), _) => Ok(Some(name)),
            (None, Some(next)) => self.resolve_origin(next, hops - 1),
            (None, None) => Ok(None),
        }
    }
}

/// A DIE's name, or else the DIE its name comes from.
type NameOrOrigin = (Option<&'static [u8]>, Option<AttributeValue<Slice>>);

/// The linkage name (or else the name) of the DIE at `offset`, or the origin to follow.
fn read_name(unit: UnitRef<'_>, offset: UnitOffset) -> gimli::Result<NameOrOrigin> {
    let mut entries = unit.entries_raw(Some(offset))?;
    let Some(abbrev) = entries.read_abbreviation()? else {
        return Ok((None, None));
    };
    let mut name = None;
    let mut next = None;
    for spec in abbrev.attributes() {
        let attr = entries.read_attribute(*spec)?;
        match attr.name() {
            gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                if let Ok(linkage) = unit.attr_string(attr.value()) {
                    return Ok((Some(linkage.slice()), None));
                }
            }
            gimli::DW_AT_name => name = unit.attr_string(attr.value()).ok().map(|s| s.slice()),
            gimli::DW_AT_abstract_origin | gimli::DW_AT_specification => next = Some(attr.value()),
            _ => {}
        }
    }
    Ok((name, if name.is_some() { None } else { next }))
}
