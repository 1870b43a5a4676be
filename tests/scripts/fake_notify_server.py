#!/usr/bin/env python3
"""Fake receivers of the controller's notifications, on loopback.

One HTTP server (stdlib, threaded) that plays four parts, by path prefix:
  /slack/<path>    a Slack incoming webhook: JSON with a non-empty "text" and
                   optional "blocks" of the documented shapes (section, context,
                   header, divider; text objects mrkdwn / plain_text)
  /webhook         the generic webhook: the body must validate against
                   schemas/notification-event.schema.json (python jsonschema),
                   X-Reconcile-Signature-256 must be the HMAC-SHA256 of the
                   body under --webhook-key, Idempotency-Key must equal the
                   body's id
  /github/...      GitHub's REST API as its OpenAPI description says
                   (tests/testdata/vectors/github-rest): the path must match a path
                   template, the method one of its operations, path
                   parameters their types, the body its requestBody schema
                   (required fields, types, enums; unknown fields refused;
                   a status's description at most 140 characters), and
                   Authorization must be "Bearer <--github-token>"
  /gitlab/api/v4/projects/:id/statuses/:sha
                   GitLab's commit status API as documented (state one of
                   pending running success failed canceled skipped; name,
                   ref, target_url, description, coverage, pipeline_id; no
                   other field), PRIVATE-TOKEN must be --gitlab-token
A request that breaks a rule is answered 422 (400 for GitLab) and recorded as
a violation; a good one is answered 200/201 and recorded.

Control (for the test):
  GET  /_requests            every good request: [{part, method, path, headers, body}]
  GET  /_violations          every refused request, why
  POST /_fail?part=P&n=N     answer the next N requests of part P with 500
  POST /_hang?part=P&s=S     hold every request of part P for S seconds (0: stop)
Writes its port to --port-file once listening.
"""
import argparse
import hashlib
import hmac
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jsonschema

lock = threading.Lock()
requests = []
violations = []
fail = {}
hang = {}
deployment_ids = iter(range(1000, 10**9))


