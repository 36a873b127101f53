//! A heap profile with its addresses symbolized, allocator frames removed and counts
//! estimated: what every view renders.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::build_id::read_build_id;
use super::frames::{display_name, is_allocator_frame};
use super::parse::{unsample, HeapProfile};
use crate::symbolize::{Frame, ModuleInfo, Symbolizer};

/// Turns the runtime addresses of a dump into frames. [`Symbolizer`] implements it for dumps
/// of the current process; tests and tools can supply their own.
pub trait AddressResolver {
    /// The frames of each address, innermost (inlined) first; an empty list for an address
    /// that resolves to nothing. The result has one entry per address, in order.
    fn resolve_addresses(&self, addresses: &[u64]) -> Vec<Vec<Frame>>;

    /// The path to open to read the module that the dump's memory map names `mapped_file`
    /// (for its build id). By default the file itself.
    fn module_file(&self, mapped_file: &str) -> PathBuf {
        PathBuf::from(mapped_file)
    }

    /// The executable of the profiled process, if known: its mapping is listed first in the
    /// pprof profile (pprof treats the first mapping as the main binary).
    fn executable(&self) -> Option<String> {
        None
    }

    /// The modules of the profiled process, used for the pprof mappings when the dump has no
    /// `MAPPED_LIBRARIES:` section.
    fn modules(&self) -> Vec<ModuleInfo> {
        Vec::new()
    }
}

/// The running process: addresses of a dump taken by this process.
impl AddressResolver for Symbolizer {
    fn resolve_addresses(&self, addresses: &[u64]) -> Vec<Vec<Frame>> {
        self.resolve_all(addresses)
            .into_iter()
            .map(|s| s.map(|s| s.frames).unwrap_or_default())
            .collect()
    }

    /// The executable through `/proc/self/exe`, which still reads the file that runs even if
    /// the path was rebuilt or deleted since; other modules by their path.
    fn module_file(&self, mapped_file: &str) -> PathBuf {
        match self.executable() {
            Some(exe) if exe == mapped_file => PathBuf::from("/proc/self/exe"),
            _ => PathBuf::from(mapped_file),
        }
    }

    fn executable(&self) -> Option<String> {
        let exe = std::fs::read_link("/proc/self/exe").ok()?;
        let exe = exe.to_str()?;
        Some(exe.strip_suffix(" (deleted)").unwrap_or(exe).to_string())
    }

    fn modules(&self) -> Vec<ModuleInfo> {
        Symbolizer::modules(self)
    }
}

/// Resolves nothing: every frame is shown as its address.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSymbols;

impl AddressResolver for NoSymbols {
    fn resolve_addresses(&self, addresses: &[u64]) -> Vec<Vec<Frame>> {
        vec![Vec::new(); addresses.len()]
    }
}

/// One code location of the report: an address of the dump and what runs there.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportLocation {
    /// The runtime address as the dump recorded it (a return address for callers).
    pub address: u64,
    /// The frames at the address, innermost (inlined) first; empty when unresolved. Allocator
    /// frames inlined into the innermost kept location are left out.
    pub frames: Vec<Frame>,
    /// Index into [`HeapReport::mappings`] of the module that contains the address.
    pub mapping: Option<usize>,
}

/// One stack of the report with its estimated in-use counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSample {
    /// Indexes into [`HeapReport::locations`], innermost first; allocator code removed.
    pub locations: Vec<usize>,
    /// Estimated objects in use.
    pub objects: f64,
    /// Estimated bytes in use.
    pub bytes: f64,
}

/// A module mapping of the profiled process (an executable region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportMapping {
    /// First runtime address.
    pub start: u64,
    /// One past the last runtime address.
    pub limit: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// The module's file.
    pub file: String,
    /// Its GNU build id in hex, when the file has one and could be read.
    pub build_id: Option<String>,
}

