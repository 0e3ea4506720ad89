//! One scrape loop per target: fetch, parse, label, append, report.
//!
//! The request asks for the job's `scrape_protocols` (the `Accept` header); the response's
//! `Content-Type` picks the parser: [`super::parse`] for the text formats, [`super::proto`]
//! for protobuf, whose native histograms go to the sink beside the float samples (the path
//! remote_write and OTLP use). Both parsers feed the same cache, labelling, limits and
//! metadata.
//!
//! Each scrape is one `append` to the sink: the samples, the staleness markers of series
//! that vanished since the previous scrape (float markers, for histogram series too, as in
//! Prometheus), and the five synthetic series (`up`, `scrape_duration_seconds`,
//! `scrape_samples_scraped`, `scrape_samples_post_metric_relabeling`, `scrape_series_added`;
//! a native histogram counts as one sample). A scrape that fails anywhere (HTTP, timeout, a
//! syntax error, an invalid native histogram, `sample_limit`, an invalid label set) stores none
//! of its samples: only staleness markers for all the previous scrape's series, and the
//! synthetic series with `up` 0, as Prometheus does. The failure becomes the target's
//! `lastError`.
//!
//! A text or OpenMetrics body is parsed as it arrives, window by window ([`Windows`]), and
//! the scrape stops reading at its first error: a target that sends ten million series
//! costs what its first `sample_limit` samples cost (Lookout's default limit, or the
//! job's), not a whole body held and parsed before the limit is checked. A protobuf body is
//! read whole, up to `body_size_limit` (one delimited `MetricFamily` may hold every series
//! of the target, so reading it message by message would not bound it any better), and then
//! walked one `Metric` at a time with the same stop at the first error and the limit: the
//! series a scrape labels and caches and the samples it keeps are bounded by the limit in
//! both formats, and the limit's error is the same. Prometheus reads on to count the whole
//! body for `scrape_samples_scraped`; here a scrape stopped at the limit reports the
//! samples it read. Reading and parsing overlap, so the scrape timeout and
//! `scrape_duration_seconds` cover both; both walks yield now and then so that the timeout
//! is checked.
//!
//! Labels follow Prometheus's `mutateSampleLabels`: target labels are added to every series;
//! on a clash the exposed label is kept as `exported_<name>` unless `honor_labels` is set,
//! in which case the exposed value wins. `metric_relabel_configs` run afterwards.
//!
//! The cache maps a series' exposition text (for protobuf, its name and label pairs) to its
//! final label set (or to "dropped by relabeling"), so a steady target costs a hash lookup
//! per line (a keyed hash: a target cannot make its own cache degenerate); entries not seen
//! in a successful scrape are evicted after it, which keeps `scrape_series_added` exact, and
//! the entries a failed scrape added leave with it, whatever its format. Staleness is
//! tracked on the same entries, so a steady scrape clones each label set once, into its
//! sample (measured with `examples/scrape_throughput.rs`: 100k series, ~1.3 µs per sample
//! steady, release).
//! Series with explicit timestamps (when honored) get no staleness markers, as in
//! Prometheus, unless `track_timestamps_staleness` is set. Two different texts for one
//! label set (`a{x="1"}` and `a{x="1",}`) are tracked apart; Prometheus tracks by label set,
//! which only differs for such bodies. While the pool's forced error is set (`target_limit`
//! exceeded) a scrape sends no request and fails with it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use model::labels::{Labels, LabelsBuilder, METRIC_NAME};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::config::accept_header;
use super::config::JobConfig;
use super::http::{HttpClient, RequestSettings};
use super::parse::{Entry, Format, Parser, Windows};
use super::proto::{ProtoEntry, ProtoOptions, ProtoParser};
use super::relabel::{process, LabelSet};
use super::stale_nan;
use super::target::Target;
use crate::metrics::{HistogramSample, MetricMetadata, MetricType, MetricsSink, Sample};
use model::histogram::FloatHistogram;

/// A target's health as `/api/v1/targets` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Up,
    Down,
}

