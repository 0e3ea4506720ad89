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
    scan(query, &mut Computed { step_ms, range_ms })
}

/// The query with each duration expression replaced by a distinct placeholder duration
/// (`<ms>ms`), for printing it back as Prometheus prints it: `Kept::printed` maps each
/// placeholder's milliseconds to the expression in Prometheus's spelling (`5m + 1m`,
/// `-step()`, `min_of(step(), 1s)`). A lone literal, however written (`(300)`, `-(5m)`), is
/// not an expression to Prometheus either: it becomes the plain duration it stands for.
pub(crate) fn keep(query: &str) -> (String, Kept) {
    // Placeholders must not collide with durations the query writes itself.
    let mut years = PLACEHOLDER_YEARS;
    while query.contains(&format!("{years}y")) {
        years += 1;
    }
    let mut kept = Kept {
        years,
        printed: Vec::new(),
    };
    let text = scan(query, &mut kept);
    (text, kept)
}

/// Placeholders are this many years plus their index + 1 in milliseconds: no duration a
/// query means, and each unit small enough for the parser's 32-bit unit counts.
const PLACEHOLDER_YEARS: i64 = 7777;

const YEAR_MS: i64 = 365 * 86_400_000;

/// Duration expressions set aside by [`keep`].
#[derive(Debug, Default)]
pub(crate) struct Kept {
    years: i64,
    printed: Vec<String>,
}

impl Kept {
    /// The expression a placeholder duration stands for, in Prometheus's spelling.
    pub(crate) fn printed(&self, ms: i64) -> Option<&str> {
        if self.printed.is_empty() {
            return None;
        }
        let i = ms.checked_sub(self.years * YEAR_MS + 1)?;
        self.printed
            .get(usize::try_from(i).ok()?)
            .map(String::as_str)
    }
}

/// A duration literal the parser reads back as `ms` milliseconds: in units, since it counts
/// each unit in 32 bits (`5184000000ms` would not parse, `60d` does).
fn literal(ms: i64) -> String {
    match ms {
        0 => "0ms".into(),
        ms if ms < 0 => format!("-{}", crate::format::model_duration(-ms)),
        ms => crate::format::model_duration(ms),
    }
}

/// What replaces a duration expression that is not a plain duration.
trait Replace {
    /// The literal for `d`, or None to leave the text for the parser to judge.
    fn replace(&mut self, d: &Dur) -> Option<String>;
}

/// Evaluation: the expression's value for this query's step and range.
struct Computed {
    step_ms: i64,
    range_ms: i64,
}

impl Replace for Computed {
    fn replace(&mut self, d: &Dur) -> Option<String> {
        let v = d.eval(self.step_ms as f64 / 1000.0, self.range_ms as f64 / 1000.0);
        Some(literal((v * 1000.0).round() as i64))
    }
}

impl Replace for Kept {
    fn replace(&mut self, d: &Dur) -> Option<String> {
        if let Some(v) = d.literal() {
            return Some(literal((v * 1000.0).round() as i64));
        }
        self.printed.push(d.to_string());
        Some(format!("{}y{}ms", self.years, self.printed.len()))
    }
}

