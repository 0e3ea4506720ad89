//! Runner for Prometheus's PromQL test scripts (`promqltest`, format described in the
//! conformance directory's FORMAT.md): `load`, `clear` and `eval` commands with `expect`
//! lines, series expansion (`1+2x3`, `_`, `stale`), instant and range queries.
//!
//! Each `eval` is one case; a failing case is reported with `file:line` and what differed.
//! Values compare as Prometheus's runner compares them (relative epsilon 1e-6, NaN equal to
//! NaN). Native histograms are written in Prometheus's test notation
//! (`{{schema:0 count:4 sum:5 buckets:[1 2 1]}}`, with `+{{...}}x3` series) and compared as
//! Prometheus's runner compares them: after compaction, counts within the same epsilon.
//!
//! Loading emulates what Prometheus's TSDB does to counter-reset hints, since results depend
//! on them: a histogram series (gauges aside) reads back with an unknown hint on its first
//! sample, "reset" where a counter reset starts a new chunk, and "not reset" elsewhere.

use std::collections::BTreeMap;
use std::sync::Arc;

use model::histogram::{CounterResetHint, FloatHistogram, Span};
use tsdb::{Label, Labels, VecQuerier};

use crate::eval::{go_quote, labels_from};
use crate::json::format_float;
use crate::{Engine, EngineOptions, QueryResult, Value};

/// Start-timestamp offsets of loaded series (`name{..}@st` lines): per series, sample
/// time to the offset of its start timestamp from that time.
type StOffsets = BTreeMap<Labels, BTreeMap<i64, i64>>;

/// The outcome of one script.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases that passed.
    pub passed: usize,
    /// Failing cases as `file:line: query: what differed`.
    pub failures: Vec<String>,
}

impl Report {
    /// Number of failing cases.
    pub fn failed(&self) -> usize {
        self.failures.len()
    }
}

