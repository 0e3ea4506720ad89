//! Alerting rules (Prometheus's `rules/alerting.go`): every series the expression returns is
//! an alert, identified by its labels (without `__name__`, with the rule's expanded labels and
//! `alertname`). An alert is pending until it has been active for the rule's `for`, then
//! firing; when it disappears a pending alert is dropped, a firing one keeps firing for
//! `keep_firing_for` and then resolves, and a resolved alert is kept (and sent as resolved)
//! for 15 minutes.
//!
//! Each evaluation writes `ALERTS{alertname, alertstate, ...}` = 1 and
//! `ALERTS_FOR_STATE{alertname, ...}` = the alert's activation time in seconds, which is
//! what [`crate::group::Group::restore_for_state`] reads back after a restart. Until that
//! restoration has run, a rule created with `restored = false` writes neither, as in
//! Prometheus.

use std::collections::HashMap;
use std::time::Duration;

use model::labels::{Labels, METRIC_NAME};
use tsdb::SampleValue;

use crate::expand::{self, AlertData, QuerySample};
use crate::notifier;
use crate::rule::{has_duplicates, labels_of, ms, printed, query_vector, relabel};
use crate::rule::{EvalContext, EvalError, RuleHealth};
use crate::writer::RuleSample;

/// `ALERTS`: one series per pending or firing alert.
pub const ALERTS_METRIC: &str = "ALERTS";
/// `ALERTS_FOR_STATE`: the activation time of each pending or firing alert.
pub const ALERTS_FOR_STATE_METRIC: &str = "ALERTS_FOR_STATE";
/// The label naming the alert.
pub const ALERT_NAME_LABEL: &str = "alertname";
/// The label holding an `ALERTS` series' state.
pub const ALERT_STATE_LABEL: &str = "alertstate";

/// How long a resolved alert is kept and sent as resolved.
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

/// The state of an alert, or of a rule (its most advanced alert's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertState {
    /// A rule not evaluated yet.
    Unknown,
    /// Neither pending nor firing (a resolved alert, or a rule without alerts).
    Inactive,
    /// Active for less than the rule's `for`.
    Pending,
    /// Active for at least the rule's `for`.
    Firing,
}

impl AlertState {
    /// `"unknown"`, `"inactive"`, `"pending"` or `"firing"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Unknown => "unknown",
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Pending, firing, or inactive once resolved.
    pub state: AlertState,
    /// The alert's identity: the series' labels without `__name__`, the rule's expanded
    /// labels and `alertname`.
    pub labels: Labels,
    /// Expanded annotations, sorted by name.
    pub annotations: Vec<(String, String)>,
    /// The expression's value at the last evaluation.
    pub value: f64,
    /// When the alert became active.
    pub active_at_ms: i64,
    /// When it started firing.
    pub fired_at_ms: Option<i64>,
    /// When it resolved.
    pub resolved_at_ms: Option<i64>,
    /// When it was last sent to Alertmanager.
    pub last_sent_at_ms: Option<i64>,
    /// Until when the last send keeps it alive in Alertmanager.
    pub valid_until_ms: Option<i64>,
    /// Since when it has been kept firing by `keep_firing_for` (its condition cleared).
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    /// Prometheus's `needsSending`: never while pending; at once after it resolved since
    /// the last send; otherwise once `resend_delay` passed since the last send.
    fn needs_sending(&self, ts_ms: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let last_sent = self.last_sent_at_ms;
        if let Some(resolved) = self.resolved_at_ms {
            if last_sent.is_none_or(|s| resolved > s) {
                return true;
            }
        }
        last_sent.is_none_or(|s| s.saturating_add(resend_delay_ms) < ts_ms)
    }
}

/// A rule that raises alerts while its expression returns anything.
#[derive(Clone, Debug)]
pub struct AlertingRule {
    name: String,
    expr: String,
    query: String,
    hold: Duration,
    keep_firing_for: Duration,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    /// Pending, firing and recently resolved alerts by label set.
    active: HashMap<Labels, Alert>,
    /// Whether `for` state has been restored (or needs none): only then are `ALERTS` and
    /// `ALERTS_FOR_STATE` written.
    restored: bool,
    pub(crate) health: RuleHealth,
}

