#!/usr/bin/python3
"""A strict OTLP/HTTP trace collector for the tests (not a test itself).

Usage: otlp_collector.py PROTO_DIR OUT_DIR
  PROTO_DIR  third_party/otlp (the official .proto files)
  OUT_DIR    writes port (the TCP port it listens on, 127.0.0.1), then per
             accepted request one JSON line in requests.jsonl, and every
             refusal (with why) in failures.txt

It generates Python modules with protoc from PROTO_DIR into a temporary
folder and parses every POST /v1/traces with them:
  application/x-protobuf  ParseFromString; the body must re-serialize to the
                          same bytes, also after DiscardUnknownFields (no
                          unknown fields)
  application/json        OTLP/JSON: traceId/spanId/parentSpanId must be hex
                          (32/16 digits; they are turned into bytes before
                          json_format.Parse(ignore_unknown_fields=False)),
                          kind and status.code integers, times strings
Every span must have a 16-byte trace id and an 8-byte span id, not all
zero, a name, and end >= start. A refused request is answered 400 and
recorded in failures.txt, which the test requires to be empty.
Needs Debian's /usr/bin/python3 with python3-protobuf and protoc.
"""
import base64
import glob
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading

proto_dir, out_dir = sys.argv[1], sys.argv[2]
gen = tempfile.mkdtemp(prefix="otlp-py-")
protos = sorted(glob.glob(os.path.join(proto_dir, "opentelemetry/proto/**/*.proto"), recursive=True))
subprocess.run(["protoc", "--python_out=" + gen, "-I", proto_dir] + protos, check=True)
sys.path.insert(0, gen)
from google.protobuf import json_format  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402

lock = threading.Lock()
HEX = {"traceId": 32, "spanId": 16, "parentSpanId": 16}


def fail(why):
    with lock:
        with open(os.path.join(out_dir, "failures.txt"), "a") as f:
            f.write(why + "\n")


def ids_to_base64(node, where):
    """OTLP/JSON ids are hex: check and turn them into proto3-JSON base64."""
    if isinstance(node, dict):
        for key, value in list(node.items()):
            if key in HEX and where.endswith("spans"):
                digits = HEX[key]
                if key == "parentSpanId" and value == "":
                    continue
                if not isinstance(value, str) or not re.fullmatch("[0-9a-f]{%d}" % digits, value):
                    raise ValueError("%s is not %d lowercase hex digits: %r" % (key, digits, value))
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            elif key in ("kind",) and where.endswith("spans") and not isinstance(value, int):
                raise ValueError("kind is not an integer: %r" % (value,))
            elif key == "status" and isinstance(value, dict) and "code" in value and not isinstance(value["code"], int):
                raise ValueError("status.code is not an integer: %r" % (value["code"],))
            elif key in ("startTimeUnixNano", "endTimeUnixNano") and not (isinstance(value, str) and value.isdigit()):
                raise ValueError("%s is not a decimal string: %r" % (key, value))
            else:
                ids_to_base64(value, key)
    elif isinstance(node, list):
        for item in node:
            ids_to_base64(item, where)


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def summary(request):
    out = {"resource": [], "spans": []}
    for rs in request.resource_spans:
        out["resource"] = {kv.key: value_of(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                if len(s.trace_id) != 16 or s.trace_id == bytes(16):
                    raise ValueError("span %r: bad trace id %s" % (s.name, s.trace_id.hex()))
                if len(s.span_id) != 8 or s.span_id == bytes(8):
                    raise ValueError("span %r: bad span id %s" % (s.name, s.span_id.hex()))
                if s.parent_span_id and len(s.parent_span_id) != 8:
                    raise ValueError("span %r: bad parent id" % s.name)
                if not s.name:
                    raise ValueError("a span without a name")
                if s.end_time_unix_nano < s.start_time_unix_nano:
                    raise ValueError("span %r ends before it starts" % s.name)
                out["spans"].append({
                    "traceId": s.trace_id.hex(), "spanId": s.span_id.hex(),
                    "parentSpanId": s.parent_span_id.hex(), "name": s.name, "kind": s.kind,
                    "start": s.start_time_unix_nano, "end": s.end_time_unix_nano,
                    "attributes": {kv.key: value_of(kv.value) for kv in s.attributes},
                    "status": {"code": s.status.code, "message": s.status.message},
                    "scope": ss.scope.name,
                })
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, body=b"", ctype="application/x-protobuf"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        ctype = self.headers.get("Content-Type", "")
        try:
            if self.path != "/v1/traces":
                raise ValueError("POST to %s, not /v1/traces" % self.path)
            request = trace_service_pb2.ExportTraceServiceRequest()
            if ctype == "application/x-protobuf":
                request.ParseFromString(body)
                if request.SerializeToString() != body:
                    raise ValueError("the body does not re-serialize to the same bytes")
                stripped = trace_service_pb2.ExportTraceServiceRequest()
                stripped.CopyFrom(request)
                stripped.DiscardUnknownFields()
                if stripped.SerializeToString() != body:
                    raise ValueError("the body has unknown fields")
            elif ctype == "application/json":
                doc = json.loads(body)
                ids_to_base64(doc, "")
                json_format.Parse(json.dumps(doc), request, ignore_unknown_fields=False)
            else:
                raise ValueError("Content-Type %r" % ctype)
            record = summary(request)
        except Exception as e:  # malformed: a failure of the test
            fail("%s %s: %s: %s" % (ctype, self.path, type(e).__name__, e))
            self.answer(400, b"bad request", "text/plain")
            return
        record["contentType"] = ctype
        record["headers"] = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-")}
        with lock:
            with open(os.path.join(out_dir, "requests.jsonl"), "a") as f:
                f.write(json.dumps(record) + "\n")
        response = trace_service_pb2.ExportTraceServiceResponse()
        if ctype == "application/json":
            self.answer(200, b"{}", "application/json")
        else:
            self.answer(200, response.SerializeToString())


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
open(os.path.join(out_dir, "failures.txt"), "a").close()
with open(os.path.join(out_dir, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(out_dir, "port.tmp"), os.path.join(out_dir, "port"))
server.serve_forever()
