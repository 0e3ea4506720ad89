//! End-to-end tests of the trace store through its public API, on real directories: writes
//! through the real WAL, blocks on disk, restarts by dropping and reopening the store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use model::{
    AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId,
};
use traces::{TraceQuery, TraceReader, TraceStore, TraceStoreConfig};
use wal::FsyncPolicy;

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

fn config(dir: &Path) -> TraceStoreConfig {
    let mut cfg = TraceStoreConfig::new(dir);
    cfg.wal.fsync = FsyncPolicy::Never;
    cfg.row_group_spans = 4;
    cfg
}

fn open(dir: &Path) -> TraceStore {
    TraceStore::open(config(dir)).unwrap()
}

fn resource(service: &str, namespace: &str) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![
            KeyValue::string("service.name", service),
            KeyValue::string("service.namespace", namespace),
        ],
        ..Default::default()
    })
}

fn tid(n: u8) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = 0xab;
    b[15] = n;
    TraceId(b)
}

fn sid(t: u8, n: u8) -> SpanId {
    SpanId([t, n, 1, 1, 1, 1, 1, 1])
}

#[allow(clippy::too_many_arguments)]
fn span(
    t: u8,
    n: u8,
    parent: Option<u8>,
    res: &Arc<Resource>,
    name: &str,
    kind: SpanKind,
    start_ms: u64,
    dur_ms: u64,
) -> Span {
    Span {
        trace_id: tid(t),
        span_id: sid(t, n),
        parent_span_id: parent.map(|p| sid(t, p)),
        name: name.into(),
        kind,
        start_unix_nano: T0 + start_ms * MS,
        end_unix_nano: T0 + (start_ms + dur_ms) * MS,
        resource: res.clone(),
        scope: Arc::new(Scope::default()),
        ..Default::default()
    }
}

/// A frontend → backend → db trace.
fn three_tier(t: u8, start_ms: u64, ns: &str) -> Vec<Span> {
    let fe = resource("frontend", ns);
    let be = resource("backend", ns);
    let db = resource("postgres", ns);
    let mut root = span(t, 1, None, &fe, "GET /cart", SpanKind::Server, start_ms, 50);
    root.attributes = vec![
        KeyValue::string("http.method", "GET"),
        KeyValue::new("http.status_code", AnyValue::Int(200)),
    ];
    let mut call = span(
        t,
        2,
        Some(1),
        &be,
        "load cart",
        SpanKind::Server,
        start_ms + 5,
        30,
    );
    call.status_code = StatusCode::Error;
    call.status_message = "cart missing".into();
    call.events = vec![Event {
        time_unix_nano: T0 + (start_ms + 6) * MS,
        name: "exception".into(),
        attributes: vec![KeyValue::string("exception.type", "NotFound")],
        dropped_attributes_count: 0,
    }];
    let q = span(
        t,
        3,
        Some(2),
        &db,
        "SELECT",
        SpanKind::Client,
        start_ms + 10,
        2,
    );
    vec![root, call, q]
}

fn every_kind_of_span() -> Span {
    let res = Arc::new(Resource {
        attributes: vec![
            KeyValue::string("service.name", "kitchen-sink"),
            KeyValue::new("host.cores", AnyValue::Int(8)),
        ],
        dropped_attributes_count: 3,
        schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
    });
    let scope = Arc::new(Scope {
        name: "io.opentelemetry.jdbc".into(),
        version: "1.2.3".into(),
        attributes: vec![KeyValue::new("scope.flag", AnyValue::Bool(true))],
        dropped_attributes_count: 1,
        schema_url: "https://example.com/scope".into(),
    });
    let attrs = vec![
        KeyValue::string("str", "text ✓"),
        KeyValue::new("bool", AnyValue::Bool(false)),
        KeyValue::new("int", AnyValue::Int(-42)),
        KeyValue::new("double", AnyValue::Double(3.25)),
        KeyValue::new("bytes", AnyValue::Bytes(vec![0, 1, 255])),
        KeyValue::new(
            "array",
            AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Str("two".into())]),
        ),
        KeyValue::new(
            "map",
            AnyValue::Map(vec![
                KeyValue::new("nested", AnyValue::Double(-0.5)),
                KeyValue::new("empty", AnyValue::Empty),
            ]),
        ),
        KeyValue::new("empty", AnyValue::Empty),
    ];
    Span {
        trace_id: TraceId([7; 16]),
        span_id: SpanId([8; 8]),
        parent_span_id: Some(SpanId([9; 8])),
        trace_state: "vendor=value".into(),
        flags: 0x301,
        name: "everything".into(),
        kind: SpanKind::Producer,
        start_unix_nano: T0 + 123,
        end_unix_nano: T0 + 987_654,
        attributes: attrs.clone(),
        dropped_attributes_count: 4,
        events: vec![
            Event {
                time_unix_nano: T0 + 500,
                name: "first".into(),
                attributes: attrs.clone(),
                dropped_attributes_count: 2,
            },
            Event {
                time_unix_nano: T0 + 600,
                name: String::new(),
                attributes: vec![],
                dropped_attributes_count: 0,
            },
        ],
        dropped_events_count: 5,
        links: vec![Link {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            trace_state: "k=v".into(),
            attributes: attrs,
            dropped_attributes_count: 6,
            flags: 1,
        }],
        dropped_links_count: 7,
        status_code: StatusCode::Ok,
        status_message: "fine".into(),
        resource: res,
        scope,
    }
}

