#!/usr/bin/env python3
"""Checks for charts/reconcile, used by helm_chart_test.sh.

  validate SCHEMAS RENDERED.yaml
      every document of RENDERED (the output of `helm template`) against the
      Kubernetes v1.30 JSON Schemas in SCHEMAS (kubeconform's standalone-strict
      files, tests/testdata/vectors/kubernetes) with Draft 7; a ServiceMonitor
      against the CRD schema in SCHEMAS/crds. A kind without a schema fails.
  table README values.yaml values.schema.json
      the README's values table lists exactly the values of values.yaml (each
      key the schema describes, down to objects it closes with
      additionalProperties: false), with the defaults values.yaml holds; and
      values.yaml and the schema name the same keys.
  audit values.schema.json
      no value takes a secret: every key whose name speaks of a password,
      token, secret, credential or private key is a Secret's name
      (existingSecret, *SecretName) or the name of one of its keys (*Key).
  crd SCHEMA.json
      prints a CustomResourceDefinition (apiextensions.k8s.io/v1) serving the
      ServiceMonitor with SCHEMA as its openAPIV3Schema, the strict
      converter's "additionalProperties": false taken out again (a CRD's
      structural schema prunes unknown fields instead), and without its
      defaults (the API server 1.20 refuses its `default: ""` on the
      secret/configMap `name` fields); a test CRD, for the API server to
      check a rendered ServiceMonitor against the schema.
  query RENDERED.yaml EXPR
      prints the JSON of EXPR, a Python expression over `docs` (the documents)
      and `one(kind, name=None)` (the only document of that kind).

Exit 0 when the check passes, 1 with the reasons on stdout otherwise.
"""
import json
import os
import re
import sys

import jsonschema
import yaml


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def schema_file(schemas, doc):
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    if (api, kind) == ("monitoring.coreos.com/v1", "ServiceMonitor"):
        return os.path.join(schemas, "crds", "servicemonitor_v1.json"), None
    if (api, kind) == ("batch/v1beta1", "CronJob"):
        # The vectors hold batch/v1 only. v1beta1's CronJobSpec is v1's without
        # timeZone (added in 1.24), so v1's schema checks every field; the
        # apiVersion is checked here and by the real API server in the test.
        return os.path.join(schemas, "v1.30.1-standalone-strict", "cronjob-batch-v1.json"), "batch/v1"
    if (api, kind) == ("policy/v1beta1", "PodDisruptionBudget"):
        return os.path.join(schemas, "v1.30.1-standalone-strict",
                            "poddisruptionbudget-policy-v1.json"), "policy/v1"
    group, _, version = api.rpartition("/")
    name = kind.lower() + ("-" + group.split(".")[0] if group else "") + "-" + version
    return os.path.join(schemas, "v1.30.1-standalone-strict", name + ".json"), None


def cmd_validate(schemas, rendered):
    docs = load_docs(rendered)
    if not docs:
        print(f"{rendered}: no documents")
        return 1
    errors = 0
    for doc in docs:
        label = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')} ({doc.get('apiVersion')})"
        path, as_api = schema_file(schemas, doc)
        if not os.path.exists(path):
            print(f"{label}: no schema ({path})")
            errors += 1
            continue
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        checked = dict(doc)
        if as_api:
            checked["apiVersion"] = as_api
        if doc.get("kind") == "ServiceMonitor":
            # The CRD schema leaves apiVersion and kind free: check them here.
            if doc.get("apiVersion") != "monitoring.coreos.com/v1":
                print(f"{label}: apiVersion is not monitoring.coreos.com/v1")
                errors += 1
        found = sorted(jsonschema.Draft7Validator(schema).iter_errors(checked), key=lambda e: list(e.path))
        for e in found:
            print(f"{label}: {'.'.join(str(p) for p in e.path) or '(root)'}: {e.message}")
        errors += len(found)
        if not found:
            print(f"valid {label} against {os.path.relpath(path, schemas)}")
    return 1 if errors else 0


def leaves(value, schema, path):
    """(dotted key, default) of every value the schema describes."""
    props = schema.get("properties")
    if isinstance(value, dict) and props is not None and schema.get("additionalProperties") is False:
        for k, v in value.items():
            yield from leaves(v, props.get(k, {}), path + [k])
    else:
        yield ".".join(path), value


def schema_keys(schema, path):
    props = schema.get("properties")
    if props is not None and schema.get("additionalProperties") is False and schema.get("type") == "object":
        for k, sub in props.items():
            yield from schema_keys(sub, path + [k])
    elif path:
        yield ".".join(path)


