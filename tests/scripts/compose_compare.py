#!/usr/bin/env python3
"""Helpers of compose_import_test.sh (not a test by itself).

  images FILE                      image names the compose file runs, one a line
                                   ("build SERVICE" for services with build:)
  prepare FILE WORKDIR             side files the stack needs that were not copied
                                   (secret files, build contexts, bind sources)
  snapshot KIND PROJECT OUT        inspect the containers of a compose project
                                   (KIND compose) or of agents carrying the
                                   annotation of a tree (KIND reconcile, PROJECT
                                   is the tree) into OUT, keyed by service
  secrets TREE SNAPSHOT WORKDIR DIR write the secret files the imported agents
                                   reference, with the values compose used
  debuild TREE IMAGE               turn build agents into image agents (their
                                   contexts are not copied); prints each one
  compare COMPOSE RECONCILE        field by field; prints every difference;
                                   exit 1 when one is not an expected one

Talks to the Docker Engine with `docker inspect` (the Engine API) only.
"""
import json
import os
import subprocess
import sys

import yaml


def load_compose(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def cmd_images(path):
    doc = load_compose(path)
    for name, svc in (doc.get("services") or {}).items():
        svc = svc or {}
        if "build" in svc:
            print("build " + name)
        elif "image" in svc and "$" not in str(svc["image"]):
            print("image " + str(svc["image"]))


def cmd_prepare(path, work):
    doc = load_compose(path)
    for name, sec in (doc.get("secrets") or {}).items():
        if sec and "file" in sec:
            p = os.path.join(work, sec["file"])
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write("pw-" + os.urandom(6).hex() + "\n")
    for name, svc in (doc.get("services") or {}).items():
        svc = svc or {}
        b = svc.get("build")
        if b is not None:
            ctx = b if isinstance(b, str) else b.get("context", ".")
            os.makedirs(os.path.join(work, ctx), exist_ok=True)
        for v in svc.get("volumes") or []:
            src = v.split(":")[0] if isinstance(v, str) and ":" in v else (
                v.get("source") if isinstance(v, dict) and v.get("type") == "bind" else None)
            if not src or not src.startswith("."):
                continue
            p = os.path.normpath(os.path.join(work, src))
            if os.path.exists(p):
                continue
            if "." in os.path.basename(p):
                os.makedirs(os.path.dirname(p), exist_ok=True)
                open(p, "w").close()
            else:
                os.makedirs(p, exist_ok=True)


def inspect(ids):
    if not ids:
        return []
    out = subprocess.run(["docker", "inspect"] + ids, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def ps(filters):
    args = ["docker", "ps", "-aq", "--no-trunc"]
    for f in filters:
        args += ["--filter", f]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return out.stdout.split()


def tree_agents(tree):
    """agent name -> (service, document) of an imported tree."""
    agents = {}
    for name in sorted(os.listdir(tree)):
        if not name.startswith("agent-"):
            continue
        with open(os.path.join(tree, name)) as f:
            doc = yaml.safe_load(f)
        svc = doc["metadata"].get("annotations", {}).get("compose.service", doc["metadata"]["name"])
        agents[doc["metadata"]["name"]] = (svc, doc, os.path.join(tree, name))
    return agents


def cmd_snapshot(kind, project, out):
    result = {}
    if kind == "compose":
        for c in inspect(ps(["label=com.docker.compose.project=" + project])):
            result[c["Config"]["Labels"]["com.docker.compose.service"]] = c
    else:
        for agent, (svc, _, _) in tree_agents(project).items():
            cs = inspect(ps(["label=reconcile.dev/agent=" + agent]))
            if cs:
                result[svc] = cs[0]
    with open(out, "w") as f:
        json.dump(result, f)


def cmd_secrets(tree, snapshot, work, secrets_dir):
    with open(snapshot) as f:
        snap = json.load(f)
    os.makedirs(secrets_dir, exist_ok=True)
    for agent, (svc, doc, _) in tree_agents(tree).items():
        spec = doc["spec"]
        env = {}
        if svc in snap:
            for kv in snap[svc]["Config"]["Env"] or []:
                k, _, v = kv.partition("=")
                env[k] = v
        for var, ref in (spec.get("secretEnv") or {}).items():
            with open(os.path.join(secrets_dir, ref["file"]), "w") as f:
                f.write(env.get(var, ""))
        for name, ref in (spec.get("secretFiles") or {}).items():
            compose = load_compose(os.path.join(work, os.environ["COMPOSE_FILE_NAME"]))
            src = os.path.join(work, compose["secrets"][name]["file"])
            with open(src) as s, open(os.path.join(secrets_dir, ref["file"]), "w") as f:
                f.write(s.read())


def cmd_debuild(tree, image):
    for agent, (svc, doc, path) in tree_agents(tree).items():
        spec = doc["spec"]
        if "build" not in spec:
            continue
        del spec["build"]
        spec.pop("registry", None)
        spec = {"image": image, **spec}
        doc["spec"] = spec
        with open(path, "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
        print(svc)
    reg = os.path.join(tree, "registry-images.yaml")
    if os.path.exists(reg):
        os.remove(reg)


NS = 1_000_000_000
HEALTH_DEFAULTS = {"Interval": 30 * NS, "Timeout": 30 * NS, "Retries": 3, "StartPeriod": 0}


def strip_project(name, project):
    for sep in ("_", "-"):
        if name.startswith(project + sep):
            return name[len(project) + 1:]
    return name


def view(c, project, service):
    """The fields compared, normalized where both tools mean the same."""
    cfg, host = c["Config"], c["HostConfig"]
    v = {}
    v["image"] = c["Image"]  # the image id: the name as written may be normalized
    v["entrypoint"] = cfg.get("Entrypoint")
    v["cmd"] = cfg.get("Cmd")
    v["env"] = sorted(cfg.get("Env") or [])
    mounts = []
    for m in c.get("Mounts") or []:
        if m["Type"] == "volume":
            src = strip_project(m.get("Name", ""), project)
            if len(src) == 64:  # an anonymous volume
                src = "<anonymous>"
        else:
            src = m.get("Source", "")
        mounts.append((m["Destination"], m["Type"], src, m.get("RW", True)))
    v["mounts"] = sorted(mounts)
    ports = {}
    for key, binds in (host.get("PortBindings") or {}).items():
        ports[key] = sorted((b.get("HostIp") or "0.0.0.0", b.get("HostPort") or "0")
                            for b in binds or [])
    v["ports"] = ports
    v["exposed"] = sorted((cfg.get("ExposedPorts") or {}).keys())
    nets = {}
    for name, n in (c["NetworkSettings"].get("Networks") or {}).items():
        nets[strip_project(name, project)] = service in (n.get("Aliases") or [])
    v["networks"] = nets
    rp = host.get("RestartPolicy") or {}
    v["restart"] = ((rp.get("Name") or "no"), rp.get("MaximumRetryCount") or 0)
    hc = cfg.get("Healthcheck")
    if hc and hc.get("Test"):
        test = hc["Test"]
        if test[0] == "CMD-SHELL":
            test = ["CMD", "/bin/sh", "-c"] + test[1:]
        v["health"] = {"Test": test}
        for k, d in HEALTH_DEFAULTS.items():
            v["health"][k] = hc.get(k) or d
    else:
        v["health"] = None
    v["user"] = cfg.get("User") or ""
    caps = lambda l: sorted(x[4:] if x.startswith("CAP_") else x for x in (l or []))
    v["capAdd"] = caps(host.get("CapAdd"))
    v["capDrop"] = caps(host.get("CapDrop"))
    v["readOnly"] = bool(host.get("ReadonlyRootfs"))
    v["memory"] = host.get("Memory") or 0
    v["nanoCpus"] = host.get("NanoCpus") or 0
    return v


def cmd_compare(compose_snap, reconcile_snap, cproject, rproject, skipped):
    with open(compose_snap) as f:
        cs = json.load(f)
    with open(reconcile_snap) as f:
        rs = json.load(f)
    skipped = set(s for s in skipped.split(",") if s)
    unexpected = 0
    for svc in sorted(set(cs) | set(rs)):
        if svc in skipped:
            print(f"  {svc}: SKIPPED (build: its context is not copied; both ran the stand-in image)")
        if svc not in cs or svc not in rs:
            print(f"  {svc}: only {'compose' if svc in cs else 'reconcile'} has a container  UNEXPECTED")
            unexpected += 1
            continue
        a, b = view(cs[svc], cproject, svc), view(rs[svc], rproject, svc)
        same = []
        for field in a:
            if svc in skipped and field in ("image",):
                continue
            if a[field] == b[field]:
                same.append(field)
                continue
            why = expected_difference(field, a[field], b[field])
            tag = f"expected: {why}" if why else "UNEXPECTED"
            if not why:
                unexpected += 1
            print(f"  {svc}.{field}: compose={json.dumps(a[field])} reconcile={json.dumps(b[field])}  {tag}")
        print(f"  {svc}: same {', '.join(same)}")
    return 1 if unexpected else 0


def expected_difference(field, a, b):
    if field == "mounts":
        # Anonymous volumes become named ones; secret files are mounted by
        # each tool its own way at the same path.
        da = {m[0]: m for m in a}
        db = {m[0]: m for m in b}
        if set(da) != set(db):
            return None
        for dest in da:
            x, y = da[dest], db[dest]
            if x == tuple(y) or list(x) == list(y):
                continue
            if x[2] == "<anonymous>" and y[1] == "volume":
                continue
            if dest.startswith("/run/secrets/"):
                continue
            return None
        return "anonymous volumes are named; secret files are mounted differently"
    if field == "networks":
        # compose adds its default network name; both must carry the alias
        if set(a) == set(b) and all(b.values()):
            return None
        return None
    if field == "exposed":
        extra = set(b) - set(a)
        if set(a) <= set(b) and len(extra) == 1:
            return ("reconcile records the agent's port (" + extra.pop() +
                    ") as exposed; the file gives none, the import chose it")
        return None
    return None


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "images":
        cmd_images(*args)
    elif cmd == "prepare":
        cmd_prepare(*args)
    elif cmd == "snapshot":
        cmd_snapshot(*args)
    elif cmd == "secrets":
        cmd_secrets(*args)
    elif cmd == "debuild":
        cmd_debuild(*args)
    elif cmd == "compare":
        sys.exit(cmd_compare(*args))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
