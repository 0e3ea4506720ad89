"""The seeds scenario: one trace across three services, each exporting its own way.

    test-app     GET /checkout (server) ─┬─ load-cart (internal, event "cart loaded")
                                         └─ call api-gateway (client)
    api-gateway      POST /api/orders (server) ── orders publish (producer)
    worker               orders process (consumer) ── charge card (internal, ERROR, exception)

test-app exports over OTLP/gRPC, api-gateway over OTLP/HTTP protobuf (both with the SDK's
exporters), worker over OTLP/HTTP JSON posted by this script. The trace context crosses the
service boundaries the way it does between real processes: injected into a W3C traceparent
header by the caller and extracted by the callee. Every resource carries
service.namespace=<namespace>, as a sandboxed project would.

Usage: seed.py --grpc HOST:PORT --http HOST:PORT --namespace shop-slot-2
Prints one JSON object: {"trace_id": ..., "namespace": ..., "spans": [span_record, ...]}.
"""

import argparse
import json

from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import otlp_util


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grpc", required=True, help="OTLP/gRPC address")
    ap.add_argument("--http", required=True, help="OTLP/HTTP address")
    ap.add_argument("--namespace", required=True)
    args = ap.parse_args()

    propagator = TraceContextTextMapPropagator()
    app, app_rec = otlp_util.recording_provider("test-app", args.namespace, {"service.version": "1.4.2"})
    gw, gw_rec = otlp_util.recording_provider("api-gateway", args.namespace)
    wk, wk_rec = otlp_util.recording_provider("worker", args.namespace)
    app_tracer = app.get_tracer("shop.checkout", "0.1.0")
    gw_tracer = gw.get_tracer("shop.gateway")
    wk_tracer = wk.get_tracer("shop.worker")

    with app_tracer.start_as_current_span(
        "GET /checkout",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "http.route": "/checkout"},
    ) as root:
        with app_tracer.start_as_current_span("load-cart") as load:
            load.add_event("cart loaded", {"cart.items": 3, "cart.total": 42.5})
            load.set_attribute("cache.hit", True)
        with app_tracer.start_as_current_span(
            "call api-gateway", kind=SpanKind.CLIENT, attributes={"server.address": "api-gateway"}
        ):
            to_gateway = {}
            propagator.inject(to_gateway)
            gateway_request(gw_tracer, wk_tracer, propagator, to_gateway)
        root.set_attribute("http.response.status_code", 200)

    for provider in (app, gw, wk):
        provider.shutdown()
    app_spans = app_rec.get_finished_spans()
    gw_spans = gw_rec.get_finished_spans()
    wk_spans = wk_rec.get_finished_spans()

    otlp_util.export_grpc(args.grpc, app_spans)
    otlp_util.export_http_protobuf(args.http, gw_spans)
    response = otlp_util.post_json(args.http, otlp_util.spans_to_otlp_json(wk_spans))
    rejected = response.get("partialSuccess", {}).get("rejectedSpans", 0)
    if int(rejected) != 0:
        otlp_util.fail(f"OTLP/JSON export rejected {rejected} spans: {response}")

    spans = [otlp_util.span_record(s) for s in (*app_spans, *gw_spans, *wk_spans)]
    trace_ids = {s["trace_id"] for s in spans}
    if len(trace_ids) != 1:
        otlp_util.fail(f"the scenario should make one trace, made {sorted(trace_ids)}")
    print(json.dumps({"trace_id": trace_ids.pop(), "namespace": args.namespace, "spans": spans}))


def gateway_request(gw_tracer, wk_tracer, propagator, headers):
    ctx = propagator.extract(headers)
    with gw_tracer.start_as_current_span(
        "POST /api/orders",
        context=ctx,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/api/orders"},
    ) as server:
        with gw_tracer.start_as_current_span(
            "orders publish",
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "kafka", "messaging.destination.name": "orders"},
        ):
            message_headers = {}
            propagator.inject(message_headers)
            worker_consume(wk_tracer, propagator, message_headers)
        server.set_attribute("http.response.status_code", 202)


def worker_consume(wk_tracer, propagator, headers):
    ctx = propagator.extract(headers)
    with wk_tracer.start_as_current_span(
        "orders process",
        context=ctx,
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": "orders"},
    ):
        # record_exception adds the "exception" event; the explicit status makes it an error
        # span, which Jaeger shows with error=true.
        with wk_tracer.start_as_current_span(
            "charge card", record_exception=False, set_status_on_exception=False
        ) as charge:
            charge.set_attribute("payment.provider", "acme")
            try:
                raise RuntimeError("card declined")
            except RuntimeError as err:
                charge.record_exception(err)
                charge.set_status(Status(StatusCode.ERROR, "card declined"))


if __name__ == "__main__":
    main()
