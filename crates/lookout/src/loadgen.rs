//! `lookout loadgen traces`: realistic OTLP/gRPC trace load, paced, with a report of what the
//! server acknowledged.
//!
//! Each generated trace is a request through a small shop: a frontend server span, a checkout
//! service called over gRPC, which calls cart, payment and inventory, which query a database.
//! Spans carry a dozen attributes in OpenTelemetry's semantic conventions, about 2% end in an
//! error with an exception event, and every service has its own resource. Benchmarks build on
//! this generator, so it is cheap: attribute templates are built once and cloned.
//!
//! `--decode-only` measures the baseline the ingest benchmark is judged against: how fast this
//! machine merely decodes the same encoded requests with prost, on every core.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use model::otlp::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use model::otlp::proto::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use model::otlp::proto::resource::v1::Resource;
use model::otlp::proto::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use rand::{Rng, RngCore, SeedableRng};

use crate::cli::LoadgenTracesArgs;

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.to_string()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

/// One step of the generated call tree.
struct Step {
    service: usize,
    name: &'static str,
    kind: i32,
    parent: Option<usize>,
    attrs: Vec<KeyValue>,
}

const SERVICES: [&str; 6] = [
    "frontend",
    "checkout",
    "cart",
    "payment",
    "inventory",
    "postgres-proxy",
];

/// Builds requests of generated traces; deterministic for a seed.
pub struct TraceGenerator {
    rng: rand::rngs::StdRng,
    resources: Vec<Resource>,
    scope: InstrumentationScope,
    steps: Vec<Step>,
}

