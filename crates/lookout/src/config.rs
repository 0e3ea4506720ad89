//! Lookout's configuration: one TOML file, layered under environment variables and flags.
//!
//! Precedence is defaults < file < `LOOKOUT_*` environment < command-line flags. clap already
//! resolves flag-over-environment, so [`ServeArgs`](crate::cli::ServeArgs) carries `Option`s
//! that override whatever the file said. The file is found at `--config`, `$LOOKOUT_CONFIG`,
//! `./lookout.toml`, then the user config dir (`~/.config/lookout/lookout.toml`); unknown keys
//! are errors, so a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub otlp: OtlpSection,
    pub traces: TracesSection,
    pub metrics: MetricsSection,
    pub wal: WalSection,
    pub sandbox: SandboxSection,
    /// `[scrape]`: Prometheus scrape jobs for people without a prometheus.yml.
    pub scrape: ingest::scrape::TomlScrapeConfig,
    /// `[rules]`: rule files, their evaluation interval and Alertmanagers, for people
    /// without a prometheus.yml (or in addition to its `rule_files`).
    pub rules: rules::config::TomlRulesConfig,
}

/// `[sandbox]`: how sandboxes are told where Lookout is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSection {
    pub otel: SandboxOtelSection,
}

/// `[sandbox.otel]`: extra variable names for apps that read their own instead of the SDK's
/// (the seeds' `infra.toml` convention); the standard `OTEL_*` variables are always set too.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxOtelSection {
    /// Also gets the OTLP endpoint, e.g. `"APP_OTLP_ENDPOINT"`.
    pub endpoint_var: Option<String>,
    /// Also gets the namespace (`<project>-slot-<N>`), e.g. `"APP_NAMESPACE"`.
    pub namespace_var: Option<String>,
}

/// `[server]`: where Lookout listens and keeps its data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub data_dir: Option<PathBuf>,
    pub http_addr: SocketAddr,
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    /// Also listen for OTLP on the Docker bridge's gateway address (`docker0`), on the same
    /// ports, when the OTLP addresses are loopback and that interface exists.
    pub docker_bridge: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: None,
            http_addr: "127.0.0.1:46686".parse().expect("valid literal"),
            otlp_grpc_addr: "127.0.0.1:4317".parse().expect("valid literal"),
            otlp_http_addr: "127.0.0.1:4318".parse().expect("valid literal"),
            docker_bridge: true,
        }
    }
}

/// `[otlp]`: receiver limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpSection {
    /// Largest request body accepted, after decompression (`"16MiB"` or a byte count).
    pub max_body_size: ByteSize,
    /// Memory all requests being decoded and written may hold at once; past it receivers
    /// answer 429/UNAVAILABLE with Retry-After instead of growing.
    pub max_inflight_size: ByteSize,
}

impl Default for OtlpSection {
    fn default() -> Self {
        OtlpSection {
            max_body_size: ByteSize(16 << 20),
            max_inflight_size: ByteSize(256 << 20),
        }
    }
}

/// `[traces]`: the span store.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesSection {
    /// Blocks older than this are deleted (`"7d"`).
    pub retention: HumanDuration,
    /// Oldest blocks are deleted while all blocks together are larger than this.
    pub max_size: Option<ByteSize>,
    /// The in-memory head is written out as a block past this many spans...
    pub head_max_spans: usize,
    /// ...or when its oldest span arrived this long ago.
    pub head_max_age: HumanDuration,
}

impl Default for TracesSection {
    fn default() -> Self {
        TracesSection {
            retention: HumanDuration(Duration::from_secs(7 * 24 * 3600)),
            max_size: None,
            head_max_spans: 1_000_000,
            head_max_age: HumanDuration(Duration::from_secs(15 * 60)),
        }
    }
}

/// `[metrics]`: the time-series database.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Data older than this, relative to the newest sample, is deleted (`"15d"`, as
    /// Prometheus's `--storage.tsdb.retention.time` defaults to).
    pub retention: HumanDuration,
    /// Oldest blocks are deleted while all blocks together are larger than this.
    pub max_size: Option<ByteSize>,
    /// How far behind a series' newest sample a sample may still arrive (Prometheus's
    /// `out_of_order_time_window`); `"0s"` rejects every out-of-order sample.
    pub out_of_order_window: HumanDuration,
    /// Largest remote_write request body, compressed or not.
    pub max_write_size: ByteSize,
    /// A `prometheus.yml` whose scrape configs Lookout runs (relative paths are relative to
    /// this file's directory); `--prometheus-config` overrides it.
    pub prometheus_config: Option<PathBuf>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            retention: HumanDuration(Duration::from_secs(15 * 24 * 3600)),
            max_size: None,
            out_of_order_window: HumanDuration(Duration::ZERO),
            max_write_size: ByteSize(ingest::remote_write::DEFAULT_MAX_REQUEST_BYTES as u64),
            prometheus_config: None,
        }
    }
}

/// `[wal]`: durability policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalSection {
    /// `"always"` (group commit: an acknowledged write is on disk), `"interval"` (fsync every
    /// `fsync_interval`; a crash loses at most that much), or `"never"`.
    pub fsync: FsyncMode,
    pub fsync_interval: HumanDuration,
    pub segment_size: ByteSize,
}

