//! Jaeger query API v1: `/api/services`, `/api/services/{s}/operations`, `/api/operations`,
//! `/api/traces`, `/api/traces/{id}`, `/api/dependencies`.
//!
//! Each handler mirrors the Go handler in Jaeger's `http_handler.go` and `query_parser.go`:
//! the same parameters, defaults (a 2-day search window, 100 traces, 24h of dependencies),
//! validation order and error messages, and the same quirks clients may depend on (`total` is
//! 0 for traces and dependencies; errors are the JSON envelope sent as `text/plain` with a
//! trailing newline, as Go's `http.Error` does). Lookout additions are strictly additive: a
//! `lookback` (`1h`, `2d`, `custom`) is honoured when `start` is absent, and `limit` is capped
//! at [`MAX_LIMIT`].

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use traces::{TraceQuery, TraceReader};

use super::convert;
use super::model::{DependencyLink, Envelope, Operation, StructuredError, Trace};
use super::params::{clamp_nanos, param_error, parse_epoch_time, parse_trace_id, Params};
use super::MAX_LIMIT;
use crate::{gocompat, now_nanos, ApiError, ApiState};

/// Jaeger's default number of traces per search.
pub const DEFAULT_LIMIT: usize = 100;
/// Jaeger's default search window when `start` is not given.
const DEFAULT_SEARCH_LOOKBACK_NANOS: u64 = 2 * 24 * 3_600 * 1_000_000_000;
/// Jaeger's default dependency window.
const DEFAULT_DEPENDENCY_LOOKBACK_NANOS: i128 = 24 * 3_600 * 1_000_000_000;

const SERVICE_REQUIRED: &str = "parameter 'service' is required";

/// The v1 routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/services", get(services))
        .route("/api/services/{service}/operations", get(operations_legacy))
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/dependencies", get(dependencies))
}

/// A successful answer: compact (or 4-space indented) JSON with Go's HTML escaping.
fn json_ok<T: Serialize>(body: &T, pretty: bool) -> Response {
    let text = if pretty {
        let mut buf = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        body.serialize(&mut ser)
            .map(|_| String::from_utf8(buf).unwrap_or_default())
    } else {
        serde_json::to_string(body)
    };
    match text {
        Ok(text) => (
            [(header::CONTENT_TYPE, "application/json")],
            gocompat::go_html_escape(text),
        )
            .into_response(),
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed writing HTTP response: {e}"),
        ),
    }
}

/// An error the way Jaeger's `handleError` sends it: the envelope with one error, written by
/// Go's `http.Error` (plain-text content type, `nosniff`, trailing newline).
pub(crate) fn error_response(status: StatusCode, msg: String) -> Response {
    let env: Envelope<()> = Envelope {
        data: (),
        total: 0,
        limit: 0,
        offset: 0,
        errors: Some(vec![StructuredError {
            code: status.as_u16(),
            msg,
            trace_id: String::new(),
        }]),
    };
    let text = serde_json::to_string(&env)
        .map(gocompat::go_html_escape)
        .unwrap_or_default();
    gocompat::http_error(status, text)
}

