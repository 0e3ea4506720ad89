//! Go's spellings of values and errors, so our answers match Jaeger's byte for byte.
//!
//! Jaeger is written in Go and its HTTP answers carry Go's formatting: `encoding/json` escapes
//! `<`, `>` and `&`, prints floats in `strconv`'s shortest form (`3`, not `3.0`), encodes bytes
//! as padded base64; its error messages quote input the way `strconv.Quote` and the `time`
//! package do. This module reproduces exactly those pieces (and nothing else of Go): the
//! `time.ParseDuration` grammar, `strconv.ParseInt`/`ParseUint`/`ParseBool` with their error
//! texts, and pdata's `Value.AsString` used for compound attribute values.

use std::fmt::Write as _;

use model::{AnyValue, KeyValue};

/// Nanoseconds per unit of Go's `time.ParseDuration`. Both micro signs are accepted, as in Go.
const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

pub use ingest::http_error;

/// Parses a Go duration string (`300ms`, `-1.5h`, `1h30m`, `2µs`) into signed nanoseconds,
/// with Go's error messages (`time: invalid duration "abc"`).
pub fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", time_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.as_bytes().first() {
        if *c == b'-' || *c == b'+' {
            neg = *c == b'-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part; Go rejects it when it overflows 2^63.
        let mut v: u64 = 0;
        let mut i = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(b[i] - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
            i += 1;
        }
        let pre = i > 0;
        s = &s[i..];
        // Fraction: digits past the precision of a u64 are ignored, as in Go.
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.as_bytes().first() == Some(&b'.') {
            s = &s[1..];
            let b = s.as_bytes();
            let mut j = 0;
            let mut overflow = false;
            while j < b.len() && b[j].is_ascii_digit() {
                if !overflow {
                    if f > (LIMIT - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + u64::from(b[j] - b'0');
                        if y > LIMIT {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                j += 1;
            }
            post = j > 0;
            s = &s[j..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or period.
        let b = s.as_bytes();
        let mut k = 0;
        while k < b.len() && !(b[k] == b'.' || b[k].is_ascii_digit()) {
            k += 1;
        }
        if k == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                time_quote(orig)
            ));
        }
        let unit_str = &s[..k];
        s = &s[k..];
        let Some(&(_, unit)) = UNITS.iter().find(|(name, _)| *name == unit_str) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                time_quote(unit_str),
                time_quote(orig)
            ));
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total = match total.checked_add(v) {
            Some(t) if t <= LIMIT => t,
            _ => return Err(invalid()),
        };
    }
    if neg {
        // 2^63 itself is representable only as a negative number.
        return Ok((total as i64).wrapping_neg());
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// The `time` package's quoting: `"` and `\` escaped, bytes outside printable ASCII as `\xNN`.
pub fn time_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if (c as u32) >= 0x80 || c < ' ' {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).as_bytes() {
                let _ = write!(out, "\\x{byte:02x}");
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn num_error(func: &str, input: &str, what: &str) -> String {
    format!(
        "strconv.{func}: parsing {}: {what}",
        model::gofmt::quote(input)
    )
}

/// `strconv.ParseInt(s, 10, bits)` with Go's error texts.
pub fn parse_int(s: &str, bits: u32) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(num_error("ParseInt", s, "invalid syntax"));
    }
    let neg = s.starts_with('-');
    let mut v: i128 = 0;
    for b in digits.bytes() {
        v = v * 10 + i128::from(b - b'0');
        if v > (1i128 << 64) {
            break;
        }
    }
    if neg {
        v = -v;
    }
    let max = (1i128 << (bits - 1)) - 1;
    let min = -(1i128 << (bits - 1));
    if v > max || v < min {
        return Err(num_error("ParseInt", s, "value out of range"));
    }
    Ok(v as i64)
}

