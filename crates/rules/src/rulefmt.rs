//! Rule files in Prometheus's format (`model/rulefmt` in Prometheus): `groups:` of recording
//! and alerting rules, read and validated exactly as Prometheus 2.x/3.x accept them, so a
//! file that `promtool check rules` passes loads here and one it refuses is refused here with
//! the same reason.
//!
//! Decoding is strict, as Prometheus's is (`KnownFields`): an unknown field is an error, as
//! is a mapping key given twice. Scalars decode into strings as Go's YAML does (`severity: 1`
//! is the label value `"1"`), and durations are Prometheus's (`1m30s`, `1d`, `0`).
//! Validation then reports every problem, not just the first, each as one sentence naming the
//! file, the group and the rule (Prometheus's `group "g", rule 2, "Name": ...` wording), with
//! the line and column when the YAML decoder knows them.
//!
//! Label names follow Lookout's (and Prometheus 2's) legacy scheme: `[a-zA-Z_][a-zA-Z0-9_]*`
//! for labels, `[a-zA-Z_:][a-zA-Z0-9_:]*` for recorded metric names.
//!
//! Input is bounded: [`MAX_RULE_FILE_BYTES`] per file, [`MAX_GROUPS`] groups per file and
//! [`MAX_RULES`] rules per file; at most [`MAX_REPORTED_ERRORS`] errors are listed.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use model::labels::{is_valid_label_name, is_valid_metric_name, METRIC_NAME};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::expand;

/// Largest rule file read, in bytes.
pub const MAX_RULE_FILE_BYTES: usize = 16 << 20;

/// Most groups one file may hold.
pub const MAX_GROUPS: usize = 10_000;

/// Most rules one file may hold, over all its groups.
pub const MAX_RULES: usize = 100_000;

/// Most errors reported for one file; the rest are counted in a last line.
pub const MAX_REPORTED_ERRORS: usize = 100;

/// A parsed and validated rule file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleFile {
    /// The groups, in file order.
    pub groups: Vec<GroupSpec>,
}

/// One `groups:` entry: rules evaluated in order on one interval.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    /// The group's name, unique in its file.
    pub name: String,
    /// `interval`: how often the group runs; `None` for the global evaluation interval.
    pub interval: Option<Duration>,
    /// `query_offset`: how far back queries look; `None` for the global default.
    pub query_offset: Option<Duration>,
    /// `limit`: most series a recording rule or alerts an alerting rule may produce; 0 for
    /// no limit.
    pub limit: usize,
    /// `labels` (Prometheus 3): added to every rule's labels, the rule's own winning.
    pub labels: Vec<(String, String)>,
    /// The rules, in file order.
    pub rules: Vec<RuleSpec>,
}

/// Whether a rule records a series or raises alerts, with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleKind {
    /// `record: name`: the metric name the result is stored under.
    Record(String),
    /// `alert: name`: the `alertname` of the alerts.
    Alert(String),
}

/// One rule of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleSpec {
    /// Recording or alerting, and the name.
    pub kind: RuleKind,
    /// The PromQL expression.
    pub expr: String,
    /// `for`: how long an alert stays pending before it fires.
    pub hold: Duration,
    /// `keep_firing_for`: how long an alert keeps firing after its condition cleared.
    pub keep_firing_for: Duration,
    /// `labels`, sorted by name (templates for alerting rules). An empty value removes the
    /// label, as in Prometheus.
    pub labels: Vec<(String, String)>,
    /// `annotations` of an alerting rule (templates), sorted by name.
    pub annotations: Vec<(String, String)>,
}

impl RuleSpec {
    /// The rule's name: the recorded metric or the alert's name.
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Record(n) | RuleKind::Alert(n) => n,
        }
    }
}

/// One problem in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFileError {
    /// The file, as the caller named it.
    pub file: String,
    /// 1-based line and column, when the YAML decoder knows them.
    pub position: Option<(usize, usize)>,
    /// What is wrong, as Prometheus says it.
    pub message: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in one rule file; displayed one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct RuleFileErrors(pub Vec<RuleFileError>);

