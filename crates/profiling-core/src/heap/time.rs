//! `YYYY-MM-DD HH:MM:SS` in the local time zone, as `heap_list` shows dump times.
#![allow(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `t` as `YYYY-MM-DD HH:MM:SS` in the process's local time zone (`TZ`, else
/// `/etc/localtime`), like `ls -l` and TiKV's `heap_list`. Falls back to UTC when the local
/// time cannot be computed.
pub fn format_local_time(t: SystemTime) -> String {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    match local(secs) {
        Some(s) => s,
        None => utc(secs),
    }
}

fn local(secs: i64) -> Option<String> {
    #[allow(clippy::useless_conversion)] // `time_t` is 32 bits on some targets.
    let time: libc::time_t = secs.try_into().ok()?;
    // SAFETY: `libc::tm` is a plain C struct of integers (and, on some targets, a pointer
    // that may be null); all-zero is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live, properly aligned locals; `localtime_r` is the
    // re-entrant form that writes only into `tm`.
    let r = unsafe { libc::localtime_r(&time, &mut tm) };
    if r.is_null() {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    ))
}

/// UTC civil time from Unix seconds (Howard Hinnant's `civil_from_days`).
fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_civil_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(-1), "1969-12-31 23:59:59");
    }

    #[test]
    fn local_time_has_the_shape() {
        let s = format_local_time(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let b = s.as_bytes();
        assert_eq!(b.len(), 19, "{s}");
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16]),
            (b'-', b'-', b' ', b':', b':'),
            "{s}"
        );
        assert!(s.starts_with("2023-11-1"), "{s}");
    }
}
