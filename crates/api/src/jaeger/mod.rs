//! Jaeger's query APIs: v1 (`/api/...`, used by Grafana's Jaeger data source and scripts) and
//! v3 (`/api/v3/...`, used by the current Jaeger UI).
//!
//! - `model`: the v1 JSON wire types.
//! - `convert`: stored spans → Jaeger's adjusted view of a trace (shared by v1 and v3).
//! - `params`: query-string access and Jaeger's parameter parsing (trace ids, times).
//! - `handler`: the v1 endpoints; `v3`: the v3 endpoints.

pub mod convert;
pub mod handler;
pub mod model;
pub mod params;
pub mod v3;

/// The most traces one search returns, whatever `limit` asks for, so one request cannot make
/// the server assemble an unbounded answer.
pub const MAX_LIMIT: usize = 10_000;
