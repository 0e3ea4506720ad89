//! Router tests: every endpoint through `router.oneshot(request)`, no sockets.
//!
//! The store is [`MemReader`], an honest in-memory [`TraceReader`] over a `Vec<Span>` that
//! filters exactly as the `TraceQuery` documentation says, so these tests exercise the HTTP
//! layer against the contract rather than against canned answers. The golden Jaeger v1 trace
//! below was derived by hand from Jaeger v2's pipeline (adjusters, then the collector-contrib
//! OTLP→Jaeger translator, then the `uimodel` JSON converter) for the same input.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use model::{
    AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, StatusCode as Otel,
    TraceId, UnixNanos,
};
use tower::ServiceExt;
use traces::{DependencyLink, Operation, TraceError, TraceQuery, TraceReader};

use crate::{router, ApiState, BuildInfo};

/// An in-memory span store implementing the reader contract.
#[derive(Default)]
struct MemReader {
    spans: Vec<Span>,
    /// Every call fails, to test how store errors are reported.
    broken: bool,
}

fn broken() -> TraceError {
    TraceError::Io {
        path: PathBuf::from("/data/traces/block-1"),
        source: std::io::Error::other("disk on fire"),
    }
}

/// The tags Jaeger derives for a span besides its attributes; `TraceQuery` says searches see
/// them too.
fn synthetic_tags(s: &Span) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if s.kind != SpanKind::Unspecified {
        out.push(("span.kind".into(), s.kind.jaeger_name().into()));
    }
    match s.status_code {
        Otel::Ok => out.push(("otel.status_code".into(), "OK".into())),
        Otel::Error => {
            out.push(("otel.status_code".into(), "ERROR".into()));
            out.push(("error".into(), "true".into()));
        }
        Otel::Unset => {}
    }
    if !s.status_message.is_empty() {
        out.push(("otel.status_description".into(), s.status_message.clone()));
    }
    if !s.scope.name.is_empty() {
        out.push(("otel.scope.name".into(), s.scope.name.clone()));
    }
    if !s.scope.version.is_empty() {
        out.push(("otel.scope.version".into(), s.scope.version.clone()));
    }
    if !s.trace_state.is_empty() {
        out.push(("w3c.tracestate".into(), s.trace_state.clone()));
    }
    out
}

fn has_tag(s: &Span, key: &str, value: &str) -> bool {
    let attr = |kvs: &[KeyValue]| {
        kvs.iter()
            .any(|kv| kv.key == key && kv.value.to_tag_string() == value)
    };
    attr(&s.attributes)
        || attr(&s.resource.attributes)
        || s.events.iter().any(|e| attr(&e.attributes))
        || synthetic_tags(s)
            .iter()
            .any(|(k, v)| k == key && v == value)
}

fn span_matches(s: &Span, q: &TraceQuery) -> bool {
    q.service
        .as_deref()
        .is_none_or(|svc| s.service_name() == svc)
        && q.operation.as_deref().is_none_or(|op| s.name == op)
        && q.span_kind.is_none_or(|k| s.kind == k)
        && q.tags.iter().all(|(k, v)| has_tag(s, k, v))
        && q.start_min.is_none_or(|t| s.start_unix_nano >= t)
        && q.start_max.is_none_or(|t| s.start_unix_nano <= t)
        && q.duration_min
            .is_none_or(|d| u128::from(s.duration_nanos()) >= d.as_nanos())
        && q.duration_max
            .is_none_or(|d| u128::from(s.duration_nanos()) <= d.as_nanos())
}

impl TraceReader for MemReader {
    fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, TraceError> {
        if self.broken {
            return Err(broken());
        }
        let spans: Vec<Span> = self
            .spans
            .iter()
            .filter(|s| s.trace_id == id)
            .cloned()
            .collect();
        Ok((!spans.is_empty()).then_some(spans))
    }

    fn search(&self, q: &TraceQuery) -> Result<Vec<Vec<Span>>, TraceError> {
        if self.broken {
            return Err(broken());
        }
        // Newest matching span per trace, then whole traces newest first.
        let mut hits: Vec<(UnixNanos, TraceId)> = Vec::new();
        for s in self.spans.iter().filter(|s| span_matches(s, q)) {
            match hits.iter_mut().find(|(_, id)| *id == s.trace_id) {
                Some(hit) => hit.0 = hit.0.max(s.start_unix_nano),
                None => hits.push((s.start_unix_nano, s.trace_id)),
            }
        }
        hits.sort_by_key(|h| std::cmp::Reverse(h.0));
        Ok(hits
            .into_iter()
            .take(q.limit)
            .map(|(_, id)| {
                self.spans
                    .iter()
                    .filter(|s| s.trace_id == id)
                    .cloned()
                    .collect()
            })
            .collect())
    }

    fn services(&self) -> Result<Vec<String>, TraceError> {
        if self.broken {
            return Err(broken());
        }
        let set: BTreeSet<String> = self
            .spans
            .iter()
            .map(|s| s.service_name().to_string())
            .collect();
        Ok(set.into_iter().collect())
    }

    fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, TraceError> {
        if self.broken {
            return Err(broken());
        }
        let set: BTreeSet<Operation> = self
            .spans
            .iter()
            .filter(|s| s.service_name() == service && kind.is_none_or(|k| s.kind == k))
            .map(|s| Operation {
                name: s.name.clone(),
                span_kind: s.kind,
            })
            .collect();
        Ok(set.into_iter().collect())
    }

    fn dependencies(
        &self,
        start: UnixNanos,
        end: UnixNanos,
    ) -> Result<Vec<DependencyLink>, TraceError> {
        if self.broken {
            return Err(broken());
        }
        let mut links: Vec<DependencyLink> = Vec::new();
        for child in &self.spans {
            if child.start_unix_nano < start || child.start_unix_nano > end {
                continue;
            }
            let Some(parent_id) = child.parent_span_id else {
                continue;
            };
            let Some(parent) = self
                .spans
                .iter()
                .find(|p| p.trace_id == child.trace_id && p.span_id == parent_id)
            else {
                continue;
            };
            if parent.service_name() == child.service_name() {
                continue;
            }
            match links
                .iter_mut()
                .find(|l| l.parent == parent.service_name() && l.child == child.service_name())
            {
                Some(l) => l.call_count += 1,
                None => links.push(DependencyLink {
                    parent: parent.service_name().into(),
                    child: child.service_name().into(),
                    call_count: 1,
                }),
            }
        }
        Ok(links)
    }
}