/// Parses a Prometheus duration (`1h30m`, `10s53ms`, `0`) or plain seconds into ms.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(v) = s.parse::<f64>() {
        if v.is_finite() {
            return Some((v * 1000.0).round() as i64);
        }
        return None;
    }
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let b = s.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    while i < b.len() {
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if st == i {
            return None;
        }
        let n: i64 = s[st..i].parse().ok()?;
        let us = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let mult = match &s[us..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    Some(if neg { -total } else { total })
}

fn parse_number(s: &str) -> Option<f64> {
    match s {
        "NaN" | "nan" => Some(f64::NAN),
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}

/// One expanded point: a value, a stale marker, a histogram, or an omitted sample.
#[derive(Debug, Clone)]
enum Point {
    Value(f64),
    Hist(Box<FloatHistogram>),
    Omitted,
}

/// Parses `[1 2 3]` at the start of `s`.
fn parse_list(s: &str) -> Result<(Vec<f64>, &str), String> {
    let s = s.trim_start();
    let r = s
        .strip_prefix('[')
        .ok_or("expected '[' in histogram literal")?;
    let end = r
        .find(']')
        .ok_or("unterminated list in histogram literal")?;
    let mut out = Vec::new();
    for t in r[..end].split_whitespace() {
        out.push(parse_number(t).ok_or_else(|| format!("bad number {t:?} in histogram literal"))?);
    }
    Ok((out, &r[end + 1..]))
}

/// Parses the inside of `{{...}}` (Prometheus's histogram description map).
fn parse_histogram(body: &str) -> Result<FloatHistogram, String> {
    let mut h = FloatHistogram::default();
    let (mut offset, mut n_offset) = (0i32, 0i32);
    let (mut pos, mut neg): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut rest = body.trim();
    while !rest.is_empty() {
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("bad histogram field in {body:?}"))?;
        let key = rest[..colon].trim();
        rest = rest[colon + 1..].trim_start();
        match key {
            "buckets" | "n_buckets" | "custom_values" => {
                let (v, r) = parse_list(rest)?;
                rest = r.trim_start();
                match key {
                    "buckets" => pos = v,
                    "n_buckets" => neg = v,
                    _ => h.custom_values = v,
                }
                continue;
            }
            _ => {}
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let val = &rest[..end];
        rest = rest[end..].trim_start();
        let num = || parse_number(val).ok_or_else(|| format!("bad value {val:?} for {key}"));
        match key {
            "schema" => h.schema = val.parse().map_err(|_| format!("bad schema {val:?}"))?,
            "sum" => h.sum = num()?,
            "count" => h.count = num()?,
            "z_bucket" => h.zero_count = num()?,
            "z_bucket_w" => h.zero_threshold = num()?,
            "offset" => offset = val.parse().map_err(|_| format!("bad offset {val:?}"))?,
            "n_offset" => n_offset = val.parse().map_err(|_| format!("bad offset {val:?}"))?,
            "counter_reset_hint" => {
                h.counter_reset_hint = match val {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    _ => return Err(format!("bad counter_reset_hint {val:?}")),
                }
            }
            _ => return Err(format!("unknown histogram field {key:?}")),
        }
    }
    if !pos.is_empty() {
        h.positive_spans = vec![Span {
            offset,
            length: pos.len() as u32,
        }];
        h.positive_buckets = pos;
    }
    if !neg.is_empty() {
        h.negative_spans = vec![Span {
            offset: n_offset,
            length: neg.len() as u32,
        }];
        h.negative_buckets = neg;
    }
    Ok(h)
}

/// Splits `{{...}}` off the start of `s`: the histogram and the rest.
fn take_histogram(s: &str) -> Result<(FloatHistogram, &str), String> {
    let r = s.strip_prefix("{{").ok_or("expected a histogram literal")?;
    let end = r.find("}}").ok_or("unterminated histogram literal")?;
    Ok((parse_histogram(&r[..end])?, &r[end + 2..]))
}

/// Expands `1 2+3x4 _ _x2 stale NaN` into points.
fn expand_points(s: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        // Native histograms: `{{...}}`, `{{...}}xN`, `{{...}}+{{...}}xN`, `{{...}}-{{...}}xN`.
        if rest.starts_with("{{") {
            let (base, r) = take_histogram(rest)?;
            rest = r;
            let mut inc: Option<(FloatHistogram, f64)> = None;
            for (sign, ch) in [(1.0, '+'), (-1.0, '-')] {
                if let Some(r) = rest.strip_prefix(ch) {
                    if r.starts_with("{{") {
                        let (h, r2) = take_histogram(r)?;
                        inc = Some((h, sign));
                        rest = r2;
                    }
                }
            }
            let mut times = 0usize;
            if let Some(r) = rest.strip_prefix('x') {
                let n: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
                rest = &r[n.len()..];
                times = n
                    .parse::<usize>()
                    .map_err(|_| "bad histogram repetition".to_string())?;
                if times > 1_000_000 {
                    return Err("repetition too large".into());
                }
            }
            rest = rest.trim_start();
            let mut cur = base;
            out.push(Point::Hist(Box::new(cur.clone())));
            for _ in 0..times {
                if let Some((h, sign)) = &inc {
                    let step = if *sign > 0.0 { cur.add(h) } else { cur.sub(h) };
                    step.map_err(|e| e.to_string())?;
                }
                out.push(Point::Hist(Box::new(cur.clone())));
            }
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..end];
        rest = rest[end..].trim_start();
        if tok == "_" {
            out.push(Point::Omitted);
            continue;
        }
        if tok == "stale" {
            out.push(Point::Value(tsdb::stale_nan()));
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad repetition {tok:?}"))?;
            out.extend(std::iter::repeat_n(Point::Omitted, n));
            continue;
        }
        if let Some(v) = parse_number(tok) {
            out.push(Point::Value(v));
            continue;
        }
        let xi = tok.rfind('x').ok_or_else(|| format!("bad value {tok:?}"))?;
        let n: usize = tok[xi + 1..]
            .parse()
            .map_err(|_| format!("bad repetition {tok:?}"))?;
        let head = &tok[..xi];
        let b = head.as_bytes();
        let mut split = None;
        for i in 1..b.len() {
            if (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E') {
                split = Some(i);
                break;
            }
        }
        let (a, inc) = match split {
            Some(i) => {
                let a = parse_number(&head[..i]).ok_or_else(|| format!("bad value {tok:?}"))?;
                let mut d =
                    parse_number(&head[i + 1..]).ok_or_else(|| format!("bad value {tok:?}"))?;
                if b[i] == b'-' {
                    d = -d;
                }
                (a, d)
            }
            None => (
                if head == "stale" {
                    tsdb::stale_nan()
                } else {
                    parse_number(head).ok_or_else(|| format!("bad value {tok:?}"))?
                },
                0.0,
            ),
        };
        if n > 1_000_000 {
            return Err(format!("repetition too large in {tok:?}"));
        }
        let mut v = a;
        for _ in 0..=n {
            out.push(Point::Value(v));
            v += inc;
        }
    }
    Ok(out)
}

fn parse_quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a string")?;
    if q == '`' {
        let end = s[1..].find('`').ok_or("unterminated string")?;
        return Ok((s[1..1 + end].to_string(), &s[end + 2..]));
    }
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        if c == q {
            return Ok((out, &s[i + 1..]));
        }
        if c == '\\' {
            let (_, e) = it.next().ok_or("unterminated escape")?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'x' => {
                    let h: String = (0..2).filter_map(|_| it.next().map(|x| x.1)).collect();
                    let v = u8::from_str_radix(&h, 16).map_err(|_| "bad \\x escape")?;
                    if v < 0x80 {
                        out.push(v as char);
                    } else {
                        out.push('\u{FFFD}');
                    }
                }
                o => {
                    out.push('\\');
                    out.push(o);
                }
            }
        } else {
            out.push(c);
        }
    }
    Err("unterminated string".into())
}

