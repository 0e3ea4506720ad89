//! Jaeger query API v3 over HTTP: `/api/v3/services`, `/api/v3/operations`,
//! `/api/v3/traces`, `/api/v3/traces/{trace_id}` (the current Jaeger UI's API).
//!
//! Mirrors Jaeger's `apiv3` HTTP gateway: traces come back as OTLP JSON wrapped as
//! `{"result":{"resourceSpans":[…]}}` (every trace of a search in one `TracesData`), adjusted
//! like v1 answers unless `raw_traces` is set; empty lists are left out as protobuf JSON does;
//! errors are `{"error":{"httpCode":N,"message":"…"}}` sent by Go's `http.Error`, and a
//! search or lookup that finds nothing is a 404 `No traces found`. Parameters are accepted in
//! both spellings Jaeger knows: camelCase (`query.serviceName`) and snake_case
//! (`query.service_name`).

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use traces::TraceQuery;

use super::convert;
use super::handler::DEFAULT_LIMIT;
use super::params::{clamp_nanos, parse_trace_id, Params};
use super::MAX_LIMIT;
use crate::{gocompat, ApiError, ApiState};

/// The v3 routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v3/services", get(services))
        .route("/api/v3/operations", get(operations))
        .route("/api/v3/traces", get(find_traces))
        .route("/api/v3/traces/{trace_id}", get(get_trace))
}

fn json_ok(v: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        gocompat::go_html_escape(v.to_string()),
    )
        .into_response()
}

/// The gateway's error answer, written by Go's `http.Error`.
fn error_response(status: StatusCode, message: String) -> Response {
    let body = json!({"error": {"httpCode": status.as_u16(), "message": message}});
    gocompat::http_error(status, gocompat::go_html_escape(body.to_string()))
}

