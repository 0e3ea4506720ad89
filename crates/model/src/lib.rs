//! Lookout's shared data types and their OTLP conversions.
//!
//! Every part of Lookout speaks these types: receivers produce them, stores keep them, query
//! APIs render them. They mirror OTLP's data model closely (so nothing a client sends is lost)
//! but are plain Rust values: ids are fixed-size arrays, enums are enums, and a span carries
//! its resource and scope behind an `Arc` so a batch of spans from one process shares them.
//!
//! - [`duration`] parses and prints Prometheus's durations (`1m30s`, `1d`, `0`).
//! - [`gofmt`] spells floats and bytes as Go (so Prometheus and Jaeger) spell them.
//! - [`histogram`] is the native histogram sample every part shares.
//! - [`labels`] names metric series: sorted, validated label sets.
//! - [`otlp`] converts OTLP protobuf messages into these types, validating as it goes, and back;
//!   its `ValidTraces::from_protobuf` checks an encoded trace request in place (`otlp_wire`).
//! - [`synthetic`] is the series shape of the metrics load generator and benches.
//! - [`otlp_json`] is the OTLP/JSON encoding (the spec's rules, not protobuf's canonical JSON).

pub mod duration;
pub mod gofmt;
pub mod histogram;
pub mod labels;
pub mod otlp;
pub mod otlp_json;
mod otlp_wire;
mod span;
pub mod synthetic;
pub mod xxhash;

pub use span::*;

/// Nanoseconds since the Unix epoch, as OTLP carries time.
pub type UnixNanos = u64;
