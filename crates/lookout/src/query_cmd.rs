//! `lookout query EXPR`: PromQL from the terminal against a running Lookout.
//!
//! The command is a thin client of the server's own `/api/v1/query` and
//! `/api/v1/query_range` (form POST, so long expressions never hit URL limits): what it prints
//! is exactly what Grafana would be answered, and a query never opens the data dir behind the
//! server's back. `--json` prints the server's body unchanged, for scripts.
//!
//! Rendering: an instant vector is a table with one column per label name and the value last;
//! a range result is one sparkline row per series (eight block heights, each series scaled to
//! its own minimum and maximum, a blank where a step has no point) with min/max/last and the
//! labels as its legend. A series of native histograms has no single value per step, so it
//! gets two rows, its observation count and its sum per step, each legend saying which. Server errors print as one line (`error: bad_data: ...`) and exit 1.
//! Times (`--time`, `--start`, `--end`) are Unix seconds, RFC 3339, `now` or `now-DURATION`;
//! the relative forms are resolved here, the others are passed through for the server to parse.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cli::QueryArgs;

/// Widest sparkline drawn; longer ranges are resampled to this many columns.
const CHART_WIDTH: usize = 60;
/// Series drawn before the rest are only counted.
const MAX_SERIES_SHOWN: usize = 40;
/// Rows a table shows before the rest are only counted.
const MAX_ROWS_SHOWN: usize = 200;
/// Largest response body read (the server bounds results by samples; this bounds the client).
const MAX_BODY: u64 = 256 << 20;
/// Steps a range query defaults to when `--step` is not given.
const DEFAULT_STEPS: i64 = 240;

/// `lookout query`.
pub fn run(args: QueryArgs) -> anyhow::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let ranged = args.start.is_some() || args.end.is_some() || args.step.is_some();
    let base = args.server.trim_end_matches('/');
    let mut form: Vec<(&str, String)> = vec![("query", args.expr.clone())];
    let (path, span) = if ranged {
        let end = resolve_time(args.end.as_deref().unwrap_or("now"), now)?;
        let start = match args.start.as_deref() {
            Some(s) => resolve_time(s, now)?,
            None => TimeArg::Secs(end.secs().unwrap_or(now) - 3600.0),
        };
        let step = match &args.step {
            Some(s) => s.clone(),
            None => match (start.secs(), end.secs()) {
                (Some(s), Some(e)) if e > s => {
                    format!("{}s", (((e - s) / DEFAULT_STEPS as f64).ceil() as i64).max(1))
                }
                _ => bail!("--step is needed when --start or --end is not a number or relative time; e.g. --step 30s"),
            },
        };
        form.push(("start", start.to_param()));
        form.push(("end", end.to_param()));
        form.push(("step", step.clone()));
        (
            "/api/v1/query_range",
            Some((start.secs(), end.secs(), step)),
        )
    } else {
        if let Some(t) = &args.time {
            form.push(("time", resolve_time(t, now)?.to_param()));
        }
        ("/api/v1/query", None)
    };
    let url = format!("{base}{path}");
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(args.timeout_secs)))
            .build(),
    );
    let mut resp = agent.post(&url).send_form(form).with_context(|| {
        format!("cannot reach Lookout at {base}; start it with `lookout up` or pass --server URL")
    })?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .with_context(|| format!("reading the answer from {url}"))?;
    let v: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) => bail!(
            "{url} answered HTTP {status} with a body that is not Prometheus API JSON; is --server a Lookout (or Prometheus) address?"
        ),
    };
    if v["status"] != "success" {
        // One line whatever the message holds (parser errors can span lines).
        let msg = v["error"]
            .as_str()
            .unwrap_or("the server gave no error message")
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        bail!("{}: {msg}", v["errorType"].as_str().unwrap_or("error"));
    }
    if args.json {
        println!("{body}");
        return Ok(());
    }
    for key in ["warnings", "infos"] {
        if let Some(list) = v[key].as_array() {
            for w in list {
                eprintln!(
                    "{}: {}",
                    key.trim_end_matches('s'),
                    w.as_str().unwrap_or_default()
                );
            }
        }
    }
    let data = &v["data"];
    let out = match (data["resultType"].as_str(), span) {
        (Some("matrix"), Some((s, e, step))) => {
            render_chart(&args.expr, &data["result"], s, e, &step)
        }
        (Some("matrix"), None) => render_raw_matrix(&data["result"]),
        (Some("vector"), _) => render_table(&data["result"]),
        (Some("scalar" | "string"), _) => format!("{}\n", data["result"][1].as_str().unwrap_or("")),
        _ => bail!("the server answered a result type this client does not know: {data}"),
    };
    print!("{out}");
    Ok(())
}

