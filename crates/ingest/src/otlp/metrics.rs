//! OTLP metrics exports: `MetricsService/Export` (gRPC), `POST /v1/metrics` (OTLP/HTTP,
//! protobuf or JSON, optionally gzip) and Prometheus's `POST /api/v1/otlp/v1/metrics`.
//!
//! All three read the body under the same limits and in-flight budget as traces, translate
//! the request into Prometheus series with [`super::metrics_translate`] (off the async
//! runtime when large) and hand the samples to the state's [`MetricsSink`] on a task of
//! their own, so the write completes even if the client goes away. Translation never fails
//! a whole request for one bad metric: refused data points (delta temporality, exponential
//! histograms, unusable names or labels) and samples the store refuses (out of order,
//! duplicate, out of bounds) are reported the way each protocol reports them: OTLP partial
//! success (`rejected_data_points` and `error_message`) on the OTLP endpoints. Prometheus's
//! endpoint keeps Prometheus's contract instead: its samples are appended all or nothing (one
//! refused sample rolls the request back, answered 400 naming it) and translation problems
//! are only logged, as Prometheus logs them.
//!
//! The store judges samples, not data points, so when it refuses samples the OTLP answer
//! counts each refused sample as one rejected data point (never more than the points that
//! reached it): a histogram point with a refused bucket counts once per refused series.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};
use model::otlp::proto::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;

use super::grpc::{self, Decoded};
use super::http::{self as otlp_http, Encoding};
use super::metrics_translate::{points_of, translate, Translation};
use super::{
    read_body, retry_after_secs, run_decode, slot, ExportError, OtlpState, Protocol, Ran,
    Rejection, Reservation, Signal, SinkError, DECODED_OVERHEAD,
};
use crate::metrics::{AppendError, MetricsSink};

/// What one accepted export achieved.
#[derive(Debug)]
struct Exported {
    /// Data points in the request.
    points: u64,
    /// Data points refused by the translation or the store.
    rejected: u64,
    /// Why, when anything was refused (or a metric was dropped with a warning).
    message: Option<String>,
    /// The first sample the store refused, as the store words it.
    store_error: Option<String>,
}

/// Translates a decoded request off the runtime when it is large, charging the translated
/// samples to the budget.
fn translate_request(
    state: &OtlpState,
    request: &ExportMetricsServiceRequest,
    reservation: &mut Reservation,
) -> Result<Translation, Rejection> {
    let points = count_points(request);
    let t = translate(request, state.config().max_inflight_bytes).map_err(|e| Rejection {
        error: ExportError::TooManySeries(e),
        items: points,
    })?;
    state
        .reserve(reservation, t.bytes)
        .map_err(|error| Rejection {
            error,
            items: points,
        })?;
    Ok(t)
}

/// Counts the data points of a request, for the self-metrics of refused requests.
fn count_points(req: &ExportMetricsServiceRequest) -> u64 {
    req.resource_metrics
        .iter()
        .flat_map(|rm| rm.scope_metrics.iter())
        .flat_map(|sm| sm.metrics.iter())
        .map(points_of)
        .sum()
}

/// How the store is asked to take a request's samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Append {
    /// Sample by sample: the OTLP endpoints, which report refused points as partial success.
    Each,
    /// All or nothing: Prometheus's endpoint, which rolls back a request with a refused sample.
    AllOrNothing,
}

/// Writes the translated samples and metadata; `reservation` is released when the write
/// is done.
async fn write(
    state: &OtlpState,
    sink: Arc<dyn MetricsSink>,
    t: Translation,
    reservation: Reservation,
    mode: Append,
) -> Result<Exported, Rejection> {
    let points = t.data_points;
    let mut exported = Exported {
        points,
        rejected: t.rejected_points,
        message: t.error_message(),
        store_error: None,
    };
    if t.samples.is_empty() && t.histograms.is_empty() {
        return Ok(exported);
    }
    let reached_store = points - t.rejected_points;
    let sample_count = t.samples.len() + t.histograms.len();
    let Translation {
        samples,
        histograms,
        metadata,
        ..
    } = t;
    let task = tokio::spawn(async move {
        let result = match mode {
            _ if !histograms.is_empty() => {
                sink.append_with_histograms(samples, histograms, mode == Append::AllOrNothing)
                    .await
            }
            Append::Each => sink.append(samples).await,
            Append::AllOrNothing => sink.append_all_or_nothing(samples).await,
        };
        if result.as_ref().is_ok_and(|o| o.appended > 0) {
            sink.record_metadata(metadata);
        }
        drop(reservation);
        result
    });
    let error = match task.await {
        Ok(Ok(outcome)) => {
            let refused = outcome.rejected() as u64;
            if refused > 0 {
                exported.rejected += match mode {
                    Append::Each => refused.min(reached_store),
                    Append::AllOrNothing => reached_store,
                };
                let first = outcome
                    .first_error
                    .unwrap_or_else(|| "no reason given".to_string());
                let msg = format!(
                    "the store refused {refused} of {sample_count} samples, first: {first}"
                );
                exported.message = Some(match exported.message.take() {
                    Some(m) => format!("{m}; {msg}"),
                    None => msg,
                });
                exported.store_error = Some(first);
            }
            return Ok(exported);
        }
        Ok(Err(AppendError::Invalid(msg))) => ExportError::Refused(msg),
        Ok(Err(AppendError::Sink(SinkError::Overloaded { retry_after }))) => {
            ExportError::Overloaded {
                what: "the metrics store is overloaded".to_string(),
                retry_after,
            }
        }
        Ok(Err(AppendError::Sink(SinkError::Unavailable(reason)))) => {
            tracing::warn!(%reason, "metrics store unavailable, refusing OTLP export");
            ExportError::Unavailable {
                reason: format!("the metrics store is unavailable ({reason})"),
                retry_after: state.config().retry_after,
            }
        }
        Err(e) => ExportError::Internal(format!("the metrics write task failed: {e}")),
    };
    Err(Rejection {
        error,
        items: points,
    })
}

