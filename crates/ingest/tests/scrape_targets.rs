//! The scrape manager against scripted targets: failures that must give a precise
//! `lastError` and store nothing but the synthetic series (a target that hangs, broken
//! exposition text, too many samples, an error status, an oversized body), staleness
//! markers when series or targets disappear, gzip and the request headers, reload that keeps
//! unchanged loops running, file discovery picking up edits, and https targets (through an
//! HTTP proxy's CONNECT tunnel too).

mod scrape_common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ingest::scrape::{ScrapeConfig, ScrapeManager, TargetsSnapshot};
use scrape_common::*;

const SYNTHETIC: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

fn config(yaml: &str) -> ScrapeConfig {
    ScrapeConfig::parse_prometheus_yaml(yaml, "test.yml", Path::new("/")).expect("config")
}

fn one_job(addr: &str, extra: &str) -> ScrapeConfig {
    config(&format!(
        "global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: t\n    static_configs:\n      - targets: ['{addr}']\n{extra}"
    ))
}

/// Waits until the job's target has been scraped and its health is `health`; returns it.
async fn wait_health(m: &ScrapeManager, health: &str) -> ingest::scrape::ActiveTarget {
    for _ in 0..100 {
        let t: TargetsSnapshot = m.targets().await;
        if let Some(a) = t.active.first() {
            if a.health.as_str() == health && a.last_scrape.is_some() {
                return a.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "target never became {health}: {:?}",
        m.targets().await.active
    );
}

/// Asserts that only the synthetic series (and staleness markers) were stored, and `up` is 0.
fn only_synthetic(sink: &RecordingSink) {
    for (labels, _, v) in sink.samples_of(&[]) {
        let name = labels["__name__"].as_str();
        assert!(
            SYNTHETIC.contains(&name) || is_stale(v),
            "stored {labels:?} = {v} from a failed scrape"
        );
        if name == "up" {
            assert_eq!(v, 0.0);
        }
    }
}

async fn failing(answer: Answer, extra: &str, want: &str) {
    let target = ScriptedTarget::start(answer).await;
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(one_job(&target.addr.to_string(), extra), sink.clone());
    let t = wait_health(&m, "down").await;
    assert!(
        t.last_error.contains(want),
        "lastError {:?} lacks {want:?}",
        t.last_error
    );
    m.shutdown().await;
    only_synthetic(&sink);
    assert!(!sink.samples_of(&[("__name__", "up")]).is_empty());
}

#[tokio::test]
async fn hanging_target_times_out() {
    failing(Answer::Hang, "", "context deadline exceeded").await;
}

#[tokio::test]
async fn broken_text_is_a_precise_error() {
    let body = "ok_metric 1\nbroken{a=\"b\" 1\nafter 2\n".to_string();
    failing(
        Answer::Body("text/plain; version=0.0.4", body),
        "",
        "line 2: expected label name, got \"1\" while parsing: \"broken{a=\\\"b\\\" 1\"",
    )
    .await;
    failing(
        Answer::Body(
            "application/openmetrics-text; version=1.0.0",
            "a 1\n".into(),
        ),
        "",
        "data does not end with # EOF",
    )
    .await;
    failing(
        Answer::Body("text/plain", "dup{a=\"1\",a=\"2\"} 1\n".into()),
        "",
        "label name \"a\" is not unique",
    )
    .await;
}

/// The `lastError` of job `t` past its `sample_limit: 10`, whatever the body's format.
const T_SAMPLE_LIMIT_ERROR: &str = "sample limit exceeded (more than 10 samples after metric relabeling; the sample_limit of job \"t\" is 10: raise it, or set it to 0 for no limit)";

#[tokio::test]
async fn sample_limit_fails_the_scrape() {
    let body: String = (0..20).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect();
    failing(
        Answer::Body("text/plain", body),
        "    sample_limit: 10\n",
        T_SAMPLE_LIMIT_ERROR,
    )
    .await;
}

/// A protobuf body: gauge family `g` with one series per `ids` (label `i`), and a native
/// histogram `h`.
fn proto_gauges_and_histogram(ids: std::ops::Range<u32>) -> Vec<u8> {
    use ingest::scrape::proto::{BucketSpan, Gauge, Histogram, LabelPair, Metric, MetricFamily};
    use prost::Message;
    let gauges = MetricFamily {
        name: "g".into(),
        r#type: 1,
        metric: ids
            .map(|i| Metric {
                label: vec![LabelPair {
                    name: "i".into(),
                    value: i.to_string(),
                }],
                gauge: Some(Gauge { value: i.into() }),
                ..Metric::default()
            })
            .collect(),
        ..MetricFamily::default()
    };
    let histogram = MetricFamily {
        name: "h".into(),
        r#type: 4,
        metric: vec![Metric {
            histogram: Some(Histogram {
                sample_count: 3,
                sample_sum: 1.5,
                zero_threshold: 0.001,
                positive_span: vec![BucketSpan {
                    offset: 1,
                    length: 2,
                }],
                positive_delta: vec![1, 1],
                ..Histogram::default()
            }),
            ..Metric::default()
        }],
        ..MetricFamily::default()
    };
    let mut b = Vec::new();
    for f in [gauges, histogram] {
        f.encode_length_delimited(&mut b).unwrap();
    }
    b
}

/// A protobuf target past the sample limit fails as a text one does: the same error, the
/// walk stopped at the limit, nothing of the scrape stored (native histograms included),
/// the series it had before ended, and none of the failed scrape's series left in the
/// cache (they count as added when they come back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_sample_limit_fails_the_scrape_alike() {
    let target =
        ScriptedTarget::start(Answer::Bytes(PROTO, proto_gauges_and_histogram(0..4))).await;
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(
        one_job(
            &target.addr.to_string(),
            "    sample_limit: 10\n    scrape_native_histograms: true\n",
        ),
        sink.clone(),
    );
    wait_health(&m, "up").await;
    eventually(Duration::from_secs(10), "a native histogram", || {
        (!sink.histograms.lock().is_empty()).then_some(())
    })
    .await;

    // 20 gauges before the histogram: the walk stops at the 11th.
    target.set(Answer::Bytes(PROTO, proto_gauges_and_histogram(100..120)));
    let t = wait_health(&m, "down").await;
    assert_eq!(t.last_error, T_SAMPLE_LIMIT_ERROR);
    let (appends, histograms) = (sink.appends.lock().len(), sink.histograms.lock().len());
    eventually(Duration::from_secs(10), "two more failed scrapes", || {
        (sink.appends.lock().len() >= appends + 2).then_some(())
    })
    .await;
    assert_eq!(sink.histograms.lock().len(), histograms);
    let failed: Vec<Vec<_>> = sink.appends.lock()[appends - 1..].to_vec();
    for batch in &failed {
        for (l, _, v) in batch {
            let name = l.metric_name().unwrap_or("");
            assert!(
                SYNTHETIC.contains(&name) || is_stale(*v),
                "{l} = {v} written by a failed scrape"
            );
            match name {
                "up" => assert_eq!(*v, 0.0),
                "scrape_samples_scraped" | "scrape_samples_post_metric_relabeling" => {
                    assert_eq!(*v, 11.0, "{l}")
                }
                _ => {}
            }
        }
    }
    // The four gauges of the good scrape (and its histogram series) ended at the first
    // failure.
    let stale: Vec<_> = sink
        .samples_of(&[("__name__", "g")])
        .into_iter()
        .filter(|s| is_stale(s.2))
        .collect();
    assert_eq!(stale.len(), 4, "{stale:?}");
    assert!(sink
        .samples_of(&[("__name__", "h")])
        .iter()
        .any(|s| is_stale(s.2)));

    // Five of the series only the failed scrapes exposed come back under the limit: all
    // five are new to the loop.
    let before = sink.appends.lock().len();
    target.set(Answer::Bytes(PROTO, proto_gauges_and_histogram(100..105)));
    let added = eventually(Duration::from_secs(10), "a good scrape again", || {
        let appends = sink.appends.lock();
        appends[before..].iter().find_map(|batch| {
            let value = |n: &str| {
                batch
                    .iter()
                    .find(|(l, _, _)| l.metric_name() == Some(n))
                    .map(|s| s.2)
            };
            (value("up") == Some(1.0)).then(|| value("scrape_series_added"))
        })
    })
    .await;
    // The histogram's entry is the first scrape's, kept through the failures as Prometheus
    // keeps its cache.
    assert_eq!(added, Some(5.0));
    m.shutdown().await;
}

#[tokio::test]
async fn error_status_and_body_limit() {
    failing(
        Answer::Status(500),
        "",
        "server returned HTTP status 500 Internal Server Error",
    )
    .await;
    failing(
        Answer::Body("text/plain", "x 1\n".repeat(1000)),
        "    body_size_limit: 1KB\n",
        "body size limit exceeded",
    )
    .await;
    failing(
        Answer::Gzip("text/plain", "x 1\n".repeat(1000)),
        "    body_size_limit: 1KB\n",
        "body size limit exceeded",
    )
    .await;
    // The body arrives and is parsed in pieces; a gzip stream that ends early still fails
    // the whole scrape.
    failing(
        Answer::TruncatedGzip("text/plain", "x 1\n".to_string()),
        "",
        "decompressing the gzip body",
    )
    .await;
}

#[tokio::test]
async fn unreachable_target_is_down() {
    let addr = format!("127.0.0.1:{}", free_port());
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(one_job(&addr, ""), sink.clone());
    let t = wait_health(&m, "down").await;
    assert!(
        t.last_error
            .starts_with(&format!("Get \"http://{addr}/metrics\"")),
        "{}",
        t.last_error
    );
    m.shutdown().await;
    only_synthetic(&sink);
}

#[tokio::test]
async fn series_and_targets_going_away_get_staleness_markers() {
    let target = ScriptedTarget::start(Answer::Gzip(
        "text/plain; version=0.0.4",
        "# TYPE a gauge\n# HELP a An a.\na 1\nb 2\nexplicit 3 1000\n".into(),
    ))
    .await;
    let addr = target.addr.to_string();
    let sink = Arc::new(RecordingSink::default());
    let cfg = one_job(
        &addr,
        "    basic_auth:\n      username: user\n      password: pw\n",
    );
    let m = ScrapeManager::start(cfg.clone(), sink.clone());
    let t = wait_health(&m, "up").await;
    assert_eq!(t.scrape_url, format!("http://{addr}/metrics"));
    assert_eq!(t.labels["job"], "t");
    assert_eq!(t.labels["instance"], addr);
    assert_eq!(t.discovered_labels["__address__"], addr);
    assert_eq!(t.scrape_interval, "200ms");
    assert!(t.last_scrape_rfc3339().ends_with('Z'));

    // Headers as Prometheus sends them.
    let head = target.requests.lock()[0].to_lowercase();
    assert!(head.contains("accept: application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"), "{head}");
    assert!(head.contains("accept-encoding: gzip"), "{head}");
    assert!(
        head.contains("x-prometheus-scrape-timeout-seconds: 0.15"),
        "{head}"
    );
    assert!(head.contains("authorization: basic dxnlcjpwdw=="), "{head}");

    // Samples carry the target labels; the explicit timestamp is honored.
    let a = sink.samples_of(&[("__name__", "a")]);
    assert_eq!(a[0].0["job"], "t");
    assert_eq!(sink.samples_of(&[("__name__", "explicit")])[0].1, 1000);
    let meta = sink.metadata.list(Some("a"));
    assert_eq!(meta[0].1[0].help, "An a.");
    let added = sink.samples_of(&[("__name__", "scrape_series_added")]);
    assert_eq!(added[0].2, 3.0);

    // b disappears: one staleness marker for b, none for a or explicit.
    target.set(Answer::Body("text/plain", "a 1\nexplicit 3 1000\n".into()));
    eventually(Duration::from_secs(5), "a staleness marker for b", || {
        sink.samples_of(&[("__name__", "b")])
            .iter()
            .any(|s| is_stale(s.2))
            .then_some(())
    })
    .await;
    assert!(!sink
        .samples_of(&[("__name__", "a")])
        .iter()
        .any(|s| is_stale(s.2)));

    // Each scrape is one append holding samples and synthetic series together.
    for batch in sink.appends.lock().iter() {
        let ups = batch
            .iter()
            .filter(|(l, _, _)| l.metric_name() == Some("up"))
            .count();
        assert_eq!(ups, 1);
    }

    // Reload with the same config: the loop keeps running (health stays up, no staleness).
    let before = sink.appends.lock().len();
    m.apply(cfg).await;
    assert_eq!(m.targets().await.active[0].health.as_str(), "up");
    eventually(Duration::from_secs(5), "more scrapes", || {
        (sink.appends.lock().len() > before + 1).then_some(())
    })
    .await;
    assert!(!sink
        .samples_of(&[("__name__", "a")])
        .iter()
        .any(|s| is_stale(s.2)));

    // Reload without the job: the target's series and its synthetic series end.
    m.apply(config("scrape_configs: []\n")).await;
    assert!(m.targets().await.active.is_empty());
    eventually(
        Duration::from_secs(5),
        "staleness markers for a and up",
        || {
            let a = sink
                .samples_of(&[("__name__", "a")])
                .iter()
                .any(|s| is_stale(s.2));
            let up = sink
                .samples_of(&[("__name__", "up")])
                .iter()
                .any(|s| is_stale(s.2));
            (a && up).then_some(())
        },
    )
    .await;
    m.shutdown().await;
}

#[tokio::test]
async fn failed_scrape_marks_previous_series_stale() {
    let target = ScriptedTarget::start(Answer::Body("text/plain", "a 1\n".into())).await;
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(one_job(&target.addr.to_string(), ""), sink.clone());
    wait_health(&m, "up").await;
    target.set(Answer::Body("text/plain", "a 1\nbad\n".into()));
    let t = wait_health(&m, "down").await;
    assert!(
        t.last_error
            .starts_with("line 2: expected value after metric"),
        "{}",
        t.last_error
    );
    m.shutdown().await;
    let a = sink.samples_of(&[("__name__", "a")]);
    assert!(is_stale(a.last().unwrap().2), "{a:?}");
}

#[tokio::test]
async fn file_discovery_follows_the_file() {
    let t1 = ScriptedTarget::start(Answer::Body("text/plain", "one 1\n".into())).await;
    let t2 = ScriptedTarget::start(Answer::Body("text/plain", "two 2\n".into())).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets.json");
    std::fs::write(
        &file,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"env": "a"}}}}]"#,
            t1.addr
        ),
    )
    .unwrap();
    let yaml = "global:\n  scrape_interval: 200ms\nscrape_configs:\n  - job_name: files\n    file_sd_configs:\n      - files: ['*.json']\n        refresh_interval: 200ms\n    relabel_configs:\n      - source_labels: [__meta_filepath]\n        regex: '.*/(.*)'\n        target_label: file\n";
    let cfg = ScrapeConfig::parse_prometheus_yaml(yaml, "p.yml", dir.path()).unwrap();
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(cfg, sink.clone());
    let t = wait_health(&m, "up").await;
    assert_eq!(t.labels["env"], "a");
    assert_eq!(t.labels["file"], "targets.json");

    std::fs::write(&file, format!(r#"[{{"targets": ["{}"]}}]"#, t2.addr)).unwrap();
    eventually(
        Duration::from_secs(10),
        "the second target's samples",
        || (!sink.samples_of(&[("__name__", "two")]).is_empty()).then_some(()),
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "staleness for the first target",
        || {
            sink.samples_of(&[("__name__", "one")])
                .iter()
                .any(|s| is_stale(s.2))
                .then_some(())
        },
    )
    .await;
    assert_eq!(m.targets().await.active.len(), 1);
    m.shutdown().await;
}

#[tokio::test]
async fn changed_job_hands_its_series_to_the_new_loop() {
    let target = ScriptedTarget::start(Answer::Body("text/plain", "a 1\nb 2\n".into())).await;
    let addr = target.addr.to_string();
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(one_job(&addr, ""), sink.clone());
    wait_health(&m, "up").await;
    // Same target, different job settings: the loop restarts without ending any series...
    m.apply(one_job(&addr, "    sample_limit: 100\n")).await;
    let t = wait_health(&m, "up").await;
    assert!(t.last_error.is_empty());
    assert!(!sink.samples_of(&[]).iter().any(|s| is_stale(s.2)));
    // ...and still knows b, so b's disappearance after the reload is marked.
    target.set(Answer::Body("text/plain", "a 1\n".into()));
    eventually(Duration::from_secs(5), "a staleness marker for b", || {
        sink.samples_of(&[("__name__", "b")])
            .iter()
            .any(|s| is_stale(s.2))
            .then_some(())
    })
    .await;
    // A reload that changes the target's labels replaces the target: its old series end.
    m.apply(one_job(&addr, "        labels: {env: new}\n"))
        .await;
    eventually(
        Duration::from_secs(5),
        "a staleness marker for the old a",
        || {
            sink.samples_of(&[("__name__", "a")])
                .iter()
                .any(|s| is_stale(s.2) && !s.0.contains_key("env"))
                .then_some(())
        },
    )
    .await;
    let t = wait_health(&m, "up").await;
    assert_eq!(t.labels["env"], "new");
    m.shutdown().await;
}

#[tokio::test]
async fn label_limits_and_timestamps() {
    failing(
        Answer::Body("text/plain", "m{a=\"1\",b=\"2\",c=\"3\"} 1\n".into()),
        "    label_limit: 3\n",
        "label_limit exceeded (metric: m, number of labels: 6, limit: 3)",
    )
    .await;
    failing(
        Answer::Body("text/plain", "m{a=\"0123456789\"} 1\n".into()),
        "    label_value_length_limit: 5\n",
        "label_value_length_limit exceeded",
    )
    .await;
    // honor_timestamps: false replaces exposed timestamps with the scrape's.
    let target = ScriptedTarget::start(Answer::Body("text/plain", "m 1 1000\n".into())).await;
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(
        one_job(&target.addr.to_string(), "    honor_timestamps: false\n"),
        sink.clone(),
    );
    wait_health(&m, "up").await;
    m.shutdown().await;
    assert!(sink.samples_of(&[("__name__", "m")])[0].1 > 1_000_000_000_000);
}

const HTTPS_SERVER: &str = r#"
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"tls_metric 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_targets_verify_certificates() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f);
    let (ca_cert, cert, key) = (p("ca.pem"), p("cert.pem"), p("key.pem"));
    std::fs::write(p("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    // A CA and a leaf it signs (rustls, like browsers, refuses a CA certificate used as the
    // server's own).
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: Vec<Vec<std::ffi::OsString>> = vec![
        ["req", "-x509"]
            .iter()
            .chain(&ec)
            .map(Into::into)
            .chain(
                ["-days", "1", "-subj", "/CN=lookout-test-ca", "-keyout"]
                    .iter()
                    .map(Into::into),
            )
            .chain([p("ca.key").into(), "-out".into(), ca_cert.clone().into()])
            .collect(),
        ["req"]
            .iter()
            .chain(&ec)
            .map(Into::into)
            .chain(["-subj", "/CN=localhost", "-keyout"].iter().map(Into::into))
            .chain([key.clone().into(), "-out".into(), p("leaf.csr").into()])
            .collect(),
        ["x509", "-req", "-days", "1", "-in"]
            .iter()
            .map(Into::into)
            .chain([
                p("leaf.csr").into(),
                "-CA".into(),
                ca_cert.clone().into(),
                "-CAkey".into(),
                p("ca.key").into(),
                "-CAcreateserial".into(),
                "-extfile".into(),
                p("ext.cnf").into(),
                "-out".into(),
                cert.clone().into(),
            ])
            .collect(),
    ];
    for args in steps {
        let made = std::process::Command::new("openssl").args(&args).output();
        assert!(
            made.as_ref().is_ok_and(|o| o.status.success()),
            "openssl cannot make test certificates ({made:?}); install it (scripts/system-deps.sh does)"
        );
    }
    let mut server = std::process::Command::new("python3")
        .args(["-c", HTTPS_SERVER])
        .arg(&cert)
        .arg(&key)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 https server");
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _server = KillOnDrop(server);
    let addr = format!("127.0.0.1:{}", line.trim());
    let job = |name: &str, tls: &str| {
        format!("  - job_name: {name}\n    scheme: https\n{tls}    static_configs:\n      - targets: ['{addr}']\n")
    };
    // https through an HTTP proxy is a CONNECT tunnel with TLS end to end; a proxy that
    // allows CONNECT only to port 443 proves the scrape went through it.
    let (_open, open_proxy) = start_tinyproxy(dir.path(), "");
    let (_strict, strict_proxy) = start_tinyproxy(dir.path(), "ConnectPort 443\n");
    let ca = format!("    tls_config:\n      ca_file: {}\n", ca_cert.display());
    let yaml =
        format!(
        "global:\n  scrape_interval: 300ms\n  scrape_timeout: 250ms\nscrape_configs:\n{}{}{}{}{}{}{}",
        job("trusted", &ca),
        job("untrusted", ""),
        job("insecure", "    tls_config:\n      insecure_skip_verify: true\n"),
        job("wrong_name", &format!("{ca}      server_name: wrong.example\n")),
        job("missing_ca", "    tls_config:\n      ca_file: /nonexistent/ca.pem\n"),
        job("through_proxy", &format!("{ca}    proxy_url: 'http://127.0.0.1:{open_proxy}'\n    proxy_connect_header: {{X-Hello: [world]}}\n")),
        job("proxy_refuses", &format!("{ca}    proxy_url: 'http://127.0.0.1:{strict_proxy}'\n")),
    );
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(config(&yaml), sink.clone());
    let targets = eventually(
        Duration::from_secs(10),
        "every https target scraped",
        || {
            let t = targets_now(&m);
            (t.active.len() == 7 && t.active.iter().all(|a| a.last_scrape.is_some())).then_some(t)
        },
    )
    .await;
    let get = |job: &str| {
        targets
            .active
            .iter()
            .find(|t| t.scrape_pool == job)
            .unwrap()
            .clone()
    };
    assert_eq!(
        get("trusted").health.as_str(),
        "up",
        "{}",
        get("trusted").last_error
    );
    assert_eq!(get("trusted").scrape_url, format!("https://{addr}/metrics"));
    assert_eq!(
        get("insecure").health.as_str(),
        "up",
        "{}",
        get("insecure").last_error
    );
    let e = get("untrusted").last_error;
    assert!(
        e.contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );
    let e = get("wrong_name").last_error;
    assert!(
        e.contains("NotValidForName") || e.contains("not valid for"),
        "{e}"
    );
    let e = get("missing_ca").last_error;
    assert!(
        e.contains("unable to read the CA file /nonexistent/ca.pem"),
        "{e}"
    );
    assert!(!sink
        .samples_of(&[("__name__", "tls_metric"), ("job", "trusted")])
        .is_empty());
    assert_eq!(
        get("through_proxy").health.as_str(),
        "up",
        "{}",
        get("through_proxy").last_error
    );
    let e = get("proxy_refuses").last_error;
    assert_eq!(get("proxy_refuses").health.as_str(), "down");
    assert!(
        e.contains(&format!("Get \"https://{addr}/metrics\"")),
        "{e}"
    );
    m.shutdown().await;
}

/// `ScrapeManager::targets` from a sync polling closure.
fn targets_now(m: &ScrapeManager) -> TargetsSnapshot {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(m.targets()))
}

/// How many series the huge target exposes.
const HUGE_SERIES: u64 = 10_000_000;

/// A target that answers with a few series, or (once `huge` is set) with
/// [`HUGE_SERIES`] series made up as they are sent, as a real exporter with that many
/// would: nothing holds the body. It counts the body bytes the client took.
struct HugeTarget {
    addr: std::net::SocketAddr,
    huge: Arc<std::sync::atomic::AtomicBool>,
    /// Body bytes written of the latest huge answer, and its full length.
    sent: Arc<std::sync::atomic::AtomicU64>,
    total: u64,
}

impl HugeTarget {
    fn line(i: u64) -> String {
        format!("huge_series{{shard=\"{}\",id=\"{i}\"}} {i}\n", i % 64)
    }

    /// `line(i).len()`, without making the line.
    fn line_len(i: u64) -> u64 {
        let digits = |n: u64| n.checked_ilog10().unwrap_or(0) as u64 + 1;
        "huge_series{shard=\"\",id=\"\"} \n".len() as u64 + digits(i % 64) + 2 * digits(i)
    }

    async fn start() -> HugeTarget {
        use std::sync::atomic::Ordering::Relaxed;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let huge = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let total: u64 = (0..HUGE_SERIES).map(Self::line_len).sum();
        let (h, s) = (huge.clone(), sent.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (h, s) = (h.clone(), s.clone());
                tokio::spawn(async move {
                    loop {
                        if read_request_head(&mut sock).await.is_none() {
                            return;
                        }
                        if !h.load(Relaxed) {
                            let body = "huge_series{id=\"a\"} 1\nhuge_series{id=\"b\"} 2\n";
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if sock.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        s.store(0, Relaxed);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {total}\r\n\r\n"
                        );
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let mut chunk = String::with_capacity(128 << 10);
                        for i in 0..HUGE_SERIES {
                            chunk.push_str(&Self::line(i));
                            if chunk.len() >= 64 << 10 || i + 1 == HUGE_SERIES {
                                if sock.write_all(chunk.as_bytes()).await.is_err() {
                                    // The scraper hung up: how far it read is in `sent`.
                                    return;
                                }
                                s.fetch_add(chunk.len() as u64, Relaxed);
                                chunk.clear();
                            }
                        }
                    }
                });
            }
        });
        HugeTarget {
            addr,
            huge,
            sent,
            total,
        }
    }
}

