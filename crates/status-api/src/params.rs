//! Query strings and the typed, validated parameters of each route.

use std::time::Duration;

use crate::error::{printable, ApiError};

/// A parsed query string: `name=value` pairs, percent-decoded, each name at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Parses a raw query string (without the `?`).
    ///
    /// `+` decodes to a space and `%XX` to its byte, as in HTML forms. A name given twice, a
    /// malformed escape, or text that is not UTF-8 after decoding is a 400.
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for piece in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            let k = decode(k)?;
            let v = decode(v)?;
            if k.is_empty() {
                return Err(ApiError::BadRequest(format!(
                    "invalid query string: a parameter has an empty name in '{}'",
                    printable(piece, 64)
                )));
            }
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(ApiError::BadRequest(format!(
                    "invalid query string: parameter '{}' is given more than once",
                    printable(&k, 64)
                )));
            }
            pairs.push((k, v));
        }
        Ok(QueryParams { pairs })
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Names and values in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A 400 naming the first parameter that is not in `accepted`.
    pub fn only(&self, accepted: &[&str]) -> Result<(), ApiError> {
        if let Some((k, _)) = self
            .pairs
            .iter()
            .find(|(k, _)| !accepted.contains(&k.as_str()))
        {
            let list = if accepted.is_empty() {
                "this route takes no parameters".to_string()
            } else {
                format!("accepted: {}", accepted.join(", "))
            };
            return Err(ApiError::BadRequest(format!(
                "unknown query parameter '{}': {list}",
                printable(k, 64)
            )));
        }
        Ok(())
    }

    /// An integer parameter within `min..=max`, or `default` when absent.
    pub fn int_in(&self, name: &str, min: u64, max: u64, default: u64) -> Result<u64, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let expected = format!("an integer from {min} to {max}");
        let digits = raw.strip_prefix('+').unwrap_or(raw);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::bad_param(name, &expected, raw));
        }
        match digits.parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(ApiError::bad_param(name, &expected, raw)),
        }
    }

    /// A boolean parameter (`true`/`false`/`1`/`0`), or `default` when absent.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(v) => Err(ApiError::bad_param(name, "true or false", v)),
        }
    }
}

fn decode(raw: &str) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => {
                        return Err(ApiError::BadRequest(format!(
                            "invalid query string: malformed percent escape in '{}'",
                            printable(raw, 64)
                        )))
                    }
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| {
        ApiError::BadRequest(format!(
            "invalid query string: '{}' does not decode to UTF-8 text",
            printable(raw, 64)
        ))
    })
}

/// What `/debug/pprof/profile` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuProfileFormat {
    /// A pprof protobuf that `go tool pprof` reads.
    Protobuf,
    /// An interactive SVG flame graph.
    FlameGraph,
}

/// Parameters of `GET /debug/pprof/profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuProfileParams {
    /// How long to sample (1 to 3600 s, default 10 s).
    pub duration: Duration,
    /// Sampling frequency in Hz (1 to 1000, default 99).
    pub frequency: u32,
    /// Output format.
    pub format: CpuProfileFormat,
}

impl CpuProfileParams {
    /// Default duration in seconds.
    pub const DEFAULT_SECONDS: u64 = 10;
    /// Largest duration in seconds.
    pub const MAX_SECONDS: u64 = 3600;
    /// Default frequency in Hz.
    pub const DEFAULT_FREQUENCY: u64 = 99;
    /// Largest frequency in Hz.
    pub const MAX_FREQUENCY: u64 = 1000;

    pub(crate) fn parse(q: &QueryParams, content_type: Option<&str>) -> Result<Self, ApiError> {
        q.only(&["seconds", "frequency", "format"])?;
        let seconds = q.int_in("seconds", 1, Self::MAX_SECONDS, Self::DEFAULT_SECONDS)?;
        let frequency = q.int_in("frequency", 1, Self::MAX_FREQUENCY, Self::DEFAULT_FREQUENCY)?;
        let protobuf_header = content_type
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/protobuf"));
        let protobuf_query = matches!(q.get("format"), Some(f) if f.eq_ignore_ascii_case("protobuf") || f.eq_ignore_ascii_case("pprof"));
        Ok(CpuProfileParams {
            duration: Duration::from_secs(seconds),
            // `frequency` is at most 1000: it fits.
            frequency: u32::try_from(frequency).unwrap_or(u32::MAX),
            format: if protobuf_header || protobuf_query {
                CpuProfileFormat::Protobuf
            } else {
                CpuProfileFormat::FlameGraph
            },
        })
    }
}

