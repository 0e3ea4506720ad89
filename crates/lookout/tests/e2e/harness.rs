//! What every end-to-end test needs: a real `lookout serve` process, HTTP requests to it, and
//! the Python scripts that drive the OpenTelemetry SDK against it.
//!
//! The server runs exactly as a user runs it: the binary cargo built for this test run
//! (`CARGO_BIN_EXE_lookout`), port 0 everywhere, and the addresses it really bound read from its
//! one ready line on stdout. A [`DataDir`] outlives the processes started in it, so durability
//! tests can kill one server with SIGKILL and start the next on the same files. Each server gets
//! a config file of its own (empty unless the test says otherwise) and a private HOME and XDG
//! dirs, so nothing on the developer's machine (a `~/.config/lookout/lookout.toml`, `LOOKOUT_*`
//! or `OTEL_*` variables) leaks into a test.
//!
//! The Python interpreter is `$LOOKOUT_TEST_PYTHON`, else the repository's `.venv`. When neither
//! exists the tests fail with instructions rather than skip: a suite that silently skips its
//! end-to-end half would pass CI while testing nothing.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take from spawn to its ready line. Startup replays the WAL, which is
/// quick for test-sized data; the margin is for a debug build on a loaded two-core CI machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop (SIGTERM, flush, exit) may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-request timeout for the test's HTTP client.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A temporary directory holding one Lookout installation: its data dir and its config file.
/// Servers started from it come and go; the files stay until the `DataDir` is dropped.
pub struct DataDir {
    tmp: tempfile::TempDir,
    config: String,
}

impl DataDir {
    /// A fresh, empty installation with an empty config file (all defaults).
    pub fn new() -> DataDir {
        DataDir::with_config("")
    }

    /// A fresh installation whose config file holds `toml`.
    pub fn with_config(toml: &str) -> DataDir {
        let tmp = tempfile::Builder::new()
            .prefix("lookout-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        DataDir {
            tmp,
            config: toml.to_string(),
        }
    }

    /// Where Lookout keeps its WAL and blocks (`--data-dir`).
    pub fn data_path(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// The temporary directory itself (the config file and data dir live inside it).
    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// The config file servers started from here are given.
    pub fn config_path(&self) -> PathBuf {
        self.tmp.path().join("lookout.toml")
    }

    /// Replaces the config file's contents for the next start.
    pub fn set_config(&mut self, toml: &str) {
        self.config = toml.to_string();
    }

    /// Starts `lookout serve` on this data dir, every address port 0, and waits for its ready
    /// line.
    pub fn start(&self) -> Server {
        let data = self.data_path();
        let config = self.config_path();
        let server = self.launch(
            &[
                "--config".as_ref(),
                config.as_os_str(),
                "--data-dir".as_ref(),
                data.as_os_str(),
                "--http-addr".as_ref(),
                "127.0.0.1:0".as_ref(),
                "--otlp-grpc-addr".as_ref(),
                "127.0.0.1:0".as_ref(),
                "--otlp-http-addr".as_ref(),
                "127.0.0.1:0".as_ref(),
            ],
            &[],
        );
        // Compare canonical paths: the server may resolve symlinks (a /tmp that is a link).
        assert_eq!(
            std::fs::canonicalize(&server.data_dir).ok(),
            std::fs::canonicalize(&data).ok(),
            "the ready line names another data dir: {}",
            server.data_dir.display()
        );
        server
    }

    /// Starts `lookout serve ARGS` with `ENV` added (after the config file is written) and
    /// waits for its ready line; for tests of how flags, environment and file combine.
    pub fn launch(&self, args: &[&std::ffi::OsStr], env: &[(&str, &str)]) -> Server {
        let root = self.tmp.path();
        std::fs::write(self.config_path(), &self.config).expect("write the config file");
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("create a private HOME");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lookout"));
        cmd.arg("serve")
            .args(args)
            .current_dir(root)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("LOOKOUT_") || key.starts_with("OTEL_") {
                cmd.env_remove(key.as_ref());
            }
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawn the lookout binary");

        // Drain stderr continuously so the server never blocks on a full pipe, and keep it to
        // show when a test fails.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().expect("stderr is piped");
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let lines = stdout_lines(child.stdout.take().expect("stdout is piped"));

        let deadline = Instant::now() + READY_TIMEOUT;
        let ready = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.starts_with("lookout is ready:") => break line,
                Ok(_) => continue,
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    // Give the stderr thread a moment to take the last bytes of a crash.
                    thread::sleep(Duration::from_millis(100));
                    panic!(
                        "lookout did not print its ready line ({}; exit status {status:?}); its stderr:\n{}",
                        match e {
                            mpsc::RecvTimeoutError::Timeout => "timed out",
                            mpsc::RecvTimeoutError::Disconnected => "stdout closed",
                        },
                        String::from_utf8_lossy(&stderr.lock().unwrap())
                    );
                }
            }
        };
        let ready = ReadyLine::parse(&ready).unwrap_or_else(|e| panic!("{e}"));
        Server {
            child: Some(child),
            http: ready.http,
            otlp_grpc: ready.otlp_grpc,
            otlp_http: ready.otlp_http,
            data_dir: PathBuf::from(ready.data_dir),
            stderr,
            _stdout_lines: lines,
            agent: http_agent(),
        }
    }
}

