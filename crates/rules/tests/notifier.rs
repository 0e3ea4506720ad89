//! The notifier against real peers: Debian's Alertmanager (`/usr/bin/prometheus-alertmanager`)
//! receives what we send and is read back through its own `GET /api/v2/alerts`; Debian's
//! Prometheus sends its alerts to a listener here so our body can be compared with its
//! body byte for byte; and a small listener here checks the headers of our requests and
//! answers with errors. Tests that need a missing binary say so and skip
//! (`bash scripts/system-deps.sh` installs both).
//!
//! [`Notifier::shutdown`] drains the queue before it returns, so a test that shuts the
//! notifier down knows every POST has been answered: no sleeping, no timing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use model::labels::Labels;
use parking_lot::Mutex;
use rules::notifier::wire::{encode_alerts, format_time_ms};
use rules::notifier::{Alert, AlertSender, Notifier, NotifierConfig};
use selfmon::Registry;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const PROMETHEUS: &str = "/usr/bin/prometheus";

fn have(binary: &str, package: &str) -> bool {
    let ok = Path::new(binary).is_file();
    if !ok {
        eprintln!(
            "skipped: {binary} is missing; install Debian's {package} (bash scripts/system-deps.sh does)"
        );
    }
    ok
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A registry of its own, so each test reads only its notifier's counters.
fn registry() -> &'static Registry {
    Box::leak(Box::new(Registry::default()))
}

/// The value of one series in `reg`'s text exposition.
fn metric(reg: &Registry, series: &str) -> f64 {
    let text = reg.render();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
        .unwrap_or_else(|| panic!("{series} missing in\n{text}"))
}

fn sent(reg: &Registry, url: &str) -> f64 {
    metric(
        reg,
        &format!("prometheus_notifications_sent_total{{alertmanager=\"{url}\"}}"),
    )
}

fn errors(reg: &Registry, url: &str) -> f64 {
    metric(
        reg,
        &format!("prometheus_notifications_errors_total{{alertmanager=\"{url}\"}}"),
    )
}

fn dropped(reg: &Registry) -> f64 {
    metric(reg, "prometheus_notifications_dropped_total")
}

fn alert(labels: &[(&str, &str)], starts_at_ms: i64, ends_at_ms: i64) -> Alert {
    Alert {
        labels: Labels::new(labels.iter().copied()).unwrap(),
        annotations: vec![],
        starts_at_ms,
        ends_at_ms,
        generator_url: String::new(),
    }
}

/// A firing alert named `name`, valid for an hour.
fn firing(name: &str) -> Alert {
    let now = now_ms();
    alert(&[("alertname", name)], now - 60_000, now + 3_600_000)
}

/// A notifier for a `prometheus.yml` text, started.
fn notifier(yaml: &str, reg: &'static Registry) -> Notifier {
    let cfg = NotifierConfig::from_prometheus_yaml(yaml, "test.yml", Path::new("/")).unwrap();
    let n = Notifier::with_registry(cfg, reg);
    n.start();
    n
}

/// `alerting:` with one entry posting to `targets`.
fn alerting(targets: &[&str]) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: [{}]\n",
        list.join(", ")
    )
}

