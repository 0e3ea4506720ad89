"""Records one of every OpenTelemetry instrument with the real Python SDK and exports the
collected metrics once, with the SDK's own OTLP exporter, to the given endpoint.

The ingest crate's `python_sdk_metrics` test runs it against an in-process OTLP server with a
recording metrics sink and checks the exact Prometheus series the export became. Metrics are
collected by an InMemoryMetricReader and handed to the exporter directly, so the script knows
the export was acknowledged (a periodic reader would only log a failure).

Instruments (cumulative temporality, the OTLP exporters' default):
    requests             Counter              unit {request}  3 with http.route=/cart
    queue.size           UpDownCounter        unit {item}     5 - 2
    temperature          Gauge                unit Cel        21.5
    cpu.utilization      ObservableGauge      unit 1          0.25
    http.server.duration Histogram            unit ms         5, 15, 250 (default buckets)
    payload.size         Histogram            unit By         1024, exponential buckets (a View)

Output: one JSON line {"result": "SUCCESS"} (anything else exits non-zero).

Usage: export_metrics.py --protocol grpc|http-protobuf --endpoint URL
"""

import argparse
import json
import sys

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.metrics import Observation
from opentelemetry.sdk.resources import Resource


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol", choices=["grpc", "http-protobuf"], required=True)
    ap.add_argument("--endpoint", required=True, help="gRPC: http://host:port; HTTP: the full URL")
    args = ap.parse_args()

    resource = Resource.create(
        {
            "service.name": "shop-api",
            "service.namespace": "demo",
            "service.instance.id": "instance-1",
            "deployment.environment": "test",
        }
    )
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("shop.instrumentation", "1.2.3")

    meter.create_counter("requests", unit="{request}", description="Requests served.").add(
        3, {"http.route": "/cart"}
    )
    queue = meter.create_up_down_counter("queue.size", unit="{item}", description="Items queued.")
    queue.add(5)
    queue.add(-2)
    meter.create_gauge("temperature", unit="Cel", description="Room temperature.").set(21.5)
    meter.create_observable_gauge(
        "cpu.utilization",
        callbacks=[lambda _options: [Observation(0.25)]],
        unit="1",
        description="CPU in use.",
    )
    duration = meter.create_histogram("http.server.duration", unit="ms", description="Request time.")
    for v in (5, 15, 250):
        duration.record(v, {"http.route": "/cart"})
    meter.create_histogram("payload.size", unit="By").record(1024)

    data = reader.get_metrics_data()
    if args.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=args.endpoint, insecure=True, timeout=20)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=args.endpoint, timeout=20)
    try:
        result = exporter.export(data)
    finally:
        exporter.shutdown()
        provider.shutdown()
    print(json.dumps({"result": result.name}), flush=True)
    if result != MetricExportResult.SUCCESS:
        sys.exit(1)


if __name__ == "__main__":
    main()
