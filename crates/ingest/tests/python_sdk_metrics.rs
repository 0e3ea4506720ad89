//! The real Python OpenTelemetry SDK exports one of every instrument, over OTLP/gRPC,
//! OTLP/HTTP and Prometheus's `/api/v1/otlp/v1/metrics`, to an in-process server built from
//! the OTLP routers with a recording metrics sink; the samples must carry exactly the names
//! and labels Prometheus gives them.
//!
//! The interpreter is `$LOOKOUT_TEST_PYTHON`, else the repository's `.venv` (made by
//! `bash scripts/python-env.sh`). Without either the test fails with instructions rather than
//! skipping, like the end-to-end tests in `crates/lookout/tests`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use ingest::{
    otlp_router, prometheus_otlp_router, AppendError, AppendOutcome, BoxFuture, MetricMetadata,
    MetricType, MetricsSink, OtlpConfig, OtlpState, Sample, SinkFuture, TraceSink,
    PROMETHEUS_OTLP_PATH,
};

#[derive(Default)]
struct Recording {
    samples: Mutex<Vec<Sample>>,
    histograms: Mutex<Vec<ingest::HistogramSample>>,
    metadata: Mutex<Vec<(String, MetricMetadata)>>,
}

impl MetricsSink for Recording {
    fn append(&self, samples: Vec<Sample>) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        Box::pin(async move {
            let appended = samples.len();
            self.samples.lock().unwrap().extend(samples);
            Ok(AppendOutcome {
                appended,
                ..AppendOutcome::default()
            })
        })
    }

    fn append_all_or_nothing(
        &self,
        samples: Vec<Sample>,
    ) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        self.append(samples)
    }

    fn append_with_histograms(
        &self,
        samples: Vec<Sample>,
        histograms: Vec<ingest::HistogramSample>,
        _all_or_nothing: bool,
    ) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        Box::pin(async move {
            let appended = samples.len() + histograms.len();
            self.samples.lock().unwrap().extend(samples);
            self.histograms.lock().unwrap().extend(histograms);
            Ok(AppendOutcome {
                appended,
                ..AppendOutcome::default()
            })
        })
    }

    fn record_metadata(&self, metadata: Vec<(String, MetricMetadata)>) {
        self.metadata.lock().unwrap().extend(metadata);
    }
}

struct NoTraces;

impl TraceSink for NoTraces {
    fn write(&self, _spans: Vec<model::Span>, _otlp: Option<bytes::Bytes>) -> SinkFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LOOKOUT_TEST_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "LOOKOUT_TEST_PYTHON={} does not exist; run `bash scripts/python-env.sh`",
            p.display()
        );
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.is_file(),
        "this test needs the Python OpenTelemetry SDK: run `bash scripts/python-env.sh` \
         (or set LOOKOUT_TEST_PYTHON to a python that has scripts/requirements-test.txt installed)"
    );
    venv
}

/// Runs `export_metrics.py` to completion with a clean OpenTelemetry environment.
fn export(protocol: &str, endpoint: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/export_metrics.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .args(["--protocol", protocol, "--endpoint", endpoint])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.output().expect("running python");
    assert!(
        out.status.success(),
        "export_metrics.py --protocol {protocol} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        r#"{"result": "SUCCESS"}"#
    );
}