impl TraceGenerator {
    pub fn new(seed: u64) -> TraceGenerator {
        let resources = SERVICES
            .iter()
            .enumerate()
            .map(|(n, name)| Resource {
                attributes: vec![
                    s("service.name", name),
                    s("service.namespace", "loadgen-slot-1"),
                    s("service.version", "1.4.2"),
                    s("service.instance.id", &format!("{name}-7d9f{n}")),
                    s("host.name", "devbox"),
                    i("process.pid", 4000 + n as i64),
                    s("telemetry.sdk.language", "rust"),
                    s("telemetry.sdk.name", "opentelemetry"),
                    s("telemetry.sdk.version", "0.33.0"),
                    s("deployment.environment.name", "dev"),
                ],
                ..Default::default()
            })
            .collect();
        let http_server = |route: &str| {
            vec![
                s("http.request.method", "POST"),
                s("http.route", route),
                s("url.path", route),
                s("url.scheme", "http"),
                i("http.response.status_code", 200),
                s("server.address", "localhost"),
                i("server.port", 8080),
                s("client.address", "127.0.0.1"),
                s("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                s("network.protocol.version", "1.1"),
                s("app.user.id", "user-1234"),
                i("app.cart.items", 3),
            ]
        };
        let rpc = |svc: &str, method: &str| {
            vec![
                s("rpc.system", "grpc"),
                s("rpc.service", svc),
                s("rpc.method", method),
                i("rpc.grpc.status_code", 0),
                s("server.address", "localhost"),
                i("server.port", 9090),
                s("network.transport", "tcp"),
                s("network.type", "ipv4"),
                s("app.request.id", "req-5f2c"),
                kv("app.retry", any_value::Value::BoolValue(false)),
                kv("app.weight", any_value::Value::DoubleValue(0.25)),
                s("thread.name", "tokio-runtime-worker"),
            ]
        };
        let db = |stmt: &str| {
            vec![
                s("db.system.name", "postgresql"),
                s("db.namespace", "shop"),
                s("db.operation.name", "SELECT"),
                s("db.query.text", stmt),
                s("server.address", "db.local"),
                i("server.port", 5432),
                s("network.peer.address", "10.0.0.5"),
                i("db.response.returned_rows", 12),
                s("db.collection.name", "items"),
                s("thread.name", "pool-1"),
                s("code.function.name", "fetch_items"),
                s("code.file.path", "src/repo.rs"),
            ]
        };
        let (server, client, internal) = (2, 3, 1);
        let steps = vec![
            Step {
                service: 0,
                name: "POST /api/checkout",
                kind: server,
                parent: None,
                attrs: http_server("/api/checkout"),
            },
            Step {
                service: 0,
                name: "render checkout",
                kind: internal,
                parent: Some(0),
                attrs: rpc("ui", "render"),
            },
            Step {
                service: 0,
                name: "shop.Checkout/PlaceOrder",
                kind: client,
                parent: Some(0),
                attrs: rpc("shop.Checkout", "PlaceOrder"),
            },
            Step {
                service: 1,
                name: "shop.Checkout/PlaceOrder",
                kind: server,
                parent: Some(2),
                attrs: rpc("shop.Checkout", "PlaceOrder"),
            },
            Step {
                service: 1,
                name: "shop.Cart/GetCart",
                kind: client,
                parent: Some(3),
                attrs: rpc("shop.Cart", "GetCart"),
            },
            Step {
                service: 2,
                name: "shop.Cart/GetCart",
                kind: server,
                parent: Some(4),
                attrs: rpc("shop.Cart", "GetCart"),
            },
            Step {
                service: 2,
                name: "SELECT shop.items",
                kind: client,
                parent: Some(5),
                attrs: db("SELECT * FROM items WHERE cart_id = $1"),
            },
            Step {
                service: 1,
                name: "shop.Payment/Charge",
                kind: client,
                parent: Some(3),
                attrs: rpc("shop.Payment", "Charge"),
            },
            Step {
                service: 3,
                name: "shop.Payment/Charge",
                kind: server,
                parent: Some(7),
                attrs: rpc("shop.Payment", "Charge"),
            },
            Step {
                service: 1,
                name: "shop.Inventory/Reserve",
                kind: client,
                parent: Some(3),
                attrs: rpc("shop.Inventory", "Reserve"),
            },
            Step {
                service: 4,
                name: "shop.Inventory/Reserve",
                kind: server,
                parent: Some(9),
                attrs: rpc("shop.Inventory", "Reserve"),
            },
            Step {
                service: 5,
                name: "UPDATE shop.stock",
                kind: client,
                parent: Some(10),
                attrs: db("UPDATE stock SET n = n - $1 WHERE id = $2"),
            },
        ];
        TraceGenerator {
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            resources,
            scope: InstrumentationScope {
                name: "lookout-loadgen".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            },
            steps,
        }
    }

    /// Spans per generated trace.
    #[cfg(test)]
    pub fn spans_per_trace(&self) -> usize {
        self.steps.len()
    }

    /// A request holding at least `spans` spans (whole traces), ending around `now`.
    pub fn request(&mut self, spans: usize, now_nanos: u64) -> ExportTraceServiceRequest {
        let mut per_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
        let mut made = 0;
        while made < spans {
            let mut trace_id = vec![0u8; 16];
            self.rng.fill_bytes(&mut trace_id);
            let ids: Vec<Vec<u8>> = (0..self.steps.len())
                .map(|_| self.rng.next_u64().max(1).to_be_bytes().to_vec())
                .collect();
            let error = self.rng.random_ratio(1, 50);
            let total_us: u64 = self.rng.random_range(2_000..200_000);
            let start = now_nanos.saturating_sub(total_us * 1000);
            for (n, step) in self.steps.iter().enumerate() {
                // Children start a little after and end a little before their parents.
                let depth = {
                    let mut d = 0u64;
                    let mut p = step.parent;
                    while let Some(q) = p {
                        d += 1;
                        p = self.steps[q].parent;
                    }
                    d
                };
                let inset = depth * total_us * 40; // ns: 4% of the trace per level
                let s0 = start + inset + n as u64 * 1000;
                let e0 = (start + total_us * 1000)
                    .saturating_sub(inset)
                    .max(s0 + 1000);
                let failed = error && n == ids.len() - 1;
                let mut span = Span {
                    trace_id: trace_id.clone(),
                    span_id: ids[n].clone(),
                    parent_span_id: step.parent.map(|p| ids[p].clone()).unwrap_or_default(),
                    name: step.name.to_string(),
                    kind: step.kind,
                    start_time_unix_nano: s0,
                    end_time_unix_nano: e0,
                    attributes: step.attrs.clone(),
                    flags: 0x100 | 1,
                    ..Default::default()
                };
                if failed {
                    span.status = Some(Status {
                        code: 2,
                        message: "deadline exceeded".into(),
                    });
                    span.events.push(span::Event {
                        time_unix_nano: e0 - 500,
                        name: "exception".into(),
                        attributes: vec![
                            s("exception.type", "TimeoutError"),
                            s("exception.message", "deadline exceeded after 100ms"),
                        ],
                        dropped_attributes_count: 0,
                    });
                }
                per_service[step.service].push(span);
            }
            made += self.steps.len();
        }
        ExportTraceServiceRequest {
            resource_spans: per_service
                .into_iter()
                .enumerate()
                .filter(|(_, spans)| !spans.is_empty())
                .map(|(n, spans)| ResourceSpans {
                    resource: Some(self.resources[n].clone()),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(self.scope.clone()),
                        spans,
                        schema_url: String::new(),
                    }],
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                })
                .collect(),
        }
    }
}

