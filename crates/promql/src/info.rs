//! `info(v, {selector})`: enriches series with the data labels of info metrics
//! (`target_info` unless the selector names others) that share their identifying labels
//! (`instance`, `job`), as Prometheus 3's experimental `info()` does.
//!
//! Info series are read at the same reference time as the base series, so `@` and `offset`
//! on the base (also through a subquery) shift the lookup too. When several info series of
//! one metric name match, the one with the latest sample wins.

use std::collections::HashMap;

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{Expr, VectorSelector};
use tsdb::{Label, Labels, MatchOp, Matcher, METRIC_NAME};

use crate::error::Error;
use crate::eval::{labels_from, offset_ms, system_time_ms, to_pairs, Acc, Ev, Range, Result, Val};

const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// A matcher [`rewrite`] adds to `info()` selectors so the parser accepts selectors whose
/// matchers all match the empty string (`{data=~".*"}`), which Prometheus allows there.
pub(crate) const SELECTOR_MARKER: &str = "__lookout_info_selector__";

/// Adds [`SELECTOR_MARKER`] to the second argument of every `info(...)` call.
pub(crate) fn rewrite(query: &str) -> String {
    let b = query.as_bytes();
    let mut out = String::with_capacity(query.len() + 32);
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => i = crate::literals::skip_string(b, i),
            b'i' if query[i..].starts_with("info")
                && (i == 0
                    || !(b[i - 1].is_ascii_alphanumeric()
                        || b[i - 1] == b'_'
                        || b[i - 1] == b':')) =>
            {
                let mut j = i + 4;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j < b.len() && b[j] == b'(' {
                    // Find the top-level comma of the call.
                    let mut depth = 0i32;
                    let mut k = j;
                    while k < b.len() {
                        match b[k] {
                            b'(' | b'[' | b'{' => depth += 1,
                            b')' | b']' | b'}' => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            b',' if depth == 1 => {
                                let mut m = k + 1;
                                while m < b.len() && b[m].is_ascii_whitespace() {
                                    m += 1;
                                }
                                if m < b.len() && b[m] == b'{' {
                                    out.push_str(&query[copied..=m]);
                                    out.push_str(SELECTOR_MARKER);
                                    out.push_str("=\"1\",");
                                    copied = m + 1;
                                }
                                break;
                            }
                            b'"' | b'\'' | b'`' => {
                                k = crate::literals::skip_string(b, k);
                                continue;
                            }
                            _ => {}
                        }
                        k += 1;
                    }
                }
                i += 4;
            }
            _ => i += 1,
        }
    }
    out.push_str(&query[copied..]);
    out
}

/// The `@` time and summed offset that decide when the first selector under `e` reads.
fn time_ref(ev: &Ev<'_>, e: &Expr) -> Option<(Option<i64>, i64)> {
    use promql_parser::parser::AtModifier;
    let at = |a: &Option<AtModifier>| match a {
        None => None,
        Some(AtModifier::Start) => Some(ev.query_start),
        Some(AtModifier::End) => Some(ev.query_end),
        Some(AtModifier::At(t)) => Some(system_time_ms(t)),
    };
    match e {
        Expr::VectorSelector(vs) => Some((at(&vs.at), offset_ms(&vs.offset))),
        Expr::MatrixSelector(ms) => Some((at(&ms.vs.at), offset_ms(&ms.vs.offset))),
        Expr::Subquery(sq) => {
            let (iat, ioff) = time_ref(ev, &sq.expr).unwrap_or((None, 0));
            if iat.is_some() {
                return Some((iat, ioff));
            }
            Some((at(&sq.at), offset_ms(&sq.offset) + ioff))
        }
        Expr::Paren(p) => time_ref(ev, &p.expr),
        Expr::Unary(u) => time_ref(ev, &u.expr),
        Expr::Aggregate(a) => time_ref(ev, &a.expr),
        Expr::Call(c) => c.args.args.iter().find_map(|a| time_ref(ev, a)),
        Expr::Binary(b) => time_ref(ev, &b.lhs).or_else(|| time_ref(ev, &b.rhs)),
        _ => None,
    }
}

fn convert(m: &promql_parser::label::Matcher) -> Result<Matcher> {
    let op = match m.op {
        PMatchOp::Equal => MatchOp::Equal,
        PMatchOp::NotEqual => MatchOp::NotEqual,
        PMatchOp::Re(_) => MatchOp::Regex,
        PMatchOp::NotRe(_) => MatchOp::NotRegex,
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| Error::BadData(e.to_string()))
}

