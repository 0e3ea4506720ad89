//! Scrape configuration: Prometheus's own `prometheus.yml`, as it is, and the `[scrape]`
//! section of `lookout.toml` for people without one.
//!
//! Both end as one [`ScrapeConfig`]: defaults filled in, durations parsed, relabel rules
//! compiled, relative paths resolved against the file's directory, and validated the way
//! Prometheus validates (`scrape timeout greater than scrape interval`, duplicate job
//! names, …). Acted on: targets from `static_configs`, `file_sd_configs` and
//! `http_sd_configs`; relabeling; credentials, `tls_config`, `http_headers` (Prometheus's
//! reserved headers refused with its words), `follow_redirects` and the proxy settings
//! (`proxy_url`, `no_proxy`, `proxy_from_environment`, `proxy_connect_header`); the sample, label,
//! body-size and `target_limit` limits; `keep_dropped_targets`; `honor_labels`,
//! `honor_timestamps` and `track_timestamps_staleness`; `scrape_protocols` (the `Accept`
//! header, defaulting as Prometheus 3 does: protobuf first only with
//! `scrape_native_histograms`), `scrape_native_histograms` and
//! `always_scrape_classic_histograms` (2.x: `scrape_classic_histograms`). Job settings left
//! at 0 (or unset) inherit the `global` value (`sample_limit`, `target_limit`,
//! `keep_dropped_targets`, the protocol and histogram settings, …), as in Prometheus. One
//! default is Lookout's own: a job whose `sample_limit` neither it nor `global` sets gets
//! [`DEFAULT_SAMPLE_LIMIT`] (or `[scrape] sample_limit` from `lookout.toml`), so a target
//! exposing millions of series fails as one target instead of filling memory; an explicit
//! `sample_limit: 0` is still Prometheus's "no limit". `rule_files`, `alerting` and the
//! rule settings of `global` belong to the rules engine (the rules crate reads them). Parts
//! of `prometheus.yml` that Prometheus accepts and Lookout does not act on (`remote_write`,
//! the other service discoveries, oauth2, `enable_http2`, …) load with a warning naming
//! them, so the same file serves both; fields Prometheus itself would reject are errors
//! naming file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::relabel::RelabelConfig;

/// Why a scrape configuration was refused: one sentence naming the place and the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// YAML syntax or a field of the wrong shape, with file:line:column when known.
    #[error("{path}{location}: {message}")]
    Yaml {
        path: String,
        location: String,
        message: String,
    },
    /// A value Prometheus would also refuse.
    #[error("{0}")]
    Invalid(String),
}

/// Prometheus's default `scrape_interval`.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
/// Prometheus's default `scrape_timeout`.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Body size bound used when the configuration sets none: Prometheus has no default bound,
/// but a hostile or broken target must not make Lookout read without end.
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 256 << 20;
/// Samples per scrape (after metric relabeling) when neither the job nor `global` sets
/// `sample_limit`: Prometheus has no default limit, but a target that exposes ten million
/// series must fail with a clear error rather than cost gigabytes of memory. Generous:
/// a large node or kube-state-metrics exposes tens of thousands.
pub const DEFAULT_SAMPLE_LIMIT: usize = 1_000_000;

/// Where a job's `sample_limit` comes from; the error of a scrape past it says how to
/// raise it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleLimitFrom {
    /// The job's own `sample_limit`.
    Job,
    /// `global.sample_limit` (the job leaves it unset or 0).
    Global,
    /// `[scrape] sample_limit` of `lookout.toml` (neither the job nor `global` sets one).
    LookoutToml,
    /// [`DEFAULT_SAMPLE_LIMIT`] (nothing sets one).
    Default,
}

/// The whole scrape configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeConfig {
    /// Defaults and settings for all jobs.
    pub global: GlobalConfig,
    /// One entry per `scrape_configs` job, in file order.
    pub jobs: Vec<JobConfig>,
    /// Things the file asks for that Lookout does not act on, one sentence each; the caller
    /// logs them.
    pub warnings: Vec<String>,
}

/// The `global` section.
#[derive(Clone, Debug, PartialEq)]
pub struct GlobalConfig {
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    /// Not added to scraped series (Prometheus adds them only to data leaving it: remote
    /// write, federation, alerts); they seed the scrape offsets.
    pub external_labels: BTreeMap<String, String>,
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: DEFAULT_SCRAPE_INTERVAL,
            scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
            external_labels: BTreeMap::new(),
        }
    }
}

/// One group of targets sharing labels: a `static_configs` entry or one group of a file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetGroup {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels every target of the group gets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A `file_sd_configs` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct FileSdConfig {
    /// File patterns (a `*` glob in the last path element), absolute.
    pub files: Vec<PathBuf>,
    /// How often the files are re-read even when nothing seems changed.
    pub refresh_interval: Duration,
}

/// A secret given inline or by file (read at each scrape, as Prometheus does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    File(PathBuf),
}

/// `tls_config`: how `https` targets are verified and how Lookout identifies itself.
/// Without a CA the system's trust store is used; with one, only it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM CA certificates, inline (`ca`) or by file (`ca_file`).
    pub ca: Option<Secret>,
    /// PEM client certificate (`cert`/`cert_file`), with its key (`key`/`key_file`).
    pub cert: Option<Secret>,
    pub key: Option<Secret>,
    /// The name the server's certificate must carry, instead of the target's host.
    pub server_name: Option<String>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the *_ref and version fields are accepted, not acted on
pub struct RawTls {
    #[serde(default)]
    ca: Option<String>,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    ca_ref: Option<IgnoredAny>,
    #[serde(default)]
    cert: Option<String>,
    #[serde(default)]
    cert_file: Option<String>,
    #[serde(default)]
    cert_ref: Option<IgnoredAny>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    key_file: Option<String>,
    #[serde(default)]
    key_ref: Option<IgnoredAny>,
    #[serde(default)]
    server_name: Option<String>,
    #[serde(default)]
    insecure_skip_verify: Option<bool>,
    #[serde(default)]
    min_version: Option<IgnoredAny>,
    #[serde(default)]
    max_version: Option<IgnoredAny>,
}

impl RawTls {
    pub fn into_tls(self, dir: &Path, job: &str) -> Result<TlsConfig, String> {
        let pick = |what: &str, inline: Option<String>, file: Option<String>| match (inline, file) {
            (Some(_), Some(_)) => Err(format!(
                "job {job:?}: at most one of {what} and {what}_file must be configured"
            )),
            (Some(v), None) => Ok(Some(Secret::Inline(v))),
            (None, Some(f)) => Ok(Some(Secret::File(resolve(dir, &f)))),
            (None, None) => Ok(None),
        };
        let tls = TlsConfig {
            ca: pick("ca", self.ca, self.ca_file)?,
            cert: pick("cert", self.cert, self.cert_file)?,
            key: pick("key", self.key, self.key_file)?,
            server_name: self.server_name.filter(|s| !s.is_empty()),
            insecure_skip_verify: self.insecure_skip_verify.unwrap_or(false),
        };
        if tls.cert.is_some() != tls.key.is_some() {
            return Err(format!(
                "job {job:?}: tls_config needs both a client certificate and its key, or neither"
            ));
        }
        Ok(tls)
    }
}

/// `proxy_url`, `no_proxy`, `proxy_from_environment` and `proxy_connect_header`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    pub url: Option<String>,
    /// Comma-separated hosts, domains, IPs and CIDRs not to proxy (with `url` only).
    pub no_proxy: String,
    /// `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` from the environment.
    pub from_environment: bool,
    /// Headers of the `CONNECT` request that tunnels `https` targets.
    pub connect_headers: Vec<(String, Vec<String>)>,
}

/// One `http_headers` entry: a header name and its values (`values` and `secrets` inline,
/// `files` read at every request, trimmed), added in that order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpHeader {
    pub name: String,
    pub values: Vec<Secret>,
}

/// An `http_sd_configs` entry: a URL answering with JSON target groups, and the HTTP client
/// settings of the entry itself (as in Prometheus, not those of the job).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSdConfig {
    pub url: String,
    /// How often the URL is fetched; also the request timeout.
    pub refresh_interval: Duration,
    pub auth: Option<Auth>,
    pub tls: TlsConfig,
    pub follow_redirects: bool,
    pub http_headers: Vec<HttpHeader>,
    pub proxy: ProxyConfig,
}

/// The headers Prometheus refuses in `http_headers` (prometheus/common's `ReservedHeaders`),
/// canonical spelling.
const RESERVED_HEADERS: &[&str] = &[
    "Authorization",
    "Host",
    "Content-Encoding",
    "Content-Length",
    "Content-Type",
    "User-Agent",
    "Connection",
    "Keep-Alive",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Www-Authenticate",
    "Accept-Encoding",
    "X-Prometheus-Remote-Write-Version",
    "X-Prometheus-Remote-Read-Version",
    "X-Prometheus-Scrape-Timeout-Seconds",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amz-Content-Sha256",
];

