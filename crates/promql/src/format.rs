//! `/api/v1/format_query`: a query printed back as Prometheus 3 prints it, through its
//! printer (`String()`) and prettifier (`Pretty`): expressions that fit in 100 characters on
//! one line, longer ones split per node with two-space indents.
//!
//! We print the parsed expression ourselves rather than through `promql-parser`'s Display,
//! because the query reaches the parser through our rewrites for syntax it lacks (see the
//! crate doc) and must come back out in Prometheus's spelling: `anchored`/`smoothed` and
//! `info()`'s selector marker are matchers to drop, trims are `atan2` nodes to print as `</`
//! and `>/`, and duration expressions (`[5m+1m]`, `offset -step()`) are placeholder
//! durations standing for the text to print (`durations::keep`). Go's spellings of numbers
//! (`+Inf`, `%v` fill values), strings (`strconv.Quote`), label names and sorted matchers are
//! followed too.
//!
//! Known differences, which the parser's tree cannot tell apart: a unary `+` (`+foo`) is
//! dropped where Prometheus keeps it, and a bare duration used as a number (`time() - 5m`)
//! prints as seconds (`300`) where Prometheus prints `5m`.

use std::collections::HashMap;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AtModifier, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};

use crate::durations::Kept;
use crate::eval::{duration_ms, go_quote, system_time_ms};
use crate::ext;

/// Lines longer than this are split (Prometheus's `maxCharactersPerLine`).
const MAX_LINE: usize = 100;

/// Prints one parsed query.
pub(crate) struct Printer<'a> {
    /// Duration expressions behind placeholder durations.
    pub(crate) durations: &'a Kept,
    /// Addresses of the `atan2` nodes that are trims, `true` for `</`.
    pub(crate) trims: &'a HashMap<usize, bool>,
}

