//! Rule evaluation against real storage: input loaded from Prometheus's series notation into
//! a tsdb in a temporary directory, rule output written back into it. The cases and their
//! expected values are Prometheus's (rules/alerting_test.go, recording_test.go,
//! manager_test.go).

use std::sync::Mutex;
use std::time::Duration;

use model::labels::Labels;
use tsdb::{MatchOp, Matcher, Querier, Tsdb, TsdbConfig};

use super::*;
use crate::alerting::AlertState;
use crate::notifier::{self, AlertSender};
use crate::rule::{EvalContext, Health, Rule};
use crate::writer::TsdbWriter;

/// A tsdb in a temporary directory with the runtime its appends run on.
struct Env {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    db: Tsdb,
    engine: promql::Engine,
    external: Labels,
}

impl Env {
    /// Storage holding the series of a promqltest `load <interval>` block.
    fn new(interval: &str, series: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let db = Tsdb::open(TsdbConfig::new(dir.path())).unwrap();
        let loaded = promql::promqltest::load(interval, series).unwrap();
        let all = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
        let mut samples = Vec::new();
        for s in loaded.select(&[all], i64::MIN, i64::MAX).unwrap() {
            for (t, v) in s.samples() {
                samples.push((s.labels.clone(), t, v));
            }
        }
        if !samples.is_empty() {
            let report = rt.block_on(db.append(samples)).unwrap();
            assert_eq!(report.rejected(), 0);
        }
        Env {
            _dir: dir,
            rt,
            db,
            engine: promql::Engine::default(),
            external: Labels::empty(),
        }
    }

    fn ctx<'a>(&'a self, sender: Option<&'a dyn AlertSender>) -> EvalContext<'a> {
        EvalContext {
            engine: &self.engine,
            querier: &self.db,
            external_labels: &self.external,
            external_url: "http://lookout:46686",
            sender,
            resend_delay: DEFAULT_RESEND_DELAY,
            cancel: None,
        }
    }

    fn eval(&self, g: &mut Group, t_ms: i64) -> EvalSummary {
        let mut w = TsdbWriter::new(&self.db, self.rt.handle().clone());
        g.eval(&self.ctx(None), t_ms, &mut w)
    }

    /// Every stored sample of the series named `name`: `labels -> [(t, value)]`, values
    /// as strings so staleness markers compare (`stale`).
    fn stored(&self, name: &str) -> Vec<(String, Vec<(i64, String)>)> {
        self.db
            .select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
            .unwrap()
            .map(|s| {
                let pts = s
                    .samples()
                    .map(|(t, v)| {
                        let v = if tsdb::is_stale_nan(v) {
                            "stale".to_string()
                        } else {
                            v.to_string()
                        };
                        (t, v)
                    })
                    .collect();
                (s.labels.to_string(), pts)
            })
            .collect()
    }
}

fn group(yaml: &str, should_restore: bool) -> Group {
    let f = crate::rulefmt::parse("rules.yml", yaml.as_bytes()).unwrap();
    Group::new(
        "rules.yml",
        &f.groups[0],
        &GroupDefaults::default(),
        should_restore,
    )
}

fn alerting(g: &Group, i: usize) -> &AlertingRule {
    match &g.rules()[i] {
        Rule::Alerting(a) => a,
        Rule::Recording(_) => panic!("rule {i} records"),
    }
}

const MIN: i64 = 60_000;

/// Prometheus's TestAlertingRule input.
const HTTP_REQUESTS: &str = r#"
    http_requests{job="app-server", instance="0", group="canary", severity="overwrite-me"} 75 85  95 105 105  95  85
    http_requests{job="app-server", instance="1", group="canary", severity="overwrite-me"} 80 90 100 110 120 130 140
"#;

const LOW_RATE_RULE: &str = r#"
groups:
- name: default
  rules:
  - alert: HTTPRequestRateLow
    expr: http_requests{group="canary", job="app-server"} < 100
    for: 1m
    labels:
      severity: '{{"c"}}ritical'
"#;