fn api_error(e: ApiError) -> Response {
    match e {
        ApiError::BadRequest(msg) => error_response(StatusCode::BAD_REQUEST, msg),
        ApiError::TraceNotFound => error_response(StatusCode::NOT_FOUND, e.to_string()),
        ApiError::Store(err) => {
            tracing::error!(error = %err, "jaeger query failed");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, err.to_string())
        }
        ApiError::Task(_) => error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn services(State(state): State<ApiState>, p: Params) -> Response {
    let _timer = state.timer("/api/services");
    match state.query(|r| Ok(r.services()?)).await {
        Ok(services) => {
            let total = services.len();
            json_ok(&Envelope::with_total(services, total), p.pretty())
        }
        Err(e) => api_error(e),
    }
}

async fn operations_legacy(
    State(state): State<ApiState>,
    service: Result<Path<String>, PathRejection>,
    p: Params,
) -> Response {
    let _timer = state.timer("/api/services/{service}/operations");
    let service = match service {
        Ok(Path(service)) => service,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let result = state
        .query(move |r| {
            let mut names: Vec<String> = r
                .operations(&service, None)?
                .into_iter()
                .map(|o| o.name)
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        })
        .await;
    match result {
        Ok(names) => {
            let total = names.len();
            // Jaeger collects the names into a nil Go slice, which marshals as null when empty.
            let data = (!names.is_empty()).then_some(names);
            json_ok(&Envelope::with_total(data, total), p.pretty())
        }
        Err(e) => api_error(e),
    }
}

async fn operations(State(state): State<ApiState>, p: Params) -> Response {
    let _timer = state.timer("/api/operations");
    let service = p.get("service").to_string();
    if service.is_empty() {
        return error_response(StatusCode::BAD_REQUEST, SERVICE_REQUIRED.into());
    }
    let kind = match p.get("spanKind") {
        "" => None,
        k => match model::SpanKind::from_name(k) {
            Some(kind) => Some(kind),
            // Jaeger hands the kind to the store verbatim; an unknown kind matches nothing.
            None => {
                return json_ok(
                    &Envelope::with_total(Vec::<Operation>::new(), 0),
                    p.pretty(),
                )
            }
        },
    };
    match state
        .query(move |r| Ok(r.operations(&service, kind)?))
        .await
    {
        Ok(ops) => {
            let data: Vec<Operation> = ops
                .into_iter()
                .map(|o| Operation {
                    name: o.name,
                    span_kind: o.span_kind.jaeger_name().to_string(),
                })
                .collect();
            let total = data.len();
            json_ok(&Envelope::with_total(data, total), p.pretty())
        }
        Err(e) => api_error(e),
    }
}

/// A parsed `/api/traces` request.
#[derive(Debug)]
struct Search {
    query: TraceQuery,
    trace_ids: Vec<model::TraceId>,
    /// The query can match nothing (a negative `maxDuration`), so the store is not asked.
    matches_nothing: bool,
}

/// Parses `/api/traces` parameters in the order Jaeger's `parseTraceQueryParams` does, so the
/// first error reported is the one Jaeger reports.
fn parse_search(p: &Params, now: u64) -> Result<Search, String> {
    let service = p.get("service");
    let operation = p.get("operation");
    let start = parse_epoch_time(p, "start", 1_000)?;
    let end = parse_epoch_time(p, "end", 1_000)?.unwrap_or(now);
    let start = match start {
        Some(s) => s,
        None => match p.get("lookback") {
            "" | "custom" => now.saturating_sub(DEFAULT_SEARCH_LOOKBACK_NANOS),
            lb => end.saturating_sub(parse_lookback(lb).map_err(|e| param_error("lookback", e))?),
        },
    };
    let tags = parse_tags(p)?;
    let limit = match p.get("limit") {
        "" => DEFAULT_LIMIT,
        // Jaeger returns strconv's error as it is here, without naming the parameter.
        l => match gocompat::parse_int(l, 32)? {
            // Zero or less means "no limit" to Jaeger's stores; ours is bounded.
            n if n <= 0 => MAX_LIMIT,
            n => (n as usize).min(MAX_LIMIT),
        },
    };
    let min_duration = parse_duration(p, "minDuration")?;
    let max_duration = parse_duration(p, "maxDuration")?;
    let mut trace_ids = Vec::new();
    for id in p.all("traceID") {
        trace_ids.push(parse_trace_id(id).map_err(|e| format!("cannot parse traceID param: {e}"))?);
    }
    if trace_ids.is_empty() && service.is_empty() {
        return Err(SERVICE_REQUIRED.into());
    }
    if min_duration != 0 && max_duration != 0 && max_duration < min_duration {
        return Err("'maxDuration' should be greater than 'minDuration'".into());
    }
    let nanos = |d: i64| (d > 0).then(|| Duration::from_nanos(d as u64));
    Ok(Search {
        query: TraceQuery {
            service: (!service.is_empty()).then(|| service.to_string()),
            operation: (!operation.is_empty()).then(|| operation.to_string()),
            span_kind: None,
            tags,
            start_min: Some(start),
            start_max: Some(end),
            duration_min: nanos(min_duration),
            duration_max: nanos(max_duration),
            limit,
        },
        trace_ids,
        matches_nothing: max_duration < 0,
    })
}

/// A Go duration parameter in signed nanoseconds, 0 when empty.
fn parse_duration(p: &Params, name: &str) -> Result<i64, String> {
    match p.get(name) {
        "" => Ok(0),
        v => gocompat::parse_go_duration(v).map_err(|e| param_error(name, e)),
    }
}

/// The UI's lookback choices: Go durations (`1h`) plus whole days and weeks (`2d`, `1w`).
fn parse_lookback(v: &str) -> Result<u64, String> {
    const DAY: u64 = 24 * 3_600 * 1_000_000_000;
    let unit = match v.as_bytes().last() {
        Some(b'd') => Some(DAY),
        Some(b'w') => Some(7 * DAY),
        _ => None,
    };
    if let Some(unit) = unit {
        if let Ok(n) = v[..v.len() - 1].parse::<u64>() {
            return Ok(n.saturating_mul(unit));
        }
    }
    let d = gocompat::parse_go_duration(v)?;
    Ok(d.max(0) as u64)
}

/// `tag=k:v` (repeated) and `tags={"k":"v"}` (JSON, repeated), merged with later values
/// winning, as Jaeger merges them into one Go map. Sorted by key, for a deterministic query.
fn parse_tags(p: &Params) -> Result<Vec<(String, String)>, String> {
    let mut tags = BTreeMap::new();
    for tag in p.all("tag") {
        match tag.split_once(':') {
            Some((k, v)) => {
                tags.insert(k.to_string(), v.to_string());
            }
            None => {
                return Err(format!(
                    "malformed 'tag' parameter, expecting key:value, received: {tag}"
                ))
            }
        }
    }
    for json in p.all("tags") {
        let prefix = "malformed 'tags' parameter, cannot unmarshal JSON";
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("{prefix}: {e}"))?;
        match value {
            // Go leaves the map untouched when unmarshalling null.
            serde_json::Value::Null => {}
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let v = match v {
                        serde_json::Value::String(s) => s,
                        // Go stores a null map element as the zero string.
                        serde_json::Value::Null => String::new(),
                        other => {
                            return Err(format!(
                                "{prefix}: json: cannot unmarshal {} into Go value of type string",
                                go_json_kind(&other)
                            ))
                        }
                    };
                    tags.insert(k, v);
                }
            }
            other => {
                return Err(format!(
                    "{prefix}: json: cannot unmarshal {} into Go value of type map[string]string",
                    go_json_kind(&other)
                ))
            }
        }
    }
    Ok(tags.into_iter().collect())
}

