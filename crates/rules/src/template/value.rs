//! The values a template works with, standing in for the Go types Prometheus hands
//! `text/template` (`map[string]string`, `*template.sample`, `template.queryResult`, the alert
//! data struct, ...). Each variant knows its Go type name, because Go's error messages and
//! `printf "%T"` spell it, and its reflect kind, which decides truth, comparison and `len`.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::gotime::GoTime;

/// `map[string]string`, sorted as Go prints and ranges over maps.
pub(super) type StrMap = BTreeMap<String, String>;

/// Prometheus's `template.sample`.
#[derive(Debug)]
pub(super) struct Sample {
    pub labels: Rc<StrMap>,
    pub value: f64,
}

/// The struct `template.AlertTemplateData` builds.
#[derive(Debug)]
pub(super) struct AlertValue {
    pub labels: Rc<StrMap>,
    pub external_labels: Rc<StrMap>,
    pub external_url: Rc<str>,
    pub value: f64,
}

/// Go's type name of the alert data struct, as reflect spells it.
pub(super) const ALERT_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }";

#[derive(Clone, Debug)]
pub(super) enum Value {
    /// reflect's zero `Value`: a missing value, printed by the template as `<no value>`.
    Invalid,
    /// A nil `interface{}` (a missing key of an `args` map).
    NilIface,
    Bool(bool),
    Int(i64),
    /// A byte, from indexing a string.
    Uint8(u8),
    Float(f64),
    Str(Rc<str>),
    /// `html/template.HTML`, from `safeHtml`.
    Html(Rc<str>),
    StrMap(Rc<StrMap>),
    /// `map[string]interface{}`, from `args`.
    AnyMap(Rc<BTreeMap<String, Value>>),
    /// `template.queryResult`.
    Samples(Rc<Vec<Rc<Sample>>>),
    /// `*template.sample`.
    Sample(Rc<Sample>),
    Alert(Rc<AlertValue>),
    /// `*time.Time`, from `toTime`.
    Time(GoTime),
    /// `*time.Duration` in nanoseconds, from `toDuration`.
    Duration(i64),
}

/// The reflect kinds the builtins distinguish.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum BasicKind {
    Invalid,
    Bool,
    Int,
    Uint,
    Float,
    String,
    Other,
}

impl Value {
    pub fn str(s: impl Into<Rc<str>>) -> Value {
        Value::Str(s.into())
    }

    /// The Go type name (`reflect.Type.String()`); empty for `Invalid`, which has none.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Invalid => "",
            Value::NilIface => "interface {}",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint8(_) => "uint8",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::Html(_) => "template.HTML",
            Value::StrMap(_) => "map[string]string",
            Value::AnyMap(_) => "map[string]interface {}",
            Value::Samples(_) => "template.queryResult",
            Value::Sample(_) => "*template.sample",
            Value::Alert(_) => ALERT_TYPE,
            Value::Time(_) => "*time.Time",
            Value::Duration(_) => "*time.Duration",
        }
    }

    /// `fmt`'s `%T`: `<nil>` for nil.
    pub fn fmt_type(&self) -> &'static str {
        match self {
            Value::Invalid | Value::NilIface => "<nil>",
            v => v.type_name(),
        }
    }

    /// Go's `indirectInterface`: a nil interface is no value at all.
    pub fn indirect_iface(self) -> Value {
        match self {
            Value::NilIface => Value::Invalid,
            v => v,
        }
    }

    pub fn basic_kind(&self) -> BasicKind {
        match self {
            Value::Invalid | Value::NilIface => BasicKind::Invalid,
            Value::Bool(_) => BasicKind::Bool,
            Value::Int(_) => BasicKind::Int,
            Value::Uint8(_) => BasicKind::Uint,
            Value::Float(_) => BasicKind::Float,
            Value::Str(_) | Value::Html(_) => BasicKind::String,
            _ => BasicKind::Other,
        }
    }

    /// Go's `isTrue`; `None` where Go cannot tell (never for our types).
    pub fn truth(&self) -> bool {
        match self {
            Value::Invalid | Value::NilIface => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint8(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Html(s) => !s.is_empty(),
            Value::StrMap(m) => !m.is_empty(),
            Value::AnyMap(m) => !m.is_empty(),
            Value::Samples(v) => !v.is_empty(),
            Value::Sample(_) | Value::Alert(_) | Value::Time(_) | Value::Duration(_) => true,
        }
    }

    /// `len` for the kinds that have one.
    pub fn len(&self) -> Option<usize> {
        match self {
            Value::Str(s) | Value::Html(s) => Some(s.len()),
            Value::StrMap(m) => Some(m.len()),
            Value::AnyMap(m) => Some(m.len()),
            Value::Samples(v) => Some(v.len()),
            _ => None,
        }
    }

    /// The value as Go's `reflect.Value.Int()` reads an integer kind.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Uint8(u) => Some(*u as i64),
            _ => None,
        }
    }
}
