//! Chunk encoding and decoding speed, in samples per second, on realistic series: a counter
//! incremented irregularly and scraped every 15 s with a few milliseconds of jitter, a gauge
//! with one decimal, and `lookout loadgen metrics`' counter (steps of 0..=99 at 30 s). Each
//! in the head's XOR chunks of 120 samples and the blocks' packed chunks of 480. Native
//! histogram chunks too, on a 20-bucket counter histogram (schema 3, integer counts growing
//! by 0..20 per bucket and scrape, one layout). Prints the bytes per sample once, since
//! criterion measures only time.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use model::histogram::{FloatHistogram, Span};
use rand::{Rng, SeedableRng};
use tsdb::block::BLOCK_CHUNK_SAMPLES;
use tsdb::chunk::{ChunkIter, XorChunk, SAMPLES_PER_CHUNK};
use tsdb::histchunk;

fn counter_samples(n: usize) -> Vec<(i64, f64)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut t = 1_700_000_000_000i64;
    let mut v = 0.0;
    (0..n)
        .map(|_| {
            t += 15_000 + rng.random_range(-3..=3);
            if rng.random_bool(0.3) {
                v += rng.random_range(1..5) as f64;
            }
            (t, v)
        })
        .collect()
}

fn gauge_samples(n: usize) -> Vec<(i64, f64)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(43);
    let mut t = 1_700_000_000_000i64;
    (0..n)
        .map(|_| {
            t += 15_000;
            (t, (rng.random::<f64>() * 1000.0).round() / 10.0)
        })
        .collect()
}

fn loadgen_counter_samples(n: usize) -> Vec<(i64, f64)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(44);
    (0..n)
        .map(|r| {
            let t = 1_700_000_000_000 + r as i64 * 30_000;
            (t, (r as u64 * 50 + rng.random_range(0..100)) as f64)
        })
        .collect()
}

fn encode_packed(samples: &[(i64, f64)]) -> Vec<Vec<u8>> {
    samples
        .chunks(BLOCK_CHUNK_SAMPLES)
        .map(tsdb::packed::encode_best)
        .collect()
}

fn encode(samples: &[(i64, f64)]) -> Vec<Vec<u8>> {
    samples
        .chunks(SAMPLES_PER_CHUNK)
        .map(|part| {
            let mut c = XorChunk::new();
            for &(t, v) in part {
                c.append(t, v);
            }
            c.bytes().to_vec()
        })
        .collect()
}

const N: usize = SAMPLES_PER_CHUNK * 100;
type Encoder = fn(&[(i64, f64)]) -> Vec<Vec<u8>>;

fn datasets() -> [(&'static str, Vec<(i64, f64)>); 3] {
    [
        ("counter", counter_samples(N)),
        ("gauge", gauge_samples(N)),
        ("loadgen_counter", loadgen_counter_samples(N)),
    ]
}

const ENCODERS: [(&str, Encoder); 2] = [("xor", encode), ("packed", encode_packed)];

fn decode_all(chunks: &[Vec<u8>]) -> f64 {
    let mut sum = 0.0;
    for ch in chunks {
        for (_, v) in ChunkIter::new(ch) {
            sum += v;
        }
    }
    sum
}

/// With `LOOKOUT_DECODE_PASSES=N` (and optionally `LOOKOUT_DECODE_ONLY=counter_xor`) the
/// bench only decodes each data set N times and exits: a fixed amount of work whose
/// instructions `valgrind --tool=callgrind` can count, where wall time on a shared machine
/// is too noisy to compare two builds.
fn fixed_passes() -> bool {
    let Some(passes) = std::env::var("LOOKOUT_DECODE_PASSES")
        .ok()
        .and_then(|p| p.parse::<usize>().ok())
    else {
        return false;
    };
    let only = std::env::var("LOOKOUT_DECODE_ONLY").unwrap_or_default();
    let mut sum = 0.0;
    for (name, samples) in datasets() {
        for (enc, f) in ENCODERS {
            if !only.is_empty() && only != format!("{name}_{enc}") {
                continue;
            }
            let chunks = f(&samples);
            for _ in 0..passes {
                sum += decode_all(&chunks);
            }
        }
    }
    eprintln!("decoded (checksum {sum})");
    true
}

fn bench(c: &mut Criterion) {
    if fixed_passes() {
        return;
    }
    for (name, samples) in datasets() {
        for (enc, f) in ENCODERS {
            let chunks = f(&samples);
            let bytes: usize = chunks.iter().map(Vec::len).sum();
            eprintln!(
                "{name} {enc}: {:.3} bytes/sample over {N} samples",
                bytes as f64 / N as f64
            );
            let mut g = c.benchmark_group(format!("chunk_{name}_{enc}"));
            g.throughput(Throughput::Elements(N as u64));
            g.bench_function("encode", |b| b.iter(|| f(&samples)));
            g.bench_function("decode", |b| b.iter(|| decode_all(&chunks)));
            g.finish();
        }
    }
}

fn counter_histograms(n: usize) -> Vec<(i64, Arc<FloatHistogram>)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(45);
    let mut t = 1_700_000_000_000i64;
    let mut buckets = vec![0.0f64; 20];
    (0..n)
        .map(|_| {
            t += 15_000 + rng.random_range(-3..=3);
            for b in buckets.iter_mut() {
                *b += f64::from(rng.random_range(0..20u32));
            }
            let count: f64 = buckets.iter().sum();
            let h = FloatHistogram {
                schema: 3,
                zero_threshold: 1e-128,
                count,
                sum: count * 0.0123,
                positive_spans: vec![Span {
                    offset: -5,
                    length: 20,
                }],
                positive_buckets: buckets.clone(),
                ..Default::default()
            };
            (t, Arc::new(h))
        })
        .collect()
}

fn bench_histograms(c: &mut Criterion) {
    const N: usize = SAMPLES_PER_CHUNK * 100;
    let samples = counter_histograms(N);
    let encode = |s: &[(i64, Arc<FloatHistogram>)]| {
        histchunk::encode_chunks(s, SAMPLES_PER_CHUNK, usize::MAX)
    };
    let chunks = encode(&samples);
    let bytes: usize = chunks.iter().map(|c| c.2.len()).sum();
    eprintln!(
        "counter_histogram hist: {:.3} bytes/sample ({:.3} per bucket) over {N} samples",
        bytes as f64 / N as f64,
        bytes as f64 / N as f64 / 20.0
    );
    let mut g = c.benchmark_group("chunk_counter_histogram_hist");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("encode", |b| b.iter(|| encode(&samples)));
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for (_, _, ch) in &chunks {
                for (_, h) in histchunk::decode(ch).unwrap() {
                    sum += h.count;
                }
            }
            sum
        })
    });
    g.finish();
}

criterion_group!(benches, bench, bench_histograms);
criterion_main!(benches);
