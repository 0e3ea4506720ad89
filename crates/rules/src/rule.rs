//! What recording and alerting rules share: how an expression is queried for a rule
//! (Prometheus's `EngineQueryFunc`), the errors an evaluation ends in (Prometheus's
//! wording, since users search for them), per-rule health as `/api/v1/rules` reports it,
//! and label rewriting.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use model::labels::{LabelError, Labels, MAX_LABEL_BYTES};
use tsdb::Querier;

use crate::alerting::AlertingRule;
use crate::notifier::AlertSender;
use crate::recording::RecordingRule;

/// What an evaluation reads and where its alerts go.
#[derive(Clone, Copy)]
pub struct EvalContext<'a> {
    /// The PromQL engine.
    pub engine: &'a promql::Engine,
    /// The storage queries read; it must see what earlier rules of the group wrote.
    pub querier: &'a dyn Querier,
    /// Prometheus's `global.external_labels`: `$externalLabels` in templates, and added to
    /// alerts sent (unless an alert has the label already).
    pub external_labels: &'a Labels,
    /// Prometheus's `--web.external-url`: `$externalURL` in templates, and the base of
    /// alerts' generator links.
    pub external_url: &'a str,
    /// Where alerts go; `None` sends nothing (as `promtool test rules`).
    pub sender: Option<&'a dyn AlertSender>,
    /// How often a still-firing alert is sent again (Prometheus's
    /// `--rules.alert.resend-delay`, 1m by default).
    pub resend_delay: Duration,
    /// Aborts running queries when set (shutdown).
    pub cancel: Option<&'a AtomicBool>,
}

impl std::fmt::Debug for EvalContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalContext")
            .field("external_labels", self.external_labels)
            .field("external_url", &self.external_url)
            .field("resend_delay", &self.resend_delay)
            .finish_non_exhaustive()
    }
}

/// Why a rule's evaluation failed: its `lastError`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The query failed.
    #[error("{0}")]
    Query(#[from] promql::Error),
    /// The expression gave a string or a range vector.
    #[error("rule result is not a vector or scalar")]
    NotVector,
    /// Two output series of a recording rule have the same labels.
    #[error("vector contains metrics with the same labelset after applying rule labels")]
    DuplicateSeries,
    /// Two alerts of an alerting rule have the same labels.
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateAlerts,
    /// A recording rule produced more series than its group's `limit`.
    #[error("exceeded limit of {limit} with {got} series")]
    SeriesLimit { limit: usize, got: usize },
    /// An alerting rule has more pending and firing alerts than its group's `limit`.
    #[error("exceeded limit of {limit} with {got} alerts")]
    AlertLimit { limit: usize, got: usize },
    /// An output label set was refused (a label value past the size bound).
    #[error("{0}")]
    Label(#[from] LabelError),
    /// Storing the output failed, or the storage refused samples.
    #[error("{0}")]
    Write(String),
}

/// A rule's health, as `/api/v1/rules` spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    #[default]
    Unknown,
    /// The last evaluation succeeded.
    Good,
    /// The last evaluation failed.
    Bad,
}

impl Health {
    /// `"unknown"`, `"ok"` or `"err"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Good => "ok",
            Health::Bad => "err",
        }
    }
}

/// The outcome of a rule's last evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleHealth {
    /// Health of the last evaluation.
    pub health: Health,
    /// Its error, when it failed.
    pub last_error: Option<String>,
    /// When it started (wall clock).
    pub last_evaluation: Option<SystemTime>,
    /// How long it took.
    pub evaluation_time: Duration,
}

/// A recording or an alerting rule.
#[derive(Clone, Debug)]
pub enum Rule {
    /// Records its expression as a new series.
    Recording(RecordingRule),
    /// Raises alerts while its expression returns anything.
    Alerting(AlertingRule),
}

