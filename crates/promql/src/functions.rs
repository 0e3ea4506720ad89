//! PromQL functions: range functions over sliding windows, instant-vector functions,
//! label functions, date functions, and `histogram_quantile` / `histogram_fraction` over
//! classic and native histograms. Windows holding native histogram samples are handed to
//! `histfn`; float-only windows never leave the float code here.
//!
//! The numerics follow Prometheus's `functions.go` exactly (extrapolation thresholds of
//! `rate`, Kahan sums, the linear regression of `deriv`, `quantile`'s interpolation,
//! monotonicity fixing of buckets), since results are compared to the last digit.

use promql_parser::parser::{Call, Expr};
use tsdb::{Label, Labels, METRIC_NAME};

use crate::aggregate::go_g;
use crate::error::{exec, Error};
use crate::eval::{
    by_step, duration_ms, histogram_weight, labels_from, offset_ms, to_pairs, Acc, Ev, Range,
    Result, Val, S,
};

/// Go's `math.Max`: NaN wins.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Kahan-Neumaier summation step (Prometheus's `kahanSumInc`).
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's `quantile`: weighted average of the two nearest ranks, NaN sorted first.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| {
        if a.is_nan() && b.is_nan() {
            std::cmp::Ordering::Equal
        } else if a.is_nan() {
            std::cmp::Ordering::Less
        } else if b.is_nan() {
            std::cmp::Ordering::Greater
        } else {
            a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal)
        }
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn unwrap_paren(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unwrap_paren(&p.expr),
        e => e,
    }
}

/// `line:col` of the first selector in `e`, found in the query text (the parser keeps no
/// positions), for the suffix Prometheus puts on annotations.
pub(crate) fn position(ev: &Ev<'_>, e: &Expr) -> String {
    fn first_name(e: &Expr) -> Option<String> {
        match e {
            Expr::VectorSelector(vs) => vs.name.clone().or(Some("{".into())),
            Expr::MatrixSelector(ms) => ms.vs.name.clone().or(Some("{".into())),
            Expr::Paren(p) => first_name(&p.expr),
            Expr::Unary(u) => first_name(&u.expr),
            Expr::Subquery(s) => first_name(&s.expr),
            Expr::Aggregate(a) => first_name(&a.expr),
            Expr::Call(c) => c.args.args.iter().find_map(|a| first_name(a)),
            Expr::Binary(b) => first_name(&b.lhs).or_else(|| first_name(&b.rhs)),
            _ => None,
        }
    }
    let text = match e {
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Some(e.to_string()),
        _ => first_name(e),
    };
    let idx = text.and_then(|n| ev.query.find(&n)).unwrap_or(0);
    let before = &ev.query[..idx];
    let line = before.matches('\n').count() + 1;
    let col = idx - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    format!("{line}:{col}")
}

pub(crate) fn call(ev: &mut Ev<'_>, c: &Call, r: Range) -> Result<Val> {
    let name = c.func.name;
    // Selectors under histogram_count/sum/avg read histograms as Prometheus's
    // HistogramStatsIterator does (see `Ev::stats_mode`); a function needing the buckets
    // turns that off again below it.
    let stats = match name {
        "histogram_count" | "histogram_sum" | "histogram_avg" => Some(true),
        "histogram_quantile" | "histogram_fraction" | "histogram_quantiles" => Some(false),
        _ => None,
    };
    let Some(stats) = stats else {
        return call_inner(ev, c, r);
    };
    let saved = std::mem::replace(&mut ev.stats_mode, stats);
    let res = call_inner(ev, c, r);
    ev.stats_mode = saved;
    res
}