/// A symbolized heap profile, ready to render ([`HeapReport::text`],
/// [`HeapReport::collapsed`], [`HeapReport::flamegraph_svg`], [`HeapReport::pprof_gzip`], …).
#[derive(Debug, Clone)]
pub struct HeapReport {
    pub(super) sample_period: u64,
    pub(super) samples: Vec<ReportSample>,
    pub(super) locations: Vec<ReportLocation>,
    pub(super) mappings: Vec<ReportMapping>,
    /// `(lookup address, names joined by --)` for jeprof's symbolized raw format.
    pub(super) symbols: Vec<(u64, String)>,
    pub(super) executable: Option<String>,
    pub(super) raw: Vec<u8>,
}

impl HeapReport {
    /// Symbolizes `profile` with `resolver`, removes the allocator's frames and estimates the
    /// real counts of each stack.
    ///
    /// Like jeprof, every address but the first of a stack is a return address and is looked
    /// up one byte earlier, so that a call resolves to the line (and the inlined frames) of
    /// the call itself. Like jeprof's heap mode, the innermost part of each stack up to and
    /// including its outermost allocator frame is dropped (jemalloc's profiling and malloc
    /// functions, the C entry points, `__rust_alloc` and the `GlobalAlloc` plumbing), so the
    /// top frame is the code that asked for memory.
    pub fn new(profile: &HeapProfile, resolver: &dyn AddressResolver) -> HeapReport {
        // Distinct lookup addresses: (raw address, first in its stack) → lookup address.
        let mut lookup_index: HashMap<u64, usize> = HashMap::new();
        let mut lookups: Vec<u64> = Vec::new();
        let lookup_of = |i: usize, a: u64| if i == 0 { a } else { a.saturating_sub(1) };
        for stack in profile.stacks() {
            for (i, &a) in stack.addresses.iter().enumerate() {
                let l = lookup_of(i, a);
                lookup_index.entry(l).or_insert_with(|| {
                    lookups.push(l);
                    lookups.len() - 1
                });
            }
        }
        // Resolve in address order: consecutive addresses share modules and compile units.
        let mut order: Vec<usize> = (0..lookups.len()).collect();
        order.sort_unstable_by_key(|&i| lookups[i]);
        let sorted: Vec<u64> = order.iter().map(|&i| lookups[i]).collect();
        let mut resolved_sorted = resolver.resolve_addresses(&sorted);
        resolved_sorted.resize_with(sorted.len(), Vec::new);
        let mut resolved: Vec<Vec<Frame>> = vec![Vec::new(); lookups.len()];
        for (k, frames) in order.iter().zip(resolved_sorted) {
            resolved[*k] = frames;
        }

        let executable = resolver.executable();
        let mappings = build_mappings(profile, resolver, executable.as_deref());

        let mut report = HeapReport {
            sample_period: profile.sample_period(),
            samples: Vec::with_capacity(profile.stacks().len()),
            locations: Vec::new(),
            mappings,
            symbols: Vec::new(),
            executable,
            raw: profile.raw().to_vec(),
        };
        for (&l, frames) in sorted.iter().zip(order.iter().map(|&k| &resolved[k])) {
            if !frames.is_empty() {
                let names: Vec<&str> = frames.iter().map(|f| f.function.as_str()).collect();
                report.symbols.push((l, names.join("--")));
            }
        }

        // (raw address, first in stack, frames skipped) → location index.
        let mut location_index: HashMap<(u64, bool, usize), usize> = HashMap::new();
        for stack in profile.stacks() {
            let per_address: Vec<&[Frame]> = stack
                .addresses
                .iter()
                .enumerate()
                .map(|(i, &a)| resolved[lookup_index[&lookup_of(i, a)]].as_slice())
                .collect();
            let (first_kept, skip) = first_kept_frame(&per_address);
            let mut locations = Vec::with_capacity(stack.addresses.len() - first_kept);
            for (i, &address) in stack.addresses.iter().enumerate().skip(first_kept) {
                let skip = if i == first_kept { skip } else { 0 };
                let key = (address, i == 0, skip);
                let index = match location_index.get(&key) {
                    Some(&index) => index,
                    None => {
                        let frames = per_address[i].get(skip..).unwrap_or_default().to_vec();
                        let mapping = report.mapping_of(address);
                        report.locations.push(ReportLocation {
                            address,
                            frames,
                            mapping,
                        });
                        location_index.insert(key, report.locations.len() - 1);
                        report.locations.len() - 1
                    }
                };
                locations.push(index);
            }
            let (objects, bytes) = unsample(
                profile.sample_period(),
                stack.sampled_objects,
                stack.sampled_bytes,
            );
            report.samples.push(ReportSample {
                locations,
                objects,
                bytes,
            });
        }
        report
    }

