//! OTLP metrics → Prometheus series translation on a typical SDK export: 200 services'
//! worth of HTTP server instrumentation, each data point carrying the attributes semantic
//! conventions give it, half counters and half 15-bucket histograms (the SDK's default
//! buckets). The receiver translates every request once; samples per second is the number to
//! watch against the tsdb's append rate.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ingest::otlp::metrics_translate::translate;
use model::otlp::proto;
use proto::collector::metrics::v1::ExportMetricsServiceRequest;
use proto::common::v1 as pc;
use proto::metrics::v1 as pm;

fn attr(key: &str, value: &str) -> pc::KeyValue {
    pc::KeyValue {
        key: key.into(),
        value: Some(pc::AnyValue {
            value: Some(pc::any_value::Value::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}

fn request() -> ExportMetricsServiceRequest {
    let bounds: Vec<f64> = vec![
        0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
        7500.0, 10000.0,
    ];
    let attrs = |i: usize| {
        vec![
            attr("http.request.method", ["GET", "POST"][i % 2]),
            attr("http.route", &format!("/api/items/{}", i % 25)),
            attr("http.response.status_code", ["200", "404", "500"][i % 3]),
            attr("url.scheme", "http"),
            attr("server.address", "localhost"),
        ]
    };
    let t = 1_700_000_000_000_000_000u64;
    let resource_metrics = (0..200)
        .map(|r| pm::ResourceMetrics {
            resource: Some(proto::resource::v1::Resource {
                attributes: vec![
                    attr("service.name", &format!("svc-{r}")),
                    attr("service.instance.id", &format!("{r}-instance")),
                    attr("telemetry.sdk.language", "python"),
                    attr("host.name", "laptop"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![pm::ScopeMetrics {
                scope: None,
                metrics: vec![
                    pm::Metric {
                        name: "http.server.requests".into(),
                        unit: "{request}".into(),
                        data: Some(pm::metric::Data::Sum(pm::Sum {
                            data_points: (0..10)
                                .map(|i| pm::NumberDataPoint {
                                    attributes: attrs(i),
                                    time_unix_nano: t,
                                    value: Some(pm::number_data_point::Value::AsInt(i as i64)),
                                    ..Default::default()
                                })
                                .collect(),
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    pm::Metric {
                        name: "http.server.duration".into(),
                        unit: "ms".into(),
                        data: Some(pm::metric::Data::Histogram(pm::Histogram {
                            data_points: (0..10)
                                .map(|i| pm::HistogramDataPoint {
                                    attributes: attrs(i),
                                    time_unix_nano: t,
                                    count: 100,
                                    sum: Some(1234.5),
                                    bucket_counts: vec![6; bounds.len() + 1],
                                    explicit_bounds: bounds.clone(),
                                    ..Default::default()
                                })
                                .collect(),
                            aggregation_temporality: 2,
                        })),
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

fn bench(c: &mut Criterion) {
    let req = request();
    let samples = translate(&req, usize::MAX).unwrap().samples.len();
    let mut g = c.benchmark_group("otlp_metrics");
    g.throughput(Throughput::Elements(samples as u64));
    g.bench_function(format!("translate_{samples}_samples"), |b| {
        b.iter(|| translate(&req, usize::MAX).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
