//! The database through its public API: WAL-first appends, rejections, replay after a clean
//! close and after SIGKILL of a real child process, and the querier.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use tsdb::Labels;
use tsdb::{
    FsyncPolicy, MatchOp, Matcher, Querier, Rejection, Tsdb, TsdbConfig, TsdbError, WalOptions,
};

fn config(dir: &std::path::Path) -> TsdbConfig {
    let mut cfg = TsdbConfig::new(dir);
    cfg.wal = WalOptions {
        segment_bytes: 1 << 20,
        fsync: FsyncPolicy::Never,
    };
    cfg
}

fn series(name: &str, job: &str) -> Labels {
    Labels::new([("__name__", name), ("job", job)]).unwrap()
}

fn eq(name: &str, value: &str) -> Matcher {
    Matcher::equal(name, value)
}

fn samples_of(db: &Tsdb, ms: &[Matcher]) -> Vec<(String, Vec<(i64, f64)>)> {
    db.select(ms, i64::MIN, i64::MAX)
        .unwrap()
        .map(|s| (s.labels.to_string(), s.samples().collect()))
        .collect()
}

#[tokio::test]
async fn append_query_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Tsdb::open(config(dir.path())).unwrap();
        let mut batch = Vec::new();
        for i in 0..500 {
            batch.push((series("up", "a"), i * 15_000, 1.0));
            batch.push((series("req_total", "a"), i * 15_000, i as f64));
        }
        batch.push((series("up", "b"), 0, tsdb::stale_nan()));
        let r = db.append(batch).await.unwrap();
        assert_eq!(r.appended, 1001);
        assert_eq!(r.rejected(), 0);
        let names = db
            .label_values("__name__", &[], i64::MIN, i64::MAX)
            .unwrap();
        assert_eq!(names, ["req_total", "up"]);
        let got = samples_of(&db, &[eq("__name__", "up")]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.len(), 500);
        db.sync().await.unwrap();
    }
    let db = Tsdb::open(config(dir.path())).unwrap();
    assert!(db.stats().replayed_records >= 1);
    let got = samples_of(&db, &[eq("__name__", "req_total")]);
    assert_eq!(got[0].0, r#"req_total{job="a"}"#);
    let want: Vec<(i64, f64)> = (0..500).map(|i| (i * 15_000, i as f64)).collect();
    assert_eq!(got[0].1, want);
    // The stale marker comes back bit for bit.
    let stale = samples_of(&db, &[eq("job", "b")]);
    assert!(tsdb::is_stale_nan(stale[0].1[0].1));
    assert!(!tsdb::is_stale_nan(f64::NAN));
    // Range restriction and label queries restricted by matchers.
    let part: Vec<_> = db
        .select(&[eq("__name__", "req_total")], 15_000, 45_000)
        .unwrap()
        .next()
        .unwrap()
        .samples()
        .collect();
    assert_eq!(part, [(15_000, 1.0), (30_000, 2.0), (45_000, 3.0)]);
    let re = Matcher::new(MatchOp::Regex, "job", "b|c").unwrap();
    assert_eq!(
        db.label_values("__name__", &[re], i64::MIN, i64::MAX)
            .unwrap(),
        ["up"]
    );
    assert_eq!(
        db.label_names(&[], i64::MIN, i64::MAX).unwrap(),
        ["__name__", "job"]
    );
}

