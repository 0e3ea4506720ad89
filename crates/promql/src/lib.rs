//! PromQL evaluation for Lookout: the answers Prometheus 3 gives, over a [`tsdb::Querier`].
//!
//! Parsing is the `promql-parser` crate (GreptimeDB's): its grammar covers Prometheus 3's
//! syntax used by dashboards and the conformance suite (`@` with `start()`/`end()`, negative
//! offsets, `limitk`/`limit_ratio`, UTF-8 quoted names `{"metric.name"}`, `info()`, the
//! `fill` modifiers). What it lacks, and how we cover it:
//! - no source positions in the AST: annotations need `(line:col)` suffixes, so
//!   [`functions`] finds the annotated selector's text in the query instead;
//! - no duration expressions (`[5m+1m]`, `offset step()`): [`durations`] computes them and
//!   hands the parser plain millisecond literals;
//! - it refuses `info(v, {data=~".*"})` (a selector whose matchers all match the empty
//!   string, which Prometheus allows as `info()`'s second argument): `info` adds a marker
//!   matcher before parsing and drops it when evaluating;
//! - no `anchored`/`smoothed` range modifiers (Prometheus 3's experimental extended range
//!   selectors): `ext` moves each into a marker matcher on its selector before parsing,
//!   the evaluator reads it back from there, and selection drops it again.
//!
//! Evaluation is ours, because it is the product: [`eval`] walks the expression with
//! Prometheus's step-wise semantics (lookback delta, staleness markers, left-open range
//! windows, `@`/offset, subquery step alignment, delayed `__name__` removal), [`aggregate`]
//! and [`functions`] reproduce Prometheus's numerics. [`json`] renders results in
//! Prometheus's exact bytes, and [`promqltest`] runs Prometheus's test scripts.
//!
//! Native histograms flow through the evaluator beside floats (see [`eval`]'s series type):
//! their arithmetic lives on `model::histogram::FloatHistogram`, `histfn` holds the
//! functions and range functions that read them, with Prometheus's annotations, `histop`
//! the binary operators, and `trim` the `</` / `>/` operators the parser lacks (rewritten to
//! `atan2` before parsing and recognised again by position).

pub mod aggregate;
pub mod durations;
mod error;
pub mod eval;
mod ext;
mod format;
pub mod functions;
mod histfn;
mod histop;
mod info;
pub mod json;
mod literals;
pub mod promqltest;
mod trim;
mod value;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use promql_parser::parser::value::ValueType;
use promql_parser::parser::Expr;
use tsdb::Querier;

pub use error::Error;
pub use value::{QueryResult, Sample, Series, Value};

use eval::{finish, Annos, Ev, Range, Val};

/// Engine settings (Prometheus's defaults).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta: Duration,
    /// Most samples a query may hold in memory at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Longest a query may run (`--query.timeout`).
    pub timeout: Duration,
    /// Step of subqueries written without one (`[30m:]`): the rule evaluation interval.
    pub default_subquery_step: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

/// The longest query text accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Deepest bracket nesting accepted: the evaluator recurses once per level and must stay
/// well inside a 2 MiB thread stack (measured: 200 levels fit in a debug build).
pub const MAX_NESTING: usize = 128;

/// Most steps a range query may have (Prometheus's API limit).
pub const MAX_RANGE_STEPS: i64 = 11_000;

/// Evaluates PromQL queries.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