fn api_error(e: ApiError) -> Response {
    match e {
        ApiError::BadRequest(msg) => error_response(StatusCode::BAD_REQUEST, msg),
        ApiError::TraceNotFound => {
            error_response(StatusCode::NOT_FOUND, "No traces found".to_string())
        }
        ApiError::Store(err) => {
            tracing::error!(error = %err, "jaeger v3 query failed");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
        }
        ApiError::Task(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn malformed(name: &str, cause: impl std::fmt::Display) -> String {
    format!("malformed parameter {name}: {cause}")
}

/// The value of the first non-empty spelling of a parameter, with the name it was found under.
fn param<'a>(p: &'a Params, names: &[&'a str]) -> (&'a str, &'a str) {
    for name in names {
        let v = p.get(name);
        if !v.is_empty() {
            return (v, name);
        }
    }
    ("", names[0])
}

async fn services(State(state): State<ApiState>) -> Response {
    let _timer = state.timer("/api/v3/services");
    match state.query(|r| Ok(r.services()?)).await {
        // Protobuf JSON leaves out an empty repeated field.
        Ok(services) if services.is_empty() => json_ok(&json!({})),
        Ok(services) => json_ok(&json!({ "services": services })),
        Err(e) => api_error(e),
    }
}

async fn operations(State(state): State<ApiState>, p: Params) -> Response {
    let _timer = state.timer("/api/v3/operations");
    let service = p.get("service").to_string();
    let kind = match param(&p, &["spanKind", "span_kind"]).0 {
        "" => None,
        k => match model::SpanKind::from_name(k) {
            Some(kind) => Some(kind),
            None => return json_ok(&json!({})),
        },
    };
    match state
        .query(move |r| Ok(r.operations(&service, kind)?))
        .await
    {
        Ok(ops) if ops.is_empty() => json_ok(&json!({})),
        Ok(ops) => {
            let ops: Vec<Value> = ops
                .into_iter()
                .map(|o| {
                    // Jaeger reports operations of unspecified kind as internal.
                    let kind = match o.span_kind.jaeger_name() {
                        "" => "internal",
                        k => k,
                    };
                    let mut op = serde_json::Map::new();
                    if !o.name.is_empty() {
                        op.insert("name".into(), Value::String(o.name));
                    }
                    op.insert("spanKind".into(), Value::String(kind.into()));
                    Value::Object(op)
                })
                .collect();
            json_ok(&json!({ "operations": ops }))
        }
        Err(e) => api_error(e),
    }
}

/// Adjusts (unless raw) each trace and nests all of them into one OTLP `TracesData`.
fn traces_result(traces: Vec<Vec<model::Span>>, raw: bool) -> Value {
    let mut resource_spans = Vec::new();
    for spans in traces {
        let mut groups = convert::group(spans);
        if !raw {
            convert::adjust(&mut groups);
        }
        let spans = convert::ungroup(groups);
        resource_spans.extend(model::otlp::request_from_spans(&spans).resource_spans);
    }
    json!({ "result": model::otlp_json::traces_to_json_value(&resource_spans) })
}

fn parse_raw(p: &Params, names: &[&str]) -> Result<bool, String> {
    match param(p, names) {
        ("", _) => Ok(false),
        (v, name) => gocompat::parse_bool(v).map_err(|e| malformed(name, e)),
    }
}

async fn get_trace(
    State(state): State<ApiState>,
    trace_id: Result<Path<String>, PathRejection>,
    p: Params,
) -> Response {
    let _timer = state.timer("/api/v3/traces/{trace_id}");
    let id = match trace_id
        .map_err(|e| e.body_text())
        .and_then(|Path(id)| parse_trace_id(&id))
    {
        Ok(id) => id,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, malformed("trace_id", e)),
    };
    // The window only narrows where Jaeger's stores look; malformed values are still errors.
    for names in [["startTime", "start_time"], ["endTime", "end_time"]] {
        let (v, name) = param(&p, &names);
        if !v.is_empty() {
            if let Err(e) = gocompat::parse_rfc3339(v) {
                return error_response(StatusCode::BAD_REQUEST, malformed(name, e));
            }
        }
    }
    let raw = match parse_raw(&p, &["rawTraces", "raw_traces"]) {
        Ok(raw) => raw,
        Err(msg) => return error_response(StatusCode::BAD_REQUEST, msg),
    };
    let result = state
        .query(move |r| match r.trace(id)? {
            Some(spans) if !spans.is_empty() => Ok(traces_result(vec![spans], raw)),
            _ => Err(ApiError::TraceNotFound),
        })
        .await;
    match result {
        Ok(v) => json_ok(&v),
        Err(e) => api_error(e),
    }
}

/// A parsed `/api/v3/traces` request.
struct Find {
    query: TraceQuery,
    raw: bool,
    matches_nothing: bool,
}

fn parse_find(p: &Params) -> Result<Find, String> {
    let service = param(p, &["query.serviceName", "query.service_name"]).0;
    let operation = param(p, &["query.operationName", "query.operation_name"]).0;
    let mut tags = Vec::new();
    let attrs = p.get("query.attributes");
    if !attrs.is_empty() {
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_str(attrs).map_err(|e| malformed("query.attributes", e))?;
        tags.extend(map);
    }
    let (min, min_name) = param(p, &["query.startTimeMin", "query.start_time_min"]);
    let (max, max_name) = param(p, &["query.startTimeMax", "query.start_time_max"]);
    if min.is_empty() || max.is_empty() {
        return Err(format!("{min_name} and {max_name} are required"));
    }
    let start_min = gocompat::parse_rfc3339(min).map_err(|e| malformed(min_name, e))?;
    let start_max = gocompat::parse_rfc3339(max).map_err(|e| malformed(max_name, e))?;
    let limit = match param(
        p,
        &[
            "query.searchDepth",
            "query.search_depth",
            "query.num_traces",
        ],
    ) {
        ("", _) => DEFAULT_LIMIT,
        (v, name) => match gocompat::parse_uint32(v).map_err(|e| malformed(name, e))? {
            0 => DEFAULT_LIMIT,
            n => (n as usize).min(MAX_LIMIT),
        },
    };
    let duration = |names: &[&str]| -> Result<i64, String> {
        match param(p, names) {
            ("", _) => Ok(0),
            (v, name) => gocompat::parse_go_duration(v).map_err(|e| malformed(name, e)),
        }
    };
    let duration_min = duration(&["query.durationMin", "query.duration_min"])?;
    let duration_max = duration(&["query.durationMax", "query.duration_max"])?;
    let raw = parse_raw(p, &["query.rawTraces", "query.raw_traces"])?;
    let nanos = |d: i64| (d > 0).then(|| Duration::from_nanos(d as u64));
    Ok(Find {
        query: TraceQuery {
            service: (!service.is_empty()).then(|| service.to_string()),
            operation: (!operation.is_empty()).then(|| operation.to_string()),
            span_kind: None,
            tags,
            start_min: Some(clamp_nanos(start_min)),
            start_max: Some(clamp_nanos(start_max)),
            duration_min: nanos(duration_min),
            duration_max: nanos(duration_max),
            limit,
        },
        raw,
        matches_nothing: duration_max < 0 || start_max < 0,
    })
}

async fn find_traces(State(state): State<ApiState>, p: Params) -> Response {
    let _timer = state.timer("/api/v3/traces");
    let find = match parse_find(&p) {
        Ok(f) => f,
        Err(msg) => return error_response(StatusCode::BAD_REQUEST, msg),
    };
    let result = state
        .query(move |r| {
            if find.matches_nothing {
                return Err(ApiError::TraceNotFound);
            }
            let traces: Vec<Vec<model::Span>> = r
                .search(&find.query)?
                .into_iter()
                .filter(|t| !t.is_empty())
                .take(find.query.limit)
                .collect();
            if traces.is_empty() {
                return Err(ApiError::TraceNotFound);
            }
            Ok(traces_result(traces, find.raw))
        })
        .await;
    match result {
        Ok(v) => json_ok(&v),
        Err(e) => api_error(e),
    }
}
