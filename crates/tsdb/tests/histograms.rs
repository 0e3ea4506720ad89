//! Native histograms through the database's public API: Prometheus's append verdicts, series
//! that switch between floats and histograms, staleness markers, and every way a histogram
//! sample lives on (WAL replay, head-cut checkpoints, blocks, compaction, retention, and a
//! reopen after SIGKILL of a real child process).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use model::histogram::{CounterResetHint, FloatHistogram, Span};
use tsdb::{FsyncPolicy, Labels, Matcher, Querier, SampleValue, Tsdb, TsdbConfig, WalOptions};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn config(dir: &std::path::Path) -> TsdbConfig {
    let mut cfg = TsdbConfig::new(dir);
    cfg.wal = WalOptions {
        segment_bytes: 64 << 10,
        fsync: FsyncPolicy::Never,
    };
    cfg
}

fn series(name: &str, job: &str) -> Labels {
    Labels::new([("__name__", name), ("job", job)]).unwrap()
}

/// A counter histogram at step `i`: growing integer buckets, a layout change every 50 steps
/// and a float-valued one every 7th step, so chunks see every encoding case.
fn hist(i: i64) -> Arc<FloatHistogram> {
    let n = i as f64;
    let wide = (i / 50) % 2 == 1;
    let mut h = FloatHistogram {
        schema: 2,
        zero_threshold: 1e-128,
        zero_count: n,
        sum: 0.5 * n,
        positive_spans: vec![Span {
            offset: -1,
            length: if wide { 3 } else { 2 },
        }],
        positive_buckets: if wide {
            vec![n, 2.0 * n, 1.0]
        } else {
            vec![n, 2.0 * n]
        },
        negative_spans: vec![Span {
            offset: 0,
            length: 1,
        }],
        negative_buckets: vec![n],
        ..Default::default()
    };
    if i % 7 == 3 {
        h.positive_buckets[0] += 0.25;
    }
    h.count = h.zero_count
        + h.positive_buckets.iter().sum::<f64>()
        + h.negative_buckets.iter().sum::<f64>();
    h.validate().unwrap();
    Arc::new(h)
}

type Got = Vec<(String, Vec<(i64, f64)>, Vec<(i64, FloatHistogram)>)>;

fn read_all(db: &Tsdb, name: &str) -> Got {
    db.select(&[Matcher::equal("__name__", name)], i64::MIN, i64::MAX)
        .unwrap()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples().collect(),
                s.histograms().map(|(t, h)| (t, (**h).clone())).collect(),
            )
        })
        .collect()
}

fn h(v: Arc<FloatHistogram>) -> SampleValue {
    SampleValue::Histogram(v)
}

