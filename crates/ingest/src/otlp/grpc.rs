//! OTLP/gRPC: the `Export` methods of `TraceService`, `MetricsService` and `LogsService`,
//! served as axum handlers that drive tonic's unary machinery.
//!
//! We do not use `opentelemetry-proto`'s generated servers because they hard-wire tonic's
//! prost codec, which reports an undecodable message as INTERNAL; OTLP clients treat
//! INTERNAL as "not retryable, server bug" and log something misleading. Our codec answers
//! INVALID_ARGUMENT naming the message, and tells the handler how large the decoded message
//! was so it can be charged to the in-flight budget. Trace requests skip prost altogether:
//! their codec hands over the message's bytes, which `model::otlp` validates in place (the
//! same answers, INVALID_ARGUMENT included, without building messages). The body is read
//! under that budget before tonic sees it; tonic still does the framing, gzip
//! (`grpc-encoding`), the size limit after decompression, and trailers.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Buf;
use model::otlp::proto::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::Grpc;

use super::{
    read_grpc_body, ExportError, OtlpState, Protocol, Ran, Rejection, Reservation, Signal,
    DECODED_OVERHEAD,
};

/// A decoded request and the size of its (decompressed) protobuf encoding.
pub(super) struct Decoded<T> {
    pub(super) msg: T,
    /// The message's protobuf encoding as received (after gRPC decompression).
    pub(super) raw: bytes::Bytes,
}

/// A prost codec whose decode failures are INVALID_ARGUMENT.
pub(super) struct OtlpCodec<D, E> {
    /// The request message's name, for error messages.
    name: &'static str,
    _types: PhantomData<fn() -> (D, E)>,
}

impl<D, E> OtlpCodec<D, E> {
    fn new(name: &'static str) -> Self {
        OtlpCodec {
            name,
            _types: PhantomData,
        }
    }
}

impl<D, E> Codec for OtlpCodec<D, E>
where
    D: Message + Default + Send + 'static,
    E: Message + Send + 'static,
{
    type Encode = E;
    type Decode = Decoded<D>;
    type Encoder = OtlpEncoder<E>;
    type Decoder = OtlpDecoder<D>;

    fn encoder(&mut self) -> Self::Encoder {
        OtlpEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        OtlpDecoder {
            name: self.name,
            _type: PhantomData,
        }
    }
}

pub(super) struct OtlpEncoder<E>(PhantomData<fn(E)>);

impl<E: Message> Encoder for OtlpEncoder<E> {
    type Item = E;
    type Error = tonic::Status;

    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        // EncodeBuf grows on demand, so encoding cannot run out of room.
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(format!("encoding the response failed: {e}")))
    }
}

pub(super) struct OtlpDecoder<D> {
    name: &'static str,
    _type: PhantomData<fn() -> D>,
}

impl<D: Message + Default> Decoder for OtlpDecoder<D> {
    type Item = Decoded<D>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Decoded<D>>, tonic::Status> {
        let raw = src.copy_to_bytes(src.remaining());
        match D::decode(raw.clone()) {
            Ok(msg) => Ok(Some(Decoded { msg, raw })),
            Err(e) => {
                let err = ExportError::BadProtobuf {
                    message: self.name,
                    error: e.to_string(),
                };
                Err(err.to_grpc_status())
            }
        }
    }
}

/// A codec that hands the handler a request's protobuf bytes undecoded (after tonic's
/// framing and decompression), for trace requests, which `model::otlp` validates in place.
struct BytesCodec<E>(PhantomData<fn() -> E>);