/// Spans in a request.
pub fn span_count(req: &ExportTraceServiceRequest) -> u64 {
    req.resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len() as u64)
        .sum()
}

/// The gRPC method every export request goes to.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// The pause after the server refused a request as overloaded: short, since the load
/// generator measures how much the server takes.
const OVERLOAD_BACKOFF: Duration = Duration::from_millis(50);

/// Distinct requests kept encoded; variant `n` is request `n % POOL` with its ids rewritten.
const POOL: usize = 32;

/// Pre-encoded export requests plus where their ids sit in the bytes.
struct PayloadPool {
    payloads: Vec<(Vec<u8>, u64)>,
    /// Ascending byte offsets, in each payload, of the 8 bytes that a variant rewrites in
    /// every id: the first half of each trace id, and each span id and parent span id.
    id_offsets: Vec<Vec<usize>>,
}

impl PayloadPool {
    fn new(batch: usize, now: u64) -> PayloadPool {
        let mut generator = TraceGenerator::new(0x5eed);
        let mut pool = PayloadPool {
            payloads: Vec::new(),
            id_offsets: Vec::new(),
        };
        for _ in 0..POOL {
            let req = generator.request(batch, now);
            let bytes = req.encode_to_vec();
            let mut trace_ids = std::collections::BTreeSet::new();
            let mut span_ids = std::collections::BTreeSet::new();
            for span in req
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
            {
                trace_ids.insert(span.trace_id.clone());
                span_ids.insert(span.span_id.clone());
            }
            let mut offsets = find_all(&bytes, &trace_ids);
            offsets.extend(find_all(&bytes, &span_ids));
            offsets.sort_unstable();
            pool.id_offsets.push(offsets);
            pool.payloads.push((bytes, span_count(&req)));
        }
        pool
    }

    /// The pooled request that request `n` is a variant of: its bytes and span count.
    fn pooled(&self, n: u64) -> &(Vec<u8>, u64) {
        &self.payloads[(n % POOL as u64) as usize]
    }

    /// Writes request `n` to `out`: pooled request `n % POOL` whose ids are XORed with a
    /// per-round key, so every round sends new traces with the same shape (equal ids stay
    /// equal). It is written straight into the request's buffer, which makes the load
    /// generator's cost per request one copy of the bytes.
    fn write_variant(&self, n: u64, out: &mut impl bytes::BufMut) {
        let i = (n % POOL as u64) as usize;
        let key = (n / POOL as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .to_le_bytes();
        let bytes = &self.payloads[i].0;
        let mut done = 0;
        for &o in &self.id_offsets[i] {
            // A trace id and a span id could only overlap by a 64-bit coincidence; rewrite
            // the first of the two then.
            if o < done {
                continue;
            }
            out.put_slice(&bytes[done..o]);
            let mut id = [0; 8];
            for ((d, b), k) in id.iter_mut().zip(&bytes[o..o + 8]).zip(key) {
                *d = b ^ k;
            }
            out.put_slice(&id);
            done = o + 8;
        }
        out.put_slice(&bytes[done..]);
    }

    /// Request `n`'s bytes (see [`PayloadPool::write_variant`]).
    fn variant(&self, n: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pooled(n).0.len());
        self.write_variant(n, &mut out);
        out
    }
}