/// A target exposing 10 million series fails at the default sample limit (`[scrape]
/// sample_limit` of lookout.toml here, lower than Lookout's 1,000,000 so a debug build
/// labels fewer series: ~15 µs each) with an error that says so, stores nothing of that
/// scrape, ends the series it had before, is not read to its end, and the target beside it
/// goes on being scraped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_million_series_fail_at_the_default_sample_limit() {
    use std::sync::atomic::Ordering::Relaxed;
    let huge = HugeTarget::start().await;
    let small = ScriptedTarget::start(Answer::Body("text/plain", "small 1\n".into())).await;
    // No job sets sample_limit: the section's default applies.
    let toml: ingest::scrape::TomlScrapeConfig = toml::from_str(&format!(
        "sample_limit = 20000\n\
         [[jobs]]\nname = \"huge\"\ninterval = \"3s\"\ntimeout = \"3s\"\ntargets = [\"{}\"]\n\
         [[jobs]]\nname = \"small\"\ninterval = \"200ms\"\ntimeout = \"150ms\"\ntargets = [\"{}\"]\n",
        huge.addr, small.addr
    ))
    .unwrap();
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(toml.to_config().unwrap(), sink.clone());
    let job = |name: &str| {
        targets_now(&m)
            .active
            .into_iter()
            .find(|t| t.scrape_pool == name)
    };
    eventually(
        Duration::from_secs(20),
        "the huge target's first scrape",
        || job("huge").filter(|t| t.health.as_str() == "up"),
    )
    .await;
    assert_eq!(sink.samples_of(&[("__name__", "huge_series")]).len(), 2);

    huge.huge.store(true, Relaxed);
    let t = eventually(Duration::from_secs(60), "the huge target failing", || {
        job("huge").filter(|t| t.health.as_str() == "down")
    })
    .await;
    assert_eq!(
        t.last_error,
        "sample limit exceeded (more than 20000 samples after metric relabeling; sample_limit in lookout.toml's [scrape] section is 20000: raise it there, or set sample_limit on job \"huge\" (0 for no limit))"
    );
    let small_scrapes_then = sink
        .samples_of(&[("__name__", "up"), ("job", "small")])
        .len();

    // Nothing of the failed scrape is stored: the two earlier series end with staleness
    // markers, up is 0.
    let stored = sink.samples_of(&[("__name__", "huge_series")]);
    assert_eq!(stored.len(), 4, "{:?}", &stored[..stored.len().min(10)]);
    assert!(stored[2..].iter().all(|s| is_stale(s.2)), "{stored:?}");
    let up = sink.samples_of(&[("__name__", "up"), ("job", "huge")]);
    assert_eq!(up.last().unwrap().2, 0.0);
    let counted = sink.samples_of(&[("__name__", "scrape_samples_scraped"), ("job", "huge")]);
    assert_eq!(counted.last().unwrap().2, 20001.0);
    // The scrape stopped reading at the limit, far from the body's end.
    let sent = huge.sent.load(Relaxed);
    assert!(
        sent < huge.total / 20,
        "the scrape read {sent} of {} body bytes",
        huge.total
    );

    // The other target keeps being scraped, and is up.
    eventually(
        Duration::from_secs(10),
        "more scrapes of the small target",
        || {
            let n = sink
                .samples_of(&[("__name__", "up"), ("job", "small")])
                .len();
            (n > small_scrapes_then + 2).then_some(())
        },
    )
    .await;
    let small_t = job("small").unwrap();
    assert_eq!(small_t.health.as_str(), "up", "{}", small_t.last_error);
    assert!(sink
        .samples_of(&[("__name__", "up"), ("job", "small")])
        .iter()
        .all(|s| s.2 == 1.0));
    m.shutdown().await;
    // Still nothing but the staleness markers, after any later scrapes.
    assert_eq!(sink.samples_of(&[("__name__", "huge_series")]).len(), 4);
}

