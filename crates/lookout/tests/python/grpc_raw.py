"""Sends raw bytes as an OTLP/gRPC trace Export call with grpcio and prints the outcome.

The SDK's exporter only ever sends well-formed requests, so the bad-input tests use grpcio
(which the exporter depends on) directly, with identity serializers: whatever is in the file
goes on the wire as the request message.

Usage: grpc_raw.py HOST:PORT FILE [--gzip]
Prints {"code": "OK"|"INVALID_ARGUMENT"|..., "details": "...", "response_hex": "..."}.
"""

import argparse
import json

import grpc

METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("endpoint")
    ap.add_argument("file")
    ap.add_argument("--gzip", action="store_true", help="compress the message with gzip")
    args = ap.parse_args()
    with open(args.file, "rb") as f:
        body = f.read()

    # Let grpcio send anything; the server's limit is what the tests are about.
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(args.endpoint, options=options) as channel:
        export = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        compression = grpc.Compression.Gzip if args.gzip else grpc.Compression.NoCompression
        try:
            response = export(body, timeout=20, compression=compression)
            out = {"code": "OK", "details": "", "response_hex": response.hex()}
        except grpc.RpcError as err:
            out = {"code": err.code().name, "details": err.details() or "", "response_hex": ""}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