fn go_json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Groups, adjusts (unless `raw`) and translates one stored trace.
fn render_trace(spans: Vec<model::Span>, raw: bool) -> Trace {
    let mut groups = convert::group(spans);
    if !raw {
        convert::adjust(&mut groups);
    }
    convert::to_jaeger_trace(&groups)
}

async fn search(State(state): State<ApiState>, p: Params) -> Response {
    let _timer = state.timer("/api/traces");
    let search = match parse_search(&p, now_nanos()) {
        Ok(s) => s,
        Err(msg) => return error_response(StatusCode::BAD_REQUEST, msg),
    };
    let result = state
        .query(move |r| {
            if !search.trace_ids.is_empty() {
                return by_ids(r, &search.trace_ids);
            }
            if search.matches_nothing {
                return Ok((Vec::new(), None));
            }
            let found = r.search(&search.query)?;
            let traces = found
                .into_iter()
                .filter(|t| !t.is_empty())
                .take(search.query.limit)
                .map(|t| render_trace(t, false))
                .collect();
            Ok((traces, None))
        })
        .await;
    match result {
        Ok((data, errors)) => json_ok(
            &Envelope {
                data,
                total: 0,
                limit: 0,
                offset: 0,
                errors,
            },
            p.pretty(),
        ),
        Err(e) => api_error(e),
    }
}

/// `/api/traces?traceID=…`: each id fetched on its own; missing ones become per-trace errors.
fn by_ids(
    r: &dyn TraceReader,
    ids: &[model::TraceId],
) -> Result<(Vec<Trace>, Option<Vec<StructuredError>>), ApiError> {
    let mut traces = Vec::new();
    let mut errors = Vec::new();
    for id in ids {
        match r.trace(*id)? {
            Some(spans) if !spans.is_empty() => traces.push(render_trace(spans, false)),
            _ => errors.push(StructuredError {
                code: 0,
                msg: "trace not found".into(),
                trace_id: convert::jaeger_trace_id(id),
            }),
        }
    }
    Ok((traces, (!errors.is_empty()).then_some(errors)))
}

