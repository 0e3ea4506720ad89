//! The functions a template can call: Go's builtins (`text/template/funcs.go`) and
//! Prometheus's (`template/template.go`), each with the parameter types Go's reflection sees,
//! since those decide how arguments are converted and what errors say, plus the few methods
//! of `*time.Time` and `*time.Duration` that `toTime` and `toDuration` results offer.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::gostr::{html_escape, js_escape, parse_float, query_escape, quote};
use super::gotime::{duration_string, GoTime};
use super::printf::{sprint, sprintf, sprintln};
use super::value::{BasicKind, Sample, StrMap, Value};
use super::{QueryFn, MAX_OUTPUT_BYTES};

/// What a call needs from outside: the evaluation time, the query runner and the external URL.
pub(super) struct Env<'a> {
    pub ts_ms: i64,
    pub query: Option<QueryFn<'a>>,
    pub external_url: &'a str,
}

/// A parameter's Go type, as far as argument evaluation cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ParamTy {
    /// `string`.
    Str,
    /// `interface{}`.
    Any,
    /// `reflect.Value` (the builtins).
    Reflect,
    /// `*template.sample`.
    Sample,
    /// `template.queryResult`.
    Samples,
    /// No type at all (the operand of a chain).
    Untyped,
}

impl ParamTy {
    pub fn go_type(self) -> &'static str {
        match self {
            ParamTy::Str => "string",
            ParamTy::Any => "interface {}",
            ParamTy::Reflect => "reflect.Value",
            ParamTy::Sample => "*template.sample",
            ParamTy::Samples => "template.queryResult",
            ParamTy::Untyped => "<nil>",
        }
    }
}

macro_rules! funcs {
    ($($variant:ident = $name:literal: [$($fixed:ident),*] $(+ $var:ident)?;)*) => {
        /// Every function name a template may use.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum Func { $($variant),* }

        impl Func {
            pub fn lookup(name: &str) -> Option<Func> {
                match name {
                    $($name => Some(Func::$variant),)*
                    _ => None,
                }
            }

            fn signature(self) -> (&'static [ParamTy], Option<ParamTy>) {
                match self {
                    $(Func::$variant => (&[$(ParamTy::$fixed),*], funcs!(@var $($var)?)),)*
                }
            }
        }
    };
    (@var) => { None };
    (@var $v:ident) => { Some(ParamTy::$v) };
}

funcs! {
    And = "and": [Reflect] + Reflect;
    Or = "or": [Reflect] + Reflect;
    Not = "not": [Reflect];
    Len = "len": [Reflect];
    Index = "index": [Reflect] + Reflect;
    Slice = "slice": [Reflect] + Reflect;
    Print = "print": [] + Any;
    Printf = "printf": [Str] + Any;
    Println = "println": [] + Any;
    Eq = "eq": [Reflect] + Reflect;
    Ne = "ne": [Reflect, Reflect];
    Lt = "lt": [Reflect, Reflect];
    Le = "le": [Reflect, Reflect];
    Gt = "gt": [Reflect, Reflect];
    Ge = "ge": [Reflect, Reflect];
    Html = "html": [] + Any;
    Js = "js": [] + Any;
    Urlquery = "urlquery": [] + Any;
    Call = "call": [Reflect] + Reflect;
    Query = "query": [Str];
    First = "first": [Samples];
    Label = "label": [Str, Sample];
    ValueOf = "value": [Sample];
    StrValue = "strvalue": [Sample];
    Args = "args": [] + Any;
    ReReplaceAll = "reReplaceAll": [Str, Str, Str];
    SafeHtml = "safeHtml": [Str];
    Match = "match": [Str, Str];
    Title = "title": [Str];
    ToUpper = "toUpper": [Str];
    ToLower = "toLower": [Str];
    GraphLink = "graphLink": [Str];
    TableLink = "tableLink": [Str];
    SortByLabel = "sortByLabel": [Str, Samples];
    StripPort = "stripPort": [Str];
    StripDomain = "stripDomain": [Str];
    Humanize = "humanize": [Any];
    Humanize1024 = "humanize1024": [Any];
    HumanizeDuration = "humanizeDuration": [Any];
    HumanizePercentage = "humanizePercentage": [Any];
    HumanizeTimestamp = "humanizeTimestamp": [Any];
    ToTime = "toTime": [Any];
    ToDuration = "toDuration": [Any];
    Now = "now": [];
    PathPrefix = "pathPrefix": [];
    ExternalUrl = "externalURL": [];
    ParseDuration = "parseDuration": [Str];
}

