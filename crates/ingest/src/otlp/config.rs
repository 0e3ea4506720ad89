//! Receiver limits: how large one request may be and how much memory all requests being
//! processed may hold together.
//!
//! This is a plain struct rather than a serde type: the binary owns the configuration file
//! (units, layering, validation messages) and fills this in, so the receiver never learns
//! about TOML or environment variables.

use std::time::Duration;

/// Limits and back-pressure settings for the OTLP receivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Largest request accepted, in bytes, both as sent and after gzip decompression (so a
    /// small gzip bomb is cut off as soon as it inflates past this). Larger requests get
    /// HTTP 413 or gRPC RESOURCE_EXHAUSTED/OUT_OF_RANGE, which exporters do not retry.
    pub max_body_bytes: usize,
    /// Memory budget, in bytes, for all requests being read, decoded and written at once.
    /// Past it, new requests are refused with HTTP 429 or gRPC UNAVAILABLE and a retry
    /// delay, instead of the process growing without bound.
    pub max_inflight_bytes: usize,
    /// The retry delay suggested (`Retry-After`, gRPC `RetryInfo`) when the in-flight budget
    /// is exhausted or the sink is unavailable; an overloaded sink suggests its own delay.
    pub retry_after: Duration,
}

/// 16 MiB: large enough for any SDK's default batch (the OTLP spec recommends clients keep
/// requests under 20 MiB; SDK batches are usually well under 1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// 256 MiB: sixteen maximum-size requests, or thousands of typical ones, at once.
pub const DEFAULT_MAX_INFLIGHT_BYTES: usize = 256 << 20;

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            retry_after: Duration::from_secs(1),
        }
    }
}
