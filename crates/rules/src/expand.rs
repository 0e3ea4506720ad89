//! The seam between rules and their templates: alert labels and annotations are Go
//! templates (`{{ $labels.instance }}`), checked when a rule file loads and expanded for each
//! alert on each evaluation.
//!
//! TEMPLATE-HOOK: the template engine (`crate::template`, branch `gotemplate`) is being built
//! beside this module. Until it is merged, [`check`] accepts every text and [`expand_alert`]
//! returns the text unexpanded; once it is, both call `crate::template::check` and
//! `crate::template::expand_alert` and nothing else in the crate changes.

use model::labels::Labels;

/// What an alert's templates see: `$labels`, `$externalLabels`, `$externalURL`, `$value`.
pub(crate) struct AlertData<'a> {
    pub labels: &'a Labels,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub value: f64,
}

/// A sample the templates' `query` function returns.
pub(crate) struct QuerySample {
    #[allow(dead_code)] // TEMPLATE-HOOK: read by the template engine once merged.
    pub labels: Labels,
    #[allow(dead_code)] // TEMPLATE-HOOK: read by the template engine once merged.
    pub value: f64,
}

/// Whether `text` parses as a template of alert `name` (`__alert_<alertname>`); the error is
/// Go's message.
pub(crate) fn check(_name: &str, _text: &str) -> Result<(), String> {
    // TEMPLATE-HOOK: crate::template::check(name, text).map_err(|e| e.to_string())
    Ok(())
}

/// Expands `text` for one alert at `ts_ms`; `query` runs the templates' `query` function.
pub(crate) fn expand_alert(
    _name: &str,
    text: &str,
    data: &AlertData<'_>,
    _ts_ms: i64,
    _query: &dyn Fn(&str) -> Result<Vec<QuerySample>, String>,
) -> Result<String, String> {
    // TEMPLATE-HOOK: crate::template::expand_alert(name, text, &template::AlertData {..},
    // ts_ms, query).map_err(|e| e.to_string())
    let _ = (
        data.labels,
        data.external_labels,
        data.external_url,
        data.value,
    );
    Ok(text.to_string())
}
