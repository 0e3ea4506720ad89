//! The max-samples limit (`--query.max-samples`) trips at exactly the peak Prometheus
//! reaches: each case runs with the limit at the peak (must pass) and one below (must fail
//! with Prometheus's error). Data, queries and peaks are those of Prometheus's engine tests
//! (`TestQueryStatistics`, `TestMaxQuerySamples` in promql/engine_test.go); a native
//! histogram counts by its size, `(Size() + 8) / 16` float samples (13 for the ones here:
//! one span of four buckets).
//!
//! Not matched yet, so not listed: Prometheus also counts the outputs of step-wise nodes
//! (literals, binary operators, `timestamp()`) while their inputs are still held, which
//! puts its peak for `timestamp(m)` one sample per step above ours.

use promql::{Engine, EngineOptions, Error};
use tsdb::VecQuerier;

fn data() -> VecQuerier {
    promql::promqltest::load(
        "10s",
        r#"
  metricWith1SampleEvery10Seconds 1+1x100
  metricWith3SampleEvery10Seconds{a="1",b="1"} 1+1x100
  metricWith3SampleEvery10Seconds{a="2",b="2"} 1+1x100
  metricWith3SampleEvery10Seconds{a="3",b="2"} 1+1x100
  metricWith1HistogramEvery10Seconds {{schema:1 count:5 sum:20 buckets:[1 2 1 1]}}+{{schema:1 count:10 sum:5 buckets:[1 2 3 4]}}x100
  metric 1+1x100
  bigmetric{a="1"} 1+1x100
  bigmetric{a="2"} 1+1x100
"#,
    )
    .unwrap()
}

