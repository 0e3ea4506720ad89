//! Append throughput into the head through the WAL with `FsyncPolicy::Always`, in batches
//! of 1000 samples (one scrape of a mid-sized target): one writer, and four concurrent
//! writers sharing group commits; and one writer without fsync, which shows the CPU cost
//! alone. 10 000 series, each batch 1000 of them at one timestamp.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tsdb::{FsyncPolicy, Labels, Tsdb, TsdbConfig, WalOptions};

const SERIES: usize = 10_000;
const BATCH: usize = 1000;

fn labels() -> Vec<Labels> {
    (0..SERIES)
        .map(|i| {
            Labels::new([
                ("__name__", format!("metric_{}", i % 100)),
                ("job", "bench".to_string()),
                ("instance", format!("host-{}:9100", i / 100)),
                ("code", ["200", "404", "500"][i % 3].to_string()),
            ])
            .unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let all = Arc::new(labels());
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(5));
    for (writers, fsync) in [
        (1usize, FsyncPolicy::Always),
        (4, FsyncPolicy::Always),
        (1, FsyncPolicy::Never),
    ] {
        let name = match fsync {
            FsyncPolicy::Always => "always",
            _ => "never",
        };
        g.bench_function(format!("fsync_{name}_batch1000_writers{writers}"), |b| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().unwrap();
                let mut cfg = TsdbConfig::new(dir.path());
                cfg.wal = WalOptions {
                    segment_bytes: 64 << 20,
                    fsync,
                };
                let db = Arc::new(Tsdb::open(cfg).unwrap());
                let all = all.clone();
                rt.block_on(async move {
                    let start = Instant::now();
                    let per_writer = iters.div_ceil(writers as u64);
                    let mut tasks = Vec::new();
                    for w in 0..writers {
                        let db = db.clone();
                        let all = all.clone();
                        tasks.push(tokio::spawn(async move {
                            for i in 0..per_writer {
                                let first = ((i as usize * writers + w) * BATCH) % SERIES;
                                let t = 1_700_000_000_000 + i as i64 * 15_000;
                                let batch = (first..first + BATCH)
                                    .map(|s| (all[s].clone(), t, (i * 7) as f64))
                                    .collect();
                                db.append(batch).await.unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                    // Report the time for `iters` batches even when rounding added a few.
                    start
                        .elapsed()
                        .mul_f64(iters as f64 / (per_writer * writers as u64) as f64)
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