/// Parses a query, with Prometheus's `bad_data` error on failure.
pub fn parse(query: &str) -> Result<Expr, Error> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(Error::BadData(format!(
            "query is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    if depth_exceeds(query, MAX_NESTING) {
        return Err(Error::BadData(format!(
            "query is nested more than {MAX_NESTING} levels deep; simplify it"
        )));
    }
    promql_parser::parser::parse(query).map_err(Error::BadData)
}

/// `/api/v1/format_query`: the query pretty-printed as Prometheus's `Prettify` lays it out,
/// including the syntax our rewrites carry (see [`format`]).
pub fn format_query(query: &str) -> Result<String, Error> {
    print_with(query, |p, e| p.pretty(e))
}

/// The query printed on one line as Prometheus's `String()` prints a parsed expression: how
/// Prometheus spells a rule's query in `/api/v1/rules` and in alerts' generator links.
pub fn print_query(query: &str) -> Result<String, Error> {
    print_with(query, |p, e| p.string(e))
}

/// Parses `query` through our rewrites and prints it with `print`.
fn print_with(
    query: &str,
    print: impl Fn(&format::Printer<'_>, &Expr) -> String,
) -> Result<String, Error> {
    if query.len() > MAX_QUERY_BYTES {
        // Refused with the length error before any rewrite scans it.
        parse(query)?;
    }
    let (text, durations) = durations::keep(query);
    let (expr, marks, _) = parse_rewritten(text)?;
    let trims = if marks.is_empty() {
        Default::default()
    } else {
        trim::trims_of(&expr, &marks)
    };
    let printer = format::Printer {
        durations: &durations,
        trims: &trims,
    };
    Ok(print(&printer, &expr))
}

/// Parses a query for evaluation with the given step and range (both 0 for an instant
/// query), first computing Prometheus 3 duration expressions the parser does not know.
pub fn parse_for(query: &str, step_ms: i64, range_ms: i64) -> Result<Expr, Error> {
    Ok(parse_marked(query, step_ms, range_ms)?.0)
}

/// [`parse_for`], plus which `atan2` operators of the parsed expression were histogram trim
/// operators (see [`trim`]) and whether any selector carries an `anchored`/`smoothed`
/// modifier (see [`ext`]).
fn parse_marked(
    query: &str,
    step_ms: i64,
    range_ms: i64,
) -> Result<(Expr, Vec<Option<bool>>, bool), Error> {
    if query.len() > MAX_QUERY_BYTES {
        return Ok((parse(query)?, Vec::new(), false));
    }
    parse_rewritten(durations::rewrite(query, step_ms, range_ms))
}

/// [`parse_marked`] after the duration expressions are rewritten: the other rewrites, then
/// the parser.
fn parse_rewritten(text: String) -> Result<(Expr, Vec<Option<bool>>, bool), Error> {
    let mut text = info::rewrite(&text);
    let ext = match ext::rewrite(&text)? {
        Some(t) => {
            text = t;
            true
        }
        None => false,
    };
    match trim::rewrite(&text) {
        Some((text, marks)) => Ok((parse(&text)?, marks, ext)),
        None => Ok((parse(&text)?, Vec::new(), ext)),
    }
}

/// [`parse`], also accepting Prometheus 3's `anchored`/`smoothed` range modifiers (the
/// selectors carrying one say so through [`range_modifiers`]) and `info()` selectors that
/// match the empty string (for `/api/v1/parse_query`).
pub fn parse_with_modifiers(query: &str) -> Result<Expr, Error> {
    if query.len() > MAX_QUERY_BYTES {
        return parse(query);
    }
    let text = info::rewrite(query);
    match ext::rewrite(&text)? {
        Some(t) => parse(&t),
        None => parse(&text),
    }
}

/// `(anchored, smoothed)` of a selector parsed by [`parse_with_modifiers`].
pub fn range_modifiers(vs: &promql_parser::parser::VectorSelector) -> (bool, bool) {
    match ext::mode(vs) {
        Some(ext::Mode::Anchored) => (true, false),
        Some(ext::Mode::Smoothed) => (false, true),
        None => (false, false),
    }
}

/// Whether a matcher of a selector parsed by [`parse_with_modifiers`] is a marker our
/// rewrites added (a range modifier, an `info()` selector) rather than one the query wrote.
pub fn is_modifier_marker(m: &promql_parser::label::Matcher) -> bool {
    m.name == ext::MARKER || m.name == info::SELECTOR_MARKER
}

/// A cheap guard against stack exhaustion by hostile nesting, before the parser recurses.
fn depth_exceeds(q: &str, max: usize) -> bool {
    let mut d = 0usize;
    for c in q.bytes() {
        match c {
            b'(' | b'[' | b'{' => {
                d += 1;
                if d > max {
                    return true;
                }
            }
            b')' | b']' | b'}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    false
}

impl Engine {
    /// An engine with `opts`.
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// An instant query at `time_ms`. `cancel` aborts the query when set.
    pub fn instant_query(
        &self,
        querier: &dyn Querier,
        query: &str,
        time_ms: i64,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult, Error> {
        let (expr, marks, ext) = parse_marked(query, 0, 0)?;
        self.run(
            querier, query, &expr, &marks, ext, time_ms, time_ms, 1, cancel, true,
        )
    }

    /// A range query over `[start_ms, end_ms]` every `step_ms`.
    pub fn range_query(
        &self,
        querier: &dyn Querier,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        cancel: Option<&AtomicBool>,
    ) -> Result<QueryResult, Error> {
        if step_ms <= 0 {
            return Err(Error::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(Error::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end_ms - start_ms) / step_ms > MAX_RANGE_STEPS {
            return Err(Error::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        let (expr, marks, ext) = parse_marked(query, step_ms, end_ms - start_ms)?;
        match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            t => {
                return Err(Error::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                match t {
                    ValueType::Matrix => "range vector",
                    ValueType::String => "string",
                    _ => "unknown",
                }
            )))
            }
        }
        self.run(
            querier, query, &expr, &marks, ext, start_ms, end_ms, step_ms, cancel, false,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        querier: &dyn Querier,
        query: &str,
        expr: &Expr,
        marks: &[Option<bool>],
        ext: bool,
        start: i64,
        end: i64,
        step: i64,
        cancel: Option<&AtomicBool>,
        instant: bool,
    ) -> Result<QueryResult, Error> {
        let (start, end) = (eval::clamp_time(start), eval::clamp_time(end));
        let step = step.clamp(1, eval::TIME_LIMIT);
        let mut ev = Ev {
            querier,
            lookback: eval::duration_ms(&self.opts.lookback_delta).max(1),
            max_samples: self.opts.max_samples,
            samples: 0,
            deadline: Instant::now().checked_add(self.opts.timeout),
            cancel,
            query_start: start,
            query_end: end,
            query_step: if instant { 0 } else { step },
            subquery_step: eval::duration_ms(&self.opts.default_subquery_step).max(1),
            stats_mode: false,
            trims: if marks.is_empty() {
                Default::default()
            } else {
                trim::trims_of(expr, marks)
            },
            annos: Annos::default(),
            ext,
            query,
            non_utf8: literals::non_utf8_literals(query),
        };
        let r = Range { start, end, step };
        let val = ev.eval(expr, r)?;
        let value = match val {
            Val::Scalar(s) => {
                if instant {
                    Value::Scalar {
                        t: start,
                        v: s.first().copied().unwrap_or(f64::NAN),
                    }
                } else {
                    Value::Matrix(vec![Series {
                        metric: tsdb::Labels::empty(),
                        points: s
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (r.ts(i), v))
                            .collect(),
                        histograms: Vec::new(),
                    }])
                }
            }
            Val::Str(s) => Value::String { t: start, v: s },
            Val::Vector(v) => {
                let v = finish(v)?;
                if instant {
                    Value::Vector(
                        v.into_iter()
                            .filter_map(|s| {
                                if let Some((_, h)) = s.hs.first() {
                                    return Some(Sample {
                                        metric: s.metric,
                                        t: start,
                                        v: 0.0,
                                        h: Some(h.clone()),
                                    });
                                }
                                let p = s.pts.first()?;
                                Some(Sample {
                                    metric: s.metric,
                                    t: start,
                                    v: p.1,
                                    h: None,
                                })
                            })
                            .collect(),
                    )
                } else {
                    let mut m: Vec<Series> = v
                        .into_iter()
                        .map(|s| Series {
                            metric: s.metric,
                            points: s.pts,
                            histograms: s.hs,
                        })
                        .collect();
                    m.sort_by(|a, b| a.metric.cmp(&b.metric));
                    Value::Matrix(m)
                }
            }
            Val::Matrix(m) => {
                let m = finish(m)?;
                let mut m: Vec<Series> = m
                    .into_iter()
                    .map(|s| Series {
                        metric: s.metric,
                        points: s.pts,
                        histograms: s.hs,
                    })
                    .collect();
                m.sort_by(|a, b| a.metric.cmp(&b.metric));
                Value::Matrix(m)
            }
        };
        Ok(QueryResult {
            value,
            warnings: ev.annos.warnings,
            infos: ev.annos.infos,
        })
    }
}
