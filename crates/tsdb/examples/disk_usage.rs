//! Measures bytes on disk per sample after blocks are cut and compacted, and WAL bytes per
//! sample, on realistic data: `series` series (counters incremented irregularly, and
//! `gauge_pct` percent gauges with random values of one decimal), scraped every 15 s with a
//! few ms of jitter, for `hours` hours.
//!
//! Run: `cargo run --release -p tsdb --example disk_usage -- [series] [hours] [gauge_pct]`
//! (defaults 1000, 12, 25).

use rand::{Rng, SeedableRng};
use tsdb::{FsyncPolicy, Labels, Tsdb, TsdbConfig, WalOptions};

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let series: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let hours: i64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(12);
    let gauge_pct: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(25);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TsdbConfig::new(dir.path());
    cfg.wal = WalOptions {
        segment_bytes: 64 << 20,
        fsync: FsyncPolicy::Never,
    };
    let db = Tsdb::open(cfg).unwrap();
    let labels: Vec<Labels> = (0..series)
        .map(|i| {
            Labels::new([
                ("__name__", format!("metric_{}", i % 50)),
                ("job", "node".to_string()),
                ("instance", format!("host-{}:9100", i / 50)),
            ])
            .unwrap()
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut values = vec![0.0f64; series];
    let start = 1_700_000_000_000i64;
    let scrapes = hours * 3600 / 15;
    let mut wal_bytes = 0u64;
    let mut samples = 0u64;
    for k in 0..scrapes {
        let t = start + k * 15_000;
        let batch: Vec<(Labels, i64, f64)> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i % 100 < gauge_pct {
                    values[i] = (rng.random::<f64>() * 1000.0).round() / 10.0;
                } else if rng.random_bool(0.3) {
                    values[i] += rng.random_range(1..5) as f64;
                }
                (l.clone(), t + rng.random_range(-3..=3), values[i])
            })
            .collect();
        samples += batch.len() as u64;
        db.append(batch).await.unwrap();
        if k % 240 == 0 {
            wal_bytes = wal_bytes.max(db.wal_stats().bytes_written);
            db.maintain().await.unwrap();
        }
    }
    db.maintain().await.unwrap();
    let blocks = db.blocks();
    let block_bytes: u64 = blocks.iter().map(|b| b.3).sum();
    let in_blocks: u64 = {
        let mut n = 0;
        for b in std::fs::read_dir(dir.path().join("blocks"))
            .unwrap()
            .flatten()
        {
            n += tsdb::block::Block::open(&b.path())
                .unwrap()
                .num_samples()
                .unwrap();
        }
        n
    };
    println!("{series} series ({gauge_pct}% gauges) x {hours} h at 15 s: {samples} samples");
    println!(
        "blocks: {} files, {block_bytes} bytes for {in_blocks} samples = {:.3} bytes/sample",
        blocks.len(),
        block_bytes as f64 / in_blocks.max(1) as f64
    );
    println!(
        "wal: {:.1} bytes/sample written; {} bytes on disk now",
        db.wal_stats().bytes_written.max(wal_bytes) as f64 / samples as f64,
        dir_bytes(&dir.path().join("wal"))
    );
}
