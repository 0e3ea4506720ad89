//! Engine behaviour pinned on small in-memory data: lookback and staleness, left-open range
//! windows, subquery step alignment, binary matching errors, limits and error types.

use promql::{Engine, EngineOptions, Error, Value};
use tsdb::{Labels, Series, VecQuerier};

fn series(pairs: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
    Series::from_samples(
        Labels::new(pairs.iter().copied()).unwrap(),
        samples.to_vec(),
    )
}

fn scalar_of(v: &Value) -> Vec<f64> {
    match v {
        Value::Vector(s) => s.iter().map(|s| s.v).collect(),
        Value::Scalar { v, .. } => vec![*v],
        _ => panic!("unexpected {v:?}"),
    }
}

#[test]
fn lookback_is_left_open_and_stale_markers_end_a_series() {
    let q = VecQuerier::new(vec![
        series(&[("__name__", "a")], &[(0, 1.0)]),
        series(
            &[("__name__", "b")],
            &[(0, 1.0), (10_000, tsdb::stale_nan())],
        ),
    ]);
    let e = Engine::default();
    // Exactly 5m after the sample the window (t-5m, t] no longer holds it.
    assert_eq!(
        scalar_of(&e.instant_query(&q, "a", 299_999, None).unwrap().value),
        [1.0]
    );
    assert!(scalar_of(&e.instant_query(&q, "a", 300_000, None).unwrap().value).is_empty());
    assert!(scalar_of(&e.instant_query(&q, "b", 20_000, None).unwrap().value).is_empty());
}

#[test]
fn range_windows_are_left_open() {
    let q = VecQuerier::new(vec![series(
        &[("__name__", "c")],
        &[(0, 0.0), (60_000, 1.0), (120_000, 2.0)],
    )]);
    let e = Engine::default();
    let v = e
        .instant_query(&q, "count_over_time(c[1m])", 120_000, None)
        .unwrap();
    assert_eq!(scalar_of(&v.value), [1.0]);
}