impl Health {
    /// `up`, `down` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the last scrape of a target did.
#[derive(Clone, Debug)]
pub struct TargetHealth {
    pub health: Health,
    /// Empty when the last scrape succeeded.
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
}

impl Default for TargetHealth {
    fn default() -> Self {
        TargetHealth {
            health: Health::Unknown,
            last_error: String::new(),
            last_scrape: None,
            last_duration: Duration::ZERO,
        }
    }
}

/// Why a loop stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The target is gone: mark its series stale.
    Removed,
    /// The loop is being replaced (reload) or Lookout stops: no staleness markers.
    Quiet,
}

/// What a loop hands to its successor after a reload: the series to mark stale if they do
/// not come back.
#[derive(Debug, Default)]
pub struct LoopState {
    /// The series of the last successful scrape (those tracked for staleness).
    pub(crate) prev: HashSet<Labels>,
    /// The synthetic series of the target, staled with the rest when it goes away.
    pub(crate) report: Vec<Labels>,
}

impl LoopState {
    /// Staleness markers at `ts` for every series this state knows.
    pub(crate) fn stale_samples(self, ts: i64) -> Vec<Sample> {
        self.prev
            .into_iter()
            .chain(self.report)
            .map(|l| (l, ts, stale_nan()))
            .collect()
    }
}

/// What the loop knows about one series text. Staleness is tracked here rather than in
/// per-scrape sets of label sets, so a steady scrape clones each label set once (into its
/// sample) and hashes only the series text.
struct CacheEntry {
    /// None: dropped by `metric_relabel_configs`.
    labels: Option<Labels>,
    /// The last scrape (iteration) that exposed it.
    seen: u64,
    /// Exposed without an honored timestamp in the scrape being processed.
    cur_tracked: bool,
    /// Part of the last successful scrape's series that get staleness markers.
    prev_tracked: bool,
    /// The scrape (iteration) that first exposed it: a failed scrape's new entries leave
    /// with it, so a target failing at its sample limit keeps no cache of what it sent.
    born: u64,
}

/// The result of turning one body into samples.
struct Appended {
    samples: Vec<Sample>,
    /// Native histogram samples (protobuf scrapes only).
    histograms: Vec<HistogramSample>,
    total: usize,
    added: usize,
    series_added: usize,
    metadata: BTreeMap<String, MetricMetadata>,
}

/// A failed scrape: the error and what was counted before it.
struct ScrapeFailure {
    error: String,
    total: usize,
    added: usize,
}

impl Appended {
    fn fail(&self, error: String) -> ScrapeFailure {
        ScrapeFailure {
            error,
            total: self.total,
            added: self.added,
        }
    }
}

impl ScrapeFailure {
    /// A failed scrape that counts no samples: the request failed, the body could not be
    /// read (Prometheus reads the body before it parses), the scrape timed out, or the
    /// pool forced the error.
    fn uncounted(error: String) -> ScrapeFailure {
        ScrapeFailure {
            error,
            total: 0,
            added: 0,
        }
    }
}

/// Protobuf entries walked between two yields of the scrape loop's task, as a text body
/// yields after each window.
const PROTO_ENTRIES_PER_YIELD: usize = 4096;

/// One target's loop.
pub struct ScrapeLoop {
    pub(crate) target: Arc<Target>,
    job: Arc<JobConfig>,
    sink: Arc<dyn MetricsSink>,
    client: HttpClient,
    pub(crate) health: Arc<Mutex<TargetHealth>>,
    /// Set by the pool when the scrape must fail without a request (`target_limit`).
    forced_error: Arc<Mutex<Option<String>>>,
    state: LoopState,
    cache: HashMap<Box<[u8]>, CacheEntry, ahash::RandomState>,
    iter: u64,
    last_metadata: BTreeMap<String, MetricMetadata>,
    /// `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
    /// `scrape_samples_post_metric_relabeling`, `scrape_series_added`.
    report: [Labels; 5],
    /// The `Accept` header, from the job's `scrape_protocols`.
    accept: String,
}

/// A scraped sample's value.
enum Value {
    Float(f64),
    Histogram(Box<FloatHistogram>),
}

const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

