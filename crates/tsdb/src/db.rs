//! The database: WAL-first appends into the head, replay on open, and the [`Querier`] over
//! everything it holds.
//!
//! Invariants:
//! - An append validates its whole batch against the head first (nothing is written if a
//!   label set is unusable; per-sample rejections are decided before the WAL sees the
//!   batch), then writes one WAL record with the accepted samples, then applies them to the
//!   head. It holds the `cut` read guard across the WAL append and the head apply, so a
//!   head cut (which takes the write guard) never sees a sample that is in the WAL but not
//!   yet in the head.
//! - Replay applies records in WAL order with the same rules as live appends, so whatever
//!   was acknowledged comes back. Two concurrent batches writing the same series may apply
//!   in a different order than their WAL records; a sample that lost that race is dropped
//!   live, and replay keeps at least every sample that was acknowledged as stored.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wal::{Wal, WalOptions};

use crate::codec;
use crate::head::{Head, HeadOptions, MemSeries, Rejection, Verdict};
use crate::index::Matcher;
use crate::querier::{Querier, SeriesSet};
use crate::{Labels, TsdbError};

/// Settings of a [`Tsdb`].
#[derive(Clone, Debug)]
pub struct TsdbConfig {
    /// The database directory; the WAL lives in `dir/wal`.
    pub dir: PathBuf,
    /// WAL settings (fsync policy, segment size).
    pub wal: WalOptions,
    /// Data older than this (relative to the newest sample) is deleted. Default 15 days.
    pub retention: Duration,
    /// How far behind a series' newest sample a sample may arrive and still be stored.
    /// Zero (the default) rejects every out-of-order sample, as Prometheus does by default.
    pub out_of_order_window: Duration,
    /// Width of a block (and the boundary no chunk straddles). Default 2 hours.
    pub block_range: Duration,
    /// Most samples one append may carry.
    pub max_batch_samples: usize,
}

impl TsdbConfig {
    /// Defaults: 15 days of retention, no out-of-order window, 2 h blocks, group-commit WAL.
    pub fn new(dir: impl Into<PathBuf>) -> TsdbConfig {
        TsdbConfig {
            dir: dir.into(),
            wal: WalOptions::default(),
            retention: Duration::from_secs(15 * 24 * 3600),
            out_of_order_window: Duration::ZERO,
            block_range: Duration::from_secs(2 * 3600),
            max_batch_samples: 1_000_000,
        }
    }
}

/// One sample that was not stored, for error messages.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRejection {
    /// The series.
    pub labels: Labels,
    /// The sample's timestamp (ms).
    pub timestamp_ms: i64,
    /// Why.
    pub reason: Rejection,
}

/// How many rejections an [`AppendReport`] lists in full.
pub const MAX_LISTED_REJECTIONS: usize = 10;

/// What an append did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendReport {
    /// Samples stored.
    pub appended: usize,
    /// Exact re-sends of stored samples, ignored without error (as Prometheus does).
    pub duplicates_ignored: usize,
    /// Samples rejected as out of order.
    pub out_of_order: usize,
    /// Samples rejected for a different value at an existing timestamp.
    pub duplicate_timestamp: usize,
    /// Samples rejected as older than the head accepts.
    pub out_of_bounds: usize,
    /// The first [`MAX_LISTED_REJECTIONS`] rejections.
    pub rejections: Vec<SampleRejection>,
}

impl AppendReport {
    /// Number of samples not stored because of an error.
    pub fn rejected(&self) -> usize {
        self.out_of_order + self.duplicate_timestamp + self.out_of_bounds
    }

    /// The first rejection as an error (the answer a remote_write handler gives), if any.
    pub fn first_error(&self) -> Option<TsdbError> {
        self.rejections.first().map(|r| TsdbError::SampleRejected {
            reason: r.reason.prometheus_message(),
            series: r.labels.to_string(),
            timestamp_ms: r.timestamp_ms,
            total: self.rejected(),
        })
    }

