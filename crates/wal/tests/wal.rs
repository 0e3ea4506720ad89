//! Behaviour of the write-ahead log through its public API, on real files: round trips across
//! reopen, recovery of torn tails, corruption reports, group commit, rotation and removal,
//! and the fsync policies. Each test uses its own temporary directory.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wal::{FsyncPolicy, Position, SegmentId, Wal, WalError, WalOptions, MAX_RECORD_BYTES};

fn opts(fsync: FsyncPolicy) -> WalOptions {
    WalOptions {
        segment_bytes: 64 << 20,
        fsync,
    }
}

fn small_segments(fsync: FsyncPolicy) -> WalOptions {
    WalOptions {
        segment_bytes: 4096,
        fsync,
    }
}

/// A record whose content depends on `i`, of a size that varies with `i`.
fn record(i: usize) -> Vec<u8> {
    let len = (i * 37) % 1500;
    (0..len).map(|j| (i * 31 + j) as u8).collect()
}

fn replay_all(wal: &Wal, from: SegmentId) -> Vec<(Position, Vec<u8>)> {
    let mut out = Vec::new();
    wal.replay(from, |pos, rec| {
        out.push((pos, rec.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

/// Segment files in `dir`, sorted by name (that is, by id).
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    files
}

fn last_segment(dir: &Path) -> PathBuf {
    segment_files(dir).pop().unwrap()
}

fn append_to_file(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// Appends records `range` with the given log, returning their positions.
async fn append_range(wal: &Wal, range: std::ops::Range<usize>) -> Vec<Position> {
    let mut positions = Vec::new();
    for i in range {
        positions.push(wal.append(record(i)).await.unwrap());
    }
    positions
}

#[tokio::test]
async fn round_trip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let wal = Wal::open(dir.path(), opts(FsyncPolicy::Always)).unwrap();
        assert!(replay_all(&wal, 0).is_empty());
        append_range(&wal, 0..50).await
    };
    let second = {
        let wal = Wal::open(dir.path(), opts(FsyncPolicy::Always)).unwrap();
        let got = replay_all(&wal, 0);
        assert_eq!(got.len(), 50);
        for (i, (pos, rec)) in got.iter().enumerate() {
            assert_eq!(*pos, first[i]);
            assert_eq!(*rec, record(i));
        }
        // Appends after open go to a new segment.
        let more = append_range(&wal, 50..80).await;
        assert!(more[0].segment > first[49].segment);
        assert_eq!(wal.current_segment(), more[0].segment);
        more
    };
    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Always)).unwrap();
    let got = replay_all(&wal, 0);
    let expected: Vec<(Position, Vec<u8>)> = first
        .iter()
        .chain(second.iter())
        .enumerate()
        .map(|(i, p)| (*p, record(i)))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn rotates_by_size_and_replays_from_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let positions = {
        let wal = Wal::open(dir.path(), small_segments(FsyncPolicy::Never)).unwrap();
        append_range(&wal, 0..200).await
    };
    // Positions only grow, and no segment holding several records passes the bound.
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    for file in segment_files(dir.path()) {
        assert!(fs::metadata(&file).unwrap().len() <= 4096, "{file:?}");
    }
    let wal = Wal::open(dir.path(), small_segments(FsyncPolicy::Never)).unwrap();
    let segments = wal.closed_segments();
    assert!(segments.len() > 10, "{segments:?}");
    let from = segments[segments.len() / 2];
    let got = replay_all(&wal, from);
    let expected: Vec<(Position, Vec<u8>)> = positions
        .iter()
        .enumerate()
        .filter(|(_, p)| p.segment >= from)
        .map(|(i, p)| (*p, record(i)))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    assert!(replay_all(&wal, u64::MAX).is_empty());
}

/// Reopens a log whose last segment got `tail` appended after the records written by
/// `append_range(0..20)`, and checks that the tail is gone and everything else works.
async fn check_torn_tail(tail: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let positions = {
        let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
        append_range(&wal, 0..20).await
    };
    // A fresh log's first segment takes the appends, so it is the last one.
    assert_eq!(segment_files(dir.path()).len(), 1);
    let last = last_segment(dir.path());
    let intact_len = fs::metadata(&last).unwrap().len();
    append_to_file(&last, tail);

    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
    assert_eq!(
        fs::metadata(&last).unwrap().len(),
        intact_len,
        "tail not cut"
    );
    let got = replay_all(&wal, 0);
    assert_eq!(got.len(), 20);
    assert_eq!(got.last().unwrap().0, positions[19]);
    let after = wal.append(b"after".to_vec()).await.unwrap();
    drop(wal);

    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
    let got = replay_all(&wal, 0);
    assert_eq!(got.len(), 21);
    assert_eq!(got[20], (after, b"after".to_vec()));
}

/// A valid frame for `payload`, built by hand so the tests do not trust the crate's encoder.
fn frame(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    let mut out = len.to_vec();
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn torn_tail_half_a_record_is_cut_off() {
    let whole = frame(&[7u8; 1000]);
    check_torn_tail(&whole[..500]).await;
}

#[tokio::test]
async fn torn_tail_partial_frame_header_is_cut_off() {
    check_torn_tail(&[1, 2, 3]).await;
}

#[tokio::test]
async fn torn_tail_zero_fill_is_cut_off() {
    check_torn_tail(&[0u8; 4096]).await;
}

#[tokio::test]
async fn torn_tail_bad_checksum_is_cut_off() {
    let mut f = frame(b"hello world");
    let n = f.len();
    f[n - 1] ^= 0xff;
    check_torn_tail(&f).await;
}

#[tokio::test]
async fn torn_tail_over_bound_length_is_cut_off() {
    let mut f = ((MAX_RECORD_BYTES + 1) as u32).to_le_bytes().to_vec();
    f.extend_from_slice(&[0xab; 64]);
    check_torn_tail(&f).await;
}

#[tokio::test]
async fn segment_torn_at_creation_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
        append_range(&wal, 0..3).await;
    }
    // Reopening starts a second, empty segment; it loses its header, as if the crash hit
    // while creating it.
    drop(Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap());
    assert_eq!(segment_files(dir.path()).len(), 2);
    let last = last_segment(dir.path());
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(5)
        .unwrap();
    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
    assert!(!last.exists());
    assert_eq!(replay_all(&wal, 0).len(), 3);
}

