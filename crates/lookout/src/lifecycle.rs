//! `lookout up`, `down` and `status`: Lookout as a background service of the user's session.
//!
//! `up` re-executes this same binary as `lookout serve`, detached into its own process group
//! (so a Ctrl-C in the terminal that ran `up` does not reach it), with stdout and stderr
//! appended to a log file, and waits for the ready line `serve` prints. What it learns from that
//! line (the bound addresses, which may differ from the configured ones when a port is 0) and
//! the server's process identity go to `server.json` in the state dir
//! (`$XDG_STATE_HOME/lookout`); every other command reads that file to find the server. A lock
//! file serializes `up` and `down`, so two `up`s at once start one server. A `server.json` whose
//! process is gone (crash, reboot, `kill -9`) or whose pid now belongs to another process (the
//! start time differs) is stale and is replaced, never trusted. `status` reads health from the
//! server itself (`/-/ready` and the `/metrics` text), so it needs no API of its own.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use sandbox::process::ProcessId;
use sandbox::registry::{Listed, Liveness, Registry};
use serde::{Deserialize, Serialize};

use crate::cli::{ServeArgs, StatusArgs};

/// How long `up` waits for the ready line (WAL replay of a large data dir takes a while).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `down` waits for a graceful stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Past this size the log is moved to `lookout.log.old` when the next server starts.
const MAX_LOG_BYTES: u64 = 32 << 20;
/// Lines of the log shown when starting fails.
const LOG_TAIL_LINES: usize = 20;

/// A failure with a chosen exit code (and an optional one-line message), for `main` to report.
#[derive(Debug)]
pub struct Exit {
    code: u8,
    message: Option<String>,
}

impl Exit {
    /// A usage error: `error: <message>`, exit 2, as clap does for flags.
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: 2,
            message: Some(message.into()),
        })
    }

    /// Exit with `code` without a message (the command already said what it had to).
    pub fn silent(code: u8) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code,
            message: None,
        })
    }

    /// Prints the message, if any, and gives the exit code.
    pub fn report(&self) -> ExitCode {
        if let Some(m) = &self.message {
            eprintln!("error: {m}");
        }
        ExitCode::from(self.code)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit {}", self.code),
        }
    }
}

impl std::error::Error for Exit {}

/// The files of the background server and the sandbox registry.
pub struct StatePaths {
    /// The state dir itself.
    pub dir: PathBuf,
    lock: PathBuf,
    server: PathBuf,
    /// The server's log (stdout and stderr of `serve`).
    pub log: PathBuf,
}

impl StatePaths {
    /// `$XDG_STATE_HOME/lookout` (usually `~/.local/state/lookout`); where the platform has no
    /// state dir, a `state` dir beside the default data.
    pub fn locate() -> anyhow::Result<StatePaths> {
        let dir = match dirs::state_dir() {
            Some(d) => d.join("lookout"),
            None => match dirs::data_local_dir() {
                Some(d) => d.join("lookout").join("state"),
                None => {
                    bail!("cannot find a state directory (no HOME?); set HOME or XDG_STATE_HOME")
                }
            },
        };
        Ok(StatePaths {
            lock: dir.join("lookout.lock"),
            server: dir.join("server.json"),
            log: dir.join("lookout.log"),
            dir,
        })
    }

    /// The sandbox registry.
    pub fn registry(&self) -> Registry {
        Registry::at(self.dir.join("sandboxes"))
    }

    fn create(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create the state dir {}", self.dir.display()))
    }

    /// Takes the lock that serializes `up` and `down`; released when the file is dropped.
    fn lock(&self) -> anyhow::Result<File> {
        self.create()?;
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .with_context(|| format!("cannot open the lock file {}", self.lock.display()))?;
        f.lock()
            .with_context(|| format!("cannot lock {}", self.lock.display()))?;
        Ok(f)
    }

