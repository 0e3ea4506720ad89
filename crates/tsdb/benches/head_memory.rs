//! Memory per head series, and where it goes: builds a head of series shaped like
//! `lookout loadgen metrics`' (a fleet of node exporters: 50 metric names × 20 `cpu` values
//! per `instance`, `job="node"`) and prints the growth of the resident set per series after
//! each stage: creating the series (labels, series structs, index, postings), then appending
//! five samples to each (open chunks). The process allocates through mimalloc, as the
//! `lookout` binary does, so the figures are what the server's RSS shows, less the request
//! buffers. Also prints the single-threaded append rate as a guard for ingest speed.
//!
//! Usage: `cargo bench -p tsdb --bench head_memory [-- SERIES]` (default 1,000,000).
//! Nothing is asserted: it prints figures.

use std::time::Instant;

use tsdb::head::{Head, HeadOptions, Value};
use tsdb::Labels;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident bytes of this process.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn labels(i: u64) -> Labels {
    Labels::new(model::synthetic::node_series(i)).expect("valid labels")
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let sets: Vec<(Labels, u64)> = (0..n)
        .map(|i| {
            let l = labels(i);
            let h = l.stable_hash();
            (l, h)
        })
        .collect();
    let head = Head::new(HeadOptions {
        block_range_ms: 7_200_000,
        out_of_order_window_ms: 0,
    });
    let before = rss();
    let start = Instant::now();
    let series: Vec<_> = sets
        .iter()
        .map(|(l, h)| head.get_or_create(l, *h))
        .collect();
    let create = start.elapsed();
    let created = rss();
    drop(series);
    let t0 = 1_700_000_000_000i64;
    let start = Instant::now();
    for r in 0..5u64 {
        for (i, (l, h)) in sets.iter().enumerate() {
            let s = head.get(l, *h).expect("series exists");
            let v = (r * 50 + (i as u64 * 7 + r) % 100) as f64;
            head.commit(&s, t0 + r as i64 * 15_000, Value::Float(v.to_bits()));
        }
    }
    let append = start.elapsed();
    let appended = rss();
    let per = |a: usize, b: usize| (b.saturating_sub(a)) as f64 / n as f64;
    println!("head of {n} series, 5 samples each:");
    println!(
        "  series, labels and index: {:6.1} B/series ({:.0} ns/series to create)",
        per(before, created),
        create.as_nanos() as f64 / n as f64
    );
    println!(
        "  samples (open chunks):    {:6.1} B/series",
        per(created, appended)
    );
    println!(
        "  head total:               {:6.1} B/series",
        per(before, appended)
    );
    println!(
        "  lookup and append:        {:.0} ns/sample ({:.0} samples/s on one thread)",
        append.as_nanos() as f64 / (5 * n) as f64,
        (5 * n) as f64 / append.as_secs_f64()
    );
}
