//! Go's string spellings that templates expose: `strconv.Quote` and `Unquote`, `ParseFloat`
//! and `ParseInt` with their error texts, `url.QueryEscape`, and the `html`/`js` escapers of
//! `text/template`. Kept apart from the evaluator so each can be checked against Go alone.

use std::fmt::Write as _;

pub(super) use model::gofmt::{is_print, quote, quote_rune};

/// `strconv.UnquoteChar`: one possibly escaped character from the front of `s`, and the rest.
pub(super) fn unquote_char(s: &str, q: char) -> Result<(char, &str), ()> {
    let mut it = s.chars();
    let c = it.next().ok_or(())?;
    if c == q && (q == '\'' || q == '"') {
        return Err(());
    }
    if c != '\\' {
        return Ok((c, it.as_str()));
    }
    let e = it.next().ok_or(())?;
    let rest = it.as_str();
    let simple = match e {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' => Some('\\'),
        '\'' | '"' if e == q => Some(e),
        _ => None,
    };
    if let Some(c) = simple {
        return Ok((c, rest));
    }
    let hex = |n: usize| -> Result<(char, &str), ()> {
        let digits = rest.get(..n).ok_or(())?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| ())?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(());
        }
        // A \x byte above 0x7f is a raw byte in Go; we keep it as the replacement character.
        let c = if n == 2 && v > 0x7f {
            char::REPLACEMENT_CHARACTER
        } else {
            char::from_u32(v).ok_or(())?
        };
        Ok((c, &rest[n..]))
    };
    match e {
        'x' => hex(2),
        'u' => hex(4),
        'U' => hex(8),
        '0'..='7' => {
            let digits = s.get(1..4).ok_or(())?;
            if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(());
            }
            let v = u32::from_str_radix(digits, 8).map_err(|_| ())?;
            if v > 255 {
                return Err(());
            }
            let c = if v > 0x7f {
                char::REPLACEMENT_CHARACTER
            } else {
                char::from_u32(v).ok_or(())?
            };
            Ok((c, &s[4..]))
        }
        _ => Err(()),
    }
}

/// `strconv.Unquote` for the string literals the lexer accepts; Go's error is `invalid syntax`.
pub(super) fn unquote(s: &str) -> Result<String, String> {
    let bad = || "invalid syntax".to_string();
    if s.len() < 2 {
        return Err(bad());
    }
    if let Some(inner) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        if inner.contains('`') {
            return Err(bad());
        }
        return Ok(inner.replace('\r', ""));
    }
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(bad)?;
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while !rest.is_empty() {
        if rest.starts_with('\n') {
            return Err(bad());
        }
        let (c, r) = unquote_char(rest, '"').map_err(|_| bad())?;
        out.push(c);
        rest = r;
    }
    Ok(out)
}

/// `strconv.ParseFloat(s, 64)` with Go's error texts.
pub(super) fn parse_float(s: &str) -> Result<f64, String> {
    let syntax = || format!("strconv.ParseFloat: parsing {}: invalid syntax", quote(s));
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    let special = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    // Rust accepts what Go does for decimal floats; Go also takes `_` between digits after a
    // base prefix and hex floats, which alert templates do not use.
    if !special
        && (body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')))
    {
        return Err(syntax());
    }
    let v: f64 = s.parse().map_err(|_| syntax())?;
    if v.is_infinite() && !special {
        return Err(format!(
            "strconv.ParseFloat: parsing {}: value out of range",
            quote(s)
        ));
    }
    Ok(v)
}

/// `strconv.ParseInt(s, 0, 64)` and `ParseUint(s, 0, 64)`: base prefixes, `_` separators.
pub(super) fn parse_int_base0(s: &str) -> (Option<i64>, Option<u64>) {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let signed = s.starts_with(['+', '-']);
    let (radix, digits, prefixed) =
        if let Some(r) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
            (16, r, true)
        } else if let Some(r) = body.strip_prefix("0o").or(body.strip_prefix("0O")) {
            (8, r, true)
        } else if let Some(r) = body.strip_prefix("0b").or(body.strip_prefix("0B")) {
            (2, r, true)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..], true)
        } else {
            (10, body, false)
        };
    if digits.is_empty() || (!prefixed && digits.starts_with('_')) {
        return (None, None);
    }
    if digits.contains("__") || digits.ends_with('_') {
        return (None, None);
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || !clean.chars().all(|c| c.is_digit(radix)) {
        return (None, None);
    }
    let mag = u64::from_str_radix(&clean, radix).ok();
    let unsigned = if signed { None } else { mag };
    let int = mag.and_then(|m| {
        if neg {
            if m <= i64::MAX as u64 + 1 {
                Some((m as i128).wrapping_neg() as i64)
            } else {
                None
            }
        } else {
            i64::try_from(m).ok()
        }
    });
    (int, unsigned)
}

/// `url.QueryEscape`, returning the string.
pub(super) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    model::gofmt::query_escape(s, &mut out);
    out
}

/// `template.HTMLEscapeString`.
pub(super) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `template.JSEscapeString`.
pub(super) fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x80 && !is_print(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c if (c as u32) >= 0x80 && !is_print(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_go() {
        assert_eq!(quote("a\"b\\c\n\t\u{1}é"), r#""a\"b\\c\n\t\x01é""#);
        assert_eq!(unquote(r#""a\x41\u00e9\n\101""#).unwrap(), "aAé\nA");
        assert_eq!(unquote("`a\\n`").unwrap(), "a\\n");
        assert!(unquote(r#""\q""#).is_err());
        assert_eq!(quote_rune('x'), "'x'");
    }

    #[test]
    fn numbers_parse_like_go() {
        assert_eq!(parse_int_base0("0x1F"), (Some(31), Some(31)));
        assert_eq!(parse_int_base0("017"), (Some(15), Some(15)));
        assert_eq!(parse_int_base0("-5"), (Some(-5), None));
        assert_eq!(parse_int_base0("1_000"), (Some(1000), Some(1000)));
        assert_eq!(parse_int_base0("_1"), (None, None));
        assert_eq!(parse_int_base0("0x_1"), (Some(1), Some(1)));
        assert_eq!(
            parse_int_base0("18446744073709551615"),
            (None, Some(u64::MAX))
        );
        assert_eq!(parse_float("1.5").unwrap(), 1.5);
        assert_eq!(parse_float("+Inf").unwrap(), f64::INFINITY);
        assert_eq!(
            parse_float("one").unwrap_err(),
            r#"strconv.ParseFloat: parsing "one": invalid syntax"#
        );
        assert_eq!(
            parse_float("1e999").unwrap_err(),
            r#"strconv.ParseFloat: parsing "1e999": value out of range"#
        );
    }

    #[test]
    fn escapers_match_go() {
        assert_eq!(query_escape("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(
            html_escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"
        );
        assert_eq!(
            js_escape("a'b\"<=>&\n"),
            "a\\'b\\\"\\u003C\\u003D\\u003E\\u0026\\u000A"
        );
    }
}