pub(crate) fn now_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Adds the target labels to an exposed series (Prometheus's `mutateSampleLabels`).
pub fn mutate_labels(exposed: &mut LabelSet, target: &Labels, honor_labels: bool) {
    if honor_labels {
        for l in target {
            if !exposed.has(l.name) {
                exposed.set(l.name.to_string(), l.value.to_string());
            }
        }
        return;
    }
    let mut conflicts: Vec<(String, String)> = Vec::new();
    for l in target {
        let existing = exposed.get(l.name);
        if !existing.is_empty() {
            conflicts.push((l.name.to_string(), existing.to_string()));
        }
        exposed.set(l.name.to_string(), l.value.to_string());
    }
    conflicts.sort_by_key(|(n, _)| n.len());
    for (name, value) in conflicts {
        let mut new = name;
        loop {
            new = format!("exported_{new}");
            if exposed.get(&new).is_empty() {
                exposed.set(new, value);
                break;
            }
        }
    }
}

impl ScrapeLoop {
    /// A loop for `target` of `job`, continuing `state` (from a reloaded predecessor).
    pub fn new(
        target: Arc<Target>,
        job: Arc<JobConfig>,
        sink: Arc<dyn MetricsSink>,
        client: HttpClient,
        state: LoopState,
    ) -> ScrapeLoop {
        let report = REPORT_NAMES.map(|name| {
            let mut b = LabelsBuilder::new();
            for l in &target.labels {
                // Target labels were validated when the target was built.
                let _ = b.push(l.name, l.value);
            }
            let _ = b.push(METRIC_NAME, name);
            b.build().unwrap_or_default()
        });
        // A predecessor that scraped leaves its synthetic series to end; a loop that has
        // not scraped yet has none (no staleness markers for series never written).
        let mut state = state;
        if !state.report.is_empty() {
            state.report = report.to_vec();
        }
        ScrapeLoop {
            target,
            sink,
            client,
            health: Arc::new(Mutex::new(TargetHealth::default())),
            forced_error: Arc::default(),
            state,
            cache: HashMap::default(),
            iter: 0,
            last_metadata: BTreeMap::new(),
            report,
            accept: accept_header(&job.scrape_protocols),
            job,
        }
    }

    /// Shares the pool's forced-error cell: while it holds an error, every scrape reports it
    /// (up 0, the previous series marked stale) without sending a request, as Prometheus's
    /// `setForcedError` does for `target_limit`.
    pub fn with_forced_error(mut self, cell: Arc<Mutex<Option<String>>>) -> ScrapeLoop {
        self.forced_error = cell;
        self
    }

    /// The shared health cell, read by the manager for `/api/v1/targets`.
    pub fn health(&self) -> Arc<Mutex<TargetHealth>> {
        self.health.clone()
    }

    /// Runs until `stop` says so: first scrape after `offset`, then every interval.
    pub async fn run(
        mut self,
        offset: Duration,
        mut stop: watch::Receiver<Option<Stop>>,
    ) -> LoopState {
        let start = tokio::time::Instant::now() + offset;
        let mut ticker = tokio::time::interval_at(start, self.target.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let why = loop {
            if let Some(why) = *stop.borrow() {
                break why;
            }
            tokio::select! {
                _ = ticker.tick() => {
                    // A stop cancels the request, never a started append.
                    let cancel = async {
                        let _ = stop.changed().await;
                    };
                    self.scrape_until(cancel).await;
                }
                r = stop.changed() => {
                    if r.is_err() {
                        break Stop::Quiet;
                    }
                }
            }
        };
        if why == Stop::Removed {
            self.end_of_run_staleness().await;
        }
        self.take_state()
    }

    /// The series of the last successful scrape, for a successor loop or staleness.
    fn take_state(&mut self) -> LoopState {
        let mut state = std::mem::take(&mut self.state);
        for e in self.cache.values_mut() {
            if e.prev_tracked {
                if let Some(l) = e.labels.take() {
                    state.prev.insert(l);
                }
            }
        }
        self.cache.clear();
        state
    }

    /// Marks every series of the last scrape and the synthetic series stale.
    async fn end_of_run_staleness(&mut self) {
        let ts = now_ms(SystemTime::now());
        let samples = self.take_state().stale_samples(ts);
        if samples.is_empty() {
            return;
        }
        if let Err(e) = self.sink.append(samples).await {
            tracing::warn!(target = %self.target.url, error = %e, "writing staleness markers for a removed target failed");
        }
    }

    /// Fetches the target and turns its body into samples, or the scrape's error with the
    /// samples counted so far. A text or OpenMetrics body is parsed as it arrives, and
    /// parsing stops at the first error, the sample limit's included, and with it the
    /// reading: what comes after is never read. A protobuf body is read whole (at most
    /// `body_size_limit`), then walked one `Metric` at a time, stopping at the same first
    /// error and the same limit.
    async fn fetch_and_append(&mut self, ts: i64) -> Result<Appended, ScrapeFailure> {
        let job = self.job.clone();
        let settings = RequestSettings {
            auth: job.auth.as_ref(),
            follow_redirects: job.follow_redirects,
            headers: &job.http_headers,
        };
        let mut fetched = self
            .client
            .fetch(
                &self.target.url,
                self.target.timeout,
                settings,
                &self.accept,
                job.body_size_limit,
                job.enable_compression,
            )
            .await
            .map_err(ScrapeFailure::uncounted)?;
        let mut out = Appended {
            samples: Vec::with_capacity(self.cache.len() + 16),
            histograms: Vec::new(),
            total: 0,
            added: 0,
            series_added: 0,
            metadata: BTreeMap::new(),
        };
        let mut scratch = Vec::new();
        let format = Format::from_content_type(&fetched.content_type);
        if format == Format::Protobuf {
            // Not parsed as it arrives: one delimited MetricFamily may carry every series of
            // the target, so streaming by message would still hold that message whole. The
            // body stays bounded by body_size_limit; what is built from it, by the limit.
            let mut body = Vec::new();
            while fetched
                .read_into(&mut body)
                .await
                .map_err(ScrapeFailure::uncounted)?
            {}
            self.append_proto(&body, &job, ts, &mut out, &mut scratch)
                .await
                .map_err(|e| out.fail(e))?;
            return Ok(out);
        }
        let mut windows = Windows::new(format);
        loop {
            let mut last = false;
            while !last && !windows.ready() {
                match fetched.read_into(windows.buffer()).await {
                    Ok(more) => last = !more,
                    // A body that cannot be read counts no samples, as a failed request
                    // does (Prometheus reads the body before it parses).
                    Err(error) => return Err(ScrapeFailure::uncounted(error)),
                }
            }
            let mut parser = windows.parser(last);
            self.append_text(&mut parser, &job, ts, &mut out, &mut scratch)
                .map_err(|e| out.fail(e))?;
            if last {
                return Ok(out);
            }
            let (consumed, resume) = (parser.consumed(), parser.resume());
            windows.advance(consumed, resume);
            // A body that is always ready would otherwise keep this task (and the worker
            // it runs on) busy to the end: yield after each window so other loops run and
            // the scrape timeout is checked.
            tokio::task::yield_now().await;
        }
    }

    /// The entries of one window of a text format or OpenMetrics body into `out`.
    fn append_text(
        &mut self,
        parser: &mut Parser<'_>,
        job: &JobConfig,
        ts: i64,
        out: &mut Appended,
        scratch: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        while let Some(entry) = parser.next().map_err(|e| e.to_string())? {
            match entry {
                Entry::Help { name, help } => {
                    out.metadata
                        .entry(name.to_string())
                        .or_insert_with(empty_meta)
                        .help = help;
                }
                Entry::Type { name, kind } => {
                    out.metadata
                        .entry(name.to_string())
                        .or_insert_with(empty_meta)
                        .metric_type = kind;
                }
                Entry::Unit { name, unit } => {
                    out.metadata
                        .entry(name.to_string())
                        .or_insert_with(empty_meta)
                        .unit = unit.to_string();
                }
                Entry::Sample {
                    series,
                    value,
                    timestamp,
                } => self.add_sample(
                    out,
                    job,
                    series,
                    timestamp,
                    ts,
                    Value::Float(value),
                    |scratch| parser.labels(scratch),
                    scratch,
                    || format!("line {}", parser.line().saturating_sub(1)),
                )?,
            }
        }
        Ok(())
    }

    /// A protobuf body into `out`, one `Metric` at a time: the walk ends at the first error,
    /// the sample limit's included, so a body of millions of series is labelled and held
    /// only up to the limit. It yields every [`PROTO_ENTRIES_PER_YIELD`] entries, so a long
    /// walk lets other loops run and its scrape timeout be checked.
    async fn append_proto(
        &mut self,
        body: &[u8],
        job: &JobConfig,
        ts: i64,
        out: &mut Appended,
        scratch: &mut Vec<(String, String)>,
    ) -> Result<(), String> {
        let mut parser = ProtoParser::new(
            body,
            ProtoOptions {
                native_histograms: job.scrape_native_histograms,
                keep_classic: job.always_scrape_classic_histograms,
            },
        );
        let mut walked = 0;
        while let Some(entry) = parser.next().map_err(|e| e.to_string())? {
            walked += 1;
            if walked % PROTO_ENTRIES_PER_YIELD == 0 {
                tokio::task::yield_now().await;
            }
            let (value, timestamp) = match entry {
                ProtoEntry::Metadata {
                    name,
                    kind,
                    help,
                    unit,
                } => {
                    out.metadata.insert(
                        name,
                        MetricMetadata {
                            metric_type: kind,
                            help,
                            unit,
                        },
                    );
                    continue;
                }
                ProtoEntry::Sample { value, timestamp } => (Value::Float(value), timestamp),
                ProtoEntry::Histogram {
                    histogram,
                    timestamp,
                } => (Value::Histogram(histogram), timestamp),
            };
            self.add_sample(
                out,
                job,
                parser.series(),
                timestamp,
                ts,
                value,
                |scratch| parser.labels(scratch),
                scratch,
                || format!("metric family {:?}", parser.family()),
            )?;
        }
        Ok(())
    }

    /// One exposed sample: its labels from the cache (or built and cached), then into `out`.
    /// `labels` fills the exposed labels on a cache miss; `place` names where the sample
    /// is for an error. Past the job's `sample_limit` it is the scrape's error, whichever
    /// format the body is in.
    #[allow(clippy::too_many_arguments)]
    fn add_sample(
        &mut self,
        out: &mut Appended,
        job: &JobConfig,
        series: &[u8],
        timestamp: Option<i64>,
        ts: i64,
        value: Value,
        labels: impl FnOnce(&mut Vec<(String, String)>),
        scratch: &mut Vec<(String, String)>,
        place: impl FnOnce() -> String,
    ) -> Result<(), String> {
        let iter = self.iter;
        out.total += 1;
        let tracked =
            timestamp.is_none() || !job.honor_timestamps || job.track_timestamps_staleness;
        let labels = match self.cache.get_mut(series) {
            Some(e) => {
                e.seen = iter;
                e.cur_tracked = tracked;
                e.labels.clone()
            }
            None => {
                labels(scratch);
                let labels = self
                    .build_series(scratch, job)
                    .map_err(|e| format!("{}: {e}", place()))?;
                if labels.is_some() {
                    out.series_added += 1;
                }
                self.cache.insert(
                    series.into(),
                    CacheEntry {
                        labels: labels.clone(),
                        seen: iter,
                        cur_tracked: tracked,
                        prev_tracked: false,
                        born: iter,
                    },
                );
                labels
            }
        };
        let Some(labels) = labels else {
            return Ok(());
        };
        out.added += 1;
        if job.sample_limit > 0 && out.added > job.sample_limit {
            // Stop here rather than hold and label every sample of a target that sends
            // millions; nothing of this scrape is stored.
            return Err(job.sample_limit_error());
        }
        let t = match timestamp {
            Some(t) if job.honor_timestamps => t,
            _ => ts,
        };
        match value {
            Value::Float(v) => out.samples.push((labels, t, v)),
            Value::Histogram(h) => out.histograms.push((labels, t, Arc::new(*h))),
        }
        Ok(())
    }

    /// After a successful scrape: staleness markers for the previous scrape's series that
    /// this one did not expose, which also leave the cache.
    fn commit_success(&mut self, ts: i64, samples: &mut Vec<Sample>) {
        let cur = self.iter;
        self.cache.retain(|_, e| {
            if e.seen == cur {
                e.prev_tracked = e.cur_tracked;
                return true;
            }
            if e.prev_tracked {
                if let Some(l) = e.labels.take() {
                    samples.push((l, ts, stale_nan()));
                }
            }
            false
        });
        // A predecessor's series (reload) count once, at the first scrape.
        if !self.state.prev.is_empty() {
            let live: HashSet<&Labels> = self
                .cache
                .values()
                .filter(|e| e.prev_tracked)
                .filter_map(|e| e.labels.as_ref())
                .collect();
            let gone: Vec<Labels> = self
                .state
                .prev
                .iter()
                .filter(|l| !live.contains(l))
                .cloned()
                .collect();
            self.state.prev.clear();
            samples.extend(gone.into_iter().map(|l| (l, ts, stale_nan())));
        }
    }

    /// After a failed scrape: every series of the last successful scrape ends, and what
    /// the failed one added to the cache leaves it.
    fn commit_failure(&mut self, ts: i64, samples: &mut Vec<Sample>) {
        let cur = self.iter;
        self.cache.retain(|_, e| {
            if std::mem::take(&mut e.prev_tracked) {
                if let Some(l) = &e.labels {
                    samples.push((l.clone(), ts, stale_nan()));
                }
            }
            e.born != cur
        });
        samples.extend(self.state.prev.drain().map(|l| (l, ts, stale_nan())));
    }

    /// Builds one series' final labels; None when metric relabeling drops it.
    fn build_series(
        &self,
        exposed: &mut Vec<(String, String)>,
        job: &JobConfig,
    ) -> Result<Option<Labels>, String> {
        let mut names: Vec<&str> = exposed.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!(
                "label name {:?} is not unique: invalid sample",
                w[0]
            ));
        }
        let mut set = LabelSet::from_pairs(exposed.drain(..));
        mutate_labels(&mut set, &self.target.labels, job.honor_labels);
        if !process(&mut set, &job.metric_relabel_configs) || set.is_empty() {
            return Ok(None);
        }
        if !set.has(METRIC_NAME) {
            return Err("missing metric name (__name__ label)".into());
        }
        if job.label_limit > 0 && set.len() > job.label_limit {
            return Err(format!(
                "label_limit exceeded (metric: {:.50}, number of labels: {}, limit: {})",
                set.get(METRIC_NAME),
                set.len(),
                job.label_limit
            ));
        }
        for (n, v) in set.iter() {
            if job.label_name_length_limit > 0 && n.len() > job.label_name_length_limit {
                return Err(format!(
                    "label_name_length_limit exceeded (metric: {:.50}, label name: {:.50}, length: {}, limit: {})",
                    set.get(METRIC_NAME), n, n.len(), job.label_name_length_limit
                ));
            }
            if job.label_value_length_limit > 0 && v.len() > job.label_value_length_limit {
                return Err(format!(
                    "label_value_length_limit exceeded (metric: {:.50}, label name: {:.50}, value: {:.50}, length: {}, limit: {})",
                    set.get(METRIC_NAME), n, v, v.len(), job.label_value_length_limit
                ));
            }
        }
        let mut b = LabelsBuilder::new();
        for (n, v) in set.iter() {
            b.push(n, v)
                .map_err(|e| format!("invalid metric name or label names: {e}"))?;
        }
        b.build()
            .map(Some)
            .map_err(|e| format!("invalid metric name or label names: {e}"))
    }

    /// One scrape, start to finish.
    pub async fn scrape_once(&mut self) {
        self.scrape_until(std::future::pending()).await;
    }

    /// One scrape, unless `cancel` resolves while the body is being read and parsed (then
    /// nothing is written). Once the body is in, the append always runs to completion: the
    /// sink's future is never dropped halfway.
    async fn scrape_until(&mut self, cancel: impl std::future::Future<Output = ()>) {
        let started_at = SystemTime::now();
        let start = Instant::now();
        let ts = now_ms(started_at);
        self.iter += 1;
        let forced = self.forced_error.lock().clone();
        let scraped = match forced {
            Some(error) => Ok(Err(ScrapeFailure::uncounted(error))),
            None => {
                let timeout = self.target.timeout;
                let scrape = tokio::time::timeout(timeout, self.fetch_and_append(ts));
                tokio::select! {
                    r = scrape => r,
                    _ = cancel => return,
                }
            }
        };
        let duration = start.elapsed();
        let result = match scraped {
            Err(_) => Err(ScrapeFailure::uncounted(format!(
                "Get {:?}: context deadline exceeded (the answer was not read within the scrape timeout of {}; raise scrape_timeout if the target is only slow)",
                self.target.url,
                super::config::format_duration(self.target.timeout)
            ))),
            Ok(r) => r,
        };
        let (mut samples, histograms, error, total, added, series_added) = match result {
            Ok(a) => {
                let mut samples = a.samples;
                self.commit_success(ts, &mut samples);
                if a.metadata != self.last_metadata {
                    self.sink.record_metadata(
                        a.metadata
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    );
                    self.last_metadata = a.metadata;
                }
                (
                    samples,
                    a.histograms,
                    None,
                    a.total,
                    a.added,
                    a.series_added,
                )
            }
            Err(f) => {
                // Nothing of a failed scrape is stored; its series end here.
                let mut samples = Vec::new();
                self.commit_failure(ts, &mut samples);
                (samples, Vec::new(), Some(f.error), f.total, f.added, 0)
            }
        };
        let up = if error.is_none() { 1.0 } else { 0.0 };
        let values = [
            up,
            duration.as_secs_f64(),
            total as f64,
            added as f64,
            series_added as f64,
        ];
        for (l, v) in self.report.iter().zip(values) {
            samples.push((l.clone(), ts, v));
        }
        let mut error = error;
        if self.state.report.is_empty() {
            self.state.report = self.report.to_vec();
        }
        let appended = if histograms.is_empty() {
            self.sink.append(samples).await
        } else {
            self.sink
                .append_with_histograms(samples, histograms, false)
                .await
        };
        match appended {
            Ok(outcome) if outcome.rejected() > 0 => {
                tracing::debug!(
                    target = %self.target.url,
                    rejected = outcome.rejected(),
                    first = outcome.first_error.as_deref().unwrap_or(""),
                    "the store rejected some scraped samples"
                );
            }
            Ok(_) => {}
            Err(e) => {
                if error.is_none() {
                    error = Some(format!("storing the scraped samples failed: {e}"));
                }
            }
        }
        let mut h = self.health.lock();
        h.last_scrape = Some(started_at);
        h.last_duration = duration;
        match error {
            None => {
                h.health = Health::Up;
                h.last_error.clear();
            }
            Some(e) => {
                h.health = Health::Down;
                h.last_error = e;
            }
        }
    }
}

