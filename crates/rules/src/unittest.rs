//! `lookout test rules`: Prometheus's rule unit tests (`promtool test rules`, the format of
//! `docs/configuration/unit_testing_rules.md`), run by our evaluation core over a real tsdb
//! in a temporary directory.
//!
//! Each test group of a file loads its `input_series` (the series notation of PromQL test
//! scripts, parsed by [`promql::promqltest`]), then evaluates every rule group from time 0
//! to the group's largest `eval_time`, every `evaluation_interval`, as promtool does:
//! recording rules write into the tsdb, so later rules and queries read them, and alerts
//! keep their pending/firing state across evaluations. Firing alerts are compared at the
//! first evaluation at or before each `alert_rule_test`'s `eval_time` (promtool's rule),
//! `promql_expr_test`s are queried after the last evaluation. Failures read as promtool's,
//! so a test file moves between the two without surprises.
//!
//! One deliberate difference: a test group without `interval` takes
//! `evaluation_interval`, as Prometheus's documentation (and its releases after 2.42) say;
//! 2.42 itself put every input sample at time 0.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use model::labels::Labels;
use serde::Deserialize;
use tsdb::{MatchOp, Matcher, Querier, SampleValue, Tsdb, TsdbConfig};

use crate::alerting::AlertState;
use crate::group::{Group, GroupDefaults};
use crate::rule::{EvalContext, Rule};
use crate::writer::TsdbWriter;

/// The largest test file read, in bytes.
pub const MAX_TEST_FILE_BYTES: u64 = 16 << 20;

/// Most evaluations one test group may ask for (its largest `eval_time` over
/// `evaluation_interval`): a year of minutes, so a typo cannot run for hours.
pub const MAX_EVALUATIONS: i64 = 366 * 24 * 60;

/// Most input samples one test group may load (counted from the notation before it is
/// expanded).
pub const MAX_INPUT_SAMPLES: u64 = 5_000_000;

/// What running one test file found.
#[derive(Debug, Default)]
pub struct FileOutcome {
    /// Warnings promtool prints on stderr before the verdict (`  WARNING: no file match
    /// pattern ...`).
    pub warnings: Vec<String>,
    /// Each failure, formatted as promtool prints it (possibly several lines). Empty when
    /// every test passed.
    pub errors: Vec<String>,
}

impl FileOutcome {
    fn failed(error: String) -> FileOutcome {
        FileOutcome {
            warnings: Vec::new(),
            errors: vec![error],
        }
    }
}

/// A Prometheus duration in a test file: `5m`, `1h30m`, or `0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            N(u64),
        }
        let s = match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::N(n) => n.to_string(),
        };
        model::duration::parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

impl Dur {
    fn ms(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// Prometheus's `model.Duration.String()`.
    fn prom(self) -> String {
        model::duration::format_duration(self.0)
    }
}

/// A YAML scalar read as a string, as Go's YAML decoder fills a `string` field: `values: 1`
/// and `severity: 2` are the strings `1` and `2`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Str(String);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Str, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            B(bool),
            I(i64),
            U(u64),
            F(f64),
            Null(()),
        }
        Ok(Str(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::B(b) => b.to_string(),
            Raw::I(i) => i.to_string(),
            Raw::U(u) => u.to_string(),
            Raw::F(f) => model::gofmt::format_g(f),
            Raw::Null(()) => String::new(),
        }))
    }
}