/// Sends each stdout line to the returned channel; keeps draining after the ready line.
fn stdout_lines(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            // The receiver may be gone once the server is; keep reading so the pipe drains.
            let _ = tx.send(line);
        }
    });
    rx
}

/// The parsed `lookout is ready: http=… otlp-grpc=… otlp-http=… data-dir=…` line.
#[derive(Debug)]
pub struct ReadyLine {
    pub http: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub data_dir: String,
}

impl ReadyLine {
    /// Parses the line; `data-dir` comes last and takes the rest, so paths with spaces work.
    pub fn parse(line: &str) -> Result<ReadyLine, String> {
        let bad = |why: &str| format!("malformed ready line ({why}): {line:?}");
        let rest = line
            .strip_prefix("lookout is ready: ")
            .ok_or_else(|| bad("prefix"))?;
        let (addrs, data_dir) = rest
            .split_once(" data-dir=")
            .ok_or_else(|| bad("no data-dir"))?;
        let mut fields = addrs.split(' ');
        let mut addr = |name: &str| -> Result<SocketAddr, String> {
            let field = fields.next().ok_or_else(|| bad(name))?;
            let value = field
                .strip_prefix(name)
                .and_then(|v| v.strip_prefix('='))
                .ok_or_else(|| bad(name))?;
            let addr: SocketAddr = value.parse().map_err(|_| bad(name))?;
            if addr.port() == 0 {
                return Err(bad("port 0 instead of the bound port"));
            }
            Ok(addr)
        };
        let http = addr("http")?;
        let otlp_grpc = addr("otlp-grpc")?;
        let otlp_http = addr("otlp-http")?;
        if fields.next().is_some() {
            return Err(bad("unexpected field"));
        }
        Ok(ReadyLine {
            http,
            otlp_grpc,
            otlp_http,
            data_dir: data_dir.to_string(),
        })
    }
}

/// A running `lookout serve`. Dropping it kills the process with SIGKILL; a test that fails
/// while it runs also prints the server's stderr.
pub struct Server {
    child: Option<Child>,
    /// The HTTP API address (Jaeger API, `/-/ready`, `/metrics`).
    pub http: SocketAddr,
    /// The OTLP/gRPC receiver address.
    pub otlp_grpc: SocketAddr,
    /// The OTLP/HTTP receiver address.
    pub otlp_http: SocketAddr,
    /// The data dir its ready line names.
    pub data_dir: PathBuf,
    stderr: Arc<Mutex<Vec<u8>>>,
    _stdout_lines: mpsc::Receiver<String>,
    agent: ureq::Agent,
}

