//! `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/alertmanagers` from the rules engine and
//! the notifier, in Prometheus's shapes (`web/api/v1/api.go`: `RuleDiscovery`, `RuleGroup`,
//! `AlertingRule`, `RecordingRule`, `Alert`, `AlertmanagerDiscovery`), fields in its order,
//! numbers and times as Go writes them.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use rules::manager::RuleManager;
use rules::notifier::Notifier;
use rules::{AlertingRule, Group, Rule};
use serde::Serialize;
use serde_json::value::RawValue;

use super::{parse_match_params, PromError, PromParams, PromResult, PromState, Success};

/// What the rule endpoints read.
#[derive(Clone)]
pub struct RulesApi {
    pub manager: Arc<RuleManager>,
    pub notifier: Option<Notifier>,
}

pub(super) fn routes() -> Router<PromState> {
    Router::new()
        .route("/api/v1/rules", get(rules_handler).post(rules_handler))
        .route("/api/v1/alerts", get(alerts_handler).post(alerts_handler))
        .route("/api/v1/alertmanagers", get(alertmanagers_handler))
}

/// Go's `time.Time` in JSON: RFC 3339 with nanoseconds, trailing zeros cut; the zero time
/// for "never".
fn go_time(t: Option<SystemTime>) -> String {
    match t {
        Some(t) => ingest::scrape::manager::rfc3339(t),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn ms_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// A float as Go's `encoding/json` writes it.
fn num(f: f64) -> Box<RawValue> {
    let s = if f.is_finite() {
        model::gofmt::json_number(f)
    } else {
        "0".to_string()
    };
    RawValue::from_string(s).unwrap_or_else(|_| RawValue::from_string("0".into()).expect("literal"))
}

type LabelMap<'a> = BTreeMap<&'a str, &'a str>;

fn label_map(l: &model::labels::Labels) -> LabelMap<'_> {
    l.iter().map(|l| (l.name, l.value)).collect()
}

fn pairs_map(p: &[(String, String)]) -> LabelMap<'_> {
    p.iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiAlert<'a> {
    labels: LabelMap<'a>,
    annotations: LabelMap<'a>,
    state: &'static str,
    active_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_since: Option<String>,
    value: String,
}

/// `strconv.FormatFloat(v, 'e', -1, 64)`: `1e+00`, `2.5e-01`, `NaN`, `+Inf`.
fn format_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let exp: i32 = e.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{m}e{sign}{:02}", exp.abs())
        }
        None => s,
    }
}

