#!/usr/bin/env python3
"""Writes the fuzzers' seed corpus (tests/fuzz/corpus/NAME/) from the
repository's own test data, so every seed is an input some test or vector
already holds:

  loader_fuzz            tests/testdata/{valid,invalid,environments,compose}
                         and examples/: every *.yaml / *.yml
  plan_json_fuzz         tests/testdata/plans/*.json, and their "plan" value
  state_json_fuzz        tests/testdata/state/*.json
  webhook_fuzz           GitHub's published push and ping payloads
                         (tests/testdata/vectors/github-webhooks), each behind
                         the selector byte for GitHub push / ping / form,
                         GitLab push and the generic webhook
  docker_response_fuzz   the examples of the Docker Engine API v1.41 spec
                         (GET /containers/json, /images/{name}/json, /events)
  cloud_response_fuzz    Azure's Container Apps examples (their response
                         bodies), behind two status bytes (200, 404, 500)
  plugin_protocol_fuzz   the JSON messages of docs/plugin-protocol.md
  sops_fuzz              tests/fuzz/sops/enc.* (made by tests/scripts/
                         sops_encrypt.py with the real `age`, to the fuzzing
                         identity) and getsops/sops's fixtures
                         (tests/testdata/vectors/sops), behind the format byte
  audit_log_fuzz         logs of one to three entries signed with the fuzzing
                         key (tests/fuzz/audit/fuzz-audit-key.pem) through
                         python3-cryptography, in the README's canonical form

Each file is named by the SHA-1 of its bytes (libFuzzer's own naming), so a
rerun writes the same corpus. Run from anywhere: python3 tests/fuzz/seed_corpus.py
"""
import hashlib
import json
import pathlib
import re
import urllib.parse

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fuzz" / "corpus"
MAX_SEED = 64 * 1024


def write(name, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def compact(value):
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loader():
    for base in ["tests/testdata/valid", "tests/testdata/invalid", "tests/testdata/environments",
                 "tests/testdata/compose", "examples"]:
        for p in sorted((ROOT / base).rglob("*")):
            if p.suffix in (".yaml", ".yml") and p.is_file():
                write("loader_fuzz", p.read_bytes())


def plans():
    for p in sorted((ROOT / "tests/testdata/plans").glob("*.json")):
        write("plan_json_fuzz", p.read_bytes())
        doc = json.loads(p.read_text())
        if isinstance(doc, dict) and "plan" in doc:
            write("plan_json_fuzz", compact(doc["plan"]))


def states():
    for p in sorted((ROOT / "tests/testdata/state").glob("*.json")):
        write("state_json_fuzz", p.read_bytes())


def webhooks():
    vectors = ROOT / "tests/testdata/vectors/github-webhooks"
    for kind in ("push", "ping"):
        for p in sorted((vectors / kind).glob("*.json")):
            body = p.read_bytes()
            if kind == "push":
                write("webhook_fuzz", b"\x00" + body)  # GitHub push
                write("webhook_fuzz", b"\x10payload=" + urllib.parse.quote_plus(body).encode())
                write("webhook_fuzz", b"\x01" + body)  # GitLab Push Hook
                write("webhook_fuzz", b"\x02" + body)  # generic
            else:
                write("webhook_fuzz", b"\x08" + body)  # GitHub ping
    write("webhook_fuzz", b"\x02")  # generic, empty body


def examples_of(operation):
    for response in operation.get("responses", {}).values():
        for value in (response.get("examples") or {}).values():
            yield value
        schema = response.get("schema") or {}
        if "example" in schema:
            yield schema["example"]


def docker():
    spec = yaml.safe_load((ROOT / "tests/testdata/vectors/api-models/docker-engine-swagger-v1.41.yaml").read_text())
    for path in ("/containers/json", "/images/{name}/json", "/events", "/containers/{id}/json"):
        op = spec["paths"][path]["get"]
        for example in examples_of(op):
            write("docker_response_fuzz", compact(example))
            if path == "/events" and isinstance(example, dict):
                # The stream: two messages, one per line.
                write("docker_response_fuzz", compact(example) + "\n" + compact(example) + "\n")
    for name in ("ContainerSummary", "EventMessage", "ImageInspect"):
        schema = spec["definitions"].get(name, {})
        if "example" in schema:
            write("docker_response_fuzz", compact(schema["example"]))


def clouds():
    examples = ROOT / "tests/testdata/vectors/api-models/azure-containerapps/examples"
    for p in sorted(examples.glob("*.json")):
        doc = json.loads(p.read_text())
        for status, response in sorted(doc.get("responses", {}).items()):
            body = response.get("body")
            if body is None:
                continue
            for prefix in (b"\x01\x00", b"\x03\x04", b"\x04\x00"):  # 200, 404, 500
                write("cloud_response_fuzz", prefix + compact(body).encode())


def plugin():
    text = (ROOT / "docs/plugin-protocol.md").read_text()
    for block in re.findall(r"```json\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    json.loads(line)
                except ValueError:
                    continue
                write("plugin_protocol_fuzz", line)
        try:
            write("plugin_protocol_fuzz", compact(json.loads(block)))
        except ValueError:
            pass


def sops():
    formats = {".yaml": b"\x00", ".json": b"\x01", ".env": b"\x02"}
    files = sorted((ROOT / "tests/fuzz/sops").glob("enc*"))
    files += sorted((ROOT / "tests/testdata/vectors/sops").glob("*.*"))
    for p in files:
        prefix = formats.get(p.suffix)
        if prefix is not None:
            write("sops_fuzz", prefix + p.read_bytes())


def audit():
    import base64
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key(
        (ROOT / "tests/fuzz/audit/fuzz-audit-key.pem").read_bytes(), password=None)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(raw).hexdigest()
    canon = lambda e: json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    actions = [("apply", [{"action": "create", "address": "agent.web"}], "ok"),
               ("unlock", [], "ok"),
               ("rollback", [{"action": "update", "address": "agent.web"}], "error")]
    prev = "0" * 64
    lines = []
    for seq, (action, changes, result) in enumerate(actions, start=1):
        e = {"v": 1, "seq": seq, "time": f"2026-12-04T20:0{seq}:00Z", "actor": "cli:fuzz",
             "action": action, "environment": "prod" if seq == 2 else "",
             "revision": "4f2a9c" * 6 + "4f2a" if action != "unlock" else "",
             "plan": None if action == "unlock" else "sha256:" + "ab" * 32,
             "savedPlan": None, "changes": changes,
             "result": {"status": "ok"} if result == "ok" else
                       {"status": "error", "code": "failed", "message": "health check failed"},
             "detail": "", "keyId": key_id, "prev": prev}
        body = canon(e)
        e["hash"] = hashlib.sha256(body).hexdigest()
        e["sig"] = base64.b64encode(key.sign(body)).decode()
        prev = e["hash"]
        lines.append(json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
        write("audit_log_fuzz", "\n".join(lines) + "\n")


if __name__ == "__main__":
    for f in (loader, plans, states, webhooks, docker, clouds, plugin, sops, audit):
        f()
    for d in sorted(OUT.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds")
