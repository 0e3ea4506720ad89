//! Prometheus 3's experimental extended range modifiers, `anchored` and `smoothed`, which
//! the `promql-parser` grammar does not know.
//!
//! `rate(m[5m] anchored)` takes the increase between the last sample at or before the range
//! start and the last sample in the range, with no extrapolation; `rate(m[5m] smoothed)`
//! interpolates the counter linearly at both range boundaries; `m smoothed` interpolates an
//! instant selector between the samples around each step.
//!
//! Before parsing, [`rewrite`] removes each modifier keyword and adds a marker matcher
//! ([`MARKER`]`="anchored"` or `"smoothed"`) to the selector it applies to, so the parsed
//! selector carries the modifier itself and nothing has to be matched up by position.
//! Selection drops the marker again (`Ev::matchers`); [`mode`] reads it back. Misplaced
//! modifiers are refused here with Prometheus's parse errors. A query without either word
//! costs one substring search.
//!
//! Invariants: the marker is only ever added to a selector the scanner saw start at bracket
//! depth zero outside strings and comments; text inside strings, comments and label matchers
//! is never touched.

use std::sync::Arc;

use model::histogram::{CounterResetHint, FloatHistogram, IncompatibleSchemas};
use promql_parser::parser::{Expr, VectorSelector};
use tsdb::METRIC_NAME;

use crate::error::Error;
use crate::eval::{histogram_weight, offset_ms, Ev, Range, Result, H, S};
use crate::histfn::{
    mixed_exponential_custom, mixed_floats_histograms, not_counter, not_gauge, reconciled,
    same_histogram, Notes, Out, Win,
};

/// The label name of the marker matcher. Never a real label: it starts with `__`.
pub(crate) const MARKER: &str = "__lookout_range_modifier__";

/// An extended range modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Anchored,
    Smoothed,
}

impl Mode {
    fn word(self) -> &'static str {
        match self {
            Mode::Anchored => "anchored",
            Mode::Smoothed => "smoothed",
        }
    }
}

/// The modifier a parsed selector carries, if any.
pub(crate) fn mode(vs: &VectorSelector) -> Option<Mode> {
    vs.matchers
        .matchers
        .iter()
        .chain(vs.matchers.or_matchers.iter().flatten())
        .find(|m| m.name == MARKER)
        .map(|m| {
            if m.value == "anchored" {
                Mode::Anchored
            } else {
                Mode::Smoothed
            }
        })
}

/// Whether `vs` carries either modifier and which functions accept it: Prometheus's
/// `AnchoredSafeFunctions` / `SmoothedSafeFunctions`, with its error for the others.
pub(crate) fn check_function(m: Mode, func: &str) -> Result<()> {
    let allowed: &[&str] = match m {
        Mode::Anchored => &["changes", "delta", "increase", "rate", "resets"],
        Mode::Smoothed => &["delta", "increase", "rate"],
    };
    if allowed.contains(&func) {
        return Ok(());
    }
    Err(crate::error::exec(format!(
        "{} modifier can only be used with: {} - not with {func}",
        m.word(),
        allowed.join(", ")
    )))
}

/// What the text scanned so far ends with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Last {
    /// Nothing an operand can end with (start, operator, `(`, `,`, keyword).
    Operator,
    /// A vector or range selector; the marker goes at this byte offset (`true`: inside
    /// existing braces, `false`: braces must be added).
    Selector(usize, bool),
    /// A subquery `...[5m:1m]`.
    Subquery,
    /// Another operand: a number, a string, a closing parenthesis.
    Operand,
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "atan2",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "fill",
    "fill_left",
    "fill_right",
];

