"""Checks one HTTP request against a cloud's official API model.

    problems = check(cloud, method, path, query, headers, body).problems

`cloud` is "aws" (App Runner, botocore service model), "gcp" (Cloud Run
Admin API v2 discovery document) or "azure" (Microsoft.App ContainerApps ARM
swagger). `query` is a dict of name -> list of values (as
urllib.parse.parse_qs gives), `headers` a dict (any case), `body` bytes or
str. The result names the operation found and lists every problem: unknown
operation / path / method, missing required members, unknown members, wrong
types, enum values, patterns / lengths / minimum / maximum where the model
states them, output-only (read-only) fields sent on input.

The models are loaded from tests/testdata/vectors/api-models/ (copies of the
official files, with their licences in tests/testdata/vectors/licenses/).

Command line: python3 model_check.py CLOUD METHOD PATH_WITH_QUERY [BODY_FILE]
prints the problems, one a line, and exits 1 when there is any.
"""

import base64
import datetime
import json
import os
import re
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.normpath(os.path.join(HERE, "..", "..", "testdata", "vectors", "api-models"))
AWS_MODEL = os.path.join(MODELS, "aws-apprunner-service-2.json")
GCP_MODEL = os.path.join(MODELS, "gcp-run-v2-discovery.json")
AZURE_DIR = os.path.join(MODELS, "azure-containerapps")


class Result:
    def __init__(self):
        self.operation = None  # e.g. "CreateService", "run.projects.locations.services.create", "ContainerApps_Get"
        self.path_params = {}  # Google / Azure: the path template's parameters
        self.body = None  # the parsed JSON body, when there is one
        self.problems = []

    def add(self, text):
        self.problems.append(text)

    def __repr__(self):
        return "Result(%r, %r)" % (self.operation, self.problems)


def _lower_headers(headers):
    return {str(k).lower(): str(v) for k, v in (headers or {}).items()}


def _parse_json_body(body, res, required_object):
    if body is None or body == b"" or body == "":
        return None
    if isinstance(body, (bytes, bytearray)):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            res.add("body: not UTF-8")
            return None
    try:
        value = json.loads(body)
    except ValueError as e:
        res.add("body: not valid JSON (%s)" % e)
        return None
    if required_object and not isinstance(value, dict):
        res.add("body: must be a JSON object, got %s" % _json_type(value))
        return None
    return value


def _json_type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _search(pattern, value):
    """re.search with the model's pattern; None when Python cannot compile it."""
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return None


# --------------------------------------------------------------------- AWS


# Shapes whose pattern contradicts the same shape's length limits, so that no
# value passes both: ServiceId is "min": 32, "max": 32 with the pattern of a
# 36-character dashed UUID (App Runner's ids are 32 hex digits). Their
# pattern is not checked; their length is.
_AWS_PATTERN_DEFECTS = {"ServiceId"}