/// Parses `name{a="b", "c.d"="e"}` at the start of `s`; returns the labels and the rest.
pub fn parse_series_desc(s: &str) -> Result<(Labels, &str), String> {
    let s = s.trim_start();
    let mut pairs: Vec<Label> = Vec::new();
    let name_end = s
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(s.len());
    if name_end > 0 {
        pairs.push(Label {
            name: "__name__".into(),
            value: s[..name_end].to_string(),
        });
    }
    let mut rest = &s[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r.trim_start();
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (name, r) = if rest.starts_with('"') || rest.starts_with('\'') {
                let (n, r) = parse_quoted(rest)?;
                (n, r)
            } else {
                let e = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':' || c == '.'))
                    .unwrap_or(rest.len());
                (rest[..e].to_string(), &rest[e..])
            };
            let r = r.trim_start();
            if let Some(r2) = r.strip_prefix('=') {
                let (v, r3) = parse_quoted(r2.trim_start())?;
                pairs.push(Label { name, value: v });
                rest = r3.trim_start();
            } else {
                // A quoted metric name inside the braces.
                pairs.push(Label {
                    name: "__name__".into(),
                    value: name,
                });
                rest = r;
            }
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
            }
        }
    }
    Ok((labels_from(pairs), rest))
}

#[derive(Debug, Default)]
struct Expect {
    fail: Option<Option<Matcher>>,
    ordered: bool,
    warn: Vec<Option<Matcher>>,
    info: Vec<Option<Matcher>>,
    no_warn: bool,
    no_info: bool,
    string: Option<String>,
    range_vector: Option<(i64, i64, i64)>,
    scalar: Option<f64>,
    series: Vec<(Labels, Vec<Point>)>,
}

#[derive(Debug)]
enum Matcher {
    Msg(String),
    Regex(regex::Regex),
}

impl Matcher {
    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Msg(m) => m == s,
            Matcher::Regex(r) => r.is_match(s),
        }
    }
}

fn parse_matcher(rest: &str) -> Result<Option<Matcher>, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(None);
    }
    if let Some(m) = rest.strip_prefix("msg:") {
        let m = m.trim();
        let m = m
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(m);
        return Ok(Some(Matcher::Msg(m.to_string())));
    }
    if let Some(m) = rest.strip_prefix("regex:") {
        let m = m.trim();
        let m = m
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(m);
        return regex::Regex::new(m)
            .map(|r| Some(Matcher::Regex(r)))
            .map_err(|e| e.to_string());
    }
    Err(format!("bad expect line {rest:?}"))
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let eps = 1e-6;
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < eps * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// A result sample as failure messages show it: the float, or the histogram's notation.
fn show_sample(s: &crate::Sample) -> String {
    match &s.h {
        Some(h) => h.test_expression(),
        None => format_float(s.v),
    }
}

fn show(l: &Labels) -> String {
    let mut s = l.get("__name__").unwrap_or("").to_string();
    s.push('{');
    let mut first = true;
    for p in l.iter() {
        if p.name == "__name__" {
            continue;
        }
        if !first {
            s.push_str(", ");
        }
        first = false;
        s.push_str(p.name);
        s.push('=');
        s.push_str(&go_quote(p.value));
    }
    s.push('}');
    s
}

