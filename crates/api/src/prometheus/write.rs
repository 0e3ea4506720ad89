//! `POST /api/v1/write`: Prometheus remote_write 1.0.
//!
//! Answers as Prometheus's write handler does, in plain text like Go's `http.Error`:
//! 204 once every sample is durable; 400 for anything a retry cannot fix (a body that is not
//! snappy, broken protobuf, invalid labels, a malformed native histogram, an out-of-order
//! or duplicate sample, which fail the whole request so nothing of it is stored); 413 past the size bound; 415 for remote
//! write 2.0 or another compression; 5xx only when the store is overloaded or unavailable,
//! which a retry can fix (the sender retries 5xx with backoff).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use ingest::remote_write::{self, DecodeError};
use ingest::{AppendError, SinkError};

use super::PromState;
use crate::gocompat::http_error;

pub(super) fn routes() -> Router<PromState> {
    Router::new().route("/api/v1/write", post(write))
}

/// Checks the headers for the protocol version and compression we speak.
fn check_headers(headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let get = |h: header::HeaderName| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    let content_type = get(header::CONTENT_TYPE);
    if let Some(proto) = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().strip_prefix("proto="))
        .next()
    {
        if proto != "prometheus.writerequest" {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported remote write protobuf message {proto}: Lookout accepts remote write 1.0 (prometheus.WriteRequest); set protobuf_message: prometheus.WriteRequest"),
            ));
        }
    }
    let encoding = get(header::CONTENT_ENCODING);
    if !encoding.is_empty() && encoding != "snappy" {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported compression {encoding:?}: remote write bodies must be snappy-compressed"),
        ));
    }
    Ok(())
}

async fn write(State(state): State<PromState>, req: Request) -> Response {
    if let Err((status, text)) = check_headers(req.headers()) {
        return http_error(status, text);
    }
    let limit = state.limits.max_write_bytes;
    let body = match axum::body::to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(e) => {
            // axum reports an over-long body as a length-limit error.
            let text = e.to_string();
            return if text.contains("length limit") {
                http_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body exceeds the limit of {limit} bytes; send smaller batches (queue_config.max_samples_per_send)"),
                )
            } else {
                http_error(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body failed: {text}"),
                )
            };
        }
    };
    let decoded =
        tokio::task::spawn_blocking(move || remote_write::decode_snappy(&body, limit)).await;
    let request = match decoded {
        Ok(Ok(r)) => r,
        Ok(Err(e @ DecodeError::TooLarge { .. })) => {
            return http_error(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        Ok(Err(e)) => return http_error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => {
            return http_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("decoding task failed ({e}); see the Lookout log"),
            )
        }
    };
    if !request.metadata.is_empty() {
        state.sink.record_metadata(request.metadata);
    }
    if request.samples.is_empty() && request.histograms.is_empty() {
        return StatusCode::NO_CONTENT.into_response();
    }
    // The write runs on its own task so a client hanging up cannot abandon it halfway.
    let sink = state.sink.clone();
    let task = tokio::spawn(async move {
        if request.histograms.is_empty() {
            sink.append_all_or_nothing(request.samples).await
        } else {
            sink.append_with_histograms(request.samples, request.histograms, true)
                .await
        }
    });
    match task.await {
        Ok(Ok(outcome)) if outcome.rejected() == 0 => StatusCode::NO_CONTENT.into_response(),
        Ok(Ok(outcome)) => {
            let rejected = outcome.rejected();
            http_error(
                StatusCode::BAD_REQUEST,
                outcome
                    .first_error
                    .unwrap_or_else(|| format!("{rejected} samples rejected")),
            )
        }
        Ok(Err(AppendError::Invalid(e))) => http_error(StatusCode::BAD_REQUEST, e),
        Ok(Err(AppendError::Sink(SinkError::Overloaded { retry_after }))) => {
            let mut resp = http_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the metrics store is overloaded; retry later".to_string(),
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            resp
        }
        Ok(Err(AppendError::Sink(SinkError::Unavailable(reason)))) => http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the metrics store is unavailable: {reason}"),
        ),
        Err(e) => http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the write task failed ({e}); see the Lookout log"),
        ),
    }
}