class _Aws:
    def __init__(self, path=AWS_MODEL):
        import botocore.model
        import botocore.validate

        with open(path, encoding="utf-8") as f:
            self.raw = json.load(f)
        self.service = botocore.model.ServiceModel(self.raw, service_name="apprunner")
        self.validator = botocore.validate.ParamValidator()
        self.prefix = self.raw["metadata"]["targetPrefix"]
        self.content_type = "application/x-amz-json-%s" % self.raw["metadata"]["jsonVersion"]

    def check(self, method, path, query, headers, body):
        res = Result()
        h = _lower_headers(headers)
        if method != "POST":
            res.add("method: App Runner (AWS JSON %s) takes POST only, got %s" % (self.raw["metadata"]["jsonVersion"], method))
        if path != "/":
            res.add("path: App Runner operations are all POST /, got %s" % path)
        if query:
            res.add("query: App Runner operations take no query parameters, got %s" % sorted(query))
        ctype = h.get("content-type", "").split(";")[0].strip()
        if ctype != self.content_type:
            res.add("header Content-Type: want %s, got %r" % (self.content_type, ctype))
        target = h.get("x-amz-target", "")
        if not target.startswith(self.prefix + "."):
            res.add("header X-Amz-Target: want %s.<Operation>, got %r" % (self.prefix, target))
            return res
        op_name = target[len(self.prefix) + 1 :]
        if op_name not in self.service.operation_names:
            res.add("operation: %s is not an App Runner operation of the model" % op_name)
            return res
        res.operation = op_name
        params = _parse_json_body(body if body not in (None, b"", "") else "{}", res, True)
        if params is None:
            return res
        res.body = params
        op = self.service.operation_model(op_name)
        shape = op.input_shape
        if shape is None:
            if params:
                res.add("body: %s takes no input, got %s" % (op_name, sorted(params)))
            return res
        # botocore's own validator: required, unknown members, types, minimums.
        report = self.validator.validate(params, shape)
        if report.has_errors():
            for line in report.generate_report().splitlines():
                line = line.strip()
                if line and not line.startswith("Parameter validation failed"):
                    res.add(line)
        # What ParamValidator does not check: enums, maximums, patterns.
        self._extra(params, shape, "", res)
        return res

    def check_output(self, op_name, value):
        """Checks an answer (the parsed JSON body) against the operation's output shape."""
        shape = self.service.operation_model(op_name).output_shape
        res = Result()
        if shape is None:
            return []
        report = self.validator.validate(value, shape)
        if report.has_errors():
            for line in report.generate_report().splitlines():
                line = line.strip()
                if line and not line.startswith("Parameter validation failed"):
                    res.add(line)
        self._extra(value, shape, "", res)
        return res.problems

    def _extra(self, value, shape, name, res):
        t = shape.type_name
        meta = shape.metadata
        where = name or "input"
        if t == "structure" and isinstance(value, dict):
            for k, v in value.items():
                if k in shape.members:
                    self._extra(v, shape.members[k], (name + "." + k) if name else k, res)
        elif t == "list" and isinstance(value, list):
            if "max" in meta and len(value) > meta["max"]:
                res.add("%s: %d entries, the model allows at most %d" % (where, len(value), meta["max"]))
            for i, v in enumerate(value):
                self._extra(v, shape.member, "%s[%d]" % (name, i), res)
        elif t == "map" and isinstance(value, dict):
            if "max" in meta and len(value) > meta["max"]:
                res.add("%s: %d entries, the model allows at most %d" % (where, len(value), meta["max"]))
            for k, v in value.items():
                self._extra(k, shape.key, "%s (key %r)" % (name, k), res)
                self._extra(v, shape.value, "%s.%s" % (name, k), res)
        elif t == "string" and isinstance(value, str):
            enum = getattr(shape, "enum", None) or meta.get("enum")
            if enum and value not in enum:
                res.add("%s: %r is not one of the model's values %s" % (where, value, list(enum)))
            if "max" in meta and len(value) > meta["max"]:
                res.add("%s: length %d, the model allows at most %d" % (where, len(value), meta["max"]))
            if "pattern" in meta and shape.name not in _AWS_PATTERN_DEFECTS and _search(meta["pattern"], value) is False:
                res.add("%s: %r does not match the model's pattern %s" % (where, value, meta["pattern"]))
        elif t in ("integer", "long", "float", "double") and isinstance(value, (int, float)) and not isinstance(value, bool):
            if "max" in meta and value > meta["max"]:
                res.add("%s: %s is above the model's maximum %s" % (where, value, meta["max"]))


# --------------------------------------------------------------------- shared JSON walker


class _Node:
    """One schema, normalised: type, properties, required, readOnly, limits."""

    __slots__ = ("type", "format", "properties", "required", "additional", "items", "enum", "read_only", "secret", "limits", "name")

    def __init__(self):
        self.type = None
        self.format = None
        self.properties = None  # dict name -> thunk returning _Node
        self.required = set()
        self.additional = None  # thunk or True (anything) or None (not allowed when properties set)
        self.items = None
        self.enum = None
        self.read_only = False
        self.secret = False
        self.limits = {}
        self.name = ""


_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_INT64 = re.compile(r"^-?\d+$")


