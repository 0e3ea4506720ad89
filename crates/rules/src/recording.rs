//! Recording rules (Prometheus's `rules/recording.go`): the expression's result, renamed to
//! the rule's `record` name and given the rule's labels, becomes new series at the
//! evaluation time.

use model::labels::METRIC_NAME;
use tsdb::SampleValue;

use crate::rule::{has_duplicates, printed, query_vector, relabel, EvalContext, EvalError};
use crate::rule::{labels_of, RuleHealth};
use crate::writer::RuleSample;

/// A rule that records its expression's result under a new name.
#[derive(Clone, Debug)]
pub struct RecordingRule {
    name: String,
    expr: String,
    query: String,
    labels: Vec<(String, String)>,
    pub(crate) health: RuleHealth,
}

impl RecordingRule {
    /// A rule recording `expr` as `name` with `labels` (sorted by name; an empty value
    /// removes the label).
    pub fn new(name: &str, expr: &str, labels: Vec<(String, String)>) -> RecordingRule {
        RecordingRule {
            name: name.to_string(),
            expr: expr.to_string(),
            query: printed(expr),
            labels,
            health: RuleHealth::default(),
        }
    }

    /// The recorded metric name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The expression as Prometheus prints it.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The rule's labels, sorted by name.
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The rule's labels as a set (empty values dropped), for display.
    pub fn label_set(&self) -> model::labels::Labels {
        labels_of(&self.labels)
    }

    /// The outcome of the last evaluation.
    pub fn health(&self) -> &RuleHealth {
        &self.health
    }

    /// Evaluates the rule at `ts_ms` (querying `offset_ms` earlier) and returns the samples
    /// to record. More than `limit` series (when not 0) is an error, as is an output that
    /// holds one label set twice.
    pub fn eval(
        &self,
        ctx: &EvalContext<'_>,
        ts_ms: i64,
        offset_ms: i64,
        limit: usize,
    ) -> Result<Vec<RuleSample>, EvalError> {
        let vector = query_vector(ctx, &self.expr, ts_ms.saturating_sub(offset_ms))?;
        let mut overrides: Vec<(&str, &str)> = Vec::with_capacity(self.labels.len() + 1);
        overrides.push((METRIC_NAME, &self.name));
        overrides.extend(self.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let mut out = Vec::with_capacity(vector.len());
        for s in vector {
            let labels = relabel(&s.metric, &[], &overrides)?;
            let value = match s.h {
                Some(h) => SampleValue::Histogram(h),
                None => SampleValue::Float(s.v),
            };
            out.push((labels, s.t, value));
        }
        if has_duplicates(out.iter().map(|s| &s.0)) {
            return Err(EvalError::DuplicateSeries);
        }
        if limit > 0 && out.len() > limit {
            return Err(EvalError::SeriesLimit {
                limit,
                got: out.len(),
            });
        }
        Ok(out)
    }
}
