//! `lookout test rules` against `promtool test rules` (Prometheus 2.42): every unit-test file
//! under `tests/unittests` must pass (`pass_*`) or fail (`fail_*`) with us, and, when
//! promtool is installed, promtool must give the same verdict and print the same failure
//! messages, byte for byte (expected and got alerts, samples, rule errors). Files promtool
//! cannot judge alike (Prometheus 3 lookback semantics, our own error wording) are marked
//! `ours_*` and only checked against their expected verdict.
//!
//! Bad input (not YAML, unknown fields, a missing rule file) must give one clear error.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/unittests");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(".yml")
                && ["pass_", "fail_", "ours_pass_", "ours_fail_"]
                    .iter()
                    .any(|pre| n.starts_with(pre))
        })
        .collect();
    v.sort();
    assert!(v.len() >= 8, "fixtures missing in {}", dir.display());
    v
}

/// What promtool prints on stderr for a file, as our outcome renders it.
fn render(o: &rules::unittest::FileOutcome) -> String {
    let mut s: String = o.warnings.iter().map(|w| format!("{w}\n")).collect();
    if !o.errors.is_empty() {
        s.push_str("  FAILED:\n");
        for e in &o.errors {
            s.push_str(e);
            s.push('\n');
        }
    }
    s
}

#[test]
fn unit_test_files_pass_and_fail_as_promtool_says() {
    let have_promtool = Path::new(PROMTOOL).exists();
    if !have_promtool {
        eprintln!("{PROMTOOL} not found: checking verdicts only, not against Prometheus; install it with scripts/system-deps.sh");
    }
    for f in fixtures() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let ours = rules::unittest::run_file(&f);
        let expect_pass = name.starts_with("pass_") || name.starts_with("ours_pass_");
        assert_eq!(
            ours.errors.is_empty(),
            expect_pass,
            "{name}: our verdict is wrong:\n{}",
            render(&ours)
        );
        if !have_promtool || name.starts_with("ours_") {
            continue;
        }
        let out = Command::new(PROMTOOL)
            .args(["test", "rules"])
            .arg(&f)
            .output()
            .expect("promtool runs");
        assert_eq!(
            out.status.success(),
            expect_pass,
            "{name}: promtool's verdict differs from the file name:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            render(&ours),
            String::from_utf8_lossy(&out.stderr),
            "{name}: our failure messages differ from promtool's"
        );
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_input_gives_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "not_yaml.yml",
            "just some text\n",
            "expected a unit test file (a map of rule_files",
        ),
        ("broken_yaml.yml", "tests: [\n", "broken_yaml.yml:"),
        (
            "unknown_field.yml",
            "rule_files: []\ntests:\n- interval: 1m\n  input_seriess: []\n",
            "unknown field `input_seriess`",
        ),
        (
            "bad_duration.yml",
            "tests:\n- interval: 1 minute\n",
            "not a valid duration string",
        ),
        (
            "missing_rules.yml",
            "rule_files: [does_not_exist.yml]\ntests:\n- promql_expr_test:\n  - expr: '1'\n    eval_time: 0s\n    exp_samples: [{labels: '{}', value: 1}]\n",
            "",
        ),
        (
            "bad_series.yml",
            "tests:\n- input_series:\n  - series: 'x{a=\"1\"}'\n    values: '1 2 banana'\n  promql_expr_test: [{expr: x, eval_time: 0s}]\n",
            "input_series 1 (\"x{a=\\\"1\\\"}\")",
        ),
        (
            "no_alertname.yml",
            "tests:\n- name: tg\n  alert_rule_test: [{eval_time: 5m}]\n",
            "an item under alert_rule_test misses required attribute alertname at eval_time 5m (in TestGroup tg)",
        ),
        (
            "repeated_order.yml",
            "group_eval_order: [a, b, a]\ntests: []\n",
            "group name repeated in evaluation order: a",
        ),
        (
            "too_many_samples.yml",
            "tests:\n- input_series:\n  - series: a\n    values: '1x999999 1x999999 1x999999 1x999999 1x999999 1x999999'\n  - series: b\n    values: '1'\n  promql_expr_test: [{expr: a, eval_time: 0s}]\n",
            "more than 5000000 samples",
        ),
        (
            "too_long.yml",
            "evaluation_interval: 1s\ntests:\n- promql_expr_test: [{expr: '1', eval_time: 10y}]\n",
            "evaluations",
        ),
    ];
    for (name, text, want) in cases {
        let p = write(dir.path(), name, text);
        let o = rules::unittest::run_file(&p);
        if name == "missing_rules.yml" {
            // promtool warns and runs the tests without the rules.
            assert!(o.errors.is_empty(), "{name}: {:?}", o.errors);
            assert_eq!(o.warnings.len(), 1, "{name}: {:?}", o.warnings);
            assert!(
                o.warnings[0].contains("no file match pattern"),
                "{:?}",
                o.warnings
            );
            continue;
        }
        assert_eq!(o.errors.len(), 1, "{name}: {:?}", o.errors);
        assert!(!o.errors[0].contains('\n'), "{name}: {:?}", o.errors);
        assert!(
            o.errors[0].contains(want),
            "{name}: {:?} lacks {want:?}",
            o.errors
        );
    }
    let o = rules::unittest::run_file(&dir.path().join("absent.yml"));
    assert_eq!(o.errors.len(), 1);
    assert!(o.errors[0].starts_with("cannot read "), "{:?}", o.errors);
}

#[test]
fn a_rule_file_that_does_not_load_fails_the_test_group() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "bad_rules.yml",
        "groups:\n- name: g\n  rules:\n  - record: x\n    expr: 'up{'\n",
    );
    let p = write(
        dir.path(),
        "t.yml",
        "rule_files: ['bad_*.yml']\ntests:\n- promql_expr_test: [{expr: '1', eval_time: 0s}]\n",
    );
    let o = rules::unittest::run_file(&p);
    assert_eq!(o.errors.len(), 1, "{:?}", o.errors);
    assert!(
        o.errors[0].contains("bad_rules.yml") && o.errors[0].contains("could not parse expression"),
        "{:?}",
        o.errors
    );
}
