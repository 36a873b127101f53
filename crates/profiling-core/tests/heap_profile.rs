//! Heap profile views against a checked-in dump and against fresh dumps of this test binary,
//! which runs on jemalloc with profiling enabled (the `malloc_conf` symbol below), as the
//! server binary does. The real `jeprof` and `go tool pprof` check the results.
//!
//! `tests/fixtures/status-server.heap_v2` is a dump of the release server holding two
//! half-received request bodies (taken with `GET /debug/pprof/heap`; see docs/heap-views.md).
//! Its name does not end in `.heap`: those are git-ignored as outputs of the server.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

use pprof::protos::Message;
use profiling_core::heap;
use profiling_core::heap_profile::{FrameCache, HeapProfile, HeapReport, NoSymbols};
use profiling_core::symbolize::Symbolizer;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads this symbol at start (`MALLOC_CONF` in the environment still wins). A
/// `&u8` is a thin pointer to the first byte, the `const char *` jemalloc expects.
#[allow(unsafe_code)] // exporting a symbol is unsafe: it must have the C type jemalloc declares.
#[export_name = "malloc_conf"]
static MALLOC_CONF: &u8 = &CONF[0];
const CONF: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/status-server.heap_v2"
);

/// `prof.active` is process-wide: the tests that sample take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "profiling-core-heap-profile-{}-{name}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("required tool '{name}' is not installed; `cargo xtask test` installs it")
        })
}