/// `strconv.ParseUint(s, 16, 64)` with Go's error texts.
pub fn parse_hex_u64(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(num_error("ParseUint", s, "invalid syntax"));
    }
    u64::from_str_radix(s, 16).map_err(|_| num_error("ParseUint", s, "value out of range"))
}

/// `strconv.ParseBool` with Go's error text.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(num_error("ParseBool", s, "invalid syntax")),
    }
}

pub use model::gofmt::{base64_std, format_g as go_format_g, json_number as go_float};

/// Writes `s` as a JSON string the way Go's `encoding/json` does (HTML-safe escaping).
pub fn write_go_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Rewrites JSON produced by serde_json so that it is what Go's `encoding/json` would have
/// produced for the same strings: Go additionally escapes `<`, `>`, `&`, U+2028 and U+2029.
/// Those characters can only occur inside strings in serialized JSON, so a plain replace is
/// exact.
pub fn go_html_escape(json: String) -> String {
    if !json.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// pdata's `Value.AsString()`: what the OTLP→Jaeger translator stores as the string tag of an
/// array or map attribute. Maps become JSON objects with sorted keys (Go marshals
/// `map[string]any`), bytes become base64, and a NaN or infinity anywhere makes Go's marshaller
/// fail, which `AsString` turns into an empty string.
pub fn pdata_as_string(v: &AnyValue) -> String {
    match v {
        AnyValue::Empty => String::new(),
        AnyValue::Str(s) => s.clone(),
        AnyValue::Bool(b) => b.to_string(),
        AnyValue::Int(i) => i.to_string(),
        AnyValue::Double(d) => pdata_float_string(*d),
        AnyValue::Bytes(b) => base64_std(b),
        AnyValue::Array(_) | AnyValue::Map(_) => {
            let mut out = String::new();
            if write_go_json_value(&mut out, v) {
                out
            } else {
                String::new()
            }
        }
    }
}

/// pdata formats a lone double with `strconv.FormatFloat(f, 'f', -1, 64)` except that it
/// switches to exponent form for very large and very small magnitudes, like JSON.
fn pdata_float_string(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        go_float(d)
    }
}

/// Writes `v` as Go would marshal its `AsRaw()` form; false when Go's marshaller would fail.
fn write_go_json_value(out: &mut String, v: &AnyValue) -> bool {
    match v {
        AnyValue::Empty => out.push_str("null"),
        AnyValue::Str(s) => write_go_json_string(out, s),
        AnyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        AnyValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        AnyValue::Double(d) => {
            if !d.is_finite() {
                return false;
            }
            out.push_str(&go_float(*d));
        }
        AnyValue::Bytes(b) => {
            out.push('"');
            out.push_str(&base64_std(b));
            out.push('"');
        }
        AnyValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !write_go_json_value(out, item) {
                    return false;
                }
            }
            out.push(']');
        }
        AnyValue::Map(kvs) => {
            // A Go map holds one value per key (the last one written) and marshals sorted.
            let mut entries: Vec<&KeyValue> = Vec::with_capacity(kvs.len());
            for kv in kvs {
                match entries.iter().position(|e| e.key == kv.key) {
                    Some(i) => entries[i] = kv,
                    None => entries.push(kv),
                }
            }
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            out.push('{');
            for (i, kv) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json_string(out, &kv.key);
                out.push(':');
                if !write_go_json_value(out, &kv.value) {
                    return false;
                }
            }
            out.push('}');
        }
    }
    true
}

