//! `lookout check rules`: a rule file loaded and validated as `promtool check rules` does,
//! plus its duplicate-rule lint (rules of one name with the same labels, which would write
//! the same series).

use std::path::Path;

use crate::rulefmt::{self, RuleFile};

/// What checking one rule file found.
#[derive(Debug)]
pub enum CheckOutcome {
    /// The file loads; `rules` rules in all its groups. `duplicates` is promtool's lint
    /// message when rules repeat (not fatal, as promtool's default `--lint=duplicate-rules`).
    Ok {
        rules: usize,
        duplicates: Option<String>,
    },
    /// The file does not load: one line per problem, `file:line:col: message`.
    Failed(Vec<String>),
}

/// Loads and validates `path`.
pub fn check_file(path: &Path) -> CheckOutcome {
    match rulefmt::load_file(path) {
        Err(e) => CheckOutcome::Failed(e.0.iter().map(|e| e.to_string()).collect()),
        Ok(rf) => CheckOutcome::Ok {
            rules: rf.groups.iter().map(|g| g.rules.len()).sum(),
            duplicates: duplicates_message(&rf),
        },
    }
}

/// promtool's `checkDuplicates` across every group of the file: rules sharing a name
/// (`record` or `alert`) and their labels, each reported once, in sorted order.
fn duplicates_message(rf: &RuleFile) -> Option<String> {
    let mut rules: Vec<(String, Vec<(String, String)>)> = rf
        .groups
        .iter()
        .flat_map(|g| g.rules.iter())
        .map(|r| {
            let mut labels: Vec<(String, String)> = r
                .labels
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .cloned()
                .collect();
            labels.sort();
            (r.name().to_string(), labels)
        })
        .collect();
    rules.sort();
    let mut dups: Vec<&(String, Vec<(String, String)>)> = Vec::new();
    for w in rules.windows(2) {
        if w[0] == w[1] && dups.last() != Some(&&w[1]) {
            dups.push(&w[1]);
        }
    }
    if dups.is_empty() {
        return None;
    }
    let mut m = format!("lint error {} duplicate rule(s) found.\n", dups.len());
    for (name, labels) in dups {
        m.push_str(&format!("Metric: {name}\nLabel(s):\n"));
        for (n, v) in labels {
            m.push_str(&format!("\t{n}: {v}\n"));
        }
    }
    m.push_str("Might cause inconsistency while recording expressions");
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_listed_once_with_their_labels() {
        let rf = rulefmt::parse(
            "r.yml",
            b"groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n    labels: {k: v}\n  - record: x\n    expr: up\n    labels: {k: v}\n- name: b\n  rules:\n  - record: x\n    expr: up\n    labels: {k: v}\n  - record: x\n    expr: up\n",
        )
        .unwrap();
        assert_eq!(
            duplicates_message(&rf).unwrap(),
            "lint error 1 duplicate rule(s) found.\nMetric: x\nLabel(s):\n\tk: v\nMight cause inconsistency while recording expressions"
        );
        let rf = rulefmt::parse("r.yml", b"groups:\n- name: a\n  rules:\n  - record: x\n    expr: up\n  - alert: x2\n    expr: up\n").unwrap();
        assert_eq!(duplicates_message(&rf), None);
    }
}