/// The query with every `anchored`/`smoothed` modifier turned into a marker matcher, or
/// `None` when it has none. Errors are Prometheus's parse errors for misplaced modifiers.
pub(crate) fn rewrite(q: &str) -> std::result::Result<Option<String>, Error> {
    if !q.contains("anchored") && !q.contains("smoothed") {
        return Ok(None);
    }
    let b = q.as_bytes();
    // (insert at, inside braces, mode), and the ranges of modifier words to drop.
    let mut inserts: Vec<(usize, bool, Mode)> = Vec::new();
    let mut drops: Vec<(usize, usize)> = Vec::new();
    let mut last = Last::Operator;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i = crate::literals::skip_string(b, i);
                last = Last::Operand;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => {
                // A selector's matchers: after a metric name they belong to it, otherwise
                // they start a selector of their own.
                let inside = i + 1;
                let end = skip_group(b, i, b'{', b'}');
                last = Last::Selector(inside, true);
                i = end;
            }
            b'[' => {
                let end = skip_group(b, i, b'[', b']');
                let sub = q[i..end].contains(':');
                last = match last {
                    Last::Selector(..) if !sub => last,
                    _ if sub => Last::Subquery,
                    _ => Last::Operand,
                };
                i = end;
            }
            b')' => {
                i += 1;
                last = Last::Operand;
            }
            b'@' => {
                // `@ <time>` or `@ start()`/`@ end()`: the operand stays what it was.
                i = skip_at(b, i + 1);
            }
            c if c.is_ascii_digit()
                || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) =>
            {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_')
                {
                    i += 1;
                }
                last = Last::Operand;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let st = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &q[st..i];
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let follows_operand = last != Last::Operator;
                if follows_operand && (word == "anchored" || word == "smoothed") {
                    let m = if word == "anchored" {
                        Mode::Anchored
                    } else {
                        Mode::Smoothed
                    };
                    match last {
                        Last::Selector(at, inside) => {
                            // Only the newest selector can already carry a modifier.
                            if let Some(prev) = inserts.last().filter(|x| x.0 == at) {
                                if prev.2 != m {
                                    return Err(parse_error(
                                        q,
                                        st,
                                        "anchored and smoothed modifiers cannot be used together",
                                    ));
                                }
                            } else {
                                inserts.push((at, inside, m));
                            }
                        }
                        Last::Subquery => {
                            return Err(parse_error(
                                q,
                                st,
                                &format!("{word} modifier is not supported for subqueries"),
                            ))
                        }
                        _ => {
                            return Err(parse_error(
                                q,
                                st,
                                &format!("{word} modifier not implemented"),
                            ))
                        }
                    }
                    drops.push((st, i));
                    continue;
                }
                if word == "offset" && follows_operand {
                    i = skip_offset(b, j);
                    continue;
                }
                let lower = word.to_ascii_lowercase();
                if lower == "inf" || lower == "nan" {
                    last = Last::Operand;
                } else if KEYWORDS.contains(&word) || b.get(j) == Some(&b'(') {
                    last = Last::Operator;
                } else {
                    // A metric name: matchers in braces may follow.
                    last = Last::Selector(i, false);
                }
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                i += 1;
                last = Last::Operator;
            }
        }
    }
    if inserts.is_empty() {
        return Ok(None);
    }
    let mut edits: Vec<(usize, usize, String)> = drops
        .into_iter()
        .map(|(s, e)| (s, e, String::new()))
        .collect();
    for (at, inside, m) in inserts {
        let text = if inside {
            let closes = q[at..].trim_start().starts_with('}');
            format!("{MARKER}=\"{}\"{}", m.word(), if closes { "" } else { "," })
        } else {
            format!("{{{MARKER}=\"{}\"}}", m.word())
        };
        edits.push((at, at, text));
    }
    edits.sort_by_key(|e| (e.0, e.1));
    let mut out = String::with_capacity(q.len() + 64);
    let mut pos = 0;
    for (s, e, text) in edits {
        out.push_str(&q[pos..s]);
        out.push_str(&text);
        pos = e;
    }
    out.push_str(&q[pos..]);
    Ok(Some(out))
}

fn parse_error(q: &str, at: usize, msg: &str) -> Error {
    let before = &q[..at];
    let line = before.matches('\n').count() + 1;
    let col = at - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    Error::BadData(format!("{line}:{col}: parse error: {msg}"))
}

/// The index after the group opened at `b[i]`, nesting and strings respected.
fn skip_group(b: &[u8], mut i: usize, open: u8, close: u8) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\'' || c == b'`' {
            i = crate::literals::skip_string(b, i);
            continue;
        } else if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    b.len()
}

/// After `offset`: an optional sign and a duration (or a parenthesised duration expression).
fn skip_offset(b: &[u8], mut i: usize) -> usize {
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    if i < b.len() && b[i] == b'(' {
        return skip_group(b, i, b'(', b')');
    }
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
        i += 1;
    }
    i
}

