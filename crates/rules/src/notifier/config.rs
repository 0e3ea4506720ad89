//! Where alerts go: the `alerting` section of a `prometheus.yml`, as Prometheus 3 accepts it,
//! and the plain list of Alertmanager URLs of `lookout.toml`'s `[alerting]` section.
//!
//! Both end as one [`NotifierConfig`]. The pieces Prometheus shares between scraping and
//! alerting come from ingest's scrape configuration, so they parse, default and fail the
//! same way: relabel rules ([`RelabelConfig`]), `static_configs` groups, `basic_auth`,
//! `authorization` (and the older `bearer_token`), `tls_config` and target address checks.
//! Acted on per `alertmanagers` entry: `static_configs`, `scheme`, `path_prefix`, `timeout`
//! (default 10s), `api_version` (`v2`, the only one Prometheus 3 speaks), the credentials,
//! `tls_config`, `relabel_configs` (over the discovered Alertmanagers) and
//! `alert_relabel_configs` (over the alerts sent to this entry's Alertmanagers); and
//! `alerting.alert_relabel_configs` over every alert. Settings Prometheus accepts that the
//! notifier does not act on (other service discoveries, oauth2, sigv4, proxies,
//! `http_headers`, …) load with a warning naming them; fields Prometheus would refuse are
//! errors naming file, line and column.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ingest::scrape::config::{
    build_auth, check_target_address, parse_duration, yaml_error, Auth, RawAuthorization,
    RawBasicAuth, RawTls, TargetGroup, TlsConfig,
};
use ingest::scrape::relabel::RelabelConfig;
pub use ingest::scrape::ConfigError;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// Prometheus's default `--alertmanager.notification-queue-capacity`.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Prometheus's `DefaultMaxBatchSize`: alerts per request at most.
pub const DEFAULT_MAX_BATCH_SIZE: usize = 256;
/// Prometheus's default `timeout` of an `alertmanagers` entry.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a clean shutdown keeps sending what is queued before dropping the rest.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The API path alerts are posted to, under `path_prefix`.
const ALERTS_PATH: &str = "/api/v2/alerts";

/// Everything the notifier needs: where Alertmanagers are and how alerts reach them.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifierConfig {
    /// One entry per `alertmanagers` item (or `lookout.toml` URL), in order.
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// `alerting.alert_relabel_configs`: run over every alert as it is queued.
    pub alert_relabel_configs: Vec<RelabelConfig>,
    /// `global.external_labels`: added to an alert's labels where it has no such label
    /// (before `alert_relabel_configs`), as Prometheus does.
    pub external_labels: BTreeMap<String, String>,
    /// Alerts held at most; past it the oldest are dropped and counted.
    pub queue_capacity: usize,
    /// Alerts per request at most.
    pub max_batch_size: usize,
    /// How long a clean shutdown keeps sending what is queued.
    pub drain_timeout: Duration,
    /// Things the configuration asks for that the notifier does not act on, one sentence
    /// each; the caller logs them.
    pub warnings: Vec<String>,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig {
            alertmanagers: Vec::new(),
            alert_relabel_configs: Vec::new(),
            external_labels: BTreeMap::new(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_batch_size: DEFAULT_MAX_BATCH_SIZE,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            warnings: Vec::new(),
        }
    }
}

/// One `alertmanagers` entry: a group of Alertmanagers sharing how alerts are sent to them.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertmanagerConfig {
    /// `static_configs`: `host:port` targets and their labels.
    pub static_configs: Vec<TargetGroup>,
    /// `http` or `https`.
    pub scheme: String,
    /// Put in front of `/api/v2/alerts`.
    pub path_prefix: String,
    /// The whole request, body and answer included.
    pub timeout: Duration,
    pub auth: Option<Auth>,
    pub tls: TlsConfig,
    /// Run over each discovered Alertmanager (`__address__`, `__scheme__`,
    /// `__alerts_path__` and the group's labels); may drop it or move it.
    pub relabel_configs: Vec<RelabelConfig>,
    /// Run over the alerts sent to this entry's Alertmanagers only.
    pub alert_relabel_configs: Vec<RelabelConfig>,
}

