//! Append throughput of the write-ahead log under group commit (`FsyncPolicy::Always`), with
//! 64 KiB records (the size of a typical span batch) from 1 and from 16 concurrent appenders.
//! Criterion reports MB/s; the gap between the two shows what sharing fsyncs buys.
//!
//! The log lives in a temporary directory under `$WAL_BENCH_DIR` (default: the system temp
//! dir), which should be on the disk you care about: on tmpfs an fsync costs nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wal::{FsyncPolicy, Wal, WalOptions};

const RECORD: usize = 64 << 10;

fn append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let base = std::env::var_os("WAL_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base).expect("temporary directory for the bench log");
    let wal = Arc::new(
        Wal::open(
            dir.path(),
            WalOptions {
                segment_bytes: 64 << 20,
                fsync: FsyncPolicy::Always,
            },
        )
        .expect("open the bench log"),
    );
    let record: Arc<Vec<u8>> = Arc::new((0..RECORD).map(|i| (i * 7) as u8).collect());

    let mut group = c.benchmark_group("append_64KiB_fsync_always");
    group.throughput(Throughput::Bytes(RECORD as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for appenders in [1u64, 16] {
        group.bench_function(BenchmarkId::new("appenders", appenders), |b| {
            b.iter_custom(|iters| {
                let elapsed = rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..appenders)
                        .map(|t| {
                            // Spread `iters` appends over the tasks as evenly as possible.
                            let n = iters / appenders + u64::from(t < iters % appenders);
                            let (wal, record) = (wal.clone(), record.clone());
                            tokio::spawn(async move {
                                for _ in 0..n {
                                    wal.append(record.to_vec()).await.expect("append");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("appender task");
                    }
                    start.elapsed()
                });
                // Keep the disk footprint bounded; not part of the measurement.
                let id = rt.block_on(wal.rotate()).expect("rotate");
                wal.remove_segments_before(id).expect("remove segments");
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