def nullable_to_2020(schema):
    """OpenAPI 3.0's `nullable: true` as JSON Schema; drops OpenAPI-only keys."""
    if isinstance(schema, list):
        return [nullable_to_2020(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k in ("nullable", "example", "examples", "discriminator", "xml", "externalDocs",
                 "deprecated", "readOnly", "writeOnly"):
            continue
        out[k] = nullable_to_2020(v) if k not in ("enum", "required", "default") else v
    if schema.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    return out


class GitHub:
    def __init__(self, path):
        with open(path) as f:
            spec = json.load(f)
        self.routes = []
        for template, ops in spec["paths"].items():
            names = re.findall(r"{([^}]+)}", template)
            pattern = "^" + re.sub(r"{[^}]+}", "([^/]+)", template) + "$"
            self.routes.append((re.compile(pattern), template, names, ops))

    def check(self, method, path, body):
        """(template, None) when allowed, else (template or None, why)."""
        for pattern, template, names, ops in self.routes:
            m = pattern.match(path)
            if not m:
                continue
            op = ops.get(method.lower())
            if op is None:
                return template, f"{method} is not an operation of {template} ({', '.join(ops)})"
            params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "path"}
            for name, value in zip(names, m.groups()):
                p = params.get(name)
                if p is None:
                    return template, f"path parameter {name} is not described"
                if p.get("schema", {}).get("type") == "integer" and not value.isdigit():
                    return template, f"path parameter {name}={value!r} is not an integer"
            rb = op.get("requestBody")
            if rb is None:
                return template, None
            schema = rb["content"]["application/json"]["schema"]
            if body is None:
                return template, "the body is not JSON"
            try:
                jsonschema.validate(body, nullable_to_2020(schema))
            except jsonschema.ValidationError as e:
                return template, f"body: {e.message} at {list(e.absolute_path)}"
            unknown = set(body) - set(schema.get("properties", {}))
            if unknown:
                return template, f"body: fields not in the description: {sorted(unknown)}"
            if template.endswith("/statuses/{sha}") and len(body.get("description") or "") > 140:
                return template, "description longer than 140 characters"
            return template, None
        return None, f"no path of the description matches {path}"


GITLAB_STATES = {"pending", "running", "success", "failed", "canceled", "skipped"}
GITLAB_FIELDS = {"state": str, "ref": str, "name": str, "context": str, "target_url": str,
                 "description": str, "coverage": (int, float), "pipeline_id": int}


def check_slack(body):
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    unknown = set(body) - {"text", "blocks", "username", "icon_emoji", "icon_url", "channel",
                           "attachments", "mrkdwn", "unfurl_links", "thread_ts"}
    if unknown:
        return f"fields Slack does not document: {sorted(unknown)}"
    if not isinstance(body.get("text"), str) or not body["text"]:
        return "text must be a non-empty string"
    blocks = body.get("blocks", [])
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "blocks must be a list of at most 50"

    def text_object(t, where):
        if not isinstance(t, dict) or t.get("type") not in ("mrkdwn", "plain_text"):
            return f"{where}: a text object of type mrkdwn or plain_text"
        if not isinstance(t.get("text"), str) or not t["text"] or len(t["text"]) > 3000:
            return f"{where}: text of 1 to 3000 characters"
        return None

    for i, b in enumerate(blocks):
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "section":
            why = text_object(b.get("text"), f"blocks[{i}].text")
        elif kind == "context":
            els = b.get("elements")
            why = None if isinstance(els, list) and 0 < len(els) <= 10 else f"blocks[{i}].elements"
            for j, e in enumerate(els or []):
                why = why or text_object(e, f"blocks[{i}].elements[{j}]")
        elif kind == "header":
            why = text_object(b.get("text"), f"blocks[{i}].text")
        elif kind == "divider":
            why = None
        else:
            why = f"blocks[{i}]: unknown block type {kind!r}"
        if why:
            return why
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            if self.path == "/_requests":
                return self.reply(200, requests)
            if self.path == "/_violations":
                return self.reply(200, violations)
        self.reply(404, {"message": "Not Found"})

    def do_PUT(self):
        self.handle_any("PUT")

    def do_PATCH(self):
        self.handle_any("PATCH")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_POST(self):
        self.handle_any("POST")

    def handle_any(self, method):
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if url.path in ("/_fail", "/_hang"):
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            with lock:
                if url.path == "/_fail":
                    fail[q["part"]] = int(q["n"])
                else:
                    hang[q["part"]] = float(q["s"])
            return self.reply(200, {})
        part = url.path.split("/")[1] if url.path.count("/") >= 1 else ""
        if part not in ("slack", "webhook", "github", "gitlab"):
            return self.refuse(part or "?", method, 404, "no such part")
        with lock:
            hold = hang.get(part, 0)
        if hold:
            time.sleep(hold)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if method == "POST" and "application/json" not in (self.headers.get("Content-Type") or ""):
            return self.refuse(part, method, 415, "Content-Type is not application/json")
        why, answer = getattr(self, "check_" + part)(method, url.path, body, raw)
        if why:
            return self.refuse(part, method, 400 if part == "gitlab" else 422, why)
        with lock:
            n = fail.get(part, 0)
            if n > 0:
                fail[part] = n - 1
                requests.append({"part": part, "method": method, "path": url.path,
                                 "answered": 500, "headers": dict(self.headers), "body": body})
                return self.reply(500, {"message": "injected failure"})
            requests.append({"part": part, "method": method, "path": url.path, "answered": answer[0],
                             "headers": dict(self.headers), "body": body})
        self.reply(*answer)

    def refuse(self, part, method, code, why):
        with lock:
            violations.append({"part": part, "method": method, "path": urlsplit(self.path).path,
                               "why": why})
        self.reply(code, {"message": why})

    def check_slack(self, method, path, body, raw):
        if method != "POST":
            return f"{method}: incoming webhooks take POST", None
        if path != "/slack/" + args.slack_path:
            return "unknown webhook path", None
        why = check_slack(body)
        return why, (200, "ok")

    def check_webhook(self, method, path, body, raw):
        if method != "POST" or path != "/webhook":
            return "only POST /webhook", None
        want = "sha256=" + hmac.new(webhook_key, raw, hashlib.sha256).hexdigest()
        got = self.headers.get("X-Reconcile-Signature-256") or ""
        if not hmac.compare_digest(want, got):
            return "bad X-Reconcile-Signature-256", None
        try:
            jsonschema.Draft202012Validator(event_schema).validate(body)
        except jsonschema.ValidationError as e:
            return f"event: {e.message} at {list(e.absolute_path)}", None
        if self.headers.get("Idempotency-Key") != body["id"]:
            return "Idempotency-Key is not the event's id", None
        return None, (200, {})

    def check_github(self, method, path, body, raw):
        if self.headers.get("Authorization") != "Bearer " + args.github_token:
            return "Authorization is not the token", None
        if not self.headers.get("User-Agent"):
            return "GitHub requires a User-Agent", None
        template, why = github.check(method, path[len("/github"):], body)
        if why:
            return why, None
        if template.endswith("/deployments"):
            return None, (201, {"id": next(deployment_ids), "ref": body["ref"],
                                "environment": body.get("environment", "production")})
        return None, (201, {"id": next(deployment_ids), "state": body.get("state")})

    def check_gitlab(self, method, path, body, raw):
        m = re.match(r"^/gitlab/api/v4/projects/([^/]+)/statuses/([0-9a-f]{40})$", path)
        if not m or method != "POST":
            return "only POST /projects/:id/statuses/:sha", None
        if self.headers.get("PRIVATE-TOKEN") != args.gitlab_token:
            return "PRIVATE-TOKEN is not the token", None
        pid = m.group(1)
        if not (pid.isdigit() or re.match(r"^[A-Za-z0-9._-]+(%2F[A-Za-z0-9._-]+)+$", pid)):
            return f"project id {pid!r} is neither a number nor an encoded path", None
        if not isinstance(body, dict):
            return "the body is not a JSON object", None
        for k, v in body.items():
            if k not in GITLAB_FIELDS:
                return f"unknown field {k}", None
            if not isinstance(v, GITLAB_FIELDS[k]):
                return f"{k} has the wrong type", None
        if body.get("state") not in GITLAB_STATES:
            return f"state {body.get('state')!r} is not one of {sorted(GITLAB_STATES)}", None
        return None, (201, {"id": next(deployment_ids), "status": body["state"],
                            "name": body.get("name", "default")})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--openapi", required=True)
    p.add_argument("--event-schema", required=True)
    p.add_argument("--webhook-key", required=True, help="file holding the HMAC key")
    p.add_argument("--slack-path", required=True)
    p.add_argument("--github-token", required=True)
    p.add_argument("--gitlab-token", required=True)
    args = p.parse_args()
    github = GitHub(args.openapi)
    with open(args.event_schema) as f:
        event_schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(event_schema)
    with open(args.webhook_key, "rb") as f:
        webhook_key = f.read().rstrip(b"\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
