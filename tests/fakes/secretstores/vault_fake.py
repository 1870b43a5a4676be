#!/usr/bin/env python3
"""A fake Vault / OpenBao for secret_stores_test.sh (issue #14).

Speaks the documented HTTP API of the KV version 2 secrets engine and of
AppRole auth, as far as reconcile uses them (from the Vault API docs, not
from recordings):

  GET  /v1/<mount>/data/<path>[?version=N]   X-Vault-Token
       200 {"request_id", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {"data": {...}, "metadata": {"created_time", "custom_metadata": null,
            "deletion_time": "", "destroyed": false, "version": N}}, "wrap_info": null,
            "warnings": null, "auth": null}
       404 {"errors": []} for no secret or no such version; a deleted or
           destroyed version is 404 with "data": {"data": null, "metadata":
           {..., "deletion_time": T | "destroyed": true}} (as KV v2 answers)
       403 {"errors": ["permission denied"]} for a missing, unknown, expired
           token or one whose policy does not cover the path
       503 {"errors": ["Vault is sealed"]} while sealed
  POST /v1/auth/<approle mount>/login  {"role_id", "secret_id"}
       200 {"auth": {"client_token", "accessor", "policies", "token_policies",
            "metadata": {"role_name"}, "lease_duration": TTL, "renewable": true,
            "entity_id", "token_type": "service", "orphan": true}, ...}
       400 {"errors": ["invalid role or secret ID"]}

Only the mount `secret` (KV v2) exists unless --mount adds others; a path
outside every mount is 404 {"errors": ["no handler for route ..."]}.

Control (no token needed):
  POST /_fake/put      {"path": "secret/db", "data": {...}}   a new version
  POST /_fake/delete   {"path", "version"}    soft-delete (deletion_time set)
  POST /_fake/destroy  {"path", "version"}
  POST /_fake/token    {"token", "paths": ["secret/db", ...], "ttl": S}  a token (paths: what it may read; "*": all)
  POST /_fake/approle  {"role_id", "secret_id", "paths", "ttl"}
  POST /_fake/revoke   {"token"}              (or {"all": true}: every token)
  POST /_fake/seal     {"sealed": true|false}
  GET  /_fake/log                             every API request (method, path, status, auth kind)
  GET  /_fake/problems                        requests that broke the documented API

Usage: vault_fake.py --port-file F [--mount secret ...]
"""
import argparse
import datetime
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid

lock = threading.RLock()
mounts = set()
store = {}  # (mount, path) -> {"versions": {n: {"data", "created", "deleted", "destroyed"}}, "current": n}
tokens = {}  # token -> {"paths", "expires"}
approles = {}  # role_id -> {"secret_id", "paths", "ttl"}
state = {"sealed": False}
log = []
problems = []


def now_text():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(data=None, auth=None):
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
            "data": data, "wrap_info": None, "warnings": None, "auth": auth, "mount_type": "kv"}