fn call_inner(ev: &mut Ev<'_>, c: &Call, r: Range) -> Result<Val> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    match name {
        "rate"
        | "increase"
        | "delta"
        | "irate"
        | "idelta"
        | "deriv"
        | "predict_linear"
        | "changes"
        | "resets"
        | "avg_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "min_over_time"
        | "max_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "mad_over_time"
        | "quantile_over_time"
        | "double_exponential_smoothing"
        | "holt_winters"
        | "ts_of_max_over_time"
        | "ts_of_min_over_time"
        | "ts_of_last_over_time"
        | "ts_of_first_over_time"
        | "absent_over_time" => range_fn(ev, name, &args, r),
        "time" => Ok(Val::Scalar(
            (0..r.steps()).map(|i| r.ts(i) as f64 / 1000.0).collect(),
        )),
        "step" => Ok(Val::Scalar(vec![ev.query_step as f64 / 1000.0; r.steps()])),
        "range" => Ok(Val::Scalar(vec![
            (ev.query_end - ev.query_start) as f64
                / 1000.0;
            r.steps()
        ])),
        "start" => Ok(Val::Scalar(vec![ev.query_start as f64 / 1000.0; r.steps()])),
        "end" => Ok(Val::Scalar(vec![ev.query_end as f64 / 1000.0; r.steps()])),
        "min_of" | "max_of" => {
            let a = ev.scalar_arg(args[0], r)?;
            let b = ev.scalar_arg(args[1], r)?;
            let f = if name == "min_of" { go_min } else { go_max };
            Ok(Val::Scalar(
                a.iter().zip(b.iter()).map(|(x, y)| f(*x, *y)).collect(),
            ))
        }
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; r.steps()])),
        "vector" => {
            let s = ev.scalar_arg(args[0], r)?;
            Ok(Val::Vector(vec![S {
                metric: Labels::empty(),
                drop_name: false,
                pts: s
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (r.ts(i), v))
                    .collect(),
                hs: Vec::new(),
            }]))
        }
        "scalar" => {
            let v = ev.vector_arg(args[0], r)?;
            let steps = by_step(&v, r);
            Ok(Val::Scalar(
                steps
                    .iter()
                    .map(|s| if s.len() == 1 { s[0].1 } else { f64::NAN })
                    .collect(),
            ))
        }
        "start_timestamp" => {
            // Only a selector's samples carry start timestamps: of any other expression
            // the result is empty, as in Prometheus.
            let v = match unwrap_paren(args[0]) {
                Expr::VectorSelector(vs) => {
                    ev.vector_selector(vs, r, crate::eval::Pick::StartTimestamp)?
                }
                _ => {
                    ev.vector_arg(args[0], r)?;
                    Vec::new()
                }
            };
            Ok(Val::Vector(
                v.into_iter()
                    .map(|mut s| {
                        s.drop_name = true;
                        s
                    })
                    .collect(),
            ))
        }
        "timestamp" => {
            let inner = unwrap_paren(args[0]);
            let v = if let Expr::VectorSelector(vs) = inner {
                ev.vector_selector(vs, r, crate::eval::Pick::Timestamp)?
            } else {
                let mut v = ev.vector_arg(args[0], r)?;
                for s in &mut v {
                    s.pts.iter_mut().for_each(|p| p.1 = p.0 as f64 / 1000.0);
                    if !s.hs.is_empty() {
                        s.pts
                            .extend(s.hs.drain(..).map(|(t, _)| (t, t as f64 / 1000.0)));
                        s.pts.sort_by_key(|p| p.0);
                    }
                }
                v
            };
            Ok(Val::Vector(
                v.into_iter()
                    .map(|mut s| {
                        s.drop_name = true;
                        s
                    })
                    .collect(),
            ))
        }
        "absent" => {
            let mut v = ev.vector_arg(args[0], r)?;
            // Presence is what counts: a histogram sample is present like a float.
            for s in &mut v {
                if !s.hs.is_empty() {
                    s.pts.extend(s.hs.drain(..).map(|(t, _)| (t, 0.0)));
                    s.pts.sort_by_key(|p| p.0);
                }
            }
            let steps = by_step(&v, r);
            let metric = absent_labels(args[0]);
            let pts: Vec<(i64, f64)> = steps
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_empty())
                .map(|(i, _)| (r.ts(i), 1.0))
                .collect();
            Ok(Val::Vector(if pts.is_empty() {
                Vec::new()
            } else {
                vec![S {
                    metric,
                    drop_name: false,
                    pts,
                    hs: Vec::new(),
                }]
            }))
        }
        "label_replace" => label_replace(ev, &args, r),
        "label_join" => label_join(ev, &args, r),
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
            sort_fn(ev, name, &args, r)
        }
        "histogram_quantile" => histogram_quantile(ev, &args, r),
        "histogram_fraction" => histogram_fraction(ev, &args, r),
        "histogram_quantiles" => histogram_quantiles(ev, &args, r),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // Native histograms only: float samples are ignored, as Prometheus does.
            let v = ev.vector_arg(args[0], r)?;
            Ok(Val::Vector(
                v.into_iter()
                    .filter(|s| !s.hs.is_empty())
                    .map(|s| {
                        let pts =
                            s.hs.iter()
                                .map(|(t, h)| (*t, crate::histfn::accessor(name, h)))
                                .collect();
                        S::floats(s.metric, true, pts)
                    })
                    .collect(),
            ))
        }
        "round" => {
            let to = if args.len() > 1 {
                Some(ev.scalar_arg(args[1], r)?)
            } else {
                None
            };
            map_vector(ev, args[0], r, |v, step| {
                let n = to.as_ref().map(|t| t[step]).unwrap_or(1.0);
                let inv = 1.0 / n;
                Some((v * inv + 0.5).floor() / inv)
            })
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let a = ev.scalar_arg(args[1], r)?;
            let b = if name == "clamp" {
                Some(ev.scalar_arg(args[2], r)?)
            } else {
                None
            };
            map_vector(ev, args[0], r, |v, step| match name {
                "clamp" => {
                    let (lo, hi) = (a[step], b.as_ref().map(|b| b[step]).unwrap_or(f64::NAN));
                    if hi < lo {
                        None
                    } else {
                        Some(go_max(lo, go_min(hi, v)))
                    }
                }
                "clamp_min" => Some(go_max(a[step], v)),
                _ => Some(go_min(a[step], v)),
            })
        }
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => {
            let f = |secs: f64| -> f64 {
                let s = secs as i64;
                let days = s.div_euclid(86400);
                let sod = s.rem_euclid(86400);
                let (y, m, d) = civil_from_days(days);
                match name {
                    "days_in_month" => days_in_month(y, m) as f64,
                    "day_of_month" => d as f64,
                    "day_of_week" => (days + 4).rem_euclid(7) as f64,
                    "day_of_year" => (days - days_from_civil(y, 1, 1) + 1) as f64,
                    "hour" => (sod / 3600) as f64,
                    "minute" => (sod % 3600 / 60) as f64,
                    "month" => m as f64,
                    _ => y as f64,
                }
            };
            if args.is_empty() {
                return Ok(Val::Vector(vec![S {
                    metric: Labels::empty(),
                    drop_name: false,
                    pts: (0..r.steps())
                        .map(|i| (r.ts(i), f((r.ts(i) / 1000) as f64)))
                        .collect(),
                    hs: Vec::new(),
                }]));
            }
            map_vector(ev, args[0], r, |v, _| Some(f(v)))
        }
        "info" => crate::info::info(ev, &args, r),
        _ => {
            let f: fn(f64) -> f64 = match name {
                "abs" => f64::abs,
                "ceil" => f64::ceil,
                "floor" => f64::floor,
                "exp" => f64::exp,
                "sqrt" => f64::sqrt,
                "ln" => f64::ln,
                "log2" => f64::log2,
                "log10" => f64::log10,
                "sin" => f64::sin,
                "cos" => f64::cos,
                "tan" => f64::tan,
                "asin" => f64::asin,
                "acos" => f64::acos,
                "atan" => f64::atan,
                "sinh" => f64::sinh,
                "cosh" => f64::cosh,
                "tanh" => f64::tanh,
                "asinh" => f64::asinh,
                "acosh" => f64::acosh,
                "atanh" => f64::atanh,
                "deg" => |v: f64| v * 180.0 / std::f64::consts::PI,
                "rad" => |v: f64| v * std::f64::consts::PI / 180.0,
                "sgn" => |v: f64| {
                    if v < 0.0 {
                        -1.0
                    } else if v > 0.0 {
                        1.0
                    } else {
                        v
                    }
                },
                _ => {
                    return Err(Error::BadData(format!(
                        "function {name:?} is not supported yet"
                    )))
                }
            };
            map_vector(ev, args[0], r, |v, _| Some(f(v)))
        }
    }
}

/// Applies `f(value, step)` to every point of a vector argument; the result drops the name.
fn map_vector(
    ev: &mut Ev<'_>,
    arg: &Expr,
    r: Range,
    f: impl Fn(f64, usize) -> Option<f64>,
) -> Result<Val> {
    let mut v = ev.vector_arg(arg, r)?;
    for s in &mut v {
        s.drop_name = true;
        // Float functions ignore histogram samples, as Prometheus's do.
        s.hs.clear();
        s.pts = s
            .pts
            .iter()
            .filter_map(|&(t, x)| f(x, r.index(t)).map(|y| (t, y)))
            .collect();
    }
    v.retain(|s| !s.pts.is_empty());
    Ok(Val::Vector(v))
}

