"""What the three fake cloud servers share: the HTTP server, the request log,
the model check of every API request, and the control API under /_fake/.

A fake is a subclass of Fake that sets `cloud` and implements api(req) (the
cloud's API, after the model check) and, optionally, extra(req) (token and
metadata endpoints, answered before the API). See README.md in this folder.
"""

import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import model_check

MAX_BODY = 8 * 1024 * 1024  # a bigger request body is answered 413
REDACTED = "<redacted>"
SECRET_HEADERS = {"authorization", "x-amz-security-token", "x-identity-header", "metadata-flavor-token"}
SECRET_FORM_FIELDS = {"client_secret", "assertion", "client_assertion", "refresh_token", "password"}


class Request:
    def __init__(self, method, target, headers, body):
        self.method = method
        self.target = target
        u = urllib.parse.urlsplit(target)
        self.path = u.path
        self.raw_query = u.query
        self.query = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.operation = None
        self.problems = []
        self.kind = "api"  # api | auth | control
        self.log_body = None  # what the log shows of the body (secrets redacted)

    def header(self, name):
        return self.headers.get(name.lower(), "")

    def json(self):
        if not self.body:
            return {}
        try:
            v = json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        return v

    def form(self):
        try:
            return {k: v[0] for k, v in urllib.parse.parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}
        except UnicodeDecodeError:
            return {}

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[0] if v else default


class Response:
    def __init__(self, status, body=None, headers=None, content_type="application/json"):
        self.status = status
        self.headers = list(headers or [])
        if body is None:
            self.body = b""
        elif isinstance(body, (bytes, bytearray)):
            self.body = bytes(body)
        elif isinstance(body, str):
            self.body = body.encode("utf-8")
        else:
            self.body = json.dumps(body).encode("utf-8")
        if self.body and content_type and not any(h[0].lower() == "content-type" for h in self.headers):
            self.headers.append(("Content-Type", content_type))


