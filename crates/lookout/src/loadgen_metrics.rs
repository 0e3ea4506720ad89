//! `lookout loadgen metrics`: Prometheus remote_write load, the same bytes for any receiver.
//!
//! Benchmarks compare Lookout with Prometheus and VictoriaMetrics on identical payloads, so
//! every request is built and snappy-compressed before the clock starts; sending then costs
//! the generator a write per request. Series look like a fleet of node exporters
//! (`instance` × metric name × `cpu`), values like counters and gauges with irregular steps,
//! and timestamps advance by `--interval` per round, ending at about now.
//!
//! Series are split into shards, each sent by one worker in round order, as Prometheus's
//! queue manager shards by series: every series' samples arrive in time order however many
//! requests are in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use model::synthetic;

use crate::cli::LoadgenMetricsArgs;

/// A small, fast, deterministic generator (SplitMix64) so every run sends the same values.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The protobuf encoding of series `i`'s labels (the `TimeSeries.labels` fields).
fn labels_bytes(i: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    // Sorted by name, as Prometheus sends them.
    for (n, v) in synthetic::node_series(i) {
        let mut label = Vec::with_capacity(n.len() + v.len() + 4);
        field_bytes(&mut label, 1, n.as_bytes());
        field_bytes(&mut label, 2, v.as_bytes());
        field_bytes(&mut out, 1, &label);
    }
    out
}

/// Series `i`'s value in round `r`: counters (names ending `_total`/`_sum`/`_count`) grow
/// by irregular steps, gauges wander.
fn value(i: u64, r: u64) -> f64 {
    let name = synthetic::metric_name(i);
    let counter = name.ends_with("_total") || name.ends_with("_sum") || name.ends_with("_count");
    if counter {
        // Sum of r steps of 0..=99, approximated cheaply but deterministically.
        (r * 50 + mix(i ^ (r << 32)) % 100) as f64
    } else {
        let base = (mix(i) % 1000) as f64;
        base + (mix(i.wrapping_mul(31) ^ r) % 100) as f64 / 10.0
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// One snappy-compressed `WriteRequest`: series `range`, one sample each at `t`.
fn build_request(labels: &[Vec<u8>], first: u64, round: u64, t: i64) -> Vec<u8> {
    let mut raw = Vec::with_capacity(labels.len() * 128);
    let mut ts = Vec::with_capacity(160);
    let mut sample = Vec::with_capacity(24);
    for (k, l) in labels.iter().enumerate() {
        let i = first + k as u64;
        sample.clear();
        sample.push(0x09); // field 1, fixed64
        sample.extend_from_slice(&value(i, round).to_bits().to_le_bytes());
        sample.push(0x10); // field 2, varint
        varint(&mut sample, t as u64);
        ts.clear();
        ts.extend_from_slice(l);
        field_bytes(&mut ts, 2, &sample);
        field_bytes(&mut raw, 1, &ts);
    }
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// A built request and the samples it carries.
type Built = (Vec<u8>, u64);

/// Requests by shard, each shard's in send order (round-major).
fn build_all(args: &LoadgenMetricsArgs, start_ms: i64) -> Vec<Vec<Built>> {
    let series = args.series;
    let batch = args.batch;
    let chunks = series.div_ceil(batch);
    let shards = args.concurrency.min(chunks).max(1);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
        .min(chunks);
    let interval = args.interval.as_millis() as i64;
    // Chunk c's requests for every round, built in parallel by chunk.
    let per_chunk: Vec<Vec<Built>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|th| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    let mut c = th;
                    while c < chunks {
                        let first = c * batch;
                        let last = (first + batch).min(series);
                        let labels: Vec<Vec<u8>> = (first..last).map(labels_bytes).collect();
                        let reqs: Vec<Built> = (0..args.rounds)
                            .map(|r| {
                                let t = start_ms + r as i64 * interval;
                                (build_request(&labels, first, r, t), labels.len() as u64)
                            })
                            .collect();
                        out.push((c, reqs));
                        c += threads;
                    }
                    out
                })
            })
            .collect();
        let mut all: Vec<(u64, Vec<Built>)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect();
        all.sort_by_key(|(c, _)| *c);
        all.into_iter().map(|(_, r)| r).collect()
    });
    // Shard s sends chunks s, s + shards, ... : round 0 of all its chunks, then round 1, ...
    let mut by_shard: Vec<Vec<Built>> = vec![Vec::new(); shards as usize];
    let mut per_chunk: Vec<std::vec::IntoIter<Built>> =
        per_chunk.into_iter().map(Vec::into_iter).collect();
    for _ in 0..args.rounds {
        for (c, reqs) in per_chunk.iter_mut().enumerate() {
            if let Some(r) = reqs.next() {
                by_shard[c % shards as usize].push(r);
            }
        }
    }
    by_shard
}

