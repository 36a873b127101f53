//! `/debug/pprof/symbol` end to end against the real binary with the real curl: addresses taken
//! from the binary's own symbol table (`nm`) and the load bias from `/proc/PID/maps`, as jeprof
//! and pprof send them.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use integration_tests::{curl, require_tool, server_binary, TestServer};

/// `(file address, size, mangled name)` of every sized function symbol of `binary`.
fn functions(binary: &Path, dynamic: bool) -> Vec<(u64, u64, String)> {
    require_tool("nm");
    let mut cmd = Command::new("nm");
    cmd.args(["--defined-only", "-S", "--no-demangle"]);
    if dynamic {
        cmd.arg("-D");
    }
    let out = cmd.arg(binary).output().unwrap();
    assert!(out.status.success(), "nm {}", binary.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f[..] {
                [a, s, "t" | "T" | "W" | "w", name] => Some((
                    u64::from_str_radix(a, 16).ok()?,
                    u64::from_str_radix(s, 16).ok()?,
                    name.to_string(),
                )),
                _ => None,
            }
        })
        .filter(|&(a, s, _)| a > 0 && s > 0)
        .collect()
}

/// The demangled form of a legacy Rust name made only of plain identifiers
/// (`_ZN13status_server4main17h0123456789abcdefE` → `status_server::main`).
fn plain_rust_name(mangled: &str) -> Option<String> {
    let mut rest = mangled.strip_prefix("_ZN")?.strip_suffix('E')?;
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let len: usize = rest[..digits].parse().ok()?;
        let part = rest.get(digits..digits + len)?;
        parts.push(part);
        rest = &rest[digits + len..];
    }
    let hash = parts.pop()?;
    let is_hash = hash.len() == 17
        && hash.starts_with('h')
        && hash[1..].bytes().all(|b| b.is_ascii_hexdigit());
    let plain = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    (is_hash && plain && parts.len() >= 2).then(|| parts.join("::"))
}

/// The load bias of `file` in process `pid`: the start of its mapping at offset 0 minus the
/// page of its first `PT_LOAD` segment.
fn load_bias(pid: u32, file: &Path) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let start = maps
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 6 && Path::new(f[5]) == file && u64::from_str_radix(f[2], 16) == Ok(0))
                .then(|| u64::from_str_radix(f[0].split('-').next().unwrap(), 16).unwrap())
        })
        .next()
        .unwrap_or_else(|| panic!("{} is not mapped in {pid}", file.display()));
    require_tool("readelf");
    let out = Command::new("readelf")
        .arg("-lW")
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let load = text
        .lines()
        .find(|l| l.trim_start().starts_with("LOAD"))
        .unwrap();
    let vaddr = u64::from_str_radix(
        load.split_whitespace()
            .nth(2)
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    start - (vaddr & !0xfff)
}

/// The path of the first mapped file of `pid` whose name starts with `prefix` (e.g. `libc.so`).
fn mapped_library(pid: u32, prefix: &str) -> PathBuf {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(PathBuf::from)
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no {prefix}* mapped in {pid}"))
}

/// Up to `n` functions of the server crate itself with plain names: (runtime address, name).
fn server_functions(server: &TestServer, n: usize) -> Vec<(u64, String)> {
    let binary = std::fs::canonicalize(server_binary()).unwrap();
    let bias = load_bias(server.pid(), &binary);
    let mut picked: Vec<(u64, String)> = functions(&binary, false)
        .into_iter()
        .filter_map(|(a, _, m)| Some((a + bias, plain_rust_name(&m)?)))
        .filter(|(_, name)| {
            name.starts_with("status_server::")
                || name.starts_with("status_http::")
                || name.starts_with("status_api::")
        })
        .collect();
    picked.sort();
    picked.dedup_by_key(|p| p.0);
    assert!(
        picked.len() >= n.min(3),
        "too few plain-named server functions: {picked:?}"
    );
    picked.truncate(n);
    picked
}

