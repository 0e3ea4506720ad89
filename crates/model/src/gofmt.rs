//! Go's spellings of floats and bytes, which the peers' wire formats use and ours must match
//! byte for byte: Prometheus's sample values and label values (`strconv.FormatFloat` with `'f'`
//! or `'g'` and precision -1, plus `NaN`/`+Inf`/`-Inf`), Go's JSON numbers (what Jaeger and
//! OTLP translators print for float attributes), and `[]byte` as JSON writes it (padded
//! base64), Go's `url.QueryEscape` (scrape URLs, alert generator links) and `strconv.Quote`
//! (`%q` in error messages and templates). One home for them, so the API, the receivers, the
//! PromQL engine and the rules cannot drift.
//!
//! Rust's `Display` for `f64` prints the shortest decimal that round-trips and never uses an
//! exponent: the same digits Go prints with `'f', -1`. Its `{:e}` prints the same shortest
//! digits in exponent form, which the other spellings are built from.

use std::fmt::Write as _;

/// `strconv.FormatFloat(f, 'f', -1, 64)` with Prometheus's special values: `0.005`,
/// `100000000000000000000`, `NaN`, `+Inf`, `-Inf`. How Prometheus writes `le` and `quantile`
/// labels and sample values in its JSON API.
pub fn format_f(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f == f64::INFINITY {
        "+Inf".to_string()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{f}")
    }
}

/// `strconv.FormatFloat(f, 'g', -1, 64)` with the text format's special values, as `expfmt`
/// writes sample values: exponent notation (`1e+06`, `1.5e-05`) when the decimal exponent is
/// below -4 or at least 6, plain otherwise.
pub fn format_g(f: f64) -> String {
    if !f.is_finite() {
        return format_f(f);
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let e = format!("{f:e}");
    match e.split_once('e') {
        Some((mantissa, exp)) => {
            let exp: i32 = exp.parse().unwrap_or(0);
            if (-4..6).contains(&exp) {
                format!("{f}")
            } else {
                let sign = if exp < 0 { '-' } else { '+' };
                format!("{mantissa}e{sign}{:02}", exp.abs())
            }
        }
        None => format!("{f}"),
    }
}

/// A finite float as Go's `encoding/json` writes it (ES6 number formatting): plain decimals
/// for magnitudes in `[1e-6, 1e21)`, exponent form (`1e-7`, `1e+21`) outside.
pub fn json_number(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

/// Standard padded base64, as Go's `encoding/json` writes `[]byte`.
pub fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Go's `url.QueryEscape`: unreserved bytes (`A-Z a-z 0-9 - _ . ~`) kept, space as `+`, every
/// other byte as `%XX` (upper-case hex), appended to `out`. Scrape URLs' params and alerts'
/// generator links (`/graph?g0.expr=...`) are spelled with it.
pub fn query_escape(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
}

/// Whether Go's `strconv.IsPrint` holds (approximated with Rust's Unicode tables).
pub fn is_print(c: char) -> bool {
    c == ' ' || !(c.is_control() || c.is_whitespace() || ('\u{200b}'..='\u{200f}').contains(&c))
}

/// Go's `strconv.Quote`: printable characters verbatim, quotes and backslashes escaped,
/// the rest with Go's short escapes, `\xNN`, `\uNNNN` or `\UNNNNNNNN`. Error messages that
/// echo user input (Go's `%q`) and templates spell strings with it.
pub fn quote(s: &str) -> String {
    quote_with(s, '"')
}

/// `strconv.QuoteRune`, for `%q` of an integer.
pub fn quote_rune(c: char) -> String {
    quote_with(c.encode_utf8(&mut [0; 4]), '\'')
}

/// `strconv.Quote` with `q` as the quote character (`'` for runes).
fn quote_with(s: &str, q: char) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        if c == q || c == '\\' {
            out.push('\\');
            out.push(c);
        } else if c == char::REPLACEMENT_CHARACTER || is_print(c) {
            out.push(c);
        } else {
            match c {
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{b}' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if (c as u32) < 0x10000 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
        }
    }
    out.push(q);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_match_go() {
        for (f, want) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e100, "1e+100"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
            (-0.0, "-0"),
            (123.456, "123.456"),
        ] {
            assert_eq!(format_g(f), want, "{f}");
        }
        assert_eq!(format_f(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_f(1e-7), "0.0000001");
        assert_eq!(format_f(f64::INFINITY), "+Inf");
        assert_eq!(json_number(3.0), "3");
        assert_eq!(json_number(-0.0), "-0");
        assert_eq!(json_number(1e20), "100000000000000000000");
        assert_eq!(json_number(1e21), "1e+21");
        assert_eq!(json_number(1e-7), "1e-7");
        assert_eq!(base64_std(b"hi"), "aGk=");
        // Go: url.QueryEscape(`rate(x{a="b c"}[5m]) > 0.5*~`).
        let mut q = String::new();
        query_escape(r#"rate(x{a="b c"}[5m]) > 0.5*~é"#, &mut q);
        assert_eq!(
            q,
            "rate%28x%7Ba%3D%22b+c%22%7D%5B5m%5D%29+%3E+0.5%2A~%C3%A9"
        );
    }
}
