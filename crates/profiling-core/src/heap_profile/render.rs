//! The text views of a [`HeapReport`]: jeprof's `--text`, `--collapsed` and `--raw`, and an
//! interactive SVG flame graph.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use super::report::HeapReport;
use super::HeapProfileError;

impl HeapReport {
    /// Folded stacks, one line per distinct stack: `outermost;…;innermost <bytes>`, estimated
    /// in-use bytes rounded to whole bytes; lines sorted, stacks of zero bytes left out. The
    /// input format of `flamegraph.pl` and inferno, and the output of `jeprof --collapsed`.
    pub fn collapsed(&self) -> String {
        let mut out = String::new();
        for (stack, bytes) in self.folded() {
            let _ = writeln!(out, "{stack} {bytes}");
        }
        out
    }

    /// Folded stacks with their rounded bytes, merged and sorted.
    fn folded(&self) -> BTreeMap<String, u64> {
        let mut folded: BTreeMap<String, f64> = BTreeMap::new();
        for sample in &self.samples {
            let mut names = self.frame_names(sample);
            names.reverse();
            *folded.entry(names.join(";")).or_default() += sample.bytes;
        }
        folded
            .into_iter()
            .map(|(stack, bytes)| (stack, bytes.round() as u64))
            .filter(|&(_, bytes)| bytes > 0)
            .collect()
    }

    /// A top table in the layout of `jeprof --text --show_bytes`:
    ///
    /// ```text
    /// Total: 53034047 B
    ///  9876543  18.6%  18.6% 53034047 100.0% bytes::bytes_mut::BytesMut::reserve_inner
    /// ```
    ///
    /// Columns: bytes allocated by the function itself (flat: it is the innermost frame),
    /// that as a share of the total, the running sum of the flat shares, bytes allocated by it
    /// and everything it called (cum), that share, the function. Sorted by flat, then name.
    pub fn text(&self) -> String {
        let total = self.total_bytes();
        let mut flat: HashMap<String, f64> = HashMap::new();
        let mut cum: HashMap<String, f64> = HashMap::new();
        for sample in &self.samples {
            let names = self.frame_names(sample);
            if let Some(top) = names.first() {
                *flat.entry(top.clone()).or_default() += sample.bytes;
            }
            let mut seen: HashSet<&str> = HashSet::with_capacity(names.len());
            for name in &names {
                // A recursive function counts once per stack.
                if seen.insert(name.as_str()) {
                    *cum.entry(name.clone()).or_default() += sample.bytes;
                }
            }
        }
        let mut rows: Vec<(&String, f64, f64)> = cum
            .iter()
            .map(|(name, &c)| (name, flat.get(name).copied().unwrap_or(0.0), c))
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));

        let mut out = format!("Total: {} B\n", bytes(total));
        let mut running = 0.0;
        for (name, f, c) in rows {
            running += f;
            if f == 0.0 && c == 0.0 {
                continue;
            }
            let _ = writeln!(
                out,
                "{:>8} {:>6} {:>6} {:>8} {:>6} {}",
                bytes(f),
                percent(f, total),
                percent(running, total),
                bytes(c),
                percent(c, total),
                name
            );
        }
        out
    }

    /// jeprof's symbolized raw profile (`jeprof --raw`): a `--- symbol` section with the name
    /// of every address it needs (keys as jeprof looks them up: return addresses minus one),
    /// then `--- heap` and the dump itself. jeprof reads it with no binary and no symbolizer
    /// (`jeprof --text profile.raw`).
    pub fn jeprof_raw(&self) -> Vec<u8> {
        let mut out = String::from("--- symbol\n");
        if let Some(exe) = &self.executable {
            let _ = writeln!(out, "binary={exe}");
        }
        for (address, names) in &self.symbols {
            let _ = writeln!(out, "{address:#x} {names}");
        }
        out.push_str("---\n--- heap\n");
        let mut out = out.into_bytes();
        out.extend_from_slice(&self.raw);
        out
    }

    /// An interactive SVG flame graph (inferno) of the estimated in-use bytes: one box per
    /// frame, as wide as the bytes allocated under it; click to zoom, Ctrl-F to search. A
    /// profile without samples renders as a small SVG that says so.
    pub fn flamegraph_svg(&self) -> Result<Vec<u8>, HeapProfileError> {
        let folded = self.folded();
        let subtitle = format!(
            "Total: {} in {} objects (estimated from one sample per {} allocated); \
             allocator frames removed",
            human_bytes(self.total_bytes()),
            self.total_objects().round() as u64,
            human_bytes(self.sample_period as f64),
        );
        let mut svg = Vec::new();
        if folded.is_empty() {
            write_empty_svg(&mut svg, &subtitle);
            return Ok(svg);
        }
        let lines: Vec<String> = folded
            .iter()
            .map(|(stack, bytes)| format!("{stack} {bytes}"))
            .collect();
        let mut options = pprof::flamegraph::Options::default();
        options.title = "Heap profile: in-use bytes".to_owned();
        options.subtitle = Some(subtitle);
        options.count_name = "bytes".to_owned();
        options.colors =
            pprof::flamegraph::color::Palette::Basic(pprof::flamegraph::color::BasicPalette::Mem);
        pprof::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
            .map_err(|e| HeapProfileError::FlameGraph(Box::new(e)))?;
        Ok(svg)
    }
}