#[tokio::test]
async fn rejections_are_counted_and_the_rest_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(config(dir.path())).unwrap();
    let s = series("m", "a");
    db.append(vec![(s.clone(), 10_000, 1.0)]).await.unwrap();
    let r = db
        .append(vec![
            (s.clone(), 5_000, 1.0),  // out of order
            (s.clone(), 10_000, 2.0), // duplicate timestamp, different value
            (s.clone(), 10_000, 1.0), // exact re-send: ignored
            (s.clone(), 20_000, 2.0),
            (s.clone(), 15_000, 2.0), // out of order within the batch
            (s.clone(), 20_000, 3.0), // duplicate within the batch
            (series("m", "b"), 1, 1.0),
        ])
        .await
        .unwrap();
    assert_eq!(r.appended, 2);
    assert_eq!(r.out_of_order, 2);
    assert_eq!(r.duplicate_timestamp, 2);
    assert_eq!(r.duplicates_ignored, 1);
    assert_eq!(r.rejections[0].reason, Rejection::OutOfOrder);
    let err = r.first_error().unwrap().to_string();
    assert!(
        err.starts_with(
            r#"out of order sample: series m{job="a"} at timestamp 5000 (4 samples rejected)"#
        ),
        "{err}"
    );
    assert_eq!(db.stats().out_of_order_samples, 2);
    let got = samples_of(&db, &[eq("job", "a")]);
    assert_eq!(got[0].1, [(10_000, 1.0), (20_000, 2.0)]);
    // Rejected samples never reach the WAL: replay gives the same answer.
    drop(db);
    let db = Tsdb::open(config(dir.path())).unwrap();
    assert_eq!(
        samples_of(&db, &[eq("job", "a")])[0].1,
        [(10_000, 1.0), (20_000, 2.0)]
    );
}

#[tokio::test]
async fn all_or_nothing_appends_store_nothing_when_one_sample_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(config(dir.path())).unwrap();
    let s = series("m", "a");
    db.append(vec![(s.clone(), 10_000, 1.0)]).await.unwrap();
    let records = db.wal_stats().records_written;
    let r = db
        .append_all_or_nothing(vec![
            (series("m", "b"), 1_000, 1.0),
            (s.clone(), 20_000, 2.0),
            (s.clone(), 5_000, 1.0), // out of order: fails the whole batch
        ])
        .await
        .unwrap();
    assert_eq!((r.appended, r.out_of_order), (0, 1));
    assert!(r.first_error().is_some());
    assert_eq!(db.wal_stats().records_written, records);
    assert_eq!(samples_of(&db, &[eq("job", "a")])[0].1, [(10_000, 1.0)]);
    assert!(samples_of(&db, &[eq("job", "b")]).is_empty());
    // A clean batch is stored whole.
    let r = db
        .append_all_or_nothing(vec![(s.clone(), 20_000, 2.0), (s, 10_000, 1.0)])
        .await
        .unwrap();
    assert_eq!((r.appended, r.duplicates_ignored, r.rejected()), (1, 1, 0));
}

#[tokio::test]
async fn samples_far_in_the_future_are_out_of_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(config(dir.path())).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = db
        .append(vec![
            (series("m", "a"), now, 1.0),
            (series("m", "a"), now + 2 * 3600 * 1000, 2.0),
        ])
        .await
        .unwrap();
    assert_eq!((r.appended, r.out_of_bounds), (1, 1));
    assert_eq!(r.rejections[0].reason, Rejection::OutOfBounds);
}

#[tokio::test]
async fn bad_batches_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(config(dir.path())).unwrap();
    let err = db
        .append(vec![(series("m", "a"), 1, 1.0), (Labels::empty(), 2, 2.0)])
        .await
        .unwrap_err();
    assert!(matches!(err, TsdbError::EmptyLabels));
    assert!(samples_of(&db, &[eq("__name__", "m")]).is_empty());
    assert_eq!(db.wal_stats().records_written, 0);
}

#[tokio::test]
async fn out_of_order_window() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.out_of_order_window = std::time::Duration::from_secs(60);
    {
        let db = Tsdb::open(cfg.clone()).unwrap();
        let s = series("m", "a");
        db.append(vec![(s.clone(), 100_000, 1.0), (s.clone(), 130_000, 3.0)])
            .await
            .unwrap();
        let r = db
            .append(vec![(s.clone(), 115_000, 2.0), (s.clone(), 30_000, 0.0)])
            .await
            .unwrap();
        assert_eq!((r.appended, r.out_of_order), (1, 1));
    }
    let db = Tsdb::open(cfg).unwrap();
    let got = samples_of(&db, &[eq("__name__", "m")]);
    assert_eq!(got[0].1, [(100_000, 1.0), (115_000, 2.0), (130_000, 3.0)]);
}