#[tokio::test]
async fn checksum_corruption_in_an_earlier_segment_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
        append_range(&wal, 1..4).await;
        wal.rotate().await.unwrap();
        append_range(&wal, 4..8).await;
    }
    let files = segment_files(dir.path());
    let first = files[0].clone();
    // Flip one payload byte of the first record of the first segment (header 16, frame 8).
    let mut bytes = fs::read(&first).unwrap();
    bytes[16 + 8 + 3] ^= 0x01;
    fs::write(&first, bytes).unwrap();

    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
    let err = wal.replay(0, |_, _| Ok(())).unwrap_err();
    match &err {
        WalError::Corrupt { path, offset, .. } => {
            assert_eq!(*path, first);
            assert_eq!(*offset, 16);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains(&first.display().to_string()), "{message}");
    assert!(message.contains("checksum"), "{message}");
    // The segment is never silently cut: the bytes are still there after the failed replay.
    assert_eq!(
        fs::metadata(&first).unwrap().len(),
        fs::read(&first).unwrap().len() as u64
    );
    // Replaying from the later segment still works.
    let second_id = wal.closed_segments()[1];
    assert_eq!(replay_all(&wal, second_id).len(), 4);
}

#[tokio::test]
async fn bad_header_in_an_earlier_segment_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
        append_range(&wal, 1..4).await;
        wal.rotate().await.unwrap();
        append_range(&wal, 4..8).await;
    }
    let first = segment_files(dir.path())[0].clone();
    let mut bytes = fs::read(&first).unwrap();
    bytes[0] = b'X';
    fs::write(&first, bytes).unwrap();
    match Wal::open(dir.path(), opts(FsyncPolicy::Never)) {
        Err(WalError::Corrupt {
            path,
            offset: 0,
            reason,
        }) => {
            assert_eq!(path, first);
            assert!(reason.contains("magic"), "{reason}");
        }
        Err(other) => panic!("expected corruption, got {other:?}"),
        Ok(_) => panic!("expected corruption, got an open log"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), opts(FsyncPolicy::Always)).unwrap());
    const TASKS: usize = 16;
    const PER_TASK: usize = 25;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let wal = wal.clone();
        handles.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 0..PER_TASK {
                positions.push((
                    t * PER_TASK + i,
                    wal.append(record(t * PER_TASK + i)).await.unwrap(),
                ));
            }
            positions
        }));
    }
    let mut positions = Vec::new();
    for h in handles {
        positions.extend(h.await.unwrap());
    }
    let stats = wal.stats();
    let appends = (TASKS * PER_TASK) as u64;
    assert_eq!(stats.records_written, appends);
    assert!(stats.fsyncs >= 1);
    assert!(
        stats.fsyncs < appends,
        "{} fsyncs for {appends} appends",
        stats.fsyncs
    );
    drop(Arc::try_unwrap(wal).ok().unwrap());

    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Always)).unwrap();
    let mut got = replay_all(&wal, 0);
    positions.sort_by_key(|(_, p)| *p);
    got.sort_by_key(|(p, _)| *p);
    assert_eq!(got.len(), positions.len());
    for ((i, p), (gp, rec)) in positions.iter().zip(&got) {
        assert_eq!(p, gp);
        assert_eq!(*rec, record(*i));
    }
}

