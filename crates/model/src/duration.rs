//! Prometheus's durations as its configuration files write them (`model.ParseDuration`):
//! `1y2w3d4h5m6s7ms`, each unit at most once and largest first, or `0`. Scrape configs and
//! rule files both use them, so they are parsed here once.

use std::time::Duration;

/// Parses a Prometheus duration: `1y2w3d4h5m6s7ms` (each unit optional, in that order) or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("not a valid duration string: {}", crate::gofmt::quote(s));
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let n: u64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let pos = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(bad)?;
        let (_, ms) = UNITS[next_unit + pos];
        next_unit += pos + 1;
        // Go's time.Duration counts nanoseconds in an i64; so does Prometheus's bound.
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= i64::MAX as u64 / 1_000_000)
            .ok_or_else(|| "duration out of range".to_string())?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration as Prometheus does (`1m30s`, `15s`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 365 * 24 * 3600 * 1000u64),
        ("w", 7 * 24 * 3600 * 1000),
        ("d", 24 * 3600 * 1000),
        ("h", 3600 * 1000),
        ("m", 60 * 1000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_like_prometheus() {
        for (s, ms) in [
            ("0", 0),
            ("15s", 15_000),
            ("1m30s", 90_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("500ms", 500),
            ("1m500ms", 60_500),
            ("0s", 0),
        ] {
            assert_eq!(parse_duration(s).unwrap(), Duration::from_millis(ms), "{s}");
        }
        for s in ["", "1", "s", "1x", "1s1m", "1.5s", "-1s", "1s1s", " 1s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert!(parse_duration("99999999999999999999y").is_err());
        // Go's time.Duration holds about 292 years of nanoseconds; Prometheus refuses more,
        // and its messages quote the input as Go's %q does.
        assert!(parse_duration("106751d").is_ok());
        assert_eq!(
            parse_duration("106752d").unwrap_err(),
            "duration out of range"
        );
        assert_eq!(
            parse_duration("5\u{e9}x\n").unwrap_err(),
            "not a valid duration string: \"5\u{e9}x\\n\""
        );
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