fn api_alerts(rule: &AlertingRule) -> Vec<ApiAlert<'_>> {
    rule.active_alerts()
        .into_iter()
        .map(|a| ApiAlert {
            labels: label_map(&a.labels),
            annotations: pairs_map(&a.annotations),
            state: a.state.as_str(),
            active_at: go_time(Some(ms_time(a.active_at_ms))),
            keep_firing_since: a.keep_firing_since_ms.map(|t| go_time(Some(ms_time(t)))),
            value: format_e(a.value),
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiAlertingRule<'a> {
    state: &'static str,
    name: &'a str,
    query: &'a str,
    duration: Box<RawValue>,
    keep_firing_for: Box<RawValue>,
    labels: LabelMap<'a>,
    annotations: LabelMap<'a>,
    /// `null` with `exclude_alerts`, as Prometheus answers.
    alerts: Option<Vec<ApiAlert<'a>>>,
    health: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
    evaluation_time: Box<RawValue>,
    last_evaluation: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiRecordingRule<'a> {
    name: &'a str,
    query: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: LabelMap<'a>,
    health: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
    evaluation_time: Box<RawValue>,
    last_evaluation: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ApiRule<'a> {
    Alerting(ApiAlertingRule<'a>),
    Recording(ApiRecordingRule<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiGroup<'a> {
    name: &'a str,
    file: &'a str,
    rules: Vec<ApiRule<'a>>,
    interval: Box<RawValue>,
    limit: usize,
    evaluation_time: Box<RawValue>,
    last_evaluation: String,
}

fn set_of<'a>(params: &'a PromParams, name: &'a str) -> HashSet<&'a str> {
    params.all(name).into_iter().collect()
}

fn api_rule<'a>(rule: &'a Rule, with_alerts: bool) -> ApiRule<'a> {
    let h = rule.health();
    let last_error = h.last_error.as_deref().filter(|e| !e.is_empty());
    match rule {
        Rule::Alerting(a) => ApiRule::Alerting(ApiAlertingRule {
            state: a.state().as_str(),
            name: a.name(),
            query: a.query(),
            duration: num(a.hold().as_secs_f64()),
            keep_firing_for: num(a.keep_firing_for().as_secs_f64()),
            labels: pairs_map(a.labels()),
            annotations: pairs_map(a.annotations()),
            alerts: with_alerts.then(|| api_alerts(a)),
            health: h.health.as_str(),
            last_error,
            evaluation_time: num(h.evaluation_time.as_secs_f64()),
            last_evaluation: go_time(h.last_evaluation),
            kind: "alerting",
        }),
        Rule::Recording(r) => ApiRule::Recording(ApiRecordingRule {
            name: r.name(),
            query: r.query(),
            labels: pairs_map(r.labels()),
            health: h.health.as_str(),
            last_error,
            evaluation_time: num(h.evaluation_time.as_secs_f64()),
            last_evaluation: go_time(h.last_evaluation),
            kind: "recording",
        }),
    }
}

async fn rules_handler(State(state): State<PromState>, params: PromParams) -> PromResult {
    let groups: Vec<Arc<Group>> = match &state.rules {
        Some(r) => r.manager.groups(),
        None => Vec::new(),
    };
    let (alerts, records) = match params.get("type").to_ascii_lowercase().as_str() {
        "" => (true, true),
        "alert" => (true, false),
        "record" => (false, true),
        other => {
            return Err(PromError::bad_data(format!(
                "invalid parameter \"type\": not supported value {other:?}"
            )))
        }
    };
    let exclude_alerts = match params.get("exclude_alerts") {
        "" | "false" | "0" | "f" | "F" | "FALSE" | "False" => false,
        "true" | "1" | "t" | "T" | "TRUE" | "True" => true,
        other => {
            return Err(PromError::bad_data(format!(
                "invalid parameter \"exclude_alerts\": parsing {other:?}: invalid syntax"
            )))
        }
    };
    let matchers = parse_match_params(&params.all("match[]"))?;
    let names = set_of(&params, "rule_name[]");
    let group_names = set_of(&params, "rule_group[]");
    let files = set_of(&params, "file[]");
    let filtering =
        !names.is_empty() || !group_names.is_empty() || !files.is_empty() || !matchers.is_empty();
    let mut out = Vec::new();
    for g in &groups {
        if !group_names.is_empty() && !group_names.contains(g.name()) {
            continue;
        }
        if !files.is_empty() && !files.contains(g.file()) {
            continue;
        }
        let mut api_group = ApiGroup {
            name: g.name(),
            file: g.file(),
            rules: Vec::new(),
            interval: num(g.interval().as_secs_f64()),
            limit: g.limit(),
            evaluation_time: num(g.evaluation_time().as_secs_f64()),
            last_evaluation: go_time(g.last_evaluation()),
        };
        for rule in g.rules() {
            if !names.is_empty() && !names.contains(rule.name()) {
                continue;
            }
            if !matchers.is_empty() {
                let labels = model::labels::Labels::new(rule.labels().iter().map(|(k, v)| (k, v)))
                    .unwrap_or_default();
                if !matchers
                    .iter()
                    .any(|set| set.iter().all(|m| m.matches_labels(&labels)))
                {
                    continue;
                }
            }
            let keep = match rule {
                Rule::Alerting(_) => alerts,
                Rule::Recording(_) => records,
            };
            if keep {
                api_group.rules.push(api_rule(rule, !exclude_alerts));
            }
        }
        // A group whose rules `type` filtered out stays, with no rules, as Prometheus 2
        // answers; with Prometheus 3's filters by name, group, file or labels it goes, as
        // Prometheus 3 answers those.
        if !api_group.rules.is_empty() || !filtering {
            out.push(api_group);
        }
    }
    #[derive(Serialize)]
    struct Data<'a> {
        groups: Vec<ApiGroup<'a>>,
    }
    Success::new(&Data { groups: out })
}

async fn alerts_handler(State(state): State<PromState>) -> PromResult {
    let groups: Vec<Arc<Group>> = match &state.rules {
        Some(r) => r.manager.groups(),
        None => Vec::new(),
    };
    let mut alerts = Vec::new();
    for g in &groups {
        for r in g.rules() {
            if let Rule::Alerting(a) = r {
                alerts.extend(api_alerts(a));
            }
        }
    }
    #[derive(Serialize)]
    struct Data<'a> {
        alerts: Vec<ApiAlert<'a>>,
    }
    Success::new(&Data { alerts })
}

async fn alertmanagers_handler(State(state): State<PromState>) -> PromResult {
    let snap = state
        .rules
        .as_ref()
        .and_then(|r| r.notifier.as_ref())
        .map(|n| n.alertmanagers())
        .unwrap_or_default();
    #[derive(Serialize)]
    struct Am<'a> {
        url: &'a str,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        active_alertmanagers: Vec<Am<'a>>,
        dropped_alertmanagers: Vec<Am<'a>>,
    }
    Success::new(&Data {
        active_alertmanagers: snap.active.iter().map(|u| Am { url: u }).collect(),
        dropped_alertmanagers: snap.dropped.iter().map(|u| Am { url: u }).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::format_e;

    #[test]
    fn alert_values_are_formatted_as_go_formats_them() {
        assert_eq!(format_e(1.0), "1e+00");
        assert_eq!(format_e(0.25), "2.5e-01");
        assert_eq!(format_e(12345.0), "1.2345e+04");
        assert_eq!(format_e(1e100), "1e+100");
        assert_eq!(format_e(f64::NAN), "NaN");
        assert_eq!(format_e(f64::NEG_INFINITY), "-Inf");
    }
}
