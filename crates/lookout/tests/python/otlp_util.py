"""Shared helpers for the end-to-end scripts: tracers that record what they make, and the three
ways the tests send spans to Lookout.

Spans are made with the real OpenTelemetry SDK and recorded in memory first; each script then
hands them to the real exporter (gRPC or HTTP/protobuf) and checks its result, instead of
relying on a BatchSpanProcessor whose force_flush reports only that the flush finished, not
that the server acknowledged it. The durability tests need exactly that: a span the exporter
reported as SUCCESS must survive a kill -9.

The Python SDK has no OTLP/JSON exporter, so `post_json` builds OTLP/JSON from the SDK's own
protobuf encoding of the spans: protobuf's JSON mapping with the OTLP spec's exceptions (ids
as hex instead of base64, enums as integers).
"""

import base64
import json
import sys
import urllib.error
import urllib.request

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# Seconds an export may take before the test calls it a failure; generous for a debug build on
# a loaded two-core CI machine, short enough that a hung server fails the test quickly.
EXPORT_TIMEOUT = 20


def recording_provider(service, namespace, extra=None):
    """A TracerProvider for one service whose finished spans are kept in memory.

    Returns (provider, recorder); `recorder.get_finished_spans()` lists the ended spans.
    """
    attrs = {"service.name": service, "service.namespace": namespace}
    attrs.update(extra or {})
    provider = TracerProvider(resource=Resource.create(attrs))
    recorder = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(recorder))
    return provider, recorder


def export_grpc(endpoint, spans):
    """Exports over OTLP/gRPC with the SDK's exporter; fails the script unless acknowledged."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=f"http://{endpoint}", insecure=True, timeout=EXPORT_TIMEOUT)
    try:
        result = exporter.export(spans)
    finally:
        exporter.shutdown()
    if result != SpanExportResult.SUCCESS:
        fail(f"OTLP/gRPC export of {len(spans)} spans to {endpoint} returned {result}")


def export_http_protobuf(endpoint, spans):
    """Exports over OTLP/HTTP protobuf with the SDK's exporter; fails unless acknowledged."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=f"http://{endpoint}/v1/traces", timeout=EXPORT_TIMEOUT)
    try:
        result = exporter.export(spans)
    finally:
        exporter.shutdown()
    if result != SpanExportResult.SUCCESS:
        fail(f"OTLP/HTTP protobuf export of {len(spans)} spans to {endpoint} returned {result}")


def spans_to_otlp_json(spans):
    """The OTLP/JSON form (a dict) of an ExportTraceServiceRequest carrying `spans`."""
    request = encode_spans(spans)
    return proto_to_otlp_json(request)


def proto_to_otlp_json(message):
    """Protobuf's JSON mapping with OTLP's exceptions: hex ids and integer enums."""
    doc = json_format.MessageToDict(message, use_integers_for_enums=True)
    _hex_ids(doc)
    return doc


def _hex_ids(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def post_json(endpoint, doc):
    """POSTs an OTLP/JSON document to /v1/traces; fails the script unless the answer is 200.

    Returns the parsed response body (an ExportTraceServiceResponse in JSON).
    """
    status, body = post(endpoint, json.dumps(doc).encode(), "application/json")
    if status != 200:
        fail(f"OTLP/JSON export to {endpoint} answered {status}: {body[:500]!r}")
    return json.loads(body) if body.strip() else {}


def post(endpoint, body, content_type, headers=None):
    """POSTs raw bytes to http://endpoint/v1/traces; returns (status, body bytes)."""
    req = urllib.request.Request(
        f"http://{endpoint}/v1/traces",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=EXPORT_TIMEOUT) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def span_record(span):
    """What the Rust side needs to check one span: ids as hex, times in nanoseconds."""
    ctx = span.get_span_context()
    parent = span.parent.span_id if span.parent is not None else None
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{parent:016x}" if parent is not None else None,
        "name": span.name,
        "service": span.resource.attributes["service.name"],
        "kind": span.kind.name.lower(),
        "start_unix_nano": span.start_time,
        "end_unix_nano": span.end_time,
        "status_code": span.status.status_code.name,
        "status_message": span.status.description,
        "events": [
            {"name": e.name, "time_unix_nano": e.timestamp, "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
    }


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