fn absent_labels(e: &Expr) -> Labels {
    let vs = match unwrap_paren(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let ms = &vs.matchers.matchers;
    let mut pairs: Vec<Label> = Vec::new();
    let mut dup: Vec<String> = Vec::new();
    for m in ms {
        if m.name == METRIC_NAME || m.name == crate::ext::MARKER {
            continue;
        }
        if ms.iter().filter(|o| o.name == m.name).count() > 1 {
            dup.push(m.name.clone());
            continue;
        }
        if matches!(m.op, promql_parser::label::MatchOp::Equal) {
            if pairs.iter().any(|p| p.name == m.name) {
                dup.push(m.name.clone());
            } else {
                pairs.push(Label {
                    name: m.name.clone(),
                    value: m.value.clone(),
                });
            }
        }
    }
    pairs.retain(|p| !dup.contains(&p.name));
    labels_from(pairs)
}

fn is_nonstale(v: f64) -> bool {
    !tsdb::is_stale_nan(v)
}

/// Range functions: a window `(ref - range, ref]` slides over every selected series.
fn range_fn(ev: &mut Ev<'_>, name: &str, args: &[&Expr], r: Range) -> Result<Val> {
    let midx = if name == "quantile_over_time" { 1 } else { 0 };
    let mut params: Vec<Vec<f64>> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != midx {
            params.push(ev.scalar_arg(a, r)?);
        }
    }
    let marg = unwrap_paren(args[midx]);
    // `anchored`/`smoothed` (see `ext`): the window reaches one lookback delta further back,
    // and for `smoothed` one further forward.
    let mut ext_mode = None;
    let (mut ext_lo, mut ext_hi) = (0, 0);
    // Samples held before the argument: Prometheus counts, on top of them, the argument's
    // subquery result while it is iterated, each series' window buffer as it slides, and the
    // outputs so far (its `matrixIterSlice` and range-function loop); at the end only the
    // outputs stay counted.
    let original = ev.samples;
    // Start timestamps of each series' samples: only a range selector's samples have them
    // (a subquery's points do not, so it cuts their propagation, as in Prometheus).
    let mut sts_of: Vec<Vec<(i64, i64)>> = Vec::new();
    let (series, range, off, at): (Vec<S>, i64, i64, Option<i64>) = match marg {
        Expr::MatrixSelector(ms) => {
            let range = duration_ms(&ms.range);
            let off = offset_ms(&ms.vs.offset);
            let at = at_of(ev, &ms.vs.at);
            if ev.ext {
                if let Some(m) = crate::ext::mode(&ms.vs) {
                    crate::ext::check_function(m, name)?;
                    ext_mode = Some(m);
                    ext_lo = ev.lookback;
                    if m == crate::ext::Mode::Smoothed {
                        ext_hi = ev.lookback;
                    }
                }
            }
            let (lo, hi) = match at {
                Some(t) => (t - off, t - off),
                None => (r.start - off, r.end - off),
            };
            let sel = ev.select_counting(&ms.vs, lo - range - ext_lo + 1, hi + ext_hi, false)?;
            let series = sel
                .into_iter()
                .map(|(metric, pts, hs, sts)| {
                    sts_of.push(sts);
                    S {
                        metric,
                        drop_name: false,
                        pts: pts.into_iter().filter(|p| is_nonstale(p.1)).collect(),
                        hs: hs.into_iter().filter(|p| !p.1.is_stale()).collect(),
                    }
                })
                .collect();
            (series, range, off, at)
        }
        Expr::Subquery(sq) => {
            let s = ev.subquery(sq, r)?;
            (
                s,
                duration_ms(&sq.range),
                offset_ms(&sq.offset),
                at_of(ev, &sq.at),
            )
        }
        _ => {
            return Err(Error::BadData(format!(
                "expected a range vector argument to {name}"
            )))
        }
    };
    if name == "double_exponential_smoothing" || name == "holt_winters" {
        for (&sf, &tf) in params[0].iter().zip(params[1].iter()) {
            if sf <= 0.0 || sf >= 1.0 {
                return Err(exec(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                )));
            }
            if tf <= 0.0 || tf >= 1.0 {
                return Err(exec(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                )));
            }
        }
    }
    if name == "quantile_over_time" {
        for &q in &params[0] {
            if !(0.0..=1.0).contains(&q) {
                ev.annos.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {} ({})",
                    go_g(q),
                    position(ev, args[0])
                ));
            }
        }
    }
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let mut out: Vec<S> = Vec::new();
    let mut absent_steps = vec![true; r.steps()];
    let mut scratch: Vec<f64> = Vec::new();
    let pos = position(ev, args[midx]);
    let mut notes: crate::histfn::Notes = Vec::new();
    let mut base = ev.samples;
    let mut outputs = 0usize;
    for (si, s) in series.into_iter().enumerate() {
        ev.check()?;
        let sts: &[(i64, i64)] = sts_of.get(si).map_or(&[], |v| v.as_slice());
        let mut overlap_noted = false;
        let mut load = 0usize;
        let raw = &s.pts;
        let rawh = &s.hs;
        let (mut lo, mut hi) = (0usize, 0usize);
        let (mut hlo, mut hhi) = (0usize, 0usize);
        let mut pts = Vec::new();
        let mut hs = Vec::new();
        for step in 0..r.steps() {
            let ts = r.ts(step);
            let reft = at.unwrap_or(ts) - off;
            while hi < raw.len() && raw[hi].0 <= reft + ext_hi {
                hi += 1;
            }
            while lo < hi && raw[lo].0 <= reft - range - ext_lo {
                lo += 1;
            }
            let w = &raw[lo..hi.max(lo)];
            let hw: &[(i64, crate::eval::H)] = if rawh.is_empty() {
                &[]
            } else {
                while hhi < rawh.len() && rawh[hhi].0 <= reft + ext_hi {
                    hhi += 1;
                }
                while hlo < hhi && rawh[hlo].0 <= reft - range - ext_lo {
                    hlo += 1;
                }
                &rawh[hlo..hhi.max(hlo)]
            };
            load = w.len() + hw.iter().map(|(_, h)| histogram_weight(h)).sum::<usize>();
            if base + load > ev.max_samples {
                return Err(Error::TooManySamples);
            }
            if w.is_empty() && hw.is_empty() {
                continue;
            }
            absent_steps[step] = false;
            if let Some(m) = ext_mode {
                let c = crate::histfn::Win {
                    metric: s.metric.get(METRIC_NAME).unwrap_or(""),
                    pos: &pos,
                    range_start: reft - range,
                    range_end: reft,
                    sts,
                };
                match crate::ext::window(name, m, w, hw, &c, range, &mut notes) {
                    crate::histfn::Out::F(v) => pts.push((ts, v)),
                    crate::histfn::Out::H(h) => hs.push((ts, h)),
                    crate::histfn::Out::None => {}
                }
                continue;
            }
            if !hw.is_empty() {
                let c = crate::histfn::Win {
                    metric: s.metric.get(METRIC_NAME).unwrap_or(""),
                    pos: &pos,
                    range_start: reft - range,
                    range_end: reft,
                    sts,
                };
                match crate::histfn::window(name, w, hw, &c, &mut notes) {
                    crate::histfn::Out::F(v) => {
                        pts.push((ts, v));
                        continue;
                    }
                    crate::histfn::Out::H(h) => {
                        hs.push((ts, h));
                        continue;
                    }
                    crate::histfn::Out::None => {
                        if w.is_empty() || !crate::histfn::float_only(name) {
                            continue;
                        }
                    }
                }
            }
            let p = |i: usize| params.get(i).map(|p| p[step]).unwrap_or(f64::NAN);
            let v = match name {
                "rate" | "increase" => {
                    if !overlap_noted && st_overlaps(w, sts) {
                        overlap_noted = true;
                        notes.push((true, st_overlap_warning(&s.metric, &pos)));
                    }
                    extrapolated_st(w, sts, reft - range, reft, true, name == "rate")
                }
                "delta" => extrapolated(w, reft - range, reft, false, false),
                "irate" | "idelta" => instant_value(w, sts, name == "irate"),
                "deriv" => {
                    if w.len() < 2 {
                        None
                    } else {
                        Some(linear_regression(w, w[0].0).0)
                    }
                }
                "predict_linear" => {
                    if w.len() < 2 {
                        None
                    } else {
                        let (slope, icpt) = linear_regression(w, ts);
                        Some(icpt + slope * p(0))
                    }
                }
                "changes" => {
                    let mut n = 0.0;
                    for x in w.windows(2) {
                        let (a, b) = (x[0].1, x[1].1);
                        if !(a == b || (a.is_nan() && b.is_nan())) {
                            n += 1.0;
                        }
                    }
                    Some(n)
                }
                "resets" => Some(
                    w.windows(2)
                        .filter(|x| {
                            x[1].1 < x[0].1
                                || is_st_reset(
                                    tsdb::stchunk::at(sts, x[0].0),
                                    x[0].0,
                                    tsdb::stchunk::at(sts, x[1].0),
                                    x[1].0,
                                )
                        })
                        .count() as f64,
                ),
                "avg_over_time" => Some(avg_over_time(w)),
                "sum_over_time" => {
                    let (mut sum, mut c) = (0.0, 0.0);
                    for &(_, v) in w {
                        (sum, c) = kahan_inc(v, sum, c);
                    }
                    Some(if sum.is_infinite() { sum } else { sum + c })
                }
                "count_over_time" => Some(w.len() as f64),
                "present_over_time" => Some(1.0),
                "absent_over_time" => None,
                "last_over_time" => Some(w[w.len() - 1].1),
                "first_over_time" => Some(w[0].1),
                "ts_of_last_over_time" => Some(w[w.len() - 1].0 as f64 / 1000.0),
                "ts_of_first_over_time" => Some(w[0].0 as f64 / 1000.0),
                "max_over_time"
                | "min_over_time"
                | "ts_of_max_over_time"
                | "ts_of_min_over_time" => {
                    let max = name.contains("max");
                    let (mut best, mut bt) = (w[0].1, w[0].0);
                    for &(t, v) in &w[1..] {
                        let better = if max { v > best } else { v < best };
                        let tie = name.starts_with("ts_of") && v == best;
                        if better || best.is_nan() || tie {
                            best = v;
                            bt = t;
                        }
                    }
                    Some(if name.starts_with("ts_of") {
                        bt as f64 / 1000.0
                    } else {
                        best
                    })
                }
                "stddev_over_time" | "stdvar_over_time" => {
                    let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
                    for &(_, v) in w {
                        count += 1.0;
                        let delta = v - (mean + cm);
                        (mean, cm) = kahan_inc(delta / count, mean, cm);
                        (aux, ca) = kahan_inc(delta * (v - (mean + cm)), aux, ca);
                    }
                    let var = (aux + ca) / count;
                    Some(if name == "stddev_over_time" {
                        var.sqrt()
                    } else {
                        var
                    })
                }
                "quantile_over_time" => {
                    scratch.clear();
                    scratch.extend(w.iter().map(|p| p.1));
                    Some(quantile(p(0), &mut scratch))
                }
                "mad_over_time" if w.iter().any(|p| p.1.is_nan()) => Some(f64::NAN),
                "mad_over_time" => {
                    scratch.clear();
                    scratch.extend(w.iter().map(|p| p.1));
                    let med = quantile(0.5, &mut scratch);
                    scratch.iter_mut().for_each(|v| *v = (*v - med).abs());
                    Some(quantile(0.5, &mut scratch))
                }
                _ => smoothing(w, p(0), p(1)),
            };
            if let Some(v) = v {
                pts.push((ts, v));
            }
        }
        if (name == "rate" || name == "increase") && !pts.is_empty() && !raw.is_empty() {
            if let Some(n) = s.metric.get(METRIC_NAME) {
                if !["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .any(|suf| n.ends_with(suf))
                {
                    let pos = position(ev, args[midx]);
                    ev.annos.info(format!(
                        "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {} ({pos})",
                        crate::eval::go_quote(n)
                    ));
                }
            }
        }
        if !pts.is_empty() || !hs.is_empty() {
            let n = pts.len() + hs.iter().map(|(_, h)| histogram_weight(h)).sum::<usize>();
            if base + load + n > ev.max_samples {
                return Err(Error::TooManySamples);
            }
            base += n;
            outputs += n;
            out.push(S {
                metric: s.metric,
                drop_name: !keep_name || s.drop_name,
                pts,
                hs,
            });
        }
    }
    ev.samples = original + outputs;
    for (is_warn, m) in notes {
        if is_warn {
            ev.annos.warn(m);
        } else {
            ev.annos.info(m);
        }
    }
    if name == "absent_over_time" {
        let pts: Vec<(i64, f64)> = absent_steps
            .iter()
            .enumerate()
            .filter(|(_, a)| **a)
            .map(|(i, _)| (r.ts(i), 1.0))
            .collect();
        return Ok(Val::Vector(if pts.is_empty() {
            Vec::new()
        } else {
            vec![S {
                metric: absent_labels(args[0]),
                drop_name: false,
                pts,
                hs: Vec::new(),
            }]
        }));
    }
    if keep_name {
        // Series keep their names, so two inputs may now collide; Prometheus checks that.
        let mut seen = std::collections::HashSet::new();
        for s in &out {
            if !seen.insert(s.metric.clone()) {
                return Err(exec("vector cannot contain metrics with the same labelset"));
            }
        }
    }
    Ok(Val::Vector(out))
}

