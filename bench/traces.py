#!/usr/bin/env python3
"""End-to-end trace benchmarks for Lookout, each figure next to its baseline from the same run.

Measures, on this machine:
  - start-to-ready on an empty data dir, idle RSS and idle CPU share;
  - durable OTLP/gRPC ingest at full speed (group-commit WAL) next to its baseline, the prost
    decode rate of the load generator's payloads (the mean of a run just before and one just
    after), and their ratio; also as CPU time per span (server + load generator against the
    decode), which is steadier on a busy machine;
  - CPU share of one core at a steady 10k spans/s (on a fresh server; median of three runs,
    with the WAL writer thread's part), next to its baselines: the same load on otlp-sink
    (bench/otlp-sink), a receiver on the standard Rust stack that decodes and drops, on
    otlp-sink forwarding to another otlp-sink (the Collector's job: receive and forward), and
    on otlp-sink answering without decoding (the transport alone, which all three sit on).
    In requests of 512 spans, what OpenTelemetry SDKs' batch span processors send at this rate
    (they export at most 512 spans at once by default) and the load generator's default: the
    figure the target is read against. Again in requests of 200 (the `_batch200` figures,
    this benchmark's size until December 2026) and of 100 (`_batch100`, the size the
    Collector's load test sends): per-request costs weigh more there. Those runs last 20 s,
    short of the head's first cut into a block; one more run at 512 spans lasts two whole
    head cycles (210 s), block building included, and reports each cycle;
  - bytes on disk per span after the head is written out as blocks;
  - with N spans stored (default 10M): start-to-ready, trace-by-id and a
    service + tag + duration search over the last hour through the Jaeger API.

Usage: python3 bench/traces.py [--spans N] [--ingest-seconds S] [--binary PATH]
                               [--sink-binary PATH]
Only the standard library is used. Nothing here asserts a speed: it prints figures.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_cpu_seconds(stat):
    """User plus system CPU seconds from the text of a /proc `stat` file."""
    parts = stat.rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / CLK_TCK


# Three trace maintenance runs (every 5 s); the self-scrape (every 60 s by default) and the
# tsdb's maintenance (every minute) fall in it only sometimes, so this is a floor.
IDLE_SECONDS = 16


class Server:
    def __init__(self, binary, data_dir, extra_env=None):
        self.binary, self.data_dir = binary, data_dir
        self.env = dict(os.environ, **(extra_env or {}))

    def start(self):
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.data_dir,
             "--http-addr", "127.0.0.1:0", "--otlp-grpc-addr", "127.0.0.1:0",
             "--otlp-http-addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env)
        line = self.proc.stdout.readline()
        self.ready_seconds = time.monotonic() - t0
        if not line.startswith("lookout is ready:"):
            raise SystemExit(f"lookout did not start: {line!r}")
        fields = dict(kv.split("=", 1) for kv in line.split(": ", 1)[1].split())
        self.http = "http://" + fields["http"]
        self.grpc = "http://" + fields["otlp-grpc"]
        return self

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            return stat_cpu_seconds(f.read())

    def cpu_seconds_when_idle(self, most=60.0):
        """CPU time once the server went quiet (blocks it still had to build are built),
        waiting at most `most` seconds."""
        prev = self.cpu_seconds()
        deadline = time.monotonic() + most
        while time.monotonic() < deadline:
            time.sleep(1)
            now = self.cpu_seconds()
            if now - prev < 0.05:
                return now
            prev = now
        return prev

    def wal_writer_cpu_seconds(self):
        """CPU time of the WAL's writer thread alone: its writes and fsyncs."""
        total = 0.0
        for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                with open(f"/proc/{self.proc.pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.index("(") + 1:stat.rindex(")")] == "wal-writer":
                total += stat_cpu_seconds(stat)
        return total

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=300)

    def get(self, path):
        t0 = time.perf_counter()
        with urllib.request.urlopen(self.http + path, timeout=60) as r:
            body = r.read()
        return time.perf_counter() - t0, json.loads(body)


class Sink(Server):
    """otlp-sink, the 10k figure's baselines: started and measured like the server. With
    `forward` (a downstream otlp-sink's URL) it receives and forwards, as the Collector does;
    with `no_decode` it answers without decoding, the transport alone."""

    def __init__(self, binary, forward=None, no_decode=False):
        super().__init__(binary, data_dir=None)
        self.args = ["--forward", forward] if forward else []
        if no_decode:
            self.args.append("--no-decode")

    def start(self):
        self.proc = subprocess.Popen([self.binary, *self.args], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=self.env)
        line = self.proc.stdout.readline()
        if not line.startswith("otlp-sink is ready:"):
            raise SystemExit(f"otlp-sink did not start: {line!r}")
        self.grpc = "http://" + line.split("otlp-grpc=", 1)[1].strip()
        return self


