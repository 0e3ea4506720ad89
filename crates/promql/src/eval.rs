//! The evaluator: walks the parsed expression the way Prometheus's engine does.
//!
//! Every node of an expression is evaluated over a whole step range at once (an instant
//! query is a range of one step), giving for an instant-vector node a list of series whose
//! points sit on the step timestamps, for a scalar node one value per step. Operators,
//! aggregations and functions then work step by step over those series, like Prometheus's
//! `rangeEval`; range functions slide a left-open window `(t - range, t]` over each selected
//! series with two cursors, so a range query never selects or decodes the same data twice.
//!
//! Invariants kept here:
//! - `S::pts` are sorted by time and, for instant-vector values, hold at most one point per
//!   step timestamp.
//! - A step-invariant subtree (everything under an `@`) is evaluated once at the first step
//!   and its result repeated, as Prometheus's `StepInvariantExpr` does.
//! - `__name__` removal is delayed to the end of the query (Prometheus 3's
//!   `EnableDelayedNameRemoval`): nodes set `drop_name` and [`Ev::finish`] drops it.
//! - Every sample loaded or produced is counted against the max-samples limit, and the
//!   deadline and cancel flag are checked at every node and every selected series.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use model::histogram::FloatHistogram;
use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::token::{self as tok, TokenId};
use promql_parser::parser::{
    AtModifier, BinaryExpr, Expr, LabelModifier, Offset, SubqueryExpr, VectorMatchCardinality,
    VectorSelector,
};
use tsdb::{Label, Labels, MatchOp, Matcher, Querier, METRIC_NAME};

use crate::error::{exec, Error};

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A native histogram sample's value, shared between the steps a lookback repeats it at.
pub(crate) type H = Arc<FloatHistogram>;

/// Selected series: labels, decoded float samples, histogram samples, and the start
/// timestamps `(t, st)` of the samples that have one (empty for most series).
pub(crate) type Selected = Vec<(Labels, Vec<(i64, f64)>, Vec<(i64, H)>, Vec<(i64, i64)>)>;

/// What an instant selector outputs at each step: the sample's value, its timestamp (for
/// `timestamp()`) or its start timestamp (for `start_timestamp()`, 0 when it has none),
/// both in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    Value,
    Timestamp,
    StartTimestamp,
}

/// One series inside the evaluator.
///
/// Float points and histogram points live in two lists (as in Prometheus's `Series`), so the
/// float path never looks at histograms: a float-only query carries an empty `hs` and pays
/// nothing for histogram support. A timestamp is in at most one of the two lists.
#[derive(Debug, Clone)]
pub(crate) struct S {
    pub metric: Labels,
    pub drop_name: bool,
    pub pts: Vec<(i64, f64)>,
    pub hs: Vec<(i64, H)>,
}

impl S {
    /// A float-only series.
    pub fn floats(metric: Labels, drop_name: bool, pts: Vec<(i64, f64)>) -> S {
        S {
            metric,
            drop_name,
            pts,
            hs: Vec::new(),
        }
    }
}

/// An evaluated node.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// Instant vector: points on step timestamps.
    Vector(Vec<S>),
    /// Range vector: raw samples (a top-level range selector or subquery).
    Matrix(Vec<S>),
    /// One value per step.
    Scalar(Vec<f64>),
    Str(String),
}

/// The steps a node is evaluated at: `start, start + step, ..., <= end`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Range {
    pub fn steps(&self) -> usize {
        ((self.end - self.start) / self.step + 1) as usize
    }
    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
    pub fn index(&self, t: i64) -> usize {
        ((t - self.start) / self.step) as usize
    }
}

/// Collected annotations, deduplicated, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct Annos {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Annos {
    pub fn warn(&mut self, m: String) {
        if !self.warnings.contains(&m) {
            self.warnings.push(m);
        }
    }
    pub fn info(&mut self, m: String) {
        if !self.infos.contains(&m) {
            self.infos.push(m);
        }
    }
}

/// Per-query evaluation state.
pub(crate) struct Ev<'a> {
    pub querier: &'a dyn Querier,
    pub lookback: i64,
    pub max_samples: usize,
    pub samples: usize,
    pub deadline: Option<Instant>,
    pub cancel: Option<&'a AtomicBool>,
    pub query_start: i64,
    pub query_end: i64,
    /// The query's step (0 for an instant query), for `step()`.
    pub query_step: i64,
    pub subquery_step: i64,
    /// Whether selectors are read as Prometheus reads them under `histogram_count`,
    /// `histogram_sum` and `histogram_avg` (its `HistogramStatsIterator`): counter-reset
    /// hints are recomputed sample by sample, so a detected reset says "reset".
    pub stats_mode: bool,
    /// Binary expressions (by address) that are histogram trims, `true` for `</` (see
    /// [`crate::trim`]).
    pub trims: HashMap<usize, bool>,
    pub annos: Annos,
    /// Whether some selector carries an `anchored`/`smoothed` modifier (see [`crate::ext`]);
    /// when false no selector is inspected for one.
    pub ext: bool,
    pub query: &'a str,
    /// String literals of the query that are not UTF-8 in Go (see `literals`).
    pub non_utf8: Vec<String>,
}

/// Functions whose result depends on the evaluation time itself, so an `@` below them does
/// not make them step invariant (Prometheus's `AtModifierUnsafeFunctions`).
const AT_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
];

/// Largest magnitude any time or duration takes inside the evaluator (about 142,000 years):
/// clamping to it keeps every sum of a few times and durations far from i64 overflow.
pub(crate) const TIME_LIMIT: i64 = 1 << 52;

pub(crate) fn duration_ms(d: &std::time::Duration) -> i64 {
    d.as_millis().min(TIME_LIMIT as u128) as i64
}

pub(crate) fn clamp_time(t: i64) -> i64 {
    t.clamp(-TIME_LIMIT, TIME_LIMIT)
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => duration_ms(d),
        Some(Offset::Neg(d)) => -duration_ms(d),
    }
}