impl AlertmanagerConfig {
    /// An entry with Prometheus's defaults and no targets.
    pub fn new() -> AlertmanagerConfig {
        AlertmanagerConfig {
            static_configs: Vec::new(),
            scheme: "http".into(),
            path_prefix: String::new(),
            timeout: DEFAULT_TIMEOUT,
            auth: None,
            tls: TlsConfig::default(),
            relabel_configs: Vec::new(),
            alert_relabel_configs: Vec::new(),
        }
    }

    /// The `__alerts_path__` of this entry's Alertmanagers: Go's
    /// `path.Join("/", path_prefix, "/api/v2/alerts")`.
    pub fn alerts_path(&self) -> String {
        clean_path(&format!("/{}/{ALERTS_PATH}", self.path_prefix))
    }
}

impl Default for AlertmanagerConfig {
    fn default() -> Self {
        AlertmanagerConfig::new()
    }
}

/// Go's `path.Clean` of an absolute path: no empty or `.` elements, `..` applied, no
/// trailing slash.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

impl NotifierConfig {
    /// Reads the `alerting` section (and `global.external_labels`) of a `prometheus.yml`.
    pub fn load_prometheus_file(path: &Path) -> Result<NotifierConfig, ConfigError> {
        const MAX_CONFIG_BYTES: u64 = 64 << 20;
        let read = |source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read)?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::Invalid(format!(
                "{} is larger than {MAX_CONFIG_BYTES} bytes; is it the right file?",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        NotifierConfig::from_prometheus_yaml(&text, &path.display().to_string(), dir)
    }

    /// Parses the `alerting` section and `global.external_labels` of a whole
    /// `prometheus.yml` text; `name` names it in errors, `dir` anchors relative paths
    /// (`ca_file`, `password_file`, …). Other sections are left to their own parsers (the
    /// scrape configuration checks the file's top level). A file without `alerting` gives
    /// a configuration without Alertmanagers.
    pub fn from_prometheus_yaml(
        text: &str,
        name: &str,
        dir: &Path,
    ) -> Result<NotifierConfig, ConfigError> {
        let raw: RawFile = if text.trim().is_empty() {
            RawFile::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| yaml_error(name, &e))?
        };
        raw.into_config(dir)
            .map_err(|m| ConfigError::Invalid(format!("{name}: {m}")))
    }

    /// Adds `other`'s Alertmanagers, alert relabeling and warnings after this
    /// configuration's (`prometheus.yml` and `lookout.toml` both given).
    pub fn extend(&mut self, other: NotifierConfig) {
        self.alertmanagers.extend(other.alertmanagers);
        self.alert_relabel_configs
            .extend(other.alert_relabel_configs);
        for (k, v) in other.external_labels {
            self.external_labels.entry(k).or_insert(v);
        }
        self.warnings.extend(other.warnings);
    }
}

/// The top level of `prometheus.yml` as far as the notifier reads it.
#[derive(Debug, Default, Deserialize)]
struct RawFile {
    #[serde(default)]
    global: Option<RawGlobal>,
    #[serde(default)]
    alerting: Option<RawAlerting>,
}