/// A time parameter: resolved to seconds here, or passed through for the server to parse.
#[derive(Debug, Clone, PartialEq)]
enum TimeArg {
    Secs(f64),
    Raw(String),
}

impl TimeArg {
    fn secs(&self) -> Option<f64> {
        match self {
            TimeArg::Secs(s) => Some(*s),
            TimeArg::Raw(r) => r.parse().ok(),
        }
    }
    fn to_param(&self) -> String {
        match self {
            TimeArg::Secs(s) => format!("{s:.3}"),
            TimeArg::Raw(r) => r.clone(),
        }
    }
}

/// `now`, `now-1h`, `now+5m`, or anything else (Unix seconds, RFC 3339) as given.
fn resolve_time(s: &str, now: f64) -> anyhow::Result<TimeArg> {
    let s = s.trim();
    let Some(rest) = s.strip_prefix("now") else {
        return Ok(TimeArg::Raw(s.to_string()));
    };
    if rest.is_empty() {
        return Ok(TimeArg::Secs(now));
    }
    let (sign, dur) = match rest.split_at(1) {
        ("-", d) => (-1.0, d),
        ("+", d) => (1.0, d),
        _ => bail!("cannot read the time {s:?}; write now, now-1h, Unix seconds or RFC 3339"),
    };
    let d = crate::config::parse_duration(dur)
        .map_err(|e| anyhow::anyhow!("{e} in the time {s:?}; write e.g. now-1h or now-90s"))?;
    Ok(TimeArg::Secs(now + sign * d.as_secs_f64()))
}

/// Prometheus's labels text: `name{a="b", c="d"}`.
fn series_name(metric: &Value) -> String {
    let Some(m) = metric.as_object() else {
        return "{}".into();
    };
    let mut s = m
        .get("__name__")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let pairs: Vec<String> = m
        .iter()
        .filter(|(k, _)| *k != "__name__")
        .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default()))
        .collect();
    if !pairs.is_empty() || s.is_empty() {
        let _ = write!(s, "{{{}}}", pairs.join(", "));
    }
    s
}

/// An instant vector as a table: a column per label name (the metric name first), then VALUE.
fn render_table(result: &Value) -> String {
    let rows = result.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        return "no series\n".into();
    }
    let mut names: Vec<String> = Vec::new();
    for r in rows {
        if let Some(m) = r["metric"].as_object() {
            for k in m.keys() {
                if !names.contains(k) {
                    names.push(k.clone());
                }
            }
        }
    }
    names.sort_by(|a, b| (a != "__name__", a).cmp(&(b != "__name__", b)));
    let mut table: Vec<Vec<String>> = vec![names
        .iter()
        .map(|n| {
            if n == "__name__" {
                "NAME".into()
            } else {
                n.clone()
            }
        })
        .chain(std::iter::once("VALUE".into()))
        .collect()];
    for r in rows.iter().take(MAX_ROWS_SHOWN) {
        let mut row: Vec<String> = names
            .iter()
            .map(|n| r["metric"][n].as_str().unwrap_or("").to_string())
            .collect();
        row.push(match r.get("histogram") {
            Some(h) => histogram_text(&h[1]),
            None => r["value"][1].as_str().unwrap_or("").to_string(),
        });
        table.push(row);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                // Values right-aligned, so magnitudes line up.
                let _ = write!(line, "{cell:>w$}", w = widths[c]);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if rows.len() > MAX_ROWS_SHOWN {
        let _ = writeln!(
            out,
            "... and {} more series (--json prints all)",
            rows.len() - MAX_ROWS_SHOWN
        );
    }
    out
}