/// A method of a `*time.Time` or `*time.Duration` value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Method {
    TimeFormat,
    TimeInt(fn(&GoTime) -> i64),
    TimeStr(fn(&GoTime) -> String),
    TimeUtc,
    DurStr,
    DurFloat(f64),
    DurInt(i64),
    DurAbs,
}

impl Method {
    pub fn of(v: &Value, name: &str) -> Option<Method> {
        match v {
            Value::Time(_) => Some(match name {
                "Format" => Method::TimeFormat,
                "UTC" | "Local" => Method::TimeUtc,
                "Unix" => Method::TimeInt(|t| t.secs),
                "UnixMilli" => Method::TimeInt(|t| (t.unix_nanos() / 1_000_000) as i64),
                "UnixMicro" => Method::TimeInt(|t| (t.unix_nanos() / 1_000) as i64),
                "UnixNano" => Method::TimeInt(|t| t.unix_nanos() as i64),
                "Year" => Method::TimeInt(|t| t.civil().year),
                "YearDay" => Method::TimeInt(|t| t.civil().yday as i64),
                "Day" => Method::TimeInt(|t| t.civil().day as i64),
                "Hour" => Method::TimeInt(|t| t.civil().hour as i64),
                "Minute" => Method::TimeInt(|t| t.civil().minute as i64),
                "Second" => Method::TimeInt(|t| t.civil().second as i64),
                "Nanosecond" => Method::TimeInt(|t| t.nanos as i64),
                "Month" => Method::TimeStr(|t| t.month_name().to_string()),
                "Weekday" => Method::TimeStr(|t| t.weekday_name().to_string()),
                "String" => Method::TimeStr(|t| t.to_string()),
                _ => return None,
            }),
            Value::Duration(_) => Some(match name {
                "String" => Method::DurStr,
                "Hours" => Method::DurFloat(3.6e12),
                "Minutes" => Method::DurFloat(6e10),
                "Seconds" => Method::DurFloat(1e9),
                "Milliseconds" => Method::DurInt(1_000_000),
                "Microseconds" => Method::DurInt(1_000),
                "Nanoseconds" => Method::DurInt(1),
                "Abs" => Method::DurAbs,
                _ => return None,
            }),
            _ => None,
        }
    }
}

/// A function or a bound method.
pub(super) enum Callee {
    Func(Func),
    Method(Method, Value),
}

impl Callee {
    pub fn signature(&self) -> (&'static [ParamTy], Option<ParamTy>) {
        match self {
            Callee::Func(f) => f.signature(),
            Callee::Method(Method::TimeFormat, _) => (&[ParamTy::Str], None),
            Callee::Method(..) => (&[], None),
        }
    }
}

type CallResult = Result<Value, String>;

/// Calls `callee` with arguments already converted to its parameter types. Errors are the
/// texts Go's functions return (the caller adds `error calling NAME: `).
pub(super) fn call(callee: &Callee, argv: Vec<Value>, env: &Env<'_>) -> CallResult {
    match callee {
        Callee::Func(f) => call_func(*f, argv, env),
        Callee::Method(m, recv) => call_method(*m, recv, argv),
    }
}

fn call_method(m: Method, recv: &Value, argv: Vec<Value>) -> CallResult {
    match (m, recv) {
        (Method::TimeFormat, Value::Time(t)) => Ok(Value::str(t.format(str_arg(&argv[0])))),
        (Method::TimeInt(f), Value::Time(t)) => Ok(Value::Int(f(t))),
        (Method::TimeStr(f), Value::Time(t)) => Ok(Value::str(f(t))),
        (Method::TimeUtc, Value::Time(t)) => Ok(Value::Time(*t)),
        (Method::DurStr, Value::Duration(d)) => Ok(Value::str(duration_string(*d))),
        (Method::DurFloat(unit), Value::Duration(d)) => Ok(Value::Float(*d as f64 / unit)),
        (Method::DurInt(unit), Value::Duration(d)) => Ok(Value::Int(d / unit)),
        (Method::DurAbs, Value::Duration(d)) => Ok(Value::Duration(d.saturating_abs())),
        _ => Err("method called on the wrong receiver".into()),
    }
}

fn str_arg(v: &Value) -> &str {
    match v {
        Value::Str(s) | Value::Html(s) => s,
        _ => "",
    }
}