/// After `@`: a number, `start()` or `end()`.
fn skip_at(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'_') {
        i += 1;
    }
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < b.len() && b[i] == b'(' {
        return skip_group(b, i, b'(', b')');
    }
    i
}

// ---- Evaluation ----------------------------------------------------------------------

/// One range-function window of a selector carrying `m`. The window holds the samples in
/// `(range_start - lookback, range_end]` (`anchored`) or `(range_start - lookback,
/// range_end + lookback]` (`smoothed`), as Prometheus selects them; `c.range_start` and
/// `c.range_end` are the unextended bounds. Only the functions [`check_function`] accepts
/// reach here.
pub(crate) fn window(
    name: &str,
    m: Mode,
    w: &[(i64, f64)],
    hw: &[(i64, H)],
    c: &Win<'_>,
    range_ms: i64,
    notes: &mut Notes,
) -> Out {
    match name {
        "rate" | "increase" | "delta" => {
            let counter = name != "delta";
            let secs = (name == "rate").then_some(range_ms as f64 / 1000.0);
            let smoothed = m == Mode::Smoothed;
            if !w.is_empty() && !hw.is_empty() {
                notes.push((
                    true,
                    format!("{} ({})", mixed_floats_histograms(c.metric), c.pos),
                ));
                return Out::None;
            }
            if !hw.is_empty() {
                return match histogram_rate(hw, c, smoothed, counter, secs, notes) {
                    Some(h) => Out::H(Arc::new(h)),
                    None => Out::None,
                };
            }
            match float_rate(w, c.range_start, c.range_end, smoothed, counter, secs) {
                Some(v) => Out::F(v),
                None => Out::None,
            }
        }
        "changes" | "resets" => match anchored_count(w, hw, c.range_start, name == "resets") {
            Some(v) => Out::F(v),
            None => Out::None,
        },
        _ => Out::None,
    }
}

/// Prometheus's `interpolate`: the straight line between two samples at `t`; for a
/// counter that went down between them, the line from zero (a reset) instead.
fn interpolate(p1: (i64, f64), p2: (i64, f64), t: i64, counter: bool) -> f64 {
    let (mut y1, y2) = (p1.1, p2.1);
    if counter && y2 < y1 {
        y1 = 0.0;
    }
    y1 + (y2 - y1) * (t - p1.0) as f64 / (p2.0 - p1.0) as f64
}

/// The index of the last sample at or before `start` among all but the last sample, or 0
/// (Go's `max(0, sort.Search(last, T > start) - 1)`).
fn first_index<T>(s: &[(i64, T)], last: usize, start: i64) -> usize {
    s[..last]
        .partition_point(|p| p.0 <= start)
        .saturating_sub(1)
}

/// Prometheus's `extendedRate` over floats: the change between the value at the range start
/// (the anchor sample, or the value interpolated there) and at the range end, with counter
/// resets compensated and no extrapolation.
fn float_rate(
    f: &[(i64, f64)],
    start: i64,
    end: i64,
    smoothed: bool,
    counter: bool,
    per_second: Option<f64>,
) -> Option<f64> {
    let mut last = f.len().checked_sub(1)?;
    let mut first = first_index(f, last, start);
    if smoothed {
        last = f[..last].partition_point(|p| p.0 < end);
    }
    if f[last].0 <= start || (smoothed && f[first].0 > end) {
        return None;
    }
    let left = if smoothed && f[first].0 < start {
        interpolate(f[first], f[first + 1], start, counter)
    } else {
        f[first].1
    };
    let right = if smoothed && last > 0 && f[last].0 > end {
        interpolate(f[last - 1], f[last], end, counter)
    } else {
        f[last].1
    };
    let mut res = right - left;
    if counter {
        // Only samples strictly inside the range: the boundaries already saw their resets.
        if f[first].0 <= start {
            first += 1;
        }
        let upto = if f[last].0 >= end { last } else { last + 1 };
        let mut prev = left;
        let mut correction = 0.0;
        for p in f.get(first..upto).unwrap_or(&[]) {
            if p.1 < prev {
                correction += prev;
            }
            prev = p.1;
        }
        if right < prev {
            correction += prev;
        }
        res += correction;
    }
    if let Some(secs) = per_second {
        res /= secs;
    }
    Some(res)
}

