//! Native histograms in PromQL functions: the `histogram_*` accessors, the native side of
//! `histogram_quantile`/`histogram_fraction`, and range functions over windows that hold
//! histogram samples (`rate`, `increase`, `delta`, `irate`, `idelta`, `changes`, `resets`,
//! `sum/avg/count/last/first_over_time`, ...), with the annotations Prometheus attaches.
//!
//! Float-only windows never come here: [`crate::functions`] keeps its float code path and
//! calls [`window`] only when a window holds a histogram, so histogram support costs float
//! queries nothing.

use std::sync::Arc;

use model::histogram::{CounterResetHint, FloatHistogram, IncompatibleSchemas};

use crate::eval::{go_quote, H};

/// What a range function gives for one window.
pub(crate) enum Out {
    None,
    F(f64),
    H(H),
}

/// Annotation texts (Prometheus's `util/annotations`), without the position suffix.
pub(crate) fn mixed_floats_histograms(metric: &str) -> String {
    format!(
        "PromQL warning: encountered a mix of histograms and floats for metric name {}",
        go_quote(metric)
    )
}

pub(crate) fn mixed_exponential_custom(metric: &str) -> String {
    format!(
        "PromQL warning: vector contains a mix of histograms with exponential and custom buckets schemas for metric name {}",
        go_quote(metric)
    )
}

pub(crate) fn not_counter(metric: &str) -> String {
    format!(
        "PromQL warning: this native histogram metric is not a counter: {}",
        go_quote(metric)
    )
}

pub(crate) fn not_gauge(metric: &str) -> String {
    format!(
        "PromQL warning: this native histogram metric is not a gauge: {}",
        go_quote(metric)
    )
}

pub(crate) fn reconciled(op: &str) -> String {
    format!("PromQL info: mismatched custom buckets were reconciled during {op}")
}

pub(crate) fn counter_reset_collision(op: &str) -> String {
    format!("PromQL warning: conflicting counter resets during histogram {op}")
}

fn ignored_in_mixed_range(metric: &str) -> String {
    format!(
        "PromQL info: ignored histograms in a range containing both floats and histograms for metric name {}",
        go_quote(metric)
    )
}

/// The annotations of an aggregation of histograms: a counter-reset collision warns,
/// reconciled custom buckets are an info.
pub(crate) fn note_combined(
    ev: &mut crate::eval::Ev<'_>,
    o: &model::histogram::Combined,
    pos: &str,
) {
    if o.counter_reset_collision {
        ev.annos.warn(format!(
            "{} ({pos})",
            counter_reset_collision("aggregation")
        ));
    }
    if o.custom_buckets_reconciled {
        ev.annos
            .info(format!("{} ({pos})", reconciled("aggregation")));
    }
}

/// Context of one window.
pub(crate) struct Win<'a> {
    /// The series' metric name (empty when it has none).
    pub metric: &'a str,
    /// ` (line:col)` suffix for annotations.
    pub pos: &'a str,
    pub range_start: i64,
    pub range_end: i64,
    /// Start timestamps `(t, st)` of the series' samples that have one (empty when none do,
    /// or when the samples come from a subquery).
    pub sts: &'a [(i64, i64)],
}

impl Win<'_> {
    /// Whether start timestamps say the counter reset between the samples at `prev_t` and
    /// `cur_t`.
    fn st_reset(&self, prev_t: i64, cur_t: i64) -> bool {
        !self.sts.is_empty()
            && crate::functions::is_st_reset(
                tsdb::stchunk::at(self.sts, prev_t),
                prev_t,
                tsdb::stchunk::at(self.sts, cur_t),
                cur_t,
            )
    }
}

/// Annotations collected while evaluating a window: `(is_warning, message)`.
pub(crate) type Notes = Vec<(bool, String)>;

/// `h -= other` (`subtract`) or `h += other` inside a range function: Prometheus's info when
/// custom bucket bounds had to be reconciled; `false`, after its warning, when exponential and
/// custom buckets meet (the function then has no answer for the series).
fn combine_noting(
    h: &mut FloatHistogram,
    other: &FloatHistogram,
    subtract: bool,
    c: &Win<'_>,
    notes: &mut Notes,
) -> bool {
    let (result, op) = if subtract {
        (h.sub(other), "subtraction")
    } else {
        (h.add(other), "addition")
    };
    match result {
        Ok(o) => {
            if o.custom_buckets_reconciled {
                notes.push((false, format!("{} ({})", reconciled(op), c.pos)));
            }
            true
        }
        Err(IncompatibleSchemas) => {
            let m = mixed_exponential_custom(c.metric);
            notes.push((true, format!("{m} ({})", c.pos)));
            false
        }
    }
}