    /// The mean sample interval in bytes.
    pub fn sample_period(&self) -> u64 {
        self.sample_period
    }

    /// The stacks with their estimated counts.
    pub fn samples(&self) -> &[ReportSample] {
        &self.samples
    }

    /// The code locations the samples refer to.
    pub fn locations(&self) -> &[ReportLocation] {
        &self.locations
    }

    /// The executable mappings of the profiled process; the executable first when known.
    pub fn mappings(&self) -> &[ReportMapping] {
        &self.mappings
    }

    /// The dump the report was made from.
    pub fn raw_dump(&self) -> &[u8] {
        &self.raw
    }

    /// Estimated bytes in use, all stacks: jeprof's `Total`.
    pub fn total_bytes(&self) -> f64 {
        self.samples.iter().map(|s| s.bytes).sum()
    }

    /// Estimated objects in use, all stacks.
    pub fn total_objects(&self) -> f64 {
        self.samples.iter().map(|s| s.objects).sum()
    }

    /// The display names of a sample's frames, innermost first.
    pub fn frame_names(&self, sample: &ReportSample) -> Vec<String> {
        let mut names = Vec::new();
        for &l in &sample.locations {
            let location = &self.locations[l];
            if location.frames.is_empty() {
                names.push(format!("{:#x}", location.address));
            }
            names.extend(location.frames.iter().map(|f| display_name(&f.function)));
        }
        names
    }

    fn mapping_of(&self, address: u64) -> Option<usize> {
        self.mappings
            .iter()
            .position(|m| m.start <= address && address < m.limit)
    }
}

/// Where the kept part of a stack starts: (address index, frames of it to skip). Everything
/// up to and including the outermost allocator frame goes; a stack that would lose every
/// frame is kept whole.
fn first_kept_frame(per_address: &[&[Frame]]) -> (usize, usize) {
    let mut cut = None;
    for (i, frames) in per_address.iter().enumerate() {
        for (j, frame) in frames.iter().enumerate() {
            if is_allocator_frame(frame) {
                cut = Some((i, j));
            }
        }
    }
    let Some((i, j)) = cut else {
        return (0, 0);
    };
    if j + 1 < per_address[i].len() {
        (i, j + 1)
    } else if i + 1 < per_address.len() {
        (i + 1, 0)
    } else {
        (0, 0)
    }
}

