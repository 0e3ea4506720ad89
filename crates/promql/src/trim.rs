//! Prometheus 3's histogram trim operators, `h </ x` (keep the observations below `x`) and
//! `h >/ x` (keep those above), which the `promql-parser` grammar does not know.
//!
//! Before parsing, [`rewrite`] replaces each trim operator by `atan2`, an operator of the same
//! precedence (Prometheus lists `atan2` and the trims together with `*`, `/` and `%`), and
//! records which `atan2` tokens of the rewritten text were trims, in text order. After
//! parsing, [`trims_of`] walks the expression in text order and maps the address of every
//! binary expression that came from a trim to its direction, so the evaluator can tell a real
//! `atan2` from a trim. Text inside strings, comments and label matchers is left alone.

use std::collections::HashMap;

use promql_parser::parser::token as tok;
use promql_parser::parser::Expr;

/// The query with trims replaced by `atan2`, and for each `atan2` token in order whether it
/// is a trim (`Some(true)` for `</`, `Some(false)` for `>/`) or a real `atan2` (`None`).
/// `None` when the query has no trim operator (the common case costs one scan).
pub(crate) fn rewrite(q: &str) -> Option<(String, Vec<Option<bool>>)> {
    let b = q.as_bytes();
    let mut out = String::with_capacity(q.len() + 16);
    let mut marks = Vec::new();
    let mut any = false;
    let mut braces = 0usize;
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => i = crate::literals::skip_string(b, i),
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => {
                braces += 1;
                i += 1;
            }
            b'}' => {
                braces = braces.saturating_sub(1);
                i += 1;
            }
            b'<' | b'>' if braces == 0 && b.get(i + 1) == Some(&b'/') => {
                out.push_str(&q[last..i]);
                out.push_str(" atan2 ");
                marks.push(Some(c == b'<'));
                any = true;
                i += 2;
                last = i;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b':' => {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                if braces == 0 && q[st..i].eq_ignore_ascii_case("atan2") {
                    marks.push(None);
                }
            }
            _ => i += 1,
        }
    }
    if !any {
        return None;
    }
    out.push_str(&q[last.min(q.len())..]);
    Some((out, marks))
}

/// Addresses of the binary expressions of `e` that are trims, with their direction.
pub(crate) fn trims_of(e: &Expr, marks: &[Option<bool>]) -> HashMap<usize, bool> {
    let mut out = HashMap::new();
    let mut next = 0usize;
    walk(e, marks, &mut next, &mut out);
    out
}

fn walk(e: &Expr, marks: &[Option<bool>], next: &mut usize, out: &mut HashMap<usize, bool>) {
    match e {
        Expr::Binary(b) => {
            walk(&b.lhs, marks, next, out);
            if b.op.id() == tok::T_ATAN2 {
                if let Some(Some(below)) = marks.get(*next) {
                    out.insert(b as *const _ as usize, *below);
                }
                *next += 1;
            }
            walk(&b.rhs, marks, next, out);
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                walk(p, marks, next, out);
            }
            walk(&a.expr, marks, next, out);
        }
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, marks, next, out);
            }
        }
        Expr::Paren(p) => walk(&p.expr, marks, next, out),
        Expr::Unary(u) => walk(&u.expr, marks, next, out),
        Expr::Subquery(s) => walk(&s.expr, marks, next, out),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_become_marked_atan2_outside_strings_and_matchers() {
        let (q, marks) = rewrite(r#"h{a="</"} </ 2 atan2 x >/ y"#).unwrap();
        assert_eq!(q, r#"h{a="</"}  atan2  2 atan2 x  atan2  y"#);
        assert_eq!(marks, [Some(true), None, Some(false)]);
        assert!(rewrite("a < /b/").is_none() || rewrite("rate(x[5m]) / 2").is_none());
        let e = promql_parser::parser::parse(&q).unwrap();
        assert_eq!(trims_of(&e, &marks).len(), 2);
    }
}
