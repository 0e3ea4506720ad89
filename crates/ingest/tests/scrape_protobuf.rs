//! The protobuf exposition format against real peers.
//!
//! 1. Debian's Prometheus serves its own `/metrics` through client_golang, which answers
//!    protobuf when asked: Lookout scrapes it once with `scrape_protocols: [PrometheusProto]`
//!    and once with `[PrometheusText0.0.4]`, and both jobs must store the same series with
//!    the same metadata.
//! 2. A Python target (tests/python/proto_target.py, encoded by Google's protobuf runtime)
//!    serves native histograms, a classic one, counters (one with its own timestamp), a
//!    summary and an untyped metric. Prometheus 2.42 with `--enable-feature=native-histograms`
//!    and Lookout scrape it from the same prometheus.yml; 2.42 has no
//!    `scrape_native_histograms`, so Lookout's job gets what that feature flag gives
//!    Prometheus (native histograms on, PrometheusProto first). Series, float values,
//!    native histogram buckets, the explicit timestamp and metadata must agree. (2.42 has no
//!    `scrape_classic_histograms` either, so a histogram exposed both ways is stored as native
//!    only by both; a third job checks that Lookout's `always_scrape_classic_histograms`
//!    adds its classic series.)
//!
//! 3. Broken protobuf bodies (truncated, a native histogram whose spans and deltas disagree,
//!    negative bucket counts) fail the scrape with a precise `lastError` and store nothing
//!    of it: only the staleness markers of the previous good scrape and `up` 0.
//!
//! Missing `/usr/bin/prometheus` or the test venv fails with instructions (scripts/
//! system-deps.sh and scripts/python-env.sh set them up).

mod scrape_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use ingest::scrape::{accept_header, ScrapeConfig, ScrapeManager, ScrapeProtocol};
use scrape_common::*;

