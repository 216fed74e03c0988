"""An OTLP/HTTP trace receiver for the tests: accepts `POST /v1/traces` (binary protobuf, as the
OpenTelemetry exporters send it), decodes each request with the official protobuf definitions
(PyPI `opentelemetry-proto`) and appends every span to OUT as one JSON line:

    {"trace_id", "span_id", "parent_span_id" (hex, "" for a root), "name", "kind",
     "attributes": {key: value}, "resource": {key: value}, "status_code",
     "events": [{"name", "attributes"}, ...]}

Prints its port on the first line of stdout, then serves until killed.

    otlp_receiver.py OUT
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

out_path = sys.argv[1]


def value(v):
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces" or "protobuf" not in self.headers.get("Content-Type", ""):
            self.send_response(415 if self.path == "/v1/traces" else 404)
            self.end_headers()
            return
        req = trace_service_pb2.ExportTraceServiceRequest()
        req.ParseFromString(body)
        lines = []
        for rs in req.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    lines.append(json.dumps({
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "attributes": attrs(s.attributes),
                        "resource": resource,
                        "status_code": s.status.code,
                        "events": [{"name": e.name, "attributes": attrs(e.attributes)}
                                   for e in s.events],
                    }))
        with open(out_path, "a") as f:
            for line in lines:
                f.write(line + "\n")
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
