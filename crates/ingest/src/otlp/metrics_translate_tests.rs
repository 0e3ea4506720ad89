//! One test per translation rule. Expected names come from Prometheus's own tests
//! (`otlptranslator`'s `metric_namer_test.go`, `label_namer_test.go`) or from walking its
//! code by hand for the input; each test names where its expectation comes from.

use super::*;
use model::labels::Labels;
use proto::common::v1::{ArrayValue, KeyValueList};
use proto::metrics::v1::{metric::Data, number_data_point, ResourceMetrics, ScopeMetrics};
use proto::resource::v1::Resource;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

const T0: u64 = 1_700_000_000_123_456_789;

fn gauge_point(value: f64, attrs: Vec<KeyValue>) -> pm::NumberDataPoint {
    pm::NumberDataPoint {
        attributes: attrs,
        time_unix_nano: T0,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..Default::default()
    }
}

fn metric(name: &str, unit: &str, data: Data) -> pm::Metric {
    pm::Metric {
        name: name.into(),
        unit: unit.into(),
        description: format!("{name} help"),
        data: Some(data),
        ..Default::default()
    }
}

fn gauge(name: &str, unit: &str, points: Vec<pm::NumberDataPoint>) -> pm::Metric {
    metric(
        name,
        unit,
        Data::Gauge(pm::Gauge {
            data_points: points,
        }),
    )
}

fn sum(
    name: &str,
    monotonic: bool,
    temporality: i32,
    points: Vec<pm::NumberDataPoint>,
) -> pm::Metric {
    metric(
        name,
        "",
        Data::Sum(pm::Sum {
            data_points: points,
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        }),
    )
}

