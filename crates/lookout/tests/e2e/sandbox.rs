//! `lookout env`, `run`, `compose-override` and `sandboxes` through the real binary with a
//! throwaway HOME: an app with no OTEL configuration at all, started by `lookout run`, is found
//! through the Jaeger API under its sandbox namespace; `down` names the sandboxes still
//! running; bad input is one usage error (exit 2) and starts nothing.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::harness::{eventually, id_value, python};
use super::lifecycle::{get_json, pid_alive, Home};

/// Percent-encodes a query-string value.
fn qs(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn env_app() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python/env_app.py")
        .display()
        .to_string()
}

#[test]
fn sandbox_env_prints_the_namespace_in_every_format() {
    let home = Home::new();
    let out = home
        .cmd(&[
            "env",
            "--project",
            "shop",
            "--slot",
            "2",
            "--format",
            "json",
        ])
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=dev")
        .env("LOOKOUT_OTLP_HTTP_ADDR", "127.0.0.1:4999")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["OTEL_RESOURCE_ATTRIBUTES"],
        "deployment.environment=dev,service.namespace=shop-slot-2"
    );
    // Not running: the configured address, which `up` would bind.
    assert_eq!(doc["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://127.0.0.1:4999");
    assert_eq!(doc["OTEL_TRACES_EXPORTER"], "otlp");

    // The project defaults to the directory's name; the sh format round-trips through sh.
    let dir = home.work().join("my-app");
    std::fs::create_dir_all(&dir).unwrap();
    let out = home.cmd(&["env"]).current_dir(&dir).output().unwrap();
    let script = String::from_utf8(out.stdout).unwrap();
    let shown = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{script}\nprintf %s \"$OTEL_RESOURCE_ATTRIBUTES\""))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout),
        "service.namespace=my-app"
    );

    let dotenv = home
        .run(&["env", "--project", "shop", "--format", "dotenv"])
        .expect(0);
    assert!(
        dotenv
            .stdout()
            .lines()
            .any(|l| l == "OTEL_RESOURCE_ATTRIBUTES=service.namespace=shop"),
        "{}",
        dotenv.stdout()
    );
    // Nothing was started by `env`.
    assert!(home.server_state().is_none());
}

