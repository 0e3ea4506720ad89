//! The metadata endpoints: `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`,
//! `/api/v1/metadata`, `/api/v1/status/buildinfo`, `/api/v1/status/tsdb`, and `/federate`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tsdb::{Labels, Querier as _};

use super::{
    labels_json, parse_match_params, PromError, PromParams, PromResult, PromState, Success,
};

pub(super) fn routes() -> Router<PromState> {
    Router::new()
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/status/tsdb", get(tsdb_status))
        .route("/federate", get(federate))
}

/// The warning Prometheus adds when `limit` cut an answer short.
const TRUNCATED: &str = "results truncated due to limit";

/// Series matching any of `sets` in the range, sorted by labels, without duplicates.
fn select_union(
    db: &tsdb::Tsdb,
    sets: &[Vec<tsdb::Matcher>],
    start: i64,
    end: i64,
    max: usize,
) -> Result<Vec<tsdb::Series>, PromError> {
    let mut all = Vec::new();
    for set in sets {
        all.extend(db.select(set, start, end)?);
        if all.len() > max {
            return Err(PromError::execution(format!(
                "the selection matches more than {max} series; narrow match[] or the time range"
            )));
        }
    }
    if sets.len() > 1 {
        all.sort_by(|a, b| a.labels.cmp(&b.labels));
        all.dedup_by(|a, b| a.labels == b.labels);
    }
    Ok(all)
}

async fn series(State(state): State<PromState>, params: PromParams) -> PromResult {
    let selectors = params.all("match[]");
    if selectors.is_empty() {
        return Err(PromError::bad_data("no match[] parameter provided"));
    }
    let sets = parse_match_params(&selectors)?;
    let start = params.time_ms("start", i64::MIN)?;
    let end = params.time_ms("end", i64::MAX)?;
    let limit = params.limit()?;
    let max = state.limits.max_series;
    state
        .blocking(move |db| {
            let found = select_union(db, &sets, start, end, max)?;
            let truncated = limit > 0 && found.len() > limit;
            let mut out = String::from("[");
            for (i, s) in found
                .iter()
                .take(if limit > 0 { limit } else { usize::MAX })
                .enumerate()
            {
                if i > 0 {
                    out.push(',');
                }
                labels_json(&mut out, &s.labels);
            }
            out.push(']');
            let ok = Success::raw(raw(out)?);
            Ok(if truncated { ok.warn(TRUNCATED) } else { ok })
        })
        .await
}

fn raw(json: String) -> Result<Box<serde_json::value::RawValue>, PromError> {
    serde_json::value::RawValue::from_string(json)
        .map_err(|e| PromError::internal(format!("encoding the answer failed: {e}")))
}

/// Sorted strings cut to `limit`, with Prometheus's warning when cut.
fn limited(mut v: Vec<String>, limit: usize) -> PromResult {
    let truncated = limit > 0 && v.len() > limit;
    if truncated {
        v.truncate(limit);
    }
    let ok = Success::new(&v)?;
    Ok(if truncated { ok.warn(TRUNCATED) } else { ok })
}

async fn labels(State(state): State<PromState>, params: PromParams) -> PromResult {
    let sets = parse_match_params(&params.all("match[]"))?;
    let start = params.time_ms("start", i64::MIN)?;
    let end = params.time_ms("end", i64::MAX)?;
    let limit = params.limit()?;
    state
        .blocking(move |db| {
            let names: BTreeSet<String> = if sets.is_empty() {
                db.label_names(&[], start, end)?.into_iter().collect()
            } else {
                let mut all = BTreeSet::new();
                for set in &sets {
                    all.extend(db.label_names(set, start, end)?);
                }
                all
            };
            limited(names.into_iter().collect(), limit)
        })
        .await
}

