//! A finished CPU profile and its two renderings: pprof protobuf and SVG flame graph.

use std::time::Duration;

use pprof::protos::Message;

use super::CpuError;

/// The symbolized samples of a finished CPU profile.
///
/// `Send`, not `Sync`: render it on the thread that holds it.
pub struct CpuProfile {
    report: pprof::Report,
    frequency: u32,
}

impl std::fmt::Debug for CpuProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuProfile")
            .field("frequency", &self.frequency)
            .field("duration", &self.duration())
            .field("samples", &self.sample_count())
            .field("stacks", &self.report.data.len())
            .finish()
    }
}

impl CpuProfile {
    pub(super) fn new(report: pprof::Report, frequency: u32) -> Self {
        CpuProfile { report, frequency }
    }

    /// The sampling frequency in Hz.
    pub fn frequency(&self) -> u32 {
        self.frequency
    }

    /// How long the process was sampled.
    pub fn duration(&self) -> Duration {
        self.report.timing.duration
    }

    /// The number of samples taken (one sample is one period of CPU time of one thread).
    pub fn sample_count(&self) -> u64 {
        self.report
            .data
            .values()
            .map(|&n| u64::try_from(n).unwrap_or(0))
            .sum()
    }

    /// The samples as folded stacks, one line per distinct (thread, stack), in the format of
    /// Brendan Gregg's `stackcollapse` tools: `thread;outermost;…;innermost count`.
    /// Lines are sorted.
    pub fn folded(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .report
            .data
            .iter()
            .filter(|(_, &count)| count > 0)
            .map(|(frames, count)| {
                let mut line = sanitize(&frames.thread_name_or_id());
                // `frames.frames` is innermost first; each frame lists its inlined functions
                // innermost first too.
                for frame in frames.frames.iter().rev() {
                    for symbol in frame.iter().rev() {
                        line.push(';');
                        line.push_str(&sanitize(&symbol.name()));
                    }
                }
                line.push(' ');
                line.push_str(&count.to_string());
                line
            })
            .collect();
        lines.sort_unstable();
        lines
    }

    /// A pprof protobuf (`perftools.profiles.Profile`, not gzipped) that `go tool pprof`
    /// reads: sample types `samples/count` and `cpu/nanoseconds`, period type
    /// `cpu/nanoseconds` with the sampling period, start time and duration, function names
    /// and source lines resolved, and a `thread` label on every sample.
    pub fn encode_protobuf(&self) -> Result<Vec<u8>, CpuError> {
        let profile = self.report.pprof().map_err(CpuError::Sampler)?;
        profile
            .write_to_bytes()
            .map_err(|e| CpuError::Encode(Box::new(e)))
    }

    /// An interactive SVG flame graph (inferno): click a frame to zoom, Ctrl-F or the
    /// "Search" button to highlight matching functions. One tower per thread name.
    /// A profile without samples renders as a small SVG that says so.
    pub fn flamegraph_svg(&self) -> Result<Vec<u8>, CpuError> {
        let lines = self.folded();
        let mut options = pprof::flamegraph::Options::default();
        options.title = "CPU profile".to_owned();
        options.subtitle = Some(format!(
            "{} samples in {:.1} s at {} Hz",
            self.sample_count(),
            self.duration().as_secs_f64(),
            self.frequency
        ));
        options.count_name = "samples".to_owned();
        let mut svg = Vec::new();
        if lines.is_empty() {
            write_empty_svg(&mut svg, options.subtitle.as_deref().unwrap_or_default());
            return Ok(svg);
        }
        pprof::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
            .map_err(|e| CpuError::FlameGraph(Box::new(e)))?;
        Ok(svg)
    }
}

/// Keeps a name from breaking the folded format: `;` separates frames and the count follows
/// the last space, so `;` and line breaks must not appear in a name.
fn sanitize(name: &str) -> String {
    name.replace(';', ":").replace(['\n', '\r'], " ")
}

fn write_empty_svg(out: &mut Vec<u8>, subtitle: &str) {
    let text = format!(
        "<?xml version=\"1.0\" standalone=\"no\"?>\n\
         <svg version=\"1.1\" width=\"1200\" height=\"80\" xmlns=\"http://www.w3.org/2000/svg\">\
         <text x=\"600\" y=\"30\" text-anchor=\"middle\" font-size=\"17\">CPU profile</text>\
         <text x=\"600\" y=\"60\" text-anchor=\"middle\" font-size=\"12\">{}: no thread used CPU \
         while sampling</text></svg>\n",
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
