//! `lookout up`, `down` and `status` as a user runs them: the real binary, a throwaway HOME
//! (so the state dir, data dir and config are the test's own), and port 0 everywhere through
//! `LOOKOUT_*_ADDR`, which `up` forwards to the `serve` it starts, so parallel tests never
//! collide. [`Home`] is shared with the sandbox tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// A private HOME with its own XDG dirs; every command runs in `<home>/work`. Dropping it
/// kills whatever server its state file still names, so a failing test leaves nothing behind.
pub struct Home {
    tmp: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let tmp = tempfile::Builder::new()
            .prefix("lookout-home-")
            .tempdir()
            .expect("create a temporary HOME");
        std::fs::create_dir_all(tmp.path().join("work")).expect("create the work dir");
        Home { tmp }
    }

    /// The directory commands run in.
    pub fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    /// `$XDG_STATE_HOME/lookout`.
    pub fn state_dir(&self) -> PathBuf {
        self.tmp.path().join(".local/state/lookout")
    }

    /// `lookout ARGS` with this HOME, port 0 everywhere and no outside LOOKOUT_/OTEL_ settings.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let home = self.tmp.path();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lookout"));
        cmd.args(args)
            .current_dir(self.work())
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_STATE_HOME", home.join(".local/state"))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null());
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("LOOKOUT_") || key.starts_with("OTEL_") {
                cmd.env_remove(key.as_ref());
            }
        }
        cmd.env("LOOKOUT_HTTP_ADDR", "127.0.0.1:0")
            .env("LOOKOUT_OTLP_GRPC_ADDR", "127.0.0.1:0")
            .env("LOOKOUT_OTLP_HTTP_ADDR", "127.0.0.1:0");
        cmd
    }

    /// Runs `lookout ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Out {
        let out = self
            .cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("run lookout {args:?}: {e}"));
        Out {
            args: args.iter().map(|a| a.to_string()).collect(),
            out,
        }
    }

    /// `server.json`, if there is one.
    pub fn server_state(&self) -> Option<Value> {
        let bytes = std::fs::read(self.state_dir().join("server.json")).ok()?;
        Some(serde_json::from_slice(&bytes).expect("server.json is JSON"))
    }

    /// The HTTP API address of the running server.
    pub fn http_addr(&self) -> SocketAddr {
        let state = self.server_state().expect("a server.json");
        state["http"].as_str().unwrap().parse().unwrap()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("lookout.log")).unwrap_or_default()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(state) = self.server_state() {
            if let Some(pid) = state["process"]["pid"].as_u64() {
                if pid_alive(pid) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
        }
        if std::thread::panicking() {
            eprintln!("---- lookout log ----\n{}", self.log());
        }
    }
}

/// A finished command.
pub struct Out {
    args: Vec<String>,
    pub out: Output,
}

impl Out {
    pub fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    /// Asserts the exit code, showing both streams otherwise.
    pub fn expect(self, code: i32) -> Out {
        assert_eq!(
            self.code(),
            code,
            "lookout {:?}: want exit {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout(),
            self.stderr()
        );
        self
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout().trim()).unwrap_or_else(|e| {
            panic!(
                "lookout {:?} printed non-JSON ({e}): {}",
                self.args,
                self.stdout()
            )
        })
    }
}

/// Whether `pid` runs (a zombie does not: it only waits to be reaped).
pub fn pid_alive(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build(),
    );
    let mut resp = agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

