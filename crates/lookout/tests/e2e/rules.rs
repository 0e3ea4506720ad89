//! Recording and alerting rules in the running server, against real peers: Debian's
//! Prometheus evaluating the same rule file over the same prometheus_client target, and
//! Debian's Alertmanager receiving what fires. Also reloads, a broken rule file at start,
//! and `for` state surviving a restart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::harness::{python_command, DataDir, Server};
use super::prometheus::{encode, free_port, json, Prometheus};

/// A prometheus_client target serving `demo_value{kind=...}` from a JSON file the test
/// rewrites; killed on drop.
struct ValueTarget {
    child: Child,
    file: PathBuf,
    addr: String,
}

impl ValueTarget {
    fn start(dir: &Path, values: &str) -> ValueTarget {
        let file = dir.join("values.json");
        std::fs::write(&file, values).unwrap();
        let mut child = python_command("value_target.py")
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start value_target.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .unwrap_or_else(|| panic!("value_target.py said {line:?}"));
        ValueTarget {
            child,
            file,
            addr: format!("127.0.0.1:{port}"),
        }
    }

    fn set(&self, values: &str) {
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, values).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }
}

impl Drop for ValueTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A recording rule, an alert with `for`, labels and templated annotations that fires, and
/// one that stays pending.
const RULES: &str = r#"groups:
  - name: demo
    interval: 1s
    rules:
      - record: kind:demo_value:sum
        expr: sum by (kind) (demo_value)
      - alert: DemoHigh
        expr: demo_value > 5
        for: 2s
        labels:
          severity: page
          team: "{{ $labels.kind }}-team"
        annotations:
          summary: "{{ $labels.instance }} of {{ $labels.job }} is at {{ $value }}"
          description: 'value {{ printf "%.1f" $value }} over {{ humanize 5 }}'
      - alert: DemoPending
        expr: demo_value > 1
        for: 1h
  - name: second
    interval: 1s
    rules:
      - record: demo_value:count
        expr: count(demo_value)
"#;