/// The jeprof-style views of a heap profile (`jeprof=true&text=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JeprofText {
    /// An interactive SVG flame graph (`text=svg`, the default).
    Svg,
    /// A top table like `jeprof --text`.
    Text,
    /// Folded stacks like `jeprof --collapsed`.
    Collapsed,
    /// The raw dump like `jeprof --raw`.
    Raw,
}

/// What `GET /debug/pprof/heap` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapView {
    /// The raw jemalloc `heap_v2` dump (no parameters).
    RawDump,
    /// A jeprof view produced in-process.
    Jeprof(JeprofText),
    /// A gzipped pprof protobuf (`format=protobuf`).
    Protobuf,
}

/// Parameters of `GET /debug/pprof/heap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapParams {
    /// The requested view.
    pub view: HeapView,
}

impl HeapParams {
    pub(crate) fn parse(q: &QueryParams) -> Result<Self, ApiError> {
        q.only(&["jeprof", "text", "format"])?;
        let jeprof = q.bool("jeprof", false)?;
        let text = match q.get("text") {
            None => None,
            Some(t) => Some(match t.to_ascii_lowercase().as_str() {
                "svg" => JeprofText::Svg,
                "text" => JeprofText::Text,
                "collapsed" => JeprofText::Collapsed,
                "raw" => JeprofText::Raw,
                _ => {
                    return Err(ApiError::bad_param(
                        "text",
                        "one of svg, text, collapsed, raw",
                        t,
                    ))
                }
            }),
        };
        let protobuf = match q.get("format") {
            None => false,
            Some(f) if f.eq_ignore_ascii_case("protobuf") || f.eq_ignore_ascii_case("pprof") => {
                true
            }
            Some(f) if f.eq_ignore_ascii_case("raw") => false,
            Some(f) => return Err(ApiError::bad_param("format", "protobuf or raw", f)),
        };
        let view = match (protobuf, jeprof || text.is_some()) {
            (true, true) => {
                return Err(ApiError::BadRequest(
                    "invalid query: 'format=protobuf' cannot be combined with 'jeprof' or 'text'; ask for one view".into(),
                ))
            }
            (true, false) => HeapView::Protobuf,
            (false, true) => HeapView::Jeprof(text.unwrap_or(JeprofText::Svg)),
            (false, false) => HeapView::RawDump,
        };
        Ok(HeapParams { view })
    }
}

/// Parameters of `GET /debug/pprof/heap_activate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapActivateParams {
    /// Time between two dumps (1 to 86400 s, default 60 s).
    pub interval: Duration,
}

impl HeapActivateParams {
    /// Default interval in seconds.
    pub const DEFAULT_INTERVAL: u64 = 60;
    /// Largest interval in seconds.
    pub const MAX_INTERVAL: u64 = 86_400;

    pub(crate) fn parse(q: &QueryParams) -> Result<Self, ApiError> {
        q.only(&["interval"])?;
        let secs = q.int_in("interval", 1, Self::MAX_INTERVAL, Self::DEFAULT_INTERVAL)?;
        Ok(HeapActivateParams {
            interval: Duration::from_secs(secs),
        })
    }
}

/// The name of one periodic heap dump, as `heap_list` shows it: digits and `.heap`.
///
/// The type cannot hold a path separator, `..` or anything but `[0-9]{1,20}.heap`, so no
/// client can name a file outside the dump directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeapFileName(String);

impl HeapFileName {
    /// Validates a file name; `None` for anything that is not `<digits>.heap`.
    pub fn new(name: &str) -> Option<Self> {
        let digits = name.strip_suffix(".heap")?;
        (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| HeapFileName(name.to_string()))
    }

    /// The name of the `seq`-th dump: `000001.heap`, `000002.heap`, ….
    pub fn for_sequence(seq: u64) -> Self {
        HeapFileName(format!("{seq:06}.heap"))
    }