pub(crate) fn info(ev: &mut Ev<'_>, args: &[&Expr], r: Range) -> Result<Val> {
    // Histogram samples are enriched like floats: boxed into the float points for the walk
    // below and unboxed at the end (see `histop`).
    let mut boxes = crate::histop::Boxes::default();
    let base = boxes.box_series(ev.vector_arg(args[0], r)?);
    let mut name_matchers: Vec<Matcher> = Vec::new();
    let mut data_matchers: Vec<Matcher> = Vec::new();
    if let Some(Expr::VectorSelector(VectorSelector { name, matchers, .. })) = args.get(1).copied()
    {
        if let Some(n) = name {
            name_matchers.push(Matcher::equal(METRIC_NAME, n.clone()));
        }
        for m in &matchers.matchers {
            if m.name == SELECTOR_MARKER {
                continue;
            }
            let c = convert(m)?;
            if m.name == METRIC_NAME {
                name_matchers.push(c);
            } else {
                data_matchers.push(c);
            }
        }
    }
    if name_matchers.is_empty() {
        name_matchers.push(Matcher::equal(METRIC_NAME, "target_info"));
    } else if !name_matchers
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex))
    {
        // Only negative name matchers: the candidates are still info metrics.
        name_matchers.push(
            Matcher::new(MatchOp::Regex, METRIC_NAME, ".+_info")
                .map_err(|e| Error::BadData(e.to_string()))?,
        );
    }
    let (at, off) = time_ref(ev, args[0]).unwrap_or((None, 0));
    let reft = |ts: i64| at.unwrap_or(ts) - off;
    let (lo, hi) = (reft(r.start), reft(r.end));
    let mut sel_matchers = name_matchers.clone();
    sel_matchers.extend(data_matchers.iter().cloned());
    let mut infos = Vec::new();
    for s in ev.querier.select(&sel_matchers, lo - ev.lookback + 1, hi)? {
        ev.check()?;
        // Info metrics carry their data in labels of float samples; a histogram series
        // matching the selector is an error, as in Prometheus.
        if s.histograms().next().is_some() {
            return Err(crate::error::exec(format!(
                "this should be an info metric, with float samples: {}",
                crate::eval::labels_string(&s.labels)
            )));
        }
        let pts: Vec<(i64, f64)> = s.samples().collect();
        ev.add_samples(pts.len())?;
        infos.push((s.labels, pts));
    }
    // Which info series hold a sample at each step, and its time.
    let steps = r.steps();
    let mut present: Vec<Vec<(usize, i64)>> = vec![Vec::new(); steps];
    for (k, (_, pts)) in infos.iter().enumerate() {
        let mut i = 0;
        for (step, slot) in present.iter_mut().enumerate() {
            let t = reft(r.ts(step));
            while i < pts.len() && pts[i].0 <= t {
                i += 1;
            }
            if i == 0 {
                continue;
            }
            let (st, v) = pts[i - 1];
            if st > t - ev.lookback && !tsdb::is_stale_nan(v) {
                slot.push((k, st));
            }
        }
    }
    let drop_unmatched = data_matchers.iter().any(|m| !m.matches(""));
    let wanted: Vec<&str> = data_matchers.iter().map(|m| m.name.as_str()).collect();
    let mut acc = Acc::new();
    for s in &base {
        let is_info = name_matchers.iter().all(|m| m.matches_labels(&s.metric))
            && s.metric.get(METRIC_NAME).is_some();
        let ids: Vec<(&str, &str)> = IDENTIFYING
            .iter()
            .filter_map(|n| s.metric.get(n).map(|v| (*n, v)))
            .collect();
        for &(t, v) in &s.pts {
            if is_info || ids.is_empty() {
                acc.push(s.metric.clone(), s.drop_name, t, v)?;
                continue;
            }
            let step = r.index(t);
            // Latest matching info series per metric name.
            let mut chosen: HashMap<&str, (usize, i64)> = HashMap::new();
            for &(k, st) in &present[step] {
                let il = &infos[k].0;
                if !ids.iter().all(|(n, v)| il.get(n) == Some(*v)) {
                    continue;
                }
                let name = il.get(METRIC_NAME).unwrap_or("");
                match chosen.get(name) {
                    Some(&(_, prev)) if prev >= st => {}
                    _ => {
                        chosen.insert(name, (k, st));
                    }
                }
            }
            if chosen.is_empty() {
                if !drop_unmatched {
                    acc.push(s.metric.clone(), s.drop_name, t, v)?;
                }
                continue;
            }
            let mut pairs = to_pairs(&s.metric);
            let mut added: Vec<(String, String)> = Vec::new();
            let mut ks: Vec<usize> = chosen.values().map(|c| c.0).collect();
            ks.sort_unstable();
            for k in ks {
                for p in infos[k].0.iter() {
                    if p.name == METRIC_NAME || IDENTIFYING.contains(&p.name) {
                        continue;
                    }
                    if !wanted.is_empty() && !wanted.contains(&p.name) {
                        continue;
                    }
                    if let Some((_, prev)) = added.iter().find(|a| a.0 == p.name) {
                        if prev != p.value {
                            return Err(crate::error::exec(format!(
                                "conflicting label: info metrics give {} the values {} and {}",
                                p.name,
                                crate::eval::go_quote(prev),
                                crate::eval::go_quote(p.value)
                            )));
                        }
                        continue;
                    }
                    if pairs.iter().any(|q| q.name == p.name) {
                        continue;
                    }
                    added.push((p.name.to_string(), p.value.to_string()));
                    pairs.push(Label {
                        name: p.name.to_string(),
                        value: p.value.to_string(),
                    });
                }
            }
            let metric: Labels = labels_from(pairs);
            acc.push(metric, s.drop_name, t, v)?;
        }
    }
    Ok(Val::Vector(boxes.unbox_series(acc.out)))
}