/// Deletes what differs with timing only: evaluation times and activation times.
fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for k in ["lastEvaluation", "evaluationTime", "activeAt"] {
                m.remove(k);
            }
            for (_, x) in m.iter_mut() {
                strip_times(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

fn firing(doc: &Value, name: &str) -> usize {
    doc["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
        .count()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("gave up waiting for {what}: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn lookout_config(rules_toml: &str) -> String {
    format!(
        "[scrape]\nself_scrape = false\n[metrics]\nprometheus_config = \"prometheus.yml\"\n[rules]\n{rules_toml}"
    )
}

fn scrape_yml(target: &str, extra: &str) -> String {
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{extra}scrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['{target}']\n"
    )
}

#[test]
fn rules_and_alerts_answer_as_prometheus_does() {
    let dir = DataDir::with_config(&lookout_config(""));
    let target = ValueTarget::start(dir.root(), r#"{"a": 10, "b": 3, "c": 0.5}"#);
    let rules = dir.root().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let yml = scrape_yml(
        &target.addr,
        &format!("rule_files: ['{}']\n", rules.display()),
    );
    std::fs::write(dir.root().join("prometheus.yml"), &yml).unwrap();
    let prom = Prometheus::start(&yml);
    let lookout = dir.start();
    let prom_json = |path: &str| {
        let (status, body) = prom.get(path);
        assert_eq!(status, 200, "prometheus {path}: {body}");
        json(&body)
    };
    // Both fire DemoHigh for kind a and hold two pending DemoPending alerts.
    let settled = |doc: &Value| {
        firing(doc, "DemoHigh") == 1
            && doc["data"]["alerts"]
                .as_array()
                .is_some_and(|a| a.len() == 3)
    };
    wait_for("both to fire", Duration::from_secs(60), || {
        let (p, l) = (
            prom_json("/api/v1/alerts"),
            lookout.get_json("/api/v1/alerts", 200),
        );
        if settled(&p) && settled(&l) {
            Ok(())
        } else {
            Err(format!("prometheus {p}\nlookout {l}"))
        }
    });
    // Rule health settles after the first evaluations; compare once both say "ok".
    let mut last = String::new();
    let mut compared = 0;
    for path in [
        "/api/v1/rules",
        "/api/v1/rules?type=alert",
        "/api/v1/rules?type=record",
        "/api/v1/alerts",
    ] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut p = prom_json(path);
            let mut l = lookout.get_json(path, 200);
            strip_times(&mut p);
            strip_times(&mut l);
            if p == l {
                compared += 1;
                break;
            }
            last = format!("{path}\nprometheus: {p}\nlookout:    {l}");
            assert!(Instant::now() < deadline, "answers differ: {last}");
            thread::sleep(Duration::from_millis(300));
        }
    }
    assert_eq!(compared, 4, "{last}");
    // Prometheus 3's filters (2.42 ignores them): by name, group, file, labels, and
    // without alerts.
    let names = |path: &str| -> Vec<String> {
        let doc = lookout.get_json(path, 200);
        let mut v = Vec::new();
        for g in doc["data"]["groups"].as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                v.push(format!(
                    "{}/{}",
                    g["name"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ));
            }
        }
        v
    };
    assert_eq!(
        names("/api/v1/rules?rule_name[]=DemoHigh&rule_name[]=demo_value:count"),
        ["demo/DemoHigh", "second/demo_value:count"]
    );
    assert_eq!(
        names("/api/v1/rules?rule_group[]=second"),
        ["second/demo_value:count"]
    );
    assert!(names("/api/v1/rules?type=alert&rule_group[]=second").is_empty());
    assert_eq!(
        names(&format!(
            "/api/v1/rules?file[]={}",
            encode(&rules.display().to_string())
        ))
        .len(),
        4
    );
    assert_eq!(
        names(&format!(
            "/api/v1/rules?match[]={}",
            encode("{severity=\"page\"}")
        )),
        ["demo/DemoHigh"]
    );
    let excluded = lookout.get_json("/api/v1/rules?type=alert&exclude_alerts=true", 200);
    // `alerts` is there and null, as Prometheus 3 answers.
    assert_eq!(
        excluded["data"]["groups"][0]["rules"][0].get("alerts"),
        Some(&Value::Null),
        "{excluded}"
    );
    // Our alert values and annotations are Go's spelling.
    let alerts = lookout.get_json("/api/v1/alerts", 200);
    let high = alerts["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "DemoHigh")
        .unwrap()
        .clone();
    assert_eq!(high["value"], "1e+01", "{high}");
    assert_eq!(high["labels"]["team"], "a-team", "{high}");
    assert_eq!(
        high["annotations"]["summary"],
        format!("{} of demo is at 10", target.addr)
    );
    // Bad filters are refused as Prometheus refuses them.
    let (ps, pb) = prom.get("/api/v1/rules?type=nope");
    let l = lookout.get("/api/v1/rules?type=nope");
    assert_eq!((ps, json(&pb)), (l.status, l.json()));

    // The recorded series hold the same values.
    for expr in [
        "kind:demo_value:sum",
        "demo_value:count",
        "ALERTS",
        "ALERTS_FOR_STATE > 0",
    ] {
        let path = format!("/api/v1/query?query={}", encode(&format!("sort({expr})")));
        let values = |doc: &Value| -> Vec<(Value, Value)> {
            let mut v: Vec<(Value, Value)> = doc["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let val = if expr.starts_with("ALERTS_FOR_STATE") {
                        Value::Null // activation times differ with evaluation alignment
                    } else {
                        s["value"][1].clone()
                    };
                    (s["metric"].clone(), val)
                })
                .collect();
            v.sort_by_key(|a| a.0.to_string());
            v
        };
        let p = values(&prom_json(&path));
        let l = values(&lookout.get_json(&path, 200));
        assert!(!p.is_empty(), "{expr}: Prometheus has nothing");
        assert_eq!(p, l, "{expr}");
    }
    // Both evaluate each group at the same instants (Prometheus's offset by a hash of file
    // and group name), so the recorded samples of a past window are the same, time for time.
    for expr in [
        "kind:demo_value:sum{kind=\"a\"}[3s]",
        "demo_value:count[3s]",
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
                - 1.5;
            let path = format!("/api/v1/query?query={}&time={at:.3}", encode(expr));
            let p = prom_json(&path)["data"]["result"][0]["values"].clone();
            let l = lookout.get_json(&path, 200)["data"]["result"][0]["values"].clone();
            // Both must have been evaluating through the whole window.
            let full = |v: &Value| v.as_array().is_some_and(|v| v.len() == 3);
            if full(&p) && full(&l) {
                assert_eq!(p, l, "{expr}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{expr}: prometheus {p}, lookout {l}"
            );
            thread::sleep(Duration::from_millis(500));
        }
    }
    // Self-metrics under Prometheus's names.
    let group = format!("rule_group=\"{};demo\"", rules.display());
    assert!(lookout.metric("prometheus_rule_evaluations_total", &[&group]) >= 4.0);
    assert!(lookout.metric("prometheus_rule_group_iterations_total", &[&group]) >= 1.0);
    assert_eq!(
        lookout.metric("prometheus_rule_group_interval_seconds", &[&group]),
        1.0
    );
    assert_eq!(
        lookout.metric("prometheus_rule_group_rules", &[&group]),
        3.0
    );
}