def _walk(value, node, where, res, mode):
    """mode "input": read-only fields are problems, required members are checked.
    "patch": as input, without required members. "output": types and names only."""
    if node is None:
        return
    label = where or "body"
    if node.read_only and mode != "output":
        res.add("%s: output-only (read-only) field sent on input" % label)
        return
    if value is None:
        return  # JSON null: treated as "not set"
    t = node.type
    fmt = node.format
    if t == "any" or t is None and node.properties is None and node.items is None:
        return
    if t == "object" or (t is None and node.properties is not None):
        if not isinstance(value, dict):
            res.add("%s: want an object, got %s" % (label, _json_type(value)))
            return
        props = node.properties or {}
        if mode == "input":
            for r in sorted(node.required):
                if r not in value:
                    res.add("%s: required member %r missing" % (label, r))
        for k, v in value.items():
            sub = ("%s.%s" % (where, k)) if where else k
            if k in props:
                _walk(v, props[k](), sub, res, mode)
            elif node.additional is True:
                continue
            elif node.additional is not None:
                _walk(v, node.additional(), "%s[%r]" % (where or "body", k), res, mode)
            elif node.properties is not None:
                res.add("%s: unknown member (not in the model's %s)" % (sub, node.name or "schema"))
        return
    if t == "array":
        if not isinstance(value, list):
            res.add("%s: want an array, got %s" % (label, _json_type(value)))
            return
        lim = node.limits
        if "minItems" in lim and len(value) < lim["minItems"]:
            res.add("%s: %d entries, the model wants at least %d" % (label, len(value), lim["minItems"]))
        if "maxItems" in lim and len(value) > lim["maxItems"]:
            res.add("%s: %d entries, the model allows at most %d" % (label, len(value), lim["maxItems"]))
        if node.items is not None:
            for i, v in enumerate(value):
                _walk(v, node.items(), "%s[%d]" % (where, i), res, mode)
        return
    if t == "boolean":
        if not isinstance(value, bool):
            res.add("%s: want a boolean, got %s" % (label, _json_type(value)))
        return
    if t == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            if not (isinstance(value, float) and value.is_integer()):
                res.add("%s: want an integer, got %s" % (label, _json_type(value)))
                return
        _check_number(value, node, label, res)
        return
    if t == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            res.add("%s: want a number, got %s" % (label, _json_type(value)))
            return
        _check_number(value, node, label, res)
        return
    if t == "string":
        if fmt in ("int64", "uint64") and isinstance(value, int) and not isinstance(value, bool):
            return  # proto3 JSON takes 64-bit integers as numbers or strings
        if not isinstance(value, str):
            res.add("%s: want a string, got %s" % (label, _json_type(value)))
            return
        if fmt in ("int64", "uint64") and not _INT64.match(value):
            res.add("%s: %r is not a %s" % (label, value, fmt))
        elif fmt == "google-duration" and not _DURATION.match(value):
            res.add("%s: %r is not a duration such as \"3.5s\"" % (label, value))
        elif fmt in ("google-datetime", "date-time") and not _RFC3339.match(value):
            res.add("%s: %r is not an RFC 3339 time" % (label, value))
        elif fmt == "byte":
            try:
                base64.b64decode(value.replace("-", "+").replace("_", "/") + "===", validate=False)
            except ValueError:
                res.add("%s: not base64" % label)
        if node.enum is not None and value not in node.enum:
            res.add("%s: %r is not one of the model's values %s" % (label, value, node.enum))
        lim = node.limits
        if "minLength" in lim and len(value) < lim["minLength"]:
            res.add("%s: length %d, the model wants at least %d" % (label, len(value), lim["minLength"]))
        if "maxLength" in lim and len(value) > lim["maxLength"]:
            res.add("%s: length %d, the model allows at most %d" % (label, len(value), lim["maxLength"]))
        if "pattern" in lim and _search(lim["pattern"], value) is False:
            res.add("%s: %r does not match the model's pattern %s" % (label, value, lim["pattern"]))
        return


def _check_number(value, node, label, res):
    lim = node.limits
    if "minimum" in lim and value < lim["minimum"]:
        res.add("%s: %s is below the model's minimum %s" % (label, value, lim["minimum"]))
    if "maximum" in lim and value > lim["maximum"]:
        res.add("%s: %s is above the model's maximum %s" % (label, value, lim["maximum"]))
    if node.enum is not None and value not in node.enum:
        res.add("%s: %r is not one of the model's values %s" % (label, value, node.enum))


def _query_value_problem(value, ptype, fmt, enum, pattern):
    if ptype == "boolean" and value not in ("true", "false"):
        return "want true or false"
    if ptype == "integer" and not _INT64.match(value):
        return "want an integer"
    if enum is not None and value not in enum:
        return "not one of the model's values %s" % enum
    if fmt == "google-fieldmask" and not re.match(r"^[A-Za-z0-9_.,]*$", value):
        return "not a field mask (comma-separated field paths)"
    if pattern and _search(pattern, value) is False:
        return "does not match the model's pattern %s" % pattern
    return None