impl<E: Message + Send + 'static> Codec for BytesCodec<E> {
    type Encode = E;
    type Decode = bytes::Bytes;
    type Encoder = OtlpEncoder<E>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        OtlpEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<bytes::Bytes>, tonic::Status> {
        // tonic's buffer is a `BytesMut`: this splits it off without copying.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The tonic unary driver with our limits: gzip accepted, messages (also decompressed)
/// bounded by the body limit.
pub(super) fn grpc<D, E>(state: &OtlpState, name: &'static str) -> Grpc<OtlpCodec<D, E>>
where
    D: Message + Default + Send + 'static,
    E: Message + Send + 'static,
{
    Grpc::new(OtlpCodec::new(name))
        .accept_compressed(CompressionEncoding::Gzip)
        .apply_max_message_size_config(Some(state.config().max_body_bytes), None)
}

/// Validates and writes one trace request given as its protobuf bytes; `reservation`
/// already holds the raw body.
async fn export_traces(
    state: &OtlpState,
    raw: bytes::Bytes,
    mut reservation: Reservation,
) -> Result<u64, Rejection> {
    let len = raw.len();
    let traces = super::decode_protobuf_traces(raw)?;
    let items = traces.len() as u64;
    state
        .reserve(&mut reservation, len.saturating_mul(DECODED_OVERHEAD))
        .map_err(|error| Rejection { error, items })?;
    state.write_request(traces, reservation).await?;
    Ok(items)
}

/// `TraceService/Export`.
pub(super) async fn traces(State(state): State<OtlpState>, req: Request) -> Response {
    // Read the body under the in-flight budget before tonic buffers and decodes it, so
    // gRPC requests are bounded the same way HTTP ones are and overload is refused early.
    let (parts, body) = req.into_parts();
    let mut reservation = state.reservation();
    // One unary message plus its 5-byte gRPC frame header.
    let limit = state.config().max_body_bytes.saturating_add(5);
    let raw = match read_grpc_body(&state, body, limit, &mut reservation).await {
        Ok(raw) => raw,
        Err(error) => {
            let rejection = Rejection::from(error);
            state.record(Signal::Traces, Protocol::Grpc, Err(&rejection));
            return rejection.error.to_grpc_status().into_http::<Body>();
        }
    };
    let req = Request::from_parts(parts, Body::new(raw));
    // The service is a `FnMut` called once; the reservation travels to it through this slot
    // so one request keeps one reservation (a request alone is always admitted).
    let slot = Arc::new(Mutex::new(Some(reservation)));
    let ran = Ran::default();
    let service = {
        let state = state.clone();
        let ran = ran.clone();
        tower::service_fn(move |req: tonic::Request<bytes::Bytes>| {
            let state = state.clone();
            ran.set();
            let reservation = slot
                .lock()
                .ok()
                .and_then(|mut r| r.take())
                .unwrap_or_else(|| state.reservation());
            async move {
                let outcome = export_traces(&state, req.into_inner(), reservation).await;
                state.record(Signal::Traces, Protocol::Grpc, outcome.as_ref().copied());
                match outcome {
                    Ok(_) => Ok(tonic::Response::new(ExportTraceServiceResponse {
                        partial_success: None,
                    })),
                    Err(r) => Err(r.error.to_grpc_status()),
                }
            }
        })
    };
    let response = Grpc::new(BytesCodec::<ExportTraceServiceResponse>(PhantomData))
        .accept_compressed(CompressionEncoding::Gzip)
        .apply_max_message_size_config(Some(state.config().max_body_bytes), None)
        .unary(service, req)
        .await;
    if !ran.get() {
        // tonic refused the request before our handler saw it (bad protobuf, too large
        // once inflated, bad framing): count it too.
        record_transport_failure(&state, Signal::Traces, &response);
    }
    response.map(Body::new)
}

/// Counts a request tonic refused before decoding completed, by the gRPC code it answered.
pub(super) fn record_transport_failure(
    state: &OtlpState,
    signal: Signal,
    response: &http::Response<tonic::body::Body>,
) {
    let code = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
        .unwrap_or(tonic::Code::Unknown);
    let reason = match code {
        tonic::Code::Ok => return,
        tonic::Code::InvalidArgument => "bad_protobuf",
        tonic::Code::ResourceExhausted | tonic::Code::OutOfRange => "too_large",
        tonic::Code::Unimplemented => "unsupported_encoding",
        _ => "grpc_transport",
    };
    state
        .inner
        .counters
        .rejected_request(signal, Protocol::Grpc, reason);
}

/// `LogsService/Export`: there is no log store yet.
pub(super) async fn logs(State(state): State<OtlpState>) -> Response {
    not_stored(&state, Signal::Logs)
}

/// UNIMPLEMENTED, without reading the request: the answer does not depend on it, and a
/// gRPC client reads the trailers-only response even while still sending.
pub(super) fn not_stored(state: &OtlpState, signal: Signal) -> Response {
    let rejection = Rejection::from(ExportError::NotStored(signal));
    state.record(signal, Protocol::Grpc, Err(&rejection));
    rejection.error.to_grpc_status().into_http::<Body>()
}
