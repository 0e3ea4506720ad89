//! OTLP/HTTP: `POST /v1/traces`, `/v1/metrics` and `/v1/logs` with binary protobuf or JSON
//! bodies, optionally gzip-compressed.
//!
//! The body is read frame by frame against both the per-request limit and the shared
//! in-flight budget (a declared `Content-Length` is checked and reserved before reading), and
//! gzip is inflated in bounded steps, so neither a huge upload nor a gzip bomb can make the
//! process allocate more than the limits say. Every answer, success or failure, is encoded
//! the way the request was (the specification asks for the same Content-Type), and every
//! failure carries a `google.rpc.Status` naming the problem.

use std::io::Read;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue};
use model::otlp::proto::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use super::{
    count_spans, read_body, retry_after_secs, run_decode, ExportError, OtlpState, Protocol,
    Rejection, Reservation, Signal, DECODED_OVERHEAD,
};

/// The two OTLP/HTTP body encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub(super) fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    pub(super) fn protocol(self) -> Protocol {
        match self {
            Encoding::Protobuf => Protocol::HttpProtobuf,
            Encoding::Json => Protocol::HttpJson,
        }
    }
}

/// The encoding `Content-Type` names; parameters such as `charset` are ignored.
pub(super) fn request_encoding(headers: &HeaderMap) -> Result<Encoding, ExportError> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(ExportError::UnsupportedContentType("(none)".to_string()));
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let mime = text.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/x-protobuf")
        || mime.eq_ignore_ascii_case("application/protobuf")
    {
        Ok(Encoding::Protobuf)
    } else if mime.eq_ignore_ascii_case("application/json") {
        Ok(Encoding::Json)
    } else {
        Err(ExportError::UnsupportedContentType(text.into_owned()))
    }
}

/// Whether the body is gzip-compressed; `identity` (or no header) means it is not.
fn is_gzip(headers: &HeaderMap) -> Result<bool, ExportError> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(false);
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let coding = text.trim();
    if coding.is_empty() || coding.eq_ignore_ascii_case("identity") {
        Ok(false)
    } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
        Ok(true)
    } else {
        Err(ExportError::UnsupportedEncoding(text.into_owned()))
    }
}

/// Inflates a gzip body in bounded steps, refusing it as soon as it grows past the limit.
pub(super) fn gunzip(
    state: &OtlpState,
    data: &[u8],
    reservation: &mut Reservation,
) -> Result<Vec<u8>, ExportError> {
    const STEP: usize = 64 << 10;
    let limit = state.config().max_body_bytes;
    let mut decoder = flate2::read::MultiGzDecoder::new(data);
    let mut out = Vec::new();
    loop {
        // Reserve before inflating, so the budget bounds what the step allocates.
        state.reserve(reservation, STEP)?;
        // Read one byte past the limit so "exactly at the limit" and "over it" differ.
        let want = STEP.min(limit + 1 - out.len()) as u64;
        let n = (&mut decoder)
            .take(want)
            .read_to_end(&mut out)
            .map_err(|e| ExportError::BadGzip(e.to_string()))?;
        if out.len() > limit {
            return Err(ExportError::TooLarge {
                limit,
                decompressed: true,
            });
        }
        if n == 0 {
            return Ok(out);
        }
    }
}

/// Reads an OTLP/HTTP body within the size limit and the in-flight budget, inflates it when
/// it is gzip, reserves room for what decoding it will allocate, and hands the plain bytes to
/// `decode`, off the async runtime when the body is large. Every OTLP/HTTP signal reads its
/// body this way; only `decode` differs.
pub(super) async fn decode_body<T: Send + 'static>(
    state: &OtlpState,
    req: Request,
    decode: impl FnOnce(&OtlpState, Vec<u8>, &mut Reservation) -> Result<T, Rejection> + Send + 'static,
) -> Result<(T, Reservation), Rejection> {
    let (parts, body) = req.into_parts();
    let gzip = is_gzip(&parts.headers)?;
    let mut reservation = state.reservation();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = state.config().max_body_bytes;
    let raw = read_body(state, declared, body, limit, &mut reservation).await?;
    let state = state.clone();
    // A gzip body inflates to several times its size before decoding even starts.
    let work = if gzip {
        raw.len().saturating_mul(8)
    } else {
        raw.len()
    };
    run_decode(work, move || {
        let body = if gzip {
            let inflated = gunzip(&state, &raw, &mut reservation)?;
            drop(raw);
            inflated
        } else {
            raw
        };
        state.reserve(
            &mut reservation,
            body.len().saturating_mul(DECODED_OVERHEAD),
        )?;
        let decoded = decode(&state, body, &mut reservation)?;
        Ok((decoded, reservation))
    })
    .await
}