/// Records one metrics export in the self-metrics: accepted and refused points.
fn record(state: &OtlpState, protocol: Protocol, outcome: Result<&Exported, &Rejection>) {
    match outcome {
        Ok(e) => {
            let c = &state.inner.counters;
            let i = slot(Signal::Metrics, protocol);
            c.received[i].add(e.points - e.rejected);
            c.rejected[i].add(e.rejected);
            if let Some(message) = &e.message {
                tracing::debug!(
                    protocol = protocol.as_str(),
                    rejected = e.rejected,
                    "OTLP metrics partly refused: {message}"
                );
            }
        }
        Err(r) => state.record(Signal::Metrics, protocol, Err(r)),
    }
}

/// The OTLP answer to an accepted export.
fn response(e: &Exported) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: e.message.as_ref().map(|m| ExportMetricsPartialSuccess {
            rejected_data_points: i64::try_from(e.rejected).unwrap_or(i64::MAX),
            error_message: m.clone(),
        }),
    }
}

// ---------------------------------------------------------------------------------------
// gRPC

/// `MetricsService/Export`.
pub(super) async fn grpc_export(State(state): State<OtlpState>, req: Request) -> Response {
    let Some(sink) = state.inner.metrics.clone() else {
        return grpc::not_stored(&state, Signal::Metrics);
    };
    let (parts, body) = req.into_parts();
    let mut reservation = state.reservation();
    // One unary message plus its 5-byte gRPC frame header.
    let limit = state.config().max_body_bytes.saturating_add(5);
    let raw = match read_body(&state, None, body, limit, &mut reservation).await {
        Ok(raw) => raw,
        Err(error) => {
            let rejection = Rejection::from(error);
            state.record(Signal::Metrics, Protocol::Grpc, Err(&rejection));
            return rejection.error.to_grpc_status().into_http::<Body>();
        }
    };
    let req = Request::from_parts(parts, Body::from(raw));
    // The service is a `FnMut` called once; the reservation travels to it through this slot.
    let reservation_slot = Arc::new(Mutex::new(Some(reservation)));
    let ran = Ran::default();
    let service = {
        let state = state.clone();
        let ran = ran.clone();
        tower::service_fn(
            move |req: tonic::Request<Decoded<ExportMetricsServiceRequest>>| {
                let state = state.clone();
                let sink = sink.clone();
                ran.set();
                let reservation = reservation_slot
                    .lock()
                    .ok()
                    .and_then(|mut r| r.take())
                    .unwrap_or_else(|| state.reservation());
                async move {
                    let outcome = grpc_write(&state, sink, req.into_inner(), reservation).await;
                    record(&state, Protocol::Grpc, outcome.as_ref());
                    match outcome {
                        Ok(e) => Ok(tonic::Response::new(response(&e))),
                        Err(r) => Err(r.error.to_grpc_status()),
                    }
                }
            },
        )
    };
    let response = grpc::grpc::<ExportMetricsServiceRequest, ExportMetricsServiceResponse>(
        &state,
        "ExportMetricsServiceRequest",
    )
    .unary(service, req)
    .await;
    if !ran.get() {
        grpc::record_transport_failure(&state, Signal::Metrics, &response);
    }
    response.map(Body::new)
}

async fn grpc_write(
    state: &OtlpState,
    sink: Arc<dyn MetricsSink>,
    decoded: Decoded<ExportMetricsServiceRequest>,
    mut reservation: Reservation,
) -> Result<Exported, Rejection> {
    let Decoded { msg, raw } = decoded;
    let items = count_points(&msg);
    state
        .reserve(&mut reservation, raw.len().saturating_mul(DECODED_OVERHEAD))
        .map_err(|error| Rejection { error, items })?;
    let work = raw.len();
    drop(raw);
    let task_state = state.clone();
    let (t, reservation) = run_decode(work, move || {
        let t = translate_request(&task_state, &msg, &mut reservation)?;
        Ok((t, reservation))
    })
    .await?;
    write(state, sink, t, reservation, Append::Each).await
}

// ---------------------------------------------------------------------------------------
// HTTP

