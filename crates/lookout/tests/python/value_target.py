"""A prometheus_client scrape target whose values a test changes while it runs.

Usage: value_target.py VALUES_JSON

Serves `demo_value{kind="<key>"}` gauges, one per key of the JSON object in VALUES_JSON,
re-read at every scrape (so a test raises and clears alert conditions by rewriting the file).
Prints `port N` once listening on 127.0.0.1, then serves until killed.
"""

import json
import sys
import time

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector


class FileValues(Collector):
    def __init__(self, path):
        self.path = path

    def collect(self):
        try:
            with open(self.path) as f:
                values = json.load(f)
        except (OSError, ValueError):
            values = {}
        g = GaugeMetricFamily("demo_value", "A value the test sets.", labels=["kind"])
        for kind, v in sorted(values.items()):
            g.add_metric([kind], float(v))
        yield g


def main():
    REGISTRY.register(FileValues(sys.argv[1]))
    server, _thread = start_http_server(0, addr="127.0.0.1")
    print(f"port {server.server_port}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
