//! Go's `fmt` as templates reach it: `%v` printing of every value (what `{{ . }}` writes and
//! `print` joins), and `printf` with the verbs, flags, widths and precisions people use, with
//! Go's in-band complaints (`%!d(string=x)`, `%!s(MISSING)`, `%!(EXTRA int=1)`).

use std::fmt::Write as _;

use model::gofmt::format_g;

use super::gostr::{quote, quote_rune};
use super::value::Value;

/// Go's limit on widths and precisions (`fmt`'s `tooLarge`).
const MAX_WIDTH: usize = 1_000_000;

/// Printing stops once this much is built: the caller refuses anything longer anyway, and
/// `print $big $big ...` or a map of many big strings must not build gigabytes first.
const STOP: usize = super::MAX_OUTPUT_BYTES;

#[derive(Clone, Copy, Default)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprint(v)` for one operand.
pub(super) fn sprint_value(v: &Value) -> String {
    let mut out = String::new();
    print_arg(&mut out, v, 'v', Flags::default(), 0);
    out
}

/// `fmt.Sprint(args...)`: operands joined, with a space between two that are not strings.
pub(super) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        if out.len() > STOP {
            break;
        }
        let is_string = matches!(a, Value::Str(_) | Value::Html(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        print_arg(&mut out, a, 'v', Flags::default(), 0);
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln(args...)`.
pub(super) fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if out.len() > STOP {
            break;
        }
        if i > 0 {
            out.push(' ');
        }
        print_arg(&mut out, a, 'v', Flags::default(), 0);
    }
    out.push('\n');
    out
}

/// `fmt.Sprintf(format, args...)`.
pub(super) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argn = 0;
    let mut chars = format.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if out.len() > STOP {
            return out;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut f = Flags::default();
        // Flags.
        while let Some(&(_, c)) = chars.peek() {
            match c {
                '#' => f.sharp = true,
                '0' => f.zero = !f.minus,
                '+' => f.plus = true,
                '-' => {
                    f.minus = true;
                    f.zero = false;
                }
                ' ' => f.space = true,
                _ => break,
            }
            chars.next();
        }
        // Width.
        if let Some(&(_, '*')) = chars.peek() {
            chars.next();
            match args.get(argn).and_then(Value::as_i64) {
                Some(w) if (w.unsigned_abs() as usize) <= MAX_WIDTH => {
                    if w < 0 {
                        f.minus = true;
                        f.zero = false;
                    }
                    f.wid = Some(w.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argn += 1;
        } else {
            let mut w: Option<usize> = None;
            while let Some(&(_, d)) = chars.peek() {
                let Some(d) = d.to_digit(10) else { break };
                chars.next();
                w = Some(w.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
            }
            if let Some(w) = w {
                if w > MAX_WIDTH {
                    out.push_str("%!(BADWIDTH)");
                } else {
                    f.wid = Some(w);
                }
            }
        }
        // Precision.
        if let Some(&(_, '.')) = chars.peek() {
            chars.next();
            if let Some(&(_, '*')) = chars.peek() {
                chars.next();
                match args.get(argn).and_then(Value::as_i64) {
                    Some(p) if p >= 0 && (p as usize) <= MAX_WIDTH => f.prec = Some(p as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                argn += 1;
            } else {
                let mut p = 0usize;
                while let Some(&(_, d)) = chars.peek() {
                    let Some(d) = d.to_digit(10) else { break };
                    chars.next();
                    p = p.saturating_mul(10).saturating_add(d as usize);
                }
                if p > MAX_WIDTH {
                    out.push_str("%!(BADPREC)");
                } else {
                    f.prec = Some(p);
                }
            }
        }
        if !f.minus && f.wid.is_some() && f.zero {
            // Keep zero padding only to the left, as Go does.
        }
        let Some((_, verb)) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argn) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argn += 1;
        print_arg(&mut out, arg, verb, f, 0);
    }
    if argn < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[argn..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(a.fmt_type());
            if !matches!(a, Value::Invalid | Value::NilIface) {
                out.push('=');
                print_arg(&mut out, a, 'v', Flags::default(), 0);
            }
        }
        out.push(')');
    }
    out
}

fn bad_verb(out: &mut String, v: &Value, verb: char) {
    let _ = write!(out, "%!{verb}(");
    match v {
        Value::Invalid | Value::NilIface => out.push_str("<nil>"),
        v => {
            out.push_str(v.type_name());
            out.push('=');
            print_arg(out, v, 'v', Flags::default(), 0);
        }
    }
    out.push(')');
}

fn print_arg(out: &mut String, v: &Value, verb: char, f: Flags, depth: usize) {
    if verb == 'T' {
        pad(out, v.fmt_type(), f);
        return;
    }
    match v {
        Value::Invalid | Value::NilIface => match verb {
            'v' => pad(out, "<nil>", f),
            _ => bad_verb(out, v, verb),
        },
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, f),
            _ => bad_verb(out, v, verb),
        },
        Value::Int(i) => fmt_int(out, v, *i as i128, verb, f),
        Value::Uint8(u) => fmt_int(out, v, *u as i128, verb, f),
        Value::Float(x) => fmt_float(out, v, *x, verb, f),
        Value::Str(s) | Value::Html(s) => fmt_string(out, v, s, verb, f),
        Value::Time(t) => fmt_string(out, v, &t.to_string(), verb, f),
        Value::Duration(d) => fmt_string(out, v, &super::gotime::duration_string(*d), verb, f),
        Value::StrMap(m) => {
            out.push_str("map[");
            for (i, (k, val)) in m.iter().enumerate() {
                if out.len() > STOP {
                    break;
                }
                if i > 0 {
                    out.push(' ');
                }
                fmt_string(out, &Value::Invalid, k, verb, f);
                out.push(':');
                fmt_string(out, &Value::Invalid, val, verb, f);
            }
            out.push(']');
        }
        Value::AnyMap(m) => {
            out.push_str("map[");
            for (i, (k, val)) in m.iter().enumerate() {
                if out.len() > STOP {
                    break;
                }
                if i > 0 {
                    out.push(' ');
                }
                fmt_string(out, &Value::Invalid, k, verb, f);
                out.push(':');
                print_arg(out, val, verb, f, depth + 1);
            }
            out.push(']');
        }
        Value::Samples(s) => {
            out.push('[');
            for (i, smp) in s.iter().enumerate() {
                if out.len() > STOP {
                    break;
                }
                if i > 0 {
                    out.push(' ');
                }
                // Go prints pointers inside a slice as addresses.
                let _ = write!(out, "{:p}", std::rc::Rc::as_ptr(smp));
            }
            out.push(']');
        }
        Value::Sample(s) => {
            if depth == 0 {
                out.push('&');
            }
            out.push('{');
            print_arg(out, &Value::StrMap(s.labels.clone()), verb, f, depth + 1);
            out.push(' ');
            fmt_float(out, v, s.value, verb, f);
            out.push('}');
        }
        Value::Alert(a) => {
            out.push('{');
            print_arg(out, &Value::StrMap(a.labels.clone()), verb, f, depth + 1);
            out.push(' ');
            print_arg(
                out,
                &Value::StrMap(a.external_labels.clone()),
                verb,
                f,
                depth + 1,
            );
            out.push(' ');
            fmt_string(out, v, &a.external_url, verb, f);
            out.push(' ');
            fmt_float(out, v, a.value, verb, f);
            out.push('}');
        }
    }
}

/// Go's `fmt.pad`: width in runes, zeros or spaces on the left, spaces on the right.
fn pad(out: &mut String, s: &str, f: Flags) {
    let n = s.chars().count();
    let fill = f.wid.unwrap_or(0).saturating_sub(n);
    if fill == 0 {
        out.push_str(s);
    } else if f.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        out.extend(std::iter::repeat_n(if f.zero { '0' } else { ' ' }, fill));
        out.push_str(s);
    }
}

fn fmt_string(out: &mut String, v: &Value, s: &str, verb: char, f: Flags) {
    let truncated: String;
    let s = match f.prec {
        Some(p) => {
            truncated = s.chars().take(p).collect();
            truncated.as_str()
        }
        None => s,
    };
    match verb {
        'v' | 's' => pad(out, s, f),
        'q' => {
            if f.sharp && !s.contains('`') && s.chars().all(|c| c == '\t' || !c.is_control()) {
                pad(out, &format!("`{s}`"), f)
            } else {
                pad(out, &quote(s), f)
            }
        }
        'x' | 'X' => {
            let mut h = String::new();
            for (i, b) in s.bytes().enumerate() {
                if i > 0 && f.space {
                    h.push(' ');
                }
                if f.sharp && (i == 0 || f.space) {
                    h.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    let _ = write!(h, "{b:02x}");
                } else {
                    let _ = write!(h, "{b:02X}");
                }
            }
            pad(out, &h, f)
        }
        _ => match v {
            Value::Invalid => bad_verb(out, &Value::str(s), verb),
            v => bad_verb(out, v, verb),
        },
    }
}

