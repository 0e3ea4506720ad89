//! Receiver tests: OTLP/HTTP through `router.oneshot` (no socket), OTLP/gRPC and protocol
//! sharing over a real loopback listener with tonic's client.
//!
//! The sink is a recording fixture standing in for the trace store; each test gets its own
//! self-metrics registry so counters can be asserted exactly while tests run in parallel.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::http::{Request, StatusCode};
use axum::body::Body;
use axum::response::Response;
use axum::Router;
use http_body_util::BodyExt;
use model::otlp::proto;
use prost::Message;
use proto::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use proto::collector::metrics::v1::ExportMetricsServiceRequest;
use proto::collector::trace::v1::trace_service_client::TraceServiceClient;
use proto::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use proto::common::v1::{any_value, AnyValue, KeyValue};
use proto::resource::v1::Resource;
use proto::trace::v1 as pt;
use selfmon::Registry;
use tokio::sync::Notify;

use super::*;

/// What the fixture sink does with the next writes.
#[derive(Clone)]
enum Mode {
    Accept,
    Overloaded(Duration),
    Unavailable,
    /// Accept, but only after `gate` is notified (to hold a request in flight).
    Gated(Arc<Notify>),
}

/// A sink that records every accepted span.
struct RecordingSink {
    mode: Mutex<Mode>,
    written: Mutex<Vec<Span>>,
    calls: AtomicUsize,
}

impl RecordingSink {
    fn new(mode: Mode) -> Arc<RecordingSink> {
        Arc::new(RecordingSink {
            mode: Mutex::new(mode),
            written: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        })
    }

    fn spans(&self) -> Vec<Span> {
        self.written.lock().unwrap().clone()
    }
}

impl TraceSink for RecordingSink {
    fn write(&self, spans: Vec<Span>, _otlp: Option<bytes::Bytes>) -> SinkFuture<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mode = self.mode.lock().unwrap().clone();
        Box::pin(async move {
            match mode {
                Mode::Accept => {}
                Mode::Overloaded(retry_after) => return Err(SinkError::Overloaded { retry_after }),
                Mode::Unavailable => return Err(SinkError::Unavailable("wal: disk full".into())),
                Mode::Gated(gate) => gate.notified().await,
            }
            self.written.lock().unwrap().extend(spans);
            Ok(())
        })
    }
}

struct Fixture {
    sink: Arc<RecordingSink>,
    state: OtlpState,
    registry: &'static Registry,
}

impl Fixture {
    fn new(config: OtlpConfig, mode: Mode) -> Fixture {
        let registry: &'static Registry = Box::leak(Box::new(Registry::default()));
        let sink = RecordingSink::new(mode);
        let state = OtlpState::with_registry(config, sink.clone(), registry);
        Fixture {
            sink,
            state,
            registry,
        }
    }

    fn accepting() -> Fixture {
        Fixture::new(OtlpConfig::default(), Mode::Accept)
    }

    fn router(&self) -> Router {
        otlp_router(self.state.clone())
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.registry.counter(name, "", labels).get()
    }

    fn received(&self, protocol: &str) -> u64 {
        self.counter(
            "lookout_otlp_received_items_total",
            &[("signal", "traces"), ("protocol", protocol)],
        )
    }

    fn rejected_items(&self, protocol: &str) -> u64 {
        self.counter(
            "lookout_otlp_rejected_items_total",
            &[("signal", "traces"), ("protocol", protocol)],
        )
    }

    fn rejected_requests(&self, signal: &str, protocol: &str, reason: &str) -> u64 {
        self.counter(
            "lookout_otlp_rejected_requests_total",
            &[
                ("signal", signal),
                ("protocol", protocol),
                ("reason", reason),
            ],
        )
    }
}