/// A range function over a window holding at least one histogram (`hw` non-empty).
pub(crate) fn window(
    name: &str,
    w: &[(i64, f64)],
    hw: &[(i64, H)],
    c: &Win<'_>,
    notes: &mut Notes,
) -> Out {
    let mixed = !w.is_empty();
    let warn = |notes: &mut Notes, m: String| notes.push((true, format!("{m} ({})", c.pos)));
    let info = |notes: &mut Notes, m: String| notes.push((false, format!("{m} ({})", c.pos)));
    match name {
        "rate" | "increase" | "delta" => {
            if mixed {
                warn(notes, mixed_floats_histograms(c.metric));
                return Out::None;
            }
            let counter = name != "delta";
            let first = &hw[0].1;
            let st0 = if counter {
                tsdb::stchunk::at(c.sts, hw[0].0)
            } else {
                0
            };
            // One histogram has a rate only when its start timestamp lies in the window.
            if hw.len() < 2 && !(st0 != 0 && st0 > c.range_start && st0 < hw[0].0) {
                return Out::None;
            }
            if counter && c.sts.len() > 1 {
                let ts: Vec<(i64, f64)> = hw.iter().map(|(t, _)| (*t, 0.0)).collect();
                if crate::functions::st_overlaps(&ts, c.sts) {
                    notes.push((true, st_overlap(c)));
                }
            }
            let mut h = if hw.len() >= 2 {
                match histogram_rate(hw, counter, c, notes) {
                    Some(h) => Some(h),
                    None => return Out::None,
                }
            } else {
                None
            };
            let Some(e) = crate::functions::extrapolation(
                hw[0].0,
                hw[hw.len() - 1].0,
                hw.len() - 1,
                c.range_start,
                c.range_end,
                counter,
                name == "rate",
                first.count,
                h.as_ref().map_or(0.0, |h| h.count),
                st0,
            ) else {
                return Out::None;
            };
            if e.from_start {
                // Counted from a zero at the first histogram's start.
                match &mut h {
                    Some(h) => {
                        if !combine_noting(h, first, false, c, notes) {
                            return Out::None;
                        }
                    }
                    None => {
                        let mut f = (**first).clone();
                        f.counter_reset_hint = CounterResetHint::Gauge;
                        h = Some(f);
                    }
                }
            }
            let Some(mut h) = h else {
                return Out::None;
            };
            h.mul(e.factor);
            Out::H(Arc::new(h))
        }
        "irate" | "idelta" => {
            // The last two samples of the window, of either kind.
            let last_f = w.last();
            let mut all: Vec<(i64, Option<f64>, Option<&H>)> = Vec::new();
            if w.len() >= 2 {
                all.push((w[w.len() - 2].0, Some(w[w.len() - 2].1), None));
            }
            if let Some(f) = last_f {
                all.push((f.0, Some(f.1), None));
            }
            if hw.len() >= 2 {
                all.push((hw[hw.len() - 2].0, None, Some(&hw[hw.len() - 2].1)));
            }
            all.push((hw[hw.len() - 1].0, None, Some(&hw[hw.len() - 1].1)));
            all.sort_by_key(|p| p.0);
            if all.len() < 2 {
                return Out::None;
            }
            let (prev, last) = (&all[all.len() - 2], &all[all.len() - 1]);
            let (Some(ph), Some(lh)) = (prev.2, last.2) else {
                warn(notes, mixed_floats_histograms(c.metric));
                return Out::None;
            };
            let is_rate = name == "irate";
            let dt = (last.0 - prev.0) as f64 / 1000.0;
            let mut res = (**lh).clone();
            if is_rate {
                if lh.counter_reset_hint == CounterResetHint::Gauge
                    || ph.counter_reset_hint == CounterResetHint::Gauge
                {
                    warn(notes, not_counter(c.metric));
                }
                if !c.st_reset(prev.0, last.0)
                    && !lh.detect_reset(ph)
                    && !combine_noting(&mut res, ph, true, c, notes)
                {
                    return Out::None;
                }
            } else {
                if lh.counter_reset_hint != CounterResetHint::Gauge
                    || ph.counter_reset_hint != CounterResetHint::Gauge
                {
                    warn(notes, not_gauge(c.metric));
                }
                if !combine_noting(&mut res, ph, true, c, notes) {
                    return Out::None;
                }
            }
            res.counter_reset_hint = CounterResetHint::Gauge;
            if is_rate {
                res.div(dt);
            }
            res.compact();
            Out::H(Arc::new(res))
        }
        "count_over_time" => Out::F((w.len() + hw.len()) as f64),
        "present_over_time" => Out::F(1.0),
        "last_over_time" | "ts_of_last_over_time" => {
            let lh = &hw[hw.len() - 1];
            match w.last() {
                Some(f) if f.0 > lh.0 => Out::F(if name == "last_over_time" {
                    f.1
                } else {
                    f.0 as f64 / 1000.0
                }),
                _ if name == "last_over_time" => Out::H(lh.1.clone()),
                _ => Out::F(lh.0 as f64 / 1000.0),
            }
        }
        "first_over_time" | "ts_of_first_over_time" => {
            let fh = &hw[0];
            match w.first() {
                Some(f) if f.0 < fh.0 => Out::F(if name == "first_over_time" {
                    f.1
                } else {
                    f.0 as f64 / 1000.0
                }),
                _ if name == "first_over_time" => Out::H(fh.1.clone()),
                _ => Out::F(fh.0 as f64 / 1000.0),
            }
        }
        "sum_over_time" | "avg_over_time" => {
            if mixed {
                warn(notes, mixed_floats_histograms(c.metric));
                return Out::None;
            }
            let avg = name == "avg_over_time";
            let items: Vec<&FloatHistogram> = hw.iter().map(|(_, h)| &**h).collect();
            let summed = if avg {
                FloatHistogram::mean(&items)
            } else {
                FloatHistogram::kahan_sum(&items)
            };
            let (mut acc, o) = match summed {
                Ok(x) => x,
                Err(IncompatibleSchemas) => {
                    warn(notes, mixed_exponential_custom(c.metric));
                    return Out::None;
                }
            };
            if o.counter_reset_collision {
                warn(notes, counter_reset_collision("aggregation"));
            }
            if o.custom_buckets_reconciled {
                info(notes, reconciled("aggregation"));
            }
            acc.compact();
            Out::H(Arc::new(acc))
        }
        "changes" => {
            let merged = merge(w, hw);
            let mut n = 0.0;
            for p in merged.windows(2) {
                let changed = match (&p[0].1, &p[1].1) {
                    (V::F(a), V::F(b)) => !(a == b || (a.is_nan() && b.is_nan())),
                    (V::H(a), V::H(b)) => !same_histogram(a, b),
                    _ => true,
                };
                if changed {
                    n += 1.0;
                }
            }
            Out::F(n)
        }
        "resets" => {
            let merged = merge(w, hw);
            let mut n = 0.0;
            for p in merged.windows(2) {
                let reset = match (&p[0].1, &p[1].1) {
                    (V::F(a), V::F(b)) => b < a || c.st_reset(p[0].0, p[1].0),
                    (V::H(a), V::H(b)) => c.st_reset(p[0].0, p[1].0) || b.detect_reset(a),
                    _ => true,
                };
                if reset {
                    n += 1.0;
                }
            }
            Out::F(n)
        }
        "absent_over_time" => Out::None,
        _ => {
            // Functions of float samples only: histograms are ignored, with a note when the
            // window also holds floats (the float result itself is computed by the caller).
            if mixed {
                info(notes, ignored_in_mixed_range(c.metric));
            }
            Out::None
        }
    }
}

