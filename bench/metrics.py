#!/usr/bin/env python3
"""Metrics storage benchmarks: Lookout next to VictoriaMetrics and Prometheus, one run.

Every peer gets the very same remote_write requests (built by `lookout loadgen metrics`
before the clock starts, identical timestamps) and is measured the same way:
  - ingest: remote_write samples/s, acknowledged (Lookout: WAL group commit, durable);
  - memory: RSS per active series after 1M series (RSS after ingest minus RSS when idle,
    divided by the series count; the whole RSS is printed too);
  - disk: bytes on disk per sample for a longer history (default 10k series over 24 h at
    30 s), after each has had the chance to compact (VictoriaMetrics is flushed with
    /internal/force_flush, the others get their periodic compaction) — whole data dir,
    write-ahead logs included, since that is what a user's disk holds.

Usage: python3 bench/metrics.py [--binary PATH] [--series N] [--peers lookout,vm,prometheus]
Needs `victoria-metrics` and `prometheus` on PATH (Debian packages). Standard library only.
Nothing here asserts a speed: it prints figures, and a JSON summary line at the end.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except Exception as e:  # noqa: BLE001 - any failure means "not yet"
        return 0, str(e)


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total


class Peer:
    """One receiver process with its own data dir."""

    def __init__(self, name, binary, workdir):
        self.name, self.binary = name, binary
        self.data = os.path.join(workdir, name)
        os.makedirs(self.data, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.write_url = self.base + "/api/v1/write"

    def start(self):
        if self.name == "lookout":
            # No self-scrape: its samples are stamped "now", so while the disk phase
            # backfills 24 h the head would already reach now, and a maintenance run in the
            # middle would cut blocks past the backfill and refuse the rest as out of bounds.
            cfg = os.path.join(os.path.dirname(self.data), "lookout.toml")
            with open(cfg, "w") as f:
                f.write("[scrape]\nself_scrape = false\n")
            cmd = [self.binary, "serve", "--config", cfg, "--data-dir", self.data,
                   "--http-addr", f"127.0.0.1:{self.port}",
                   "--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0"]
            ready = "/-/ready"
        elif self.name == "vm":
            cmd = ["victoria-metrics", f"-storageDataPath={self.data}",
                   f"-httpListenAddr=127.0.0.1:{self.port}", "-retentionPeriod=100y",
                   "-search.disableCache"]
            ready = "/health"
        else:
            cfg = os.path.join(self.data, "prometheus.yml")
            with open(cfg, "w") as f:
                f.write("global: {}\n")
            cmd = ["prometheus", f"--config.file={cfg}",
                   f"--storage.tsdb.path={os.path.join(self.data, 'tsdb')}",
                   f"--web.listen-address=127.0.0.1:{self.port}",
                   "--web.enable-remote-write-receiver",
                   "--storage.tsdb.retention.time=100y"]
            ready = "/-/ready"
        self.log = open(os.path.join(os.path.dirname(self.data), self.name + ".log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while get(self.base + ready)[0] != 200:
            if time.time() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"{self.name} did not become ready; see {self.log.name}")
            time.sleep(0.1)
        return self

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def flush(self):
        if self.name == "vm":
            get(self.base + "/internal/force_flush", timeout=120)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def loadgen(binary, url, series, rounds, interval, start_ms, concurrency):
    out = subprocess.run(
        [binary, "loadgen", "metrics", "--endpoint", url, "--series", str(series),
         "--rounds", str(rounds), "--interval", interval, "--start-ms", str(start_ms),
         "--concurrency", str(concurrency), "--json"],
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"loadgen against {url} failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/lookout"))
    ap.add_argument("--series", type=int, default=1_000_000, help="active series for ingest and memory")
    ap.add_argument("--rounds", type=int, default=5, help="samples per series in the ingest phase")
    ap.add_argument("--disk-series", type=int, default=10_000)
    ap.add_argument("--disk-hours", type=float, default=24.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--settle", type=float, default=75.0,
                    help="seconds to wait for compaction before measuring disk")
    ap.add_argument("--peers", default="lookout,vm,prometheus")
    ap.add_argument("--phases", default="ingest,disk", help="which of ingest,disk to run")
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        raise SystemExit(f"{args.binary} is missing: run `cargo build --release` first")
    peers = args.peers.split(",")
    for p, exe in (("vm", "victoria-metrics"), ("prometheus", "prometheus")):
        if p in peers and not shutil.which(exe):
            raise SystemExit(f"{exe} is not on PATH: apt-get install {exe}")
    now = int(time.time() * 1000)
    results = {}
    work = tempfile.mkdtemp(prefix="lookout-bench-metrics-")
    try:
        # Ingest and memory: many series, few samples each, ending about now.
        start = now - args.rounds * 15_000
        phases = args.phases.split(",")
        for name in peers if "ingest" in phases else []:
            peer = Peer(name, args.binary, os.path.join(work, "ingest")).start()
            time.sleep(1)
            idle = peer.rss_kib()
            rep = loadgen(args.binary, peer.write_url, args.series, args.rounds, "15s",
                          start, args.concurrency)
            time.sleep(3)
            rss = peer.rss_kib()
            results[name] = {
                "ingest_samples_per_s": rep["samples_per_second"],
                "samples_failed": rep["samples_failed"],
                "first_error": rep["first_error"],
                "idle_rss_mib": idle / 1024,
                "rss_mib_after_ingest": rss / 1024,
                "rss_bytes_per_series": (rss - idle) * 1024 / args.series,
            }
            print(f"{name:>10}: {rep['samples_per_second']:,.0f} samples/s, "
                  f"RSS {rss / 1024:,.0f} MiB ({(rss - idle) * 1024 / args.series:,.0f} B/series)",
                  flush=True)
            peer.stop()
            shutil.rmtree(peer.data, ignore_errors=True)
        # Disk: a longer history of fewer series, old enough to be compacted.
        interval_s = 30
        rounds = int(args.disk_hours * 3600 / interval_s)
        start = now - rounds * interval_s * 1000
        sent = rounds * args.disk_series
        for name in peers if "disk" in phases else []:
            peer = Peer(name, args.binary, os.path.join(work, "disk")).start()
            # One sender, so every sample arrives in time order: with several, a shard that
            # falls hours behind sends samples older than what Lookout (like Prometheus)
            # has already cut into blocks, and they are refused as out of bounds.
            rep = loadgen(args.binary, peer.write_url, args.disk_series, rounds, f"{interval_s}s",
                          start, 1)
            time.sleep(args.settle)
            peer.flush()
            time.sleep(2)
            size = du(peer.data)
            # Per sample stored: refused samples take no space and must not dilute the figure.
            samples = sent - rep["samples_failed"]
            results.setdefault(name, {})["disk_bytes_per_sample"] = size / max(samples, 1)
            results[name]["disk_samples"] = samples
            results[name]["disk_failed"] = rep["samples_failed"]
            print(f"{name:>10}: {size / max(samples, 1):.2f} bytes/sample on disk "
                  f"({samples:,} samples stored, {rep['samples_failed']:,} refused, "
                  f"{size / 2**20:.1f} MiB)", flush=True)
            peer.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if "lookout" in results:
        lk = results["lookout"]
        for other in ("vm", "prometheus"):
            if other not in results:
                continue
            o = results[other]
            ratios = []
            for key, label in (("ingest_samples_per_s", "ingest"),
                               ("rss_bytes_per_series", "memory/series"),
                               ("disk_bytes_per_sample", "disk/sample")):
                if key in lk and key in o and o[key]:
                    ratios.append(f"{label} x{lk[key] / o[key]:.2f}")
            print(f"lookout vs {other}: " + ", ".join(ratios))
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