impl Server {
    /// `host:port` of the OTLP/gRPC receiver, as the Python scripts take it.
    pub fn grpc_endpoint(&self) -> String {
        self.otlp_grpc.to_string()
    }

    /// `host:port` of the OTLP/HTTP receiver.
    pub fn http_endpoint(&self) -> String {
        self.otlp_http.to_string()
    }

    /// The server's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(|c| c.id())
            .expect("server still running")
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Kills the server with SIGKILL, as a crash or `kill -9` would, and waits for it to die.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("server still running");
        child.kill().expect("SIGKILL lookout");
        child.wait().expect("reap lookout");
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns its exit status.
    /// Panics (with the server's stderr) if it does not exit within [`STOP_TIMEOUT`].
    pub fn graceful_stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server still running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("poll lookout") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "lookout did not exit within {STOP_TIMEOUT:?} of SIGTERM; its stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET http://<http addr><path>`.
    pub fn get(&self, path: &str) -> Reply {
        let url = format!("http://{}{path}", self.http);
        let resp = self
            .agent
            .get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}\nserver stderr:\n{}", self.stderr()));
        Reply::read(&url, resp)
    }

    /// `GET` a JSON document, asserting the status.
    pub fn get_json(&self, path: &str, want_status: u16) -> Value {
        let reply = self.get(path);
        assert_eq!(reply.status, want_status, "GET {path}: {}", reply.text());
        reply.json()
    }

    /// `POST http://<addr>/v1/traces` with the given body and headers.
    pub fn post_traces(&self, addr: SocketAddr, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        self.try_post_traces(addr, body, headers)
            .unwrap_or_else(|e| {
                panic!(
                    "POST http://{addr}/v1/traces: {e}\nserver stderr:\n{}",
                    self.stderr()
                )
            })
    }

    /// Like [`Server::post_traces`], but a transport failure (e.g. the server closing the
    /// connection while the body is still being sent) is returned instead of panicking.
    pub fn try_post_traces(
        &self,
        addr: SocketAddr,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<Reply, ureq::Error> {
        let url = format!("http://{addr}/v1/traces");
        let mut req = self.agent.post(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Ok(Reply::read(&url, req.send(body)?))
    }

    /// `POST http://<http addr><path>` with the given body and headers.
    pub fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        let url = format!("http://{}{path}", self.http);
        let mut req = self.agent.post(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .send(body)
            .unwrap_or_else(|e| panic!("POST {url}: {e}\nserver stderr:\n{}", self.stderr()));
        Reply::read(&url, resp)
    }

    /// Every service `/api/services` lists, sorted.
    pub fn services(&self) -> Vec<String> {
        let doc = self.get_json("/api/services", 200);
        let mut names: Vec<String> = doc["data"]
            .as_array()
            .unwrap_or_else(|| panic!("/api/services without a data array: {doc}"))
            .iter()
            .map(|v| v.as_str().expect("service names are strings").to_string())
            .collect();
        names.sort();
        names
    }

    /// The sum of every sample of a self-metric whose labels include all of `labels`.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let reply = self.get("/metrics");
        assert_eq!(reply.status, 200, "/metrics: {}", reply.text());
        metric_sum(&reply.text(), name, labels)
    }

    /// `/api/traces/{id}`: the trace's spans, or `None` on 404.
    pub fn trace(&self, trace_id: &str) -> Option<Value> {
        let reply = self.get(&format!("/api/traces/{trace_id}"));
        match reply.status {
            200 => {
                let doc = reply.json();
                let data = doc["data"].as_array().expect("data array");
                assert_eq!(data.len(), 1, "one trace per id: {doc}");
                Some(data[0].clone())
            }
            404 => None,
            s => panic!("/api/traces/{trace_id}: status {s}: {}", reply.text()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("---- lookout stderr ----\n{}", self.stderr());
        }
    }
}

/// Sums every sample of `name` in Prometheus text whose label set contains all of `labels`
/// (each written `k="v"`).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| labels.iter().all(|kv| l.contains(kv)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn http_agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build(),
    )
}