def loadgen(binary, endpoint, rate, seconds, concurrency=4, batch=512):
    out = subprocess.run(
        [binary, "loadgen", "traces", "--endpoint", endpoint, "--rate", str(rate),
         "--duration", f"{seconds}s", "--concurrency", str(concurrency),
         "--batch", str(batch), "--json"],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def share_at_10k(binary, receiver, batch):
    """The receiver's CPU share of one core while the load generator sends 10k spans/s in
    requests of `batch` spans, and how many seconds that took."""
    c0, t0 = receiver.cpu_seconds(), time.monotonic()
    loadgen(binary, receiver.grpc, 10_000, 20, concurrency=2, batch=batch)
    seconds = time.monotonic() - t0
    return (receiver.cpu_seconds() - c0) / seconds, seconds


def sink_share_at_10k(args, batch, **mode):
    """`share_at_10k` of a fresh otlp-sink started with `mode` (see `Sink`)."""
    k = Sink(args.sink_binary, **mode).start()
    try:
        return share_at_10k(args.binary, k, batch)[0]
    finally:
        k.stop()


def steady_10k(args, work, batch, suffix):
    """CPU share of one core at a steady 10k spans/s in requests of `batch` spans, on a fresh
    server (no block building from earlier load), and of the same load on the three peers.

    The median of three runs, since one run swings by a third on a shared machine. The WAL
    writer's part (a write and an fsync per request, mostly kernel time) is shown on its own.
    Each run is followed by three of otlp-sink under the same load, so that the ratios
    compare the same minutes: one that decodes and drops; one that forwards to another
    otlp-sink (the Collector's job; only the forwarder's CPU counts, as in the Collector's
    load test); one that answers without decoding, the transport's own cost."""
    shares, wal_shares, sink_shares, fwd_shares, transport_shares = [], [], [], [], []
    for i in range(3):
        s = Server(args.binary, os.path.join(work, f"steady{batch}-{i}")).start()
        w0 = s.wal_writer_cpu_seconds()
        own, seconds = share_at_10k(args.binary, s, batch)
        shares.append(own)
        wal_shares.append((s.wal_writer_cpu_seconds() - w0) / seconds)
        s.stop()
        sink_shares.append(sink_share_at_10k(args, batch))
        down = Sink(args.sink_binary).start()
        fwd_shares.append(sink_share_at_10k(args, batch, forward=down.grpc))
        down.stop()
        transport_shares.append(sink_share_at_10k(args, batch, no_decode=True))
    share, sink, fwd, transport = (statistics.median(x) for x in (
        shares, sink_shares, fwd_shares, transport_shares))
    return {
        f"cpu_share_at_10k_spans_per_s{suffix}": round(share, 4),
        f"cpu_share_at_10k_runs{suffix}": [round(x, 4) for x in shares],
        f"wal_writer_cpu_share_at_10k{suffix}": round(statistics.median(wal_shares), 4),
        f"otlp_sink_cpu_share_at_10k{suffix}": round(sink, 4),
        f"otlp_sink_cpu_share_at_10k_runs{suffix}": [round(x, 4) for x in sink_shares],
        f"cpu_share_at_10k_vs_otlp_sink{suffix}": round(share / sink, 3),
        f"otlp_forwarder_cpu_share_at_10k{suffix}": round(fwd, 4),
        f"otlp_forwarder_cpu_share_at_10k_runs{suffix}": [round(x, 4) for x in fwd_shares],
        f"cpu_share_at_10k_vs_otlp_forwarder{suffix}": round(share / fwd, 3),
        f"otlp_transport_cpu_share_at_10k{suffix}": round(transport, 4),
        f"otlp_transport_cpu_share_at_10k_runs{suffix}": [round(x, 4) for x in transport_shares],
    }


# The default head holds a million spans before it is cut into a block: 100 s at 10k spans/s.
HEAD_MAX_SPANS = 1_000_000
HEAD_CYCLE_SECONDS = HEAD_MAX_SPANS // 10_000 + 5


def head_cycle_10k(args, work, batch=512):
    """CPU share of one core at 10k spans/s over whole head cycles, the figure `top` shows
    over minutes: the head fills past its cut (a million spans by default) and is written out
    as a block, which the 20-second runs of `steady_10k` never reach. Two cycles, each share
    being the server's CPU per span received in it, times 10k. The first runs from the start
    until the first block is on disk; it includes the first touch of every page the head
    fills. The second runs from there until the server is idle after the second block; it
    reuses the memory the first head freed, as a long-running server does, and is the steady
    figure. One block per ~1.05M spans counts block building at 95% of the steady rate of one
    per million. One run, as it takes four minutes."""
    s = Server(args.binary, os.path.join(work, "cycle")).start()
    blocks_dir = os.path.join(s.data_dir, "traces", "blocks")
    try:
        c0 = s.cpu_seconds()
        lg = subprocess.Popen(
            [args.binary, "loadgen", "traces", "--endpoint", s.grpc, "--rate", "10000",
             "--duration", f"{2 * HEAD_CYCLE_SECONDS}s", "--concurrency", "2",
             "--batch", str(batch), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        # The first block is on disk once its directory has its final name. Watched from
        # here rather than through /metrics, which would add the server's CPU to render it.
        first = None
        while lg.poll() is None:
            time.sleep(0.2)
            if first is None and any(not n.endswith(".tmp") for n in os.listdir(blocks_dir)):
                first = (s.cpu_seconds(), received_spans(s))
        lg.wait()
        cpu = s.cpu_seconds_when_idle()
        spans = received_spans(s)
        blocks = store_blocks(s)
    finally:
        s.stop()
    if first is None:
        raise SystemExit("the head-cycle run built no block")
    first_cpu, first_spans = first
    return {
        "cpu_share_at_10k_head_cycle": round((cpu - first_cpu) / (spans - first_spans)
                                             * 10_000, 4),
        "cpu_share_at_10k_first_head_cycle": round((first_cpu - c0) / first_spans * 10_000, 4),
        "head_cycle_spans": spans - first_spans,
        "head_cycle_blocks_built": blocks,
    }


def received_spans(server):
    """Spans the server has received over OTLP/gRPC, from its own metrics."""
    return metric(server, 'lookout_otlp_received_items_total{signal="traces",protocol="grpc"}')


def store_blocks(server):
    """The trace store's block count, from the server's own metrics."""
    return metric(server, 'lookout_store_blocks{signal="traces"}')


def metric(server, series):
    """The value of one series of the server's /metrics, or 0 before it exists."""
    with urllib.request.urlopen(server.http + "/metrics", timeout=60) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(series + " "):
                return int(float(line.split()[-1]))
    return 0


def du(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, f))
            except OSError:
                pass
    return total


def decode_baseline(binary, seconds=5):
    """Spans per second and CPU seconds per span of prost decoding the load generator's
    payloads on every core."""
    c0 = children_cpu_seconds()
    out = subprocess.run([binary, "loadgen", "traces", "--decode-only", "--duration",
                          f"{seconds}s", "--json"], check=True, capture_output=True, text=True)
    base = json.loads(out.stdout.strip().splitlines()[-1])
    cpu = (children_cpu_seconds() - c0) / max(base["spans_decoded"], 1)
    return base["spans_per_second"], cpu


def children_cpu_seconds():
    """User plus system CPU of the finished child processes (the load generator runs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def median_ms(samples):
    return round(statistics.median(samples) * 1000, 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument("--ingest-seconds", type=int, default=20)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "lookout"))
    ap.add_argument("--sink-binary",
                    default=os.path.join(ROOT, "target", "release", "otlp-sink"))
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        subprocess.run(["cargo", "build", "--release", "-p", "lookout"], cwd=ROOT, check=True)
    if not os.path.exists(args.sink_binary):
        subprocess.run(["cargo", "build", "--release", "-p", "otlp-sink"], cwd=ROOT, check=True)
    results = {}
    work = tempfile.mkdtemp(prefix="lookout-bench-")
    try:
        # Start-up and idle memory on an empty data dir (median of 5 starts).
        starts = []
        for i in range(5):
            s = Server(args.binary, os.path.join(work, f"empty{i}")).start()
            starts.append(s.ready_seconds)
            if i == 0:
                time.sleep(2)
                results["idle_rss_mib"] = round(s.rss_kib() / 1024, 1)
                # Idle CPU (self-scrape, tsdb and trace maintenance): the floor under the
                # 10k spans/s figure, which includes it.
                c0, t0 = s.cpu_seconds(), time.monotonic()
                time.sleep(IDLE_SECONDS)
                results["idle_cpu_share"] = round(
                    (s.cpu_seconds() - c0) / (time.monotonic() - t0), 4)
            s.stop()
        results["start_to_ready_empty_ms"] = median_ms(starts)

        # CPU at a steady 10k spans/s in requests of 512 spans (what an OpenTelemetry SDK's
        # batch span processor sends at this rate by default: the figure the target is read
        # against), then of 200 and of 100 (the Collector's load test): see steady_10k.
        results.update(steady_10k(args, work, batch=512, suffix=""))
        results.update(steady_10k(args, work, batch=200, suffix="_batch200"))
        results.update(steady_10k(args, work, batch=100, suffix="_batch100"))
        # The same load over a whole head cycle, block building included.
        results.update(head_cycle_10k(args, work))
        results["cpu_share_at_10k_head_cycle_vs_otlp_forwarder"] = round(
            results["cpu_share_at_10k_head_cycle"] / results["otlp_forwarder_cpu_share_at_10k"],
            3)

        # Durable ingest at full speed, between two runs of its baseline: prost decoding the
        # same payloads on every core. The machine's speed drifts by a third within minutes
        # here, so the baseline is the mean of a run just before and one just after.
        before = decode_baseline(args.binary)
        data = os.path.join(work, "store")
        s = Server(args.binary, data).start()
        s0, c0 = s.cpu_seconds(), children_cpu_seconds()
        r = loadgen(args.binary, s.grpc, 0, args.ingest_seconds, concurrency=8)
        client_seconds = children_cpu_seconds() - c0
        # The server's time includes the blocks it was still building when the load ended;
        # the second decode run waits for them.
        server_seconds = s.cpu_seconds_when_idle() - s0
        after = decode_baseline(args.binary)
        decode_rate = (before[0] + after[0]) / 2
        decode_cpu = (before[1] + after[1]) / 2
        results["prost_decode_spans_per_s"] = round(decode_rate)
        results["prost_decode_runs_spans_per_s"] = [round(before[0]), round(after[0])]
        results["prost_decode_cpu_us_per_span"] = round(decode_cpu * 1e6, 3)
        results["ingest_spans_per_s"] = round(r["spans_per_second"])
        results["ingest_to_decode_ratio"] = round(r["spans_per_second"] / decode_rate, 3)
        # The same comparison in CPU time per span (server plus load generator against the
        # decode), which other load on the machine disturbs far less than wall-clock rates.
        n = max(r["spans_acknowledged"], 1)
        server_cpu = server_seconds / n
        client_cpu = client_seconds / n
        results["ingest_server_cpu_us_per_span"] = round(server_cpu * 1e6, 3)
        results["ingest_loadgen_cpu_us_per_span"] = round(client_cpu * 1e6, 3)
        results["ingest_to_decode_cpu_ratio"] = round(decode_cpu / (server_cpu + client_cpu), 3)
        stored = r["spans_acknowledged"]
        rate = max(r["spans_per_second"], 1.0)

        # Fill up to --spans, then stop gracefully (the head is written out as blocks).
        remaining = args.spans - stored
        while remaining > 0:
            seconds = max(1, min(60, round(remaining / rate)))
            r = loadgen(args.binary, s.grpc, 0, seconds, concurrency=8)
            stored += r["spans_acknowledged"]
            remaining = args.spans - stored
        s.stop()
        results["spans_stored"] = stored
        results["bytes_on_disk_per_span"] = round(du(data) / stored, 2)

        # Start-up with everything stored, then queries.
        s = Server(args.binary, data).start()
        results["start_to_ready_full_ms"] = round(s.ready_seconds * 1000, 1)
        _, found = s.get("/api/traces?service=checkout&limit=20&lookback=1h")
        ids = [t["traceID"] for t in found["data"]]
        by_id = [s.get(f"/api/traces/{i}")[0] for i in ids for _ in range(3)]
        results["trace_by_id_median_ms"] = median_ms(by_id) if by_id else None
        q = "/api/traces?" + urllib.parse.urlencode({
            "service": "payment", "tags": json.dumps({"rpc.method": "Charge"}),
            "minDuration": "1ms", "lookback": "1h", "limit": "20"})
        search = [s.get(q)[0] for _ in range(5)]
        results["search_service_tag_duration_median_ms"] = median_ms(search)
        s.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