async fn label_values(
    State(state): State<PromState>,
    Path(name): Path<String>,
    params: PromParams,
) -> PromResult {
    // Prometheus 3 accepts UTF-8 names escaped as `U__…`; plain legacy names as they are.
    let name = unescape_label_name(&name);
    if name.is_empty() || name.chars().any(|c| c == '\u{fffd}') {
        return Err(PromError::bad_data(format!(
            "invalid label name: {}",
            model::gofmt::quote(&name)
        )));
    }
    let sets = parse_match_params(&params.all("match[]"))?;
    let start = params.time_ms("start", i64::MIN)?;
    let end = params.time_ms("end", i64::MAX)?;
    let limit = params.limit()?;
    state
        .blocking(move |db| {
            let values: BTreeSet<String> = if sets.is_empty() {
                db.label_values(&name, &[], start, end)?
                    .into_iter()
                    .collect()
            } else {
                let mut all = BTreeSet::new();
                for set in &sets {
                    all.extend(db.label_values(&name, set, start, end)?);
                }
                all
            };
            limited(values.into_iter().collect(), limit)
        })
        .await
}

/// Undoes Prometheus 3's `U__` escaping of label names in URL paths (`U__a_2e_b` is `a.b`,
/// `__` is `_`); names without the prefix are returned unchanged.
fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let hex: String = chars.by_ref().take_while(|&c| c != '_').collect();
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(c) => out.push(c),
            None => return name.to_string(),
        }
    }
    out
}

async fn metadata(State(state): State<PromState>, params: PromParams) -> PromResult {
    #[derive(Serialize)]
    struct Entry<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        help: &'a str,
        unit: &'a str,
    }
    let parse_limit = |name: &str| -> Result<Option<usize>, PromError> {
        match params.get(name) {
            "" => Ok(None),
            v => v
                .parse::<i64>()
                .map(|n| usize::try_from(n).ok())
                .map_err(|_| PromError::bad_data(format!("{name} must be a number"))),
        }
    };
    let limit = parse_limit("limit")?;
    let per_metric = parse_limit("limit_per_metric")?;
    let metric = params.get("metric");
    let list = state.metadata.list((!metric.is_empty()).then_some(metric));
    let mut out = serde_json::Map::new();
    for (name, entries) in list {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let entries: Vec<_> = entries
            .iter()
            .take(per_metric.unwrap_or(usize::MAX))
            .map(|m| Entry {
                kind: m.metric_type.as_str(),
                help: &m.help,
                unit: &m.unit,
            })
            .collect();
        let v = serde_json::to_value(entries)
            .map_err(|e| PromError::internal(format!("encoding metadata failed: {e}")))?;
        out.insert(name, v);
    }
    Success::new(&out)
}

async fn buildinfo(State(state): State<PromState>) -> PromResult {
    Success::new(&*state.build)
}