#[tokio::test]
async fn rotate_then_remove_older_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Always)).unwrap();
    let a = wal.append(b"a".to_vec()).await.unwrap();
    let id = wal.rotate().await.unwrap();
    assert!(id > a.segment);
    assert_eq!(wal.current_segment(), id);
    let b = wal.append(b"b".to_vec()).await.unwrap();
    assert!(b.segment >= id);
    // The rotated segment is closed, so replay now sees it.
    assert_eq!(replay_all(&wal, 0), vec![(a, b"a".to_vec())]);

    let before = wal.stats();
    assert_eq!(before.segments, 2);
    wal.remove_segments_before(id).unwrap();
    let after = wal.stats();
    assert_eq!(after.segments, 1);
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert!(replay_all(&wal, 0).is_empty());
    // The current segment is never removed, whatever the bound.
    wal.remove_segments_before(u64::MAX).unwrap();
    assert_eq!(segment_files(dir.path()).len(), 1);
    let c = wal.append(b"c".to_vec()).await.unwrap();
    drop(wal);

    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Always)).unwrap();
    assert_eq!(
        replay_all(&wal, 0),
        vec![(b, b"b".to_vec()), (c, b"c".to_vec())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_after_rotate_land_in_the_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Arc::new(Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..4 {
        let (wal, stop) = (wal.clone(), stop.clone());
        handles.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                wal.append(vec![1u8; 100]).await.unwrap();
            }
        }));
    }
    for _ in 0..20 {
        let id = wal.rotate().await.unwrap();
        let pos = wal.append(b"x".to_vec()).await.unwrap();
        assert!(pos.segment >= id, "{pos:?} before {id}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test]
async fn oversized_record_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
    let err = wal
        .append(vec![0u8; MAX_RECORD_BYTES + 1])
        .await
        .unwrap_err();
    assert!(matches!(err, WalError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("smaller"), "{err}");
    // The log keeps working, and an empty record is fine.
    let pos = wal.append(Vec::new()).await.unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
    assert_eq!(replay_all(&wal, 0), vec![(pos, Vec::new())]);
}

#[tokio::test]
async fn never_policy_does_not_fsync_until_asked() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), small_segments(FsyncPolicy::Never)).unwrap();
    append_range(&wal, 0..100).await;
    assert_eq!(wal.stats().fsyncs, 0);
    assert!(wal.closed_segments().len() > 2);
    // An explicit sync covers the current segment and every closed one.
    wal.sync().await.unwrap();
    let synced = wal.stats().fsyncs;
    assert!(synced > 2, "{synced}");
    wal.sync().await.unwrap();
    assert_eq!(wal.stats().fsyncs, synced, "nothing new to sync");
}

