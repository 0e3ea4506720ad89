//! Measures the head's resident memory per active series: appends `series` series shaped
//! like node-exporter metrics (4 labels), `samples` samples each at 15 s, and prints the
//! growth of the process's RSS (Linux `/proc/self/statm`) per series.
//!
//! Run: `cargo run --release -p tsdb --example head_memory -- [series] [samples]`
//! (defaults 100000, 120).

use tsdb::{FsyncPolicy, Labels, Tsdb, TsdbConfig, WalOptions};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let series: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let samples: i64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(120);
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
                ("__name__", format!("node_metric_{}", i % 200)),
                ("job", "node".to_string()),
                ("instance", format!("host-{}:9100", i / 200)),
                ("mode", ["user", "system", "idle"][i % 3].to_string()),
            ])
            .unwrap()
        })
        .collect();
    let before = rss_bytes();
    for k in 0..samples {
        let t = 1_700_000_000_000 + k * 15_000;
        for part in labels.chunks(1000) {
            let batch = part.iter().map(|l| (l.clone(), t, k as f64)).collect();
            db.append(batch).await.unwrap();
        }
    }
    let after = rss_bytes();
    println!(
        "{series} series x {samples} samples: RSS grew {} MiB = {:.0} bytes per series",
        (after - before) >> 20,
        (after.saturating_sub(before)) as f64 / series as f64
    );
}