#[test]
fn subquery_steps_align_to_absolute_multiples() {
    let q = VecQuerier::new(vec![series(
        &[("__name__", "m")],
        &(0..20).map(|i| (i * 10_000, i as f64)).collect::<Vec<_>>(),
    )]);
    let e = Engine::default();
    // Inner steps at 40s, 60s, 80s... never at 25s: (25s, 85s] aligned to 20s.
    let v = e.instant_query(&q, "m[60s:20s]", 85_000, None).unwrap();
    match v.value {
        Value::Matrix(m) => {
            let ts: Vec<i64> = m[0].points.iter().map(|p| p.0).collect();
            assert_eq!(ts, [40_000, 60_000, 80_000]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn many_to_many_matching_is_an_execution_error() {
    let q = VecQuerier::new(vec![
        series(&[("__name__", "x"), ("a", "1"), ("j", "k")], &[(0, 1.0)]),
        series(&[("__name__", "x"), ("a", "2"), ("j", "k")], &[(0, 1.0)]),
        series(&[("__name__", "y"), ("j", "k")], &[(0, 1.0)]),
    ]);
    let e = Engine::default();
    let err = e.instant_query(&q, "y + on(j) x", 0, None).unwrap_err();
    assert_eq!(err.error_type(), "execution");
    assert!(
        err.to_string()
            .starts_with("found duplicate series for the match group {j=\"k\"}"),
        "{err}"
    );
    let err = e.instant_query(&q, "x + on(j) y", 0, None).unwrap_err();
    assert!(
        err.to_string().starts_with("multiple matches for labels"),
        "{err}"
    );
    // group_left makes it legal.
    let ok = e
        .instant_query(&q, "x + on(j) group_left y", 0, None)
        .unwrap();
    assert_eq!(scalar_of(&ok.value), [2.0, 2.0]);
}

#[test]
fn errors_have_prometheus_types() {
    let q = VecQuerier::new(vec![series(&[("__name__", "m")], &[(0, 1.0)])]);
    let e = Engine::default();
    assert_eq!(
        e.instant_query(&q, "sum(", 0, None)
            .unwrap_err()
            .error_type(),
        "bad_data"
    );
    assert_eq!(
        e.range_query(&q, "m[5m]", 0, 60_000, 1000, None)
            .unwrap_err()
            .error_type(),
        "bad_data"
    );
    let small = Engine::new(EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    });
    assert_eq!(
        small
            .range_query(&q, "m", 0, 100_000, 1000, None)
            .unwrap_err(),
        Error::TooManySamples
    );
    let cancel = std::sync::atomic::AtomicBool::new(true);
    assert_eq!(
        e.instant_query(&q, "m", 0, Some(&cancel)).unwrap_err(),
        Error::Canceled
    );
    let slow = Engine::new(EngineOptions {
        timeout: std::time::Duration::ZERO,
        ..EngineOptions::default()
    });
    assert_eq!(
        slow.instant_query(&q, "m", 0, None).unwrap_err(),
        Error::Timeout
    );
}

#[test]
fn rate_on_a_non_counter_name_gives_prometheus_info() {
    let q = VecQuerier::new(vec![series(
        &[("__name__", "g")],
        &[(0, 1.0), (30_000, 2.0)],
    )]);
    let r = Engine::default()
        .instant_query(&q, "rate(g[1m])", 30_000, None)
        .unwrap();
    assert_eq!(
        r.infos,
        ["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"g\" (1:6)"]
    );
}

#[test]
fn hostile_queries_answer_with_errors_not_panics() {
    let q = VecQuerier::new(vec![series(
        &[("__name__", "m"), ("j", "a")],
        &[(0, 1.0), (60_000, 2.0)],
    )]);
    let e = Engine::new(EngineOptions {
        max_samples: 100_000,
        ..EngineOptions::default()
    });
    let deep = format!("{}m{}", "(".repeat(5000), ")".repeat(5000));
    let nested_ok = format!("{}m{}", "abs(".repeat(127), ")".repeat(127));
    let nested_sum = format!("{}m{}", "sum(-".repeat(127), ")".repeat(127));
    let queries = [
        deep.as_str(),
        nested_ok.as_str(),
        nested_sum.as_str(),
        "m offset 300000000y",
        "m offset -300000000y",
        "m @ 1e18",
        "m @ -1e18",
        "rate(m[300000000y])",
        "max_over_time(m[100y:1ms])",
        "sum_over_time(m[1d:1ms])",
        "m[1000y:1ms] @ 0",
        "count_values(\"x\", m)",
        "label_replace(m, \"x\", \"$1\", \"j\", \"(\")",
        "histogram_quantile(NaN, m)",
        "day_of_week(vector(1e300))",
        "topk(1e300, m)",
        "quantile_over_time(2, m[5m])",
        "round(m, 0)",
        "m / on(j) group_left m",
        "sort_by_label(m, \"j\", \"\")",
        "rate(m[300000000y] smoothed)",
        "increase(m[1ms] anchored) @ -1e18",
        "m offset -300000000y smoothed",
        "m[1000y] smoothed",
        "changes(m[5m] anchored smoothed)",
        "smoothed smoothed",
        "rate((m)[5m:] anchored)",
    ];
    for query in queries {
        for r in [
            e.instant_query(&q, query, 60_000, None).map(|_| ()),
            e.range_query(&q, query, 0, 600_000, 15_000, None)
                .map(|_| ()),
        ] {
            if let Err(err) = r {
                assert!(
                    ["bad_data", "execution"].contains(&err.error_type()),
                    "{query}: {err:?}"
                );
            }
        }
    }
}

#[test]
fn native_histograms_answer_in_prometheus_json() {
    use model::histogram::{FloatHistogram, Span};
    use std::sync::Arc;
    let h = |count: f64, buckets: Vec<f64>| {
        Arc::new(FloatHistogram {
            count,
            sum: count,
            positive_spans: vec![Span {
                offset: 0,
                length: buckets.len() as u32,
            }],
            positive_buckets: buckets,
            ..Default::default()
        })
    };
    let q = VecQuerier::new(vec![Series::from_samples_and_histograms(
        Labels::new([("__name__", "req_seconds")]).unwrap(),
        Vec::new(),
        vec![
            (0, h(2.0, vec![1.0, 1.0])),
            (60_000, h(6.0, vec![3.0, 3.0])),
        ],
    )]);
    let e = Engine::default();
    let r = e
        .instant_query(&q, "increase(req_seconds[2m])", 60_000, None)
        .unwrap();
    // Two samples 60s apart ending the 120s window: the change (count 4) extrapolated
    // towards the window start only down to the counter's zero point, 30s back (count 2
    // with 4 added per 60s), so 4 * 90s / 60s.
    assert_eq!(
        promql::json::success(&r),
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[60,{"count":"6","sum":"6","buckets":[[0,"0.5","1","3"],[0,"1","2","3"]]}]}]}}"#
    );
    let r = e
        .range_query(&q, "histogram_count(req_seconds)", 0, 60_000, 60_000, None)
        .unwrap();
    assert_eq!(
        promql::json::data(&r.value),
        r#"{"resultType":"matrix","result":[{"metric":{},"values":[[0,"2"],[60,"6"]]}]}"#
    );
    let r = e
        .instant_query(&q, "req_seconds * 2", 60_000, None)
        .unwrap();
    match &r.value {
        Value::Vector(s) => assert_eq!(s[0].h.as_ref().map(|h| h.count), Some(12.0)),
        v => panic!("unexpected {v:?}"),
    }
    // A float-only function ignores histograms, with nothing to answer.
    let r = e
        .instant_query(&q, "abs(req_seconds)", 60_000, None)
        .unwrap();
    assert_eq!(r.value, Value::Vector(Vec::new()));
}