    fn read_server(&self) -> Option<ServerState> {
        let bytes = std::fs::read(&self.server).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn write_server(&self, state: &ServerState) -> anyhow::Result<()> {
        let tmp = self.dir.join(".server.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.server)
            .with_context(|| format!("cannot write {}", self.server.display()))
    }

    fn remove_server(&self) {
        let _ = std::fs::remove_file(&self.server);
    }

    /// The running server, if `server.json` names a live process.
    pub fn running(&self) -> Option<ServerState> {
        self.read_server().filter(|s| s.process.is_alive())
    }
}

/// What `server.json` records about the background server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerState {
    /// The `serve` process.
    pub process: ProcessId,
    /// HTTP API and UI.
    pub http: SocketAddr,
    /// OTLP/gRPC receiver (also OTLP/HTTP).
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP receiver (also OTLP/gRPC).
    pub otlp_http: SocketAddr,
    /// Where it keeps its data.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// When it became ready, in seconds since the Unix epoch.
    pub started_at: u64,
}

impl ServerState {
    /// The OTLP endpoint an app on this host uses: the OTLP/HTTP receiver's address, with a
    /// wildcard bind address replaced by loopback.
    pub fn otlp_endpoint(&self) -> String {
        endpoint_url(self.otlp_http)
    }
}

/// `http://addr`, with `0.0.0.0`/`::` (listen-everywhere) replaced by loopback, which is where
/// a local client connects.
pub fn endpoint_url(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}")
}

/// `lookout up`.
pub fn up(args: ServeArgs) -> anyhow::Result<()> {
    let paths = StatePaths::locate()?;
    let (state, started) = ensure_running(&paths, &args)?;
    if started {
        println!("lookout is running (pid {})", state.process.pid);
    } else {
        println!("lookout is already running (pid {})", state.process.pid);
        let differs = settings_differ(&args, &state);
        if !differs.is_empty() {
            eprintln!(
                "note: the running lookout was started with other settings ({}); run `lookout down` first to change them",
                differs.join(", ")
            );
        }
    }
    print_endpoints(&state);
    Ok(())
}

