//! Alert templates: Go's `text/template` with Prometheus's functions, written for Lookout so
//! that rule files copied from Prometheus expand their labels and annotations byte for byte as
//! Prometheus does (its `template/template.go` over Go's `text/template`, with
//! `missingkey=zero`).
//!
//! The language is Go's, parsed and executed the way Go's packages do it, because users'
//! templates rely on its corners: `{{- -}}` trimming, `$`-variables and their scoping, `range`
//! over maps in key order, `gt $value 5` failing because `5` is an int, `%v` printing floats as
//! `1e+06`, `<no value>` for missing keys. Error texts follow Go's too (`template: NAME:1:12:
//! executing "NAME" at <...>: ...`), since they land in annotations.
//!
//! Split in submodules the way Go splits it: `lex` and `parse` (the grammar),
//! `exec` (evaluation), `funcs` (builtins and Prometheus's functions), `printf` (Go's `fmt`),
//! `gostr` and `gotime` (the `strconv`, `url` and `time` spellings they need).
//!
//! Templates are user input, so everything is bounded where Go is not: template size, output
//! size, evaluation steps (a `range` over a huge number ends), `template` call depth and
//! nesting. Exceeding a bound is an ordinary template error.

mod exec;
mod funcs;
mod gostr;
mod gotime;
mod lex;
mod parse;
mod printf;
mod value;

#[cfg(test)]
mod tests;

use std::fmt;
use std::rc::Rc;

use model::labels::Labels;

use funcs::{Env, Func};
use value::{AlertValue, StrMap, Value};

/// The largest template text accepted.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// The largest expansion produced (and the largest string any function may build).
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// How many evaluation steps one expansion may take.
pub const MAX_STEPS: u64 = 1_000_000;
/// How deeply `template` calls may nest (Go allows 100000).
pub const MAX_TEMPLATE_DEPTH: usize = 100;

/// The variables Prometheus's `rules/alerting.go` defines before every alert template.
const ALERT_DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// A sample a `query` template function returns: `.Labels` and `.Value` in templates.
#[derive(Clone, Debug, PartialEq)]
pub struct QuerySample {
    pub labels: Labels,
    pub value: f64,
}

/// What an alert template sees.
#[derive(Clone, Copy, Debug)]
pub struct AlertData<'a> {
    /// `.Labels` / `$labels`.
    pub labels: &'a Labels,
    /// `.ExternalLabels` / `$externalLabels`.
    pub external_labels: &'a Labels,
    /// `.ExternalURL` / `$externalURL`.
    pub external_url: &'a str,
    /// `.Value` / `$value`.
    pub value: f64,
}

/// Runs a PromQL instant query at the evaluation time (the `query` function).
pub type QueryFn<'a> = &'a dyn Fn(&str) -> Result<Vec<QuerySample>, String>;

/// Whether a template failed to parse or to execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Parse,
    Execute,
}

/// A template that does not parse or fails while executing.
///
/// `Display` is the text Prometheus produces in the same place: for [`expand_alert`] the
/// error of its `Expander.Expand` (`error executing template NAME: template: NAME:1:84:
/// executing "NAME" at <...>: ...`), which Prometheus writes into the annotation as
/// `<error expanding template: MSG>`; for [`check`] the bare `text/template` error
/// (`template: NAME:1: function "foo" not defined`), as `promtool check rules` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    /// Which phase failed.
    pub kind: ErrorKind,
    /// The template's name (`__alert_` and the alert name).
    pub name: String,
    /// Go's `text/template` error text.
    pub message: String,
    wrapped: bool,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wrapped {
            let phase = match self.kind {
                ErrorKind::Parse => "parsing",
                ErrorKind::Execute => "executing",
            };
            write!(f, "error {phase} template {}: ", self.name)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}

fn parse_alert(name: &str, text: &str) -> Result<(String, parse::Trees), TemplateError> {
    let full = format!("{ALERT_DEFS}{text}");
    let err = |message: String| TemplateError {
        kind: ErrorKind::Parse,
        name: name.to_string(),
        message,
        wrapped: false,
    };
    if text.len() > MAX_TEMPLATE_BYTES {
        return Err(err(format!(
            "template: {name}: template is {} bytes, more than the {MAX_TEMPLATE_BYTES} allowed; shorten it",
            text.len()
        )));
    }
    let trees = parse::parse(name, &full, &|f| Func::lookup(f).is_some()).map_err(err)?;
    Ok((full, trees))
}

fn str_map(labels: &Labels) -> Rc<StrMap> {
    Rc::new(
        labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect(),
    )
}

/// Expands `text` for alert `name` the way Prometheus's rules/alerting.go does: it prefixes
/// "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
/// and evaluates at `ts_ms`. Errors return Err with Go's message text (the engine renders
/// "<error expanding template: MSG>" itself as Prometheus does).
pub fn expand_alert(
    name: &str,
    text: &str,
    data: &AlertData,
    ts_ms: i64,
    query: QueryFn,
) -> Result<String, TemplateError> {
    let tmpl_name = format!("__alert_{name}");
    let (full, trees) = parse_alert(&tmpl_name, text).map_err(|mut e| {
        e.wrapped = true;
        e
    })?;
    let value = Value::Alert(Rc::new(AlertValue {
        labels: str_map(data.labels),
        external_labels: str_map(data.external_labels),
        external_url: data.external_url.into(),
        value: data.value,
    }));
    let env = Env {
        ts_ms,
        query: Some(query),
        external_url: data.external_url,
    };
    exec::execute(&full, &tmpl_name, &trees, value, &env).map_err(|message| TemplateError {
        kind: ErrorKind::Execute,
        name: tmpl_name,
        message,
        wrapped: true,
    })
}

/// Parse-only check, for rule-file validation (promtool check rules reports template errors).
pub fn check(name: &str, text: &str) -> Result<(), TemplateError> {
    parse_alert(&format!("__alert_{name}"), text).map(|_| ())
}