fn span(trace_id: Vec<u8>, name: &str) -> pt::Span {
    pt::Span {
        trace_id,
        span_id: vec![2; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_005_000_000,
        ..Default::default()
    }
}

fn request_with(spans: Vec<pt::Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("checkout".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                scope: None,
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A valid request with two spans.
fn good_request() -> ExportTraceServiceRequest {
    request_with(vec![
        span(vec![1; 16], "GET /cart"),
        span(vec![3; 16], "SELECT cart"),
    ])
}

/// The same request with a 5-byte trace id in its first span.
fn short_id_request() -> ExportTraceServiceRequest {
    request_with(vec![
        span(vec![1; 5], "GET /cart"),
        span(vec![3; 16], "SELECT cart"),
    ])
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

fn protobuf(body: Vec<u8>) -> Request<Body> {
    let len = body.len();
    let mut req = post("/v1/traces", "application/x-protobuf", body);
    req.headers_mut().insert("content-length", len.into());
    req
}

async fn send(router: Router, req: Request<Body>) -> (Response, Vec<u8>) {
    use tower::ServiceExt as _;
    let resp = router.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (Response::from_parts(parts, Body::empty()), bytes)
}

fn content_type(resp: &Response) -> &str {
    resp.headers()["content-type"].to_str().unwrap()
}

/// Decodes a protobuf `google.rpc.Status` failure body.
fn status_body(resp: &Response, body: &[u8]) -> RpcStatus {
    assert_eq!(content_type(resp), "application/x-protobuf");
    RpcStatus::decode(body).expect("a google.rpc.Status body")
}

#[tokio::test]
async fn http_protobuf_export_is_acknowledged_and_stored() {
    let f = Fixture::accepting();
    let (resp, body) = send(f.router(), protobuf(good_request().encode_to_vec())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(content_type(&resp), "application/x-protobuf");
    let answer = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    assert_eq!(answer.partial_success, None);
    let spans = f.sink.spans();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].name, "GET /cart");
    assert_eq!(spans[0].service_name(), "checkout");
    assert_eq!(f.received("http_protobuf"), 2);
    assert_eq!(f.state.inflight_bytes(), 0, "the budget is given back");
}

#[tokio::test]
async fn http_gzip_body_is_inflated() {
    let f = Fixture::accepting();
    let mut req = protobuf(gzip(&good_request().encode_to_vec()));
    req.headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let (resp, _) = send(f.router(), req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(f.sink.spans().len(), 2);
}

#[tokio::test]
async fn http_identity_encoding_and_content_type_parameters_are_accepted() {
    let f = Fixture::accepting();
    let mut req = post(
        "/v1/traces",
        "Application/X-Protobuf; charset=binary",
        good_request().encode_to_vec(),
    );
    req.headers_mut()
        .insert("content-encoding", "identity".parse().unwrap());
    let (resp, _) = send(f.router(), req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(f.sink.spans().len(), 2);
}

/// The OTLP/JSON form of [`good_request`], as the spec's examples write it.
const GOOD_JSON: &str = r#"{"resourceSpans":[{
  "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
  "scopeSpans":[{"scope":{"name":"test"},"spans":[
    {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174",
     "name":"GET /cart","kind":2,
     "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000005000000"}
  ]}]}]}"#;

#[tokio::test]
async fn http_json_export_is_acknowledged_in_json() {
    let f = Fixture::accepting();
    let (resp, body) = send(
        f.router(),
        post("/v1/traces", "application/json; charset=utf-8", GOOD_JSON),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(content_type(&resp), "application/json");
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({}),
        "no partialSuccess on full success"
    );
    let spans = f.sink.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(
        spans[0].trace_id.to_hex(),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(f.received("http_json"), 1);
}

#[tokio::test]
async fn http_json_gzip_is_inflated() {
    let f = Fixture::accepting();
    let mut req = post("/v1/traces", "application/json", gzip(GOOD_JSON.as_bytes()));
    req.headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let (resp, _) = send(f.router(), req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(f.sink.spans().len(), 1);
}

#[tokio::test]
async fn http_invalid_json_is_400_with_a_json_status() {
    let f = Fixture::accepting();
    let (resp, body) = send(
        f.router(),
        post("/v1/traces", "application/json", r#"{"resourceSpans":[{"#),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(content_type(&resp), "application/json");
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status["code"], 3);
    let message = status["message"].as_str().unwrap();
    assert!(message.contains("invalid JSON at line 1"), "{message}");
    assert_eq!(f.rejected_requests("traces", "http_json", "bad_json"), 1);
}

#[tokio::test]
async fn http_json_wrong_trace_id_length_names_the_field() {
    let f = Fixture::accepting();
    let body = GOOD_JSON.replace("5B8EFFF798038103D269B633813FC60C", "0102030405");
    let (resp, body) = send(f.router(), post("/v1/traces", "application/json", body)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let status: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        status["message"],
        "resource_spans[0].scope_spans[0].spans[0].trace_id: must be 16 bytes, got 5 bytes"
    );
    assert!(f.sink.spans().is_empty());
    assert_eq!(f.rejected_items("http_json"), 1);
}

#[tokio::test]
async fn http_empty_request_succeeds_without_writing() {
    let f = Fixture::accepting();
    let (resp, body) = send(f.router(), protobuf(Vec::new())).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(body.is_empty(), "an empty ExportTraceServiceResponse");
    assert_eq!(f.sink.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn http_unsupported_content_type_is_415() {
    let f = Fixture::accepting();
    let (resp, body) = send(
        f.router(),
        post("/v1/traces", "text/plain", good_request().encode_to_vec()),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let status = status_body(&resp, &body);
    assert!(
        status.message.contains("\"text/plain\""),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("application/x-protobuf"),
        "{}",
        status.message
    );

    let req = Request::post("/v1/traces")
        .body(Body::from(good_request().encode_to_vec()))
        .unwrap();
    let (resp, _) = send(f.router(), req).await;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(f.sink.spans().is_empty());
    assert_eq!(
        f.rejected_requests("traces", "http_protobuf", "unsupported_media_type"),
        2
    );
}

#[tokio::test]
async fn http_unknown_content_encoding_is_415() {
    let f = Fixture::accepting();
    let mut req = protobuf(good_request().encode_to_vec());
    req.headers_mut()
        .insert("content-encoding", "br".parse().unwrap());
    let (resp, body) = send(f.router(), req).await;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(status_body(&resp, &body).message.contains("\"br\""));
    assert!(f.sink.spans().is_empty());
}

#[tokio::test]
async fn http_garbage_protobuf_is_400() {
    let f = Fixture::accepting();
    let (resp, body) = send(f.router(), protobuf(vec![0xff; 64])).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let status = status_body(&resp, &body);
    assert_eq!(status.code, tonic::Code::InvalidArgument as i32);
    assert!(
        status
            .message
            .contains("not a valid protobuf ExportTraceServiceRequest"),
        "{}",
        status.message
    );
    assert_eq!(
        f.rejected_requests("traces", "http_protobuf", "bad_protobuf"),
        1
    );
    assert_eq!(
        f.rejected_items("http_protobuf"),
        0,
        "undecodable: no items"
    );
}

#[tokio::test]
async fn http_truncated_protobuf_is_400() {
    let f = Fixture::accepting();
    let mut bytes = good_request().encode_to_vec();
    bytes.truncate(bytes.len() - 3);
    let (resp, body) = send(f.router(), protobuf(bytes)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(status_body(&resp, &body)
        .message
        .contains("not a valid protobuf"));
    assert!(f.sink.spans().is_empty());
}

#[tokio::test]
async fn http_bad_gzip_is_400() {
    let f = Fixture::accepting();
    let mut req = protobuf(b"this is not gzip".to_vec());
    req.headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let (resp, body) = send(f.router(), req).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(status_body(&resp, &body).message.contains("not valid gzip"));
}

#[tokio::test]
async fn http_wrong_trace_id_length_is_400_naming_the_field_and_writes_nothing() {
    let f = Fixture::accepting();
    let (resp, body) = send(f.router(), protobuf(short_id_request().encode_to_vec())).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        status_body(&resp, &body).message,
        "resource_spans[0].scope_spans[0].spans[0].trace_id: must be 16 bytes, got 5 bytes"
    );
    assert_eq!(
        f.sink.calls.load(Ordering::SeqCst),
        0,
        "nothing half-written"
    );
    assert_eq!(
        f.rejected_items("http_protobuf"),
        2,
        "the whole request is refused"
    );
    assert_eq!(f.rejected_requests("traces", "http_protobuf", "invalid"), 1);
    assert_eq!(f.received("http_protobuf"), 0);
}

/// A tiny deterministic PRNG (xorshift64), so the mutation test needs no dependency and
/// fails reproducibly.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Damages `input` a few ways at once: flipped bytes, a cut, an inserted run.
fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(3) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.truncate(rng.below(out.len() + 1)),
            _ => {
                let i = rng.below(out.len() + 1);
                let run: Vec<u8> = (0..rng.below(16)).map(|_| rng.next() as u8).collect();
                out.splice(i..i, run);
            }
        }
    }
    out
}

#[tokio::test]
async fn http_damaged_bodies_never_cause_a_server_error() {
    let f = Fixture::accepting();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let proto = good_request().encode_to_vec();
    let json = GOOD_JSON.as_bytes().to_vec();
    for i in 0..300 {
        let (content_type, body, gzipped) = match i % 3 {
            0 => ("application/x-protobuf", mutate(&mut rng, &proto), false),
            1 => ("application/json", mutate(&mut rng, &json), false),
            // A damaged gzip stream around a valid body.
            _ => (
                "application/x-protobuf",
                mutate(&mut rng, &gzip(&proto)),
                true,
            ),
        };
        let mut req = post("/v1/traces", content_type, body.clone());
        if gzipped {
            req.headers_mut()
                .insert("content-encoding", "gzip".parse().unwrap());
        }
        let (resp, reply) = send(f.router(), req).await;
        assert!(
            resp.status() == StatusCode::OK || resp.status() == StatusCode::BAD_REQUEST,
            "case {i}: {} for body {body:?}: {}",
            resp.status(),
            String::from_utf8_lossy(&reply)
        );
    }
    assert_eq!(f.state.inflight_bytes(), 0);
}

fn small_limit() -> OtlpConfig {
    OtlpConfig {
        max_body_bytes: 1024,
        ..OtlpConfig::default()
    }
}

#[tokio::test]
async fn http_oversized_body_is_413() {
    let f = Fixture::new(small_limit(), Mode::Accept);
    // With a Content-Length: refused before reading.
    let (resp, body) = send(f.router(), protobuf(vec![0; 2000])).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(status_body(&resp, &body)
        .message
        .contains("limit of 1024 bytes"));

    // Without a Content-Length (as with chunked uploads): refused while reading.
    let (resp, _) = send(
        f.router(),
        post("/v1/traces", "application/x-protobuf", vec![0u8; 2000]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        f.rejected_requests("traces", "http_protobuf", "too_large"),
        2
    );
    assert_eq!(f.state.inflight_bytes(), 0);
}

#[tokio::test]
async fn http_gzip_bomb_is_413() {
    let f = Fixture::new(
        OtlpConfig {
            max_body_bytes: 1 << 20,
            ..OtlpConfig::default()
        },
        Mode::Accept,
    );
    // 64 MiB of zeros compress to about 64 KiB: small on the wire, huge inflated.
    let bomb = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            enc.write_all(&zeros).unwrap();
        }
        enc.finish().unwrap()
    };
    assert!(bomb.len() < 1 << 20);
    let mut req = protobuf(bomb);
    req.headers_mut()
        .insert("content-encoding", "gzip".parse().unwrap());
    let (resp, body) = send(f.router(), req).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let message = status_body(&resp, &body).message;
    assert!(message.contains("after decompression"), "{message}");
    assert_eq!(f.state.inflight_bytes(), 0);
}

#[tokio::test]
async fn http_overloaded_sink_is_429_with_retry_after() {
    let f = Fixture::new(
        OtlpConfig::default(),
        Mode::Overloaded(Duration::from_millis(6500)),
    );
    let (resp, body) = send(f.router(), protobuf(good_request().encode_to_vec())).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        resp.headers()["retry-after"],
        "7",
        "rounded up to whole seconds"
    );
    let status = status_body(&resp, &body);
    assert_eq!(status.code, tonic::Code::Unavailable as i32);
    assert_eq!(status.details[0].type_url, RETRY_INFO_TYPE_URL);
    assert_eq!(f.rejected_items("http_protobuf"), 2);
    assert_eq!(
        f.rejected_requests("traces", "http_protobuf", "overloaded"),
        1
    );
}

#[tokio::test]
async fn http_unavailable_sink_is_503_with_retry_after() {
    let f = Fixture::new(OtlpConfig::default(), Mode::Unavailable);
    let (resp, body) = send(f.router(), protobuf(good_request().encode_to_vec())).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(status_body(&resp, &body).message.contains("wal: disk full"));
}

#[tokio::test]
async fn http_inflight_budget_exhausted_is_429_and_recovers() {
    let gate = Arc::new(Notify::new());
    let f = Fixture::new(
        OtlpConfig {
            max_inflight_bytes: 100,
            ..OtlpConfig::default()
        },
        Mode::Gated(gate.clone()),
    );
    let body = good_request().encode_to_vec();
    assert!(body.len() > 100);
    // The first request is alone, so it is admitted past the budget and then held in the
    // gated sink, keeping its reservation.
    let first = tokio::spawn(send(f.router(), protobuf(body.clone())));
    while f.sink.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    assert!(f.state.inflight_bytes() > 100);
    let (resp, reply) = send(f.router(), protobuf(body.clone())).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(status_body(&resp, &reply)
        .message
        .contains("limit of 100 bytes"));

    gate.notify_one();
    let (resp, _) = first.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(f.state.inflight_bytes(), 0);
    *f.sink.mode.lock().unwrap() = Mode::Accept;
    let (resp, _) = send(f.router(), protobuf(body)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(f.sink.spans().len(), 4);
}

#[tokio::test]
async fn http_other_methods_are_405() {
    let f = Fixture::accepting();
    let req = Request::get("/v1/traces").body(Body::empty()).unwrap();
    let (resp, body) = send(f.router(), req).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    assert!(status_body(&resp, &body).message.contains("use POST"));
}

#[tokio::test]
async fn http_metrics_and_logs_are_501() {
    let f = Fixture::accepting();
    for (path, signal) in [("/v1/metrics", "metrics"), ("/v1/logs", "logs")] {
        let (resp, body) = send(
            f.router(),
            post(path, "application/x-protobuf", vec![1, 2, 3]),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
        let message = status_body(&resp, &body).message;
        assert!(
            message.starts_with(&format!("lookout does not store {signal} yet")),
            "{message}"
        );
        assert_eq!(
            f.rejected_requests(signal, "http_protobuf", "not_stored"),
            1
        );
    }
    let (resp, body) = send(f.router(), post("/v1/metrics", "application/json", "{}")).await;
    assert_eq!(resp.status(), StatusCode::NOT_IMPLEMENTED);
    assert_eq!(content_type(&resp), "application/json");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["code"], 12);
    assert!(json["message"]
        .as_str()
        .unwrap()
        .contains("does not store metrics"));
}

#[tokio::test]
async fn http_unknown_path_is_404() {
    let f = Fixture::accepting();
    let (resp, body) = send(
        f.router(),
        post("/v1/trace", "application/x-protobuf", vec![]),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(status_body(&resp, &body).message.contains("/v1/traces"));
}

// ---- gRPC and protocol sharing over a real socket ----

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(f: &Fixture) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, f.router(), async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("graceful shutdown finishes")
            .unwrap()
            .unwrap();
    }
}

/// Sends raw bytes as a gRPC message body, for requests no well-behaved client would make.
async fn raw_grpc(
    channel: tonic::transport::Channel,
    path: &'static str,
    payload: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.unwrap();
    client
        .unary(
            tonic::Request::new(payload),
            ::http::uri::PathAndQuery::from_static(path),
            RawCodec,
        )
        .await
        .map(|r| r.into_inner())
}

struct RawCodec;
struct RawEncoder;
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut out = vec![0; bytes::Buf::remaining(src)];
        bytes::Buf::copy_to_slice(src, &mut out);
        Ok(Some(out))
    }
}

/// The server's first HTTP/2 SETTINGS frame, as `(identifier, value)` pairs, read from a
/// raw socket after sending the client preface.
async fn server_settings(addr: std::net::SocketAddr) -> Vec<(u16, u32)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    loop {
        let mut head = [0u8; 9];
        tcp.read_exact(&mut head).await.unwrap();
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        tcp.read_exact(&mut payload).await.unwrap();
        // A SETTINGS frame (type 4) that is not an acknowledgement (flag 1).
        if head[3] == 4 && head[4] & 1 == 0 {
            return payload
                .chunks_exact(6)
                .map(|c| {
                    let id = u16::from_be_bytes([c[0], c[1]]);
                    (id, u32::from_be_bytes([c[2], c[3], c[4], c[5]]))
                })
                .collect();
        }
    }
}