def _template_regex(template, var):
    """Turns "v2/projects/{projectsId}/x" into a regex with named groups."""
    out, names, pos = "", [], 0
    for m in re.finditer(var, template):
        out += re.escape(template[pos : m.start()])
        names.append(m.group(1))
        out += "(?P<p%d>[^/]+)" % (len(names) - 1)
        pos = m.end()
    out += re.escape(template[pos:])
    return out, names


# --------------------------------------------------------------------- Google


class _Gcp:
    GLOBAL_OK = {"$.xgafv", "alt", "fields", "prettyPrint", "quotaUser", "key", "access_token", "callback", "oauth_token", "upload_protocol", "uploadType"}

    def __init__(self, path=GCP_MODEL):
        with open(path, encoding="utf-8") as f:
            self.doc = json.load(f)
        self.schemas = self.doc["schemas"]
        self.globals = self.doc.get("parameters", {})
        self.methods = []  # (regex, names, httpMethod, method, path template)
        self._collect(self.doc.get("resources", {}))
        # ".../services/{servicesId}:getIamPolicy" before ".../services/{servicesId}".
        self.methods.sort(key=lambda m: ":" not in m[3].get("flatPath", m[3]["path"]).rsplit("/", 1)[-1])
        self._cache = {}

    def _collect(self, resources):
        for res in resources.values():
            for m in res.get("methods", {}).values():
                flat = m.get("flatPath") or m["path"]
                rx, names = _template_regex(flat, r"\{([^}]+)\}")
                self.methods.append((re.compile("^/" + rx + "$"), names, m["httpMethod"], m))
            self._collect(res.get("resources", {}))

    def node(self, ref):
        if ref in self._cache:
            return self._cache[ref]
        n = self._convert(self.schemas[ref], ref)
        self._cache[ref] = n
        return n

    def _convert(self, s, name=""):
        if "$ref" in s:
            base = self.node(s["$ref"])
            if s.get("readOnly"):
                n = _Node()
                for slot in _Node.__slots__:
                    setattr(n, slot, getattr(base, slot))
                n.read_only = True
                return n
            return base
        n = _Node()
        n.name = s.get("id", name)
        n.type = s.get("type")
        n.format = s.get("format")
        n.enum = s.get("enum")
        n.read_only = bool(s.get("readOnly"))
        if "properties" in s:
            n.properties = {}
            for k, v in s["properties"].items():
                n.properties[k] = self._thunk(v, "%s.%s" % (n.name, k))
                if v.get("description", "").startswith("Required."):
                    n.required.add(k)
        if "additionalProperties" in s:
            ap = s["additionalProperties"]
            n.additional = True if ap.get("type") == "any" else self._thunk(ap)
            if n.properties is None:
                n.properties = {}
        if "items" in s:
            n.items = self._thunk(s["items"])
        return n

    def _thunk(self, s, name=""):
        cell = []

        def get():
            if not cell:
                cell.append(self._convert(s, name))
            return cell[0]

        return get

    def check(self, method, path, query, headers, body):
        res = Result()
        found = None
        allowed = []
        for rx, names, http_method, m in self.methods:
            mm = rx.match(path)
            if not mm:
                continue
            if http_method != method:
                allowed.append(http_method)
                continue
            found = (names, mm, m)
            break
        if found is None:
            if allowed:
                res.add("method: %s %s is not in the Cloud Run v2 model (that path takes %s)" % (method, path, ", ".join(sorted(set(allowed)))))
            else:
                res.add("path: %s %s is not a Cloud Run v2 method of the model" % (method, path))
            return res
        names, mm, m = found
        res.operation = m["id"]
        for i, nm in enumerate(names):
            res.path_params[nm] = urllib.parse.unquote(mm.group("p%d" % i))
        params = m.get("parameters", {})
        # The {+name} style parameters of "path", checked with their patterns.
        prx, pnames = _template_regex(m["path"], r"\{\+?([^}]+)\}")
        prx = prx.replace("[^/]+", ".+")
        pm = re.match("^/" + prx + "$", path)
        if pm:
            for i, pn in enumerate(pnames):
                val = urllib.parse.unquote(pm.group("p%d" % i))
                spec = params.get(pn, {})
                if spec.get("pattern") and _search(spec["pattern"], val) is False:
                    res.add("path parameter %s: %r does not match the model's pattern %s" % (pn, val, spec["pattern"]))
        for qn, values in (query or {}).items():
            spec = params.get(qn)
            if spec is None or spec.get("location") != "query":
                spec = self.globals.get(qn)
                if spec is None:
                    res.add("query parameter %s: not a parameter of %s" % (qn, m["id"]))
                    continue
            if len(values) > 1 and not spec.get("repeated"):
                res.add("query parameter %s: given %d times" % (qn, len(values)))
            for v in values:
                why = _query_value_problem(v, spec.get("type"), spec.get("format"), spec.get("enum"), spec.get("pattern"))
                if why:
                    res.add("query parameter %s: %r: %s" % (qn, v, why))
        for pn, spec in params.items():
            if spec.get("location") != "query":
                continue
            if (spec.get("required") or spec.get("description", "").startswith("Required.")) and pn not in (query or {}):
                res.add("query parameter %s: required by %s, missing" % (pn, m["id"]))
        req = m.get("request")
        has_body = body not in (None, b"", "")
        if req is None:
            if has_body:
                res.add("body: %s takes no request body" % m["id"])
            return res
        if not has_body:
            res.add("body: %s takes a %s body, got none" % (m["id"], req["$ref"]))
            return res
        value = _parse_json_body(body, res, True)
        if value is None:
            return res
        res.body = value
        mode = "input"
        if m["httpMethod"] == "PATCH" and "updateMask" in (query or {}):
            mode = "patch"
        _walk(value, self.node(req["$ref"]), "", res, mode)
        return res

    def check_output(self, schema_ref, value):
        res = Result()
        _walk(value, self.node(schema_ref), "", res, "output")
        return res.problems


