//! Heap profiling against a real jemalloc: this test binary runs on jemalloc with profiling
//! enabled (the `malloc_conf` symbol below), as the server binary does.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use profiling_core::heap;
use profiling_core::{HeapDumper, HeapDumperConfig, HeapError};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads this symbol at start (`MALLOC_CONF` in the environment still wins). A
/// `&u8` is a thin pointer to the first byte, the `const char *` jemalloc expects.
#[allow(unsafe_code)] // exporting a symbol is unsafe: it must have the C type jemalloc declares.
#[export_name = "malloc_conf"]
static MALLOC_CONF: &u8 = &CONF[0];
const CONF: &[u8] = b"prof:true,prof_active:false,lg_prof_sample:19\0";

/// `prof.active` and the dumper slot are process-wide: the tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("profiling-core-heap-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Allocates 64 MiB in 1 MiB blocks from a function whose name the dump must show.
#[inline(never)]
fn heap_test_marker_allocation() -> Vec<Vec<u8>> {
    (0..64).map(|i| black_box(vec![i as u8; 1 << 20])).collect()
}

fn is_heap_v2(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.starts_with("heap_v2/") && text.contains("\nMAPPED_LIBRARIES:\n")
}

#[test]
fn profiling_is_enabled_by_malloc_conf() {
    let _g = serial();
    assert!(heap::is_enabled());
    assert_eq!(heap::lg_prof_sample().unwrap(), 19);
}

#[test]
fn prof_active_switches_and_reports_the_previous_value() {
    let _g = serial();
    let before = heap::prof_active().unwrap();
    assert!(!heap::set_prof_active(true).unwrap() || before);
    assert!(heap::prof_active().unwrap());
    assert!(heap::set_prof_active(false).unwrap());
    assert!(!heap::prof_active().unwrap());
    heap::set_prof_active(before).unwrap();
}