/// Whether a float-only range function computes its value from the floats of a window that
/// also holds histograms (Prometheus ignores the histograms there).
pub(crate) fn float_only(name: &str) -> bool {
    !matches!(
        name,
        "rate"
            | "increase"
            | "delta"
            | "irate"
            | "idelta"
            | "count_over_time"
            | "present_over_time"
            | "last_over_time"
            | "ts_of_last_over_time"
            | "first_over_time"
            | "ts_of_first_over_time"
            | "sum_over_time"
            | "avg_over_time"
            | "changes"
            | "resets"
            | "absent_over_time"
    )
}

enum V<'a> {
    F(f64),
    H(&'a H),
}

fn merge<'a>(w: &[(i64, f64)], hw: &'a [(i64, H)]) -> Vec<(i64, V<'a>)> {
    let mut out: Vec<(i64, V<'a>)> = w.iter().map(|&(t, v)| (t, V::F(v))).collect();
    out.extend(hw.iter().map(|(t, h)| (*t, V::H(h))));
    out.sort_by_key(|p| p.0);
    out
}

/// Exact equality after compaction (Prometheus's `Equals` on compacted histograms).
pub(crate) fn same_histogram(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    a.approx_eq(b, |x, y| x == y || (x.is_nan() && y.is_nan()))
}

/// The increase (or delta) between the first and last histogram of a window, with counter
/// resets compensated (Prometheus's `histogramRate`), before extrapolation.
fn histogram_rate(
    hw: &[(i64, H)],
    counter: bool,
    c: &Win<'_>,
    notes: &mut Notes,
) -> Option<FloatHistogram> {
    let warn = |notes: &mut Notes, m: String| notes.push((true, format!("{m} ({})", c.pos)));
    let mut prev: FloatHistogram = (*hw[0].1).clone();
    let last = &hw[hw.len() - 1].1;
    let mut custom = prev.uses_custom_buckets();
    if counter
        && (prev.counter_reset_hint == CounterResetHint::Gauge
            || last.counter_reset_hint == CounterResetHint::Gauge)
    {
        warn(notes, not_counter(c.metric));
    }
    if counter && hw.len() > 1 {
        let second = &hw[1].1;
        if c.st_reset(hw[0].0, hw[1].0) || second.detect_reset(&prev) {
            prev = FloatHistogram {
                schema: second.schema,
                custom_values: second.custom_values.clone(),
                ..Default::default()
            };
            custom = second.uses_custom_buckets();
        }
    }
    if last.uses_custom_buckets() != custom {
        warn(notes, mixed_exponential_custom(c.metric));
        return None;
    }
    let mut min_schema = prev.schema.min(last.schema);
    for (_, h) in &hw[1..hw.len() - 1] {
        if !counter {
            continue;
        }
        if h.counter_reset_hint == CounterResetHint::Gauge {
            warn(notes, not_counter(c.metric));
        }
        min_schema = min_schema.min(h.schema);
        if h.uses_custom_buckets() != custom {
            warn(notes, mixed_exponential_custom(c.metric));
            return None;
        }
    }
    let mut h = last.copy_to_schema(min_schema);
    if !combine_noting(&mut h, &prev, true, c, notes) {
        return None;
    }
    if counter {
        let mut p: &FloatHistogram = &prev;
        let mut prev_t = hw[0].0;
        for (t, cur) in &hw[1..] {
            if (c.st_reset(prev_t, *t) || cur.detect_reset(p))
                && !combine_noting(&mut h, p, false, c, notes)
            {
                return None;
            }
            p = cur;
            prev_t = *t;
        }
    } else if hw[0].1.counter_reset_hint != CounterResetHint::Gauge
        || last.counter_reset_hint != CounterResetHint::Gauge
    {
        warn(notes, not_gauge(c.metric));
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact();
    Some(h)
}

/// The start-timestamp overlap warning for the window's series.
fn st_overlap(c: &Win<'_>) -> String {
    format!(
        "PromQL warning: sample has start time that overlaps with previous sample timestamp for metric {} ({})",
        crate::eval::go_quote(c.metric),
        c.pos
    )
}

/// `histogram_count`, `histogram_sum`, `histogram_avg`, `histogram_stddev`,
/// `histogram_stdvar` of one histogram.
pub(crate) fn accessor(name: &str, h: &FloatHistogram) -> f64 {
    match name {
        "histogram_count" => h.count,
        "histogram_sum" => h.sum,
        "histogram_avg" => h.sum / h.count,
        "histogram_stddev" => h.variance().sqrt(),
        _ => h.variance(),
    }
}