/// Prometheus's `interpolateHistograms`: `h1 + (h2 - h1) * fraction`, or for a counter that
/// reset between them `h2 * fraction`. `Err` when the two cannot be combined.
fn interpolate_h(
    p1: &(i64, H),
    p2: &(i64, H),
    t: i64,
    counter: bool,
    notes: &mut Notes,
    pos: &str,
) -> std::result::Result<FloatHistogram, IncompatibleSchemas> {
    if t == p1.0 {
        return Ok((*p1.1).clone());
    }
    if t == p2.0 {
        return Ok((*p2.1).clone());
    }
    let fraction = (t - p1.0) as f64 / (p2.0 - p1.0) as f64;
    let mut res = (*p2.1).clone();
    if counter && p2.1.detect_reset(&p1.1) {
        res.mul(fraction);
        return Ok(res);
    }
    if res.sub(&p1.1)?.custom_buckets_reconciled {
        notes.push((false, format!("{} ({pos})", reconciled("subtraction"))));
    }
    res.mul(fraction);
    if res.add(&p1.1)?.custom_buckets_reconciled {
        notes.push((false, format!("{} ({pos})", reconciled("addition"))));
    }
    Ok(res)
}

/// Prometheus's `extendedHistogramRate`: [`float_rate`] for native histograms.
fn histogram_rate(
    h: &[(i64, H)],
    c: &Win<'_>,
    smoothed: bool,
    counter: bool,
    per_second: Option<f64>,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let (start, end) = (c.range_start, c.range_end);
    let warn = |notes: &mut Notes, m: String| notes.push((true, format!("{m} ({})", c.pos)));
    let mut last = h.len().checked_sub(1)?;
    let first = first_index(h, last, start);
    if smoothed {
        last = h[..last].partition_point(|p| p.0 < end);
    }
    if h[last].0 <= start || (smoothed && h[first].0 > end) {
        return None;
    }
    let custom = h[first].1.uses_custom_buckets();
    for (_, p) in &h[first..=last] {
        if p.uses_custom_buckets() != custom {
            warn(notes, mixed_exponential_custom(c.metric));
            return None;
        }
        if counter && p.counter_reset_hint == CounterResetHint::Gauge {
            warn(notes, not_counter(c.metric));
        }
    }
    let left = if smoothed && h[first].0 < start {
        interpolate_h(&h[first], &h[first + 1], start, counter, notes, c.pos)
    } else {
        Ok((*h[first].1).clone())
    };
    let right = if smoothed && last > 0 && h[last].0 > end {
        interpolate_h(&h[last - 1], &h[last], end, counter, notes, c.pos)
    } else {
        Ok((*h[last].1).clone())
    };
    let (Ok(left), Ok(right)) = (left, right) else {
        warn(notes, mixed_exponential_custom(c.metric));
        return None;
    };
    if !counter
        && (left.counter_reset_hint != CounterResetHint::Gauge
            || right.counter_reset_hint != CounterResetHint::Gauge)
    {
        warn(notes, not_gauge(c.metric));
    }
    let mut res = right.clone();
    match res.sub(&left) {
        Ok(o) if o.custom_buckets_reconciled => {
            notes.push((false, format!("{} ({})", reconciled("subtraction"), c.pos)))
        }
        Ok(_) => {}
        Err(IncompatibleSchemas) => {
            warn(notes, mixed_exponential_custom(c.metric));
            return None;
        }
    }
    if counter {
        // Resets strictly between the boundary samples; the boundaries handled their own.
        let mut from = first + 1;
        let mut prev: &FloatHistogram = &left;
        if smoothed && h[first].0 < start && h[first + 1].1.detect_reset(&h[first].1) {
            // The left interpolation spanned that reset already.
            prev = h[first + 1].1.as_ref();
            from += 1;
        }
        if from <= last {
            let mut correction: Option<FloatHistogram> = None;
            let add = |corr: &mut Option<FloatHistogram>, x: &FloatHistogram, notes: &mut Notes| {
                match corr {
                    None => {
                        *corr = Some(x.clone());
                        true
                    }
                    Some(acc) => match acc.add(x) {
                        Ok(o) => {
                            if o.custom_buckets_reconciled {
                                notes.push((
                                    false,
                                    format!("{} ({})", reconciled("addition"), c.pos),
                                ));
                            }
                            true
                        }
                        Err(IncompatibleSchemas) => {
                            warn(notes, mixed_exponential_custom(c.metric));
                            false
                        }
                    },
                }
            };
            for (_, p) in &h[from..last] {
                if p.detect_reset(prev) && !add(&mut correction, prev, notes) {
                    return None;
                }
                prev = p.as_ref();
            }
            if right.detect_reset(prev) && !add(&mut correction, prev, notes) {
                return None;
            }
            if let Some(corr) = correction {
                match res.add(&corr) {
                    Ok(o) if o.custom_buckets_reconciled => {
                        notes.push((false, format!("{} ({})", reconciled("addition"), c.pos)))
                    }
                    Ok(_) => {}
                    Err(IncompatibleSchemas) => {
                        warn(notes, mixed_exponential_custom(c.metric));
                        return None;
                    }
                }
            }
        }
    }
    if let Some(secs) = per_second {
        res.div(secs);
    }
    res.counter_reset_hint = CounterResetHint::Gauge;
    res.compact();
    Some(res)
}