fn post(server: &TestServer, body: &str) -> (u16, String) {
    let (status, out, err) = curl(&[
        "-X",
        "POST",
        "-d",
        body,
        "-w",
        "\n%{http_code}",
        &server.url("/debug/pprof/symbol"),
    ]);
    assert!(status.success(), "curl: {err}");
    let text = String::from_utf8(out).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

#[test]
fn get_says_the_server_symbolizes() {
    let server = TestServer::start(&[]);
    let (status, body, _) = curl(&[&server.url("/debug/pprof/symbol")]);
    assert!(status.success());
    assert_eq!(body, b"num_symbols: 1\n");
    let (status, head, _) = curl(&["-I", &server.url("/debug/pprof/symbol")]);
    assert!(status.success());
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 200"));
}

#[test]
fn posted_addresses_of_server_functions_resolve_to_their_names_in_order() {
    let server = TestServer::start(&[]);
    let functions = server_functions(&server, 20);
    // Request order, not address order; mixed `0x`/no prefix and case; one unknown address.
    let mut tokens: Vec<String> = Vec::new();
    for (i, (address, _)) in functions.iter().rev().enumerate() {
        tokens.push(match i % 3 {
            0 => format!("{address:#x}"),
            1 => format!("{address:X}"),
            _ => format!("0X{address:x}"),
        });
    }
    tokens.insert(1, "0x10".to_string());
    let (code, body) = post(&server, &tokens.join("+"));
    assert_eq!(code, 200, "{body}");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines.len(),
        functions.len(),
        "the unknown address is left out:\n{body}"
    );
    for (line, (address, name)) in lines.iter().zip(functions.iter().rev()) {
        let (hex, resolved) = line.split_once(' ').unwrap();
        assert_eq!(hex, format!("{address:#x}"), "{body}");
        // The outermost frame is the function itself (a prologue may show no inlined frame).
        assert_eq!(resolved.rsplit("--").next(), Some(name.as_str()), "{body}");
    }

    // The same through a GET query.
    let query: Vec<String> = functions.iter().map(|(a, _)| format!("{a:#x}")).collect();
    let (status, out, _) =
        curl(&[&server.url(&format!("/debug/pprof/symbol?{}", query.join("+")))]);
    assert!(status.success());
    let text = String::from_utf8(out).unwrap();
    let expected: Vec<String> = functions
        .iter()
        .map(|(a, n)| format!("{a:#x} {n}"))
        .collect();
    let got: Vec<String> = text
        .lines()
        .map(|l| {
            let (hex, name) = l.split_once(' ').unwrap();
            format!("{hex} {}", name.rsplit("--").next().unwrap())
        })
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn inlined_frames_are_joined_by_dashes() {
    let server = TestServer::start(&[]);
    let binary = std::fs::canonicalize(server_binary()).unwrap();
    let bias = load_bias(server.pid(), &binary);
    // Addresses in the middle of the larger functions: some are inside inlined calls.
    let mut big: Vec<(u64, u64, String)> = functions(&binary, false)
        .into_iter()
        .filter(|f| f.1 >= 256)
        .collect();
    big.sort_by_key(|f| std::cmp::Reverse(f.1));
    let body: Vec<String> = big
        .iter()
        .take(2000)
        .flat_map(|(a, s, _)| [1, 2, 3].map(|k| format!("{:#x}", a + bias + s * k / 4)))
        .collect();
    let (code, reply) = post(&server, &body.join("+"));
    assert_eq!(code, 200);
    let lines: Vec<&str> = reply.lines().collect();
    assert!(
        lines.len() * 10 >= body.len() * 9,
        "most addresses resolve: {} of {}",
        lines.len(),
        body.len()
    );
    for line in &lines {
        let (hex, name) = line.split_once(' ').unwrap();
        assert!(
            hex.starts_with("0x")
                && hex[2..]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{line}"
        );
        assert!(!name.is_empty() && !name.contains('\n'), "{line}");
    }
    let inlined = lines.iter().filter(|l| l.contains("--")).count();
    assert!(
        inlined > 0,
        "no inlined frame among {} resolved addresses",
        lines.len()
    );
    let example = lines.iter().find(|l| l.contains("--")).unwrap();
    let frames: Vec<&str> = example.split_once(' ').unwrap().1.split("--").collect();
    assert!(
        frames.len() >= 2 && frames.iter().all(|f| !f.is_empty()),
        "{example}"
    );
}

#[test]
fn an_address_inside_libc_resolves_to_a_libc_symbol() {
    let server = TestServer::start(&[]);
    let libc = std::fs::canonicalize(mapped_library(server.pid(), "libc.so")).unwrap();
    let bias = load_bias(server.pid(), &libc);
    let (address, _, _) = functions(&libc, true)
        .into_iter()
        .find(|f| f.2 == "getpid" || f.2.starts_with("getpid@"))
        .expect("getpid in libc");
    let (code, body) = post(
        &server,
        &format!("{:#x}+{:#x}", address + bias, address + bias + 1),
    );
    assert_eq!(code, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert!(lines.iter().all(|l| l.contains("getpid")), "{body}");
}

#[test]
fn bad_bodies_are_rejected_with_a_sentence() {
    let server = TestServer::start(&[]);
    let (code, body) = post(&server, "0x10+0xnothex");
    assert_eq!(code, 400);
    assert!(body.contains("'0xnothex'"), "{body}");

    let dir = server.temp_dir().to_path_buf();
    let binary_body = dir.join("not-utf8.bin");
    std::fs::write(&binary_body, [0x30, 0x78, 0xff, 0xfe]).unwrap();
    let (status, out, _) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", binary_body.display()),
        "-w",
        "\n%{http_code}",
        &server.url("/debug/pprof/symbol"),
    ]);
    assert!(status.success());
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.ends_with("\n400") && text.contains("UTF-8"), "{text}");

    let big = dir.join("big.txt");
    std::fs::write(&big, "0x1+".repeat(17 * 1024 * 1024 / 4 + 1)).unwrap();
    let (status, out, _) = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{}", big.display()),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &server.url("/debug/pprof/symbol"),
    ]);
    assert!(status.success());
    assert_eq!(out, b"413");

    // Nothing resolvable: an empty 200.
    let (code, body) = post(&server, "0x10+0x20");
    assert_eq!((code, body.as_str()), (200, ""));
}