/// The settings of an [`AlertingRule`].
#[derive(Clone, Debug, Default)]
pub struct AlertingRuleSpec {
    /// The alert's name (`alertname`).
    pub name: String,
    /// The expression.
    pub expr: String,
    /// `for`.
    pub hold: Duration,
    /// `keep_firing_for`.
    pub keep_firing_for: Duration,
    /// Label templates, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Annotation templates, sorted by name.
    pub annotations: Vec<(String, String)>,
}

impl AlertingRule {
    /// A rule with no alerts yet. `restored` says whether it may write `ALERTS` at once
    /// (`false` at start-up until [`crate::group::Group::restore_for_state`] ran).
    pub fn new(spec: AlertingRuleSpec, restored: bool) -> AlertingRule {
        AlertingRule {
            query: printed(&spec.expr),
            name: spec.name,
            expr: spec.expr,
            hold: spec.hold,
            keep_firing_for: spec.keep_firing_for,
            labels: spec.labels,
            annotations: spec.annotations,
            active: HashMap::new(),
            restored,
            health: RuleHealth::default(),
        }
    }

    /// The alert's name.
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

    /// `for`.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// `keep_firing_for`.
    pub fn keep_firing_for(&self) -> Duration {
        self.keep_firing_for
    }

    /// The label templates, sorted by name.
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The rule's labels as a set (empty values dropped), for display.
    pub fn label_set(&self) -> Labels {
        labels_of(&self.labels)
    }

    /// The annotation templates, sorted by name.
    pub fn annotations(&self) -> &[(String, String)] {
        &self.annotations
    }

    /// The outcome of the last evaluation.
    pub fn health(&self) -> &RuleHealth {
        &self.health
    }

    /// Whether `ALERTS` series are written (the `for` state was restored or needs none).
    pub fn restored(&self) -> bool {
        self.restored
    }

    /// Marks the `for` state restored (or not needed).
    pub fn set_restored(&mut self, restored: bool) {
        self.restored = restored;
    }

    /// The rule's state: its most advanced alert's, `Unknown` before the first evaluation.
    pub fn state(&self) -> AlertState {
        if self.health.last_evaluation.is_none() {
            return AlertState::Unknown;
        }
        self.active
            .values()
            .map(|a| a.state)
            .max()
            .unwrap_or(AlertState::Inactive)
            .max(AlertState::Inactive)
    }

    /// Pending and firing alerts (not the resolved ones kept for resending), sorted by
    /// labels: `/api/v1/alerts` and `promtool test rules`' view.
    pub fn active_alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self
            .active
            .values()
            .filter(|a| a.resolved_at_ms.is_none())
            .collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// Every alert held, resolved ones included, sorted by labels.
    pub fn all_alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.active.values().collect();
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    pub(crate) fn alerts_mut(&mut self) -> impl Iterator<Item = &mut Alert> {
        self.active.values_mut()
    }

    /// Takes over another rule's alerts (a reload keeping this rule).
    pub(crate) fn copy_alerts_from(&mut self, from: &AlertingRule) {
        for (k, a) in &from.active {
            self.active.insert(k.clone(), a.clone());
        }
    }

