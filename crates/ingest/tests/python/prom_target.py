"""A real prometheus_client scrape target for the scrape tests.

Exposes counters, gauges, histograms, summaries, an info metric and an enum (stateset), with
labels, including labels that clash with target labels (`job`, `instance`) and a pair for the
keepequal/dropequal rules. Serves on 127.0.0.1 on a free port, prints the port on its first
line of stdout, and runs until stdin closes (so it dies with the test that started it).
"""

import sys
import threading

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    start_http_server,
)

registry = CollectorRegistry()

requests = Counter(
    "app_requests", "Requests served.", ["method", "code"], registry=registry
)
for method, code in [("GET", "200"), ("POST", "200"), ("GET", "500"), ("DELETE", "404")]:
    requests.labels(method, code).inc(3)

in_flight = Gauge("app_in_flight", "Requests in flight.", registry=registry)
in_flight.set(7)

temperature = Gauge(
    "app_temperature_celsius", "A gauge with a unit.", ["room"], unit="celsius", registry=registry
)
temperature.labels("kitchen").set(21.5)
temperature.labels("cellar").set(-3)

latency = Histogram(
    "app_latency_seconds",
    "Request latency.",
    ["route"],
    buckets=(0.1, 0.5, 1.0),
    registry=registry,
)
for v in (0.05, 0.3, 0.7, 2.0):
    latency.labels("/api").observe(v)

sizes = Summary("app_response_bytes", "Response sizes.", registry=registry)
sizes.observe(512)

build = Info("app_build", "Build information.", registry=registry)
build.info({"version": "1.2.3", "revision": "abc"})

state = Enum(
    "app_state", "Lifecycle state.", states=["starting", "running", "stopping"], registry=registry
)
state.state("running")

# Labels the target labels overwrite: kept as exported_job / exported_instance unless
# honor_labels is set.
clash = Gauge("app_clash", "Exposed job and instance labels.", ["job", "instance"], registry=registry)
clash.labels("exposed-job", "exposed-instance").set(1)

# For keepequal/dropequal: one series where code equals expected_code, one where it does not.
status = Gauge("app_status", "Status codes.", ["code", "expected_code"], registry=registry)
status.labels("200", "200").set(1)
status.labels("500", "200").set(1)

# For the drop rule.
noise = Gauge("app_noise_dropped", "Dropped by metric_relabel_configs.", registry=registry)
noise.set(1)

server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
print(server.server_port, flush=True)
sys.stdin.read()
server.shutdown()