/// Go's `http.CanonicalHeaderKey`: `x-my-header` becomes `X-My-Header`; a name with a byte
/// that is not a token character is returned as it is.
pub fn canonical_header_key(name: &str) -> String {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(token) {
        return name.to_string();
    }
    let mut upper = true;
    name.bytes()
        .map(|b| {
            let c = if upper {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            };
            upper = b == b'-';
            c as char
        })
        .collect()
}

/// How requests to a job's targets authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `basic_auth`.
    Basic {
        username: String,
        password: Option<Secret>,
    },
    /// `authorization` (or the older `bearer_token`/`bearer_token_file`): `<type> <credentials>`.
    Authorization { kind: String, credentials: Secret },
}

/// One scrape job, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct JobConfig {
    pub job_name: String,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
    pub metrics_path: String,
    pub scheme: String,
    /// URL query parameters.
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub static_configs: Vec<TargetGroup>,
    pub file_sd_configs: Vec<FileSdConfig>,
    pub relabel_configs: Vec<RelabelConfig>,
    pub metric_relabel_configs: Vec<RelabelConfig>,
    pub auth: Option<Auth>,
    /// TLS settings for `https` targets.
    pub tls: TlsConfig,
    /// Bytes of (uncompressed) body read at most; past it the scrape fails.
    pub body_size_limit: u64,
    /// Samples (after metric relabeling) per scrape; 0 is no limit.
    pub sample_limit: usize,
    /// Which setting `sample_limit` comes from.
    pub sample_limit_from: SampleLimitFrom,
    /// Labels per series; 0 is no limit.
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
    /// Ask for gzip.
    pub enable_compression: bool,
    /// Targets (after relabeling) the pool may have; past it every scrape of the pool
    /// fails with `target_limit exceeded`. 0 is no limit.
    pub target_limit: usize,
    /// Dropped targets kept for `/api/v1/targets`; 0 keeps all (they are counted anyway).
    pub keep_dropped_targets: usize,
    /// Follow 3xx redirects as Go's HTTP client does (at most 10 requests).
    pub follow_redirects: bool,
    /// `http_headers`: extra headers sent with every request, in order.
    pub http_headers: Vec<HttpHeader>,
    /// Staleness markers also for series exposed with their own timestamp.
    pub track_timestamps_staleness: bool,
    /// `http_sd_configs`.
    pub http_sd_configs: Vec<HttpSdConfig>,
    /// The proxy requests go through.
    pub proxy: ProxyConfig,
    /// `scrape_protocols`: the formats asked for, most wanted first (the `Accept` header).
    pub scrape_protocols: Vec<ScrapeProtocol>,
    /// `scrape_native_histograms`: store the native histograms of protobuf scrapes (else
    /// their classic buckets only); also puts `PrometheusProto` first in the default
    /// `scrape_protocols`.
    pub scrape_native_histograms: bool,
    /// `always_scrape_classic_histograms` (2.x: `scrape_classic_histograms`): a histogram
    /// exposed both ways is stored as its classic series too.
    pub always_scrape_classic_histograms: bool,
}

impl JobConfig {
    /// The `lastError` of a scrape with more than `sample_limit` samples: Prometheus's
    /// words, the limit and where to raise it.
    pub fn sample_limit_error(&self) -> String {
        let (n, job) = (self.sample_limit, &self.job_name);
        let fix = match self.sample_limit_from {
            SampleLimitFrom::Job => {
                format!("the sample_limit of job {job:?} is {n}: raise it, or set it to 0 for no limit")
            }
            SampleLimitFrom::Global => format!(
                "the global sample_limit is {n}: raise it, or set sample_limit on job {job:?} (0 for no limit)"
            ),
            SampleLimitFrom::LookoutToml => format!(
                "sample_limit in lookout.toml's [scrape] section is {n}: raise it there, or set sample_limit on job {job:?} (0 for no limit)"
            ),
            SampleLimitFrom::Default => format!(
                "Lookout's default sample_limit is {n}: set sample_limit on job {job:?} or in lookout.toml's [scrape] section to raise it (0 for no limit)"
            ),
        };
        format!("sample limit exceeded (more than {n} samples after metric relabeling; {fix})")
    }

    /// A job with Prometheus's defaults (and Lookout's sample limit) and no targets.
    pub fn new(job_name: &str, global: &GlobalConfig) -> JobConfig {
        JobConfig {
            job_name: job_name.to_string(),
            scrape_interval: global.scrape_interval,
            scrape_timeout: global.scrape_timeout.min(global.scrape_interval),
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            params: BTreeMap::new(),
            honor_labels: false,
            honor_timestamps: true,
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            auth: None,
            tls: TlsConfig::default(),
            body_size_limit: DEFAULT_BODY_SIZE_LIMIT,
            sample_limit: DEFAULT_SAMPLE_LIMIT,
            sample_limit_from: SampleLimitFrom::Default,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            enable_compression: true,
            target_limit: 0,
            keep_dropped_targets: 0,
            follow_redirects: true,
            http_headers: Vec::new(),
            track_timestamps_staleness: false,
            http_sd_configs: Vec::new(),
            proxy: ProxyConfig::default(),
            scrape_protocols: DEFAULT_SCRAPE_PROTOCOLS.to_vec(),
            scrape_native_histograms: false,
            always_scrape_classic_histograms: false,
        }
    }
}

/// One format a scrape may ask for, by the name `scrape_protocols` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScrapeProtocol {
    /// Varint-delimited `io.prometheus.client.MetricFamily` protobuf messages.
    PrometheusProto,
    OpenMetricsText1_0_0,
    OpenMetricsText0_0_1,
    PrometheusText1_0_0,
    PrometheusText0_0_4,
}

/// Every protocol, in the order Prometheus lists them when refusing an unknown one.
const ALL_SCRAPE_PROTOCOLS: [ScrapeProtocol; 5] = [
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::PrometheusProto,
    ScrapeProtocol::PrometheusText0_0_4,
    ScrapeProtocol::PrometheusText1_0_0,
];

/// Prometheus 3's `DefaultScrapeProtocols`: what a job asks for unless it or `global` says.
pub const DEFAULT_SCRAPE_PROTOCOLS: [ScrapeProtocol; 4] = [
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::PrometheusText1_0_0,
    ScrapeProtocol::PrometheusText0_0_4,
];

/// Prometheus 3's `DefaultProtoFirstScrapeProtocols`: the default of a job with
/// `scrape_native_histograms` (and of Prometheus 2.x with its native-histograms feature).
pub const PROTO_FIRST_SCRAPE_PROTOCOLS: [ScrapeProtocol; 5] = [
    ScrapeProtocol::PrometheusProto,
    ScrapeProtocol::OpenMetricsText1_0_0,
    ScrapeProtocol::OpenMetricsText0_0_1,
    ScrapeProtocol::PrometheusText1_0_0,
    ScrapeProtocol::PrometheusText0_0_4,
];

impl ScrapeProtocol {
    /// The name `scrape_protocols` uses (case-sensitive, as in Prometheus).
    pub fn name(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => "PrometheusProto",
            ScrapeProtocol::OpenMetricsText1_0_0 => "OpenMetricsText1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "OpenMetricsText0.0.1",
            ScrapeProtocol::PrometheusText1_0_0 => "PrometheusText1.0.0",
            ScrapeProtocol::PrometheusText0_0_4 => "PrometheusText0.0.4",
        }
    }

    /// The media type (with parameters) the `Accept` header names it by. The 1.0.0 text
    /// formats also say that UTF-8 metric names may come unescaped (`escaping=allow-utf-8`,
    /// Prometheus 3's default `metric_name_escaping_scheme`): both text parsers read
    /// quoted names.
    pub fn accept_value(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
            }
            ScrapeProtocol::OpenMetricsText1_0_0 => {
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
            }
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0;escaping=allow-utf-8",
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
        }
    }

    fn parse(name: &str) -> Result<ScrapeProtocol, String> {
        ALL_SCRAPE_PROTOCOLS
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = ALL_SCRAPE_PROTOCOLS.iter().map(|p| p.name()).collect();
                format!(
                    "unknown scrape protocol {name}, supported: [{}]",
                    names.join(" ")
                )
            })
    }
}

/// Prometheus's `acceptHeader`: each protocol with a q-value one tenth lower than the one
/// before it (from 0.6, or higher for more protocols than the five known), then `*/*`.
pub fn accept_header(protocols: &[ScrapeProtocol]) -> String {
    let mut weight = ALL_SCRAPE_PROTOCOLS.len() + 1;
    let mut out = String::new();
    for p in protocols {
        out.push_str(p.accept_value());
        out.push_str(&format!(";q=0.{weight},"));
        weight = weight.saturating_sub(1);
    }
    out.push_str(&format!("*/*;q=0.{weight}"));
    out
}