/// `changes`/`resets` over an anchored window: from the single newest sample at or before
/// the range start, of either kind (Prometheus's `pickFirstSampleIndices`), through the
/// range. `None` when no sample lies inside the range.
fn anchored_count(w: &[(i64, f64)], hw: &[(i64, H)], start: i64, resets: bool) -> Option<f64> {
    let lf = w.partition_point(|p| p.0 <= start);
    let lh = hw.partition_point(|p| p.0 <= start);
    if lf >= w.len() && lh >= hw.len() {
        return None;
    }
    let (ff, fh) = match (lf.checked_sub(1), lh.checked_sub(1)) {
        (None, None) => (0, 0),
        (Some(f), None) => (f, lh),
        (Some(f), Some(hh)) if w[f].0 >= hw[hh].0 => (f, lh),
        (_, Some(hh)) => (lf, hh),
    };
    enum V<'a> {
        F(f64),
        H(&'a FloatHistogram),
    }
    let (mut i, mut j) = (ff, fh);
    let mut prev: Option<V<'_>> = None;
    let mut n = 0.0;
    while i < w.len() || j < hw.len() {
        let cur = if j >= hw.len() || (i < w.len() && w[i].0 < hw[j].0) {
            i += 1;
            V::F(w[i - 1].1)
        } else {
            j += 1;
            V::H(hw[j - 1].1.as_ref())
        };
        if let Some(p) = &prev {
            let counted = match (p, &cur) {
                (V::F(a), V::F(b)) => {
                    if resets {
                        b < a
                    } else {
                        a != b && !(a.is_nan() && b.is_nan())
                    }
                }
                (V::H(a), V::H(b)) => {
                    if resets {
                        b.detect_reset(a)
                    } else {
                        !same_histogram(a, b)
                    }
                }
                _ => true,
            };
            if counted {
                n += 1.0;
            }
        }
        prev = Some(cur);
    }
    Some(n)
}

/// Prometheus's `extendFloats`, for a bare range selector with a modifier: the samples
/// strictly inside `(start, end)`, between a point at `start` (the anchor sample's value, or
/// the value interpolated there) and one at `end`. Empty when no sample is in the range.
pub(crate) fn extend_floats(
    f: &[(i64, f64)],
    start: i64,
    end: i64,
    smoothed: bool,
) -> Vec<(i64, f64)> {
    let Some(mut last) = f.len().checked_sub(1) else {
        return Vec::new();
    };
    let mut first = first_index(f, last, start);
    if smoothed {
        last = f[..last].partition_point(|p| p.0 < end);
    }
    if f[last].0 <= start {
        return Vec::new();
    }
    let left = if smoothed && f[first].0 < start {
        interpolate(f[first], f[first + 1], start, false)
    } else {
        f[first].1
    };
    let right = if smoothed && last > 0 && f[last].0 > end {
        interpolate(f[last - 1], f[last], end, false)
    } else {
        f[last].1
    };
    if f[first].0 <= start {
        first += 1;
    }
    let upto = if f[last].0 >= end { last } else { last + 1 };
    let mut out = Vec::with_capacity(upto.saturating_sub(first) + 2);
    out.push((start, left));
    out.extend_from_slice(f.get(first..upto).unwrap_or(&[]));
    out.push((end, right));
    out
}

