//! Go string semantics the parser cannot keep: in Prometheus a `\xHH` (or octal) escape is
//! one raw byte, so `"a\xc5z"` is not valid UTF-8 and is refused as a label name, while
//! `promql-parser` decodes the escape to the character U+00C5 and the information is lost.
//! [`non_utf8_literals`] finds such literals in the query text beforehand, as the parser
//! will have decoded them, so label-name checks can refuse them as Prometheus does.

/// The index just past the string literal that opens at `b[i]` (a `"`, `'` or `` ` ``; raw
/// backtick strings have no escapes), or the end of the query if it is unterminated. The
/// query rewrites (`durations`, `info`, `trim`, `ext`) skip literals with it so they never
/// touch text inside strings.
pub(crate) fn skip_string(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\\' && q != b'`' {
            j += 2;
            continue;
        }
        if b[j] == q {
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// The parser's decoding of every string literal whose Go bytes are not valid UTF-8.
pub(crate) fn non_utf8_literals(query: &str) -> Vec<String> {
    let b = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let q = b[i];
        if q != b'"' && q != b'\'' {
            if q == b'`' {
                // Raw strings have no escapes.
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            i += 1;
            continue;
        }
        i += 1;
        let mut go: Vec<u8> = Vec::new();
        let mut ours = String::new();
        let mut raw_byte = false;
        while i < b.len() && b[i] != q {
            if b[i] != b'\\' || i + 1 >= b.len() {
                let ch = query[i..].chars().next().unwrap_or('\u{FFFD}');
                let mut buf = [0u8; 4];
                go.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                ours.push(ch);
                i += ch.len_utf8().max(1);
                continue;
            }
            let e = b[i + 1];
            i += 2;
            let hex = |s: &[u8]| -> Option<u32> {
                std::str::from_utf8(s)
                    .ok()
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
            };
            match e {
                b'x' if i + 2 <= b.len() => {
                    let v = hex(&b[i..i + 2]).unwrap_or(0);
                    i += 2;
                    go.push(v as u8);
                    raw_byte |= v >= 0x80;
                    ours.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
                }
                b'0'..=b'7' if i + 2 <= b.len() => {
                    let s = std::str::from_utf8(&b[i - 1..i + 2]).unwrap_or("0");
                    let v = u32::from_str_radix(s, 8).unwrap_or(0);
                    i += 2;
                    go.push(v as u8);
                    raw_byte |= v >= 0x80;
                    ours.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
                }
                _ => {
                    // Other escapes decode to the same character in both.
                    ours.push(e as char);
                    go.push(e);
                }
            }
        }
        i += 1;
        if raw_byte && std::str::from_utf8(&go).is_err() {
            out.push(ours);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::non_utf8_literals;

    #[test]
    fn finds_literals_that_are_not_utf8_in_go() {
        assert_eq!(
            non_utf8_literals(r#"count_values("a\xc5z", v)"#),
            ["a\u{c5}z"]
        );
        assert_eq!(
            non_utf8_literals(r#"label_replace(m, "\xff", "", "s", "")"#),
            ["\u{ff}"]
        );
        // \xc3\xa5 is "å" in UTF-8: valid in Go too.
        assert!(non_utf8_literals(r#"x{a="\xc3\xa5"}"#).is_empty());
        assert!(non_utf8_literals(r#"x{a="Å"}"#).is_empty());
    }
}