/// Offsets of every occurrence of each needle (8 bytes or longer) in `hay`, in one pass keyed
/// by each needle's first 8 bytes. Ids are random, so a match elsewhere in the payload is as
/// likely as guessing a 64-bit key.
fn find_all(hay: &[u8], needles: &std::collections::BTreeSet<Vec<u8>>) -> Vec<usize> {
    let by_prefix: std::collections::HashMap<&[u8], &[u8]> = needles
        .iter()
        .filter(|n| n.len() >= 8)
        .map(|n| (&n[..8], &n[..]))
        .collect();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= hay.len() {
        match by_prefix.get(&hay[pos..pos + 8]) {
            Some(n) if hay[pos..].starts_with(n) => {
                out.push(pos);
                pos += n.len();
            }
            _ => pos += 1,
        }
    }
    out
}

/// Request `n` of a [`PayloadPool`], written into the request body by [`RawEncoder`].
struct Variant {
    pool: Arc<PayloadPool>,
    n: u64,
}

/// Sends already-encoded requests and decodes the export response.
#[derive(Clone, Copy)]
struct RawCodec;

struct RawEncoder;

struct ResponseDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Variant;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Variant;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Variant,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        // Once, so that the pieces do not grow the buffer (and copy it) step by step.
        dst.reserve(item.pool.pooled(item.n).0.len());
        item.pool.write_variant(item.n, dst);
        Ok(())
    }
}

impl tonic::codec::Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable export response: {e}")))
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    requests_ok: AtomicU64,
    requests_failed: AtomicU64,
    spans_acked: AtomicU64,
    spans_failed: AtomicU64,
    latencies_us: latency::LatencyLog,
}

/// A tiny latency log; a mutex is fine at export-request granularity.
mod latency {
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct LatencyLog(Mutex<Vec<u64>>);

    impl LatencyLog {
        pub fn push(&self, us: u64) {
            if let Ok(mut v) = self.0.lock() {
                v.push(us);
            }
        }

        pub fn percentile(&self, p: f64) -> u64 {
            let Ok(mut v) = self.0.lock() else { return 0 };
            if v.is_empty() {
                return 0;
            }
            v.sort_unstable();
            let idx = ((v.len() - 1) as f64 * p).round() as usize;
            v[idx]
        }
    }
}

/// Runs `lookout loadgen traces`.
pub async fn run(args: LoadgenTracesArgs) -> anyhow::Result<()> {
    if args.decode_only {
        return decode_only(&args);
    }
    let channel = tonic::transport::Endpoint::from_shared(args.endpoint.clone())
        .with_context(|| format!("invalid --endpoint {:?}", args.endpoint))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| {
            format!(
                "cannot connect to {}; is Lookout running? (start it with `lookout serve`)",
                args.endpoint
            )
        })?;
    // Requests are generated and encoded once; each send copies one into the request's body,
    // rewriting its ids on the way, so the generator costs the machine a memcpy per request
    // instead of building spans.
    let pool = Arc::new(PayloadPool::new(args.batch as usize, now_nanos()));
    let tally = Arc::new(Tally::default());
    let next_batch = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let mut client = tonic::client::Grpc::new(channel.clone());
        let tally = tally.clone();
        let next_batch = next_batch.clone();
        let pool = pool.clone();
        let (rate, batch) = (args.rate, args.batch);
        workers.push(tokio::spawn(async move {
            loop {
                let n = next_batch.fetch_add(1, Ordering::Relaxed);
                if rate > 0 {
                    // Batch n is due when n * batch spans should have been sent.
                    let due = started + Duration::from_secs_f64((n * batch) as f64 / rate as f64);
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(due.into()).await;
                } else if Instant::now() >= deadline {
                    break;
                }
                let count = pool.pooled(n).1;
                let payload = Variant {
                    pool: pool.clone(),
                    n,
                };
                let t = Instant::now();
                let sent = async {
                    client
                        .ready()
                        .await
                        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                    let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
                    client
                        .unary(tonic::Request::new(payload), path, RawCodec)
                        .await
                };
                let backoff = match sent.await {
                    Ok(resp) => {
                        let rejected = resp
                            .into_inner()
                            .partial_success
                            .map(|p| p.rejected_spans as u64)
                            .unwrap_or(0)
                            .min(count);
                        tally.requests_ok.fetch_add(1, Ordering::Relaxed);
                        tally
                            .spans_acked
                            .fetch_add(count - rejected, Ordering::Relaxed);
                        tally.spans_failed.fetch_add(rejected, Ordering::Relaxed);
                        false
                    }
                    Err(status) => {
                        tracing::debug!(%status, "export failed");
                        tally.requests_failed.fetch_add(1, Ordering::Relaxed);
                        tally.spans_failed.fetch_add(count, Ordering::Relaxed);
                        // The server asked for a pause (say its head is full while a block
                        // is written): back off briefly, as an SDK exporter would, instead
                        // of spinning on refusals.
                        matches!(
                            status.code(),
                            tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                        )
                    }
                };
                tally.latencies_us.push(t.elapsed().as_micros() as u64);
                if backoff {
                    tokio::time::sleep(OVERLOAD_BACKOFF).await;
                }
            }
        }));
    }
    for w in workers {
        w.await.context("load generator task failed")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let acked = tally.spans_acked.load(Ordering::Relaxed);
    let failed = tally.spans_failed.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "endpoint": args.endpoint,
        "seconds": elapsed,
        "requests_ok": tally.requests_ok.load(Ordering::Relaxed),
        "requests_failed": tally.requests_failed.load(Ordering::Relaxed),
        "spans_acknowledged": acked,
        "spans_failed": failed,
        "spans_per_second": acked as f64 / elapsed,
        "latency_p50_ms": tally.latencies_us.percentile(0.5) as f64 / 1000.0,
        "latency_p99_ms": tally.latencies_us.percentile(0.99) as f64 / 1000.0,
    });
    print_report(&report, args.json);
    if acked == 0 {
        bail!("the server acknowledged no spans");
    }
    Ok(())
}

