//! Aggregation operators (`sum`, `avg`, `topk`, `count_values`, `limit_ratio`, ...).
//!
//! Each step's samples are folded into groups in the order the groups first appear, with the
//! same numerics as Prometheus (Kahan-compensated sums, the incremental mean on overflow,
//! Welford variance, a binary heap with Go's sift order for `topk`/`bottomk` so ties resolve
//! the same way), because results must match Prometheus to the last digit.

use std::collections::HashMap;

use promql_parser::parser::token as tok;
use promql_parser::parser::{AggregateExpr, LabelModifier};
use tsdb::{Label, Labels, METRIC_NAME};

use crate::error::{exec, Error};
use model::histogram::FloatHistogram;

use crate::eval::{
    by_step, by_step_h, has_histograms, labels_from, to_pairs, Acc, Ev, Range, Result, Val,
};
use crate::functions::{kahan_inc, position, quantile};
use crate::json::format_float;

#[derive(Default, Clone)]
struct Group {
    seen: bool,
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    incremental: bool,
    drop: bool,
    values: Vec<f64>,
    heap: Vec<(usize, f64)>,
    members: Vec<(usize, f64)>,
}

pub(crate) fn aggregate(ev: &mut Ev<'_>, a: &AggregateExpr, r: Range) -> Result<Val> {
    let op = a.op.id();
    let mut fparam: Vec<f64> = Vec::new();
    let mut sparam = String::new();
    if let Some(p) = &a.param {
        match op {
            tok::T_COUNT_VALUES => match ev.eval(p, r)? {
                Val::Str(s) => sparam = s,
                _ => {
                    return Err(Error::BadData(
                        "count_values expects a string parameter".into(),
                    ))
                }
            },
            _ => fparam = ev.scalar_arg(p, r)?,
        }
    }
    let mut inner = ev.vector_arg(&a.expr, r)?;
    // Histogram samples: counted by count/group, carried by limitk/limit_ratio, aggregated
    // by sum/avg below, ignored (with an info) by the rest.
    let mut boxes: Option<crate::histop::Boxes> = None;
    if has_histograms(&inner) {
        let opn = a.op.id();
        match opn {
            tok::T_COUNT_VALUES => {
                // A histogram counts under its Go string form.
                let mut b = crate::histop::Boxes::default();
                inner = b.box_series(inner);
                boxes = Some(b);
            }
            tok::T_COUNT | tok::T_GROUP => {
                for s in &mut inner {
                    if !s.hs.is_empty() {
                        s.pts.extend(s.hs.drain(..).map(|(t, _)| (t, 0.0)));
                        s.pts.sort_by_key(|p| p.0);
                    }
                }
            }
            tok::T_LIMITK | tok::T_LIMIT_RATIO => {
                let mut b = crate::histop::Boxes::default();
                inner = b.box_series(inner);
                boxes = Some(b);
            }
            tok::T_SUM | tok::T_AVG => {}
            _ => {
                let name = a.op.to_string();
                let pos = position(ev, &a.expr);
                ev.annos.info(format!(
                    "PromQL info: ignored histogram in {name} aggregation ({pos})"
                ));
                for s in &mut inner {
                    s.hs.clear();
                }
            }
        }
    }
    let (by, mut names): (bool, Vec<String>) = match &a.modifier {
        Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
        None => (true, Vec::new()),
    };
    let mut op = op;
    if op == tok::T_COUNT_VALUES {
        if !ev.valid_label_name(&sparam) {
            return Err(exec(format!(
                "invalid label name {}",
                go_quote_raw(&sparam)
            )));
        }
        // As Prometheus does: every sample gets `label=value`, then `count` groups by the
        // grouping labels plus that label. Samples whose new labels coincide stay separate.
        let mut out: Vec<crate::eval::S> = Vec::new();
        for s in &inner {
            let mut by_value: Vec<(String, usize)> = Vec::new();
            for &(t, v) in &s.pts {
                let key = match boxes.as_ref().and_then(|b| b.get(v)) {
                    Some(h) => h.go_string(),
                    None => format_float(v),
                };
                let idx = match by_value.iter().find(|e| e.0 == key) {
                    Some(e) => e.1,
                    None => {
                        let mut pairs = to_pairs(&s.metric);
                        pairs.retain(|p| p.name != sparam);
                        pairs.push(Label {
                            name: sparam.clone(),
                            value: key.clone(),
                        });
                        out.push(crate::eval::S {
                            metric: labels_from(pairs),
                            drop_name: s.drop_name,
                            pts: Vec::new(),
                            hs: Vec::new(),
                        });
                        by_value.push((key, out.len() - 1));
                        out.len() - 1
                    }
                };
                out[idx].pts.push((t, v));
            }
        }
        inner = out;
        if by {
            names.push(sparam.clone());
        } else {
            names.retain(|n| *n != sparam);
        }
        op = tok::T_COUNT;
    }
    // Group of every input series, computed once.
    let mut group_of = Vec::with_capacity(inner.len());
    let mut group_labels: Vec<Labels> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in &inner {
        // Borrowed pairs: one label set built per series, no string per label.
        let pairs: Vec<tsdb::LabelRef<'_>> = s
            .metric
            .iter()
            .filter(|p| {
                let listed = names.iter().any(|n| n == p.name);
                if by {
                    listed
                } else {
                    !listed && p.name != METRIC_NAME
                }
            })
            .collect();
        let l = Labels::from_sorted_refs_unchecked(&pairs);
        let g = *index.entry(l.clone()).or_insert_with(|| {
            group_labels.push(l);
            group_labels.len() - 1
        });
        group_of.push(g);
    }
    let steps = by_step(&inner, r);
    let mut groups = vec![Group::default(); group_labels.len()];
    let mut acc = Acc::new();
    // sum/avg over histograms: per step, the groups that had histograms (their float samples
    // are left out: a mix yields nothing, with a warning) and the histogram results.
    let mut hist_groups: Vec<Vec<bool>> = Vec::new();
    let mut hist_out: Vec<(usize, usize, crate::eval::H)> = Vec::new();
    if (op == tok::T_SUM || op == tok::T_AVG) && has_histograms(&inner) {
        (hist_groups, hist_out) =
            hist_sum_avg(ev, a, op, &inner, &group_of, group_labels.len(), &steps, r);
    }
    for (step, samples) in steps.iter().enumerate() {
        ev.check()?;
        let ts = r.ts(step);
        let param = fparam.get(step).copied().unwrap_or(f64::NAN);
        let mut k = 0usize;
        match op {
            tok::T_TOPK | tok::T_BOTTOMK | tok::T_LIMITK => {
                if param.is_nan() {
                    return Err(exec("Parameter value is NaN"));
                }
                if !(-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&param) {
                    return Err(exec(format!(
                        "Scalar value {} overflows int64",
                        go_g(param)
                    )));
                }
                let kk = param as i64;
                if kk < 1 {
                    continue;
                }
                k = (kk as usize).min(samples.len());
            }
            tok::T_LIMIT_RATIO if param.is_nan() => {
                return Err(exec("Ratio value is NaN"));
            }
            tok::T_QUANTILE if !(0.0..=1.0).contains(&param) => {
                ev.annos.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {} ({})",
                    go_g(param),
                    a.param
                        .as_ref()
                        .map(|p| position(ev, p))
                        .unwrap_or_default()
                ));
            }
            _ => {}
        }
        let mut ratio = param;
        if op == tok::T_LIMIT_RATIO && !(-1.0..=1.0).contains(&ratio) {
            let capped = ratio.clamp(-1.0, 1.0);
            ev.annos.warn(format!(
                "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {} ({})",
                go_g(ratio),
                go_g(capped),
                a.param.as_ref().map(|p| position(ev, p)).unwrap_or_default()
            ));
            ratio = capped;
        }
        let mut order: Vec<usize> = Vec::new();
        for &(i, f) in samples {
            let gi = group_of[i];
            if !hist_groups.is_empty() && hist_groups[step][gi] {
                continue;
            }
            let g = &mut groups[gi];
            if !g.seen {
                *g = Group {
                    seen: true,
                    count: 1.0,
                    value: f,
                    mean: f,
                    drop: inner[i].drop_name,
                    ..Group::default()
                };
                order.push(gi);
                match op {
                    tok::T_STDDEV | tok::T_STDVAR => {
                        g.value = 0.0;
                        if !f.is_finite() {
                            g.values.push(f);
                        }
                    }
                    tok::T_QUANTILE => g.values.push(f),
                    tok::T_TOPK | tok::T_BOTTOMK => g.heap.push((i, f)),
                    tok::T_LIMITK | tok::T_LIMIT_RATIO | tok::T_COUNT_VALUES => {
                        g.members.push((i, f))
                    }
                    _ => {}
                }
                continue;
            }
            g.drop |= inner[i].drop_name;
            match op {
                tok::T_SUM => {
                    let (v, c) = kahan_inc(f, g.value, g.kahan);
                    g.value = v;
                    g.kahan = c;
                }
                tok::T_AVG => {
                    g.count += 1.0;
                    if !g.incremental {
                        let (v, c) = kahan_inc(f, g.value, g.kahan);
                        if !v.is_infinite() {
                            g.value = v;
                            g.kahan = c;
                            continue;
                        }
                        g.incremental = true;
                        g.mean = g.value / (g.count - 1.0);
                        g.kahan /= g.count - 1.0;
                    }
                    if g.mean.is_infinite() {
                        if f.is_infinite() && (g.mean > 0.0) == (f > 0.0) {
                            continue;
                        }
                        if !f.is_infinite() && !f.is_nan() {
                            continue;
                        }
                    }
                    let cur = g.mean + g.kahan;
                    let (m, c) = kahan_inc(f / g.count - cur / g.count, g.mean, g.kahan);
                    g.mean = m;
                    g.kahan = c;
                }
                tok::T_MAX => {
                    if g.value < f || g.value.is_nan() {
                        g.value = f;
                    }
                }
                tok::T_MIN => {
                    if g.value > f || g.value.is_nan() {
                        g.value = f;
                    }
                }
                tok::T_COUNT => g.count += 1.0,
                tok::T_GROUP => {}
                tok::T_STDDEV | tok::T_STDVAR => {
                    if !f.is_finite() {
                        g.values.push(f);
                    }
                    g.count += 1.0;
                    let delta = f - (g.mean + g.kahan);
                    let (m, c) = kahan_inc(delta / g.count, g.mean, g.kahan);
                    g.mean = m;
                    g.kahan = c;
                    g.value += delta * (f - (g.mean + g.kahan));
                }
                tok::T_QUANTILE => g.values.push(f),
                tok::T_TOPK => {
                    if g.heap.len() < k {
                        heap_push(&mut g.heap, (i, f), less_top);
                    } else if g.heap[0].1 < f || (g.heap[0].1.is_nan() && !f.is_nan()) {
                        g.heap[0] = (i, f);
                        if k > 1 {
                            heap_fix0(&mut g.heap, less_top);
                        }
                    }
                }
                tok::T_BOTTOMK => {
                    if g.heap.len() < k {
                        heap_push(&mut g.heap, (i, f), less_bottom);
                    } else if g.heap[0].1 > f || (g.heap[0].1.is_nan() && !f.is_nan()) {
                        g.heap[0] = (i, f);
                        if k > 1 {
                            heap_fix0(&mut g.heap, less_bottom);
                        }
                    }
                }
                _ => g.members.push((i, f)),
            }
        }
        for gi in order {
            let g = std::mem::take(&mut groups[gi]);
            let labels = &group_labels[gi];
            let drop = g.drop && labels.get(METRIC_NAME).is_some();
            let v = match op {
                tok::T_SUM => {
                    if g.value.is_infinite() {
                        g.value
                    } else {
                        g.value + g.kahan
                    }
                }
                tok::T_AVG => {
                    if g.incremental {
                        g.mean + g.kahan
                    } else {
                        (g.value + g.kahan) / g.count
                    }
                }
                tok::T_MAX | tok::T_MIN => g.value,
                tok::T_COUNT => g.count,
                tok::T_GROUP => 1.0,
                tok::T_STDVAR | tok::T_STDDEV if g.values.iter().any(|v| !v.is_finite()) => {
                    f64::NAN
                }
                tok::T_STDVAR => g.value / g.count,
                tok::T_STDDEV => (g.value / g.count).sqrt(),
                tok::T_QUANTILE => {
                    let mut vals = g.values;
                    quantile(param, &mut vals)
                }
                tok::T_TOPK | tok::T_BOTTOMK => {
                    let mut h = g.heap;
                    if op == tok::T_TOPK {
                        h.sort_by(|a, b| cmp_desc(less_top, a, b));
                    } else {
                        h.sort_by(|a, b| cmp_desc(less_bottom, a, b));
                    }
                    for (i, f) in h {
                        let m = &inner[i];
                        acc.push_keyed(i, || m.metric.clone(), m.drop_name, ts, f)?;
                    }
                    continue;
                }
                tok::T_LIMITK => {
                    for (i, f) in g.members.into_iter().take(k) {
                        let m = &inner[i];
                        acc.push_keyed(i, || m.metric.clone(), m.drop_name, ts, f)?;
                    }
                    continue;
                }
                tok::T_LIMIT_RATIO => {
                    for (i, f) in g.members {
                        let off = xxhash_labels(&inner[i].metric) as f64 / u64::MAX as f64;
                        let keep =
                            (ratio >= 0.0 && off < ratio) || (ratio < 0.0 && off >= 1.0 + ratio);
                        if keep {
                            let m = &inner[i];
                            acc.push_keyed(i, || m.metric.clone(), m.drop_name, ts, f)?;
                        }
                    }
                    continue;
                }
                tok::T_COUNT_VALUES => {
                    let mut counts: Vec<(String, f64)> = Vec::new();
                    for (_, f) in g.members {
                        let s = match boxes.as_ref().and_then(|b| b.get(f)) {
                            Some(h) => h.go_string(),
                            None => format_float(f),
                        };
                        match counts.iter_mut().find(|c| c.0 == s) {
                            Some(c) => c.1 += 1.0,
                            None => counts.push((s, 1.0)),
                        }
                    }
                    for (s, c) in counts {
                        let mut pairs = to_pairs(labels);
                        pairs.push(Label {
                            name: sparam.clone(),
                            value: s,
                        });
                        acc.push(labels_from(pairs), drop, ts, c)?;
                    }
                    continue;
                }
                _ => return Err(exec("unsupported aggregation")),
            };
            // Keys: input series for topk/bottomk/limitk/limit_ratio above, groups here; an
            // operation uses one kind only.
            acc.push_keyed(gi, || labels.clone(), drop, ts, v)?;
        }
    }
    for (step, gi, h) in hist_out {
        let labels = &group_labels[gi];
        // Group labels keep `__name__` only under `by (__name__)`, which keeps it.
        acc.push_keyed_h(gi, || labels.clone(), false, r.ts(step), h)?;
    }
    let mut out = acc.out;
    if let Some(b) = boxes {
        out = b.unbox_series(out);
    }
    Ok(Val::Vector(out))
}