/// An Alertmanager on a private port, killed on drop.
struct Alertmanager {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start() -> Alertmanager {
        let bin = "/usr/bin/prometheus-alertmanager";
        assert!(
            Path::new(bin).is_file(),
            "these tests need Debian's prometheus-alertmanager: run scripts/system-deps.sh"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, "route: {receiver: x}\nreceivers: [{name: x}]\n").unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start alertmanager");
        let am = Alertmanager {
            child,
            addr,
            _dir: dir,
        };
        wait_for("alertmanager to be ready", Duration::from_secs(60), || {
            ureq::get(&format!("http://{}/-/ready", am.addr))
                .call()
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        am
    }

    /// Alerts it holds that have not resolved.
    fn alerts(&self) -> Vec<Value> {
        let body = ureq::get(&format!("http://{}/api/v2/alerts", self.addr))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        json(&body).as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn firing_alerts_reach_alertmanager_and_resolve_there() {
    let am = Alertmanager::start();
    let dir = DataDir::with_config(&lookout_config(&format!(
        "files = [\"rules.yml\"]\nevaluation_interval = \"1s\"\nalertmanagers = [\"http://{}\"]\n",
        am.addr
    )));
    let target = ValueTarget::start(dir.root(), r#"{"a": 10, "b": 3}"#);
    std::fs::write(
        dir.root().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: DemoHigh\n        expr: demo_value > 5\n        labels: {severity: page}\n        annotations: {summary: 'at {{ $value }}'}\n",
    )
    .unwrap();
    std::fs::write(
        dir.root().join("prometheus.yml"),
        scrape_yml(&target.addr, "  external_labels: {cluster: e2e}\n"),
    )
    .unwrap();
    let lookout = dir.start();
    let ams = lookout.get_json("/api/v1/alertmanagers", 200);
    assert_eq!(
        ams["data"]["activeAlertmanagers"][0]["url"],
        format!("http://{}/api/v2/alerts", am.addr),
        "{ams}"
    );
    wait_for("the alert at Alertmanager", Duration::from_secs(60), || {
        let alerts = am.alerts();
        match alerts.as_slice() {
            [a] if a["labels"]["alertname"] == "DemoHigh" => Ok(()),
            _ => Err(format!("{alerts:?}")),
        }
    });
    let a = am.alerts().remove(0);
    assert_eq!(a["labels"]["kind"], "a", "{a}");
    assert_eq!(a["labels"]["severity"], "page", "{a}");
    assert_eq!(a["labels"]["cluster"], "e2e", "{a}");
    assert_eq!(a["annotations"]["summary"], "at 10", "{a}");
    assert_eq!(a["status"]["state"], "active", "{a}");
    assert!(
        a["generatorURL"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:") && u.contains("expr=")),
        "{a}"
    );
    // The condition ends: the resolved alert is sent and Alertmanager lets it go.
    target.set(r#"{"a": 1, "b": 3}"#);
    wait_for("the alert to resolve", Duration::from_secs(60), || {
        let alerts = am.alerts();
        if alerts.is_empty() {
            Ok(())
        } else {
            Err(format!("{alerts:?}"))
        }
    });
    assert_eq!(
        lookout.get_json("/api/v1/alerts", 200)["data"]["alerts"],
        serde_json::json!([])
    );
}

fn rule_names(lookout: &Server) -> Vec<String> {
    let doc = lookout.get_json("/api/v1/rules", 200);
    let mut names = Vec::new();
    for g in doc["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            names.push(r["name"].as_str().unwrap().to_string());
        }
    }
    names
}

#[test]
fn reload_changes_the_rules_and_a_broken_file_keeps_them() {
    let dir = DataDir::with_config(
        "[scrape]\nself_scrape = false\n[rules]\nfiles = [\"rules/*.yml\"]\nevaluation_interval = \"1s\"\n",
    );
    let rules_dir = dir.root().join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    let file = rules_dir.join("a.yml");
    let write = |record: &str| {
        std::fs::write(
            &file,
            format!("groups:\n  - name: g\n    rules:\n      - record: {record}\n        expr: vector(1)\n      - alert: Always\n        expr: vector(1)\n"),
        )
        .unwrap()
    };
    write("first");
    let lookout = dir.start();
    assert_eq!(rule_names(&lookout), ["first", "Always"]);
    wait_for("Always to fire", Duration::from_secs(30), || {
        match firing(&lookout.get_json("/api/v1/alerts", 200), "Always") {
            1 => Ok(()),
            n => Err(format!("{n} firing")),
        }
    });
    let active_at =
        || lookout.get_json("/api/v1/alerts", 200)["data"]["alerts"][0]["activeAt"].clone();
    let before = active_at();
    write("second");
    let r = lookout.post("/-/reload", b"", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(rule_names(&lookout), ["second", "Always"]);
    // The unchanged alerting rule kept its alert.
    assert_eq!(active_at(), before);
    // A broken file is refused with its place named, and the running rules stay.
    std::fs::write(
        &file,
        "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: vector(1) +\n",
    )
    .unwrap();
    let r = lookout.post("/-/reload", b"", &[]);
    assert_eq!(r.status, 500, "{}", r.text());
    let text = r.text();
    assert!(text.starts_with("failed to reload config: "), "{text}");
    assert!(text.contains("a.yml:4:9:"), "{text}");
    assert_eq!(rule_names(&lookout), ["second", "Always"]);
    // The same broken file stops a start with one line naming it.
    let data = dir.root().join("other-data");
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["serve", "--config"])
        .arg(dir.config_path())
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
        ])
        .current_dir(dir.root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let error_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("a.yml:4:9:"))
        .collect();
    assert_eq!(error_lines.len(), 1, "{stderr}");
    assert!(
        error_lines[0].contains("invalid rules configuration"),
        "{stderr}"
    );
}

#[test]
fn restart_keeps_a_firing_alerts_activation_time() {
    let dir = DataDir::with_config(
        "[scrape]\nself_scrape = false\n[rules]\nfiles = [\"rules.yml\"]\nevaluation_interval = \"1s\"\nfor_grace_period = \"1s\"\n",
    );
    std::fs::write(
        dir.root().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Held\n        expr: vector(1)\n        for: 2s\n",
    )
    .unwrap();
    let lookout = dir.start();
    let alert =
        |lookout: &Server| lookout.get_json("/api/v1/alerts", 200)["data"]["alerts"][0].clone();
    wait_for("Held to fire", Duration::from_secs(30), || {
        match alert(&lookout)["state"].as_str() {
            Some("firing") => Ok(()),
            s => Err(format!("{s:?}")),
        }
    });
    // ALERTS_FOR_STATE is written once the group has restored (after two evaluations).
    wait_for("ALERTS_FOR_STATE", Duration::from_secs(30), || {
        let doc = lookout.get_json("/api/v1/query?query=ALERTS_FOR_STATE", 200);
        match doc["data"]["result"].as_array().map(Vec::len) {
            Some(1) => Ok(()),
            _ => Err(doc.to_string()),
        }
    });
    let before = alert(&lookout)["activeAt"].as_str().unwrap().to_string();
    assert!(lookout.graceful_stop().success());
    let lookout = dir.start();
    // Restored after the second evaluation: the activation time comes back (in whole
    // seconds, as ALERTS_FOR_STATE keeps it) and the alert fires at once.
    let whole_seconds = |t: &str| t.split(['.', 'Z']).next().unwrap().to_string();
    wait_for("the restored alert", Duration::from_secs(30), || {
        let a = alert(&lookout);
        let at = a["activeAt"].as_str().unwrap_or("");
        if whole_seconds(at) == whole_seconds(&before) && a["state"] == "firing" {
            Ok(())
        } else {
            Err(format!("{a} (was active at {before})"))
        }
    });
}