fn fmt_int(out: &mut String, v: &Value, i: i128, verb: char, f: Flags) {
    let (base, upper) = match verb {
        'd' | 'v' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, c.encode_utf8(&mut [0; 4]), f);
            return;
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{FFFD}');
            pad(out, &quote_rune(c), f);
            return;
        }
        'U' => {
            let mut s = format!("U+{:04X}", i);
            if f.sharp {
                if let Some(c) = u32::try_from(i).ok().and_then(char::from_u32) {
                    if super::gostr::is_print(c) {
                        let _ = write!(s, " '{c}'");
                    }
                }
            }
            pad(out, &s, f);
            return;
        }
        _ => return bad_verb(out, v, verb),
    };
    let neg = i < 0;
    let u = i.unsigned_abs();
    let mut digits = match base {
        2 => format!("{u:b}"),
        8 => format!("{u:o}"),
        16 if upper => format!("{u:X}"),
        16 => format!("{u:x}"),
        _ => u.to_string(),
    };
    let mut prec = 0;
    let mut f2 = f;
    if let Some(p) = f.prec {
        if p == 0 && u == 0 {
            f2.zero = false;
            pad(out, "", f2);
            return;
        }
        prec = p;
    } else if f.zero && !f.minus && f.wid.is_some() {
        prec = f.wid.unwrap_or(0);
        if neg || f.plus || f.space {
            prec = prec.saturating_sub(1);
        }
    }
    if digits.len() < prec {
        digits = "0".repeat(prec - digits.len()) + &digits;
    }
    let mut s = String::new();
    if neg {
        s.push('-');
    } else if f.plus {
        s.push('+');
    } else if f.space {
        s.push(' ');
    }
    if f.sharp {
        match base {
            2 => s.push_str("0b"),
            8 if !digits.starts_with('0') => s.push('0'),
            16 => s.push_str(if upper { "0X" } else { "0x" }),
            _ => {}
        }
    }
    if verb == 'O' {
        s.push_str("0o");
    }
    s.push_str(&digits);
    f2.zero = false;
    pad(out, &s, f2);
}

