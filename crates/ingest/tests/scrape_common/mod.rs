//! Shared by the scrape integration tests: a recording sink, the Python `prometheus_client`
//! target, a tiny HTTP server whose answers a test scripts, and polling helpers.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::metrics::{
    AppendError, AppendOutcome, HistogramSample, MetadataRegistry, MetricsSink, Sample,
};
use ingest::BoxFuture;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;

/// A sink that keeps every append, in order (native histogram samples apart).
#[derive(Default)]
pub struct RecordingSink {
    pub appends: Mutex<Vec<Vec<Sample>>>,
    pub histograms: Mutex<Vec<HistogramSample>>,
    pub metadata: MetadataRegistry,
}

impl MetricsSink for RecordingSink {
    fn append(&self, samples: Vec<Sample>) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        let n = samples.len();
        self.appends.lock().push(samples);
        Box::pin(async move {
            Ok(AppendOutcome {
                appended: n,
                ..AppendOutcome::default()
            })
        })
    }

    fn append_all_or_nothing(
        &self,
        samples: Vec<Sample>,
    ) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        self.append(samples)
    }

    fn append_with_histograms(
        &self,
        samples: Vec<Sample>,
        histograms: Vec<HistogramSample>,
        _all_or_nothing: bool,
    ) -> BoxFuture<'_, Result<AppendOutcome, AppendError>> {
        let n = samples.len() + histograms.len();
        self.appends.lock().push(samples);
        self.histograms.lock().extend(histograms);
        Box::pin(async move {
            Ok(AppendOutcome {
                appended: n,
                ..AppendOutcome::default()
            })
        })
    }

    fn record_metadata(&self, metadata: Vec<(String, ingest::MetricMetadata)>) {
        self.metadata.record(metadata);
    }
}

pub type LabelMap = BTreeMap<String, String>;

impl RecordingSink {
    /// Every series appended so far, as name → value maps.
    pub fn series(&self) -> BTreeSet<LabelMap> {
        self.appends
            .lock()
            .iter()
            .flatten()
            .map(|(l, _, _)| to_map(l))
            .collect()
    }

    /// Series with a sample at or after `min_ts` (ms): what a store that refuses samples
    /// far older than its head (Prometheus's "out of bounds") keeps.
    pub fn series_since(&self, min_ts: i64) -> BTreeSet<LabelMap> {
        self.appends
            .lock()
            .iter()
            .flatten()
            .filter(|(_, t, _)| *t >= min_ts)
            .map(|(l, _, _)| to_map(l))
            .collect()
    }

    /// All samples of series whose labels include `with`.
    pub fn samples_of(&self, with: &[(&str, &str)]) -> Vec<(LabelMap, i64, f64)> {
        self.appends
            .lock()
            .iter()
            .flatten()
            .filter(|(l, _, _)| with.iter().all(|(k, v)| l.get(k) == Some(*v)))
            .map(|(l, t, v)| (to_map(l), *t, *v))
            .collect()
    }
}

pub fn to_map(l: &model::labels::Labels) -> LabelMap {
    l.iter()
        .map(|x| (x.name.to_string(), x.value.to_string()))
        .collect()
}

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == ingest::scrape::STALE_NAN_BITS
}

/// A child process killed when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test venv's Python: `$LOOKOUT_TEST_PYTHON`, else `<repo>/.venv/bin/python`. Missing
/// is a failure with instructions, not a skip (as in the end-to-end harness).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LOOKOUT_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.is_file(),
        "the scrape tests need prometheus_client: run `bash scripts/python-env.sh` \
         (or set LOOKOUT_TEST_PYTHON to a python with scripts/requirements-test.txt installed)"
    );
    venv
}

/// Starts `tests/python/prom_target.py`; returns the process and its `host:port`.
pub fn start_python_target() -> (KillOnDrop, String) {
    let (child, addr, _) = start_python_script("prom_target.py", 0);
    (child, addr)
}

/// Starts `tests/python/<name>`, which prints its port and then `extra` more lines;
/// returns the process, its `host:port` and those lines.
pub fn start_python_script(name: &str, extra: usize) -> (KillOnDrop, String, Vec<String>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name);
    let mut child = Command::new(python())
        .arg(script)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the prometheus_client target");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read the target's port");
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("target printed {line:?}"));
    let lines = (0..extra)
        .map(|_| {
            let mut l = String::new();
            out.read_line(&mut l).expect("read the target's output");
            l.trim().to_string()
        })
        .collect();
    (KillOnDrop(child), format!("127.0.0.1:{port}"), lines)
}