impl Printer<'_> {
    /// Prometheus's `Prettify`.
    pub(crate) fn pretty(&self, e: &Expr) -> String {
        self.pretty_at(e, 0)
    }

    fn pretty_at(&self, e: &Expr, level: usize) -> String {
        let ind = indent(level);
        let flat = || format!("{ind}{}", self.string(e));
        let fits = |e: &Expr| self.string(e).len() <= MAX_LINE;
        match e {
            Expr::Aggregate(a) => {
                if fits(e) {
                    return flat();
                }
                let mut s = format!("{ind}{}(\n", self.agg_head(a));
                if let Some(p) = &a.param {
                    s.push_str(&self.pretty_at(p, level + 1));
                    s.push_str(",\n");
                }
                s.push_str(&self.pretty_at(&a.expr, level + 1));
                s.push('\n');
                s.push_str(&ind);
                s.push(')');
                s
            }
            Expr::Binary(b) => {
                if fits(e) {
                    return flat();
                }
                format!(
                    "{}\n{ind}{}\n{}",
                    self.pretty_at(&b.lhs, level + 1),
                    self.op_and_matching(e),
                    self.pretty_at(&b.rhs, level + 1)
                )
            }
            Expr::Call(c) => {
                if fits(e) {
                    return flat();
                }
                let args: Vec<String> = c
                    .args
                    .args
                    .iter()
                    .map(|a| self.pretty_at(a, level + 1))
                    .collect();
                format!("{ind}{}(\n{}\n{ind})", c.func.name, args.join(",\n"))
            }
            Expr::Paren(p) => {
                if fits(e) {
                    return flat();
                }
                format!("{ind}(\n{}\n{ind})", self.pretty_at(&p.expr, level + 1))
            }
            // Go returns a subquery that fits without its indent.
            Expr::Subquery(s) => {
                if fits(e) {
                    return self.string(e);
                }
                format!(
                    "{}{}",
                    self.pretty_at(&s.expr, level),
                    self.subquery_suffix(s)
                )
            }
            Expr::Unary(u) => {
                let child = self.pretty_at(&u.expr, level);
                format!("{ind}-{}", child.trim())
            }
            _ => flat(),
        }
    }

    /// Prometheus's `String()` of a node.
    pub(crate) fn string(&self, e: &Expr) -> String {
        match e {
            Expr::Aggregate(a) => {
                let mut s = self.agg_head(a);
                s.push('(');
                if let Some(p) = &a.param {
                    s.push_str(&self.string(p));
                    s.push_str(", ");
                }
                s.push_str(&self.string(&a.expr));
                s.push(')');
                s
            }
            Expr::Binary(b) => format!(
                "{} {} {}",
                self.string(&b.lhs),
                self.op_and_matching(e),
                self.string(&b.rhs)
            ),
            Expr::Call(c) => {
                let args: Vec<String> = c.args.args.iter().map(|a| self.string(a)).collect();
                format!("{}({})", c.func.name, args.join(", "))
            }
            Expr::MatrixSelector(m) => {
                let vs = &m.vs;
                let mut s = self.selector_body(vs);
                s.push('[');
                s.push_str(&self.duration(duration_ms(&m.range)));
                s.push(']');
                s.push_str(modifier_word(vs));
                s.push_str(&at_suffix(vs.at.as_ref()));
                s.push_str(&self.offset_suffix(vs.offset.as_ref()));
                s
            }
            Expr::VectorSelector(vs) => {
                let mut s = self.selector_body(vs);
                s.push_str(&at_suffix(vs.at.as_ref()));
                s.push_str(modifier_word(vs));
                s.push_str(&self.offset_suffix(vs.offset.as_ref()));
                s
            }
            Expr::Subquery(s) => format!("{}{}", self.string(&s.expr), self.subquery_suffix(s)),
            Expr::NumberLiteral(n) => model::gofmt::format_f(n.val),
            Expr::StringLiteral(s) => go_quote(&s.val),
            Expr::Paren(p) => format!("({})", self.string(&p.expr)),
            Expr::Unary(u) => format!("-{}", self.string(&u.expr)),
            Expr::Extension(_) => String::new(),
        }
    }

    /// An aggregation's operator and grouping (Go's `ShortString`).
    fn agg_head(&self, a: &promql_parser::parser::AggregateExpr) -> String {
        let mut s = a.op.to_string();
        match &a.modifier {
            Some(LabelModifier::Exclude(l)) => {
                s.push_str(&format!(" without ({}) ", label_list(&l.labels)))
            }
            Some(LabelModifier::Include(l)) if !l.labels.is_empty() => {
                s.push_str(&format!(" by ({}) ", label_list(&l.labels)))
            }
            _ => {}
        }
        s
    }

    /// A binary expression's operator, `bool` and vector matching (Go's `ShortString`).
    fn op_and_matching(&self, e: &Expr) -> String {
        let Expr::Binary(b) = e else {
            return String::new();
        };
        let mut s = match self.trims.get(&(b as *const _ as usize)) {
            Some(true) => "</".to_string(),
            Some(false) => ">/".to_string(),
            None => b.op.to_string(),
        };
        let m = b.modifier.as_ref();
        if m.is_some_and(|m| m.return_bool) {
            s.push_str(" bool");
        }
        // Prometheus keeps vector matching only between two instant vectors.
        let vectors = matches!(b.lhs.value_type(), ValueType::Vector)
            && matches!(b.rhs.value_type(), ValueType::Vector);
        let Some(m) = m.filter(|_| vectors) else {
            return s;
        };
        let grouped = matches!(
            m.card,
            VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
        );
        let (on, labels) = match &m.matching {
            Some(LabelModifier::Include(l)) => (true, l.labels.as_slice()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.as_slice()),
            None => (false, &[][..]),
        };
        if on || !labels.is_empty() || grouped {
            let tag = if on { "on" } else { "ignoring" };
            s.push_str(&format!(" {tag} ({})", label_list(labels)));
        }
        match &m.card {
            VectorMatchCardinality::ManyToOne(l) => {
                s.push_str(&format!(" group_left ({})", label_list(&l.labels)))
            }
            VectorMatchCardinality::OneToMany(l) => {
                s.push_str(&format!(" group_right ({})", label_list(&l.labels)))
            }
            _ => {}
        }
        let fill = &m.fill_values;
        match (fill.lhs, fill.rhs) {
            (Some(l), Some(r)) if l.to_bits() == r.to_bits() => {
                s.push_str(&format!(" fill ({})", model::gofmt::format_g(l)))
            }
            (l, r) => {
                if let Some(l) = l {
                    s.push_str(&format!(" fill_left ({})", model::gofmt::format_g(l)));
                }
                if let Some(r) = r {
                    s.push_str(&format!(" fill_right ({})", model::gofmt::format_g(r)));
                }
            }
        }
        s
    }

    /// A selector's name and sorted matchers, without our marker matchers.
    fn selector_body(&self, vs: &VectorSelector) -> String {
        let name = vs.name.as_deref().unwrap_or("");
        let mut matchers: Vec<String> = vs
            .matchers
            .matchers
            .iter()
            .filter(|m| !crate::is_modifier_marker(m))
            .filter(|m| {
                !(m.name == "__name__"
                    && matches!(m.op, MatchOp::Equal)
                    && m.value == name
                    && !name.is_empty())
            })
            .map(matcher)
            .collect();
        matchers.sort();
        let mut s = name.to_string();
        if !vs.matchers.or_matchers.is_empty() {
            // Not Prometheus syntax; printed as the parser reads it.
            let groups: Vec<String> = vs
                .matchers
                .or_matchers
                .iter()
                .map(|g| {
                    let mut g: Vec<String> = g.iter().map(matcher).collect();
                    g.sort();
                    g.join(", ")
                })
                .collect();
            s.push('{');
            s.push_str(&groups.join(" or "));
            s.push('}');
        } else if !matchers.is_empty() {
            s.push('{');
            s.push_str(&matchers.join(","));
            s.push('}');
        }
        s
    }

    fn subquery_suffix(&self, s: &promql_parser::parser::SubqueryExpr) -> String {
        let step = s
            .step
            .map(|d| self.duration(duration_ms(&d)))
            .unwrap_or_default();
        format!(
            "[{}:{step}]{}{}",
            self.duration(duration_ms(&s.range)),
            at_suffix(s.at.as_ref()),
            self.offset_suffix(s.offset.as_ref())
        )
    }

    /// A duration: the expression a placeholder stands for, or `model.Duration`'s spelling.
    fn duration(&self, ms: i64) -> String {
        match self.durations.printed(ms) {
            Some(p) => p.to_string(),
            None => model_duration(ms),
        }
    }

    fn offset_suffix(&self, o: Option<&Offset>) -> String {
        match o {
            None => String::new(),
            Some(Offset::Pos(d)) => format!(" offset {}", self.duration(duration_ms(d))),
            Some(Offset::Neg(d)) => format!(" offset -{}", self.duration(duration_ms(d))),
        }
    }
}