fn samples_arg(v: &Value) -> Rc<Vec<Rc<Sample>>> {
    match v {
        Value::Samples(s) => s.clone(),
        _ => Rc::new(Vec::new()),
    }
}

fn sample_arg(v: &Value) -> Result<&Rc<Sample>, String> {
    match v {
        Value::Sample(s) => Ok(s),
        _ => Err("runtime error: invalid memory address or nil pointer dereference".into()),
    }
}

/// Go's `evalArgs` for `html`, `js` and `urlquery`: one string as is, else `fmt.Sprint`
/// of the printable values.
fn eval_args(argv: &[Value]) -> String {
    if let [Value::Str(s)] = argv {
        return s.to_string();
    }
    let printable: Vec<Value> = argv
        .iter()
        .map(|a| match a {
            Value::Invalid | Value::NilIface => Value::str("<no value>"),
            Value::Sample(_) => {
                let s = sprint(std::slice::from_ref(a));
                Value::str(s.strip_prefix('&').unwrap_or(&s))
            }
            v => v.clone(),
        })
        .collect();
    sprint(&printable)
}

/// Prometheus's `convertToFloat`.
fn to_float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Str(s) => parse_float(s),
        Value::Int(i) => Ok(*i as f64),
        v => Err(format!("can't convert {} to float", v.fmt_type())),
    }
}

fn g4(v: f64) -> String {
    sprintf("%.4g", &[Value::Float(v)])
}