/// What the SDK's export must become, as `name{labels} value` (timestamps checked apart).
fn expected() -> Vec<String> {
    let r = r#"instance="instance-1", job="demo/shop-api""#;
    let mut v = vec![
        format!(r#"requests_total{{http_route="/cart", {r}}} 3"#),
        format!(r#"queue_size{{{r}}} 3"#),
        format!(r#"temperature_celsius{{{r}}} 21.5"#),
        format!(r#"cpu_utilization_ratio{{{r}}} 0.25"#),
        format!(r#"http_server_duration_milliseconds_sum{{http_route="/cart", {r}}} 270"#),
        format!(r#"http_server_duration_milliseconds_count{{http_route="/cart", {r}}} 3"#),
        format!(
            r#"target_info{{deployment_environment="test", {r}, telemetry_sdk_language="python", telemetry_sdk_name="opentelemetry", telemetry_sdk_version="*"}} 1"#
        ),
    ];
    // The SDK's default explicit buckets; 5 falls in (0, 5], 15 in (10, 25], 250 in (100, 250].
    for (le, n) in [
        ("0", 0),
        ("5", 1),
        ("10", 1),
        ("25", 2),
        ("50", 2),
        ("75", 2),
        ("100", 2),
        ("250", 3),
        ("500", 3),
        ("750", 3),
        ("1000", 3),
        ("2500", 3),
        ("5000", 3),
        ("7500", 3),
        ("10000", 3),
        ("+Inf", 3),
    ] {
        v.push(format!(
            r#"http_server_duration_milliseconds_bucket{{http_route="/cart", {r}, le="{le}"}} {n}"#
        ));
    }
    v.sort();
    v
}

fn rendered(samples: &[Sample]) -> Vec<String> {
    let mut v: Vec<String> = samples
        .iter()
        .map(|(labels, _, value)| {
            let mut text = labels.to_string();
            if let Some(version) = labels.get("telemetry_sdk_version") {
                assert!(!version.is_empty());
                text = text.replace(&format!("{version:?}"), "\"*\"");
            }
            format!("{text} {value}")
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics_get_prometheus_names_over_every_protocol() {
    for protocol in ["grpc", "http-protobuf", "prometheus"] {
        let registry: &'static selfmon::Registry = Box::leak(Box::default());
        let sink = Arc::new(Recording::default());
        let state = OtlpState::with_registry(OtlpConfig::default(), Arc::new(NoTraces), registry)
            .with_metrics_sink(sink.clone());
        let router = otlp_router(state.clone()).merge(prometheus_otlp_router(state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(ingest::serve(listener, router, async move {
            let _ = stopped.await;
        }));

        let (py_protocol, endpoint) = match protocol {
            "grpc" => ("grpc", format!("http://{addr}")),
            "http-protobuf" => ("http-protobuf", format!("http://{addr}/v1/metrics")),
            _ => (
                "http-protobuf",
                format!("http://{addr}{PROMETHEUS_OTLP_PATH}"),
            ),
        };
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        tokio::task::spawn_blocking(move || export(py_protocol, &endpoint))
            .await
            .unwrap();

        let samples = sink.samples.lock().unwrap().clone();
        assert_eq!(rendered(&samples), expected(), "{protocol}");
        let ts = samples[0].1;
        assert!(
            samples.iter().all(|s| s.1 == ts) && ts >= before - 1000,
            "{protocol}: one collection time, in milliseconds"
        );
        let metadata = sink.metadata.lock().unwrap().clone();
        let types: Vec<(&str, MetricType, &str)> = metadata
            .iter()
            .map(|(n, m)| (n.as_str(), m.metric_type, m.unit.as_str()))
            .collect();
        for want in [
            ("requests_total", MetricType::Counter, "{request}"),
            ("queue_size", MetricType::Gauge, "{item}"),
            ("temperature_celsius", MetricType::Gauge, "Cel"),
            ("cpu_utilization_ratio", MetricType::Gauge, "1"),
            (
                "http_server_duration_milliseconds",
                MetricType::Histogram,
                "ms",
            ),
        ] {
            assert!(types.contains(&want), "{protocol}: {want:?} in {types:?}");
        }
        // The exponential histogram (one observation of 1024 bytes) is a native histogram.
        // The SDK picks its largest scale, 20, for a single value; Prometheus's schema 8 merges
        // 2^12 of its buckets: 1024 = 2^10 is OTLP bucket 10·2^20 - 1 (upper bounds are
        // inclusive), merged into index 2559, shifted to Prometheus's 2560, which covers
        // (2^(2559/256), 2^10].
        let hs = sink.histograms.lock().unwrap().clone();
        assert_eq!(hs.len(), 1, "{protocol}");
        let (labels, t, h) = &hs[0];
        assert_eq!(
            labels.to_string(),
            r#"payload_size_bytes{instance="instance-1", job="demo/shop-api"}"#
        );
        assert_eq!(*t, ts);
        let want = model::histogram::FloatHistogram {
            schema: 8,
            zero_threshold: 1e-128,
            count: 1.0,
            sum: 1024.0,
            positive_spans: vec![model::histogram::Span {
                offset: 2560,
                length: 1,
            }],
            positive_buckets: vec![1.0],
            // The SDK sends an empty negative side as one zero bucket at offset 0, which
            // Prometheus's layout keeps as a zero bucket at index 1.
            negative_spans: vec![model::histogram::Span {
                offset: 1,
                length: 1,
            }],
            negative_buckets: vec![0.0],
            ..Default::default()
        };
        assert_eq!(**h, want, "{protocol}");
        assert!(
            types.contains(&("payload_size_bytes", MetricType::Histogram, "By")),
            "{protocol}: {types:?}"
        );
        let proto_label = match protocol {
            "grpc" => "grpc",
            _ => "http_protobuf",
        };
        let counter = |name: &str| {
            registry
                .counter(
                    name,
                    "",
                    &[("signal", "metrics"), ("protocol", proto_label)],
                )
                .get()
        };
        assert_eq!(
            counter("lookout_otlp_rejected_items_total"),
            0,
            "{protocol}"
        );
        assert_eq!(
            counter("lookout_otlp_received_items_total"),
            6,
            "{protocol}"
        );

        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
