//! Trace store benchmarks on a store of synthetic spans in blocks (1M by default; set
//! `LOOKOUT_BENCH_SPANS` to change): trace-by-id (present and absent), a service + tag +
//! duration search (limit 20) over everything and over the last hour, and the same over the
//! last hour with a tag nothing carries (the worst case: no early stop).
//! Setup also prints bytes on disk per span, head memory per span and store open time.
//!
//! `LOOKOUT_BENCH_BLOCK_SPANS` cuts a block every that many spans (default: one block);
//! every block covers the next 15 minutes, as the default head age cut makes them. With
//! `LOOKOUT_BENCH_DIR` the store is kept in that directory and reused by the next run when it
//! already holds blocks (delete it after changing the block format), which skips the write.
//!
//! The synthetic data imitates instrumented web services: 10-span traces across an HTTP
//! frontend, two backends and a database, OTel semantic-convention attributes with realistic
//! cardinalities (routes, status codes, templated SQL, a user id per trace), five resource
//! attributes per service and timestamps spread over 15 minutes. Each batch of 100 traces
//! is written grouped by service, so a trace's spans are apart in the head, as they are when
//! every service exports its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use model::{AnyValue, KeyValue, Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId};
use traces::{TraceQuery, TraceReader, TraceStore, TraceStoreConfig};

const T0: u64 = 1_700_000_000_000_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn resources() -> Vec<Arc<Resource>> {
    ["frontend", "cart", "checkout", "postgres"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Arc::new(Resource {
                attributes: vec![
                    KeyValue::string("service.name", *s),
                    KeyValue::string("service.namespace", "shop-slot-2"),
                    KeyValue::string("service.instance.id", format!("{s}-7d9f8b-{i}")),
                    KeyValue::string("telemetry.sdk.language", "python"),
                    KeyValue::string("telemetry.sdk.version", "1.27.0"),
                ],
                ..Default::default()
            })
        })
        .collect()
}

const QUARTER_HOUR: u64 = 15 * 60 * 1_000_000_000;

fn trace(rng: &mut Rng, res: &[Arc<Resource>], scope: &Arc<Scope>, block: u64) -> Vec<Span> {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&rng.next().to_le_bytes());
    id[8..].copy_from_slice(&rng.next().to_le_bytes());
    let trace_id = TraceId(id);
    let start = T0 + block * QUARTER_HOUR + rng.below(QUARTER_HOUR);
    let routes = ["/cart", "/checkout", "/product/{id}", "/", "/api/recommend"];
    let route = routes[rng.below(routes.len() as u64) as usize];
    let user = format!("user-{}", rng.below(5000));
    let mut spans: Vec<Span> = Vec::with_capacity(10);
    for i in 0..10u64 {
        let (svc, kind, name) = match i {
            0 => (0, SpanKind::Server, format!("GET {route}")),
            1 | 4 => (0, SpanKind::Client, "GET".to_string()),
            2 => (1, SpanKind::Server, "GET /cart/items".to_string()),
            5 => (2, SpanKind::Server, "POST /checkout".to_string()),
            3 | 6 | 7 => (3, SpanKind::Client, "SELECT shop".to_string()),
            _ => (2, SpanKind::Internal, "compute totals".to_string()),
        };
        let parent = match i {
            0 => None,
            1 | 4 => Some(0),
            2 => Some(1),
            3 => Some(2),
            5 => Some(4),
            _ => Some(5),
        };
        let s_start = start + i * 1_000_000 + rng.below(500_000);
        let dur = 100_000 + rng.below(if i == 0 { 80_000_000 } else { 5_000_000 });
        let code = if rng.below(50) == 0 { 500 } else { 200 };
        let mut attrs = match kind {
            SpanKind::Server => vec![
                KeyValue::string("http.request.method", if i == 5 { "POST" } else { "GET" }),
                KeyValue::string("http.route", route),
                KeyValue::new("http.response.status_code", AnyValue::Int(code)),
                KeyValue::string("url.scheme", "http"),
                KeyValue::string("network.protocol.version", "1.1"),
                KeyValue::string("user.id", user.clone()),
            ],
            SpanKind::Client if svc == 3 => vec![
                KeyValue::string("db.system", "postgresql"),
                KeyValue::string("db.name", "shop"),
                KeyValue::string(
                    "db.statement",
                    format!("SELECT * FROM items WHERE cart_id = ${}", rng.below(3)),
                ),
                KeyValue::string("server.address", "db.local"),
                KeyValue::new("server.port", AnyValue::Int(5432)),
            ],
            SpanKind::Client => vec![
                KeyValue::string("http.request.method", "GET"),
                KeyValue::new("http.response.status_code", AnyValue::Int(code)),
                KeyValue::string("server.address", "cart.local"),
                KeyValue::new("server.port", AnyValue::Int(8080)),
            ],
            _ => vec![KeyValue::new("items", AnyValue::Int(rng.below(20) as i64))],
        };
        attrs.shrink_to_fit();
        spans.push(Span {
            trace_id,
            span_id: SpanId(rng.next().to_le_bytes()),
            parent_span_id: parent.map(|p: usize| spans[p].span_id),
            name,
            kind,
            start_unix_nano: s_start,
            end_unix_nano: s_start + dur,
            attributes: attrs,
            status_code: if code == 500 {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            resource: res[svc].clone(),
            scope: scope.clone(),
            flags: 1,
            ..Default::default()
        });
    }
    spans
}