#[tokio::test]
async fn concurrent_appenders_share_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.wal.fsync = FsyncPolicy::Always;
    let db = std::sync::Arc::new(Tsdb::open(cfg.clone()).unwrap());
    let mut tasks = Vec::new();
    for w in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..20 {
                let batch = (0..50)
                    .map(|i| (series("m", &format!("w{w}-{i}")), b * 1000, b as f64))
                    .collect();
                let r = db.append(batch).await.unwrap();
                assert_eq!(r.appended, 50);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.stats().head_series, 400);
    assert_eq!(db.stats().head_samples, 8000);
    drop(db);
    let db = Tsdb::open(cfg).unwrap();
    assert_eq!(db.stats().head_samples, 8000);
}

const CHILD_DIR: &str = "TSDB_TEST_CHILD_DIR";
/// Set to make the child cut blocks as it goes (1 h blocks, a batch every 10 minutes of data).
const CHILD_BLOCKS: &str = "TSDB_TEST_CHILD_BLOCKS";
const STEP_MS: i64 = 600_000;

fn child_config(dir: &std::path::Path, blocks: bool) -> TsdbConfig {
    let mut cfg = TsdbConfig::new(dir);
    cfg.wal.fsync = FsyncPolicy::Always;
    if blocks {
        cfg.block_range = std::time::Duration::from_secs(3600);
        cfg.wal.segment_bytes = 32 << 10;
    }
    cfg
}

/// Not a test on its own: the child process of the SIGKILL tests. It appends batches
/// forever and prints the number of each batch once its append returned.
#[tokio::test]
async fn sigkill_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let blocks = std::env::var(CHILD_BLOCKS).is_ok();
    let db = Tsdb::open(child_config(dir.as_ref(), blocks)).unwrap();
    let mut out = std::io::stdout();
    for b in 0i64.. {
        let batch = (0..100)
            .map(|i| (series("k", &i.to_string()), b * STEP_MS, b as f64))
            .collect();
        db.append(batch).await.unwrap();
        writeln!(out, "ack {b}").unwrap();
        out.flush().unwrap();
        if blocks && b % 3 == 0 {
            db.maintain().await.unwrap();
        }
    }
}

fn sigkill_run(blocks: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "sigkill_child",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR, dir.path())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    if blocks {
        cmd.env(CHILD_BLOCKS, "1");
    }
    let mut child = cmd.spawn().unwrap();
    let mut acked = -1i64;
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ack ") {
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
    let db = Tsdb::open(child_config(dir.path(), blocks)).unwrap();
    if blocks {
        assert!(!db.blocks().is_empty(), "the child cut no block");
    }
    let got = db
        .select(&[eq("__name__", "k")], i64::MIN, i64::MAX)
        .unwrap();
    let mut n = 0;
    for s in got {
        let ts: Vec<i64> = s.samples().map(|x| x.0).collect();
        // Every acknowledged batch is there, once, in order.
        assert!(
            ts.len() as i64 > acked,
            "{}: {} samples, {acked} acknowledged",
            s.labels,
            ts.len()
        );
        assert!(ts.iter().enumerate().all(|(i, &t)| t == i as i64 * STEP_MS));
        n += 1;
    }
    assert_eq!(n, 100);
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    sigkill_run(false);
}

#[test]
fn sigkill_while_cutting_blocks_loses_nothing_acknowledged() {
    sigkill_run(true);
}