impl Rule {
    /// The recorded metric's or the alert's name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => r.name(),
            Rule::Alerting(r) => r.name(),
        }
    }

    /// The expression as written in the rule file.
    pub fn expr(&self) -> &str {
        match self {
            Rule::Recording(r) => r.expr(),
            Rule::Alerting(r) => r.expr(),
        }
    }

    /// The expression as Prometheus prints it (`/api/v1/rules`' `query`).
    pub fn query(&self) -> &str {
        match self {
            Rule::Recording(r) => r.query(),
            Rule::Alerting(r) => r.query(),
        }
    }

    /// The rule's labels (the group's labels included), sorted by name; an empty value
    /// removes the label from the output.
    pub fn labels(&self) -> &[(String, String)] {
        match self {
            Rule::Recording(r) => r.labels(),
            Rule::Alerting(r) => r.labels(),
        }
    }

    /// The outcome of the last evaluation.
    pub fn health(&self) -> &RuleHealth {
        match self {
            Rule::Recording(r) => &r.health,
            Rule::Alerting(r) => &r.health,
        }
    }

    pub(crate) fn health_mut(&mut self) -> &mut RuleHealth {
        match self {
            Rule::Recording(r) => &mut r.health,
            Rule::Alerting(r) => &mut r.health,
        }
    }
}

/// Prometheus's `EngineQueryFunc`: an instant query at `ts_ms` whose scalar result becomes a
/// one-sample vector with no labels, and whose string or matrix result is an error.
pub(crate) fn query_vector(
    ctx: &EvalContext<'_>,
    expr: &str,
    ts_ms: i64,
) -> Result<Vec<promql::Sample>, EvalError> {
    let res = ctx
        .engine
        .instant_query(ctx.querier, expr, ts_ms, ctx.cancel)?;
    match res.value {
        promql::Value::Vector(v) => Ok(v),
        promql::Value::Scalar { t, v } => Ok(vec![promql::Sample {
            metric: Labels::empty(),
            t,
            v,
            h: None,
        }]),
        promql::Value::String { .. } | promql::Value::Matrix(_) => Err(EvalError::NotVector),
    }
}

/// The label set `base` with `overrides` applied in order, as Prometheus's label builder
/// does: each pair sets its label, an empty value deletes it; `drop` names labels deleted
/// first. Values are checked against the size bound (template output can be anything).
pub(crate) fn relabel(
    base: &Labels,
    drop: &[&str],
    overrides: &[(&str, &str)],
) -> Result<Labels, LabelError> {
    let mut pairs: Vec<(&str, &str)> = base
        .iter()
        .filter(|l| !drop.contains(&l.name))
        .map(|l| (l.name, l.value))
        .collect();
    for &(name, value) in overrides {
        if value.len() > MAX_LABEL_BYTES {
            return Err(LabelError::LabelTooLong {
                name: name.to_string(),
                max: MAX_LABEL_BYTES,
            });
        }
        match pairs.iter().position(|p| p.0 == name) {
            Some(i) => pairs[i].1 = value,
            None => pairs.push((name, value)),
        }
    }
    Labels::new(pairs)
}

/// Labels sorted by name from rule-file pairs, empty values dropped (how `/api/v1/rules`
/// shows a rule's labels).
pub(crate) fn labels_of(pairs: &[(String, String)]) -> Labels {
    // Names were validated when the rule file loaded.
    Labels::new(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap_or_default()
}

/// Prometheus's `String()` of a rule's expression, or the text as written when it does not
/// parse (rule files are validated, so only hand-built rules get here).
pub(crate) fn printed(expr: &str) -> String {
    promql::print_query(expr).unwrap_or_else(|_| expr.to_string())
}

/// Checks that no two label sets are equal (Prometheus's `ContainsSameLabelset`).
pub(crate) fn has_duplicates<'a>(sets: impl Iterator<Item = &'a Labels>) -> bool {
    let mut v: Vec<&Labels> = sets.collect();
    v.sort_unstable();
    v.windows(2).any(|w| w[0] == w[1])
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