def now_rfc3339(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


class Fake:
    cloud = None  # "aws" | "gcp" | "azure"
    name = "fake"

    def __init__(self, args):
        self.args = args
        self.lock = threading.RLock()
        self.entries = []
        self.seq = 0
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None
        # Injected faults: a list of {"kind", "count", "status", "retryAfter", "operation"}.
        self.faults = []
        # The next asynchronous operation that starts fails with this message.
        self.fail_next = None
        self.ready_after = args.ready_after  # polls (describes / operation reads) before done
        self.ready_delay = args.ready_delay  # seconds before done
        self.retry_after = args.retry_after  # Retry-After on async answers and throttling
        self.base_url = None

    # ---- to override
    def extra(self, req):
        """Token / metadata endpoints; returns a Response or None."""
        return None

    def authenticate(self, req):
        """Returns None when the API request is authenticated, else a Response."""
        return None

    def api(self, req):
        raise NotImplementedError

    def throttle_response(self, fault):
        raise NotImplementedError

    def server_error_response(self, fault):
        raise NotImplementedError

    def invalid_response(self, req):
        raise NotImplementedError

    def auth_fault_response(self, fault):
        """An injected fault on a token / metadata / credentials endpoint."""
        throttle = fault["kind"] == "throttle"
        return Response(
            fault["status"] or (429 if throttle else 503),
            {"error": "temporarily_unavailable", "error_description": "%s (injected by the fake)" % ("too many requests" if throttle else "server error")},
            [("Retry-After", fault["retryAfter"])],
        )

    def redact_body(self, req):
        """What the log shows of an API request's body."""
        return req.json() if req.body else None

    # ---- the pieces every fake uses
    def done(self, started, polls):
        """An async operation that started at `started` and was read `polls` times."""
        return polls >= self.ready_after and time.time() - started >= self.ready_delay

    def take_fault(self, req, scope="api"):
        with self.lock:
            for f in self.faults:
                if f["scope"] != scope:
                    continue
                if f.get("operation") and f["operation"] != req.operation:
                    continue
                f["count"] -= 1
                if f["count"] <= 0:
                    self.faults.remove(f)
                return dict(f)
        return None

    def take_fail_next(self):
        with self.lock:
            f, self.fail_next = self.fail_next, None
            return f

    def handle(self, req):
        if req.path.startswith("/_fake/"):
            req.kind = "control"
            return self.control(req)
        resp = self.extra(req)
        if resp is not None:
            if req.kind == "api":
                req.kind = "auth"
            if req.kind == "auth":
                fault = self.take_fault(req, "auth")
                if fault is not None:
                    return self.auth_fault_response(fault)
            return resp
        result = model_check.check(self.cloud, req.method, req.path, req.query, req.headers, req.body)
        req.operation = result.operation
        req.problems = list(result.problems)
        req.path_params = result.path_params
        req.log_body = self.redact_body(req)
        bad_auth = self.authenticate(req)
        if bad_auth is not None:
            return bad_auth
        fault = self.take_fault(req)
        if fault is not None:
            if fault["kind"] == "throttle":
                return self.throttle_response(fault)
            return self.server_error_response(fault)
        if req.problems:
            return self.invalid_response(req)
        with self.lock:
            return self.api(req)

    def control(self, req):
        p = req.path[len("/_fake/") :].strip("/")
        body = req.json()
        if not isinstance(body, dict):
            return Response(400, {"error": "control body must be a JSON object"})
        if p == "log" and req.method == "GET":
            with self.lock:
                return Response(200, list(self.entries))
        if p == "problems" and req.method == "GET":
            with self.lock:
                return Response(200, [e for e in self.entries if e["problems"]])
        if p == "inject" and req.method == "POST":
            kind = body.get("kind", "throttle")
            if kind not in ("throttle", "error"):
                return Response(400, {"error": "kind must be throttle or error"})
            if body.get("scope", "api") not in ("api", "auth"):
                return Response(400, {"error": "scope must be api or auth"})
            fault = {
                "kind": kind,
                "count": int(body.get("count", 1)),
                "status": int(body.get("status", 0)) or None,
                "retryAfter": str(body.get("retryAfter", self.retry_after)),
                "operation": body.get("operation"),
                "scope": body.get("scope", "api"),
            }
            with self.lock:
                self.faults.append(fault)
            return Response(200, fault)
        if p == "fail-next" and req.method == "POST":
            with self.lock:
                self.fail_next = {"message": body.get("message", "injected failure"), "code": body.get("code")}
            return Response(200, self.fail_next)
        if p == "config" and req.method == "POST":
            with self.lock:
                if "readyAfter" in body:
                    self.ready_after = int(body["readyAfter"])
                if "readyDelay" in body:
                    self.ready_delay = float(body["readyDelay"])
                if "retryAfter" in body:
                    self.retry_after = str(body["retryAfter"])
            return Response(200, {"readyAfter": self.ready_after, "readyDelay": self.ready_delay, "retryAfter": self.retry_after})
        if p == "reset-log" and req.method == "POST":
            with self.lock:
                self.entries = []
            return Response(200, {})
        if p == "state" and req.method == "GET":
            with self.lock:
                return Response(200, self.state())
        return Response(404, {"error": "unknown control endpoint %s %s" % (req.method, req.path)})

    def state(self):
        return {}

    def record(self, req, resp, started):
        if req.kind == "control":
            return
        headers = {}
        for k, v in req.headers.items():
            headers[k] = REDACTED if k in SECRET_HEADERS else v
        body = req.log_body
        if body is None and req.body:
            if req.kind == "auth":
                form = req.form()
                body = {k: (REDACTED if k in SECRET_FORM_FIELDS else v) for k, v in form.items()} if form else None
            else:
                body = "<%d bytes>" % len(req.body)
        with self.lock:
            self.seq += 1
            entry = {
                "seq": self.seq,
                "time": now_rfc3339(started),
                "cloud": self.cloud,
                "kind": req.kind,
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "headers": headers,
                "body": body,
                "operation": req.operation,
                "status": resp.status,
                "problems": req.problems,
            }
            self.entries.append(entry)
            if self.log_file:
                self.log_file.write(json.dumps(entry) + "\n")
                self.log_file.flush()


def redact_paths(value, paths):
    """A copy of `value` with the members at `paths` ("a.b[0].c") replaced by REDACTED."""
    import copy

    value = copy.deepcopy(value)
    for p in paths:
        parts = []
        for seg in p.replace("]", "").split("."):
            for i, piece in enumerate(seg.split("[")):
                parts.append(int(piece) if i else piece)
        cur = value
        try:
            for k in parts[:-1]:
                cur = cur[k]
            if cur.get(parts[-1]) is not None:
                cur[parts[-1]] = REDACTED
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
    return value


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "reconcile-fake"
    sys_version = ""

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # quiet: the JSON log is the log
        pass

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ValueError("truncated chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise OverflowError()
                chunks.append(self.rfile.read(size))
                self.rfile.readline(8)
            return b"".join(chunks)
        n = self.headers.get("Content-Length")
        if n is None:
            return b""
        n = int(n)
        if n < 0:
            raise ValueError("negative Content-Length")
        if n > MAX_BODY:
            raise OverflowError()
        return self.rfile.read(n)

    def _any(self):
        fake = self.server.fake
        started = time.time()
        try:
            body = self._read_body()
        except OverflowError:
            self.close_connection = True
            return self._send(Response(413, {"error": "request body over %d bytes" % MAX_BODY}))
        except ValueError as e:
            self.close_connection = True
            return self._send(Response(400, {"error": "bad request body: %s" % e}))
        headers = {}
        for k, v in self.headers.items():
            headers[k] = v if k.lower() not in headers else headers[k.lower()] + "," + v
        req = Request(self.command, self.path, headers, body)
        try:
            resp = fake.handle(req)
        except Exception as e:  # a bug in the fake: answer 500 and say so in the log
            import traceback

            traceback.print_exc()
            req.problems = req.problems + ["fake: internal error %s: %s" % (type(e).__name__, e)]
            resp = Response(500, {"error": "fake internal error: %s" % e})
        fake.record(req, resp, started)
        self._send(resp)

    def _send(self, resp):
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any


def arg_parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--port-file", required=True, help="write the port it listens on (127.0.0.1) to this file")
    p.add_argument("--log", help="append one JSON line per request to this file")
    p.add_argument("--ready-after", type=int, default=2, help="an async operation is done on its N-th status read (default 2)")
    p.add_argument("--ready-delay", type=float, default=0.0, help="and not before this many seconds (default 0)")
    p.add_argument("--retry-after", default="1", help="Retry-After on async and throttled answers, in seconds (default 1)")
    return p


def serve(fake_class, args):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake = fake_class(args)
    port = server.server_address[1]
    fake.base_url = "http://127.0.0.1:%d" % port
    server.fake = fake
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, args.port_file)  # readers never see a half-written file
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(fake_class, description, add_args=None, argv=None):
    p = arg_parser(description)
    if add_args:
        add_args(p)
    args = p.parse_args(argv)
    sys.exit(serve(fake_class, args))
