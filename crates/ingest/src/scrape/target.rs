//! From discovered targets to scrape targets: Prometheus's `PopulateLabels`.
//!
//! A discovered target is its group's labels plus `__address__` (and `__meta_*` from file
//! discovery). Before relabeling it gets `job`, `__scheme__`, `__metrics_path__`,
//! `__scrape_interval__`, `__scrape_timeout__` and `__param_<name>` unless discovery already
//! set them; `relabel_configs` then run, may drop it, and may change any of them. After
//! relabeling every label starting with `__` is removed and `instance` defaults to the
//! address. The URL, interval and timeout are read from the relabeled labels, so relabeling
//! can move a target to another path or port exactly as in Prometheus.
//!
//! Prometheus 2.x appended a default port (80/443) to addresses without one; 3.x does not,
//! and neither do we.

use std::collections::BTreeMap;
use std::time::Duration;

use model::labels::{Labels, LabelsBuilder};

use super::config::{check_target_address, format_duration, parse_duration, JobConfig};
use super::relabel::{process, LabelSet};

/// A target after relabeling: what the scrape loop needs and what `/api/v1/targets` shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Labels before relabeling (`discoveredLabels`).
    pub discovered: LabelSet,
    /// The target's labels, attached to every series it exposes.
    pub labels: Labels,
    /// `scheme://address/path?params`.
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// Identity across reloads and discovery refreshes: the labels and the URL.
    pub fn identity(&self) -> u64 {
        let mut h = self.labels.stable_hash();
        for b in self.url.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

/// What became of one discovered target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Populated {
    /// Scrape it.
    Active(Target),
    /// Relabeling dropped it; its discovered labels.
    Dropped(LabelSet),
}