#[tokio::test]
async fn histogram_verdicts_follow_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    // The window admits floats and histograms out of order (Prometheus 3's rule).
    cfg.out_of_order_window = std::time::Duration::from_secs(600);
    let db = Tsdb::open(cfg).unwrap();
    let l = series("lat", "a");
    let r = db
        .append_values(
            vec![
                (l.clone(), 1000, h(hist(1))),
                (l.clone(), 2000, h(hist(2))),
                // The same histogram again: ignored, not an error.
                (l.clone(), 2000, h(Arc::new((*hist(2)).clone()))),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!((r.appended, r.duplicates_ignored, r.rejected()), (2, 1, 0));
    let r = db
        .append_values(
            vec![
                // Another histogram at a stored timestamp.
                (l.clone(), 2000, h(hist(3))),
                // A float at a histogram's timestamp.
                (l.clone(), 2000, SampleValue::Float(1.0)),
                // Older than the newest sample, inside the window: kept out of order.
                (l.clone(), 1500, h(hist(3))),
                // The same again: ignored; a different one: refused.
                (l.clone(), 1500, h(hist(3))),
                (l.clone(), 1500, h(hist(4))),
                // Older than the window: out of order.
                (l.clone(), 2000 - 601_000, h(hist(3))),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            r.appended,
            r.duplicates_ignored,
            r.duplicate_timestamp,
            r.out_of_order
        ),
        (1, 1, 3, 1)
    );
    assert_eq!(
        r.first_error().unwrap().to_string().split(':').next(),
        Some("duplicate sample for timestamp")
    );
    // A series switches to floats (a staleness marker, as Prometheus writes for a vanished
    // histogram series), back to histograms, and a float is still accepted out of order
    // inside the window.
    let r = db
        .append_values(
            vec![
                (l.clone(), 3000, SampleValue::Float(tsdb::stale_nan())),
                (l.clone(), 4000, h(hist(4))),
                (l.clone(), 5000, SampleValue::Float(5.0)),
                (l.clone(), 4500, SampleValue::Float(4.5)),
            ],
            false,
        )
        .await
        .unwrap();
    assert_eq!((r.appended, r.rejected()), (4, 0));
    // All or nothing: one bad histogram keeps the good float out too.
    let r = db
        .append_values(
            vec![
                (series("other", "a"), 1000, SampleValue::Float(1.0)),
                (l.clone(), -700_000, h(hist(9))),
            ],
            true,
        )
        .await
        .unwrap();
    assert_eq!((r.appended, r.out_of_order), (0, 1));
    assert!(read_all(&db, "other").is_empty());
    let got = read_all(&db, "lat");
    let (_, floats, hists) = &got[0];
    let floats: Vec<(i64, u64)> = floats.iter().map(|s| (s.0, s.1.to_bits())).collect();
    assert_eq!(
        floats,
        [
            (3000, tsdb::STALE_NAN_BITS),
            (4500, 4.5f64.to_bits()),
            (5000, 5.0f64.to_bits())
        ]
    );
    assert_eq!(
        hists.iter().map(|x| x.0).collect::<Vec<_>>(),
        [1000, 1500, 2000, 4000]
    );
    assert_eq!(hists[1].1, *hist(3));
    assert_eq!(hists[2].1, *hist(2));
    // A range that holds only the float part selects no histograms, and the reverse.
    let s = db
        .select(&[Matcher::equal("__name__", "lat")], 3000, 3000)
        .unwrap()
        .next()
        .unwrap();
    assert_eq!(s.histograms().count(), 0);
    assert_eq!(s.samples().count(), 1);
    let s = db
        .select(&[Matcher::equal("__name__", "lat")], 1000, 2000)
        .unwrap()
        .next()
        .unwrap();
    assert_eq!((s.histograms().count(), s.samples().count()), (3, 0));
}

/// Writes `minutes` of a mixed workload: a histogram series, a float series, and a series
/// that switches kind every 40 minutes.
async fn write_mixed(db: &Tsdb, from: i64, to: i64, maintain_every: i64) -> usize {
    let mut written = 0;
    for m in from..to {
        let t = m * MIN;
        let switch = if (m / 40) % 2 == 0 {
            h(hist(m))
        } else {
            SampleValue::Float(m as f64)
        };
        db.append_values(
            vec![
                (series("lat", "a"), t, h(hist(m))),
                (series("up", "a"), t, SampleValue::Float(1.0)),
                (series("mixed", "a"), t, switch),
            ],
            true,
        )
        .await
        .unwrap();
        if maintain_every > 0 && m % maintain_every == 0 {
            written += db.maintain().await.unwrap().blocks_written;
        }
    }
    written
}

fn check_mixed(db: &Tsdb, from: i64, to: i64) {
    let lat = read_all(db, "lat");
    let want: Vec<(i64, FloatHistogram)> =
        (from..to).map(|m| (m * MIN, (*hist(m)).clone())).collect();
    assert_eq!(lat[0].2.len(), want.len());
    assert_eq!(lat[0].2, want);
    assert!(lat[0].1.is_empty());
    let mixed = read_all(db, "mixed");
    let (_, floats, hists) = &mixed[0];
    for m in from..to {
        if (m / 40) % 2 == 0 {
            assert!(hists.contains(&(m * MIN, (*hist(m)).clone())), "{m}");
        } else {
            assert!(floats.contains(&(m * MIN, m as f64)), "{m}");
        }
    }
    assert_eq!((floats.len() + hists.len()) as i64, to - from);
    assert_eq!(read_all(db, "up")[0].1.len() as i64, to - from);
}

#[tokio::test]
async fn histograms_survive_replay_checkpoints_blocks_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.block_range = std::time::Duration::from_secs(3600);
    cfg.retention = std::time::Duration::from_secs(100 * 3600);
    {
        let db = Tsdb::open(cfg.clone()).unwrap();
        assert_eq!(write_mixed(&db, 0, 100, 0).await, 0);
        check_mixed(&db, 0, 100);
        db.sync().await.unwrap();
    }
    // Live WAL records replay.
    let db = Tsdb::open(cfg.clone()).unwrap();
    check_mixed(&db, 0, 100);
    // Head cuts: blocks, checkpoints with histogram chunks, compaction of 1 h blocks into
    // a 3 h one.
    let written = write_mixed(&db, 100, 5 * 60, 20).await;
    assert!(written >= 3, "{written}");
    let r = db.maintain().await.unwrap();
    assert!(!db.blocks().is_empty());
    assert!(
        db.blocks().iter().any(|b| b.1 - b.0 == 3 * HOUR),
        "{:?} {r:?}",
        db.blocks()
    );
    check_mixed(&db, 0, 5 * 60);
    db.sync().await.unwrap();
    drop(db);
    // After the restart the head comes back from the checkpoint (its older segments are
    // gone) and the blocks from disk.
    assert!(!dir.path().join("wal/00000000000000000000.wal").exists());
    let db = Tsdb::open(cfg.clone()).unwrap();
    check_mixed(&db, 0, 5 * 60);
    // A histogram of a range already in a block is out of bounds.
    let r = db
        .append_values(vec![(series("lat", "b"), 30 * MIN, h(hist(1)))], false)
        .await
        .unwrap();
    assert_eq!(r.out_of_bounds, 1);
    drop(db);
    // Retention drops old blocks, histogram ones included.
    cfg.retention = std::time::Duration::from_secs(3600);
    let db = Tsdb::open(cfg).unwrap();
    db.maintain().await.unwrap();
    let lat = read_all(&db, "lat");
    let first = lat[0].2.first().unwrap().0;
    assert!(first >= 3 * HOUR, "{first}");
    assert_eq!(lat[0].2.last().unwrap().0, (5 * 60 - 1) * MIN);
}