/// Reads, inflates, decodes and translates an OTLP/HTTP metrics body.
async fn decode_http(
    state: &OtlpState,
    encoding: Encoding,
    req: Request,
) -> Result<(Translation, Reservation), Rejection> {
    otlp_http::decode_body(state, req, move |state, body, reservation| {
        let request =
            match encoding {
                Encoding::Protobuf => ExportMetricsServiceRequest::decode(body.as_slice())
                    .map_err(|e| ExportError::BadProtobuf {
                        message: "ExportMetricsServiceRequest",
                        error: e.to_string(),
                    })?,
                Encoding::Json => {
                    model::otlp_json::decode_metrics(&body).map_err(ExportError::BadJson)?
                }
            };
        drop(body);
        translate_request(state, &request, reservation)
    })
    .await
}

/// `POST /v1/metrics`.
pub(super) async fn http_export(State(state): State<OtlpState>, req: Request) -> Response {
    let Some(sink) = state.inner.metrics.clone() else {
        return otlp_http::not_stored(state, Signal::Metrics, req).await;
    };
    let encoding = match otlp_http::request_encoding(req.headers()) {
        Ok(e) => e,
        Err(e) => {
            // The body's encoding is unknown, so the answer uses the specification's
            // default: a protobuf Status.
            let rejection = Rejection::from(e);
            state.record(Signal::Metrics, Protocol::HttpProtobuf, Err(&rejection));
            return otlp_http::error_response(Encoding::Protobuf, &rejection.error);
        }
    };
    let protocol = encoding.protocol();
    let outcome = async {
        let (t, reservation) = decode_http(&state, encoding, req).await?;
        write(&state, sink, t, reservation, Append::Each).await
    }
    .await;
    record(&state, protocol, outcome.as_ref());
    match outcome {
        Ok(e) => {
            let answer = response(&e);
            let body = match encoding {
                Encoding::Protobuf => answer.encode_to_vec(),
                Encoding::Json => model::otlp_json::encode_metrics_response(&answer),
            };
            otlp_http::ok_response(encoding, body)
        }
        Err(rejection) => otlp_http::error_response(encoding, &rejection.error),
    }
}

// ---------------------------------------------------------------------------------------
// Prometheus's endpoint

/// A Prometheus-style error: `http.Error`'s plain text with a trailing newline, plus
/// `Retry-After` for retryable failures.
fn prometheus_error(
    status: StatusCode,
    message: &str,
    retry: Option<std::time::Duration>,
) -> Response {
    let mut response = crate::http_error(status, message.to_string());
    if let Some(delay) = retry {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(delay)));
    }
    response
}

/// Prometheus's status for a refused request: it answers every decoding problem with 400.
fn prometheus_status(error: &ExportError) -> StatusCode {
    match error.http_status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::BAD_REQUEST,
        other => other,
    }
}

/// `POST /api/v1/otlp/v1/metrics`.
pub(super) async fn prometheus_export(State(state): State<OtlpState>, req: Request) -> Response {
    let Some(sink) = state.inner.metrics.clone() else {
        super::drain_body(req.into_body(), state.config().max_body_bytes).await;
        let rejection = Rejection::from(ExportError::NotStored(Signal::Metrics));
        state.record(Signal::Metrics, Protocol::HttpProtobuf, Err(&rejection));
        return prometheus_error(
            StatusCode::NOT_IMPLEMENTED,
            &rejection.error.to_string(),
            None,
        );
    };
    let encoding = match otlp_http::request_encoding(req.headers()) {
        Ok(e) => e,
        Err(e) => {
            let rejection = Rejection::from(e);
            state.record(Signal::Metrics, Protocol::HttpProtobuf, Err(&rejection));
            let got = req
                .headers()
                .get(CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            // Prometheus's wording, then ours.
            return prometheus_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "unsupported content type: {got}, supported: [application/json, application/x-protobuf]"
                ),
                None,
            );
        }
    };
    let protocol = encoding.protocol();
    let outcome = async {
        let (t, reservation) = decode_http(&state, encoding, req).await?;
        write(&state, sink, t, reservation, Append::AllOrNothing).await
    }
    .await;
    record(&state, protocol, outcome.as_ref());
    match outcome {
        Ok(e) => {
            if let Some(store_error) = e.store_error {
                // Prometheus rolls the request back and answers a refused sample (out of
                // order, duplicate, out of bounds) with 400 so the sender does not retry.
                return prometheus_error(StatusCode::BAD_REQUEST, &store_error, None);
            }
            if let Some(message) = &e.message {
                tracing::warn!("translating OTLP metrics to Prometheus series: {message}");
            }
            StatusCode::OK.into_response()
        }
        Err(r) => prometheus_error(
            prometheus_status(&r.error),
            &r.error.to_string(),
            r.error.retry_after(),
        ),
    }
}

/// Any method but POST on Prometheus's OTLP path.
pub(super) async fn prometheus_method_not_allowed(req: Request) -> Response {
    let mut response = prometheus_error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "method {} is not allowed: OTLP metrics are sent with POST",
            req.method()
        ),
        None,
    );
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
    response
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