/// Splits `format!("{:.*e}")` or `format!("{:e}")` output into digits and decimal exponent.
fn decimal_digits(x: f64, sig: Option<usize>) -> (String, i32) {
    let e = match sig {
        Some(p) => format!("{:.*e}", p.saturating_sub(1), x.abs()),
        None => format!("{:e}", x.abs()),
    };
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0').to_string();
    let digits = if digits.is_empty() {
        "0".to_string()
    } else {
        digits
    };
    (digits, exp.parse().unwrap_or(0))
}

/// `%e` from digits: `d.ddde±XX`.
fn fmt_e(digits: &str, exp: i32, prec: usize, upper: bool) -> String {
    let mut s = String::new();
    s.push_str(&digits[..1]);
    if prec > 0 {
        s.push('.');
        let frac = &digits[1..];
        s.push_str(&frac[..frac.len().min(prec)]);
        s.extend(std::iter::repeat_n('0', prec.saturating_sub(frac.len())));
    }
    s.push(if upper { 'E' } else { 'e' });
    s.push(if exp < 0 { '-' } else { '+' });
    let _ = write!(s, "{:02}", exp.abs());
    s
}

/// `%f` from digits: `dp` digits before the point.
fn fmt_fixed(digits: &str, dp: i32, prec: usize) -> String {
    let mut s = String::new();
    if dp <= 0 {
        s.push('0');
    } else {
        for i in 0..dp as usize {
            s.push(digits.as_bytes().get(i).map_or('0', |&b| b as char));
        }
    }
    if prec > 0 {
        s.push('.');
        for i in 0..prec as i64 {
            let idx = dp as i64 + i;
            let c = if idx < 0 {
                '0'
            } else {
                digits
                    .as_bytes()
                    .get(idx as usize)
                    .map_or('0', |&b| b as char)
            };
            s.push(c);
        }
    }
    s
}