impl fmt::Display for RuleFileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Reads and parses the rule file at `path`.
pub fn load_file(path: &Path) -> Result<RuleFile, RuleFileErrors> {
    use std::io::Read;
    let name = path.display().to_string();
    let one = |message: String| {
        RuleFileErrors(vec![RuleFileError {
            file: name.clone(),
            position: None,
            message,
        }])
    };
    let file = std::fs::File::open(path).map_err(|e| one(format!("cannot open: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_RULE_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| one(format!("cannot read: {e}")))?;
    parse(&name, &bytes)
}

/// Parses and validates a rule file's contents; `file` names it in errors.
pub fn parse(file: &str, bytes: &[u8]) -> Result<RuleFile, RuleFileErrors> {
    let one = |position, message: String| {
        RuleFileErrors(vec![RuleFileError {
            file: file.to_string(),
            position,
            message,
        }])
    };
    if bytes.len() > MAX_RULE_FILE_BYTES {
        return Err(one(
            None,
            format!(
                "rule file is larger than {} MiB; split it into several files",
                MAX_RULE_FILE_BYTES >> 20
            ),
        ));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| one(None, format!("rule file is not valid UTF-8: {e}")))?;
    let raw: Option<RawFile> = serde_yaml::from_str(text).map_err(|e| {
        let position = e.location().map(|l| (l.line(), l.column()));
        let mut message = e.to_string();
        // serde_yaml appends " at line X column Y"; the position is already in front.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        one(position, message)
    })?;
    let raw = raw.unwrap_or_default();
    let groups = raw.groups.unwrap_or_default();
    if groups.len() > MAX_GROUPS {
        return Err(one(
            None,
            format!(
                "rule file has {} groups, more than the {MAX_GROUPS} allowed; split it",
                groups.len()
            ),
        ));
    }
    let rules: usize = groups
        .iter()
        .map(|g| g.rules.as_ref().map_or(0, Vec::len))
        .sum();
    if rules > MAX_RULES {
        return Err(one(
            None,
            format!("rule file has {rules} rules, more than the {MAX_RULES} allowed; split it"),
        ));
    }
    let mut v = Validator {
        file,
        text,
        errors: Vec::new(),
        dropped: 0,
    };
    let out = v.validate(groups);
    if v.errors.is_empty() {
        return Ok(out);
    }
    if v.dropped > 0 {
        v.errors.push(RuleFileError {
            file: file.to_string(),
            position: None,
            message: format!("{} more errors not shown", v.dropped),
        });
    }
    Err(RuleFileErrors(v.errors))
}

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<RuleFileError>,
    dropped: usize,
}

impl Validator<'_> {
    fn error(&mut self, message: String) {
        self.error_at(None, message);
    }

    /// An error of the `nth` rule of the file (counting through all groups), placed at
    /// the line and column where that rule starts.
    fn rule_error(&mut self, nth: usize, message: String) {
        let position = if self.errors.len() < MAX_REPORTED_ERRORS {
            rule_position(self.text, nth)
        } else {
            None
        };
        self.error_at(position, message);
    }

    fn error_at(&mut self, position: Option<(usize, usize)>, message: String) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(RuleFileError {
                file: self.file.to_string(),
                position,
                message,
            });
        } else {
            self.dropped += 1;
        }
    }

    /// Prometheus's `RuleGroups.Validate`, in its order.
    fn validate(&mut self, groups: Vec<RawGroup>) -> RuleFile {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(groups.len());
        let mut rules_before = 0;
        for g in groups {
            if g.name.is_empty() {
                self.error("Groupname must not be empty".into());
            }
            if !seen.insert(g.name.clone()) {
                self.error(format!(
                    "groupname: \"{}\" is repeated in the same file",
                    g.name
                ));
            }
            let labels = g.labels.map(|m| m.0).unwrap_or_default();
            for (k, _) in &labels {
                if !is_valid_label_name(k) || k == METRIC_NAME {
                    self.error(format!("invalid label name: {k}"));
                }
            }
            let raw_rules = g.rules.unwrap_or_default();
            let mut rules = Vec::with_capacity(raw_rules.len());
            for (i, r) in raw_rules.into_iter().enumerate() {
                let name = if r.alert.is_empty() {
                    r.record.clone()
                } else {
                    r.alert.clone()
                };
                for msg in validate_rule(&r) {
                    self.rule_error(
                        rules_before + i,
                        format!("group {:?}, rule {}, {:?}: {msg}", g.name, i + 1, name),
                    );
                }
                rules.push(RuleSpec {
                    kind: if r.alert.is_empty() {
                        RuleKind::Record(r.record)
                    } else {
                        RuleKind::Alert(r.alert)
                    },
                    expr: r.expr,
                    hold: r.hold.map_or(Duration::ZERO, |d| d.0),
                    keep_firing_for: r.keep_firing_for.map_or(Duration::ZERO, |d| d.0),
                    labels: r.labels.map(|m| m.0).unwrap_or_default(),
                    annotations: r.annotations.map(|m| m.0).unwrap_or_default(),
                });
            }
            rules_before += rules.len();
            out.push(GroupSpec {
                name: g.name,
                interval: g.interval.map(|d| d.0).filter(|d| !d.is_zero()),
                query_offset: g.query_offset.map(|d| d.0),
                limit: usize::try_from(g.limit.max(0)).unwrap_or(usize::MAX),
                labels,
                rules,
            });
        }
        RuleFile { groups: out }
    }
}