pub(crate) fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => duration_ms(&d),
        Err(e) => -duration_ms(&e.duration()),
    }
}

/// Labels from pairs in any order; later duplicates win, empty values are dropped.
pub(crate) fn labels_from(mut pairs: Vec<Label>) -> Labels {
    pairs.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out: Vec<Label> = Vec::with_capacity(pairs.len());
    for p in pairs {
        if let Some(last) = out.last_mut() {
            if last.name == p.name {
                *last = p;
                continue;
            }
        }
        out.push(p);
    }
    out.retain(|l| !l.value.is_empty());
    Labels::from_sorted_unchecked(out)
}

pub(crate) fn to_pairs(l: &Labels) -> Vec<Label> {
    l.iter()
        .map(|p| Label {
            name: p.name.to_string(),
            value: p.value.to_string(),
        })
        .collect()
}

/// The labels without the metric name and its type and unit metadata labels (`__type__`,
/// `__unit__`), which Prometheus drops together with the name.
pub(crate) fn drop_name(l: &Labels) -> Labels {
    let reserved = |n: &str| n == METRIC_NAME || n == "__type__" || n == "__unit__";
    if !l.iter().any(|p| reserved(p.name)) {
        return l.clone();
    }
    let kept: Vec<tsdb::LabelRef<'_>> = l.iter().filter(|p| !reserved(p.name)).collect();
    Labels::from_sorted_refs_unchecked(&kept)
}

/// Go's `labels.Labels.String()`: `{a="b", c="d"}`.
pub(crate) fn labels_string(l: &Labels) -> String {
    let mut s = String::from("{");
    for (i, p) in l.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(p.name);
        s.push('=');
        s.push_str(&go_quote(p.value));
    }
    s.push('}');
    s
}

/// Go's `strconv.Quote`, for messages that quote label values and names as Prometheus's do.
pub(crate) use model::gofmt::quote as go_quote;

/// A key identifying the values of `names` (or of all but `names` and `__name__`).
pub(crate) fn signature(l: &Labels, on: bool, names: &[String]) -> String {
    let mut k = String::new();
    for p in l.iter() {
        let listed = names.iter().any(|n| n == p.name);
        let take = if on {
            listed
        } else {
            !listed && p.name != METRIC_NAME
        };
        if take {
            k.push_str(p.name);
            k.push('\u{ff}');
            k.push_str(p.value);
            k.push('\u{ff}');
        }
    }
    k
}

/// The labels a match group shows in error messages.
fn match_labels(l: &Labels, on: bool, names: &[String]) -> Labels {
    Labels::from_sorted_unchecked(
        to_pairs(l)
            .into_iter()
            .filter(|p| {
                let listed = names.contains(&p.name);
                if on {
                    listed
                } else {
                    !listed && p.name != METRIC_NAME
                }
            })
            .collect(),
    )
}

/// Accumulates per-step output samples into series keyed by labels.
///
/// Callers that know which output series a sample belongs to by a small integer (an input
/// series, an aggregation group, a matched pair) use [`Acc::push_keyed`]: the label set is
/// built and hashed once per key instead of once per step, which is what keeps a range query
/// over thousands of series from spending its time hashing labels.
pub(crate) struct Acc {
    map: HashMap<Labels, usize>,
    /// Output slot of each caller key (`usize::MAX`: not seen yet).
    by_key: Vec<usize>,
    pub out: Vec<S>,
}

impl Acc {
    pub fn new() -> Acc {
        Acc {
            map: HashMap::new(),
            by_key: Vec::new(),
            out: Vec::new(),
        }
    }

    pub fn push(&mut self, metric: Labels, drop_name: bool, t: i64, v: f64) -> Result<()> {
        let slot = self.slot(metric);
        self.push_slot(slot, drop_name, t, v)
    }

    /// Like [`Acc::push`], with `metric` built only the first time `key` is seen. Every key
    /// must always stand for the same labels.
    pub fn push_keyed(
        &mut self,
        key: usize,
        metric: impl FnOnce() -> Labels,
        drop_name: bool,
        t: i64,
        v: f64,
    ) -> Result<()> {
        let slot = self.keyed_slot(key, metric);
        self.push_slot(slot, drop_name, t, v)
    }

    /// The output slot of `key`, made from `metric()` the first time the key is seen.
    fn keyed_slot(&mut self, key: usize, metric: impl FnOnce() -> Labels) -> usize {
        if key >= self.by_key.len() {
            self.by_key.resize(key + 1, usize::MAX);
        }
        match self.by_key[key] {
            usize::MAX => {
                let slot = self.slot(metric());
                self.by_key[key] = slot;
                slot
            }
            slot => slot,
        }
    }

    fn slot(&mut self, metric: Labels) -> usize {
        if let Some(&i) = self.map.get(&metric) {
            return i;
        }
        self.map.insert(metric.clone(), self.out.len());
        self.out.push(S::floats(metric, false, Vec::new()));
        self.out.len() - 1
    }

    /// Like [`Acc::push_keyed`] for a histogram sample.
    pub fn push_keyed_h(
        &mut self,
        key: usize,
        metric: impl FnOnce() -> Labels,
        drop_name: bool,
        t: i64,
        h: H,
    ) -> Result<()> {
        let slot = self.keyed_slot(key, metric);
        let s = &mut self.out[slot];
        if s.hs.last().is_some_and(|p| p.0 == t) || s.pts.last().is_some_and(|p| p.0 == t) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
        s.drop_name |= drop_name;
        s.hs.push((t, h));
        Ok(())
    }

    fn push_slot(&mut self, slot: usize, drop_name: bool, t: i64, v: f64) -> Result<()> {
        let s = &mut self.out[slot];
        if s.pts.last().is_some_and(|p| p.0 == t) || s.hs.last().is_some_and(|p| p.0 == t) {
            return Err(exec("vector cannot contain metrics with the same labelset"));
        }
        s.drop_name |= drop_name;
        s.pts.push((t, v));
        Ok(())
    }
}