/// `strconv.FormatFloat(|x|, fmt, prec, 64)` without the sign; `None` precision is shortest.
pub(super) fn format_float_abs(x: f64, verb: char, prec: Option<usize>) -> String {
    let x = x.abs();
    match verb {
        'e' | 'E' => {
            let p = prec.unwrap_or(6);
            let (d, e) = if x == 0.0 {
                ("0".into(), 0)
            } else {
                decimal_digits(x, Some(p + 1))
            };
            fmt_e(&d, e, p, verb == 'E')
        }
        'f' | 'F' => format!("{:.*}", prec.unwrap_or(6), x),
        _ => {
            // 'g' / 'G'.
            let upper = verb == 'G';
            let Some(p) = prec else {
                let s = format_g(x);
                return if upper { s.to_uppercase() } else { s };
            };
            let p = p.max(1);
            let (d, e) = if x == 0.0 {
                ("0".into(), 0)
            } else {
                decimal_digits(x, Some(p))
            };
            let nd = d.len() as i32;
            let dp = e + 1;
            let mut eprec = p as i32;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            if e < -4 || e >= eprec {
                let pr = (p as i32).min(nd);
                fmt_e(&d, e, (pr - 1).max(0) as usize, upper)
            } else {
                let pr = if p as i32 > dp { nd } else { p as i32 };
                fmt_fixed(&d, dp, (pr - dp).max(0) as usize)
            }
        }
    }
}

