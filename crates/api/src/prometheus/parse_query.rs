//! `/api/v1/parse_query`: a query's syntax tree as the JSON Prometheus's UI draws its tree
//! view from (Prometheus's `translateAST`).
//!
//! The tree comes from the same parser the engine uses (`promql-parser`); this module only
//! renames and reshapes it. Go writes these objects from maps, so keys come out sorted; we
//! build them as `BTreeMap`s for the same bytes. Where the two parsers' trees differ:
//! - Go lists the `__name__` matcher of `foo{...}` last among a selector's matchers; the crate
//!   keeps the name apart, so it is appended here.
//! - Go keeps a unary `+` as a node; the crate drops it (the value is the same).
//! - the crate does not know `anchored`/`smoothed`: `promql::parse_with_modifiers` carries
//!   them as a marker matcher, which is read back into the two flags and not listed; the
//!   marker that lets `info()` selectors match the empty string is not listed either.
//! - not translated yet: duration expressions (`[5m+1m]`) and the trims `</`, `>/`, which
//!   `format_query` prints but this tree does not carry.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use serde_json::{json, Value};

use super::{PromParams, PromResult, Success};

/// The handler: 400 `bad_data` for a query that does not parse, as `format_query`.
pub(super) async fn parse_query(params: PromParams) -> PromResult {
    match promql::parse_with_modifiers(params.get("query")) {
        Ok(expr) => Success::new(&translate(&expr)),
        Err(e) => Err(super::query::invalid("query", e.to_string())),
    }
}

type Node = BTreeMap<&'static str, Value>;

/// The JSON tree of one expression.
pub fn translate(expr: &Expr) -> Value {
    let mut n = Node::new();
    match expr {
        Expr::Aggregate(a) => {
            n.insert("type", json!("aggregation"));
            n.insert("op", json!(a.op.to_string()));
            n.insert("expr", translate(&a.expr));
            n.insert("param", a.param.as_deref().map_or(Value::Null, translate));
            let (grouping, without) = match &a.modifier {
                Some(LabelModifier::Include(l)) => (l.labels.clone(), false),
                Some(LabelModifier::Exclude(l)) => (l.labels.clone(), true),
                None => (Vec::new(), false),
            };
            n.insert("grouping", json!(grouping));
            n.insert("without", json!(without));
        }
        Expr::Binary(b) => {
            n.insert("type", json!("binaryExpr"));
            n.insert("op", json!(b.op.to_string()));
            n.insert("lhs", translate(&b.lhs));
            n.insert("rhs", translate(&b.rhs));
            // Go drops the matching unless both sides are instant vectors.
            let matching = if is_vector(&b.lhs) && is_vector(&b.rhs) {
                let m = b.modifier.as_ref();
                let mut card = m.map_or(VectorMatchCardinality::OneToOne, |m| m.card.clone());
                if b.op.is_set_operator() && card == VectorMatchCardinality::OneToOne {
                    card = VectorMatchCardinality::ManyToMany;
                }
                let (labels, on) = match m.and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(l)) => (l.labels.clone(), true),
                    Some(LabelModifier::Exclude(l)) => (l.labels.clone(), false),
                    None => (Vec::new(), false),
                };
                let include = card.labels().map(|l| l.labels.clone()).unwrap_or_default();
                let fill = m.map(|m| &m.fill_values);
                let mut o = Node::new();
                o.insert("card", json!(card_name(&card)));
                o.insert("labels", json!(labels));
                o.insert("on", json!(on));
                o.insert("include", json!(include));
                o.insert(
                    "fillValues",
                    json!({
                        "lhs": fill.and_then(|f| f.lhs).map(json_f64),
                        "rhs": fill.and_then(|f| f.rhs).map(json_f64),
                    }),
                );
                json!(o)
            } else {
                Value::Null
            };
            n.insert("matching", matching);
            let bool_modifier = b.modifier.as_ref().is_some_and(|m| m.return_bool);
            n.insert("bool", json!(bool_modifier));
        }
        Expr::Call(c) => {
            n.insert("type", json!("call"));
            let arg_types: Vec<String> = c.func.arg_types.iter().map(|t| t.to_string()).collect();
            n.insert(
                "func",
                json!({
                    "name": c.func.name,
                    "argTypes": arg_types,
                    "variadic": c.func.variadic,
                    "returnType": c.func.return_type.to_string(),
                }),
            );
            let args: Vec<Value> = c.args.args.iter().map(|a| translate(a)).collect();
            n.insert("args", json!(args));
        }
        Expr::MatrixSelector(m) => {
            n.insert("type", json!("matrixSelector"));
            n.insert("range", json!(millis(m.range)));
            selector_fields(&mut n, &m.vs);
        }
        Expr::Subquery(s) => {
            n.insert("type", json!("subquery"));
            n.insert("expr", translate(&s.expr));
            n.insert("range", json!(millis(s.range)));
            n.insert("offset", json!(offset_ms(s.offset.as_ref())));
            n.insert("step", json!(s.step.map_or(0, millis)));
            let (timestamp, start_or_end) = at_fields(s.at.as_ref());
            n.insert("timestamp", timestamp);
            n.insert("startOrEnd", start_or_end);
        }
        Expr::NumberLiteral(l) => {
            n.insert("type", json!("numberLiteral"));
            n.insert("val", json!(go_fixed(l.val)));
        }
        Expr::StringLiteral(s) => {
            n.insert("type", json!("stringLiteral"));
            n.insert("val", json!(s.val));
        }
        Expr::Paren(p) => {
            n.insert("type", json!("parenExpr"));
            n.insert("expr", translate(&p.expr));
        }
        Expr::Unary(u) => {
            n.insert("type", json!("unaryExpr"));
            n.insert("op", json!("-"));
            n.insert("expr", translate(&u.expr));
        }
        Expr::VectorSelector(vs) => {
            n.insert("type", json!("vectorSelector"));
            selector_fields(&mut n, vs);
        }
        // The parser never produces extension nodes.
        Expr::Extension(_) => return Value::Null,
    }
    json!(n)
}

