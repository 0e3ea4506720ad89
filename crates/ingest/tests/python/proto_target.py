"""A scrape target that answers in Prometheus's protobuf exposition format, for the scrape tests.

The io.prometheus.client messages are built at runtime from descriptors (descriptor_pb2 and
message_factory), following client_model's metrics.proto (proto2, so repeated numbers are
unpacked, as client_golang writes them), so the bytes are Google's own protobuf encoding,
not Lookout's. Every answer is varint-delimited MetricFamily messages with the content type
client_golang uses.

Families served (constant, so two scrapers see the same values):
  rpc_duration_seconds   histogram: native (schema 1, zero bucket, positive and negative
                         spans, integer deltas) and classic buckets, two label sets
  sparse_seconds         histogram: native only (schema 3, a gap between spans)
  classic_seconds        histogram: classic buckets only, no +Inf bucket given
  jobs_total             counter, and a counter with an explicit timestamp (now - 10s at start)
  queue_size             summary, and an untyped metric

Serves on 127.0.0.1 on a free port, prints the port on its first line of stdout, and runs
until stdin closes.
"""

import http.server
import sys
import threading
import time

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED


def build_classes():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="lookout_test_metrics.proto", package="io.prometheus.client", syntax="proto2"
    )
    enum = fdp.enum_type.add(name="MetricType")
    for i, n in enumerate(["COUNTER", "GAUGE", "SUMMARY", "UNTYPED", "HISTOGRAM", "GAUGE_HISTOGRAM"]):
        enum.value.add(name=n, number=i)

    def message(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = ".io.prometheus.client." + type_name

    message("LabelPair", [("name", 1, F.TYPE_STRING, OPT, None), ("value", 2, F.TYPE_STRING, OPT, None)])
    message("Gauge", [("value", 1, F.TYPE_DOUBLE, OPT, None)])
    message("Counter", [("value", 1, F.TYPE_DOUBLE, OPT, None)])
    message("Quantile", [("quantile", 1, F.TYPE_DOUBLE, OPT, None), ("value", 2, F.TYPE_DOUBLE, OPT, None)])
    message(
        "Summary",
        [
            ("sample_count", 1, F.TYPE_UINT64, OPT, None),
            ("sample_sum", 2, F.TYPE_DOUBLE, OPT, None),
            ("quantile", 3, F.TYPE_MESSAGE, REP, "Quantile"),
        ],
    )
    message("Untyped", [("value", 1, F.TYPE_DOUBLE, OPT, None)])
    message(
        "Bucket",
        [
            ("cumulative_count", 1, F.TYPE_UINT64, OPT, None),
            ("cumulative_count_float", 4, F.TYPE_DOUBLE, OPT, None),
            ("upper_bound", 2, F.TYPE_DOUBLE, OPT, None),
        ],
    )
    message("BucketSpan", [("offset", 1, F.TYPE_SINT32, OPT, None), ("length", 2, F.TYPE_UINT32, OPT, None)])
    message(
        "Histogram",
        [
            ("sample_count", 1, F.TYPE_UINT64, OPT, None),
            ("sample_count_float", 4, F.TYPE_DOUBLE, OPT, None),
            ("sample_sum", 2, F.TYPE_DOUBLE, OPT, None),
            ("bucket", 3, F.TYPE_MESSAGE, REP, "Bucket"),
            ("schema", 5, F.TYPE_SINT32, OPT, None),
            ("zero_threshold", 6, F.TYPE_DOUBLE, OPT, None),
            ("zero_count", 7, F.TYPE_UINT64, OPT, None),
            ("zero_count_float", 8, F.TYPE_DOUBLE, OPT, None),
            ("negative_span", 9, F.TYPE_MESSAGE, REP, "BucketSpan"),
            ("negative_delta", 10, F.TYPE_SINT64, REP, None),
            ("negative_count", 11, F.TYPE_DOUBLE, REP, None),
            ("positive_span", 12, F.TYPE_MESSAGE, REP, "BucketSpan"),
            ("positive_delta", 13, F.TYPE_SINT64, REP, None),
            ("positive_count", 14, F.TYPE_DOUBLE, REP, None),
        ],
    )
    message(
        "Metric",
        [
            ("label", 1, F.TYPE_MESSAGE, REP, "LabelPair"),
            ("gauge", 2, F.TYPE_MESSAGE, OPT, "Gauge"),
            ("counter", 3, F.TYPE_MESSAGE, OPT, "Counter"),
            ("summary", 4, F.TYPE_MESSAGE, OPT, "Summary"),
            ("untyped", 5, F.TYPE_MESSAGE, OPT, "Untyped"),
            ("histogram", 7, F.TYPE_MESSAGE, OPT, "Histogram"),
            ("timestamp_ms", 6, F.TYPE_INT64, OPT, None),
        ],
    )
    message(
        "MetricFamily",
        [
            ("name", 1, F.TYPE_STRING, OPT, None),
            ("help", 2, F.TYPE_STRING, OPT, None),
            ("type", 3, F.TYPE_ENUM, OPT, "MetricType"),
            ("metric", 4, F.TYPE_MESSAGE, REP, "Metric"),
            ("unit", 5, F.TYPE_STRING, OPT, None),
        ],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("io.prometheus.client.MetricFamily")
    )


MetricFamily = build_classes()
COUNTER, GAUGE, SUMMARY, UNTYPED, HISTOGRAM = 0, 1, 2, 3, 4


def spans(m, side, pairs):
    for offset, length in pairs:
        s = getattr(m, side).add()
        s.offset, s.length = offset, length


def families(stamp_ms):
    out = []

    rpc = MetricFamily(name="rpc_duration_seconds", help="RPC latency, both ways.", type=HISTOGRAM)
    for method, scale in (("get", 1), ("put", 2)):
        m = rpc.metric.add()
        m.label.add(name="method", value=method)
        h = m.histogram
        # Native: zero bucket 1*scale; negative bucket -1 (1*scale); positive buckets
        # 0,1 then 3 with counts 2,5,1 (*scale). Classic: le 0.5, 1, 2.
        h.schema = 1
        h.zero_threshold = 0.001
        h.zero_count = 1 * scale
        spans(h, "negative_span", [(-1, 1)])
        h.negative_delta.extend([1 * scale])
        spans(h, "positive_span", [(0, 2), (1, 1)])
        h.positive_delta.extend([2 * scale, 3 * scale, -4 * scale])
        h.sample_count = 10 * scale
        h.sample_sum = 7.25 * scale
        for le, c in ((0.5, 2), (1.0, 4), (2.0, 9)):
            b = h.bucket.add()
            b.upper_bound, b.cumulative_count = le, c * scale
    out.append(rpc)

    sparse = MetricFamily(name="sparse_seconds", help="Native only.", type=HISTOGRAM)
    h = sparse.metric.add().histogram
    h.schema = 3
    h.zero_threshold = 0.0001
    spans(h, "positive_span", [(5, 2), (10, 3)])
    h.positive_delta.extend([1, 1, 0, 3, -2])
    h.sample_count = 13
    h.sample_sum = 100.5
    out.append(sparse)

    classic = MetricFamily(name="classic_seconds", help="Classic only.", type=HISTOGRAM)
    h = classic.metric.add().histogram
    h.sample_count = 6
    h.sample_sum = 3.5
    for le, c in ((0.1, 1), (0.25, 3), (1.0, 5)):
        b = h.bucket.add()
        b.upper_bound, b.cumulative_count = le, c
    out.append(classic)

    jobs = MetricFamily(name="jobs_total", help="Jobs done.", type=COUNTER)
    m = jobs.metric.add()
    m.label.add(name="queue", value="fast")
    m.counter.value = 42
    m = jobs.metric.add()
    m.label.add(name="queue", value="stamped")
    m.counter.value = 7
    m.timestamp_ms = stamp_ms
    out.append(jobs)

    queue = MetricFamily(name="queue_size", help="Queue sizes.", type=SUMMARY)
    s = queue.metric.add().summary
    s.sample_count, s.sample_sum = 4, 10.0
    for q, v in ((0.5, 2.0), (0.99, 4.0)):
        qq = s.quantile.add()
        qq.quantile, qq.value = q, v
    out.append(queue)

    loose = MetricFamily(name="loose_value", help="Untyped.", type=UNTYPED)
    loose.metric.add().untyped.value = 3.25
    out.append(loose)
    return out


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


STAMP_MS = int(time.time() * 1000) - 10_000
BODY = b"".join(varint(len(b)) + b for b in (f.SerializeToString() for f in families(STAMP_MS)))
CONTENT_TYPE = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
print(STAMP_MS, flush=True)
sys.stdin.read()