fn empty_meta() -> MetricMetadata {
    MetricMetadata {
        metric_type: MetricType::Unknown,
        help: String::new(),
        unit: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> LabelSet {
        LabelSet::from_pairs(pairs.iter().map(|(a, b)| (*a, *b)))
    }

    #[test]
    fn target_labels_and_conflicts() {
        let target = Labels::new([("job", "j"), ("instance", "i:1")]).unwrap();
        let mut s = set(&[
            ("__name__", "m"),
            ("job", "exposed"),
            ("exported_job", "taken"),
            ("a", "1"),
        ]);
        mutate_labels(&mut s, &target, false);
        assert_eq!(
            s,
            set(&[
                ("__name__", "m"),
                ("a", "1"),
                ("exported_exported_job", "exposed"),
                ("exported_job", "taken"),
                ("instance", "i:1"),
                ("job", "j"),
            ])
        );
        let mut s = set(&[("__name__", "m"), ("job", "exposed")]);
        mutate_labels(&mut s, &target, true);
        assert_eq!(
            s,
            set(&[("__name__", "m"), ("instance", "i:1"), ("job", "exposed")])
        );
        // An empty exposed value is no conflict.
        let mut s = set(&[("__name__", "m"), ("job", "")]);
        mutate_labels(&mut s, &target, false);
        assert_eq!(
            s,
            set(&[("__name__", "m"), ("instance", "i:1"), ("job", "j")])
        );
    }
}