/// TestAlertingRule: which `ALERTS` series exist at each evaluation.
#[test]
fn alerts_go_pending_then_firing_then_away() {
    let env = Env::new("5m", HTTP_REQUESTS);
    let mut g = group(LOW_RATE_RULE, false);
    let alerts = |state: &str, instance: &str| {
        format!(
            r#"ALERTS{{alertname="HTTPRequestRateLow", alertstate="{state}", group="canary", instance="{instance}", job="app-server", severity="critical"}}"#
        )
    };
    let cases: [(i64, Vec<String>); 7] = [
        (0, vec![alerts("pending", "0"), alerts("pending", "1")]),
        (5, vec![alerts("firing", "0"), alerts("firing", "1")]),
        (10, vec![alerts("firing", "0")]),
        (15, vec![]),
        (20, vec![]),
        (25, vec![alerts("pending", "0")]),
        (30, vec![alerts("firing", "0")]),
    ];
    for (minute, want) in cases {
        let Rule::Alerting(rule) = &mut g.rules_mut()[0] else {
            unreachable!()
        };
        let out = rule.eval(&env.ctx(None), minute * MIN, 0, 0).unwrap();
        let got: Vec<String> = out
            .iter()
            .filter(|s| s.0.metric_name() == Some("ALERTS"))
            .inspect(|s| assert_eq!(s.1, minute * MIN))
            .map(|s| s.0.to_string())
            .collect();
        assert_eq!(got, want, "at {minute}m");
        for a in rule.active_alerts() {
            assert_eq!(a.labels.metric_name(), None, "no __name__ on alerts");
        }
    }
}

