//! Prometheus's HTTP API over Lookout's tsdb: the `/api/v1/` envelope and error shapes,
//! PromQL queries (`query`, `query_range`, evaluated by the `promql` crate; `format_query` and
//! `parse_query`), the
//! metadata endpoints (`series`, `labels`, `label/{name}/values`, `metadata`, `status/*`),
//! the scrape manager's `/api/v1/targets` and `/-/reload`,
//! `/federate`, and the remote_write receiver (`POST /api/v1/write`).
//!
//! Answers follow Prometheus's `web/api/v1` exactly: `{"status":"success","data":…}` with
//! optional `warnings`/`infos`, and `{"status":"error","errorType":…,"error":…}` with the
//! HTTP status Prometheus gives each error type. Parameters come from the query string and,
//! for POST, a form body, as Go's `r.FormValue` reads them; times are Unix seconds (with
//! fractions) or RFC 3339, as `parseTime` accepts them.
//!
//! Storage stays behind `tsdb::Querier` for reads and `ingest::MetricsSink` for writes; the
//! module only needs the concrete [`tsdb::Tsdb`] for its status figures.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ingest::{MetadataRegistry, MetricsSink};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::gocompat;

mod parse_query;
mod query;
mod rules_api;
mod series;
mod targets;
#[cfg(test)]
mod tests;
mod write;

/// Version details `/api/v1/status/buildinfo` reports.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromBuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

/// Everything the Prometheus API handlers share.
#[derive(Clone)]
pub struct PromState {
    pub(crate) db: Arc<tsdb::Tsdb>,
    pub(crate) sink: Arc<dyn MetricsSink>,
    pub(crate) metadata: Arc<MetadataRegistry>,
    pub(crate) build: Arc<PromBuildInfo>,
    pub(crate) limits: PromLimits,
    pub(crate) engine: Arc<promql::Engine>,
    pub(crate) scrape: Option<ScrapeApi>,
    pub(crate) rules: Option<RulesApi>,
}

pub use rules_api::RulesApi;
pub use targets::{Reload, ScrapeApi};

/// Bounds on what one request may ask for.
#[derive(Clone, Copy, Debug)]
pub struct PromLimits {
    /// Largest remote_write body, compressed or decompressed.
    pub max_write_bytes: usize,
    /// How far back `/federate` looks for a series' latest sample (Prometheus's lookback
    /// delta, 5 minutes).
    pub lookback_ms: i64,
    /// Most series one `/api/v1/series` or `/federate` answer holds before the request is
    /// refused; bounds the memory a single request can take.
    pub max_series: usize,
}

impl Default for PromLimits {
    fn default() -> PromLimits {
        PromLimits {
            max_write_bytes: ingest::remote_write::DEFAULT_MAX_REQUEST_BYTES,
            lookback_ms: 5 * 60 * 1000,
            max_series: 1_000_000,
        }
    }
}

impl PromState {
    /// A state reading `db` and writing remote_write samples to `sink`; `metadata` is the
    /// registry the receivers fill.
    pub fn new(
        db: Arc<tsdb::Tsdb>,
        sink: Arc<dyn MetricsSink>,
        metadata: Arc<MetadataRegistry>,
        build: PromBuildInfo,
        limits: PromLimits,
    ) -> PromState {
        PromState {
            db,
            sink,
            metadata,
            build: Arc::new(build),
            limits,
            engine: Arc::new(promql::Engine::default()),
            scrape: None,
            rules: None,
        }
    }

    /// Serves `/api/v1/targets` and `/-/reload` from a scrape manager.
    pub fn with_scrape(mut self, scrape: ScrapeApi) -> PromState {
        self.scrape = Some(scrape);
        self
    }

    /// Serves `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/alertmanagers` from the
    /// rules engine and the notifier.
    pub fn with_rules(mut self, rules: RulesApi) -> PromState {
        self.rules = Some(rules);
        self
    }

    /// Evaluates queries with `opts` (lookback, timeout, max samples) instead of
    /// Prometheus's defaults.
    pub fn with_engine(mut self, opts: promql::EngineOptions) -> PromState {
        self.engine = Arc::new(promql::Engine::new(opts));
        self
    }

    /// Runs `f` against the database on the blocking pool (selects decode and copy).
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T, PromError>
    where
        T: Send + 'static,
        F: FnOnce(&tsdb::Tsdb) -> Result<T, PromError> + Send + 'static,
    {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || f(&db)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "prometheus API task failed");
                Err(PromError::internal(format!(
                    "query task failed ({e}); see the Lookout log"
                )))
            }
        }
    }
}

