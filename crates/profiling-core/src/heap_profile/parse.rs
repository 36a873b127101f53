//! The jemalloc `heap_v2` dump format, and jeprof's estimate of real counts from sampled ones.
//!
//! ```text
//! heap_v2/524288                       <- mean sample interval in bytes (2^lg_prof_sample)
//!   t*: 95: 6174904 [0: 0]             <- process totals (sampled), then per thread
//!   t1: 50: 2957552 [0: 0]
//! @ 0x55bdda4a4003 0x55bdda4a46ad …    <- one stack, innermost first (return addresses)
//!   t*: 18: 861220 [0: 0]              <- its in-use objects and bytes, all threads
//!   t1: 10: 378085 [0: 0]
//!
//! MAPPED_LIBRARIES:
//! 55bdda1a3000-55bdda275000 r--p 00000000 fe:00 5366856   /path/to/binary
//! ```

use super::HeapProfileError;

/// One stack of a heap dump with its sampled in-use counts (the `t*:` line: all threads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapStack {
    /// Runtime addresses, innermost first, as jemalloc recorded them: the first is inside the
    /// profiler, every other one is a return address.
    pub addresses: Vec<u64>,
    /// Sampled objects still allocated.
    pub sampled_objects: u64,
    /// Bytes of the sampled objects still allocated.
    pub sampled_bytes: u64,
}

/// One line of the dump's `MAPPED_LIBRARIES:` section (the process's `/proc/self/maps`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRegion {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Permissions, e.g. `r-xp`.
    pub perms: String,
    /// Offset in the file of `start`.
    pub offset: u64,
    /// The file, when the region maps one (`[vdso]`, `[heap]` and anonymous regions have
    /// none or a bracketed name).
    pub path: Option<String>,
}

impl MappedRegion {
    /// Whether the region holds code (`x` permission).
    pub fn is_executable(&self) -> bool {
        self.perms.as_bytes().get(2) == Some(&b'x')
    }

    /// Whether `address` lies in the region.
    pub fn contains(&self, address: u64) -> bool {
        self.start <= address && address < self.end
    }

    /// The mapped file, if the region maps a real file (not `[vdso]`, `[stack]`, …); a
    /// `(deleted)` suffix is kept off.
    pub fn file(&self) -> Option<&str> {
        let path = self.path.as_deref()?;
        if !path.starts_with('/') {
            return None;
        }
        Some(path.strip_suffix(" (deleted)").unwrap_or(path))
    }

    /// Parses one `/proc/<pid>/maps` line; `None` when it is not one.
    pub fn parse_line(line: &str) -> Option<MappedRegion> {
        let mut fields = line.split_ascii_whitespace();
        let range = fields.next()?;
        let perms = fields.next()?;
        let offset = fields.next()?;
        let _dev = fields.next()?;
        let _inode = fields.next()?;
        let (start, end) = range.split_once('-')?;
        let start = u64::from_str_radix(start, 16).ok()?;
        let end = u64::from_str_radix(end, 16).ok()?;
        let offset = u64::from_str_radix(offset, 16).ok()?;
        if perms.len() != 4 || end < start {
            return None;
        }
        // The path is the rest of the line after the inode column, spaces included.
        let path = path_column(line);
        Some(MappedRegion {
            start,
            end,
            perms: perms.to_string(),
            offset,
            path,
        })
    }
}

/// The text after the fifth whitespace-separated column, trimmed; `None` when empty.
fn path_column(line: &str) -> Option<String> {
    let mut rest = line.trim_start();
    for _ in 0..5 {
        let end = rest.find(|c: char| c.is_ascii_whitespace())?;
        rest = rest[end..].trim_start();
    }
    let rest = rest.trim_end();
    (!rest.is_empty()).then(|| rest.to_string())
}

/// A parsed jemalloc `heap_v2` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeapProfile {
    sample_period: u64,
    header_objects: u64,
    header_bytes: u64,
    stacks: Vec<HeapStack>,
    regions: Vec<MappedRegion>,
    raw: Vec<u8>,
}