/// Runs one script's text; `file` names it in failure messages.
pub fn run_script(file: &str, text: &str) -> Report {
    let engine = Engine::new(EngineOptions::default());
    let mut report = Report::default();
    let mut data: BTreeMap<Labels, BTreeMap<i64, Point>> = BTreeMap::new();
    let mut sts = StOffsets::new();
    let mut querier: Option<VecQuerier> = None;
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    let body_end = |start: usize| -> usize {
        let mut j = start;
        while j < lines.len() {
            let t = lines[j].trim();
            if t.is_empty() {
                break;
            }
            if !lines[j].starts_with(char::is_whitespace)
                && (t.starts_with("eval") || t.starts_with("load") || t == "clear")
            {
                break;
            }
            j += 1;
        }
        j
    };
    while i < lines.len() {
        let raw = lines[i];
        let line = raw.trim();
        let lineno = i + 1;
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "clear" {
            data.clear();
            sts.clear();
            querier = None;
            continue;
        }
        if let Some(rest) = line
            .strip_prefix("load_with_nhcb ")
            .or_else(|| line.strip_prefix("load "))
        {
            let end = body_end(i);
            let nhcb = line.starts_with("load_with_nhcb ");
            for (k, err) in load_into(&mut data, &mut sts, rest, &lines[i..end], nhcb) {
                report
                    .failures
                    .push(format!("{file}:{}: bad load line: {err}", i + k + 1));
            }
            querier = None;
            i = end;
            continue;
        }
        if line.starts_with("eval") {
            let end = body_end(i);
            let body = &lines[i..end];
            i = end;
            let q = querier.get_or_insert_with(|| querier_of(&data, &sts));
            match run_eval(&engine, q, line, body) {
                Ok(()) => report.passed += 1,
                Err(e) => report
                    .failures
                    .push(format!("{file}:{lineno}: {line}\n    {e}")),
            }
            continue;
        }
        report
            .failures
            .push(format!("{file}:{lineno}: unknown command {line:?}"));
    }
    report
}

/// The series of one `load <interval>` block (its indented lines, in the scripts' notation),
/// as a querier holding what the TSDB would give back: for tests that need data in
/// Prometheus's notation outside a script.
pub fn load(interval: &str, lines: &str) -> Result<VecQuerier, String> {
    let mut data = BTreeMap::new();
    let mut sts = StOffsets::new();
    let lines: Vec<&str> = lines.lines().collect();
    if let Some((k, err)) = load_into(&mut data, &mut sts, interval, &lines, false)
        .into_iter()
        .next()
    {
        return Err(format!("line {}: {err}", k + 1));
    }
    Ok(querier_of(&data, &sts))
}

/// Adds a load block's series to `data` and its `@st` lines to `sts`; returns the bad
/// lines (index, error).
fn load_into(
    data: &mut BTreeMap<Labels, BTreeMap<i64, Point>>,
    sts: &mut StOffsets,
    interval: &str,
    lines: &[&str],
    nhcb: bool,
) -> Vec<(usize, String)> {
    let interval = parse_duration(interval.trim()).unwrap_or(60_000);
    let mut loaded: Vec<Labels> = Vec::new();
    let mut bad = Vec::new();
    for (k, l) in lines.iter().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match parse_st_line(t) {
            Ok(Some((ls, offsets))) => {
                let e = sts.entry(ls).or_default();
                for (n, o) in offsets.into_iter().enumerate() {
                    if let Some(o) = o {
                        e.insert(n as i64 * interval, o);
                    }
                }
                continue;
            }
            Ok(None) => {}
            Err(err) => {
                bad.push((k, err));
                continue;
            }
        }
        match parse_series_desc(t).and_then(|(ls, r)| Ok((ls, expand_points(r)?))) {
            Ok((ls, pts)) => {
                loaded.push(ls.clone());
                let e = data.entry(ls).or_default();
                for (n, p) in pts.into_iter().enumerate() {
                    if !matches!(p, Point::Omitted) {
                        e.insert(n as i64 * interval, p);
                    }
                }
            }
            Err(err) => bad.push((k, err)),
        }
    }
    if nhcb {
        add_nhcb(data, &loaded);
    }
    bad
}

fn querier_of(data: &BTreeMap<Labels, BTreeMap<i64, Point>>, sts: &StOffsets) -> VecQuerier {
    VecQuerier::new(
        data.iter()
            .map(|(l, s)| {
                let (floats, hists) = stored_samples(s);
                let series = tsdb::Series::from_samples_and_histograms(l.clone(), floats, hists);
                match sts.get(l) {
                    // A start timestamp is relative to its own sample's time.
                    Some(offsets) => series.with_start_timestamps(
                        offsets
                            .iter()
                            .filter(|(t, _)| s.contains_key(t))
                            .map(|(&t, &o)| (t, t.saturating_add(o)))
                            .collect(),
                    ),
                    None => series,
                }
            })
            .collect(),
    )
}