/// Where the `nth` rule of a file starts (1-based line and column). serde_yaml keeps no
/// positions in what it decodes, but it places errors: the file is decoded again with a
/// rule type that fails inside the `nth` rule's mapping, and the error says where that was.
fn rule_position(text: &str, nth: usize) -> Option<(usize, usize)> {
    use serde::de::{Error as _, IgnoredAny, MapAccess, Visitor};
    use std::cell::Cell;

    struct Locate<'c>(&'c Cell<usize>);
    impl<'de> Visitor<'de> for Locate<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a rule")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
            let left = self.0.get();
            if left == 0 {
                return Err(A::Error::custom("found"));
            }
            self.0.set(left - 1);
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(())
        }
    }
    struct LocRule;
    thread_local! {
        static LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    impl<'de> Deserialize<'de> for LocRule {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<LocRule, D::Error> {
            LEFT.with(|c| d.deserialize_map(Locate(c)).map(|()| LocRule))
        }
    }
    #[derive(Deserialize)]
    struct LocGroup {
        #[serde(default)]
        #[allow(dead_code)]
        rules: Option<Vec<LocRule>>,
    }
    #[derive(Deserialize)]
    struct LocFile {
        #[serde(default)]
        #[allow(dead_code)]
        groups: Option<Vec<LocGroup>>,
    }
    LEFT.with(|c| c.set(nth));
    let res = serde_yaml::from_str::<LocFile>(text);
    LEFT.with(|c| c.set(usize::MAX));
    let e = res.err()?;
    if !e.to_string().contains("found") {
        return None;
    }
    e.location().map(|l| (l.line(), l.column()))
}

/// Prometheus's `Rule.Validate`: every problem of one rule, in Prometheus's order.
fn validate_rule(r: &RawRule) -> Vec<String> {
    let mut errs = Vec::new();
    if !r.record.is_empty() && !r.alert.is_empty() {
        errs.push("only one of 'record' and 'alert' must be set".to_string());
    }
    if r.record.is_empty() && r.alert.is_empty() {
        errs.push("one of 'record' or 'alert' must be set".to_string());
    }
    if r.expr.is_empty() {
        errs.push("field 'expr' must be set in rule".to_string());
    } else if let Err(e) = promql::parse_for(&r.expr, 0, 0) {
        errs.push(format!("could not parse expression: {e}"));
    }
    if !r.record.is_empty() {
        if r.annotations.as_ref().is_some_and(|a| !a.0.is_empty()) {
            errs.push("invalid field 'annotations' in recording rule".to_string());
        }
        if r.hold.is_some_and(|d| !d.0.is_zero()) {
            errs.push("invalid field 'for' in recording rule".to_string());
        }
        if r.keep_firing_for.is_some_and(|d| !d.0.is_zero()) {
            errs.push("invalid field 'keep_firing_for' in recording rule".to_string());
        }
        if !is_valid_metric_name(&r.record) {
            errs.push(format!("invalid recording rule name: {}", r.record));
        }
    }
    let labels = r.labels.as_ref().map_or(&[][..], |m| &m.0[..]);
    for (k, _) in labels {
        if !is_valid_label_name(k) || k == METRIC_NAME {
            errs.push(format!("invalid label name: {k}"));
        }
    }
    let annotations = r.annotations.as_ref().map_or(&[][..], |m| &m.0[..]);
    for (k, _) in annotations {
        if !is_valid_label_name(k) {
            errs.push(format!("invalid annotation name: {k}"));
        }
    }
    if !r.alert.is_empty() {
        // Prometheus's testTemplateParsing: alert labels and annotations must parse as
        // templates.
        for (k, v) in labels {
            if let Err(e) = expand::check(&r.alert, v) {
                errs.push(format!("label {k:?}: {e}"));
            }
        }
        for (k, v) in annotations {
            if let Err(e) = expand::check(&r.alert, v) {
                errs.push(format!("annotation {k:?}: {e}"));
            }
        }
    }
    errs
}

/// The file as YAML gives it, before validation.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Option<Vec<RawGroup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default, deserialize_with = "scalar_string")]
    name: String,
    #[serde(default)]
    interval: Option<PromDuration>,
    #[serde(default)]
    query_offset: Option<PromDuration>,
    #[serde(default)]
    limit: i64,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    labels: Option<StringMap>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default, deserialize_with = "scalar_string")]
    record: String,
    #[serde(default, deserialize_with = "scalar_string")]
    alert: String,
    #[serde(default, deserialize_with = "scalar_string")]
    expr: String,
    #[serde(default, rename = "for")]
    hold: Option<PromDuration>,
    #[serde(default)]
    keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    labels: Option<StringMap>,
    #[serde(default)]
    annotations: Option<StringMap>,
}

/// A Prometheus duration field (`model.Duration`).
#[derive(Clone, Copy)]
struct PromDuration(Duration);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = scalar_string(d)?;
        model::duration::parse_duration(&s)
            .map(PromDuration)
            .map_err(de::Error::custom)
    }
}

/// A string-to-string mapping, sorted by key; a key given twice is an error, as in Go's YAML.
struct StringMap(Vec<(String, String)>);

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<StringMap, E> {
                Ok(StringMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StringMap, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some(k) = m.next_key::<ScalarString>()? {
                    let v = m.next_value::<ScalarString>()?;
                    out.push((k.0, v.0));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
                    return Err(de::Error::custom(format!(
                        "mapping key {:?} already defined",
                        w[0].0
                    )));
                }
                Ok(StringMap(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A scalar read as text, as Go's YAML decodes any scalar into a `string` field: numbers and
/// booleans keep their spelling (as far as the decoder gives it back), null is empty.
struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        scalar_string(d).map(ScalarString)
    }
}

fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
            Ok(model::gofmt::format_g(v))
        }
        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests;