#[derive(Debug, Default, Deserialize)]
struct RawGlobal {
    #[serde(default)]
    external_labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerting {
    /// `Option` items so a null rule gets Prometheus's own error rather than serde's.
    #[serde(default)]
    alert_relabel_configs: Option<Vec<Option<RelabelConfig>>>,
    #[serde(default)]
    alertmanagers: Option<Vec<RawAlertmanager>>,
}

/// `api_version`: Prometheus 3 knows `v2` only.
fn de_api_version<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<()>, D::Error> {
    let v = String::deserialize(d)?;
    if v == "v2" {
        return Ok(Some(()));
    }
    let fix = if v == "v1" {
        "; Alertmanager API v1 is gone since Prometheus 3 and Alertmanager 0.27: set api_version: v2 (or leave it out)"
    } else {
        "; set api_version: v2 (or leave it out)"
    };
    Err(serde::de::Error::custom(format!(
        "expected Alertmanager api version to be one of [v2] but got {v}{fix}"
    )))
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Declares the raw `alertmanagers` entry with the fields acted on plus the ones accepted
/// and ignored (each listed once, so the warning can name them).
macro_rules! raw_alertmanager {
    ($($ignored:ident),* $(,)?) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawAlertmanager {
            #[serde(default)]
            static_configs: Option<Vec<TargetGroup>>,
            #[serde(default)]
            scheme: Option<String>,
            #[serde(default)]
            path_prefix: Option<String>,
            #[serde(default, deserialize_with = "de_duration")]
            timeout: Option<Duration>,
            #[serde(default, deserialize_with = "de_api_version")]
            #[allow(dead_code)] // validated only: v2 is the one version
            api_version: Option<()>,
            #[serde(default)]
            basic_auth: Option<RawBasicAuth>,
            #[serde(default)]
            authorization: Option<RawAuthorization>,
            #[serde(default)]
            bearer_token: Option<String>,
            #[serde(default)]
            bearer_token_file: Option<String>,
            #[serde(default)]
            tls_config: Option<RawTls>,
            #[serde(default)]
            relabel_configs: Option<Vec<Option<RelabelConfig>>>,
            #[serde(default)]
            alert_relabel_configs: Option<Vec<Option<RelabelConfig>>>,
            $(
                #[serde(default)]
                $ignored: Option<IgnoredAny>,
            )*
        }

        impl RawAlertmanager {
            /// Names of the accepted-but-ignored fields this entry sets.
            fn ignored_fields(&self) -> Vec<&'static str> {
                let mut v = Vec::new();
                $(
                    if self.$ignored.is_some() {
                        v.push(stringify!($ignored));
                    }
                )*
                v
            }
        }
    };
}

raw_alertmanager!(
    oauth2,
    sigv4,
    follow_redirects,
    enable_http2,
    http_headers,
    proxy_url,
    no_proxy,
    proxy_from_environment,
    proxy_connect_header,
    file_sd_configs,
    http_sd_configs,
    azure_sd_configs,
    consul_sd_configs,
    digitalocean_sd_configs,
    docker_sd_configs,
    dockerswarm_sd_configs,
    dns_sd_configs,
    ec2_sd_configs,
    eureka_sd_configs,
    gce_sd_configs,
    hetzner_sd_configs,
    ionos_sd_configs,
    kubernetes_sd_configs,
    kuma_sd_configs,
    lightsail_sd_configs,
    linode_sd_configs,
    marathon_sd_configs,
    nerve_sd_configs,
    nomad_sd_configs,
    openstack_sd_configs,
    ovhcloud_sd_configs,
    puppetdb_sd_configs,
    scaleway_sd_configs,
    serverset_sd_configs,
    triton_sd_configs,
    uyuni_sd_configs,
    vultr_sd_configs,
    stackit_sd_configs,
);

/// The name ingest's shared HTTP client checks put in their messages (`job "…": `); it is
/// replaced by where the entry is.
const CHECK_NAME: &str = "alertmanager";

fn reword(e: String, at: &str) -> String {
    let prefix = format!("job {CHECK_NAME:?}: ");
    match e.strip_prefix(&prefix) {
        Some(rest) => format!("{at}: {rest}"),
        None => format!("{at}: {e}"),
    }
}

/// Unwraps relabel rules, refusing a null one with Prometheus's words.
fn rules(
    raw: Option<Vec<Option<RelabelConfig>>>,
    what: &str,
) -> Result<Vec<RelabelConfig>, String> {
    raw.unwrap_or_default()
        .into_iter()
        .map(|r| r.ok_or_else(|| format!("empty or null {what} relabeling rule")))
        .collect()
}