# --------------------------------------------------------------------- Azure

# The ContainerApps swagger refers to three files of Azure's common-types that
# are not in tests/testdata (common-types/resource-management/v3/types.json,
# v5/types.json and v3/managedidentity.json). These stand-ins, written here,
# hold only the members the ContainerApps model uses from them: the ARM
# envelope (id, name, type, systemData read-only; location required; tags)
# and the standard path/query parameters.
_COMMON_TYPES = {
    "definitions/TrackedResource": {
        "type": "object",
        "required": ["location"],
        "properties": {
            "id": {"type": "string", "readOnly": True},
            "name": {"type": "string", "readOnly": True},
            "type": {"type": "string", "readOnly": True},
            "systemData": {"type": "object", "readOnly": True, "additionalProperties": True},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
            "location": {"type": "string"},
        },
    },
    "definitions/ProxyResource": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "readOnly": True},
            "name": {"type": "string", "readOnly": True},
            "type": {"type": "string", "readOnly": True},
            "systemData": {"type": "object", "readOnly": True, "additionalProperties": True},
        },
    },
    "definitions/ManagedServiceIdentity": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "principalId": {"type": "string", "readOnly": True},
            "tenantId": {"type": "string", "readOnly": True},
            "type": {"type": "string", "enum": ["None", "SystemAssigned", "UserAssigned", "SystemAssigned,UserAssigned"]},
            "userAssignedIdentities": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {"principalId": {"type": "string", "readOnly": True}, "clientId": {"type": "string", "readOnly": True}},
                },
            },
        },
    },
    "parameters/SubscriptionIdParameter": {"name": "subscriptionId", "in": "path", "required": True, "type": "string", "minLength": 1},
    "parameters/ResourceGroupNameParameter": {
        "name": "resourceGroupName",
        "in": "path",
        "required": True,
        "type": "string",
        "minLength": 1,
        "maxLength": 90,
        "pattern": r"^[-\w\._\(\)]+$",
    },
    "parameters/ApiVersionParameter": {"name": "api-version", "in": "query", "required": True, "type": "string", "minLength": 1},
}