#[tokio::test]
async fn blocks_cut_queried_replayed_and_retained() {
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.block_range = std::time::Duration::from_secs(3600);
    cfg.retention = std::time::Duration::from_secs(5 * 3600);
    cfg.wal.segment_bytes = 64 << 10;
    let db = Tsdb::open(cfg.clone()).unwrap();
    let mut written = 0;
    for m in 0..=600i64 {
        let t = m * MIN;
        let mut batch = vec![(series("c", "a"), t, m as f64)];
        // A series that stops after 90 minutes: it moves to a block and leaves the head.
        if m < 90 {
            batch.push((series("short", "a"), t, 1.0));
        }
        db.append(batch).await.unwrap();
        if m % 60 == 0 {
            written += db.maintain().await.unwrap().blocks_written;
        }
    }
    let r = db.maintain().await.unwrap();
    written += r.blocks_written;
    // Ranges [0h,1h) .. [8h,9h) are cut (the head reaches 10h >= 9h + 30m); retention keeps
    // blocks ending after 10h - 5h.
    assert_eq!(written, 9);
    let blocks = db.blocks();
    assert_eq!(
        blocks.iter().map(|b| b.0 / HOUR).collect::<Vec<_>>(),
        [5, 6, 7, 8]
    );
    assert_eq!(db.stats().head_series, 1);
    let check = |db: &Tsdb| {
        let got = samples_of(db, &[eq("__name__", "c")]);
        assert_eq!(got.len(), 1);
        let want: Vec<(i64, f64)> = (300..=600).map(|m| (m * MIN, m as f64)).collect();
        assert_eq!(got[0].1, want);
        // A range across a block boundary and into the head.
        let part: Vec<i64> = db
            .select(&[eq("__name__", "c")], 9 * HOUR - MIN, 9 * HOUR + MIN)
            .unwrap()
            .next()
            .unwrap()
            .samples()
            .map(|s| s.0 / MIN)
            .collect();
        assert_eq!(part, [539, 540, 541]);
        // The short series is gone with its old blocks.
        assert_eq!(
            db.label_values("__name__", &[], i64::MIN, i64::MAX)
                .unwrap(),
            ["c"]
        );
    };
    check(&db);
    // Samples of a range that is already a block are out of bounds.
    let r = db
        .append(vec![(series("c", "b"), 8 * HOUR, 1.0)])
        .await
        .unwrap();
    assert_eq!(r.out_of_bounds, 1);
    assert!(r
        .first_error()
        .unwrap()
        .to_string()
        .starts_with("out of bounds"));
    // The WAL only keeps what the head still needs.
    assert!(db.wal_stats().segments < 8, "{:?}", db.wal_stats());
    // The segment that first defined series `c` is gone: after the restart below, the WAL
    // knows `c` only from the checkpoints written at cuts.
    assert!(!dir.path().join("wal/00000000000000000001.wal").exists());
    drop(db);
    let db = Tsdb::open(cfg).unwrap();
    check(&db);
    assert_eq!(db.blocks().len(), 4);
}

#[tokio::test]
async fn blocks_compact_into_larger_ranges() {
    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.block_range = std::time::Duration::from_secs(3600);
    cfg.retention = std::time::Duration::from_secs(100 * 3600);
    let db = Tsdb::open(cfg.clone()).unwrap();
    let mut compacted = 0;
    for m in 0..=(10 * 60) {
        let mut batch = vec![(series("c", "a"), m * MIN, m as f64)];
        // A series that exists only in some of the small blocks.
        if (120..240).contains(&m) {
            batch.push((series("mid", "a"), m * MIN, 1.0));
        }
        db.append(batch).await.unwrap();
        if m % 30 == 0 {
            compacted += db.maintain().await.unwrap().blocks_compacted;
        }
    }
    // Nine 1 h blocks were cut; [0h,9h) became one 9 h block (after three 3 h ones).
    assert!(compacted >= 9, "{compacted}");
    let ranges: Vec<(i64, i64)> = db
        .blocks()
        .iter()
        .map(|b| (b.0 / HOUR, b.1 / HOUR))
        .collect();
    assert_eq!(ranges, [(0, 9)]);
    let check = |db: &Tsdb| {
        let got = samples_of(db, &[eq("__name__", "c")]);
        let want: Vec<(i64, f64)> = (0..=600).map(|m| (m * MIN, m as f64)).collect();
        assert_eq!(got[0].1, want);
        let mid = samples_of(db, &[eq("__name__", "mid")]);
        assert_eq!(mid[0].1.len(), 120);
    };
    check(&db);
    drop(db);
    // A crash after the compacted block was written but before its sources were deleted
    // leaves overlapping files; open keeps the compacted one.
    let mut chunk = tsdb::chunk::XorChunk::new();
    for m in 0..60 {
        chunk.append(m * MIN, m as f64);
    }
    let stale_source = tsdb::head::ClosedChunk {
        bytes: chunk.bytes().into(),
        min_t: 0,
        max_t: 59 * MIN,
    };
    tsdb::block::write_block(
        &dir.path().join("blocks"),
        0,
        HOUR,
        vec![(series("c", "a"), vec![stale_source], Vec::new())],
    )
    .unwrap();
    let db = Tsdb::open(cfg).unwrap();
    assert_eq!(db.blocks().len(), 1);
    check(&db);
}

