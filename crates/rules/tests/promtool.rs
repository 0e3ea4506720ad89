//! Rule files are accepted and refused as real Prometheus does: every file under
//! `tests/rulefiles/good` and `bad` goes through our parser and, when it is installed,
//! through `promtool check rules` (Prometheus 2.42 in Debian); both must agree with the
//! directory, and for the validation errors promtool lists (`group "g", rule 1, ...`) we must
//! list the same messages. `prom3/` holds files only Prometheus 3 accepts (group labels,
//! `query_offset`), which we accept too.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/rulefiles")
        .join(dir);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {}", dir.display());
    v
}

/// promtool's verdict and its error lines, each without the file name and positions.
fn promtool(path: &Path) -> Option<(bool, Vec<String>)> {
    if !Path::new(PROMTOOL).exists() {
        return None;
    }
    let out = Command::new(PROMTOOL)
        .arg("check")
        .arg("rules")
        .arg(path)
        .output()
        .expect("promtool runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}: ", path.display());
    let messages = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|m| strip_positions(m).to_string())
        .collect();
    Some((out.status.success(), messages))
}

/// Drops leading `line:col: ` prefixes.
fn strip_positions(mut m: &str) -> &str {
    loop {
        let Some((head, rest)) = m.split_once(": ") else {
            return m;
        };
        let is_pos = head
            .split_once(':')
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
        if !is_pos {
            return m;
        }
        m = rest;
    }
}

/// Our verdict and messages, without the file name and positions.
fn ours(path: &Path) -> (bool, Vec<String>) {
    match rules::rulefmt::load_file(path) {
        Ok(_) => (true, Vec::new()),
        Err(e) => (false, e.0.into_iter().map(|e| e.message).collect()),
    }
}

/// The part of a validation message both implementations word alike: PromQL parse errors
/// are our parser's own after Prometheus's prefix.
fn comparable(m: &str) -> String {
    const PARSE: &str = "could not parse expression: ";
    match m.find(PARSE) {
        Some(i) => m[..i + PARSE.len()].to_string(),
        None => m.to_string(),
    }
}

fn is_validation_message(m: &str) -> bool {
    m.starts_with("group \"")
        || m.starts_with("groupname:")
        || m.starts_with("Groupname")
        || m.starts_with("invalid label name")
}

#[test]
fn we_accept_and_refuse_the_files_promtool_does() {
    let mut skipped = false;
    for (dir, want_ok) in [("good", true), ("bad", false)] {
        for path in files(dir) {
            let (ok, mut messages) = ours(&path);
            assert_eq!(ok, want_ok, "{}: {messages:?}", path.display());
            let Some((prom_ok, prom_messages)) = promtool(&path) else {
                skipped = true;
                continue;
            };
            assert_eq!(
                prom_ok,
                want_ok,
                "promtool disagrees with the fixture's directory: {}: {prom_messages:?}",
                path.display()
            );
            let mut want: Vec<String> = prom_messages
                .iter()
                .filter(|m| is_validation_message(m))
                .map(|m| comparable(m))
                .collect();
            if want.is_empty() {
                // A YAML-level error: both refuse, in their decoders' words.
                continue;
            }
            want.sort();
            messages = messages.iter().map(|m| comparable(m)).collect();
            messages.sort();
            assert_eq!(messages, want, "{}", path.display());
        }
    }
    if skipped {
        eprintln!("{PROMTOOL} not found: checked our verdicts against the fixture directories only; install Prometheus (scripts/system-deps.sh) to compare with promtool");
    }
}

#[test]
fn prometheus_3_fields_are_accepted() {
    for path in files("prom3") {
        let f = rules::rulefmt::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let g = &f.groups[0];
        assert_eq!(g.labels, [("team".to_string(), "db".to_string())]);
        assert_eq!(g.query_offset, Some(std::time::Duration::from_secs(60)));
    }
}