/// Runs target relabeling for one discovered target of `job`.
pub fn populate(job: &JobConfig, discovered: LabelSet) -> Result<Populated, String> {
    let mut lb = discovered;
    let defaults = [
        ("job", job.job_name.clone()),
        ("__scheme__", job.scheme.clone()),
        ("__metrics_path__", job.metrics_path.clone()),
        ("__scrape_interval__", format_duration(job.scrape_interval)),
        ("__scrape_timeout__", format_duration(job.scrape_timeout)),
    ];
    for (name, value) in defaults {
        if !lb.has(name) {
            lb.set(name.to_string(), value);
        }
    }
    for (name, values) in &job.params {
        let key = format!("__param_{name}");
        if let Some(first) = values.first() {
            if !lb.has(&key) {
                lb.set(key, first.clone());
            }
        }
    }
    let pre = lb.clone();
    if !process(&mut lb, &job.relabel_configs) {
        return Ok(Populated::Dropped(pre));
    }
    let addr = lb.get("__address__").to_string();
    if addr.is_empty() {
        return Err("no address".into());
    }
    check_target_address(&addr)?;
    let interval = parse_duration(lb.get("__scrape_interval__"))
        .map_err(|e| format!("error parsing scrape interval: {e}"))?;
    let timeout = parse_duration(lb.get("__scrape_timeout__"))
        .map_err(|e| format!("error parsing scrape timeout: {e}"))?;
    if interval.is_zero() {
        return Err("scrape interval cannot be 0".into());
    }
    if timeout.is_zero() {
        return Err("scrape timeout cannot be 0".into());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout cannot be greater than scrape interval ({:?} > {:?})",
            format_duration(timeout),
            format_duration(interval)
        ));
    }
    let scheme = lb.get("__scheme__").to_string();
    let mut path = lb.get("__metrics_path__").to_string();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    // Parameters: the job's, with `__param_*` labels replacing each name's first value.
    let mut params: BTreeMap<String, Vec<String>> = job.params.clone();
    for (name, value) in lb.iter() {
        if let Some(key) = name.strip_prefix("__param_") {
            let e = params.entry(key.to_string()).or_default();
            if e.is_empty() {
                e.push(value.to_string());
            } else {
                e[0] = value.to_string();
            }
        }
    }
    let mut url = format!("{scheme}://{addr}{path}");
    let mut first = true;
    for (k, vs) in &params {
        for v in vs {
            url.push(if first { '?' } else { '&' });
            first = false;
            model::gofmt::query_escape(k, &mut url);
            url.push('=');
            model::gofmt::query_escape(v, &mut url);
        }
    }
    let mut out = LabelsBuilder::new();
    let mut has_instance = false;
    for (name, value) in lb.iter() {
        if name.starts_with("__") {
            continue;
        }
        has_instance |= name == "instance";
        out.push(name, value)
            .map_err(|e| format!("invalid target label: {e}"))?;
    }
    if !has_instance {
        out.push("instance", &addr)
            .map_err(|e| format!("invalid target label: {e}"))?;
    }
    let labels = out
        .build()
        .map_err(|e| format!("invalid target label: {e}"))?;
    Ok(Populated::Active(Target {
        discovered: pre,
        labels,
        url,
        interval,
        timeout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::config::ScrapeConfig;
    use std::path::Path;

    fn job(yaml: &str) -> JobConfig {
        let c = ScrapeConfig::parse_prometheus_yaml(yaml, "t.yml", Path::new("/")).unwrap();
        c.jobs.into_iter().next().unwrap()
    }

    fn active(p: Populated) -> Target {
        match p {
            Populated::Active(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_reserved_labels() {
        let j = job("scrape_configs:\n  - job_name: app\n    scrape_interval: 15s\n    params: {module: [http 2xx, x]}\n");
        let t = active(
            populate(
                &j,
                LabelSet::from_pairs([("__address__", "h:9"), ("env", "dev")]),
            )
            .unwrap(),
        );
        assert_eq!(
            t.labels.to_string(),
            "{env=\"dev\", instance=\"h:9\", job=\"app\"}"
        );
        assert_eq!(t.url, "http://h:9/metrics?module=http+2xx&module=x");
        assert_eq!(t.interval, Duration::from_secs(15));
        assert_eq!(t.discovered.get("__scrape_interval__"), "15s");
        assert_eq!(t.discovered.get("__param_module"), "http 2xx");
        assert_eq!(t.discovered.get("job"), "app");
    }

    #[test]
    fn relabeling_moves_and_drops_targets() {
        let j = job(r#"
scrape_configs:
  - job_name: app
    relabel_configs:
      - source_labels: [__address__]
        regex: 'drop-.*'
        action: drop
      - source_labels: [__address__]
        regex: '(.*):9'
        target_label: __address__
        replacement: '${1}:10'
      - target_label: __metrics_path__
        replacement: /other
      - target_label: __param_x
        replacement: 'a&b'
      - target_label: instance
        replacement: mine
      - target_label: __scrape_interval__
        replacement: 30s
      - target_label: __tmp
        replacement: gone
"#);
        let t = active(populate(&j, LabelSet::from_pairs([("__address__", "h:9")])).unwrap());
        assert_eq!(t.url, "http://h:10/other?x=a%26b");
        assert_eq!(t.labels.to_string(), "{instance=\"mine\", job=\"app\"}");
        assert_eq!(t.interval, Duration::from_secs(30));
        match populate(&j, LabelSet::from_pairs([("__address__", "drop-me:1")])).unwrap() {
            Populated::Dropped(d) => assert_eq!(d.get("__address__"), "drop-me:1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_after_relabeling() {
        let j = job("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - target_label: __address__\n        replacement: ''\n");
        assert_eq!(
            populate(&j, LabelSet::from_pairs([("__address__", "h:1")])).unwrap_err(),
            "no address"
        );
        let j = job("scrape_configs:\n  - job_name: a\n    scrape_interval: 10s\n    relabel_configs:\n      - target_label: __scrape_timeout__\n        replacement: 20s\n");
        let e = populate(&j, LabelSet::from_pairs([("__address__", "h:1")])).unwrap_err();
        assert!(e.contains("greater than scrape interval"), "{e}");
    }
}
