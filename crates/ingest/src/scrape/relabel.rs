//! Relabeling: Prometheus's `relabel_configs` and `metric_relabel_configs`.
//!
//! A rule reads the values of `source_labels` joined by `separator`, matches them against an
//! anchored `regex` and acts: rewrite a label (`replace`, `lowercase`, `uppercase`,
//! `hashmod`), drop the whole set (`keep`, `drop`, `keepequal`, `dropequal`) or rewrite label
//! names (`labelmap`, `labeldrop`, `labelkeep`). Defaults, validation and semantics follow
//! Prometheus 3.x (`model/relabel`): separator `;`, regex `(.*)` anchored as `^(?s:…)$`,
//! replacement `$1` with Go's `$1`/`${1}`/`$name` expansion (the `regex` crate expands the
//! same way, `$1x` being the group named `1x`), and setting a label to the empty string
//! deletes it. Action names are case-insensitive.
//!
//! Rules run on a [`LabelSet`]: a sorted vector of owned pairs, cheap to edit in place. The
//! scrape loop only relabels a series the first time it sees its exposition text, so this is
//! not on the per-sample path.

use std::fmt;

use md5::{Digest, Md5};
use regex::Regex;
use serde::Deserialize;

/// A label set being edited: pairs sorted by name, names unique. An empty value is never
/// stored: setting one deletes the label, as Prometheus's label builder does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSet {
    pairs: Vec<(String, String)>,
}

impl LabelSet {
    /// An empty set.
    pub fn new() -> LabelSet {
        LabelSet::default()
    }

    /// Builds from pairs in any order; a later pair with the same name wins, empty values
    /// are dropped.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> LabelSet {
        let mut s = LabelSet::new();
        for (n, v) in pairs {
            s.set(n.into(), v.into());
        }
        s
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.pairs.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The value of `name`, or `""` when absent (Prometheus's `Get`).
    pub fn get(&self, name: &str) -> &str {
        match self.find(name) {
            Ok(i) => &self.pairs[i].1,
            Err(_) => "",
        }
    }

    /// Whether the set has label `name`.
    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: String, value: String) {
        if value.is_empty() {
            self.del(&name);
            return;
        }
        match self.find(&name) {
            Ok(i) => self.pairs[i].1 = value,
            Err(i) => self.pairs.insert(i, (name, value)),
        }
    }

    /// Deletes `name` if present.
    pub fn del(&mut self, name: &str) {
        if let Ok(i) = self.find(name) {
            self.pairs.remove(i);
        }
    }

    /// Keeps only the labels for which `keep` says so.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.pairs.retain(|(n, v)| keep(n, v));
    }

    /// The pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The pairs, consumed.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.pairs
    }
}

impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (n, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// What a relabeling rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    fn parse(s: &str) -> Result<Action, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            "" => return Err("relabel action cannot be empty".into()),
            other => return Err(format!("unknown relabel action {other:?}")),
        })
    }

    /// The name Prometheus's configuration uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

/// A regex anchored at both ends, compared by its source text.
#[derive(Clone, Debug)]
pub struct AnchoredRegex {
    src: String,
    re: Regex,
}

impl AnchoredRegex {
    /// Compiles `src` as Prometheus does: `^(?s:src)$`.
    pub fn new(src: &str) -> Result<AnchoredRegex, String> {
        let re = Regex::new(&format!("^(?s:{src})$"))
            .map_err(|e| format!("invalid regex {src:?}: {e}"))?;
        Ok(AnchoredRegex {
            src: src.to_string(),
            re,
        })
    }

    /// The regex as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.src
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

impl PartialEq for AnchoredRegex {
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
    }
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

/// A relabel rule as it is written in YAML, before defaults and validation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRelabelConfig {
    #[serde(default)]
    pub source_labels: Option<Vec<String>>,
    #[serde(default)]
    pub separator: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub modulus: Option<u64>,
    #[serde(default)]
    pub target_label: Option<String>,
    #[serde(default)]
    pub replacement: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
}

/// A validated relabel rule with Prometheus's defaults filled in.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawRelabelConfig")]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: AnchoredRegex,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

/// Whether `s` is a label name, or for `replace` a name made of `$1`/`${name}` templates
/// (Prometheus's `relabelTarget` pattern).
fn valid_target(s: &str, templated: bool) -> bool {
    if model::labels::is_valid_label_name(s) {
        return true;
    }
    if !templated || s.is_empty() {
        return false;
    }
    // ^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$
    static PAT: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    PAT.get_or_init(|| {
        Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$").expect("static pattern")
    })
    .is_match(s)
}