fn names(traces: &[Vec<Span>]) -> Vec<u8> {
    traces.iter().map(|t| t[0].trace_id.0[15]).collect()
}

#[tokio::test]
async fn write_then_read_by_id_from_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let spans = three_tier(1, 0, "shop-slot-1");
    store.write(spans.clone()).await.unwrap();
    let got = store.trace(tid(1)).unwrap().unwrap();
    assert_eq!(got, spans);
    assert!(store.trace(tid(2)).unwrap().is_none());
    assert_eq!(store.stats().head_spans, 3);
}

#[tokio::test]
async fn read_by_id_from_block_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for t in 1..=20 {
        store
            .write(three_tier(t, t as u64 * 100, "ns"))
            .await
            .unwrap();
    }
    store.flush().await.unwrap();
    let st = store.stats();
    assert_eq!((st.head_spans, st.blocks, st.block_spans), (0, 1, 60));
    for t in 1..=20 {
        assert_eq!(
            store.trace(tid(t)).unwrap().unwrap(),
            three_tier(t, t as u64 * 100, "ns")
        );
    }
    assert!(store.trace(tid(21)).unwrap().is_none());
}

#[tokio::test]
async fn every_field_round_trips_through_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let s = every_kind_of_span();
    // A child whose parent is in the block, so the parent offset path is used too.
    let mut child = every_kind_of_span();
    child.span_id = SpanId([10; 8]);
    child.parent_span_id = Some(s.span_id);
    child.start_unix_nano += 1;
    child.status_code = StatusCode::Unset;
    child.status_message.clear();
    store.write(vec![s.clone(), child.clone()]).await.unwrap();
    assert_eq!(
        store.trace(s.trace_id).unwrap().unwrap(),
        vec![s.clone(), child.clone()]
    );
    store.flush().await.unwrap();
    assert_eq!(store.stats().head_spans, 0);
    assert_eq!(store.trace(s.trace_id).unwrap().unwrap(), vec![s, child]);
}

async fn search_fixture(store: &TraceStore) {
    // Traces 1..=6: even ones in slot-2. Trace t starts at t * 1000 ms.
    for t in 1..=6u8 {
        let ns = if t % 2 == 0 {
            "shop-slot-2"
        } else {
            "shop-slot-1"
        };
        store
            .write(three_tier(t, t as u64 * 1000, ns))
            .await
            .unwrap();
    }
    let other = resource("mailer", "shop-slot-1");
    let mut s = span(9, 1, None, &other, "send", SpanKind::Consumer, 9000, 500);
    s.attributes = vec![KeyValue::string("mail.to", "a@b.c")];
    s.scope = Arc::new(Scope {
        name: "mailer-lib".into(),
        version: "0.9".into(),
        ..Default::default()
    });
    s.status_code = StatusCode::Ok;
    store.write(vec![s]).await.unwrap();
}

fn q() -> TraceQuery {
    TraceQuery {
        limit: 100,
        ..Default::default()
    }
}