/// Reads, inflates and decodes a trace request and validates every span; nothing is
/// written unless all of it is valid. A protobuf request keeps its decompressed bytes.
async fn decode_traces(
    state: &OtlpState,
    encoding: Encoding,
    req: Request,
) -> Result<(model::otlp::ValidTraces, Reservation), Rejection> {
    decode_body(state, req, move |_, body, _| match encoding {
        Encoding::Protobuf => super::decode_protobuf_traces(bytes::Bytes::from(body)),
        Encoding::Json => {
            let request = model::otlp_json::decode_traces(&body).map_err(ExportError::BadJson)?;
            drop(body);
            let items = count_spans(&request);
            model::otlp::ValidTraces::new(request).map_err(|e| Rejection {
                error: ExportError::Invalid(e),
                items,
            })
        }
    })
    .await
}

/// `POST /v1/traces`.
pub(super) async fn traces(State(state): State<OtlpState>, req: Request) -> Response {
    let encoding = match request_encoding(req.headers()) {
        Ok(e) => e,
        Err(e) => {
            // The body's encoding is unknown, so the answer uses the specification's
            // default: a protobuf Status.
            let rejection = Rejection::from(e);
            state.record(Signal::Traces, Protocol::HttpProtobuf, Err(&rejection));
            return error_response(Encoding::Protobuf, &rejection.error);
        }
    };
    let protocol = encoding.protocol();
    let outcome = async {
        let (traces, reservation) = decode_traces(&state, encoding, req).await?;
        let items = traces.len() as u64;
        state.write_request(traces, reservation).await?;
        Ok::<u64, Rejection>(items)
    }
    .await;
    state.record(Signal::Traces, protocol, outcome.as_ref().copied());
    match outcome {
        Ok(_) => {
            let response = ExportTraceServiceResponse {
                partial_success: None,
            };
            let body = match encoding {
                Encoding::Protobuf => response.encode_to_vec(),
                Encoding::Json => model::otlp_json::encode_traces_response(&response),
            };
            ok_response(encoding, body)
        }
        Err(rejection) => error_response(encoding, &rejection.error),
    }
}

/// `POST /v1/logs`: there is no log store yet.
pub(super) async fn logs(State(state): State<OtlpState>, req: Request) -> Response {
    not_stored(state, Signal::Logs, req).await
}

/// Answers 501 for a signal without a store. The body is drained (bounded, and dropped
/// chunk by chunk) first: answering while a client is still uploading makes many HTTP
/// clients report a broken pipe instead of the status.
pub(super) async fn not_stored(state: OtlpState, signal: Signal, req: Request) -> Response {
    let encoding = request_encoding(req.headers()).unwrap_or(Encoding::Protobuf);
    super::drain_body(req.into_body(), state.config().max_body_bytes).await;
    let rejection = Rejection::from(ExportError::NotStored(signal));
    state.record(signal, encoding.protocol(), Err(&rejection));
    error_response(encoding, &rejection.error)
}

/// Any method but POST on an OTLP/HTTP path.
pub(super) async fn method_not_allowed(req: Request) -> Response {
    let encoding = request_encoding(req.headers()).unwrap_or(Encoding::Protobuf);
    let mut response = error_response(
        encoding,
        &ExportError::MethodNotAllowed(req.method().to_string()),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

pub(super) fn ok_response(encoding: Encoding, body: Vec<u8>) -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        )],
        Bytes::from(body),
    )
        .into_response()
}

/// The OTLP/HTTP failure answer: the status code, a `google.rpc.Status` body in the
/// request's encoding and, for retryable failures, `Retry-After` in seconds.
pub(super) fn error_response(encoding: Encoding, err: &ExportError) -> Response {
    let status = err.rpc_status();
    let body = match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        // OTLP/JSON's Status: protobuf's JSON mapping of google.rpc.Status. The RetryInfo
        // detail is left out (Retry-After says the same) to avoid the `@type` Any mapping.
        Encoding::Json => serde_json::json!({ "code": status.code, "message": status.message })
            .to_string()
            .into_bytes(),
    };
    let mut response = (
        err.http_status(),
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(encoding.content_type()),
        )],
        Bytes::from(body),
    )
        .into_response();
    if let Some(delay) = err.retry_after() {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(delay)));
    }
    response
}