/// `sample_limit: 0` on a job is Prometheus's "no limit", whatever default applies to the
/// jobs that set none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_zero_sample_limit_is_unlimited() {
    let body: String = (0..20).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect();
    let target = ScriptedTarget::start(Answer::Body("text/plain", body)).await;
    let toml: ingest::scrape::TomlScrapeConfig = toml::from_str(&format!(
        "sample_limit = 10\ninterval = \"200ms\"\ntimeout = \"150ms\"\n\
         [[jobs]]\nname = \"defaulted\"\ntargets = [\"{0}\"]\n\
         [[jobs]]\nname = \"unlimited\"\nsample_limit = 0\ntargets = [\"{0}\"]\n",
        target.addr
    ))
    .unwrap();
    let sink = Arc::new(RecordingSink::default());
    let m = ScrapeManager::start(toml.to_config().unwrap(), sink.clone());
    let targets = eventually(Duration::from_secs(10), "both jobs scraped", || {
        let t = targets_now(&m);
        (t.active.len() == 2 && t.active.iter().all(|a| a.last_scrape.is_some())).then_some(t)
    })
    .await;
    m.shutdown().await;
    for t in &targets.active {
        match t.scrape_pool.as_str() {
            "unlimited" => assert_eq!(t.health.as_str(), "up", "{}", t.last_error),
            _ => assert!(
                t.last_error
                    .starts_with("sample limit exceeded (more than 10 samples"),
                "{}",
                t.last_error
            ),
        }
    }
    assert_eq!(
        sink.samples_of(&[("__name__", "m"), ("job", "unlimited")])
            .len()
            % 20,
        0
    );
    assert!(
        sink.samples_of(&[("__name__", "m"), ("job", "unlimited")])
            .len()
            >= 20
    );
    assert!(sink
        .samples_of(&[("__name__", "m"), ("job", "defaulted")])
        .is_empty());
}