#[tokio::test]
async fn http2_clients_may_send_a_batch_as_one_frame() {
    let f = Fixture::accepting();
    let server = Server::start(&f).await;
    let settings = server_settings(server.addr).await;
    // SETTINGS_MAX_FRAME_SIZE (5) is the flow-control window, not HTTP/2's 16 KiB default.
    assert!(settings.contains(&(5, 1 << 20)), "{settings:?}");

    // A client that takes up the offer sends this ~400 KiB export in one DATA frame.
    let spans = (0..4000u32)
        .map(|i| {
            let mut trace_id = vec![1; 16];
            trace_id[..4].copy_from_slice(&i.to_be_bytes());
            span(trace_id, "GET /cart/with/a/rather/long/route")
        })
        .collect();
    let big = request_with(spans);
    assert!(big.encoded_len() > 300 << 10, "{}", big.encoded_len());
    let mut client = TraceServiceClient::new(server.channel().await);
    client.export(big).await.unwrap();
    assert_eq!(f.sink.spans().len(), 4000);
    server.shutdown().await;
}

/// HTTP/2 clients (tonic's among them) often end a request with an empty DATA frame. A body
/// that came in one frame stays that frame's own buffer: the decoder reads it without a copy.
#[tokio::test]
async fn grpc_body_ending_in_an_empty_frame_is_decoded_in_place() {
    let f = Fixture::accepting();
    let frame = bytes::Bytes::from_static(b"\0\0\0\0\x03abc");
    let body = Body::new(Chunks {
        remaining: frame.len() as u64,
        chunks: vec![frame.clone(), bytes::Bytes::new()].into_iter(),
    });
    let mut reservation = f.state.reservation();
    let chunks = read_grpc_body(&f.state, body, 1 << 20, &mut reservation)
        .await
        .unwrap();
    let joined = chunks.into_bytes();
    assert_eq!(joined, frame);
    assert_eq!(joined.as_ptr(), frame.as_ptr(), "the body was copied");
}