/// Histograms arriving out of order inside the window are kept through blocks,
/// checkpoints and replay, in time order with the in-order ones.
#[tokio::test]
async fn out_of_order_histograms_reach_blocks_and_survive_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.block_range = std::time::Duration::from_secs(3600);
    cfg.out_of_order_window = std::time::Duration::from_secs(1800);
    cfg.retention = std::time::Duration::from_secs(100 * 3600);
    let l = series("late", "a");
    {
        let db = Tsdb::open(cfg.clone()).unwrap();
        for m in (0..240i64).step_by(2) {
            // The even minute in order, then the odd minute before it, a minute late.
            let mut batch = vec![(l.clone(), m * MIN, h(hist(m)))];
            if m > 0 {
                batch.push((l.clone(), (m - 1) * MIN, h(hist(m - 1))));
            }
            let r = db.append_values(batch, true).await.unwrap();
            assert_eq!(r.rejected(), 0, "{m}: {r:?}");
            if m % 30 == 0 {
                db.maintain().await.unwrap();
            }
        }
        db.maintain().await.unwrap();
        assert!(!db.blocks().is_empty(), "{:?}", db.blocks());
        let got = read_all(&db, "late");
        let want: Vec<(i64, FloatHistogram)> =
            (0..239).map(|m| (m * MIN, (*hist(m)).clone())).collect();
        assert_eq!(got[0].2, want);
        db.sync().await.unwrap();
    }
    let db = Tsdb::open(cfg).unwrap();
    let got = read_all(&db, "late");
    assert_eq!(got[0].2.len(), 239);
    assert!(got[0].2.windows(2).all(|w| w[0].0 + MIN == w[1].0));
}

#[test]
fn gauge_hints_and_custom_buckets_are_kept() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let db = Tsdb::open(config(dir.path())).unwrap();
        let mut g = (*hist(3)).clone();
        g.counter_reset_hint = CounterResetHint::Gauge;
        let nhcb = FloatHistogram {
            schema: model::histogram::CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 2.0,
            positive_spans: vec![Span {
                offset: 0,
                length: 2,
            }],
            positive_buckets: vec![1.0, 2.0],
            custom_values: vec![0.5, 1.0],
            ..Default::default()
        };
        db.append_values(
            vec![
                (series("g", "a"), 1, h(Arc::new(g.clone()))),
                (series("g", "a"), 2, h(Arc::new(nhcb.clone()))),
            ],
            false,
        )
        .await
        .unwrap();
        db.sync().await.unwrap();
        drop(db);
        let db = Tsdb::open(config(dir.path())).unwrap();
        let got = read_all(&db, "g");
        assert_eq!(got[0].2, [(1, g), (2, nhcb)]);
    });
}

const CHILD_DIR: &str = "TSDB_HIST_TEST_CHILD_DIR";

fn child_config(dir: &std::path::Path) -> TsdbConfig {
    let mut cfg = TsdbConfig::new(dir);
    cfg.wal.fsync = FsyncPolicy::Always;
    cfg.block_range = std::time::Duration::from_secs(3600);
    cfg.wal.segment_bytes = 32 << 10;
    cfg
}

/// Not a test on its own: the child process of the SIGKILL test. It appends histogram
/// batches (cutting blocks as it goes) and prints each batch number once acknowledged.
#[tokio::test]
async fn hist_sigkill_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let db = Tsdb::open(child_config(dir.as_ref())).unwrap();
    let mut out = std::io::stdout();
    for b in 0i64.. {
        let batch = (0..20)
            .map(|i| (series("k", &i.to_string()), b * 10 * MIN, h(hist(b))))
            .collect();
        db.append_values(batch, true).await.unwrap();
        writeln!(out, "ack {b}").unwrap();
        out.flush().unwrap();
        if b % 3 == 0 {
            db.maintain().await.unwrap();
        }
    }
}

#[test]
fn sigkill_loses_no_acknowledged_histogram() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hist_sigkill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = -1i64;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(n) = line.unwrap().strip_prefix("ack ") {
            acked = n.parse().unwrap();
            if acked >= 40 {
                break;
            }
        }
    }
    // Child::kill sends SIGKILL on Unix: no destructor, no flush.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acked >= 40, "child stopped early");
    let db = Tsdb::open(child_config(dir.path())).unwrap();
    assert!(!db.blocks().is_empty(), "the child cut no block");
    let got = read_all(&db, "k");
    assert_eq!(got.len(), 20);
    for (labels, floats, hists) in got {
        assert!(floats.is_empty());
        assert!(hists.len() as i64 > acked, "{labels}: {}", hists.len());
        for (i, (t, hh)) in hists.iter().enumerate() {
            assert_eq!(*t, i as i64 * 10 * MIN);
            assert_eq!(*hh, *hist(i as i64));
        }
    }
}
