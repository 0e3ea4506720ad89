"""Exports many small traces in batches and reports, batch by batch, what was acknowledged.

The durability tests use it: every span listed as acknowledged must be found after the server
is killed with SIGKILL and restarted. Each batch goes through the SDK's own exporter (or, for
OTLP/JSON, a POST of the SDK's spans), and a batch counts as acknowledged only when the
exporter reports SUCCESS (or the JSON POST answers 200).

Output, one JSON object per line, flushed as soon as it is known:
    {"acked": [[trace_id_hex, span_id_hex], ...]}      after each acknowledged batch
    {"done": true, "failed": false}                      at the end
With --stop-on-failure a failed batch ends the run with {"done": true, "failed": true,
"error": "..."} and exit status 0 (the kill-during-export test expects failures once the
server is gone); without it a failed batch exits non-zero.

Usage: export_spans.py --protocol grpc|http-protobuf|http-json --endpoint HOST:PORT
           [--service S] [--namespace N] [--traces 20] [--spans-per-trace 5] [--batch 50]
           [--age-seconds 0] [--timeout 20] [--stop-on-failure]
"""

import argparse
import json
import sys
import time

from opentelemetry.trace import SpanKind, set_span_in_context

import otlp_util


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", choices=["grpc", "http-protobuf", "http-json"], required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--service", default="durable-app")
    ap.add_argument("--namespace", default="durability-slot-1")
    ap.add_argument("--traces", type=int, default=20)
    ap.add_argument("--spans-per-trace", type=int, default=5)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--age-seconds", type=float, default=0.0, help="shift all timestamps this far into the past")
    ap.add_argument("--timeout", type=float, default=otlp_util.EXPORT_TIMEOUT)
    ap.add_argument("--stop-on-failure", action="store_true")
    args = ap.parse_args()
    otlp_util.EXPORT_TIMEOUT = args.timeout

    provider, recorder = otlp_util.recording_provider(args.service, args.namespace)
    tracer = provider.get_tracer("durability")
    base = time.time_ns() - int(args.age_seconds * 1e9)
    for t in range(args.traces):
        # Explicit timestamps: the retention test needs spans that are days old, and explicit
        # times keep every trace's children inside their root.
        t0 = base + t * 1_000_000
        root = tracer.start_span(f"job {t % 7}", kind=SpanKind.SERVER, start_time=t0, attributes={"job.index": t})
        ctx = set_span_in_context(root)
        for c in range(args.spans_per_trace - 1):
            child = tracer.start_span(f"step {c}", context=ctx, start_time=t0 + (c + 1) * 1_000)
            child.end(end_time=t0 + (c + 1) * 1_000 + 500)
        root.end(end_time=t0 + 900_000)
    provider.shutdown()
    spans = list(recorder.get_finished_spans())

    for i in range(0, len(spans), args.batch):
        batch = spans[i : i + args.batch]
        try:
            send(args.protocol, args.endpoint, batch)
        except SystemExit:
            if not args.stop_on_failure:
                raise
            emit({"done": True, "failed": True, "error": f"batch starting at span {i} was not acknowledged"})
            return
        emit({"acked": [[f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}"] for s in batch]})
    emit({"done": True, "failed": False})


def send(protocol, endpoint, batch):
    if protocol == "grpc":
        otlp_util.export_grpc(endpoint, batch)
    elif protocol == "http-protobuf":
        otlp_util.export_http_protobuf(endpoint, batch)
    else:
        try:
            otlp_util.post_json(endpoint, otlp_util.spans_to_otlp_json(batch))
        except OSError as err:
            otlp_util.fail(f"OTLP/JSON export to {endpoint} failed: {err}")


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