impl std::ops::Deref for Str {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl std::fmt::Display for Str {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn plain(m: &BTreeMap<String, Str>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<Str>,
    #[serde(default)]
    evaluation_interval: Option<Dur>,
    #[serde(default)]
    group_eval_order: Vec<Str>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default)]
    interval: Option<Dur>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTestCase>,
    #[serde(default)]
    promql_expr_test: Vec<PromqlTestCase>,
    #[serde(default)]
    external_labels: BTreeMap<String, Str>,
    #[serde(default)]
    external_url: Str,
    #[serde(default)]
    name: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    #[serde(default)]
    series: Str,
    #[serde(default)]
    values: Str,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTestCase {
    #[serde(default)]
    eval_time: Dur,
    #[serde(default)]
    alertname: Str,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, Str>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, Str>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromqlTestCase {
    #[serde(default)]
    expr: Str,
    #[serde(default)]
    eval_time: Dur,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: Str,
    #[serde(default)]
    value: f64,
    /// Prometheus 3's expected native histogram (series notation); `value` is then ignored.
    #[serde(default)]
    histogram: Option<Str>,
}

/// Runs the unit tests of one file. Never panics on bad input: an unreadable file, bad YAML,
/// a rule file that does not load or bad input series come back as the file's one error.
pub fn run_file(path: &Path) -> FileOutcome {
    let bytes = match read_bounded(path) {
        Ok(b) => b,
        Err(e) => return FileOutcome::failed(e),
    };
    // An empty file is a file without tests, as Go's YAML decoder reads it.
    let empty = bytes.iter().all(|b| b.is_ascii_whitespace());
    let parsed = if empty {
        Ok(TestFile::default())
    } else {
        serde_yaml::from_slice(&bytes)
    };
    let file: TestFile = match parsed {
        Ok(f) => f,
        Err(e) => {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            return FileOutcome::failed(format!("{}{at}: {}", path.display(), strip_at(&e)));
        }
    };
    let mut outcome = FileOutcome::default();
    let base = path.parent().unwrap_or(Path::new(""));
    let rule_files = match resolve_rule_files(base, &file.rule_files, &mut outcome.warnings) {
        Ok(f) => f,
        Err(e) => {
            outcome.errors.push(e);
            return outcome;
        }
    };
    let eval_interval = match file.evaluation_interval {
        Some(d) if d.0 > Duration::ZERO => d,
        _ => Dur(Duration::from_secs(60)),
    };
    let mut order: HashMap<&str, usize> = HashMap::new();
    for (i, g) in file.group_eval_order.iter().enumerate() {
        if order.insert(g.as_str(), i).is_some() {
            outcome
                .errors
                .push(format!("group name repeated in evaluation order: {g}"));
            return outcome;
        }
    }
    for tg in &file.tests {
        outcome
            .errors
            .extend(run_group(tg, eval_interval, &order, &rule_files));
    }
    outcome
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let f =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_TEST_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_TEST_FILE_BYTES {
        return Err(format!(
            "{} is larger than {} MiB; split the tests into several files",
            path.display(),
            MAX_TEST_FILE_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// serde_yaml's message without its trailing ` at line L column C` (we put the position
/// first, as `file:line:col:`).
fn strip_at(e: &serde_yaml::Error) -> String {
    let s = e.to_string().replace(
        "expected struct TestFile",
        "expected a unit test file (a map of rule_files, evaluation_interval, group_eval_order and tests)",
    );
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// promtool's `resolveAndGlobFilepaths`: paths relative to the test file's directory,
/// globs expanded (sorted, as Go's `filepath.Glob`), a pattern matching nothing warned about.
fn resolve_rule_files(
    base: &Path,
    patterns: &[Str],
    warnings: &mut Vec<String>,
) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns.iter().map(|p| p.as_str()) {
        let full = if p.is_empty() || Path::new(p).is_absolute() {
            PathBuf::from(p)
        } else {
            base.join(p)
        };
        let text = full.to_string_lossy().into_owned();
        let matches = glob_paths(&text)?;
        if matches.is_empty() {
            warnings.push(format!("  WARNING: no file match pattern {text}"));
        }
        out.extend(matches);
    }
    Ok(out)
}

/// Expands a glob in the last path elements that hold `*`, `?` or `[`; a path without
/// them matches itself when it exists.
fn glob_paths(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let is_meta = |s: &str| s.contains(['*', '?', '[']);
    if !is_meta(pattern) {
        return Ok(if Path::new(pattern).exists() {
            vec![PathBuf::from(pattern)]
        } else {
            Vec::new()
        });
    }
    let mut current: Vec<PathBuf> = vec![if pattern.starts_with('/') {
        PathBuf::from("/")
    } else {
        PathBuf::new()
    }];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for dir in &current {
            if !is_meta(part) {
                let p = dir.join(part);
                if p.exists() {
                    next.push(p);
                }
                continue;
            }
            let re =
                glob_regex(part).map_err(|e| format!("bad rule_files pattern {pattern:?}: {e}"))?;
            let listing = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = std::fs::read_dir(listing) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| re.is_match(n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        current = next;
    }
    Ok(current)
}

/// Go's `path.Match` syntax for one path element as a regex.
fn glob_regex(part: &str) -> Result<regex::Regex, String> {
    let mut re = String::from("^");
    let mut chars = part.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    re.push('^');
                }
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == ']' {
                        closed = true;
                        break;
                    }
                    if c == '\\' || c == '[' {
                        re.push('\\');
                    }
                    re.push(c);
                }
                if !closed {
                    return Err("syntax error in pattern".into());
                }
                re.push(']');
            }
            '\\' => match chars.next() {
                Some(c) => re.push_str(&regex::escape(&c.to_string())),
                None => return Err("syntax error in pattern".into()),
            },
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| e.to_string())
}

/// A firing alert as promtool compares it: labels and annotations, each sorted by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LabelsAndAnnotations {
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
}

/// Runs one test group; returns its failures.
fn run_group(
    tg: &TestGroup,
    eval_interval: Dur,
    order: &HashMap<&str, usize>,
    rule_files: &[PathBuf],
) -> Vec<String> {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            return vec![format!(
                "cannot create a temporary directory for the test's tsdb: {e}"
            )]
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot start the async runtime: {e}")],
    };
    // A throwaway database: no fsync, and nothing ever ages out however long the test's
    // simulated time runs.
    let mut cfg = TsdbConfig::new(dir.path().join("db"));
    cfg.wal.fsync = tsdb::FsyncPolicy::Never;
    cfg.retention = Duration::from_secs(1000 * 365 * 24 * 3600);
    let db = match Tsdb::open(cfg) {
        Ok(db) => db,
        Err(e) => return vec![format!("cannot open the test's tsdb: {e}")],
    };
    let errs = run_group_on(tg, eval_interval, order, rule_files, &db, &runtime);
    drop(db);
    errs
}

fn run_group_on(
    tg: &TestGroup,
    eval_interval: Dur,
    order: &HashMap<&str, usize>,
    rule_files: &[PathBuf],
    db: &Tsdb,
    runtime: &tokio::runtime::Runtime,
) -> Vec<String> {
    let series_interval = match tg.interval {
        Some(d) => d,
        None => eval_interval,
    };
    if let Err(e) = load_input(tg, series_interval, db, runtime) {
        return vec![e];
    }

    // The rule files, their groups in file order, then promtool's group_eval_order.
    let defaults = GroupDefaults {
        interval: if series_interval.0.is_zero() {
            eval_interval.0
        } else {
            series_interval.0
        },
        query_offset: Duration::ZERO,
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut errs = Vec::new();
    for f in rule_files {
        match crate::rulefmt::load_file(f) {
            Ok(rf) => groups.extend(crate::group::groups_of_file(
                &f.to_string_lossy(),
                &rf,
                &defaults,
                false,
            )),
            Err(e) => errs.extend(e.0.iter().map(|e| e.to_string())),
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    groups.sort_by_key(|g| order.get(g.name()).copied().unwrap_or(0));

    let mut alert_tests: BTreeMap<Dur, Vec<&AlertTestCase>> = BTreeMap::new();
    for a in &tg.alert_rule_test {
        if a.alertname.is_empty() {
            let in_group = if tg.name.is_empty() {
                String::new()
            } else {
                format!(" (in TestGroup {})", tg.name)
            };
            return vec![format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                a.eval_time.prom()
            )];
        }
        alert_tests.entry(a.eval_time).or_default().push(a);
    }
    let alert_times: Vec<Dur> = alert_tests.keys().copied().collect();

    let max_eval = tg
        .alert_rule_test
        .iter()
        .map(|a| a.eval_time)
        .chain(tg.promql_expr_test.iter().map(|p| p.eval_time))
        .max()
        .unwrap_or_default()
        .ms();
    let step = eval_interval.ms().max(1);
    if max_eval / step > MAX_EVALUATIONS {
        return vec![format!(
            "the largest eval_time ({}) needs {} evaluations every {}, more than the {MAX_EVALUATIONS} allowed; use a larger evaluation_interval",
            Dur(Duration::from_millis(max_eval as u64)).prom(),
            max_eval / step,
            eval_interval.prom()
        )];
    }

    let engine = promql::Engine::new(promql::EngineOptions {
        default_subquery_step: eval_interval.0,
        ..Default::default()
    });
    let external = match Labels::new(plain(&tg.external_labels)) {
        Ok(l) => l,
        Err(e) => return vec![format!("external_labels: {e}")],
    };
    let ctx = EvalContext {
        engine: &engine,
        querier: db,
        external_labels: &external,
        external_url: &tg.external_url,
        sender: None,
        resend_delay: crate::group::DEFAULT_RESEND_DELAY,
        cancel: None,
    };

    let mut curr = 0;
    let mut ts = 0i64;
    while ts <= max_eval {
        let mut eval_errs = Vec::new();
        for g in &mut groups {
            let mut w = TsdbWriter::new(db, runtime.handle().clone());
            g.eval(&ctx, ts, &mut w);
            for r in g.rules() {
                if let Some(e) = &r.health().last_error {
                    eval_errs.push(format!(
                        "    rule: {}, time: {}, err: {e}",
                        r.name(),
                        go_duration(ts)
                    ));
                }
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return errs;
        }
        // Alert tests whose eval_time falls in [ts, ts + interval) compare with this
        // evaluation.
        while curr < alert_times.len()
            && ts <= alert_times[curr].ms()
            && alert_times[curr].ms() < ts.saturating_add(step)
        {
            let t = alert_times[curr];
            for tc in &alert_tests[&t] {
                if let Some(e) = check_alerts(tg, tc, &groups) {
                    errs.push(e);
                }
            }
            curr += 1;
        }
        ts = match ts.checked_add(step) {
            Some(t) => t,
            None => break,
        };
    }

    for tc in &tg.promql_expr_test {
        if let Some(e) = check_expr(tc, &engine, db) {
            errs.push(e);
        }
    }
    errs
}

/// Loads the input series into the tsdb: promtool's `load <interval>` block.
fn load_input(
    tg: &TestGroup,
    interval: Dur,
    db: &Tsdb,
    runtime: &tokio::runtime::Runtime,
) -> Result<(), String> {
    if tg.input_series.is_empty() {
        return Ok(());
    }
    // One series at a time, so a file of many long series is refused before it is all
    // expanded in memory. A series given twice merges, the later value winning at a time,
    // as in one `load` block.
    let all =
        Matcher::new(MatchOp::Regex, "__name__", ".*").map_err(|e| format!("input_series: {e}"))?;
    let mut merged: BTreeMap<Labels, BTreeMap<i64, SampleValue>> = BTreeMap::new();
    let mut count = 0u64;
    for (i, is) in tg.input_series.iter().enumerate() {
        count = count.saturating_add(expanded_len(&is.values));
        if count > MAX_INPUT_SAMPLES {
            return Err(format!(
                "input_series expand to more than {MAX_INPUT_SAMPLES} samples; shorten the series or split the test"
            ));
        }
        let line = format!("{} {}\n", is.series, is.values);
        let loaded = promql::promqltest::load(&interval.prom(), &line).map_err(|e| {
            let m = e.strip_prefix("line 1: ").map(str::to_string).unwrap_or(e);
            format!("input_series {} ({:?}): {m}", i + 1, is.series.as_str())
        })?;
        for s in loaded
            .select(std::slice::from_ref(&all), i64::MIN, i64::MAX)
            .map_err(|e| format!("input_series: {e}"))?
        {
            let points = merged.entry(s.labels.clone()).or_default();
            for (t, v) in s.samples() {
                points.insert(t, SampleValue::Float(v));
            }
            for (t, h) in s.histograms() {
                h.validate()
                    .map_err(|e| format!("input_series {}: {e}", s.labels))?;
                points.insert(t, SampleValue::Histogram(h.clone()));
            }
        }
    }
    let mut samples: Vec<(Labels, i64, SampleValue)> = merged
        .into_iter()
        .flat_map(|(l, points)| points.into_iter().map(move |(t, v)| (l.clone(), t, v)))
        .collect();
    samples.sort_by_key(|s| s.1);
    let mut w = TsdbWriter::new(db, runtime.handle().clone());
    let refused = crate::writer::RuleWriter::append(&mut w, samples)
        .map_err(|e| format!("input_series: {e}"))?;
    if let Some(r) = refused.first() {
        return Err(format!("input_series {}: {}", r.labels, r.reason));
    }
    Ok(())
}

/// At least how many points a `values` string expands to: each token ending in `xN`
/// repeats N + 1 times, any other is one.
fn expanded_len(values: &str) -> u64 {
    values
        .split_whitespace()
        .map(|tok| {
            tok.rsplit_once('x')
                .and_then(|(_, n)| n.parse::<u64>().ok())
                .map_or(1, |n| n.saturating_add(1))
        })
        .fold(0u64, u64::saturating_add)
}

/// Compares the firing alerts named `tc.alertname` (across every group) with the expected
/// ones; promtool's message when they differ.
fn check_alerts(tg: &TestGroup, tc: &AlertTestCase, groups: &[Group]) -> Option<String> {
    let mut got: Vec<LabelsAndAnnotations> = Vec::new();
    for g in groups {
        for r in g.rules() {
            let Rule::Alerting(a) = r else { continue };
            if a.name() != tc.alertname.as_str() {
                continue;
            }
            for alert in a.active_alerts() {
                if alert.state == AlertState::Firing {
                    let mut annotations = alert.annotations.clone();
                    annotations.sort();
                    got.push(LabelsAndAnnotations {
                        labels: alert
                            .labels
                            .iter()
                            .map(|l| (l.name.to_string(), l.value.to_string()))
                            .collect(),
                        annotations,
                    });
                }
            }
        }
    }
    let mut exp: Vec<LabelsAndAnnotations> = tc
        .exp_alerts
        .iter()
        .map(|a| {
            let mut labels = a.exp_labels.clone();
            labels.insert("alertname".into(), tc.alertname.clone());
            LabelsAndAnnotations {
                labels: plain(&labels),
                annotations: plain(&a.exp_annotations),
            }
        })
        .collect();
    got.sort();
    exp.sort();
    if got == exp {
        return None;
    }
    let name = if tg.name.is_empty() {
        String::new()
    } else {
        format!("    name: {},\n", tg.name)
    };
    let indent = "            ";
    Some(format!(
        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
        tc.alertname,
        tc.eval_time.prom(),
        indent_lines(&alerts_string(&exp), indent),
        indent_lines(&alerts_string(&got), indent)
    ))
}

/// promtool's `labelsAndAnnotations.String()`.
fn alerts_string(v: &[LabelsAndAnnotations]) -> String {
    if v.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[");
    for (i, a) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let one = format!(
            "\nLabels:{}\nAnnotations:{}",
            pairs_string(&a.labels),
            pairs_string(&a.annotations)
        );
        s.push_str(&format!("\n{i}:{}", indent_lines(&one, "  ")));
    }
    s.push_str("\n]");
    s
}

/// Prometheus 2.42's `labels.Labels.String()`: `{a="b", c="d"}`, `__name__` included.
fn pairs_string(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{n}={}", model::gofmt::quote(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn labels_string(l: &Labels) -> String {
    let pairs: Vec<(String, String)> = l
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    pairs_string(&pairs)
}

/// promtool's `indentLines`: every line but the first prefixed with `indent`.
fn indent_lines(s: &str, indent: &str) -> String {
    s.split('\n')
        .collect::<Vec<_>>()
        .join(&format!("\n{indent}"))
}

/// Queries `tc.expr` at its eval_time and compares with the expected samples.
fn check_expr(tc: &PromqlTestCase, engine: &promql::Engine, db: &Tsdb) -> Option<String> {
    let head = format!(
        "    expr: {}, time: {}",
        model::gofmt::quote(&tc.expr),
        tc.eval_time.prom()
    );
    let got = match engine.instant_query(db, &tc.expr, tc.eval_time.ms(), None) {
        Err(e) => return Some(format!("{head}, err: {e}")),
        Ok(r) => match r.value {
            promql::Value::Vector(v) => v
                .into_iter()
                .map(|s| Sample {
                    labels: s.metric,
                    value: if s.h.is_some() { 0.0 } else { s.v },
                    histogram: s.h,
                })
                .collect::<Vec<_>>(),
            promql::Value::Scalar { v, .. } => vec![Sample {
                labels: Labels::empty(),
                value: v,
                histogram: None,
            }],
            _ => {
                return Some(format!(
                    "{head}, err: rule result is not a vector or scalar"
                ))
            }
        },
    };
    let mut exp = Vec::with_capacity(tc.exp_samples.len());
    for s in &tc.exp_samples {
        let parsed = parse_metric(&s.labels)
            .map_err(|e| format!("labels {}: {e}", model::gofmt::quote(&s.labels)))
            .and_then(|labels| {
                let histogram = match &s.histogram {
                    Some(h) if !h.is_empty() => Some(parse_histogram(h)?),
                    _ => None,
                };
                Ok(Sample {
                    labels,
                    value: if histogram.is_some() { 0.0 } else { s.value },
                    histogram,
                })
            });
        match parsed {
            Ok(sample) => exp.push(sample),
            Err(e) => return Some(format!("{head}, err: {e}")),
        }
    }
    let mut got = got;
    got.sort_by(|a, b| a.labels.cmp(&b.labels));
    exp.sort_by(|a, b| a.labels.cmp(&b.labels));
    // Exact comparison, as promtool's reflect.DeepEqual (NaN never equals NaN).
    if got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| same_sample(g, e)) {
        return None;
    }
    Some(format!(
        "{head},\n        exp: {}\n        got: {}",
        samples_string(&exp),
        samples_string(&got)
    ))
}

/// A query result or expected sample as promtool compares them. Prometheus 2.42 has no
/// `histogram` in `exp_samples` and compares a histogram sample's float value (0); later
/// releases compare the histogram too, which is what a histogram sample here does.
#[derive(Debug)]
struct Sample {
    labels: Labels,
    value: f64,
    histogram: Option<std::sync::Arc<model::histogram::FloatHistogram>>,
}

/// Whether a result sample is the expected one. An expected histogram that names no
/// `counter_reset_hint` matches whatever hint the result carries: the hint says how the
/// storage chunked the samples, which a test cannot know.
fn same_sample(got: &Sample, exp: &Sample) -> bool {
    use model::histogram::CounterResetHint;
    got.labels == exp.labels
        && got.value == exp.value
        && match (&got.histogram, &exp.histogram) {
            (None, None) => true,
            (Some(g), Some(e)) if e.counter_reset_hint == CounterResetHint::Unknown => {
                let mut e = (**e).clone();
                e.counter_reset_hint = g.counter_reset_hint;
                **g == e
            }
            (Some(g), Some(e)) => g == e,
            _ => false,
        }
}

/// An expected sample's `histogram`, in the series notation (`{{schema:0 count:4 sum:5
/// buckets:[1 2 1]}}`), read through the same parser as `input_series`.
fn parse_histogram(text: &str) -> Result<std::sync::Arc<model::histogram::FloatHistogram>, String> {
    let bad = |e: String| format!("histogram {}: {e}", model::gofmt::quote(text));
    let q = promql::promqltest::load("1m", &format!("h {text}\n")).map_err(&bad)?;
    let all = Matcher::new(MatchOp::Equal, "__name__", "h").map_err(|e| bad(e.to_string()))?;
    let series: Vec<tsdb::Series> = q
        .select(&[all], i64::MIN, i64::MAX)
        .map_err(|e| bad(e.to_string()))?
        .collect();
    let mut hs: Vec<_> = series
        .iter()
        .flat_map(|s| s.histograms().map(|(_, h)| h.clone()))
        .collect();
    let floats: usize = series.iter().map(|s| s.samples().count()).sum();
    if hs.len() != 1 || floats != 0 {
        return Err(bad(format!(
            "expected one histogram, got {} values",
            hs.len() + floats
        )));
    }
    Ok(hs.remove(0))
}

/// Parses `name{a="b"}` (or `{__name__="name", a="b"}`, or `{}`) as Prometheus's
/// `parser.ParseMetric`.
fn parse_metric(s: &str) -> Result<Labels, String> {
    let t = s.trim();
    if t.is_empty() {
        // Prometheus's ParseMetric reads an empty string as the empty label set.
        return Ok(Labels::empty());
    }
    let (labels, rest) = promql::promqltest::parse_series_desc(t)?;
    if !rest.trim().is_empty() {
        return Err(format!("unexpected {:?} after the series", rest.trim()));
    }
    Ok(labels)
}

/// promtool's `parsedSamplesString`.
fn samples_string(v: &[Sample]) -> String {
    if v.is_empty() {
        return "nil".into();
    }
    v.iter()
        .map(|s| match &s.histogram {
            Some(h) => format!("{} {}", labels_string(&s.labels), h.test_expression()),
            None => format!("{} {}", labels_string(&s.labels), format_float_e(s.value)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Go's `strconv.FormatFloat(f, 'E', -1, 64)`: `5.5E+00`, `1E-07`, `NaN`, `+Inf`.
fn format_float_e(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{f:E}");
    match s.split_once('E') {
        Some((m, e)) => {
            let exp: i32 = e.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{m}E{sign}{:02}", exp.abs())
        }
        None => s,
    }
}

/// Go's `time.Duration.String()` for whole milliseconds: `0s`, `500ms`, `1m0s`, `1h2m3.5s`.
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if ms < 1000 {
        out.push_str(&format!("{ms}ms"));
        return out;
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s.to_string());
    if frac > 0 {
        let f = format!("{frac:03}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_spellings() {
        assert_eq!(format_float_e(5.5), "5.5E+00");
        assert_eq!(format_float_e(3.0), "3E+00");
        assert_eq!(format_float_e(1234.5), "1.2345E+03");
        assert_eq!(format_float_e(1e-7), "1E-07");
        assert_eq!(format_float_e(1e100), "1E+100");
        assert_eq!(format_float_e(0.0), "0E+00");
        assert_eq!(format_float_e(-2.5), "-2.5E+00");
        assert_eq!(format_float_e(f64::INFINITY), "+Inf");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(500), "500ms");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(3_723_500), "1h2m3.5s");
        assert_eq!(go_duration(7_200_000), "2h0m0s");
    }

    #[test]
    fn globs_match_as_go_does() {
        let re = glob_regex("*.y?l").unwrap();
        assert!(re.is_match("a.yml") && !re.is_match(".yaml") && !re.is_match("a/b.yml"));
        let re = glob_regex("r[0-9].yml").unwrap();
        assert!(re.is_match("r1.yml") && !re.is_match("ra.yml"));
        assert!(glob_regex("[abc").is_err());
    }

    #[test]
    fn alert_lists_print_as_promtool() {
        let a = LabelsAndAnnotations {
            labels: vec![("alertname".into(), "High".into())],
            annotations: vec![("summary".into(), "a \"b\"".into())],
        };
        assert_eq!(
            indent_lines(&alerts_string(&[a.clone(), a]), "    "),
            "[\n    0:\n      Labels:{alertname=\"High\"}\n      Annotations:{summary=\"a \\\"b\\\"\"},\n    1:\n      Labels:{alertname=\"High\"}\n      Annotations:{summary=\"a \\\"b\\\"\"}\n    ]"
        );
    }
}