impl HeapProfile {
    /// Parses a `heap_v2` dump, as `prof.dump` writes it.
    ///
    /// Like jeprof, only the `t*:` line (all threads) of each stack is used; per-thread lines
    /// are checked for form and skipped.
    pub fn parse(dump: &[u8]) -> Result<HeapProfile, HeapProfileError> {
        let text = std::str::from_utf8(dump).map_err(|e| HeapProfileError::Parse {
            line: line_of(dump, e.valid_up_to()),
            message: "the dump is not UTF-8 text".into(),
        })?;
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        let (_, first) = lines.next().ok_or_else(|| HeapProfileError::Parse {
            line: 1,
            message: "the dump is empty".into(),
        })?;
        let sample_period = first
            .trim_end()
            .strip_prefix("heap_v2/")
            .and_then(|p| p.parse::<u64>().ok())
            .filter(|&p| p > 0)
            .ok_or_else(|| HeapProfileError::Parse {
                line: 1,
                message: format!(
                    "expected the header 'heap_v2/<sample period>', got '{}'",
                    truncate(first)
                ),
            })?;

        let mut profile = HeapProfile {
            sample_period,
            header_objects: 0,
            header_bytes: 0,
            stacks: Vec::new(),
            regions: Vec::new(),
            raw: dump.to_vec(),
        };
        // The stack whose counts come next, and whether its `t*` line was seen.
        let mut current: Option<(Vec<u64>, bool)> = None;
        let mut in_maps = false;
        for (n, line) in lines {
            if in_maps {
                if let Some(region) = MappedRegion::parse_line(line) {
                    profile.regions.push(region);
                }
                continue;
            }
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            if trimmed.starts_with("MAPPED_LIBRARIES:") {
                in_maps = true;
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('@') {
                let addresses = rest
                    .split_ascii_whitespace()
                    .map(|a| parse_address(a).ok_or(a))
                    .collect::<Result<Vec<u64>, &str>>()
                    .map_err(|bad| HeapProfileError::Parse {
                        line: n,
                        message: format!("invalid address '{}' in a stack", truncate(bad)),
                    })?;
                current = Some((addresses, false));
                continue;
            }
            let (thread, objects, bytes) =
                parse_counts(trimmed).ok_or_else(|| HeapProfileError::Parse {
                    line: n,
                    message: format!(
                        "expected '@ <addresses>', 't<thread>: <objects>: <bytes> [<objects>: \
                         <bytes>]' or 'MAPPED_LIBRARIES:', got '{}'",
                        truncate(trimmed)
                    ),
                })?;
            if thread != "*" {
                continue;
            }
            match current.as_mut() {
                None => {
                    profile.header_objects = objects;
                    profile.header_bytes = bytes;
                }
                Some((_, true)) => {
                    return Err(HeapProfileError::Parse {
                        line: n,
                        message: "a second 't*:' line for the same stack".into(),
                    })
                }
                Some((addresses, seen)) => {
                    *seen = true;
                    profile.stacks.push(HeapStack {
                        addresses: std::mem::take(addresses),
                        sampled_objects: objects,
                        sampled_bytes: bytes,
                    });
                }
            }
        }
        Ok(profile)
    }

    /// The mean sample interval in bytes, from the header (`heap_v2/<period>`).
    pub fn sample_period(&self) -> u64 {
        self.sample_period
    }

    /// The stacks, in dump order.
    pub fn stacks(&self) -> &[HeapStack] {
        &self.stacks
    }

    /// The `MAPPED_LIBRARIES:` section.
    pub fn mapped_regions(&self) -> &[MappedRegion] {
        &self.regions
    }

    /// The dump as it was parsed.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The sampled in-use (objects, bytes) of the whole process, from the header's `t*:` line.
    pub fn sampled_totals(&self) -> (u64, u64) {
        (self.header_objects, self.header_bytes)
    }

    /// The estimated in-use (objects, bytes) of the whole process: the sum over stacks of
    /// [`unsample`], which is jeprof's `Total`.
    pub fn estimated_totals(&self) -> (f64, f64) {
        self.stacks.iter().fold((0.0, 0.0), |(o, b), s| {
            let (so, sb) = unsample(self.sample_period, s.sampled_objects, s.sampled_bytes);
            (o + so, b + sb)
        })
    }
}

/// The estimated real (objects, bytes) behind the sampled counts of one stack, as jeprof's
/// `AdjustSamples` computes it for `heap_v2`: jemalloc samples an allocation of `size` bytes
/// with probability `1 - exp(-size / period)`, so with `size` the stack's mean object size,
/// both counts are divided by that probability.
pub fn unsample(period: u64, objects: u64, bytes: u64) -> (f64, f64) {
    if objects == 0 || period == 0 {
        return (objects as f64, bytes as f64);
    }
    let ratio = (bytes as f64 / objects as f64) / period as f64;
    let scale = 1.0 / (1.0 - (-ratio).exp());
    if !scale.is_finite() {
        return (objects as f64, bytes as f64);
    }
    (objects as f64 * scale, bytes as f64 * scale)
}

/// `0x1234` or `1234` (hex).
fn parse_address(token: &str) -> Option<u64> {
    let hex = token
        .strip_prefix("0x")
        .or_else(|| token.strip_prefix("0X"))
        .unwrap_or(token);
    u64::from_str_radix(hex, 16).ok()
}

/// `t<thread>: <objects>: <bytes> [<objects>: <bytes>]` → (thread, objects, bytes).
fn parse_counts(line: &str) -> Option<(&str, u64, u64)> {
    let rest = line.strip_prefix('t')?;
    let (thread, rest) = rest.split_once(':')?;
    if thread != "*" && (thread.is_empty() || !thread.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (objects, rest) = rest.split_once(':')?;
    let (bytes, rest) = rest.trim_start().split_once('[')?;
    let (alloc_objects, rest) = rest.split_once(':')?;
    let alloc_bytes = rest.trim_end().strip_suffix(']')?;
    let objects = objects.trim().parse().ok()?;
    let bytes = bytes.trim().parse().ok()?;
    alloc_objects.trim().parse::<u64>().ok()?;
    alloc_bytes.trim().parse::<u64>().ok()?;
    Some((thread, objects, bytes))
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    1 + bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// At most 80 characters of a line, for error messages.
fn truncate(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const DUMP: &str = "heap_v2/524288
  t*: 3: 3145728 [0: 0]
  t0: 3: 3145728 [0: 0]
@ 0x10 0x20 0x30
  t*: 2: 2097152 [0: 0]
  t0: 2: 2097152 [0: 0]
@ 0x10 0x40
  t*: 1: 64 [0: 0]

MAPPED_LIBRARIES:
55bdda1a3000-55bdda275000 r--p 00000000 fe:00 5366856                    /usr/bin/my prog
55bdda275000-55bdda566000 r-xp 000d1000 fe:00 5366856                    /usr/bin/my prog
7ffd1c1f2000-7ffd1c1f4000 r-xp 00000000 00:00 0                          [vdso]
55bdda585000-55bdda7a4000 rw-p 00000000 00:00 0
";

    #[test]
    fn parses_header_stacks_and_maps() {
        let p = HeapProfile::parse(DUMP.as_bytes()).unwrap();
        assert_eq!(p.sample_period(), 524288);
        assert_eq!(p.sampled_totals(), (3, 3145728));
        assert_eq!(p.stacks().len(), 2);
        assert_eq!(p.stacks()[0].addresses, vec![0x10, 0x20, 0x30]);
        assert_eq!(
            (p.stacks()[1].sampled_objects, p.stacks()[1].sampled_bytes),
            (1, 64)
        );
        let maps = p.mapped_regions();
        assert_eq!(maps.len(), 4);
        assert_eq!(maps[1].file(), Some("/usr/bin/my prog"));
        assert!(maps[1].is_executable() && !maps[0].is_executable());
        assert_eq!(maps[1].offset, 0xd1000);
        assert_eq!(maps[2].file(), None);
        assert_eq!(maps[3].path, None);
        assert_eq!(p.raw(), DUMP.as_bytes());
    }

    #[test]
    fn unsampling_follows_jeprof() {
        // Objects much larger than the period are always sampled: no scaling.
        let (o, b) = unsample(524288, 2, 2 << 30);
        assert!((o - 2.0).abs() < 1e-9 && (b - (2u64 << 30) as f64).abs() < 1e-3);
        // 64-byte objects at a 512 KiB period: each sampled one stands for ~8192 bytes.
        let (o, b) = unsample(524288, 1, 64);
        let scale = 1.0 / (1.0 - (-(64.0f64 / 524288.0)).exp());
        assert!((o - scale).abs() < 1e-6 && (b - 64.0 * scale).abs() < 1e-6);
        assert_eq!(unsample(524288, 0, 0), (0.0, 0.0));
    }

    #[test]
    fn rejects_malformed_dumps() {
        for (bad, line) in [
            ("", 1),
            ("heap_v1/1\n", 1),
            ("heap_v2/0\n", 1),
            ("heap_v2/10\n@ 0x1 zz\n", 2),
            ("heap_v2/10\n@ 0x1\n  t*: 1: x [0: 0]\n", 3),
            (
                "heap_v2/10\n@ 0x1\n  t*: 1: 2 [0: 0]\n  t*: 1: 2 [0: 0]\n",
                4,
            ),
            ("heap_v2/10\nhello\n", 2),
        ] {
            match HeapProfile::parse(bad.as_bytes()) {
                Err(HeapProfileError::Parse { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        assert!(HeapProfile::parse(b"heap_v2/10\n\xff\n").is_err());
    }
}
