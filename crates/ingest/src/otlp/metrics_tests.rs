//! Metrics receiver tests: every metric type and every failure, over OTLP/HTTP (protobuf,
//! JSON, gzip) through `router.oneshot`, OTLP/gRPC over a loopback socket with tonic's
//! client, and Prometheus's `/api/v1/otlp/v1/metrics`, against a recording metrics sink.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use ::http::{Request, StatusCode};
use axum::body::Body;
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use model::otlp::proto;
use proto::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use proto::common::v1::{any_value, AnyValue, KeyValue};
use proto::metrics::v1 as pm;
use proto::resource::v1::Resource;
use selfmon::Registry;

use super::*;
use crate::metrics::{AppendOutcome, MetricMetadata, MetricType, Sample};
use crate::otlp::{
    otlp_router, prometheus_otlp_router, OtlpConfig, RpcStatus, SinkFuture, TraceSink,
};

/// What the recording sink does with the next append.
#[derive(Clone)]
enum Mode {
    Accept,
    /// Stores all but the first `n` samples, which are "out of order".
    RefuseFirst(usize),
    Overloaded,
    Unavailable,
    Invalid,
}

struct RecordingSink {
    mode: Mutex<Mode>,
    samples: Mutex<Vec<Sample>>,
    /// Native histograms, kept whatever the mode (which applies to the floats).
    histograms: Mutex<Vec<crate::metrics::HistogramSample>>,
    metadata: Mutex<Vec<(String, MetricMetadata)>>,
    /// Whether the last append was all or nothing.
    all_or_nothing: Mutex<Option<bool>>,
}

impl MetricsSink for RecordingSink {
    fn append(
        &self,
        samples: Vec<Sample>,
    ) -> crate::otlp::BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        self.store(samples, false)
    }

    fn append_all_or_nothing(
        &self,
        samples: Vec<Sample>,
    ) -> crate::otlp::BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        self.store(samples, true)
    }

    fn append_with_histograms(
        &self,
        samples: Vec<Sample>,
        histograms: Vec<crate::metrics::HistogramSample>,
        all_or_nothing: bool,
    ) -> crate::otlp::BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        let n = histograms.len();
        self.histograms.lock().unwrap().extend(histograms);
        let floats = self.store(samples, all_or_nothing);
        Box::pin(async move {
            let mut outcome = floats.await?;
            outcome.appended += n;
            Ok(outcome)
        })
    }

    fn record_metadata(&self, metadata: Vec<(String, MetricMetadata)>) {
        self.metadata.lock().unwrap().extend(metadata);
    }
}

impl RecordingSink {
    fn store(
        &self,
        samples: Vec<Sample>,
        all_or_nothing: bool,
    ) -> crate::otlp::BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        *self.all_or_nothing.lock().unwrap() = Some(all_or_nothing);
        let mode = self.mode.lock().unwrap().clone();
        Box::pin(async move {
            let mut outcome = AppendOutcome::default();
            let keep = match mode {
                Mode::Accept => samples,
                Mode::RefuseFirst(n) => {
                    outcome.out_of_order = n.min(samples.len());
                    outcome.first_error =
                        Some(format!("out of order sample for series {}", samples[0].0));
                    samples.into_iter().skip(n).collect()
                }
                Mode::Overloaded => {
                    return Err(AppendError::Sink(SinkError::Overloaded {
                        retry_after: Duration::from_secs(7),
                    }))
                }
                Mode::Unavailable => {
                    return Err(AppendError::Sink(SinkError::Unavailable(
                        "wal: disk full".into(),
                    )))
                }
                Mode::Invalid => return Err(AppendError::Invalid("too many samples".into())),
            };
            if all_or_nothing && outcome.rejected() > 0 {
                return Ok(outcome);
            }
            outcome.appended = keep.len();
            self.samples.lock().unwrap().extend(keep);
            Ok(outcome)
        })
    }
}

struct NoTraces;

impl TraceSink for NoTraces {
    fn write(&self, _spans: Vec<model::Span>, _otlp: Option<bytes::Bytes>) -> SinkFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

struct Fixture {
    sink: Arc<RecordingSink>,
    state: OtlpState,
    registry: &'static Registry,
}

impl Fixture {
    fn with(config: OtlpConfig, mode: Mode) -> Fixture {
        let registry: &'static Registry = Box::leak(Box::new(Registry::default()));
        let sink = Arc::new(RecordingSink {
            mode: Mutex::new(mode),
            samples: Mutex::new(Vec::new()),
            histograms: Mutex::new(Vec::new()),
            metadata: Mutex::new(Vec::new()),
            all_or_nothing: Mutex::new(None),
        });
        let state = OtlpState::with_registry(config, Arc::new(NoTraces), registry)
            .with_metrics_sink(sink.clone());
        Fixture {
            sink,
            state,
            registry,
        }
    }