#[tokio::test]
async fn interval_policy_acks_before_fsync_and_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(
            dir.path(),
            opts(FsyncPolicy::Interval(Duration::from_secs(3600))),
        )
        .unwrap();
        append_range(&wal, 0..10).await;
        assert_eq!(wal.stats().fsyncs, 0, "acked without fsync");
        // Dropping flushes and fsyncs what is written.
    }
    {
        // An interval too long to compute a deadline for must not panic the writer.
        let wal = Wal::open(dir.path(), opts(FsyncPolicy::Interval(Duration::MAX))).unwrap();
        assert_eq!(replay_all(&wal, 0).len(), 10);
        wal.remove_segments_before(u64::MAX).unwrap();
        wal.append(b"x".to_vec()).await.unwrap();
        assert_eq!(wal.stats().fsyncs, 0);
    }
    let wal = Wal::open(
        dir.path(),
        opts(FsyncPolicy::Interval(Duration::from_millis(5))),
    )
    .unwrap();
    assert_eq!(replay_all(&wal, 0).len(), 1);
    append_range(&wal, 10..20).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while wal.stats().fsyncs == 0 {
        assert!(Instant::now() < deadline, "no background fsync");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[tokio::test]
async fn a_failed_write_refuses_further_appends() {
    let dir = tempfile::tempdir().unwrap();
    let logdir = dir.path().join("wal");
    let wal = Wal::open(&logdir, opts(FsyncPolicy::Always)).unwrap();
    wal.append(b"a".to_vec()).await.unwrap();
    // Rotation must create a file in a directory that no longer exists.
    fs::remove_dir_all(&logdir).unwrap();
    let err = wal.rotate().await.unwrap_err();
    assert!(matches!(err, WalError::Io { .. }), "{err:?}");
    let err = wal.append(b"b".to_vec()).await.unwrap_err();
    assert!(matches!(err, WalError::Failed { .. }), "{err:?}");
    assert!(err.to_string().contains("restart"), "{err}");
    assert!(matches!(wal.sync().await, Err(WalError::Failed { .. })));
}

#[tokio::test]
async fn empty_segments_do_not_pile_up_and_ids_never_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let mut last = 0;
    for _ in 0..5 {
        let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
        assert!(wal.current_segment() > last);
        last = wal.current_segment();
        wal.rotate().await.unwrap();
        wal.rotate().await.unwrap();
    }
    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
    assert!(wal.current_segment() > last);
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(wal.stats().segments, 1);
}

#[tokio::test]
async fn stats_match_the_files_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(dir.path(), small_segments(FsyncPolicy::Never)).unwrap();
        append_range(&wal, 0..50).await;
    }
    let wal = Wal::open(dir.path(), small_segments(FsyncPolicy::Never)).unwrap();
    let positions = append_range(&wal, 50..120).await;
    let id = wal.rotate().await.unwrap();
    wal.remove_segments_before(positions[0].segment).unwrap();
    let stats = wal.stats();
    let files = segment_files(dir.path());
    let on_disk: u64 = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
    assert_eq!(stats.bytes_on_disk, on_disk);
    assert_eq!(stats.segments, files.len() as u64);
    assert_eq!(stats.records_written, 70);
    let payload: u64 = (50..120).map(|i| record(i).len() as u64 + 8).sum();
    assert_eq!(stats.bytes_written, payload);
    assert_eq!(wal.current_segment(), id);
}

#[test]
fn append_blocking_works_outside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut positions = {
        let wal = Arc::new(Wal::open(dir.path(), opts(FsyncPolicy::Always)).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .map(|i| wal.append_blocking(record(t * 10 + i)).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    };
    positions.sort();
    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Always)).unwrap();
    let replayed: Vec<Position> = replay_all(&wal, 0).into_iter().map(|(p, _)| p).collect();
    assert_eq!(replayed, positions);
    assert_eq!(replayed.len(), 40);
}

