//! Rough engine timings on synthetic data (N series x 6 h at 15 s) over `VecQuerier`:
//! `cargo run --release -p promql --example bench -- [series]`. Not a test; prints ms.
use std::time::Instant;

use promql::Engine;
use tsdb::{Labels, Series, VecQuerier};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let points = 6 * 3600 / 15;
    let mut series = Vec::with_capacity(n);
    for i in 0..n {
        let l = Labels::new([
            ("__name__", "http_requests_total".to_string()),
            ("job", format!("job{}", i % 10)),
            ("instance", format!("i{i}")),
        ])
        .unwrap();
        let s: Vec<(i64, f64)> = (0..points)
            .map(|k| (k as i64 * 15_000, (k * (i % 7 + 1)) as f64))
            .collect();
        series.push(Series::from_samples(l, s));
    }
    let q = VecQuerier::new(series);
    let e = Engine::default();
    let end = (points as i64 - 1) * 15_000;
    for query in [
        "sum(rate(http_requests_total[5m]))",
        "sum by (job) (rate(http_requests_total[5m]))",
        "topk(5, rate(http_requests_total[5m]))",
        "max_over_time(http_requests_total[10m])",
        "http_requests_total / on(instance) group_left http_requests_total",
    ] {
        let t = Instant::now();
        let r = e.instant_query(&q, query, end, None).unwrap();
        let inst = t.elapsed();
        let t = Instant::now();
        let _ = e
            .range_query(&q, query, end - 3_600_000, end, 60_000, None)
            .unwrap();
        let range = t.elapsed();
        let len = match r.value {
            promql::Value::Vector(v) => v.len(),
            _ => 0,
        };
        println!(
            "{query}: instant {:.1} ms ({len} series), 1h range step 60s {:.1} ms",
            inst.as_secs_f64() * 1e3,
            range.as_secs_f64() * 1e3
        );
    }
}