#[tokio::test]
async fn grpc_export_ok_invalid_garbage_gzip_and_unimplemented_metrics() {
    let f = Fixture::accepting();
    let server = Server::start(&f).await;
    let channel = server.channel().await;
    let mut client = TraceServiceClient::new(channel.clone());

    let answer = client.export(good_request()).await.unwrap().into_inner();
    assert_eq!(answer.partial_success, None);
    assert_eq!(f.sink.spans().len(), 2);
    assert_eq!(f.received("grpc"), 2);

    let mut gz = TraceServiceClient::new(channel.clone())
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    gz.export(good_request()).await.unwrap();
    assert_eq!(f.sink.spans().len(), 4);

    let err = client.export(short_id_request()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "resource_spans[0].scope_spans[0].spans[0].trace_id: must be 16 bytes, got 5 bytes"
    );
    assert_eq!(f.rejected_items("grpc"), 2);

    let err = raw_grpc(channel.clone(), GRPC_TRACES_PATH, vec![0xff; 32])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("ExportTraceServiceRequest"),
        "{err:?}"
    );
    let mut truncated = good_request().encode_to_vec();
    truncated.truncate(truncated.len() - 3);
    let err = raw_grpc(channel.clone(), GRPC_TRACES_PATH, truncated)
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(f.rejected_requests("traces", "grpc", "bad_protobuf"), 2);
    assert_eq!(
        f.sink.spans().len(),
        4,
        "nothing written by refused requests"
    );

    let mut metrics = MetricsServiceClient::new(channel.clone());
    let err = metrics
        .export(ExportMetricsServiceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert!(
        err.message().contains("lookout does not store metrics yet"),
        "{err:?}"
    );

    let err = raw_grpc(channel, "/some.Other/Method", vec![])
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented, "{err:?}");

    server.shutdown().await;
}