/// `v smoothed`: at every step the value interpolated between the samples around the
/// reference time within the lookback delta either side, or the last one when none follows
/// (Prometheus's `smoothSeries`). Floats are interpolated as gauges, histograms as counters
/// unless they say they are gauges.
pub(crate) fn smoothed_selector(ev: &mut Ev<'_>, vs: &VectorSelector, r: Range) -> Result<Vec<S>> {
    let off = offset_ms(&vs.offset);
    let at = crate::functions::at_of(ev, &vs.at);
    let (lo, hi) = match at {
        Some(t) => (t - off, t - off),
        None => (r.start - off, r.end - off),
    };
    let lb = ev.lookback;
    let sel = ev.select(vs, lo - lb + 1, hi + lb)?;
    let mut pos: Option<String> = None;
    let mut out = Vec::with_capacity(sel.len());
    for (metric, raw, rawh, _) in sel {
        ev.check()?;
        let loaded = raw.len() + rawh.iter().map(|(_, h)| histogram_weight(h)).sum::<usize>();
        let raw: Vec<(i64, f64)> = raw
            .into_iter()
            .filter(|p| !tsdb::is_stale_nan(p.1))
            .collect();
        let rawh: Vec<(i64, H)> = rawh.into_iter().filter(|p| !p.1.is_stale()).collect();
        let (mut pts, mut hs) = (Vec::new(), Vec::new());
        let (mut flo, mut fhi, mut hlo, mut hhi) = (0usize, 0usize, 0usize, 0usize);
        let mut notes: Notes = Vec::new();
        for step in 0..r.steps() {
            let ts = r.ts(step);
            let reft = at.unwrap_or(ts) - off;
            while fhi < raw.len() && raw[fhi].0 <= reft + lb {
                fhi += 1;
            }
            while flo < fhi && raw[flo].0 <= reft - lb {
                flo += 1;
            }
            while hhi < rawh.len() && rawh[hhi].0 <= reft + lb {
                hhi += 1;
            }
            while hlo < hhi && rawh[hlo].0 <= reft - lb {
                hlo += 1;
            }
            let (w, hw) = (&raw[flo..fhi], &rawh[hlo..hhi]);
            if w.is_empty() && hw.is_empty() {
                continue;
            }
            let name = metric.get(METRIC_NAME).unwrap_or("");
            let p = pos.get_or_insert_with(|| {
                crate::functions::position(ev, &Expr::VectorSelector(vs.clone()))
            });
            if !w.is_empty() && !hw.is_empty() {
                notes.push((true, format!("{} ({p})", mixed_floats_histograms(name))));
                continue;
            }
            if !w.is_empty() {
                let i = w.partition_point(|q| q.0 < reft);
                if i < w.len() && w[i].0 == reft {
                    pts.push((ts, w[i].1));
                } else if i > 0 && i < w.len() {
                    pts.push((ts, interpolate(w[i - 1], w[i], reft, false)));
                } else if i > 0 {
                    pts.push((ts, w[i - 1].1));
                }
                continue;
            }
            let i = hw.partition_point(|q| q.0 < reft);
            if i < hw.len() && hw[i].0 == reft {
                hs.push((ts, hw[i].1.clone()));
            } else if i > 0 && i < hw.len() {
                if hw[i - 1].1.uses_custom_buckets() != hw[i].1.uses_custom_buckets() {
                    // No line between exponential and custom buckets, not even as a reset.
                    notes.push((true, format!("{} ({p})", mixed_exponential_custom(name))));
                    continue;
                }
                let counter = hw[i].1.counter_reset_hint != CounterResetHint::Gauge;
                match interpolate_h(&hw[i - 1], &hw[i], reft, counter, &mut notes, p) {
                    Ok(h) => hs.push((ts, Arc::new(h))),
                    Err(IncompatibleSchemas) => {
                        notes.push((true, format!("{} ({p})", mixed_exponential_custom(name))))
                    }
                }
            } else if i > 0 {
                hs.push((ts, hw[i - 1].1.clone()));
            }
        }
        for (is_warn, m) in notes {
            if is_warn {
                ev.annos.warn(m);
            } else {
                ev.annos.info(m);
            }
        }
        ev.release_samples(loaded);
        if !pts.is_empty() || !hs.is_empty() {
            let weight: usize = hs.iter().map(|(_, h)| histogram_weight(h)).sum();
            ev.add_samples(pts.len() + weight)?;
            out.push(S {
                metric,
                drop_name: false,
                pts,
                hs,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(q: &str) -> String {
        rewrite(q).unwrap().unwrap()
    }

    #[test]
    fn modifiers_become_marker_matchers_on_their_selector() {
        assert_eq!(
            rw("increase(m[1m] anchored)"),
            format!("increase(m{{{MARKER}=\"anchored\"}}[1m] )")
        );
        assert_eq!(
            rw(r#"rate(m{a="smoothed"}[5m] offset 1m smoothed)"#),
            format!(r#"rate(m{{{MARKER}="smoothed",a="smoothed"}}[5m] offset 1m )"#)
        );
        assert_eq!(
            rw("m @ 100 smoothed + 0"),
            format!("m{{{MARKER}=\"smoothed\"}} @ 100  + 0")
        );
        // A metric called `smoothed` is not a modifier.
        assert!(rewrite("sum(smoothed)").unwrap().is_none());
        assert!(rewrite("rate(x[5m])").unwrap().is_none());
        for q in [
            "rate(m[5m] anchored)",
            "rate(m[5m] smoothed)",
            "m smoothed",
            "{__name__=\"m\"} offset -100 smoothed + 0",
        ] {
            let e = promql_parser::parser::parse(&rw(q)).unwrap();
            let mut found = false;
            let mut walk = vec![&e];
            while let Some(e) = walk.pop() {
                use promql_parser::parser::Expr;
                match e {
                    Expr::Call(c) => walk.extend(c.args.args.iter().map(|a| a.as_ref())),
                    Expr::Binary(b) => walk.extend([b.lhs.as_ref(), b.rhs.as_ref()]),
                    Expr::MatrixSelector(ms) => found |= mode(&ms.vs).is_some(),
                    Expr::VectorSelector(vs) => found |= mode(vs).is_some(),
                    _ => {}
                }
            }
            assert!(found, "{q}");
        }
    }

    #[test]
    fn misplaced_modifiers_are_refused() {
        let e = rewrite("rate(m[5m:1m] anchored)").unwrap_err();
        assert!(
            e.to_string().contains("not supported for subqueries"),
            "{e}"
        );
        let e = rewrite("sum(m) smoothed").unwrap_err();
        assert!(
            e.to_string().contains("smoothed modifier not implemented"),
            "{e}"
        );
        let e = rewrite("m[1m] anchored smoothed").unwrap_err();
        assert!(e.to_string().contains("cannot be used together"), "{e}");
    }

    #[test]
    fn the_marker_never_shows_as_a_label() {
        // Our own cases beyond Prometheus's suite: absent() builds labels from matchers,
        // and `or` inside braces puts the marker in the first alternative.
        let r = crate::promqltest::run_script(
            "ext",
            r#"
load 1m
    m{a="1"} 0+1x10
    m{a="2"} 0+2x10

eval instant at 5m absent(nope{a="x"} smoothed)
    {a="x"} 1

eval instant at 150s {__name__="m", a="1" or a="2"} smoothed
    m{a="1"} 2.5
    m{a="2"} 5

eval instant at 5m rate(m{a="2"}[2m] anchored)
    {a="2"} 0.03333333333333333

eval instant at 5m m[2m] anchored
    expect range vector from 3m to 5m step 1m
    m{a="1"} 3 4 5
    m{a="2"} 6 8 10

eval range from 0 to 10m step 1m increase(m{a="1"}[2m] anchored)
    {a="1"} 0 1 2 2 2 2 2 2 2 2 2

eval range from 0 to 10m step 1m increase(m{a="1"}[2m] smoothed)
    {a="1"} 0 1 2 2 2 2 2 2 2 2 2

eval range from 0 to 4m step 1m m{a="2"} offset -30s smoothed
    m{a="2"} 1 3 5 7 9

eval instant at 4m30s m[2m] smoothed
    expect range vector from 2m30s to 4m30s step 30s
    m{a="1"} 2.5 3 _ 4 4.5
    m{a="2"} 5 6 _ 8 9
"#,
        );
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert_eq!(r.passed, 8);
    }

    #[test]
    fn only_listed_functions_accept_a_modifier() {
        assert!(check_function(Mode::Anchored, "resets").is_ok());
        assert_eq!(
            check_function(Mode::Smoothed, "deriv")
                .unwrap_err()
                .to_string(),
            "smoothed modifier can only be used with: delta, increase, rate - not with deriv"
        );
    }
}