impl RawFile {
    fn into_config(self, dir: &Path) -> Result<NotifierConfig, String> {
        let mut cfg = NotifierConfig::default();
        let external_labels = self
            .global
            .and_then(|g| g.external_labels)
            .unwrap_or_default();
        for name in external_labels.keys() {
            if !model::labels::is_valid_label_name(name) {
                return Err(format!(
                    "{name:?} is not a valid label name in external_labels"
                ));
            }
        }
        cfg.external_labels = external_labels;
        let Some(alerting) = self.alerting else {
            return Ok(cfg);
        };
        cfg.alert_relabel_configs = rules(alerting.alert_relabel_configs, "alert")?;
        for (i, raw) in alerting
            .alertmanagers
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let at = format!("alerting.alertmanagers[{i}]");
            let am = raw.into_config(dir, &at, &mut cfg.warnings)?;
            cfg.alertmanagers.push(am);
        }
        Ok(cfg)
    }
}

impl RawAlertmanager {
    fn into_config(
        self,
        dir: &Path,
        at: &str,
        warnings: &mut Vec<String>,
    ) -> Result<AlertmanagerConfig, String> {
        for f in self.ignored_fields() {
            warnings.push(format!("{at}: the notifier ignores {f:?}"));
        }
        let mut am = AlertmanagerConfig::new();
        am.auth = build_auth(
            self.basic_auth,
            self.authorization,
            self.bearer_token,
            self.bearer_token_file,
            dir,
            CHECK_NAME,
        )
        .map_err(|e| reword(e, at))?;
        if let Some(t) = self.tls_config {
            am.tls = t.into_tls(dir, CHECK_NAME).map_err(|e| reword(e, at))?;
        }
        if let Some(s) = self.scheme {
            // Prometheus accepts any scheme here and fails when sending; so do we.
            if s != "http" && s != "https" {
                warnings.push(format!(
                    "{at}: scheme {s:?} is not supported (http and https are); sending to its Alertmanagers will fail"
                ));
            }
            am.scheme = s;
        }
        am.path_prefix = self.path_prefix.unwrap_or_default();
        am.timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        am.relabel_configs = rules(self.relabel_configs, "Alertmanager target")?;
        am.alert_relabel_configs = rules(self.alert_relabel_configs, "Alertmanager alert")?;
        am.static_configs = self.static_configs.unwrap_or_default();
        for group in &am.static_configs {
            // As Prometheus: a URL where an address belongs is an error unless relabeling
            // may still turn it into one.
            if am.relabel_configs.is_empty() {
                for t in &group.targets {
                    check_target_address(t).map_err(|e| format!("{at}: {e}"))?;
                }
            }
            for name in group.labels.keys() {
                if !model::labels::is_valid_label_name(name) {
                    return Err(format!("{at}: {name:?} is not a valid label name"));
                }
            }
        }
        Ok(am)
    }
}

/// The `[alerting]` section of `lookout.toml`: Alertmanagers by URL, for people without a
/// `prometheus.yml`.
///
/// ```toml
/// [alerting]
/// alertmanagers = ["http://127.0.0.1:9093", "https://user:secret@am.example.com/prefix"]
/// timeout = "10s"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlAlertingConfig {
    /// `scheme://[user:password@]host[:port][/path_prefix]`; alerts go to
    /// `<url>/api/v2/alerts`.
    #[serde(default)]
    pub alertmanagers: Vec<String>,
    /// Per request (Prometheus's duration syntax), 10s by default.
    #[serde(default)]
    pub timeout: Option<String>,
}

impl TomlAlertingConfig {
    /// Whether the section names no Alertmanager.
    pub fn is_empty(&self) -> bool {
        self.alertmanagers.is_empty()
    }

    /// The configuration an `alerting` section with one entry per URL would give.
    pub fn to_config(&self) -> Result<NotifierConfig, ConfigError> {
        let bad = |m: String| ConfigError::Invalid(format!("[alerting] {m}"));
        let timeout = match &self.timeout {
            Some(t) => parse_duration(t).map_err(|e| bad(format!("timeout: {e}")))?,
            None => DEFAULT_TIMEOUT,
        };
        let mut cfg = NotifierConfig::default();
        for u in &self.alertmanagers {
            let mut am =
                alertmanager_from_url(u).map_err(|e| bad(format!("alertmanagers: {e}")))?;
            am.timeout = timeout;
            cfg.alertmanagers.push(am);
        }
        Ok(cfg)
    }
}