/// A range vector from an instant query (`foo[5m]`): each series with its raw samples.
fn render_raw_matrix(result: &Value) -> String {
    let mut out = String::new();
    for s in result.as_array().map(Vec::as_slice).unwrap_or_default() {
        let _ = writeln!(out, "{}", series_name(&s["metric"]));
        // Floats and native histograms come in two lists; shown merged in time order.
        let mut points: Vec<(f64, String)> = Vec::new();
        for p in s["values"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            points.push((
                p[0].as_f64().unwrap_or(0.0),
                p[1].as_str().unwrap_or("").to_string(),
            ));
        }
        for p in s["histograms"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            points.push((p[0].as_f64().unwrap_or(0.0), histogram_text(&p[1])));
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (t, v) in points {
            let _ = writeln!(out, "  {v} @{}", format_value(t));
        }
    }
    if out.is_empty() {
        out.push_str("no series\n");
    }
    out
}

/// A native histogram of the API's JSON in Prometheus's string form:
/// `{count:5, sum:7.5, [-1,-0.5):1, (0.5,1]:3}` (bracket per the bucket's boundary rule).
fn histogram_text(h: &Value) -> String {
    let mut s = format!(
        "{{count:{}, sum:{}",
        h["count"].as_str().unwrap_or(""),
        h["sum"].as_str().unwrap_or("")
    );
    for b in h["buckets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let rule = b[0].as_u64().unwrap_or(0);
        let (open, close) = match rule {
            0 => ('(', ']'),
            1 => ('[', ')'),
            2 => ('(', ')'),
            _ => ('[', ']'),
        };
        let _ = write!(
            s,
            ", {open}{},{}{close}:{}",
            b[1].as_str().unwrap_or(""),
            b[2].as_str().unwrap_or(""),
            b[3].as_str().unwrap_or("")
        );
    }
    s.push('}');
    s
}

/// A range result: a header line, then a sparkline per series with its legend.
fn render_chart(
    expr: &str,
    result: &Value,
    start: Option<f64>,
    end: Option<f64>,
    step: &str,
) -> String {
    let series = result.as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = String::new();
    let when = match (start, end) {
        (Some(s), Some(e)) => format!("{} to {}", utc(s), utc(e)),
        _ => String::new(),
    };
    let _ = writeln!(out, "{expr}  {when}, step {step}, {} series", series.len());
    if series.is_empty() {
        return out;
    }
    // The time axis all sparklines share: from the first to the last point of any series
    // (the server aligns every point to start + k*step).
    let ts: Vec<f64> = series
        .iter()
        .flat_map(|s| {
            ["values", "histograms"].into_iter().flat_map(move |key| {
                s[key]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|p| p[0].as_f64())
            })
        })
        .collect();
    let lo = start.unwrap_or_else(|| ts.iter().copied().fold(f64::INFINITY, f64::min));
    let hi = end.unwrap_or_else(|| ts.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    let width = CHART_WIDTH;
    for s in series.iter().take(MAX_SERIES_SHOWN) {
        let name = series_name(&s["metric"]);
        let floats = points(&s["values"], |v| v.as_str());
        let counts = points(&s["histograms"], |h| h["count"].as_str());
        let sums = points(&s["histograms"], |h| h["sum"].as_str());
        // A series may hold both kinds (a float then histograms): each gets its rows.
        let mut rows: Vec<(Vec<(f64, f64)>, String)> = Vec::new();
        if !floats.is_empty() || counts.is_empty() {
            rows.push((floats, name.clone()));
        }
        if !counts.is_empty() {
            rows.push((counts, format!("{name}  histogram count")));
            rows.push((sums, format!("{name}  histogram sum")));
        }
        for (pts, legend) in rows {
            let (line, min, max, last) = sparkline(&pts, lo, hi, width);
            let _ = writeln!(
                out,
                "{line}  min {:>9}  max {:>9}  last {:>9}  {legend}",
                format_value(min),
                format_value(max),
                format_value(last),
            );
        }
    }
    if series.len() > MAX_SERIES_SHOWN {
        let _ = writeln!(
            out,
            "... and {} more series (--json prints all)",
            series.len() - MAX_SERIES_SHOWN
        );
    }
    out
}

/// `[time, x]` pairs of a series' `values` or `histograms`, with the number `value` reads
/// from each `x` (the API writes numbers as strings).
fn points(list: &Value, value: impl Fn(&Value) -> Option<&str>) -> Vec<(f64, f64)> {
    list.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| Some((p[0].as_f64()?, value(&p[1])?.parse::<f64>().ok()?)))
        .collect()
}

/// One series drawn in `width` columns over `[lo, hi]`: each column shows the mean of the
/// finite points falling in it, scaled between the series' min and max; returns the line and
/// the min, max and last value (NaN when the series has no finite point).
fn sparkline(pts: &[(f64, f64)], lo: f64, hi: f64, width: usize) -> (String, f64, f64, f64) {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite: Vec<f64> = pts.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let max = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let last = pts.last().map_or(f64::NAN, |p| p.1);
    let mut sums = vec![(0.0f64, 0usize); width];
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    for &(t, v) in pts {
        if !v.is_finite() {
            continue;
        }
        let col = (((t - lo) / span) * (width - 1) as f64).round();
        let col = (col.max(0.0) as usize).min(width - 1);
        sums[col].0 += v;
        sums[col].1 += 1;
    }
    let line: String = sums
        .iter()
        .map(|&(sum, n)| {
            if n == 0 {
                return ' ';
            }
            let v = sum / n as f64;
            let level = if max > min {
                ((v - min) / (max - min) * 7.0).round() as usize
            } else {
                3
            };
            BARS[level.min(7)]
        })
        .collect();
    if finite.is_empty() {
        return (line, f64::NAN, f64::NAN, last);
    }
    (line, min, max, last)
}