fn call_func(f: Func, argv: Vec<Value>, env: &Env<'_>) -> CallResult {
    let s = |i: usize| str_arg(&argv[i]);
    Ok(match f {
        Func::And | Func::Or => unreachable!("and/or short-circuit in the evaluator"),
        Func::Not => Value::Bool(!argv[0].clone().indirect_iface().truth()),
        Func::Len => Value::Int(length(&argv[0])? as i64),
        Func::Index => index(&argv[0], &argv[1..])?,
        Func::Slice => slice(&argv[0], &argv[1..])?,
        Func::Print => Value::str(sprint(&argv)),
        Func::Printf => Value::str(sprintf(s(0), &argv[1..])),
        Func::Println => Value::str(sprintln(&argv)),
        Func::Eq => Value::Bool(eq(&argv[0], &argv[1..])?),
        Func::Ne => Value::Bool(!eq(&argv[0], &argv[1..])?),
        Func::Lt => Value::Bool(lt(&argv[0], &argv[1])?),
        Func::Le => Value::Bool(lt(&argv[0], &argv[1])? || eq(&argv[0], &argv[1..])?),
        Func::Gt => Value::Bool(!(lt(&argv[0], &argv[1])? || eq(&argv[0], &argv[1..])?)),
        Func::Ge => Value::Bool(!lt(&argv[0], &argv[1])?),
        Func::Html => Value::str(html_escape(&eval_args(&argv))),
        Func::Js => Value::str(js_escape(&eval_args(&argv))),
        Func::Urlquery => Value::str(query_escape(&eval_args(&argv))),
        Func::Call => {
            return Err(match argv[0].clone().indirect_iface() {
                Value::Invalid => "call of nil".into(),
                v => format!("non-function of type {}", v.type_name()),
            })
        }
        Func::Query => {
            let Some(q) = env.query else {
                return Err("query is not available here".into());
            };
            let res = q(s(0))?;
            Value::Samples(Rc::new(
                res.into_iter()
                    .map(|smp| {
                        let labels: StrMap = smp
                            .labels
                            .iter()
                            .map(|l| (l.name.to_string(), l.value.to_string()))
                            .collect();
                        Rc::new(Sample {
                            labels: Rc::new(labels),
                            value: smp.value,
                        })
                    })
                    .collect(),
            ))
        }
        Func::First => match samples_arg(&argv[0]).first() {
            Some(smp) => Value::Sample(smp.clone()),
            None => return Err("first() called on vector with no elements".into()),
        },
        Func::Label => {
            let smp = sample_arg(&argv[1])?;
            Value::str(smp.labels.get(s(0)).map_or("", String::as_str))
        }
        Func::ValueOf => Value::Float(sample_arg(&argv[0])?.value),
        Func::StrValue => {
            let smp = sample_arg(&argv[0])?;
            Value::str(smp.labels.get("__value__").map_or("", String::as_str))
        }
        Func::Args => {
            let m: BTreeMap<String, Value> = argv
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v))
                .collect();
            Value::AnyMap(Rc::new(m))
        }
        Func::ReReplaceAll => {
            let re =
                compile(s(0)).map_err(|e| format!("regexp: Compile({}): {e}", re_quote(s(0))))?;
            Value::str(replace_all(&re, s(2), s(1))?)
        }
        Func::SafeHtml => Value::Html(s(0).into()),
        Func::Match => Value::Bool(compile(s(0))?.is_match(s(1))),
        Func::Title => Value::str(title(s(0))),
        Func::ToUpper => Value::str(map_simple(s(0), |c| c.to_uppercase())),
        Func::ToLower => Value::str(map_simple(s(0), |c| c.to_lowercase())),
        Func::GraphLink => Value::str(format!("/graph?g0.expr={}&g0.tab=0", query_escape(s(0)))),
        Func::TableLink => Value::str(format!("/graph?g0.expr={}&g0.tab=1", query_escape(s(0)))),
        Func::SortByLabel => {
            let mut v: Vec<Rc<Sample>> = samples_arg(&argv[1]).as_ref().clone();
            let by = s(0);
            v.sort_by(|a, b| {
                let a = a.labels.get(by).map_or("", String::as_str);
                let b = b.labels.get(by).map_or("", String::as_str);
                a.cmp(b)
            });
            Value::Samples(Rc::new(v))
        }
        Func::StripPort => Value::str(match split_host_port(s(0)) {
            Some((host, _)) => host,
            None => s(0),
        }),
        Func::StripDomain => Value::str(strip_domain(s(0))),
        Func::Humanize => Value::str(humanize(to_float(&argv[0])?)),
        Func::Humanize1024 => {
            let mut v = to_float(&argv[0])?;
            if v.abs() <= 1.0 || !v.is_finite() {
                Value::str(g4(v))
            } else {
                let mut prefix = "";
                for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
                    if v.abs() < 1024.0 {
                        break;
                    }
                    prefix = p;
                    v /= 1024.0;
                }
                Value::str(format!("{}{prefix}", g4(v)))
            }
        }
        Func::HumanizeDuration => Value::str(humanize_duration(to_float(&argv[0])?)),
        Func::HumanizePercentage => Value::str(sprintf(
            "%.4g%%",
            &[Value::Float(to_float(&argv[0])? * 100.0)],
        )),
        Func::HumanizeTimestamp => {
            let v = to_float(&argv[0])?;
            if !v.is_finite() {
                Value::str(g4(v))
            } else {
                Value::str(float_to_time(v)?.to_string())
            }
        }
        Func::ToTime => {
            let v = to_float(&argv[0])?;
            if !v.is_finite() {
                return Err("value is NaN or Inf".into());
            }
            Value::Time(float_to_time(v)?)
        }
        Func::ToDuration => {
            let v = to_float(&argv[0])?;
            Value::Duration((v * 1e9) as i64)
        }
        Func::Now => Value::Float(env.ts_ms as f64 / 1000.0),
        Func::PathPrefix => Value::str(url_path(env.external_url)),
        Func::ExternalUrl => Value::str(env.external_url),
        Func::ParseDuration => Value::Float(model::duration::parse_duration(s(0))?.as_secs_f64()),
    })
}

/// Prometheus's `floatToTime`: seconds to a millisecond-precision UTC time.
fn float_to_time(v: f64) -> Result<GoTime, String> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            super::printf::sprint_value(&Value::Float(v))
        ));
    }
    // model.TimeFromUnixNano truncates to milliseconds toward zero.
    let ms = (ns as i64) / 1_000_000;
    Ok(GoTime::from_unix_ms(ms))
}

fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return g4(v);
    }
    if v == 0.0 {
        return format!("{}s", g4(v));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, d / 60 % 60, d / 3600 % 24, d / 86_400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {mins}m {secs}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {mins}m {secs}s")
        } else if mins != 0 {
            format!("{sign}{mins}m {secs}s")
        } else {
            format!("{sign}{}s", g4(v))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Go's simple case mapping: a character whose mapping is several characters stays as is.
fn map_simple<I: Iterator<Item = char> + ExactSizeIterator>(
    s: &str,
    f: impl Fn(char) -> I,
) -> String {
    s.chars()
        .map(|c| {
            let mut m = f(c);
            if m.len() == 1 {
                m.next().unwrap_or(c)
            } else {
                c
            }
        })
        .collect()
}

/// `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let is_sep = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_sep(prev) {
                let mut m = c.to_uppercase();
                if m.len() == 1 {
                    m.next().unwrap_or(c)
                } else {
                    c
                }
            } else {
                c
            };
            prev = c;
            out
        })
        .collect()
}

