//! Where the server's rules come from: `prometheus.yml`'s `rule_files` and the `global`
//! settings rules use (`evaluation_interval`, `rule_query_offset`, `external_labels`), as
//! Prometheus reads them, plus `lookout.toml`'s `[rules]`; and the rule files themselves,
//! globbed and parsed into [`Group`]s.
//!
//! The scrape configuration checks the top level of `prometheus.yml` (unknown sections are
//! its errors); this reader takes only what rules need and lets the rest pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::group::{groups_of_file, Group, GroupDefaults, DEFAULT_EVALUATION_INTERVAL};
use crate::rulefmt;

/// At most this many rule files per configuration, so a glob of `/` cannot hold the server.
const MAX_RULE_FILES: usize = 10_000;

/// What the rules engine takes from the configuration files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RulesConfig {
    /// Glob patterns of rule files, already anchored at their configuration file's
    /// directory, in configuration order.
    pub patterns: Vec<PathBuf>,
    /// `global.evaluation_interval` and `global.rule_query_offset`.
    pub defaults: GroupDefaults,
    /// `global.external_labels`.
    pub external_labels: BTreeMap<String, String>,
}

/// The top level of `prometheus.yml` as far as rules read it.
#[derive(Debug, Default, Deserialize)]
struct RawFile {
    #[serde(default)]
    global: Option<RawGlobal>,
    #[serde(default)]
    rule_files: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawGlobal {
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    rule_query_offset: Option<String>,
    #[serde(default)]
    external_labels: Option<BTreeMap<String, String>>,
}

impl RulesConfig {
    /// Reads `rule_files` and the rule settings of `global` from a `prometheus.yml`;
    /// relative patterns are relative to the file's directory, as in Prometheus.
    pub fn load_prometheus_file(path: &Path) -> Result<RulesConfig, String> {
        const MAX_CONFIG_BYTES: u64 = 64 << 20;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(format!(
                "{} is larger than {MAX_CONFIG_BYTES} bytes; is it the right file?",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        RulesConfig::from_prometheus_yaml(&text, &path.display().to_string(), dir)
    }

    /// Parses the text of a `prometheus.yml` named `name`, anchoring patterns at `dir`.
    pub fn from_prometheus_yaml(text: &str, name: &str, dir: &Path) -> Result<RulesConfig, String> {
        let raw: RawFile = if text.trim().is_empty() {
            RawFile::default()
        } else {
            serde_yaml::from_str(text)
                .map_err(|e| ingest::scrape::config::yaml_error(name, &e).to_string())?
        };
        let g = raw.global.unwrap_or_default();
        let dur = |key: &str, v: &Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => {
                model::duration::parse_duration(s).map_err(|e| format!("{name}: global.{key}: {e}"))
            }
        };
        let interval = dur(
            "evaluation_interval",
            &g.evaluation_interval,
            DEFAULT_EVALUATION_INTERVAL,
        )?;
        if interval.is_zero() {
            return Err(format!(
                "{name}: global.evaluation_interval must be greater than 0"
            ));
        }
        let query_offset = dur("rule_query_offset", &g.rule_query_offset, Duration::ZERO)?;
        let mut patterns = Vec::new();
        for p in raw.rule_files.unwrap_or_default() {
            check_pattern(&p).map_err(|e| format!("{name}: rule_files: {e}"))?;
            patterns.push(anchor(dir, &p));
        }
        Ok(RulesConfig {
            patterns,
            defaults: GroupDefaults {
                interval,
                query_offset,
            },
            external_labels: g.external_labels.unwrap_or_default(),
        })
    }

    /// Adds `lookout.toml`'s `[rules]` after this configuration: its files follow, and its
    /// `evaluation_interval` (when set) replaces the global one.
    pub fn extend_toml(&mut self, toml: &TomlRulesConfig, dir: &Path) -> Result<(), String> {
        for p in &toml.files {
            check_pattern(p).map_err(|e| format!("[rules] files: {e}"))?;
            self.patterns.push(anchor(dir, p));
        }
        if let Some(i) = &toml.evaluation_interval {
            let d = model::duration::parse_duration(i)
                .map_err(|e| format!("[rules] evaluation_interval: {e}"))?;
            if d.is_zero() {
                return Err("[rules] evaluation_interval must be greater than 0".into());
            }
            self.defaults.interval = d;
        }
        Ok(())
    }

    /// The rule files the patterns match, in pattern order (each pattern's matches sorted,
    /// as Go's `filepath.Glob`), each once.
    pub fn files(&self) -> Result<Vec<PathBuf>, String> {
        let mut out: Vec<PathBuf> = Vec::new();
        for p in &self.patterns {
            let text = p.to_string_lossy();
            let paths = glob::glob(&text)
                .map_err(|e| format!("rule_files: invalid pattern {text:?}: {e}"))?;
            let mut matched: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
            matched.sort();
            for m in matched {
                if !out.contains(&m) {
                    out.push(m);
                }
                if out.len() > MAX_RULE_FILES {
                    return Err(format!(
                        "rule_files match more than {MAX_RULE_FILES} files; narrow the patterns"
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Reads and parses every rule file into groups. The first problem is the error, as
    /// one line naming file, line and column (the others follow on further lines).
    pub fn load_groups(&self, should_restore: bool) -> Result<Vec<Group>, String> {
        let mut groups: Vec<Group> = Vec::new();
        for f in self.files()? {
            let parsed = rulefmt::load_file(&f).map_err(|e| match e.0.len() {
                0 | 1 => e.to_string(),
                n => format!(
                    "{} (and {} more problems; `lookout check rules` lists them)",
                    e.0[0],
                    n - 1
                ),
            })?;
            let name = f.display().to_string();
            for g in groups_of_file(&name, &parsed, &self.defaults, should_restore) {
                groups.push(g);
            }
        }
        Ok(groups)
    }
}

/// `lookout.toml`'s `[rules]`:
///
/// ```toml
/// [rules]
/// files = ["rules/*.yml"]            # relative to lookout.toml
/// evaluation_interval = "30s"        # default: global.evaluation_interval, else 1m
/// alertmanagers = ["http://127.0.0.1:9093"]
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlRulesConfig {
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub evaluation_interval: Option<String>,
    /// Alertmanager URLs, as `[alerting] alertmanagers` of the notifier.
    #[serde(default)]
    pub alertmanagers: Vec<String>,
    /// Prometheus's `--rules.alert.for-grace-period` (10m): a restored alert fires no
    /// sooner than this after a restart, and rules whose `for` is shorter are not restored.
    #[serde(default)]
    pub for_grace_period: Option<String>,
}

impl TomlRulesConfig {
    /// `for_grace_period`, or Prometheus's default.
    pub fn grace_period(&self) -> Result<Duration, String> {
        match &self.for_grace_period {
            None => Ok(crate::group::DEFAULT_FOR_GRACE_PERIOD),
            Some(s) => model::duration::parse_duration(s)
                .map_err(|e| format!("[rules] for_grace_period: {e}")),
        }
    }
}

/// Go's `filepath.Match` refuses malformed patterns; so does Prometheus's config check.
fn check_pattern(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("an empty pattern matches nothing; remove it".into());
    }
    glob::Pattern::new(p)
        .map(|_| ())
        .map_err(|e| format!("invalid file path pattern {p:?}: {e}"))
}

fn anchor(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_yaml_rule_settings() {
        let c = RulesConfig::from_prometheus_yaml(
            "global:\n  evaluation_interval: 15s\n  rule_query_offset: 1m\n  external_labels: {a: b}\nrule_files: ['r/*.yml', '/abs.yml']\nscrape_configs: []\n",
            "p.yml",
            Path::new("/etc/prom"),
        )
        .unwrap();
        assert_eq!(c.defaults.interval, Duration::from_secs(15));
        assert_eq!(c.defaults.query_offset, Duration::from_secs(60));
        assert_eq!(c.external_labels["a"], "b");
        assert_eq!(
            c.patterns,
            vec![
                PathBuf::from("/etc/prom/r/*.yml"),
                PathBuf::from("/abs.yml")
            ]
        );
        let d = RulesConfig::from_prometheus_yaml("", "p.yml", Path::new("/")).unwrap();
        assert_eq!(d.defaults.interval, DEFAULT_EVALUATION_INTERVAL);
        let e = RulesConfig::from_prometheus_yaml(
            "global:\n  evaluation_interval: 1x\n",
            "p.yml",
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.contains("global.evaluation_interval"), "{e}");
        let e = RulesConfig::from_prometheus_yaml("rule_files: ['[']\n", "p.yml", Path::new("/"))
            .unwrap_err();
        assert!(e.contains("invalid file path pattern"), "{e}");
    }

    #[test]
    fn files_are_globbed_and_broken_ones_named_with_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.yml"),
            "groups:\n- name: h\n  rules:\n  - alert: A\n    expr: up == 0\n",
        )
        .unwrap();
        let mut c = RulesConfig::default();
        c.extend_toml(
            &TomlRulesConfig {
                files: vec!["*.yml".into(), "a.yml".into()],
                evaluation_interval: Some("5s".into()),
                ..Default::default()
            },
            dir.path(),
        )
        .unwrap();
        let groups = c.load_groups(false).unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.name()).collect();
        assert_eq!(names, ["h", "g"]);
        assert_eq!(groups[0].interval(), Duration::from_secs(5));
        std::fs::write(
            dir.path().join("b.yml"),
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up +\n",
        )
        .unwrap();
        let e = c.load_groups(false).unwrap_err();
        assert!(
            e.contains("b.yml:4:5: group \"g\", rule 1, \"r\": could not parse expression"),
            "{e}"
        );
    }
}