/// The fields vector and matrix selectors share.
fn selector_fields(n: &mut Node, vs: &VectorSelector) {
    n.insert("name", json!(vs.name.clone().unwrap_or_default()));
    n.insert("offset", json!(offset_ms(vs.offset.as_ref())));
    let mut matchers: Vec<Value> = vs
        .matchers
        .matchers
        .iter()
        .filter(|m| !promql::is_modifier_marker(m))
        .map(matcher)
        .collect();
    if let Some(name) = &vs.name {
        let listed =
            vs.matchers.matchers.iter().any(|m| {
                m.name == "__name__" && matches!(m.op, MatchOp::Equal) && &m.value == name
            });
        if !listed {
            matchers.push(json!({"name": "__name__", "type": "=", "value": name}));
        }
    }
    n.insert("matchers", json!(matchers));
    let (timestamp, start_or_end) = at_fields(vs.at.as_ref());
    n.insert("timestamp", timestamp);
    n.insert("startOrEnd", start_or_end);
    let (anchored, smoothed) = promql::range_modifiers(vs);
    n.insert("anchored", json!(anchored));
    n.insert("smoothed", json!(smoothed));
}

fn matcher(m: &Matcher) -> Value {
    let op = match m.op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Re(_) => "=~",
        MatchOp::NotRe(_) => "!~",
    };
    json!({"name": m.name, "type": op, "value": m.value})
}

fn is_vector(e: &Expr) -> bool {
    matches!(e.value_type(), ValueType::Vector)
}

fn card_name(c: &VectorMatchCardinality) -> &'static str {
    match c {
        VectorMatchCardinality::OneToOne => "one-to-one",
        VectorMatchCardinality::ManyToOne(_) => "many-to-one",
        VectorMatchCardinality::OneToMany(_) => "one-to-many",
        VectorMatchCardinality::ManyToMany => "many-to-many",
    }
}

/// `@` as Go's tree holds it: a fixed timestamp in milliseconds, or `start`/`end`.
fn at_fields(at: Option<&AtModifier>) -> (Value, Value) {
    match at {
        None => (Value::Null, Value::Null),
        Some(AtModifier::Start) => (Value::Null, json!("start")),
        Some(AtModifier::End) => (Value::Null, json!("end")),
        Some(AtModifier::At(t)) => {
            let ms = match t.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(d) => millis(d),
                Err(e) => -millis(e.duration()),
            };
            (json!(ms), Value::Null)
        }
    }
}

