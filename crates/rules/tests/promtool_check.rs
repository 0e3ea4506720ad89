//! `lookout check rules` against `promtool check rules` (Prometheus 2.42): for every good
//! rule file under `tests/rulefiles/good` and a file with duplicate rules, promtool's
//! stdout (`Checking FILE`, `SUCCESS: N rules found`) and stderr (the duplicate-rule lint)
//! must be what our [`rules::check`] outcome prints. Which bad files are refused, and with
//! which messages, is `promtool.rs`'s business. Skipped with a message when promtool is
//! missing, after checking our own counts.

use std::path::{Path, PathBuf};
use std::process::Command;

use rules::check::{check_file, CheckOutcome};

const PROMTOOL: &str = "/usr/bin/promtool";

/// stdout and stderr as `lookout check rules` prints them for one file.
fn render(path: &Path) -> (String, String) {
    let mut out = format!("Checking {}\n", path.display());
    let mut err = String::new();
    match check_file(path) {
        CheckOutcome::Ok {
            rules,
            duplicates: None,
        } => out.push_str(&format!("  SUCCESS: {rules} rules found\n")),
        CheckOutcome::Ok {
            duplicates: Some(d),
            ..
        } => err.push_str(&format!("  FAILED:\n{d}\n")),
        CheckOutcome::Failed(lines) => {
            err.push_str("  FAILED:\n");
            for l in lines {
                err.push_str(&format!("{l}\n"));
            }
        }
    }
    out.push('\n');
    (out, err)
}

const DUPLICATES: &str = "groups:
- name: a
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
    labels: {team: db, tier: '1'}
  - record: job:up:sum
    expr: sum by (job) (up)
    labels: {tier: '1', team: db}
  - alert: Down
    expr: up == 0
- name: b
  rules:
  - alert: Down
    expr: up == 0
    for: 5m
  - alert: Down
    expr: up == 0
    labels: {severity: page}
  - record: job:up:sum
    expr: sum by (job) (up)
";

#[test]
fn check_rules_prints_what_promtool_prints() {
    let dir = tempfile::tempdir().unwrap();
    let dups = dir.path().join("duplicates.yml");
    std::fs::write(&dups, DUPLICATES).unwrap();
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rulefiles/good");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&good)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.push(dups.clone());

    // Our own verdicts first, so the test means something without promtool.
    match check_file(&dups) {
        CheckOutcome::Ok {
            rules: 6,
            duplicates: Some(d),
        } => assert!(
            d.starts_with("lint error 2 duplicate rule(s) found.\n"),
            "{d}"
        ),
        other => panic!("duplicates.yml: {other:?}"),
    }
    let full = good.join("full.yml");
    assert!(matches!(
        check_file(&full),
        CheckOutcome::Ok {
            duplicates: None,
            ..
        }
    ));

    if !Path::new(PROMTOOL).exists() {
        eprintln!("{PROMTOOL} not found: skipping the comparison with Prometheus; install it with scripts/system-deps.sh");
        return;
    }
    for f in files {
        let out = Command::new(PROMTOOL)
            .args(["check", "rules"])
            .arg(&f)
            .output()
            .expect("promtool runs");
        let (ours_out, ours_err) = render(&f);
        assert_eq!(
            (ours_out, ours_err),
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned()
            ),
            "{}",
            f.display()
        );
        // Duplicates are a lint: promtool still exits 0 without --lint-fatal.
        assert!(out.status.success(), "{}", f.display());
    }
}