fn check_searches(store: &TraceStore) {
    let search = |q: TraceQuery| names(&store.search(&q).unwrap());
    assert_eq!(search(q()), vec![9, 6, 5, 4, 3, 2, 1]);
    assert_eq!(
        search(TraceQuery {
            service: Some("mailer".into()),
            ..q()
        }),
        vec![9]
    );
    assert_eq!(
        search(TraceQuery {
            service: Some("nobody".into()),
            ..q()
        }),
        Vec::<u8>::new()
    );
    assert_eq!(
        search(TraceQuery {
            service: Some("backend".into()),
            operation: Some("load cart".into()),
            ..q()
        }),
        vec![6, 5, 4, 3, 2, 1]
    );
    // Operation must match on a span of the service.
    assert_eq!(
        search(TraceQuery {
            service: Some("backend".into()),
            operation: Some("SELECT".into()),
            ..q()
        }),
        Vec::<u8>::new()
    );
    assert_eq!(
        search(TraceQuery {
            span_kind: Some(SpanKind::Consumer),
            ..q()
        }),
        vec![9]
    );
    let tag = |k: &str, v: &str| TraceQuery {
        tags: vec![(k.into(), v.into())],
        ..q()
    };
    assert_eq!(
        search(tag("service.namespace", "shop-slot-2")),
        vec![6, 4, 2]
    );
    assert_eq!(
        search(tag("http.status_code", "200")),
        vec![6, 5, 4, 3, 2, 1]
    );
    assert_eq!(search(tag("mail.to", "a@b.c")), vec![9]);
    assert_eq!(search(tag("exception.type", "NotFound")).len(), 6);
    assert_eq!(search(tag("span.kind", "consumer")), vec![9]);
    assert_eq!(search(tag("otel.status_code", "OK")), vec![9]);
    assert_eq!(search(tag("otel.status_code", "ERROR")).len(), 6);
    assert_eq!(search(tag("error", "true")).len(), 6);
    assert_eq!(
        search(tag("otel.status_description", "cart missing")).len(),
        6
    );
    assert_eq!(search(tag("otel.scope.name", "mailer-lib")), vec![9]);
    assert_eq!(search(tag("otel.scope.version", "0.9")), vec![9]);
    assert_eq!(search(tag("http.method", "POST")), Vec::<u8>::new());
    // All tags on one span: the namespace is on every span but the status only on backend's.
    assert_eq!(
        search(TraceQuery {
            service: Some("backend".into()),
            tags: vec![
                ("service.namespace".into(), "shop-slot-2".into()),
                ("error".into(), "true".into())
            ],
            ..q()
        }),
        vec![6, 4, 2]
    );
    assert_eq!(
        search(TraceQuery {
            tags: vec![
                ("http.method".into(), "GET".into()),
                ("error".into(), "true".into())
            ],
            ..q()
        }),
        Vec::<u8>::new()
    );
    assert_eq!(
        search(TraceQuery {
            duration_min: Some(Duration::from_millis(40)),
            ..q()
        }),
        vec![9, 6, 5, 4, 3, 2, 1]
    );
    assert_eq!(
        search(TraceQuery {
            duration_min: Some(Duration::from_millis(100)),
            ..q()
        }),
        vec![9]
    );
    assert_eq!(
        search(TraceQuery {
            service: Some("postgres".into()),
            duration_max: Some(Duration::from_millis(1)),
            ..q()
        }),
        Vec::<u8>::new()
    );
    assert_eq!(
        search(TraceQuery {
            start_min: Some(T0 + 2000 * MS),
            start_max: Some(T0 + 4000 * MS),
            ..q()
        }),
        vec![4, 3, 2]
    );
    assert_eq!(search(TraceQuery { limit: 2, ..q() }), vec![9, 6]);
    let whole = store
        .search(&TraceQuery {
            service: Some("postgres".into()),
            limit: 1,
            ..q()
        })
        .unwrap();
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].len(), 3, "search returns whole traces");
}

#[tokio::test]
async fn search_in_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    search_fixture(&store).await;
    check_searches(&store);
}

#[tokio::test]
async fn search_in_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    search_fixture(&store).await;
    store.flush().await.unwrap();
    assert_eq!(store.stats().head_spans, 0);
    check_searches(&store);
}

#[tokio::test]
async fn search_across_head_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for t in 1..=3u8 {
        store
            .write(three_tier(t, t as u64 * 1000, "ns"))
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    store.write(three_tier(4, 4000, "ns")).await.unwrap();
    let got = store
        .search(&TraceQuery {
            service: Some("frontend".into()),
            limit: 3,
            ..q()
        })
        .unwrap();
    assert_eq!(names(&got), vec![4, 3, 2]);
}