/// Histogram points of an instant vector by step: indexes into the series list plus the value.
pub(crate) fn by_step_h(series: &[S], r: Range) -> Vec<Vec<(usize, &H)>> {
    let mut steps: Vec<Vec<(usize, &H)>> = vec![Vec::new(); r.steps()];
    for (i, s) in series.iter().enumerate() {
        for (t, h) in &s.hs {
            if *t >= r.start && *t <= r.end {
                steps[r.index(*t)].push((i, h));
            }
        }
    }
    steps
}

/// Whether any series of the vector holds a histogram point.
pub(crate) fn has_histograms(series: &[S]) -> bool {
    series.iter().any(|s| !s.hs.is_empty())
}

/// A view of one step of an instant vector: indexes into the series list plus the value.
pub(crate) fn by_step(series: &[S], r: Range) -> Vec<Vec<(usize, f64)>> {
    let mut steps: Vec<Vec<(usize, f64)>> = vec![Vec::new(); r.steps()];
    for (i, s) in series.iter().enumerate() {
        for &(t, v) in &s.pts {
            if t >= r.start && t <= r.end {
                steps[r.index(t)].push((i, v));
            }
        }
    }
    steps
}

impl<'a> Ev<'a> {
    pub fn check(&self) -> Result<()> {
        if let Some(c) = self.cancel {
            if c.load(Ordering::Relaxed) {
                return Err(Error::Canceled);
            }
        }
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                return Err(Error::Timeout);
            }
        }
        Ok(())
    }

    /// Prometheus 3's label-name rule: any non-empty valid UTF-8.
    pub fn valid_label_name(&self, s: &str) -> bool {
        !s.is_empty() && !self.non_utf8.iter().any(|n| n == s)
    }

    pub fn add_samples(&mut self, n: usize) -> Result<()> {
        self.samples = self.samples.saturating_add(n);
        if self.samples > self.max_samples {
            return Err(Error::TooManySamples);
        }
        Ok(())
    }

    /// How many samples a selection not counted against the limit may decode at once.
    /// Prometheus streams such a selection one series at a time, so only what it evaluates
    /// counts; we decode the selection's series before evaluating them, so what they hold is
    /// bounded separately, at twice the limit (at least a million): memory stays bounded, and
    /// a query is refused where Prometheus answers it only when its raw data is more than
    /// twice the limit.
    pub(crate) fn load_limit(&self) -> usize {
        self.max_samples.saturating_mul(2).max(1_000_000)
    }

    pub fn release_samples(&mut self, n: usize) {
        self.samples = self.samples.saturating_sub(n);
    }

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(t)),
        }
    }

    pub fn step_invariant(e: &Expr) -> bool {
        match e {
            Expr::VectorSelector(vs) => vs.at.is_some(),
            Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
            Expr::Subquery(sq) => sq.at.is_some(),
            Expr::Aggregate(a) => Self::step_invariant(&a.expr),
            Expr::Binary(b) => Self::step_invariant(&b.lhs) && Self::step_invariant(&b.rhs),
            Expr::Call(c) => {
                !AT_UNSAFE.contains(&c.func.name)
                    && c.args.args.iter().all(|a| Self::step_invariant(a))
            }
            Expr::Paren(p) => Self::step_invariant(&p.expr),
            Expr::Unary(u) => Self::step_invariant(&u.expr),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
            Expr::Extension(_) => false,
        }
    }

    pub fn eval(&mut self, e: &Expr, r: Range) -> Result<Val> {
        self.check()?;
        if r.start != r.end
            && !matches!(e, Expr::NumberLiteral(_) | Expr::StringLiteral(_))
            && Self::step_invariant(e)
        {
            let once = Range {
                start: r.start,
                end: r.start,
                step: r.step,
            };
            let v = self.eval_node(e, once)?;
            let n = r.steps();
            return Ok(match v {
                Val::Scalar(s) => Val::Scalar(vec![s.first().copied().unwrap_or(f64::NAN); n]),
                Val::Vector(series) => {
                    // The one step already counted; each repeat counts again, a histogram by
                    // its size (Prometheus's StepInvariantExpr).
                    let once: usize = series
                        .iter()
                        .map(|s| s.hs.first().map_or(1, |(_, h)| histogram_weight(h)))
                        .sum();
                    self.add_samples(once * (n - 1))?;
                    Val::Vector(
                        series
                            .into_iter()
                            .filter_map(|s| {
                                if let Some((_, h)) = s.hs.first() {
                                    return Some(S {
                                        metric: s.metric,
                                        drop_name: s.drop_name,
                                        pts: Vec::new(),
                                        hs: (0..n).map(|i| (r.ts(i), h.clone())).collect(),
                                    });
                                }
                                let v = s.pts.first()?.1;
                                Some(S::floats(
                                    s.metric,
                                    s.drop_name,
                                    (0..n).map(|i| (r.ts(i), v)).collect(),
                                ))
                            })
                            .collect(),
                    )
                }
                other => other,
            });
        }
        self.eval_node(e, r)
    }

    fn eval_node(&mut self, e: &Expr, r: Range) -> Result<Val> {
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; r.steps()])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, r),
            Expr::Unary(u) => match self.eval(&u.expr, r)? {
                Val::Scalar(mut s) => {
                    s.iter_mut().for_each(|v| *v = -*v);
                    Ok(Val::Scalar(s))
                }
                Val::Vector(mut series) => {
                    for s in &mut series {
                        s.drop_name = true;
                        s.pts.iter_mut().for_each(|p| p.1 = -p.1);
                        for p in &mut s.hs {
                            Arc::make_mut(&mut p.1).mul(-1.0);
                        }
                    }
                    Ok(Val::Vector(series))
                }
                _ => Err(Error::BadData(
                    "unary expression only allowed on expressions of type scalar or instant vector"
                        .into(),
                )),
            },
            Expr::VectorSelector(vs) => {
                Ok(Val::Vector(self.vector_selector(vs, r, Pick::Value)?))
            }
            Expr::MatrixSelector(ms) => self.matrix_selector(ms, r),
            Expr::Subquery(sq) => Ok(Val::Matrix(self.subquery(sq, r)?)),
            Expr::Call(c) => crate::functions::call(self, c, r),
            Expr::Aggregate(a) => crate::aggregate::aggregate(self, a, r),
            Expr::Binary(b) => self.binary(b, r),
            Expr::Extension(_) => Err(Error::BadData("unsupported expression".into())),
        }
    }

    /// A bare range selector (a range-vector result): the samples of `(t - range, t]` at the
    /// first step, extended as Prometheus's `extendFloats` does under `anchored`/`smoothed`.
    /// Kept out of `eval_node` so the recursive evaluator's frames stay small.
    #[inline(never)]
    fn matrix_selector(
        &mut self,
        ms: &promql_parser::parser::MatrixSelector,
        r: Range,
    ) -> Result<Val> {
        let t = self.at_ms(&ms.vs.at).unwrap_or(r.start) - offset_ms(&ms.vs.offset);
        let range = duration_ms(&ms.range);
        let mode = if self.ext {
            crate::ext::mode(&ms.vs)
        } else {
            None
        };
        let (ext_lo, ext_hi) = match mode {
            None => (0, 0),
            Some(crate::ext::Mode::Anchored) => (self.lookback, 0),
            Some(crate::ext::Mode::Smoothed) => (self.lookback, self.lookback),
        };
        let sel = self.select(&ms.vs, t - range - ext_lo + 1, t + ext_hi)?;
        let mut out = Vec::with_capacity(sel.len());
        for (metric, pts, hs, _) in sel {
            let mut pts: Vec<(i64, f64)> = pts
                .into_iter()
                .filter(|p| !tsdb::is_stale_nan(p.1))
                .collect();
            let hs: Vec<(i64, H)> = hs.into_iter().filter(|p| !p.1.is_stale()).collect();
            if let Some(m) = mode {
                if !hs.is_empty() {
                    return Err(exec(format!(
                        "{} modifier is not supported with histograms",
                        if m == crate::ext::Mode::Anchored {
                            "anchored"
                        } else {
                            "smoothed"
                        }
                    )));
                }
                pts =
                    crate::ext::extend_floats(&pts, t - range, t, m == crate::ext::Mode::Smoothed);
            }
            if !pts.is_empty() || !hs.is_empty() {
                out.push(S {
                    metric,
                    drop_name: false,
                    pts,
                    hs,
                });
            }
        }
        Ok(Val::Matrix(out))
    }

    /// The matchers of a selector as the tsdb takes them (one list per `or` alternative).
    pub fn matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>> {
        let conv = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>> {
            let mut out = Vec::with_capacity(ms.len() + 1);
            if let Some(n) = &vs.name {
                out.push(Matcher::equal(METRIC_NAME, n.clone()));
            }
            for m in ms {
                if m.name == crate::ext::MARKER {
                    continue;
                }
                let op = match m.op {
                    PMatchOp::Equal => MatchOp::Equal,
                    PMatchOp::NotEqual => MatchOp::NotEqual,
                    PMatchOp::Re(_) => MatchOp::Regex,
                    PMatchOp::NotRe(_) => MatchOp::NotRegex,
                };
                out.push(
                    Matcher::new(op, m.name.clone(), m.value.clone())
                        .map_err(|e| Error::BadData(e.to_string()))?,
                );
            }
            Ok(out)
        };
        if vs.matchers.or_matchers.is_empty() {
            Ok(vec![conv(&vs.matchers.matchers)?])
        } else {
            vs.matchers.or_matchers.iter().map(|ms| conv(ms)).collect()
        }
    }

    /// Selects and decodes the samples of `vs` in `[mint, maxt]`, sorted by labels, each
    /// counted against the limit as loaded (range selectors hold them all).
    pub fn select(&mut self, vs: &VectorSelector, mint: i64, maxt: i64) -> Result<Selected> {
        self.select_counting(vs, mint, maxt, true)
    }

    /// [`Ev::select`], counting the loaded samples only with `count`: an instant selector
    /// counts the points it outputs instead, as Prometheus's `evalSeries` streams them.
    /// Without `count` the loaded samples are still bounded, by [`Ev::load_limit`].
    pub(crate) fn select_counting(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        count: bool,
    ) -> Result<Selected> {
        let sets = Self::matchers(vs)?;
        let mut out: Selected = Vec::new();
        let mut loaded = 0usize;
        for ms in &sets {
            for s in self.querier.select(ms, mint, maxt)? {
                self.check()?;
                let pts: Vec<(i64, f64)> = s.samples().collect();
                let mut hs: Vec<(i64, H)> = s.histograms().map(|(t, h)| (t, h.clone())).collect();
                if self.stats_mode {
                    stats_hints(&mut hs);
                }
                // A histogram weighs as much as its buckets (Prometheus counts it by size).
                let weight: usize = hs.iter().map(|(_, h)| histogram_weight(h)).sum();
                if count {
                    self.add_samples(pts.len() + weight)?;
                } else {
                    loaded = loaded.saturating_add(pts.len() + weight);
                    if self.samples.saturating_add(loaded) > self.load_limit() {
                        return Err(Error::TooManySamples);
                    }
                }
                let sts = s.start_timestamps().to_vec();
                out.push((s.labels, pts, hs, sts));
            }
        }
        if sets.len() > 1 {
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out.dedup_by(|a, b| a.0 == b.0);
        }
        Ok(out)
    }

    /// An instant vector selector at every step, with the lookback window `(t - delta, t]`
    /// and staleness markers ending a series. `pick` says whether a step gets the sample's
    /// value or one of its timestamps.
    pub fn vector_selector(&mut self, vs: &VectorSelector, r: Range, pick: Pick) -> Result<Vec<S>> {
        let sample_ts = pick != Pick::Value;
        if self.ext && !sample_ts && crate::ext::mode(vs) == Some(crate::ext::Mode::Smoothed) {
            return crate::ext::smoothed_selector(self, vs, r);
        }
        let off = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let (lo, hi) = match at {
            Some(t) => (t - off, t - off),
            None => (r.start - off, r.end - off),
        };
        let sel = self.select_counting(vs, lo - self.lookback + 1, hi, false)?;
        let mut out = Vec::with_capacity(sel.len());
        for (metric, raw, rawh, sts) in sel {
            // The seconds a timestamp-picking step outputs for the sample at `t`.
            let ts_value = |t: i64| match pick {
                Pick::StartTimestamp => tsdb::stchunk::at(&sts, t) as f64 / 1000.0,
                _ => t as f64 / 1000.0,
            };
            let mut pts = Vec::new();
            let mut hs = Vec::new();
            let (mut i, mut j) = (0usize, 0usize);
            for step in 0..r.steps() {
                let ts = r.ts(step);
                let reft = at.unwrap_or(ts) - off;
                while i < raw.len() && raw[i].0 <= reft {
                    i += 1;
                }
                while j < rawh.len() && rawh[j].0 <= reft {
                    j += 1;
                }
                // The newest sample at or before the step, float or histogram.
                let f = if i > 0 { Some(raw[i - 1]) } else { None };
                let h = if j > 0 { Some(&rawh[j - 1]) } else { None };
                match (f, h) {
                    (Some((ft, _)), Some((htt, hv))) if *htt > ft => {
                        if *htt <= reft - self.lookback || hv.is_stale() {
                            continue;
                        }
                        if sample_ts {
                            pts.push((ts, ts_value(*htt)));
                        } else {
                            hs.push((ts, hv.clone()));
                        }
                    }
                    (None, Some((htt, hv))) => {
                        if *htt <= reft - self.lookback || hv.is_stale() {
                            continue;
                        }
                        if sample_ts {
                            pts.push((ts, ts_value(*htt)));
                        } else {
                            hs.push((ts, hv.clone()));
                        }
                    }
                    (Some((t, v)), _) => {
                        if t <= reft - self.lookback || tsdb::is_stale_nan(v) {
                            continue;
                        }
                        pts.push((ts, if sample_ts { ts_value(t) } else { v }));
                    }
                    (None, None) => {}
                }
            }
            if !pts.is_empty() || !hs.is_empty() {
                let weight: usize = hs.iter().map(|(_, h)| histogram_weight(h)).sum();
                self.add_samples(pts.len() + weight)?;
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

    /// Evaluates a subquery's inner expression over its own aligned steps.
    pub fn subquery(&mut self, sq: &SubqueryExpr, r: Range) -> Result<Vec<S>> {
        let off = offset_ms(&sq.offset);
        let range = duration_ms(&sq.range);
        let step = match &sq.step {
            Some(s) if duration_ms(s) > 0 => duration_ms(s),
            _ => self.subquery_step,
        };
        let (os, oe) = match self.at_ms(&sq.at) {
            Some(t) => (t, t),
            None => (r.start, r.end),
        };
        let end = oe - off;
        let lo = os - off - range;
        let mut start = step * (lo / step);
        if start <= lo {
            start += step;
        }
        if start > end {
            return Ok(Vec::new());
        }
        let inner = Range { start, end, step };
        // Prometheus has no such check; ours keeps a hostile step count from allocating
        // before anything is counted, without refusing what Prometheus would answer at
        // small limits.
        if inner.steps() > self.max_samples.max(1_000_000) {
            return Err(Error::TooManySamples);
        }
        match self.eval(&sq.expr, inner)? {
            Val::Vector(mut v) => {
                // Subquery steps are not consecutive samples: stored counter-reset hints say
                // nothing about them, so resets are detected again from the values.
                use model::histogram::CounterResetHint as C;
                for s in &mut v {
                    for (_, h) in &mut s.hs {
                        if matches!(h.counter_reset_hint, C::CounterReset | C::NotCounterReset) {
                            Arc::make_mut(h).counter_reset_hint = C::Unknown;
                        }
                    }
                }
                Ok(v)
            }
            Val::Scalar(s) => Ok(vec![S::floats(
                Labels::empty(),
                false,
                s.into_iter()
                    .enumerate()
                    .map(|(i, v)| (inner.ts(i), v))
                    .collect(),
            )]),
            _ => Err(Error::BadData(
                "subquery is only allowed on instant vector".into(),
            )),
        }
    }

    /// Turns a node into a per-step scalar (for function and aggregation parameters).
    pub fn scalar_arg(&mut self, e: &Expr, r: Range) -> Result<Vec<f64>> {
        match self.eval(e, r)? {
            Val::Scalar(s) => Ok(s),
            _ => Err(Error::BadData("expected a scalar argument".into())),
        }
    }

    pub fn vector_arg(&mut self, e: &Expr, r: Range) -> Result<Vec<S>> {
        match self.eval(e, r)? {
            Val::Vector(v) => Ok(v),
            _ => Err(Error::BadData("expected an instant vector argument".into())),
        }
    }

    /// A binary operation where histograms take part: histogram points are boxed into the
    /// float path (see [`crate::histop`]), evaluated by the same matching code, and unboxed.
    #[inline(never)]
    fn mixed(
        &mut self,
        b: &BinaryExpr,
        l: Vec<S>,
        rv: Vec<S>,
        scalar: Option<(&[f64], bool)>,
        trim: Option<bool>,
        r: Range,
    ) -> Result<Val> {
        let op = b.op.id();
        let mut boxes = crate::histop::Boxes::default();
        boxes.trim = trim;
        let l = boxes.box_series(l);
        let out = match scalar {
            Some((s, swap)) => vector_scalar(op, l, s, swap, b.return_bool(), r, Some(&mut boxes))?,
            None => {
                let rv = boxes.box_series(rv);
                vector_vector(b, op, b.return_bool(), l, rv, r, Some(&mut boxes))?
            }
        };
        let pos = crate::functions::position(self, &Expr::Binary(b.clone()));
        for (warn, m) in std::mem::take(&mut boxes.notes) {
            if warn {
                self.annos.warn(format!("{m} ({pos})"));
            } else {
                self.annos.info(format!("{m} ({pos})"));
            }
        }
        Ok(Val::Vector(boxes.unbox_series(out)))
    }

    fn binary(&mut self, b: &BinaryExpr, r: Range) -> Result<Val> {
        let op = b.op.id();
        let return_bool = b.return_bool();
        // Prometheus decides stats reading for each side of a binary operation on its own.
        let saved = std::mem::replace(&mut self.stats_mode, false);
        let lhs = self.eval(&b.lhs, r);
        let rhs = self.eval(&b.rhs, r);
        self.stats_mode = saved;
        let (lhs, rhs) = (lhs?, rhs?);
        if op == tok::T_ATAN2 && !self.trims.is_empty() {
            if let Some(&below) = self.trims.get(&(b as *const BinaryExpr as usize)) {
                return match (lhs, rhs) {
                    (Val::Vector(v), Val::Scalar(s)) => {
                        self.mixed(b, v, Vec::new(), Some((&s, false)), Some(below), r)
                    }
                    (Val::Scalar(s), Val::Vector(v)) => {
                        self.mixed(b, v, Vec::new(), Some((&s, true)), Some(below), r)
                    }
                    (Val::Vector(l), Val::Vector(rv)) => self.mixed(b, l, rv, None, Some(below), r),
                    _ => Err(Error::BadData(
                        "histogram trim operators need a histogram vector on the left".into(),
                    )),
                };
            }
        }
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r2)) => {
                let mut out = Vec::with_capacity(l.len());
                for (a, c) in l.iter().zip(r2.iter()) {
                    let (v, keep) = elem_binop(op, *a, *c)?;
                    out.push(if is_comparison(op) {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    });
                }
                Ok(Val::Scalar(out))
            }
            (Val::Vector(v), Val::Scalar(s)) => {
                if has_histograms(&v) {
                    return self.mixed(b, v, Vec::new(), Some((&s, false)), None, r);
                }
                Ok(Val::Vector(vector_scalar(
                    op,
                    v,
                    &s,
                    false,
                    return_bool,
                    r,
                    None,
                )?))
            }
            (Val::Scalar(s), Val::Vector(v)) => {
                if has_histograms(&v) {
                    return self.mixed(b, v, Vec::new(), Some((&s, true)), None, r);
                }
                Ok(Val::Vector(vector_scalar(
                    op,
                    v,
                    &s,
                    true,
                    return_bool,
                    r,
                    None,
                )?))
            }
            (Val::Vector(l), Val::Vector(rv)) => {
                self.check()?;
                if has_histograms(&l) || has_histograms(&rv) {
                    return self.mixed(b, l, rv, None, None, r);
                }
                Ok(Val::Vector(vector_vector(
                    b,
                    op,
                    return_bool,
                    l,
                    rv,
                    r,
                    None,
                )?))
            }
            _ => Err(Error::BadData(
                "binary expression must contain only scalar and instant vector types".into(),
            )),
        }
    }
}