/// Which of the settings asked for now the running server does not have (port 0 asks for
/// nothing in particular).
fn settings_differ(args: &ServeArgs, s: &ServerState) -> Vec<String> {
    let mut out = Vec::new();
    for (name, want, have) in [
        ("--http-addr", args.http_addr, s.http),
        ("--otlp-grpc-addr", args.otlp_grpc_addr, s.otlp_grpc),
        ("--otlp-http-addr", args.otlp_http_addr, s.otlp_http),
    ] {
        if let Some(want) = want.filter(|w| w.port() != 0 && *w != have) {
            out.push(format!("{name} {want}, running on {have}"));
        }
    }
    if let Some(want) = &args.data_dir {
        let same = match (
            std::fs::canonicalize(want),
            std::fs::canonicalize(&s.data_dir),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same {
            out.push(format!(
                "--data-dir {}, running on {}",
                want.display(),
                s.data_dir.display()
            ));
        }
    }
    out
}

fn print_endpoints(s: &ServerState) {
    let http = endpoint_url(s.http);
    // The Loki API is listed where it will be served, marked until its part lands, so nobody
    // points Grafana at a path that answers 404.
    println!("  HTTP API         {http}/");
    println!("  OTLP gRPC        {}", endpoint_url(s.otlp_grpc));
    println!("  OTLP HTTP        {}", endpoint_url(s.otlp_http));
    println!("  Jaeger API       {http}/api/");
    println!("  Prometheus API   {http}/api/v1/ (remote_write: {http}/api/v1/write)");
    println!("  Loki API         {http}/loki/api/v1/ (not served yet)");
    println!("  data dir         {}", s.data_dir.display());
    println!("  log              {}", s.log.display());
}

/// Makes sure a server runs: returns it, and whether this call started it. Messages about
/// stale state go to stderr so that callers' stdout stays theirs (`lookout run`).
pub fn ensure_running(paths: &StatePaths, args: &ServeArgs) -> anyhow::Result<(ServerState, bool)> {
    let _lock = paths.lock()?;
    if let Some(old) = paths.read_server() {
        if old.process.is_alive() {
            wait_ready(&old, None, paths)?;
            return Ok((old, false));
        }
        eprintln!(
            "note: lookout (pid {}) is no longer running; starting a new one",
            old.process.pid
        );
        paths.remove_server();
    }
    let state = start(paths, args)?;
    paths.write_server(&state)?;
    Ok((state, true))
}

/// Spawns `serve` and waits for its ready line.
fn start(paths: &StatePaths, args: &ServeArgs) -> anyhow::Result<ServerState> {
    let exe = std::env::current_exe().context("cannot find the lookout executable to start")?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    // One generation of history is enough to read why the last run ended; more would only
    // grow without bound across months of `up`s.
    if std::fs::metadata(&paths.log).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let _ = std::fs::rename(&paths.log, paths.log.with_extension("log.old"));
    }
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .with_context(|| format!("cannot open the log file {}", paths.log.display()))?;
    let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let _ = writeln!(log, "--- lookout up: starting serve (unix time {now}) ---");

    let mut cmd = Command::new(exe);
    cmd.arg("serve");
    // The server runs in `/` (so it never pins a directory), so paths are made absolute here,
    // and the config file is found here, where `./lookout.toml` means what the user meant.
    if let Some(f) = crate::config::find_config_file(args.config.as_deref()) {
        cmd.arg("--config").arg(cwd.join(f));
    }
    if let Some(d) = &args.data_dir {
        cmd.arg("--data-dir").arg(cwd.join(d));
    }
    if let Some(a) = args.http_addr {
        cmd.arg("--http-addr").arg(a.to_string());
    }
    if let Some(a) = args.otlp_grpc_addr {
        cmd.arg("--otlp-grpc-addr").arg(a.to_string());
    }
    if let Some(a) = args.otlp_http_addr {
        cmd.arg("--otlp-http-addr").arg(a.to_string());
    }
    let err_log = log
        .try_clone()
        .context("cannot share the log file with the server")?;
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
        .context("cannot start `lookout serve`")?;

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(line) = find_ready_line(&paths.log, offset) {
            let ready = parse_ready_line(&line).with_context(|| {
                format!("lookout printed a ready line this version cannot read: {line}")
            })?;
            let process = ProcessId::of(child.id()).unwrap_or(ProcessId {
                pid: child.id(),
                start_ticks: None,
            });
            return Ok(ServerState {
                process,
                http: ready.0,
                otlp_grpc: ready.1,
                otlp_http: ready.2,
                data_dir: ready.3,
                log: paths.log.clone(),
                started_at: now,
            });
        }
        if let Some(status) = child
            .try_wait()
            .context("cannot watch the server process")?
        {
            bail!(
                "lookout failed to start ({status}); the end of its log {}:\n{}",
                paths.log.display(),
                log_tail(&paths.log, offset)
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "lookout was not ready within {}s and was stopped; the end of its log {}:\n{}",
                READY_TIMEOUT.as_secs(),
                paths.log.display(),
                log_tail(&paths.log, offset)
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Waits until a server that is already running (perhaps still starting) answers `/-/ready`.
fn wait_ready(
    state: &ServerState,
    deadline: Option<Instant>,
    paths: &StatePaths,
) -> anyhow::Result<()> {
    let deadline = deadline.unwrap_or_else(|| Instant::now() + READY_TIMEOUT);
    loop {
        if http_get(state.http, "/-/ready").is_ok_and(|(s, _)| s == 200) {
            return Ok(());
        }
        if !state.process.is_alive() {
            paths.remove_server();
            bail!(
                "lookout (pid {}) exited while starting; see its log {}",
                state.process.pid,
                state.log.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "lookout (pid {}) runs but is not ready at http://{}/-/ready; see its log {}",
                state.process.pid,
                state.http,
                state.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first `lookout is ready:` line written to the log after `offset`.
fn find_ready_line(log: &Path, offset: u64) -> Option<String> {
    let text = read_from(log, offset)?;
    text.lines()
        .find(|l| l.starts_with("lookout is ready: "))
        .map(str::to_string)
}

fn read_from(log: &Path, offset: u64) -> Option<String> {
    let mut f = File::open(log).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    // Bounded: a start that logs more than this before its ready line is broken anyway.
    let mut buf = Vec::new();
    f.take(8 << 20).read_to_end(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

fn log_tail(log: &Path, offset: u64) -> String {
    let text = read_from(log, offset).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[from..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses `lookout is ready: http=A otlp-grpc=A otlp-http=A data-dir=DIR` (the data dir takes
/// the rest of the line, so it may hold spaces).
fn parse_ready_line(line: &str) -> anyhow::Result<(SocketAddr, SocketAddr, SocketAddr, PathBuf)> {
    let rest = line
        .strip_prefix("lookout is ready: ")
        .context("no ready prefix")?;
    let (addrs, data_dir) = rest.split_once(" data-dir=").context("no data-dir")?;
    let mut fields = addrs.split(' ');
    let mut addr = |name: &str| -> anyhow::Result<SocketAddr> {
        let f = fields.next().with_context(|| format!("no {name}"))?;
        let v = f
            .strip_prefix(name)
            .and_then(|v| v.strip_prefix('='))
            .with_context(|| format!("no {name}"))?;
        v.parse().with_context(|| format!("bad {name} address"))
    };
    Ok((
        addr("http")?,
        addr("otlp-grpc")?,
        addr("otlp-http")?,
        PathBuf::from(data_dir),
    ))
}

/// A small GET against the server, with short timeouts: status and body.
fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build(),
    );
    let url = format!("{}{path}", endpoint_url(addr));
    let mut resp = agent.get(&url).call()?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_string()?;
    Ok((status, body))
}

/// `lookout down`.
pub fn down() -> anyhow::Result<()> {
    let paths = StatePaths::locate()?;
    let _lock = paths.lock()?;
    let Some(state) = paths.read_server() else {
        println!("lookout is not running");
        return Ok(());
    };
    if !state.process.is_alive() {
        paths.remove_server();
        println!(
            "lookout is not running (forgot pid {}, which had exited)",
            state.process.pid
        );
        return Ok(());
    }
    let listed = paths.registry().list().unwrap_or_default();
    let (live, unknown): (Vec<Listed>, Vec<Listed>) = listed
        .into_iter()
        .filter(|l| l.liveness != Liveness::Dead)
        .partition(|l| l.liveness == Liveness::Alive);
    if !unknown.is_empty() {
        // Compose containers are out of sight: say they may be affected, without claiming.
        eprintln!(
            "note: Compose sandboxes registered (lookout cannot tell whether they run): {}; \
             `lookout sandboxes --forget NAMESPACE` drops one that is down",
            describe(&unknown)
        );
    }
    if !live.is_empty() {
        eprintln!(
            "warning: {} sandbox{} still running: {}; {} telemetry will not be received until `lookout up`",
            live.len(),
            if live.len() == 1 { " is" } else { "es are" },
            describe(&live),
            if live.len() == 1 { "its" } else { "their" },
        );
    }
    state.process.terminate();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while state.process.is_alive() {
        if Instant::now() > deadline {
            bail!(
                "lookout (pid {}) did not stop within {}s of SIGTERM; see its log {}, or kill it",
                state.process.pid,
                STOP_TIMEOUT.as_secs(),
                state.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    paths.remove_server();
    println!("lookout stopped (pid {})", state.process.pid);
    Ok(())
}

/// `shop-slot-2 (pid 123: python app.py), …`
pub fn describe(list: &[Listed]) -> String {
    list.iter()
        .map(|l| match l.entry.process {
            Some(p) => format!("{} (pid {}: {})", l.entry.namespace, p.pid, l.entry.what),
            None => format!("{} ({})", l.entry.namespace, l.entry.what),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The self-metrics `status` shows, summed over their labels.
/// What `lookout status` reports from the self-metrics: key, metric, and the label the
/// samples summed must carry (empty: all of them).
const STATUS_METRICS: &[(&str, &str, &str)] = &[
    ("received_items", "lookout_otlp_received_items_total", ""),
    ("rejected_items", "lookout_otlp_rejected_items_total", ""),
    (
        "head_spans",
        "lookout_store_head_items",
        "signal=\"traces\"",
    ),
    (
        "block_spans",
        "lookout_store_block_items",
        "signal=\"traces\"",
    ),
    ("trace_blocks", "lookout_store_blocks", "signal=\"traces\""),
    (
        "trace_bytes",
        "lookout_store_size_bytes",
        "signal=\"traces\"",
    ),
    (
        "head_series",
        "lookout_store_head_items",
        "signal=\"metrics\"",
    ),
    (
        "samples_appended",
        "lookout_tsdb_head_samples_appended_total",
        "",
    ),
    (
        "metric_blocks",
        "lookout_store_blocks",
        "signal=\"metrics\"",
    ),
    (
        "metric_bytes",
        "lookout_store_size_bytes",
        "signal=\"metrics\"",
    ),
    ("wal_bytes", "lookout_wal_size_bytes", ""),
];

/// `lookout status`.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let paths = StatePaths::locate()?;
    let sandboxes = paths.registry().list().unwrap_or_default();
    let Some(state) = paths.running() else {
        if args.json {
            println!(
                "{}",
                serde_json::json!({"running": false, "sandboxes": sandboxes})
            );
        } else {
            println!("lookout is not running (start it with `lookout up`)");
        }
        return Err(Exit::silent(1));
    };
    let ready = http_get(state.http, "/-/ready").is_ok_and(|(s, _)| s == 200);
    let metrics_text = http_get(state.http, "/metrics")
        .ok()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .unwrap_or_default();
    let mut metrics = serde_json::Map::new();
    for (key, name, label) in STATUS_METRICS {
        if let Some(v) = metric_sum(&metrics_text, name, label) {
            // Counts and sizes are whole numbers; print them as such.
            let v = if v.fract() == 0.0 && v.abs() < 9e15 {
                serde_json::json!(v as i64)
            } else {
                serde_json::json!(v)
            };
            metrics.insert((*key).to_string(), v);
        }
    }
    // Scrape targets by health, from the same answer Prometheus's API gives.
    let mut targets = std::collections::BTreeMap::<String, u64>::new();
    if let Ok((200, body)) = http_get(state.http, "/api/v1/targets?state=active") {
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        for t in doc["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let health = t["health"].as_str().unwrap_or("unknown").to_string();
            *targets.entry(health).or_default() += 1;
        }
    }
    let rules = rules_summary(state.http);
    let receivers = [
        ("otlp_grpc", state.otlp_grpc),
        ("otlp_http", state.otlp_http),
    ]
    .map(|(name, addr)| {
        let up = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok();
        (name, addr, up)
    });
    if args.json {
        let doc = serde_json::json!({
            "running": true,
            "ready": ready,
            "pid": state.process.pid,
            "started_at": state.started_at,
            "http": endpoint_url(state.http),
            "receivers": receivers.iter().map(|(n, a, up)| serde_json::json!({
                "name": n, "endpoint": endpoint_url(*a), "up": up,
            })).collect::<Vec<_>>(),
            "store": metrics,
            "scrape_targets": targets,
            "rules": rules,
            "data_dir": state.data_dir,
            "log": state.log,
            "sandboxes": sandboxes,
        });
        println!("{doc}");
    } else {
        println!(
            "lookout is running (pid {}), {}",
            state.process.pid,
            if ready { "ready" } else { "NOT ready" }
        );
        println!("  {:<16} {}/", "HTTP API and UI", endpoint_url(state.http));
        for (name, addr, up) in &receivers {
            println!(
                "  {:<16} {} {}",
                format!("receiver {name}"),
                endpoint_url(*addr),
                if *up { "up" } else { "DOWN" }
            );
        }
        for (key, v) in &metrics {
            println!("  {key:<16} {v}");
        }
        let count = |h: &str| targets.get(h).copied().unwrap_or(0);
        println!(
            "  {:<16} {} up, {} down, {} not scraped yet",
            "scrape targets",
            count("up"),
            count("down"),
            count("unknown")
        );
        println!("  {:<16} {}", "rules", describe_rules(&rules));
        println!("  {:<16} {}", "data dir", state.data_dir.display());
        println!("  {:<16} {}", "log", state.log.display());
        if sandboxes.is_empty() {
            println!("  {:<16} none", "sandboxes");
        }
        for l in &sandboxes {
            println!(
                "  {:<16} {} ({:?})",
                "sandbox", l.entry.namespace, l.liveness
            );
        }
    }
    if ready {
        Ok(())
    } else {
        Err(Exit::silent(1))
    }
}

/// Firing alerts `lookout status` names at most.
const STATUS_FIRING_NAMES: usize = 5;

/// The rules row of `lookout status`, from the server's `/api/v1/rules` and `/api/v1/alerts`
/// (the answers Prometheus's API gives): groups, rules, alerts firing and pending, and the
/// names of a few firing ones.
fn rules_summary(http: SocketAddr) -> serde_json::Value {
    let get = |path: &str| -> serde_json::Value {
        match http_get(http, path) {
            Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    };
    let groups_doc = get("/api/v1/rules?exclude_alerts=true");
    let groups = groups_doc["data"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rule_count: usize = groups
        .iter()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum();
    let alerts_doc = get("/api/v1/alerts");
    let alerts = alerts_doc["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let in_state = |s: &str| alerts.iter().filter(|a| a["state"] == s).count();
    let mut firing_names: Vec<String> = alerts
        .iter()
        .filter(|a| a["state"] == "firing")
        .filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string))
        .collect();
    firing_names.sort();
    firing_names.dedup();
    firing_names.truncate(STATUS_FIRING_NAMES);
    serde_json::json!({
        "groups": groups.len(),
        "rules": rule_count,
        "firing": in_state("firing"),
        "pending": in_state("pending"),
        "firing_alerts": firing_names,
    })
}

/// The rules row as one line: `2 groups, 5 rules, 1 firing (HighLatency), 0 pending`.
fn describe_rules(r: &serde_json::Value) -> String {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let names: Vec<&str> = r["firing_alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    let firing = if names.is_empty() {
        format!("{} firing", n("firing"))
    } else {
        format!("{} firing ({})", n("firing"), names.join(", "))
    };
    format!(
        "{} groups, {} rules, {firing}, {} pending",
        n("groups"),
        n("rules"),
        n("pending")
    )
}

/// Sums every sample of `name` in Prometheus text whose labels include `label` (`k="v"`, or
/// empty for all); `None` if there is none.
fn metric_sum(text: &str, name: &str, label: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if !label.is_empty() {
            let labels = rest
                .strip_prefix('{')
                .and_then(|r| r.split_once('}'))
                .map_or("", |(l, _)| l);
            if !labels.split(',').any(|l| l == label) {
                continue;
            }
        }
        if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        let (h, g, o, d) = parse_ready_line(
            "lookout is ready: http=127.0.0.1:1 otlp-grpc=127.0.0.1:2 otlp-http=[::1]:3 data-dir=/a b",
        )
        .unwrap();
        assert_eq!((h.port(), g.port(), o.port()), (1, 2, 3));
        assert_eq!(d, PathBuf::from("/a b"));
        assert!(parse_ready_line("lookout is ready: http=x data-dir=/").is_err());
    }

    #[test]
    fn endpoints_replace_wildcards() {
        assert_eq!(
            endpoint_url("0.0.0.0:4318".parse().unwrap()),
            "http://127.0.0.1:4318"
        );
        assert_eq!(endpoint_url("[::]:1".parse().unwrap()), "http://[::1]:1");
    }

    #[test]
    fn metric_sums() {
        let text = "# HELP x\nlookout_store_blocks 2\nlookout_store_blocks_total 9\nlookout_store_head_items{s=\"a\"} 3\nlookout_store_head_items{s=\"b\"} 4\n";
        assert_eq!(metric_sum(text, "lookout_store_blocks", ""), Some(2.0));
        assert_eq!(metric_sum(text, "lookout_store_head_items", ""), Some(7.0));
        assert_eq!(
            metric_sum(text, "lookout_store_head_items", "s=\"b\""),
            Some(4.0)
        );
        assert_eq!(metric_sum(text, "lookout_store_blocks", "s=\"b\""), None);
        assert_eq!(metric_sum(text, "nope", ""), None);
    }
}