/// A value in at most about 7 significant digits, as a human reads a chart.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e9).contains(&a) {
        return format!("{v:.3e}");
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (civil-from-days, Howard Hinnant's algorithm).
fn utc(secs: f64) -> String {
    let s = secs.floor() as i64;
    let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn relative_times_resolve_here_and_others_pass_through() {
        assert_eq!(resolve_time("now", 1000.0).unwrap(), TimeArg::Secs(1000.0));
        assert_eq!(
            resolve_time("now-1h", 7200.0).unwrap(),
            TimeArg::Secs(3600.0)
        );
        assert_eq!(resolve_time("now+90s", 0.0).unwrap(), TimeArg::Secs(90.0));
        assert_eq!(
            resolve_time("2026-01-02T03:04:05Z", 0.0).unwrap(),
            TimeArg::Raw("2026-01-02T03:04:05Z".into())
        );
        assert!(resolve_time("now*2", 0.0).is_err());
        assert!(resolve_time("now-1x", 0.0).is_err());
    }

    #[test]
    fn tables_have_a_column_per_label_and_the_name_first() {
        let r = json!([
            {"metric": {"__name__": "up", "job": "a", "instance": "x:1"}, "value": [1.0, "1"]},
            {"metric": {"__name__": "up", "job": "bb"}, "value": [1.0, "0.25"]},
        ]);
        assert_eq!(
            render_table(&r),
            "NAME  instance  job  VALUE\n\
             up    x:1       a        1\n\
             up              bb    0.25\n"
        );
        assert_eq!(render_table(&json!([])), "no series\n");
        let h = json!([{"metric": {"__name__": "h"}, "histogram": [1.0, {"count": "4", "sum": "5",
            "buckets": [[1, "-1", "-0.5", "1"], [0, "0.5", "1", "3"]]}]}]);
        assert_eq!(
            render_table(&h),
            "NAME                                     VALUE\n\
             h     {count:4, sum:5, [-1,-0.5):1, (0.5,1]:3}\n"
        );
    }

    #[test]
    fn histogram_series_chart_their_count_and_sum() {
        let h = |t: f64, count: &str, sum: &str| json!([t, {"count": count, "sum": sum, "buckets": [[0, "0", "1", count]]}]);
        let result = json!([
            {"metric": {"__name__": "f"}, "values": [[0.0, "1"], [60.0, "2"]]},
            {"metric": {"__name__": "h", "job": "a"},
             "histograms": [h(0.0, "4", "10"), h(60.0, "8", "30")]},
        ]);
        let out = render_chart("x", &result, Some(0.0), Some(60.0), "60");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[1].ends_with("  f"), "{out}");
        assert!(lines[2].contains("max         8"), "{out}");
        assert!(
            lines[2].ends_with(r#"h{job="a"}  histogram count"#),
            "{out}"
        );
        assert!(lines[3].contains("last        30"), "{out}");
        assert!(lines[3].ends_with(r#"h{job="a"}  histogram sum"#), "{out}");
        // The count rises from 4 to 8: the first column is the lowest bar, the last the
        // highest.
        assert!(lines[2].starts_with('▁') && lines[2].contains('█'), "{out}");
    }

    #[test]
    fn sparklines_scale_each_series_and_leave_gaps_blank() {
        let pts = [(0.0, 0.0), (1.0, 7.0), (3.0, 3.5)];
        let (line, min, max, last) = sparkline(&pts, 0.0, 3.0, 4);
        assert_eq!(line, "▁█ ▅");
        assert_eq!((min, max, last), (0.0, 7.0, 3.5));
        // A flat series sits in the middle; NaN points are skipped.
        let (line, ..) = sparkline(&[(0.0, 5.0), (1.0, f64::NAN), (2.0, 5.0)], 0.0, 2.0, 3);
        assert_eq!(line, "▄ ▄");
    }

    #[test]
    fn utc_and_values_read_as_people_write_them() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_709_251_199.5), "2024-02-29 23:59:59 UTC");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(format_value(2.0), "2");
        assert_eq!(format_value(1.23456e12), "1.235e12");
        assert_eq!(format_value(f64::NAN), "NaN");
    }

    #[test]
    fn series_names_read_like_prometheus() {
        assert_eq!(
            series_name(&json!({"__name__": "up", "job": "a"})),
            "up{job=\"a\"}"
        );
        assert_eq!(series_name(&json!({})), "{}");
        assert_eq!(series_name(&json!({"__name__": "up"})), "up");
    }
}
