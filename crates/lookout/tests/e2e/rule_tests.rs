//! `lookout test rules` and `lookout check rules` as commands: exit codes, and output held
//! byte for byte to `promtool test rules` / `promtool check rules` (Prometheus 2.42) on the
//! rules crate's unit-test fixtures when promtool is installed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PROMTOOL: &str = "/usr/bin/promtool";

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/tests/unittests")
}

fn run(bin: &str, args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(bin)
        .args(args)
        .args(files)
        .output()
        .expect("command runs")
}

fn lookout(args: &[&str], files: &[PathBuf]) -> Output {
    run(env!("CARGO_BIN_EXE_lookout"), args, files)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn test_rules_exits_and_prints_as_promtool() {
    let dir = fixtures_dir();
    let pass = dir.join("pass_chain.yml");
    let fail = dir.join("fail_labels.yml");

    let ok = lookout(&["test", "rules"], std::slice::from_ref(&pass));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert_eq!(
        text(&ok.stdout),
        format!("Unit Testing:  {}\n  SUCCESS\n\n", pass.display())
    );
    assert_eq!(text(&ok.stderr), "");

    let both = [pass.clone(), fail.clone()];
    let mixed = lookout(&["test", "rules"], &both);
    assert_eq!(mixed.status.code(), Some(1));
    let err = text(&mixed.stderr);
    assert!(
        err.starts_with(
            "  FAILED:\n    name: wrong severity,\n    alertname: InstanceDown, time: 3m, \n"
        ),
        "{err}"
    );

    if !Path::new(PROMTOOL).exists() {
        eprintln!("{PROMTOOL} not found: skipping the comparison with Prometheus; install it with scripts/system-deps.sh");
        return;
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("pass_") || n.starts_with("fail_")
        })
        .collect();
    all.sort();
    let ours = lookout(&["test", "rules"], &all);
    let theirs = run(PROMTOOL, &["test", "rules"], &all);
    assert_eq!(ours.status.code(), theirs.status.code());
    assert_eq!(text(&ours.stdout), text(&theirs.stdout));
    assert_eq!(text(&ours.stderr), text(&theirs.stderr));
}

#[test]
fn check_rules_exits_1_on_an_invalid_or_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let good = fixtures_dir().join("rules.yml");
    let bad = tmp.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n- name: g\n  rules:\n  - record: x\n    expr: 'up{'\n",
    )
    .unwrap();
    let missing = tmp.path().join("missing.yml");

    let ok = lookout(&["check", "rules"], std::slice::from_ref(&good));
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert_eq!(
        text(&ok.stdout),
        format!("Checking {}\n  SUCCESS: 5 rules found\n\n", good.display())
    );
    if Path::new(PROMTOOL).exists() {
        let theirs = run(PROMTOOL, &["check", "rules"], std::slice::from_ref(&good));
        assert_eq!(text(&ok.stdout), text(&theirs.stdout));
    }

    for f in [bad, missing] {
        let out = lookout(&["check", "rules"], &[good.clone(), f.clone()]);
        assert_eq!(out.status.code(), Some(1), "{}", f.display());
        let err = text(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{err}");
        assert_eq!(lines[0], "  FAILED:");
        assert!(lines[1].starts_with(&format!("{}", f.display())), "{err}");
    }
}

#[test]
fn test_and_check_rules_without_files_are_usage_errors() {
    for args in [&["test", "rules"][..], &["check", "rules"][..]] {
        let out = lookout(args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            text(&out.stderr).lines().count(),
            1,
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn duplicate_rules_are_a_lint_that_is_fatal_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dups = tmp.path().join("dups.yml");
    std::fs::write(
        &dups,
        "groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n- name: b\n  rules:\n  - record: x\n    expr: up\n",
    )
    .unwrap();
    let files = std::slice::from_ref(&dups);
    let lint = "  FAILED:\nlint error 1 duplicate rule(s) found.\nMetric: x\nLabel(s):\nMight cause inconsistency while recording expressions\n";

    let out = lookout(&["check", "rules"], files);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), lint);
    assert_eq!(
        text(&out.stdout),
        format!("Checking {}\n\n", dups.display())
    );

    let out = lookout(&["check", "rules", "--lint-fatal"], files);
    assert_eq!(out.status.code(), Some(3));

    let out = lookout(&["check", "rules", "--lint=none", "--lint-fatal"], files);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("Checking {}\n  SUCCESS: 2 rules found\n\n", dups.display())
    );

    if Path::new(PROMTOOL).exists() {
        for args in [
            &["check", "rules"][..],
            &["check", "rules", "--lint-fatal"][..],
            &["check", "rules", "--lint=none"][..],
        ] {
            let ours = lookout(args, files);
            let theirs = run(PROMTOOL, args, files);
            assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
            assert_eq!(text(&ours.stdout), text(&theirs.stdout), "{args:?}");
            assert_eq!(text(&ours.stderr), text(&theirs.stderr), "{args:?}");
        }
    }
}