/// A `name{labels}@st <offsets>` line: the series and, per sample position, the offset of
/// its start timestamp from the sample's time (`None` for `_`). `Ok(None)` when the line is
/// an ordinary series line.
#[allow(clippy::type_complexity)]
fn parse_st_line(t: &str) -> Result<Option<(Labels, Vec<Option<i64>>)>, String> {
    let (ls, rest) = parse_series_desc(t)?;
    let (ls, rest) = if let Some(r) = rest.strip_prefix("@st") {
        (ls, r)
    } else if let Some(name) = ls.get("__name__").and_then(|n| n.strip_suffix("@st")) {
        // `series@st` without braces: the name ran up to the whitespace.
        let mut pairs = crate::eval::to_pairs(&ls);
        for p in &mut pairs {
            if p.name == "__name__" {
                p.value = name.to_string();
            }
        }
        (labels_from(pairs), rest)
    } else {
        return Ok(None);
    };
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return Err(format!("bad start timestamp line {t:?}"));
    }
    let mut out = Vec::new();
    for tok in rest.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        if let Some(n) = tok.strip_prefix("_x") {
            let n: usize = n.parse().map_err(|_| format!("bad repetition {tok:?}"))?;
            if n > 1_000_000 {
                return Err(format!("repetition too large in {tok:?}"));
            }
            out.extend(std::iter::repeat_n(None, n));
            continue;
        }
        let (head, n) = match tok.rfind('x') {
            Some(xi) => (
                &tok[..xi],
                tok[xi + 1..]
                    .parse::<usize>()
                    .map_err(|_| format!("bad repetition {tok:?}"))?,
            ),
            None => (tok, 0),
        };
        if n > 1_000_000 {
            return Err(format!("repetition too large in {tok:?}"));
        }
        // `a`, `a+b` or `a-b`: a signed start offset and a signed increment.
        let b = head.as_bytes();
        let split = (1..b.len()).find(|&i| b[i] == b'+' || b[i] == b'-');
        let offset = |s: &str| {
            parse_duration(s.strip_prefix('+').unwrap_or(s))
                .ok_or_else(|| format!("bad start timestamp offset {tok:?}"))
        };
        let (a, inc) = match split {
            Some(i) => (offset(&head[..i])?, offset(&head[i..])?),
            None => (offset(head)?, 0),
        };
        let mut v = a;
        for _ in 0..=n {
            out.push(Some(v));
            v = v.saturating_add(inc);
        }
    }
    Ok(Some((ls, out)))
}

/// `load_with_nhcb`: each classic histogram among the just-loaded series (`<name>_bucket`
/// with `le`, plus `<name>_count`/`<name>_sum`) also becomes a native histogram with custom
/// buckets named `<name>`, at every time all its buckets have a value.
fn add_nhcb(data: &mut BTreeMap<Labels, BTreeMap<i64, Point>>, loaded: &[Labels]) {
    // (base labels) -> [(le, bucket series labels)]
    let mut groups: BTreeMap<Labels, Vec<(f64, Labels)>> = BTreeMap::new();
    for l in loaded {
        let Some(name) = l.get("__name__") else {
            continue;
        };
        let Some(base) = name.strip_suffix("_bucket") else {
            continue;
        };
        let Some(le) = l
            .get("le")
            .and_then(|v| parse_number(v.trim_start_matches('+')).or_else(|| parse_number(v)))
        else {
            continue;
        };
        let mut pairs: Vec<Label> = l
            .iter()
            .filter(|p| p.name != "le" && p.name != "__name__")
            .map(|p| Label {
                name: p.name.to_string(),
                value: p.value.to_string(),
            })
            .collect();
        pairs.push(Label {
            name: "__name__".into(),
            value: base.to_string(),
        });
        groups
            .entry(labels_from(pairs))
            .or_default()
            .push((le, l.clone()));
    }
    for (base, mut buckets) in groups {
        buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        if buckets.is_empty() {
            continue;
        }
        // Without a `+Inf` bucket, every bound is a custom bound and the implied `+Inf`
        // bucket is empty.
        let finite = if buckets.last().map(|b| b.0) == Some(f64::INFINITY) {
            buckets.len() - 1
        } else {
            buckets.len()
        };
        let with_name = |suffix: &str| {
            let mut pairs = crate::eval::to_pairs(&base);
            for p in &mut pairs {
                if p.name == "__name__" {
                    p.value.push_str(suffix);
                }
            }
            labels_from(pairs)
        };
        let (count_l, sum_l) = (with_name("_count"), with_name("_sum"));
        let custom_values: Vec<f64> = buckets[..finite].iter().map(|b| b.0).collect();
        let Some(first) = data.get(&buckets[0].1) else {
            continue;
        };
        let times: Vec<i64> = first.keys().copied().collect();
        let mut out: BTreeMap<i64, Point> = BTreeMap::new();
        'time: for t in times {
            let mut cum = Vec::with_capacity(buckets.len());
            for (_, l) in &buckets {
                match data.get(l).and_then(|s| s.get(&t)) {
                    Some(Point::Value(v)) if !tsdb::is_stale_nan(*v) => cum.push(*v),
                    _ => continue 'time,
                }
            }
            let value = |l: &Labels| match data.get(l).and_then(|s| s.get(&t)) {
                Some(Point::Value(v)) => Some(*v),
                _ => None,
            };
            let mut counts = Vec::with_capacity(cum.len());
            let mut prev = 0.0;
            for c in &cum {
                counts.push(c - prev);
                prev = *c;
            }
            let h = FloatHistogram {
                schema: model::histogram::CUSTOM_BUCKETS_SCHEMA,
                count: value(&count_l).unwrap_or(prev),
                sum: value(&sum_l).unwrap_or(0.0),
                positive_spans: vec![Span {
                    offset: 0,
                    length: counts.len() as u32,
                }],
                positive_buckets: counts,
                custom_values: custom_values.clone(),
                ..Default::default()
            };
            out.insert(t, Point::Hist(Box::new(h)));
        }
        if !out.is_empty() {
            data.entry(base).or_default().extend(out);
        }
    }
}