/// Runs `jeprof --text --show_bytes <args…>` and returns its report.
fn jeprof_text(args: &[&Path]) -> String {
    let out = Command::new(require_tool("jeprof"))
        .args(["--text", "--show_bytes"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("Total:"),
        "jeprof failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    roxmltree::Document::parse_with_options(svg, options).unwrap()
}

/// The `Total: N B` of a jeprof-style text report.
fn total_of(text: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("Total: "))
        .unwrap_or_else(|| panic!("no Total line in:\n{text}"));
    line.trim_start_matches("Total: ")
        .trim_end_matches(" B")
        .parse()
        .unwrap_or_else(|_| panic!("bad Total line {line:?}"))
}

fn assert_within_1_percent(ours: f64, theirs: f64) {
    assert!(
        theirs > 0.0 && (ours - theirs).abs() <= theirs * 0.01,
        "ours {ours} vs jeprof {theirs}"
    );
}

/// The name of every sample's top frame.
fn top_frames(report: &HeapReport) -> Vec<String> {
    report
        .samples()
        .iter()
        .filter_map(|s| report.frame_names(s).into_iter().next())
        .collect()
}

fn looks_like_allocator(name: &str) -> bool {
    let starts = [
        "prof_", "_rjem_", "je_", "imalloc", "malloc", "calloc", "realloc",
    ];
    let contains = [
        "__rust_alloc",
        "__rust_realloc",
        "__rdl_",
        "alloc::alloc::",
        "tikv_jemallocator",
        "GlobalAlloc>",
    ];
    starts.iter().any(|p| name.starts_with(p)) || contains.iter().any(|p| name.contains(p))
}

#[test]
fn fixture_parses_and_its_total_agrees_with_jeprof() {
    let dump = fs::read(FIXTURE).unwrap();
    let profile = HeapProfile::parse(&dump).unwrap();
    assert_eq!(profile.sample_period(), 524288);
    assert_eq!(profile.stacks().len(), 12);
    assert!(profile.stacks().iter().all(|s| s.addresses.len() > 5));
    assert!(profile
        .mapped_regions()
        .iter()
        .any(|r| r.is_executable() && r.file().is_some_and(|f| f.ends_with("/status-server"))));

    // The counts are jeprof's, on the very same file. The fixture's binary is gone; jeprof
    // needs some program to start, and the total does not depend on it.
    let jeprof = jeprof_text(&[Path::new("/bin/true"), Path::new(FIXTURE)]);
    let (_, bytes) = profile.estimated_totals();
    assert_within_1_percent(bytes, total_of(&jeprof));

    // Every view renders without symbols (frames shown as addresses).
    let report = HeapReport::new(&profile, &NoSymbols);
    assert_within_1_percent(total_of(&report.text()), total_of(&jeprof));
    let svg = String::from_utf8(report.flamegraph_svg().unwrap()).unwrap();
    parse_svg(&svg);
    let collapsed = report.collapsed();
    let folded_total: u64 = collapsed
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_within_1_percent(folded_total as f64, total_of(&jeprof));
    assert!(report.jeprof_raw().ends_with(&dump));
    assert!(!report.pprof_gzip().unwrap().is_empty());
}

/// Allocates 64 MiB in 1 MiB blocks from a function whose name the views must show.
#[inline(never)]
fn heap_profile_marker_allocation() -> Vec<Vec<u8>> {
    (0..64).map(|i| black_box(vec![i as u8; 1 << 20])).collect()
}

/// A dump of this process taken while the marker's blocks are alive.
fn dump_with_marker(dir: &Path) -> (PathBuf, Vec<u8>) {
    let was = heap::set_prof_active(true).unwrap();
    let blocks = heap_profile_marker_allocation();
    let path = dir.join("marker.heap");
    heap::dump_to(&path).unwrap();
    heap::set_prof_active(was).unwrap();
    drop(black_box(blocks));
    let dump = fs::read(&path).unwrap();
    (path, dump)
}

const MARKER: &str = "heap_profile::heap_profile_marker_allocation";

#[test]
fn fresh_dump_names_the_allocating_code_and_agrees_with_jeprof() {
    let _g = serial();
    let dir = scratch("fresh");
    let (path, dump) = dump_with_marker(&dir);
    let symbolizer = Symbolizer::new();
    let report = HeapReport::from_dump(&dump, &symbolizer).unwrap();

    // The same dump through the real jeprof, given this test binary.
    let exe = std::env::current_exe().unwrap();
    let jeprof = jeprof_text(&[&exe, &path]);
    assert_within_1_percent(report.total_bytes(), total_of(&jeprof));

    // No top frame is the allocator's (jeprof blames prof_backtrace_impl here).
    let tops = top_frames(&report);
    assert!(!tops.is_empty());
    for top in &tops {
        assert!(
            !looks_like_allocator(top),
            "allocator frame on top: {top}\n{tops:?}"
        );
    }

    // The marker holds its 64 MiB (estimated from ~55 samples of 1 MiB: well within 2x).
    let text = report.text();
    let marker_row = text
        .lines()
        .find(|l| l.ends_with(MARKER))
        .unwrap_or_else(|| panic!("{MARKER} missing from:\n{text}"));
    let cum: f64 = marker_row
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (32.0 * 1048576.0..128.0 * 1048576.0).contains(&cum),
        "{marker_row}"
    );
    // The first row of the table (most flat bytes) is not allocator code either.
    let first = text.lines().nth(1).unwrap();
    let name = first.split_whitespace().nth(5).unwrap();
    assert!(!looks_like_allocator(name), "{first}");

    // The flame graph is well-formed XML and shows the marker.
    let svg = String::from_utf8(report.flamegraph_svg().unwrap()).unwrap();
    let doc = parse_svg(&svg);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(svg.contains("heap_profile_marker_allocation"));

    // Folded stacks: outermost first, the marker below the allocating code.
    let collapsed = report.collapsed();
    assert!(collapsed
        .lines()
        .any(|l| l.contains(&format!("{MARKER};")) && !l.contains("prof_backtrace")));

    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn jeprof_reads_the_raw_view_without_the_binary() {
    let _g = serial();
    let dir = scratch("raw");
    let (_, dump) = dump_with_marker(&dir);
    let report = HeapReport::from_dump(&dump, &Symbolizer::new()).unwrap();
    let raw = dir.join("symbolized.raw");
    fs::write(&raw, report.jeprof_raw()).unwrap();
    // jeprof takes the symbols from the file: no binary argument, no objdump or nm.
    let jeprof = jeprof_text(&[&raw]);
    assert!(
        jeprof.contains("heap_profile_marker_allocation"),
        "{jeprof}"
    );
    assert_within_1_percent(report.total_bytes(), total_of(&jeprof));
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn pprof_protobuf_has_mappings_addresses_and_names() {
    let _g = serial();
    let dir = scratch("pprof");
    let (_, dump) = dump_with_marker(&dir);
    let report = HeapReport::from_dump(&dump, &Symbolizer::new()).unwrap();
    let gz = report.pprof_gzip().unwrap();
    assert_eq!(&gz[..2], b"\x1f\x8b", "gzip magic");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    let p = pprof::protos::Profile::parse_from_bytes(&raw).unwrap();
    let s = |i: i64| p.string_table[i as usize].clone();

    // The executable is the first mapping, with its build id and an executable region.
    let exe = fs::read_link("/proc/self/exe").unwrap();
    let main = &p.mapping[0];
    assert_eq!(s(main.filename), exe.to_str().unwrap());
    assert!(main.memory_start < main.memory_limit);
    assert!(main.has_functions);
    let marker_fn = heap_profile_marker_allocation as *const () as usize as u64;
    assert!(p
        .mapping
        .iter()
        .any(|m| m.memory_start <= marker_fn && marker_fn < m.memory_limit));
    if let Ok(out) = Command::new("readelf").args(["-n"]).arg(&exe).output() {
        let notes = String::from_utf8_lossy(&out.stdout);
        if let Some(id) = notes
            .lines()
            .find_map(|l| l.trim().strip_prefix("Build ID: "))
        {
            assert_eq!(s(main.build_id), id.trim());
        }
    }

    // Absolute addresses inside their mappings, functions and inlined lines filled in.
    let marker = p
        .function
        .iter()
        .find(|f| s(f.name) == MARKER)
        .expect("marker function");
    let loc = p
        .location
        .iter()
        .find(|l| l.line.iter().any(|line| line.function_id == marker.id))
        .unwrap();
    let m = &p.mapping[loc.mapping_id as usize - 1];
    assert!(m.memory_start <= loc.address && loc.address < m.memory_limit);
    assert!(
        p.location.iter().any(|l| l.line.len() > 1),
        "inlined frames"
    );
    assert!(s(marker.filename).ends_with("heap_profile.rs"));
    let total: i64 = p.sample.iter().map(|x| x.value[1]).sum();
    assert!((total as f64 - report.total_bytes()).abs() <= report.total_bytes() * 0.01);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn go_tool_pprof_shows_function_names_without_the_binary() {
    let _g = serial();
    let dir = scratch("go");
    let (_, dump) = dump_with_marker(&dir);
    let report = HeapReport::from_dump(&dump, &Symbolizer::new()).unwrap();
    let file = dir.join("heap.pb.gz");
    fs::write(&file, report.pprof_gzip().unwrap()).unwrap();
    // `-symbolize=none`: the names can only come from the profile itself; no binary given,
    // and a search path with nothing in it.
    let out = Command::new(require_tool("go"))
        .args(["tool", "pprof", "-top", "-symbolize=none"])
        .arg(&file)
        .env("PPROF_BINARY_PATH", &dir)
        .env("HOME", &dir)
        .output()
        .unwrap();
    let top = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{top}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(top.contains("inuse_space"), "{top}");
    assert!(top.contains("heap_profile_marker_allocation"), "{top}");
    assert!(!top.contains("prof_backtrace_impl"), "{top}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn the_frame_cache_gives_the_same_report() {
    let _g = serial();
    let dir = scratch("cache");
    let (_, dump) = dump_with_marker(&dir);
    let symbolizer = Symbolizer::new();
    let direct = HeapReport::from_dump(&dump, &symbolizer).unwrap();
    let cache = FrameCache::default();
    for _ in 0..2 {
        let cached = HeapReport::from_dump(&dump, &cache.resolver(&symbolizer)).unwrap();
        assert_eq!(cached.collapsed(), direct.collapsed());
        assert_eq!(cached.locations(), direct.locations());
    }
    let (addresses, bytes) = cache.usage();
    assert!(addresses > 10 && bytes > 0 && bytes <= FrameCache::DEFAULT_MAX_BYTES);
    let _ = fs::remove_dir_all(&dir);
}