/// A local address where connections are refused, for a target that is down. The socket is
/// bound but not listening, and holds the port until dropped: a port merely seen free could
/// be handed out again, to the Prometheus of the same test, which then answered as that
/// target.
pub fn refusing_addr() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `Content-Type` of a protobuf exposition body.
pub const PROTO: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// How a scripted target answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this content type and body.
    Body(&'static str, String),
    /// 200 with this content type and binary body.
    Bytes(&'static str, Vec<u8>),
    /// 200, gzip-compressed body.
    Gzip(&'static str, String),
    /// 200, gzip-compressed body cut before the stream's trailer (checksum and length).
    TruncatedGzip(&'static str, String),
    /// This status, empty body.
    Status(u16),
    /// Accept the request and never answer.
    Hang,
    /// This 3xx status with this `Location` (none if empty), except at the path given
    /// last, which answers 200 with a text body.
    Redirect(u16, String, &'static str, String),
}

/// A target whose answer the test changes at will; records the request heads it got.
pub struct ScriptedTarget {
    pub addr: SocketAddr,
    pub answer: Arc<Mutex<Answer>>,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl ScriptedTarget {
    pub async fn start(answer: Answer) -> ScriptedTarget {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new(answer));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (a, r) = (answer.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (a, r) = (a.clone(), r.clone());
                tokio::spawn(async move {
                    loop {
                        let Some(head) = read_request_head(&mut sock).await else {
                            return;
                        };
                        r.lock().push(String::from_utf8_lossy(&head).into_owned());
                        let answer = a.lock().clone();
                        let path = String::from_utf8_lossy(&head)
                            .split(' ')
                            .nth(1)
                            .unwrap_or("")
                            .to_string();
                        let mut location = String::new();
                        let (status, ct, body, gz) = match answer {
                            Answer::Redirect(_, _, at, body) if path == at => {
                                (200, "text/plain", body.into_bytes(), false)
                            }
                            Answer::Redirect(s, loc, _, _) => {
                                location = loc;
                                (s, "text/plain", Vec::new(), false)
                            }
                            Answer::Hang => {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                return;
                            }
                            Answer::Status(s) => (s, "text/plain", Vec::new(), false),
                            Answer::Body(ct, b) => (200, ct, b.into_bytes(), false),
                            Answer::Bytes(ct, b) => (200, ct, b, false),
                            Answer::Gzip(ct, b) => (200, ct, gzip(&b), true),
                            Answer::TruncatedGzip(ct, b) => {
                                let mut z = gzip(&b);
                                z.truncate(z.len() - 8);
                                (200, ct, z, true)
                            }
                        };
                        let reason = http_reason(status);
                        let mut resp = format!(
                            "HTTP/1.1 {status} {reason}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n",
                            body.len()
                        );
                        if gz {
                            resp.push_str("Content-Encoding: gzip\r\n");
                        }
                        if !location.is_empty() {
                            resp.push_str(&format!("Location: {location}\r\n"));
                        }
                        resp.push_str("\r\n");
                        if sock.write_all(resp.as_bytes()).await.is_err()
                            || sock.write_all(&body).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        ScriptedTarget {
            addr,
            answer,
            requests,
        }
    }

    pub fn set(&self, a: Answer) {
        *self.answer.lock() = a;
    }
}

fn gzip(body: &str) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(body.as_bytes()).unwrap();
    e.finish().unwrap()
}

/// The reason phrase a real server sends (Go and Lookout both report it in `lastError`).
fn http_reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        500 => "Internal Server Error",
        _ => "X",
    }
}

/// Polls `f` until it returns Some or `timeout` passes.
pub async fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Debian's Prometheus 2.42, the peer the comparison tests run.
pub const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A running `/usr/bin/prometheus` on a private port and data directory, killed on drop.
pub struct Prometheus {
    _child: KillOnDrop,
    pub base: String,
}

impl Prometheus {
    /// Starts Prometheus on `config` (a prometheus.yml path) and waits until it is ready.
    /// A missing binary fails with instructions, as everywhere in these tests.
    pub async fn start(config: &Path, data: &Path) -> Prometheus {
        Prometheus::start_with(config, data, &[]).await
    }

    /// [`Prometheus::start`] with more flags (`--enable-feature=native-histograms`).
    pub async fn start_with(config: &Path, data: &Path, flags: &[&str]) -> Prometheus {
        assert!(
            Path::new(PROMETHEUS).is_file(),
            "{PROMETHEUS} is missing; install Debian's prometheus (scripts/system-deps.sh does)"
        );
        let port = free_port();
        let child = KillOnDrop(
            Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", data.display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=error")
                .args(flags)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start prometheus"),
        );
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while ureq::get(&format!("{base}/-/ready")).call().is_err() {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Prometheus {
            _child: child,
            base,
        }
    }

    /// GETs an API path and parses the JSON answer.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.base);
        let body = ureq::get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
    }

    /// `/api/v1/targets` `data`.
    pub fn targets(&self) -> serde_json::Value {
        self.get("/api/v1/targets")["data"].clone()
    }

    /// Every series with a sample since `start` (Unix seconds) whose labels match `matcher`.
    pub fn series(&self, matcher: &str, start: u64) -> BTreeSet<LabelMap> {
        let enc: String = matcher
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.get(&format!("/api/v1/series?match[]={enc}&start={start}"))["data"]
            .as_array()
            .expect("series data")
            .iter()
            .map(|s| serde_json::from_value(s.clone()).expect("label map"))
            .collect()
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Polls an async `f` until it returns Some or `timeout` passes.
pub async fn eventually_async<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub const TINYPROXY: &str = "/usr/bin/tinyproxy";

/// Debian's tinyproxy on a private port, in the foreground, killed on drop. It marks every
/// request it forwards with `Via: 1.1 tinyproxy`; `extra_config` adds directives
/// (`BasicAuth u p`, `ConnectPort 443`).
pub fn start_tinyproxy(dir: &Path, extra_config: &str) -> (KillOnDrop, u16) {
    assert!(
        Path::new(TINYPROXY).is_file(),
        "{TINYPROXY} is missing; install Debian's tinyproxy (scripts/system-deps.sh does)"
    );
    let port = free_port();
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut conf = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 50\nAllow 127.0.0.1\nViaProxyName \"tinyproxy\"\n"
    );
    if root {
        // tinyproxy refuses to keep running as root.
        conf.push_str("User nobody\nGroup nogroup\n");
    }
    conf.push_str(extra_config);
    let path = dir.join(format!("tinyproxy-{port}.conf"));
    std::fs::write(&path, conf).unwrap();
    let child = std::process::Command::new(TINYPROXY)
        .arg("-d")
        .arg("-c")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start tinyproxy");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "tinyproxy did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (KillOnDrop(child), port)
}

/// Reads an HTTP/1.1 request up to the end of its head (the test targets' requests have no
/// body); `None` when the client closed the connection or it failed.
pub async fn read_request_head(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    Some(head)
}
