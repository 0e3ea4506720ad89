//! Start timestamps through the database's public API: stored beside float and histogram
//! samples, and kept by everything a sample lives through (WAL replay, head-cut
//! checkpoints, blocks, compaction), while series without them read back with none.

use std::sync::Arc;

use model::histogram::FloatHistogram;
use tsdb::{
    FsyncPolicy, Labels, Matcher, Querier, SampleValue, Tsdb, TsdbConfig, WalOptions, WithStart,
};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn config(dir: &std::path::Path) -> TsdbConfig {
    let mut cfg = TsdbConfig::new(dir);
    cfg.wal = WalOptions {
        segment_bytes: 64 << 10,
        fsync: FsyncPolicy::Never,
    };
    cfg.block_range = std::time::Duration::from_secs(3600);
    cfg.retention = std::time::Duration::from_secs(100 * 3600);
    cfg
}

fn series(name: &str) -> Labels {
    Labels::new([("__name__", name), ("job", "a")]).unwrap()
}

/// The start timestamp the workload gives the cumulative series at minute `m`: a process
/// restart every 45 minutes, and none at all in every 10th minute.
fn cumulative_st(m: i64) -> i64 {
    if m % 10 == 9 {
        0
    } else {
        (m / 45) * 45 * MIN + 1
    }
}

/// Minute `m` of the workload: a cumulative float series, a delta histogram series (each
/// sample starting at the previous one), and a plain series without start timestamps.
async fn write(db: &Tsdb, from: i64, to: i64, maintain_every: i64) {
    for m in from..to {
        let t = m * MIN;
        let h = Arc::new(FloatHistogram {
            count: 1.0,
            sum: 2.0,
            ..Default::default()
        });
        db.append_with_start(
            vec![
                (
                    series("requests_total"),
                    t,
                    WithStart {
                        value: SampleValue::Float(m as f64),
                        start_ms: cumulative_st(m),
                    },
                ),
                (
                    series("latency"),
                    t,
                    WithStart {
                        value: SampleValue::Histogram(h),
                        start_ms: t - MIN,
                    },
                ),
                (
                    series("up"),
                    t,
                    WithStart {
                        value: SampleValue::Float(1.0),
                        start_ms: 0,
                    },
                ),
            ],
            true,
        )
        .await
        .unwrap();
        if maintain_every > 0 && m % maintain_every == 0 {
            db.maintain().await.unwrap();
        }
    }
}

fn sts(db: &Tsdb, name: &str, from: i64, to: i64) -> Vec<(i64, i64)> {
    let got: Vec<_> = db
        .select(&[Matcher::equal("__name__", name)], from, to)
        .unwrap()
        .collect();
    assert_eq!(got.len(), 1, "{name}");
    got[0].start_timestamps().to_vec()
}

fn check(db: &Tsdb, from: i64, to: i64) {
    let want: Vec<(i64, i64)> = (from..to)
        .map(|m| (m * MIN, cumulative_st(m)))
        .filter(|e| e.1 != 0)
        .collect();
    assert_eq!(sts(db, "requests_total", from * MIN, to * MIN - 1), want);
    // The first sample's start (minute 0) is 0: none.
    let want: Vec<(i64, i64)> = (from.max(2)..to)
        .map(|m| (m * MIN, (m - 1) * MIN))
        .collect();
    assert_eq!(sts(db, "latency", from * MIN, to * MIN - 1), want);
    assert!(sts(db, "up", from * MIN, to * MIN - 1).is_empty());
    // The samples themselves are untouched.
    let up: Vec<_> = db
        .select(
            &[Matcher::equal("__name__", "up")],
            from * MIN,
            to * MIN - 1,
        )
        .unwrap()
        .collect();
    assert_eq!(up[0].samples().count() as i64, to - from);
}

#[tokio::test]
async fn start_timestamps_survive_replay_checkpoints_blocks_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    {
        let db = Tsdb::open(cfg.clone()).unwrap();
        write(&db, 1, 100, 0).await;
        check(&db, 1, 100);
        // A range inside one chunk sees only its own start timestamps.
        check(&db, 30, 40);
        db.sync().await.unwrap();
    }
    // Live WAL records (version 6) replay.
    let db = Tsdb::open(cfg.clone()).unwrap();
    check(&db, 1, 100);
    // Head cuts: blocks, checkpoints with start-timestamp chunks, compaction of 1 h blocks
    // into a 3 h one.
    write(&db, 100, 5 * 60, 20).await;
    db.maintain().await.unwrap();
    assert!(
        db.blocks().iter().any(|b| b.1 - b.0 == 3 * HOUR),
        "{:?}",
        db.blocks()
    );
    check(&db, 1, 5 * 60);
    check(&db, 170, 190);
    db.sync().await.unwrap();
    drop(db);
    // After a restart the head comes back from the checkpoint, the rest from blocks.
    assert!(!dir.path().join("wal/00000000000000000000.wal").exists());
    let db = Tsdb::open(cfg).unwrap();
    check(&db, 1, 5 * 60);
}
