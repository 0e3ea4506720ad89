//! Lookout's Prometheus API against Debian's real Prometheus.
//!
//! Prometheus scrapes itself and remote-writes everything it scrapes to Lookout, so both hold
//! the same series; the same metadata queries must then get the same answers from both, byte
//! for byte once parsed (errors included). Further tests send hand-built remote_write requests
//! to check Prometheus's answers to bad input and that acknowledged samples survive SIGKILL.
//!
//! Prometheus must be on PATH (`scripts/system-deps.sh` installs Debian's package); without
//! it these tests fail with that instruction rather than skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use prost::Message as _;
use serde_json::Value;

use super::harness::DataDir;

/// A running Debian Prometheus, killed on drop.
pub(super) struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
    agent: ureq::Agent,
}

pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("pick a free port")
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML; `{self}` is replaced by its own address).
    pub(super) fn start(config: &str) -> Prometheus {
        Prometheus::start_with(config, &[])
    }

    /// [`Prometheus::start`] with further command-line flags.
    fn start_with(config: &str, flags: &[&str]) -> Prometheus {
        let bin = which("prometheus").unwrap_or_else(|| {
            panic!("these tests need Debian's prometheus on PATH: run scripts/system-deps.sh")
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = format!("127.0.0.1:{}", free_port());
        let config = config.replace("{self}", &addr);
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).expect("write prometheus.yml");
        let log = std::fs::File::create(dir.path().join("log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .args(flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
            agent,
        };
        p.wait_until(Duration::from_secs(60), "ready", |p| {
            p.get("/-/ready").0 == 200
        });
        p
    }

    pub(super) fn get(&self, path: &str) -> (u16, String) {
        get(&self.agent, &format!("http://{}{path}", self.addr))
    }

    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("log")).unwrap_or_default()
    }

    fn wait_until(&self, limit: Duration, what: &str, mut f: impl FnMut(&Prometheus) -> bool) {
        let deadline = Instant::now() + limit;
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "prometheus: gave up waiting for {what}; its log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, String) {
    match agent.get(url).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

pub(super) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn metadata_api_answers_as_prometheus_for_the_same_series() {
    // Without its self-scrape: `up` and `scrape_*` would also hold Lookout's own job, whose
    // first scrape comes at a random offset into the minute, so the two sides matched only
    // when it came after the test.
    let mut dir = DataDir::new();
    dir.set_config("[scrape]\nself_scrape = false\n");
    let lookout = dir.start();
    let prom = Prometheus::start(&format!(
        "global:\n  scrape_interval: 1s\n  external_labels: {{}}\n\
         scrape_configs:\n  - job_name: prom\n    static_configs:\n      - targets: ['{{self}}']\n\
         remote_write:\n  - url: http://{}/api/v1/write\n    metadata_config:\n      send_interval: 1s\n",
        lookout.http
    ));
    // These families exist from Prometheus's first scrape on and never change their series.
    let selectors = [
        "up",
        "{__name__=~\"scrape_.+\"}",
        "{__name__=~\"go_memstats_.+\",job=\"prom\"}",
        "prometheus_build_info",
    ];
    let series_path = |s: &str| format!("/api/v1/series?match[]={}", encode(s));
    // Wait until Lookout holds every selector's series (remote_write shards arrive in any
    // order, so one selector matching says nothing of the others) and the metadata.
    prom.wait_until(
        Duration::from_secs(60),
        "lookout to receive the series",
        |p| {
            let md = json(&lookout.get("/api/v1/metadata?metric=go_goroutines").text());
            md["data"]["go_goroutines"].is_array()
                && selectors.iter().all(|s| {
                    let theirs = json(&p.get(&series_path(s)).1);
                    let ours = json(&lookout.get(&series_path(s)).text());
                    theirs["data"].as_array().is_some_and(|a| !a.is_empty()) && theirs == ours
                })
        },
    );
    for s in selectors {
        let (status, theirs) = prom.get(&series_path(s));
        let ours = lookout.get(&series_path(s));
        assert_eq!(
            (ours.status, json(&ours.text())),
            (status, json(&theirs)),
            "series {s}"
        );
    }
    for path in [
        format!("/api/v1/labels?match[]={}", encode(selectors[1])),
        format!(
            "/api/v1/label/__name__/values?match[]={}",
            encode(selectors[2])
        ),
        format!("/api/v1/label/job/values?match[]={}", encode("up")),
        "/api/v1/metadata?metric=go_goroutines".to_string(),
        "/api/v1/metadata?metric=no_such_metric".to_string(),
        // Errors: same status, same envelope, same words.
        "/api/v1/series".to_string(),
        "/api/v1/series?match[]=up&start=yesterday".to_string(),
        format!("/api/v1/series?match[]={}", encode("{job=~\".*\"}")),
        "/api/v1/label/job/values?end=x".to_string(),
    ] {
        let (status, theirs) = prom.get(&path);
        let ours = lookout.get(&path);
        let (theirs, ours) = (json(&theirs), json(&ours.text()));
        assert_eq!(
            ours["status"], theirs["status"],
            "{path}: {ours} vs {theirs}"
        );
        assert_eq!(
            ours["errorType"], theirs["errorType"],
            "{path}: {ours} vs {theirs}"
        );
        assert_eq!(lookout.get(&path).status, status, "{path}");
        assert_eq!(ours, theirs, "{path}");
    }
    // Federation: one `# TYPE` line per family, then `name{labels} value timestamp`.
    let fed = lookout.get(&format!("/federate?match[]={}", encode("up")));
    assert_eq!(fed.status, 200);
    let text = fed.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# TYPE up untyped", "{text}");
    assert!(
        lines[1].starts_with(&format!("up{{instance=\"{}\",job=\"prom\"}} 1 ", prom.addr)),
        "{text}"
    );
}

pub(super) fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// remote_write 1.0 messages, for requests built by hand.
#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
    #[prost(message, repeated, tag = "4")]
    histograms: Vec<Histogram>,
}

