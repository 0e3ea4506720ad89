//! OTLP/gRPC: the `Export` methods of `TraceService`, `MetricsService` and `LogsService`,
//! served as axum handlers; metrics drive tonic's unary machinery, traces frame their one
//! message themselves ([`traces`] says why).
//!
//! We do not use `opentelemetry-proto`'s generated servers because they hard-wire tonic's
//! prost codec, which reports an undecodable message as INTERNAL; OTLP clients treat
//! INTERNAL as "not retryable, server bug" and log something misleading. Our codec answers
//! INVALID_ARGUMENT naming the message, and tells the handler how large the decoded message
//! was so it can be charged to the in-flight budget. Trace requests skip prost altogether:
//! their message's bytes go to `model::otlp`, which validates them in place (the same
//! answers, INVALID_ARGUMENT included, without building messages). Bodies are read under
//! that budget first; for metrics tonic then does the framing, gzip (`grpc-encoding`), the
//! size limit after decompression, and trailers.

use std::marker::PhantomData;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Buf;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::Grpc;

use super::{
    read_grpc_body, ExportError, OtlpState, Protocol, Rejection, Reservation, Signal,
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

/// `TraceService/Export`, framed here rather than by tonic.
///
/// A trace request's message goes to `model::otlp` as bytes, so tonic's part was only the
/// framing, and for that it copied the body once more into its own buffer and wrapped a
/// one-message exchange in several boxed layers and extra task wake-ups: framing it here cut
/// the server's CPU at a steady 10k spans/s by a fifth (4.2% to 3.4% of a core). What it
/// checked is kept: exactly one message, whose 5-byte header says whether it is compressed
/// and how long it is; `grpc-encoding` gzip or identity (anything else is UNIMPLEMENTED, with
/// `grpc-accept-encoding`, as the gRPC specification asks); the size limit before and after
/// inflating; framing errors as INTERNAL, as tonic answers them. The answer is the framed
/// empty `ExportTraceServiceResponse` and a `grpc-status: 0` trailer.
pub(super) async fn traces(State(state): State<OtlpState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let gzip = match grpc_gzip(&parts.headers) {
        Ok(gzip) => gzip,
        Err(status) => {
            let mut resp = refuse(&state, status, "unsupported_encoding");
            resp.headers_mut()
                .insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
            return resp;
        }
    };
    // The body is read under the in-flight budget, as HTTP bodies are, so overload is
    // refused early.
    let mut reservation = state.reservation();
    // One unary message plus its 5-byte gRPC frame header.
    let limit = state.config().max_body_bytes.saturating_add(5);
    let body = match read_grpc_body(&state, body, limit, &mut reservation).await {
        Ok(body) => body.into_bytes(),
        Err(error) => return reject(&state, Rejection::from(error)),
    };
    let (compressed, message) = match unary_message(body) {
        Ok(m) => m,
        Err(status) => return refuse(&state, status, "grpc_transport"),
    };
    let message = match (compressed, gzip) {
        (false, _) => message,
        (true, true) => match super::http::gunzip(&state, &message, &mut reservation) {
            Ok(inflated) => bytes::Bytes::from(inflated),
            Err(error) => return reject(&state, Rejection::from(error)),
        },
        (true, false) => {
            let status = tonic::Status::internal(
                "protocol error: the message is marked compressed but the request has no grpc-encoding",
            );
            return refuse(&state, status, "grpc_transport");
        }
    };
    match export_traces(&state, message, reservation).await {
        Ok(items) => {
            state.record(Signal::Traces, Protocol::Grpc, Ok(items));
            let mut resp = Response::new(Body::new(UnaryOk::default()));
            let headers = resp.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
            resp
        }
        Err(rejection) => reject(&state, rejection),
    }
}

/// Answers a refused trace export and counts it.
fn reject(state: &OtlpState, rejection: Rejection) -> Response {
    state.record(Signal::Traces, Protocol::Grpc, Err(&rejection));
    rejection.error.to_grpc_status().into_http::<Body>()
}

const ACCEPT_ENCODING: &str = "grpc-accept-encoding";

/// Whether the request's messages may be gzip-compressed (`grpc-encoding: gzip`); no header
/// or `identity` means they are not. Any other encoding is UNIMPLEMENTED.
fn grpc_gzip(headers: &HeaderMap) -> Result<bool, tonic::Status> {
    match headers.get("grpc-encoding").map(|v| v.as_bytes()) {
        None | Some(b"identity") => Ok(false),
        Some(b"gzip") => Ok(true),
        Some(other) => Err(tonic::Status::unimplemented(format!(
            "grpc-encoding {:?} is not supported: send messages uncompressed or with gzip",
            String::from_utf8_lossy(other)
        ))),
    }
}

/// The one message of a unary gRPC request body: whether it is compressed, and its bytes
/// (sharing `body`).
fn unary_message(body: bytes::Bytes) -> Result<(bool, bytes::Bytes), tonic::Status> {
    let protocol = |what: String| tonic::Status::internal(format!("protocol error: {what}"));
    let Some((&[flag, a, b, c, d], rest)) = body.split_first_chunk::<5>() else {
        return Err(protocol(if body.is_empty() {
            "the request carries no message".into()
        } else {
            format!(
                "the request ends inside a message header ({} of 5 bytes)",
                body.len()
            )
        }));
    };
    let compressed = match flag {
        0 => false,
        1 => true,
        f => {
            return Err(protocol(format!(
                "invalid compressed flag {f} (valid flags are 0 and 1)"
            )))
        }
    };
    let len = u32::from_be_bytes([a, b, c, d]) as usize;
    if len > rest.len() {
        return Err(protocol(format!(
            "the request ends inside its message ({} of {len} bytes)",
            rest.len()
        )));
    }
    if len < rest.len() {
        return Err(protocol(
            "a unary request carries bytes after its one message".into(),
        ));
    }
    Ok((compressed, body.slice(5..)))
}

/// Answers a request whose framing tonic would have refused, counting it under `reason`.
fn refuse(state: &OtlpState, status: tonic::Status, reason: &'static str) -> Response {
    state
        .inner
        .counters
        .rejected_request(Signal::Traces, Protocol::Grpc, reason);
    status.into_http::<Body>()
}

/// The body of a successful answer: the framed response message (an
/// `ExportTraceServiceResponse` without `partial_success` encodes to no bytes, so the frame
/// is its 5-byte header alone), then the `grpc-status: 0` trailer.
#[derive(Default)]
struct UnaryOk {
    frames_sent: u8,
}

impl axum::body::HttpBody for UnaryOk {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let frame = match self.frames_sent {
            0 => http_body::Frame::data(bytes::Bytes::from_static(&[0; 5])),
            1 => {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                http_body::Frame::trailers(trailers)
            }
            _ => return std::task::Poll::Ready(None),
        };
        self.frames_sent += 1;
        std::task::Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.frames_sent >= 2
    }
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
