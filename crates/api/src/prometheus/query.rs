//! PromQL over HTTP: `/api/v1/query`, `/api/v1/query_range` (GET and form POST) and
//! `/api/v1/format_query` (and routes `/api/v1/parse_query`), answered as Prometheus answers them.
//!
//! Evaluation runs on the blocking pool with a cancel flag that is raised when the client
//! goes away (the handler's future is dropped), so an abandoned query stops at its next
//! check instead of running to its timeout. The engine bounds time (`timeout`, the smaller
//! of the server's and the request's) and memory (max samples); its errors carry
//! Prometheus's error types.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{ErrorType, PromError, PromParams, PromResult, PromState, Success};

pub(super) fn routes() -> Router<PromState> {
    Router::new()
        .route("/api/v1/query", get(instant).post(instant))
        .route("/api/v1/query_range", get(range).post(range))
        .route("/api/v1/format_query", get(format).post(format))
        .route(
            "/api/v1/parse_query",
            get(super::parse_query::parse_query).post(super::parse_query::parse_query),
        )
}

/// Raises its flag when dropped: the query task sees the client is gone.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Parses a duration parameter as Prometheus's `parseDuration` does: float seconds, or a
/// Prometheus duration (`5m`, `1h30m`, `100ms`, `1d`).
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms.abs() >= 9.2e18 {
            return Err(format!(
                "cannot parse {} to a valid duration. It overflows int64",
                model::gofmt::quote(s)
            ));
        }
        return Ok(ms.round() as i64);
    }
    prom_duration_ms(s).ok_or_else(|| {
        format!(
            "cannot parse {} to a valid duration",
            model::gofmt::quote(s)
        )
    })
}

/// Prometheus's `model.ParseDuration`: unit-suffixed integers, largest unit first
/// (`y w d h m s ms`), no repeats.
fn prom_duration_ms(s: &str) -> Option<i64> {
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    if s.is_empty() || s == "0" {
        return (s == "0").then_some(0);
    }
    let mut rest = s;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let idx = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        next_unit = idx + 1;
        total = total.checked_add(n.checked_mul(UNITS[idx].1)?)?;
    }
    Some(total)
}

pub(super) fn invalid(name: &str, e: String) -> PromError {
    PromError::bad_data(format!(
        "invalid parameter {}: {e}",
        model::gofmt::quote(name)
    ))
}

/// The request's `timeout`, capped by the server's.
fn timeout(params: &PromParams, server: Duration) -> Result<Duration, PromError> {
    match params.get("timeout") {
        "" => Ok(server),
        v => {
            let ms = parse_duration_ms(v).map_err(|e| invalid("timeout", e))?;
            Ok(Duration::from_millis(ms.max(0) as u64).min(server))
        }
    }
}

fn query_text(params: &PromParams) -> String {
    params.get("query").to_string()
}

/// The engine's result or error as Prometheus's JSON.
fn answer(result: Result<promql::QueryResult, promql::Error>) -> Response {
    match result {
        Ok(r) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            promql::json::success(&r),
        )
            .into_response(),
        Err(e) => {
            let kind = match &e {
                promql::Error::BadData(_) => ErrorType::BadData,
                promql::Error::Timeout => ErrorType::Timeout,
                promql::Error::Canceled => ErrorType::Canceled,
                _ => ErrorType::Execution,
            };
            (
                kind.status(),
                [(header::CONTENT_TYPE, "application/json")],
                promql::json::error(&e),
            )
                .into_response()
        }
    }
}

/// Runs `f` with an engine whose timeout is `limit`, on the blocking pool, cancelled when the
/// client goes away.
async fn evaluate<F>(state: &PromState, limit: Duration, f: F) -> Response
where
    F: FnOnce(
            &promql::Engine,
            &tsdb::Tsdb,
            &AtomicBool,
        ) -> Result<promql::QueryResult, promql::Error>
        + Send
        + 'static,
{
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let mut opts = state.engine.options().clone();
    opts.timeout = limit;
    let engine = promql::Engine::new(opts);
    let db = state.db.clone();
    let flag = cancel.clone();
    match tokio::task::spawn_blocking(move || f(&engine, &db, &flag)).await {
        Ok(r) => answer(r),
        Err(e) => {
            tracing::error!(error = %e, "query task failed");
            PromError::internal(format!("query task failed ({e}); see the Lookout log"))
                .into_response()
        }
    }
}

async fn instant(State(state): State<PromState>, params: PromParams) -> Response {
    let prepared = (|| {
        let now = crate::now_nanos() as i64 / 1_000_000;
        let time = params.time_ms("time", now)?;
        let limit = timeout(&params, state.engine.options().timeout)?;
        Ok::<_, PromError>((time, limit))
    })();
    let (time, limit) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let query = query_text(&params);
    evaluate(&state, limit, move |engine, db, cancel| {
        engine.instant_query(db, &query, time, Some(cancel))
    })
    .await
}

async fn range(State(state): State<PromState>, params: PromParams) -> Response {
    let prepared = (|| {
        let start = match params.get("start") {
            "" => {
                return Err(invalid(
                    "start",
                    "cannot parse \"\" to a valid timestamp".into(),
                ))
            }
            _ => params.time_ms("start", 0)?,
        };
        let end = match params.get("end") {
            "" => {
                return Err(invalid(
                    "end",
                    "cannot parse \"\" to a valid timestamp".into(),
                ))
            }
            _ => params.time_ms("end", 0)?,
        };
        if end < start {
            return Err(invalid(
                "end",
                "end timestamp must not be before start time".into(),
            ));
        }
        let step = parse_duration_ms(params.get("step")).map_err(|e| invalid("step", e))?;
        if step <= 0 {
            return Err(invalid(
                "step",
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if (end - start) / step > promql::MAX_RANGE_STEPS {
            return Err(PromError::bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
            ));
        }
        let limit = timeout(&params, state.engine.options().timeout)?;
        Ok((start, end, step, limit))
    })();
    let (start, end, step, limit) = match prepared {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let query = query_text(&params);
    evaluate(&state, limit, move |engine, db, cancel| {
        engine.range_query(db, &query, start, end, step, Some(cancel))
    })
    .await
}

async fn format(params: PromParams) -> PromResult {
    let q = params.get("query");
    match promql::format_query(q) {
        Ok(s) => Success::new(&s),
        Err(e) => Err(invalid("query", e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_prometheus_parses_them() {
        assert_eq!(parse_duration_ms("15"), Ok(15_000));
        assert_eq!(parse_duration_ms("0.5"), Ok(500));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert_eq!(parse_duration_ms("100ms"), Ok(100));
        for bad in ["", "5x", "1m1h", "m", "1e400"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_duration_ms("abc").unwrap_err(),
            "cannot parse \"abc\" to a valid duration"
        );
    }
}
