//! The scrape manager: one pool per job, one loop per target, reloads, target status.
//!
//! A pool owns its job's discovery task and its loops. Discovery hands the pool the job's
//! complete list of discovered targets whenever it changes; the pool relabels them, starts
//! loops for new targets and stops the loops of vanished ones (which then write staleness
//! markers for all their series). [`ScrapeManager::apply`] keeps a pool whose job is
//! unchanged running untouched, as Prometheus does on reload; a changed job's pool is
//! replaced, and its loops hand their last-scrape series to the successor loop of the same
//! target, so series that disappear across a reload are still marked stale, and targets
//! the new job no longer has get their staleness markers once its first discovery is done.
//!
//! Pool-wide settings act at each sync, as Prometheus's `scrapePool.sync`: past
//! `target_limit` every loop of the pool gets a forced error (it reports
//! `target_limit exceeded (number of targets: N, limit: M)` with up 0 and staleness markers,
//! and sends no request) until the count drops; `keep_dropped_targets` bounds the dropped
//! targets kept for `/api/v1/targets` while their count stays exact. HTTP discovery entries
//! each refresh in their own task (their own HTTP client settings, timeout = refresh
//! interval); a failed refresh keeps that entry's previous targets.
//!
//! Each loop waits a per-target offset before its first scrape (a hash of the target and
//! the external labels, modulo the interval, as Prometheus spreads scrapes), so many
//! targets with one interval do not all scrape in the same millisecond.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{format_duration, HttpSdConfig, JobConfig, ScrapeConfig};
use super::discovery::{group_targets, parse_http_sd, FileSd};
use super::http::{HttpClient, RequestSettings};
use super::relabel::LabelSet;
pub use super::scrape_loop::Health;
use super::scrape_loop::{now_ms, LoopState, ScrapeLoop, Stop, TargetHealth};
use super::target::{populate, Populated, Target};
use crate::metrics::MetricsSink;

/// An active target as `/api/v1/targets` reports it.
#[derive(Clone, Debug)]
pub struct ActiveTarget {
    /// Labels before relabeling.
    pub discovered_labels: BTreeMap<String, String>,
    /// The target's labels.
    pub labels: BTreeMap<String, String>,
    /// The job name.
    pub scrape_pool: String,
    pub scrape_url: String,
    /// The URL as seen from elsewhere; Lookout reports the scrape URL.
    pub global_url: String,
    /// Empty unless the last scrape failed.
    pub last_error: String,
    /// When the last scrape started; None before the first.
    pub last_scrape: Option<SystemTime>,
    /// Seconds the last scrape took.
    pub last_scrape_duration: f64,
    pub health: Health,
    /// As Prometheus prints durations (`15s`, `1m`).
    pub scrape_interval: String,
    pub scrape_timeout: String,
}

impl ActiveTarget {
    /// `lastScrape` as Prometheus prints it: RFC 3339 with nanoseconds, or Go's zero time
    /// `0001-01-01T00:00:00Z` before the first scrape.
    pub fn last_scrape_rfc3339(&self) -> String {
        match self.last_scrape {
            None => "0001-01-01T00:00:00Z".into(),
            Some(t) => rfc3339(t),
        }
    }
}

/// A target relabeling dropped.
#[derive(Clone, Debug)]
pub struct DroppedTarget {
    pub discovered_labels: BTreeMap<String, String>,
    pub scrape_pool: String,
}

/// All targets, active and dropped, sorted by pool then labels.
#[derive(Clone, Debug, Default)]
pub struct TargetsSnapshot {
    pub active: Vec<ActiveTarget>,
    /// The dropped targets kept (`keep_dropped_targets` bounds them per pool).
    pub dropped: Vec<DroppedTarget>,
    /// Every pool's count of dropped targets, kept or not (`droppedTargetCounts`).
    pub dropped_counts: BTreeMap<String, usize>,
}

/// Formats a time as RFC 3339 in UTC with nanoseconds (Go's `time.RFC3339Nano` trims
/// trailing zeros; so do we).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    let mut s = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let nanos = d.subsec_nanos();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