struct Fixture {
    _dir: Option<tempfile::TempDir>,
    store: TraceStore,
    ids: Vec<TraceId>,
    /// The newest trace start written.
    newest: u64,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// CPU time this process has used, from `/proc/self/stat` (Linux; 0 elsewhere). Block
/// building is timed in CPU as well as wall time: on a shared machine the wall time swings
/// with what else runs, the CPU time far less.
fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // After the command name (in parentheses), utime and stime are the 12th and 13th fields.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: f64 = fields
        .get(11..13)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| f.parse::<f64>().ok())
        .sum();
    // Linux reports them in USER_HZ ticks: 100 a second on x86 and ARM.
    ticks / 100.0
}

fn setup() -> Fixture {
    let n: usize = env("LOOKOUT_BENCH_SPANS").unwrap_or(1_000_000);
    let block_spans: usize = env("LOOKOUT_BENCH_BLOCK_SPANS").unwrap_or(usize::MAX);
    let (tmp, path) = match std::env::var("LOOKOUT_BENCH_DIR") {
        Ok(p) => (None, std::path::PathBuf::from(p)),
        Err(_) => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let reuse = std::fs::read_dir(path.join("blocks")).is_ok_and(|mut d| d.next().is_some());
    let mut cfg = TraceStoreConfig::new(&path);
    cfg.wal.fsync = wal::FsyncPolicy::Never;
    cfg.retention = Duration::from_secs(1 << 40);
    cfg.head_max_spans = usize::MAX;
    if let Some(rg) = std::env::var("LOOKOUT_BENCH_ROW_GROUP")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.row_group_spans = rg;
    }
    if let Some(level) = env("LOOKOUT_BENCH_ZSTD") {
        cfg.zstd_level = level;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = TraceStore::open(cfg.clone()).unwrap();
    let res = resources();
    let scope = Arc::new(Scope {
        name: "opentelemetry.instrumentation.flask".into(),
        version: "0.48b0".into(),
        ..Default::default()
    });
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut ids = Vec::new();
    let mut otlp_bytes = 0usize;
    let t = Instant::now();
    let mut written = 0;
    let mut newest = 0;
    let mut head = store.stats();
    let mut flush_secs = 0.0;
    let mut flush_cpu = 0.0;
    while written < n {
        let block = (written / block_spans.min(n)) as u64;
        let mut batch = Vec::with_capacity(1000);
        for _ in 0..100 {
            let tr = trace(&mut rng, &res, &scope, block);
            ids.push(tr[0].trace_id);
            newest = newest.max(tr[0].start_unix_nano);
            batch.extend(tr);
        }
        // Each service exports its own spans, so a trace's spans arrive apart, not
        // adjacent: grouped by service here, as the load generator's requests are.
        batch.sort_by_key(|s| Arc::as_ptr(&s.resource));
        written += batch.len();
        if reuse {
            continue;
        }
        otlp_bytes += prost::Message::encoded_len(&model::otlp::request_from_spans(&batch));
        rt.block_on(store.write(batch)).unwrap();
        if written % block_spans == 0 || written >= n {
            head = store.stats();
            let (t, cpu) = (Instant::now(), process_cpu_secs());
            rt.block_on(store.flush()).unwrap();
            flush_secs += t.elapsed().as_secs_f64();
            flush_cpu += process_cpu_secs() - cpu;
        }
    }
    let write_secs = t.elapsed().as_secs_f64() - flush_secs;
    let st = store.stats();
    drop(store);
    let t = Instant::now();
    let store = TraceStore::open(cfg).unwrap();
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "store: {} spans, {} traces; write {:.0} spans/s; OTLP protobuf {:.1} B/span; \
         head memory ~{:.1} B/span; block build {:.2} s ({:.2} s CPU); on disk {:.1} B/span ({} bytes, {} blocks); \
         open {:.1} ms",
        st.block_spans,
        ids.len(),
        written as f64 / write_secs,
        otlp_bytes as f64 / written as f64,
        head.head_bytes as f64 / head.head_spans.max(1) as f64,
        flush_secs,
        flush_cpu,
        st.block_bytes as f64 / st.block_spans.max(1) as f64,
        st.block_bytes,
        st.blocks,
        open_ms,
    );
    Fixture {
        _dir: tmp,
        store,
        ids,
        newest,
    }
}