#[test]
fn jeprof_remote_mode_works_with_nothing_but_the_url() {
    let jeprof = require_tool("jeprof");
    require_tool("dot");
    // Sample every allocation from the start, so the dump holds the server's own stacks.
    let server = TestServer::start_with(integration_tests::ServerOptions {
        env: vec![(
            "MALLOC_CONF".into(),
            "prof:true,prof_active:true,lg_prof_sample:0".into(),
        )],
        ..Default::default()
    });
    let work = server.temp_dir().join("jeprof");
    std::fs::create_dir_all(&work).unwrap();
    let url = server.url("/debug/pprof/heap");
    let run = |format: &str| {
        let out = Command::new(&jeprof)
            .arg(format)
            .arg(&url)
            .env("JEPROF_TMPDIR", &work)
            .current_dir(&work)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "jeprof {format} failed: {stderr}");
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    };
    let (text, stderr) = run("--text");
    assert!(text.starts_with("Total:"), "{text}\n{stderr}");
    // Function names of the server, resolved by the server: no bare hex addresses.
    assert!(
        text.lines().any(|l| l.ends_with(" status_server::main")),
        "{text}"
    );
    assert!(
        !text.lines().skip(1).any(|l| l
            .split_whitespace()
            .last()
            .is_some_and(|n| n.starts_with("0x"))),
        "{text}"
    );
    // The graph labels split names at `::` (`status_server` over `main`); the largest nodes
    // by then are the server's own, e.g. the symbolizer's tables built for the first run.
    let (svg, stderr) = run("--svg");
    assert!(svg.contains("<svg"), "{stderr}");
    assert!(
        [
            ">status_server</text>",
            ">profiling_core</text>",
            ">status_http</text>"
        ]
        .iter()
        .any(|label| svg.contains(label)),
        "no server function in the graph: {stderr}"
    );
}