const T0: UnixNanos = 1_700_000_000_000_123_456;
const TRACE: TraceId = TraceId([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);

fn kv(k: &str, v: AnyValue) -> KeyValue {
    KeyValue::new(k, v)
}

fn s(v: &str) -> AnyValue {
    AnyValue::Str(v.into())
}

/// A frontend server span with every kind of attribute, its client call into `cart` and an
/// internal span: parent/child, links (one without a trace id), events, error status, trace
/// state, two resources with `service.namespace`, scopes with and without a version.
fn golden_spans() -> Vec<Span> {
    let frontend = Arc::new(Resource {
        attributes: vec![
            kv("service.name", s("frontend")),
            kv("service.namespace", s("shop-slot-1")),
            kv("host.name", s("h1")),
            kv("process.pid", AnyValue::Int(42)),
        ],
        ..Default::default()
    });
    let cart = Arc::new(Resource {
        attributes: vec![
            kv("service.name", s("cart")),
            kv("service.namespace", s("shop-slot-1")),
        ],
        ..Default::default()
    });
    let http_scope = Arc::new(Scope {
        name: "io.opentelemetry.http".into(),
        version: "1.2.3".into(),
        ..Default::default()
    });
    let cart_scope = Arc::new(Scope {
        name: "cart-lib".into(),
        ..Default::default()
    });
    let root = Span {
        trace_id: TRACE,
        span_id: SpanId([0x11; 8]),
        parent_span_id: None,
        trace_state: "vendor=1".into(),
        flags: 1,
        name: "GET /cart".into(),
        kind: SpanKind::Server,
        start_unix_nano: T0,
        end_unix_nano: T0 + 5_000_789,
        attributes: vec![
            kv("http.route", s("/cart?x=<1>&y")),
            kv("http.status_code", AnyValue::Int(500)),
            kv("big", AnyValue::Int(9_007_199_254_740_993)),
            kv("ratio", AnyValue::Double(0.25)),
            kv("whole", AnyValue::Double(3.0)),
            kv("cached", AnyValue::Bool(false)),
            kv("blob", AnyValue::Bytes(vec![0xde, 0xad, 0xbe, 0xef])),
            kv(
                "tags",
                AnyValue::Array(vec![s("a"), AnyValue::Int(1), AnyValue::Bool(true)]),
            ),
            kv(
                "headers",
                AnyValue::Map(vec![kv("x-b", s("<2>")), kv("x-a", s("1"))]),
            ),
            kv("empty", AnyValue::Empty),
            kv("ip", AnyValue::Int(0x0808_0808)),
        ],
        events: vec![
            Event {
                time_unix_nano: T0 + 1_000,
                name: "exception".into(),
                attributes: vec![
                    kv("exception.type", s("E")),
                    kv("exception.message", s("x")),
                ],
                ..Default::default()
            },
            Event {
                time_unix_nano: T0 + 2_000,
                name: "cache.miss".into(),
                ..Default::default()
            },
            Event {
                time_unix_nano: T0 + 3_000,
                name: String::new(),
                attributes: vec![kv("event", s("custom"))],
                ..Default::default()
            },
        ],
        links: vec![
            Link {
                trace_id: TraceId([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0xef]),
                span_id: SpanId([0x44; 8]),
                ..Default::default()
            },
            Link::default(),
        ],
        status_code: Otel::Error,
        status_message: "boom".into(),
        resource: frontend.clone(),
        scope: http_scope.clone(),
        ..Default::default()
    };
    let client = Span {
        trace_id: TRACE,
        span_id: SpanId([0x22; 8]),
        parent_span_id: Some(SpanId([0x11; 8])),
        name: "SELECT cart".into(),
        kind: SpanKind::Client,
        start_unix_nano: T0 + 1_000_000,
        end_unix_nano: T0 + 1_000_999,
        attributes: vec![
            kv("telemetry.sdk.name", s("opentelemetry")),
            kv("db.system", s("postgresql")),
        ],
        links: vec![Link {
            trace_id: TRACE,
            span_id: SpanId([0x33; 8]),
            attributes: vec![kv("opentracing.ref_type", s("child_of"))],
            ..Default::default()
        }],
        status_code: Otel::Ok,
        resource: cart,
        scope: cart_scope,
        ..Default::default()
    };
    let internal = Span {
        trace_id: TRACE,
        span_id: SpanId([0x33; 8]),
        parent_span_id: Some(SpanId([0x11; 8])),
        name: "render".into(),
        kind: SpanKind::Internal,
        start_unix_nano: T0 + 2_000_000,
        end_unix_nano: T0 + 3_500_000,
        resource: frontend,
        scope: http_scope,
        ..Default::default()
    };
    vec![root, client, internal]
}

fn tag(key: &str, ty: &str, value: &str) -> String {
    format!(r#"{{"key":"{key}","type":"{ty}","value":{value}}}"#)
}

/// The golden trace as Jaeger v2 answers it (compact `encoding/json` output).
fn golden_trace_json() -> String {
    let root_tags = [
        tag("otel.scope.name", "string", r#""io.opentelemetry.http""#),
        tag("otel.scope.version", "string", r#""1.2.3""#),
        tag("big", "int64", r#""9007199254740993""#),
        tag("blob", "binary", r#""3q2+7w==""#),
        tag("cached", "bool", "false"),
        tag("empty", "string", r#""""#),
        tag(
            "headers",
            "string",
            r#""{\"x-a\":\"1\",\"x-b\":\"\\u003c2\\u003e\"}""#,
        ),
        tag("http.route", "string", r#""/cart?x=\u003c1\u003e\u0026y""#),
        tag("http.status_code", "int64", "500"),
        tag("ip", "string", r#""8.8.8.8""#),
        tag("ratio", "float64", "0.25"),
        tag("tags", "string", r#""[\"a\",1,true]""#),
        tag("whole", "float64", "3"),
        tag("span.kind", "string", r#""server""#),
        tag("otel.status_code", "string", r#""ERROR""#),
        tag("error", "bool", "true"),
        tag("otel.status_description", "string", r#""boom""#),
        tag("w3c.tracestate", "string", r#""vendor=1""#),
    ]
    .join(",");
    let root_logs = [
        format!(
            r#"{{"timestamp":1700000000000126,"fields":[{}]}}"#,
            tag("event", "string", r#""custom""#)
        ),
        format!(
            r#"{{"timestamp":1700000000000125,"fields":[{}]}}"#,
            tag("event", "string", r#""cache.miss""#)
        ),
        format!(
            r#"{{"timestamp":1700000000000124,"fields":[{},{},{}]}}"#,
            tag("event", "string", r#""exception""#),
            tag("exception.message", "string", r#""x""#),
            tag("exception.type", "string", r#""E""#)
        ),
    ]
    .join(",");
    let root = format!(
        concat!(
            r#"{{"traceID":"0102030405060708090a0b0c0d0e0f10","spanID":"1111111111111111","#,
            r#""operationName":"GET /cart","references":[{{"refType":"FOLLOWS_FROM","#,
            r#""traceID":"0000000000abcdef","spanID":"4444444444444444"}}],"#,
            r#""startTime":1700000000000123,"duration":5000,"tags":[{}],"logs":[{}],"#,
            r#""processID":"p1","warnings":["Invalid span link removed"]}}"#
        ),
        root_tags, root_logs
    );
    let internal = format!(
        concat!(
            r#"{{"traceID":"0102030405060708090a0b0c0d0e0f10","spanID":"3333333333333333","#,
            r#""operationName":"render","references":[{{"refType":"CHILD_OF","#,
            r#""traceID":"0102030405060708090a0b0c0d0e0f10","spanID":"1111111111111111"}}],"#,
            r#""startTime":1700000000002123,"duration":1500,"tags":[{},{},{}],"logs":[],"#,
            r#""processID":"p1","warnings":null}}"#
        ),
        tag("otel.scope.name", "string", r#""io.opentelemetry.http""#),
        tag("otel.scope.version", "string", r#""1.2.3""#),
        tag("span.kind", "string", r#""internal""#),
    );
    let client = format!(
        concat!(
            r#"{{"traceID":"0102030405060708090a0b0c0d0e0f10","spanID":"2222222222222222","#,
            r#""operationName":"SELECT cart","references":["#,
            r#"{{"refType":"CHILD_OF","traceID":"0102030405060708090a0b0c0d0e0f10","spanID":"1111111111111111"}},"#,
            r#"{{"refType":"CHILD_OF","traceID":"0102030405060708090a0b0c0d0e0f10","spanID":"3333333333333333"}}],"#,
            r#""startTime":1700000000001123,"duration":0,"tags":[{},{},{},{}],"logs":[],"#,
            r#""processID":"p2","warnings":null}}"#
        ),
        tag("otel.scope.name", "string", r#""cart-lib""#),
        tag("db.system", "string", r#""postgresql""#),
        tag("span.kind", "string", r#""client""#),
        tag("otel.status_code", "string", r#""OK""#),
    );
    let processes = format!(
        r#"{{"p1":{{"serviceName":"frontend","tags":[{},{},{}]}},"p2":{{"serviceName":"cart","tags":[{},{}]}}}}"#,
        tag("host.name", "string", r#""h1""#),
        tag("process.pid", "int64", "42"),
        tag("service.namespace", "string", r#""shop-slot-1""#),
        tag("service.namespace", "string", r#""shop-slot-1""#),
        tag("telemetry.sdk.name", "string", r#""opentelemetry""#),
    );
    format!(
        r#"{{"traceID":"0102030405060708090a0b0c0d0e0f10","spans":[{root},{internal},{client}],"processes":{processes},"warnings":null}}"#
    )
}

fn envelope(data: &str, errors: &str) -> String {
    format!(r#"{{"data":{data},"total":0,"limit":0,"offset":0,"errors":{errors}}}"#)
}

struct Harness {
    state: ApiState,
    ready: Arc<AtomicBool>,
}

fn harness(reader: MemReader) -> Harness {
    let ready = Arc::new(AtomicBool::new(false));
    let state = ApiState::new(
        Arc::new(reader),
        ready.clone(),
        BuildInfo {
            version: "0.1.0-test".into(),
        },
    );
    Harness { state, ready }
}

fn golden() -> Harness {
    harness(MemReader {
        spans: golden_spans(),
        broken: false,
    })
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn get(h: &Harness, uri: &str) -> Answer {
    let resp = router(h.state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

const TRACE_HEX: &str = "0102030405060708090a0b0c0d0e0f10";

#[tokio::test]
async fn trace_by_id_is_byte_identical_to_jaeger() {
    let h = golden();
    let a = get(&h, &format!("/api/traces/{TRACE_HEX}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.content_type, "application/json");
    let want = envelope(&format!("[{}]", golden_trace_json()), "null");
    assert_eq!(a.body, want);
}

#[tokio::test]
async fn search_returns_the_whole_golden_trace() {
    let h = golden();
    // Matching the client span alone still returns all three spans.
    let a = get(
        &h,
        &format!(
            "/api/traces?service=cart&start={}&end={}",
            T0 / 1000,
            T0 / 1000 + 10_000_000
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body,
        envelope(&format!("[{}]", golden_trace_json()), "null")
    );
}

#[tokio::test]
async fn raw_trace_skips_adjustments() {
    let h = golden();
    let a = get(&h, &format!("/api/traces/{TRACE_HEX}?raw=true")).await;
    assert_eq!(a.status, StatusCode::OK);
    let v = a.json();
    let root = &v["data"][0]["spans"][0];
    // Attributes keep their sent order; the link without a trace id stays.
    assert_eq!(root["tags"][2]["key"], "http.route");
    assert_eq!(root["references"].as_array().unwrap().len(), 2);
    assert_eq!(root["references"][1]["traceID"], "0000000000000000");
    assert_eq!(root["warnings"], serde_json::Value::Null);
    assert_eq!(root["logs"][0]["fields"][0]["value"], "exception");
    assert_eq!(root["tags"][12]["key"], "ip");
    assert_eq!(root["tags"][12]["value"], 0x0808_0808);

    let a = get(&h, &format!("/api/traces/{TRACE_HEX}?raw=maybe")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.body,
        envelope(
            "null",
            r#"[{"code":400,"msg":"unable to parse param 'raw': strconv.ParseBool: parsing \"maybe\": invalid syntax"}]"#
        ) + "\n"
    );
}

#[tokio::test]
async fn missing_trace_is_jaegers_404_envelope() {
    let h = golden();
    let a = get(&h, "/api/traces/abc").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.content_type, "text/plain; charset=utf-8");
    assert_eq!(
        a.body,
        "{\"data\":null,\"total\":0,\"limit\":0,\"offset\":0,\"errors\":[{\"code\":404,\"msg\":\"trace not found\"}]}\n"
    );
}

#[tokio::test]
async fn malformed_trace_id_is_a_400() {
    let h = golden();
    let a = get(&h, "/api/traces/not-hex").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.body,
        envelope(
            "null",
            r#"[{"code":400,"msg":"strconv.ParseUint: parsing \"not-hex\": invalid syntax"}]"#
        ) + "\n"
    );
    let a = get(&h, &format!("/api/traces/{TRACE_HEX}?start=soon")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.contains("unable to parse param 'start'"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn short_trace_ids_are_left_padded_and_printed_like_jaeger() {
    let mut spans = golden_spans();
    let short = TraceId([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0xbc]);
    for s in &mut spans {
        s.trace_id = short;
    }
    let h = harness(MemReader {
        spans,
        broken: false,
    });
    let a = get(&h, "/api/traces/abc").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v = a.json();
    assert_eq!(v["data"][0]["traceID"], "0000000000000abc");
    assert_eq!(
        v["data"][0]["spans"][2]["references"][0]["traceID"],
        "0000000000000abc"
    );
}

#[tokio::test]
async fn search_by_trace_ids_reports_missing_ones() {
    let h = golden();
    let a = get(&h, &format!("/api/traces?traceID={TRACE_HEX}&traceID=ff")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        a.body,
        envelope(
            &format!("[{}]", golden_trace_json()),
            r#"[{"msg":"trace not found","traceID":"00000000000000ff"}]"#
        )
    );
}

async fn search_ids(h: &Harness, query: &str) -> Vec<String> {
    let a = get(h, &format!("/api/traces?{query}")).await;
    assert_eq!(a.status, StatusCode::OK, "{query}: {}", a.body);
    a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect()
}

/// A second, later trace of `frontend` only, 1ms long.
fn two_traces() -> Harness {
    let mut spans = golden_spans();
    let mut other = spans[2].clone();
    other.trace_id = TraceId([9; 16]);
    other.parent_span_id = None;
    other.name = "GET /health".into();
    other.start_unix_nano = T0 + 60_000_000_000;
    other.end_unix_nano = other.start_unix_nano + 1_000_000;
    spans.push(other);
    harness(MemReader {
        spans,
        broken: false,
    })
}

#[tokio::test]
async fn search_filters_reach_the_store() {
    let h = two_traces();
    let window = format!("start={}&end={}", T0 / 1000, T0 / 1000 + 120_000_000);
    let newer = "09090909090909090909090909090909".to_string();
    let golden = TRACE_HEX.to_string();
    assert_eq!(
        search_ids(&h, &format!("service=frontend&{window}")).await,
        vec![newer.clone(), golden.clone()]
    );
    assert_eq!(
        search_ids(&h, &format!("service=frontend&limit=1&{window}")).await,
        vec![newer.clone()]
    );
    assert_eq!(
        search_ids(
            &h,
            &format!("service=frontend&operation=GET%20%2Fcart&{window}")
        )
        .await,
        vec![golden.clone()]
    );
    assert_eq!(
        search_ids(&h, &format!("service=frontend&minDuration=2ms&{window}")).await,
        vec![golden.clone()]
    );
    assert_eq!(
        search_ids(&h, &format!("service=frontend&maxDuration=1.2ms&{window}")).await,
        vec![newer.clone()]
    );
    assert_eq!(
        search_ids(&h, &format!("service=frontend&maxDuration=-1s&{window}")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        search_ids(&h, &format!("service=frontend&tag=error:true&{window}")).await,
        vec![golden.clone()]
    );
    assert_eq!(
        search_ids(
            &h,
            &format!("service=frontend&tags=%7B%22http.status_code%22%3A%22500%22%7D&{window}")
        )
        .await,
        vec![golden.clone()]
    );
    assert_eq!(
        search_ids(
            &h,
            &format!("service=cart&tag=service.namespace:shop-slot-1&{window}")
        )
        .await,
        vec![golden.clone()]
    );
    assert_eq!(
        search_ids(
            &h,
            &format!("service=cart&tag=service.namespace:other&{window}")
        )
        .await,
        Vec::<String>::new()
    );
    // Only the golden trace falls in a window ending before the newer one starts.
    assert_eq!(
        search_ids(
            &h,
            &format!(
                "service=frontend&start={}&end={}",
                T0 / 1000,
                T0 / 1000 + 1_000_000
            )
        )
        .await,
        vec![golden.clone()]
    );
    // Without a start, a lookback before `end` sets the window.
    assert_eq!(
        search_ids(
            &h,
            &format!(
                "service=frontend&end={}&lookback=1m",
                T0 / 1000 + 30_000_000
            )
        )
        .await,
        vec![golden]
    );
    // The default window is the last two days, long after these traces.
    assert_eq!(
        search_ids(&h, "service=frontend").await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn search_parameter_errors_are_400_envelopes() {
    let h = golden();
    let cases = [
        ("/api/traces", "parameter 'service' is required"),
        (
            "/api/traces?service=a&minDuration=abc",
            r#"unable to parse param 'minDuration': time: invalid duration \"abc\""#,
        ),
        (
            "/api/traces?service=a&limit=x",
            r#"strconv.ParseInt: parsing \"x\": invalid syntax"#,
        ),
        (
            "/api/traces?service=a&tag=bad",
            "malformed 'tag' parameter, expecting key:value, received: bad",
        ),
    ];
    for (uri, msg) in cases {
        let a = get(&h, uri).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(a.content_type, "text/plain; charset=utf-8");
        assert_eq!(
            a.body,
            envelope("null", &format!(r#"[{{"code":400,"msg":"{msg}"}}]"#)) + "\n",
            "{uri}"
        );
    }
}

#[tokio::test]
async fn services_and_operations() {
    let h = golden();
    let a = get(&h, "/api/services").await;
    assert_eq!(
        a.body,
        r#"{"data":["cart","frontend"],"total":2,"limit":0,"offset":0,"errors":null}"#
    );
    let a = get(&h, "/api/services/frontend/operations").await;
    assert_eq!(
        a.body,
        r#"{"data":["GET /cart","render"],"total":2,"limit":0,"offset":0,"errors":null}"#
    );
    let a = get(&h, "/api/services/nobody/operations").await;
    assert_eq!(
        a.body,
        r#"{"data":null,"total":0,"limit":0,"offset":0,"errors":null}"#
    );
    let a = get(&h, "/api/operations?service=frontend").await;
    assert_eq!(
        a.body,
        r#"{"data":[{"name":"GET /cart","spanKind":"server"},{"name":"render","spanKind":"internal"}],"total":2,"limit":0,"offset":0,"errors":null}"#
    );
    let a = get(&h, "/api/operations?service=frontend&spanKind=server").await;
    assert_eq!(
        a.body,
        r#"{"data":[{"name":"GET /cart","spanKind":"server"}],"total":1,"limit":0,"offset":0,"errors":null}"#
    );
    let a = get(&h, "/api/operations?service=frontend&spanKind=sideways").await;
    assert_eq!(
        a.body,
        r#"{"data":[],"total":0,"limit":0,"offset":0,"errors":null}"#
    );
    let a = get(&h, "/api/operations").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.body,
        envelope(
            "null",
            r#"[{"code":400,"msg":"parameter 'service' is required"}]"#
        ) + "\n"
    );
}

#[tokio::test]
async fn empty_store_answers_empty_lists() {
    let h = harness(MemReader::default());
    assert_eq!(
        get(&h, "/api/services").await.body,
        r#"{"data":[],"total":0,"limit":0,"offset":0,"errors":null}"#
    );
    assert_eq!(
        get(&h, "/api/traces?service=x").await.body,
        envelope("[]", "null")
    );
    assert_eq!(
        get(&h, "/api/dependencies").await.body,
        envelope("[]", "null")
    );
}

#[tokio::test]
async fn pretty_print_indents_like_go() {
    let h = golden();
    let a = get(&h, "/api/services?prettyPrint=true").await;
    assert_eq!(
        a.body,
        "{\n    \"data\": [\n        \"cart\",\n        \"frontend\"\n    ],\n    \"total\": 2,\n    \"limit\": 0,\n    \"offset\": 0,\n    \"errors\": null\n}"
    );
    let a = get(&h, "/api/services?prettyPrint=false").await;
    assert!(!a.body.contains('\n'));
}

#[tokio::test]
async fn dependencies_from_parent_child_spans() {
    let h = golden();
    let end_ms = (T0 + 10_000_000_000) / 1_000_000;
    let a = get(
        &h,
        &format!("/api/dependencies?endTs={end_ms}&lookback=60000"),
    )
    .await;
    assert_eq!(
        a.body,
        envelope(
            r#"[{"parent":"frontend","child":"cart","callCount":1}]"#,
            "null"
        )
    );
    let a = get(
        &h,
        &format!("/api/dependencies?endTs={end_ms}&lookback=60000&service=cart"),
    )
    .await;
    assert_eq!(
        a.body,
        envelope(
            r#"[{"parent":"frontend","child":"cart","callCount":1}]"#,
            "null"
        )
    );
    let a = get(
        &h,
        &format!("/api/dependencies?endTs={end_ms}&lookback=60000&service=other"),
    )
    .await;
    assert_eq!(a.body, envelope("[]", "null"));
    // A window that ends before the client span started.
    let a = get(
        &h,
        &format!("/api/dependencies?endTs={}&lookback=1000", T0 / 1_000_000),
    )
    .await;
    assert_eq!(a.body, envelope("[]", "null"));
    let a = get(&h, "/api/dependencies?endTs=yesterday").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.body,
        envelope(
            "null",
            r#"[{"code":400,"msg":"unable to parse param 'endTs': strconv.ParseInt: parsing \"yesterday\": invalid syntax"}]"#
        ) + "\n"
    );
    let a = get(&h, "/api/dependencies?lookback=1h").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.contains("unable to parse param 'lookback'"),
        "{}",
        a.body
    );
}

#[tokio::test]
async fn store_errors_are_500_envelopes() {
    let h = harness(MemReader {
        spans: Vec::new(),
        broken: true,
    });
    let msg = "trace store I/O on /data/traces/block-1: disk on fire";
    for uri in [
        "/api/services".to_string(),
        "/api/services/x/operations".to_string(),
        "/api/operations?service=x".to_string(),
        "/api/traces?service=x".to_string(),
        format!("/api/traces/{TRACE_HEX}"),
        format!("/api/traces?traceID={TRACE_HEX}"),
        "/api/dependencies".to_string(),
    ] {
        let a = get(&h, &uri).await;
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert_eq!(
            a.body,
            envelope("null", &format!(r#"[{{"code":500,"msg":"{msg}"}}]"#)) + "\n",
            "{uri}"
        );
    }
    for uri in ["/api/v3/services", "/api/v3/traces/abc"] {
        let a = get(&h, uri).await;
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert_eq!(
            a.body,
            format!(r#"{{"error":{{"httpCode":500,"message":"{msg}"}}}}"#) + "\n"
        );
    }
}

#[tokio::test]
async fn exact_duplicate_spans_are_shown_once() {
    let mut spans = golden_spans();
    spans.push(spans[1].clone());
    let h = harness(MemReader {
        spans,
        broken: false,
    });
    let a = get(&h, &format!("/api/traces/{TRACE_HEX}")).await;
    assert_eq!(
        a.body,
        envelope(&format!("[{}]", golden_trace_json()), "null")
    );
    // A span that differs (here in name) is not a duplicate.
    let mut spans = golden_spans();
    let mut copy = spans[1].clone();
    copy.name = "SELECT cart again".into();
    spans.push(copy);
    let h = harness(MemReader {
        spans,
        broken: false,
    });
    let v = get(&h, &format!("/api/traces/{TRACE_HEX}")).await.json();
    assert_eq!(v["data"][0]["spans"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn health_and_readiness() {
    let h = golden();
    let a = get(&h, "/-/healthy").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, "Lookout is Healthy.\n")
    );
    let a = get(&h, "/-/ready").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
    );
    h.ready.store(true, std::sync::atomic::Ordering::Release);
    let a = get(&h, "/-/ready").await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (StatusCode::OK, "Lookout is Ready.\n")
    );
    assert_eq!(h.state.build().version, "0.1.0-test");
}

#[tokio::test]
async fn metrics_expose_query_durations() {
    let h = golden();
    get(&h, "/api/services").await;
    let a = get(&h, "/metrics").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        a.body
            .contains("# TYPE lookout_query_duration_seconds histogram\n"),
        "{}",
        a.body
    );
    let count_line = a
        .body
        .lines()
        .find(|l| {
            l.starts_with(
                r#"lookout_query_duration_seconds_count{api="jaeger",endpoint="/api/services"} "#,
            )
        })
        .expect("services series");
    let count: f64 = count_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{count_line}");
    assert!(a.body.contains(r#"endpoint="/api/v3/traces/{trace_id}""#));
}

#[tokio::test]
async fn v3_services_and_operations() {
    let h = golden();
    let a = get(&h, "/api/v3/services").await;
    assert_eq!(a.body, r#"{"services":["cart","frontend"]}"#);
    let a = get(&h, "/api/v3/operations?service=frontend").await;
    assert_eq!(
        a.body,
        r#"{"operations":[{"name":"GET /cart","spanKind":"server"},{"name":"render","spanKind":"internal"}]}"#
    );
    let a = get(&h, "/api/v3/operations?service=frontend&span_kind=server").await;
    assert_eq!(
        a.body,
        r#"{"operations":[{"name":"GET /cart","spanKind":"server"}]}"#
    );
    let a = get(&h, "/api/v3/operations?service=nobody").await;
    assert_eq!(a.body, "{}");
    let empty = harness(MemReader::default());
    assert_eq!(get(&empty, "/api/v3/services").await.body, "{}");
}

fn v3_span<'a>(v: &'a serde_json::Value, service: &str, name: &str) -> &'a serde_json::Value {
    for rs in v["result"]["resourceSpans"].as_array().unwrap() {
        let svc = rs["resource"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == "service.name")
            .unwrap();
        if svc["value"]["stringValue"] != service {
            continue;
        }
        for ss in rs["scopeSpans"].as_array().unwrap() {
            for s in ss["spans"].as_array().unwrap() {
                if s["name"] == name {
                    return s;
                }
            }
        }
    }
    panic!("no span {service}/{name} in {v}");
}

fn keys(attrs: &serde_json::Value) -> Vec<String> {
    attrs
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn v3_trace_is_adjusted_otlp_json() {
    let h = golden();
    let a = get(&h, &format!("/api/v3/traces/{TRACE_HEX}")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v = a.json();
    let rs = v["result"]["resourceSpans"].as_array().unwrap();
    assert_eq!(rs.len(), 2);
    assert_eq!(
        keys(&rs[0]["resource"]["attributes"]),
        [
            "host.name",
            "process.pid",
            "service.name",
            "service.namespace"
        ]
    );
    assert_eq!(
        keys(&rs[1]["resource"]["attributes"]),
        ["service.name", "service.namespace", "telemetry.sdk.name"]
    );
    let root = v3_span(&v, "frontend", "GET /cart");
    assert_eq!(root["traceId"], TRACE_HEX);
    assert_eq!(root["spanId"], "1111111111111111");
    assert_eq!(
        keys(&root["attributes"]),
        [
            "big",
            "blob",
            "cached",
            "empty",
            "headers",
            "http.route",
            "http.status_code",
            "ip",
            "ratio",
            "tags",
            "whole",
            "@jaeger@warnings"
        ]
    );
    let events: Vec<&str> = root["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(events, ["", "cache.miss", "exception"]);
    assert_eq!(root["links"].as_array().unwrap().len(), 1);
    assert_eq!(root["status"]["code"], 2);
    let client = v3_span(&v, "cart", "SELECT cart");
    assert_eq!(client["parentSpanId"], "1111111111111111");
    assert_eq!(keys(&client["attributes"]), ["db.system"]);

    let raw = get(&h, &format!("/api/v3/traces/{TRACE_HEX}?raw_traces=true"))
        .await
        .json();
    let root = v3_span(&raw, "frontend", "GET /cart");
    assert_eq!(root["links"].as_array().unwrap().len(), 2);
    assert_eq!(keys(&root["attributes"])[0], "http.route");
}

#[tokio::test]
async fn v3_errors_have_the_gateway_shape() {
    let h = golden();
    let a = get(&h, "/api/v3/traces/ff").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.content_type, "text/plain; charset=utf-8");
    assert_eq!(
        a.body,
        "{\"error\":{\"httpCode\":404,\"message\":\"No traces found\"}}\n"
    );
    let a = get(&h, "/api/v3/traces/xyz").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        a.body,
        "{\"error\":{\"httpCode\":400,\"message\":\"malformed parameter trace_id: strconv.ParseUint: parsing \\\"xyz\\\": invalid syntax\"}}\n"
    );
    let cases = [
        (
            "/api/v3/traces?query.service_name=frontend",
            "query.startTimeMin and query.startTimeMax are required",
        ),
        (
            "/api/v3/traces?query.start_time_min=NaN&query.start_time_max=2024-01-01T00:00:00Z",
            r#"malformed parameter query.start_time_min: parsing time \"NaN\" as \"2006-01-02T15:04:05.999999999Z07:00\": cannot parse \"NaN\" as \"2006\""#,
        ),
        (
            "/api/v3/traces?query.start_time_min=2024-01-01T00:00:00Z&query.start_time_max=2024-01-01T00:00:00Z&query.duration_min=NaN",
            r#"malformed parameter query.duration_min: time: invalid duration \"NaN\""#,
        ),
        (
            "/api/v3/traces?query.start_time_min=2024-01-01T00:00:00Z&query.start_time_max=2024-01-01T00:00:00Z&query.search_depth=-1",
            r#"malformed parameter query.search_depth: strconv.ParseUint: parsing \"-1\": invalid syntax"#,
        ),
        (
            "/api/v3/traces?query.start_time_min=2024-01-01T00:00:00Z&query.start_time_max=2024-01-01T00:00:00Z&query.raw_traces=foobar",
            r#"malformed parameter query.raw_traces: strconv.ParseBool: parsing \"foobar\": invalid syntax"#,
        ),
    ];
    for (uri, msg) in cases {
        let a = get(&h, uri).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(
            a.body,
            format!(r#"{{"error":{{"httpCode":400,"message":"{msg}"}}}}"#) + "\n",
            "{uri}"
        );
    }
}

#[tokio::test]
async fn v3_search() {
    let h = two_traces();
    let window =
        "query.start_time_min=2023-11-14T22:00:00Z&query.start_time_max=2023-11-14T23:00:00Z";
    let a = get(
        &h,
        &format!("/api/v3/traces?query.service_name=frontend&{window}"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let v = a.json();
    let trace_ids: BTreeSet<String> = v["result"]["resourceSpans"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|rs| rs["scopeSpans"].as_array().unwrap().iter())
        .flat_map(|ss| ss["spans"].as_array().unwrap().iter())
        .map(|s| s["traceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(trace_ids.len(), 2);
    // camelCase spellings, attributes and depth.
    let a = get(
        &h,
        "/api/v3/traces?query.serviceName=frontend&query.startTimeMin=2023-11-14T22:00:00Z&query.startTimeMax=2023-11-14T23:00:00Z&query.attributes=%7B%22error%22%3A%22true%22%7D&query.searchDepth=5",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains(TRACE_HEX));
    assert!(!a.body.contains("09090909090909090909090909090909"));
    // Nothing in range is Jaeger's 404.
    let a = get(
        &h,
        "/api/v3/traces?query.service_name=frontend&query.start_time_min=2020-01-01T00:00:00Z&query.start_time_max=2020-01-02T00:00:00Z",
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn undecodable_path_segments_are_400s_not_panics() {
    let h = golden();
    let a = get(&h, "/api/traces/%FF%FE").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.starts_with(r#"{"data":null"#), "{}", a.body);
    let a = get(&h, "/api/services/%FF/operations").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.body.starts_with(r#"{"data":null"#), "{}", a.body);
    let a = get(&h, "/api/v3/traces/%FF").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body.starts_with(r#"{"error":{"httpCode":400"#),
        "{}",
        a.body
    );
}