#[tokio::test]
async fn services_and_operations() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    search_fixture(&store).await;
    let expect_services = vec!["backend", "frontend", "mailer", "postgres"];
    assert_eq!(store.services().unwrap(), expect_services);
    let ops = store.operations("frontend", None).unwrap();
    assert_eq!(ops.len(), 1);
    assert_eq!(
        (ops[0].name.as_str(), ops[0].span_kind),
        ("GET /cart", SpanKind::Server)
    );
    assert!(store
        .operations("frontend", Some(SpanKind::Client))
        .unwrap()
        .is_empty());
    store.flush().await.unwrap();
    drop(store);
    // After a restart the catalog comes from block metadata.
    let store = open(dir.path());
    assert_eq!(store.services().unwrap(), expect_services);
    assert_eq!(
        store
            .operations("postgres", Some(SpanKind::Client))
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn restart_replays_head_and_does_not_duplicate_blocks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.write(three_tier(1, 0, "ns")).await.unwrap();
        store.flush().await.unwrap();
        store.write(three_tier(2, 100, "ns")).await.unwrap();
        // A trace split across the block and the head.
        store
            .write(vec![span(
                1,
                4,
                Some(1),
                &resource("late", "ns"),
                "late",
                SpanKind::Internal,
                60,
                1,
            )])
            .await
            .unwrap();
    }
    let store = open(dir.path());
    let st = store.stats();
    assert_eq!((st.blocks, st.block_spans, st.head_spans), (1, 3, 4));
    assert_eq!(store.trace(tid(1)).unwrap().unwrap().len(), 4);
    assert_eq!(
        store.trace(tid(2)).unwrap().unwrap(),
        three_tier(2, 100, "ns")
    );
    assert_eq!(store.search(&q()).unwrap().len(), 2);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[tokio::test]
async fn crash_before_wal_truncation_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.write(three_tier(1, 0, "ns")).await.unwrap();
    }
    copy_dir(&dir.path().join("wal"), saved.path());
    {
        let store = open(dir.path());
        store.flush().await.unwrap();
        store.write(three_tier(2, 100, "ns")).await.unwrap();
    }
    // Put back the segments the flush deleted, as if the process died right after the
    // block became durable and before the WAL was truncated.
    for e in std::fs::read_dir(saved.path()).unwrap() {
        let e = e.unwrap();
        let target = dir.path().join("wal").join(e.file_name());
        if !target.exists() {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
    let store = open(dir.path());
    assert_eq!(
        store.trace(tid(1)).unwrap().unwrap(),
        three_tier(1, 0, "ns")
    );
    let st = store.stats();
    assert_eq!((st.block_spans, st.head_spans), (3, 3));
    drop(store);
    // And the stale segments are gone for good.
    let store = open(dir.path());
    assert_eq!(store.stats().head_spans, 3);
}

#[tokio::test]
async fn unfinished_block_is_ignored_and_wal_replays() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        store.write(three_tier(1, 0, "ns")).await.unwrap();
    }
    // A crash mid-build leaves a temp directory behind.
    std::fs::create_dir_all(dir.path().join("blocks/00000000000000000001.tmp")).unwrap();
    std::fs::write(
        dir.path()
            .join("blocks/00000000000000000001.tmp/data.parquet"),
        b"junk",
    )
    .unwrap();
    let store = open(dir.path());
    assert_eq!(store.stats().head_spans, 3);
    assert!(!dir.path().join("blocks/00000000000000000001.tmp").exists());
    store.flush().await.unwrap();
    assert_eq!(store.trace(tid(1)).unwrap().unwrap().len(), 3);
}

#[tokio::test]
async fn maintain_cuts_by_size_and_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.head_max_spans = 5;
    cfg.head_max_age = Duration::from_secs(60);
    cfg.retention = Duration::from_secs(1 << 40);
    let store = TraceStore::open(cfg).unwrap();
    let now = SystemTime::now();
    store.write(three_tier(1, 0, "ns")).await.unwrap();
    let r = store.maintain(now).await.unwrap();
    assert!(!r.head_cut);
    store.write(three_tier(2, 0, "ns")).await.unwrap();
    let r = store.maintain(now).await.unwrap();
    assert!(r.head_cut && r.blocks_written == 1);
    store.write(three_tier(3, 0, "ns")).await.unwrap();
    assert!(!store.maintain(now).await.unwrap().head_cut);
    let r = store.maintain(now + Duration::from_secs(61)).await.unwrap();
    assert!(r.head_cut);
    assert_eq!(store.stats().blocks, 2);
}