def cmd_table(readme, values_path, schema_path):
    with open(values_path, encoding="utf-8") as f:
        values = yaml.safe_load(f)
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    want = dict(leaves(values, schema, []))
    rows = {}
    problems = []
    with open(readme, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^\| `([A-Za-z0-9_.]+)` \| `(.*)` \| (.+) \|\s*$", line)
            if not m:
                continue
            key, default, meaning = m.groups()
            if key in rows:
                problems.append(f"{readme}:{n}: `{key}` is listed twice")
            rows[key] = (n, default, meaning)
    for key, value in want.items():
        if key not in rows:
            problems.append(f"{readme}: values.yaml's `{key}` is not in the table")
            continue
        n, default, meaning = rows[key]
        if json.loads(default) != value:
            problems.append(f"{readme}:{n}: `{key}` default `{default}`, values.yaml has `{json.dumps(value)}`")
        if not meaning.strip() or "??" in meaning:
            problems.append(f"{readme}:{n}: `{key}` has no meaning")
    for key, (n, _, _) in rows.items():
        if key not in want:
            problems.append(f"{readme}:{n}: `{key}` is in the table but not in values.yaml")
    in_schema = set(schema_keys(schema, []))
    for key in sorted(in_schema - set(want)):
        problems.append(f"{schema_path}: `{key}` is not in values.yaml")
    for key in sorted(set(want) - in_schema):
        problems.append(f"{values_path}: `{key}` is not described by values.schema.json")
    for p in problems:
        print(p)
    if not problems:
        print(f"{len(want)} values: README table, values.yaml and values.schema.json agree")
    return 1 if problems else 0


SECRETISH = re.compile(r"password|passwd|token|secret|credential|private|apikey|api_key", re.I)
# Keys named like secrets that hold names, not values: each with why.
NAMES_NOT_VALUES = {
    "allowSecretEnv": "names of environment variables (pattern [A-Za-z_][A-Za-z0-9_]*)",
    "imagePullSecrets": "names of existing Secrets (the DNS name pattern)",
}


def is_reference(key):
    return key == "existingSecret" or key.endswith("SecretName") or key.endswith("Key")


def takes_text(sub):
    if sub.get("type") == "string":
        return True
    items = sub.get("items") if sub.get("type") == "array" else None
    return isinstance(items, dict) and items.get("type") == "string"


def cmd_audit(schema_path):
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    problems = []
    checked = 0

    def walk(node, path):
        nonlocal checked
        if node.get("type") == "object" and node.get("additionalProperties") is not False:
            if node.get("properties") or not path or path[-1] not in FREE_MAPS:
                problems.append(f"{'.'.join(path) or '(root)'}: an object that takes any key")
        for k, sub in (node.get("properties") or {}).items():
            p = path + [k]
            walk(sub, p)
            if not takes_text(sub):
                continue
            checked += 1
            if SECRETISH.search(k) and not is_reference(k) and k not in NAMES_NOT_VALUES:
                problems.append(f"{'.'.join(p)}: a key named like a secret that is not a reference")
            if is_reference(k) and "pattern" not in sub:
                problems.append(f"{'.'.join(p)}: a Secret's name or key name without a pattern")
        if isinstance(node.get("items"), dict):
            walk(node["items"], path + ["[]"])

    walk(schema, [])
    for p in problems:
        print(p)
    if not problems:
        print(f"{checked} text values: none takes a secret (secret-like keys are Secret names or key names)")
    return 1 if problems else 0


# Objects that are free maps by nature (labels, annotations, selectors,
# Kubernetes' own affinity and tolerations): any key, string values.
FREE_MAPS = {"annotations", "labels", "podAnnotations", "podLabels", "nodeSelector", "affinity", "[]"}


def cmd_crd(schema_path):
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)

    def unstrict(node):
        if isinstance(node, dict):
            return {k: unstrict(v) for k, v in node.items()
                    if not (k == "additionalProperties" and v is False) and k != "$schema"
                    and k != "default"}
        if isinstance(node, list):
            return [unstrict(v) for v in node]
        return node

    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList",
                      "plural": "servicemonitors", "singular": "servicemonitor"},
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": unstrict(schema)}}],
        },
    }
    print(json.dumps(crd))
    return 0


def cmd_query(rendered, expr):
    docs = load_docs(rendered)

    def one(kind, name=None):
        found = [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]
        if len(found) != 1:
            raise SystemExit(f"query: {len(found)} documents of kind {kind} {name or ''}")
        return found[0]

    print(json.dumps(eval(expr, {"docs": docs, "one": one, "len": len, "sorted": sorted})))  # noqa: S307
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "validate":
        return cmd_validate(argv[2], argv[3])
    if len(argv) == 5 and argv[1] == "table":
        return cmd_table(argv[2], argv[3], argv[4])
    if len(argv) == 3 and argv[1] == "audit":
        return cmd_audit(argv[2])
    if len(argv) == 3 and argv[1] == "crd":
        return cmd_crd(argv[2])
    if len(argv) == 4 and argv[1] == "query":
        return cmd_query(argv[2], argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