impl TryFrom<RawRelabelConfig> for RelabelConfig {
    type Error = String;

    fn try_from(raw: RawRelabelConfig) -> Result<RelabelConfig, String> {
        let action = Action::parse(raw.action.as_deref().unwrap_or("replace"))?;
        let regex_src = raw
            .regex
            .clone()
            .unwrap_or_else(|| DEFAULT_REGEX.to_string());
        let cfg = RelabelConfig {
            source_labels: raw.source_labels.clone().unwrap_or_default(),
            separator: raw
                .separator
                .clone()
                .unwrap_or_else(|| DEFAULT_SEPARATOR.into()),
            regex: AnchoredRegex::new(&regex_src)?,
            modulus: raw.modulus.unwrap_or(0),
            target_label: raw.target_label.clone().unwrap_or_default(),
            replacement: raw
                .replacement
                .clone()
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.into()),
            action,
        };
        for name in &cfg.source_labels {
            if !model::labels::is_valid_label_name(name) {
                return Err(format!(
                    "{name:?} is not a valid label name in source_labels"
                ));
            }
        }
        let a = action.as_str();
        if action == Action::HashMod && cfg.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && cfg.target_label.is_empty() {
            return Err(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        match action {
            Action::Replace if !valid_target(&cfg.target_label, true) => {
                return Err(format!(
                    "{:?} is invalid 'target_label' for {a} action",
                    cfg.target_label
                ));
            }
            Action::Lowercase
            | Action::Uppercase
            | Action::HashMod
            | Action::KeepEqual
            | Action::DropEqual
                if !valid_target(&cfg.target_label, false) =>
            {
                return Err(format!(
                    "{:?} is invalid 'target_label' for {a} action",
                    cfg.target_label
                ));
            }
            _ => {}
        }
        if matches!(action, Action::Lowercase | Action::Uppercase)
            && cfg.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("'replacement' can not be set for {a} action"));
        }
        if action == Action::LabelMap && !valid_target(&cfg.replacement, true) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {a} action",
                cfg.replacement
            ));
        }
        if matches!(action, Action::KeepEqual | Action::DropEqual)
            && (raw.regex.is_some() && cfg.regex.as_str() != DEFAULT_REGEX
                || cfg.modulus != 0
                || cfg.separator != DEFAULT_SEPARATOR
                || cfg.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (!cfg.source_labels.is_empty()
                || !cfg.target_label.is_empty()
                || cfg.modulus != 0
                || cfg.separator != DEFAULT_SEPARATOR
                || cfg.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        Ok(cfg)
    }
}

impl RelabelConfig {
    /// A rule from its fields with Prometheus's defaults for the rest (for code and tests).
    pub fn new(raw: RawRelabelConfig) -> Result<RelabelConfig, String> {
        RelabelConfig::try_from(raw)
    }
}

/// The last 8 bytes of an MD5 digest as a big-endian integer: Prometheus's `sum64`.
fn hash_mod(value: &str, modulus: u64) -> u64 {
    let d = Md5::digest(value.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[8..16]);
    u64::from_be_bytes(b) % modulus
}

