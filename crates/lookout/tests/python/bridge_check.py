"""Checks, inside a private network namespace, who can reach a `lookout serve` bound to loopback.

Run under `unshare --net --map-root-user`: the namespace gets its own `lo`, a bridge named
`docker0` with Docker's default gateway address 172.17.0.1/16 (what `host.docker.internal`
resolves to for containers), and a second bridge `lan0` (10.99.0.1/24) standing in for the
host's LAN interface. Lookout is started twice on loopback addresses: with the default config
and with `[server] docker_bridge = false`. For each run it reports which addresses accept TCP
connections, and (default config) whether the real OpenTelemetry SDK exporting over gRPC and
HTTP/protobuf to the bridge address gets its spans stored.

Output: one JSON object on stdout,
    {"default": {"reachable": {"172.17.0.1:4317": true, ...}, "exports": {"grpc": [...], ...},
                 "found": {"grpc": true, ...}},
     "no_bridge": {"reachable": {...}}}

Usage: bridge_check.py LOOKOUT_BINARY WORK_DIR
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

BRIDGE = "172.17.0.1"
LAN = "10.99.0.1"
PORTS = {"otlp_grpc": 4317, "otlp_http": 4318, "http": 46686}
HERE = os.path.dirname(os.path.abspath(__file__))


def sh(*args):
    subprocess.run(args, check=True)


def network():
    sh("ip", "link", "set", "lo", "up")
    for name, addr in (("docker0", BRIDGE + "/16"), ("lan0", LAN + "/24")):
        sh("ip", "link", "add", name, "type", "bridge")
        sh("ip", "addr", "add", addr, "dev", name)
        sh("ip", "link", "set", name, "up")


def reachable(host, port):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def start(binary, work, config):
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "lookout.toml")
    with open(cfg, "w") as f:
        f.write(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOKOUT_", "OTEL_"))}
    env["HOME"] = work
    log = open(os.path.join(work, "serve.log"), "w")
    proc = subprocess.Popen(
        [binary, "serve", "--config", cfg, "--data-dir", os.path.join(work, "data"),
         "--http-addr", f"127.0.0.1:{PORTS['http']}",
         "--otlp-grpc-addr", f"127.0.0.1:{PORTS['otlp_grpc']}",
         "--otlp-http-addr", f"127.0.0.1:{PORTS['otlp_http']}"],
        stdout=log, stderr=log, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['http']}/-/ready", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    with open(os.path.join(work, "serve.log")) as f:
        sys.exit("lookout did not become ready; its log:\n" + f.read())


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def probe():
    return {f"{host}:{port}": reachable(host, port)
            for host in ("127.0.0.1", BRIDGE, LAN) for port in PORTS.values()}


def export(protocol, port):
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "export_spans.py"), "--protocol", protocol,
         "--endpoint", f"{BRIDGE}:{port}", "--service", f"bridge-{protocol}",
         "--traces", "2", "--spans-per-trace", "2", "--batch", "4"],
        check=True, capture_output=True, text=True).stdout
    acked = []
    for line in out.splitlines():
        doc = json.loads(line)
        acked.extend(doc.get("acked", []))
    return acked


def found(trace_id):
    try:
        url = f"http://127.0.0.1:{PORTS['http']}/api/traces/{trace_id}"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def main():
    binary, work = sys.argv[1], sys.argv[2]
    network()
    report = {}
    proc = start(binary, os.path.join(work, "default"), "")
    try:
        run = {"reachable": probe(), "exports": {}, "found": {}}
        # Both OTLP ports speak both protocols, as `lookout env` promises.
        for protocol, port in (("grpc", 4317), ("http-protobuf", 4318)):
            acked = export(protocol, port)
            run["exports"][protocol] = acked
            time.sleep(0.2)
            run["found"][protocol] = bool(acked) and all(found(t) for t, _ in acked)
        report["default"] = run
    finally:
        stop(proc)
    proc = start(binary, os.path.join(work, "no_bridge"), "[server]\ndocker_bridge = false\n")
    try:
        report["no_bridge"] = {"reachable": probe()}
    finally:
        stop(proc)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
