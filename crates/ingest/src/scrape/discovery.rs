//! Target discovery: `static_configs`, `file_sd_configs` and `http_sd_configs`.
//!
//! Discovery yields the job's whole list of discovered label sets (`__address__` plus group
//! labels, and `__meta_filepath` for file discovery) each time something changes; the pool
//! diffs it against its running loops. Files are JSON (`.json`) or YAML (`.yml`, `.yaml`)
//! lists of `{targets, labels}` groups, as Prometheus reads them; patterns may have one `*`
//! in the file name. Files are polled (every few seconds, cheap for target lists) rather
//! than watched, so edits, new files and atomic renames are all seen the same way; a file
//! that fails to parse keeps its previous targets and logs why, as in Prometheus.
//!
//! HTTP discovery ([`parse_http_sd`]; the manager fetches) reads Prometheus's JSON answer
//! and adds `__meta_url`; a failed refresh keeps the previous targets.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{check_target_address, FileSdConfig, TargetGroup};
use super::relabel::LabelSet;

/// Largest file discovery file read.
const MAX_SD_FILE_BYTES: u64 = 32 << 20;

/// The discovered label sets of one group.
pub fn group_targets(group: &TargetGroup, extra: &[(&str, &str)]) -> Vec<LabelSet> {
    group
        .targets
        .iter()
        .map(|addr| {
            let mut s =
                LabelSet::from_pairs(group.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            for (k, v) in extra {
                s.set(k.to_string(), v.to_string());
            }
            s.set("__address__".into(), addr.clone());
            s
        })
        .collect()
}

/// Reads one discovery file into its groups.
pub fn read_sd_file(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    f.take(MAX_SD_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_SD_FILE_BYTES {
        return Err(format!(
            "{} is larger than {MAX_SD_FILE_BYTES} bytes",
            path.display()
        ));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let groups: Vec<TargetGroup> = if ext == "json" {
        serde_json::from_str(&text)
            .map_err(|e| format!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))?
    } else if text.trim().is_empty() {
        Vec::new()
    } else {
        serde_yaml::from_str(&text).map_err(|e| {
            let loc = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default();
            format!("{}{loc}: {e}", path.display())
        })?
    };
    for g in &groups {
        for t in &g.targets {
            check_target_address(t).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        for name in g.labels.keys() {
            if !model::labels::is_valid_label_name(name) {
                return Err(format!(
                    "{}: {name:?} is not a valid label name",
                    path.display()
                ));
            }
        }
    }
    Ok(groups)
}

/// An `http_sd_configs` answer into discovered label sets: a JSON list of
/// `{"targets": [...], "labels": {...}}` groups (unknown fields refused, as Go's decoder
/// with `DisallowUnknownFields`), each target also labelled `__meta_url` with the URL.
pub fn parse_http_sd(body: &[u8], url: &str) -> Result<Vec<LabelSet>, String> {
    let groups: Vec<Option<TargetGroup>> =
        serde_json::from_slice(body).map_err(|e| format!("json: {e}"))?;
    let mut out = Vec::new();
    for g in groups {
        let Some(g) = g else {
            return Err("nil target group item found".into());
        };
        for name in g.labels.keys() {
            if !model::labels::is_valid_label_name(name) {
                return Err(format!("{name:?} is not a valid label name"));
            }
        }
        out.extend(group_targets(&g, &[("__meta_url", url)]));
    }
    Ok(out)
}

/// The state of one `file_sd_configs` entry: the last good groups of each file.
pub struct FileSd {
    cfg: FileSdConfig,
    files: BTreeMap<PathBuf, (Option<std::time::SystemTime>, Vec<LabelSet>)>,
    since_full: Duration,
}

impl FileSd {
    /// A discovery over `cfg`'s patterns; nothing read yet.
    pub fn new(cfg: FileSdConfig) -> FileSd {
        FileSd {
            cfg,
            files: BTreeMap::new(),
            since_full: Duration::MAX,
        }
    }

    /// How often [`FileSd::refresh`] should run.
    pub fn poll_interval(&self) -> Duration {
        self.cfg
            .refresh_interval
            .clamp(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// Re-lists the patterns and re-reads files that changed (all of them once per
    /// `refresh_interval`). Returns whether the targets changed, and the errors met.
    pub fn refresh(&mut self, elapsed: Duration) -> (bool, Vec<String>) {
        let full = self.since_full >= self.cfg.refresh_interval;
        self.since_full = if full {
            Duration::ZERO
        } else {
            self.since_full.saturating_add(elapsed)
        };
        let mut errors = Vec::new();
        let mut present = Vec::new();
        for pat in &self.cfg.files {
            let Some(pat) = pat.to_str() else {
                errors.push(format!("{} is not UTF-8", pat.display()));
                continue;
            };
            match glob::glob(pat) {
                Ok(paths) => present.extend(paths.flatten()),
                Err(e) => errors.push(format!("invalid file pattern {pat:?}: {e}")),
            }
        }
        present.sort();
        present.dedup();
        let mut changed = false;
        let before = self.files.len();
        self.files.retain(|p, _| present.contains(p));
        changed |= self.files.len() != before;
        for path in present {
            let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            if !full {
                if let Some((Some(old), _)) = self.files.get(&path) {
                    if Some(*old) == mtime {
                        continue;
                    }
                }
            }
            match read_sd_file(&path) {
                Ok(groups) => {
                    let fp = path.display().to_string();
                    let targets: Vec<LabelSet> = groups
                        .iter()
                        .flat_map(|g| group_targets(g, &[("__meta_filepath", &fp)]))
                        .collect();
                    let entry = self.files.entry(path).or_insert((None, Vec::new()));
                    if entry.1 != targets {
                        changed = true;
                        entry.1 = targets;
                    }
                    entry.0 = mtime;
                }
                Err(e) => {
                    // Keep the previous targets of a file that is being rewritten or broken.
                    if let Some(entry) = self.files.get_mut(&path) {
                        entry.0 = mtime;
                    }
                    errors.push(e);
                }
            }
        }
        (changed, errors)
    }

    /// The current discovered targets of all files.
    pub fn targets(&self) -> impl Iterator<Item = &LabelSet> {
        self.files.values().flat_map(|(_, t)| t.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_sd_answers() {
        let url = "http://sd/x";
        let t = parse_http_sd(
            br#"[{"targets": ["a:1", "b:2"], "labels": {"env": "dev", "__meta_url": "spoof"}}, {"targets": []}]"#,
            url,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].get("__address__"), "a:1");
        assert_eq!(t[0].get("env"), "dev");
        // The URL label is the discovery's, whatever the answer says.
        assert_eq!(t[1].get("__meta_url"), url);
        assert!(parse_http_sd(b"[]", url).unwrap().is_empty());
        for (body, want) in [
            (&br#"[null]"#[..], "nil target group item found"),
            (
                br#"[{"targets": ["a:1"], "extra": 1}]"#,
                "unknown field `extra`",
            ),
            (
                br#"[{"targets": ["a:1"], "labels": {"bad-name": "x"}}]"#,
                "\"bad-name\" is not a valid label name",
            ),
            (br#"{"targets": []}"#, "json: "),
            (b"[", "json: "),
        ] {
            let e = parse_http_sd(body, url).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn file_sd_reads_json_and_yaml_and_keeps_last_good() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets": ["h:1", "h:2"], "labels": {"env": "dev"}}]"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), "- targets: ['h:3']\n").unwrap();
        let mut sd = FileSd::new(FileSdConfig {
            files: vec![dir.path().join("*.json"), dir.path().join("b.yml")],
            refresh_interval: Duration::from_secs(60),
        });
        let (changed, errors) = sd.refresh(Duration::ZERO);
        assert!(changed && errors.is_empty(), "{errors:?}");
        let t: Vec<_> = sd.targets().collect();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].get("env"), "dev");
        assert!(t[0].get("__meta_filepath").ends_with("a.json"));
        // Unchanged files: no change.
        assert!(!sd.refresh(Duration::from_secs(1)).0);
        // A broken rewrite keeps the old targets and reports where.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(dir.path().join("b.yml"), "- targets: ['h:3'\n").unwrap();
        let future = std::time::SystemTime::now() + Duration::from_secs(5);
        let f = std::fs::File::options()
            .write(true)
            .open(dir.path().join("b.yml"))
            .unwrap();
        f.set_modified(future).unwrap();
        let (changed, errors) = sd.refresh(Duration::from_secs(1));
        assert!(!changed);
        assert!(errors[0].contains("b.yml:"), "{errors:?}");
        assert_eq!(sd.targets().count(), 3);
        // A removed file takes its targets away.
        std::fs::remove_file(dir.path().join("a.json")).unwrap();
        assert!(sd.refresh(Duration::from_secs(1)).0);
        assert_eq!(sd.targets().count(), 1);
        // Bad target addresses are refused.
        std::fs::write(
            dir.path().join("c.json"),
            r#"[{"targets": ["http://x/y"]}]"#,
        )
        .unwrap();
        let e = read_sd_file(&dir.path().join("c.json")).unwrap_err();
        assert!(e.contains("is not a valid hostname"), "{e}");
    }
}