impl Default for WalSection {
    fn default() -> Self {
        WalSection {
            fsync: FsyncMode::Always,
            fsync_interval: HumanDuration(Duration::from_millis(200)),
            segment_size: ByteSize(64 << 20),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FsyncMode {
    Always,
    Interval,
    Never,
}

impl WalSection {
    pub fn options(&self) -> wal::WalOptions {
        wal::WalOptions {
            segment_bytes: self.segment_size.0,
            fsync: match self.fsync {
                FsyncMode::Always => wal::FsyncPolicy::Always,
                FsyncMode::Interval => wal::FsyncPolicy::Interval(self.fsync_interval.0),
                FsyncMode::Never => wal::FsyncPolicy::Never,
            },
        }
    }
}

/// A duration written like Prometheus writes them: `30s`, `15m`, `7d`, `1h30m`, `2w`, `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses `1h30m`, `7d`, `500ms`: a sequence of integer-and-unit pairs (ms, s, m, h, d, w, y).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. \"30s\", \"15m\", \"7d\"");
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let millis_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(millis_per)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(Duration::from_millis(total))
}

/// A size: a byte count, or a number with `KB`/`MB`/`GB`/`TB` (powers of 1000) or
/// `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), e.g. `"16MiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `"16MiB"`, `"1GB"`, `"512"`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?}: expected e.g. \"512MiB\", \"10GB\" or a byte count");
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let mult: u64 = match t[digits..].trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Where the config file is, if anywhere: `--config`, `$LOOKOUT_CONFIG` (both handled by
/// clap into `explicit`), `./lookout.toml`, then the user config dir.
pub fn find_config_file(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let local = PathBuf::from("lookout.toml");
    if local.is_file() {
        return Some(local);
    }
    let user = dirs::config_dir()?.join("lookout").join("lookout.toml");
    user.is_file().then_some(user)
}

/// Reads and parses a config file; errors name the file and, for syntax errors, the line.
pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// Parses config text.
pub fn parse(text: &str) -> anyhow::Result<Config> {
    match toml::from_str::<Config>(text) {
        Ok(c) => Ok(c),
        // toml's message already carries line, column and a caret excerpt.
        Err(e) => bail!("{}", e.to_string().trim_end()),
    }
}

/// The default data dir: `$XDG_DATA_HOME/lookout` (usually `~/.local/share/lookout`).
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    match dirs::data_dir() {
        Some(d) => Ok(d.join("lookout")),
        None => bail!(
            "cannot find a data directory (no HOME?); pass --data-dir or set LOOKOUT_DATA_DIR"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_section() {
        let c = parse("[scrape]\ninterval = \"5s\"\n[[scrape.jobs]]\nname = \"app\"\ntargets = [\"localhost:8080\"]\n").unwrap();
        let s = c.scrape.to_config().unwrap();
        assert_eq!(s.jobs[0].job_name, "app");
        assert_eq!(s.jobs[0].scrape_interval, Duration::from_secs(5));
        assert!(parse("[scrape]\nintervall = \"5s\"\n").is_err());
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.server.http_addr.port(), 46686);
        assert_eq!(c.server.otlp_grpc_addr.port(), 4317);
        assert_eq!(c.traces.retention.0, Duration::from_secs(7 * 86400));
        assert_eq!(c.wal.fsync, FsyncMode::Always);
    }

    #[test]
    fn full_file_parses() {
        let c = parse(
            r#"
            [server]
            data_dir = "/tmp/x"
            http_addr = "127.0.0.1:9999"
            [otlp]
            max_body_size = "1MiB"
            max_inflight_size = 1000
            [traces]
            retention = "2d"
            max_size = "10GB"
            head_max_spans = 5
            head_max_age = "1m30s"
            [wal]
            fsync = "interval"
            fsync_interval = "100ms"
            "#,
        )
        .unwrap();
        assert_eq!(c.server.http_addr.port(), 9999);
        assert_eq!(c.otlp.max_body_size.0, 1 << 20);
        assert_eq!(c.otlp.max_inflight_size.0, 1000);
        assert_eq!(c.traces.max_size, Some(ByteSize(10_000_000_000)));
        assert_eq!(c.traces.head_max_age.0, Duration::from_secs(90));
        assert_eq!(
            c.wal.options().fsync,
            wal::FsyncPolicy::Interval(Duration::from_millis(100))
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let err = parse("[traces]\nretenion = \"2d\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("retenion"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(parse("[traces]\nretention = \"2 days\"\n").is_err());
        assert!(parse("[otlp]\nmax_body_size = \"lots\"\n").is_err());
        assert!(parse("[server]\nhttp_addr = \"nowhere\"\n").is_err());
        assert!(parse("[wal]\nfsync = \"sometimes\"\n").is_err());
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("99999999999999999999y").is_err());
        assert_eq!(parse_size("2KiB").unwrap(), 2048);
        assert!(parse_size("-1").is_err());
    }
}
