//! Prometheus 3's duration expressions, which `promql-parser` does not parse: arithmetic in
//! range and subquery brackets (`[5m+1m]`, `[1h/2:10s*3]`) and after `offset`
//! (`offset (2*1m)`, `offset -step()`), with `step()`, `range()`, `min_of()` and `max_of()`.
//!
//! Before parsing, each such expression is computed (in seconds, as Prometheus does, with
//! bare numbers meaning seconds) and replaced by a millisecond literal the parser accepts.
//! Plain durations are left alone, and text that is not a valid expression is left for the
//! parser to reject, so errors keep the parser's wording. String literals are skipped.

/// The query with duration expressions replaced by literals. `step_ms` and `range_ms` are
/// the query's step and `end - start` (both 0 for an instant query).
pub fn rewrite(query: &str, step_ms: i64, range_ms: i64) -> String {
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = crate::literals::skip_string(b, i);
            }
            b'[' => {
                let Some(end) = matching(b, i, b'[', b']') else {
                    break;
                };
                let inner = &query[i + 1..end];
                if let Some(rep) = bracket(inner, step_ms, range_ms) {
                    out.push_str(&query[copied..i + 1]);
                    out.push_str(&rep);
                    copied = end;
                }
                i = end + 1;
            }
            c if (c == b'o' || c == b'O')
                && query[i..].len() >= 6
                && query[i..i + 6].eq_ignore_ascii_case("offset")
                && (i == 0 || !is_ident(b[i - 1]))
                && query[i + 6..].starts_with(|c: char| {
                    c.is_whitespace() || c == '(' || c == '-' || c == '+'
                }) =>
            {
                let start = i + 6;
                if let Some((end, rep)) = offset(query, start, step_ms, range_ms) {
                    if rep == "0ms" {
                        // The parser refuses a zero offset; no offset means the same.
                        out.push_str(&query[copied..i]);
                    } else {
                        out.push_str(&query[copied..start]);
                        out.push(' ');
                        out.push_str(&rep);
                    }
                    copied = end;
                    i = end;
                } else {
                    i = start;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&query[copied..]);
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn matching(b: &[u8], i: usize, open: u8, close: u8) -> Option<usize> {
    let mut depth = 0;
    let mut j = i;
    while j < b.len() {
        match b[j] {
            b'"' | b'\'' | b'`' => {
                j = crate::literals::skip_string(b, j);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

fn is_plain_duration(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.chars().next().is_some_and(|c| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

/// The bracket contents rewritten, or None when they need no rewrite or cannot be computed.
fn bracket(inner: &str, step: i64, range: i64) -> Option<String> {
    let (r, s) = match top_level_colon(inner) {
        Some(c) => (&inner[..c], Some(&inner[c + 1..])),
        None => (inner, None),
    };
    let fix = |part: &str| -> Option<String> {
        if part.trim().is_empty() || is_plain_duration(part) {
            return Some(part.to_string());
        }
        let v = Calc::new(part, step, range).all()?;
        Some(format!("{}ms", (v * 1000.0).round() as i64))
    };
    let nr = fix(r)?;
    let out = match s {
        Some(s) => format!("{nr}:{}", fix(s)?),
        None => nr,
    };
    if out == inner {
        None
    } else {
        Some(out)
    }
}

fn top_level_colon(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ':' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// The offset operand starting at `start`: `[sign] atom`; returns where it ends and the
/// literal, or None when it is a plain duration the parser reads itself.
fn offset(q: &str, start: usize, step: i64, range: i64) -> Option<(usize, String)> {
    let mut c = Calc::new(&q[start..], step, range);
    c.ws();
    let atom_start = c.pos;
    let v = c.signed_atom()?;
    let text = &q[start + atom_start..start + c.pos];
    let plain = text
        .trim_start_matches(['-', '+'])
        .trim()
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric())
        && !text.contains('(');
    if plain {
        return None;
    }
    let ms = (v * 1000.0).round() as i64;
    Some((start + c.pos, format!("{ms}ms")))
}

struct Calc<'a> {
    s: &'a [u8],
    pos: usize,
    step: f64,
    range: f64,
}

impl<'a> Calc<'a> {
    fn new(s: &'a str, step: i64, range: i64) -> Calc<'a> {
        Calc {
            s: s.as_bytes(),
            pos: 0,
            step: step as f64 / 1000.0,
            range: range as f64 / 1000.0,
        }
    }

    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.pos < self.s.len() && self.s[self.pos] == c {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The whole input as one expression.
    fn all(mut self) -> Option<f64> {
        let v = self.expr(0)?;
        self.ws();
        (self.pos == self.s.len()).then_some(v)
    }

    fn expr(&mut self, depth: usize) -> Option<f64> {
        if depth > 64 {
            return None;
        }
        let mut v = self.mul(depth)?;
        loop {
            if self.eat(b'+') {
                v += self.mul(depth)?;
            } else if self.eat(b'-') {
                v -= self.mul(depth)?;
            } else {
                return Some(v);
            }
        }
    }

    fn mul(&mut self, depth: usize) -> Option<f64> {
        let mut v = self.unary(depth)?;
        loop {
            if self.eat(b'*') {
                v *= self.unary(depth)?;
            } else if self.eat(b'/') {
                v /= self.unary(depth)?;
            } else if self.eat(b'%') {
                v %= self.unary(depth)?;
            } else {
                return Some(v);
            }
        }
    }

    fn unary(&mut self, depth: usize) -> Option<f64> {
        if self.eat(b'-') {
            return Some(-self.unary(depth + 1)?);
        }
        if self.eat(b'+') {
            return self.unary(depth + 1);
        }
        self.pow(depth)
    }

    fn pow(&mut self, depth: usize) -> Option<f64> {
        let base = self.atom(depth)?;
        if self.eat(b'^') {
            let e = self.unary(depth + 1)?;
            return Some(base.powf(e));
        }
        Some(base)
    }

    /// `offset`'s operand: signs, then one atom (so `offset 1m + 2` keeps `+ 2` outside).
    fn signed_atom(&mut self) -> Option<f64> {
        if self.eat(b'-') {
            return Some(-self.signed_atom()?);
        }
        if self.eat(b'+') {
            return self.signed_atom();
        }
        self.atom(0)
    }

    fn atom(&mut self, depth: usize) -> Option<f64> {
        self.ws();
        if self.eat(b'(') {
            let v = self.expr(depth + 1)?;
            return self.eat(b')').then_some(v);
        }
        let st = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphabetic() || self.s[self.pos] == b'_')
        {
            self.pos += 1;
        }
        if self.pos > st {
            let name = std::str::from_utf8(&self.s[st..self.pos])
                .ok()?
                .to_ascii_lowercase();
            if !self.eat(b'(') {
                return None;
            }
            return match name.as_str() {
                "step" => self.eat(b')').then_some(self.step),
                "range" => self.eat(b')').then_some(self.range),
                "min_of" | "max_of" => {
                    let a = self.expr(depth + 1)?;
                    if !self.eat(b',') {
                        return None;
                    }
                    let b = self.expr(depth + 1)?;
                    if !self.eat(b')') {
                        return None;
                    }
                    Some(if a.is_nan() || b.is_nan() {
                        f64::NAN
                    } else if name == "min_of" {
                        a.min(b)
                    } else {
                        a.max(b)
                    })
                }
                _ => None,
            };
        }
        self.number()
    }

    /// A number (seconds) or a duration literal like `1h30m` or `8000ms`.
    fn number(&mut self) -> Option<f64> {
        let st = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_digit() || self.s[self.pos] == b'.')
        {
            self.pos += 1;
        }
        if self.pos == st {
            return None;
        }
        let first: f64 = std::str::from_utf8(&self.s[st..self.pos])
            .ok()?
            .parse()
            .ok()?;
        if self.pos >= self.s.len() || !self.s[self.pos].is_ascii_alphabetic() {
            return Some(first);
        }
        // A duration: number-unit pairs.
        let mut total = 0.0;
        let mut n = first;
        loop {
            let us = self.pos;
            while self.pos < self.s.len() && self.s[self.pos].is_ascii_alphabetic() {
                self.pos += 1;
            }
            let mult = match &self.s[us..self.pos] {
                b"ms" => 0.001,
                b"s" => 1.0,
                b"m" => 60.0,
                b"h" => 3600.0,
                b"d" => 86400.0,
                b"w" => 604800.0,
                b"y" => 31536000.0,
                _ => return None,
            };
            total += n * mult;
            let ns = self.pos;
            while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                self.pos += 1;
            }
            if self.pos == ns {
                return Some(total);
            }
            n = std::str::from_utf8(&self.s[ns..self.pos])
                .ok()?
                .parse()
                .ok()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn rewrites_brackets_and_offsets() {
        assert_eq!(rewrite("rate(x[5m])", 0, 0), "rate(x[5m])");
        assert_eq!(rewrite("changes(x[26m+4m])", 0, 0), "changes(x[1800000ms])");
        assert_eq!(rewrite("x[29s+1s:5s+5s]", 0, 0), "x[30000ms:10000ms]");
        assert_eq!(rewrite("x[1h30m % 1h]", 0, 0), "x[1800000ms]");
        assert_eq!(rewrite("x offset (-2 ^ 2)", 0, 0), "x offset -4000ms");
        assert_eq!(rewrite("x offset -step()*2", 5000, 0), "x offset -5000ms*2");
        assert_eq!(rewrite("x offset 100 + 2", 0, 0), "x offset 100 + 2");
        assert_eq!(rewrite("x offset range()", 0, 0), "x ");
        assert_eq!(rewrite("x{a=\"[1+1]\"}", 0, 0), "x{a=\"[1+1]\"}");
    }
}
