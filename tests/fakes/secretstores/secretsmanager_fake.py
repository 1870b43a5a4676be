#!/usr/bin/env python3
"""A fake AWS Secrets Manager for secret_stores_test.sh (issue #14).

Built from botocore's own service model, not from recordings: every request
is checked against the `secretsmanager` model that botocore ships on this
machine (botocore.loaders), and its SigV4 signature is recomputed with
botocore's SigV4Auth from the test credentials.

  POST /  X-Amz-Target: secretsmanager.<Operation>, AWS JSON 1.1
    - the operation must be one of the model's; the body is validated with
      botocore's ParamValidator against the operation's input shape;
    - Authorization: AWS4-HMAC-SHA256 recomputed by botocore (service
      secretsmanager, region --region); a mismatch is 400
      InvalidSignatureException (as Secrets Manager answers), an unknown key
      UnrecognizedClientException;
    - GetSecretValue is implemented (SecretId by name or ARN, VersionStage,
      VersionId); other operations pass the check and are answered
      InvalidRequestException ("not implemented by the fake").
    The answer is checked against the model's output shape too.

Control (not logged, not signed; loopback only):
  POST /_fake/put    {"name", "value"}     a new version, AWSCURRENT; the old one AWSPREVIOUS
  POST /_fake/deny   {"name"}              GetSecretValue of it: AccessDeniedException
  POST /_fake/allow  {"name"}
  GET  /_fake/problems                     requests that failed the model or signature check
  GET  /_fake/log                          every API request (operation, SecretId, status)

Usage: secretsmanager_fake.py --port-file F --key-id AK --secret SK [--region R]
The port is written to F (to a temporary name, then renamed).
"""
import argparse
import datetime
import hmac
import http.server
import json
import os
import re
import sys
import threading
import uuid

import botocore.auth
import botocore.loaders
import botocore.model
import botocore.validate
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$")

LOADER = botocore.loaders.create_loader()
RAW = LOADER.load_service_model("secretsmanager", "service-2")
MODEL = botocore.model.ServiceModel(RAW, service_name="secretsmanager")
VALIDATOR = botocore.validate.ParamValidator()
PREFIX = RAW["metadata"]["targetPrefix"]  # "secretsmanager"
CONTENT_TYPE = "application/x-amz-json-%s" % RAW["metadata"]["jsonVersion"]  # 1.1
SIGNING_NAME = RAW["metadata"].get("signingName", RAW["metadata"]["endpointPrefix"])

lock = threading.RLock()
secrets = {}  # name -> {"arn", "versions": [{"id", "value", "stages", "created"}], "denied"}
problems = []
log = []