fn fmt_float(out: &mut String, v: &Value, x: f64, verb: char, f: Flags) {
    let (verb, prec) = match verb {
        'v' => ('g', None),
        'g' | 'G' | 'x' | 'X' | 'b' => (
            if matches!(verb, 'x' | 'X' | 'b') {
                'g'
            } else {
                verb
            },
            f.prec,
        ),
        'f' | 'F' | 'e' | 'E' => (verb, Some(f.prec.unwrap_or(6))),
        _ => return bad_verb(out, v, verb),
    };
    let body = if x.is_nan() {
        "NaN".to_string()
    } else if x.is_infinite() {
        "Inf".to_string()
    } else {
        format_float_abs(x, verb, prec)
    };
    let sign = if x.is_sign_negative() && !x.is_nan() {
        '-'
    } else {
        '+'
    };
    let mut num = format!("{sign}{body}");
    if f.space && sign == '+' && !f.plus {
        num.replace_range(0..1, " ");
    }
    if x.is_nan() || x.is_infinite() {
        if x.is_nan() && !f.space && !f.plus {
            num.remove(0);
        }
        let mut f2 = f;
        f2.zero = false;
        pad(out, &num, f2);
        return;
    }
    if f.plus || !num.starts_with('+') {
        if f.zero && !f.minus && f.wid.is_some_and(|w| w > num.chars().count()) {
            let w = f.wid.unwrap_or(0);
            out.push_str(&num[..1]);
            out.extend(std::iter::repeat_n('0', w - num.chars().count()));
            out.push_str(&num[1..]);
            return;
        }
        pad(out, &num, f);
        return;
    }
    pad(out, &num[1..], f);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> Value {
        Value::Float(x)
    }

    #[test]
    fn printf_matches_go() {
        let s = |fmt: &str, args: &[Value]| sprintf(fmt, args);
        assert_eq!(s("%.2f", &[f(1.23456)]), "1.23");
        assert_eq!(s("%0.2f", &[f(3720.01)]), "3720.01");
        assert_eq!(
            s("%5.1f|%-8.3f|%08.3f", &[f(2.25), f(1.0), f(-1.5)]),
            "  2.2|1.000   |-001.500"
        );
        assert_eq!(
            s(
                "%d %5d %-5d| %05d %x %X %o %b",
                &[
                    Value::Int(42),
                    Value::Int(42),
                    Value::Int(42),
                    Value::Int(-42),
                    Value::Int(255),
                    Value::Int(255),
                    Value::Int(8),
                    Value::Int(5)
                ]
            ),
            "42    42 42   | -0042 ff FF 10 101"
        );
        assert_eq!(
            s(
                "%s %q %10s|%-10s|%.2s",
                &[
                    Value::str("a"),
                    Value::str("b\n"),
                    Value::str("r"),
                    Value::str("l"),
                    Value::str("xyz")
                ]
            ),
            "a \"b\\n\"          r|l         |xy"
        );
        assert_eq!(
            s(
                "%e %E %g %g %g",
                &[f(1234.5678), f(0.000123), f(1e6), f(0.1), f(100.0)]
            ),
            "1.234568e+03 1.230000E-04 1e+06 0.1 100"
        );
        assert_eq!(
            s(
                "%.3g %.4g %.4g %.4g %.10g",
                &[
                    f(1234.5678),
                    f(1.0),
                    f(1234567.0),
                    f(0.00012345),
                    f(1.0 / 3.0)
                ]
            ),
            "1.23e+03 1 1.235e+06 0.0001234 0.3333333333"
        );
        assert_eq!(
            s(
                "%v %v %v %v",
                &[f(1e21), f(123456789.0), f(-0.0), f(f64::NAN)]
            ),
            "1e+21 1.23456789e+08 -0 NaN"
        );
        assert_eq!(
            s(
                "%f %.1f %5.1f %+.1f",
                &[
                    f(f64::INFINITY),
                    f(f64::NEG_INFINITY),
                    f(f64::NAN),
                    f(f64::NAN)
                ]
            ),
            "+Inf -Inf   NaN +NaN"
        );
        assert_eq!(s("%d", &[f(1.5)]), "%!d(float64=1.5)");
        assert_eq!(s("%s", &[Value::Int(5)]), "%!s(int=5)");
        assert_eq!(s("%s %s", &[Value::str("a")]), "a %!s(MISSING)");
        assert_eq!(
            s("%s", &[Value::str("a"), Value::Int(1), Value::str("b")]),
            "a%!(EXTRA int=1, string=b)"
        );
        assert_eq!(s("100%% %", &[]), "100% %!(NOVERB)");
        assert_eq!(
            s("%v %d", &[Value::Invalid, Value::NilIface]),
            "<nil> %!d(<nil>)"
        );
        assert_eq!(
            s(
                "%t %v %T %T",
                &[
                    Value::Bool(true),
                    Value::Bool(false),
                    f(1.0),
                    Value::str("")
                ]
            ),
            "true false float64 string"
        );
        assert_eq!(
            s(
                "%x % x %c %U",
                &[
                    Value::str("hi"),
                    Value::str("hi"),
                    Value::Int(65),
                    Value::Int(0x1F600)
                ]
            ),
            "6869 68 69 A U+1F600"
        );
        assert_eq!(s("%6.2f%%", &[f(99.5)]), " 99.50%");
    }

    #[test]
    fn sprint_spaces_like_go() {
        assert_eq!(
            sprint(&[Value::Int(1), Value::Int(2), Value::str("a"), Value::Int(3)]),
            "1 2a3"
        );
        assert_eq!(sprintln(&[Value::Int(1), Value::str("a")]), "1 a\n");
        let mut m = super::super::value::StrMap::new();
        m.insert("b".into(), "2".into());
        m.insert("a".into(), "1".into());
        assert_eq!(sprint_value(&Value::StrMap(m.into())), "map[a:1 b:2]");
    }
}