/// A head cut writes the head's samples to the WAL as a checkpoint and deletes every older
/// segment; replay gives back every sample bit for bit (decimals, other floats, staleness
/// markers, -0.0, out-of-order samples), also when the older segments survived a crash
/// between the checkpoint and their deletion.
#[tokio::test]
async fn head_cut_checkpoints_samples_and_drops_older_segments() {
    const MIN: i64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.block_range = std::time::Duration::from_secs(3600);
    cfg.out_of_order_window = std::time::Duration::from_secs(600);
    cfg.wal.segment_bytes = 2 << 10;
    let value = |k: usize, m: i64| match (k + m as usize) % 9 {
        0 => tsdb::stale_nan(),
        1 => -0.0,
        2 => f64::from_bits(0x7ff8_0000_0000_1234),
        3 => 0.1 + m as f64 * 0.2,
        4 => f64::NEG_INFINITY,
        _ => m as f64 / 10.0 + k as f64,
    };
    let names: Vec<Labels> = (0..20).map(|k| series("m", &format!("j{k}"))).collect();
    let wal_files = |dir: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let b = std::fs::read(&p).unwrap();
                (p, b)
            })
            .collect();
        v.sort();
        v
    };
    let before;
    let want;
    {
        let db = Tsdb::open(cfg.clone()).unwrap();
        for m in 0..=100i64 {
            let batch: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(k, l)| (l.clone(), m * MIN, value(k, m)))
                .collect();
            db.append(batch).await.unwrap();
        }
        // Out-of-order samples inside the window, in the head when it is cut.
        let r = db
            .append(vec![(names[0].clone(), 95 * MIN + 7, 4.5)])
            .await
            .unwrap();
        assert_eq!(r.appended, 1);
        db.sync().await.unwrap();
        before = wal_files(dir.path());
        assert!(before.len() > 3, "{}", before.len());
        assert_eq!(db.maintain().await.unwrap().blocks_written, 1);
        // Everything before the checkpoint's segment is gone.
        let after = wal_files(dir.path());
        assert!(after.len() <= 2, "{:?}", after.len());
        let wal_bytes: usize = after.iter().map(|f| f.1.len()).sum();
        assert!(wal_bytes < before.iter().map(|f| f.1.len()).sum::<usize>() / 2);
        // Live records after the checkpoint.
        for m in 101..=110i64 {
            let batch: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(k, l)| (l.clone(), m * MIN, value(k, m)))
                .collect();
            db.append(batch).await.unwrap();
        }
        db.sync().await.unwrap();
        want = samples_of(&db, &[eq("__name__", "m")]);
        assert_eq!(want.len(), 20);
        assert_eq!(want[0].1.len(), 112);
    }
    let bits = |s: &[(String, Vec<(i64, f64)>)]| -> Vec<(String, Vec<(i64, u64)>)> {
        s.iter()
            .map(|(l, v)| (l.clone(), v.iter().map(|x| (x.0, x.1.to_bits())).collect()))
            .collect()
    };
    let db = Tsdb::open(cfg.clone()).unwrap();
    assert_eq!(bits(&samples_of(&db, &[eq("__name__", "m")])), bits(&want));
    drop(db);
    // A crash between the checkpoint and the deletion leaves the older segments: replay
    // still gives the same samples.
    for (path, bytes) in &before {
        if !path.exists() {
            std::fs::write(path, bytes).unwrap();
        }
    }
    let db = Tsdb::open(cfg).unwrap();
    assert_eq!(bits(&samples_of(&db, &[eq("__name__", "m")])), bits(&want));
}