/// A running Alertmanager on a private port and storage directory, killed on drop.
struct Alertmanager {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Starts one with a single receiver that does nothing, clustering off; None (after
    /// saying so) when the binary is missing.
    async fn start() -> Option<Alertmanager> {
        Alertmanager::start_in(tempfile::tempdir().unwrap(), false).await
    }

    /// [`Alertmanager::start`] in `dir`; with `tls`, serving https with `dir`'s
    /// `cert.pem` and `key.pem` (then only a TCP connect says it is up: our test client
    /// speaks no TLS).
    async fn start_in(dir: tempfile::TempDir, tls: bool) -> Option<Alertmanager> {
        if !have(ALERTMANAGER, "prometheus-alertmanager") {
            return None;
        }
        let web = dir.path().join("web.yml");
        std::fs::write(
            &web,
            format!(
                "tls_server_config:\n  cert_file: {0}/cert.pem\n  key_file: {0}/key.pem\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, "route: {receiver: x}\nreceivers: [{name: x}]\n").unwrap();
        let port = free_port();
        let mut child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=error")
            .args(tls.then(|| format!("--web.config.file={}", web.display())))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let up = |addr: &str| match tls {
            true => std::net::TcpStream::connect(addr).is_ok(),
            false => ureq::get(&format!("http://{addr}/-/ready")).call().is_ok(),
        };
        while !up(&addr) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("alertmanager exited before it was ready: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Alertmanager {
            child,
            addr,
            _dir: dir,
        })
    }

    /// Where our notifier posts to it.
    fn url(&self) -> String {
        format!("http://{}/api/v2/alerts", self.addr)
    }

    /// `GET /api/v2/alerts`: the alerts it holds that have not resolved.
    fn alerts(&self) -> Vec<Value> {
        let url = format!("http://{}/api/v2/alerts", self.addr);
        let body = ureq::get(&url)
            .call()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .body_mut()
            .read_to_string()
            .unwrap();
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The `alertname`s of [`Alertmanager::alerts`].
    fn names(&self) -> BTreeSet<String> {
        self.alerts()
            .iter()
            .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
            .collect()
    }

    /// The labels of the alert named `name`.
    fn labels_of(&self, name: &str) -> BTreeMap<String, String> {
        let all = self.alerts();
        let a = all
            .iter()
            .find(|a| a["labels"]["alertname"] == name)
            .unwrap_or_else(|| panic!("no alert {name} in {all:?}"));
        serde_json::from_value(a["labels"].clone()).unwrap()
    }
}

/// One request as a [`Listener`] read it.
#[derive(Clone, Debug)]
struct Request {
    /// `POST /path HTTP/1.1`.
    line: String,
    /// Header names lowercased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 listener that records every request and answers each with `status`.
struct Listener {
    addr: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Listener {
    async fn start(status: u16) -> Listener {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = l.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    if let Some(req) = read_request(&mut sock).await {
                        recorded.lock().push(req);
                    }
                    let body = "{\"code\":0,\"message\":\"told to fail\"}";
                    let answer = format!(
                        "HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(answer.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Listener { addr, requests }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().clone()
    }
}

/// Reads one request (head and `Content-Length` body) from `sock`.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 1 << 20 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        line,
        headers,
        body,
    })
}

/// Polls `f` until it returns Some or a minute passes (for peers that act on their own
/// schedule, as Prometheus's rule evaluation).
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firing_alerts_reach_alertmanager_and_resolved_ones_leave() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let reg = registry();
    let n = notifier(&alerting(&[&am.addr]), reg);
    let now = now_ms();
    let starts = now - 60_000;
    let ends = now + 3_600_000;
    let latency = Alert {
        labels: Labels::new([
            ("alertname", "HighLatency"),
            ("severity", "page"),
            ("instance", "api:8080"),
        ])
        .unwrap(),
        annotations: vec![
            ("description".into(), "p99 is 1.5s".into()),
            ("summary".into(), "api is slow & <b>sad</b>".into()),
        ],
        starts_at_ms: starts,
        ends_at_ms: ends,
        generator_url: "http://127.0.0.1:46686/graph?g0.expr=up&g0.tab=1".into(),
    };
    n.send(vec![latency.clone(), firing("DiskFull")]);
    n.shutdown().await;

    let alerts = am.alerts();
    assert_eq!(
        am.names(),
        BTreeSet::from(["DiskFull".into(), "HighLatency".into()])
    );
    let got = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "HighLatency")
        .unwrap();
    assert_eq!(
        got["labels"],
        serde_json::json!({"alertname": "HighLatency", "severity": "page", "instance": "api:8080"})
    );
    assert_eq!(
        got["annotations"],
        serde_json::json!({"description": "p99 is 1.5s", "summary": "api is slow & <b>sad</b>"})
    );
    assert_eq!(got["startsAt"], format_time_ms(starts));
    assert_eq!(got["endsAt"], format_time_ms(ends));
    assert_eq!(
        got["generatorURL"],
        "http://127.0.0.1:46686/graph?g0.expr=up&g0.tab=1"
    );
    assert_eq!(got["status"]["state"], "active");
    assert_eq!(sent(reg, &am.url()), 2.0);
    assert_eq!(errors(reg, &am.url()), 0.0);
    assert_eq!(dropped(reg), 0.0);

    // The rules engine resolves HighLatency: its endsAt is now in the past.
    let reg = registry();
    let n = notifier(&alerting(&[&am.addr]), reg);
    let mut resolved = latency;
    resolved.ends_at_ms = now_ms() - 1_000;
    n.send(vec![resolved]);
    n.shutdown().await;
    assert_eq!(am.names(), BTreeSet::from(["DiskFull".into()]));
    assert_eq!(sent(reg, &am.url()), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alertmanager_receives_every_alert() {
    let (Some(a), Some(b)) = (Alertmanager::start().await, Alertmanager::start().await) else {
        return;
    };
    let reg = registry();
    let n = notifier(&alerting(&[&a.addr, &b.addr]), reg);
    assert_eq!(n.alertmanagers().active, vec![a.url(), b.url()]);
    assert_eq!(
        metric(reg, "prometheus_notifications_alertmanagers_discovered"),
        2.0
    );
    n.send(vec![firing("One"), firing("Two")]);
    n.send(vec![firing("Three")]);
    n.shutdown().await;
    let all: BTreeSet<String> = ["One", "Two", "Three"].map(String::from).into();
    assert_eq!(a.names(), all);
    assert_eq!(b.names(), all);
    assert_eq!(sent(reg, &a.url()), 3.0);
    assert_eq!(sent(reg, &b.url()), 3.0);
    assert_eq!(dropped(reg), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alertmanager_down_still_delivers_through_the_other() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let down = format!("127.0.0.1:{}", free_port());
    let down_url = format!("http://{down}/api/v2/alerts");
    let reg = registry();
    let n = notifier(&alerting(&[&down, &am.addr]), reg);
    n.send(vec![firing("StillDelivered")]);
    n.shutdown().await;
    assert_eq!(am.names(), BTreeSet::from(["StillDelivered".into()]));
    assert_eq!(errors(reg, &down_url), 1.0);
    assert_eq!(
        sent(reg, &down_url),
        1.0,
        "Prometheus counts attempts as sent"
    );
    assert_eq!(errors(reg, &am.url()), 0.0);
    assert_eq!(sent(reg, &am.url()), 1.0);
    assert_eq!(
        dropped(reg),
        0.0,
        "one Alertmanager of the entry took the batch"
    );

    // With every Alertmanager of the entry down, the batch is dropped and counted.
    let reg = registry();
    let n = notifier(&alerting(&[&down]), reg);
    n.send(vec![firing("A"), firing("B")]);
    n.shutdown().await;
    assert_eq!(errors(reg, &down_url), 2.0);
    assert_eq!(dropped(reg), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_credentials_and_prometheus_headers() {
    let listener = Listener::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
    let yaml = format!(
        r#"
alerting:
  alertmanagers:
  - path_prefix: /basic/
    basic_auth:
      username: alice
      password_file: pw
    static_configs:
    - targets: ['{addr}']
  - path_prefix: /bearer
    authorization:
      credentials: tok3n
    static_configs:
    - targets: ['{addr}']
"#,
        addr = listener.addr
    );
    let cfg = NotifierConfig::from_prometheus_yaml(&yaml, "test.yml", dir.path()).unwrap();
    let reg = registry();
    let n = Notifier::with_registry(cfg, reg);
    n.start();
    let mut a = firing("WithAuth");
    a.annotations = vec![("summary".into(), "s".into())];
    a.generator_url = "http://lookout/graph".into();
    n.send(vec![a.clone()]);
    n.shutdown().await;

    let mut reqs = listener.requests();
    reqs.sort_by(|x, y| x.line.cmp(&y.line));
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].line, "POST /basic/api/v2/alerts HTTP/1.1");
    assert_eq!(reqs[1].line, "POST /bearer/api/v2/alerts HTTP/1.1");
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    assert_eq!(
        reqs[0].header("authorization"),
        Some(&*format!("Basic {basic}"))
    );
    assert_eq!(reqs[1].header("authorization"), Some("Bearer tok3n"));
    for r in &reqs {
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.header("user-agent"),
            Some(&*format!("Lookout/{}", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(r.body, encode_alerts(&[a.clone()]));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v[0]["labels"]["alertname"], "WithAuth");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_relabel_configs_drop_and_rewrite() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let yaml = format!(
        r#"
global:
  external_labels:
    cluster: local
    env: external-default
alerting:
  alert_relabel_configs:
  - source_labels: [severity]
    regex: debug
    action: drop
  - source_labels: [env]
    regex: prod
    target_label: env
    replacement: production
  alertmanagers:
  - static_configs:
    - targets: ['{}']
    alert_relabel_configs:
    - target_label: via
      replacement: entry-0
    - regex: team
      action: labeldrop
"#,
        am.addr
    );
    let reg = registry();
    let n = notifier(&yaml, reg);
    let now = now_ms();
    n.send(vec![
        alert(
            &[("alertname", "Noise"), ("severity", "debug")],
            now,
            now + 3_600_000,
        ),
        alert(
            &[("alertname", "Real"), ("env", "prod"), ("team", "db")],
            now,
            now + 3_600_000,
        ),
        alert(&[("alertname", "NoEnv")], now, now + 3_600_000),
    ]);
    n.shutdown().await;
    assert_eq!(am.names(), BTreeSet::from(["NoEnv".into(), "Real".into()]));
    let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        am.labels_of("Real"),
        want(&[
            ("alertname", "Real"),
            ("cluster", "local"),
            ("env", "production"),
            ("via", "entry-0"),
        ])
    );
    assert_eq!(
        am.labels_of("NoEnv"),
        want(&[
            ("alertname", "NoEnv"),
            ("cluster", "local"),
            ("env", "external-default"),
            ("via", "entry-0"),
        ])
    );
    // Alerts relabeling drops are not sent, so not counted.
    assert_eq!(sent(reg, &am.url()), 2.0);
    assert_eq!(dropped(reg), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_the_oldest_alerts_and_counts_them() {
    let Some(am) = Alertmanager::start().await else {
        return;
    };
    let mut cfg =
        NotifierConfig::from_prometheus_yaml(&alerting(&[&am.addr]), "test.yml", Path::new("/"))
            .unwrap();
    cfg.queue_capacity = 3;
    let reg = registry();
    // Not started yet: the queue only fills.
    let n = Notifier::with_registry(cfg, reg);
    assert_eq!(metric(reg, "prometheus_notifications_queue_capacity"), 3.0);
    n.send(vec![firing("a1"), firing("a2")]);
    n.send(vec![firing("a3"), firing("a4")]);
    assert_eq!(dropped(reg), 1.0);
    assert_eq!(metric(reg, "prometheus_notifications_queue_length"), 3.0);
    // One send larger than the whole queue keeps its newest alerts (2 of 5 go at once),
    // and those push the 3 queued ones out.
    n.send(["b1", "b2", "b3", "b4", "b5"].map(firing).to_vec());
    assert_eq!(dropped(reg), 6.0);
    assert_eq!(n.queue_len(), 3);
    n.start();
    n.shutdown().await;
    assert_eq!(metric(reg, "prometheus_notifications_queue_length"), 0.0);
    assert_eq!(
        am.names(),
        BTreeSet::from(["b3".into(), "b4".into(), "b5".into()])
    );
    assert_eq!(sent(reg, &am.url()), 3.0);
    assert_eq!(dropped(reg), 6.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_hold_at_most_max_batch_size_alerts() {
    let listener = Listener::start(200).await;
    let mut cfg = NotifierConfig::from_prometheus_yaml(
        &alerting(&[&listener.addr]),
        "test.yml",
        Path::new("/"),
    )
    .unwrap();
    cfg.max_batch_size = 2;
    let reg = registry();
    let n = Notifier::with_registry(cfg, reg);
    n.send(["a", "b", "c", "d", "e"].map(firing).to_vec());
    n.start();
    n.shutdown().await;
    let sizes: Vec<usize> = listener
        .requests()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .unwrap()
                .as_array()
                .unwrap()
                .len()
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 5);
    assert!(sizes.iter().all(|&s| s <= 2), "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_count_as_errors() {
    // A real Alertmanager refuses an alert that ends before it starts with a 400.
    if let Some(am) = Alertmanager::start().await {
        let reg = registry();
        let n = notifier(&alerting(&[&am.addr]), reg);
        let now = now_ms();
        n.send(vec![alert(
            &[("alertname", "Backwards")],
            now,
            now - 60_000,
        )]);
        n.shutdown().await;
        assert_eq!(errors(reg, &am.url()), 1.0);
        assert_eq!(dropped(reg), 1.0);
        assert!(am.names().is_empty());
    }
    // A server error, from a listener that always answers 500.
    let listener = Listener::start(500).await;
    let url = format!("http://{}/api/v2/alerts", listener.addr);
    let reg = registry();
    let n = notifier(&alerting(&[&listener.addr]), reg);
    n.send(vec![firing("A"), firing("B")]);
    n.shutdown().await;
    assert_eq!(listener.requests().len(), 1);
    assert_eq!(errors(reg, &url), 2.0);
    assert_eq!(sent(reg, &url), 2.0);
    assert_eq!(dropped(reg), 2.0);
    // Any 2xx is success, as in Prometheus.
    let listener = Listener::start(202).await;
    let url = format!("http://{}/api/v2/alerts", listener.addr);
    let reg = registry();
    let n = notifier(&alerting(&[&listener.addr]), reg);
    n.send(vec![firing("A")]);
    n.shutdown().await;
    assert_eq!(errors(reg, &url), 0.0);
    assert_eq!(dropped(reg), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_lists_active_and_dropped_alertmanagers() {
    let yaml = r#"
alerting:
  alertmanagers:
  - scheme: https
    path_prefix: /am
    static_configs:
    - targets: ['a:9093', 'b:9093']
    relabel_configs:
    - source_labels: [__address__]
      regex: 'b:.*'
      action: drop
  - static_configs:
    - targets: ['c:9093']
"#;
    let reg = registry();
    let n = notifier(yaml, reg);
    let snap = n.alertmanagers();
    assert_eq!(
        snap.active,
        vec![
            "https://a:9093/am/api/v2/alerts".to_string(),
            "http://c:9093/api/v2/alerts".to_string()
        ]
    );
    assert_eq!(
        snap.dropped,
        vec!["https://b:9093/am/api/v2/alerts".to_string()]
    );
    assert_eq!(
        metric(reg, "prometheus_notifications_alertmanagers_discovered"),
        2.0
    );
    assert_eq!(
        metric(reg, "prometheus_notifications_queue_capacity"),
        10000.0
    );
    // A reload replaces them.
    let cfg =
        NotifierConfig::from_prometheus_yaml(&alerting(&["d:9093"]), "test.yml", Path::new("/"))
            .unwrap();
    n.apply(&cfg);
    assert_eq!(
        n.alertmanagers().active,
        vec!["http://d:9093/api/v2/alerts".to_string()]
    );
    assert_eq!(
        metric(reg, "prometheus_notifications_alertmanagers_discovered"),
        1.0
    );
    n.shutdown().await;
}

/// Go's RFC 3339 with milliseconds in UTC (`2023-11-14T22:13:20.123Z`) to milliseconds.
fn parse_time_ms(s: &str) -> i64 {
    let num = |a: usize, b: usize| -> i64 { s[a..b].parse().unwrap() };
    assert!(s.len() == 24 && s.ends_with('Z'), "unexpected time {s}");
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + num(11, 13)) * 60 + num(14, 16)) * 60_000 + num(17, 19) * 1000 + num(20, 23)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_is_byte_for_byte_what_prometheus_sends() {
    if !have(PROMETHEUS, "prometheus") {
        return;
    }
    let listener = Listener::start(200).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yml"),
        r#"
groups:
- name: g
  interval: 1s
  rules:
  - alert: LookoutConformance
    expr: vector(1)
    labels:
      severity: page
      team: "a&b <c>"
    annotations:
      summary: "value {{ $value }} & <b>bold</b>"
      description: "line one\nline \"two\" é"
"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            r#"
global:
  evaluation_interval: 1s
  external_labels:
    cluster: c1
rule_files: [rules.yml]
alerting:
  alertmanagers:
  - path_prefix: /pfx
    static_configs:
    - targets: ['{}']
"#,
            listener.addr
        ),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(PROMETHEUS)
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=error")
        // Alertmanager discovery reaches the notifier some seconds after the first rule
        // evaluation; resending every second gets an alert to us soon after it does.
        .arg("--rules.alert.resend-delay=1s")
        .env("TZ", "UTC")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let theirs = eventually("Prometheus to send an alert", || {
        listener.requests().into_iter().next()
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(theirs.line, "POST /pfx/api/v2/alerts HTTP/1.1");
    assert_eq!(theirs.header("content-type"), Some("application/json"));
    let v: Value = serde_json::from_slice(&theirs.body).unwrap();
    let a = &v[0];
    let labels: BTreeMap<String, String> = serde_json::from_value(a["labels"].clone()).unwrap();
    let annotations: BTreeMap<String, String> =
        serde_json::from_value(a["annotations"].clone()).unwrap();
    let ours = Alert {
        labels: Labels::new(labels.iter()).unwrap(),
        annotations: annotations.into_iter().collect(),
        starts_at_ms: parse_time_ms(a["startsAt"].as_str().unwrap()),
        ends_at_ms: parse_time_ms(a["endsAt"].as_str().unwrap()),
        generator_url: a["generatorURL"].as_str().unwrap().to_string(),
    };
    let theirs = String::from_utf8(theirs.body.clone()).unwrap();
    // The rule's `&`, `<` and `>` reach the body in Go's escaped form.
    assert!(theirs.contains(r"a\u0026b \u003cc\u003e"), "{theirs}");
    assert_eq!(String::from_utf8(encode_alerts(&[ours])).unwrap(), theirs);
}

/// A CA and a certificate it signs for 127.0.0.1, made with openssl in `dir` (`ca.pem`,
/// `cert.pem`, `key.pem`); false (after saying so) when openssl is missing.
fn make_certificates(dir: &Path) -> bool {
    let script = r#"set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -days 1 -subj /CN=lookout-test-ca -keyout ca.key -out ca.pem
openssl req $ec -subj /CN=localhost -keyout key.pem -out leaf.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext.cnf
openssl x509 -req -days 1 -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile ext.cnf -out cert.pem
"#;
    let made = Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .output();
    match made {
        Ok(o) if o.status.success() => true,
        other => {
            eprintln!("skipped: openssl cannot make test certificates ({other:?}); install it (bash scripts/system-deps.sh does)");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_alertmanagers_are_verified_with_tls_config() {
    let dir = tempfile::tempdir().unwrap();
    if !make_certificates(dir.path()) {
        return;
    }
    let ca = dir.path().join("ca.pem");
    let Some(am) = Alertmanager::start_in(dir, true).await else {
        return;
    };
    let url = format!("https://{}/api/v2/alerts", am.addr);
    let entry = |tls: &str| {
        format!(
            "alerting:\n  alertmanagers:\n  - scheme: https\n{tls}    static_configs:\n    - targets: ['{}']\n",
            am.addr
        )
    };
    let send = |yaml: String| {
        let url = url.clone();
        async move {
            let reg = registry();
            let n = notifier(&yaml, reg);
            n.send(vec![firing("OverTls")]);
            n.shutdown().await;
            (errors(reg, &url), dropped(reg))
        }
    };
    let trusted = format!("    tls_config:\n      ca_file: {}\n", ca.display());
    assert_eq!(send(entry(&trusted)).await, (0.0, 0.0), "our CA");
    let insecure = "    tls_config:\n      insecure_skip_verify: true\n";
    assert_eq!(
        send(entry(insecure)).await,
        (0.0, 0.0),
        "insecure_skip_verify"
    );
    assert_eq!(
        send(entry("")).await,
        (1.0, 1.0),
        "system roots do not know our CA"
    );
    let wrong = format!("{trusted}      server_name: wrong.example\n");
    assert_eq!(send(entry(&wrong)).await, (1.0, 1.0), "server_name");
    let missing = "    tls_config:\n      ca_file: /nonexistent/ca.pem\n";
    assert_eq!(send(entry(missing)).await, (1.0, 1.0), "missing CA file");
}

/// A listener that takes connections and never answers; its address.
async fn silent_listener() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            held.push(sock);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_alertmanagers_time_out_and_shutdown_gives_up_draining() {
    let addr = silent_listener().await;
    let url = format!("http://{addr}/api/v2/alerts");
    // The entry's timeout ends the request: an error, and the batch is dropped.
    let yaml = format!(
        "alerting:\n  alertmanagers:\n  - timeout: 200ms\n    static_configs:\n    - targets: ['{addr}']\n"
    );
    let reg = registry();
    let n = notifier(&yaml, reg);
    n.send(vec![firing("A")]);
    n.shutdown().await;
    assert_eq!(errors(reg, &url), 1.0);
    assert_eq!(dropped(reg), 1.0);

    // With the default 10s timeout, a short drain_timeout ends the shutdown first: what
    // was queued is counted as dropped (the request in flight is abandoned).
    let mut cfg =
        NotifierConfig::from_prometheus_yaml(&alerting(&[&addr]), "test.yml", Path::new("/"))
            .unwrap();
    cfg.drain_timeout = Duration::from_millis(200);
    cfg.max_batch_size = 1;
    let reg = registry();
    let n = Notifier::with_registry(cfg, reg);
    n.send(vec![firing("A"), firing("B"), firing("C")]);
    n.start();
    n.shutdown().await;
    assert_eq!(n.queue_len(), 0);
    // Whether the loop had started on "A" before the shutdown or the drain did, A's
    // request is never answered and the drain gives up on it and the rest.
    assert_eq!(dropped(reg), 3.0);
    assert_eq!(errors(reg, &url), 0.0, "abandoned, not failed");
    // Sent after shutdown: dropped at once.
    n.send(vec![firing("Late")]);
    assert_eq!(dropped(reg), 4.0);
}