/// While the head is not cut (a block is being written, or maintenance is late), it takes
/// spans up to twice `head_max_spans`, then refuses writes, storing nothing, until a cut.
#[tokio::test]
async fn a_head_past_twice_its_size_refuses_writes_until_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.head_max_spans = 4;
    cfg.retention = Duration::from_secs(1 << 40);
    let store = TraceStore::open(cfg).unwrap();
    // Three spans a trace: 3, 6, 9 spans; the third write starts at 6 < 8 and is taken.
    for t in 1..=3 {
        store.write(three_tier(t, 0, "ns")).await.unwrap();
    }
    let err = store.write(three_tier(4, 0, "ns")).await.unwrap_err();
    assert!(
        matches!(err, traces::TraceError::Overloaded { spans: 9 }),
        "{err}"
    );
    assert!(err.to_string().contains("retry"), "{err}");
    assert_eq!(store.stats().head_spans, 9);
    assert_eq!(store.trace(tid(4)).unwrap(), None);

    let r = store.maintain(SystemTime::now()).await.unwrap();
    assert!(r.head_cut && r.blocks_written == 1);
    store.write(three_tier(4, 0, "ns")).await.unwrap();
    assert_eq!(store.trace(tid(4)).unwrap().unwrap().len(), 3);
}

#[tokio::test]
async fn retention_by_age_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.retention = Duration::from_secs(3600);
    let store = TraceStore::open(cfg.clone()).unwrap();
    for t in 1..=4u8 {
        // Trace t lives t hours after T0.
        store
            .write(three_tier(t, t as u64 * 3_600_000, "ns"))
            .await
            .unwrap();
        store.flush().await.unwrap();
    }
    assert_eq!(store.stats().blocks, 4);
    let at = |hours: u64| UNIX_EPOCH + Duration::from_nanos(T0 + hours * 3_600_000 * MS);
    // At hour 2.5 only the block whose spans ended around hour 1 is older than an hour.
    let r = store
        .maintain(at(3) - Duration::from_secs(1800))
        .await
        .unwrap();
    assert_eq!(r.blocks_deleted, 1);
    assert!(store.trace(tid(1)).unwrap().is_none());
    assert!(store.trace(tid(2)).unwrap().is_some());
    drop(store);

    cfg.max_bytes = Some(1);
    cfg.retention = Duration::from_secs(1 << 40);
    let store = TraceStore::open(cfg.clone()).unwrap();
    assert_eq!(store.stats().blocks, 3);
    let one = store.stats().block_bytes / 3;
    drop(store);
    cfg.max_bytes = Some(one * 2 + one / 2);
    let store = TraceStore::open(cfg).unwrap();
    let r = store.maintain(at(3)).await.unwrap();
    assert_eq!(r.blocks_deleted, 1);
    assert!(store.trace(tid(2)).unwrap().is_none());
    assert!(store.trace(tid(3)).unwrap().is_some() && store.trace(tid(4)).unwrap().is_some());
    assert_eq!(store.services().unwrap().len(), 3);
    drop(store);
    assert_eq!(
        TraceStore::open(config(dir.path())).unwrap().stats().blocks,
        2
    );
}

#[tokio::test]
async fn dependencies_across_head_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write(three_tier(1, 0, "ns")).await.unwrap();
    store.write(three_tier(2, 100, "ns")).await.unwrap();
    // The root of trace 3 goes into a block, its children stay in the head.
    let t3 = three_tier(3, 200, "ns");
    store.write(vec![t3[0].clone()]).await.unwrap();
    store.flush().await.unwrap();
    store.write(t3[1..].to_vec()).await.unwrap();
    let deps = store.dependencies(T0, T0 + 10_000 * MS).unwrap();
    let got: Vec<(&str, &str, u64)> = deps
        .iter()
        .map(|d| (d.parent.as_str(), d.child.as_str(), d.call_count))
        .collect();
    assert_eq!(
        got,
        vec![("backend", "postgres", 3), ("frontend", "backend", 3)]
    );
    // Only children that started inside the window count.
    let deps = store.dependencies(T0 + 100 * MS, T0 + 150 * MS).unwrap();
    assert_eq!(deps.iter().map(|d| d.call_count).sum::<u64>(), 2);
}