fn less_top(a: f64, b: f64) -> bool {
    if a.is_nan() {
        return true;
    }
    a < b
}

fn less_bottom(a: f64, b: f64) -> bool {
    if a.is_nan() {
        return true;
    }
    a > b
}

/// Sort order of `sort.Sort(sort.Reverse(heap))`: `a` first when `less(b, a)`.
fn cmp_desc(less: fn(f64, f64) -> bool, a: &(usize, f64), b: &(usize, f64)) -> std::cmp::Ordering {
    if less(b.1, a.1) {
        std::cmp::Ordering::Less
    } else if less(a.1, b.1) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

fn heap_push(h: &mut Vec<(usize, f64)>, x: (usize, f64), less: fn(f64, f64) -> bool) {
    h.push(x);
    let mut j = h.len() - 1;
    while j > 0 {
        let i = (j - 1) / 2;
        if !less(h[j].1, h[i].1) {
            break;
        }
        h.swap(i, j);
        j = i;
    }
}

fn heap_fix0(h: &mut [(usize, f64)], less: fn(f64, f64) -> bool) {
    let n = h.len();
    let mut i = 0;
    loop {
        let j1 = 2 * i + 1;
        if j1 >= n {
            break;
        }
        let mut j = j1;
        if j1 + 1 < n && less(h[j1 + 1].1, h[j1].1) {
            j = j1 + 1;
        }
        if !less(h[j].1, h[i].1) {
            break;
        }
        h.swap(i, j);
        i = j;
    }
}

fn go_quote_raw(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if ('\u{80}'..='\u{ff}').contains(&c) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%g` for the values annotations print.
pub(crate) fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e21).contains(&a) {
        let s = format!("{v:e}");
        // Go writes e+XX / e-XX with at least two exponent digits.
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{v}")
}

/// xxHash64 (seed 0) of the label pairs joined as Prometheus's `labels.Hash` joins them
/// (`name 0xff value 0xff ...`), so `limit_ratio` picks the same series as Prometheus.
pub(crate) fn xxhash_labels(l: &Labels) -> u64 {
    let mut b = Vec::with_capacity(64);
    for p in l.iter() {
        b.extend_from_slice(p.name.as_bytes());
        b.push(0xff);
        b.extend_from_slice(p.value.as_bytes());
        b.push(0xff);
    }
    xxh64(&b)
}

const P1: u64 = 11400714785074694791;
const P2: u64 = 14029467366897019727;
const P3: u64 = 1609587929392839161;
const P4: u64 = 9650029242287828579;
const P5: u64 = 2870177450012600261;

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

fn merge(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a) as u64
}

pub(crate) fn xxh64(b: &[u8]) -> u64 {
    let n = b.len();
    let mut i = 0;
    let mut h = if n >= 32 {
        let (mut v1, mut v2, mut v3, mut v4) =
            (P1.wrapping_add(P2), P2, 0u64, 0u64.wrapping_sub(P1));
        while i + 32 <= n {
            v1 = round(v1, u64_at(b, i));
            v2 = round(v2, u64_at(b, i + 8));
            v3 = round(v3, u64_at(b, i + 16));
            v4 = round(v4, u64_at(b, i + 24));
            i += 32;
        }
        let mut h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge(h, v1);
        h = merge(h, v2);
        h = merge(h, v3);
        merge(h, v4)
    } else {
        P5
    };
    h = h.wrapping_add(n as u64);
    while i + 8 <= n {
        h ^= round(0, u64_at(b, i));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        i += 8;
    }
    if i + 4 <= n {
        h ^= u32_at(b, i).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        i += 4;
    }
    while i < n {
        h ^= (b[i] as u64).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
        i += 1;
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^= h >> 32;
    h
}

/// sum/avg over the histogram samples of each step and group: which groups had histograms at
/// each step (their floats are left out) and the results. Kept out of line so the recursive
/// evaluator's frames stay small.
#[inline(never)]
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
fn hist_sum_avg(
    ev: &mut Ev<'_>,
    a: &AggregateExpr,
    op: promql_parser::parser::token::TokenId,
    inner: &[crate::eval::S],
    group_of: &[usize],
    ngroups: usize,
    steps: &[Vec<(usize, f64)>],
    r: Range,
) -> (Vec<Vec<bool>>, Vec<(usize, usize, crate::eval::H)>) {
    let mut hist_groups: Vec<Vec<bool>> = Vec::new();
    let mut hist_out: Vec<(usize, usize, crate::eval::H)> = Vec::new();
    let pos = position(ev, &a.expr);
    let hsteps = by_step_h(inner, r);
    for (step, hsamples) in hsteps.iter().enumerate() {
        let mut flags = vec![false; ngroups];
        let mut members: Vec<Vec<&FloatHistogram>> = vec![Vec::new(); ngroups];
        let mut order = Vec::new();
        for &(i, h) in hsamples {
            let gi = group_of[i];
            if !flags[gi] {
                flags[gi] = true;
                order.push(gi);
            }
            members[gi].push(h);
        }
        let fsteps = &steps[step];
        for gi in order {
            if fsteps.iter().any(|&(i, _)| group_of[i] == gi) {
                ev.annos.warn(format!(
                    "PromQL warning: encountered a mix of histograms and floats for aggregation ({pos})"
                ));
                continue;
            }
            let hs = &members[gi];
            let summed = if op == tok::T_AVG {
                FloatHistogram::mean(hs)
            } else {
                FloatHistogram::kahan_sum(hs)
            };
            let (mut h, o) = match summed {
                Ok(x) => x,
                Err(_) => {
                    ev.annos.warn(format!(
                        "{} ({pos})",
                        crate::histfn::mixed_exponential_custom("")
                    ));
                    continue;
                }
            };
            crate::histfn::note_combined(ev, &o, &pos);
            h.compact();
            hist_out.push((step, gi, std::sync::Arc::new(h)));
        }
        hist_groups.push(flags);
    }
    (hist_groups, hist_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_known_vectors() {
        assert_eq!(xxh64(b""), 0xef46db3751d8e999);
        assert_eq!(xxh64(b"a"), 0xd24ec4f1a98c6e5b);
        assert_eq!(
            xxh64(b"Call me Ishmael. Some years ago--never mind how long precisely-"),
            0x02a2e85470d6fd96
        );
    }

    #[test]
    fn go_g_formats() {
        assert_eq!(go_g(1.1), "1.1");
        assert_eq!(go_g(f64::NAN), "NaN");
        assert_eq!(go_g(1e-5), "1e-05");
    }
}