fn offset_ms(o: Option<&Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => millis(*d),
        Some(Offset::Neg(d)) => -millis(*d),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A fill value as a JSON number (Go writes `*float64`); non-finite ones cannot be JSON.
fn json_f64(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an exponent.
fn go_fixed(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(q: &str) -> String {
        serde_json::to_string(&translate(&promql::parse_with_modifiers(q).unwrap())).unwrap()
    }

    fn value(q: &str) -> Value {
        translate(&promql::parse_with_modifiers(q).unwrap())
    }

    #[test]
    fn range_modifiers_show_as_flags_not_matchers() {
        assert_eq!(
            tree("rate(foo[5m] anchored)"),
            concat!(
                r#"{"args":[{"anchored":true,"matchers":[{"name":"__name__","type":"=","#,
                r#""value":"foo"}],"name":"foo","offset":0,"range":300000,"smoothed":false,"#,
                r#""startOrEnd":null,"timestamp":null,"type":"matrixSelector"}],"#,
                r#""func":{"argTypes":["matrix"],"name":"rate","returnType":"vector","#,
                r#""variadic":0},"type":"call"}"#
            )
        );
        let v = value(r#"foo{a="b"} smoothed"#);
        assert_eq!(v["smoothed"], json!(true));
        assert_eq!(v["anchored"], json!(false));
        assert_eq!(v["matchers"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn info_selectors_matching_the_empty_string_parse_without_the_marker() {
        let v = value(r#"info(x, {data=~".*"})"#);
        assert_eq!(
            v["args"][1]["matchers"],
            json!([{"name": "data", "type": "=~", "value": ".*"}])
        );
    }

    #[test]
    fn selectors_list_the_name_matcher_last_with_sorted_keys() {
        assert_eq!(
            tree(r#"foo{a=~"b.*"} offset -5m @ 100"#),
            concat!(
                r#"{"anchored":false,"matchers":[{"name":"a","type":"=~","value":"b.*"},"#,
                r#"{"name":"__name__","type":"=","value":"foo"}],"name":"foo","offset":-300000,"#,
                r#""smoothed":false,"startOrEnd":null,"timestamp":100000,"type":"vectorSelector"}"#
            )
        );
        assert_eq!(
            tree(r#"{__name__="foo"}[5m] @ end()"#),
            concat!(
                r#"{"anchored":false,"matchers":[{"name":"__name__","type":"=","value":"foo"}],"#,
                r#""name":"","offset":0,"range":300000,"smoothed":false,"startOrEnd":"end","#,
                r#""timestamp":null,"type":"matrixSelector"}"#
            )
        );
    }

    #[test]
    fn aggregations_calls_and_binaries_carry_prometheus_fields() {
        let v = value("sum without (job) (rate(x[1m])) / on (a) group_left (b) y > bool 1");
        assert_eq!(v["type"], "binaryExpr");
        assert_eq!(v["op"], ">");
        assert_eq!(v["bool"], true);
        assert_eq!(
            v["matching"],
            Value::Null,
            "vector > scalar has no matching"
        );
        assert_eq!(v["rhs"], json!({"type": "numberLiteral", "val": "1"}));
        let div = &v["lhs"];
        assert_eq!(div["op"], "/");
        assert_eq!(div["bool"], false);
        assert_eq!(
            div["matching"],
            json!({"card": "many-to-one", "labels": ["a"], "on": true, "include": ["b"],
                   "fillValues": {"lhs": null, "rhs": null}})
        );
        let sum = &div["lhs"];
        assert_eq!(sum["op"], "sum");
        assert_eq!(sum["without"], true);
        assert_eq!(sum["grouping"], json!(["job"]));
        assert_eq!(sum["param"], Value::Null);
        let call = &sum["expr"];
        assert_eq!(
            call["func"],
            json!({"name": "rate", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector"})
        );
        assert_eq!(call["args"][0]["type"], "matrixSelector");
        assert_eq!(value("a and b")["matching"]["card"], "many-to-many");
        assert_eq!(value("topk(3, x)")["param"]["val"], "3");
    }

    #[test]
    fn literals_subqueries_and_unary_minus() {
        assert_eq!(
            tree("-(1e21)"),
            concat!(
                r#"{"expr":{"expr":{"type":"numberLiteral","val":"1000000000000000000000"},"#,
                r#""type":"parenExpr"},"op":"-","type":"unaryExpr"}"#
            )
        );
        assert_eq!(tree("-Inf"), r#"{"type":"numberLiteral","val":"-Inf"}"#);
        let sq = &value("max_over_time(x[1h:5m] offset 1m)")["args"][0];
        assert_eq!(sq["type"], "subquery");
        assert_eq!(sq["range"], 3_600_000);
        assert_eq!(sq["step"], 300_000);
        assert_eq!(sq["offset"], 60_000);
        assert_eq!(
            value(r#"label_replace(x, "a", "$1", "b", "(.*)")"#)["args"][2],
            json!({"type": "stringLiteral", "val": "$1"})
        );
    }
}
