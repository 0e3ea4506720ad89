//! Block search against the head's search as the reference: the same spans are written to
//! a store that keeps them in its head and to one that flushes them into blocks (several
//! row groups, multi-page row groups, dictionary columns that overflow into PLAIN pages, and
//! overlapping blocks), and every query must answer the same traces in the same order,
//! whatever the limit. This covers the block path's dictionary and page decoding, its raw
//! protobuf tag matching (with the values it hands to a full decode), and its early stop.

use std::sync::Arc;
use std::time::Duration;

use model::{
    AnyValue, Event, KeyValue, Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId,
};
use traces::{TraceQuery, TraceReader, TraceStore, TraceStoreConfig};
use wal::FsyncPolicy;

const T0: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn resources() -> Vec<Arc<Resource>> {
    ["web", "api", "db", "wide"]
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Arc::new(Resource {
                attributes: vec![
                    KeyValue::string("service.name", *s),
                    KeyValue::string("service.namespace", format!("shop-slot-{}", i % 2)),
                ],
                ..Default::default()
            })
        })
        .collect()
}

/// Trace `t`: a few spans with attributes of every value type, some on events.
fn trace(rng: &mut Rng, t: u64, res: &[Arc<Resource>]) -> Vec<Span> {
    let mut id = [7u8; 16];
    id[..8].copy_from_slice(&t.to_be_bytes());
    let start = T0 + rng.below(600_000) * MS;
    let n = 1 + rng.below(8);
    let mut spans = Vec::new();
    for i in 0..n {
        let svc = rng.below(4) as usize;
        let name = if svc == 3 {
            // Unique long names overflow the name dictionary (1 MiB) within a row group's
            // first page, so later pages of the column are PLAIN.
            format!("wide-op-{t}-{i}-{}", "x".repeat(8000))
        } else {
            ["GET /", "POST /cart", "SELECT"][rng.below(3) as usize].to_string()
        };
        let mut attributes = vec![
            KeyValue::new(
                "http.status_code",
                AnyValue::Int([200, 404, 500][rng.below(3) as usize]),
            ),
            KeyValue::new("retry", AnyValue::Bool(rng.below(2) == 0)),
            KeyValue::new(
                "ratio",
                AnyValue::Double([0.5, 1.0, 2.25][rng.below(3) as usize]),
            ),
            KeyValue::string("user", format!("u{}", rng.below(5))),
        ];
        if rng.below(4) == 0 {
            attributes.push(KeyValue::new("blank", AnyValue::Empty));
        }
        let events = if rng.below(3) == 0 {
            vec![Event {
                time_unix_nano: start,
                name: "exception".into(),
                attributes: vec![KeyValue::string("exception.type", "Timeout")],
                dropped_attributes_count: 0,
            }]
        } else {
            Vec::new()
        };
        let s_start = start + i * MS;
        let error = rng.below(5) == 0;
        spans.push(Span {
            trace_id: TraceId(id),
            span_id: SpanId((t * 16 + i).to_le_bytes()),
            parent_span_id: (i > 0).then(|| SpanId((t * 16).to_le_bytes())),
            name,
            kind: [SpanKind::Server, SpanKind::Client, SpanKind::Internal][rng.below(3) as usize],
            start_unix_nano: s_start,
            end_unix_nano: s_start + rng.below(50) * MS,
            attributes,
            events,
            status_code: if error {
                StatusCode::Error
            } else {
                StatusCode::Unset
            },
            status_message: if error { "boom".into() } else { String::new() },
            resource: res[svc].clone(),
            scope: Arc::new(Scope {
                name: format!("lib-{}", svc % 2),
                version: "1.0".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    spans
}

fn queries() -> Vec<TraceQuery> {
    let tag = |k: &str, v: &str| (k.to_string(), v.to_string());
    let base = TraceQuery::default();
    let mut out = vec![
        base.clone(),
        TraceQuery {
            service: Some("web".into()),
            ..base.clone()
        },
        TraceQuery {
            service: Some("nobody".into()),
            ..base.clone()
        },
        TraceQuery {
            service: Some("api".into()),
            operation: Some("SELECT".into()),
            ..base.clone()
        },
        TraceQuery {
            service: Some("wide".into()),
            operation: Some(format!("wide-op-17-0-{}", "x".repeat(8000))),
            ..base.clone()
        },
        TraceQuery {
            span_kind: Some(SpanKind::Client),
            duration_min: Some(Duration::from_millis(20)),
            duration_max: Some(Duration::from_millis(40)),
            ..base.clone()
        },
        TraceQuery {
            start_min: Some(T0 + 100_000 * MS),
            start_max: Some(T0 + 200_000 * MS),
            ..base.clone()
        },
    ];
    let tag_sets = [
        vec![tag("http.status_code", "500")],
        vec![tag("http.status_code", "0500")],
        vec![tag("retry", "true"), tag("user", "u3")],
        vec![tag("ratio", "2.25")],
        vec![tag("ratio", "1")],
        vec![tag("exception.type", "Timeout")],
        vec![tag("blank", "")],
        vec![tag("error", "true")],
        vec![tag("otel.status_description", "boom")],
        vec![
            tag("span.kind", "client"),
            tag("service.namespace", "shop-slot-1"),
        ],
        vec![tag("otel.scope.name", "lib-0"), tag("user", "u1")],
        vec![tag("user", "nobody")],
    ];
    for tags in tag_sets {
        out.push(TraceQuery {
            tags: tags.clone(),
            ..base.clone()
        });
        out.push(TraceQuery {
            service: Some("db".into()),
            tags,
            duration_min: Some(Duration::from_millis(10)),
            ..base.clone()
        });
    }
    out
}

fn ids(r: Vec<Vec<Span>>) -> Vec<TraceId> {
    r.iter().map(|t| t[0].trace_id).collect()
}

#[tokio::test]
async fn block_search_answers_like_head_search() {
    let res = resources();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let traces: Vec<Vec<Span>> = (0..1100).map(|t| trace(&mut rng, t, &res)).collect();

    let open = |dir: &std::path::Path| {
        let mut cfg = TraceStoreConfig::new(dir);
        cfg.wal.fsync = FsyncPolicy::Never;
        // The first block is a row group of more than one search window (2048 rows) and a
        // smaller one.
        cfg.row_group_spans = 2200;
        cfg.head_max_spans = usize::MAX;
        TraceStore::open(cfg).unwrap()
    };
    let (hd, bd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (head, blocks) = (open(hd.path()), open(bd.path()));
    // Two blocks over the same time range, then a head with the rest.
    for (i, chunk) in [&traces[..600], &traces[600..900], &traces[900..]]
        .into_iter()
        .enumerate()
    {
        let spans: Vec<Span> = chunk.iter().flatten().cloned().collect();
        head.write(spans.clone()).await.unwrap();
        blocks.write(spans).await.unwrap();
        if i < 2 {
            blocks.flush().await.unwrap();
        }
    }
    assert_eq!(blocks.stats().blocks, 2);
    assert_eq!(head.stats().blocks, 0);

    for q in queries() {
        for limit in [0, 1, 7, 50] {
            let q = TraceQuery { limit, ..q.clone() };
            let want = head.search(&q).unwrap();
            let got = blocks.search(&q).unwrap();
            assert_eq!(ids(got.clone()), ids(want.clone()), "query {q:?}");
            // Whole traces too: the batched fetch of results must equal the head's.
            assert!(got == want, "traces of query {q:?} differ");
        }
    }
}