def split(full):
    """'secret/db' -> ('secret', 'db') for the longest mount that prefixes it."""
    for m in sorted(mounts, key=len, reverse=True):
        if full.startswith(m + "/"):
            return m, full[len(m) + 1:]
    return None, None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        pass

    def send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def record(self, status, kind, extra=None):
        entry = {"method": self.command, "path": self.path, "status": status, "auth": kind}
        if extra:
            entry["problems"] = extra
        with lock:
            log.append(entry)
            if extra:
                problems.append(entry)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_fake/log":
            with lock:
                return self.send(200, list(log))
        if url.path == "/_fake/problems":
            with lock:
                return self.send(200, list(problems))
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        found = []
        if set(query) - {"version"}:
            found.append("query: KV v2 read takes only version, got %s" % sorted(query))
        if self.headers.get("X-Vault-Request") != "true":
            found.append("header X-Vault-Request: true missing (the Vault clients send it)")
        if not url.path.startswith("/v1/"):
            self.record(404, "none", found + ["path outside /v1/"])
            return self.send(404, {"errors": []})
        if state["sealed"]:
            self.record(503, "none", found)
            return self.send(503, {"errors": ["Vault is sealed"]})
        full = url.path[len("/v1/"):]
        mount, rest = split(full)
        if mount is None or not rest.startswith("data/"):
            self.record(404, "none", found)
            return self.send(404, {"errors": ["no handler for route \"%s\". route entry not found." % full]})
        path = rest[len("data/"):]
        token = self.headers.get("X-Vault-Token") or ""
        with lock:
            t = tokens.get(token)
            allowed = t is not None and t["expires"] > time.time() and (
                "*" in t["paths"] or (mount + "/" + path) in t["paths"])
        if not allowed:
            self.record(403, "token" if token else "none", found)
            return self.send(403, {"errors": ["permission denied"]})
        version = None
        if "version" in query:
            try:
                version = int(query["version"][0])
            except ValueError:
                self.record(400, "token", found)
                return self.send(400, {"errors": ["invalid version"]})
        with lock:
            s = store.get((mount, path))
            if s is None:
                self.record(404, "token", found)
                return self.send(404, {"errors": []})
            n = version if version else s["current"]
            v = s["versions"].get(n)
            if v is None:
                self.record(404, "token", found)
                return self.send(404, {"errors": []})
            meta = {"created_time": v["created"], "custom_metadata": None,
                    "deletion_time": v["deleted"], "destroyed": v["destroyed"], "version": n}
            if v["deleted"] or v["destroyed"]:
                self.record(404, "token", found)
                return self.send(404, envelope({"data": None, "metadata": meta}))
            body = envelope({"data": dict(v["data"]), "metadata": meta})
        self.record(200, "token", found)
        self.send(200, body)

    def do_POST(self):
        raw = self.body()
        url = urllib.parse.urlsplit(self.path)
        try:
            req = json.loads(raw or b"{}")
        except ValueError:
            self.record(400, "none", ["body: not JSON"])
            return self.send(400, {"errors": ["failed to parse JSON input"]})
        if url.path.startswith("/_fake/"):
            return self.control(url.path, req)
        if url.path.startswith("/v1/auth/") and url.path.endswith("/login"):
            return self.login(req)
        self.record(405, "none", ["POST %s: not an endpoint the fake knows" % url.path])
        self.send(405, {"errors": ["unsupported operation"]})

    def login(self, req):
        found = []
        if set(req) - {"role_id", "secret_id"}:
            found.append("body: AppRole login takes role_id and secret_id, got %s" % sorted(req))
        if state["sealed"]:
            self.record(503, "approle", found)
            return self.send(503, {"errors": ["Vault is sealed"]})
        with lock:
            role = approles.get(req.get("role_id"))
            ok = role is not None and role["secret_id"] == req.get("secret_id")
            if ok:
                token = "hvs." + uuid.uuid4().hex
                tokens[token] = {"paths": role["paths"], "expires": time.time() + role["ttl"]}
        if not ok:
            self.record(400, "approle", found)
            return self.send(400, {"errors": ["invalid role or secret ID"]})
        self.record(200, "approle", found)
        self.send(200, envelope(None, {
            "client_token": token, "accessor": uuid.uuid4().hex, "policies": ["default", "reader"],
            "token_policies": ["default", "reader"], "metadata": {"role_name": "reconcile"},
            "lease_duration": role["ttl"], "renewable": True, "entity_id": str(uuid.uuid4()),
            "token_type": "service", "orphan": True}))

    def control(self, path, req):
        with lock:
            if path == "/_fake/put":
                mount, rest = split(req["path"])
                s = store.setdefault((mount, rest), {"versions": {}, "current": 0})
                s["current"] += 1
                s["versions"][s["current"]] = {"data": req["data"], "created": now_text(),
                                               "deleted": "", "destroyed": False}
                return self.send(200, {"version": s["current"]})
            if path in ("/_fake/delete", "/_fake/destroy"):
                mount, rest = split(req["path"])
                v = store[(mount, rest)]["versions"][int(req["version"])]
                if path == "/_fake/delete":
                    v["deleted"] = now_text()
                else:
                    v["destroyed"] = True
                    v["data"] = None
                return self.send(200, {})
            if path == "/_fake/token":
                tokens[req["token"]] = {"paths": req.get("paths", ["*"]),
                                        "expires": time.time() + req.get("ttl", 3600)}
                return self.send(200, {})
            if path == "/_fake/approle":
                approles[req["role_id"]] = {"secret_id": req["secret_id"], "paths": req.get("paths", ["*"]),
                                            "ttl": req.get("ttl", 3600)}
                return self.send(200, {})
            if path == "/_fake/revoke":
                if req.get("all"):
                    tokens.clear()
                else:
                    tokens.pop(req.get("token"), None)
                return self.send(200, {})
            if path == "/_fake/seal":
                state["sealed"] = bool(req.get("sealed"))
                return self.send(200, {})
        self.send(404, {"errors": ["no such control path"]})


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port-file", required=True)
    p.add_argument("--mount", action="append", default=[])
    args = p.parse_args()
    mounts.update(args.mount or ["secret"])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