/// `prompb.Histogram`, the fields these tests set (integer histograms only).
#[derive(Clone, PartialEq, prost::Message)]
struct Histogram {
    #[prost(uint64, tag = "1")]
    count_int: u64,
    #[prost(double, tag = "3")]
    sum: f64,
    #[prost(sint32, tag = "4")]
    schema: i32,
    #[prost(double, tag = "5")]
    zero_threshold: f64,
    #[prost(uint64, tag = "6")]
    zero_count_int: u64,
    #[prost(message, repeated, tag = "8")]
    negative_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "9")]
    negative_deltas: Vec<i64>,
    #[prost(message, repeated, tag = "11")]
    positive_spans: Vec<BucketSpan>,
    #[prost(sint64, repeated, tag = "12")]
    positive_deltas: Vec<i64>,
    #[prost(int64, tag = "15")]
    timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BucketSpan {
    #[prost(sint32, tag = "1")]
    offset: i32,
    #[prost(uint32, tag = "2")]
    length: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(timestamp, value)| Sample { value, timestamp })
            .collect(),
        histograms: Vec::new(),
    }
}

fn body(ts: Vec<TimeSeries>) -> Vec<u8> {
    let raw = WriteRequest { timeseries: ts }.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy-compress")
}

const RW_HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn remote_write_refuses_bad_input_whole_and_keeps_what_it_acknowledged() {
    let dir = DataDir::new();
    let lookout = dir.start();
    let t = now_ms() - 60_000;
    let ok = lookout.post(
        "/api/v1/write",
        &body(vec![
            series(
                &[("__name__", "rw_test"), ("case", "a")],
                &[(t, 1.0), (t + 1000, 2.0)],
            ),
            series(&[("__name__", "rw_test"), ("case", "b")], &[(t, 5.0)]),
        ]),
        &RW_HEADERS,
    );
    assert_eq!(ok.status, 204, "{}", ok.text());

    let count = |lookout: &super::harness::Server, sel: &str| {
        lookout.get_json(&format!("/api/v1/series?match[]={}", encode(sel)), 200)["data"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    };
    let refused = |b: &[u8], headers: &[(&str, &str)], status: u16, words: &str| {
        let r = lookout.post("/api/v1/write", b, headers);
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.text().contains(words), "{words:?} not in {:?}", r.text());
    };
    // Out of order: fails whole, so the good series beside it is not stored either.
    refused(
        &body(vec![
            series(&[("__name__", "rw_test"), ("case", "c")], &[(t, 1.0)]),
            series(
                &[("__name__", "rw_test"), ("case", "a")],
                &[(t - 1000, 0.5)],
            ),
        ]),
        &RW_HEADERS,
        400,
        "out of order sample",
    );
    // Invalid label name, missing metric name, a different value at a stored timestamp.
    refused(
        &body(vec![
            series(&[("__name__", "rw_test"), ("case", "d")], &[(t, 1.0)]),
            series(&[("__name__", "rw_test"), ("bad-label", "x")], &[(t, 1.0)]),
        ]),
        &RW_HEADERS,
        400,
        "invalid label name \"bad-label\"",
    );
    refused(
        &body(vec![series(&[("job", "x")], &[(t, 1.0)])]),
        &RW_HEADERS,
        400,
        "no metric name",
    );
    refused(
        &body(vec![series(
            &[("__name__", "rw_test"), ("case", "b")],
            &[(t, 6.0)],
        )]),
        &RW_HEADERS,
        400,
        "duplicate sample for timestamp",
    );
    // Garbage: not snappy; snappy but not protobuf; remote write 2.0; another compression.
    refused(b"this is not snappy", &RW_HEADERS, 400, "snappy");
    let junk = snap::raw::Encoder::new()
        .compress_vec(&[0x0a, 0xff, 0xff, 0x01])
        .unwrap();
    refused(&junk, &RW_HEADERS, 400, "proto");
    refused(
        &body(vec![]),
        &[(
            "Content-Type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )],
        415,
        "remote write 1.0",
    );
    refused(
        &body(vec![]),
        &[("Content-Encoding", "zstd")],
        415,
        "snappy",
    );
    assert_eq!(
        count(&lookout, "{case=~\"c|d\"}"),
        0,
        "a refused request left samples behind"
    );
    assert_eq!(count(&lookout, "{bad_label=\"x\"}"), 0);

    // What was acknowledged survives SIGKILL.
    lookout.kill();
    let lookout = dir.start();
    assert_eq!(count(&lookout, "rw_test"), 2);
    let fed = lookout.get(&format!("/federate?match[]={}", encode("rw_test")));
    // Samples older than the 5-minute lookback would not be federated; these are 1 minute old.
    assert!(
        fed.text()
            .contains(&format!("rw_test{{case=\"a\"}} 2 {}", t + 1000)),
        "{}",
        fed.text()
    );
}

/// Issue 3's durability promise past the head: 84 hours of samples, acknowledged, SIGKILL;
/// the restart replays the WAL and its first maintenance cuts 2 h blocks, merges them into 6 h
/// ones (merges are capped at a tenth of the retention) and applies a 3-day retention; more
/// samples are acknowledged, SIGKILL again. Every acknowledged sample inside the retention is
/// then answered exactly, and the oldest are gone.
#[test]
fn acknowledged_samples_survive_sigkill_after_compaction_and_retention() {
    const STEP: i64 = 60_000;
    const HOUR: i64 = 3_600_000;
    const SERIES: usize = 5;
    let dir =
        DataDir::with_config("[scrape]\nself_scrape = false\n[metrics]\nretention = \"3d\"\n");
    let lookout = dir.start();
    // Minute-aligned, so every window below holds a whole number of samples.
    let newest = now_ms() / STEP * STEP - 2 * STEP;
    let first = newest - 84 * HOUR;
    // One request per hour across all series: time order overall, as a backfill must come.
    let mut t0 = first;
    while t0 < newest {
        let t1 = (t0 + HOUR).min(newest);
        let ts = (0..SERIES)
            .map(|i| {
                let samples: Vec<(i64, f64)> = (t0..t1)
                    .step_by(STEP as usize)
                    .map(|t| (t, (t / STEP) as f64 + i as f64))
                    .collect();
                series(&[("__name__", "dur_test"), ("i", &i.to_string())], &samples)
            })
            .collect();
        let r = lookout.post("/api/v1/write", &body(ts), &RW_HEADERS);
        assert_eq!(r.status, 204, "{}", r.text());
        t0 = t1;
    }
    lookout.kill();

    let lookout = dir.start();
    super::harness::eventually(Duration::from_secs(60), || {
        match lookout.metric("lookout_tsdb_maintenance_runs_total", &[]) {
            n if n > 0.0 => Ok(()),
            _ => Err("the first maintenance has not finished".to_string()),
        }
    })
    .expect("maintenance runs at start");
    let blocks = lookout.metric("lookout_store_blocks", &["signal=\"metrics\""]);
    assert!(
        lookout.metric("lookout_tsdb_blocks_written_total", &[]) > blocks
            && lookout.metric("lookout_tsdb_blocks_compacted_total", &[]) > 0.0
            && lookout.metric("lookout_tsdb_blocks_deleted_total", &[]) > 0.0,
        "blocks cut, merged and deleted:\n{}",
        lookout.get("/metrics").text()
    );
    // The newest minute after the restart: acknowledged, then SIGKILL before any cut.
    let ts = (0..SERIES)
        .map(|i| {
            series(
                &[("__name__", "dur_test"), ("i", &i.to_string())],
                &[(newest, (newest / STEP) as f64 + i as f64)],
            )
        })
        .collect();
    let r = lookout.post("/api/v1/write", &body(ts), &RW_HEADERS);
    assert_eq!(r.status, 204, "{}", r.text());
    lookout.kill();

    let lookout = dir.start();
    super::harness::eventually(Duration::from_secs(60), || {
        match lookout.metric("lookout_tsdb_maintenance_runs_total", &[]) {
            n if n > 0.0 => Ok(()),
            _ => Err("the first maintenance has not finished".to_string()),
        }
    })
    .expect("maintenance runs at start");
    let query = |q: &str| {
        let path = format!("/api/v1/query?query={}&time={}", encode(q), newest / 1000);
        let doc = lookout.get_json(&path, 200);
        let mut out: Vec<(String, f64)> = doc["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|r| {
                let v = r["value"][1].as_str().unwrap().parse::<f64>().unwrap();
                (r["metric"]["i"].as_str().unwrap_or("").to_string(), v)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    };
    // Inside the retention: every sample of the last 6 hours, with its exact value.
    let samples_6h = 6 * HOUR / STEP;
    let first_6h = newest / STEP - samples_6h + 1;
    let counts = query("count_over_time(dur_test[6h])");
    let sums = query("sum_over_time(dur_test[6h])");
    assert_eq!(counts.len(), SERIES, "{counts:?} (blocks: {blocks})");
    for i in 0..SERIES {
        assert_eq!(counts[i], (i.to_string(), samples_6h as f64), "{counts:?}");
        let want: i64 = (first_6h..=newest / STEP).map(|m| m + i as i64).sum();
        assert_eq!(sums[i], (i.to_string(), want as f64), "{sums:?}");
    }
    // Deep inside the retention, in merged blocks: a whole day, exact.
    let day = query("count_over_time(dur_test[24h] offset 40h)");
    assert_eq!(day.len(), SERIES, "{day:?}");
    assert!(day.iter().all(|(_, n)| *n == 1440.0), "{day:?}");
    // Past the retention and the widest merged block (6 h): deleted.
    let old = query("count_over_time(dur_test[4h] offset 79h)");
    assert!(
        old.is_empty(),
        "samples older than the retention survived: {old:?}; blocks (newest {newest}): {:?}",
        std::fs::read_dir(dir.data_path().join("metrics/blocks"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    );
    assert!(
        lookout.metric("lookout_store_blocks", &["signal=\"metrics\""]) > 0.0,
        "blocks are still there after the restart"
    );
}

#[test]
fn otlp_metrics_from_the_python_sdk_are_stored_under_prometheus_names() {
    let dir = DataDir::new();
    let lookout = dir.start();
    // The ingest crate's script records one of every instrument and exports it once.
    let script = "../../../ingest/tests/python/export_metrics.py";
    for (protocol, endpoint) in [
        ("grpc", format!("http://{}", lookout.otlp_grpc)),
        (
            "http-protobuf",
            format!("http://{}/v1/metrics", lookout.otlp_http),
        ),
    ] {
        let out = super::harness::python_command(script)
            .args(["--protocol", protocol, "--endpoint", &endpoint])
            .output()
            .expect("run export_metrics.py");
        assert!(
            out.status.success(),
            "export over {protocol} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let series = |sel: &str| {
        lookout.get_json(&format!("/api/v1/series?match[]={}", encode(sel)), 200)["data"].clone()
    };
    assert_eq!(
        series("requests_total"),
        json(
            r#"[{"__name__":"requests_total","http_route":"/cart","instance":"instance-1","job":"demo/shop-api"}]"#
        )
    );
    let buckets = series("http_server_duration_milliseconds_bucket");
    assert!(
        buckets.as_array().is_some_and(|b| b.len() > 10),
        "{buckets}"
    );
    assert_eq!(
        series("target_info")[0]["deployment_environment"],
        "test",
        "target_info carries the other resource attributes"
    );
    let md = lookout.get_json("/api/v1/metadata?metric=requests_total", 200);
    assert_eq!(md["data"]["requests_total"][0]["type"], "counter", "{md}");
    // The exponential histogram is stored as a native histogram under its plain name, and
    // the tsdb's querier finds it.
    assert_eq!(
        series("payload_size_bytes"),
        json(
            r#"[{"__name__":"payload_size_bytes","instance":"instance-1","job":"demo/shop-api"}]"#
        )
    );
    assert!(series("payload_size_bytes_bucket")
        .as_array()
        .is_some_and(Vec::is_empty));
    let md = lookout.get_json("/api/v1/metadata?metric=payload_size_bytes", 200);
    assert_eq!(
        md["data"]["payload_size_bytes"][0]["type"], "histogram",
        "{md}"
    );
    assert!(lookout.metric("lookout_tsdb_head_histogram_samples_appended_total", &[]) >= 2.0);
}

/// Sends the load generator's node-exporter-like series to a remote_write URL.
fn load(url: &str, series: u64, rounds: u64, start_ms: i64) {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["loadgen", "metrics", "--endpoint", url, "--json"])
        .args([
            "--series",
            &series.to_string(),
            "--rounds",
            &rounds.to_string(),
        ])
        .args(["--interval", "15s", "--start-ms", &start_ms.to_string()])
        .output()
        .expect("run lookout loadgen metrics");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadgen to {url}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(text.lines().last().unwrap_or(""));
    assert_eq!(report["samples_failed"], 0, "loadgen to {url}: {report}");
}

/// Whether two answers agree: the same structure and strings everywhere, numbers (sample
/// values are strings) equal or within 1e-12 relative (Prometheus 2.42 and 3 sum floats in
/// different orders, so their last digits may differ between versions).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            x == y
                || match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(p), Ok(q)) => {
                        (p.is_nan() && q.is_nan()) || (p - q).abs() <= 1e-12 * p.abs().max(q.abs())
                    }
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Where two answers first differ (as [`same`] judges), for failure messages.
fn first_diff(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_diff(p, q, &format!("{path}[{i}]"))),
        (Value::Object(x), Value::Object(y)) if x.len() == y.len() => {
            x.iter().find_map(|(k, v)| match y.get(k) {
                Some(w) => first_diff(v, w, &format!("{path}.{k}")),
                None => Some(format!("{path}: key {k} only in ours")),
            })
        }
        _ if same(a, b) => None,
        _ => {
            let short = |v: &Value| {
                let s = v.to_string();
                if s.len() > 300 {
                    format!("{}...", &s[..300])
                } else {
                    s
                }
            };
            Some(format!("{path}: ours {} theirs {}", short(a), short(b)))
        }
    }
}

/// Vector and matrix results in a stable order (Prometheus does not sort instant vectors).
fn sorted(mut doc: Value) -> Value {
    if let Some(result) = doc["data"]["result"].as_array_mut() {
        result.sort_by_key(|s| s["metric"].to_string());
    }
    doc
}

#[test]
fn promql_answers_as_prometheus_on_the_same_remote_written_data() {
    let dir = DataDir::new();
    let lookout = dir.start();
    let prom = Prometheus::start("global: {}\n");
    // 2000 series (2 hosts x 50 metrics x 20 cpus) over 30 minutes, ending a minute ago.
    // Samples sit 7.5 s off the 15 s grid, so none falls on a subquery step (a multiple of
    // the step since the epoch): there Prometheus 2's left-closed and 3's left-open windows
    // would select different samples.
    let rounds = 120;
    let start = (now_ms() - 60_000 - rounds as i64 * 15_000) / 15_000 * 15_000 + 7_500;
    load(
        &format!("http://{}/api/v1/write", lookout.http),
        2000,
        rounds,
        start,
    );
    load(
        &format!("http://{}/api/v1/write", prom.addr),
        2000,
        rounds,
        start,
    );
    // Evaluate between samples, half a minute off the minute grid: windows ending there
    // start off every sample and off every subquery step, so Prometheus 2's left-closed and
    // Prometheus 3's left-open windows (and subquery ranges) select the same points. And keep every window
    // clear of the series' first sample: there Debian's Prometheus 2.42 extrapolates rate()
    // toward the counter's zero point before applying the 1.1-interval threshold, where
    // Prometheus 3 (and Lookout) applies the threshold first, so their answers differ.
    let end = (start + (rounds as i64 - 1) * 15_000) / 60_000 * 60_000 - 30_000;
    let t = |ms: i64| format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000));
    let queries = [
        "node_load1",
        "node_load1{cpu=~\"1.?\",instance!=\"host-0:9100\"}",
        "rate(node_cpu_seconds_total[5m])",
        "irate(http_requests_total[5m])",
        "increase(http_requests_total[10m])",
        "sum by (instance) (rate(node_network_receive_bytes_total[5m]))",
        "sum without (cpu) (node_load5)",
        "avg by (cpu) (node_load1)",
        "max(node_load15) by (instance)",
        "min(node_load15)",
        "count by (instance) (node_load1 > 500)",
        "stddev by (instance) (node_load1)",
        "stdvar(node_load5)",
        "group by (instance) (node_load1)",
        "topk(3, node_memory_MemFree_bytes)",
        "bottomk(2, node_memory_Cached_bytes)",
        "quantile(0.9, node_load1)",
        "quantile by (instance) (0.25, node_load5)",
        "avg_over_time(node_load5[10m])",
        "max_over_time(node_load1[10m])",
        "min_over_time(node_load1[10m])",
        "sum_over_time(node_procs_running[5m])",
        "count_over_time(node_load1[10m])",
        "stddev_over_time(node_load1[10m])",
        "quantile_over_time(0.9, node_load1[10m])",
        "last_over_time(node_load1[10m])",
        "delta(node_load1[10m])",
        "idelta(node_load1[10m])",
        "deriv(node_load1[10m])",
        "predict_linear(node_load1[10m], 3600)",
        "resets(http_requests_total[20m])",
        "changes(node_load1[10m])",
        "node_filesystem_avail_bytes / node_filesystem_size_bytes",
        "node_filesystem_avail_bytes / ignoring(__name__) node_filesystem_size_bytes",
        "node_load1 > bool 500",
        "node_load1 > 500",
        "node_load1 - on(instance, cpu) node_load5",
        "node_load1 / on(instance) group_left sum by (instance) (node_load5)",
        "sum by (instance) (node_load5) * on(instance) group_right node_load1",
        "node_load1 and node_load5 > 500",
        "node_load1 unless on(cpu) node_load5{cpu=\"0\"}",
        "node_load1{cpu=\"1\"} or node_load5{cpu=\"2\"}",
        "2 * node_load1 + 1",
        "-node_load1 % 7",
        "node_load1 ^ 0.5",
        "abs(delta(node_load1[5m]))",
        "clamp_max(node_load1, 500)",
        "clamp_min(node_load1, 200)",
        "clamp(node_load1, 200, 700)",
        "round(node_load1, 10)",
        "ceil(node_load1 / 3)",
        "floor(node_load1 / 3)",
        "sqrt(node_load1)",
        "exp(node_load1 / 1000)",
        "ln(node_load1 + 1)",
        "log2(node_load1 + 1)",
        "log10(node_load1 + 1)",
        "sgn(node_load1 - 500)",
        "label_replace(node_load1, \"host\", \"$1\", \"instance\", \"(.*):.*\")",
        "label_join(node_load1, \"id\", \"-\", \"instance\", \"cpu\")",
        "absent(nonexistent_metric)",
        "absent(node_load1)",
        "absent_over_time(nonexistent_metric[5m])",
        "vector(1)",
        "scalar(sum(node_load1))",
        "time()",
        "timestamp(node_load1)",
        "node_load1 offset 5m",
        "rate(http_requests_total[5m] offset 10m)",
        "max_over_time(rate(http_requests_total[5m])[10m:1m])",
        "count_values(\"value\", round(node_load1 / 100))",
        "sort_desc(sum by (instance) (node_load1))",
        "sum(rate(node_cpu_seconds_total{cpu=~\"[0-4]\"}[5m])) by (instance) / count(node_load1) by (instance)",
        "histogram_quantile(0.9, sum by (le) (rate(nonexistent_bucket[5m])))",
        "minute(timestamp(node_load1{cpu=\"0\"}))",
        "days_in_month()",
    ];
    let mut compared = 0;
    let mut failures = Vec::new();
    for q in queries {
        for path in [
            format!("/api/v1/query?query={}&time={}", encode(q), t(end)),
            format!(
                "/api/v1/query_range?query={}&start={}&end={}&step=60",
                encode(q),
                t(end - 8 * 60_000),
                t(end)
            ),
        ] {
            let (status, theirs) = prom.get(&path);
            let ours = lookout.get(&path);
            if path.contains("query_range") && q.starts_with("sort_desc") {
                // Sorting functions only order instant results.
                continue;
            }
            let (theirs, ours) = (sorted(json(&theirs)), sorted(json(&ours.text())));
            assert_eq!(
                ours["status"], theirs["status"],
                "{path}:\nours {ours}\ntheirs {theirs}"
            );
            assert_eq!(lookout.get(&path).status, status, "{path}");
            if let Some(diff) = first_diff(&ours, &theirs, "") {
                failures.push(format!("{q} ({path}): {diff}"));
            }
            compared += 1;
        }
    }
    // Bad queries: the same error type and status as Prometheus (the wording of parse
    // errors comes from another parser and may differ).
    for path in [
        "/api/v1/query?query=sum(",
        "/api/v1/query?query=rate(node_load1)",
        "/api/v1/query?query=node_load1%5B5m%5D%20%2B%201",
        "/api/v1/query?query=foo%7B",
        "/api/v1/query?query=",
        "/api/v1/query?query=up&time=abc",
        "/api/v1/query_range?query=up&start=0&end=1000000000&step=1",
        "/api/v1/query_range?query=up&start=10&end=5&step=1",
        "/api/v1/query_range?query=up&start=0&end=10&step=0",
        "/api/v1/query_range?query=up&start=0&end=10&step=x",
        "/api/v1/query_range?query=node_load1%5B5m%5D&start=0&end=10&step=1",
    ] {
        let (status, theirs) = prom.get(path);
        let ours = lookout.get(path);
        let (theirs, doc) = (json(&theirs), json(&ours.text()));
        assert_eq!(doc["status"], "error", "{path}: {doc}");
        assert_eq!(
            (ours.status, &doc["errorType"]),
            (status, &theirs["errorType"]),
            "{path}: ours {doc} theirs {theirs}"
        );
    }
    // parse_query is Prometheus 3's (2.42 has none): the tree for the UI, or bad_data.
    let tree = json(
        &lookout
            .get("/api/v1/parse_query?query=sum%20by%20(job)%20(up)")
            .text(),
    );
    assert_eq!(tree["data"]["type"], "aggregation", "{tree}");
    assert_eq!(tree["data"]["grouping"][0], "job", "{tree}");
    let bad = lookout.get("/api/v1/parse_query?query=sum(");
    assert_eq!(
        (bad.status, json(&bad.text())["errorType"].as_str()),
        (400, Some("bad_data"))
    );
    // Runaway work is refused or cut off, and the server stays up.
    for q in [
        "count_values(\"v\", node_load1 * 1e9 + time())",
        "max_over_time(rate(node_cpu_seconds_total[5m])[30d:1s])",
        "sum(node_load1 offset 100000d)",
        "node_load1 @ 99999999999999",
    ] {
        let path = format!("/api/v1/query?query={}&time={}", encode(q), t(end));
        let reply = lookout.get(&path);
        assert!(
            reply.status == 200
                || reply.status == 422
                || reply.status == 400
                || reply.status == 503,
            "{q}: {} {}",
            reply.status,
            reply.text()
        );
    }
    assert_eq!(lookout.get("/-/healthy").status, 200);
    assert!(
        failures.is_empty(),
        "{} of {compared} answers differ from Prometheus's:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared > 140, "only {compared} answers compared");
}

#[test]
fn scrapes_itself_reports_targets_and_reloads_its_configuration() {
    let dir = DataDir::with_config(
        "[scrape]\ninterval = \"1s\"\n[metrics]\nprometheus_config = \"prometheus.yml\"\n",
    );
    let prom_yml = dir.root().join("prometheus.yml");
    let write_yml = |job: &str| {
        std::fs::write(
            &prom_yml,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:1']\n"
            ),
        )
        .expect("write prometheus.yml")
    };
    write_yml("nothing_there");
    let lookout = dir.start();
    let active = |lookout: &super::harness::Server| {
        let doc = lookout.get_json("/api/v1/targets", 200);
        doc["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let targets = active(&lookout);
        let health = |pool: &str| {
            targets
                .iter()
                .find(|t| t["scrapePool"] == pool)
                .map(|t| t["health"].as_str().unwrap_or("").to_string())
        };
        if health("lookout").as_deref() == Some("up")
            && health("nothing_there").as_deref() == Some("down")
        {
            let down = targets
                .iter()
                .find(|t| t["scrapePool"] == "nothing_there")
                .unwrap();
            assert!(
                down["lastError"].as_str().is_some_and(|e| !e.is_empty()),
                "{down}"
            );
            assert_eq!(down["labels"]["instance"], "127.0.0.1:1");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targets never became up/down: {targets:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    // Its own metrics are queryable, with the synthetic series beside them.
    let q = |expr: &str| {
        lookout.get_json(&format!("/api/v1/query?query={}", encode(expr)), 200)["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(q("up{job=\"lookout\"}")[0]["value"][1], "1");
    assert_eq!(q("up{job=\"nothing_there\"}")[0]["value"][1], "0");
    assert!(!q("lookout_build_info{job=\"lookout\"}").is_empty());
    assert!(!q("scrape_duration_seconds{job=\"lookout\"}").is_empty());

    // POST /-/reload applies a changed file; a broken one is refused and changes nothing.
    write_yml("renamed");
    let r = lookout.post("/-/reload", b"", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let pools = |lookout: &super::harness::Server| {
        let mut p: Vec<String> = active(lookout)
            .iter()
            .map(|t| t["scrapePool"].as_str().unwrap_or("").to_string())
            .collect();
        p.sort();
        p
    };
    assert_eq!(pools(&lookout), ["lookout", "renamed"]);
    std::fs::write(&prom_yml, "scrape_configs: [oops").unwrap();
    let r = lookout.post("/-/reload", b"", &[]);
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        r.text().starts_with("failed to reload config: "),
        "{}",
        r.text()
    );
    assert_eq!(pools(&lookout), ["lookout", "renamed"]);
    assert_eq!(lookout.get("/-/reload").status, 405);
    // SIGHUP does the same as POST /-/reload.
    write_yml("after_hup");
    let status = Command::new("kill")
        .args(["-HUP", &lookout.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while pools(&lookout) != ["after_hup", "lookout"] {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload: {:?}",
            pools(&lookout)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// An integer histogram at step `n`: buckets 1·n, 2·n, 3·n at indexes -1, 0, 4 (two spans),
/// one negative bucket, a zero bucket.
fn int_histogram(timestamp: i64, n: u64) -> Histogram {
    let k = n as i64;
    Histogram {
        count_int: 8 * n,
        sum: 2.5 * n as f64,
        schema: 1,
        zero_threshold: 1e-128,
        zero_count_int: n,
        negative_spans: vec![BucketSpan {
            offset: 0,
            length: 1,
        }],
        negative_deltas: vec![k],
        positive_spans: vec![
            BucketSpan {
                offset: -1,
                length: 2,
            },
            BucketSpan {
                offset: 3,
                length: 1,
            },
        ],
        positive_deltas: vec![k, k, k],
        timestamp,
    }
}

#[test]
fn native_histograms_over_remote_write_are_listed_as_prometheus_lists_them() {
    let dir = DataDir::new();
    let lookout = dir.start();
    let prom = Prometheus::start_with("global: {}\n", &["--enable-feature=native-histograms"]);
    let t = (now_ms() - 120_000) / 1000 * 1000;
    let mut mixed = series(&[("__name__", "rw_hist"), ("case", "mixed")], &[(t, 1.0)]);
    mixed.histograms = vec![int_histogram(t + 15_000, 3)];
    let mut only = series(&[("__name__", "rw_hist"), ("case", "int")], &[]);
    only.histograms = vec![int_histogram(t, 1), int_histogram(t + 15_000, 2)];
    let request = body(vec![only, mixed]);
    let r = lookout.post("/api/v1/write", &request, &RW_HEADERS);
    assert_eq!(r.status, 204, "{}", r.text());
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut req = agent.post(&format!("http://{}/api/v1/write", prom.addr));
    for (k, v) in RW_HEADERS {
        req = req.header(k, v);
    }
    let status = req.send(&request[..]).map(|r| r.status().as_u16());
    assert_eq!(status.ok(), Some(204), "prometheus refused: {}", prom.log());

    let path = format!(
        "/api/v1/series?match[]={}&start={}&end={}",
        encode("rw_hist"),
        t / 1000 - 60,
        t / 1000 + 60
    );
    let ours = sorted_series(lookout.get_json(&path, 200));
    let (code, text) = prom.get(&path);
    assert_eq!(code, 200, "{text}");
    let theirs = sorted_series(json(&text));
    assert_eq!(ours, theirs);
    assert_eq!(ours["data"].as_array().map(Vec::len), Some(2));
    // Text federation cannot carry native histograms: a series whose newest sample is one
    // is left out, by both.
    let fed = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("rw_hist"))
            .map(str::to_string)
            .collect()
    };
    let path_fed = format!("/federate?match[]={}", encode("rw_hist"));
    let (code, text) = prom.get(&path_fed);
    assert_eq!(code, 200, "{text}");
    assert_eq!(fed(lookout.get(&path_fed).text()), fed(text));
    // PromQL over them: the histograms themselves and functions of them, at a time after
    // both samples, compared with Prometheus's answers. histogram_quantile is left out:
    // Prometheus 3 (and Lookout) interpolates inside an exponential bucket exponentially,
    // 2.42 linearly (here 2^-0.25 = 0.8409 against 0.8536).
    let at = format!("{}.500", (t + 20_000) / 1000);
    let mut differ = Vec::new();
    for q in [
        "rw_hist",
        "histogram_count(rw_hist)",
        "histogram_sum(rw_hist)",
        "histogram_fraction(0, 2, rw_hist)",
        "sum(rw_hist)",
    ] {
        let path = format!("/api/v1/query?query={}&time={at}", encode(q));
        let ours = sorted(lookout.get_json(&path, 200));
        let (code, text) = prom.get(&path);
        assert_eq!(code, 200, "{q}: {text}");
        let theirs = sorted(json(&text));
        if let Some(d) = first_diff(&ours, &theirs, "") {
            differ.push(format!("{q}: {d}"));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));

    // A broken histogram (a bucket count below zero) fails its whole request, as a float
    // sample out of order does: the good series beside it is not stored.
    let mut bad = int_histogram(t + 30_000, 4);
    bad.positive_deltas = vec![4, -9, 4];
    let mut broken = series(&[("__name__", "rw_hist"), ("case", "broken")], &[]);
    broken.histograms = vec![bad];
    let good = series(&[("__name__", "rw_hist"), ("case", "beside")], &[(t, 1.0)]);
    let r = lookout.post("/api/v1/write", &body(vec![good, broken]), &RW_HEADERS);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains("native histogram at timestamp")
            && r.text().contains("positive bucket 1 has count -5"),
        "{}",
        r.text()
    );
    // An older histogram of a stored series: out of order, named as Prometheus names it.
    let mut late = series(&[("__name__", "rw_hist"), ("case", "int")], &[]);
    late.histograms = vec![int_histogram(t - 15_000, 1)];
    let r = lookout.post("/api/v1/write", &body(vec![late]), &RW_HEADERS);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("out of order sample"), "{}", r.text());
    let listed = |lookout: &super::harness::Server| {
        sorted_series(lookout.get_json(&path, 200))["data"]
            .as_array()
            .map(Vec::len)
    };
    assert_eq!(
        listed(&lookout),
        Some(2),
        "a refused request left series behind"
    );
    assert!(
        lookout.metric("lookout_tsdb_head_histogram_samples_appended_total", &[]) >= 3.0
            && lookout.metric("lookout_tsdb_rejected_histogram_samples_total", &[]) >= 1.0,
        "{}",
        lookout.get("/metrics").text()
    );

    // Acknowledged histograms survive SIGKILL.
    lookout.kill();
    let lookout = dir.start();
    assert_eq!(sorted_series(lookout.get_json(&path, 200)), theirs);
    assert!(lookout.metric("lookout_tsdb_head_histogram_samples_appended_total", &[]) >= 3.0);
}

/// A series answer with its list in a stable order.
fn sorted_series(mut doc: Value) -> Value {
    if let Some(list) = doc["data"].as_array_mut() {
        list.sort_by_key(|s| s.to_string());
    }
    doc
}

/// A job with `scrape_native_histograms` scrapes the protobuf target of the ingest tests
/// (tests/python/proto_target.py there): its native histograms reach the tsdb and PromQL
/// as native histograms, with the counts the target serves, and the classic one as series.
#[test]
fn scraped_native_histograms_are_stored_and_queried() {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ingest/tests/python/proto_target.py");
    let mut target = Command::new(super::harness::python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the protobuf target");
    let mut out = std::io::BufReader::new(target.stdout.take().unwrap());
    let mut port = String::new();
    std::io::BufRead::read_line(&mut out, &mut port).unwrap();
    let port: u16 = port.trim().parse().expect("the target's port");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _target = Kill(target);

    let dir = DataDir::with_config(
        "[scrape]\nself_scrape = false\n[metrics]\nprometheus_config = \"prometheus.yml\"\n",
    );
    std::fs::write(
        dir.root().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: native\n    scrape_native_histograms: true\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let lookout = dir.start();
    let q = |expr: &str| {
        lookout.get_json(&format!("/api/v1/query?query={}", encode(expr)), 200)["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while q("rpc_duration_seconds").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no native histograms stored: {:?}",
            q("up")
        );
        thread::sleep(Duration::from_millis(200));
    }
    let r = q("rpc_duration_seconds{method=\"put\"}");
    let h = &r[0]["histogram"][1];
    assert_eq!(
        (h["count"].as_str(), h["sum"].as_str()),
        (Some("20"), Some("14.5")),
        "{r:?}"
    );
    assert_eq!(h["buckets"].as_array().map(Vec::len), Some(5), "{r:?}");
    assert_eq!(q("histogram_count(sparse_seconds)")[0]["value"][1], "13");
    // No classic series for a histogram stored as native; the classic-only one has them.
    assert!(q("rpc_duration_seconds_bucket").is_empty());
    assert_eq!(q("classic_seconds_bucket{le=\"+Inf\"}")[0]["value"][1], "6");
    let meta = lookout.get_json("/api/v1/metadata?metric=sparse_seconds", 200);
    assert_eq!(
        meta["data"]["sparse_seconds"][0]["type"], "histogram",
        "{meta}"
    );
}