fn benches(c: &mut Criterion) {
    let f = setup();
    let mut g = c.benchmark_group("trace_store");
    g.sample_size(20);
    let mut i = 0usize;
    g.bench_function("trace_by_id", |b| {
        b.iter(|| {
            i = (i + 7919) % f.ids.len();
            let t = f.store.trace(f.ids[i]).unwrap().unwrap();
            assert_eq!(t.len(), 10);
        })
    });
    g.bench_function("trace_by_id_missing", |b| {
        b.iter(|| {
            assert!(f.store.trace(TraceId([0xee; 16])).unwrap().is_none());
        })
    });
    let q = TraceQuery {
        service: Some("frontend".into()),
        tags: vec![("http.response.status_code".into(), "500".into())],
        duration_min: Some(Duration::from_millis(40)),
        limit: 20,
        ..Default::default()
    };
    g.bench_function("search_service_tag_duration", |b| {
        b.iter(|| {
            let r = f.store.search(&q).unwrap();
            assert_eq!(r.len(), 20);
        })
    });
    // What Jaeger's UI sends by default: the last hour.
    let q1h = TraceQuery {
        start_min: Some(f.newest.saturating_sub(3600 * 1_000_000_000)),
        start_max: Some(f.newest),
        ..q.clone()
    };
    g.bench_function("search_service_tag_duration_1h", |b| {
        b.iter(|| {
            let r = f.store.search(&q1h).unwrap();
            assert_eq!(r.len(), 20);
        })
    });
    // The worst case for the early stop: nothing matches, so every candidate span of the
    // hour is checked.
    let none = TraceQuery {
        tags: vec![("http.route".into(), "/nowhere".into())],
        ..q1h.clone()
    };
    g.bench_function("search_no_match_1h", |b| {
        b.iter(|| {
            assert!(f.store.search(&none).unwrap().is_empty());
        })
    });
    g.finish();
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