fn print_report(report: &serde_json::Value, json: bool) {
    if json {
        println!("{report}");
        return;
    }
    if let Some(obj) = report.as_object() {
        for (k, v) in obj {
            println!("{k:>20}: {v}");
        }
    }
}

/// Decodes the generator's encoded requests with prost on every core for `--duration`.
fn decode_only(args: &LoadgenTracesArgs) -> anyhow::Result<()> {
    let pool = PayloadPool::new(args.batch as usize, now_nanos());
    let payloads: Vec<Vec<u8>> = (0..POOL as u64).map(|n| pool.variant(n)).collect();
    let spans_per_round: u64 = pool.payloads.iter().map(|(_, n)| n).sum();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let started = Instant::now();
    let deadline = started + args.duration;
    let decoded: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut spans = 0u64;
                    while Instant::now() < deadline {
                        for p in &payloads {
                            let req =
                                ExportTraceServiceRequest::decode(&p[..]).expect("own encoding");
                            std::hint::black_box(&req);
                        }
                        spans += spans_per_round;
                    }
                    spans
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    let report = serde_json::json!({
        "mode": "decode-only",
        "threads": threads,
        "seconds": elapsed,
        "spans_decoded": decoded,
        "spans_per_second": decoded as f64 / elapsed,
        "bytes_per_span": bytes as f64 / spans_per_round as f64,
    });
    print_report(&report, args.json);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_requests_are_valid_otlp() {
        let mut g = TraceGenerator::new(1);
        let req = g.request(100, 1_700_000_000_000_000_000);
        let spans = model::otlp::spans_from_request(&req).expect("valid");
        assert!(spans.len() >= 100);
        assert_eq!(spans.len() % g.spans_per_trace(), 0);
        let services: std::collections::BTreeSet<_> =
            spans.iter().map(|s| s.service_name().to_string()).collect();
        assert_eq!(services.len(), SERVICES.len());
        assert!(spans.iter().all(|s| s.attributes.len() >= 12));
    }

    #[test]
    fn pool_variants_are_new_traces_of_the_same_shape() {
        let pool = PayloadPool::new(50, 1_700_000_000_000_000_000);
        let decode = |n| {
            let req = ExportTraceServiceRequest::decode(&pool.variant(n)[..]).unwrap();
            model::otlp::spans_from_request(&req).unwrap()
        };
        let (a, b) = (decode(0), decode(POOL as u64));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_ne!(x.trace_id, y.trace_id);
            assert_ne!(x.span_id, y.span_id);
            assert_eq!(x.name, y.name);
            assert_eq!(x.parent_span_id.is_some(), y.parent_span_id.is_some());
        }
        // Parent links survive the rewrite: every parent is a span of the same trace.
        for s in &b {
            if let Some(p) = s.parent_span_id {
                assert!(b.iter().any(|o| o.span_id == p && o.trace_id == s.trace_id));
            }
        }
    }
}
