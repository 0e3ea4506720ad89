#!/usr/bin/env python3
"""PromQL latency: Lookout next to Prometheus and VictoriaMetrics on one dataset, one run.

Every peer gets the very same remote_write requests (built by `lookout loadgen metrics`
before the clock starts: by default 10k node-exporter-like series over 6 h at 15 s, ending
about now), then the same settle time for compaction (VictoriaMetrics is also flushed with
/internal/force_flush so its data is searchable), then the same queries over HTTP, one peer
after another so they never compete for the CPU: typical dashboard panels (1 h ranges at
15-60 s steps) and alert expressions (instant queries at the end of the data). Each query is
sent once to warm up and then `--reps` times; the median wall time of the HTTP round trip
(JSON included, as a dashboard sees it) is the peer's figure.

Printed per query: each peer's median in ms, Lookout's ratio to each peer, and whether
Lookout's answer equals Prometheus's (same label sets, values equal to 1e-9 relative).
VictoriaMetrics speaks MetricsQL, whose answers can differ (it keeps `__name__` in some
places, extrapolates `rate` differently, and caches nothing here: -search.disableCache), so
only its latency is compared. At the end: the median of the ratios, against the targets
(≤ 0.5× Prometheus, ≤ 1× VictoriaMetrics), and a JSON summary line.

Usage: python3 bench/promql.py [--binary PATH] [--series N] [--hours H] [--reps N]
                               [--peers lookout,prometheus,vm] [--only SUBSTRING]
Needs `victoria-metrics` and `prometheus` on PATH (Debian packages). Standard library only.
Nothing here asserts a speed: it prints figures.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from metrics import ROOT, Peer, get, loadgen  # noqa: E402  (shared peer start-up)

# (name, kind, expr, step seconds for range queries). Series counts are for the default
# 10k-series dataset: 50 metric names x 10 instances x 20 `cpu` values.
QUERIES = [
    ("rate", "range", 'rate(node_cpu_seconds_total[5m])', 15),
    ("sum by rate", "range", 'sum by (instance) (rate(node_network_receive_bytes_total[5m]))', 15),
    ("topk rate", "range", 'topk(5, rate(http_requests_total[5m]))', 60),
    ("quantile_over_time", "range", 'quantile_over_time(0.95, node_load1[10m])', 30),
    ("avg_over_time", "range", 'avg_over_time(process_resident_memory_bytes[5m])', 15),
    ("ratio of sums", "range",
     'sum by (instance) (rate(db_query_errors_total[5m])) / sum by (instance) (rate(db_queries_total[5m]))', 30),
    ("group_left", "range",
     'rate(node_cpu_seconds_total[5m]) * on (instance) group_left () app_build_info{cpu="0"}', 15),
    ("group_left 10k", "range",
     '{job="node"} > on (instance) group_left () app_build_info{cpu="0"}', 60),
    ("on() match", "range",
     'node_filesystem_avail_bytes / on (instance, cpu) node_filesystem_size_bytes', 15),
    ("quantile by", "range", 'quantile by (instance) (0.9, node_load1)', 15),
    ("count all", "instant", 'count by (__name__) ({job="node"})', 0),
    ("alert threshold", "instant",
     'sum by (instance) (rate(http_requests_total[5m])) > 100', 0),
    ("increase 1h", "instant", 'increase(http_requests_total[1h])', 0),
    ("max_over_time 1h", "instant", 'max_over_time(kafka_consumer_lag[1h])', 0),
    ("memory by instance", "instant",
     'sum by (instance) (avg_over_time(node_memory_MemFree_bytes[10m])) / sum by (instance) (node_memory_Cached_bytes)', 0),
]


def query(peer, kind, expr, step, start, end, timeout=300):
    if kind == "range":
        params = {"query": expr, "start": f"{start / 1000:.3f}", "end": f"{end / 1000:.3f}",
                  "step": str(step)}
        path = "/api/v1/query_range"
    else:
        params = {"query": expr, "time": f"{end / 1000:.3f}"}
        path = "/api/v1/query"
    body = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(peer.base + path, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = r.read()
    except urllib.error.HTTPError as e:
        return time.perf_counter() - t0, {"status": "error", "error": e.read().decode()[:300]}
    return time.perf_counter() - t0, json.loads(data)


def canonical(resp):
    """A comparable form of a result: {labels: [(t, v), ...]}, `__name__` kept as given."""
    if resp.get("status") != "success":
        return None
    out = {}
    for s in resp["data"]["result"]:
        key = tuple(sorted(s.get("metric", {}).items()))
        pts = s.get("values") or ([s["value"]] if "value" in s else [])
        out[key] = [(float(t), float(v)) for t, v in pts]
    return out


def same(a, b):
    if a is None or b is None or a.keys() != b.keys():
        return False
    for k, pa in a.items():
        pb = b[k]
        if len(pa) != len(pb):
            return False
        for (ta, va), (tb, vb) in zip(pa, pb):
            if ta != tb:
                return False
            if math.isnan(va) and math.isnan(vb):
                continue
            if va != vb and abs(va - vb) > 1e-9 * max(abs(va), abs(vb)):
                return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/lookout"))
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--interval", type=int, default=15, help="seconds between samples")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--settle", type=float, default=90.0,
                    help="seconds each peer gets after loading, for compaction")
    # One sender keeps every sample in time order across series: with several, a shard that
    # runs ahead by more than an hour makes Prometheus 2.x refuse the others' samples as
    # "out of bounds" (its head accepts only the last 1.5 h of a 2 h block range).
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--peers", default="lookout,prometheus,vm")
    ap.add_argument("--only", default="", help="run only queries whose name contains this")
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        raise SystemExit(f"{args.binary} is missing: run `cargo build --release` first")
    peers = args.peers.split(",")
    for p, exe in (("vm", "victoria-metrics"), ("prometheus", "prometheus")):
        if p in peers and not shutil.which(exe):
            raise SystemExit(f"{exe} is not on PATH: apt-get install {exe}")
    queries = [q for q in QUERIES if args.only in q[0]]
    rounds = int(args.hours * 3600 / args.interval)
    # Whole minutes, so every peer's steps fall on the same timestamps.
    now = int(time.time()) // 60 * 60 * 1000
    start = now - rounds * args.interval * 1000
    # Query times sit 7 s after sample times, so no sample lies on a window's edge: there
    # Prometheus 2.x's closed windows `[t - range, t]` and Prometheus 3's left-open ones differ.
    end = start + (rounds - 1) * args.interval * 1000 + 7_000
    rstart = end - 3600 * 1000
    work = tempfile.mkdtemp(prefix="lookout-bench-promql-")
    lat = {}  # peer -> query name -> median seconds
    answers = {}  # peer -> query name -> canonical result
    try:
        started = []
        for name in peers:
            peer = Peer(name, args.binary, work).start()
            started.append(peer)
            t0 = time.time()
            rep = loadgen(args.binary, peer.write_url, args.series, rounds,
                          f"{args.interval}s", start, args.concurrency)
            print(f"{name:>10}: loaded {rep['samples_acknowledged']:,} "
                  f"samples in {time.time() - t0:.0f} s ({rep['samples_failed']} failed"
                  f"{': ' + str(rep['first_error']) if rep['samples_failed'] else ''})", flush=True)
        # Every peer settles for the same time after the last load (and longer for the
        # earlier ones, which only helps them compact).
        time.sleep(args.settle)
        for peer in started:
            peer.flush()
        time.sleep(2)
        for peer in started:
            lat[peer.name], answers[peer.name] = {}, {}
            for qname, kind, expr, step in queries:
                _, resp = query(peer, kind, expr, step, rstart, end)  # warm-up
                times = []
                for _ in range(args.reps):
                    dt, resp = query(peer, kind, expr, step, rstart, end)
                    times.append(dt)
                lat[peer.name][qname] = statistics.median(times)
                answers[peer.name][qname] = canonical(resp)
                if resp.get("status") != "success":
                    print(f"{peer.name:>10}: {qname}: {resp.get('error')}", flush=True)
            print(f"{peer.name:>10}: {len(queries)} queries x {args.reps} done", flush=True)
    finally:
        for peer in started if "started" in dir() else []:
            peer.stop()
        shutil.rmtree(work, ignore_errors=True)

    others = [p for p in ("prometheus", "vm") if p in lat]
    head = f"{'query':<20}" + "".join(f"{p + ' ms':>14}" for p in lat)
    head += "".join(f"{'lk/' + o:>14}" for o in others if "lookout" in lat)
    if "lookout" in lat and "prometheus" in lat:
        head += f"{'same as prom':>14}"
    print(head)
    ratios = {o: [] for o in others}
    summary = {"queries": {}}
    for qname, _, _, _ in queries:
        row = f"{qname:<20}" + "".join(f"{lat[p][qname] * 1000:>14.1f}" for p in lat)
        entry = {p: lat[p][qname] for p in lat}
        if "lookout" in lat:
            for o in others:
                ratio = lat["lookout"][qname] / lat[o][qname]
                ratios[o].append(ratio)
                row += f"{ratio:>14.2f}"
                entry[f"lookout/{o}"] = ratio
            if "prometheus" in lat:
                eq = same(answers["lookout"][qname], answers["prometheus"][qname])
                row += f"{'yes' if eq else 'NO':>14}"
                entry["same_as_prometheus"] = eq
        summary["queries"][qname] = entry
        print(row)
    for o in others:
        if ratios[o]:
            m = statistics.median(ratios[o])
            target = 0.5 if o == "prometheus" else 1.0
            print(f"median of ratios lookout/{o}: {m:.2f} (target <= {target})")
            summary[f"median_ratio_lookout_{o}"] = m
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
