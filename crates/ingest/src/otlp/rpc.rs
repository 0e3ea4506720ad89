//! The few `google.rpc` messages OTLP failures carry: `Status` (the body of every OTLP/HTTP
//! 4xx/5xx and gRPC's `grpc-status-details-bin`) and `RetryInfo` (the retry delay a throttled
//! gRPC client honours).
//!
//! Neither `opentelemetry-proto` nor `tonic` ships these types, and pulling in a crate for
//! three small messages is not worth it, so they are declared here with prost's derive,
//! field numbers as in `google/rpc/status.proto` and `google/rpc/error_details.proto`.

use std::time::Duration;

use prost::Message;

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code` value; OTLP/HTTP clients do not act on it but may log it.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// The developer-facing message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Typed details such as [`RetryInfo`].
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoAny {
    /// Names the packed message, `type.googleapis.com/google.rpc.RetryInfo`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The packed message's protobuf encoding.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    /// How long the client should wait before retrying.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// The fraction of a second, in nanoseconds.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// The type URL gRPC clients look for to find a retry delay in a status.
pub const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

impl From<Duration> for ProtoDuration {
    fn from(d: Duration) -> Self {
        ProtoDuration {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            // Always below 10^9, so it fits.
            nanos: d.subsec_nanos() as i32,
        }
    }
}

impl RetryInfo {
    /// A `RetryInfo` packed as `Any`, ready for [`RpcStatus::details`].
    pub fn any(delay: Duration) -> ProtoAny {
        let info = RetryInfo {
            retry_delay: Some(ProtoDuration::from(delay)),
        };
        ProtoAny {
            type_url: RETRY_INFO_TYPE_URL.to_string(),
            value: info.encode_to_vec(),
        }
    }
}
