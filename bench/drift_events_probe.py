#!/usr/bin/env python3
"""Timing helper of bench/drift_events_bench.sh (loopback only).

  stop  --sock SOCK --status URL --agent NAME --seen KEY [--limit S]
      Stops the agent's container through the Engine API (POST
      /containers/{id}/stop?t=1, as `docker stop -t 1`), then polls the
      controller's /api/v1/status every 5 ms until the drift is seen (KEY:
      "event": driftWatch.eventPasses grew; "scan": a drift pass finished
      after the stop) and then until the agent's endpoint answers GET /
      again. Prints one JSON line {"seen_ms": .., "healthy_ms": ..}, both
      measured from just before the stop call.
  start --sock SOCK --id ID --port PORT
      The container's own start: POST /containers/{id}/start of a stopped
      container until its /health answers; prints {"ms": ..}.
"""
import argparse
import http.client
import json
import socket
import sys
import time
import urllib.request


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("docker")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def engine(sock, method, path):
    c = UnixHTTP(sock)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def get(url, timeout=1.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def status(url):
    return json.loads(get(url))


def container_id(sock, name):
    _, body = engine(sock, "GET", "/v1.41/containers/json?all=1")
    for c in json.loads(body):
        if "/" + name in c["Names"]:
            return c["Id"]
    return ""


def answers(endpoint):
    try:
        return '"greeting"' in get(endpoint + "/", timeout=0.5)
    except Exception:
        return False


def cmd_stop(a):
    before = status(a.status)
    passes0 = before["passes"]
    events0 = before["driftWatch"]["eventPasses"]
    cid = container_id(a.sock, a.agent)
    t0 = time.monotonic()
    engine(a.sock, "POST", "/v1.41/containers/%s/stop?t=1" % cid)
    deadline = t0 + a.limit
    seen = None
    while time.monotonic() < deadline:
        s = status(a.status)
        if a.seen == "event" and s["driftWatch"]["eventPasses"] > events0:
            seen = time.monotonic()
            break
        if (a.seen == "scan" and s["passes"] > passes0 and s["lastPass"]
                and s["lastPass"]["kind"] == "drift"):
            seen = time.monotonic()
            break
        time.sleep(0.005)
    if seen is None:
        sys.exit("drift not seen within %s s" % a.limit)
    while time.monotonic() < deadline:
        s = status(a.status)
        eps = [x["endpoints"][0] for x in s["agents"]
               if x["name"] == a.agent and x["endpoints"]]
        if eps and answers(eps[0]) and container_id(a.sock, a.agent) != "":
            # The old container may still answer nowhere; require a running one.
            _, body = engine(a.sock, "GET", "/v1.41/containers/json")
            if any("/" + a.agent in c["Names"] for c in json.loads(body)):
                healthy = time.monotonic()
                print(json.dumps({"seen_ms": round((seen - t0) * 1000, 1),
                                  "healthy_ms": round((healthy - t0) * 1000, 1)}))
                return
        time.sleep(0.005)
    sys.exit("not healthy again within %s s" % a.limit)


def cmd_start(a):
    t0 = time.monotonic()
    engine(a.sock, "POST", "/v1.41/containers/%s/start" % a.id)
    while time.monotonic() < t0 + 30:
        try:
            if get("http://127.0.0.1:%d/health" % a.port, timeout=0.5):
                print(json.dumps({"ms": round((time.monotonic() - t0) * 1000, 1)}))
                return
        except Exception:
            pass
        time.sleep(0.002)
    sys.exit("container did not answer")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stop")
    s.add_argument("--sock", required=True)
    s.add_argument("--status", required=True)
    s.add_argument("--agent", required=True)
    s.add_argument("--seen", choices=["event", "scan"], required=True)
    s.add_argument("--limit", type=float, default=120)
    t = sub.add_parser("start")
    t.add_argument("--sock", required=True)
    t.add_argument("--id", required=True)
    t.add_argument("--port", type=int, required=True)
    a = p.parse_args()
    {"stop": cmd_stop, "start": cmd_start}[a.cmd](a)


if __name__ == "__main__":
    main()