pub fn run(args: LoadgenMetricsArgs) -> anyhow::Result<()> {
    if args.series == 0 || args.rounds == 0 || args.batch == 0 {
        bail!("--series, --rounds and --batch must be at least 1");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let interval = args.interval.as_millis() as i64;
    let start_ms = args.start_ms.unwrap_or(now - interval * args.rounds as i64);
    let built = Instant::now();
    let shards = build_all(&args, start_ms);
    let bytes: usize = shards.iter().flatten().map(|(b, _)| b.len()).sum();
    let requests: usize = shards.iter().map(Vec::len).sum();
    eprintln!(
        "built {requests} requests ({:.1} MiB snappy) in {:.1}s; sending",
        bytes as f64 / (1 << 20) as f64,
        built.elapsed().as_secs_f64()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .new_agent();
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let note = |slot: &std::sync::Mutex<Option<String>>, e: String| {
        if let Ok(mut g) = slot.lock() {
            g.get_or_insert(e);
        }
    };
    let started = Instant::now();
    std::thread::scope(|scope| {
        for shard in &shards {
            let (agent, acked, failed, first_error) = (
                agent.clone(),
                acked.clone(),
                failed.clone(),
                first_error.clone(),
            );
            let note = &note;
            let endpoint = args.endpoint.clone();
            scope.spawn(move || {
                for (body, n) in shard {
                    let n = *n;
                    let sent = agent
                        .post(&endpoint)
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .send(&body[..]);
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            acked.fetch_add(n, Ordering::Relaxed);
                        }
                        Ok(mut r) => {
                            failed.fetch_add(n, Ordering::Relaxed);
                            let text = r.body_mut().read_to_string().unwrap_or_default();
                            note(&first_error, format!("{}: {}", r.status(), text.trim()));
                        }
                        Err(e) => {
                            failed.fetch_add(n, Ordering::Relaxed);
                            note(&first_error, e.to_string());
                        }
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let acked = acked.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "endpoint": args.endpoint,
        "series": args.series,
        "rounds": args.rounds,
        "seconds": elapsed,
        "samples_acknowledged": acked,
        "samples_failed": failed,
        "samples_per_second": acked as f64 / elapsed,
        "first_error": first_error.lock().ok().and_then(|g| g.clone()),
    });
    if args.json {
        println!("{report}");
    } else if let Some(obj) = report.as_object() {
        for (k, v) in obj {
            println!("{k:>22}: {v}");
        }
    }
    if acked == 0 {
        bail!("the receiver acknowledged no samples");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_decode_as_remote_write_with_unique_ordered_series() {
        let args = LoadgenMetricsArgs {
            endpoint: String::new(),
            series: 2500,
            rounds: 3,
            batch: 1000,
            concurrency: 2,
            interval: Duration::from_secs(15),
            start_ms: Some(1_000_000),
            json: false,
        };
        let shards = build_all(&args, 1_000_000);
        assert_eq!(shards.len(), 2);
        let mut seen = std::collections::HashMap::new();
        for shard in &shards {
            for (body, n) in shard {
                let req = ingest::remote_write::decode_snappy(body, 64 << 20).unwrap();
                assert_eq!(*n, req.series as u64);
                for (labels, t, _) in req.samples {
                    let last = seen.insert(labels.to_string(), t);
                    // In shard order, every series' samples advance by the interval.
                    assert_eq!(last.map(|l| l + 15_000).unwrap_or(1_000_000), t);
                }
            }
        }
        assert_eq!(seen.len(), 2500);
    }
}