/// Checks a `scrape_protocols` list as Prometheus's `validateAcceptScrapeProtocols` does.
fn parse_scrape_protocols(names: &[String]) -> Result<Vec<ScrapeProtocol>, String> {
    if names.is_empty() {
        return Err("scrape_protocols cannot be empty".into());
    }
    let mut out: Vec<ScrapeProtocol> = Vec::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        if names[..i].iter().any(|m| m.eq_ignore_ascii_case(n)) {
            return Err(format!(
                "duplicated protocol in scrape_protocols, got [{}]",
                names.join(" ")
            ));
        }
        out.push(ScrapeProtocol::parse(n).map_err(|e| format!("scrape_protocols: {e}"))?);
    }
    Ok(out)
}

/// The job name of Lookout's self-scrape.
pub const SELF_SCRAPE_JOB: &str = "lookout";

impl ScrapeConfig {
    /// A configuration with no jobs.
    pub fn empty() -> ScrapeConfig {
        ScrapeConfig {
            global: GlobalConfig::default(),
            jobs: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Reads and validates a `prometheus.yml`.
    pub fn load_prometheus_file(path: &Path) -> Result<ScrapeConfig, ConfigError> {
        const MAX_CONFIG_BYTES: u64 = 64 << 20;
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::Invalid(format!(
                "{} is larger than {MAX_CONFIG_BYTES} bytes; is it the right file?",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        ScrapeConfig::parse_prometheus_yaml(&text, &path.display().to_string(), dir)
    }

    /// Parses `prometheus.yml` text; `name` names it in errors, `dir` anchors relative paths.
    pub fn parse_prometheus_yaml(
        text: &str,
        name: &str,
        dir: &Path,
    ) -> Result<ScrapeConfig, ConfigError> {
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| yaml_error(name, &e))?
        };
        raw.into_config(dir)
            .map_err(|m| ConfigError::Invalid(format!("{name}: {m}")))
    }

    /// Adds `other`'s jobs (and warnings) after this configuration's; a job name both
    /// define is an error, as two jobs of one name are in one file.
    pub fn extend(&mut self, other: ScrapeConfig) -> Result<(), ConfigError> {
        for job in other.jobs {
            if self.has_job(&job.job_name) {
                return Err(ConfigError::Invalid(format!(
                    "found multiple scrape configs with job name {:?} (in prometheus.yml and [scrape]); rename one",
                    job.job_name
                )));
            }
            self.jobs.push(job);
        }
        self.warnings.extend(other.warnings);
        Ok(())
    }

    /// Whether a job named `name` exists.
    pub fn has_job(&self, name: &str) -> bool {
        self.jobs.iter().any(|j| j.job_name == name)
    }

    /// Gives every job whose `sample_limit` nothing sets (neither the job nor `global`)
    /// `limit` instead of [`DEFAULT_SAMPLE_LIMIT`]: `[scrape] sample_limit` of
    /// `lookout.toml`, which applies to `prometheus.yml`'s jobs too.
    pub fn set_default_sample_limit(&mut self, limit: usize) {
        for job in &mut self.jobs {
            if matches!(
                job.sample_limit_from,
                SampleLimitFrom::Default | SampleLimitFrom::LookoutToml
            ) {
                job.sample_limit = limit;
                job.sample_limit_from = SampleLimitFrom::LookoutToml;
            }
        }
    }

    /// Adds Lookout's self-scrape job (`job="lookout"`, `http://<addr>/metrics`) unless the
    /// configuration already has a job of that name.
    pub fn ensure_self_scrape(&mut self, addr: &str) {
        if !self.has_job(SELF_SCRAPE_JOB) {
            self.jobs.push(self_scrape_job(addr, &self.global));
        }
    }
}

/// The default job that scrapes Lookout's own `/metrics` at `addr` (`host:port`).
pub fn self_scrape_job(addr: &str, global: &GlobalConfig) -> JobConfig {
    let mut job = JobConfig::new(SELF_SCRAPE_JOB, global);
    job.static_configs.push(TargetGroup {
        targets: vec![addr.to_string()],
        labels: BTreeMap::new(),
    });
    job
}

pub fn yaml_error(name: &str, e: &serde_yaml::Error) -> ConfigError {
    let location = e
        .location()
        .map(|l| format!(":{}:{}", l.line(), l.column()))
        .unwrap_or_default();
    let mut message = e.to_string();
    // serde_yaml appends " at line X column Y"; the location is already in front.
    if let Some(i) = message.find(" at line ") {
        message.truncate(i);
    }
    ConfigError::Yaml {
        path: name.to_string(),
        location,
        message,
    }
}

pub use model::duration::{format_duration, parse_duration};

/// Parses a byte size as Prometheus's `body_size_limit` (`0`, `1024`, `10KB`, `100MiB`, base 2).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a valid size: {s:?}; write it like 100MB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "KiB" => 1 << 10,
        "MB" | "MiB" => 1 << 20,
        "GB" | "GiB" => 1 << 30,
        "TB" | "TiB" => 1 << 40,
        _ => return Err(format!("not a valid size: {s:?}; write it like 100MB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is out of range"))
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn de_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        N(u64),
        S(String),
    }
    match S::deserialize(d)? {
        S::N(n) => Ok(Some(n)),
        S::S(s) => parse_size(&s).map(Some).map_err(serde::de::Error::custom),
    }
}

/// Top level of `prometheus.yml`. Sections Lookout does not act on are accepted and named
/// in a warning; anything else is an error, as in Prometheus.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    global: Option<RawGlobal>,
    #[serde(default)]
    scrape_configs: Option<Vec<RawJob>>,
    /// The rules crate reads it; accepted here so the file loads.
    #[serde(default)]
    #[allow(dead_code)]
    rule_files: Option<IgnoredAny>,
    #[serde(default)]
    scrape_config_files: Option<IgnoredAny>,
    /// The notifier reads it; accepted here so the file loads.
    #[serde(default)]
    #[allow(dead_code)]
    alerting: Option<IgnoredAny>,
    #[serde(default)]
    remote_write: Option<IgnoredAny>,
    #[serde(default)]
    remote_read: Option<IgnoredAny>,
    #[serde(default)]
    storage: Option<IgnoredAny>,
    #[serde(default)]
    tracing: Option<IgnoredAny>,
    #[serde(default)]
    otlp: Option<IgnoredAny>,
    #[serde(default)]
    runtime: Option<IgnoredAny>,
}

/// The `global` section; the settings after `target_limit` (but `keep_dropped_targets`,
/// `scrape_protocols`, `scrape_native_histograms` and `always_scrape_classic_histograms`) are
/// accepted so Prometheus's files load, and not acted on.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawGlobal {
    #[serde(default, deserialize_with = "de_duration")]
    scrape_interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    scrape_timeout: Option<Duration>,
    #[serde(default)]
    external_labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "de_size")]
    body_size_limit: Option<u64>,
    #[serde(default)]
    sample_limit: Option<usize>,
    #[serde(default)]
    label_limit: Option<usize>,
    #[serde(default)]
    label_name_length_limit: Option<usize>,
    #[serde(default)]
    label_value_length_limit: Option<usize>,
    #[serde(default)]
    target_limit: Option<usize>,
    #[serde(default)]
    evaluation_interval: Option<IgnoredAny>,
    #[serde(default)]
    rule_query_offset: Option<IgnoredAny>,
    #[serde(default)]
    query_log_file: Option<IgnoredAny>,
    #[serde(default)]
    scrape_failure_log_file: Option<IgnoredAny>,
    #[serde(default)]
    scrape_protocols: Option<Vec<String>>,
    #[serde(default)]
    scrape_native_histograms: Option<bool>,
    #[serde(default)]
    keep_dropped_targets: Option<usize>,
    #[serde(default)]
    metric_name_validation_scheme: Option<IgnoredAny>,
    #[serde(default)]
    metric_name_escaping_scheme: Option<IgnoredAny>,
    #[serde(default)]
    always_scrape_classic_histograms: Option<bool>,
    #[serde(default)]
    convert_classic_histograms_to_nhcb: Option<IgnoredAny>,
    #[serde(default)]
    extra_scrape_metrics: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    #[serde(default)]
    username: String,
    #[serde(default)]
    username_file: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorization {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    credentials: Option<String>,
    #[serde(default)]
    credentials_file: Option<String>,
}

/// One `http_headers` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeader {
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
}

/// An `http_sd_configs` entry: URL, refresh interval and its own HTTP client settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpSd {
    #[serde(default)]
    url: String,
    #[serde(default, deserialize_with = "de_duration")]
    refresh_interval: Option<Duration>,
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
    follow_redirects: Option<bool>,
    #[serde(default)]
    http_headers: Option<BTreeMap<String, RawHeader>>,
    #[serde(default)]
    oauth2: Option<IgnoredAny>,
    #[serde(default)]
    proxy_url: Option<String>,
    #[serde(default)]
    no_proxy: Option<String>,
    #[serde(default)]
    proxy_from_environment: Option<bool>,
    #[serde(default)]
    proxy_connect_header: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    enable_http2: Option<IgnoredAny>,
}

