//! Rule groups (Prometheus's `rules/group.go`): rules evaluated in order at one timestamp,
//! each rule's output written (and visible to the next rule) before the next runs.
//!
//! A [`Group`] is plain state with no clock or timer of its own: the caller decides when to
//! evaluate ([`Group::eval`] at a timestamp, slotted by [`Group::eval_timestamp`]), so the
//! server can drive it from a ticker and `lookout test rules` from a simulated clock. Beyond
//! evaluation it keeps what Prometheus's group keeps across evaluations:
//! - the series each rule wrote last time, so a series that stops being produced gets a
//!   staleness marker at the next evaluation (`seriesInPreviousEval`);
//! - on reload, the alerts and series of the rules that stay ([`Group::copy_state_from`]),
//!   and the series of rules that went, marked stale after the next evaluation;
//! - after a restart, the `for` state of alerts read back from `ALERTS_FOR_STATE`
//!   ([`Group::restore_for_state`]).

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use model::labels::Labels;
use tsdb::{Querier, SampleValue};

use crate::alerting::{for_state_matchers, Alert, AlertingRule, AlertingRuleSpec};
use crate::recording::RecordingRule;
use crate::rule::{ms, EvalContext, EvalError, Health, Rule, RuleHealth};
use crate::rulefmt::{GroupSpec, RuleFile, RuleKind};
use crate::writer::{RuleSample, RuleWriter};

/// Prometheus's default `--rules.alert.for-outage-tolerance`: alerts whose `for` state was
/// last written longer ago than this are not restored.
pub const DEFAULT_OUTAGE_TOLERANCE: Duration = Duration::from_secs(3600);

/// Prometheus's default `--rules.alert.for-grace-period`: a restored alert fires no sooner
/// than this after the restart.
pub const DEFAULT_FOR_GRACE_PERIOD: Duration = Duration::from_secs(600);

/// Prometheus's default `--rules.alert.resend-delay`.
pub const DEFAULT_RESEND_DELAY: Duration = Duration::from_secs(60);

/// Prometheus's default `global.evaluation_interval`.
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);

/// What a group takes from the global configuration when its file does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupDefaults {
    /// `global.evaluation_interval` (1m by default).
    pub interval: Duration,
    /// `global.rule_query_offset` (0 by default).
    pub query_offset: Duration,
}

impl Default for GroupDefaults {
    fn default() -> Self {
        GroupDefaults {
            interval: DEFAULT_EVALUATION_INTERVAL,
            query_offset: Duration::ZERO,
        }
    }
}

/// A group of rules evaluated together.
#[derive(Clone, Debug)]
pub struct Group {
    name: String,
    file: String,
    interval: Duration,
    query_offset: Duration,
    limit: usize,
    rules: Vec<Rule>,
    /// Per rule, the series it wrote at its last successful evaluation.
    series_in_previous_eval: Vec<HashSet<Labels>>,
    /// Series of rules no longer in the group, to mark stale at the next evaluation.
    stale_series: Vec<Labels>,
    last_evaluation: Option<SystemTime>,
    evaluation_time: Duration,
    last_eval_timestamp_ms: Option<i64>,
}

/// What one [`Group::eval`] did, for self-metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvalSummary {
    /// Samples the rules produced (Prometheus's `rule_group_last_evaluation_samples`).
    pub samples: usize,
    /// Rules whose evaluation failed.
    pub failed_rules: usize,
}