/// The pprof mappings: the executable regions of the dump's memory map (or the resolver's
/// modules when the dump has none), with their build ids; the executable first.
fn build_mappings(
    profile: &HeapProfile,
    resolver: &dyn AddressResolver,
    executable: Option<&str>,
) -> Vec<ReportMapping> {
    let mut mappings: Vec<ReportMapping> = profile
        .mapped_regions()
        .iter()
        .filter(|r| r.is_executable())
        .filter_map(|r| {
            Some(ReportMapping {
                start: r.start,
                limit: r.end,
                offset: r.offset,
                file: r.file()?.to_string(),
                build_id: None,
            })
        })
        .collect();
    if mappings.is_empty() {
        for module in resolver.modules() {
            let Some(file) = module.path.to_str() else {
                continue;
            };
            for &(start, end) in &module.ranges {
                mappings.push(ReportMapping {
                    start,
                    limit: end,
                    // The segment's file address: equal to its file offset for the usual
                    // page-aligned layouts of executables and shared libraries.
                    offset: start.wrapping_sub(module.bias),
                    file: file.to_string(),
                    build_id: None,
                });
            }
        }
    }
    if let Some(exe) = executable {
        // Stable: the executable's regions move to the front in their order.
        mappings.sort_by_key(|m| m.file != exe);
    }
    let mut ids: HashMap<String, Option<String>> = HashMap::new();
    for m in &mut mappings {
        let id = ids
            .entry(m.file.clone())
            .or_insert_with(|| read_build_id(Path::new(&resolver.module_file(&m.file))));
        m.build_id = id.clone();
    }
    mappings
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Table(HashMap<u64, Vec<&'static str>>);

    impl AddressResolver for Table {
        fn resolve_addresses(&self, addresses: &[u64]) -> Vec<Vec<Frame>> {
            addresses
                .iter()
                .map(|a| {
                    self.0
                        .get(a)
                        .map(|names| {
                            names
                                .iter()
                                .map(|n| Frame {
                                    function: n.to_string(),
                                    file: None,
                                    line: None,
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        }
    }

    const DUMP: &str = "heap_v2/524288
  t*: 2: 4194304 [0: 0]
@ 0x100 0x201 0x301 0x401
  t*: 1: 2097152 [0: 0]
@ 0x100 0x201 0x501
  t*: 1: 2097152 [0: 0]

MAPPED_LIBRARIES:
00000000-00001000 r-xp 00000000 fe:00 1   /nonexistent/prog
";

    #[test]
    fn callers_are_looked_up_one_byte_early_and_allocator_frames_go() {
        let table = Table(HashMap::from([
            (0x100, vec!["prof_backtrace_impl"]),
            // Inlined: `alloc_impl` (allocator) inside `my::grow`.
            (0x200, vec!["alloc::alloc::Global::alloc_impl", "my::grow"]),
            (0x300, vec!["my::caller"]),
            (0x400, vec!["main"]),
            // 0x500 unresolved.
        ]));
        let profile = HeapProfile::parse(DUMP.as_bytes()).unwrap();
        let report = HeapReport::new(&profile, &table);
        assert_eq!(report.samples().len(), 2);
        let names: Vec<Vec<String>> = report
            .samples()
            .iter()
            .map(|s| report.frame_names(s))
            .collect();
        assert_eq!(names[0], ["my::grow", "my::caller", "main"]);
        assert_eq!(names[1], ["my::grow", "0x501"]);
        // Both stacks share the trimmed location of 0x201.
        assert_eq!(
            report.samples()[0].locations[0],
            report.samples()[1].locations[0]
        );
        assert_eq!(report.locations()[0].address, 0x201);
        assert_eq!(report.locations()[0].mapping, Some(0));
        let scale = 1.0 / (1.0 - (-4.0f64).exp());
        assert!((report.total_bytes() - 2.0 * 2097152.0 * scale).abs() < 1e-3);
        assert_eq!(
            report.symbols,
            vec![
                (0x100, "prof_backtrace_impl".to_string()),
                (0x200, "alloc::alloc::Global::alloc_impl--my::grow".into()),
                (0x300, "my::caller".into()),
                (0x400, "main".into()),
            ]
        );
        assert_eq!(report.mappings()[0].file, "/nonexistent/prog");
        assert_eq!(report.mappings()[0].build_id, None);
    }

    #[test]
    fn a_stack_of_allocator_frames_only_is_kept_whole() {
        let table = Table(HashMap::from([(0x100, vec!["malloc"])]));
        let profile = HeapProfile::parse(b"heap_v2/512\n@ 0x100\n  t*: 1: 512 [0: 0]\n").unwrap();
        let report = HeapReport::new(&profile, &table);
        assert_eq!(report.frame_names(&report.samples()[0]), ["malloc"]);
    }
}