    /// Evaluates the rule at `ts_ms` (querying `offset_ms` earlier): updates the alerts and
    /// returns the `ALERTS` and `ALERTS_FOR_STATE` samples to write. More than `limit`
    /// pending and firing alerts (when not 0) is an error that drops every alert, as in
    /// Prometheus.
    pub fn eval(
        &mut self,
        ctx: &EvalContext<'_>,
        ts_ms: i64,
        offset_ms: i64,
        limit: usize,
    ) -> Result<Vec<RuleSample>, EvalError> {
        let query_ts = ts_ms.saturating_sub(offset_ms);
        let vector = query_vector(ctx, &self.expr, query_ts)?;

        // The templates' `query` runs at the evaluation time itself, as in Prometheus.
        let template_query = |q: &str| -> Result<Vec<QuerySample>, String> {
            let v = query_vector(ctx, q, ts_ms).map_err(|e| e.to_string())?;
            Ok(v.into_iter()
                .map(|s| QuerySample {
                    labels: s.metric,
                    value: s.v,
                })
                .collect())
        };
        let mut fresh: Vec<Alert> = Vec::with_capacity(vector.len());
        for s in vector {
            let data = AlertData {
                labels: &s.metric,
                external_labels: ctx.external_labels,
                external_url: ctx.external_url,
                value: s.v,
            };
            let expand = |text: &str| -> String {
                expand::expand_alert(&self.name, text, &data, ts_ms, &template_query)
                    .unwrap_or_else(|e| {
                        tracing::warn!(alert = %self.name, error = %e, "expanding alert template failed");
                        format!("<error expanding template: {e}>")
                    })
            };
            let expanded: Vec<(&str, String)> = self
                .labels
                .iter()
                .map(|(n, v)| (n.as_str(), expand(v)))
                .collect();
            let mut overrides: Vec<(&str, &str)> =
                expanded.iter().map(|(n, v)| (*n, v.as_str())).collect();
            overrides.push((ALERT_NAME_LABEL, &self.name));
            let labels = relabel(&s.metric, &[METRIC_NAME], &overrides)?;
            let annotations = self
                .annotations
                .iter()
                .map(|(n, v)| (n.clone(), expand(v)))
                .collect();
            fresh.push(Alert {
                state: AlertState::Pending,
                labels,
                annotations,
                value: s.v,
                active_at_ms: ts_ms,
                fired_at_ms: None,
                resolved_at_ms: None,
                last_sent_at_ms: None,
                valid_until_ms: None,
                keep_firing_since_ms: None,
            });
        }
        if has_duplicates(fresh.iter().map(|a| &a.labels)) {
            return Err(EvalError::DuplicateAlerts);
        }

        let mut returned = std::collections::HashSet::with_capacity(fresh.len());
        for a in fresh {
            returned.insert(a.labels.clone());
            match self.active.get_mut(&a.labels) {
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(a.labels.clone(), a);
                }
            }
        }