impl Group {
    /// A group from its rule-file entry. Group labels join every rule's labels (the rule's
    /// own win). With `should_restore`, alerting rules write no `ALERTS` until
    /// [`Group::restore_for_state`] ran (Prometheus restores groups loaded at start-up).
    pub fn new(
        file: &str,
        spec: &GroupSpec,
        defaults: &GroupDefaults,
        should_restore: bool,
    ) -> Group {
        let rules: Vec<Rule> = spec
            .rules
            .iter()
            .map(|r| {
                let labels = merge_labels(&spec.labels, &r.labels);
                match &r.kind {
                    RuleKind::Record(name) => {
                        Rule::Recording(RecordingRule::new(name, &r.expr, labels))
                    }
                    RuleKind::Alert(name) => Rule::Alerting(AlertingRule::new(
                        AlertingRuleSpec {
                            name: name.clone(),
                            expr: r.expr.clone(),
                            hold: r.hold,
                            keep_firing_for: r.keep_firing_for,
                            labels,
                            annotations: r.annotations.clone(),
                        },
                        !should_restore,
                    )),
                }
            })
            .collect();
        Group {
            name: spec.name.clone(),
            file: file.to_string(),
            interval: spec.interval.unwrap_or(defaults.interval),
            query_offset: spec.query_offset.unwrap_or(defaults.query_offset),
            limit: spec.limit,
            series_in_previous_eval: vec![HashSet::new(); rules.len()],
            rules,
            stale_series: Vec::new(),
            last_evaluation: None,
            evaluation_time: Duration::ZERO,
            last_eval_timestamp_ms: None,
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the group came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// How often the group runs.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How far before the evaluation time its queries look.
    pub fn query_offset(&self) -> Duration {
        self.query_offset
    }

    /// The group's `limit` (0 for none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The rules, in evaluation order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rules, for a caller that changes their state (tests, `set_restored`).
    pub fn rules_mut(&mut self) -> &mut [Rule] {
        &mut self.rules
    }

    /// When the last evaluation started (wall clock).
    pub fn last_evaluation(&self) -> Option<SystemTime> {
        self.last_evaluation
    }

    /// How long the last evaluation took.
    pub fn evaluation_time(&self) -> Duration {
        self.evaluation_time
    }

    /// The timestamp the last evaluation ran at (ms).
    pub fn last_eval_timestamp_ms(&self) -> Option<i64> {
        self.last_eval_timestamp_ms
    }

    /// The alerting rules, most advanced state first, then by name (the order of
    /// Prometheus's `AlertingRules`).
    pub fn alerting_rules(&self) -> Vec<&AlertingRule> {
        let mut v: Vec<&AlertingRule> = self
            .rules
            .iter()
            .filter_map(|r| match r {
                Rule::Alerting(a) => Some(a),
                Rule::Recording(_) => None,
            })
            .collect();
        v.sort_by(|a, b| b.state().cmp(&a.state()).then(a.name().cmp(b.name())));
        v
    }

    /// Whether another group has the same configuration (name, file, interval, limit,
    /// query offset and rules): a reload can then keep this one running unchanged.
    pub fn same_config(&self, other: &Group) -> bool {
        self.name == other.name
            && self.file == other.file
            && self.interval == other.interval
            && self.limit == other.limit
            && self.query_offset == other.query_offset
            && self.rules.len() == other.rules.len()
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| same_rule(a, b))
    }

    /// Prometheus's `EvalTimestamp`: the latest evaluation slot at or before `now_ms`. Slots
    /// are `interval` apart and offset per group by Prometheus's hash of its file and name
    /// (`labels.Labels.Hash` of `{file, name}`: XXH64 over `file\xff<file>\xffname\xff<name>\xff`,
    /// in nanoseconds), so groups with one interval do not all run at the same instant and a
    /// group runs at the instants Prometheus would run it.
    pub fn eval_timestamp(&self, now_ms: i64) -> i64 {
        let interval_ns = i128::try_from(self.interval.as_nanos())
            .unwrap_or(i128::MAX)
            .max(1);
        let mut key = Vec::with_capacity(self.file.len() + self.name.len() + 12);
        for (n, v) in [("file", &self.file), ("name", &self.name)] {
            key.extend_from_slice(n.as_bytes());
            key.push(0xff);
            key.extend_from_slice(v.as_bytes());
            key.push(0xff);
        }
        let offset = i128::from(model::xxhash::xxhash64(&key)) % interval_ns;
        // The whole millisecond `now_ms` counts, so a slot's own millisecond maps to it.
        let adjusted = i128::from(now_ms) * 1_000_000 + 999_999 - offset;
        let slot_ns = adjusted - adjusted.rem_euclid(interval_ns) + offset;
        // Prometheus turns the slot into milliseconds by truncation.
        i64::try_from(slot_ns.div_euclid(1_000_000)).unwrap_or(i64::MAX)
    }

    /// One evaluation at `ts_ms`: every rule in order, each rule's samples (and staleness
    /// markers for the series it no longer produces) written through `writer` before the
    /// next rule runs, due alerts handed to `ctx.sender`. Then the series of rules removed
    /// by a reload are marked stale.
    pub fn eval(
        &mut self,
        ctx: &EvalContext<'_>,
        ts_ms: i64,
        writer: &mut dyn RuleWriter,
    ) -> EvalSummary {
        let started = Instant::now();
        let wall = SystemTime::now();
        let offset_ms = ms(self.query_offset);
        let stale_ts = ts_ms.saturating_sub(offset_ms);
        let mut summary = EvalSummary::default();
        for i in 0..self.rules.len() {
            let rule_started = Instant::now();
            let rule_wall = SystemTime::now();
            let result = match &mut self.rules[i] {
                Rule::Recording(r) => r.eval(ctx, ts_ms, offset_ms, self.limit),
                Rule::Alerting(r) => r.eval(ctx, ts_ms, offset_ms, self.limit),
            };
            let outcome = match result {
                Err(e) => {
                    if !matches!(e, EvalError::Query(promql::Error::Canceled)) {
                        tracing::warn!(group = %self.name, rule = %self.rules[i].name(), error = %e, "evaluating rule failed");
                    }
                    summary.failed_rules += 1;
                    Err(e.to_string())
                }
                Ok(samples) => {
                    summary.samples += samples.len();
                    if let (Rule::Alerting(r), Some(sender)) = (&mut self.rules[i], ctx.sender) {
                        let alerts = r.alerts_to_send(
                            ts_ms,
                            ctx.resend_delay,
                            self.interval,
                            ctx.external_labels,
                            ctx.external_url,
                        );
                        if !alerts.is_empty() {
                            sender.send(alerts);
                        }
                    }
                    self.write_rule_output(i, samples, stale_ts, writer)
                }
            };
            let h = self.rules[i].health_mut();
            *h = RuleHealth {
                health: if outcome.is_ok() {
                    Health::Good
                } else {
                    Health::Bad
                },
                last_error: outcome.err(),
                last_evaluation: Some(rule_wall),
                evaluation_time: rule_started.elapsed(),
            };
        }
        self.cleanup_stale_series(stale_ts, writer);
        self.evaluation_time = started.elapsed();
        self.last_evaluation = Some(wall);
        self.last_eval_timestamp_ms = Some(ts_ms);
        summary
    }

    /// Writes rule `i`'s samples and staleness markers for the series it wrote last time
    /// and not now. The rule's error is the storage's, if it refused anything.
    fn write_rule_output(
        &mut self,
        i: usize,
        samples: Vec<RuleSample>,
        stale_ts: i64,
        writer: &mut dyn RuleWriter,
    ) -> Result<(), String> {
        let mut error = None;
        let mut returned: HashSet<Labels> = HashSet::with_capacity(samples.len());
        let mut batch: Vec<RuleSample> = Vec::with_capacity(samples.len());
        for s in samples {
            if let SampleValue::Histogram(h) = &s.2 {
                // The storage needs valid histograms; Prometheus's appender refuses these too.
                if let Err(e) = h.validate() {
                    error = Some(e.to_string());
                    continue;
                }
            }
            returned.insert(s.0.clone());
            batch.push(s);
        }
        for prev in &self.series_in_previous_eval[i] {
            if !returned.contains(prev) {
                batch.push((
                    prev.clone(),
                    stale_ts,
                    SampleValue::Float(tsdb::stale_nan()),
                ));
            }
        }
        let refused = writer.append(batch)?;
        for r in refused {
            // A refused staleness marker is expected (another rule may write the series);
            // a refused sample is the rule's error, and its series was not written.
            if returned.remove(&r.labels) {
                error = Some(r.reason);
            }
        }
        self.series_in_previous_eval[i] = returned;
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Marks the series of rules removed by a reload stale.
    fn cleanup_stale_series(&mut self, stale_ts: i64, writer: &mut dyn RuleWriter) {
        if self.stale_series.is_empty() {
            return;
        }
        let batch = self
            .stale_series
            .iter()
            .map(|l| (l.clone(), stale_ts, SampleValue::Float(tsdb::stale_nan())))
            .collect();
        match writer.append(batch) {
            // Refusals are expected when another rule now writes the series.
            Ok(_) => self.stale_series.clear(),
            Err(e) => {
                tracing::warn!(group = %self.name, error = %e, "writing staleness markers for removed rules failed");
            }
        }
    }

    /// Prometheus's `CopyState`, for a reload that replaces `from` with this group: rules
    /// are matched by name and labels (duplicates in order), and a matched rule takes over
    /// the series it wrote and its alerts. The series of `from`'s rules that have no match
    /// are marked stale at this group's next evaluation.
    pub fn copy_state_from(&mut self, from: &Group) {
        self.evaluation_time = from.evaluation_time;
        self.last_evaluation = from.last_evaluation;
        let same = |a: &Rule, b: &Rule| a.name() == b.name() && a.labels() == b.labels();
        let mut matched = vec![false; from.rules.len()];
        for (i, rule) in self.rules.iter_mut().enumerate() {
            let Some(fi) =
                (0..from.rules.len()).find(|&fi| !matched[fi] && same(rule, &from.rules[fi]))
            else {
                continue;
            };
            matched[fi] = true;
            self.series_in_previous_eval[i] = from.series_in_previous_eval[fi].clone();
            if let (Rule::Alerting(to), Rule::Alerting(old)) = (rule, &from.rules[fi]) {
                to.copy_alerts_from(old);
            }
        }
        self.stale_series = from.stale_series.clone();
        for (fi, m) in matched.iter().enumerate() {
            if !m {
                self.stale_series
                    .extend(from.series_in_previous_eval[fi].iter().cloned());
            }
        }
    }

    /// Every series the group's rules wrote at their last evaluation: what a group that is
    /// removed must mark stale (see [`write_stale_markers`]).
    pub fn written_series(&self) -> Vec<Labels> {
        let mut v: Vec<Labels> = self
            .series_in_previous_eval
            .iter()
            .flatten()
            .cloned()
            .chain(self.stale_series.iter().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Prometheus's `RestoreForState`, run once after a restart (Prometheus runs it after
    /// the group's second evaluation, so recording rules the alerts read have caught up):
    /// each pending or firing alert whose `ALERTS_FOR_STATE` series was written within
    /// `outage_tolerance` before `ts_ms` gets its activation time back, shifted by the
    /// outage so the time it was down does not count towards `for`, and never firing
    /// sooner than `grace_period` after `ts_ms`. Rules whose `for` is shorter than the grace
    /// period are not restored. Afterwards every alerting rule writes `ALERTS` again.
    pub fn restore_for_state(
        &mut self,
        querier: &dyn Querier,
        ts_ms: i64,
        outage_tolerance: Duration,
        grace_period: Duration,
    ) {
        let mint = ts_ms.saturating_sub(ms(outage_tolerance));
        let grace = ms(grace_period);
        for rule in &mut self.rules {
            let Rule::Alerting(rule) = rule else {
                continue;
            };
            let hold = ms(rule.hold());
            if hold < grace {
                rule.set_restored(true);
                continue;
            }
            let sset = match querier.select(&for_state_matchers(rule), mint, ts_ms) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(alert = %rule.name(), error = %e, "failed to restore 'for' state");
                    rule.set_restored(true);
                    continue;
                }
            };
            let mut by_labels: std::collections::HashMap<Labels, Option<(i64, f64)>> =
                std::collections::HashMap::new();
            for s in sset {
                let key = crate::rule::relabel(&s.labels, &[model::labels::METRIC_NAME], &[])
                    .unwrap_or_default();
                by_labels.insert(key, s.samples().last());
            }
            if by_labels.is_empty() {
                rule.set_restored(true);
                continue;
            }
            for a in rule.alerts_mut() {
                let Some(Some((t, v))) = by_labels.get(&a.labels).copied() else {
                    continue;
                };
                if tsdb::is_stale_nan(v) || !v.is_finite() {
                    continue;
                }
                restore_alert(a, t, v, ts_ms, hold, grace);
            }
            rule.set_restored(true);
        }
    }
}

/// Restores one alert's activation time from its last `ALERTS_FOR_STATE` sample `(t, v)`.
/// Prometheus works in whole seconds here: the sample's time and value are truncated.
fn restore_alert(a: &mut Alert, t: i64, v: f64, ts_ms: i64, hold: i64, grace: i64) {
    let down_at = t.div_euclid(1000) * 1000;
    let mut restored_active_at = (v as i64).saturating_mul(1000);
    let spent_pending = down_at - restored_active_at;
    let remaining = hold - spent_pending;
    if remaining <= 0 {
        // It was firing when the server went down; the next evaluation decides again.
    } else if remaining < grace {
        // Fire exactly one grace period after the restart.
        restored_active_at = ts_ms + grace - hold;
    } else {
        // The time down does not count towards `for`.
        restored_active_at += ts_ms - down_at;
    }
    a.active_at_ms = restored_active_at;
}

/// The groups of a parsed rule file, in file order.
pub fn groups_of_file(
    file: &str,
    rules: &RuleFile,
    defaults: &GroupDefaults,
    should_restore: bool,
) -> Vec<Group> {
    rules
        .groups
        .iter()
        .map(|g| Group::new(file, g, defaults, should_restore))
        .collect()
}

/// The outcome of [`reload`].
#[derive(Debug, Default)]
pub struct Reloaded {
    /// The groups to run from now on, in the new configuration's order.
    pub groups: Vec<Group>,
    /// Old groups no longer configured: the caller marks their series stale (Prometheus
    /// waits two of their intervals, so a rule moved to another group writes first; see
    /// [`Group::written_series`] and [`write_stale_markers`]).
    pub removed: Vec<Group>,
}

/// Prometheus's `Manager.Update` without its timers: a new group identical to an old one of
/// the same file and name keeps the old one (and its state) running; a changed one takes
/// over the old one's state ([`Group::copy_state_from`]); old groups matched by none are
/// returned as removed.
pub fn reload(old: Vec<Group>, new: Vec<Group>) -> Reloaded {
    let mut old: Vec<Option<Group>> = old.into_iter().map(Some).collect();
    let mut groups = Vec::with_capacity(new.len());
    for mut g in new {
        let found = old.iter().position(|o| {
            o.as_ref()
                .is_some_and(|o| o.name == g.name && o.file == g.file)
        });
        match found.and_then(|i| old[i].take()) {
            Some(o) if o.same_config(&g) => groups.push(o),
            Some(o) => {
                g.copy_state_from(&o);
                groups.push(g);
            }
            None => groups.push(g),
        }
    }
    Reloaded {
        groups,
        removed: old.into_iter().flatten().collect(),
    }
}

/// Writes a staleness marker at `ts_ms` for each of `series` (a removed group's, see
/// [`Group::written_series`]). Refusals are ignored: another rule may write the series now.
pub fn write_stale_markers(
    writer: &mut dyn RuleWriter,
    series: Vec<Labels>,
    ts_ms: i64,
) -> Result<(), String> {
    let batch = series
        .into_iter()
        .map(|l| (l, ts_ms, SampleValue::Float(tsdb::stale_nan())))
        .collect();
    writer.append(batch).map(|_| ())
}

/// Prometheus's `mergeLabels`: group labels, then the rule's over them, sorted by name.
fn merge_labels(group: &[(String, String)], rule: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = group
        .iter()
        .filter(|(n, _)| !rule.iter().any(|(r, _)| r == n))
        .cloned()
        .collect();
    out.extend(rule.iter().cloned());
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn same_rule(a: &Rule, b: &Rule) -> bool {
    match (a, b) {
        (Rule::Recording(a), Rule::Recording(b)) => {
            a.name() == b.name() && a.expr() == b.expr() && a.labels() == b.labels()
        }
        (Rule::Alerting(a), Rule::Alerting(b)) => {
            a.name() == b.name()
                && a.expr() == b.expr()
                && a.hold() == b.hold()
                && a.keep_firing_for() == b.keep_firing_for()
                && a.labels() == b.labels()
                && a.annotations() == b.annotations()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
