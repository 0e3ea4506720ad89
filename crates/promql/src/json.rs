//! Prometheus's exact JSON for query results.
//!
//! Byte compatibility matters (clients and our API tests compare bytes), so this writes the
//! JSON by hand the way Prometheus's `jsonutil` does instead of going through serde: floats
//! as Go's `strconv.FormatFloat(v, 'f', -1, 64)` in strings with `NaN`/`+Inf`/`-Inf`, times as
//! seconds with the millisecond fraction always written with three digits when non-zero, and
//! strings escaped as Go's `encoding/json` escapes them (including `<`, `>` and `&`).

use std::fmt::Write;

use tsdb::Labels;

use crate::value::{QueryResult, Value};

/// The `data` object of a query answer: `{"resultType":...,"result":...}`.
pub fn data(v: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_data(&mut out, v);
    out
}

/// The whole success envelope: `{"status":"success","data":...}` plus `warnings` and `infos`
/// when there are any.
pub fn success(r: &QueryResult) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"status\":\"success\",\"data\":");
    write_data(&mut out, &r.value);
    for (key, list) in [("warnings", &r.warnings), ("infos", &r.infos)] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(out, ",\"{key}\":[");
        for (i, w) in list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(&mut out, w);
        }
        out.push(']');
    }
    out.push('}');
    out
}

/// The error envelope: `{"status":"error","errorType":...,"error":...}`.
pub fn error(e: &crate::Error) -> String {
    let mut out = String::from("{\"status\":\"error\",\"errorType\":");
    write_str(&mut out, e.error_type());
    out.push_str(",\"error\":");
    write_str(&mut out, &e.to_string());
    out.push('}');
    out
}

fn write_data(out: &mut String, v: &Value) {
    out.push_str("{\"resultType\":\"");
    out.push_str(v.type_name());
    out.push_str("\",\"result\":");
    match v {
        Value::Scalar { t, v } => write_point(out, *t, *v),
        Value::String { t, v } => {
            out.push('[');
            write_time(out, *t);
            out.push(',');
            write_str(out, v);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.metric);
                match &s.h {
                    Some(h) => {
                        out.push_str(",\"histogram\":");
                        write_hpoint(out, s.t, h);
                    }
                    None => {
                        out.push_str(",\"value\":");
                        write_point(out, s.t, s.v);
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &s.metric);
                // Prometheus writes each list only when it has points (an empty series keeps
                // `values` so the object stays well-formed for clients).
                if !s.points.is_empty() || s.histograms.is_empty() {
                    out.push_str(",\"values\":[");
                    for (j, (t, v)) in s.points.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_point(out, *t, *v);
                    }
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(",\"histograms\":[");
                    for (j, (t, h)) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_hpoint(out, *t, h);
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
}

fn write_labels(out: &mut String, l: &Labels) {
    out.push('{');
    for (i, p) in l.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, p.name);
        out.push(':');
        write_str(out, p.value);
    }
    out.push('}');
}

fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_time(out, t);
    out.push_str(",\"");
    out.push_str(&format_float(v));
    out.push_str("\"]");
}

/// `[t, {"count":..,"sum":..,"buckets":[[rule,lower,upper,count],...]}]` as Prometheus's
/// `MarshalHistogram` writes it: only populated buckets, boundary rule 0 for `(l,u]`, 1 for
/// `[l,u)`, 2 for `(l,u)`, 3 for `[l,u]`.
fn write_hpoint(out: &mut String, t: i64, h: &model::histogram::FloatHistogram) {
    out.push('[');
    write_time(out, t);
    out.push_str(",{\"count\":\"");
    out.push_str(&format_float(h.count));
    out.push_str("\",\"sum\":\"");
    out.push_str(&format_float(h.sum));
    out.push('"');
    let mut first = true;
    for b in h.all_buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.push_str(if first { ",\"buckets\":[" } else { "," });
        first = false;
        let rule = match (b.lower_inclusive, b.upper_inclusive) {
            (false, true) => 0,
            (true, false) => 1,
            (false, false) => 2,
            (true, true) => 3,
        };
        let _ = write!(
            out,
            "[{rule},\"{}\",\"{}\",\"{}\"]",
            format_float(b.lower),
            format_float(b.upper),
            format_float(b.count)
        );
    }
    if !first {
        out.push(']');
    }
    out.push_str("}]");
}