/// TestForStateAddSamples: `ALERTS_FOR_STATE` holds the activation time in seconds.
#[test]
fn for_state_series_hold_the_activation_time() {
    let env = Env::new("5m", HTTP_REQUESTS);
    let mut g = group(LOW_RATE_RULE, false);
    let cases: [(i64, Vec<(&str, f64)>); 7] = [
        (0, vec![("0", 0.0), ("1", 0.0)]),
        (5, vec![("0", 0.0), ("1", 0.0)]),
        (10, vec![("0", 0.0)]),
        (15, vec![]),
        (20, vec![]),
        (25, vec![("0", 1500.0)]),
        (30, vec![("0", 1500.0)]),
    ];
    for (minute, want) in cases {
        let Rule::Alerting(rule) = &mut g.rules_mut()[0] else {
            unreachable!()
        };
        let out = rule.eval(&env.ctx(None), minute * MIN, 0, 0).unwrap();
        let got: Vec<(String, f64)> = out
            .iter()
            .filter(|s| s.0.metric_name() == Some("ALERTS_FOR_STATE"))
            .map(|s| {
                let SampleValue::Float(v) = s.2 else {
                    panic!("float expected")
                };
                (s.0.to_string(), v)
            })
            .collect();
        let want: Vec<(String, f64)> = want
            .into_iter()
            .map(|(i, v)| {
                (format!(r#"ALERTS_FOR_STATE{{alertname="HTTPRequestRateLow", group="canary", instance="{i}", job="app-server", severity="critical"}}"#), v)
            })
            .collect();
        assert_eq!(got, want, "at {minute}m");
    }
}

/// TestStaleness: a recorded series whose input went stale gets a staleness marker.
#[test]
fn recorded_series_go_stale_with_their_input() {
    let env = Env::new("1s", "a 1 2 stale");
    let mut g = group(
        "groups:\n- name: default\n  rules:\n  - record: a_plus_one\n    expr: a + 1\n",
        true,
    );
    for t in [0, 1000, 2000] {
        env.eval(&mut g, t);
    }
    assert_eq!(
        env.stored("a_plus_one"),
        [(
            "a_plus_one{}".to_string(),
            vec![
                (0, "2".to_string()),
                (1000, "3".to_string()),
                (2000, "stale".to_string())
            ]
        )]
    );
    assert_eq!(g.rules()[0].health().health, Health::Good);
}

/// Prometheus commits each rule's samples before the next rule runs: a later rule reads an
/// earlier one's output at the same timestamp.
#[test]
fn later_rules_see_earlier_rules_output_at_the_same_time() {
    let env = Env::new("1m", "");
    let mut g = group(
        r#"
groups:
- name: chain
  labels:
    team: db
  rules:
  - record: job:x
    expr: vector(21)
  - record: job:y
    expr: job:x * 2
    labels:
      team: ""
      stage: two
"#,
        false,
    );
    let s = env.eval(&mut g, 60_000);
    assert_eq!(
        s,
        EvalSummary {
            samples: 2,
            failed_rules: 0
        }
    );
    assert_eq!(
        env.stored("job:x"),
        [(
            r#"job:x{team="db"}"#.to_string(),
            vec![(60_000, "21".to_string())]
        )]
    );
    // The rule's empty `team` removes the group's label.
    assert_eq!(
        env.stored("job:y"),
        [(
            r#"job:y{stage="two"}"#.to_string(),
            vec![(60_000, "42".to_string())]
        )]
    );
    let h = g.rules()[1].health();
    assert_eq!((h.health, h.last_error.as_deref()), (Health::Good, None));
    assert!(h.last_evaluation.is_some());
    assert!(g.last_evaluation().is_some());
    assert_eq!(g.last_eval_timestamp_ms(), Some(60_000));
}

/// Errors become the rule's health and `lastError`, in Prometheus's words, and the group
/// goes on with its next rule.
#[test]
fn rule_errors_are_reported_in_prometheus_words() {
    let env = Env::new("5m", HTTP_REQUESTS);
    let mut g = group(
        r#"
groups:
- name: errors
  limit: 1
  rules:
  - record: same
    expr: http_requests
    labels:
      instance: all
  - alert: Same
    expr: http_requests
    labels:
      instance: all
  - record: too_many
    expr: http_requests
  - alert: TooMany
    expr: http_requests
  - record: text
    expr: '"a string"'
  - record: matrix
    expr: http_requests[5m]
  - record: scalar
    expr: 1 + 1
  - record: fine
    expr: sum(http_requests)
"#,
        false,
    );
    let s = env.eval(&mut g, 0);
    let got: Vec<(&str, Health, Option<&str>)> = g
        .rules()
        .iter()
        .map(|r| {
            let h = r.health();
            (r.name(), h.health, h.last_error.as_deref())
        })
        .collect();
    let bad = Health::Bad;
    assert_eq!(
        got,
        [
            (
                "same",
                bad,
                Some("vector contains metrics with the same labelset after applying rule labels")
            ),
            (
                "Same",
                bad,
                Some("vector contains metrics with the same labelset after applying alert labels")
            ),
            ("too_many", bad, Some("exceeded limit of 1 with 2 series")),
            ("TooMany", bad, Some("exceeded limit of 1 with 2 alerts")),
            ("text", bad, Some("rule result is not a vector or scalar")),
            ("matrix", bad, Some("rule result is not a vector or scalar")),
            ("scalar", Health::Good, None),
            ("fine", Health::Good, None),
        ]
    );
    assert_eq!(
        s,
        EvalSummary {
            samples: 2,
            failed_rules: 6
        }
    );
    // A scalar is recorded as a series without labels but its name.
    assert_eq!(
        env.stored("scalar"),
        [("scalar{}".to_string(), vec![(0, "2".to_string())])]
    );
    // The alert limit drops every alert, as in Prometheus.
    assert!(alerting(&g, 3).all_alerts().is_empty());
}

/// Two rules writing one series with different values at one time: the storage refuses
/// the second, which becomes that rule's error.
#[test]
fn storage_refusals_are_the_rules_error() {
    let env = Env::new("1m", "");
    let mut g = group(
        "groups:\n- name: g\n  rules:\n  - record: x\n    expr: vector(1)\n  - record: x\n    expr: vector(2)\n",
        false,
    );
    env.eval(&mut g, 0);
    assert_eq!(g.rules()[0].health().health, Health::Good);
    let h = g.rules()[1].health();
    assert_eq!(
        (h.health, h.last_error.as_deref()),
        (Health::Bad, Some("duplicate sample for timestamp"))
    );
    assert_eq!(
        env.stored("x"),
        [("x{}".to_string(), vec![(0, "1".to_string())])]
    );
}

/// `query_offset` moves the query and the written samples back in time.
#[test]
fn query_offset_shifts_queries_and_output() {
    let env = Env::new("1m", "m 1 2 3 4");
    let mut g = group(
        "groups:\n- name: g\n  query_offset: 1m\n  rules:\n  - record: r\n    expr: m\n  - alert: A\n    expr: m > 0\n",
        false,
    );
    env.eval(&mut g, 3 * MIN);
    assert_eq!(
        env.stored("r"),
        [("r{}".to_string(), vec![(2 * MIN, "3".to_string())])]
    );
    assert_eq!(
        env.stored("ALERTS"),
        [(
            r#"ALERTS{alertname="A", alertstate="firing"}"#.to_string(),
            vec![(2 * MIN, "1".to_string())]
        )]
    );
    // The alert itself is active from the evaluation time, as in Prometheus.
    assert_eq!(alerting(&g, 1).active_alerts()[0].active_at_ms, 3 * MIN);
}

/// Alert states change their `ALERTS` series; the old one gets a staleness marker, and so
/// does the last one once the alert is gone.
#[test]
fn alerts_series_go_stale_when_their_state_changes() {
    let env = Env::new("1m", "m 1 1 1 0");
    let mut g = group(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: m > 0\n    for: 1m\n",
        false,
    );
    for m in 0..4 {
        env.eval(&mut g, m * MIN);
    }
    let s = |v: &[(i64, &str)]| -> Vec<(i64, String)> {
        v.iter().map(|(t, x)| (*t, x.to_string())).collect()
    };
    assert_eq!(
        env.stored("ALERTS"),
        [
            (
                r#"ALERTS{alertname="A", alertstate="firing"}"#.to_string(),
                s(&[(MIN, "1"), (2 * MIN, "1"), (3 * MIN, "stale")])
            ),
            (
                r#"ALERTS{alertname="A", alertstate="pending"}"#.to_string(),
                s(&[(0, "1"), (MIN, "stale")])
            ),
        ]
    );
}

/// keep_firing_for: a firing alert whose condition cleared keeps firing that long after the
/// first evaluation that missed it, then resolves.
#[test]
fn keep_firing_for_holds_a_cleared_alert() {
    let env = Env::new("5m", "m 1 1 0 0 0 0");
    let mut g = group(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: m > 0\n    keep_firing_for: 10m\n",
        false,
    );
    let mut states = Vec::new();
    for step in 0..6 {
        env.eval(&mut g, step * 5 * MIN);
        let a = alerting(&g, 0).all_alerts()[0].clone();
        states.push((step * 5, a.state, a.keep_firing_since_ms.map(|t| t / MIN)));
    }
    assert_eq!(
        states,
        [
            (0, AlertState::Firing, None),
            (5, AlertState::Firing, None),
            (10, AlertState::Firing, Some(10)),
            (15, AlertState::Firing, Some(10)),
            (20, AlertState::Inactive, Some(10)),
            (25, AlertState::Inactive, Some(10)),
        ]
    );
    assert_eq!(
        alerting(&g, 0).all_alerts()[0].resolved_at_ms,
        Some(20 * MIN)
    );
    assert!(alerting(&g, 0).active_alerts().is_empty());
}

/// Collects what the engine sends, as the notifier's queue would receive it.
#[derive(Default)]
struct Sent(Mutex<Vec<notifier::Alert>>);

impl AlertSender for Sent {
    fn send(&self, alerts: Vec<notifier::Alert>) {
        self.0.lock().unwrap().extend(alerts);
    }
}

impl Sent {
    fn take(&self) -> Vec<notifier::Alert> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// TestNotify: sent at once when firing, not again before the resend delay, again after
/// it, and the resolution at once; resolved alerts are resent until they are 15 minutes
/// old, then forgotten.
#[test]
fn alerts_are_sent_resent_and_resolved_like_prometheus() {
    let mut env = Env::new("1s", "a _ 2 3 _ _ 3 0");
    env.external = Labels::new([("cluster", "local"), ("alertname", "ignored")]).unwrap();
    let mut g = group(
        r#"
groups:
- name: g
  interval: 5s
  rules:
  - alert: aTooHigh
    expr: a > 1
    annotations:
      summary: too high
"#,
        false,
    );
    let sent = Sent::default();
    let eval = |g: &mut Group, t: i64| {
        let mut w = TsdbWriter::new(&env.db, env.rt.handle().clone());
        let mut ctx = env.ctx(Some(&sent));
        ctx.resend_delay = Duration::from_secs(2);
        g.eval(&ctx, t, &mut w);
        sent.take()
    };
    let first = eval(&mut g, 1000);
    assert_eq!(first.len(), 1);
    let a = &first[0];
    assert_eq!(
        a.labels.to_string(),
        r#"{alertname="aTooHigh", cluster="local"}"#,
        "external labels are added unless the alert has them"
    );
    assert_eq!(
        a.annotations,
        [("summary".to_string(), "too high".to_string())]
    );
    assert_eq!(a.starts_at_ms, 1000);
    // Valid for four times the larger of the interval (5s) and the resend delay.
    assert_eq!(a.ends_at_ms, 1000 + 20_000);
    assert_eq!(
        a.generator_url,
        "http://lookout:46686/graph?g0.expr=a+%3E+1&g0.tab=1"
    );
    assert!(
        eval(&mut g, 2000).is_empty(),
        "not again within the resend delay"
    );
    assert_eq!(eval(&mut g, 5000).len(), 1, "resent after it");
    let resolved = eval(&mut g, 6000);
    assert_eq!(resolved.len(), 1, "the resolution is sent at once");
    assert_eq!(
        (resolved[0].starts_at_ms, resolved[0].ends_at_ms),
        (1000, 6000)
    );
    assert!(eval(&mut g, 7000).is_empty());
    assert_eq!(
        eval(&mut g, 9000).len(),
        1,
        "resolved alerts are resent too"
    );
    // Kept 15 minutes after resolving, then dropped.
    let t = 6000 + 15 * MIN;
    assert_eq!(eval(&mut g, t).len(), 1);
    assert_eq!(alerting(&g, 0).all_alerts().len(), 1);
    assert!(eval(&mut g, t + 1000).is_empty());
    assert!(alerting(&g, 0).all_alerts().is_empty());
}

/// Pending alerts are never sent.
#[test]
fn pending_alerts_are_not_sent() {
    let env = Env::new("1m", "a 1 1 1");
    let mut g = group(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: a > 0\n    for: 2m\n",
        false,
    );
    let sent = Sent::default();
    let mut w = TsdbWriter::new(&env.db, env.rt.handle().clone());
    for (t, n) in [(0, 0), (MIN, 0), (2 * MIN, 1)] {
        g.eval(&env.ctx(Some(&sent)), t, &mut w);
        assert_eq!(sent.take().len(), n, "at {t}");
    }
}

/// TestForStateRestore: after a restart, alerts get their activation time back from
/// `ALERTS_FOR_STATE`, shifted by the time down; past the outage tolerance nothing is
/// restored; an alert that would fire within the grace period fires at its end instead.
#[test]
fn for_state_is_restored_after_a_restart() {
    let env = Env::new(
        "5m",
        r#"
        http_requests{job="app-server", instance="0", group="canary", severity="overwrite-me"} 75  85 50 0 0 25 0 0 40 0 120
        http_requests{job="app-server", instance="1", group="canary", severity="overwrite-me"} 125 90 60 0 0 25 0 0 40 0 130
"#,
    );
    let rules = r#"
groups:
- name: default
  interval: 1s
  rules:
  - alert: HTTPRequestRateLow
    expr: http_requests{group="canary", job="app-server"} < 100
    for: 25m
    labels:
      severity: critical
"#;
    let tolerance = Duration::from_secs(30 * 60);
    let grace = Duration::from_secs(10 * 60);
    // Before the restart.
    let mut old = group(rules, false);
    env.eval(&mut old, 0);
    env.eval(&mut old, 5 * MIN);
    let before: Vec<(String, i64)> = alerting(&old, 0)
        .active_alerts()
        .iter()
        .map(|a| (a.labels.to_string(), a.active_at_ms))
        .collect();
    assert_eq!(before.len(), 2);

    let restart = |at: i64| {
        let mut g = group(rules, true);
        assert!(!alerting(&g, 0).restored());
        env.eval(&mut g, at);
        assert!(
            env.stored("ALERTS")
                .iter()
                .all(|(_, pts)| pts.iter().all(|p| p.0 != at)),
            "no ALERTS before restoration"
        );
        g.restore_for_state(&env.db, at, tolerance, grace);
        assert!(alerting(&g, 0).restored());
        g
    };

    // Normal restore, down for 10 minutes (the last state was written at 5m).
    let g = restart(15 * MIN);
    let got: Vec<(String, i64)> = alerting(&g, 0)
        .active_alerts()
        .iter()
        .map(|a| (a.labels.to_string(), a.active_at_ms))
        .collect();
    let want: Vec<(String, i64)> = before
        .iter()
        .map(|(l, at)| (l.clone(), at + 10 * MIN))
        .collect();
    assert_eq!(got, want);

    // Past the outage tolerance: the alerts stay active from the restart.
    let g = restart(40 * MIN);
    let got = alerting(&g, 0).active_alerts();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|a| a.active_at_ms == 40 * MIN));

    // No active alerts: nothing to restore.
    let g = restart(50 * MIN);
    assert!(alerting(&g, 0).active_alerts().is_empty());

    // The grace period: evaluated up to 20m before going down, so 5 minutes remained.
    for m in [10, 15, 20] {
        env.eval(&mut old, m * MIN);
    }
    let g = restart(25 * MIN);
    let got = alerting(&g, 0).active_alerts();
    assert_eq!(got.len(), 2);
    for a in got {
        // Firing exactly one grace period after the restart: active_at + for = 25m + 10m.
        assert_eq!(a.active_at_ms + 25 * MIN, 25 * MIN + 10 * MIN);
    }
}

/// A rule whose `for` is shorter than the grace period is not restored.
#[test]
fn short_for_is_not_restored() {
    let env = Env::new("1m", "m 1 1 1");
    let mut g = group(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: m > 0\n    for: 1m\n",
        true,
    );
    env.eval(&mut g, 2 * MIN);
    g.restore_for_state(
        &env.db,
        2 * MIN,
        DEFAULT_OUTAGE_TOLERANCE,
        DEFAULT_FOR_GRACE_PERIOD,
    );
    assert!(alerting(&g, 0).restored());
    assert_eq!(alerting(&g, 0).active_alerts()[0].active_at_ms, 2 * MIN);
}

/// TestCopyState: rules are matched by name and labels, duplicates in order; matched rules
/// keep their series and alerts; the series of unmatched ones go stale.
#[test]
fn reload_copies_state_by_name_and_labels() {
    let env = Env::new("1m", "m 1");
    let old_rules = r#"
groups:
- name: g
  rules:
  - alert: alert
    expr: m > 0
  - record: rule1
    expr: vector(1)
  - record: rule2
    expr: vector(2)
  - record: rule3
    expr: vector(31)
    labels: {l1: v1}
  - record: rule3
    expr: vector(32)
    labels: {l1: v2}
  - record: rule3
    expr: vector(33)
    labels: {l1: v3}
  - alert: alert2
    expr: m > 0
    labels: {l2: v1}
"#;
    let mut old = group(old_rules, false);
    env.eval(&mut old, 0);
    let new_rules = r#"
groups:
- name: g
  rules:
  - record: rule2
    expr: vector(2)
  - alert: alert2
    expr: m > 0
    labels: {l2: v1}
  - record: rule3
    expr: vector(31)
    labels: {l1: v0}
  - record: rule3
    expr: vector(31)
    labels: {l1: v1}
  - record: rule3
    expr: vector(32)
    labels: {l1: v1}
  - alert: alert
    expr: m > 0
  - record: rule4
    expr: vector(4)
"#;
    let mut new = group(new_rules, false);
    new.copy_state_from(&old);
    let series = |g: &Group| -> Vec<Vec<String>> {
        g.series_in_previous_eval
            .iter()
            .map(|s| {
                let mut v: Vec<&Labels> = s.iter().collect();
                v.sort();
                v.iter().map(|l| l.to_string()).collect()
            })
            .collect()
    };
    assert_eq!(
        series(&new),
        [
            vec!["rule2{}".to_string()],
            vec![
                r#"ALERTS{alertname="alert2", alertstate="firing", l2="v1"}"#.to_string(),
                r#"ALERTS_FOR_STATE{alertname="alert2", l2="v1"}"#.to_string()
            ],
            vec![],
            vec![r#"rule3{l1="v1"}"#.to_string()],
            vec![],
            vec![
                r#"ALERTS{alertname="alert", alertstate="firing"}"#.to_string(),
                r#"ALERTS_FOR_STATE{alertname="alert"}"#.to_string()
            ],
            vec![],
        ]
    );
    let mut stale: Vec<String> = new.stale_series.iter().map(|l| l.to_string()).collect();
    stale.sort();
    assert_eq!(stale, ["rule1{}", r#"rule3{l1="v2"}"#, r#"rule3{l1="v3"}"#]);
    assert_eq!(alerting(&new, 1).active_alerts().len(), 1);
    assert_eq!(alerting(&new, 5).active_alerts().len(), 1);

    // TestDeletedRuleMarkedStale: the next evaluation marks the removed rules' series stale.
    env.eval(&mut new, MIN);
    assert_eq!(
        env.stored("rule1"),
        [(
            "rule1{}".to_string(),
            vec![(0, "1".to_string()), (MIN, "stale".to_string())]
        )]
    );
    assert!(new.stale_series.is_empty());
    assert!(new.same_config(&group(new_rules, true)));
    assert!(!new.same_config(&old));
}

/// A removed group's series are marked stale by the caller.
#[test]
fn removed_groups_mark_their_series_stale() {
    let env = Env::new("1m", "");
    let mut g = group(
        "groups:\n- name: g\n  rules:\n  - record: a\n    expr: vector(1)\n  - alert: B\n    expr: vector(1)\n",
        false,
    );
    env.eval(&mut g, 0);
    let written: Vec<String> = g.written_series().iter().map(|l| l.to_string()).collect();
    assert_eq!(
        written,
        [
            r#"ALERTS{alertname="B", alertstate="firing"}"#,
            r#"ALERTS_FOR_STATE{alertname="B"}"#,
            "a{}"
        ]
    );
    let mut w = TsdbWriter::new(&env.db, env.rt.handle().clone());
    write_stale_markers(&mut w, g.written_series(), MIN).unwrap();
    assert_eq!(
        env.stored("a"),
        [(
            "a{}".to_string(),
            vec![(0, "1".to_string()), (MIN, "stale".to_string())]
        )]
    );
}

#[test]
fn alerting_rules_sort_by_state_then_name() {
    let env = Env::new("1m", "m 1");
    let mut g = group(
        r#"
groups:
- name: g
  rules:
  - alert: Z
    expr: m > 0
  - alert: Y
    expr: m > 5
  - alert: X
    expr: m > 0
    for: 5m
  - alert: W
    expr: m > 0
"#,
        false,
    );
    assert!(g
        .alerting_rules()
        .iter()
        .all(|r| r.state() == AlertState::Unknown));
    env.eval(&mut g, 0);
    let order: Vec<(&str, &str)> = g
        .alerting_rules()
        .iter()
        .map(|r| (r.name(), r.state().as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("W", "firing"),
            ("Z", "firing"),
            ("X", "pending"),
            ("Y", "inactive")
        ]
    );
}

#[test]
fn eval_timestamps_are_slotted_per_group() {
    let g = group("groups:\n- name: g\n  interval: 15s\n  rules: []\n", false);
    let now = 1_700_000_123_456;
    let t = g.eval_timestamp(now);
    assert!(t <= now && now - t < 15_000, "{t} {now}");
    // The same slot for every time until the next one.
    assert_eq!(g.eval_timestamp(t), t);
    assert_eq!(g.eval_timestamp(t + 14_999), t);
    assert_eq!(g.eval_timestamp(t + 15_000), t + 15_000);
    let other = group(
        "groups:\n- name: other\n  interval: 15s\n  rules: []\n",
        false,
    );
    assert_ne!(
        other.eval_timestamp(now),
        t,
        "groups are spread over the interval"
    );
}

/// A reload keeps unchanged groups as they are, hands a changed group's state to its new
/// version, and returns the groups that went.
#[test]
fn reload_keeps_unchanged_groups_and_returns_removed_ones() {
    let env = Env::new("1m", "m 1");
    let old_file = r#"
groups:
- name: same
  rules:
  - alert: A
    expr: m > 0
- name: changed
  rules:
  - alert: B
    expr: m > 0
- name: gone
  rules:
  - record: r
    expr: vector(1)
"#;
    let new_file = r#"
groups:
- name: added
  rules: []
- name: changed
  interval: 30s
  rules:
  - alert: B
    expr: m > 0
- name: same
  rules:
  - alert: A
    expr: m > 0
"#;
    let parse = |y: &str| crate::rulefmt::parse("r.yml", y.as_bytes()).unwrap();
    let defaults = GroupDefaults::default();
    let mut old = groups_of_file("r.yml", &parse(old_file), &defaults, false);
    for g in &mut old {
        env.eval(g, 0);
    }
    let new = groups_of_file("r.yml", &parse(new_file), &defaults, false);
    let r = reload(old, new);
    let names: Vec<(&str, bool)> = r
        .groups
        .iter()
        .map(|g| (g.name(), g.last_evaluation().is_some()))
        .collect();
    // `same` is the old group itself; `changed` took over its predecessor's state.
    assert_eq!(names, [("added", false), ("changed", true), ("same", true)]);
    assert_eq!(r.groups[1].interval(), Duration::from_secs(30));
    assert_eq!(alerting(&r.groups[1], 0).active_alerts().len(), 1);
    assert_eq!(alerting(&r.groups[2], 0).active_alerts().len(), 1);
    let removed: Vec<&str> = r.removed.iter().map(|g| g.name()).collect();
    assert_eq!(removed, ["gone"]);
    assert_eq!(r.removed[0].written_series().len(), 1);
}

/// Rule labels and annotations are templates, expanded per alert as Prometheus does
/// (TestAlertingRuleLabelsUpdate, ...ExternalLabelsInTemplate, ...ExternalURLInTemplate,
/// ...EmptyLabelFromTemplate, ...QueryInTemplate).
#[test]
fn labels_and_annotations_are_expanded_per_alert() {
    let mut env = Env::new(
        "1m",
        r#"http_requests{job="app-server", instance="0"} 75 85 70 70 stale"#,
    );
    let mut g = group(
        r#"
groups:
- name: g
  rules:
  - alert: HTTPRequestRateLow
    expr: http_requests < 100
    for: 1m
    labels:
      severity: "{{ if lt $value 80.0 }}critical{{ else }}warning{{ end }}"
      empty_label: ""
  - alert: Templated
    expr: http_requests < 100
    labels:
      external: "There are {{ len $externalLabels }} external Labels, of which foo is {{ $externalLabels.foo }}."
    annotations:
      url: "The external URL is {{ $externalURL }}."
      query: |-
        {{- with "sort(sum(http_requests) by (instance))" | query -}}
        {{- range $i,$v := . -}}
        instance: {{ $v.Labels.instance }}, value: {{ printf "%.0f" $v.Value }};
        {{- end -}}
        {{- end -}}
      broken: '{{ template "nope" }}'
"#,
        false,
    );
    env.external = Labels::new([("foo", "bar"), ("dings", "bums")]).unwrap();
    let alerts_at = |env: &Env, g: &mut Group, t: i64| -> Vec<String> {
        env.eval(g, t);
        env.stored("ALERTS")
            .into_iter()
            .filter(|(l, pts)| {
                l.contains("HTTPRequestRateLow")
                    && pts.last().is_some_and(|p| p.0 == t && p.1 == "1")
            })
            .map(|(l, _)| l)
            .collect()
    };
    let low = |state: &str, severity: &str| {
        format!(
            r#"ALERTS{{alertname="HTTPRequestRateLow", alertstate="{state}", instance="0", job="app-server", severity="{severity}"}}"#
        )
    };
    // A label that follows the value makes a new alert each time it changes.
    assert_eq!(alerts_at(&env, &mut g, 0), [low("pending", "critical")]);
    assert_eq!(alerts_at(&env, &mut g, MIN), [low("pending", "warning")]);
    assert_eq!(
        alerts_at(&env, &mut g, 2 * MIN),
        [low("pending", "critical")]
    );
    assert_eq!(
        alerts_at(&env, &mut g, 3 * MIN),
        [low("firing", "critical")]
    );
    assert!(alerts_at(&env, &mut g, 4 * MIN).is_empty());

    let mut g2 = g.clone();
    env.eval(&mut g2, 0);
    let a = alerting(&g2, 1).active_alerts()[0].clone();
    assert_eq!(
        a.labels.get("external"),
        Some("There are 2 external Labels, of which foo is bar.")
    );
    let ann = |name: &str| {
        a.annotations
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(ann("url"), "The external URL is http://lookout:46686.");
    assert_eq!(ann("query"), "instance: 0, value: 75;");
    // A template that fails leaves Prometheus's marker in its place.
    let broken = ann("broken");
    assert!(
        broken.starts_with("<error expanding template: error executing template __alert_Templated: template: __alert_Templated:1:")
            && broken.ends_with(r#"template "nope" not defined>"#),
        "{broken}"
    );
    env.external = Labels::empty();
    let mut g3 = g.clone();
    env.eval(&mut g3, 0);
    assert_eq!(
        alerting(&g3, 1).active_alerts()[0].labels.get("external"),
        Some("There are 0 external Labels, of which foo is .")
    );
}

/// TestAlertingRuleDuplicate: two results that become one alert after the rule's labels.
#[test]
fn alerts_that_collide_after_their_labels_are_an_error() {
    let env = Env::new("1m", "");
    let mut g = group(
        r#"
groups:
- name: g
  rules:
  - alert: foo
    expr: vector(0) or label_replace(vector(0),"test","x","","")
    for: 1m
    labels:
      test: test
"#,
        false,
    );
    env.eval(&mut g, 0);
    assert_eq!(
        g.rules()[0].health().last_error.as_deref(),
        Some("vector contains metrics with the same labelset after applying alert labels")
    );
}
