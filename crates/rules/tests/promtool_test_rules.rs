//! Our evaluation against real Prometheus: rules run through our engine over a tsdb in a
//! temporary directory, and what they produced (firing alerts with their labels and
//! annotations, recorded series, `ALERTS`) is written as a `promtool test rules` unit test
//! over the same input; promtool (Prometheus 2.42) evaluating the same rules must agree.
//! Skipped with a message when promtool is not installed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use model::labels::Labels;
use rules::rule::Rule;
use rules::{AlertState, EvalContext, Group, GroupDefaults, TsdbWriter};
use tsdb::{MatchOp, Matcher, Querier, Tsdb, TsdbConfig};

const PROMTOOL: &str = "/usr/bin/promtool";

const RULES: &str = r#"
groups:
- name: recording
  rules:
  - record: job:http_requests:sum
    expr: sum by (job) (http_requests)
  - record: job:http_requests:doubled
    expr: job:http_requests:sum * 2
    labels:
      source: rules
  # Reads the series the rule above wrote at the same timestamp. (In a group of its own it
  # would depend on which group promtool evaluates first, which is not fixed.)
  - alert: RecordedHigh
    expr: job:http_requests:doubled > 400
    for: 5m
- name: alerting
  rules:
  - alert: HTTPRequestRateLow
    expr: http_requests{group="canary"} < 100
    for: 10m
    labels:
      severity: critical
    annotations:
      summary: request rate is low
      description: '{{ $labels.instance }} of {{ $labels.job }} serves {{ $value }} requests ({{ humanize $value }}); {{ len $externalLabels }} external labels'
  - alert: FromQuery
    expr: vector(1)
    labels:
      top: '{{ with query "topk(1, http_requests)" }}{{ (. | first).Labels.instance }}{{ end }}'
  - alert: KeepsFiring
    expr: http_requests{instance="1"} > 100
    keep_firing_for: 15m
    labels:
      severity: warning
  - alert: NothingHere
    expr: absent(nothing_here)
"#;

/// promtool's `input_series`, every 5 minutes. Series end with staleness markers rather
/// than gaps: Prometheus 2.42's lookback window includes its start, 3.x's (ours) does not, so
/// a sample exactly 5 minutes old would be seen by one and not the other.
const INPUT: &[(&str, &str)] = &[
    (
        r#"http_requests{job="app-server", instance="0", group="canary"}"#,
        "75 85 95 105 105 95 85 85 85 85",
    ),
    (
        r#"http_requests{job="app-server", instance="1", group="canary"}"#,
        "80 90 100 110 120 stale stale stale stale stale",
    ),
    (
        r#"http_requests{job="api", instance="2", group="prod"}"#,
        "300 300 300 300 300 300 300 300 300 300",
    ),
];

const EVAL_INTERVAL_MS: i64 = 60_000;
const CHECK_MINUTES: &[i64] = &[0, 5, 10, 12, 15, 20, 25, 30, 35, 40, 45];

fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn yaml_map(pairs: impl Iterator<Item = (String, String)>) -> String {
    let items: Vec<String> = pairs
        .map(|(k, v)| format!("{}: {}", yaml_str(&k), yaml_str(&v)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

#[test]
fn promtool_agrees_with_our_alerts_and_recordings() {
    if !Path::new(PROMTOOL).exists() {
        eprintln!("{PROMTOOL} not found: skipping the comparison with Prometheus; install it with scripts/system-deps.sh");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let db = Tsdb::open(TsdbConfig::new(dir.path().join("db"))).unwrap();
    let load_text: String = INPUT.iter().map(|(s, v)| format!("{s} {v}\n")).collect();
    let loaded = promql::promqltest::load("5m", &load_text).unwrap();
    let all = Matcher::new(MatchOp::Regex, "__name__", ".+").unwrap();
    let mut samples = Vec::new();
    for s in loaded.select(&[all], i64::MIN, i64::MAX).unwrap() {
        samples.extend(s.samples().map(|(t, v)| (s.labels.clone(), t, v)));
    }
    rt.block_on(db.append(samples)).unwrap();

    let file = rules::rulefmt::parse("rules.yml", RULES.as_bytes()).unwrap();
    let defaults = GroupDefaults {
        interval: Duration::from_millis(EVAL_INTERVAL_MS as u64),
        query_offset: Duration::ZERO,
    };
    let mut groups: Vec<Group> = file
        .groups
        .iter()
        .map(|g| Group::new("rules.yml", g, &defaults, false))
        .collect();
    let engine = promql::Engine::default();
    let external = Labels::empty();
    let ctx = EvalContext {
        engine: &engine,
        querier: &db,
        external_labels: &external,
        external_url: "",
        sender: None,
        resend_delay: Duration::from_secs(60),
        cancel: None,
    };

    let mut fired: Vec<String> = Vec::new();
    let mut alert_tests = String::new();
    let mut expr_tests = String::new();
    let last = *CHECK_MINUTES.last().unwrap();
    for minute in 0..=last {
        let ts = minute * EVAL_INTERVAL_MS;
        for g in &mut groups {
            let mut w = TsdbWriter::new(&db, rt.handle().clone());
            g.eval(&ctx, ts, &mut w);
            for r in g.rules() {
                assert_eq!(r.health().last_error, None, "{} at {minute}m", r.name());
            }
        }
        if !CHECK_MINUTES.contains(&minute) {
            continue;
        }
        // promtool compares the firing alerts of each alert name.
        for r in groups.iter().flat_map(|g| g.rules()) {
            let Rule::Alerting(a) = r else { continue };
            let firing: Vec<String> = a
                .active_alerts()
                .into_iter()
                .filter(|x| x.state == AlertState::Firing)
                .map(|x| {
                    fired.push(a.name().to_string());
                    format!(
                        "      - exp_labels: {}\n        exp_annotations: {}\n",
                        yaml_map(x.labels.iter().map(|l| (l.name.into(), l.value.into()))),
                        yaml_map(x.annotations.iter().cloned())
                    )
                })
                .collect();
            alert_tests.push_str(&format!(
                "  - eval_time: {minute}m\n    alertname: {}\n    exp_alerts:{}\n",
                a.name(),
                if firing.is_empty() {
                    " []\n".to_string()
                } else {
                    format!("\n{}", firing.concat())
                }
            ));
        }
        // And the series our rules wrote, read back through PromQL at that time.
        for expr in [
            "job:http_requests:sum",
            "job:http_requests:doubled",
            "ALERTS",
            "ALERTS_FOR_STATE",
        ] {
            let res = engine.instant_query(&db, expr, ts, None).unwrap();
            let promql::Value::Vector(v) = res.value else {
                panic!("{expr}: not a vector")
            };
            let exp: Vec<String> = v
                .iter()
                .map(|s| {
                    format!(
                        "      - labels: {}\n        value: {}\n",
                        yaml_str(&s.metric.to_string()),
                        model::gofmt::format_g(s.v)
                    )
                })
                .collect();
            expr_tests.push_str(&format!(
                "  - expr: {expr}\n    eval_time: {minute}m\n    exp_samples:{}\n",
                if exp.is_empty() {
                    " []\n".to_string()
                } else {
                    format!("\n{}", exp.concat())
                }
            ));
        }
    }

    let input: String = INPUT
        .iter()
        .map(|(s, v)| format!("  - series: {}\n    values: {}\n", yaml_str(s), yaml_str(v)))
        .collect();
    let test = format!(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n- interval: 5m\n  input_series:\n{}  alert_rule_test:\n{}  promql_expr_test:\n{}",
        indent(&input),
        indent(&alert_tests),
        indent(&expr_tests)
    );
    std::fs::write(dir.path().join("rules.yml"), RULES).unwrap();
    let test_path = dir.path().join("test.yml");
    std::fs::write(&test_path, &test).unwrap();
    let out = Command::new(PROMTOOL)
        .args(["test", "rules"])
        .arg(&test_path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool disagrees with our evaluation:\n{}{}\n--- the test we generated:\n{test}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The comparison is only as good as what it covers: every rule fired at some point.
    fired.sort();
    fired.dedup();
    assert_eq!(
        fired,
        [
            "FromQuery",
            "HTTPRequestRateLow",
            "KeepsFiring",
            "NothingHere",
            "RecordedHigh"
        ]
    );
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}