/// A loaded series as the TSDB would give it back: floats, and histograms with the counter
/// reset hints chunks assign (see the module docs).
#[allow(clippy::type_complexity)]
fn stored_samples(s: &BTreeMap<i64, Point>) -> (Vec<(i64, f64)>, Vec<(i64, Arc<FloatHistogram>)>) {
    let mut floats = Vec::new();
    let mut hists: Vec<(i64, Arc<FloatHistogram>)> = Vec::new();
    let mut prev: Option<FloatHistogram> = None;
    for (t, p) in s {
        match p {
            Point::Value(v) => {
                floats.push((*t, *v));
                prev = None;
            }
            Point::Hist(h) => {
                let mut h = (**h).clone();
                if h.counter_reset_hint != CounterResetHint::Gauge {
                    let explicit_reset = h.counter_reset_hint == CounterResetHint::CounterReset;
                    h.counter_reset_hint = CounterResetHint::Unknown;
                    h.counter_reset_hint = match &prev {
                        _ if explicit_reset => CounterResetHint::Unknown,
                        None => CounterResetHint::Unknown,
                        Some(p) if p.counter_reset_hint == CounterResetHint::Gauge => {
                            CounterResetHint::Unknown
                        }
                        // A reset starts a new chunk whose first sample reads back with an
                        // unknown hint (prometheus/prometheus#15346).
                        Some(p) if h.detect_reset(p) => CounterResetHint::Unknown,
                        Some(_) => CounterResetHint::NotCounterReset,
                    };
                }
                prev = Some(h.clone());
                hists.push((*t, Arc::new(h)));
            }
            Point::Omitted => {}
        }
    }
    (floats, hists)
}

fn run_eval(engine: &Engine, q: &VecQuerier, line: &str, body: &[&str]) -> Result<(), String> {
    let mut ex = Expect::default();
    let (cmd, rest) = line.split_once(' ').ok_or("incomplete eval command")?;
    match cmd {
        "eval" => {}
        "eval_fail" => ex.fail = Some(None),
        "eval_ordered" => ex.ordered = true,
        "eval_warn" => ex.warn.push(None),
        "eval_info" => ex.info.push(None),
        _ => return Err(format!("unknown command {cmd}")),
    }
    enum Kind {
        Instant(i64),
        Range(i64, i64, i64),
    }
    let (kind, query) = if let Some(r) = rest.strip_prefix("instant at ") {
        let (t, q) = r.split_once(' ').ok_or("missing query")?;
        (Kind::Instant(parse_duration(t).ok_or("bad time")?), q)
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let parts: Vec<&str> = r.splitn(6, ' ').collect();
        if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
            return Err("bad range eval".into());
        }
        (
            Kind::Range(
                parse_duration(parts[0]).ok_or("bad start")?,
                parse_duration(parts[2]).ok_or("bad end")?,
                parse_duration(parts[4]).ok_or("bad step")?,
            ),
            parts[5],
        )
    } else {
        return Err("bad eval command".into());
    };
    for l in body {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(e) = t.strip_prefix("expect ") {
            let e = e.trim();
            let (kind_word, rest) = e.split_once(' ').unwrap_or((e, ""));
            match kind_word {
                "fail" => ex.fail = Some(parse_matcher(rest)?),
                "ordered" => ex.ordered = true,
                "warn" => ex.warn.push(parse_matcher(rest)?),
                "info" => ex.info.push(parse_matcher(rest)?),
                "no_warn" => ex.no_warn = true,
                "no_info" => ex.no_info = true,
                "string" => {
                    let (s, _) = parse_quoted(rest.trim())?;
                    ex.string = Some(s);
                }
                "range" => {
                    let r = rest
                        .trim()
                        .strip_prefix("vector from ")
                        .ok_or("bad expect range vector")?;
                    let p: Vec<&str> = r.split_whitespace().collect();
                    if p.len() != 5 {
                        return Err("bad expect range vector".into());
                    }
                    ex.range_vector = Some((
                        parse_duration(p[0]).ok_or("bad time")?,
                        parse_duration(p[2]).ok_or("bad time")?,
                        parse_duration(p[4]).ok_or("bad time")?,
                    ));
                }
                _ => return Err(format!("unknown expectation {t:?}")),
            }
            continue;
        }
        if let Some(v) = parse_number(t) {
            ex.scalar = Some(v);
            continue;
        }
        let (ls, r) = parse_series_desc(t)?;
        ex.series.push((ls, expand_points(r)?));
    }
    let res = match kind {
        Kind::Instant(t) => engine.instant_query(q, query, t, None),
        Kind::Range(s, e, st) => engine.range_query(q, query, s, e, st, None),
    };
    let res = match (res, &ex.fail) {
        (Err(e), Some(m)) => {
            if let Some(m) = m {
                if !m.matches(&e.to_string()) {
                    return Err(format!("expected error {m:?}, got {e:?}"));
                }
            }
            return Ok(());
        }
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
        (Ok(_), Some(_)) => return Err("expected the query to fail, it succeeded".into()),
        (Ok(r), None) => r,
    };
    check_annotations("warn", &res.warnings, &ex.warn, ex.no_warn)?;
    check_annotations("info", &res.infos, &ex.info, ex.no_info)?;
    let grid = match kind {
        Kind::Range(s, _, st) => Some((s, st)),
        Kind::Instant(_) => ex.range_vector.map(|(s, _, st)| (s, st)),
    };
    compare(&res, &ex, &grid)
}