async fn tsdb_status(State(state): State<PromState>, params: PromParams) -> PromResult {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct HeadStats {
        num_series: usize,
        num_label_pairs: usize,
        chunk_count: usize,
        min_time: i64,
        max_time: i64,
    }
    #[derive(Serialize)]
    struct Stat {
        name: String,
        value: usize,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Status {
        head_stats: HeadStats,
        series_count_by_metric_name: Vec<Stat>,
        label_value_count_by_label_name: Vec<Stat>,
        memory_in_bytes_by_label_name: Vec<Stat>,
        series_count_by_label_value_pair: Vec<Stat>,
    }
    let limit = match params.get("limit") {
        "" => 10,
        v => match v.parse::<usize>() {
            Ok(n) if n > 0 => n.min(10_000),
            _ => return Err(PromError::bad_data("limit must be a positive number")),
        },
    };
    state
        .blocking(move |db| {
            let c = db.head_cardinality(limit);
            // Prometheus reports the head's bounds; an empty head has none (its sentinel
            // values would be meaningless), so report zeros.
            let (min_time, max_time) = db.head_time_range().unwrap_or((0, 0));
            let stats = |v: Vec<(String, usize)>| {
                v.into_iter()
                    .map(|(name, value)| Stat { name, value })
                    .collect()
            };
            Success::new(&Status {
                head_stats: HeadStats {
                    num_series: c.num_series,
                    num_label_pairs: c.num_label_pairs,
                    chunk_count: db.head_chunks(),
                    min_time,
                    max_time,
                },
                series_count_by_metric_name: stats(c.series_count_by_metric_name),
                label_value_count_by_label_name: stats(c.label_value_count_by_label_name),
                memory_in_bytes_by_label_name: stats(c.memory_in_bytes_by_label_name),
                series_count_by_label_value_pair: stats(c.series_count_by_label_value_pair),
            })
        })
        .await
}

/// `/federate`: the newest sample (within the lookback) of every series matching `match[]`,
/// in text format 0.0.4 grouped by metric name, as Prometheus's federation handler writes it.
/// Errors are plain text, as there.
async fn federate(State(state): State<PromState>, params: PromParams) -> Response {
    let selectors = params.all("match[]");
    let sets = match parse_match_params(&selectors) {
        Ok(s) => s,
        Err(e) => {
            return crate::gocompat::http_error(axum::http::StatusCode::BAD_REQUEST, e.message)
        }
    };
    let now = crate::now_nanos() as i64 / 1_000_000;
    let lookback = state.limits.lookback_ms;
    let max = state.limits.max_series;
    let result = state
        .blocking(move |db| {
            let found = if sets.is_empty() {
                Vec::new()
            } else {
                select_union(db, &sets, now - lookback, now, max)?
            };
            let mut latest: Vec<(Labels, i64, f64)> = found
                .iter()
                .filter_map(|s| {
                    let (t, v) = s.samples().last()?;
                    // A native histogram newer than the newest float is the series' newest
                    // sample; the text format cannot carry it, so the series is left out
                    // (as Prometheus leaves histograms out of text federation).
                    if s.histograms().last().is_some_and(|(ht, _)| ht > t) {
                        return None;
                    }
                    (!tsdb::is_stale_nan(v)).then(|| (s.labels.clone(), t, v))
                })
                .collect();
            // Grouped by metric name, then labels: the label order already sorts by the
            // other labels, so sort by name first.
            latest.sort_by(|a, b| {
                a.0.metric_name()
                    .cmp(&b.0.metric_name())
                    .then_with(|| a.0.cmp(&b.0))
            });
            let mut out = String::new();
            let mut current: Option<String> = None;
            for (labels, t, v) in &latest {
                let name = labels.metric_name().unwrap_or("");
                if current.as_deref() != Some(name) {
                    let _ = writeln!(out, "# TYPE {name} untyped");
                    current = Some(name.to_string());
                }
                out.push_str(name);
                let mut first = true;
                for l in labels.iter().filter(|l| l.name != tsdb::METRIC_NAME) {
                    out.push(if first { '{' } else { ',' });
                    first = false;
                    out.push_str(l.name);
                    out.push_str("=\"");
                    escape_label_value(&mut out, l.value);
                    out.push('"');
                }
                if !first {
                    out.push('}');
                }
                let _ = writeln!(out, " {} {t}", crate::gocompat::go_format_g(*v));
            }
            Ok(out)
        })
        .await;
    match result {
        Ok(body) => (
            [(header::CONTENT_TYPE, crate::health::METRICS_CONTENT_TYPE)],
            body,
        )
            .into_response(),
        Err(e) => crate::gocompat::http_error(e.kind.status(), e.message),
    }
}

/// Escapes a label value for the text format: backslash, double quote and newline.
fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod unit {
    use super::unescape_label_name;

    #[test]
    fn unescapes_utf8_label_names() {
        assert_eq!(unescape_label_name("job"), "job");
        assert_eq!(unescape_label_name("U__a_2e_b"), "a.b");
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
        assert_eq!(unescape_label_name("U__zz_zz_"), "U__zz_zz_");
    }
}