/// jeprof's `Unparse` with `--show_bytes`: `%d` of the value (truncated).
fn bytes(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value as u64
    } else {
        0
    }
}

/// jeprof's `Percent`: `%.1f%%`.
fn percent(value: f64, total: f64) -> String {
    if total != 0.0 {
        format!("{:.1}%", value * 100.0 / total)
    } else if value == 0.0 {
        "nan".into()
    } else {
        "+inf".into()
    }
}

fn human_bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = b;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", value.round() as u64)
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn write_empty_svg(out: &mut Vec<u8>, subtitle: &str) {
    let text = format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"80\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"600\" y=\"30\" text-anchor=\"middle\" font-size=\"17\">Heap profile: in-use \
         bytes</text><text x=\"600\" y=\"60\" text-anchor=\"middle\" font-size=\"12\">{}: no \
         sampled allocation is in use (is prof.active on? /debug/pprof/set_prof_active)</text>\
         </svg>\n",
        xml_escape(subtitle)
    );
    out.extend_from_slice(text.as_bytes());
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::heap_profile::{HeapProfile, NoSymbols};

    // Two stacks sharing their outer frame; objects far larger than the period, so the
    // estimate equals the sampled bytes.
    const DUMP: &str = "heap_v2/16
@ 0x10 0x20
  t*: 1: 3000 [0: 0]
@ 0x11 0x20
  t*: 1: 1000 [0: 0]
";

    fn parse_svg(svg: &str) -> roxmltree::Document<'_> {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        roxmltree::Document::parse_with_options(svg, options).unwrap()
    }

    fn report() -> HeapReport {
        HeapReport::new(&HeapProfile::parse(DUMP.as_bytes()).unwrap(), &NoSymbols)
    }

    #[test]
    fn text_matches_jeprofs_layout() {
        let text = report().text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Total: 4000 B");
        assert_eq!(lines[1], "    3000  75.0%  75.0%     3000  75.0% 0x10");
        assert_eq!(lines[2], "    1000  25.0% 100.0%     1000  25.0% 0x11");
        assert_eq!(lines[3], "       0   0.0% 100.0%     4000 100.0% 0x20");
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn collapsed_is_outermost_first() {
        assert_eq!(report().collapsed(), "0x20;0x10 3000\n0x20;0x11 1000\n");
    }

    #[test]
    fn raw_embeds_the_dump_after_the_symbols() {
        let raw = String::from_utf8(report().jeprof_raw()).unwrap();
        assert!(
            raw.starts_with("--- symbol\n---\n--- heap\nheap_v2/16\n"),
            "{raw}"
        );
    }

    #[test]
    fn svg_is_well_formed() {
        let svg = String::from_utf8(report().flamegraph_svg().unwrap()).unwrap();
        let doc = parse_svg(&svg);
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(svg.contains("0x20"));
        let empty = HeapReport::new(&HeapProfile::parse(b"heap_v2/16\n").unwrap(), &NoSymbols);
        let svg = String::from_utf8(empty.flamegraph_svg().unwrap()).unwrap();
        parse_svg(&svg);
        assert!(svg.contains("no sampled allocation"));
    }
}
