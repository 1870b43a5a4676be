#!/usr/bin/env python3
"""Timing helpers of bench/controller_bench.sh (loopback only).

  probe   --status URL --agent NAME --expect TEXT [--t0-ns NS]
          [--webhook URL --secret-file F --after REV]
      Waits until the agent's endpoint, as the controller's /api/v1/status
      lists it, answers GET / with "greeting":"TEXT"; prints one JSON line
      {"ms": ...} measured from --t0-ns (wall clock, ns, e.g. `date +%s%N`
      right after the push) or, with --webhook, from just before a signed
      GitHub push webhook (X-Hub-Signature-256) is sent.
  phases  --log FILE --from-ns NS --to-ns NS --rev REV --agent NAME
      Reads the controller's JSON log (-v --log-format json) and prints the
      times (ms after --from-ns) of the steps of the pass that applied REV:
      webhook answered, ref check saw REV, change started, container
      started (first health probe), old container being removed (the new
      one is healthy), change succeeded, pass finished.
  stats   FILE COLUMN
      Median, min, max and count of a numeric column of a TSV file with a
      header line.
"""
import argparse
import datetime
import hashlib
import hmac
import json
import statistics
import sys
import time
import urllib.request


def get(url, timeout=1.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def endpoint_of(status_url, agent):
    s = json.loads(get(status_url))
    for a in s.get("agents", []):
        if a.get("name") == agent and a.get("endpoints"):
            return a["endpoints"][0]
    return ""


def probe(args):
    t0 = args.t0_ns
    if args.webhook:
        secret = open(args.secret_file, "rb").read().rstrip(b"\n")
        body = json.dumps({"ref": "refs/heads/main", "after": args.after,
                           "repository": {"full_name": "local/deploy"}}).encode()
        sig = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(args.webhook, data=body, method="POST", headers={
            "X-GitHub-Event": "push", "X-Hub-Signature-256": sig,
            "Content-Type": "application/json"})
        t0 = time.time_ns()
        with urllib.request.urlopen(req, timeout=5) as r:
            if r.status != 202:
                sys.exit(f"webhook answered {r.status}")
    want = f'"greeting":"{args.expect}"'
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        try:
            ep = endpoint_of(args.status, args.agent)
            if ep and want in get(ep + "/", timeout=0.5):
                print(json.dumps({"ms": (time.time_ns() - t0) / 1e6, "t0_ns": t0}))
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.005)
    sys.exit(f"agent {args.agent} did not answer {args.expect} within {args.timeout} s")


def log_ns(line):
    t = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000) * 1_000_000


def phases(args):
    out = {}
    agent = "agent." + args.agent + ": "
    for raw in open(args.log, encoding="utf-8", errors="replace"):
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        ns = log_ns(line)
        if ns < args.from_ns - 1_000_000 or ns > args.to_ns + 1_000_000:
            continue
        msg = line.get("msg", "")
        ms = round((ns - args.from_ns) / 1e6)

        def first(key):
            out.setdefault(key, ms)
        if msg.startswith("webhook: POST /hooks/github -> 202"):
            first("webhook")
        elif msg.startswith("source: at " + args.rev):
            first("check")
        elif msg.startswith(agent) and msg.endswith("started"):
            first("change_started")
        elif msg.startswith(agent + "waiting for health"):
            first("container_started")
        elif msg.startswith(agent + "removing container"):
            first("removing_old")
        elif msg.startswith(agent) and msg.endswith(" ms)"):
            first("change_done")
        elif msg.startswith("apply pass at " + args.rev):
            first("pass_done")
    print(json.dumps(out))


def stats(args):
    rows = [l.rstrip("\n").split("\t") for l in open(args.file)]
    col = rows[0].index(args.column)
    vals = [float(r[col]) for r in rows[1:] if len(r) > col and r[col] not in ("", "-")]
    if not vals:
        print("n=0")
        return
    print(f"median={statistics.median(vals):.0f} min={min(vals):.0f} "
          f"max={max(vals):.0f} n={len(vals)}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("probe")
    a.add_argument("--status", required=True)
    a.add_argument("--agent", required=True)
    a.add_argument("--expect", required=True)
    a.add_argument("--t0-ns", type=int, default=0)
    a.add_argument("--webhook")
    a.add_argument("--secret-file")
    a.add_argument("--after", default="")
    a.add_argument("--timeout", type=float, default=90)
    b = sub.add_parser("phases")
    b.add_argument("--log", required=True)
    b.add_argument("--from-ns", type=int, required=True)
    b.add_argument("--to-ns", type=int, required=True)
    b.add_argument("--rev", required=True)
    b.add_argument("--agent", required=True)
    c = sub.add_parser("stats")
    c.add_argument("file")
    c.add_argument("column")
    args = p.parse_args()
    {"probe": probe, "phases": phases, "stats": stats}[args.cmd](args)


if __name__ == "__main__":
    main()