pub(crate) fn is_comparison(op: TokenId) -> bool {
    matches!(
        op,
        tok::T_EQLC | tok::T_NEQ | tok::T_GTR | tok::T_LSS | tok::T_GTE | tok::T_LTE
    )
}

fn is_set(op: TokenId) -> bool {
    matches!(op, tok::T_LAND | tok::T_LOR | tok::T_LUNLESS)
}

/// `lhs op rhs` for floats: the value and, for comparisons, whether the pair is kept.
pub(crate) fn elem_binop(op: TokenId, l: f64, r: f64) -> Result<(f64, bool)> {
    Ok(match op {
        tok::T_ADD => (l + r, true),
        tok::T_SUB => (l - r, true),
        tok::T_MUL => (l * r, true),
        tok::T_DIV => (l / r, true),
        tok::T_POW => (l.powf(r), true),
        tok::T_MOD => (l % r, true),
        tok::T_ATAN2 => (l.atan2(r), true),
        tok::T_EQLC => (l, l == r),
        tok::T_NEQ => (l, l != r),
        tok::T_GTR => (l, l > r),
        tok::T_LSS => (l, l < r),
        tok::T_GTE => (l, l >= r),
        tok::T_LTE => (l, l <= r),
        _ => return Err(exec("operator not allowed for float operations")),
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn vector_scalar(
    op: TokenId,
    mut v: Vec<S>,
    s: &[f64],
    swap: bool,
    return_bool: bool,
    r: Range,
    mut hist: Option<&mut crate::histop::Boxes>,
) -> Result<Vec<S>> {
    let cmp = is_comparison(op);
    for series in &mut v {
        let mut keep_pts = Vec::with_capacity(series.pts.len());
        for &(t, x) in &series.pts {
            let sv = s[r.index(t)];
            let (l, rr) = if swap { (sv, x) } else { (x, sv) };
            let (mut val, mut keep) = match hist.as_deref_mut() {
                None => elem_binop(op, l, rr)?,
                Some(b) => match b.binop(op, l, rr)? {
                    Some(x) => x,
                    None => continue,
                },
            };
            if cmp && swap {
                val = rr;
            }
            if return_bool {
                val = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            if keep {
                keep_pts.push((t, val));
            }
        }
        series.pts = keep_pts;
        // Trims keep the metric name, as comparisons do.
        if (!cmp || return_bool) && hist.as_ref().is_none_or(|b| b.trim.is_none()) {
            series.drop_name = true;
        }
    }
    v.retain(|s| !s.pts.is_empty());
    Ok(v)
}

pub(crate) fn vector_vector(
    b: &BinaryExpr,
    op: TokenId,
    return_bool: bool,
    lhs: Vec<S>,
    rhs: Vec<S>,
    r: Range,
    mut hist: Option<&mut crate::histop::Boxes>,
) -> Result<Vec<S>> {
    let m = b.modifier.as_ref();
    let (on, names): (bool, Vec<String>) = match m.and_then(|m| m.matching.as_ref()) {
        Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
        Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
        None => (false, Vec::new()),
    };
    let card = m
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    let ls = by_step(&lhs, r);
    let rs = by_step(&rhs, r);
    // Signatures become small ids shared by both sides, computed once per series: matching
    // at each step then indexes arrays stamped with the step instead of hashing strings.
    let mut sig_ids: HashMap<String, usize> = HashMap::new();
    let mut intern = |l: &Labels| {
        let n = sig_ids.len();
        *sig_ids.entry(signature(l, on, &names)).or_insert(n)
    };
    let lid: Vec<usize> = lhs.iter().map(|s| intern(&s.metric)).collect();
    let rid: Vec<usize> = rhs.iter().map(|s| intern(&s.metric)).collect();
    let nsig = sig_ids.len();
    let mut acc = Acc::new();
    if is_set(op) {
        // Output keys: lhs series `i` is key `i`, rhs series `i` is key `lhs.len() + i`.
        let mut seen_at = vec![0usize; nsig];
        for step in 0..r.steps() {
            let ts = r.ts(step);
            let stamp = step + 1;
            match op {
                tok::T_LAND | tok::T_LUNLESS => {
                    for &(i, _) in &rs[step] {
                        seen_at[rid[i]] = stamp;
                    }
                    let want = op == tok::T_LAND;
                    for &(i, v) in &ls[step] {
                        if (seen_at[lid[i]] == stamp) == want {
                            let s = &lhs[i];
                            acc.push_keyed(i, || s.metric.clone(), s.drop_name, ts, v)?;
                        }
                    }
                }
                _ => {
                    for &(i, v) in &ls[step] {
                        seen_at[lid[i]] = stamp;
                        let s = &lhs[i];
                        acc.push_keyed(i, || s.metric.clone(), s.drop_name, ts, v)?;
                    }
                    for &(i, v) in &rs[step] {
                        if seen_at[rid[i]] != stamp {
                            let s = &rhs[i];
                            let key = lhs.len() + i;
                            acc.push_keyed(key, || s.metric.clone(), s.drop_name, ts, v)?;
                        }
                    }
                }
            }
        }
        return Ok(acc.out);
    }
    let (include, one_to_many) = match &card {
        VectorMatchCardinality::ManyToOne(l) => (l.labels.clone(), false),
        VectorMatchCardinality::OneToMany(l) => (l.labels.clone(), true),
        _ => (Vec::new(), false),
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    // For one-to-many the sides swap so the "one" side is always `one`.
    let (many, one, mid, oid, msteps, osteps) = if one_to_many {
        (&rhs, &lhs, &rid, &lid, &rs, &ls)
    } else {
        (&lhs, &rhs, &lid, &rid, &ls, &rs)
    };
    let trim = hist.as_ref().is_some_and(|b| b.trim.is_some());
    let drop = (!is_comparison(op) || return_bool) && !trim;
    let (many_fill, one_fill) = m
        .map(|m| (m.fill_values.lhs, m.fill_values.rhs))
        .unwrap_or((None, None));
    // Per signature, the "one" side at the current step: (step + 1, series, value); a stale
    // stamp means absent.
    let mut one_at: Vec<(usize, usize, f64)> = vec![(0, 0, 0.0); nsig];
    // Per signature, the step (+ 1) it last matched at (one-to-one) or was present on the
    // "many" side (for `fill`).
    let mut matched_at = vec![0usize; nsig];
    let mut many_at = vec![0usize; nsig];
    // Result label sets ("candidates"), computed once per matched pair of series: a many-side
    // series usually meets the same one-side series at every step, so the last pair is
    // remembered per series and the pair map is only asked when the partner changes.
    let mut cands: Vec<Labels> = Vec::new();
    let mut cand_index: HashMap<Labels, usize> = HashMap::new();
    let mut cand_of_pair: HashMap<(usize, usize), usize> = HashMap::new();
    let mut last_pair: Vec<(usize, usize)> = vec![(usize::MAX, 0); many.len()];
    // Per candidate, the (step + 1, signature) it was last produced for: group_left/right
    // must not produce one result twice from one match group.
    let mut cand_matched: Vec<(usize, usize)> = Vec::new();
    for step in 0..r.steps() {
        let ts = r.ts(step);
        let stamp = step + 1;
        for &(i, v) in &osteps[step] {
            let sid = oid[i];
            if one_at[sid].0 == stamp {
                let j = one_at[sid].1;
                let side = if one_to_many { "left" } else { "right" };
                return Err(exec(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    labels_string(&match_labels(&one[i].metric, on, &names)),
                    labels_string(&one[j].metric),
                    labels_string(&one[i].metric),
                )));
            }
            one_at[sid] = (stamp, i, v);
        }
        for &(i, v) in &msteps[step] {
            let sid = mid[i];
            many_at[sid] = stamp;
            let (at, j, ov) = one_at[sid];
            if at != stamp {
                continue;
            }
            let cand = if last_pair[i].0 == j {
                last_pair[i].1
            } else {
                let c = match cand_of_pair.get(&(i, j)) {
                    Some(&c) => c,
                    None => {
                        let metric = result_metric(
                            &many[i].metric,
                            &one[j].metric,
                            one_to_one,
                            on,
                            &names,
                            &include,
                        );
                        let c = match cand_index.get(&metric) {
                            Some(&c) => c,
                            None => {
                                cand_index.insert(metric.clone(), cands.len());
                                cands.push(metric);
                                cand_matched.push((0, 0));
                                cands.len() - 1
                            }
                        };
                        cand_of_pair.insert((i, j), c);
                        c
                    }
                };
                last_pair[i] = (j, c);
                c
            };
            if one_to_one {
                if matched_at[sid] == stamp {
                    return Err(exec("multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"));
                }
                matched_at[sid] = stamp;
            } else {
                if cand_matched[cand] == (stamp, sid) {
                    return Err(exec(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    ));
                }
                cand_matched[cand] = (stamp, sid);
            }
            let (l, rr) = if one_to_many { (ov, v) } else { (v, ov) };
            let (mut val, keep) = match hist.as_deref_mut() {
                None => elem_binop(op, l, rr)?,
                Some(b) => match b.binop(op, l, rr)? {
                    Some(x) => x,
                    None => continue,
                },
            };
            if return_bool {
                val = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            let metric = &cands[cand];
            acc.push_keyed(cand, || metric.clone(), drop || many[i].drop_name, ts, val)?;
        }
        // fill / fill_left / fill_right: an unmatched sample meets the fill value. The sides
        // are named after the swap for group_right, as Prometheus names them.
        if let Some(fill) = one_fill {
            for &(i, v) in &msteps[step] {
                if one_at[mid[i]].0 == stamp {
                    continue;
                }
                let metric = result_metric(
                    &many[i].metric,
                    &Labels::empty(),
                    one_to_one,
                    on,
                    &names,
                    &include,
                );
                let (l, rr) = if one_to_many { (fill, v) } else { (v, fill) };
                let (mut val, keep) = match hist.as_deref_mut() {
                    None => elem_binop(op, l, rr)?,
                    Some(b) => match b.binop(op, l, rr)? {
                        Some(x) => x,
                        None => continue,
                    },
                };
                if return_bool {
                    val = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                acc.push(metric, drop || many[i].drop_name, ts, val)?;
            }
        }
        if let Some(fill) = many_fill {
            for &(j, ov) in &osteps[step] {
                if many_at[oid[j]] == stamp {
                    continue;
                }
                let synthetic = match_labels(&one[j].metric, on, &names);
                let metric =
                    result_metric(&synthetic, &one[j].metric, one_to_one, on, &names, &include);
                let (l, rr) = if one_to_many { (ov, fill) } else { (fill, ov) };
                let (mut val, keep) = match hist.as_deref_mut() {
                    None => elem_binop(op, l, rr)?,
                    Some(b) => match b.binop(op, l, rr)? {
                        Some(x) => x,
                        None => continue,
                    },
                };
                if return_bool {
                    val = if keep { 1.0 } else { 0.0 };
                } else if !keep {
                    continue;
                }
                acc.push(metric, drop, ts, val)?;
            }
        }
    }
    Ok(acc.out)
}

fn result_metric(
    lhs: &Labels,
    rhs: &Labels,
    one_to_one: bool,
    on: bool,
    names: &[String],
    include: &[String],
) -> Labels {
    let mut pairs = to_pairs(lhs);
    if one_to_one {
        if on {
            pairs.retain(|p| names.contains(&p.name));
        } else {
            pairs.retain(|p| !names.contains(&p.name));
        }
    }
    for n in include {
        pairs.retain(|p| p.name != *n);
        if let Some(v) = rhs.get(n) {
            pairs.push(Label {
                name: n.clone(),
                value: v.to_string(),
            });
        }
    }
    labels_from(pairs)
}

/// Drops names marked for dropping and checks the result has unique label sets; series of a
/// range result that end up with the same labels are merged when their points do not collide.
pub(crate) fn finish(series: Vec<S>) -> Result<Vec<S>> {
    let mut map: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<S> = Vec::with_capacity(series.len());
    for mut s in series {
        if s.drop_name {
            s.metric = drop_name(&s.metric);
            s.drop_name = false;
        }
        if let Some(&i) = map.get(&s.metric) {
            let t = &mut out[i];
            let mut merged = Vec::with_capacity(t.pts.len() + s.pts.len());
            let (mut a, mut b) = (0, 0);
            while a < t.pts.len() || b < s.pts.len() {
                if b >= s.pts.len() || (a < t.pts.len() && t.pts[a].0 < s.pts[b].0) {
                    merged.push(t.pts[a]);
                    a += 1;
                } else if a >= t.pts.len() || s.pts[b].0 < t.pts[a].0 {
                    merged.push(s.pts[b]);
                    b += 1;
                } else {
                    return Err(exec("vector cannot contain metrics with the same labelset"));
                }
            }
            t.pts = merged;
            if !s.hs.is_empty() {
                let mut hs = std::mem::take(&mut t.hs);
                for p in s.hs {
                    if hs.iter().any(|q| q.0 == p.0) || t.pts.iter().any(|q| q.0 == p.0) {
                        return Err(exec("vector cannot contain metrics with the same labelset"));
                    }
                    hs.push(p);
                }
                hs.sort_by_key(|p| p.0);
                t.hs = hs;
            }
        } else {
            map.insert(s.metric.clone(), out.len());
            out.push(s);
        }
    }
    Ok(out)
}

/// How many samples a histogram point counts as against the max-samples limit: Prometheus's
/// `HPoint.size()`, the point's bytes in units of a float point (16 bytes): Go's
/// `FloatHistogram.Size()` (a 168-byte struct plus 8 bytes per span, bucket and custom
/// bound) plus the 8-byte timestamp, so 11 for a histogram without buckets.
pub(crate) fn histogram_weight(h: &FloatHistogram) -> usize {
    let elements = h.positive_spans.len()
        + h.negative_spans.len()
        + h.positive_buckets.len()
        + h.negative_buckets.len()
        + h.custom_values.len();
    (168 + 8 + 8 * elements) / 16
}

/// Counter-reset hints as Prometheus's `HistogramStatsIterator` gives them: gauges stay
/// gauges; after the first sample, a detected reset is "reset" and anything else "not reset".
fn stats_hints(hs: &mut [(i64, H)]) {
    use model::histogram::CounterResetHint as C;
    for i in 1..hs.len() {
        let (prev, cur) = hs.split_at_mut(i);
        let (p, c) = (&prev[i - 1].1, &mut cur[0].1);
        if c.counter_reset_hint == C::Gauge || p.counter_reset_hint == C::Gauge {
            continue;
        }
        let mut probe = (**c).clone();
        probe.counter_reset_hint = C::Unknown;
        let hint = if probe.detect_reset(p) {
            C::CounterReset
        } else {
            C::NotCounterReset
        };
        if c.counter_reset_hint != hint {
            Arc::make_mut(c).counter_reset_hint = hint;
        }
    }
}