/// The layout Go's `time.RFC3339Nano` names, quoted in parse errors.
const RFC3339_LAYOUT: &str = "2006-01-02T15:04:05.999999999Z07:00";

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00.5Z`, `…+02:00`) the way Go's
/// `time.Parse(time.RFC3339Nano, s)` does, into signed nanoseconds since the epoch; errors
/// carry Go's wording.
pub fn parse_rfc3339(s: &str) -> Result<i128, String> {
    let cannot = |rest: &str, elem: &str| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            time_quote(s),
            time_quote(RFC3339_LAYOUT),
            time_quote(rest),
            time_quote(elem)
        )
    };
    let range = |what: &str| format!("parsing time {}: {what} out of range", time_quote(s));
    let mut rest = s;
    let digits = |rest: &mut &str, n: usize, elem: &str| -> Result<i64, String> {
        let b = rest.as_bytes();
        if b.len() < n || !b[..n].iter().all(u8::is_ascii_digit) {
            return Err(cannot(rest, elem));
        }
        let v = rest[..n].parse::<i64>().map_err(|_| cannot(rest, elem))?;
        *rest = &rest[n..];
        Ok(v)
    };
    let literal = |rest: &mut &str, lit: &str| -> Result<(), String> {
        match rest.strip_prefix(lit) {
            Some(r) => {
                *rest = r;
                Ok(())
            }
            None => Err(cannot(rest, lit)),
        }
    };
    let year = digits(&mut rest, 4, "2006")?;
    literal(&mut rest, "-")?;
    let month = digits(&mut rest, 2, "01")?;
    if !(1..=12).contains(&month) {
        return Err(range("month"));
    }
    literal(&mut rest, "-")?;
    let day = digits(&mut rest, 2, "02")?;
    literal(&mut rest, "T")?;
    let hour = digits(&mut rest, 2, "15")?;
    if hour > 23 {
        return Err(range("hour"));
    }
    literal(&mut rest, ":")?;
    let minute = digits(&mut rest, 2, "04")?;
    if minute > 59 {
        return Err(range("minute"));
    }
    literal(&mut rest, ":")?;
    let second = digits(&mut rest, 2, "05")?;
    if second > 59 {
        return Err(range("second"));
    }
    let mut nanos: i64 = 0;
    if let Some(frac) = rest.strip_prefix(['.', ',']) {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(cannot(rest, "Z07:00"));
        }
        if n > 9 {
            return Err(cannot(rest, "Z07:00"));
        }
        nanos = frac[..n].parse::<i64>().unwrap_or(0) * 10_i64.pow(9 - n as u32);
        rest = &frac[n..];
    }
    let offset_secs: i64 = if let Some(r) = rest.strip_prefix('Z') {
        rest = r;
        0
    } else {
        let sign = match rest.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(cannot(rest, "Z07:00")),
        };
        let b = rest.as_bytes();
        if b.len() < 6
            || b[3] != b':'
            || !b[1..3].iter().all(u8::is_ascii_digit)
            || !b[4..6].iter().all(u8::is_ascii_digit)
        {
            return Err(cannot(rest, "Z07:00"));
        }
        let h = i64::from(b[1] - b'0') * 10 + i64::from(b[2] - b'0');
        let m = i64::from(b[4] - b'0') * 10 + i64::from(b[5] - b'0');
        if h > 24 || m > 59 {
            return Err(range("time zone offset"));
        }
        rest = &rest[6..];
        sign * (h * 3600 + m * 60)
    };
    if !rest.is_empty() {
        return Err(format!(
            "parsing time {}: extra text: {}",
            time_quote(s),
            time_quote(rest)
        ));
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day < 1 || day > days_in_month[(month - 1) as usize] {
        return Err(range("day"));
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Ok(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `strconv.ParseUint(s, 10, 32)` with Go's error texts.
pub fn parse_uint32(s: &str) -> Result<u32, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(num_error("ParseUint", s, "invalid syntax"));
    }
    s.parse::<u32>()
        .map_err(|_| num_error("ParseUint", s, "value out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: i64 = 1;
    const US: i64 = 1_000;
    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;

    #[test]
    fn parses_go_durations() {
        let cases: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("+0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0s", 0),
            ("+0s", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            ("10ns", 10 * NS),
            ("11us", 11 * US),
            ("12\u{b5}s", 12 * US),
            ("12\u{3bc}s", 12 * US),
            ("5\u{b5}s", 5 * US),
            ("13ms", 13 * MS),
            ("1.2ms", 1_200_000),
            ("300us", 300 * US),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * M),
            ("1m30s", 90 * S),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            ("52763797000ns", 52763797000 * NS),
            ("0.3333333333333333333h", 20 * M),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036.854775807s", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036.854775808s", i64::MIN),
            ("0.100000000000000000000h", 6 * M),
            ("0.830103483285477580700h", 49 * M + 48 * S + 372_539_827),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), Ok(*want), "{input}");
        }
    }

    #[test]
    fn rejects_bad_go_durations_with_gos_messages() {
        let cases: &[(&str, &str)] = &[
            ("", r#"time: invalid duration """#),
            ("3", r#"time: missing unit in duration "3""#),
            ("-", r#"time: invalid duration "-""#),
            ("s", r#"time: invalid duration "s""#),
            (".", r#"time: invalid duration ".""#),
            ("-.", r#"time: invalid duration "-.""#),
            (".s", r#"time: invalid duration ".s""#),
            ("+.s", r#"time: invalid duration "+.s""#),
            ("abc", r#"time: invalid duration "abc""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            (
                "9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns""#,
            ),
            (
                "9223372036854775.808us",
                r#"time: invalid duration "9223372036854775.808us""#,
            ),
            ("1ms ", r#"time: unknown unit "ms " in duration "1ms ""#),
            (
                "1\u{e9}s",
                r#"time: unknown unit "\xc3\xa9s" in duration "1\xc3\xa9s""#,
            ),
            ("1\"s", r#"time: unknown unit "\"s" in duration "1\"s""#),
            (
                "9223372036854775808ns9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns9223372036854775808ns""#,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), Err(want.to_string()), "{input:?}");
        }
    }

    #[test]
    fn parses_ints_like_strconv() {
        assert_eq!(parse_int("42", 64), Ok(42));
        assert_eq!(parse_int("-42", 64), Ok(-42));
        assert_eq!(parse_int("+7", 32), Ok(7));
        assert_eq!(
            parse_int("abc", 64),
            Err(r#"strconv.ParseInt: parsing "abc": invalid syntax"#.into())
        );
        assert_eq!(
            parse_int("", 64),
            Err(r#"strconv.ParseInt: parsing "": invalid syntax"#.into())
        );
        assert_eq!(
            parse_int("2147483648", 32),
            Err(r#"strconv.ParseInt: parsing "2147483648": value out of range"#.into())
        );
        assert_eq!(parse_int("-2147483648", 32), Ok(-2147483648));
        assert_eq!(
            parse_int("99999999999999999999999999", 64),
            Err(
                r#"strconv.ParseInt: parsing "99999999999999999999999999": value out of range"#
                    .into()
            )
        );
        assert_eq!(parse_hex_u64("ffFF"), Ok(0xffff));
        assert_eq!(
            parse_hex_u64("xyz"),
            Err(r#"strconv.ParseUint: parsing "xyz": invalid syntax"#.into())
        );
        assert_eq!(parse_bool("True"), Ok(true));
        assert_eq!(
            parse_bool("yes"),
            Err(r#"strconv.ParseBool: parsing "yes": invalid syntax"#.into())
        );
    }

    #[test]
    fn formats_floats_like_go_json() {
        assert_eq!(go_float(3.0), "3");
        assert_eq!(go_float(-0.0), "-0");
        assert_eq!(go_float(0.5), "0.5");
        assert_eq!(go_float(1e20), "100000000000000000000");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1.5e300), "1.5e+300");
        assert_eq!(go_float(0.000001), "0.000001");
        assert_eq!(go_float(1.5e-7), "1.5e-7");
        assert_eq!(go_float(1e-10), "1e-10");
        assert_eq!(go_float(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn encodes_base64_with_padding() {
        assert_eq!(base64_std(b""), "");
        assert_eq!(base64_std(b"f"), "Zg==");
        assert_eq!(base64_std(b"fo"), "Zm8=");
        assert_eq!(base64_std(b"foo"), "Zm9v");
        assert_eq!(base64_std(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_std(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn renders_compound_values_like_pdata_as_string() {
        let v = AnyValue::Map(vec![
            KeyValue::new("z", AnyValue::Int(1)),
            KeyValue::new(
                "a",
                AnyValue::Array(vec![
                    AnyValue::Str("<x>&".into()),
                    AnyValue::Double(2.0),
                    AnyValue::Bool(false),
                    AnyValue::Bytes(vec![1, 2]),
                    AnyValue::Empty,
                ]),
            ),
            KeyValue::new("z", AnyValue::Int(2)),
        ]);
        assert_eq!(
            pdata_as_string(&v),
            r#"{"a":["\u003cx\u003e\u0026",2,false,"AQI=",null],"z":2}"#
        );
        assert_eq!(
            pdata_as_string(&AnyValue::Array(vec![AnyValue::Double(f64::NAN)])),
            ""
        );
        assert_eq!(pdata_as_string(&AnyValue::Array(vec![])), "[]");
        assert_eq!(pdata_as_string(&AnyValue::Map(vec![])), "{}");
    }

    #[test]
    fn escapes_html_in_serialized_json() {
        assert_eq!(
            go_html_escape(r#"{"a":"<b>&\u2028"}"#.replace("\\u2028", "\u{2028}")),
            r#"{"a":"\u003cb\u003e\u0026\u2028"}"#
        );
    }

    #[test]
    fn parses_rfc3339_like_go() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339("2000-01-02T12:30:08.999999998Z"),
            Ok(946_816_208_999_999_998)
        );
        assert_eq!(
            parse_rfc3339("2000-04-05T21:55:16.999999992+08:00"),
            parse_rfc3339("2000-04-05T13:55:16.999999992Z")
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00.5-01:30"),
            Ok(1_709_170_200_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("abc").unwrap_err(),
            r#"parsing time "abc" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "abc" as "2006""#
        );
        assert_eq!(
            parse_rfc3339("2024-01-01 00:00:00Z").unwrap_err(),
            r#"parsing time "2024-01-01 00:00:00Z" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse " 00:00:00Z" as "T""#
        );
        assert_eq!(
            parse_rfc3339("2023-02-29T00:00:00Z").unwrap_err(),
            r#"parsing time "2023-02-29T00:00:00Z": day out of range"#
        );
        assert_eq!(
            parse_rfc3339("2023-13-01T00:00:00Z").unwrap_err(),
            r#"parsing time "2023-13-01T00:00:00Z": month out of range"#
        );
        assert!(parse_rfc3339("2023-01-01T00:00:00").is_err());
        assert!(parse_rfc3339("2023-01-01T00:00:00Zjunk").is_err());
        assert!(parse_rfc3339("2023-01-01T00:00:00.Z").is_err());
        assert!(parse_rfc3339("é").is_err());
    }

    /// Deterministic pseudo-random inputs from the characters these grammars care about:
    /// the parsers must answer every one of them without panicking.
    #[test]
    fn parsers_never_panic() {
        let alphabet: Vec<char> = "0123456789.+-:TZhmsunµμ éx\"\\".chars().collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let mut x = seed;
            let input: String = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    alphabet[(x >> 33) as usize % alphabet.len()]
                })
                .collect();
            let _ = parse_go_duration(&input);
            let _ = parse_rfc3339(&input);
            let _ = parse_int(&input, 32);
            let _ = parse_uint32(&input);
            let _ = parse_hex_u64(&input);
            let _ = model::gofmt::quote(&input);
        }
        for huge in [
            "9".repeat(400),
            format!("{}h", "9".repeat(40)),
            format!(".{}s", "9".repeat(400)),
        ] {
            let _ = parse_go_duration(&huge);
            let _ = parse_int(&huge, 64);
        }
    }
}