const REPORT: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// The series (without `job`) of the newest append of `job` whose `up` is 1.
fn last_good_scrape(sink: &RecordingSink, job: &str) -> Option<BTreeMap<LabelMap, f64>> {
    let appends = sink.appends.lock();
    appends.iter().rev().find_map(|batch| {
        let mine: Vec<_> = batch
            .iter()
            .filter(|(l, _, _)| l.get("job") == Some(job))
            .collect();
        let up = mine
            .iter()
            .find(|(l, _, _)| l.metric_name() == Some("up"))?;
        if up.2 != 1.0 {
            return None;
        }
        Some(
            mine.iter()
                .filter(|(l, _, _)| !REPORT.contains(&l.metric_name().unwrap_or("")))
                .map(|(l, _, v)| {
                    let mut m = to_map(l);
                    m.remove("job");
                    (m, *v)
                })
                .collect(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_own_metrics_same_over_protobuf_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let prom_cfg = dir.path().join("prometheus.yml");
    std::fs::write(&prom_cfg, "global:\n  scrape_interval: 1m\n").unwrap();
    let prom = Prometheus::start(&prom_cfg, &dir.path().join("data")).await;
    let addr = prom.base.trim_start_matches("http://").to_string();

    // client_golang answers each Accept header with the format Lookout asks for.
    let content_type = |protocols: &[ScrapeProtocol]| {
        let resp = ureq::get(&format!("{}/metrics", prom.base))
            .header("Accept", &accept_header(protocols))
            .call()
            .unwrap();
        resp.headers()["content-type"].to_str().unwrap().to_string()
    };
    let ct = content_type(&[ScrapeProtocol::PrometheusProto]);
    assert!(
        ct.starts_with("application/vnd.google.protobuf")
            && ct.contains("proto=io.prometheus.client.MetricFamily")
            && ct.contains("encoding=delimited"),
        "{ct}"
    );
    let ct = content_type(&[ScrapeProtocol::PrometheusText0_0_4]);
    assert!(ct.starts_with("text/plain"), "{ct}");

    let ours = dir.path().join("lookout.yml");
    std::fs::write(
        &ours,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: proto\n    scrape_protocols: [PrometheusProto]\n    static_configs: [{{targets: ['{addr}']}}]\n  - job_name: text\n    scrape_protocols: [PrometheusText0.0.4]\n    static_configs: [{{targets: ['{addr}']}}]\n"
        ),
    )
    .unwrap();
    let sink = Arc::new(RecordingSink::default());
    let manager = ScrapeManager::start(
        ScrapeConfig::load_prometheus_file(&ours).unwrap(),
        sink.clone(),
    );

    // Prometheus's own series change while it runs (request counters for /metrics appear
    // after the first scrape), so compare the two jobs' newest scrapes until they agree.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (proto, text) = loop {
        let got = (
            last_good_scrape(&sink, "proto"),
            last_good_scrape(&sink, "text"),
        );
        let (Some(proto), Some(text)) = got else {
            assert!(
                std::time::Instant::now() < deadline,
                "no good scrape of both jobs"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let p: BTreeSet<&LabelMap> = proto.keys().collect();
        let t: BTreeSet<&LabelMap> = text.keys().collect();
        if p == t {
            break (proto, text);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "series differ\nonly over protobuf: {:?}\nonly over text: {:?}",
            p.difference(&t).take(10).collect::<Vec<_>>(),
            t.difference(&p).take(10).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(proto.len() > 100, "{}", proto.len());
    // Classic histograms (with the +Inf bucket) and summaries came through the protobuf path.
    let has = |name: &str, label: (&str, &str)| {
        proto
            .keys()
            .any(|m| m["__name__"] == name && m.get(label.0).map(String::as_str) == Some(label.1))
    };
    assert!(has(
        "prometheus_http_request_duration_seconds_bucket",
        ("le", "+Inf")
    ));
    assert!(has(
        "prometheus_http_request_duration_seconds_bucket",
        ("le", "0.1")
    ));
    assert!(has("go_gc_duration_seconds", ("quantile", "0.5")));
    // Values that do not move agree too.
    for name in [
        "prometheus_build_info",
        "prometheus_config_last_reload_successful",
        "go_info",
    ] {
        let key = proto.keys().find(|m| m["__name__"] == name).expect(name);
        assert_eq!(proto[key], text[key], "{name}");
    }
    // Both formats gave each family the same type and help (one entry per family).
    let families = sink.metadata.list(None);
    assert!(families.len() > 50, "{}", families.len());
    for (family, entries) in &families {
        assert_eq!(entries.len(), 1, "{family}: {entries:?}");
    }
    manager.shutdown().await;
}

/// A float from Prometheus's JSON (a string).
fn num(v: &serde_json::Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_stored_as_prometheus_stores_them() {
    let (_target, addr, lines) = start_python_script("proto_target.py", 1);
    let stamp: i64 = lines[0].parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: native\n    static_configs: [{{targets: ['{addr}']}}]\n"
        ),
    )
    .unwrap();
    // The stamped counter's sample is older than the start of the scrapes.
    let start = (stamp / 1000) as u64 - 1;
    let prom = Prometheus::start_with(
        &cfg,
        &dir.path().join("data"),
        &["--enable-feature=native-histograms"],
    )
    .await;

    let mut config = ScrapeConfig::load_prometheus_file(&cfg).unwrap();
    // What 2.42's native-histograms flag does for every job.
    let native = &mut config.jobs[0];
    native.scrape_native_histograms = true;
    native.scrape_protocols = ingest::scrape::PROTO_FIRST_SCRAPE_PROTOCOLS.to_vec();
    // And a job Prometheus 2.42 cannot have: classic series kept as well.
    let mut both = native.clone();
    both.job_name = "both".into();
    both.always_scrape_classic_histograms = true;
    config.jobs.push(both);
    let sink = Arc::new(RecordingSink::default());
    let manager = ScrapeManager::start(config, sink.clone());

    eventually_async(
        Duration::from_secs(30),
        "two scrapes by Prometheus",
        || async {
            let v = prom.get("/api/v1/query?query=count_over_time(up%5B1m%5D)");
            let n = v["data"]["result"]
                .as_array()?
                .first()
                .map(|r| num(&r["value"][1]))?;
            (n >= 2.0).then_some(())
        },
    )
    .await;
    let targets = manager.targets().await;
    for t in &targets.active {
        assert_eq!(
            t.health.as_str(),
            "up",
            "{}: {}",
            t.scrape_pool,
            t.last_error
        );
    }

    // The same series.
    let theirs = prom.series("{job=\"native\"}", start);
    let job_of = |l: &model::labels::Labels| l.get("job").unwrap_or("").to_string();
    let mut ours: BTreeSet<LabelMap> = sink
        .series()
        .into_iter()
        .filter(|m| m.get("job").map(String::as_str) == Some("native"))
        .collect();
    let native_hists: Vec<_> = sink
        .histograms
        .lock()
        .iter()
        .filter(|(l, _, _)| job_of(l) == "native")
        .cloned()
        .collect();
    ours.extend(native_hists.iter().map(|(l, _, _)| to_map(l)));
    assert_eq!(
        theirs.difference(&ours).collect::<Vec<_>>(),
        Vec::<&LabelMap>::new(),
        "only in Prometheus"
    );
    assert_eq!(
        ours.difference(&theirs).collect::<Vec<_>>(),
        Vec::<&LabelMap>::new(),
        "only in Lookout"
    );
    let names: BTreeSet<&str> = ours.iter().map(|m| m["__name__"].as_str()).collect();
    assert!(names.contains("rpc_duration_seconds") && names.contains("sparse_seconds"));
    assert!(
        names.contains("classic_seconds_bucket") && !names.contains("rpc_duration_seconds_bucket")
    );

    // The same native histograms, bucket by bucket.
    for name in ["rpc_duration_seconds", "sparse_seconds"] {
        let v = prom.get(&format!("/api/v1/query?query={name}"));
        let results = v["data"]["result"].as_array().unwrap();
        assert!(!results.is_empty(), "{name}: {v}");
        for r in results {
            let labels: LabelMap = serde_json::from_value(r["metric"].clone()).unwrap();
            let h = &r["histogram"][1];
            let mine = native_hists
                .iter()
                .rev()
                .find(|(l, _, _)| to_map(l) == labels)
                .unwrap_or_else(|| panic!("{name} {labels:?} not stored by Lookout"));
            let fh = &mine.2;
            assert_eq!(fh.count, num(&h["count"]), "{name} count");
            assert_eq!(fh.sum, num(&h["sum"]), "{name} sum");
            let theirs: Vec<(f64, f64, f64)> = h["buckets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| (num(&b[1]), num(&b[2]), num(&b[3])))
                .collect();
            let ours: Vec<(f64, f64, f64)> = fh
                .all_buckets()
                .iter()
                .map(|b| (b.lower, b.upper, b.count))
                .collect();
            // Bounds are computed from schema and index when read; 2.42's formula differs
            // from model::histogram's in the last bit for some schema 1+ bounds, so bounds
            // compare to a relative 1e-12 and counts exactly.
            let close = |a: f64, b: f64| a == b || ((a - b) / b).abs() < 1e-12;
            assert!(
                ours.len() == theirs.len()
                    && ours
                        .iter()
                        .zip(&theirs)
                        .all(|(o, t)| { close(o.0, t.0) && close(o.1, t.1) && o.2 == t.2 }),
                "{name} {labels:?} buckets\nLookout:    {ours:?}\nPrometheus: {theirs:?}"
            );
        }
    }

    // The same float values (classic histogram, counters, summary, untyped).
    let v = prom.get("/api/v1/query?query=%7Bjob%3D%22native%22%2C__name__%21~%22rpc_duration_seconds%7Csparse_seconds%7Cup%7Cscrape_.%2A%22%7D");
    let results = v["data"]["result"].as_array().unwrap();
    assert!(results.len() >= 12, "{v}");
    for r in results {
        let labels: LabelMap = serde_json::from_value(r["metric"].clone()).unwrap();
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mine = sink.samples_of(&pairs);
        let (_, _, value) = mine
            .last()
            .unwrap_or_else(|| panic!("{labels:?} not stored by Lookout"));
        assert_eq!(*value, num(&r["value"][1]), "{labels:?}");
    }
    // The explicit timestamp is kept (honor_timestamps), by both.
    let v = prom.get("/api/v1/query?query=jobs_total%7Bqueue%3D%22stamped%22%7D%5B5m%5D");
    let stamps: Vec<f64> = v["data"]["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_f64().unwrap())
        .collect();
    assert_eq!(stamps, [stamp as f64 / 1000.0], "{v}");
    let mine = sink.samples_of(&[("queue", "stamped"), ("job", "native")]);
    assert!(
        !mine.is_empty() && mine.iter().all(|(_, t, _)| *t == stamp),
        "{mine:?}"
    );

    // The same metadata.
    let meta = prom.get("/api/v1/metadata");
    let mut checked = 0;
    for family in [
        "rpc_duration_seconds",
        "sparse_seconds",
        "classic_seconds",
        "jobs_total",
        "queue_size",
        "loose_value",
    ] {
        let theirs = &meta["data"][family][0];
        let ours = sink.metadata.list(Some(family));
        let m = &ours[0].1[0];
        assert_eq!(
            m.metric_type.as_str(),
            theirs["type"].as_str().unwrap(),
            "{family}"
        );
        assert_eq!(m.help, theirs["help"].as_str().unwrap(), "{family}");
        checked += 1;
    }
    assert_eq!(checked, 6);

    // always_scrape_classic_histograms: the native histogram and its classic series, with
    // the +Inf bucket from the count.
    let both = sink.samples_of(&[("job", "both"), ("method", "get")]);
    let classic: BTreeMap<String, f64> = both
        .iter()
        .filter(|(m, _, _)| m["__name__"] == "rpc_duration_seconds_bucket")
        .map(|(m, _, v)| (m["le"].clone(), *v))
        .collect();
    assert_eq!(
        classic,
        BTreeMap::from([
            ("0.5".to_string(), 2.0),
            ("1.0".to_string(), 4.0),
            ("2.0".to_string(), 9.0),
            ("+Inf".to_string(), 10.0),
        ])
    );
    assert!(sink
        .histograms
        .lock()
        .iter()
        .any(|(l, _, _)| job_of(l) == "both" && l.metric_name() == Some("rpc_duration_seconds")));
    manager.shutdown().await;
}

fn proto_body(histogram: ingest::scrape::proto::Histogram) -> Vec<u8> {
    use ingest::scrape::proto::{Counter, LabelPair, Metric, MetricFamily};
    use prost::Message;
    let families = [
        MetricFamily {
            name: "ok_total".into(),
            r#type: 0,
            metric: vec![Metric {
                counter: Some(Counter { value: 5.0 }),
                ..Metric::default()
            }],
            ..MetricFamily::default()
        },
        MetricFamily {
            name: "h".into(),
            r#type: 4,
            metric: vec![Metric {
                label: vec![LabelPair {
                    name: "k".into(),
                    value: "v".into(),
                }],
                histogram: Some(histogram),
                ..Metric::default()
            }],
            ..MetricFamily::default()
        },
    ];
    let mut b = Vec::new();
    for f in families {
        f.encode_length_delimited(&mut b).unwrap();
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_protobuf_bodies_fail_whole_with_precise_errors() {
    use ingest::scrape::proto::{BucketSpan, Histogram};
    let good = Histogram {
        sample_count: 3,
        sample_sum: 1.5,
        schema: 0,
        zero_threshold: 0.001,
        positive_span: vec![BucketSpan {
            offset: 1,
            length: 2,
        }],
        positive_delta: vec![1, 1],
        ..Histogram::default()
    };
    let target = ScriptedTarget::start(Answer::Bytes(PROTO, proto_body(good.clone()))).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: p\n    scrape_native_histograms: true\n    static_configs: [{{targets: ['{}']}}]\n",
            target.addr
        ),
    )
    .unwrap();
    let sink = Arc::new(RecordingSink::default());
    let manager = ScrapeManager::start(
        ScrapeConfig::load_prometheus_file(&cfg).unwrap(),
        sink.clone(),
    );
    let head = eventually(Duration::from_secs(10), "a request", || {
        target.requests.lock().first().cloned()
    })
    .await;
    assert!(
        head.contains("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6"),
        "{head}"
    );
    eventually(Duration::from_secs(10), "a native histogram", || {
        (!sink.histograms.lock().is_empty()).then_some(())
    })
    .await;

    let mut spans_disagree = good.clone();
    spans_disagree.positive_delta = vec![1];
    let mut negative = good.clone();
    negative.positive_delta = vec![2, -3];
    let full = proto_body(good);
    let cases = [
        (full[..full.len() - 4].to_vec(), "protobuf message 2 announces"),
        (
            proto_body(spans_disagree),
            "protobuf message 2 (metric family \"h\"): series h{k=\"v\"}: invalid native histogram: positive spans cover 2 buckets but 1 counts were given",
        ),
        (
            proto_body(negative),
            "invalid native histogram: positive bucket 1 has count -1; counts must be zero or positive",
        ),
    ];
    for (body, want) in cases {
        let before = sink.appends.lock().len();
        target.set(Answer::Bytes(PROTO, body));
        let t = eventually_async(Duration::from_secs(10), want, || async {
            let targets = manager.targets().await;
            let t = targets.active[0].clone();
            (t.last_error.contains(want)).then_some(t)
        })
        .await;
        assert_eq!(t.health.as_str(), "down", "{}", t.last_error);
        assert!(
            t.last_error.starts_with("protobuf message"),
            "{}",
            t.last_error
        );
        // Nothing of a broken body: the counter that came before the bad family is not
        // written by the failed scrapes (`up` 0), only staleness markers and the synthetic
        // series.
        {
            let appends = sink.appends.lock();
            let failed: Vec<_> = appends[before..]
                .iter()
                .filter(|b| {
                    b.iter()
                        .any(|(l, _, v)| l.metric_name() == Some("up") && *v == 0.0)
                })
                .collect();
            assert!(!failed.is_empty());
            for batch in failed {
                for (l, _, v) in batch {
                    let name = l.metric_name().unwrap_or("");
                    assert!(
                        REPORT.contains(&name) || is_stale(*v),
                        "{l} = {v} written by a failed scrape"
                    );
                }
            }
        }
        // Back to good, so the next case starts from a good scrape.
        target.set(Answer::Bytes(PROTO, full.clone()));
        eventually_async(Duration::from_secs(10), "up again", || async {
            let targets = manager.targets().await;
            (targets.active[0].health.as_str() == "up").then_some(())
        })
        .await;
    }
    manager.shutdown().await;
}