/// A whole HTTP response, read eagerly.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    url: String,
}

impl Reply {
    fn read(url: &str, mut resp: ureq::http::Response<ureq::Body>) -> Reply {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("read the body of {url}: {e}"));
        Reply {
            status,
            content_type,
            body,
            url: url.to_string(),
        }
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} answered non-JSON ({e}): {}", self.url, self.text()))
    }
}

/// The interpreter of the test venv: `$LOOKOUT_TEST_PYTHON`, else `<repo>/.venv/bin/python`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LOOKOUT_TEST_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "LOOKOUT_TEST_PYTHON={} does not exist; run `bash scripts/python-env.sh`",
            p.display()
        );
        return p;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.is_file(),
        "the end-to-end tests need the Python OpenTelemetry SDK: run `bash scripts/python-env.sh` \
         (or set LOOKOUT_TEST_PYTHON to a python that has scripts/requirements-test.txt installed)"
    );
    venv
}

/// A `Command` for `python tests/python/<script>` with a clean OpenTelemetry environment.
pub fn python_command(script: &str) -> Command {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let mut cmd = Command::new(python());
    cmd.arg(dir.join(script))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    // The SDK reads OTEL_* (endpoints, headers, timeouts); a developer's own settings must not
    // redirect or change what the tests send.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("OTEL_") {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// Runs a Python script to completion, asserts it exited 0, and returns its stdout.
pub fn run_python(script: &str, args: &[&str]) -> String {
    run_python_env(script, args, &[])
}

/// [`run_python`] with extra environment variables (e.g. the `OTEL_*` an app is configured by).
pub fn run_python_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = python_command(script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python().display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs a Python script and parses its stdout as one JSON document.
pub fn run_python_json(script: &str, args: &[&str]) -> Value {
    let out = run_python(script, args);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{script} printed non-JSON ({e}): {out}"))
}

/// The directory of request bodies `payload.py` writes: made once per test run under cargo's
/// scratch dir for integration tests (not /tmp, where a static's directory would never be
/// removed) and shared by the tests.
pub fn payload_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-payloads");
        run_python("payload.py", &[dir.to_str().expect("utf-8 target path")]);
        dir
    })
}

/// One body `payload.py` wrote (see its docstring for the cases).
pub fn payload(name: &str) -> Vec<u8> {
    std::fs::read(payload_dir().join(name)).unwrap_or_else(|e| panic!("payload {name}: {e}"))
}

/// Parses a Jaeger id (hex, possibly without leading zeros) as a number, so ids compare equal
/// however the server chose to pad them.
pub fn id_value(hex: &str) -> u128 {
    u128::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("id {hex:?} is not hex: {e}"))
}

/// Polls `check` until it returns `Ok` or `timeout` passes; returns the last error otherwise.
/// Only for things the server does in the background on its own schedule (retention).
pub fn eventually<T>(
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    let mut wait = Duration::from_millis(20);
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => {
                thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(500));
            }
        }
    }
}

#[test]
fn ready_line_parses() {
    let r = ReadyLine::parse(
        "lookout is ready: http=127.0.0.1:1 otlp-grpc=127.0.0.1:2 otlp-http=127.0.0.1:3 data-dir=/tmp/a b",
    )
    .unwrap();
    assert_eq!(r.http.port(), 1);
    assert_eq!(r.otlp_grpc.port(), 2);
    assert_eq!(r.otlp_http.port(), 3);
    assert_eq!(r.data_dir, "/tmp/a b");
    assert!(ReadyLine::parse("lookout is ready: http=127.0.0.1:0 otlp-grpc=127.0.0.1:2 otlp-http=127.0.0.1:3 data-dir=/x").is_err());
    assert!(ReadyLine::parse("lookout is ready: http=127.0.0.1:1 data-dir=/x").is_err());
}