impl RawHttpSd {
    /// The client settings Lookout does not act on that this entry sets.
    fn ignored_fields(&self) -> Vec<&'static str> {
        [
            ("oauth2", self.oauth2.is_some()),
            ("enable_http2", self.enable_http2.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| n)
        .collect()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileSd {
    #[serde(default)]
    files: Vec<String>,
    #[serde(default, deserialize_with = "de_duration")]
    refresh_interval: Option<Duration>,
}

/// Declares the raw job struct with the fields Lookout acts on plus the ones it accepts and
/// ignores (each listed once, so the warning can name them).
macro_rules! raw_job {
    ($($ignored:ident),* $(,)?) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawJob {
            #[serde(default)]
            job_name: String,
            #[serde(default, deserialize_with = "de_duration")]
            scrape_interval: Option<Duration>,
            #[serde(default, deserialize_with = "de_duration")]
            scrape_timeout: Option<Duration>,
            #[serde(default)]
            metrics_path: Option<String>,
            #[serde(default)]
            scheme: Option<String>,
            #[serde(default)]
            params: Option<BTreeMap<String, Vec<String>>>,
            #[serde(default)]
            honor_labels: Option<bool>,
            #[serde(default)]
            honor_timestamps: Option<bool>,
            #[serde(default)]
            static_configs: Option<Vec<TargetGroup>>,
            #[serde(default)]
            file_sd_configs: Option<Vec<RawFileSd>>,
            #[serde(default)]
            relabel_configs: Option<Vec<RelabelConfig>>,
            #[serde(default)]
            metric_relabel_configs: Option<Vec<RelabelConfig>>,
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
            #[serde(default, deserialize_with = "de_size")]
            body_size_limit: Option<u64>,
            #[serde(default)]
            sample_limit: Option<usize>,
            #[serde(default)]
            label_limit: Option<usize>,
            #[serde(default)]
            label_name_length_limit: Option<usize>,
            #[serde(default)]
            label_value_length_limit: Option<usize>,
            #[serde(default)]
            enable_compression: Option<bool>,
            #[serde(default)]
            target_limit: Option<usize>,
            #[serde(default)]
            keep_dropped_targets: Option<usize>,
            #[serde(default)]
            follow_redirects: Option<bool>,
            #[serde(default)]
            http_headers: Option<BTreeMap<String, RawHeader>>,
            #[serde(default)]
            track_timestamps_staleness: Option<bool>,
            #[serde(default)]
            http_sd_configs: Option<Vec<RawHttpSd>>,
            #[serde(default)]
            proxy_url: Option<String>,
            #[serde(default)]
            no_proxy: Option<String>,
            #[serde(default)]
            proxy_from_environment: Option<bool>,
            #[serde(default)]
            proxy_connect_header: Option<BTreeMap<String, Vec<String>>>,
            #[serde(default)]
            scrape_protocols: Option<Vec<String>>,
            #[serde(default)]
            scrape_native_histograms: Option<bool>,
            #[serde(default)]
            always_scrape_classic_histograms: Option<bool>,
            #[serde(default)]
            scrape_classic_histograms: Option<bool>,
            $(
                #[serde(default)]
                $ignored: Option<IgnoredAny>,
            )*
        }

        impl RawJob {
            /// Names of the accepted-but-ignored fields this job sets.
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

raw_job!(
    fallback_scrape_protocol,
    scrape_failure_log_file,
    convert_classic_histograms_to_nhcb,
    native_histogram_bucket_limit,
    native_histogram_min_bucket_factor,
    metric_name_validation_scheme,
    metric_name_escaping_scheme,
    oauth2,
    enable_http2,
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

/// The authentication of a job or a discovery entry, checked as prometheus/common checks it.
pub fn build_auth(
    basic_auth: Option<RawBasicAuth>,
    authorization: Option<RawAuthorization>,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    dir: &Path,
    name: &str,
) -> Result<Option<Auth>, String> {
    let mut auth = None;
    let bearer_set = bearer_token.is_some() || bearer_token_file.is_some();
    if bearer_token.is_some() && bearer_token_file.is_some() {
        return Err(format!(
            "job {name:?}: at most one of bearer_token & bearer_token_file must be configured"
        ));
    }
    if authorization.is_some() && bearer_set {
        return Err(format!(
            "job {name:?}: authorization is not compatible with bearer_token & bearer_token_file"
        ));
    }
    if basic_auth.is_some() && (bearer_set || authorization.is_some()) {
        return Err(format!(
                "job {name:?}: at most one of basic_auth, bearer_token & bearer_token_file must be configured"
            ));
    }
    if let Some(b) = basic_auth {
        if b.username_file.is_some() {
            return Err(format!(
                "job {name:?}: basic_auth username_file is not supported; put the username inline"
            ));
        }
        if b.password.is_some() && b.password_file.is_some() {
            return Err(format!(
                    "job {name:?}: at most one of basic_auth password & password_file must be configured"
                ));
        }
        let password = match (b.password, b.password_file) {
            (Some(p), _) => Some(Secret::Inline(p)),
            (_, Some(f)) => Some(Secret::File(resolve(dir, &f))),
            _ => None,
        };
        auth = Some(Auth::Basic {
            username: b.username,
            password,
        });
    }
    if let Some(a) = authorization {
        let kind = a.kind.unwrap_or_else(|| "Bearer".into());
        if kind.eq_ignore_ascii_case("basic") {
            return Err(format!(
                    "job {name:?}: authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                ));
        }
        if a.credentials.is_some() && a.credentials_file.is_some() {
            return Err(format!(
                    "job {name:?}: at most one of authorization credentials & credentials_file must be configured"
                ));
        }
        let credentials = match (a.credentials, a.credentials_file) {
            (Some(c), _) => Secret::Inline(c),
            (_, Some(f)) => Secret::File(resolve(dir, &f)),
            _ => Secret::Inline(String::new()),
        };
        auth = Some(Auth::Authorization { kind, credentials });
    }
    if let Some(t) = bearer_token {
        auth = Some(Auth::Authorization {
            kind: "Bearer".into(),
            credentials: Secret::Inline(t),
        });
    }
    if let Some(f) = bearer_token_file {
        auth = Some(Auth::Authorization {
            kind: "Bearer".into(),
            credentials: Secret::File(resolve(dir, &f)),
        });
    }
    Ok(auth)
}

/// The proxy settings, checked as prometheus/common's `ProxyConfig.Validate`.
fn build_proxy(
    url: Option<String>,
    no_proxy: Option<String>,
    from_environment: Option<bool>,
    connect_header: Option<BTreeMap<String, Vec<String>>>,
    name: &str,
) -> Result<ProxyConfig, String> {
    let url = url.filter(|u| !u.is_empty());
    let no_proxy = no_proxy.unwrap_or_default();
    let from_environment = from_environment.unwrap_or(false);
    let connect_headers: Vec<(String, Vec<String>)> =
        connect_header.unwrap_or_default().into_iter().collect();
    let fail = |m: &str| Err(format!("job {name:?}: {m}"));
    if !connect_headers.is_empty() && !from_environment && url.is_none() {
        return fail("if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured");
    }
    if from_environment && url.is_some() {
        return fail("if proxy_from_environment is configured, proxy_url must not be configured");
    }
    if from_environment && !no_proxy.is_empty() {
        return fail("if proxy_from_environment is configured, no_proxy must not be configured");
    }
    if url.is_none() && !no_proxy.is_empty() {
        return fail("if no_proxy is configured, proxy_url must also be configured");
    }
    if let Some(u) = &url {
        url::Url::parse(u).map_err(|e| format!("job {name:?}: proxy_url: parse {u:?}: {e}"))?;
    }
    Ok(ProxyConfig {
        url,
        no_proxy,
        from_environment,
        connect_headers,
    })
}

/// `http_headers`, checked as prometheus/common's `Headers.Validate`.
fn build_headers(
    raw: Option<BTreeMap<String, RawHeader>>,
    dir: &Path,
    name: &str,
) -> Result<Vec<HttpHeader>, String> {
    let mut out = Vec::new();
    for (header, h) in raw.unwrap_or_default() {
        let canonical = canonical_header_key(&header);
        if RESERVED_HEADERS.contains(&canonical.as_str()) {
            return Err(format!(
                "job {name:?}: setting header {canonical:?} is not allowed"
            ));
        }
        let values = h
            .values
            .into_iter()
            .chain(h.secrets)
            .map(Secret::Inline)
            .chain(h.files.iter().map(|f| Secret::File(resolve(dir, f))))
            .collect();
        out.push(HttpHeader {
            name: header,
            values,
        });
    }
    Ok(out)
}

/// Checks an `http_sd_configs` URL as Prometheus's `SDConfig.UnmarshalYAML` does: present,
/// `http` or `https`, with a host (Go's `url.Parse` finds none in `http:///x` or `http:x`).
fn check_sd_url(u: &str) -> Result<(), String> {
    if u.is_empty() {
        return Err("URL is missing".into());
    }
    let (scheme, rest) = u.split_once(':').unwrap_or(("", u));
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err("URL scheme must be 'http' or 'https'".into());
    }
    let authority = rest
        .strip_prefix("//")
        .map(|a| a.split(['/', '?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err("host is missing in URL".into());
    }
    url::Url::parse(u).map_err(|e| format!("parse {u:?}: {e}"))?;
    Ok(())
}

impl RawHttpSd {
    fn into_sd(
        self,
        dir: &Path,
        job: &str,
        warnings: &mut Vec<String>,
    ) -> Result<HttpSdConfig, String> {
        for f in self.ignored_fields() {
            warnings.push(format!(
                "job {job:?}: the scrape manager ignores {f:?} in http_sd_configs"
            ));
        }
        check_sd_url(&self.url).map_err(|e| format!("job {job:?}: http_sd_configs: {e}"))?;
        let auth = build_auth(
            self.basic_auth,
            self.authorization,
            self.bearer_token,
            self.bearer_token_file,
            dir,
            job,
        )?;
        let tls = match self.tls_config {
            Some(t) => t.into_tls(dir, job)?,
            None => TlsConfig::default(),
        };
        Ok(HttpSdConfig {
            url: self.url,
            refresh_interval: self.refresh_interval.unwrap_or(Duration::from_secs(60)),
            auth,
            tls,
            follow_redirects: self.follow_redirects.unwrap_or(true),
            http_headers: build_headers(self.http_headers, dir, job)?,
            proxy: build_proxy(
                self.proxy_url,
                self.no_proxy,
                self.proxy_from_environment,
                self.proxy_connect_header,
                job,
            )?,
        })
    }
}

fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Checks a `static_configs` target as Prometheus's `CheckTargetAddress` does.
pub fn check_target_address(addr: &str) -> Result<(), String> {
    if addr.is_empty() || addr.contains('/') {
        return Err(format!(
            "{addr:?} is not a valid hostname; give targets as host:port without scheme or path"
        ));
    }
    Ok(())
}

fn check_group(g: &TargetGroup, job: &str) -> Result<(), String> {
    for t in &g.targets {
        check_target_address(t).map_err(|e| format!("job {job:?}: {e}"))?;
    }
    for name in g.labels.keys() {
        if !model::labels::is_valid_label_name(name) {
            return Err(format!("job {job:?}: {name:?} is not a valid label name"));
        }
    }
    Ok(())
}

/// Checks a `file_sd_configs` file pattern as Prometheus's `patFileSDName` does.
fn check_file_pattern(p: &str) -> Result<(), String> {
    let ok_ext = [".json", ".yml", ".yaml", ".JSON", ".YML", ".YAML"]
        .iter()
        .any(|e| p.ends_with(e));
    let stars_ok = match p.find('*') {
        None => true,
        Some(i) => !p[i..].contains('/') && p[..i].find('*').is_none(),
    };
    if !ok_ext || !stars_ok || p.matches('*').count() > 1 {
        return Err(format!(
            "path name {p:?} is not valid for file discovery; use a .json, .yml or .yaml file, with at most one * in the file name"
        ));
    }
    Ok(())
}

impl RawConfig {
    fn into_config(self, dir: &Path) -> Result<ScrapeConfig, String> {
        let mut warnings = Vec::new();
        for (name, set) in [
            ("scrape_config_files", self.scrape_config_files.is_some()),
            ("remote_write", self.remote_write.is_some()),
            ("remote_read", self.remote_read.is_some()),
            ("storage", self.storage.is_some()),
            ("tracing", self.tracing.is_some()),
            ("otlp", self.otlp.is_some()),
            ("runtime", self.runtime.is_some()),
        ] {
            if set {
                warnings.push(format!(
                    "the scrape manager ignores the top-level section {name:?} of the Prometheus configuration"
                ));
            }
        }
        let g = self.global.unwrap_or_default();
        let interval = g.scrape_interval.unwrap_or(DEFAULT_SCRAPE_INTERVAL);
        let timeout = match g.scrape_timeout {
            Some(t) => t,
            None => DEFAULT_SCRAPE_TIMEOUT.min(interval),
        };
        if timeout > interval {
            return Err("global scrape timeout greater than scrape interval".into());
        }
        if interval.is_zero() {
            return Err("global scrape interval cannot be 0".into());
        }
        if let Some(p) = &g.scrape_protocols {
            parse_scrape_protocols(p).map_err(|e| format!("{e} for global config"))?;
        }
        let external_labels = g.external_labels.clone().unwrap_or_default();
        for name in external_labels.keys() {
            if !model::labels::is_valid_label_name(name) {
                return Err(format!(
                    "{name:?} is not a valid label name in external_labels"
                ));
            }
        }
        let global = GlobalConfig {
            scrape_interval: interval,
            scrape_timeout: timeout,
            external_labels,
        };
        let mut jobs: Vec<JobConfig> = Vec::new();
        for raw in self.scrape_configs.unwrap_or_default() {
            let job = raw.into_job(&global, &g, dir, &mut warnings)?;
            if jobs.iter().any(|j| j.job_name == job.job_name) {
                return Err(format!(
                    "found multiple scrape configs with job name {:?}",
                    job.job_name
                ));
            }
            jobs.push(job);
        }
        Ok(ScrapeConfig {
            global,
            jobs,
            warnings,
        })
    }
}

impl RawJob {
    fn into_job(
        self,
        global: &GlobalConfig,
        g: &RawGlobal,
        dir: &Path,
        warnings: &mut Vec<String>,
    ) -> Result<JobConfig, String> {
        let name = self.job_name.clone();
        if name.is_empty() {
            return Err("job_name is empty".into());
        }
        for f in self.ignored_fields() {
            warnings.push(format!("job {name:?}: the scrape manager ignores {f:?}"));
        }
        let mut job = JobConfig::new(&name, global);
        job.scrape_interval = self.scrape_interval.unwrap_or(global.scrape_interval);
        if job.scrape_interval.is_zero() {
            return Err(format!("scrape interval cannot be 0 for job {name:?}"));
        }
        job.scrape_timeout = match self.scrape_timeout {
            Some(t) => t,
            None if global.scrape_timeout > job.scrape_interval => job.scrape_interval,
            None => global.scrape_timeout,
        };
        if job.scrape_timeout > job.scrape_interval {
            return Err(format!(
                "scrape timeout greater than scrape interval for scrape config with job name {name:?}"
            ));
        }
        if let Some(p) = self.metrics_path {
            if !p.starts_with('/') {
                return Err(format!(
                    "job {name:?}: metrics_path {p:?} must start with /"
                ));
            }
            job.metrics_path = p;
        }
        if let Some(s) = self.scheme {
            // Prometheus accepts any scheme here and fails at scrape time; so do we.
            if s != "http" && s != "https" {
                warnings.push(format!(
                    "job {name:?}: scheme {s:?} is not supported (http and https are); its targets will report an error"
                ));
            }
            job.scheme = s;
        }
        job.params = self.params.unwrap_or_default();
        job.honor_labels = self.honor_labels.unwrap_or(false);
        job.honor_timestamps = self.honor_timestamps.unwrap_or(true);
        job.static_configs = self.static_configs.unwrap_or_default();
        for group in &job.static_configs {
            check_group(group, &name)?;
        }
        for sd in self.file_sd_configs.unwrap_or_default() {
            if sd.files.is_empty() {
                return Err(format!("job {name:?}: file_sd_configs entry has no files"));
            }
            for f in &sd.files {
                check_file_pattern(f).map_err(|e| format!("job {name:?}: {e}"))?;
            }
            job.file_sd_configs.push(FileSdConfig {
                files: sd.files.iter().map(|f| resolve(dir, f)).collect(),
                refresh_interval: sd.refresh_interval.unwrap_or(Duration::from_secs(300)),
            });
        }
        job.relabel_configs = self.relabel_configs.unwrap_or_default();
        job.metric_relabel_configs = self.metric_relabel_configs.unwrap_or_default();

        job.auth = build_auth(
            self.basic_auth,
            self.authorization,
            self.bearer_token,
            self.bearer_token_file,
            dir,
            &name,
        )?;
        if let Some(t) = self.tls_config {
            job.tls = t.into_tls(dir, &name)?;
        }
        job.body_size_limit = match self.body_size_limit.or(g.body_size_limit) {
            Some(0) | None => DEFAULT_BODY_SIZE_LIMIT,
            Some(n) => n,
        };
        // As Prometheus: a job's 0 (or nothing) takes the global limit; an explicit 0
        // with no global limit is no limit. Lookout's default fills in only for nothing.
        (job.sample_limit, job.sample_limit_from) = match (self.sample_limit, g.sample_limit) {
            (Some(n), _) if n > 0 => (n, SampleLimitFrom::Job),
            (_, Some(n)) => (n, SampleLimitFrom::Global),
            (Some(_), None) => (0, SampleLimitFrom::Job),
            (None, None) => (DEFAULT_SAMPLE_LIMIT, SampleLimitFrom::Default),
        };
        job.label_limit = self.label_limit.or(g.label_limit).unwrap_or(0);
        job.label_name_length_limit = self
            .label_name_length_limit
            .or(g.label_name_length_limit)
            .unwrap_or(0);
        job.label_value_length_limit = self
            .label_value_length_limit
            .or(g.label_value_length_limit)
            .unwrap_or(0);
        job.enable_compression = self.enable_compression.unwrap_or(true);
        job.target_limit = match self.target_limit {
            Some(0) | None => g.target_limit.unwrap_or(0),
            Some(n) => n,
        };
        job.keep_dropped_targets = match self.keep_dropped_targets {
            Some(0) | None => g.keep_dropped_targets.unwrap_or(0),
            Some(n) => n,
        };
        job.follow_redirects = self.follow_redirects.unwrap_or(true);
        job.http_headers = build_headers(self.http_headers, dir, &name)?;
        job.track_timestamps_staleness = self.track_timestamps_staleness.unwrap_or(false);
        job.proxy = build_proxy(
            self.proxy_url,
            self.no_proxy,
            self.proxy_from_environment,
            self.proxy_connect_header,
            &name,
        )?;
        for sd in self.http_sd_configs.unwrap_or_default() {
            job.http_sd_configs.push(sd.into_sd(dir, &name, warnings)?);
        }
        job.scrape_native_histograms = self
            .scrape_native_histograms
            .or(g.scrape_native_histograms)
            .unwrap_or(false);
        job.scrape_protocols = match (&self.scrape_protocols, &g.scrape_protocols) {
            (Some(p), _) => parse_scrape_protocols(p)
                .map_err(|e| format!("{e} for scrape config with job name {name:?}"))?,
            (None, Some(p)) => {
                parse_scrape_protocols(p).map_err(|e| format!("{e} for global config"))?
            }
            (None, None) if job.scrape_native_histograms => PROTO_FIRST_SCRAPE_PROTOCOLS.to_vec(),
            (None, None) => DEFAULT_SCRAPE_PROTOCOLS.to_vec(),
        };
        if self.always_scrape_classic_histograms.is_some()
            && self.scrape_classic_histograms.is_some()
        {
            return Err(format!(
                "job {name:?}: set always_scrape_classic_histograms (Prometheus 3's name) or scrape_classic_histograms (2.x's), not both"
            ));
        }
        job.always_scrape_classic_histograms = self
            .always_scrape_classic_histograms
            .or(self.scrape_classic_histograms)
            .or(g.always_scrape_classic_histograms)
            .unwrap_or(false);
        Ok(job)
    }
}

/// The `[scrape]` section of `lookout.toml`:
///
/// ```toml
/// [scrape]
/// interval = "15s"
/// sample_limit = 2000000   # per scrape, for jobs that set none; 0 for no limit
/// [[scrape.jobs]]
/// name = "app"
/// targets = ["localhost:8080"]
/// labels = { env = "dev" }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlScrapeConfig {
    /// Default scrape interval (Prometheus duration, e.g. `15s`); Prometheus's `1m` if unset.
    #[serde(default)]
    pub interval: Option<String>,
    /// Default scrape timeout; `10s` (or the interval, if shorter) if unset.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Whether Lookout scrapes its own `/metrics` as job `lookout` (default true).
    #[serde(default)]
    pub self_scrape: Option<bool>,
    /// Samples per scrape for every job (here or in `prometheus.yml`) whose
    /// `sample_limit` neither it nor `global` sets; [`DEFAULT_SAMPLE_LIMIT`] if unset, 0 for
    /// no limit.
    #[serde(default)]
    pub sample_limit: Option<usize>,
    /// The jobs.
    #[serde(default)]
    pub jobs: Vec<TomlScrapeJob>,
}

/// One `[[scrape.jobs]]` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TomlScrapeJob {
    /// The `job` label.
    pub name: String,
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub metrics_path: Option<String>,
    #[serde(default)]
    pub scheme: Option<String>,
    /// Labels added to every target of the job.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub honor_labels: Option<bool>,
    /// Samples per scrape; 0 for no limit.
    #[serde(default)]
    pub sample_limit: Option<usize>,
}

impl TomlScrapeConfig {
    /// Whether Lookout scrapes its own `/metrics` (`self_scrape`, default true).
    pub fn self_scrape_enabled(&self) -> bool {
        self.self_scrape.unwrap_or(true)
    }

    /// Whether the section asks for nothing.
    pub fn is_empty(&self) -> bool {
        self == &TomlScrapeConfig::default()
    }

    /// The same configuration a `prometheus.yml` with these jobs would give.
    pub fn to_config(&self) -> Result<ScrapeConfig, ConfigError> {
        let dur = |what: &str, s: &Option<String>| -> Result<Option<Duration>, ConfigError> {
            s.as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| ConfigError::Invalid(format!("[scrape] {what}: {e}")))
        };
        let raw = RawConfig {
            global: Some(RawGlobal {
                scrape_interval: dur("interval", &self.interval)?,
                scrape_timeout: dur("timeout", &self.timeout)?,
                ..RawGlobal::default()
            }),
            scrape_configs: Some(
                self.jobs
                    .iter()
                    .map(|j| {
                        let what = format!("job {:?}", j.name);
                        Ok(RawJob {
                            job_name: j.name.clone(),
                            scrape_interval: dur(&what, &j.interval)?,
                            scrape_timeout: dur(&what, &j.timeout)?,
                            metrics_path: j.metrics_path.clone(),
                            scheme: j.scheme.clone(),
                            honor_labels: j.honor_labels,
                            sample_limit: j.sample_limit,
                            static_configs: Some(vec![TargetGroup {
                                targets: j.targets.clone(),
                                labels: j.labels.clone(),
                            }]),
                            ..RawJob::default()
                        })
                    })
                    .collect::<Result<Vec<_>, ConfigError>>()?,
            ),
            ..RawConfig::default()
        };
        let mut cfg = raw
            .into_config(Path::new("."))
            .map_err(|m| ConfigError::Invalid(format!("[scrape]: {m}")))?;
        self.apply_defaults(&mut cfg);
        Ok(cfg)
    }

    /// Applies the section's defaults for all jobs (`sample_limit`) to `cfg`, which may
    /// hold `prometheus.yml`'s jobs and the self-scrape job too.
    pub fn apply_defaults(&self, cfg: &mut ScrapeConfig) {
        if let Some(n) = self.sample_limit {
            cfg.set_default_sample_limit(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ScrapeConfig, ConfigError> {
        ScrapeConfig::parse_prometheus_yaml(yaml, "prometheus.yml", Path::new("/etc/prometheus"))
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100MB").unwrap(), 100 << 20);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn defaults_follow_prometheus() {
        let c = parse(
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['h:1']\n",
        )
        .unwrap();
        let j = &c.jobs[0];
        assert_eq!(j.scrape_interval, Duration::from_secs(60));
        assert_eq!(j.scrape_timeout, Duration::from_secs(10));
        assert_eq!(j.metrics_path, "/metrics");
        assert_eq!(j.scheme, "http");
        assert!(j.honor_timestamps && !j.honor_labels);
        // A job interval shorter than the global timeout caps the timeout.
        let c = parse("global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n").unwrap();
        assert_eq!(c.jobs[0].scrape_timeout, Duration::from_secs(5));
        assert_eq!(c.jobs[0].scrape_interval, Duration::from_secs(5));
        // A global interval shorter than the default timeout caps the global timeout.
        let c = parse("global:\n  scrape_interval: 2s\n").unwrap();
        assert_eq!(c.global.scrape_timeout, Duration::from_secs(2));
        assert!(parse("").unwrap().jobs.is_empty());
    }

    #[test]
    fn validation_like_prometheus() {
        let cases = [
            (
                "global:\n  scrape_interval: 5s\n  scrape_timeout: 10s\n",
                "global scrape timeout greater than scrape interval",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 6s\n",
                "scrape timeout greater than scrape interval for scrape config with job name \"a\"",
            ),
            (
                "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
                "found multiple scrape configs with job name \"a\"",
            ),
            ("scrape_configs:\n  - scrape_interval: 5s\n", "job_name is empty"),
            (
                "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['http://h:1/x']\n",
                "is not a valid hostname",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p, password_file: f}\n",
                "at most one of basic_auth password & password_file",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    bearer_token: t\n    basic_auth: {username: u}\n",
                "at most one of basic_auth, bearer_token",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    tls_config: {ca: x, ca_file: y}\n",
                "at most one of ca and ca_file must be configured",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    tls_config: {cert_file: c}\n",
                "needs both a client certificate and its key",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    tls_config: {ca_fil: c}\n",
                "unknown field `ca_fil`",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    authorization: {type: Basic}\n",
                "use \"basic_auth\" instead",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['x.txt']\n",
                "is not valid for file discovery",
            ),
            (
                "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['h:1']\n        labels: {'bad-name': x}\n",
                "\"bad-name\" is not a valid label name",
            ),
        ];
        for (yaml, want) in cases {
            let err = parse(yaml).unwrap_err().to_string();
            assert!(err.contains(want), "{yaml}: {err}");
            assert!(err.starts_with("prometheus.yml"), "{err}");
        }
    }

    #[test]
    fn yaml_errors_name_file_and_line() {
        let err = parse("global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("prometheus.yml:5:"), "{err}");
        assert!(err.contains("unknown field `scrape_intervall`"), "{err}");
        let err = parse("global:\n  scrape_interval: fast\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("prometheus.yml:2:"), "{err}");
        assert!(
            err.contains("not a valid duration string: \"fast\""),
            "{err}"
        );
        let err = parse("scrape_configs: [\n").unwrap_err().to_string();
        assert!(err.starts_with("prometheus.yml:"), "{err}");
        let err = parse("scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n        target_label: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("prometheus.yml:4:"), "{err}");
        assert!(err.contains("requires non-zero modulus"), "{err}");
    }

    #[test]
    fn scrape_protocols_and_histogram_settings() {
        use ScrapeProtocol::*;
        let c = parse(
            "scrape_configs:\n  - job_name: plain\n  - job_name: native\n    scrape_native_histograms: true\n  - job_name: listed\n    scrape_native_histograms: true\n    scrape_protocols: [PrometheusText0.0.4, PrometheusProto]\n    scrape_classic_histograms: true\n",
        )
        .unwrap();
        let [plain, native, listed] = &c.jobs[..] else {
            panic!("{:?}", c.jobs)
        };
        assert_eq!(plain.scrape_protocols, DEFAULT_SCRAPE_PROTOCOLS);
        assert!(!plain.scrape_native_histograms && !plain.always_scrape_classic_histograms);
        assert_eq!(native.scrape_protocols, PROTO_FIRST_SCRAPE_PROTOCOLS);
        assert_eq!(
            listed.scrape_protocols,
            [PrometheusText0_0_4, PrometheusProto]
        );
        assert!(listed.always_scrape_classic_histograms && listed.scrape_native_histograms);
        // Prometheus 3's exact default Accept header, and the proto-first one.
        assert_eq!(
            accept_header(&plain.scrape_protocols),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
        assert_eq!(
            accept_header(&native.scrape_protocols),
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        );
        assert_eq!(
            accept_header(&[PrometheusProto]),
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,*/*;q=0.5"
        );
        // Global settings are inherited; a global protocol list wins over the native default.
        let c = parse(
            "global:\n  scrape_native_histograms: true\n  always_scrape_classic_histograms: true\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    always_scrape_classic_histograms: false\n",
        )
        .unwrap();
        assert_eq!(c.jobs[0].scrape_protocols, PROTO_FIRST_SCRAPE_PROTOCOLS);
        assert!(c.jobs[0].always_scrape_classic_histograms);
        assert!(!c.jobs[1].always_scrape_classic_histograms);
        let c = parse(
            "global:\n  scrape_native_histograms: true\n  scrape_protocols: [OpenMetricsText1.0.0]\nscrape_configs:\n  - job_name: a\n",
        )
        .unwrap();
        assert_eq!(c.jobs[0].scrape_protocols, [OpenMetricsText1_0_0]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // Refusals in Prometheus's words.
        for (yaml, want) in [
            ("scrape_configs:\n  - job_name: a\n    scrape_protocols: []\n", "scrape_protocols cannot be empty for scrape config with job name \"a\""),
            ("scrape_configs:\n  - job_name: a\n    scrape_protocols: [prometheusproto]\n", "scrape_protocols: unknown scrape protocol prometheusproto, supported: [OpenMetricsText0.0.1 OpenMetricsText1.0.0 PrometheusProto PrometheusText0.0.4 PrometheusText1.0.0] for scrape config with job name \"a\""),
            ("scrape_configs:\n  - job_name: a\n    scrape_protocols: [PrometheusProto, PrometheusProto]\n", "duplicated protocol in scrape_protocols, got [PrometheusProto PrometheusProto]"),
            ("global:\n  scrape_protocols: [Nope]\n", "unknown scrape protocol Nope"),
            ("scrape_configs:\n  - job_name: a\n    scrape_classic_histograms: true\n    always_scrape_classic_histograms: true\n", "not both"),
            ("scrape_configs:\n  - job_name: a\n    scrape_native_histograms: maybe\n", "invalid"),
        ] {
            let e = parse(yaml).err().unwrap_or_else(|| panic!("{yaml} loaded")).to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn accepted_but_ignored_fields_warn() {
        let c = parse(
            "rule_files: ['r.yml']\nalerting:\n  alertmanagers: []\nglobal:\n  evaluation_interval: 1m\nscrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n      - role: pod\n    oauth2: {client_id: c}\n",
        )
        .unwrap();
        let w = c.warnings.join("\n");
        // The rules engine acts on these, so the scrape manager says nothing of them.
        assert!(!w.contains("\"rule_files\""), "{w}");
        assert!(!w.contains("\"alerting\""), "{w}");
        assert!(
            w.contains("job \"k\": the scrape manager ignores \"kubernetes_sd_configs\""),
            "{w}"
        );
        assert!(w.contains("\"oauth2\""), "{w}");
    }

    #[test]
    fn newer_settings_parse_and_validate() {
        let c = parse(
            r#"
global:
  target_limit: 7
  keep_dropped_targets: 3
scrape_configs:
  - job_name: a
    follow_redirects: false
    track_timestamps_staleness: true
    http_headers:
      x-tenant: {values: [a], secrets: [s], files: [t.txt]}
    http_sd_configs:
      - url: 'https://sd.example/targets'
        authorization: {credentials_file: tok}
        http_headers: {X-Sd: {values: [1]}}
  - job_name: b
    target_limit: 2
    keep_dropped_targets: 0
"#,
        )
        .unwrap();
        let (a, b) = (&c.jobs[0], &c.jobs[1]);
        assert_eq!((a.target_limit, a.keep_dropped_targets), (7, 3));
        // 0 in a job means "inherit", as in Prometheus.
        assert_eq!((b.target_limit, b.keep_dropped_targets), (2, 3));
        assert!(!a.follow_redirects && b.follow_redirects);
        assert!(a.track_timestamps_staleness && !b.track_timestamps_staleness);
        assert_eq!(
            a.http_headers,
            vec![HttpHeader {
                name: "x-tenant".into(),
                values: vec![
                    Secret::Inline("a".into()),
                    Secret::Inline("s".into()),
                    Secret::File("/etc/prometheus/t.txt".into()),
                ],
            }]
        );
        let sd = &a.http_sd_configs[0];
        assert_eq!(sd.refresh_interval, Duration::from_secs(60));
        assert!(sd.follow_redirects);
        assert_eq!(
            sd.auth,
            Some(Auth::Authorization {
                kind: "Bearer".into(),
                credentials: Secret::File("/etc/prometheus/tok".into())
            })
        );
        assert_eq!(sd.http_headers[0].name, "X-Sd");
        let c = parse("scrape_configs:\n  - job_name: p\n    proxy_url: 'http://p:3128'\n    no_proxy: 'a.io,10.0.0.0/8'\n    proxy_connect_header: {X-A: [b]}\n").unwrap();
        assert_eq!(
            c.jobs[0].proxy,
            ProxyConfig {
                url: Some("http://p:3128".into()),
                no_proxy: "a.io,10.0.0.0/8".into(),
                from_environment: false,
                connect_headers: vec![("X-A".into(), vec!["b".into()])],
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        for (yaml, want) in [
            (
                "    http_headers: {authorization: {values: [x]}}\n",
                "setting header \"Authorization\" is not allowed",
            ),
            (
                "    http_headers: {x-prometheus-scrape-timeout-seconds: {values: [1]}}\n",
                "setting header \"X-Prometheus-Scrape-Timeout-Seconds\" is not allowed",
            ),
            (
                "    http_headers: {WWW-authenticate: {values: [1]}}\n",
                "setting header \"Www-Authenticate\" is not allowed",
            ),
            (
                "    http_headers: {X-A: {value: [1]}}\n",
                "unknown field `value`",
            ),
            (
                "    http_sd_configs: [{refresh_interval: 1s}]\n",
                "URL is missing",
            ),
            (
                "    http_sd_configs: [{url: 'ftp://h/x'}]\n",
                "URL scheme must be 'http' or 'https'",
            ),
            (
                "    http_sd_configs: [{url: 'http:///x'}]\n",
                "host is missing in URL",
            ),
            ("    target_limit: -1\n", "invalid type: integer `-1`"),
            ("    keep_dropped_targets: many\n", "invalid type"),
            ("    no_proxy: example.com\n", "if no_proxy is configured, proxy_url must also be configured"),
            ("    proxy_from_environment: true\n    proxy_url: 'http://p:1'\n", "if proxy_from_environment is configured, proxy_url must not be configured"),
            ("    proxy_from_environment: true\n    no_proxy: x\n", "if proxy_from_environment is configured, no_proxy must not be configured"),
            ("    proxy_connect_header: {X-A: [b]}\n", "if proxy_connect_header is configured, proxy_url or proxy_from_environment must also be configured"),
            ("    http_sd_configs: [{url: 'http://h/x', no_proxy: y}]\n", "if no_proxy is configured, proxy_url must also be configured"),
        ] {
            let err = parse(&format!("scrape_configs:\n  - job_name: j\n{yaml}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
        // oauth2 of a discovery entry is still ignored, with a warning.
        let c = parse("scrape_configs:\n  - job_name: j\n    http_sd_configs: [{url: 'http://h/x', oauth2: {client_id: c}}]\n").unwrap();
        assert!(
            c.warnings[0].contains("ignores \"oauth2\" in http_sd_configs"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn canonical_header_keys_like_go() {
        for (raw, want) in [
            ("x-tenant", "X-Tenant"),
            ("WWW-AUTHENTICATE", "Www-Authenticate"),
            ("accept", "Accept"),
            ("x--a", "X--A"),
            ("bad name", "bad name"),
        ] {
            assert_eq!(canonical_header_key(raw), want);
        }
    }

    #[test]
    fn full_job_parses() {
        let c = parse(
            r#"
global:
  scrape_interval: 15s
  external_labels: {cluster: dev}
  sample_limit: 100
scrape_configs:
  - job_name: app
    scrape_interval: 10s
    scrape_timeout: 2s
    metrics_path: /m
    scheme: http
    params: {module: [a, b]}
    honor_labels: true
    honor_timestamps: false
    static_configs:
      - targets: ['localhost:1', 'localhost:2']
        labels: {env: dev}
    file_sd_configs:
      - files: ['targets/*.json']
        refresh_interval: 30s
    relabel_configs:
      - source_labels: [__address__]
        target_label: addr
    metric_relabel_configs:
      - regex: 'go_.*'
        source_labels: [__name__]
        action: drop
    basic_auth:
      username: u
      password_file: secret.txt
    body_size_limit: 10MB
    label_limit: 30
"#,
        )
        .unwrap();
        let j = &c.jobs[0];
        assert_eq!(c.global.external_labels["cluster"], "dev");
        assert_eq!(j.scrape_timeout, Duration::from_secs(2));
        assert_eq!(j.metrics_path, "/m");
        assert_eq!(j.params["module"], vec!["a", "b"]);
        assert!(j.honor_labels && !j.honor_timestamps);
        assert_eq!(j.static_configs[0].targets.len(), 2);
        assert_eq!(
            j.file_sd_configs[0].files[0],
            PathBuf::from("/etc/prometheus/targets/*.json")
        );
        assert_eq!(
            j.file_sd_configs[0].refresh_interval,
            Duration::from_secs(30)
        );
        assert_eq!(j.relabel_configs.len(), 1);
        assert_eq!(j.metric_relabel_configs.len(), 1);
        assert_eq!(
            j.auth,
            Some(Auth::Basic {
                username: "u".into(),
                password: Some(Secret::File("/etc/prometheus/secret.txt".into()))
            })
        );
        assert_eq!(j.body_size_limit, 10 << 20);
        assert_eq!(j.sample_limit, 100);
        assert_eq!(j.label_limit, 30);
    }

    #[test]
    fn toml_section_converts() {
        let t: TomlScrapeConfig = toml::from_str(
            "interval = \"5s\"\n[[jobs]]\nname = \"app\"\ntargets = [\"localhost:9\"]\nlabels = { env = \"dev\" }\n",
        )
        .unwrap();
        let c = t.to_config().unwrap();
        assert_eq!(c.global.scrape_interval, Duration::from_secs(5));
        assert_eq!(c.global.scrape_timeout, Duration::from_secs(5));
        assert_eq!(c.jobs[0].job_name, "app");
        assert_eq!(c.jobs[0].static_configs[0].labels["env"], "dev");
        let t: TomlScrapeConfig =
            toml::from_str("[[jobs]]\nname = \"a\"\ninterval = \"1s\"\ntimeout = \"2s\"\n")
                .unwrap();
        let err = t.to_config().unwrap_err().to_string();
        assert!(
            err.contains("scrape timeout greater than scrape interval"),
            "{err}"
        );
        assert!(
            toml::from_str::<TomlScrapeConfig>("[[jobs]]\nname = \"a\"\ntarget = []\n").is_err()
        );
        assert!(t.self_scrape_enabled());
        let mut both = parse("scrape_configs:\n  - job_name: y\n").unwrap();
        both.extend(c.clone()).unwrap();
        assert_eq!(both.jobs.len(), 2);
        let err = both.extend(c).unwrap_err().to_string();
        assert!(
            err.contains("multiple scrape configs with job name \"app\""),
            "{err}"
        );
        let mut c = ScrapeConfig::empty();
        c.ensure_self_scrape("127.0.0.1:46686");
        c.ensure_self_scrape("127.0.0.1:46686");
        assert_eq!(c.jobs.len(), 1);
        assert_eq!(c.jobs[0].static_configs[0].targets, vec!["127.0.0.1:46686"]);
    }

    /// Lookout's default sample limit fills in only where nothing sets one; an explicit 0
    /// stays Prometheus's "no limit", and a job's 0 takes the global limit as in Prometheus.
    #[test]
    fn sample_limit_defaults() {
        let jobs = "scrape_configs:\n  - job_name: unset\n  - job_name: zero\n    sample_limit: 0\n  - job_name: own\n    sample_limit: 7\n";
        let limits = |c: &ScrapeConfig| -> Vec<(usize, SampleLimitFrom)> {
            c.jobs
                .iter()
                .map(|j| (j.sample_limit, j.sample_limit_from))
                .collect()
        };
        use SampleLimitFrom::*;
        let mut c = parse(jobs).unwrap();
        assert_eq!(
            limits(&c),
            [(DEFAULT_SAMPLE_LIMIT, Default), (0, Job), (7, Job)]
        );
        // `[scrape] sample_limit` replaces the default, here and for prometheus.yml's jobs.
        c.set_default_sample_limit(50);
        assert_eq!(limits(&c), [(50, LookoutToml), (0, Job), (7, Job)]);
        c.set_default_sample_limit(0);
        assert_eq!(limits(&c), [(0, LookoutToml), (0, Job), (7, Job)]);
        let g = parse(&format!("global:\n  sample_limit: 30\n{jobs}")).unwrap();
        assert_eq!(limits(&g), [(30, Global), (30, Global), (7, Job)]);
        let g = parse(&format!("global:\n  sample_limit: 0\n{jobs}")).unwrap();
        assert_eq!(limits(&g), [(0, Global), (0, Global), (7, Job)]);
        let mut self_scrape = ScrapeConfig::empty();
        self_scrape.ensure_self_scrape("127.0.0.1:46686");
        assert_eq!(limits(&self_scrape), [(DEFAULT_SAMPLE_LIMIT, Default)]);

        let t: TomlScrapeConfig = toml::from_str(
            "sample_limit = 20\n[[jobs]]\nname = \"a\"\n[[jobs]]\nname = \"b\"\nsample_limit = 0\n",
        )
        .unwrap();
        assert_eq!(
            limits(&t.to_config().unwrap()),
            [(20, LookoutToml), (0, Job)]
        );

        // The error names the limit and where to raise it.
        let e = c.jobs[2].sample_limit_error();
        assert_eq!(e, "sample limit exceeded (more than 7 samples after metric relabeling; the sample_limit of job \"own\" is 7: raise it, or set it to 0 for no limit)");
        let e = parse(jobs).unwrap().jobs[0].sample_limit_error();
        assert!(e.starts_with("sample limit exceeded (more than 1000000 samples after metric relabeling; Lookout's default sample_limit is 1000000: set sample_limit on job \"unset\" or in lookout.toml's [scrape] section"), "{e}");
        assert!(c.jobs[0]
            .sample_limit_error()
            .contains("lookout.toml's [scrape] section is 0"));
        assert!(g.jobs[0]
            .sample_limit_error()
            .contains("the global sample_limit is 0"));
    }
}