fn request(resource: Vec<KeyValue>, metrics: Vec<pm::Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(proto::common::v1::InstrumentationScope {
                    name: "my.library".into(),
                    version: "1.0.0".into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// The samples as `name{labels}` strings with their values, sorted, for readable asserts.
fn rendered(t: &Translation) -> Vec<String> {
    let mut out: Vec<String> = t
        .samples
        .iter()
        .map(|(l, ts, v)| format!("{l} {ts} {v}"))
        .collect();
    out.sort();
    out
}

fn tr(req: &ExportMetricsServiceRequest) -> Translation {
    translate(req, usize::MAX).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::new(pairs.iter().copied()).unwrap()
}

// ---- metric names: cases from otlptranslator's metric_namer_test.go ----

#[test]
fn metric_names_follow_otlptranslator_tests() {
    use MetricKind::*;
    let cases = [
        ("requests", "", MonotonicCounter, "requests_total"),
        ("cpu_usage", "1", Gauge, "cpu_usage_ratio"),
        ("items", "1", MonotonicCounter, "items_total"),
        ("response_time", "ms", Gauge, "response_time_milliseconds"),
        ("memory_usage", "By", Gauge, "memory_usage_bytes"),
        ("requests", "1/s", Gauge, "requests_per_second"),
        ("throughput", "By/s", Gauge, "throughput_bytes_per_second"),
        (
            "custom_metric",
            "custom_unit",
            Gauge,
            "custom_metric_custom_unit",
        ),
        ("custom_metric", "{custom}", Gauge, "custom_metric"),
        ("custom_metric", "By/{custom}", Gauge, "custom_metric_bytes"),
        ("requests_total", "", MonotonicCounter, "requests_total"),
        ("cpu_usage_ratio", "1", Gauge, "cpu_usage_ratio"),
        ("response_time_seconds", "s", Gauge, "response_time_seconds"),
        (
            "metric__with__multiple__underscores",
            "unit__multiple__underscores",
            Gauge,
            "metric_with_multiple_underscores_unit_multiple_underscores",
        ),
        (
            "custom_metric",
            "unit@with#special/chars",
            Gauge,
            "custom_metric_unit_with_special_per_chars",
        ),
        (
            "request_duration",
            "s",
            Histogram,
            "request_duration_seconds",
        ),
        (
            "request_size",
            "By",
            ExponentialHistogram,
            "request_size_bytes",
        ),
        ("response_time", "ms", Summary, "response_time_milliseconds"),
        (
            "active_connections",
            "",
            NonMonotonicCounter,
            "active_connections",
        ),
        ("uptime", "d", Gauge, "uptime_days"),
        ("duration", "h", Gauge, "duration_hours"),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(
            metric_name(name, unit, kind).unwrap(),
            want,
            "{name} {unit} {kind:?}"
        );
    }
}

#[test]
fn metric_names_from_otel_conventions() {
    // Walked through normalizeName by hand: dots split tokens, the unit word is appended,
    // `{request}` annotations carry no suffix, `/s` becomes `per_second`.
    use MetricKind::*;
    let cases = [
        (
            "http.server.duration",
            "ms",
            Histogram,
            "http_server_duration_milliseconds",
        ),
        (
            "http.server.request.duration",
            "s",
            Histogram,
            "http_server_request_duration_seconds",
        ),
        ("requests", "{request}", MonotonicCounter, "requests_total"),
        ("packets", "{packet}/s", Gauge, "packets_per_second"),
        (
            "system.memory.usage",
            "By",
            NonMonotonicCounter,
            "system_memory_usage_bytes",
        ),
        ("total_requests", "", MonotonicCounter, "requests_total"),
        ("ratio.of.x", "1", Gauge, "of_x_ratio"),
        ("__weird..name__", "", Gauge, "weird_name"),
        ("123metric", "", Gauge, "_123metric"),
        ("métric", "", Gauge, "m_tric"),
        ("a:b", "", Gauge, "a:b"),
        // The per-unit suffix contains `_`, so it never equals a token and is appended even
        // when the name already ends with it: Prometheus's behaviour, kept.
        (
            "requests_per_second",
            "1/s",
            Gauge,
            "requests_per_second_per_second",
        ),
        ("seconds_total", "s", MonotonicCounter, "seconds_total"),
    ];
    for (name, unit, kind, want) in cases {
        assert_eq!(
            metric_name(name, unit, kind).unwrap(),
            want,
            "{name} {unit} {kind:?}"
        );
    }
}

#[test]
fn metric_name_with_only_special_characters_is_refused() {
    let err = metric_name("@#$%", "", MetricKind::Gauge).unwrap_err();
    assert!(
        err.starts_with("normalization for metric \"@#$%\" resulted in empty name"),
        "{err}"
    );
}

// ---- label names: cases from label_namer_test.go / normalize_label_test.go ----

#[test]
fn label_names_follow_prometheus_defaults() {
    let cases = [
        ("http.method", "http_method"),
        ("regular label", "regular_label"),
        ("123invalid", "key_123invalid"),
        (
            "_label_starting_with_underscore",
            "key_label_starting_with_underscore",
        ),
        ("__reserved__", "__reserved__"),
        ("label.with.dots", "label_with_dots"),
        ("label..double", "label__double"),
        ("dötted", "d_tted"),
        ("key", "key"),
        (".", "key_"),
    ];
    for (name, want) in cases {
        assert_eq!(label_name(name).unwrap(), want, "{name}");
    }
    assert!(label_name("").is_err());
    assert!(label_name("..")
        .unwrap_err()
        .contains("resulted in invalid name \"__\""));
}

// ---- values ----

#[test]
fn attribute_values_render_like_pdata_as_string() {
    use any_value::Value as V;
    let v = |x: V| value_string(Some(&AnyValue { value: Some(x) }));
    assert_eq!(v(V::StringValue("a b".into())), "a b");
    assert_eq!(v(V::BoolValue(true)), "true");
    assert_eq!(v(V::IntValue(-42)), "-42");
    assert_eq!(v(V::DoubleValue(1.5)), "1.5");
    assert_eq!(v(V::DoubleValue(100.0)), "100");
    assert_eq!(v(V::DoubleValue(1e-7)), "1e-7");
    assert_eq!(v(V::DoubleValue(1.5e21)), "1.5e+21");
    assert_eq!(v(V::DoubleValue(0.000001)), "0.000001");
    assert_eq!(v(V::BytesValue(b"hi!".to_vec())), "aGkh");
    let array = V::ArrayValue(ArrayValue {
        values: vec![
            AnyValue {
                value: Some(V::StringValue("<a>".into())),
            },
            AnyValue {
                value: Some(V::IntValue(1)),
            },
        ],
    });
    assert_eq!(v(array), r#"["\u003ca\u003e",1]"#);
    let map = V::KvlistValue(KeyValueList {
        values: vec![s("z", "1"), kv("a", V::BoolValue(false))],
    });
    assert_eq!(v(map), r#"{"a":false,"z":"1"}"#);
    assert_eq!(value_string(None), "");
}

#[test]
fn bounds_format_like_strconv_f_minus_one() {
    assert_eq!(format_float(0.005), "0.005");
    assert_eq!(format_float(10.0), "10");
    assert_eq!(format_float(1e-9), "0.000000001");
    assert_eq!(format_float(1e21), "1000000000000000000000");
    assert_eq!(format_float(f64::INFINITY), "+Inf");
}

// ---- whole requests ----

#[test]
fn gauge_with_resource_becomes_job_instance_and_target_info() {
    let req = request(
        vec![
            s("service.name", "checkout"),
            s("service.namespace", "shop"),
            s("service.instance.id", "pod-1"),
            s("host.name", "laptop"),
        ],
        vec![gauge(
            "queue.depth",
            "{item}",
            vec![gauge_point(7.0, vec![s("queue", "orders")])],
        )],
    );
    let t = translate(&req, usize::MAX).unwrap();
    assert_eq!(t.data_points, 1);
    assert_eq!(t.rejected_points, 0);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(
        rendered(&t),
        [
            r#"queue_depth{instance="pod-1", job="shop/checkout", queue="orders"} 1700000000123 7"#,
            r#"target_info{host_name="laptop", instance="pod-1", job="shop/checkout"} 1700000000123 1"#,
        ]
    );
    assert_eq!(
        t.metadata,
        [(
            "queue_depth".to_string(),
            MetricMetadata {
                metric_type: MetricType::Gauge,
                help: "queue.depth help".into(),
                unit: "{item}".into(),
            }
        )]
    );
}

#[test]
fn target_info_needs_non_identifying_attributes_and_an_identifier() {
    // Only job/instance attributes: target_info adds nothing, so Prometheus skips it.
    let t = tr(&request(
        vec![s("service.name", "api"), s("service.instance.id", "1")],
        vec![gauge("g", "", vec![gauge_point(1.0, vec![])])],
    ));
    assert_eq!(
        rendered(&t),
        [r#"g{instance="1", job="api"} 1700000000123 1"#]
    );
    // Attributes but neither job nor instance: nothing to join on, skipped too.
    let t = tr(&request(
        vec![s("host.name", "x")],
        vec![gauge("g", "", vec![gauge_point(1.0, vec![])])],
    ));
    assert_eq!(rendered(&t), [r#"g{} 1700000000123 1"#]);
}

#[test]
fn target_info_is_sampled_every_two_and_a_half_minutes_across_the_resource() {
    let mut late = gauge_point(2.0, vec![]);
    late.time_unix_nano = T0 + 400 * 1_000_000_000;
    let t = tr(&request(
        vec![s("service.name", "api"), s("os.type", "linux")],
        vec![gauge("g", "", vec![gauge_point(1.0, vec![]), late])],
    ));
    let info: Vec<i64> = t
        .samples
        .iter()
        .filter(|(l, _, _)| l.metric_name() == Some("target_info"))
        .map(|(_, ts, _)| *ts)
        .collect();
    let t0 = (T0 / 1_000_000) as i64;
    assert_eq!(info, [t0, t0 + 150_000, t0 + 300_000, t0 + 400_000]);
}

#[test]
fn target_info_from_an_unset_timestamp_is_bounded() {
    let mut zero = gauge_point(1.0, vec![]);
    zero.time_unix_nano = 0;
    let t = tr(&request(
        vec![s("service.name", "api"), s("os.type", "linux")],
        vec![gauge("g", "", vec![zero, gauge_point(1.0, vec![])])],
    ));
    let info = t
        .samples
        .iter()
        .filter(|(l, _, _)| l.metric_name() == Some("target_info"))
        .count() as u64;
    assert_eq!(info, MAX_TARGET_INFO_SAMPLES);
    assert_eq!(
        t.samples.last().map(|s| s.1),
        Some((T0 / 1_000_000) as i64),
        "ends at the latest point"
    );
}

#[test]
fn cumulative_monotonic_sum_is_a_counter_with_total() {
    let mut p = gauge_point(0.0, vec![s("http.method", "GET")]);
    p.value = Some(number_data_point::Value::AsInt(42));
    let t = tr(&request(
        vec![s("service.name", "api")],
        vec![sum("http.requests", true, TEMPORALITY_CUMULATIVE, vec![p])],
    ));
    assert_eq!(
        rendered(&t),
        [r#"http_requests_total{http_method="GET", job="api"} 1700000000123 42"#]
    );
    assert_eq!(t.metadata[0].0, "http_requests_total");
    assert_eq!(t.metadata[0].1.metric_type, MetricType::Counter);
}

#[test]
fn non_monotonic_sum_is_a_gauge_without_total() {
    let t = tr(&request(
        vec![],
        vec![sum(
            "active",
            false,
            TEMPORALITY_CUMULATIVE,
            vec![gauge_point(-3.0, vec![])],
        )],
    ));
    assert_eq!(rendered(&t), [r#"active{} 1700000000123 -3"#]);
    assert_eq!(t.metadata[0].1.metric_type, MetricType::Gauge);
}

#[test]
fn delta_and_unspecified_temporality_are_refused_like_prometheus() {
    let t = tr(&request(
        vec![],
        vec![
            sum(
                "d",
                true,
                1,
                vec![gauge_point(1.0, vec![]), gauge_point(2.0, vec![])],
            ),
            sum("u", true, 0, vec![gauge_point(1.0, vec![])]),
            gauge("ok", "", vec![gauge_point(1.0, vec![])]),
        ],
    ));
    assert_eq!(t.data_points, 4);
    assert_eq!(t.rejected_points, 3);
    assert_eq!(rendered(&t), [r#"ok{} 1700000000123 1"#]);
    assert!(t.errors[0].starts_with("invalid temporality and type combination for metric \"d\""));
    assert!(t.errors[1].starts_with("invalid temporality and type combination for metric \"u\""));
}

fn histogram_point() -> pm::HistogramDataPoint {
    pm::HistogramDataPoint {
        attributes: vec![s("route", "/cart")],
        time_unix_nano: T0,
        count: 10,
        sum: Some(123.5),
        bucket_counts: vec![2, 3, 5],
        explicit_bounds: vec![5.0, 10.0],
        ..Default::default()
    }
}

fn histogram(points: Vec<pm::HistogramDataPoint>) -> pm::Metric {
    metric(
        "http.server.duration",
        "ms",
        Data::Histogram(pm::Histogram {
            data_points: points,
            aggregation_temporality: TEMPORALITY_CUMULATIVE,
        }),
    )
}

#[test]
fn histogram_becomes_cumulative_buckets_sum_and_count() {
    let t = tr(&request(
        vec![s("service.name", "api")],
        vec![histogram(vec![histogram_point()])],
    ));
    let l = r#"job="api", route="/cart""#;
    assert_eq!(
        rendered(&t),
        [
            r#"http_server_duration_milliseconds_bucket{job="api", le="+Inf", route="/cart"} 1700000000123 10"#.to_string(),
            r#"http_server_duration_milliseconds_bucket{job="api", le="10", route="/cart"} 1700000000123 5"#.to_string(),
            r#"http_server_duration_milliseconds_bucket{job="api", le="5", route="/cart"} 1700000000123 2"#.to_string(),
            format!(r#"http_server_duration_milliseconds_count{{{l}}} 1700000000123 10"#),
            format!(r#"http_server_duration_milliseconds_sum{{{l}}} 1700000000123 123.5"#),
        ]
    );
    assert_eq!(t.metadata[0].0, "http_server_duration_milliseconds");
    assert_eq!(t.metadata[0].1.metric_type, MetricType::Histogram);
    assert_eq!(t.metadata[0].1.unit, "ms");
}

#[test]
fn histogram_without_sum_has_no_sum_series_and_le_attribute_is_overridden() {
    let mut p = histogram_point();
    p.sum = None;
    p.attributes.push(s("le", "attr"));
    let t = tr(&request(vec![], vec![histogram(vec![p])]));
    let r = rendered(&t);
    assert_eq!(r.len(), 4, "{r:?}");
    assert!(r.iter().all(|s| !s.contains("_sum")));
    assert!(r[0].contains(r#"le="+Inf""#), "{r:?}");
    // `le` from the attributes stays on _count; on buckets the bucket's own `le` wins (see
    // the module docs for how this differs from Prometheus, which drops those series).
    assert!(
        r[3].starts_with(r#"http_server_duration_milliseconds_count{le="attr", route="/cart"}"#),
        "{r:?}"
    );
}

#[test]
fn summary_becomes_quantiles_sum_and_count() {
    let p = pm::SummaryDataPoint {
        time_unix_nano: T0,
        count: 4,
        sum: 10.0,
        quantile_values: vec![
            pm::summary_data_point::ValueAtQuantile {
                quantile: 0.5,
                value: 2.0,
            },
            pm::summary_data_point::ValueAtQuantile {
                quantile: 0.99,
                value: 4.0,
            },
        ],
        ..Default::default()
    };
    let t = tr(&request(
        vec![],
        vec![metric(
            "rpc.latency",
            "s",
            Data::Summary(pm::Summary {
                data_points: vec![p],
            }),
        )],
    ));
    assert_eq!(
        rendered(&t),
        [
            r#"rpc_latency_seconds_count{} 1700000000123 4"#,
            r#"rpc_latency_seconds_sum{} 1700000000123 10"#,
            r#"rpc_latency_seconds{quantile="0.5"} 1700000000123 2"#,
            r#"rpc_latency_seconds{quantile="0.99"} 1700000000123 4"#,
        ]
    );
    assert_eq!(t.metadata[0].1.metric_type, MetricType::Summary);
}

#[test]
fn no_recorded_value_becomes_staleness_markers_on_every_series() {
    let mut p = histogram_point();
    p.flags = 1;
    let mut g = gauge_point(5.0, vec![]);
    g.flags = 1;
    let t = tr(&request(
        vec![],
        vec![histogram(vec![p]), gauge("g", "", vec![g])],
    ));
    assert_eq!(t.samples.len(), 6);
    assert!(t
        .samples
        .iter()
        .all(|(_, _, v)| v.to_bits() == STALE_NAN_BITS));
}

fn exponential(points: Vec<pm::ExponentialHistogramDataPoint>) -> pm::Metric {
    metric(
        "latency",
        "s",
        Data::ExponentialHistogram(pm::ExponentialHistogram {
            data_points: points,
            aggregation_temporality: TEMPORALITY_CUMULATIVE,
        }),
    )
}

fn buckets(offset: i32, counts: &[u64]) -> Option<pm::exponential_histogram_data_point::Buckets> {
    Some(pm::exponential_histogram_data_point::Buckets {
        offset,
        bucket_counts: counts.to_vec(),
    })
}

fn spans(pairs: &[(i32, u32)]) -> Vec<Span> {
    pairs
        .iter()
        .map(|&(offset, length)| Span { offset, length })
        .collect()
}

/// Layouts worked out by hand from Prometheus's `convertBucketsLayout`: OTLP index k is
/// Prometheus index k+1; gaps of up to two empty buckets stay in the span, longer ones start
/// a new span; the last bucket is listed even when empty.
#[test]
fn exponential_histograms_become_native_histograms() {
    let p = pm::ExponentialHistogramDataPoint {
        attributes: vec![s("route", "/a")],
        time_unix_nano: T0,
        count: 12,
        sum: Some(5.5),
        scale: 3,
        zero_count: 2,
        // Bucket 0.1 is ignored, as Prometheus ignores it (it uses 1e-128).
        zero_threshold: 0.1,
        positive: buckets(-2, &[1, 2, 0, 0, 0, 4]),
        negative: buckets(0, &[3]),
        ..Default::default()
    };
    let t = tr(&request(vec![], vec![exponential(vec![p])]));
    assert!(t.samples.is_empty());
    assert_eq!(t.histograms.len(), 1);
    let (l, ts, h) = &t.histograms[0];
    assert_eq!(
        *l,
        labels(&[("__name__", "latency_seconds"), ("route", "/a")])
    );
    assert_eq!(*ts, (T0 / 1_000_000) as i64);
    let want = FloatHistogram {
        schema: 3,
        zero_threshold: 1e-128,
        zero_count: 2.0,
        count: 12.0,
        sum: 5.5,
        positive_spans: spans(&[(-1, 2), (3, 1)]),
        positive_buckets: vec![1.0, 2.0, 4.0],
        negative_spans: spans(&[(1, 1)]),
        negative_buckets: vec![3.0],
        ..Default::default()
    };
    assert_eq!(**h, want);
    assert_eq!(t.metadata[0].0, "latency_seconds");
    assert_eq!(t.metadata[0].1.metric_type, MetricType::Histogram);
}

#[test]
fn exponential_scales_above_8_merge_buckets() {
    // Scale 10 is two steps above 8: four OTLP buckets make one.
    let p = pm::ExponentialHistogramDataPoint {
        time_unix_nano: T0,
        count: 15,
        scale: 10,
        positive: buckets(5, &[1, 1, 1, 1, 1, 1, 1, 1]),
        // OTLP -3..=7 → Prometheus 0 (-3..=-1), 1 (0..=3), 2 (4..=7): the empty middle
        // bucket stays inside the span.
        negative: buckets(-3, &[2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5]),
        ..Default::default()
    };
    let t = tr(&request(vec![], vec![exponential(vec![p])]));
    let h = &t.histograms[0].2;
    assert_eq!(h.schema, 8);
    assert_eq!(h.positive_spans, spans(&[(2, 3)]));
    assert_eq!(h.positive_buckets, [3.0, 4.0, 1.0]);
    assert_eq!(h.negative_spans, spans(&[(0, 3)]));
    assert_eq!(h.negative_buckets, [2.0, 0.0, 5.0]);
    // A trailing empty bucket is listed; leading empty ones far from the first count
    // leave an empty first span, as in Prometheus.
    let p = pm::ExponentialHistogramDataPoint {
        time_unix_nano: T0,
        count: 8,
        positive: buckets(0, &[3, 0]),
        negative: buckets(0, &[0, 0, 0, 0, 5]),
        ..Default::default()
    };
    let t = tr(&request(vec![], vec![exponential(vec![p])]));
    let h = &t.histograms[0].2;
    assert_eq!(h.positive_spans, spans(&[(1, 2)]));
    assert_eq!(h.positive_buckets, [3.0, 0.0]);
    assert_eq!(h.negative_spans, spans(&[(1, 0), (4, 1)]));
    assert_eq!(h.negative_buckets, [5.0]);
}

#[test]
fn exponential_histograms_refused_or_stale_like_prometheus() {
    let point = |scale: i32, count: u64, flags: u32| pm::ExponentialHistogramDataPoint {
        time_unix_nano: T0,
        count,
        scale,
        flags,
        positive: buckets(0, &[1, 2]),
        ..Default::default()
    };
    let t = tr(&request(
        vec![],
        vec![
            exponential(vec![point(-5, 3, 0)]),
            gauge("g", "", vec![gauge_point(1.0, vec![])]),
        ],
    ));
    assert_eq!(t.rejected_points, 1);
    assert_eq!(t.samples.len(), 1);
    let msg = t.error_message().unwrap();
    assert!(msg.contains("Scale must be >= -4, was -5"), "{msg}");
    // Buckets holding more than the count.
    let t = tr(&request(vec![], vec![exponential(vec![point(0, 2, 0)])]));
    assert_eq!(t.rejected_points, 1);
    assert!(t.error_message().unwrap().contains("less than"), "{t:?}");
    // No recorded value: the float staleness marker.
    let t = tr(&request(vec![], vec![exponential(vec![point(0, 3, 1)])]));
    assert!(t.histograms.is_empty());
    assert_eq!(t.samples.len(), 1);
    assert_eq!(t.samples[0].2.to_bits(), STALE_NAN_BITS);
    assert_eq!(t.samples[0].0, labels(&[("__name__", "latency_seconds")]));
}

#[test]
fn colliding_label_names_join_values_in_original_name_order() {
    // createAttributes sorts by original key (`-` < `.` < `_` bytewise),
    // then joins values of keys that sanitize alike with ';'.
    let t = tr(&request(
        vec![],
        vec![gauge(
            "g",
            "",
            vec![gauge_point(
                1.0,
                vec![s("a_b", "under"), s("a.b", "dot"), s("a-b", "dash")],
            )],
        )],
    ));
    assert_eq!(rendered(&t), [r#"g{a_b="dash;dot;under"} 1700000000123 1"#]);
}

#[test]
fn job_and_instance_from_the_resource_override_attributes() {
    let t = tr(&request(
        vec![s("service.name", "svc"), s("service.instance.id", "i-1")],
        vec![gauge(
            "g",
            "",
            vec![gauge_point(1.0, vec![s("job", "mine"), s("instance", "x")])],
        )],
    ));
    assert_eq!(
        rendered(&t),
        [r#"g{instance="i-1", job="svc"} 1700000000123 1"#]
    );
}

#[test]
fn scope_is_not_a_label_by_default() {
    let t = tr(&request(
        vec![],
        vec![gauge("g", "", vec![gauge_point(1.0, vec![])])],
    ));
    assert_eq!(t.samples[0].0, labels(&[("__name__", "g")]));
}

#[test]
fn empty_metric_records_metadata_but_no_samples() {
    let t = tr(&request(vec![], vec![gauge("g", "", vec![])]));
    assert!(t.samples.is_empty());
    assert_eq!(t.rejected_points, 0);
    assert_eq!(t.errors, ["empty data points. g is dropped"]);
}

#[test]
fn a_point_with_an_oversized_label_is_rejected_whole() {
    let big = "x".repeat(model::labels::MAX_LABEL_BYTES + 1);
    let t = tr(&request(
        vec![],
        vec![
            histogram(vec![{
                let mut p = histogram_point();
                p.attributes.push(s("big", &big));
                p
            }]),
            gauge("g", "", vec![gauge_point(1.0, vec![])]),
        ],
    ));
    assert_eq!(t.rejected_points, 1);
    assert_eq!(
        rendered(&t),
        [r#"g{} 1700000000123 1"#],
        "nothing of the histogram point"
    );
    assert!(t.errors[0].contains("longer than"), "{:?}", t.errors);
}

#[test]
fn metric_without_data_is_reported() {
    let t = tr(&request(
        vec![],
        vec![pm::Metric {
            name: "nothing".into(),
            ..Default::default()
        }],
    ));
    assert!(t.samples.is_empty());
    assert!(t.errors[0].contains("\"nothing\" carries no data"));
}

#[test]
fn errors_are_bounded() {
    let metrics = (0..50)
        .map(|i| sum(&format!("d{i}"), true, 1, vec![gauge_point(1.0, vec![])]))
        .collect();
    let t = tr(&request(vec![], metrics));
    assert_eq!(t.rejected_points, 50);
    assert_eq!(t.errors.len(), MAX_ERRORS);
    assert!(t
        .error_message()
        .unwrap()
        .ends_with(&format!("; and {} more", 50 - MAX_ERRORS)));
}

#[test]
fn conformance_metrics_json_translates() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/otlp/metrics.json");
    let body = std::fs::read(&path).unwrap();
    let req = model::otlp_json::decode_metrics(&body).unwrap();
    let t = translate(&req, usize::MAX).unwrap();
    let names: std::collections::BTreeSet<&str> = t
        .samples
        .iter()
        .filter_map(|(l, _, _)| l.metric_name())
        .collect();
    // The example's counter, histogram and exponential histogram are delta
    // (aggregationTemporality 1), which Prometheus refuses by default; only the gauge
    // (unit "1") is stored, as my_gauge_ratio. No target_info: service.name is the only
    // resource attribute.
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["my_gauge_ratio"]);
    assert_eq!(t.data_points, 4);
    assert_eq!(t.rejected_points, 3);
    assert!(t.error_message().unwrap().contains("\"my.counter\""));
    assert!(t
        .samples
        .iter()
        .all(|(l, _, _)| l.get("job") == Some("my.service")));
}

#[test]
fn a_request_past_the_memory_limit_is_refused_whole() {
    // 2000 buckets on one point: each bucket series repeats the point's labels.
    let mut p = histogram_point();
    p.explicit_bounds = (0..2000).map(f64::from).collect();
    p.bucket_counts = vec![1; 2001];
    let req = request(vec![s("service.name", "api")], vec![histogram(vec![p])]);
    let err = translate(&req, 64 << 10).unwrap_err();
    assert_eq!(err, TranslateError::TooLarge { limit: 64 << 10 });
    // Refused while the point is being built, long before its 2003 series exist.
    let err = translate(&req, 1).unwrap_err();
    assert_eq!(err, TranslateError::TooLarge { limit: 1 });
    let t = translate(&req, usize::MAX).unwrap();
    assert_eq!(t.samples.len(), 2003);
    assert!(t.bytes > 64 << 10);
}

#[test]
fn series_labels_stay_sorted_around_name_and_le() {
    // `A` and `Z` sort before `__name__` ('_' is 0x5f), `__x` after it, `m` between `le`
    // and `quantile`: each series must come out sorted exactly as a LabelsBuilder sorts.
    let attrs = vec![
        s("Z", "1"),
        s("A", "2"),
        s("__x", "3"),
        s("m", "4"),
        s("a", "5"),
    ];
    let t = tr(&request(
        vec![],
        vec![histogram(vec![{
            let mut p = histogram_point();
            p.attributes = attrs.clone();
            p
        }])],
    ));
    for (l, _, _) in &t.samples {
        let rebuilt = Labels::new(l.iter().map(|p| (p.name, p.value))).unwrap();
        assert_eq!(l, &rebuilt);
        assert_eq!(l.stable_hash(), rebuilt.stable_hash());
    }
    assert_eq!(
        t.samples
            .iter()
            .find(|s| s.0.get("le") == Some("5"))
            .unwrap()
            .0
            .to_string(),
        r#"http_server_duration_milliseconds_bucket{A="2", Z="1", __x="3", a="5", le="5", m="4"}"#
    );
}
