"""Writes the request bodies the bad-input tests send, built with the OTLP protobuf classes.

Each malformed request first carries a perfectly valid resource (service "bad-input-canary")
and only then the bad span, so a server that stores part of a request before it finds the
error is caught: after any rejected request the canary service must not exist.

Usage: payload.py OUT_DIR
Writes OUT_DIR/<case>.pb (OTLP protobuf) and, where the case has one, OUT_DIR/<case>.json
(OTLP/JSON), for the cases:
    valid            one good span of service "after-bad-input"
    garbage          bytes that are not protobuf / not JSON
    truncated        a valid request cut short
    short-trace-id   a 15-byte trace id
    short-span-id    a 7-byte span id
    end-before-start a span that ends before it starts
    year-2300        a span in the year 2300 (past what an i64 of nanoseconds holds)
    big              a valid request of about 200 KiB (one span with a large attribute)
    gzip-bomb.pb.gz  gzip of 1 MiB of zeros: small on the wire, large once decompressed
"""

import gzip
import json
import os
import sys
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

import otlp_util

NOW = time.time_ns()
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
# 2300-01-01T00:00:00Z in nanoseconds: larger than i64::MAX (2262-04-11).
YEAR_2300 = 10_413_792_000 * 1_000_000_000


def resource_spans(service, spans):
    rs = ResourceSpans()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    rs.resource.attributes.append(
        KeyValue(key="service.namespace", value=AnyValue(string_value="badinput-slot-1"))
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "payload.py"
    ss.spans.extend(spans)
    return rs


def span(name, trace_id=TRACE_ID, span_id=b"\x01\x02\x03\x04\x05\x06\x07\x08", start=None, end=None, attrs=None):
    s = Span(
        trace_id=trace_id,
        span_id=span_id,
        name=name,
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=NOW - 2_000_000 if start is None else start,
        end_time_unix_nano=NOW - 1_000_000 if end is None else end,
    )
    for k, v in (attrs or {}).items():
        s.attributes.append(KeyValue(key=k, value=AnyValue(string_value=v)))
    return s


def with_canary(bad_span):
    """A request whose first resource is valid and whose second holds `bad_span`."""
    req = ExportTraceServiceRequest()
    req.resource_spans.append(
        resource_spans("bad-input-canary", [span("canary", span_id=b"\x11" * 8)])
    )
    req.resource_spans.append(resource_spans("bad-input-culprit", [bad_span]))
    return req


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    def write(name, data):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)

    def write_both(case, req):
        write(f"{case}.pb", req.SerializeToString())
        write(f"{case}.json", json.dumps(otlp_util.proto_to_otlp_json(req)).encode())

    valid = ExportTraceServiceRequest()
    valid.resource_spans.append(resource_spans("after-bad-input", [span("still serving")]))
    write_both("valid", valid)

    # 't' is field 14 with wire type 4 (end group), which no message can start with; the JSON
    # form is not JSON at all.
    write("garbage.pb", b"this is not protobuf \xff\xfe")
    write("garbage.json", b"this is not JSON {")

    full = with_canary(span("fine", span_id=b"\x22" * 8)).SerializeToString()
    write("truncated.pb", full[: len(full) - 7])
    full_json = json.dumps(otlp_util.proto_to_otlp_json(with_canary(span("fine", span_id=b"\x22" * 8))))
    write("truncated.json", full_json[: len(full_json) - 7].encode())

    write_both("short-trace-id", with_canary(span("short trace id", trace_id=TRACE_ID[:15])))
    write_both("short-span-id", with_canary(span("short span id", span_id=b"\x01" * 7)))
    write_both("end-before-start", with_canary(span("backwards", start=NOW - 1_000, end=NOW - 5_000_000)))
    write_both("year-2300", with_canary(span("far future", start=YEAR_2300, end=YEAR_2300 + 1_000)))

    big = ExportTraceServiceRequest()
    big.resource_spans.append(resource_spans("bad-input-canary", [span("big", attrs={"blob": "x" * 200_000})]))
    write_both("big", big)

    write("gzip-bomb.pb.gz", gzip.compress(b"\0" * (1 << 20)))


if __name__ == "__main__":
    main()