class _Azure:
    def __init__(self, folder=AZURE_DIR):
        self.files = {}
        for name in ("ContainerApps.json", "CommonDefinitions.json"):
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                self.files[name] = json.load(f)
        self.main = self.files["ContainerApps.json"]
        self.api_version = self.main["info"]["version"]
        self.ops = []  # (regex, names, method, operation, path template)
        for tmpl, item in self.main["paths"].items():
            rx, names = _template_regex(tmpl, r"\{([^}]+)\}")
            for method, op in item.items():
                if method == "parameters":
                    continue
                self.ops.append((re.compile("^" + rx + "$", re.IGNORECASE), names, method.upper(), op, tmpl))
        self._cache = {}

    def resolve(self, ref, current):
        """Returns (json, file) for a $ref seen in file `current`."""
        fpart, _, frag = ref.partition("#")
        frag = frag.strip("/")
        if fpart == "":
            fname = current
        else:
            fname = os.path.basename(fpart)
            if fname not in self.files:
                # types.json / managedidentity.json of common-types: stand-ins.
                key = "/".join(frag.split("/")[:2])
                if key in _COMMON_TYPES:
                    return _COMMON_TYPES[key], "common-types"
                raise KeyError("unresolvable $ref %s" % ref)
        obj = self.files[fname]
        for part in frag.split("/"):
            obj = obj[part]
        return obj, fname

    def node(self, schema, fname, name=""):
        if "$ref" in schema and len(schema) <= 2:  # {"$ref"} or {"$ref", "description"}
            key = (fname, schema["$ref"])
            if key in self._cache:
                return self._cache[key]
            target, tfile = self.resolve(schema["$ref"], fname)
            n = _Node()
            self._cache[key] = n  # recursion guard: filled in below
            built = self._convert(target, tfile, schema["$ref"].split("/")[-1])
            for slot in _Node.__slots__:
                setattr(n, slot, getattr(built, slot))
            return n
        return self._convert(schema, fname, name)

    def _convert(self, s, fname, name=""):
        if "$ref" in s:
            base = self.node({"$ref": s["$ref"]}, fname)
            n = _Node()
            for slot in _Node.__slots__:
                setattr(n, slot, getattr(base, slot))
            if s.get("readOnly"):
                n.read_only = True
            return n
        n = _Node()
        n.name = name
        n.type = s.get("type")
        n.format = s.get("format")
        n.enum = s.get("enum")
        n.read_only = bool(s.get("readOnly"))
        n.secret = bool(s.get("x-ms-secret"))
        n.required = set(s.get("required", []))
        for k in ("minimum", "maximum", "minLength", "maxLength", "pattern", "minItems", "maxItems"):
            if k in s:
                n.limits[k] = s[k]
        props = {}
        for parent in s.get("allOf", []):
            pn = self.node(parent, fname)
            props.update(pn.properties or {})
            n.required |= pn.required
            if n.type is None:
                n.type = pn.type
        for k, v in s.get("properties", {}).items():
            props[k] = self._thunk(v, fname, k)
        if "properties" in s or s.get("allOf"):
            n.properties = props
        if "additionalProperties" in s:
            ap = s["additionalProperties"]
            n.additional = True if ap is True or ap == {} else self._thunk(ap, fname)
            if n.properties is None:
                n.properties = {}
        if "items" in s:
            n.items = self._thunk(s["items"], fname)
        return n

    def _thunk(self, s, fname, name=""):
        cell = []

        def get():
            if not cell:
                cell.append(self.node(s, fname, name))
            return cell[0]

        return get

    def check(self, method, path, query, headers, body):
        res = Result()
        query = query or {}
        found, allowed = None, []
        for rx, names, m, op, tmpl in self.ops:
            mm = rx.match(path)
            if not mm:
                continue
            if m != method:
                allowed.append(m)
                continue
            found = (rx, names, mm, op, tmpl)
            break
        if found is None:
            if allowed:
                res.add("method: %s %s is not in the Microsoft.App ContainerApps model (that path takes %s)" % (method, path, ", ".join(sorted(set(allowed)))))
            else:
                res.add("path: %s %s is not a Microsoft.App ContainerApps operation of the model" % (method, path))
            return res
        _, names, mm, op, tmpl = found
        res.operation = op["operationId"]
        for i, nm in enumerate(names):
            res.path_params[nm] = urllib.parse.unquote(mm.group("p%d" % i))
        params = []
        for p in op.get("parameters", []):
            if "$ref" in p:
                p, _ = self.resolve(p["$ref"], "ContainerApps.json")
            params.append(p)
        body_param = None
        known_query = set()
        for p in params:
            where = p.get("in")
            if where == "body":
                body_param = p
                continue
            if where == "path":
                val = res.path_params.get(p["name"], "")
                why = self._scalar_problem(val, p)
                if why:
                    res.add("path parameter %s: %r: %s" % (p["name"], val, why))
            elif where == "query":
                known_query.add(p["name"])
                vals = query.get(p["name"])
                if not vals:
                    if p.get("required"):
                        res.add("query parameter %s: required, missing (this model is api-version=%s)" % (p["name"], self.api_version) if p["name"] == "api-version" else "query parameter %s: required, missing" % p["name"])
                    continue
                for v in vals:
                    why = self._scalar_problem(v, p)
                    if why:
                        res.add("query parameter %s: %r: %s" % (p["name"], v, why))
        if "api-version" in query and query["api-version"] != [self.api_version]:
            res.add("query parameter api-version: %s, the model is api-version=%s" % (",".join(query["api-version"]), self.api_version))
        for qn in query:
            if qn not in known_query:
                res.add("query parameter %s: not a parameter of %s" % (qn, res.operation))
        has_body = body not in (None, b"", "")
        if body_param is None:
            if has_body:
                res.add("body: %s takes no request body" % res.operation)
            return res
        if not has_body:
            if body_param.get("required"):
                res.add("body: %s requires a body (%s)" % (res.operation, body_param.get("name")))
            return res
        value = _parse_json_body(body, res, True)
        if value is None:
            return res
        res.body = value
        mode = "patch" if method == "PATCH" else "input"
        _walk(value, self.node(body_param["schema"], "ContainerApps.json"), "", res, mode)
        return res

    @staticmethod
    def _scalar_problem(v, p):
        if "minLength" in p and len(v) < p["minLength"]:
            return "length %d, the model wants at least %d" % (len(v), p["minLength"])
        if "maxLength" in p and len(v) > p["maxLength"]:
            return "length %d, the model allows at most %d" % (len(v), p["maxLength"])
        if "pattern" in p and _search(p["pattern"], v) is False:
            return "does not match the model's pattern %s" % p["pattern"]
        return None

    def definition(self, name):
        return self.node({"$ref": "#/definitions/%s" % name}, "ContainerApps.json")

    def check_output(self, definition, value):
        res = Result()
        _walk(value, self.definition(definition), "", res, "output")
        return res.problems

    def secret_paths(self, definition, value):
        """Paths of x-ms-secret members that hold a value in `value`."""
        found = []
        _secrets(value, self.definition(definition), "", found)
        return found