def validate(value, shape):
    report = VALIDATOR.validate(value, shape)
    if not report.has_errors():
        return []
    return [l.strip() for l in report.generate_report().splitlines()
            if l.strip() and not l.startswith("Parameter validation failed")]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    args = None

    def log_message(self, fmt, *a):
        pass

    def send(self, status, body, error_type=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, name, message):
        self.send(status, {"__type": name, "message": message}, name)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_fake/problems":
            with lock:
                return self.send(200, list(problems))
        if self.path == "/_fake/log":
            with lock:
                return self.send(200, list(log))
        self.error(404, "UnknownOperationException", "GET is not an operation")

    def control(self, raw):
        req = json.loads(raw or b"{}")
        name = req.get("name", "")
        with lock:
            if self.path == "/_fake/put":
                s = secrets.setdefault(name, {"arn": "arn:aws:secretsmanager:%s:123456789012:secret:%s-%s" % (
                    self.args.region, name, uuid.uuid4().hex[:6]), "versions": [], "denied": False})
                for v in s["versions"]:
                    v["stages"] = [st for st in v["stages"] if st not in ("AWSCURRENT", "AWSPREVIOUS")]
                if s["versions"]:
                    s["versions"][-1]["stages"].append("AWSPREVIOUS")
                s["versions"].append({"id": str(uuid.uuid4()), "value": req["value"],
                                      "stages": ["AWSCURRENT"], "created": datetime.datetime.now().timestamp()})
                return self.send(200, {"ARN": s["arn"], "VersionId": s["versions"][-1]["id"]})
            if self.path in ("/_fake/deny", "/_fake/allow"):
                secrets[name]["denied"] = self.path == "/_fake/deny"
                return self.send(200, {})
        self.error(404, "UnknownOperationException", "no such control path")

    def do_POST(self):
        raw = self.body()
        if self.path.startswith("/_fake/"):
            return self.control(raw)
        found = []
        if self.path != "/":
            found.append("path: Secrets Manager operations are all POST /, got %s" % self.path)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != CONTENT_TYPE:
            found.append("header Content-Type: want %s, got %r" % (CONTENT_TYPE, ctype))
        target = self.headers.get("X-Amz-Target") or ""
        op = target[len(PREFIX) + 1:] if target.startswith(PREFIX + ".") else ""
        if op not in MODEL.operation_names:
            found.append("header X-Amz-Target: %r names no operation of the model" % target)
        params = None
        try:
            params = json.loads(raw or b"{}")
            if not isinstance(params, dict):
                found.append("body: not a JSON object")
                params = None
        except ValueError as e:
            found.append("body: not JSON (%s)" % e)
        if params is not None and op in MODEL.operation_names:
            found += ["body: " + p for p in validate(params, MODEL.operation_model(op).input_shape)]
        auth = self.authenticate(raw)
        entry = {"operation": op, "secretId": (params or {}).get("SecretId"),
                 "versionStage": (params or {}).get("VersionStage"),
                 "versionId": (params or {}).get("VersionId")}
        if found or auth:
            entry["problems"] = found + ([auth[1] + ": " + auth[2]] if auth else [])
        with lock:
            log.append(entry)
            if found or auth:
                problems.append(entry)
        if auth:
            return self.error(*auth)
        if found:
            return self.error(400, "InvalidParameterException" if op else "UnknownOperationException", "; ".join(found))
        if op != "GetSecretValue":
            return self.error(400, "InvalidRequestException", "%s is not implemented by the fake" % op)
        self.get_secret_value(params, entry)

    def get_secret_value(self, params, entry):
        sid = params["SecretId"]
        with lock:
            s = secrets.get(sid) or next((x for x in secrets.values() if x["arn"] == sid), None)
            if s is None:
                entry["status"] = 400
                return self.error(400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
            if s["denied"]:
                entry["status"] = 400
                return self.error(400, "AccessDeniedException",
                                  "User: arn:aws:iam::123456789012:user/test is not authorized to perform: "
                                  "secretsmanager:GetSecretValue on resource: %s because no identity-based "
                                  "policy allows the secretsmanager:GetSecretValue action" % sid)
            stage = params.get("VersionStage")
            vid = params.get("VersionId")
            if not stage and not vid:
                stage = "AWSCURRENT"
            match = [v for v in s["versions"] if (not vid or v["id"] == vid) and (not stage or stage in v["stages"])]
            if not match:
                entry["status"] = 400
                return self.error(400, "ResourceNotFoundException",
                                  "Secrets Manager can't find the specified secret value for %s: %s" % (
                                      "VersionId" if vid else "staging label", vid or stage))
            v = match[0]
            name = next(k for k, x in secrets.items() if x is s)
            out = {"ARN": s["arn"], "Name": name, "VersionId": v["id"], "SecretString": v["value"],
                   "VersionStages": list(v["stages"]), "CreatedDate": v["created"]}
        bad = validate(out, MODEL.operation_model("GetSecretValue").output_shape)
        if bad:
            with lock:
                problems.append({"operation": "GetSecretValue (answer)", "problems": bad})
        entry["status"] = 200
        self.send(200, out)

    def authenticate(self, raw):
        """None, or (status, error type, message) as Secrets Manager answers."""
        authz = self.headers.get("Authorization")
        if not authz:
            return (400, "MissingAuthenticationTokenException", "Missing Authentication Token")
        m = AUTH_RE.match(authz)
        if not m:
            return (400, "IncompleteSignatureException", "Authorization header is not AWS4-HMAC-SHA256")
        key_id, day, region, service, signed, signature = m.groups()
        if key_id != self.args.key_id:
            return (400, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if service != SIGNING_NAME:
            return (400, "InvalidSignatureException", "Credential should be scoped to correct service: '%s'." % SIGNING_NAME)
        if region != self.args.region:
            return (400, "InvalidSignatureException", "Credential should be scoped to a valid region, not '%s'." % region)
        amz_date = self.headers.get("X-Amz-Date") or ""
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return (400, "IncompleteSignatureException", "X-Amz-Date must be set")
        if amz_date[:8] != day:
            return (400, "InvalidSignatureException", "Credential date does not match X-Amz-Date")
        if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 300:
            return (400, "InvalidSignatureException", "Signature expired")
        names = signed.split(";")
        for must in ("host", "x-amz-date", "x-amz-target", "content-type"):
            if must not in names:
                return (400, "InvalidSignatureException", "'%s' must be a signed header." % must)
        headers = {n: self.headers.get(n, "") for n in names}
        areq = AWSRequest(method=self.command, url="http://%s%s" % (self.headers.get("Host"), self.path),
                          data=raw, headers=headers)
        areq.context["timestamp"] = amz_date
        signer = botocore.auth.SigV4Auth(Credentials(self.args.key_id, self.args.secret), SIGNING_NAME, region)
        want = signer.signature(signer.string_to_sign(areq, signer.canonical_request(areq)), areq)
        if not hmac.compare_digest(want, signature):
            return (400, "InvalidSignatureException",
                    "The request signature we calculated does not match the signature you provided.")
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port-file", required=True)
    p.add_argument("--key-id", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--region", default="eu-west-1")
    args = p.parse_args()
    Handler.args = args
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
