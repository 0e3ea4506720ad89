"""An app configured the way users configure real ones: only through OTEL_* variables.

The service name, the sandbox namespace (OTEL_RESOURCE_ATTRIBUTES=service.namespace=...) and
the endpoint all come from the environment, and spans go through the SDK's BatchSpanProcessor
as in production; shutting the provider down flushes them. This is the zero-code path DESIGN.md
promises: point OTEL_EXPORTER_OTLP_ENDPOINT at Lookout and the traces show up, namespaced.

Usage: OTEL_SERVICE_NAME=... OTEL_RESOURCE_ATTRIBUTES=... OTEL_EXPORTER_OTLP_ENDPOINT=...
       env_app.py grpc|http-protobuf
Prints {"trace_id": ..., "spans": N}.
"""

import json
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind


def main():
    if sys.argv[1] == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # Resource.create() merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; the exporter
    # reads OTEL_EXPORTER_OTLP_ENDPOINT (and, for gRPC, OTEL_EXPORTER_OTLP_INSECURE).
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("env-app")
    with tracer.start_as_current_span("GET /", kind=SpanKind.SERVER) as root:
        with tracer.start_as_current_span("SELECT items", kind=SpanKind.CLIENT, attributes={"db.system": "sqlite"}):
            pass
        trace_id = f"{root.get_span_context().trace_id:032x}"
    # force_flush returns whether the flush finished in time, so a hung server fails here.
    if not provider.force_flush(timeout_millis=20_000):
        print("error: force_flush timed out", file=sys.stderr)
        sys.exit(1)
    provider.shutdown()
    print(json.dumps({"trace_id": trace_id, "spans": 2}))


if __name__ == "__main__":
    main()