/// The routes of Prometheus's API that this module serves.
pub fn router(state: PromState) -> Router {
    Router::new()
        .merge(query::routes())
        .merge(series::routes())
        .merge(targets::routes())
        .merge(rules_api::routes())
        .merge(write::routes())
        .with_state(state)
}

/// Prometheus's API error types, each with its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Canceled,
    Timeout,
    Internal,
    Unavailable,
    NotFound,
}

impl ErrorType {
    /// The `errorType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Canceled => "canceled",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
        }
    }

    /// The status Prometheus answers with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// An API error: its type and Prometheus's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromError {
    pub kind: ErrorType,
    pub message: String,
}

impl PromError {
    pub fn bad_data(message: impl Into<String>) -> PromError {
        PromError {
            kind: ErrorType::BadData,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> PromError {
        PromError {
            kind: ErrorType::Internal,
            message: message.into(),
        }
    }

    pub fn execution(message: impl Into<String>) -> PromError {
        PromError {
            kind: ErrorType::Execution,
            message: message.into(),
        }
    }
}

impl From<tsdb::TsdbError> for PromError {
    fn from(e: tsdb::TsdbError) -> PromError {
        match e {
            tsdb::TsdbError::InvalidRegex { .. } | tsdb::TsdbError::Label(_) => {
                PromError::bad_data(e.to_string())
            }
            other => PromError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Body<'a> {
            status: &'static str,
            error_type: &'static str,
            error: &'a str,
        }
        let body = serde_json::to_vec(&Body {
            status: "error",
            error_type: self.kind.as_str(),
            error: &self.message,
        })
        .unwrap_or_default();
        json_response(self.kind.status(), body)
    }
}

/// A success answer: `data` plus any warnings and infos.
pub struct Success {
    data: Box<RawValue>,
    warnings: Vec<String>,
    infos: Vec<String>,
}

impl Success {
    /// Wraps serialisable data.
    pub fn new(data: &impl Serialize) -> Result<Success, PromError> {
        let data = serde_json::value::to_raw_value(data)
            .map_err(|e| PromError::internal(format!("encoding the answer failed: {e}")))?;
        Ok(Success::raw(data))
    }

    /// Wraps data already encoded as JSON.
    pub fn raw(data: Box<RawValue>) -> Success {
        Success {
            data,
            warnings: Vec::new(),
            infos: Vec::new(),
        }
    }

    /// Adds a warning.
    pub fn warn(mut self, warning: impl Into<String>) -> Success {
        self.warnings.push(warning.into());
        self
    }

    /// Adds warnings and infos.
    pub fn with_annotations(mut self, warnings: Vec<String>, infos: Vec<String>) -> Success {
        self.warnings.extend(warnings);
        self.infos.extend(infos);
        self
    }
}

impl IntoResponse for Success {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            status: &'static str,
            data: &'a RawValue,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            warnings: &'a [String],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            infos: &'a [String],
        }
        match serde_json::to_vec(&Body {
            status: "success",
            data: &self.data,
            warnings: &self.warnings,
            infos: &self.infos,
        }) {
            Ok(body) => json_response(StatusCode::OK, body),
            Err(e) => {
                PromError::internal(format!("encoding the answer failed: {e}")).into_response()
            }
        }
    }
}