/// ` anchored` / ` smoothed` for a selector carrying that modifier.
fn modifier_word(vs: &VectorSelector) -> &'static str {
    match ext::mode(vs) {
        Some(ext::Mode::Anchored) => " anchored",
        Some(ext::Mode::Smoothed) => " smoothed",
        None => "",
    }
}

fn at_suffix(at: Option<&AtModifier>) -> String {
    match at {
        None => String::new(),
        Some(AtModifier::Start) => " @ start()".into(),
        Some(AtModifier::End) => " @ end()".into(),
        Some(AtModifier::At(t)) => format!(" @ {:.3}", system_time_ms(t) as f64 / 1000.0),
    }
}

/// Go's `labels.Matcher.String()`: the name quoted unless it is a plain identifier.
fn matcher(m: &Matcher) -> String {
    let plain = !m.name.is_empty()
        && m.name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    let name = if plain {
        m.name.clone()
    } else {
        go_quote(&m.name)
    };
    let op = match m.op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Re(_) => "=~",
        MatchOp::NotRe(_) => "!~",
    };
    format!("{name}{op}{}", go_quote(&m.value))
}

/// Grouping labels, quoted when they are not legacy label names (Go's `writeLabels`).
fn label_list(labels: &[String]) -> String {
    let quoted: Vec<String> = labels
        .iter()
        .map(|l| {
            let legacy =
                l.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                }) && !l.is_empty();
            if legacy {
                l.clone()
            } else {
                go_quote(l)
            }
        })
        .collect();
    quoted.join(", ")
}

/// Prometheus's `model.Duration.String()` of a number of milliseconds: `1h30m`, `90d`
/// (years and weeks only when they divide evenly), `0s` for zero.
pub(crate) fn model_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut ms = ms;
    let mut s = String::new();
    for (unit, mult, exact) in [
        ("y", 365 * 86_400_000, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ] {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            s.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    s
}

fn indent(level: usize) -> String {
    "  ".repeat(level)
}