/// `GET` a JSON document from the running server of `home`.
pub fn get_json(home: &Home, path: &str) -> Value {
    let (status, body) = get(home.http_addr(), path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: non-JSON ({e}): {body}"))
}

#[test]
fn lifecycle_status_up_twice_status_json_down() {
    let home = Home::new();
    let out = home.run(&["status"]).expect(1);
    assert!(out.stdout().contains("not running"), "{}", out.stdout());
    let out = home.run(&["status", "--json"]).expect(1);
    assert_eq!(out.json()["running"], false);

    // Two `up`s at once start one server; both report it.
    let first = home
        .cmd(&["up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let second = home.run(&["up"]).expect(0);
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let state = home.server_state().expect("up wrote server.json");
    let pid = state["process"]["pid"].as_u64().unwrap();
    for text in [
        String::from_utf8_lossy(&first.stdout).into_owned(),
        second.stdout(),
    ] {
        assert!(text.contains(&format!("(pid {pid})")), "{text}");
    }
    let third = home.run(&["up"]).expect(0);
    assert!(
        third.stdout().contains("already running"),
        "{}",
        third.stdout()
    );
    assert!(third.stderr().is_empty(), "{}", third.stderr());
    // Asking for other settings while it runs says so instead of silently ignoring them.
    let other = home.run(&["up", "--data-dir", "elsewhere"]).expect(0);
    assert!(
        other.stderr().contains("--data-dir elsewhere"),
        "{}",
        other.stderr()
    );
    assert_eq!(
        home.server_state().unwrap()["process"]["pid"].as_u64(),
        Some(pid),
        "a second up must not start a second server"
    );
    // The endpoints it prints are the real bound ones, and the log path is there.
    let http = home.http_addr();
    assert!(
        third.stdout().contains(&format!("http://{http}/api/")),
        "{}",
        third.stdout()
    );
    assert!(third.stdout().contains("lookout.log"), "{}", third.stdout());
    assert_eq!(get(http, "/-/ready").0, 200);

    let status = home.run(&["status", "--json"]).expect(0).json();
    assert_eq!(status["running"], true);
    assert_eq!(status["ready"], true);
    assert_eq!(status["pid"].as_u64(), Some(pid));
    let receivers = status["receivers"].as_array().expect("receivers");
    assert_eq!(receivers.len(), 2);
    assert!(receivers.iter().all(|r| r["up"] == true), "{status}");
    assert!(status["store"]["wal_bytes"].is_number(), "{status}");
    // Lookout scrapes itself: one target, up or not scraped yet.
    let targets = &status["scrape_targets"];
    let total: u64 = ["up", "down", "unknown"]
        .iter()
        .filter_map(|h| targets[h].as_u64())
        .sum();
    assert_eq!(total, 1, "{status}");
    assert!(targets["down"].is_null(), "{status}");
    let table = home.run(&["status"]).expect(0);
    assert!(table.stdout().contains("ready"), "{}", table.stdout());
    assert!(
        table.stdout().contains("scrape targets"),
        "{}",
        table.stdout()
    );

    let out = home.run(&["down"]).expect(0);
    assert!(out.stdout().contains("stopped"), "{}", out.stdout());
    assert!(!pid_alive(pid), "down returned while the server still runs");
    assert!(
        home.log().contains("stopped"),
        "the server shut down gracefully"
    );
    home.run(&["status"]).expect(1);
    let again = home.run(&["down"]).expect(0);
    assert!(again.stdout().contains("not running"), "{}", again.stdout());
}

#[test]
fn lifecycle_status_shows_rules_and_firing_alerts() {
    let home = Home::new();
    std::fs::write(
        home.work().join("lookout.toml"),
        "[rules]\nfiles = [\"rules.yml\"]\nevaluation_interval = \"1s\"\n",
    )
    .unwrap();
    std::fs::write(
        home.work().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - record: one\n        expr: vector(1)\n      - alert: AlwaysFiring\n        expr: vector(1)\n      - alert: LongPending\n        expr: vector(1)\n        for: 1h\n  - name: h\n    rules:\n      - record: two\n        expr: vector(2)\n",
    )
    .unwrap();
    home.run(&["up"]).expect(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let rules = loop {
        let status = home.run(&["status", "--json"]).expect(0).json();
        let rules = status["rules"].clone();
        if rules["firing"] == 1 && rules["pending"] == 1 {
            break rules;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(rules["groups"], 2, "{rules}");
    assert_eq!(rules["rules"], 4, "{rules}");
    assert_eq!(rules["firing_alerts"], serde_json::json!(["AlwaysFiring"]));
    let table = home.run(&["status"]).expect(0).stdout();
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("rules "))
        .unwrap_or_else(|| panic!("no rules row in\n{table}"));
    assert!(
        row.ends_with("2 groups, 4 rules, 1 firing (AlwaysFiring), 1 pending"),
        "{row}"
    );
    home.run(&["down"]).expect(0);
}

#[test]
fn lifecycle_stale_pid_file_is_replaced() {
    let home = Home::new();
    // A server.json naming a process that has exited (as after a crash or reboot).
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::create_dir_all(home.state_dir()).unwrap();
    let stale = serde_json::json!({
        "process": {"pid": dead, "start_ticks": 1},
        "http": "127.0.0.1:1", "otlp_grpc": "127.0.0.1:2", "otlp_http": "127.0.0.1:3",
        "data_dir": "/nonexistent", "log": "/nonexistent/log", "started_at": 0,
    });
    std::fs::write(home.state_dir().join("server.json"), stale.to_string()).unwrap();
    home.run(&["status"]).expect(1);
    let out = home.run(&["up"]).expect(0);
    assert!(
        out.stderr().contains("no longer running"),
        "{}",
        out.stderr()
    );
    let pid = home.server_state().unwrap()["process"]["pid"]
        .as_u64()
        .unwrap();
    assert_ne!(pid, u64::from(dead));
    assert!(pid_alive(pid));
    home.run(&["status"]).expect(0);
    home.run(&["down"]).expect(0);
}

#[test]
fn lifecycle_failed_start_shows_the_log() {
    let home = Home::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = home
        .cmd(&["up"])
        .env("LOOKOUT_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed to start"), "{stderr}");
    // The log's last lines carry serve's own message naming the port and the flag.
    assert!(
        stderr.contains(&format!("port {port} is already in use")),
        "{stderr}"
    );
    assert!(stderr.contains("--http-addr"), "{stderr}");
    assert!(stderr.contains("lookout.log"), "{stderr}");
    assert!(home.server_state().is_none());
    home.run(&["status"]).expect(1);
    // Once the port is free, up works.
    drop(taken);
    home.run(&["up"]).expect(0);
    home.run(&["down"]).expect(0);
}

#[test]
fn lifecycle_completions_for_each_shell() {
    let home = Home::new();
    let bash = home.run(&["completions", "bash"]).expect(0).stdout();
    for sub in [
        "up",
        "down",
        "status",
        "env",
        "run",
        "compose-override",
        "sandboxes",
    ] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    // The script is valid bash.
    let check = Command::new("bash")
        .args(["-n", "-c", &bash])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    for shell in ["zsh", "fish"] {
        let text = home.run(&["completions", shell]).expect(0).stdout();
        assert!(text.contains("compose-override"), "{shell}: {text}");
    }
    home.run(&["completions", "tcsh"]).expect(2);
}