/// The fixed evaluation time an `@` modifier sets, if any.
pub(crate) fn at_of(ev: &Ev<'_>, at: &Option<promql_parser::parser::AtModifier>) -> Option<i64> {
    use promql_parser::parser::AtModifier;
    match at {
        None => None,
        Some(AtModifier::Start) => Some(ev.query_start),
        Some(AtModifier::End) => Some(ev.query_end),
        Some(AtModifier::At(t)) => Some(crate::eval::system_time_ms(t)),
    }
}

fn avg_over_time(w: &[(i64, f64)]) -> f64 {
    let (mut sum, mut count) = (w[0].1, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, &(_, f)) in w[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(f, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if f.is_infinite() && (mean > 0.0) == (f > 0.0) {
                continue;
            }
            if !f.is_infinite() && !f.is_nan() {
                continue;
            }
        }
        let corrected = mean + c;
        (mean, c) = kahan_inc(f / count - corrected / count, mean, c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

fn smoothing(w: &[(i64, f64)], sf: f64, tf: f64) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = w[0].1;
    let mut b = w[1].1 - w[0].1;
    for (i, &(_, v)) in w.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// `rate`, `increase` and `delta` with Prometheus's extrapolation to the window edges.
pub(crate) fn extrapolated(
    w: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if is_counter {
        return extrapolated_st(w, &[], range_start, range_end, true, is_rate);
    }
    if w.len() < 2 {
        return None;
    }
    let n1 = w.len() - 1;
    let result = w[n1].1 - w[0].1;
    let e = extrapolation(
        w[0].0,
        w[n1].0,
        n1,
        range_start,
        range_end,
        false,
        is_rate,
        w[0].1,
        result,
        0,
    )?;
    Some(result * e.factor)
}

/// `rate`/`increase` of a counter window whose samples may have start timestamps `sts`
/// (`(t, st)` sorted by time, absent meaning none): a start timestamp after the previous
/// sample is a counter reset even when the value went up, and the first sample's start
/// timestamp inside the window stands for a zero at that time instead of extrapolating to
/// the left, which also gives a single sample a rate.
pub(crate) fn extrapolated_st(
    w: &[(i64, f64)],
    sts: &[(i64, i64)],
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let (first, last) = (*w.first()?, *w.last()?);
    let n1 = w.len() - 1;
    let mut result = last.1 - first.1;
    if is_counter {
        for x in w.windows(2) {
            let (prev, cur) = (x[0], x[1]);
            if cur.1 < prev.1
                || (!sts.is_empty()
                    && is_st_reset(
                        tsdb::stchunk::at(sts, prev.0),
                        prev.0,
                        tsdb::stchunk::at(sts, cur.0),
                        cur.0,
                    ))
            {
                result += prev.1;
            }
        }
    }
    let st0 = if is_counter {
        tsdb::stchunk::at(sts, first.0)
    } else {
        0
    };
    let e = extrapolation(
        first.0,
        last.0,
        n1,
        range_start,
        range_end,
        is_counter,
        is_rate,
        first.1,
        result,
        st0,
    )?;
    if e.from_start {
        result += first.1;
    }
    Some(result * e.factor)
}

/// How `rate`/`increase`/`delta` scale a window's sampled change: `factor`, after adding
/// the first sample's value when `from_start` (the change is counted from a zero at the
/// first sample's start timestamp).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Extrapolation {
    pub factor: f64,
    pub from_start: bool,
}

/// The factor `rate`/`increase`/`delta` scale the sampled change by: extrapolation to the
/// window's edges (at most half an average interval past the samples, not below zero for
/// counters, judged by the first value and the change), divided by the window for `rate`.
/// A counter whose first sample has a start timestamp `st0` inside the window is counted
/// from a zero there instead of extrapolated to the left (Prometheus 3); without one, a
/// single sample (`n1 == 0`) has no rate (`None`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn extrapolation(
    first_t: i64,
    last_t: i64,
    n1: usize,
    range_start: i64,
    range_end: i64,
    is_counter: bool,
    is_rate: bool,
    first_value: f64,
    result: f64,
    st0: i64,
) -> Option<Extrapolation> {
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let mut sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = if n1 > 0 { sampled / n1 as f64 } else { 0.0 };
    let threshold = avg * 1.1;
    // The window's start is exclusive: a start timestamp exactly there lies outside.
    let from_start = is_counter && st0 != 0 && st0 > range_start && st0 < first_t;
    if from_start {
        to_start = 0.0;
        sampled = (last_t - st0) as f64 / 1000.0;
    } else if n1 == 0 {
        return None;
    } else {
        if to_start >= threshold {
            to_start = avg / 2.0;
        }
        if is_counter {
            let mut to_zero = to_start;
            if result > 0.0 && first_value >= 0.0 {
                to_zero = sampled * (first_value / result);
            }
            if to_zero < to_start {
                to_start = to_zero;
            }
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = if sampled != 0.0 {
        (sampled + to_start + to_end) / sampled
    } else {
        1.0
    };
    if is_rate {
        factor /= (range_end - range_start) as f64 / 1000.0;
    }
    Some(Extrapolation { factor, from_start })
}

/// Whether start timestamps say the counter reset between the previous sample (`prev_st`,
/// `prev_t`) and the current one (`cur_st`, `cur_t`); 0 means no start timestamp
/// (Prometheus's `isStartTimestampReset`). A start timestamp pointing exactly at the
/// previous sample is a reset for a delta series (whose previous sample had a start of its
/// own) but not for a cumulative one with an unknown start (OTel's `ST == T`).
pub(crate) fn is_st_reset(prev_st: i64, prev_t: i64, cur_st: i64, cur_t: i64) -> bool {
    if cur_st == 0 || cur_st >= cur_t {
        // None, OTel's unknown start (ST == T), or invalid (after its sample).
        return false;
    }
    if cur_st != prev_t {
        return cur_st > prev_t;
    }
    // An invalid previous start (after its sample) counts as unknown.
    prev_st != 0 && prev_st != prev_t && prev_st <= prev_t
}

/// Whether some sample of the window starts before the previous sample's time without
/// sharing its start: overlapping intervals, neither a cumulative nor a delta series
/// (Prometheus's `checkStartTimeOverlap`).
pub(crate) fn st_overlaps(w: &[(i64, f64)], sts: &[(i64, i64)]) -> bool {
    !sts.is_empty()
        && w.windows(2).any(|x| {
            let prev_st = tsdb::stchunk::at(sts, x[0].0);
            let cur_st = tsdb::stchunk::at(sts, x[1].0);
            cur_st != 0 && cur_st < x[0].0 && cur_st != prev_st
        })
}

/// Prometheus's warning for [`st_overlaps`].
pub(crate) fn st_overlap_warning(metric: &Labels, pos: &str) -> String {
    format!(
        "PromQL warning: sample has start time that overlaps with previous sample timestamp for metric {} ({pos})",
        crate::eval::go_quote(metric.get(METRIC_NAME).unwrap_or(""))
    )
}

fn instant_value(w: &[(i64, f64)], sts: &[(i64, i64)], is_rate: bool) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (prev, last) = (w[w.len() - 2], w[w.len() - 1]);
    let reset = last.1 < prev.1
        || is_st_reset(
            tsdb::stchunk::at(sts, prev.0),
            prev.0,
            tsdb::stchunk::at(sts, last.0),
            last.0,
        );
    let mut v = if is_rate && reset {
        last.1
    } else {
        last.1 - prev.1
    };
    let dt = last.0 - prev.0;
    if dt == 0 {
        return None;
    }
    if is_rate {
        v /= dt as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares slope and intercept at `intercept_t` (Prometheus's `linearRegression`).
pub(crate) fn linear_regression(w: &[(i64, f64)], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = w[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in w.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn string_arg(ev: &mut Ev<'_>, e: &Expr, r: Range) -> Result<String> {
    match ev.eval(e, r)? {
        Val::Str(s) => Ok(s),
        _ => Err(Error::BadData("expected a string argument".into())),
    }
}

/// Merges series that now share a label set; a shared step is Prometheus's duplicate error.
fn check_unique(v: Vec<S>) -> Result<Vec<S>> {
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut out: Vec<S> = Vec::with_capacity(v.len());
    for s in v {
        match index.get(&s.metric) {
            Some(&i) => {
                let t = &mut out[i];
                let taken = |ts: i64, t: &S| {
                    t.pts.binary_search_by_key(&ts, |q| q.0).is_ok()
                        || t.hs.binary_search_by_key(&ts, |q| q.0).is_ok()
                };
                if s.pts.iter().any(|p| taken(p.0, t)) || s.hs.iter().any(|p| taken(p.0, t)) {
                    return Err(exec("vector cannot contain metrics with the same labelset"));
                }
                t.pts.extend(s.pts);
                t.pts.sort_by_key(|p| p.0);
                t.hs.extend(s.hs);
                t.hs.sort_by_key(|p| p.0);
                t.drop_name &= s.drop_name;
            }
            None => {
                index.insert(s.metric.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn label_replace(ev: &mut Ev<'_>, args: &[&Expr], r: Range) -> Result<Val> {
    let dst = string_arg(ev, args[1], r)?;
    let repl = string_arg(ev, args[2], r)?;
    let src = string_arg(ev, args[3], r)?;
    let re_src = string_arg(ev, args[4], r)?;
    let re = regex::RegexBuilder::new(&format!("^(?s:{re_src})$"))
        .size_limit(8 << 20)
        .build()
        .map_err(|e| {
            exec(format!(
                "invalid regular expression in label_replace(): {e}"
            ))
        })?;
    if !ev.valid_label_name(&dst) {
        return Err(exec(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut v = ev.vector_arg(args[0], r)?;
    for s in &mut v {
        let sv = s.metric.get(&src).unwrap_or("").to_string();
        if let Some(caps) = re.captures(&sv) {
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            let mut pairs = to_pairs(&s.metric);
            pairs.retain(|p| p.name != dst);
            pairs.push(Label {
                name: dst.clone(),
                value: res,
            });
            s.metric = labels_from(pairs);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
    }
    Ok(Val::Vector(check_unique(v)?))
}

fn label_join(ev: &mut Ev<'_>, args: &[&Expr], r: Range) -> Result<Val> {
    let dst = string_arg(ev, args[1], r)?;
    let sep = string_arg(ev, args[2], r)?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        let s = string_arg(ev, a, r)?;
        if !ev.valid_label_name(&s) {
            return Err(exec(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !ev.valid_label_name(&dst) {
        return Err(exec(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut v = ev.vector_arg(args[0], r)?;
    for s in &mut v {
        let joined = srcs
            .iter()
            .map(|n| s.metric.get(n).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&sep);
        let mut pairs = to_pairs(&s.metric);
        pairs.retain(|p| p.name != dst);
        pairs.push(Label {
            name: dst.clone(),
            value: joined,
        });
        s.metric = labels_from(pairs);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    Ok(Val::Vector(check_unique(v)?))
}

/// Natural order of label values (digit runs compare as numbers).
fn nat_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let d = b[i].is_ascii_digit();
            let st = i;
            while i < b.len() && b[i].is_ascii_digit() == d {
                i += 1;
            }
            // Keep multi-byte characters whole: split only on ASCII digit boundaries.
            while !s.is_char_boundary(i) {
                i += 1;
            }
            out.push((d, &s[st..i]));
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = if x.0 && y.0 {
            let xt = x.1.trim_start_matches('0');
            let yt = y.1.trim_start_matches('0');
            xt.len().cmp(&yt.len()).then(xt.cmp(yt))
        } else {
            x.1.cmp(y.1)
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

fn sort_fn(ev: &mut Ev<'_>, name: &str, args: &[&Expr], r: Range) -> Result<Val> {
    let mut labels = Vec::new();
    for a in &args[1..] {
        labels.push(string_arg(ev, a, r)?);
    }
    let v = ev.vector_arg(args[0], r)?;
    if r.start != r.end {
        return Ok(Val::Vector(v));
    }
    let mut idx: Vec<(usize, f64)> = v
        .iter()
        .enumerate()
        // sort/sort_desc drop histogram samples, as Prometheus does; sorting by label keeps
        // them.
        .filter_map(|(i, s)| {
            s.pts.first().map(|p| (i, p.1)).or_else(|| {
                if name.starts_with("sort_by_label") {
                    s.hs.first().map(|_| (i, 0.0))
                } else {
                    None
                }
            })
        })
        .collect();
    match name {
        "sort" | "sort_desc" => {
            let desc = name == "sort_desc";
            idx.sort_by(|a, b| {
                use std::cmp::Ordering::*;
                match (a.1.is_nan(), b.1.is_nan()) {
                    (true, true) => Equal,
                    (true, false) => Greater,
                    (false, true) => Less,
                    _ => {
                        let o = a.1.partial_cmp(&b.1).unwrap_or(Equal);
                        if desc {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                }
            });
        }
        _ => {
            let desc = name == "sort_by_label_desc";
            idx.sort_by(|a, b| {
                let (ma, mb) = (&v[a.0].metric, &v[b.0].metric);
                let mut o = std::cmp::Ordering::Equal;
                for l in &labels {
                    let (x, y) = (ma.get(l).unwrap_or(""), mb.get(l).unwrap_or(""));
                    if x != y {
                        o = nat_cmp(x, y);
                        break;
                    }
                }
                if o == std::cmp::Ordering::Equal {
                    o = ma.cmp(mb);
                }
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
    }
    let mut slots: Vec<Option<S>> = v.into_iter().map(Some).collect();
    Ok(Val::Vector(
        idx.into_iter()
            .filter_map(|(i, _)| slots[i].take())
            .collect(),
    ))
}

/// Float samples of a vector grouped into classic histograms by their labels without `le`.
struct Buckets {
    metric: Labels,
    drop_name: bool,
    buckets: Vec<(f64, f64)>,
}

fn parse_le(s: &str) -> Option<f64> {
    let t = s.trim();
    match t {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => {
            if t.is_empty() || t != s {
                return None;
            }
            t.parse::<f64>().ok()
        }
    }
}

/// Drops the classic bucket groups whose labels a native histogram of the same step also
/// has, and says which natives clashed (Prometheus then answers neither for those labels).
fn drop_classic_clashes(
    natives: &[(usize, &crate::eval::H)],
    v: &[S],
    groups: &mut Vec<Buckets>,
) -> Vec<bool> {
    let mut mixed = vec![false; natives.len()];
    if !natives.is_empty() {
        groups.retain(|g| {
            let clash = natives.iter().position(|(i, _)| v[*i].metric == g.metric);
            if let Some(k) = clash {
                mixed[k] = true;
            }
            clash.is_none()
        });
    }
    mixed
}

/// Prometheus's warning for a metric with both classic and native histograms.
fn warn_mixed_histograms(ev: &mut Ev<'_>, metric: &Labels, at: &Expr) {
    ev.annos.warn(format!(
        "PromQL warning: vector contains a mix of classic and native histograms for metric name {} ({})",
        crate::eval::go_quote(metric.get(METRIC_NAME).unwrap_or("")),
        position(ev, at)
    ));
}

fn group_buckets(ev: &mut Ev<'_>, v: &[S], samples: &[(usize, f64)], input: &Expr) -> Vec<Buckets> {
    let mut out: Vec<Buckets> = Vec::new();
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    for &(i, f) in samples {
        let m = &v[i].metric;
        let le = m.get("le").unwrap_or("");
        let Some(ub) = parse_le(le) else {
            ev.annos.warn(format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"{}\" for metric name \"{}\" ({})",
                le,
                m.get(METRIC_NAME).unwrap_or(""),
                position(ev, input)
            ));
            continue;
        };
        let key = Labels::from_sorted_unchecked(
            to_pairs(m).into_iter().filter(|p| p.name != "le").collect(),
        );
        let gi = *index.entry(key.clone()).or_insert_with(|| {
            out.push(Buckets {
                metric: key,
                drop_name: true,
                buckets: Vec::new(),
            });
            out.len() - 1
        });
        out[gi].buckets.push((ub, f));
    }
    out
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// Sorts, merges equal bounds and fixes monotonicity; returns whether it was forced.
fn prepare_buckets(b: &mut Vec<(f64, f64)>) -> bool {
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(b.len());
    for &(ub, c) in b.iter() {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += c,
            _ => merged.push((ub, c)),
        }
    }
    *b = merged;
    let mut forced = false;
    if b.is_empty() {
        return false;
    }
    let mut prev = b[0].1;
    for item in b.iter_mut().skip(1) {
        let cur = item.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            item.1 = prev;
            continue;
        }
        if cur < prev {
            item.1 = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    forced
}

fn bucket_quantile(q: f64, b: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    match b.last() {
        Some(l) if l.0 == f64::INFINITY => {}
        _ => return (f64::NAN, false),
    }
    let forced = prepare_buckets(b);
    if b.len() < 2 {
        return (f64::NAN, false);
    }
    let obs = b[b.len() - 1].1;
    if obs == 0.0 {
        return (f64::NAN, false);
    }
    let mut rank = q * obs;
    let n = b.len() - 1;
    let idx = b[..n].partition_point(|x| x.1 < rank);
    if idx == n {
        return (b[n - 1].0, forced);
    }
    if idx == 0 && b[0].0 <= 0.0 {
        return (b[0].0, forced);
    }
    let (mut start, end, mut count) = (0.0, b[idx].0, b[idx].1);
    if idx > 0 {
        start = b[idx - 1].0;
        count -= b[idx - 1].1;
        rank -= b[idx - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

fn histogram_quantile(ev: &mut Ev<'_>, args: &[&Expr], r: Range) -> Result<Val> {
    let q = ev.scalar_arg(args[0], r)?;
    let v = ev.vector_arg(args[1], r)?;
    quantiles(ev, &v, &[(q, args[0])], None, args[1], r)
}

/// `histogram_quantiles(v, "label", q1, q2, ...)`: one series per quantile, labelled.
fn histogram_quantiles(ev: &mut Ev<'_>, args: &[&Expr], r: Range) -> Result<Val> {
    let v = ev.vector_arg(args[0], r)?;
    let label = string_arg(ev, args[1], r)?;
    if !ev.valid_label_name(&label) {
        return Err(exec(format!(
            "invalid label name {}",
            crate::eval::go_quote(&label)
        )));
    }
    let mut qs = Vec::new();
    for a in &args[2..] {
        qs.push((ev.scalar_arg(a, r)?, *a));
    }
    quantiles(ev, &v, &qs, Some(&label), args[0], r)
}

/// A quantile as `histogram_quantiles` writes it in the label: Go's shortest form with
/// at least one decimal.
fn quantile_label(q: f64) -> String {
    let s = crate::json::format_float(q);
    if s.contains('.') || !q.is_finite() {
        s
    } else {
        format!("{s}.0")
    }
}

fn quantiles(
    ev: &mut Ev<'_>,
    v: &[S],
    qs: &[(Vec<f64>, &Expr)],
    label: Option<&str>,
    input: &Expr,
    r: Range,
) -> Result<Val> {
    let steps = by_step(v, r);
    let hsteps = crate::eval::by_step_h(v, r);
    let mut acc = Acc::new();
    for (step, samples) in steps.iter().enumerate() {
        let natives = &hsteps[step];
        for (q, qe) in qs {
            let qv = q[step];
            if !(0.0..=1.0).contains(&qv) {
                ev.annos.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {} ({})",
                    go_g(qv),
                    position(ev, qe)
                ));
            }
        }
        let mut groups = group_buckets(ev, v, samples, input);
        let mixed = drop_classic_clashes(natives, v, &mut groups);
        for (k, (i, h)) in natives.iter().enumerate() {
            let metric = &v[*i].metric;
            if mixed[k] {
                warn_mixed_histograms(ev, metric, input);
                continue;
            }
            for (q, _) in qs {
                let qv = q[step];
                let res = h.quantile(qv);
                if h.has_nan_observations() {
                    ev.annos.info(format!(
                        "PromQL info: input to histogram_quantile has NaN observations, result is {} for metric name {} ({})",
                        if res.is_nan() { "NaN" } else { "skewed higher" },
                        crate::eval::go_quote(metric.get(METRIC_NAME).unwrap_or("")),
                        position(ev, input)
                    ));
                }
                let out = match label {
                    None => metric.clone(),
                    Some(l) => {
                        let mut pairs = to_pairs(metric);
                        pairs.retain(|p| p.name != l);
                        pairs.push(Label {
                            name: l.to_string(),
                            value: quantile_label(qv),
                        });
                        labels_from(pairs)
                    }
                };
                acc.push(out, true, r.ts(step), res)?;
            }
        }
        for g in groups {
            for (q, _) in qs {
                let qv = q[step];
                let mut buckets = g.buckets.clone();
                let (res, forced) = bucket_quantile(qv, &mut buckets);
                if forced {
                    ev.annos.info(format!(
                        "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {} ({})",
                        crate::eval::go_quote(g.metric.get(METRIC_NAME).unwrap_or("")),
                        position(ev, input)
                    ));
                }
                let metric = match label {
                    None => g.metric.clone(),
                    Some(l) => {
                        let mut pairs = to_pairs(&g.metric);
                        pairs.retain(|p| p.name != l);
                        pairs.push(Label {
                            name: l.to_string(),
                            value: quantile_label(qv),
                        });
                        labels_from(pairs)
                    }
                };
                acc.push(metric, g.drop_name, r.ts(step), res)?;
            }
        }
    }
    Ok(Val::Vector(acc.out))
}

fn bucket_fraction(lower: f64, upper: f64, b: &mut Vec<(f64, f64)>) -> f64 {
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap_or(std::cmp::Ordering::Equal));
    match b.last() {
        Some(l) if l.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    prepare_buckets(b);
    let total = b[b.len() - 1].1;
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // Each bucket contributes the part of its count that overlaps [lower, upper],
    // interpolated linearly; a bucket of infinite width contributes only when it lies
    // wholly inside. The first bucket starts at 0 when its upper bound is positive.
    let mut sum = 0.0;
    let mut prev_ub = f64::NEG_INFINITY;
    let mut prev_c = 0.0;
    for (i, &(ub, c)) in b.iter().enumerate() {
        let lb = if i == 0 {
            if ub > 0.0 {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        } else {
            prev_ub
        };
        let count = c - prev_c;
        prev_ub = ub;
        prev_c = c;
        if count == 0.0 {
            continue;
        }
        if lower <= lb && upper >= ub {
            sum += count;
            continue;
        }
        // An infinite bucket counts whole when the range reaches its infinite end.
        if (ub == f64::INFINITY && upper == f64::INFINITY && lower < ub)
            || (lb == f64::NEG_INFINITY && lower == f64::NEG_INFINITY && upper > lb)
        {
            sum += count;
            continue;
        }
        let lo = lower.max(lb);
        let hi = upper.min(ub);
        if hi <= lo || lb.is_infinite() || ub.is_infinite() {
            continue;
        }
        sum += count * (hi - lo) / (ub - lb);
    }
    sum / total
}

fn histogram_fraction(ev: &mut Ev<'_>, args: &[&Expr], r: Range) -> Result<Val> {
    let lo = ev.scalar_arg(args[0], r)?;
    let hi = ev.scalar_arg(args[1], r)?;
    let v = ev.vector_arg(args[2], r)?;
    let steps = by_step(&v, r);
    let hsteps = crate::eval::by_step_h(&v, r);
    let mut acc = Acc::new();
    for (step, samples) in steps.iter().enumerate() {
        let natives = &hsteps[step];
        let mut groups = group_buckets(ev, &v, samples, args[2]);
        let mixed = drop_classic_clashes(natives, &v, &mut groups);
        for (k, (i, h)) in natives.iter().enumerate() {
            let metric = &v[*i].metric;
            if mixed[k] {
                warn_mixed_histograms(ev, metric, args[2]);
                continue;
            }
            if h.has_nan_observations() {
                ev.annos.info(format!(
                    "PromQL info: input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {} ({})",
                    crate::eval::go_quote(metric.get(METRIC_NAME).unwrap_or("")),
                    position(ev, args[2])
                ));
            }
            acc.push(
                metric.clone(),
                true,
                r.ts(step),
                h.fraction(lo[step], hi[step]),
            )?;
        }
        for mut g in groups {
            let res = bucket_fraction(lo[step], hi[step], &mut g.buckets);
            acc.push(g.metric, g.drop_name, r.ts(step), res)?;
        }
    }
    Ok(Val::Vector(acc.out))
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // 0, 10, ..., 50 every 60s, window (0, 300]: samples at 60..300 → 10/60 per second
        // over the sampled interval, extrapolated to the window start.
        let w: Vec<(i64, f64)> = (1..=5).map(|i| (i * 60_000, i as f64 * 10.0)).collect();
        let r = extrapolated(&w, 0, 300_000, true, true).unwrap();
        assert!((r - 50.0 / 300.0).abs() < 1e-12, "{r}");
        // A counter reset adds the value before the reset.
        let w = [(0, 5.0), (60_000, 1.0)];
        let inc = extrapolated(&w, -60_000, 60_000, true, false).unwrap();
        assert!(inc > 1.0);
        assert_eq!(extrapolated(&[(0, 1.0)], -1, 0, true, true), None);
    }

    /// Start timestamps tell a delta series (each sample starts at the previous one) from a
    /// cumulative one whose start is unknown (OTel's `ST == T`, then `ST == previous T`).
    #[test]
    fn start_timestamp_resets_tell_deltas_from_unknown_starts() {
        // Cumulative with a known start: no reset while the start stays.
        assert!(!is_st_reset(10, 60, 10, 120));
        // A start after the previous sample: reset.
        assert!(is_st_reset(10, 60, 61, 120));
        // Delta: the start is the previous sample's time, which had a start of its own.
        assert!(is_st_reset(1, 60, 60, 120));
        // Cumulative with unknown start: the previous sample had none, or ST == T.
        assert!(!is_st_reset(0, 60, 60, 120));
        assert!(!is_st_reset(60, 60, 60, 120));
        // Invalid starts are never resets.
        assert!(!is_st_reset(61, 60, 60, 120));
        assert!(!is_st_reset(0, 60, 121, 120));
        // A single sample whose start lies inside the window has a rate: from a zero there.
        let sts = [(120_000, 60_000)];
        let inc = extrapolated_st(&[(120_000, 60.0)], &sts, -120_000, 180_000, true, false);
        assert_eq!(inc, Some(60.0));
        assert_eq!(
            extrapolated_st(&[(120_000, 60.0)], &[], -120_000, 180_000, true, false),
            None
        );
    }

    #[test]
    fn histogram_quantile_interpolates_and_fixes_monotonicity() {
        let mut b = vec![(1.0, 1.0), (2.0, 3.0), (f64::INFINITY, 4.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), (1.5, false));
        let mut b = vec![(1.0, 2.0), (2.0, 1.0), (f64::INFINITY, 4.0)];
        assert!(bucket_quantile(0.5, &mut b).1);
        let mut b = vec![(1.0, 2.0)];
        assert!(bucket_quantile(0.5, &mut b).0.is_nan());
    }

    #[test]
    fn quantile_and_dates() {
        let mut v = [3.0, 1.0, 2.0];
        assert_eq!(quantile(0.5, &mut v), 2.0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(nat_cmp("a10", "a9"), std::cmp::Ordering::Greater);
    }
}
