//! Runs every Prometheus conformance script in `../shared/conformance/promql` and fails when
//! a file's passing count drops below the floor committed in `conformance-floor.toml`.
//! The floor only goes up: raise it when more cases pass.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/promql")
}

fn floors() -> BTreeMap<String, usize> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance-floor.toml");
    let text = std::fs::read_to_string(&p).expect("conformance-floor.toml is readable");
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .expect("floor lines are `\"file\" = N`");
        out.insert(
            k.trim().trim_matches('"').to_string(),
            v.trim().parse().expect("floor is a number"),
        );
    }
    out
}

#[test]
fn conformance_does_not_regress() {
    let d = dir();
    assert!(
        d.is_dir(),
        "conformance scripts not found at {}",
        d.display()
    );
    let floors = floors();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
        .expect("conformance dir is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    let mut regressions = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let r = promql::promqltest::run_file(f);
        let floor = floors.get(&name).copied().unwrap_or(0);
        println!(
            "{name}: {} passed, {} failed (floor {floor})",
            r.passed,
            r.failed()
        );
        // PROMQL_FAILURES=<file name> prints that file's failing cases, to work on them.
        if std::env::var("PROMQL_FAILURES").is_ok_and(|f| f == name) {
            for fail in &r.failures {
                println!("{fail}");
            }
        }
        if r.passed < floor {
            regressions.push(format!("{name}: {} passed < floor {floor}", r.passed));
        }
    }
    assert!(
        regressions.is_empty(),
        "conformance regressed:\n{}",
        regressions.join("\n")
    );
}