    /// The file name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Output of `GET /debug/pprof/memory_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryStatusFormat {
    /// `malloc_stats_print` JSON (default).
    Json,
    /// The human-readable report.
    Text,
}

impl MemoryStatusFormat {
    pub(crate) fn parse(q: &QueryParams) -> Result<Self, ApiError> {
        q.only(&["format"])?;
        match q.get("format") {
            None => Ok(MemoryStatusFormat::Json),
            Some(f) if f.eq_ignore_ascii_case("json") => Ok(MemoryStatusFormat::Json),
            Some(f) if f.eq_ignore_ascii_case("text") => Ok(MemoryStatusFormat::Text),
            Some(f) => Err(ApiError::bad_param("format", "json or text", f)),
        }
    }
}

/// The table that `sync-status` asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyncStatusKey {
    /// The keyspace, for the keyspace form of the route; `None` for the plain form.
    pub keyspace_id: Option<u32>,
    /// The table id.
    pub table_id: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> QueryParams {
        QueryParams::parse(Some(s)).unwrap()
    }

    #[test]
    fn integers_are_bounded() {
        assert_eq!(q("").int_in("seconds", 1, 3600, 10), Ok(10));
        assert_eq!(q("seconds=20").int_in("seconds", 1, 3600, 10), Ok(20));
        for bad in [
            "0",
            "-1",
            "abc",
            "",
            "3601",
            "99999999999999999999999",
            "1.5",
            "0x10",
            " 1",
        ] {
            let e = q(&format!("seconds={bad}"))
                .int_in("seconds", 1, 3600, 10)
                .unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
            assert!(e.to_string().contains("'seconds'"), "{e}");
        }
    }

    #[test]
    fn repeated_and_malformed() {
        assert!(QueryParams::parse(Some("a=1&a=2")).is_err());
        assert!(QueryParams::parse(Some("a=%zz")).is_err());
        assert!(QueryParams::parse(Some("a=%ff")).is_err());
        assert!(QueryParams::parse(Some("=1")).is_err());
        assert_eq!(q("a=%41+b").get("a"), Some("A b"));
    }

    #[test]
    fn cpu_format_selection() {
        let p = CpuProfileParams::parse(&q(""), Some("application/protobuf")).unwrap();
        assert_eq!(p.format, CpuProfileFormat::Protobuf);
        let p = CpuProfileParams::parse(&q("format=pprof"), None).unwrap();
        assert_eq!(p.format, CpuProfileFormat::Protobuf);
        let p = CpuProfileParams::parse(&q("format=whatever"), Some("text/html")).unwrap();
        assert_eq!(p.format, CpuProfileFormat::FlameGraph);
        assert_eq!(p.duration, Duration::from_secs(10));
        assert_eq!(p.frequency, 99);
        assert!(CpuProfileParams::parse(&q("frequency=1000000"), None).is_err());
        assert!(CpuProfileParams::parse(&q("debug=1"), None).is_err());
    }

    #[test]
    fn heap_views() {
        assert_eq!(HeapParams::parse(&q("")).unwrap().view, HeapView::RawDump);
        assert_eq!(
            HeapParams::parse(&q("jeprof=true")).unwrap().view,
            HeapView::Jeprof(JeprofText::Svg)
        );
        assert_eq!(
            HeapParams::parse(&q("jeprof=true&text=collapsed"))
                .unwrap()
                .view,
            HeapView::Jeprof(JeprofText::Collapsed)
        );
        assert_eq!(
            HeapParams::parse(&q("format=protobuf")).unwrap().view,
            HeapView::Protobuf
        );
        assert!(HeapParams::parse(&q("text=pdf")).is_err());
        assert!(HeapParams::parse(&q("jeprof=yes")).is_err());
        assert!(HeapParams::parse(&q("jeprof=true&format=protobuf")).is_err());
    }

    #[test]
    fn heap_file_names() {
        assert!(HeapFileName::new("000001.heap").is_some());
        for bad in [
            "../x.heap",
            ".heap",
            "1.heap/",
            "a.heap",
            "000001.heapx",
            "/etc/passwd",
            "%2e%2e",
        ] {
            assert!(HeapFileName::new(bad).is_none(), "{bad}");
        }
        assert_eq!(HeapFileName::for_sequence(3).as_str(), "000003.heap");
    }
}