/// Runs `rules` over `labels` in order. Returns false when a rule dropped the set.
pub fn process(labels: &mut LabelSet, rules: &[RelabelConfig]) -> bool {
    let mut val = String::new();
    for rule in rules {
        val.clear();
        for (i, name) in rule.source_labels.iter().enumerate() {
            if i > 0 {
                val.push_str(&rule.separator);
            }
            val.push_str(labels.get(name));
        }
        match rule.action {
            Action::Drop => {
                if rule.regex.is_match(&val) {
                    return false;
                }
            }
            Action::Keep => {
                if !rule.regex.is_match(&val) {
                    return false;
                }
            }
            Action::DropEqual => {
                if labels.get(&rule.target_label) == val {
                    return false;
                }
            }
            Action::KeepEqual => {
                if labels.get(&rule.target_label) != val {
                    return false;
                }
            }
            Action::Replace => {
                let Some(caps) = rule.regex.re.captures(&val) else {
                    continue;
                };
                let mut target = String::new();
                caps.expand(&rule.target_label, &mut target);
                if !model::labels::is_valid_label_name(&target) {
                    continue;
                }
                let mut res = String::new();
                caps.expand(&rule.replacement, &mut res);
                labels.set(target, res);
            }
            Action::Lowercase => {
                let v = val.to_lowercase();
                labels.set(rule.target_label.clone(), v);
            }
            Action::Uppercase => {
                let v = val.to_uppercase();
                labels.set(rule.target_label.clone(), v);
            }
            Action::HashMod => {
                let m = hash_mod(&val, rule.modulus);
                labels.set(rule.target_label.clone(), m.to_string());
            }
            Action::LabelMap => {
                let mut add = Vec::new();
                for (name, value) in labels.iter() {
                    if rule.regex.is_match(name) {
                        let new = rule.regex.re.replace_all(name, rule.replacement.as_str());
                        add.push((new.into_owned(), value.to_string()));
                    }
                }
                for (n, v) in add {
                    labels.set(n, v);
                }
            }
            Action::LabelDrop => labels.retain(|n, _| !rule.regex.is_match(n)),
            Action::LabelKeep => labels.retain(|n, _| rule.regex.is_match(n)),
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> RelabelConfig {
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"))
    }

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        LabelSet::from_pairs(pairs.iter().map(|(a, b)| (*a, *b)))
    }

    /// Each case: rules (YAML list), input labels, expected output (None = dropped).
    /// Derived from Prometheus's documented relabeling behaviour and its relabel tests.
    #[test]
    fn actions_table() {
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, &[(&str, &str)], Option<&[(&str, &str)]>)] = &[
            // replace with the defaults copies the joined source values.
            (
                "- source_labels: [a]\n  target_label: b",
                &[("a", "foo")],
                Some(&[("a", "foo"), ("b", "foo")]),
            ),
            // A regex that does not match leaves the set alone.
            (
                "- source_labels: [a]\n  regex: 'f(.*)'\n  target_label: d\n  replacement: 'ch${1}-ch${1}'",
                &[("a", "boo")],
                Some(&[("a", "boo")]),
            ),
            // Anchored: 'o' does not match 'foo'.
            (
                "- source_labels: [a]\n  regex: o\n  action: drop",
                &[("a", "foo")],
                Some(&[("a", "foo")]),
            ),
            (
                "- source_labels: [a, b]\n  regex: 'f(.*);(.*)r'\n  target_label: a\n  replacement: 'b${1}${2}m'",
                &[("a", "foo"), ("b", "bar")],
                Some(&[("a", "boobam"), ("b", "bar")]),
            ),
            // Separator and missing sources (empty strings).
            (
                "- source_labels: [a, missing, b]\n  separator: '|'\n  regex: '(.*)'\n  target_label: c",
                &[("a", "x"), ("b", "y")],
                Some(&[("a", "x"), ("b", "y"), ("c", "x||y")]),
            ),
            // An empty replacement deletes the target.
            (
                "- source_labels: [a]\n  target_label: b\n  replacement: ''",
                &[("a", "foo"), ("b", "bar")],
                Some(&[("a", "foo")]),
            ),
            // Templated target label; an invalid expanded name leaves the set alone.
            (
                "- source_labels: [a]\n  regex: '(.*)'\n  target_label: '${1}_x'\n  replacement: v",
                &[("a", "name")],
                Some(&[("a", "name"), ("name_x", "v")]),
            ),
            (
                "- source_labels: [a]\n  regex: '(.*)'\n  target_label: '${1}'\n  replacement: v",
                &[("a", "1bad")],
                Some(&[("a", "1bad")]),
            ),
            // $1x is the group named "1x" (Go's rule), which is empty: deletes the target.
            (
                "- source_labels: [a]\n  regex: '(.*)'\n  target_label: b\n  replacement: '$1x'",
                &[("a", "v"), ("b", "old")],
                Some(&[("a", "v")]),
            ),
            ("- source_labels: [a]\n  regex: 'f.*'\n  action: keep", &[("a", "foo")], Some(&[("a", "foo")])),
            ("- source_labels: [a]\n  regex: 'f.*'\n  action: keep", &[("a", "boo")], None),
            ("- source_labels: [a]\n  regex: 'f.*'\n  action: drop", &[("a", "foo")], None),
            ("- source_labels: [a]\n  regex: 'f.*'\n  action: Drop", &[("a", "boo")], Some(&[("a", "boo")])),
            // keep on a missing label matches the empty string.
            ("- source_labels: [missing]\n  regex: ''\n  action: keep", &[("a", "x")], Some(&[("a", "x")])),
            ("- source_labels: [a]\n  target_label: b\n  action: keepequal", &[("a", "x"), ("b", "x")], Some(&[("a", "x"), ("b", "x")])),
            ("- source_labels: [a]\n  target_label: b\n  action: keepequal", &[("a", "x"), ("b", "y")], None),
            ("- source_labels: [a]\n  target_label: b\n  action: dropequal", &[("a", "x"), ("b", "x")], None),
            ("- source_labels: [a]\n  target_label: b\n  action: dropequal", &[("a", "x"), ("b", "y")], Some(&[("a", "x"), ("b", "y")])),
            // hashmod: values from Prometheus's relabel tests (md5, last 8 bytes, mod).
            (
                "- source_labels: [c]\n  target_label: d\n  modulus: 1000\n  action: hashmod",
                &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
            ),
            (
                "- source_labels: [c]\n  target_label: d\n  modulus: 2\n  action: hashmod",
                &[("a", "foo"), ("b", "bar"), ("c", "baz")],
                Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "0")]),
            ),
            (
                "- regex: '__meta_(.+)'\n  action: labelmap",
                &[("__meta_my_key", "v"), ("a", "x")],
                Some(&[("__meta_my_key", "v"), ("a", "x"), ("my_key", "v")]),
            ),
            (
                "- regex: '(b.*)'\n  replacement: 'x_${1}'\n  action: labelmap",
                &[("a", "1"), ("b1", "2"), ("b2", "3")],
                Some(&[("a", "1"), ("b1", "2"), ("b2", "3"), ("x_b1", "2"), ("x_b2", "3")]),
            ),
            ("- regex: 'b.*'\n  action: labeldrop", &[("a", "1"), ("b1", "2"), ("b2", "3")], Some(&[("a", "1")])),
            ("- regex: 'b.*'\n  action: labelkeep", &[("a", "1"), ("b1", "2"), ("b2", "3")], Some(&[("b1", "2"), ("b2", "3")])),
            ("- source_labels: [a]\n  target_label: b\n  action: lowercase", &[("a", "AbC")], Some(&[("a", "AbC"), ("b", "abc")])),
            ("- source_labels: [a]\n  target_label: a\n  action: uppercase", &[("a", "AbC")], Some(&[("a", "ABC")])),
            // Rules run in order: the second sees the first's result.
            (
                "- source_labels: [a]\n  target_label: b\n- source_labels: [b]\n  regex: foo\n  action: drop",
                &[("a", "foo")],
                None,
            ),
            // Dot matches newlines (?s).
            ("- source_labels: [a]\n  regex: 'x.y'\n  action: keep", &[("a", "x\ny")], Some(&[("a", "x\ny")])),
        ];
        for (yaml, input, want) in cases {
            let rules: Vec<RelabelConfig> =
                serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            let mut got = set(input);
            let kept = process(&mut got, &rules);
            match want {
                None => assert!(!kept, "{yaml}: expected drop, got {got}"),
                Some(w) => {
                    assert!(kept, "{yaml}: dropped");
                    assert_eq!(got, set(w), "{yaml}");
                }
            }
        }
    }

    #[test]
    fn validation_errors() {
        let cases = [
            ("action: ''", "relabel action cannot be empty"),
            ("action: explode", "unknown relabel action \"explode\""),
            (
                "action: hashmod\ntarget_label: a",
                "requires non-zero modulus",
            ),
            (
                "action: replace\nsource_labels: [a]",
                "requires 'target_label' value",
            ),
            ("action: lowercase", "requires 'target_label' value"),
            ("action: keepequal", "requires 'target_label' value"),
            (
                "target_label: '1a'",
                "\"1a\" is invalid 'target_label' for replace action",
            ),
            (
                "action: uppercase\ntarget_label: a\nreplacement: x",
                "'replacement' can not be set for uppercase action",
            ),
            (
                "action: labelmap\nreplacement: '-'",
                "is invalid 'replacement' for labelmap action",
            ),
            (
                "action: labeldrop\nsource_labels: [a]",
                "labeldrop action requires only 'regex'",
            ),
            (
                "action: dropequal\ntarget_label: a\nseparator: ','",
                "requires only 'source_labels' and `target_label`",
            ),
            ("regex: '('", "invalid regex \"(\""),
            (
                "source_labels: ['a-b']\ntarget_label: c",
                "not a valid label name",
            ),
            ("sourcelabels: [a]", "unknown field `sourcelabels`"),
        ];
        for (yaml, want) in cases {
            let err = serde_yaml::from_str::<RelabelConfig>(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
        let _ = rule("action: labelkeep\nregex: 'a|b'");
    }

    #[test]
    fn label_set_edits() {
        let mut s = set(&[("b", "2"), ("a", "1")]);
        assert_eq!(s.get("a"), "1");
        s.set("c".into(), String::new());
        assert!(!s.has("c"));
        s.set("a".into(), String::new());
        assert_eq!(s, set(&[("b", "2")]));
        assert_eq!(s.to_string(), "{b=\"2\"}");
    }
}