/// `net.SplitHostPort`; `None` where Go returns an error.
fn split_host_port(hp: &str) -> Option<(&str, &str)> {
    let i = hp.rfind(':')?;
    let (host, j, k) = if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 != i {
            return None;
        }
        (&hp[1..end], 1, end + 1)
    } else {
        let host = &hp[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if hp[j..].contains('[') || hp[k..].contains(']') {
        return None;
    }
    Some((host, &hp[i + 1..]))
}

fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or((hp, ""));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let host = host.split('.').next().unwrap_or("");
    if port.is_empty() {
        host.to_string()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The path of a URL, as `url.URL.Path`.
fn url_path(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(i) => &url[i + 3..],
        None => return url.split(['?', '#']).next().unwrap_or(""),
    };
    match rest.find('/') {
        Some(i) => rest[i..].split(['?', '#']).next().unwrap_or(""),
        None => "",
    }
}

/// Compiles a Go (RE2) regular expression, with Go's error wording where it maps.
fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 22)
        .nest_limit(1000)
        .build()
        .map_err(|e| {
            let msg = e.to_string();
            let code = if msg.contains("unclosed group") {
                "missing closing )"
            } else if msg.contains("unopened group") {
                "unexpected )"
            } else if msg.contains("unclosed character class") {
                "missing closing ]"
            } else if msg.contains("repetition operator missing expression") {
                "missing argument to repetition operator"
            } else if msg.contains("unrecognized escape sequence") {
                "invalid escape sequence"
            } else if msg.contains("invalid character class range") {
                "invalid character class range"
            } else if msg.contains("exceeds size limit") {
                "expression too large"
            } else if msg.contains("nest limit") {
                "expression nests too deeply"
            } else {
                "invalid or unsupported Perl syntax"
            };
            format!("error parsing regexp: {code}: `{pattern}`")
        })
}

/// How `regexp.MustCompile` quotes a pattern in its panic.
fn re_quote(s: &str) -> String {
    if !s.contains('`') && s.chars().all(|c| c == '\t' || !c.is_control()) {
        format!("`{s}`")
    } else {
        quote(s)
    }
}

/// `Regexp.ReplaceAllString`, stopping once the result outgrows the output bound.
fn replace_all(re: &regex::Regex, text: &str, repl: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let m = caps.get(0).map_or(0..0, |m| m.range());
        out.push_str(&text[last..m.start]);
        caps.expand(repl, &mut out);
        last = m.end;
        if out.len() > MAX_OUTPUT_BYTES {
            return Err(format!(
                "result exceeds {MAX_OUTPUT_BYTES} bytes; use a narrower pattern"
            ));
        }
    }
    out.push_str(&text[last..]);
    Ok(out)
}

fn length(v: &Value) -> Result<usize, String> {
    match v.clone().indirect_iface() {
        Value::Invalid => Err("reflect: call of reflect.Value.Type on zero Value".into()),
        v => v
            .len()
            .ok_or_else(|| format!("len of type {}", v.type_name().trim_start_matches('*'))),
    }
}