/// (query, start s, end s, step s (0: instant), Prometheus's peak).
type Case = (&'static str, i64, i64, i64, usize);

fn run(q: &VecQuerier, c: &Case, max: usize) -> Result<(), Error> {
    let e = Engine::new(EngineOptions {
        max_samples: max,
        ..EngineOptions::default()
    });
    let (query, start, end, step, _) = *c;
    if step == 0 {
        e.instant_query(q, query, start * 1000, None).map(|_| ())
    } else {
        e.range_query(q, query, start * 1000, end * 1000, step * 1000, None)
            .map(|_| ())
    }
}

fn check(cases: &[Case]) {
    let q = data();
    let mut wrong = Vec::new();
    for c in cases {
        let peak = c.4;
        let at = run(&q, c, peak);
        let below = run(&q, c, peak - 1);
        if at.is_err() || below != Err(Error::TooManySamples) {
            // Find where we trip instead, for the message.
            let ours = (1..peak * 4).find(|&m| run(&q, c, m).is_ok());
            wrong.push(format!(
                "{c:?}: passes from {ours:?}, Prometheus from {peak}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn native_histograms_count_by_their_size() {
    check(&[
        ("metricWith1HistogramEvery10Seconds", 21, 0, 0, 13),
        ("metricWith1HistogramEvery10Seconds[60s]", 201, 0, 0, 78),
        (
            "max_over_time(metricWith1HistogramEvery10Seconds[60s])[20s:5s]",
            201,
            0,
            0,
            78,
        ),
        (
            "metricWith1HistogramEvery10Seconds[60s] @ 30",
            201,
            0,
            0,
            52,
        ),
        ("metricWith1HistogramEvery10Seconds", 204, 223, 5, 52),
    ]);
}

#[test]
fn the_message_is_prometheus_s() {
    let q = data();
    let e = Engine::new(EngineOptions {
        max_samples: 12,
        ..EngineOptions::default()
    });
    let err = e
        .instant_query(&q, "metricWith1HistogramEvery10Seconds", 21_000, None)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "query processing would load too many samples into memory in query execution"
    );
    assert_eq!(err.error_type(), "execution");
}

#[test]
fn float_peaks_match_prometheus() {
    check(&[
        ("metricWith1SampleEvery10Seconds", 21, 0, 0, 1),
        ("metricWith1SampleEvery10Seconds offset 10s", 21, 0, 0, 1),
        ("metricWith1SampleEvery10Seconds @ 15", 21, 0, 0, 1),
        (
            r#"metricWith3SampleEvery10Seconds{a="1"}[20s] @ 19"#,
            21,
            0,
            0,
            2,
        ),
        ("metricWith3SampleEvery10Seconds", 21, 0, 0, 3),
        ("metricWith1SampleEvery10Seconds[60s]", 201, 0, 0, 6),
        (
            "max_over_time(metricWith1SampleEvery10Seconds[60s])[20s:5s]",
            201,
            0,
            0,
            10,
        ),
        (
            "max_over_time(metricWith1SampleEvery10Seconds[61s])[20s:5s]",
            201,
            0,
            0,
            11,
        ),
        ("metricWith1SampleEvery10Seconds[60s] @ 30", 201, 0, 0, 4),
        (
            "sum(max_over_time(metricWith3SampleEvery10Seconds[60s] @ 30))",
            201,
            0,
            0,
            7,
        ),
        (
            "max_over_time(metricWith1SampleEvery10Seconds[60s])",
            201,
            0,
            0,
            7,
        ),
        (
            "max_over_time(metricWith3SampleEvery10Seconds[60s])",
            201,
            0,
            0,
            9,
        ),
        ("metricWith1SampleEvery10Seconds[60s:5s]", 201, 0, 0, 12),
        (
            "max_over_time(metricWith3SampleEvery10Seconds[60s:5s])",
            201,
            0,
            0,
            51,
        ),
        (r#"metricWith3SampleEvery10Seconds{a="1"}"#, 201, 220, 5, 4),
        (
            "max_over_time(metricWith3SampleEvery10Seconds[60s] @ 30)",
            201,
            220,
            5,
            12,
        ),
        ("metricWith3SampleEvery10Seconds", 201, 220, 5, 12),
        (
            "max_over_time(metricWith3SampleEvery10Seconds[60s])",
            201,
            220,
            5,
            18,
        ),
        (
            "max_over_time(metricWith3SampleEvery10Seconds[60s:5s])",
            201,
            220,
            5,
            72,
        ),
        (
            "max_over_time(metricWith1SampleEvery10Seconds[60s:5s])",
            201,
            220,
            5,
            32,
        ),
        ("metric", 1, 0, 0, 1),
        ("metric[20s]", 10, 0, 0, 2),
        ("rate(metric[20s])", 10, 0, 0, 3),
        ("metric[20s:5s]", 10, 0, 0, 3),
        ("metric", 0, 10, 5, 3),
        ("rate(bigmetric[1s])", 0, 10, 5, 1),
        ("metric @ 10", 0, 10, 5, 3),
        ("rate(bigmetric[10s:1s] @ 10)", 0, 10, 5, 32),
    ]);
}

/// Range functions and instant selectors count what they evaluate, not what they load (as
/// Prometheus, which streams series); what they load is still bounded, at twice the limit
/// (at least a million), so a long range over many series cannot exhaust memory.
#[test]
fn loading_stays_bounded_where_only_evaluation_counts() {
    // 60 series of 20,001 samples: 1,200,060 loaded by a range query over all of it.
    let mut text = String::new();
    for i in 0..60 {
        text.push_str(&format!("  m{{i=\"{i}\"}} 0+1x20000\n"));
    }
    let q = promql::promqltest::load("10s", &text).unwrap();
    let e = |max| {
        Engine::new(EngineOptions {
            max_samples: max,
            ..EngineOptions::default()
        })
    };
    let query = |max| e(max).range_query(&q, "rate(m[1m])", 0, 200_000_000, 1_000_000, None);
    // Each step holds 60 windows of six samples and the outputs so far, far below either
    // limit: what decides is whether twice the limit covers the 1,200,060 loaded samples.
    assert!(query(600_030).is_ok());
    assert_eq!(query(600_029).map(|_| ()), Err(Error::TooManySamples));
    let plain = |max| e(max).range_query(&q, "m", 0, 200_000_000, 1_000_000, None);
    assert!(plain(600_030).is_ok());
    assert_eq!(plain(600_029).map(|_| ()), Err(Error::TooManySamples));
}