#[test]
fn dump_is_read_by_jeprof_and_names_the_allocating_function() {
    let _g = serial();
    let dir = scratch("jeprof");
    let was = heap::set_prof_active(true).unwrap();
    let blocks = heap_test_marker_allocation();
    let path = dir.join("marker.heap");
    let bytes = heap::dump_to(&path).unwrap();
    heap::set_prof_active(was).unwrap();
    drop(black_box(blocks));

    let dump = fs::read(&path).unwrap();
    assert_eq!(dump.len() as u64, bytes);
    assert!(
        is_heap_v2(&dump),
        "{}",
        String::from_utf8_lossy(&dump[..dump.len().min(300)])
    );
    // Only the final name exists: the temporary file was renamed.
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["marker.heap"]);

    let exe = std::env::current_exe().unwrap();
    let out = Command::new("jeprof")
        .args(["--text", "--show_bytes"])
        .arg(&exe)
        .arg(&path)
        .output()
        .expect("jeprof must be installed (Debian/Ubuntu package libjemalloc-dev)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "jeprof failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("heap_test_marker_allocation"),
        "jeprof output:\n{text}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dump_to_vec_leaves_nothing_behind() {
    let _g = serial();
    let dir = scratch("vec");
    let bytes = heap::dump_to_vec(&dir.join("sub")).unwrap();
    assert!(is_heap_v2(&bytes));
    assert_eq!(fs::read_dir(dir.join("sub")).unwrap().count(), 0);
    fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn dump_into_an_unwritable_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let _g = serial();
    let dir = scratch("ro");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
    let result = heap::dump_to(&dir.join("x.heap"));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    if is_root() {
        // root writes anywhere; the permission check cannot fail here.
        result.unwrap();
    } else {
        let err = result.unwrap_err();
        assert!(matches!(err, HeapError::Io { .. }), "{err:?}");
        assert!(
            err.to_string().contains("cannot create heap dump file"),
            "{err}"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

#[test]
fn purge_reports_resident_bytes() {
    let _g = serial();
    let blocks = heap_test_marker_allocation();
    drop(black_box(blocks));
    let report = heap::purge_arenas().unwrap();
    assert!(report.resident_before > 0);
    assert!(report.resident_after > 0);
    assert!(
        report.resident_after <= report.resident_before,
        "{report:?}"
    );
}

#[test]
fn statistics_as_json_and_text() {
    let _g = serial();
    let json: serde_json::Value = serde_json::from_str(&heap::stats_json().unwrap()).unwrap();
    assert!(
        json["jemalloc"]["stats"]["allocated"].as_u64().unwrap() > 0,
        "{json}"
    );
    assert_eq!(
        json["jemalloc"]["config"]["prof"],
        serde_json::Value::Bool(true)
    );
    let text = heap::stats_text().unwrap();
    assert!(text.contains("Allocated:"), "{text}");
}

fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn dumper_rotates_lists_newest_first_and_cleans_up() {
    let _g = serial();
    let parent = scratch("dumper");
    heap::set_prof_active(false).unwrap();
    let config = HeapDumperConfig {
        interval: Duration::from_millis(50),
        max_files: 3,
    };
    let dumper = HeapDumper::start(&parent, config).unwrap();
    assert!(heap::prof_active().unwrap(), "start turns sampling on");
    let dir = dumper.dir().to_path_buf();
    assert!(dir.is_absolute() && dir.starts_with(parent.canonicalize().unwrap()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    // A second dumper in the same process is refused while this one runs.
    let second = HeapDumper::start(&parent, config);
    assert!(
        matches!(second, Err(HeapError::AlreadyRunning)),
        "{second:?}"
    );

    assert!(wait_for(|| dumper
        .dumps()
        .first()
        .is_some_and(|f| f.name.as_str() >= "000005.heap")));
    let dumps = dumper.dumps();
    assert!(dumps.len() <= 3 && dumps.len() >= 2, "{dumps:?}");
    for pair in dumps.windows(2) {
        assert!(pair[0].name > pair[1].name, "newest first: {dumps:?}");
        assert!(pair[0].modified >= pair[1].modified);
    }
    for f in &dumps {
        assert_eq!(f.path, dir.join(&f.name));
        assert!(is_heap_v2(&fs::read(&f.path).unwrap()), "{}", f.name);
        assert_eq!(dumper.dump_path(&f.name), Some(f.path.clone()));
    }
    // Rotation removed the oldest: the first dump is gone and cannot be named.
    assert_eq!(dumper.dump_path("000001.heap"), None);
    assert_eq!(dumper.dump_path("../x"), None);
    // Only complete dumps under their final names, at most max_files (+1 being rotated).
    let on_disk = files_in(&dir);
    assert!(
        on_disk.len() <= 4
            && on_disk
                .iter()
                .all(|n| n.ends_with(".heap") && !n.starts_with('.')),
        "{on_disk:?}"
    );

    dumper.stop().unwrap();
    assert!(!dir.exists(), "stop removes the directory");
    assert!(!heap::prof_active().unwrap(), "stop restores prof.active");
    assert!(parent.exists(), "the parent is the caller's");

    // The slot is free again; prof.active that was on stays on after stop.
    heap::set_prof_active(true).unwrap();
    let again = HeapDumper::start(&parent, HeapDumperConfig::default()).unwrap();
    drop(again);
    assert!(heap::prof_active().unwrap());
    heap::set_prof_active(false).unwrap();
    assert_eq!(
        files_in(&parent),
        Vec::<String>::new(),
        "drop cleans up too"
    );
    fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn dumper_stops_promptly_mid_interval() {
    let _g = serial();
    let parent = scratch("prompt");
    let dumper = HeapDumper::start(
        &parent,
        HeapDumperConfig {
            interval: Duration::from_secs(3600),
            max_files: 2,
        },
    )
    .unwrap();
    let dir = dumper.dir().to_path_buf();
    assert!(
        dumper.dumps().is_empty(),
        "the first dump comes one interval after the start"
    );
    let t = Instant::now();
    dumper.stop().unwrap();
    // Stopping wakes the thread instead of waiting out the hour.
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(!dir.exists());
    fs::remove_dir_all(&parent).unwrap();
}

#[test]
fn dumper_in_an_unwritable_parent_is_a_clear_error() {
    let _g = serial();
    let parent = Path::new("/proc/heap-dumps-cannot-live-here");
    let err = HeapDumper::start(parent, HeapDumperConfig::default()).unwrap_err();
    assert!(matches!(err, HeapError::Io { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot create heap dump directory"),
        "{err}"
    );
    // The failed start released the slot and left prof.active alone.
    assert!(!heap::prof_active().unwrap());
    HeapDumper::start(&scratch("after-error"), HeapDumperConfig::default())
        .unwrap()
        .stop()
        .unwrap();
}

/// Run by `malloc_conf_prof_false_disables_everything` in a child process with
/// `MALLOC_CONF=prof:false`.
#[test]
#[ignore = "run in a child process by malloc_conf_prof_false_disables_everything"]
fn child_with_profiling_disabled() {
    assert_eq!(std::env::var("MALLOC_CONF").as_deref(), Ok("prof:false"));
    assert!(!heap::is_enabled());
    assert!(matches!(heap::prof_active(), Err(HeapError::NotEnabled)));
    assert!(matches!(
        heap::set_prof_active(true),
        Err(HeapError::NotEnabled)
    ));
    let dir = scratch("disabled");
    let err = heap::dump_to_vec(&dir).unwrap_err();
    assert!(err.to_string().contains("MALLOC_CONF=prof:true"), "{err}");
    assert!(matches!(
        HeapDumper::start(&dir, HeapDumperConfig::default()),
        Err(HeapError::NotEnabled)
    ));
    // Purge and statistics need only jemalloc, not profiling.
    assert!(heap::purge_arenas().unwrap().resident_after > 0);
    assert!(heap::stats_json().unwrap().contains("\"jemalloc\""));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malloc_conf_prof_false_disables_everything() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_with_profiling_disabled",
            "--ignored",
            "--test-threads=1",
        ])
        .env("MALLOC_CONF", "prof:false")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}