fn index_arg(v: &Value, cap: usize) -> Result<usize, String> {
    let x = match v.clone().indirect_iface() {
        Value::Int(i) => i,
        Value::Uint8(u) => u as i64,
        Value::Invalid => return Err("cannot index slice/array with nil".into()),
        v => {
            return Err(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            ))
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn map_key(v: &Value) -> Result<String, String> {
    match v.clone().indirect_iface() {
        Value::Str(s) => Ok(s.to_string()),
        Value::Invalid => Err("value is nil; should be of type string".into()),
        v => Err(format!(
            "value has type {}; should be string",
            v.type_name()
        )),
    }
}

fn index(item: &Value, indexes: &[Value]) -> CallResult {
    let mut item = item.clone().indirect_iface();
    if let Value::Invalid = item {
        return Err("index of untyped nil".into());
    }
    for idx in indexes {
        item = match &item {
            Value::Str(s) | Value::Html(s) => {
                let x = index_arg(idx, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Uint8(*b),
                    None => return Err("reflect: string index out of range".into()),
                }
            }
            Value::Samples(v) => {
                let x = index_arg(idx, v.len())?;
                match v.get(x) {
                    Some(smp) => Value::Sample(smp.clone()),
                    None => return Err("reflect: slice index out of range".into()),
                }
            }
            Value::StrMap(m) => Value::str(m.get(&map_key(idx)?).map_or("", String::as_str)),
            Value::AnyMap(m) => m.get(&map_key(idx)?).cloned().unwrap_or(Value::NilIface),
            Value::NilIface => return Err("index of nil pointer".into()),
            v => {
                return Err(format!(
                    "can't index item of type {}",
                    v.type_name().trim_start_matches('*')
                ))
            }
        };
    }
    Ok(item)
}

fn slice(item: &Value, indexes: &[Value]) -> CallResult {
    let item = item.clone().indirect_iface();
    if let Value::Invalid = item {
        return Err("slice of untyped nil".into());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match &item {
        Value::Str(s) | Value::Html(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Samples(v) => v.len(),
        v => {
            return Err(format!(
                "can't slice item of type {}",
                v.type_name().trim_start_matches('*')
            ))
        }
    };
    let mut idx = [0, len, len];
    for (i, x) in indexes.iter().enumerate() {
        idx[i] = index_arg(x, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Value::Str(s) => {
            Value::str(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).as_ref())
        }
        Value::Html(s) => Value::Html(
            String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]])
                .as_ref()
                .into(),
        ),
        Value::Samples(v) => Value::Samples(Rc::new(v[idx[0]..idx[1]].to_vec())),
        v => v,
    })
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

/// Go's `eq`: true if `a` equals any of `others`.
fn eq(a: &Value, others: &[Value]) -> Result<bool, String> {
    let a = a.clone().indirect_iface();
    if others.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = a.basic_kind();
    for b in others {
        let b = b.clone().indirect_iface();
        let k2 = b.basic_kind();
        let truth = if k1 != k2 {
            match (&a, &b) {
                (Value::Int(i), Value::Uint8(u)) | (Value::Uint8(u), Value::Int(i)) => {
                    *i >= 0 && *i == *u as i64
                }
                _ => {
                    let valid = |v: &Value| !matches!(v, Value::Invalid);
                    if valid(&a) && valid(&b) {
                        return Err(BAD_COMPARISON.into());
                    }
                    false
                }
            }
        } else {
            match (&a, &b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Int(x), Value::Int(y)) => x == y,
                (Value::Uint8(x), Value::Uint8(y)) => x == y,
                (Value::Str(x) | Value::Html(x), Value::Str(y) | Value::Html(y)) => x == y,
                (Value::Invalid, _) | (_, Value::Invalid) => {
                    matches!(a, Value::Invalid) == matches!(b, Value::Invalid)
                }
                (Value::Sample(x), Value::Sample(y)) => Rc::ptr_eq(x, y),
                (Value::Time(x), Value::Time(y)) => x == y,
                (Value::Duration(x), Value::Duration(y)) => x == y,
                _ if a.type_name() != b.type_name() => {
                    return Err(format!(
                        "non-comparable types {}: {}, {}: {}",
                        super::printf::sprint_value(&a),
                        a.type_name(),
                        b.type_name(),
                        super::printf::sprint_value(&b)
                    ))
                }
                _ => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        super::printf::sprint_value(&b),
                        b.type_name()
                    ))
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `lt`.
fn lt(a: &Value, b: &Value) -> Result<bool, String> {
    let a = a.clone().indirect_iface();
    let b = b.clone().indirect_iface();
    let k1 = a.basic_kind();
    if matches!(k1, BasicKind::Invalid | BasicKind::Other) {
        return Err(BAD_COMPARISON_TYPE.into());
    }
    let k2 = b.basic_kind();
    if matches!(k2, BasicKind::Invalid | BasicKind::Other) {
        return Err(BAD_COMPARISON_TYPE.into());
    }
    if k1 != k2 {
        return match (&a, &b) {
            (Value::Int(i), Value::Uint8(u)) => Ok(*i < 0 || (*i as u64) < *u as u64),
            (Value::Uint8(u), Value::Int(i)) => Ok(*i >= 0 && (*u as u64) < *i as u64),
            _ => Err(BAD_COMPARISON.into()),
        };
    }
    Ok(match (&a, &b) {
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Int(x), Value::Int(y)) => x < y,
        (Value::Uint8(x), Value::Uint8(y)) => x < y,
        (Value::Str(x) | Value::Html(x), Value::Str(y) | Value::Html(y)) => x < y,
        _ => return Err(BAD_COMPARISON_TYPE.into()),
    })
}