fn check_annotations(
    what: &str,
    got: &[String],
    expected: &[Option<Matcher>],
    none: bool,
) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("expected no {what} annotations, got {got:?}"));
    }
    if expected.is_empty() {
        return Ok(());
    }
    for e in expected {
        let ok = match e {
            None => !got.is_empty(),
            Some(m) => got.iter().any(|g| m.matches(g)),
        };
        if !ok {
            return Err(format!("expected {what} annotation {e:?}, got {got:?}"));
        }
    }
    for g in got {
        if !expected
            .iter()
            .any(|e| e.as_ref().map(|m| m.matches(g)).unwrap_or(true))
        {
            return Err(format!("unexpected {what} annotation {g:?}"));
        }
    }
    Ok(())
}

fn compare(res: &QueryResult, ex: &Expect, grid: &Option<(i64, i64)>) -> Result<(), String> {
    match &res.value {
        Value::String { v, .. } => match &ex.string {
            Some(s) if s == v => Ok(()),
            _ => Err(format!("expected {:?}, got string {v:?}", ex.string)),
        },
        Value::Scalar { v, .. } => match ex.scalar {
            Some(e) if almost_equal(e, *v) => Ok(()),
            e => Err(format!("expected scalar {e:?}, got {}", format_float(*v))),
        },
        Value::Vector(samples) => {
            if ex.scalar.is_some() {
                return Err("expected a scalar, got a vector".into());
            }
            if samples.len() != ex.series.len() {
                return Err(format!(
                    "expected {} samples, got {}: {}",
                    ex.series.len(),
                    samples.len(),
                    samples
                        .iter()
                        .map(|s| format!("{} {}", show(&s.metric), show_sample(s)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for (k, (l, pts)) in ex.series.iter().enumerate() {
                let (want, want_h) = match pts.first() {
                    Some(Point::Value(v)) => (*v, None),
                    Some(Point::Hist(h)) => (0.0, Some(h)),
                    _ => return Err(format!("expected sample for {} has no value", show(l))),
                };
                let pos = samples.iter().position(|s| s.metric == *l);
                let Some(pos) = pos else {
                    return Err(format!(
                        "expected series {} not in result: {}",
                        show(l),
                        samples
                            .iter()
                            .map(|s| format!("{} {}", show(&s.metric), show_sample(s)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                };
                if ex.ordered && pos != k {
                    return Err(format!("expected {} at position {k}, got {pos}", show(l)));
                }
                let got = &samples[pos];
                match (want_h, &got.h) {
                    (None, None) => {}
                    (Some(w), Some(g)) => {
                        if !w.approx_eq(g, almost_equal) {
                            return Err(format!(
                                "{}: expected {}, got {}",
                                show(l),
                                w.test_expression(),
                                g.test_expression()
                            ));
                        }
                        continue;
                    }
                    _ => {
                        return Err(format!(
                            "{}: expected {}, got {}",
                            show(l),
                            want_h
                                .map(|h| h.test_expression())
                                .unwrap_or_else(|| format_float(want)),
                            show_sample(got)
                        ))
                    }
                }
                if !almost_equal(want, samples[pos].v) {
                    return Err(format!(
                        "{}: expected {}, got {}",
                        show(l),
                        format_float(want),
                        format_float(samples[pos].v)
                    ));
                }
            }
            Ok(())
        }
        Value::Matrix(series) => match grid {
            Some((start, step)) => compare_matrix(series, &ex.series, *start, *step),
            None if series.is_empty() && ex.series.is_empty() => Ok(()),
            None => Err("a range vector result needs an `expect range vector` line".into()),
        },
    }
}

/// Compares a matrix result against expected series whose points start at `start` and are
/// `step` apart.
fn compare_matrix(
    got: &[crate::Series],
    want: &[(Labels, Vec<Point>)],
    start: i64,
    step: i64,
) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "expected {} series, got {}: {}",
            want.len(),
            got.len(),
            got.iter()
                .map(|s| show(&s.metric))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (l, pts) in want {
        let Some(g) = got.iter().find(|s| s.metric == *l) else {
            return Err(format!(
                "expected series {} not in result: {}",
                show(l),
                got.iter()
                    .map(|s| show(&s.metric))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let exp: Vec<(i64, f64)> = pts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Point::Value(v) => Some((start + i as i64 * step, *v)),
                _ => None,
            })
            .collect();
        let exp_h: Vec<(i64, &FloatHistogram)> = pts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Point::Hist(h) => Some((start + i as i64 * step, &**h)),
                _ => None,
            })
            .collect();
        if exp_h.len() != g.histograms.len()
            || exp_h
                .iter()
                .zip(g.histograms.iter())
                .any(|(a, b)| a.0 != b.0 || !a.1.approx_eq(&b.1, almost_equal))
        {
            let fh = |v: &mut dyn Iterator<Item = (i64, &FloatHistogram)>| {
                v.map(|(t, h)| format!("{}@{}", h.test_expression(), t as f64 / 1000.0))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            return Err(format!(
                "{}: expected histograms [{}], got [{}]",
                show(l),
                fh(&mut exp_h.iter().copied()),
                fh(&mut g.histograms.iter().map(|(t, h)| (*t, &**h)))
            ));
        }
        let fmt = |v: &[(i64, f64)]| {
            v.iter()
                .map(|(t, x)| format!("{}@{}", format_float(*x), *t as f64 / 1000.0))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if exp.len() != g.points.len()
            || exp
                .iter()
                .zip(g.points.iter())
                .any(|(a, b)| a.0 != b.0 || !almost_equal(a.1, b.1))
        {
            return Err(format!(
                "{}: expected [{}], got [{}]",
                show(l),
                fmt(&exp),
                fmt(&g.points)
            ));
        }
    }
    Ok(())
}

/// Runs a script file; errors reading it are one failure.
pub fn run_file(path: &std::path::Path) -> Report {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => run_script(&name, &text),
        Err(e) => Report {
            passed: 0,
            failures: vec![format!("{name}: cannot read: {e}")],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_series_values() {
        let p = expand_points("1+2x3 _ -1-1x1 _x2 stale 5x1").unwrap();
        let vals: Vec<String> = p
            .iter()
            .map(|p| match p {
                Point::Value(v) if tsdb::is_stale_nan(*v) => "stale".into(),
                Point::Value(v) => format_float(*v),
                Point::Hist(h) => h.test_expression(),
                Point::Omitted => "_".into(),
            })
            .collect();
        assert_eq!(
            vals,
            ["1", "3", "5", "7", "_", "-1", "-2", "_", "_", "stale", "5", "5"]
        );
    }

    #[test]
    fn parses_series_descriptions() {
        let (l, rest) = parse_series_desc(r#"m{a="x y", "b.c"="}"} 1 2"#).unwrap();
        assert_eq!(l.get("__name__"), Some("m"));
        assert_eq!(l.get("a"), Some("x y"));
        assert_eq!(l.get("b.c"), Some("}"));
        assert_eq!(rest.trim(), "1 2");
        assert_eq!(parse_duration("10s53ms"), Some(10_053));
        assert_eq!(parse_duration("0"), Some(0));
    }

    #[test]
    fn a_wrong_expectation_fails() {
        let script =
            "load 1m\n  m 1 2 3\n\neval instant at 2m m\n  m 4\n\neval instant at 2m m\n  m 3\n";
        let r = run_script("t", script);
        assert_eq!(r.passed, 1);
        assert_eq!(r.failed(), 1);
        assert!(r.failures[0].starts_with("t:4:"), "{}", r.failures[0]);
    }
}