    fn count(&mut self, labels: &Labels, t: i64, verdict: Verdict) {
        match verdict {
            Verdict::Append | Verdict::OutOfOrder => self.appended += 1,
            Verdict::Duplicate => self.duplicates_ignored += 1,
            Verdict::Reject(r) => {
                match r {
                    Rejection::OutOfOrder => self.out_of_order += 1,
                    Rejection::DuplicateTimestamp => self.duplicate_timestamp += 1,
                    Rejection::OutOfBounds => self.out_of_bounds += 1,
                }
                if self.rejections.len() < MAX_LISTED_REJECTIONS {
                    self.rejections.push(SampleRejection {
                        labels: labels.clone(),
                        timestamp_ms: t,
                        reason: r,
                    });
                }
            }
        }
    }
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TsdbStats {
    /// Series in the head.
    pub head_series: usize,
    /// Samples appended to the head since open (replay included).
    pub head_samples: u64,
    /// Samples rejected since open, by any reason.
    pub rejected_samples: u64,
    /// Out-of-order samples rejected since open.
    pub out_of_order_samples: u64,
    /// WAL records replayed at open.
    pub replayed_records: u64,
}

/// The time-series database.
pub struct Tsdb {
    cfg: TsdbConfig,
    wal: Wal,
    cut: tokio::sync::RwLock<()>,
    head: Arc<Head>,
    rejected: AtomicU64,
    out_of_order: AtomicU64,
    replayed: u64,
}

impl std::fmt::Debug for Tsdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tsdb")
            .field("dir", &self.cfg.dir)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Tsdb {
    /// Opens (creating) the database in `cfg.dir` and replays its WAL.
    ///
    /// Replay reads the whole log synchronously; call it from a blocking context or at
    /// start-up before serving.
    pub fn open(cfg: TsdbConfig) -> Result<Tsdb, TsdbError> {
        let block_range_ms = ms(cfg.block_range).max(1);
        let head = Arc::new(Head::new(HeadOptions {
            block_range_ms,
            out_of_order_window_ms: ms(cfg.out_of_order_window),
        }));
        let wal = Wal::open(&cfg.dir.join("wal"), cfg.wal.clone())?;
        let mut replayed = 0u64;
        let mut decode_err = None;
        wal.replay(0, |_pos, rec| {
            replayed += 1;
            match codec::decode_samples(rec) {
                Ok((series, samples)) => {
                    let refs: Vec<Arc<MemSeries>> = series
                        .iter()
                        .map(|l| head.get_or_create(l, l.stable_hash()))
                        .collect();
                    for (s, t, v) in samples {
                        head.commit(&refs[s as usize], t, v);
                    }
                    Ok(())
                }
                Err(e) => {
                    decode_err = Some(e);
                    Err(wal::WalError::Corrupt {
                        path: cfg.dir.join("wal"),
                        offset: 0,
                        reason: "undecodable tsdb record".to_string(),
                    })
                }
            }
        })
        .map_err(|e| decode_err.take().unwrap_or(TsdbError::Wal(e)))?;
        Ok(Tsdb {
            cfg,
            wal,
            cut: tokio::sync::RwLock::new(()),
            head,
            rejected: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            replayed,
        })
    }

    /// Stores a batch of samples `(labels, timestamp ms, value)`; returns once the stored
    /// ones are durable in the WAL (as its fsync policy says) and visible to queries.
    ///
    /// An empty label set or a batch over `max_batch_samples` fails the whole batch with
    /// nothing written. Samples that are out of order, out of bounds, or a different value
    /// at an existing timestamp are rejected one by one and counted in the report; the rest
    /// are stored. Exact re-sends are ignored silently, as Prometheus does.
    pub async fn append(
        &self,
        samples: Vec<(Labels, i64, f64)>,
    ) -> Result<AppendReport, TsdbError> {
        if samples.len() > self.cfg.max_batch_samples {
            return Err(TsdbError::BatchTooLarge {
                len: samples.len(),
                max: self.cfg.max_batch_samples,
            });
        }
        if samples.iter().any(|s| s.0.is_empty()) {
            return Err(TsdbError::EmptyLabels);
        }
        let mut report = AppendReport::default();
        let _cut = self.cut.read().await;

        // 1. Validate the whole batch without changing anything.
        struct Pending {
            idx: usize,
            series: u32,
            verdict: Verdict,
        }
        // Per distinct label set of the batch: its slot in the record's table (`u32::MAX`
        // until a sample is accepted), the head's series if it exists, and the batch's newest
        // accepted in-order sample.
        type BatchSeries = (u32, Option<Arc<MemSeries>>, Option<(i64, u64)>);
        let mut local: HashMap<&Labels, BatchSeries> = HashMap::new();
        let mut table: Vec<&Labels> = Vec::new();
        let mut accepted: Vec<Pending> = Vec::with_capacity(samples.len());
        for (idx, (labels, t, v)) in samples.iter().enumerate() {
            let v = v.to_bits();
            let entry = local.entry(labels).or_insert_with(|| {
                let existing = self.head.get(labels, labels.stable_hash());
                (u32::MAX, existing, None)
            });
            let verdict = self.head.check(entry.1.as_deref(), entry.2, *t, v);
            match verdict {
                Verdict::Append | Verdict::OutOfOrder => {
                    if entry.0 == u32::MAX {
                        entry.0 = table.len() as u32;
                        table.push(labels);
                    }
                    if verdict == Verdict::Append {
                        entry.2 = Some((*t, v));
                    }
                    accepted.push(Pending {
                        idx,
                        series: entry.0,
                        verdict,
                    });
                }
                other => report.count(labels, *t, other),
            }
        }
        if accepted.is_empty() {
            self.note_rejections(&report);
            return Ok(report);
        }

        // 2. The WAL.
        let wal_samples: Vec<(u32, i64, u64)> = accepted
            .iter()
            .map(|p| (p.series, samples[p.idx].1, samples[p.idx].2.to_bits()))
            .collect();
        let record = codec::encode_samples(&table, &wal_samples);
        self.wal.append(record).await?;

        // 3. The head, checking again against concurrent batches.
        let refs: Vec<Arc<MemSeries>> = table
            .iter()
            .map(|l| match &local[*l].1 {
                Some(s) => s.clone(),
                None => self.head.get_or_create(l, l.stable_hash()),
            })
            .collect();
        for p in &accepted {
            let (labels, t, v) = &samples[p.idx];
            let verdict = self.head.commit(&refs[p.series as usize], *t, v.to_bits());
            debug_assert!(matches!(p.verdict, Verdict::Append | Verdict::OutOfOrder));
            report.count(labels, *t, verdict);
        }
        self.note_rejections(&report);
        Ok(report)
    }

    fn note_rejections(&self, r: &AppendReport) {
        self.rejected
            .fetch_add(r.rejected() as u64, Ordering::Relaxed);
        self.out_of_order
            .fetch_add(r.out_of_order as u64, Ordering::Relaxed);
    }

    /// Flushes the WAL (for shutdown; appends are already durable under the default policy).
    pub async fn sync(&self) -> Result<(), TsdbError> {
        Ok(self.wal.sync().await?)
    }

    /// Counters since open.
    pub fn stats(&self) -> TsdbStats {
        TsdbStats {
            head_series: self.head.num_series(),
            head_samples: self.head.num_samples(),
            rejected_samples: self.rejected.load(Ordering::Relaxed),
            out_of_order_samples: self.out_of_order.load(Ordering::Relaxed),
            replayed_records: self.replayed,
        }
    }

    /// The WAL's counters.
    pub fn wal_stats(&self) -> wal::WalStats {
        self.wal.stats()
    }
}

impl Querier for Tsdb {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<SeriesSet, TsdbError> {
        Ok(self.head.select(matchers, start_ms, end_ms).into_iter())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, TsdbError> {
        Ok(self.head.label_names(matchers, start_ms, end_ms))
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, TsdbError> {
        Ok(self.head.label_values(name, matchers, start_ms, end_ms))
    }
}
