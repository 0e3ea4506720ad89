//! The Docker-bridge listeners: containers reach Lookout's OTLP ports on the bridge's gateway
//! address while nothing on the LAN can, and `[server] docker_bridge = false` turns that off.
//!
//! The test builds the network it needs in a private network namespace (`unshare --net
//! --map-root-user`): a Linux bridge named `docker0` with Docker's default gateway
//! 172.17.0.1/16 (exactly what Docker creates), and a second bridge standing in for the LAN.
//! `tests/python/bridge_check.py` runs inside it, starts `lookout serve` on loopback addresses
//! and exports spans with the real OpenTelemetry SDK to the bridge address, as a container would.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::harness::python;

fn need(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file()
        || Path::new("/sbin").join(tool).is_file();
    assert!(
        found,
        "this test needs `{tool}` (Debian package {package}); run `bash scripts/system-deps.sh`"
    );
}

#[test]
fn otlp_is_reachable_on_the_docker_bridge_and_not_on_the_lan() {
    need("unshare", "util-linux");
    need("ip", "iproute2");
    let work = tempfile::tempdir().expect("temp dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/bridge_check.py");
    let path = format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("unshare")
        .args(["--net", "--map-root-user"])
        .arg(python())
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_lookout"))
        .arg(work.path())
        .env("PATH", path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "bridge_check.py failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    let reach = &report["default"]["reachable"];
    for port in [4317, 4318, 46686] {
        assert_eq!(reach[format!("127.0.0.1:{port}")], true, "{report}");
        assert_eq!(reach[format!("10.99.0.1:{port}")], false, "LAN: {report}");
    }
    assert_eq!(reach["172.17.0.1:4317"], true, "{report}");
    assert_eq!(reach["172.17.0.1:4318"], true, "{report}");
    assert_eq!(
        reach["172.17.0.1:46686"], false,
        "the query API stays on loopback: {report}"
    );
    for protocol in ["grpc", "http-protobuf"] {
        let acked = report["default"]["exports"][protocol].as_array().unwrap();
        assert_eq!(
            acked.len(),
            4,
            "2 traces of 2 spans over {protocol}: {report}"
        );
        assert_eq!(report["default"]["found"][protocol], true, "{report}");
    }
    let off = &report["no_bridge"]["reachable"];
    for port in [4317, 4318, 46686] {
        assert_eq!(off[format!("127.0.0.1:{port}")], true, "{report}");
        assert_eq!(off[format!("172.17.0.1:{port}")], false, "{report}");
    }
}
