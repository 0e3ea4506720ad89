//! Chunk encoding and decoding speed, in samples per second, on realistic series: a counter
//! incremented irregularly and scraped every 15 s with a few milliseconds of jitter, a gauge
//! with one decimal, and `lookout loadgen metrics`' counter (steps of 0..=99 at 30 s). Each
//! in the head's XOR chunks of 120 samples and the blocks' packed chunks of 480. Prints the
//! bytes per sample once, since criterion measures only time.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use tsdb::block::BLOCK_CHUNK_SAMPLES;
use tsdb::chunk::{ChunkIter, XorChunk, SAMPLES_PER_CHUNK};

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

fn bench(c: &mut Criterion) {
    const N: usize = SAMPLES_PER_CHUNK * 100;
    type Encoder = fn(&[(i64, f64)]) -> Vec<Vec<u8>>;
    for (name, samples) in [
        ("counter", counter_samples(N)),
        ("gauge", gauge_samples(N)),
        ("loadgen_counter", loadgen_counter_samples(N)),
    ] {
        let encoders: [(&str, Encoder); 2] = [("xor", encode), ("packed", encode_packed)];
        for (enc, f) in encoders {
            let chunks = f(&samples);
            let bytes: usize = chunks.iter().map(Vec::len).sum();
            eprintln!(
                "{name} {enc}: {:.3} bytes/sample over {N} samples",
                bytes as f64 / N as f64
            );
            let mut g = c.benchmark_group(format!("chunk_{name}_{enc}"));
            g.throughput(Throughput::Elements(N as u64));
            g.bench_function("encode", |b| b.iter(|| f(&samples)));
            g.bench_function("decode", |b| {
                b.iter(|| {
                    let mut sum = 0.0;
                    for ch in &chunks {
                        for (_, v) in ChunkIter::new(ch) {
                            sum += v;
                        }
                    }
                    sum
                })
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