#[tokio::test]
async fn replay_stops_at_the_callers_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
        append_range(&wal, 0..10).await;
    }
    let wal = Wal::open(dir.path(), opts(FsyncPolicy::Never)).unwrap();
    let mut seen = 0;
    let err = wal
        .replay(0, |_, _| {
            seen += 1;
            if seen == 3 {
                Err(WalError::Closed)
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(matches!(err, WalError::Closed));
    assert_eq!(seen, 3);
}

#[tokio::test]
async fn a_batch_larger_than_one_vectored_write_is_written_whole() {
    // Thousands of appends queued at once exceed the kernel's limit of buffers per write, so
    // the writer must continue after short writes.
    // Under `Always` the same batch goes out as one direct write instead.
    for policy in [FsyncPolicy::Never, FsyncPolicy::Always] {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(Wal::open(dir.path(), opts(policy)).unwrap());
        let mut set = tokio::task::JoinSet::new();
        for i in 0..5000 {
            let wal = wal.clone();
            set.spawn(async move { (i, wal.append(record(i)).await.unwrap()) });
        }
        let mut positions = set.join_all().await;
        positions.sort_by_key(|(_, p)| *p);
        drop(Arc::try_unwrap(wal).ok().unwrap());
        let wal = Wal::open(dir.path(), opts(policy)).unwrap();
        let got = replay_all(&wal, 0);
        let expected: Vec<(Position, Vec<u8>)> =
            positions.iter().map(|(i, p)| (*p, record(*i))).collect();
        assert_eq!(got, expected, "{policy:?}");
    }
}

/// What a crash leaves of a log written under `Always` (where the file system allows direct
/// I/O, the live segment ends in the zero padding of its last aligned write and the zeros
/// written ahead of it): a copy of its files taken while it runs replays every acknowledged
/// record, closed segments end at their last record, and open cuts the live segment back to
/// its records.
#[tokio::test]
async fn a_crash_copy_of_an_always_log_replays_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let copy = dir.path().join("copy");
    let segment_bytes = 8_000;
    let wal = Arc::new(
        Wal::open(
            &live,
            WalOptions {
                segment_bytes,
                fsync: FsyncPolicy::Always,
            },
        )
        .unwrap(),
    );
    // Batches of different sizes, so writes start and end at every offset within a block.
    let mut acked = Vec::new();
    for round in 0..12 {
        let mut set = tokio::task::JoinSet::new();
        for i in round * 10..round * 10 + 1 + round % 7 {
            let wal = wal.clone();
            set.spawn(async move { (wal.append(record(i)).await.unwrap(), record(i)) });
        }
        acked.extend(set.join_all().await);
    }
    acked.sort();
    fs::create_dir(&copy).unwrap();
    let files = segment_files(&live);
    assert!(files.len() > 2, "{files:?}");
    for f in &files {
        fs::copy(f, copy.join(f.file_name().unwrap())).unwrap();
    }
    // Closed segments hold exactly their records.
    for (n, f) in files[..files.len() - 1].iter().enumerate() {
        let id = n as u64 + 1;
        let records: u64 = acked
            .iter()
            .filter(|(p, _)| p.segment == id)
            .map(|(_, r)| r.len() as u64 + 8)
            .sum();
        assert_eq!(
            fs::metadata(f).unwrap().len(),
            16 + records,
            "{}",
            f.display()
        );
    }
    let live_last = fs::metadata(files.last().unwrap()).unwrap().len();
    let last_id = files.len() as u64;
    let last_records: u64 = acked
        .iter()
        .filter(|(p, _)| p.segment == last_id)
        .map(|(_, r)| r.len() as u64 + 8)
        .sum();
    let real = 16 + last_records;
    // Zeros pad the last block and may run ahead to the segment's limit, rounded to a block.
    assert!(
        live_last == real
            || (live_last.is_multiple_of(4096)
                && live_last
                    <= real
                        .next_multiple_of(4096)
                        .max(segment_bytes.next_multiple_of(4096))),
        "live segment of {live_last} bytes for {real} bytes of records"
    );

    let reopened = Wal::open(&copy, opts(FsyncPolicy::Always)).unwrap();
    assert_eq!(replay_all(&reopened, 0), acked);
    let copied_last = copy.join(files.last().unwrap().file_name().unwrap());
    assert_eq!(fs::metadata(&copied_last).unwrap().len(), real);
    drop(wal);
    // A clean close cuts the padding too.
    assert_eq!(fs::metadata(files.last().unwrap()).unwrap().len(), real);
}
