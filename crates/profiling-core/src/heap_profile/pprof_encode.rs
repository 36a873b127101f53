//! A [`HeapReport`] as a pprof protobuf (`perftools.profiles.Profile`), the format of
//! `go tool pprof`, encoded with pprof-rs's rust-protobuf types.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use pprof::protos::{self, Message as _};

use super::frames::display_name;
use super::report::HeapReport;
use super::HeapProfileError;

/// Interns strings into the profile's string table (index 0 is the empty string).
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Strings {
            table: Vec::new(),
            index: HashMap::new(),
        };
        s.get("");
        s
    }

    fn get(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

fn value_type(strings: &mut Strings, ty: &str, unit: &str) -> protos::ValueType {
    let mut v = protos::ValueType::new();
    v.ty = strings.get(ty);
    v.unit = strings.get(unit);
    v
}

fn round(x: f64) -> i64 {
    if x.is_finite() {
        x.round() as i64
    } else {
        0
    }
}

impl HeapReport {
    /// The profile as pprof protobuf, not compressed: sample types `inuse_objects/count` and
    /// `inuse_space/bytes` (the default), period `space/bytes` = the sample interval; one
    /// mapping per executable region of the process with file, file offset and build id;
    /// locations at their absolute runtime addresses with their functions and inlined frames
    /// filled in (so `go tool pprof` needs neither the binary nor a symbolizer); each sample
    /// labelled with its mean object size (`bytes`), as Go's heap profiles are.
    pub fn encode_pprof(&self) -> Result<Vec<u8>, HeapProfileError> {
        let mut strings = Strings::new();
        let mut profile = protos::Profile::new();
        profile.sample_type = vec![
            value_type(&mut strings, "inuse_objects", "count"),
            value_type(&mut strings, "inuse_space", "bytes"),
        ];
        profile.default_sample_type = strings.get("inuse_space");
        *profile.period_type.mut_or_insert_default() = value_type(&mut strings, "space", "bytes");
        profile.period = i64::try_from(self.sample_period).unwrap_or(i64::MAX);
        profile.time_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        profile.comment = vec![strings.get(
            "jemalloc heap profile (heap_v2); counts estimated from samples as jeprof does; \
             allocator frames removed",
        )];

        // Which mappings have every location resolved, with files and lines.
        // Per mapping: (every location has functions, some frame has a file, some location
        // has inlined frames).
        let mut resolved = vec![(true, false, false); self.mappings.len()];
        for location in &self.locations {
            if let Some(m) = location.mapping {
                let r = &mut resolved[m];
                r.0 &= !location.frames.is_empty();
                r.1 |= location.frames.iter().any(|f| f.file.is_some());
                r.2 |= location.frames.len() > 1;
            }
        }
        for (i, m) in self.mappings.iter().enumerate() {
            let mut mapping = protos::Mapping::new();
            mapping.id = i as u64 + 1;
            mapping.memory_start = m.start;
            mapping.memory_limit = m.limit;
            mapping.file_offset = m.offset;
            mapping.filename = strings.get(&m.file);
            mapping.build_id = strings.get(m.build_id.as_deref().unwrap_or(""));
            let (functions, files, inline) = resolved[i];
            mapping.has_functions = functions;
            mapping.has_filenames = functions && files;
            mapping.has_line_numbers = functions && files;
            mapping.has_inline_frames = functions && inline;
            profile.mapping.push(mapping);
        }

        let mut function_ids: HashMap<(i64, i64, i64), u64> = HashMap::new();
        for (i, location) in self.locations.iter().enumerate() {
            let mut loc = protos::Location::new();
            loc.id = i as u64 + 1;
            loc.mapping_id = location.mapping.map_or(0, |m| m as u64 + 1);
            loc.address = location.address;
            for frame in &location.frames {
                // `go tool pprof` rewrites a name equal to its system name with its C++
                // heuristics (`<A as B>::f` becomes `::f`); a name that differs is kept.
                let short = display_name(&frame.function);
                let system_name = if short == frame.function {
                    strings.get("")
                } else {
                    strings.get(&frame.function)
                };
                let name = strings.get(&short);
                let filename = strings.get(frame.file.as_deref().unwrap_or(""));
                let next_id = function_ids.len() as u64 + 1;
                let function_id = *function_ids
                    .entry((name, system_name, filename))
                    .or_insert_with(|| {
                        let mut f = protos::Function::new();
                        f.id = next_id;
                        f.name = name;
                        f.system_name = system_name;
                        f.filename = filename;
                        profile.function.push(f);
                        next_id
                    });
                let mut line = protos::Line::new();
                line.function_id = function_id;
                line.line = frame.line.map_or(0, i64::from);
                loc.line.push(line);
            }
            profile.location.push(loc);
        }

        let bytes_key = strings.get("bytes");
        for sample in &self.samples {
            let mut s = protos::Sample::new();
            s.location_id = sample.locations.iter().map(|&l| l as u64 + 1).collect();
            s.value = vec![round(sample.objects), round(sample.bytes)];
            if sample.objects > 0.0 {
                let mut label = protos::Label::new();
                label.key = bytes_key;
                label.num = round(sample.bytes / sample.objects);
                s.label.push(label);
            }
            profile.sample.push(s);
        }
        profile.string_table = strings.table;
        profile
            .write_to_bytes()
            .map_err(|e| HeapProfileError::Encode(Box::new(e)))
    }

    /// [`HeapReport::encode_pprof`], gzipped: what `go tool pprof` fetches and stores.
    pub fn pprof_gzip(&self) -> Result<Vec<u8>, HeapProfileError> {
        let raw = self.encode_pprof()?;
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(raw.len() / 3),
            flate2::Compression::default(),
        );
        gz.write_all(&raw)
            .map_err(|e| HeapProfileError::Encode(Box::new(e)))?;
        gz.finish()
            .map_err(|e| HeapProfileError::Encode(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::Read as _;

    use super::*;
    use crate::heap_profile::{HeapProfile, NoSymbols};

    #[test]
    fn round_trips_through_the_protobuf_types() {
        let dump = "heap_v2/16\n@ 0x1010 0x1020\n  t*: 2: 3000 [0: 0]\n\nMAPPED_LIBRARIES:\n\
                    00001000-00002000 r-xp 00000000 fe:00 1   /nonexistent/prog\n";
        let report = HeapReport::new(&HeapProfile::parse(dump.as_bytes()).unwrap(), &NoSymbols);
        let gz = report.pprof_gzip().unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        let p = protos::Profile::parse_from_bytes(&raw).unwrap();
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(s(0), "");
        let types: Vec<(&str, &str)> = p.sample_type.iter().map(|t| (s(t.ty), s(t.unit))).collect();
        assert_eq!(
            types,
            [("inuse_objects", "count"), ("inuse_space", "bytes")]
        );
        assert_eq!(p.period, 16);
        assert_eq!(p.sample.len(), 1);
        assert_eq!(p.sample[0].value, vec![2, 3000]);
        assert_eq!(p.sample[0].location_id.len(), 2);
        assert_eq!(p.location[0].address, 0x1010);
        assert_eq!(p.location[0].mapping_id, 1);
        assert_eq!(p.mapping.len(), 1);
        assert_eq!(s(p.mapping[0].filename), "/nonexistent/prog");
        assert!(!p.mapping[0].has_functions);
    }
}