#[tokio::test]
async fn grpc_oversized_message_is_refused() {
    let f = Fixture::new(small_limit(), Mode::Accept);
    let server = Server::start(&f).await;
    let mut client = TraceServiceClient::new(server.channel().await);
    let big = request_with(
        (0..40)
            .map(|i| span(vec![1; 16], &format!("span number {i}")))
            .collect(),
    );
    assert!(big.encoded_len() > 1024);
    let err = client.export(big).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{err:?}"
    );
    assert!(f.sink.spans().is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn grpc_back_pressure_is_unavailable_with_retry_info() {
    let f = Fixture::new(
        OtlpConfig::default(),
        Mode::Overloaded(Duration::from_secs(3)),
    );
    let server = Server::start(&f).await;
    let mut client = TraceServiceClient::new(server.channel().await);
    let err = client.export(good_request()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    let details = RpcStatus::decode(err.details()).expect("google.rpc.Status details");
    assert_eq!(details.details.len(), 1);
    assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE_URL);
    let info = RetryInfo::decode(details.details[0].value.as_slice()).unwrap();
    assert_eq!(info.retry_delay.unwrap().seconds, 3);
    // Python's exporter reads the delay from this trailer instead.
    let trailer = err
        .metadata()
        .get_bin("google.rpc.retryinfo-bin")
        .expect("retry info trailer")
        .to_bytes()
        .unwrap();
    let info = RetryInfo::decode(trailer.as_ref()).unwrap();
    assert_eq!(info.retry_delay.unwrap().seconds, 3);
    server.shutdown().await;
}

/// A trace export framed by hand (`flag`, big-endian length, message) sent through the
/// router: the answer's `grpc-status` and `grpc-message` (from the trailers, or from the
/// headers of a trailers-only answer), its data, and its head.
async fn grpc_by_hand(
    f: &Fixture,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (String, String, Vec<u8>, Response) {
    use tower::ServiceExt as _;
    let mut req = Request::post(GRPC_TRACES_PATH)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(e) = encoding {
        req = req.header("grpc-encoding", e);
    }
    let resp = f
        .router()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let data = collected.to_bytes().to_vec();
    let field = |name: &str| {
        trailers
            .get(name)
            .or_else(|| parts.headers.get(name))
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, message) = (
        field("grpc-status"),
        percent_decoded(&field("grpc-message")),
    );
    (
        status,
        message,
        data,
        Response::from_parts(parts, Body::empty()),
    )
}

/// `grpc-message` as sent: percent-encoded UTF-8.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn frame(flag: u8, message: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// What a gRPC client relies on in a trace export's answer: `application/grpc`, the framed
/// (empty) response message, `grpc-status: 0` in the trailers; gzip when `grpc-encoding`
/// says so.
#[tokio::test]
async fn grpc_traces_answer_is_framed_with_a_status_trailer() {
    let f = Fixture::accepting();
    let msg = good_request().encode_to_vec();
    let (status, _, data, resp) = grpc_by_hand(&f, None, frame(0, &msg)).await;
    assert_eq!(status, "0");
    assert_eq!(data, [0; 5], "one frame holding an empty response");
    assert!(ExportTraceServiceResponse::decode(&data[5..]).unwrap() == Default::default());
    assert_eq!(content_type(&resp), "application/grpc");
    assert!(
        resp.headers().get("grpc-status").is_none(),
        "status goes in the trailers"
    );
    assert_eq!(f.sink.spans().len(), 2);

    for encoding in ["gzip", "identity"] {
        let body = if encoding == "gzip" {
            frame(1, &gzip(&msg))
        } else {
            frame(0, &msg)
        };
        let (status, message, _, _) = grpc_by_hand(&f, Some(encoding), body).await;
        assert_eq!(status, "0", "{encoding}: {message}");
    }
    assert_eq!(f.sink.spans().len(), 6);
    assert_eq!(f.received("grpc"), 6);
}

/// Broken framing is refused as tonic refuses it (INTERNAL; an unknown `grpc-encoding` is
/// UNIMPLEMENTED and says which encodings are accepted), counted, and stores nothing.
#[tokio::test]
async fn grpc_traces_broken_framing_is_refused() {
    let f = Fixture::accepting();
    let msg = good_request().encode_to_vec();
    let mut long = frame(0, &msg);
    long[4] = long[4].wrapping_add(1);
    let cases: Vec<(&str, Option<&str>, Vec<u8>, &str)> = vec![
        ("no message", None, Vec::new(), "carries no message"),
        (
            "short header",
            None,
            vec![0, 0, 0],
            "inside a message header",
        ),
        ("short message", None, long, "ends inside its message"),
        (
            "two messages",
            None,
            [frame(0, &msg), frame(0, &msg)].concat(),
            "bytes after its one message",
        ),
        (
            "bad flag",
            None,
            frame(2, &msg),
            "invalid compressed flag 2",
        ),
        (
            "compressed without encoding",
            None,
            frame(1, &gzip(&msg)),
            "no grpc-encoding",
        ),
    ];
    let n = cases.len() as u64;
    for (name, encoding, body, want) in cases {
        let (status, message, _, _) = grpc_by_hand(&f, encoding, body).await;
        assert_eq!(status, "13", "{name}: {message}");
        assert!(message.contains(want), "{name}: {message}");
    }
    assert_eq!(f.rejected_requests("traces", "grpc", "grpc_transport"), n);

    let (status, message, _, resp) = grpc_by_hand(&f, Some("br"), frame(1, &msg)).await;
    assert_eq!(status, "12", "{message}");
    assert!(message.contains("not supported"), "{message}");
    assert_eq!(resp.headers()["grpc-accept-encoding"], "gzip");
    assert_eq!(
        f.rejected_requests("traces", "grpc", "unsupported_encoding"),
        1
    );
    assert!(f.sink.spans().is_empty());
    assert_eq!(f.state.inflight_bytes(), 0);
}

#[tokio::test]
async fn grpc_gzip_bomb_is_resource_exhausted() {
    let f = Fixture::new(
        OtlpConfig {
            max_body_bytes: 1 << 20,
            ..OtlpConfig::default()
        },
        Mode::Accept,
    );
    let server = Server::start(&f).await;
    let mut client = tonic::client::Grpc::new(server.channel().await)
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    client.ready().await.unwrap();
    let err = client
        .unary(
            tonic::Request::new(vec![0u8; 4 << 20]),
            ::http::uri::PathAndQuery::from_static(GRPC_TRACES_PATH),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert_eq!(f.rejected_requests("traces", "grpc", "too_large"), 1);
    assert_eq!(f.state.inflight_bytes(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn grpc_inflight_budget_exhausted_is_unavailable() {
    let gate = Arc::new(Notify::new());
    let f = Fixture::new(
        OtlpConfig {
            max_inflight_bytes: 100,
            ..OtlpConfig::default()
        },
        Mode::Gated(gate.clone()),
    );
    let server = Server::start(&f).await;
    let channel = server.channel().await;
    let mut first = TraceServiceClient::new(channel.clone());
    let held = tokio::spawn(async move { first.export(good_request()).await });
    while f.sink.calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let err = TraceServiceClient::new(channel)
        .export(good_request())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(err.message().contains("limit of 100 bytes"), "{err:?}");
    let details = RpcStatus::decode(err.details()).unwrap();
    assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE_URL);
    gate.notify_one();
    held.await.unwrap().unwrap();
    assert_eq!(f.sink.spans().len(), 2);
    assert_eq!(f.state.inflight_bytes(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn one_listener_serves_grpc_and_http1() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let f = Fixture::accepting();
    let server = Server::start(&f).await;

    let mut client = TraceServiceClient::new(server.channel().await);
    client.export(good_request()).await.unwrap();

    let body = good_request().encode_to_vec();
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    let mut reply = Vec::new();
    tcp.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply
        .to_ascii_lowercase()
        .contains("content-type: application/x-protobuf"));

    assert_eq!(f.sink.spans().len(), 4);
    assert_eq!(f.received("grpc"), 2);
    assert_eq!(f.received("http_protobuf"), 2);
    server.shutdown().await;
}