fn to_map(s: &LabelSet) -> BTreeMap<String, String> {
    s.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct RunningLoop {
    target: Arc<Target>,
    health: Arc<Mutex<TargetHealth>>,
    stop: watch::Sender<Option<Stop>>,
    task: JoinHandle<LoopState>,
}

#[derive(Default)]
struct PoolShared {
    loops: HashMap<u64, RunningLoop>,
    /// The dropped targets kept, at most `keep_dropped_targets` (0: all).
    dropped: Vec<LabelSet>,
    /// All dropped targets of the last sync, kept or not.
    dropped_count: usize,
    /// The error every loop of the pool reports instead of scraping (`target_limit`);
    /// shared by the loops, set at each sync.
    forced_error: Arc<Mutex<Option<String>>>,
    /// States of a replaced pool's loops, by target identity, until the first sync.
    handover: HashMap<u64, LoopState>,
}

struct Pool {
    job: Arc<JobConfig>,
    shared: Arc<Mutex<PoolShared>>,
    stop: watch::Sender<bool>,
    discovery: JoinHandle<()>,
}

struct Deps {
    sink: Arc<dyn MetricsSink>,
    client: HttpClient,
    seed: u64,
}

/// Runs the scrape loops of a [`ScrapeConfig`] into a [`MetricsSink`].
pub struct ScrapeManager {
    deps: Arc<Deps>,
    pools: tokio::sync::Mutex<BTreeMap<String, Pool>>,
}

fn seed_of(cfg: &ScrapeConfig) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in &cfg.global.external_labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Prometheus's offset: where in the interval this target scrapes, fixed per target.
fn offset(identity: u64, seed: u64, interval: Duration) -> Duration {
    let iv = interval.as_nanos().max(1) as u64;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let base = iv - now % iv;
    let off = (identity ^ seed) % iv;
    let mut next = base + off;
    if next > iv {
        next -= iv;
    }
    Duration::from_nanos(next)
}

impl ScrapeManager {
    /// Starts scraping every job of `config` into `sink`. Must run inside a tokio runtime.
    /// The caller logs `config.warnings`.
    pub fn start(config: ScrapeConfig, sink: Arc<dyn MetricsSink>) -> ScrapeManager {
        let deps = Arc::new(Deps {
            sink,
            client: HttpClient::default(),
            seed: seed_of(&config),
        });
        let mut pools = BTreeMap::new();
        for job in config.jobs {
            let job = Arc::new(job);
            pools.insert(job.job_name.clone(), start_pool(&deps, job, HashMap::new()));
        }
        ScrapeManager {
            deps,
            pools: tokio::sync::Mutex::new(pools),
        }
    }

    /// Switches to `config`: unchanged jobs keep running untouched, changed ones restart
    /// (continuing staleness tracking), removed ones stop and mark their series stale.
    pub async fn apply(&self, config: ScrapeConfig) {
        let mut pools = self.pools.lock().await;
        let mut old = std::mem::take(&mut *pools);
        for job in config.jobs {
            let name = job.job_name.clone();
            match old.remove(&name) {
                Some(p) if *p.job == job => {
                    pools.insert(name, p);
                }
                Some(p) => {
                    let states = stop_pool(p, Stop::Quiet).await;
                    pools.insert(name, start_pool(&self.deps, Arc::new(job), states));
                }
                None => {
                    pools.insert(name, start_pool(&self.deps, Arc::new(job), HashMap::new()));
                }
            }
        }
        for (_, p) in old {
            stop_pool(p, Stop::Removed).await;
        }
    }

    /// The current targets, for `/api/v1/targets`.
    pub async fn targets(&self) -> TargetsSnapshot {
        let pools = self.pools.lock().await;
        let mut snap = TargetsSnapshot::default();
        for (name, pool) in pools.iter() {
            let shared = pool.shared.lock();
            let mut active: Vec<ActiveTarget> = shared
                .loops
                .values()
                .map(|l| {
                    let h = l.health.lock().clone();
                    ActiveTarget {
                        discovered_labels: to_map(&l.target.discovered),
                        labels: l
                            .target
                            .labels
                            .iter()
                            .map(|x| (x.name.to_string(), x.value.to_string()))
                            .collect(),
                        scrape_pool: name.clone(),
                        scrape_url: l.target.url.clone(),
                        global_url: l.target.url.clone(),
                        last_error: h.last_error,
                        last_scrape: h.last_scrape,
                        last_scrape_duration: h.last_duration.as_secs_f64(),
                        health: h.health,
                        scrape_interval: format_duration(l.target.interval),
                        scrape_timeout: format_duration(l.target.timeout),
                    }
                })
                .collect();
            active.sort_by(|a, b| a.labels.cmp(&b.labels));
            snap.active.extend(active);
            snap.dropped
                .extend(shared.dropped.iter().map(|d| DroppedTarget {
                    discovered_labels: to_map(d),
                    scrape_pool: name.clone(),
                }));
            snap.dropped_counts
                .insert(name.clone(), shared.dropped_count);
        }
        snap
    }

    /// Stops every loop without staleness markers (Lookout is stopping, the data stays
    /// as it was) and waits for them.
    pub async fn shutdown(&self) {
        let mut pools = self.pools.lock().await;
        for (_, p) in std::mem::take(&mut *pools) {
            stop_pool(p, Stop::Quiet).await;
        }
    }
}

fn start_pool(deps: &Arc<Deps>, job: Arc<JobConfig>, handover: HashMap<u64, LoopState>) -> Pool {
    let shared = Arc::new(Mutex::new(PoolShared {
        handover,
        ..PoolShared::default()
    }));
    let (stop, stop_rx) = watch::channel(false);
    let discovery = tokio::spawn(run_discovery(
        deps.clone(),
        job.clone(),
        shared.clone(),
        stop_rx,
    ));
    Pool {
        job,
        shared,
        stop,
        discovery,
    }
}

/// Stops a pool's discovery and loops; returns the loops' states by target identity.
async fn stop_pool(pool: Pool, why: Stop) -> HashMap<u64, LoopState> {
    let _ = pool.stop.send(true);
    let _ = pool.discovery.await;
    let loops: Vec<(u64, RunningLoop)> = {
        let mut shared = pool.shared.lock();
        shared.loops.drain().collect()
    };
    for (_, l) in &loops {
        let _ = l.stop.send(Some(why));
    }
    let mut states = HashMap::new();
    for (id, l) in loops {
        if let Ok(state) = l.task.await {
            states.insert(id, state);
        }
    }
    states
}

async fn run_discovery(
    deps: Arc<Deps>,
    job: Arc<JobConfig>,
    shared: Arc<Mutex<PoolShared>>,
    mut stop: watch::Receiver<bool>,
) {
    let statics: Vec<LabelSet> = job
        .static_configs
        .iter()
        .flat_map(|g| group_targets(g, &[]))
        .collect();
    // Jobs with their own TLS or proxy settings get their own client (and connection pool).
    let client = if job.tls == super::config::TlsConfig::default()
        && job.proxy == super::config::ProxyConfig::default()
    {
        deps.client.clone()
    } else {
        HttpClient::new(&job.tls, &job.proxy)
    };
    let mut files: Vec<FileSd> = job
        .file_sd_configs
        .iter()
        .cloned()
        .map(FileSd::new)
        .collect();
    let poll = files
        .iter()
        .map(FileSd::poll_interval)
        .min()
        .unwrap_or(Duration::from_secs(5));
    // HTTP discovery: every entry's first answer (or failure) is awaited before the first
    // sync, so targets a reload kept are not taken for gone; after that each entry
    // refreshes in its own task and wakes this loop when its targets change.
    let (wake_tx, mut wake) = tokio::sync::mpsc::channel::<()>(1);
    let mut http_cells: Vec<Arc<Mutex<Vec<LabelSet>>>> = Vec::new();
    {
        let mut first_fetches = tokio::task::JoinSet::new();
        for sd in &job.http_sd_configs {
            let sd = Arc::new(sd.clone());
            let client = HttpClient::new(&sd.tls, &sd.proxy);
            let cell = Arc::new(Mutex::new(Vec::new()));
            http_cells.push(cell.clone());
            let (job_name, wake_tx, stop) = (job.job_name.clone(), wake_tx.clone(), stop.clone());
            first_fetches.spawn(async move {
                if let Some(targets) = http_sd_refresh(&client, &sd, &job_name).await {
                    *cell.lock() = targets;
                }
                (sd, client, cell, job_name, wake_tx, stop)
            });
        }
        let mut refreshers = Vec::new();
        loop {
            tokio::select! {
                r = first_fetches.join_next() => match r {
                    Some(Ok(x)) => refreshers.push(x),
                    Some(Err(_)) => {}
                    None => break,
                },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
        for (sd, client, cell, job_name, wake_tx, stop) in refreshers {
            tokio::spawn(http_sd_loop(sd, client, cell, job_name, wake_tx, stop));
        }
    }
    drop(wake_tx);
    let mut first = true;
    let mut woke = false;
    let mut last_poll = tokio::time::Instant::now();
    loop {
        let mut changed = first || std::mem::take(&mut woke);
        if !files.is_empty() && (first || last_poll.elapsed() >= poll) {
            let elapsed = if first {
                Duration::ZERO
            } else {
                last_poll.elapsed()
            };
            last_poll = tokio::time::Instant::now();
            let res = tokio::task::spawn_blocking(move || {
                let mut changed = false;
                let mut errors = Vec::new();
                for f in &mut files {
                    let (c, e) = f.refresh(elapsed);
                    changed |= c;
                    errors.extend(e);
                }
                (files, changed, errors)
            })
            .await;
            let Ok((f, c, errors)) = res else {
                return;
            };
            files = f;
            changed |= c;
            for e in errors {
                tracing::warn!(job = %job.job_name, error = %e, "file discovery failed; keeping the file's previous targets");
            }
        }
        if changed {
            let http: Vec<LabelSet> = http_cells.iter().flat_map(|c| c.lock().clone()).collect();
            let all: Vec<LabelSet> = statics
                .iter()
                .chain(files.iter().flat_map(|f| f.targets()))
                .cloned()
                .chain(http)
                .collect();
            sync(&deps, &client, &job, &shared, all, first).await;
        }
        first = false;
        let next_poll = last_poll + poll;
        tokio::select! {
            _ = tokio::time::sleep_until(next_poll), if !files.is_empty() => {}
            Some(()) = wake.recv(), if !http_cells.is_empty() => woke = true,
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Largest HTTP discovery answer read.
const MAX_HTTP_SD_BYTES: u64 = 32 << 20;

/// One HTTP discovery fetch; None (logged) when it failed, so the previous targets stay,
/// as Prometheus keeps them.
async fn http_sd_refresh(
    client: &HttpClient,
    sd: &HttpSdConfig,
    job: &str,
) -> Option<Vec<LabelSet>> {
    let settings = RequestSettings {
        auth: sd.auth.as_ref(),
        follow_redirects: sd.follow_redirects,
        headers: &sd.http_headers,
    };
    // Prometheus sets the client timeout to the refresh interval (0 would be none in Go;
    // a minute bounds it here).
    let timeout = if sd.refresh_interval.is_zero() {
        Duration::from_secs(60)
    } else {
        sd.refresh_interval
    };
    let res = tokio::time::timeout(
        timeout,
        client.fetch_sd(&sd.url, sd.refresh_interval, settings, MAX_HTTP_SD_BYTES),
    )
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "Get {:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            sd.url
        ))
    })
    .and_then(|body| parse_http_sd(&body, &sd.url));
    match res {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(job = %job, url = %sd.url, error = %e, "Unable to refresh target groups; keeping the previous targets");
            None
        }
    }
}

/// Refreshes one HTTP discovery entry every `refresh_interval` until the pool stops.
async fn http_sd_loop(
    sd: Arc<HttpSdConfig>,
    client: HttpClient,
    cell: Arc<Mutex<Vec<LabelSet>>>,
    job: String,
    wake: tokio::sync::mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            // Prometheus cannot run with a 0 interval (Go's ticker refuses it); a second
            // keeps a 0 from spinning here.
            _ = tokio::time::sleep(sd.refresh_interval.max(Duration::from_secs(1))) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let targets = tokio::select! {
            t = http_sd_refresh(&client, &sd, &job) => t,
            _ = stop.wait_for(|s| *s) => return,
        };
        if let Some(targets) = targets {
            let changed = {
                let mut c = cell.lock();
                let changed = *c != targets;
                *c = targets;
                changed
            };
            if changed {
                let _ = wake.try_send(());
            }
        }
    }
}