/// A JSON answer, with `<`, `>` and `&` escaped inside strings as Go's encoder (and so
/// Prometheus) writes them.
fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let body = match String::from_utf8(body) {
        Ok(s) => gocompat::go_html_escape(s).into_bytes(),
        Err(e) => e.into_bytes(),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A handler's result.
pub type PromResult = Result<Success, PromError>;

/// Request parameters as Go's `r.FormValue`/`r.Form` see them: the query string, then for
/// POST a `application/x-www-form-urlencoded` body.
#[derive(Debug, Default, Clone)]
pub struct PromParams(Vec<(String, String)>);

/// Largest form body read for parameters.
const MAX_FORM_BYTES: usize = 8 << 20;

impl PromParams {
    /// The first value of `name`, or `""`.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter; `default` when absent.
    pub fn time_ms(&self, name: &str, default: i64) -> Result<i64, PromError> {
        match self.get(name) {
            "" => Ok(default),
            v => parse_time_ms(v).map_err(|e| {
                PromError::bad_data(format!(
                    "invalid parameter {}: Invalid time value for '{name}': {e}",
                    model::gofmt::quote(name)
                ))
            }),
        }
    }

    /// Prometheus 3's `limit` parameter: 0 or absent means none.
    pub fn limit(&self) -> Result<usize, PromError> {
        match self.get("limit") {
            "" => Ok(0),
            v => match v.parse::<i64>() {
                Ok(n) if n >= 0 => Ok(n as usize),
                Ok(_) => Err(PromError::bad_data("limit must be non-negative")),
                Err(_) => Err(PromError::bad_data(format!(
                    "cannot parse \"{v}\" to a valid limit"
                ))),
            },
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for PromParams {
    type Rejection = PromError;

    async fn from_request(req: Request, _state: &S) -> Result<PromParams, PromError> {
        let mut pairs: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        if req.method() == axum::http::Method::POST && is_form {
            let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
                .await
                .map_err(|e| {
                    PromError::bad_data(format!(
                        "error parsing form values: {e} (the limit is {MAX_FORM_BYTES} bytes)"
                    ))
                })?;
            // Go puts body values before query values in r.Form.
            let mut form: Vec<(String, String)> =
                form_urlencoded::parse(&body).into_owned().collect();
            form.append(&mut pairs);
            pairs = form;
        }
        Ok(PromParams(pairs))
    }
}

/// Parses a time as Prometheus's `parseTime` does: Unix seconds with an optional fraction
/// (rounded to milliseconds), or RFC 3339; returns Unix milliseconds.
pub fn parse_time_ms(s: &str) -> Result<i64, String> {
    let cannot = || {
        format!(
            "cannot parse {} to a valid timestamp",
            model::gofmt::quote(s)
        )
    };
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(cannot());
        }
        let secs = f.trunc();
        let frac = ((f - secs) * 1000.0).round();
        let ms = secs * 1000.0 + frac;
        if ms.abs() > 9.2e18 {
            return Err(cannot());
        }
        return Ok(ms as i64);
    }
    match gocompat::parse_rfc3339(s) {
        Ok(ns) => i64::try_from(ns.div_euclid(1_000_000)).map_err(|_| cannot()),
        Err(_) => Err(cannot()),
    }
}

/// Parses `match[]` selectors into matcher sets (one set per selector, and per `or` branch
/// of a selector), refusing anything but a plain series selector as Prometheus does.
pub fn parse_match_params(selectors: &[&str]) -> Result<Vec<Vec<tsdb::Matcher>>, PromError> {
    let mut sets = Vec::new();
    for s in selectors {
        sets.extend(parse_selector(s)?);
    }
    Ok(sets)
}

/// Parses one series selector (`up{job="x"}`, `{__name__=~"a|b"}`).
pub fn parse_selector(s: &str) -> Result<Vec<Vec<tsdb::Matcher>>, PromError> {
    use promql_parser::label::MatchOp as P;
    let invalid = |m: String| PromError::bad_data(format!("invalid parameter \"match[]\": {m}"));
    const EMPTY: &str = "match[] must contain at least one non-empty matcher";
    let expr = promql_parser::parser::parse(s).map_err(|e| {
        // The parser refuses match-everything selectors itself; Prometheus's API checks
        // them after parsing, in words of its own.
        if e.contains("at least one non-empty matcher") {
            invalid(EMPTY.to_string())
        } else {
            invalid(format!("parse error: {e}"))
        }
    })?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(invalid(format!(
            "parse error: expected a series selector, got {s:?}"
        )));
    };
    let convert = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<tsdb::Matcher>, PromError> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        if let Some(name) = &vs.name {
            out.push(tsdb::Matcher::new(
                tsdb::MatchOp::Equal,
                tsdb::METRIC_NAME,
                name,
            )?);
        }
        for m in ms {
            let (op, value) = match &m.op {
                P::Equal => (tsdb::MatchOp::Equal, m.value.as_str()),
                P::NotEqual => (tsdb::MatchOp::NotEqual, m.value.as_str()),
                P::Re(_) => (tsdb::MatchOp::Regex, m.value.as_str()),
                P::NotRe(_) => (tsdb::MatchOp::NotRegex, m.value.as_str()),
            };
            if vs.name.is_some() && m.name == tsdb::METRIC_NAME && op == tsdb::MatchOp::Equal {
                continue;
            }
            out.push(tsdb::Matcher::new(op, &m.name, value)?);
        }
        Ok(out)
    };
    let mut sets = Vec::new();
    if vs.matchers.or_matchers.is_empty() {
        sets.push(convert(&vs.matchers.matchers)?);
    } else {
        for branch in &vs.matchers.or_matchers {
            sets.push(convert(branch)?);
        }
    }
    // Prometheus refuses selectors that match everything, e.g. `{job=~".*"}`.
    if sets.iter().any(|set| set.iter().all(|m| m.matches(""))) {
        return Err(invalid(EMPTY.to_string()));
    }
    Ok(sets)
}

/// Writes a label set as Prometheus's JSON object, in label order.
pub(crate) fn labels_json(out: &mut String, labels: &tsdb::Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        gocompat::write_go_json_string(out, l.name);
        out.push(':');
        gocompat::write_go_json_string(out, l.value);
    }
    out.push('}');
}
