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
struct Prometheus {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
    agent: ureq::Agent,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("pick a free port")
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML; `{self}` is replaced by its own address).
    fn start(config: &str) -> Prometheus {
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

    fn get(&self, path: &str) -> (u16, String) {
        get(&self.agent, &format!("http://{}{path}", self.addr))
    }

    fn log(&self) -> String {
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

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn metadata_api_answers_as_prometheus_for_the_same_series() {
    let dir = DataDir::new();
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
    // Wait until both hold three scrapes' worth and Lookout has the metadata.
    prom.wait_until(
        Duration::from_secs(60),
        "lookout to receive the series",
        |p| {
            let theirs = json(&p.get(&series_path(selectors[2])).1);
            let ours = json(&lookout.get(&series_path(selectors[2])).text());
            let md = json(&lookout.get("/api/v1/metadata?metric=go_goroutines").text());
            theirs["data"].as_array().is_some_and(|a| !a.is_empty())
                && theirs == ours
                && md["data"]["go_goroutines"].is_array()
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

fn encode(s: &str) -> String {
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
}