        let hold = ms(self.hold);
        let keep_firing_for = ms(self.keep_firing_for);
        let retention = ms(RESOLVED_RETENTION);
        let mut active_or_pending = 0usize;
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (key, a) in self.active.iter_mut() {
            if !returned.contains(key) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_firing_for > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(ts_ms);
                    keep_firing = ts_ms - since < keep_firing_for;
                }
                // A pending alert that vanished is forgotten; a resolved one is kept for
                // the retention so Alertmanager keeps hearing that it resolved.
                if a.state == AlertState::Pending
                    || a.resolved_at_ms.is_some_and(|r| ts_ms - r > retention)
                {
                    gone.push(key.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at_ms = Some(ts_ms);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since_ms = None;
            }
            active_or_pending += 1;
            if a.state == AlertState::Pending && ts_ms - a.active_at_ms >= hold {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts_ms);
            }
            if self.restored {
                out.push(self_sample(&self.labels, &self.name, a, query_ts));
                out.push(for_state_sample(&self.labels, &self.name, a, query_ts));
            }
        }
        for k in gone {
            self.active.remove(&k);
        }
        if limit > 0 && active_or_pending > limit {
            self.active.clear();
            return Err(EvalError::AlertLimit {
                limit,
                got: active_or_pending,
            });
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Prometheus's `sendAlerts`: the alerts due for sending at `ts_ms` (not pending ones;
    /// resolved ones once, right after they resolve, and then with the firing ones every
    /// `resend_delay`), as Alertmanager receives them. A firing alert stays valid for four
    /// times the larger of `resend_delay` and the group's `interval`, so two missed
    /// evaluations or sends do not resolve it. External labels are added where the alert
    /// lacks them; the generator link is `external_url` + `/graph?g0.expr=...&g0.tab=1`.
    pub fn alerts_to_send(
        &mut self,
        ts_ms: i64,
        resend_delay: Duration,
        interval: Duration,
        external_labels: &Labels,
        external_url: &str,
    ) -> Vec<notifier::Alert> {
        let resend = ms(resend_delay);
        let valid_for = 4 * ms(interval.max(resend_delay));
        let mut generator_url = format!("{external_url}/graph?g0.expr=");
        model::gofmt::query_escape(&self.query, &mut generator_url);
        generator_url.push_str("&g0.tab=1");
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if !a.needs_sending(ts_ms, resend) {
                continue;
            }
            a.last_sent_at_ms = Some(ts_ms);
            let valid_until = ts_ms.saturating_add(valid_for);
            a.valid_until_ms = Some(valid_until);
            let extra: Vec<(&str, &str)> = external_labels
                .iter()
                .filter(|l| a.labels.get(l.name).is_none())
                .map(|l| (l.name, l.value))
                .collect();
            let labels = if extra.is_empty() {
                a.labels.clone()
            } else {
                relabel(&a.labels, &[], &extra).unwrap_or_else(|_| a.labels.clone())
            };
            out.push(notifier::Alert {
                labels,
                annotations: a.annotations.clone(),
                starts_at_ms: a.fired_at_ms.unwrap_or(a.active_at_ms),
                ends_at_ms: a.resolved_at_ms.unwrap_or(valid_until),
                generator_url: generator_url.clone(),
            });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

/// The labels `ALERTS` and `ALERTS_FOR_STATE` share: the rule's labels as written, then the
/// alert's (expanded) labels over them, then `alertname`.
fn series_labels(
    rule_labels: &[(String, String)],
    name: &str,
    metric: &str,
    a: &Alert,
    state: Option<AlertState>,
) -> Labels {
    let mut overrides: Vec<(&str, &str)> = rule_labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    overrides.extend(a.labels.iter().map(|l| (l.name, l.value)));
    overrides.push((METRIC_NAME, metric));
    overrides.push((ALERT_NAME_LABEL, name));
    if let Some(s) = state {
        overrides.push((ALERT_STATE_LABEL, s.as_str()));
    }
    // Every name is valid and every value was bounded when the alert was built.
    relabel(&Labels::empty(), &[], &overrides).unwrap_or_default()
}

fn self_sample(rule_labels: &[(String, String)], name: &str, a: &Alert, t: i64) -> RuleSample {
    (
        series_labels(rule_labels, name, ALERTS_METRIC, a, Some(a.state)),
        t,
        SampleValue::Float(1.0),
    )
}

fn for_state_sample(rule_labels: &[(String, String)], name: &str, a: &Alert, t: i64) -> RuleSample {
    (
        series_labels(rule_labels, name, ALERTS_FOR_STATE_METRIC, a, None),
        t,
        // Whole seconds, as Prometheus's `ActiveAt.Unix()`.
        SampleValue::Float(a.active_at_ms.div_euclid(1000) as f64),
    )
}

/// The matchers selecting a rule's `ALERTS_FOR_STATE` series (Prometheus's
/// `QueryForStateSeries`: the rule's labels as written, the metric name, `alertname`).
pub(crate) fn for_state_matchers(rule: &AlertingRule) -> Vec<tsdb::Matcher> {
    let mut m: Vec<tsdb::Matcher> = rule
        .labels
        .iter()
        .filter(|(n, _)| n != METRIC_NAME && n != ALERT_NAME_LABEL)
        .map(|(n, v)| tsdb::Matcher::equal(n.clone(), v.clone()))
        .collect();
    m.push(tsdb::Matcher::equal(METRIC_NAME, ALERTS_FOR_STATE_METRIC));
    m.push(tsdb::Matcher::equal(ALERT_NAME_LABEL, rule.name.clone()));
    m
}