fn scan(query: &str, with: &mut dyn Replace) -> String {
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
                if let Some(rep) = bracket(inner, with) {
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
                if let Some((end, rep)) = offset(query, start, with) {
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
fn bracket(inner: &str, with: &mut dyn Replace) -> Option<String> {
    let (r, s) = match top_level_colon(inner) {
        Some(c) => (&inner[..c], Some(&inner[c + 1..])),
        None => (inner, None),
    };
    let mut fix = |part: &str| -> Option<String> {
        if part.trim().is_empty() || is_plain_duration(part) {
            return Some(part.to_string());
        }
        with.replace(&Calc::new(part).all()?)
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
fn offset(q: &str, start: usize, with: &mut dyn Replace) -> Option<(usize, String)> {
    let mut c = Calc::new(&q[start..]);
    c.ws();
    let atom_start = c.pos;
    let d = c.signed_atom(0)?;
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
    Some((start + c.pos, with.replace(&d)?))
}

/// A duration expression as Prometheus's parser builds it (its `DurationExpr`).
#[derive(Debug, Clone, PartialEq)]
enum Dur {
    /// A number of seconds; `duration` when written with units (`5m`), not as a number.
    Num {
        secs: f64,
        duration: bool,
    },
    Step,
    Range,
    /// `min_of(a, b)` (`true`) or `max_of(a, b)`.
    MinMax(bool, Box<Dur>, Box<Dur>),
    /// Unary minus of a non-literal.
    Neg(Box<Dur>),
    /// `+ - * / % ^`.
    Bin(u8, Box<Dur>, Box<Dur>),
    /// A parenthesised non-literal (Prometheus's `Wrapped`).
    Paren(Box<Dur>),
}

impl Dur {
    fn eval(&self, step: f64, range: f64) -> f64 {
        match self {
            Dur::Num { secs, .. } => *secs,
            Dur::Step => step,
            Dur::Range => range,
            Dur::MinMax(min, a, b) => {
                let (a, b) = (a.eval(step, range), b.eval(step, range));
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else if *min {
                    a.min(b)
                } else {
                    a.max(b)
                }
            }
            Dur::Neg(a) => -a.eval(step, range),
            Dur::Paren(a) => a.eval(step, range),
            Dur::Bin(op, a, b) => {
                let (a, b) = (a.eval(step, range), b.eval(step, range));
                match op {
                    b'+' => a + b,
                    b'-' => a - b,
                    b'*' => a * b,
                    b'/' => a / b,
                    b'%' => a % b,
                    _ => a.powf(b),
                }
            }
        }
    }

    /// The value of a lone literal, which Prometheus keeps as a plain duration.
    fn literal(&self) -> Option<f64> {
        match self {
            Dur::Num { secs, .. } => Some(*secs),
            _ => None,
        }
    }

    /// Unary minus: literals fold into negative literals, as Prometheus's grammar does.
    fn neg(self) -> Dur {
        match self {
            Dur::Num { secs, duration } => Dur::Num {
                secs: -secs,
                duration,
            },
            d => Dur::Neg(Box::new(d)),
        }
    }

    /// Parentheses: kept around expressions (`Wrapped`), dropped around literals.
    fn paren(self) -> Dur {
        match self {
            d @ Dur::Num { .. } => d,
            d => Dur::Paren(Box::new(d)),
        }
    }
}

/// Prometheus's `DurationExpr.String()` (and `NumberLiteral.String()` for its literals).
impl std::fmt::Display for Dur {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dur::Num { secs, duration } if *duration => {
                // Go converts seconds to a time.Duration (truncating nanoseconds) and
                // prints it as model.Duration.
                let ns = (secs.abs() * 1e9) as i64;
                let sign = if *secs < 0.0 { "-" } else { "" };
                write!(f, "{sign}{}", crate::format::model_duration(ns / 1_000_000))
            }
            Dur::Num { secs, .. } => f.write_str(&model::gofmt::format_f(*secs)),
            Dur::Step => f.write_str("step()"),
            Dur::Range => f.write_str("range()"),
            Dur::MinMax(min, a, b) => {
                let name = if *min { "min_of" } else { "max_of" };
                write!(f, "{name}({a}, {b})")
            }
            Dur::Neg(a) => write!(f, "-{a}"),
            Dur::Paren(a) => write!(f, "({a})"),
            Dur::Bin(op, a, b) => write!(f, "{a} {} {b}", *op as char),
        }
    }
}

struct Calc<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Calc<'a> {
    fn new(s: &'a str) -> Calc<'a> {
        Calc {
            s: s.as_bytes(),
            pos: 0,
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
    fn all(mut self) -> Option<Dur> {
        let v = self.expr(0)?;
        self.ws();
        (self.pos == self.s.len()).then_some(v)
    }

    fn expr(&mut self, depth: usize) -> Option<Dur> {
        if depth > 64 {
            return None;
        }
        let mut v = self.mul(depth)?;
        loop {
            let op = if self.eat(b'+') {
                b'+'
            } else if self.eat(b'-') {
                b'-'
            } else {
                return Some(v);
            };
            v = Dur::Bin(op, Box::new(v), Box::new(self.mul(depth)?));
        }
    }

    fn mul(&mut self, depth: usize) -> Option<Dur> {
        let mut v = self.unary(depth)?;
        loop {
            let op = if self.eat(b'*') {
                b'*'
            } else if self.eat(b'/') {
                b'/'
            } else if self.eat(b'%') {
                b'%'
            } else {
                return Some(v);
            };
            v = Dur::Bin(op, Box::new(v), Box::new(self.unary(depth)?));
        }
    }

    fn unary(&mut self, depth: usize) -> Option<Dur> {
        if depth > 64 {
            return None;
        }
        if self.eat(b'-') {
            return Some(self.unary(depth + 1)?.neg());
        }
        if self.eat(b'+') {
            return self.unary(depth + 1);
        }
        self.pow(depth)
    }

    fn pow(&mut self, depth: usize) -> Option<Dur> {
        let base = self.atom(depth)?;
        if self.eat(b'^') {
            let e = self.unary(depth + 1)?;
            return Some(Dur::Bin(b'^', Box::new(base), Box::new(e)));
        }
        Some(base)
    }

    /// `offset`'s operand: signs, then one atom (so `offset 1m + 2` keeps `+ 2` outside).
    fn signed_atom(&mut self, depth: usize) -> Option<Dur> {
        if depth > 64 {
            return None;
        }
        if self.eat(b'-') {
            return Some(self.signed_atom(depth + 1)?.neg());
        }
        if self.eat(b'+') {
            return self.signed_atom(depth + 1);
        }
        self.atom(depth)
    }

    fn atom(&mut self, depth: usize) -> Option<Dur> {
        self.ws();
        if self.eat(b'(') {
            let v = self.expr(depth + 1)?;
            return self.eat(b')').then(|| v.paren());
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
                "step" => self.eat(b')').then_some(Dur::Step),
                "range" => self.eat(b')').then_some(Dur::Range),
                "min_of" | "max_of" => {
                    let a = self.expr(depth + 1)?;
                    if !self.eat(b',') {
                        return None;
                    }
                    let b = self.expr(depth + 1)?;
                    if !self.eat(b')') {
                        return None;
                    }
                    Some(Dur::MinMax(name == "min_of", Box::new(a), Box::new(b)))
                }
                _ => None,
            };
        }
        self.number()
    }

    /// A number (seconds) or a duration literal like `1h30m` or `8000ms`.
    fn number(&mut self) -> Option<Dur> {
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
            return Some(Dur::Num {
                secs: first,
                duration: false,
            });
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
                return Some(Dur::Num {
                    secs: total,
                    duration: true,
                });
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
        assert_eq!(rewrite("changes(x[26m+4m])", 0, 0), "changes(x[30m])");
        assert_eq!(rewrite("x[29s+1s:5s+5s]", 0, 0), "x[30s:10s]");
        assert_eq!(rewrite("x[1h30m % 1h]", 0, 0), "x[30m]");
        assert_eq!(rewrite("x offset (-2 ^ 2)", 0, 0), "x offset -4s");
        assert_eq!(rewrite("x offset -step()*2", 5000, 0), "x offset -5s*2");
        // Past 2^32 ms a literal needs units to parse.
        assert_eq!(rewrite("x[30d+30d]", 0, 0), "x[60d]");
        assert_eq!(rewrite("x[1.5]", 0, 0), "x[1s500ms]");
        assert_eq!(rewrite("x offset 100 + 2", 0, 0), "x offset 100 + 2");
        assert_eq!(rewrite("x offset range()", 0, 0), "x ");
        assert_eq!(rewrite("x{a=\"[1+1]\"}", 0, 0), "x{a=\"[1+1]\"}");
    }
}
