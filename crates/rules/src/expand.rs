//! The seam between rules and their templates: alert labels and annotations are Go
//! templates (`{{ $labels.instance }}`), checked when a rule file loads and expanded for each
//! alert on each evaluation by [`crate::template`]. Errors come back as the text Prometheus
//! shows: `promtool check rules`' parse error, or the expansion error an annotation carries
//! as `<error expanding template: MSG>`.

pub(crate) use crate::template::{AlertData, QuerySample};

/// Whether `text` parses as a template of the alert `alert`; the error is Go's message.
pub(crate) fn check(alert: &str, text: &str) -> Result<(), String> {
    crate::template::check(alert, text).map_err(|e| e.to_string())
}

/// Expands `text` for one alert of the rule `alert` at `ts_ms`; `query` runs the templates'
/// `query` function.
pub(crate) fn expand_alert(
    alert: &str,
    text: &str,
    data: &AlertData<'_>,
    ts_ms: i64,
    query: &dyn Fn(&str) -> Result<Vec<QuerySample>, String>,
) -> Result<String, String> {
    crate::template::expand_alert(alert, text, data, ts_ms, query).map_err(|e| e.to_string())
}
