//! Measures one target's scrape cost end to end (HTTP, parse, labels, staleness, append)
//! for a body of N series, cold (first scrape: every series labelled and relabelled) and
//! steady (cache hits). Run with `cargo run --release -p ingest --example scrape_throughput
//! [series]`; prints milliseconds per scrape and nanoseconds per sample.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ingest::metrics::{AppendError, AppendOutcome, MetricsSink, Sample};
use ingest::scrape::relabel::LabelSet;
use ingest::scrape::scrape_loop::{LoopState, ScrapeLoop};
use ingest::scrape::target::{populate, Populated};
use ingest::scrape::{HttpClient, ScrapeConfig};
use ingest::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct Counting(AtomicUsize);

impl MetricsSink for Counting {
    fn append(&self, samples: Vec<Sample>) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        self.0.fetch_add(samples.len(), Ordering::Relaxed);
        Box::pin(async { Ok(AppendOutcome::default()) })
    }
    fn append_all_or_nothing(
        &self,
        samples: Vec<Sample>,
    ) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        self.append(samples)
    }
    fn record_metadata(&self, _: Vec<(String, ingest::MetricMetadata)>) {}
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut body =
        String::from("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n");
    for i in 0..n {
        body.push_str(&format!(
            "http_requests_total{{method=\"GET\",code=\"200\",handler=\"/api/v1/item/{i}\",pod=\"app-7d9f8c6b5-x{}\"}} {}\n",
            i % 7,
            i * 3
        ));
    }
    let body = Arc::new(body);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let b = body.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let b = b.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let mut head = Vec::new();
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => head.extend_from_slice(&buf[..k]),
                        }
                    }
                    let h = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
                        b.len()
                    );
                    if s.write_all(h.as_bytes()).await.is_err()
                        || s.write_all(b.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    let cfg = ScrapeConfig::parse_prometheus_yaml(
        &format!("scrape_configs:\n  - job_name: bench\n    scrape_timeout: 10s\n    static_configs:\n      - targets: ['{addr}']\n"),
        "bench.yml",
        std::path::Path::new("/"),
    )
    .unwrap();
    let job = Arc::new(cfg.jobs[0].clone());
    let Populated::Active(target) = populate(
        &job,
        LabelSet::from_pairs([("__address__", addr.to_string())]),
    )
    .unwrap() else {
        panic!("dropped")
    };
    let sink = Arc::new(Counting::default());
    let mut lp = ScrapeLoop::new(
        Arc::new(target),
        job,
        sink.clone(),
        HttpClient::default(),
        LoopState::default(),
    );
    let t = Instant::now();
    lp.scrape_once().await;
    let cold = t.elapsed();
    assert!(
        lp.health().lock().last_error.is_empty(),
        "{}",
        lp.health().lock().last_error
    );
    let rounds = 10;
    let t = Instant::now();
    for _ in 0..rounds {
        lp.scrape_once().await;
    }
    let steady = t.elapsed() / rounds;
    println!(
        "{n} series, {} MB body: cold {:.1} ms ({:.0} ns/sample), steady {:.1} ms ({:.0} ns/sample); {} samples appended",
        body.len() / 1_000_000,
        cold.as_secs_f64() * 1e3,
        cold.as_nanos() as f64 / n as f64,
        steady.as_secs_f64() * 1e3,
        steady.as_nanos() as f64 / n as f64,
        sink.0.load(Ordering::Relaxed)
    );
}