#[tokio::test]
async fn duplicate_writes_are_deduplicated_by_span_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.write(three_tier(1, 0, "ns")).await.unwrap();
    store.flush().await.unwrap();
    store.write(three_tier(1, 0, "ns")).await.unwrap();
    assert_eq!(
        store.trace(tid(1)).unwrap().unwrap(),
        three_tier(1, 0, "ns")
    );
}

#[tokio::test]
async fn write_encoded_stores_the_given_bytes() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        let spans = three_tier(1, 0, "ns");
        let bytes = model::otlp::request_from_spans(&spans).encode_to_vec();
        store.write_encoded(spans, bytes).await.unwrap();
    }
    let store = open(dir.path());
    assert_eq!(
        store.trace(tid(1)).unwrap().unwrap(),
        three_tier(1, 0, "ns")
    );
}

#[tokio::test]
async fn trace_by_id_finds_every_trace_of_a_multi_page_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.row_group_spans = 2500;
    let store = TraceStore::open(cfg).unwrap();
    let res = resource("svc", "ns");
    let id = |i: u32| {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
        b[15] = 1;
        TraceId(b)
    };
    let mut batch = Vec::new();
    for i in 0..2000u32 {
        // 1 to 5 spans per trace, so traces straddle page boundaries at varying offsets.
        for n in 0..(i % 5 + 1) as u8 {
            let mut s = span(
                1,
                n + 1,
                n.checked_sub(1).map(|p| p + 1),
                &res,
                "op",
                SpanKind::Internal,
                n as u64,
                1,
            );
            s.trace_id = id(i);
            batch.push(s);
        }
    }
    store.write(batch).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(store.stats().block_spans, 6000);
    // Every 7th trace: all span counts, at every kind of page offset, in a fraction of the time.
    for i in (0..2000u32).step_by(7) {
        let t = store
            .trace(id(i))
            .unwrap()
            .unwrap_or_else(|| panic!("trace {i} missing"));
        assert_eq!(t.len() as u32, i % 5 + 1, "trace {i}");
        assert!(t.iter().all(|s| s.trace_id == id(i)));
        assert_eq!(t.last().unwrap().parent_span_id.is_some(), i % 5 > 0);
    }
    for i in 2000..2100u32 {
        assert!(store.trace(id(i)).unwrap().is_none());
    }
}

/// The block's `status_message` column (for readers like DuckDB) holds each span's message,
/// or null for a span without one, whichever way the spans arrived: model spans, a request
/// read in place, a decoded request (as OTLP/JSON gives).
#[tokio::test]
async fn status_message_column_matches_every_write_path() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    // three_tier gives one span with a message ("cart missing") and two without.
    store.write(three_tier(1, 0, "ns")).await.unwrap();
    let encoded = model::otlp::request_from_spans(&three_tier(2, 100, "ns")).encode_to_vec();
    let valid = model::otlp::ValidTraces::from_protobuf(encoded.into()).unwrap();
    store.write_request(valid, None).await.unwrap();
    let decoded = model::otlp::request_from_spans(&three_tier(3, 200, "ns"));
    let valid = model::otlp::ValidTraces::new(decoded).unwrap();
    store.write_request(valid, None).await.unwrap();
    store.flush().await.unwrap();

    let mut files = Vec::new();
    for e in walk(&dir.path().join("blocks")) {
        if e.extension().is_some_and(|x| x == "parquet") {
            files.push(e);
        }
    }
    assert_eq!(files.len(), 1, "{files:?}");
    let reader = SerializedFileReader::new(std::fs::File::open(&files[0]).unwrap()).unwrap();
    let mut got = Vec::new();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let field = |name: &str| {
            let (_, v) = row.get_column_iter().find(|(n, _)| *n == name).unwrap();
            v.to_string()
        };
        got.push((field("name"), field("status_message")));
    }
    got.sort();
    // Each of the three traces contributes every span of three_tier with its own message.
    let mut want: Vec<(String, String)> = three_tier(1, 0, "ns")
        .iter()
        .map(|s| {
            let msg = match s.status_message.as_str() {
                "" => "null".to_string(),
                m => format!("{m:?}"),
            };
            (format!("{:?}", s.name), msg)
        })
        .flat_map(|row| std::iter::repeat_n(row, 3))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