async fn trace(
    State(state): State<ApiState>,
    trace_id: Result<Path<String>, PathRejection>,
    p: Params,
) -> Response {
    let _timer = state.timer("/api/traces/{traceID}");
    let id = match trace_id
        .map_err(|e| e.body_text())
        .and_then(|Path(id)| parse_trace_id(&id))
    {
        Ok(id) => id,
        Err(msg) => return error_response(StatusCode::BAD_REQUEST, msg),
    };
    // The time window only narrows where Jaeger's stores look; ours find a trace by id
    // directly, but malformed values are still rejected as Jaeger does.
    for name in ["start", "end"] {
        if let Err(msg) = parse_epoch_time(&p, name, 1_000) {
            return error_response(StatusCode::BAD_REQUEST, msg);
        }
    }
    let raw = match p.get("raw") {
        "" => false,
        v => match gocompat::parse_bool(v) {
            Ok(b) => b,
            Err(e) => return error_response(StatusCode::BAD_REQUEST, param_error("raw", e)),
        },
    };
    let result = state
        .query(move |r| match r.trace(id)? {
            Some(spans) if !spans.is_empty() => Ok(render_trace(spans, raw)),
            _ => Err(ApiError::TraceNotFound),
        })
        .await;
    match result {
        Ok(t) => json_ok(
            &Envelope {
                data: vec![t],
                total: 0,
                limit: 0,
                offset: 0,
                errors: None,
            },
            p.pretty(),
        ),
        Err(e) => api_error(e),
    }
}