def _secrets(value, node, where, found):
    if node is None or value is None:
        return
    if node.secret:
        found.append(where)
        return
    if isinstance(value, dict) and node.properties is not None:
        for k, v in value.items():
            if k in node.properties:
                _secrets(v, node.properties[k](), ("%s.%s" % (where, k)) if where else k, found)
    elif isinstance(value, list) and node.items is not None:
        for i, v in enumerate(value):
            _secrets(v, node.items(), "%s[%d]" % (where, i), found)


_LOADED = {}


def model(cloud):
    if cloud not in _LOADED:
        _LOADED[cloud] = {"aws": _Aws, "gcp": _Gcp, "azure": _Azure}[cloud]()
    return _LOADED[cloud]


def check(cloud, method, path, query=None, headers=None, body=None):
    """Checks one request; returns a Result (operation, path_params, body, problems)."""
    if cloud not in ("aws", "gcp", "azure"):
        raise ValueError("cloud must be aws, gcp or azure, got %r" % cloud)
    try:
        return model(cloud).check(method.upper(), path, query or {}, headers or {}, body)
    except RecursionError:
        r = Result()
        r.add("body: nested too deeply")
        return r


def main(argv):
    if len(argv) < 4:
        print("usage: model_check.py aws|gcp|azure METHOD PATH[?QUERY] [BODY_FILE]  (aws: the operation in $X_AMZ_TARGET)", file=sys.stderr)
        return 2
    cloud, method, target = argv[1], argv[2], argv[3]
    u = urllib.parse.urlsplit(target)
    body = open(argv[4], "rb").read() if len(argv) > 4 else None
    headers = {}
    if cloud == "aws":
        headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": os.environ.get("X_AMZ_TARGET", "")}
    r = check(cloud, method, u.path or "/", urllib.parse.parse_qs(u.query, keep_blank_values=True), headers, body)
    print("operation: %s" % r.operation)
    for p in r.problems:
        print(p)
    return 1 if r.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
