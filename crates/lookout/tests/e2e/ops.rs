//! Operating the server: readiness and liveness endpoints, self-metrics that move when data
//! arrives, graceful shutdown on SIGTERM, and clear failures for bad configuration and busy
//! ports.

use std::process::{Command, Stdio};

use super::harness::{metric_sum, run_python, run_python_env, DataDir, Server};

fn received_spans(server: &Server, protocol: &str) -> f64 {
    server.metric(
        "lookout_otlp_received_items_total",
        &["signal=\"traces\"", &format!("protocol=\"{protocol}\"")],
    )
}

#[test]
fn ops_ready_healthy_and_build_info() {
    let dir = DataDir::new();
    let server = dir.start();
    for path in ["/-/ready", "/-/healthy"] {
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("text/plain"),
        "Prometheus text format: {}",
        reply.content_type
    );
    let text = reply.text();
    assert!(text.contains("# TYPE lookout_build_info gauge"), "{text}");
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        metric_sum(&text, "lookout_build_info", &[&version]),
        1.0,
        "lookout_build_info with this version, value 1:\n{text}"
    );
}

#[test]
fn ops_received_items_counter_counts_each_protocol() {
    let dir = DataDir::new();
    let server = dir.start();
    for protocol in ["grpc", "http_protobuf", "http_json"] {
        assert_eq!(
            received_spans(&server, protocol),
            0.0,
            "{protocol} before any export"
        );
    }
    let endpoint = |protocol: &str| {
        if protocol == "grpc" {
            server.grpc_endpoint()
        } else {
            server.http_endpoint()
        }
    };
    for (protocol, flag) in [
        ("grpc", "grpc"),
        ("http_protobuf", "http-protobuf"),
        ("http_json", "http-json"),
    ] {
        run_python(
            "export_spans.py",
            &[
                "--protocol",
                flag,
                "--endpoint",
                &endpoint(protocol),
                "--traces",
                "3",
                "--spans-per-trace",
                "4",
            ],
        );
        assert_eq!(
            received_spans(&server, protocol),
            12.0,
            "{protocol}: 12 spans acknowledged"
        );
    }
}

#[test]
fn ops_sigterm_is_a_clean_exit_that_keeps_data() {
    let dir = DataDir::new();
    let server = dir.start();
    run_python(
        "export_spans.py",
        &[
            "--protocol",
            "grpc",
            "--endpoint",
            &server.grpc_endpoint(),
            "--service",
            "graceful-app",
            "--traces",
            "2",
        ],
    );
    let status = server.graceful_stop();
    assert!(status.success(), "SIGTERM should exit 0, got {status}");
    let server = dir.start();
    assert_eq!(server.services(), ["graceful-app"]);
}

#[test]
fn ops_port_in_use_is_a_one_line_error() {
    let dir = DataDir::new();
    let first = dir.start();
    let other = DataDir::new();
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("serve")
        .arg("--data-dir")
        .arg(other.data_path())
        .args(["--http-addr", &first.http.to_string()])
        .args(["--otlp-grpc-addr", "127.0.0.1:0"])
        .args(["--otlp-http-addr", "127.0.0.1:0"])
        .env("LOOKOUT_CONFIG", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("run lookout");
    assert!(!out.status.success(), "a busy port must fail start-up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let port = first.http.port().to_string();
    assert!(
        stderr.contains(&port) && stderr.contains("--http-addr"),
        "the error names the port and the flag: {stderr}"
    );
}

#[test]
fn ops_invalid_config_fails_with_file_and_line() {
    let dir = DataDir::new();
    let config = dir.data_path().with_file_name("lookout.toml");
    std::fs::write(&config, "[traces]\nretenion = \"2d\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.data_path())
        .stdin(Stdio::null())
        .output()
        .expect("run lookout");
    assert!(!out.status.success(), "an unknown key must fail start-up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("lookout.toml") && stderr.contains("retenion") && stderr.contains("line 2"),
        "the error names the file, the key and the line: {stderr}"
    );
}

/// A port that was free a moment ago (bound and released), for settings that cannot be 0.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

#[test]
fn ops_settings_layer_flag_over_env_over_file() {
    let mut dir = DataDir::new();
    let root = dir.root().to_path_buf();
    let path = |name: &str| root.join(name).to_str().unwrap().to_string();
    dir.set_config(&format!(
        "[server]\ndata_dir = \"{}\"\nhttp_addr = \"127.0.0.1:0\"\n\
         otlp_grpc_addr = \"127.0.0.1:0\"\notlp_http_addr = \"127.0.0.1:0\"\n",
        path("from-file")
    ));
    let config = dir.config_path();
    let config = config.to_str().unwrap();

    // The file alone, found through $LOOKOUT_CONFIG.
    let server = dir.launch(&[], &[("LOOKOUT_CONFIG", config)]);
    assert_eq!(server.data_dir, root.join("from-file"));
    assert_eq!(server.get("/-/ready").status, 200);
    drop(server);

    // The environment beats the file.
    let port = free_port();
    let http = format!("127.0.0.1:{port}");
    let from_env = path("from-env");
    let env = [
        ("LOOKOUT_CONFIG", config),
        ("LOOKOUT_DATA_DIR", from_env.as_str()),
        ("LOOKOUT_HTTP_ADDR", http.as_str()),
    ];
    let server = dir.launch(&[], &env);
    assert_eq!(server.data_dir, root.join("from-env"));
    assert_eq!(server.http.port(), port, "LOOKOUT_HTTP_ADDR");
    drop(server);

    // A flag beats the environment.
    let from_flag = path("from-flag");
    let server = dir.launch(&["--data-dir".as_ref(), from_flag.as_ref()], &env);
    assert_eq!(server.data_dir, root.join("from-flag"));
    assert_eq!(server.get("/-/healthy").status, 200);
}

#[test]
fn ops_sdk_gzip_exports_over_grpc_and_http() {
    let dir = DataDir::new();
    let server = dir.start();
    for (protocol, endpoint, service) in [
        ("grpc", server.grpc_endpoint(), "gzip-grpc"),
        ("http-protobuf", server.http_endpoint(), "gzip-http"),
    ] {
        // The SDK's exporters read the compression from the environment, as apps set it.
        let out = run_python_env(
            "export_spans.py",
            &[
                "--protocol",
                protocol,
                "--endpoint",
                &endpoint,
                "--service",
                service,
                "--traces",
                "4",
            ],
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")],
        );
        let first: serde_json::Value =
            serde_json::from_str(out.lines().next().expect("output")).expect("JSON line");
        let trace_id = first["acked"][0][0].as_str().expect("an acknowledged span");
        let trace = server.trace(trace_id).expect("the gzip-exported trace");
        assert_eq!(
            trace["spans"].as_array().map(Vec::len),
            Some(5),
            "{protocol}"
        );
    }
    assert_eq!(server.services(), ["gzip-grpc", "gzip-http"]);
}