async fn dependencies(State(state): State<ApiState>, p: Params) -> Response {
    let _timer = state.timer("/api/dependencies");
    let end = match parse_epoch_time(&p, "endTs", 1_000_000) {
        Ok(end) => end.unwrap_or_else(now_nanos),
        Err(msg) => return error_response(StatusCode::BAD_REQUEST, msg),
    };
    let lookback: i128 = match p.get("lookback") {
        "" => DEFAULT_DEPENDENCY_LOOKBACK_NANOS,
        v => match gocompat::parse_int(v, 64) {
            Ok(ms) => i128::from(ms) * 1_000_000,
            Err(e) => return error_response(StatusCode::BAD_REQUEST, param_error("lookback", e)),
        },
    };
    let service = p.get("service").to_string();
    let start = clamp_nanos(i128::from(end) - lookback);
    let result = state
        .query(move |r| {
            if lookback < 0 {
                return Ok(Vec::new());
            }
            let mut merged: BTreeMap<(String, String), u64> = BTreeMap::new();
            for l in r.dependencies(start, end)? {
                if !service.is_empty() && l.parent != service && l.child != service {
                    continue;
                }
                *merged.entry((l.parent, l.child)).or_default() += l.call_count;
            }
            Ok(merged
                .into_iter()
                .map(|((parent, child), call_count)| DependencyLink {
                    parent,
                    child,
                    call_count,
                })
                .collect::<Vec<_>>())
        })
        .await;
    match result {
        Ok(links) => json_ok(
            &Envelope {
                data: links,
                total: 0,
                limit: 0,
                offset: 0,
                errors: None,
            },
            p.pretty(),
        ),
        Err(e) => api_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> Params {
        Params(
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    const NOW: u64 = 1_700_000_000_000_000_000;

    #[test]
    fn search_defaults_follow_jaeger() {
        let s = parse_search(&params(&[("service", "svc")]), NOW).unwrap();
        assert_eq!(s.query.limit, DEFAULT_LIMIT);
        assert_eq!(s.query.start_max, Some(NOW));
        assert_eq!(s.query.start_min, Some(NOW - DEFAULT_SEARCH_LOOKBACK_NANOS));
        assert_eq!(s.query.duration_min, None);
        assert!(s.query.tags.is_empty());
    }

    #[test]
    fn search_reads_every_parameter() {
        let s = parse_search(
            &params(&[
                ("service", "svc"),
                ("operation", "GET /"),
                ("start", "1000"),
                ("end", "2000"),
                ("limit", "20"),
                ("minDuration", "1.5ms"),
                ("maxDuration", "1m30s"),
                ("tag", "http.status_code:500"),
                ("tag", "url:http://x:8080/"),
                ("tags", r#"{"error":"true","http.status_code":"503"}"#),
            ]),
            NOW,
        )
        .unwrap();
        let q = s.query;
        assert_eq!(q.service.as_deref(), Some("svc"));
        assert_eq!(q.operation.as_deref(), Some("GET /"));
        assert_eq!(q.start_min, Some(1_000_000));
        assert_eq!(q.start_max, Some(2_000_000));
        assert_eq!(q.limit, 20);
        assert_eq!(q.duration_min, Some(Duration::from_micros(1500)));
        assert_eq!(q.duration_max, Some(Duration::from_secs(90)));
        assert_eq!(
            q.tags,
            vec![
                ("error".to_string(), "true".to_string()),
                ("http.status_code".to_string(), "503".to_string()),
                ("url".to_string(), "http://x:8080/".to_string()),
            ]
        );
    }

    #[test]
    fn lookback_applies_only_without_start() {
        let s = parse_search(
            &params(&[("service", "s"), ("end", "10000000"), ("lookback", "2d")]),
            NOW,
        )
        .unwrap();
        assert_eq!(s.query.start_min, Some(0));
        let s = parse_search(&params(&[("service", "s"), ("lookback", "1h")]), NOW).unwrap();
        assert_eq!(s.query.start_min, Some(NOW - 3_600_000_000_000));
        let s = parse_search(&params(&[("service", "s"), ("lookback", "custom")]), NOW).unwrap();
        assert_eq!(s.query.start_min, Some(NOW - DEFAULT_SEARCH_LOOKBACK_NANOS));
        let s = parse_search(
            &params(&[("service", "s"), ("start", "5"), ("lookback", "junk")]),
            NOW,
        )
        .unwrap();
        assert_eq!(s.query.start_min, Some(5_000));
        assert_eq!(
            parse_search(&params(&[("service", "s"), ("lookback", "junk")]), NOW).unwrap_err(),
            r#"unable to parse param 'lookback': time: invalid duration "junk""#
        );
    }

    #[test]
    fn limit_is_bounded() {
        let s = parse_search(&params(&[("service", "s"), ("limit", "1000000")]), NOW).unwrap();
        assert_eq!(s.query.limit, MAX_LIMIT);
        let s = parse_search(&params(&[("service", "s"), ("limit", "0")]), NOW).unwrap();
        assert_eq!(s.query.limit, MAX_LIMIT);
    }

    #[test]
    fn search_errors_are_jaegers() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "parameter 'service' is required"),
            (
                &[("service", "s"), ("minDuration", "abc")],
                r#"unable to parse param 'minDuration': time: invalid duration "abc""#,
            ),
            (
                &[("service", "s"), ("maxDuration", "10")],
                r#"unable to parse param 'maxDuration': time: missing unit in duration "10""#,
            ),
            (
                &[("service", "s"), ("start", "x")],
                r#"unable to parse param 'start': strconv.ParseInt: parsing "x": invalid syntax"#,
            ),
            (
                &[("service", "s"), ("end", "1.5")],
                r#"unable to parse param 'end': strconv.ParseInt: parsing "1.5": invalid syntax"#,
            ),
            (
                &[("service", "s"), ("limit", "ten")],
                r#"strconv.ParseInt: parsing "ten": invalid syntax"#,
            ),
            (
                &[("service", "s"), ("tag", "novalue")],
                "malformed 'tag' parameter, expecting key:value, received: novalue",
            ),
            (
                &[("service", "s"), ("tags", r#"{"a":1}"#)],
                "malformed 'tags' parameter, cannot unmarshal JSON: json: cannot unmarshal number into Go value of type string",
            ),
            (
                &[("service", "s"), ("tags", "[]")],
                "malformed 'tags' parameter, cannot unmarshal JSON: json: cannot unmarshal array into Go value of type map[string]string",
            ),
            (
                &[("service", "s"), ("minDuration", "2s"), ("maxDuration", "1s")],
                "'maxDuration' should be greater than 'minDuration'",
            ),
            (
                &[("traceID", "nothex")],
                r#"cannot parse traceID param: strconv.ParseUint: parsing "nothex": invalid syntax"#,
            ),
        ];
        for (q, want) in cases {
            assert_eq!(parse_search(&params(q), NOW).unwrap_err(), *want, "{q:?}");
        }
        assert!(parse_search(&params(&[("tags", "{not json")]), NOW)
            .unwrap_err()
            .starts_with("malformed 'tags' parameter, cannot unmarshal JSON: "));
    }

    #[test]
    fn trace_ids_make_service_optional() {
        let s = parse_search(&params(&[("traceID", "abc"), ("traceID", "def")]), NOW).unwrap();
        assert_eq!(s.trace_ids.len(), 2);
    }

    #[test]
    fn negative_max_duration_matches_nothing() {
        let s = parse_search(&params(&[("service", "s"), ("maxDuration", "-1s")]), NOW).unwrap();
        assert!(s.matches_nothing);
        let s = parse_search(&params(&[("service", "s"), ("minDuration", "-1s")]), NOW).unwrap();
        assert!(!s.matches_nothing);
        assert_eq!(s.query.duration_min, None);
    }
}