/// Brings the pool's loops in line with `discovered`.
async fn sync(
    deps: &Arc<Deps>,
    client: &HttpClient,
    job: &Arc<JobConfig>,
    shared: &Arc<Mutex<PoolShared>>,
    discovered: Vec<LabelSet>,
    first: bool,
) {
    let mut active: HashMap<u64, Target> = HashMap::new();
    let mut dropped = Vec::new();
    for d in discovered {
        match populate(job, d) {
            Ok(Populated::Active(t)) => {
                active.entry(t.identity()).or_insert(t);
            }
            Ok(Populated::Dropped(d)) => dropped.push(d),
            Err(e) => {
                tracing::warn!(job = %job.job_name, error = %e, "a discovered target is invalid after relabeling; it is not scraped");
            }
        }
    }
    // Prometheus's refreshTargetLimitErr: past the limit every loop of the pool fails
    // without a request until the count drops again.
    let forced = (job.target_limit > 0 && active.len() > job.target_limit).then(|| {
        format!(
            "target_limit exceeded (number of targets: {}, limit: {})",
            active.len(),
            job.target_limit
        )
    });
    let (to_stop, leftover) = {
        let mut s = shared.lock();
        *s.forced_error.lock() = forced;
        s.dropped_count = dropped.len();
        if job.keep_dropped_targets > 0 {
            dropped.truncate(job.keep_dropped_targets);
        }
        s.dropped = dropped;
        let gone: Vec<u64> = s
            .loops
            .keys()
            .filter(|k| !active.contains_key(k))
            .copied()
            .collect();
        let to_stop: Vec<RunningLoop> = gone.iter().filter_map(|k| s.loops.remove(k)).collect();
        for (id, target) in active {
            if s.loops.contains_key(&id) {
                continue;
            }
            let state = s.handover.remove(&id).unwrap_or_default();
            let target = Arc::new(target);
            let lp = ScrapeLoop::new(
                target.clone(),
                job.clone(),
                deps.sink.clone(),
                client.clone(),
                state,
            )
            .with_forced_error(s.forced_error.clone());
            let health = lp.health();
            let (stop, stop_rx) = watch::channel(None);
            let off = offset(id, deps.seed, target.interval);
            let task = tokio::spawn(lp.run(off, stop_rx));
            s.loops.insert(
                id,
                RunningLoop {
                    target,
                    health,
                    stop,
                    task,
                },
            );
        }
        let leftover: Vec<LoopState> = if first {
            s.handover.drain().map(|(_, v)| v).collect()
        } else {
            Vec::new()
        };
        (to_stop, leftover)
    };
    for l in to_stop {
        let _ = l.stop.send(Some(Stop::Removed));
    }
    // Targets a reload removed: their series end now.
    let ts = now_ms(SystemTime::now());
    let samples: Vec<_> = leftover
        .into_iter()
        .flat_map(|s| s.stale_samples(ts))
        .collect();
    if !samples.is_empty() {
        if let Err(e) = deps.sink.append(samples).await {
            tracing::warn!(job = %job.job_name, error = %e, "writing staleness markers for targets removed by a reload failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_like_go() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_400_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.1234Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn offsets_stay_inside_the_interval() {
        for id in [0u64, 1, u64::MAX, 12345678901234] {
            let o = offset(id, 42, Duration::from_secs(15));
            assert!(o <= Duration::from_secs(15), "{o:?}");
        }
    }
}