/// Seconds with the millisecond fraction, as Prometheus's `MarshalTimestamp` writes them.
pub fn write_time(out: &mut String, t: i64) {
    let (neg, t) = if t < 0 {
        (true, t.unsigned_abs())
    } else {
        (false, t as u64)
    };
    if neg {
        out.push('-');
    }
    let _ = write!(out, "{}", t / 1000);
    let frac = t % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

pub use model::gofmt::format_f as format_float;

/// A JSON string as Go's encoding/json writes it.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Sample, Series};

    fn labels(p: &[(&str, &str)]) -> Labels {
        Labels::new(p.iter().copied()).unwrap()
    }

    #[test]
    fn vector_bytes() {
        let v = Value::Vector(vec![Sample {
            metric: labels(&[("__name__", "up"), ("job", "a<b")]),
            t: 1_700_000_000_123,
            v: 1.5,
            h: None,
        }]);
        assert_eq!(
            data(&v),
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\u003cb"},"value":[1700000000.123,"1.5"]}]}"#
        );
    }

    #[test]
    fn matrix_scalar_string_bytes() {
        let m = Value::Matrix(vec![Series {
            metric: Labels::empty(),
            points: vec![
                (1000, f64::NAN),
                (1500, f64::INFINITY),
                (2010, -0.0),
                (-1, 1e21),
            ],
            histograms: Vec::new(),
        }]);
        assert_eq!(
            data(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"values":[[1,"NaN"],[1.500,"+Inf"],[2.010,"-0"],[-0.001,"1000000000000000000000"]]}]}"#
        );
        assert_eq!(
            data(&Value::Scalar {
                t: 0,
                v: f64::NEG_INFINITY
            }),
            r#"{"resultType":"scalar","result":[0,"-Inf"]}"#
        );
        assert_eq!(
            data(&Value::String {
                t: 5,
                v: "a\"\n".into()
            }),
            r#"{"resultType":"string","result":[0.005,"a\"\n"]}"#
        );
        assert_eq!(format_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_float(1e-7), "0.0000001");
    }

    #[test]
    fn envelopes() {
        let r = QueryResult {
            value: Value::Vector(vec![]),
            warnings: vec!["PromQL warning: x".into()],
            infos: vec![],
        };
        assert_eq!(
            success(&r),
            r#"{"status":"success","data":{"resultType":"vector","result":[]},"warnings":["PromQL warning: x"]}"#
        );
        assert_eq!(
            error(&crate::Error::Timeout),
            r#"{"status":"error","errorType":"timeout","error":"query timed out in query execution"}"#
        );
    }

    #[test]
    fn histogram_bytes() {
        use model::histogram::{FloatHistogram, Span};
        let h = FloatHistogram {
            count: 5.0,
            sum: 7.5,
            zero_threshold: 0.001,
            zero_count: 1.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![3.0, 0.0],
            negative_spans: vec![Span {
                offset: 0,
                length: 1,
            }],
            negative_buckets: vec![1.0],
            ..Default::default()
        };
        let v = Value::Vector(vec![Sample {
            metric: Labels::empty(),
            t: 1000,
            v: 0.0,
            h: Some(std::sync::Arc::new(h.clone())),
        }]);
        assert_eq!(
            data(&v),
            r#"{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"5","sum":"7.5","buckets":[[1,"-1","-0.5","1"],[3,"-0.001","0.001","1"],[0,"0.5","1","3"]]}]}]}"#
        );
        let m = Value::Matrix(vec![Series {
            metric: Labels::empty(),
            points: Vec::new(),
            histograms: vec![(2000, std::sync::Arc::new(FloatHistogram::default()))],
        }]);
        assert_eq!(
            data(&m),
            r#"{"resultType":"matrix","result":[{"metric":{},"histograms":[[2,{"count":"0","sum":"0"}]]}]}"#
        );
    }
}