#[test]
fn sandbox_run_app_without_otel_config_is_found_by_namespace() {
    let home = Home::new();
    let python = python().display().to_string();
    let app = env_app();
    // Lookout is not running: `run` starts it. Both exporter classes use the one endpoint.
    let mut ids = Vec::new();
    for exporter in ["http-protobuf", "grpc"] {
        let out = home
            .run(&[
                "run",
                "--project",
                "shop",
                "--slot",
                "2",
                "--",
                &python,
                &app,
                exporter,
            ])
            .expect(0);
        let doc: Value = serde_json::from_str(out.stdout().trim())
            .unwrap_or_else(|e| panic!("env_app.py output ({e}): {}", out.stdout()));
        ids.push(doc["trace_id"].as_str().unwrap().to_string());
    }
    assert!(home.server_state().is_some(), "run started lookout");

    // The app names no service; the SDK's default name is whatever it is
    // (`unknown_service:python`), and it is the only one.
    let services = get_json(&home, "/api/services");
    let service = match services["data"].as_array().map(Vec::as_slice) {
        Some([one]) => one.as_str().unwrap().to_string(),
        _ => panic!("want exactly one service: {services}"),
    };
    assert!(service.starts_with("unknown_service"), "{service}");
    let tags = qs(r#"{"service.namespace":"shop-slot-2"}"#);
    let path = format!("/api/traces?service={}&tags={tags}", qs(&service));
    let found = eventually(Duration::from_secs(30), || {
        let doc = get_json(&home, &path);
        let data = doc["data"].as_array().cloned().unwrap_or_default();
        if data.len() == 2 {
            Ok(data)
        } else {
            Err(format!("want 2 traces in shop-slot-2: {doc}"))
        }
    })
    .unwrap();
    let mut got: Vec<u128> = found
        .iter()
        .map(|t| id_value(t["traceID"].as_str().unwrap()))
        .collect();
    let mut want: Vec<u128> = ids.iter().map(|i| id_value(i)).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let other = qs(r#"{"service.namespace":"shop-slot-3"}"#);
    let none = get_json(
        &home,
        &format!("/api/traces?service={}&tags={other}", qs(&service)),
    );
    assert_eq!(none["data"].as_array().map(Vec::len), Some(0), "{none}");

    // The command's exit code is run's; the registration is gone once it exits.
    home.run(&["run", "--project", "shop", "--", "sh", "-c", "exit 7"])
        .expect(7);
    let listed = home.run(&["sandboxes", "--json"]).expect(0).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");

    // A SIGINT sent to `lookout run` (not by a terminal) is passed on to the command.
    let mut child = home
        .cmd(&["run", "--project", "shop", "--", "sleep", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(20), || {
        let doc = home.run(&["sandboxes", "--json"]).expect(0).json();
        match doc.as_array() {
            Some(a) if a.len() == 1 => Ok(()),
            _ => Err(format!("want one sandbox: {doc}")),
        }
    })
    .unwrap();
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(128 + 2));
    home.run(&["down"]).expect(0);
}

#[test]
fn sandbox_down_warns_about_a_running_sandbox_by_name() {
    let home = Home::new();
    home.run(&["up"]).expect(0);
    let mut child = home
        .cmd(&[
            "run",
            "--project",
            "shop",
            "--slot",
            "3",
            "--",
            "sleep",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let listed = eventually(Duration::from_secs(20), || {
        let doc = home.run(&["sandboxes", "--json"]).expect(0).json();
        match doc.as_array() {
            Some(a) if a.len() == 1 => Ok(a[0].clone()),
            _ => Err(format!("want one sandbox: {doc}")),
        }
    })
    .unwrap();
    assert_eq!(listed["namespace"], "shop-slot-3");
    assert_eq!(listed["liveness"], "alive");
    let table = home.run(&["sandboxes"]).expect(0);
    assert!(table.stdout().contains("shop-slot-3"), "{}", table.stdout());
    let status = home.run(&["status", "--json"]).expect(0).json();
    assert_eq!(
        status["sandboxes"][0]["namespace"], "shop-slot-3",
        "{status}"
    );

    let down = home.run(&["down"]).expect(0);
    let warning = down.stderr();
    assert!(warning.contains("warning: 1 sandbox"), "{warning}");
    assert!(warning.contains("shop-slot-3"), "{warning}");
    assert!(warning.contains("sleep 60"), "{warning}");
    home.run(&["status"]).expect(1);

    // SIGTERM to `lookout run` reaches the command; run exits as the command did.
    let sandbox_pid = listed["process"]["pid"].as_u64().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "run exits as its command did"
    );
    assert!(!pid_alive(sandbox_pid), "the command got the signal");
    let listed = home.run(&["sandboxes", "--json"]).expect(0).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

#[test]
fn sandbox_dead_run_is_marked_and_pruned() {
    let home = Home::new();
    // `lookout run` killed with SIGKILL cannot unregister; its command is killed too here.
    let mut child = home
        .cmd(&[
            "run",
            "--project",
            "shop",
            "--slot",
            "5",
            "--",
            "sleep",
            "60",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let entry = eventually(Duration::from_secs(30), || {
        let doc = home.run(&["sandboxes", "--json"]).expect(0).json();
        match doc.as_array() {
            Some(a) if a.len() == 1 => Ok(a[0].clone()),
            _ => Err(format!("want one sandbox: {doc}")),
        }
    })
    .unwrap();
    let pid = entry["process"]["pid"].as_u64().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    eventually(Duration::from_secs(10), || {
        if pid_alive(pid) {
            Err("sleep still runs".to_string())
        } else {
            Ok(())
        }
    })
    .unwrap();
    let table = home.run(&["sandboxes"]).expect(0);
    assert!(table.stdout().contains("dead"), "{}", table.stdout());
    // A dead sandbox is not warned about.
    let down = home.run(&["down"]).expect(0);
    assert!(!down.stderr().contains("warning"), "{}", down.stderr());
    home.run(&["sandboxes", "--prune"]).expect(0);
    let listed = home.run(&["sandboxes", "--json"]).expect(0).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

#[test]
fn sandbox_compose_override_carries_the_variables() {
    let home = Home::new();
    let compose = home.work().join("compose.yaml");
    std::fs::write(
        &compose,
        "services:\n  web:\n    image: nginx\n    environment:\n      - OTEL_RESOURCE_ATTRIBUTES=team=a\n  worker:\n    image: busybox\n",
    )
    .unwrap();
    let out = home
        .cmd(&["compose-override", "--project", "shop", "--slot", "2"])
        .env("LOOKOUT_OTLP_HTTP_ADDR", "127.0.0.1:4318")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // serde_yaml writes these plain scalars unquoted, one `key: value` per line.
    assert!(text.contains("web:") && text.contains("worker:"), "{text}");
    assert!(
        text.contains("OTEL_EXPORTER_OTLP_ENDPOINT: http://host.docker.internal:4318"),
        "{text}"
    );
    assert!(
        text.contains("OTEL_RESOURCE_ATTRIBUTES: team=a,service.namespace=shop-slot-2"),
        "{text}"
    );
    assert!(text.contains("host.docker.internal:host-gateway"), "{text}");

    // Custom variable names from lookout.toml, one service, written to a file.
    std::fs::write(
        home.work().join("lookout.toml"),
        "[sandbox.otel]\nendpoint_var = \"APP_OTLP_URL\"\nnamespace_var = \"APP_NAMESPACE\"\n",
    )
    .unwrap();
    let target = home.work().join("override.yaml");
    home.run(&[
        "compose-override",
        "--project",
        "shop",
        "--slot",
        "4",
        "--service",
        "worker",
        "-o",
        target.to_str().unwrap(),
    ])
    .expect(0);
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(!text.contains("web:"), "{text}");
    assert!(
        text.contains("APP_OTLP_URL: http://host.docker.internal:"),
        "{text}"
    );
    assert!(text.contains("APP_NAMESPACE: shop-slot-4"), "{text}");
    let listed = home.run(&["sandboxes", "--json"]).expect(0).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["namespace"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"shop-slot-2") && names.contains(&"shop-slot-4"),
        "{listed}"
    );
    // `down` mentions Compose sandboxes without claiming they run.
    home.run(&["up"]).expect(0);
    let down = home.run(&["down"]).expect(0);
    assert!(
        down.stderr().contains("Compose sandboxes registered")
            && down.stderr().contains("shop-slot-4"),
        "{}",
        down.stderr()
    );
    assert!(!down.stderr().contains("warning"), "{}", down.stderr());
    // A Compose project taken down is forgotten by name; an unknown name is a usage error.
    home.run(&["sandboxes", "--forget", "shop-slot-4"])
        .expect(0);
    let listed = home.run(&["sandboxes", "--json"]).expect(0).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["namespace"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop-slot-2"], "{listed}");
    let unknown = home
        .run(&["sandboxes", "--forget", "shop-slot-4"])
        .expect(2);
    assert!(
        unknown
            .stderr()
            .contains("no sandbox \"shop-slot-4\" is registered"),
        "{}",
        unknown.stderr()
    );
}

#[test]
fn sandbox_bad_input_is_a_usage_error_and_starts_nothing() {
    let home = Home::new();
    std::fs::write(home.work().join("bad.yaml"), "services: [unclosed\n").unwrap();
    let cases: &[&[&str]] = &[
        &["status", "--bogus"],
        &["env", "--slot", "two"],
        &["env", "--project", "a,b"],
        &["run", "--project", "shop", "--slot", "x", "--", "true"],
        &["run", "--project", "shop", "--slot", "2"],
        &["run", "--project", "shop", "--slot", "2", "--"],
        &[
            "compose-override",
            "--project",
            "shop",
            "--slot",
            "1",
            "--compose-file",
            "bad.yaml",
        ],
        &[
            "compose-override",
            "--project",
            "shop",
            "--compose-file",
            "missing.yaml",
        ],
    ];
    for args in cases {
        let out = home.run(args).expect(2);
        let stderr = out.stderr();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(out.stdout().is_empty(), "{args:?}: {}", out.stdout());
    }
    let yaml = home.run(&[
        "compose-override",
        "--project",
        "shop",
        "--compose-file",
        "bad.yaml",
    ]);
    assert_eq!(yaml.stderr().lines().count(), 1, "{}", yaml.stderr());
    assert!(
        yaml.stderr().contains("bad.yaml: not valid YAML"),
        "{}",
        yaml.stderr()
    );
    assert!(home.server_state().is_none(), "bad input started lookout");
    home.run(&["status"]).expect(1);
    let listed = home.run(&["sandboxes", "--json"]).expect(0).json();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}

/// The override merged over a real compose file passes `docker-compose config` (Debian's
/// `docker-compose` package; no Docker engine is needed for `config`) and the merged result
/// carries the variables. `.ci/run` installs docker-compose; without it this test fails.
#[test]
fn sandbox_compose_config_accepts_the_override() {
    let home = Home::new();
    std::fs::write(
        home.work().join("docker-compose.yml"),
        "version: \"3.8\"\nservices:\n  web:\n    image: nginx\n    environment:\n      - OTEL_RESOURCE_ATTRIBUTES=team=a\n      - FOO=1\n  worker:\n    image: busybox\n    environment:\n      BAR: \"2\"\n",
    )
    .unwrap();
    std::fs::write(
        home.work().join("lookout.toml"),
        "[sandbox.otel]\nendpoint_var = \"APP_OTLP\"\nnamespace_var = \"APP_NS\"\n",
    )
    .unwrap();
    home.run(&[
        "compose-override",
        "--project",
        "shop",
        "--slot",
        "2",
        "-o",
        "override.yml",
    ])
    .expect(0);
    let out = std::process::Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "-f", "override.yml", "config"])
        .current_dir(home.work())
        .output()
        .expect("run docker-compose (apt-get install docker-compose)");
    let merged = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker-compose config failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "OTEL_RESOURCE_ATTRIBUTES: team=a,service.namespace=shop-slot-2",
        "OTEL_RESOURCE_ATTRIBUTES: service.namespace=shop-slot-2",
        "OTEL_EXPORTER_OTLP_ENDPOINT: http://host.docker.internal:",
        "APP_NS: shop-slot-2",
        "APP_OTLP: http://host.docker.internal:",
        "host.docker.internal: host-gateway",
        "FOO: '1'",
        "BAR: '2'",
    ] {
        assert!(
            merged.contains(want),
            "merged config lacks {want:?}:\n{merged}"
        );
    }
}

#[test]
fn sandbox_run_still_runs_the_command_when_lookout_cannot_start() {
    let home = Home::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let out = home
        .cmd(&[
            "run",
            "--project",
            "shop",
            "--slot",
            "9",
            "--",
            "sh",
            "-c",
            "printf %s \"$OTEL_RESOURCE_ATTRIBUTES\"; exit 3",
        ])
        .env("LOOKOUT_HTTP_ADDR", &busy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "service.namespace=shop-slot-9"
    );
    assert!(
        stderr.contains("warning: lookout could not be started"),
        "{stderr}"
    );
    assert!(home.server_state().is_none());

    // A command that does not exist: the shell's convention, 127.
    let out = home
        .cmd(&["run", "--project", "shop", "--", "/nonexistent/app"])
        .env("LOOKOUT_HTTP_ADDR", &busy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run /nonexistent/app"));
}