    fn new(mode: Mode) -> Fixture {
        Fixture::with(OtlpConfig::default(), mode)
    }

    fn router(&self) -> Router {
        otlp_router(self.state.clone())
    }

    fn prometheus(&self) -> Router {
        prometheus_otlp_router(self.state.clone())
    }

    /// Stored samples as `name{labels} ts value`, sorted.
    fn stored(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .sink
            .samples
            .lock()
            .unwrap()
            .iter()
            .map(|(l, ts, v)| format!("{l} {ts} {v}"))
            .collect();
        v.sort();
        v
    }

    fn counter(&self, name: &str, protocol: &str) -> u64 {
        self.registry
            .counter(name, "", &[("signal", "metrics"), ("protocol", protocol)])
            .get()
    }

    fn received(&self, protocol: &str) -> u64 {
        self.counter("lookout_otlp_received_items_total", protocol)
    }

    fn rejected(&self, protocol: &str) -> u64 {
        self.counter("lookout_otlp_rejected_items_total", protocol)
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

const T: u64 = 1_700_000_000_000_000_000;
const T_MS: i64 = 1_700_000_000_000;

fn number(v: f64, attrs: Vec<KeyValue>) -> pm::NumberDataPoint {
    pm::NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: T - 1_000_000_000,
        time_unix_nano: T,
        value: Some(pm::number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

fn metric(name: &str, unit: &str, data: pm::metric::Data) -> pm::Metric {
    pm::Metric {
        name: name.into(),
        unit: unit.into(),
        description: format!("{name} help"),
        data: Some(data),
        ..Default::default()
    }
}

fn sum(name: &str, unit: &str, monotonic: bool, temporality: i32, v: f64) -> pm::Metric {
    metric(
        name,
        unit,
        pm::metric::Data::Sum(pm::Sum {
            data_points: vec![number(v, vec![kv("http.method", "GET")])],
            aggregation_temporality: temporality,
            is_monotonic: monotonic,
        }),
    )
}

fn request(metrics: Vec<pm::Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![pm::ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "checkout"),
                    kv("service.instance.id", "i-1"),
                    kv("host.name", "laptop"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![pm::ScopeMetrics {
                scope: None,
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One metric of every type Prometheus stores: 4 data points.
fn every_type() -> ExportMetricsServiceRequest {
    request(vec![
        sum("http.requests", "{request}", true, 2, 42.0),
        sum("queue.size", "{item}", false, 2, 3.0),
        metric(
            "cpu.utilization",
            "1",
            pm::metric::Data::Gauge(pm::Gauge {
                data_points: vec![number(0.25, vec![])],
            }),
        ),
        metric(
            "http.server.duration",
            "ms",
            pm::metric::Data::Histogram(pm::Histogram {
                data_points: vec![pm::HistogramDataPoint {
                    time_unix_nano: T,
                    count: 3,
                    sum: Some(17.0),
                    bucket_counts: vec![1, 2],
                    explicit_bounds: vec![10.0],
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            }),
        ),
        metric(
            "rpc.latency",
            "s",
            pm::metric::Data::Summary(pm::Summary {
                data_points: vec![pm::SummaryDataPoint {
                    time_unix_nano: T,
                    count: 2,
                    sum: 0.5,
                    quantile_values: vec![pm::summary_data_point::ValueAtQuantile {
                        quantile: 0.9,
                        value: 0.4,
                    }],
                    ..Default::default()
                }],
            }),
        ),
    ])
}

/// What [`every_type`] is stored as, exactly.
fn every_type_stored() -> Vec<String> {
    let r = r#"instance="i-1", job="checkout""#;
    let mut v = vec![
        format!(r#"http_requests_total{{http_method="GET", {r}}} {T_MS} 42"#),
        format!(r#"queue_size{{http_method="GET", {r}}} {T_MS} 3"#),
        format!(r#"cpu_utilization_ratio{{{r}}} {T_MS} 0.25"#),
        format!(r#"http_server_duration_milliseconds_bucket{{{r}, le="10"}} {T_MS} 1"#),
        format!(r#"http_server_duration_milliseconds_bucket{{{r}, le="+Inf"}} {T_MS} 3"#),
        format!(r#"http_server_duration_milliseconds_sum{{{r}}} {T_MS} 17"#),
        format!(r#"http_server_duration_milliseconds_count{{{r}}} {T_MS} 3"#),
        format!(r#"rpc_latency_seconds{{{r}, quantile="0.9"}} {T_MS} 0.4"#),
        format!(r#"rpc_latency_seconds_sum{{{r}}} {T_MS} 0.5"#),
        format!(r#"rpc_latency_seconds_count{{{r}}} {T_MS} 2"#),
        format!(r#"target_info{{host_name="laptop", {r}}} {T_MS} 1"#),
    ];
    v.sort();
    v
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn post(path: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

async fn send(router: Router, req: Request<Body>) -> (Response, Vec<u8>) {
    use tower::ServiceExt as _;
    let resp = router.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, Body::empty()), bytes)
}

fn answer(body: &[u8]) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse::decode(body).unwrap()
}

#[tokio::test]
async fn http_protobuf_stores_every_type_under_prometheus_names() {
    let f = Fixture::new(Mode::Accept);
    let (resp, body) = send(
        f.router(),
        post(
            "/v1/metrics",
            "application/x-protobuf",
            every_type().encode_to_vec(),
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(answer(&body).partial_success, None);
    assert_eq!(f.stored(), every_type_stored());
    let metadata = f.sink.metadata.lock().unwrap().clone();
    let names: Vec<(&str, MetricType)> = metadata
        .iter()
        .map(|(n, m)| (n.as_str(), m.metric_type))
        .collect();
    assert_eq!(
        names,
        [
            ("http_requests_total", MetricType::Counter),
            ("queue_size", MetricType::Gauge),
            ("cpu_utilization_ratio", MetricType::Gauge),
            ("http_server_duration_milliseconds", MetricType::Histogram),
            ("rpc_latency_seconds", MetricType::Summary),
        ]
    );
    assert_eq!(metadata[0].1.help, "http.requests help");
    assert_eq!(metadata[0].1.unit, "{request}");
    assert_eq!(f.received("http_protobuf"), 5);
    assert_eq!(f.rejected("http_protobuf"), 0);
    assert_eq!(f.state.inflight_bytes(), 0, "the budget is given back");
}

#[tokio::test]
async fn http_json_and_gzip_are_accepted() {
    let f = Fixture::new(Mode::Accept);
    let json = model::otlp_json::encode_metrics(&every_type());
    let (resp, body) = send(f.router(), post("/v1/metrics", "application/json", json)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(body, b"{}");
    assert_eq!(f.stored(), every_type_stored());

    let f = Fixture::new(Mode::Accept);
    let mut req = post(
        "/v1/metrics",
        "application/x-protobuf",
        gzip(&every_type().encode_to_vec()),
    );
    req.headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let (resp, _) = send(f.router(), req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(f.stored(), every_type_stored());
}

#[tokio::test]
async fn http_json_conformance_example_is_partly_accepted() {
    let f = Fixture::new(Mode::Accept);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance/otlp/metrics.json");
    let body = std::fs::read(&path).unwrap();
    let (resp, body) = send(f.router(), post("/v1/metrics", "application/json", body)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    // Three of the four example metrics are delta; the exponential histogram would be
    // refused anyway. rejectedDataPoints is an int64, a string in OTLP/JSON.
    assert_eq!(v["partialSuccess"]["rejectedDataPoints"], "3");
    let msg = v["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(
        msg.starts_with("invalid temporality and type combination for metric \"my.counter\""),
        "{msg}"
    );
    assert_eq!(
        f.stored(),
        [r#"my_gauge_ratio{job="my.service", my_gauge_attr="some value"} 1544712660300 10"#]
    );
    assert_eq!(f.received("http_json"), 1);
    assert_eq!(f.rejected("http_json"), 3);
}

#[tokio::test]
async fn delta_sums_get_partial_success_and_exponential_histograms_are_stored() {
    let f = Fixture::new(Mode::Accept);
    let eh = metric(
        "latency",
        "s",
        pm::metric::Data::ExponentialHistogram(pm::ExponentialHistogram {
            data_points: vec![pm::ExponentialHistogramDataPoint {
                time_unix_nano: T,
                count: 3,
                scale: 2,
                zero_count: 1,
                positive: Some(pm::exponential_histogram_data_point::Buckets {
                    offset: 0,
                    bucket_counts: vec![2],
                }),
                ..Default::default()
            }],
            aggregation_temporality: 2,
        }),
    );
    let req = request(vec![
        sum("delta", "", true, 1, 1.0),
        eh,
        sum("ok", "", true, 2, 1.0),
    ]);
    let (resp, body) = send(
        f.router(),
        post("/v1/metrics", "application/x-protobuf", req.encode_to_vec()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let partial = answer(&body).partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert!(partial.error_message.contains("\"delta\""));
    let hs = f.sink.histograms.lock().unwrap().clone();
    assert_eq!(hs.len(), 1);
    assert_eq!(
        hs[0].0.to_string(),
        r#"latency_seconds{instance="i-1", job="checkout"}"#
    );
    assert_eq!((hs[0].2.schema, hs[0].2.count), (2, 3.0));
    assert_eq!(
        f.stored(),
        [
            format!(r#"ok_total{{http_method="GET", instance="i-1", job="checkout"}} {T_MS} 1"#),
            format!(
                r#"target_info{{host_name="laptop", instance="i-1", job="checkout"}} {T_MS} 1"#
            ),
        ]
    );
    assert_eq!(f.received("http_protobuf"), 2);
    assert_eq!(f.rejected("http_protobuf"), 1);
}

#[tokio::test]
async fn samples_the_store_refuses_are_partial_success_naming_the_first() {
    let f = Fixture::new(Mode::RefuseFirst(1));
    let (resp, body) = send(
        f.router(),
        post(
            "/v1/metrics",
            "application/x-protobuf",
            every_type().encode_to_vec(),
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let partial = answer(&body).partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert_eq!(
        partial.error_message,
        r#"the store refused 1 of 11 samples, first: out of order sample for series http_requests_total{http_method="GET", instance="i-1", job="checkout"}"#
    );
    assert_eq!(f.stored().len(), 10);
    assert_eq!(*f.sink.all_or_nothing.lock().unwrap(), Some(false));
}

#[tokio::test]
async fn store_failures_map_to_retryable_and_permanent_answers() {
    let body = || every_type().encode_to_vec();
    let f = Fixture::new(Mode::Overloaded);
    let (resp, _) = send(
        f.router(),
        post("/v1/metrics", "application/x-protobuf", body()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(f.rejected("http_protobuf"), 5);

    let f = Fixture::new(Mode::Unavailable);
    let (resp, _) = send(
        f.router(),
        post("/v1/metrics", "application/x-protobuf", body()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));

    let f = Fixture::new(Mode::Invalid);
    let (resp, body) = send(
        f.router(),
        post("/v1/metrics", "application/x-protobuf", body()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let status = RpcStatus::decode(body.as_slice()).unwrap();
    assert_eq!(
        status.message,
        "the metrics store refused the batch: too many samples"
    );
    assert_eq!(f.state.inflight_bytes(), 0);
}

#[tokio::test]
async fn undecodable_bodies_are_400_and_store_nothing() {
    let f = Fixture::new(Mode::Accept);
    let (resp, body) = send(
        f.router(),
        post("/v1/metrics", "application/x-protobuf", vec![0xff; 16]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let status = RpcStatus::decode(body.as_slice()).unwrap();
    assert!(
        status.message.contains("ExportMetricsServiceRequest"),
        "{}",
        status.message
    );
    let (resp, body) = send(
        f.router(),
        post(
            "/v1/metrics",
            "application/json",
            r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"x","gauge":{"dataPoints":[{"asDouble":"abc"}]}}]}]}]}"#,
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        v["message"].as_str().unwrap().starts_with(
            "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].asDouble"
        ),
        "{v}"
    );
    assert!(f.stored().is_empty());
}

#[tokio::test]
async fn a_request_translating_past_the_budget_is_413() {
    let f = Fixture::with(
        OtlpConfig {
            max_inflight_bytes: 64 << 10,
            ..OtlpConfig::default()
        },
        Mode::Accept,
    );
    let many = metric(
        "h",
        "",
        pm::metric::Data::Histogram(pm::Histogram {
            data_points: vec![pm::HistogramDataPoint {
                time_unix_nano: T,
                attributes: vec![kv("a", &"x".repeat(200))],
                count: 1,
                bucket_counts: vec![0; 2001],
                explicit_bounds: (0..2000).map(f64::from).collect(),
                ..Default::default()
            }],
            aggregation_temporality: 2,
        }),
    );
    let (resp, body) = send(
        f.router(),
        post(
            "/v1/metrics",
            "application/x-protobuf",
            request(vec![many]).encode_to_vec(),
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let status = RpcStatus::decode(body.as_slice()).unwrap();
    assert!(
        status.message.contains("send smaller batches"),
        "{}",
        status.message
    );
    assert!(f.stored().is_empty());
    assert_eq!(f.state.inflight_bytes(), 0);
}

#[tokio::test]
async fn without_a_metrics_sink_metrics_are_501() {
    let registry: &'static Registry = Box::leak(Box::new(Registry::default()));
    let state = OtlpState::with_registry(OtlpConfig::default(), Arc::new(NoTraces), registry);
    let (resp, _) = send(
        otlp_router(state.clone()),
        post("/v1/metrics", "application/x-protobuf", vec![]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
    let (resp, body) = send(
        prometheus_otlp_router(state),
        post(PROM, "application/x-protobuf", vec![]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
    assert!(String::from_utf8(body)
        .unwrap()
        .starts_with("lookout does not store metrics yet"));
}

// ---- Prometheus's endpoint ----

const PROM: &str = crate::otlp::PROMETHEUS_OTLP_PATH;

#[tokio::test]
async fn prometheus_endpoint_answers_200_with_an_empty_body() {
    let f = Fixture::new(Mode::Accept);
    let (resp, body) = send(
        f.prometheus(),
        post(PROM, "application/x-protobuf", every_type().encode_to_vec()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(f.stored(), every_type_stored());

    // Translation problems are logged, not answered, as Prometheus does.
    let (resp, _) = send(
        f.prometheus(),
        post(
            PROM,
            "application/json",
            model::otlp_json::encode_metrics(&request(vec![sum("d", "", true, 1, 1.0)])),
        ),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(f.rejected("http_json"), 1);
}

#[tokio::test]
async fn prometheus_endpoint_errors_are_plain_text() {
    let f = Fixture::new(Mode::Accept);
    let (resp, body) = send(f.prometheus(), post(PROM, "text/plain", "x")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "unsupported content type: text/plain, supported: [application/json, application/x-protobuf]\n"
    );

    let (resp, body) = send(
        f.prometheus(),
        post(PROM, "application/x-protobuf", vec![0xff; 8]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("ExportMetricsServiceRequest"));

    let f = Fixture::new(Mode::RefuseFirst(2));
    let (resp, body) = send(
        f.prometheus(),
        post(PROM, "application/x-protobuf", every_type().encode_to_vec()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(String::from_utf8(body)
        .unwrap()
        .starts_with("out of order sample for series http_requests_total{"),);
    assert_eq!(*f.sink.all_or_nothing.lock().unwrap(), Some(true));
    assert!(f.stored().is_empty(), "rolled back like Prometheus");
    assert!(f.sink.metadata.lock().unwrap().is_empty());

    let f = Fixture::new(Mode::Overloaded);
    let (resp, _) = send(
        f.prometheus(),
        post(PROM, "application/x-protobuf", every_type().encode_to_vec()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");

    let (resp, _) = send(
        f.prometheus(),
        Request::get(PROM).body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

// ---- gRPC ----

async fn serve_router(router: Router) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(crate::otlp::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[tokio::test]
async fn grpc_export_stores_and_reports_partial_success() {
    let f = Fixture::new(Mode::Accept);
    let (addr, stop) = serve_router(f.router()).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = MetricsServiceClient::new(channel.clone());
    let answer = client.export(every_type()).await.unwrap().into_inner();
    assert_eq!(answer.partial_success, None);
    assert_eq!(f.stored(), every_type_stored());
    assert_eq!(f.received("grpc"), 5);

    let mut gz = MetricsServiceClient::new(channel.clone())
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let answer = gz
        .export(request(vec![sum("d", "", true, 1, 1.0)]))
        .await
        .unwrap()
        .into_inner();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert!(partial.error_message.contains("invalid temporality"));
    assert_eq!(f.rejected("grpc"), 1);

    *f.sink.mode.lock().unwrap() = Mode::Overloaded;
    let err = client.export(every_type()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    *f.sink.mode.lock().unwrap() = Mode::Invalid;
    let err = client.export(every_type()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    *f.sink.mode.lock().unwrap() = Mode::Accept;
    let answer = MetricsServiceClient::new(channel)
        .export(ExportMetricsServiceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.partial_success, None, "an empty request succeeds");
    let _ = stop.send(());
}