/// One Alertmanager given by URL: scheme, address and path prefix, with credentials in
/// the URL as `basic_auth`.
pub fn alertmanager_from_url(u: &str) -> Result<AlertmanagerConfig, String> {
    let example = "write it like http://127.0.0.1:9093";
    let url = url::Url::parse(u).map_err(|e| format!("{u:?} is not a URL ({e}); {example}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "{u:?}: the scheme must be http or https; {example}"
        ));
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("{u:?} names no host; {example}"));
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{u:?}: an Alertmanager URL takes no query or fragment; {example}"
        ));
    }
    let address = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let mut am = AlertmanagerConfig::new();
    am.scheme = url.scheme().to_string();
    am.path_prefix = url.path().trim_end_matches('/').to_string();
    if !url.username().is_empty() || url.password().is_some() {
        let decode = ingest::scrape::proxy::percent_decode;
        am.auth = Some(Auth::Basic {
            username: decode(url.username()),
            password: url
                .password()
                .map(|p| ingest::scrape::config::Secret::Inline(decode(p))),
        });
    }
    am.static_configs.push(TargetGroup {
        targets: vec![address],
        labels: BTreeMap::new(),
    });
    Ok(am)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingest::scrape::config::Secret;

    fn parse(yaml: &str) -> Result<NotifierConfig, ConfigError> {
        NotifierConfig::from_prometheus_yaml(yaml, "prometheus.yml", Path::new("/etc/prom"))
    }

    fn err(yaml: &str) -> String {
        parse(yaml).expect_err("should be refused").to_string()
    }

    #[test]
    fn defaults_follow_prometheus() {
        let cfg =
            parse("alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['am:9093']\n")
                .unwrap();
        assert_eq!(cfg.queue_capacity, 10_000);
        assert_eq!(cfg.max_batch_size, 256);
        let am = &cfg.alertmanagers[0];
        assert_eq!(am.scheme, "http");
        assert_eq!(am.timeout, Duration::from_secs(10));
        assert_eq!(am.path_prefix, "");
        assert_eq!(am.alerts_path(), "/api/v2/alerts");
        assert_eq!(am.auth, None);
        assert_eq!(am.static_configs[0].targets, vec!["am:9093".to_string()]);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    }

    #[test]
    fn no_alerting_section_means_no_alertmanagers() {
        let cfg = parse(
            "global:\n  scrape_interval: 15s\n  external_labels: {dc: eu}\nscrape_configs: []\n",
        )
        .unwrap();
        assert!(cfg.alertmanagers.is_empty());
        assert_eq!(
            cfg.external_labels.get("dc").map(String::as_str),
            Some("eu")
        );
        assert!(parse("").unwrap().alertmanagers.is_empty());
    }

    #[test]
    fn full_section_parses() {
        let cfg = parse(
            r#"
global:
  external_labels:
    cluster: local
alerting:
  alert_relabel_configs:
  - source_labels: [severity]
    regex: debug
    action: drop
  alertmanagers:
  - scheme: https
    path_prefix: /am/
    timeout: 3s
    api_version: v2
    basic_auth:
      username: alice
      password_file: secrets/pw
    tls_config:
      ca_file: ca.pem
      cert_file: /abs/client.pem
      key_file: client.key
      insecure_skip_verify: true
    static_configs:
    - targets: [a:9093, b:9093]
      labels: {team: x}
    relabel_configs:
    - source_labels: [__address__]
      regex: b:.*
      action: drop
    alert_relabel_configs:
    - target_label: via
      replacement: am
  - authorization:
      credentials: token
    static_configs:
    - targets: [c:9093]
"#,
        )
        .unwrap();
        assert_eq!(cfg.external_labels.len(), 1);
        assert_eq!(cfg.alert_relabel_configs.len(), 1);
        let a = &cfg.alertmanagers[0];
        assert_eq!(a.scheme, "https");
        assert_eq!(a.timeout, Duration::from_secs(3));
        assert_eq!(a.alerts_path(), "/am/api/v2/alerts");
        assert_eq!(
            a.auth,
            Some(Auth::Basic {
                username: "alice".into(),
                password: Some(Secret::File("/etc/prom/secrets/pw".into())),
            })
        );
        assert_eq!(a.tls.ca, Some(Secret::File("/etc/prom/ca.pem".into())));
        assert_eq!(a.tls.cert, Some(Secret::File("/abs/client.pem".into())));
        assert!(a.tls.insecure_skip_verify);
        assert_eq!(a.relabel_configs.len(), 1);
        assert_eq!(a.alert_relabel_configs.len(), 1);
        assert_eq!(a.static_configs[0].labels.get("team").unwrap(), "x");
        let b = &cfg.alertmanagers[1];
        assert_eq!(
            b.auth,
            Some(Auth::Authorization {
                kind: "Bearer".into(),
                credentials: Secret::Inline("token".into()),
            })
        );
    }

    #[test]
    fn api_v1_is_refused_with_prometheus_words() {
        let e = err("alerting:\n  alertmanagers:\n  - api_version: v1\n");
        assert!(
            e.starts_with("prometheus.yml:3:5: alerting.alertmanagers[0]: expected Alertmanager api version to be one of [v2] but got v1; "),
            "{e}"
        );
        assert!(e.contains("set api_version: v2"), "{e}");
        let e = err("alerting:\n  alertmanagers:\n  - api_version: v3\n");
        assert!(e.contains("to be one of [v2] but got v3"), "{e}");
    }

    #[test]
    fn bad_input_is_refused_precisely() {
        let cases: &[(&str, &str)] = &[
            (
                "alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['http://am:9093']\n",
                "prometheus.yml: alerting.alertmanagers[0]: \"http://am:9093\" is not a valid hostname",
            ),
            (
                "alerting:\n  alertmanagers:\n  - timeout: 10\n",
                "prometheus.yml:3:5: alerting.alertmanagers[0]: not a valid duration string: \"10\"",
            ),
            (
                "alerting:\n  alertmanagers:\n  - static_config: []\n",
                "prometheus.yml:3:5: alerting.alertmanagers[0]: unknown field `static_config`",
            ),
            (
                "alerting:\n  alertmanager: []\n",
                "prometheus.yml:2:3: alerting: unknown field `alertmanager`, expected `alert_relabel_configs` or `alertmanagers`",
            ),
            (
                "alerting:\n  alertmanagers:\n  - basic_auth: {username: a}\n    authorization: {credentials: b}\n",
                "prometheus.yml: alerting.alertmanagers[0]: at most one of basic_auth, bearer_token & bearer_token_file must be configured",
            ),
            (
                "alerting:\n  alertmanagers:\n  - authorization: {type: Basic}\n",
                "alerting.alertmanagers[0]: authorization type cannot be set to \"basic\", use \"basic_auth\" instead",
            ),
            (
                "alerting:\n  alertmanagers:\n  - tls_config: {cert_file: c.pem}\n",
                "alerting.alertmanagers[0]: tls_config needs both a client certificate and its key, or neither",
            ),
            (
                "alerting:\n  alertmanagers:\n  - relabel_configs:\n    -\n",
                "prometheus.yml: empty or null Alertmanager target relabeling rule",
            ),
            (
                "alerting:\n  alertmanagers:\n  - alert_relabel_configs: [null]\n",
                "prometheus.yml: empty or null Alertmanager alert relabeling rule",
            ),
            (
                "alerting:\n  alert_relabel_configs:\n  - null\n",
                "prometheus.yml: empty or null alert relabeling rule",
            ),
            (
                "alerting:\n  alert_relabel_configs:\n  - action: hashmod\n    target_label: x\n",
                "relabel configuration for hashmod requires non-zero modulus",
            ),
            (
                "alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: [a:1]\n      labels: {0bad: x}\n",
                "alerting.alertmanagers[0]: \"0bad\" is not a valid label name",
            ),
            (
                "global:\n  external_labels: {bad-name: x}\n",
                "\"bad-name\" is not a valid label name in external_labels",
            ),
            ("alerting: [1]\n", "prometheus.yml:1:"),
        ];
        for (yaml, want) in cases {
            let e = err(yaml);
            assert!(e.contains(want), "{yaml}\n got: {e}\nwant: {want}");
        }
    }

    #[test]
    fn urls_are_allowed_where_relabeling_may_fix_them() {
        let cfg = parse(
            "alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['http://am:9093']\n    relabel_configs:\n    - source_labels: [__address__]\n      regex: 'http://(.*)'\n      target_label: __address__\n",
        )
        .unwrap();
        assert_eq!(cfg.alertmanagers[0].relabel_configs.len(), 1);
    }

    #[test]
    fn ignored_settings_warn() {
        let cfg = parse(
            "alerting:\n  alertmanagers:\n  - dns_sd_configs: [{names: [am.example]}]\n    sigv4: {region: x}\n    follow_redirects: false\n    scheme: ftp\n",
        )
        .unwrap();
        let w = cfg.warnings.join("\n");
        for f in [
            "\"dns_sd_configs\"",
            "\"sigv4\"",
            "\"follow_redirects\"",
            "scheme \"ftp\"",
        ] {
            assert!(w.contains(f), "{f} missing in {w}");
        }
        assert!(w.starts_with("alerting.alertmanagers[0]: "), "{w}");
    }

    #[test]
    fn path_prefix_is_cleaned_like_go() {
        let mut am = AlertmanagerConfig::new();
        for (prefix, want) in [
            ("", "/api/v2/alerts"),
            ("/", "/api/v2/alerts"),
            ("am", "/am/api/v2/alerts"),
            ("/a//b/", "/a/b/api/v2/alerts"),
            ("/a/./b/../c", "/a/c/api/v2/alerts"),
        ] {
            am.path_prefix = prefix.into();
            assert_eq!(am.alerts_path(), want, "{prefix}");
        }
    }

    #[test]
    fn toml_urls_convert() {
        let t: TomlAlertingConfig = toml::from_str(
            "alertmanagers = ['http://127.0.0.1:9093', 'https://al%40ice:p%3Aw@am.example/prefix/', 'http://[::1]:9093']\ntimeout = '2s'\n",
        )
        .unwrap();
        let cfg = t.to_config().unwrap();
        let a = &cfg.alertmanagers[0];
        assert_eq!(a.scheme, "http");
        assert_eq!(
            a.static_configs[0].targets,
            vec!["127.0.0.1:9093".to_string()]
        );
        assert_eq!(a.alerts_path(), "/api/v2/alerts");
        assert_eq!(a.timeout, Duration::from_secs(2));
        let b = &cfg.alertmanagers[1];
        assert_eq!(b.scheme, "https");
        assert_eq!(b.static_configs[0].targets, vec!["am.example".to_string()]);
        assert_eq!(b.alerts_path(), "/prefix/api/v2/alerts");
        assert_eq!(
            b.auth,
            Some(Auth::Basic {
                username: "al@ice".into(),
                password: Some(Secret::Inline("p:w".into())),
            })
        );
        assert_eq!(
            cfg.alertmanagers[2].static_configs[0].targets,
            vec!["[::1]:9093".to_string()]
        );
    }

    #[test]
    fn bad_toml_urls_are_refused() {
        for (u, want) in [
            (
                "127.0.0.1:9093",
                "[alerting] alertmanagers: \"127.0.0.1:9093\"",
            ),
            ("ftp://am:9093", "the scheme must be http or https"),
            ("http://am:9093/?x=1", "takes no query or fragment"),
            ("not a url", "is not a URL"),
        ] {
            let t = TomlAlertingConfig {
                alertmanagers: vec![u.into()],
                timeout: None,
            };
            let e = t.to_config().unwrap_err().to_string();
            assert!(e.contains(want), "{u}: {e}");
            assert!(
                e.contains("write it like http://127.0.0.1:9093"),
                "{u}: {e}"
            );
        }
        let t = TomlAlertingConfig {
            alertmanagers: vec![],
            timeout: Some("soon".into()),
        };
        assert_eq!(
            t.to_config().unwrap_err().to_string(),
            "[alerting] timeout: not a valid duration string: \"soon\""
        );
    }
}
