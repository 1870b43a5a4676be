"""A fake Google Cloud Run Admin API v2 (services and long-running
operations), with a fake OAuth2 token endpoint (service-account JWT bearer
grant, RS256 checked with `cryptography`) and a fake metadata server.

    python3 cloudrun_fake.py --port-file F [--log F] [--gcp-public-key PEM]

See README.md in this folder.
"""

import base64
import copy
import hashlib
import json
import os
import secrets
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import Response, now_rfc3339  # noqa: E402

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
METADATA_TOKEN = "/computeMetadata/v1/instance/service-accounts/default/token"
CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
RPC_CODES = {"INVALID_ARGUMENT": 3, "FAILED_PRECONDITION": 9, "INTERNAL": 13, "NOT_FOUND": 5}


def google_error(code, message, status=None, details=None, headers=None):
    err = {"code": code, "message": message, "status": status or CODES.get(code, "UNKNOWN")}
    if details:
        err["details"] = details
    return Response(code, {"error": err}, headers)


def oauth_error(status, error, description):
    return Response(status, {"error": error, "error_description": description})


def b64url_decode(s):
    if not isinstance(s, str) or not all(c.isalnum() or c in "-_" for c in s):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class CloudRunFake(common.Fake):
    cloud = "gcp"
    name = "cloudrun"

    def __init__(self, args):
        super().__init__(args)
        self.services = {}  # full name -> record
        self.operations = {}  # full name -> record
        self.tokens = {}  # access token -> expiry
        if args.gcp_token:
            self.tokens[args.gcp_token] = float("inf")
        self.public_key = None
        if args.gcp_public_key:
            from cryptography.hazmat.primitives import serialization

            with open(args.gcp_public_key, "rb") as f:
                data = f.read()
            try:
                self.public_key = serialization.load_pem_public_key(data)
            except ValueError:
                from cryptography import x509

                self.public_key = x509.load_pem_x509_certificate(data).public_key()

    # ------------------------------------------------------------ auth endpoints
    def extra(self, req):
        if req.path == "/token":
            return self.token(req)
        if req.path == METADATA_TOKEN:
            return self.metadata_token(req)
        if req.path.startswith("/computeMetadata/"):
            req.kind = "auth"
            if req.header("Metadata-Flavor") != "Google":
                return Response(403, "Missing required header: Metadata-Flavor\n", content_type="text/plain")
            return Response(404, "not served by the fake metadata server\n", content_type="text/plain")
        return None

    def issue(self, ttl=3599):
        tok = "ya29.fake-" + secrets.token_urlsafe(24)
        self.tokens[tok] = time.time() + ttl
        return {"access_token": tok, "expires_in": ttl, "token_type": "Bearer"}

    def metadata_token(self, req):
        req.operation = "MetadataToken"
        if req.method != "GET":
            return Response(405, "GET only\n", content_type="text/plain")
        if req.header("Metadata-Flavor") != "Google":
            return Response(403, "Missing required header: Metadata-Flavor\n", content_type="text/plain")
        with self.lock:
            return Response(200, self.issue(self.args.token_ttl))

    def token(self, req):
        """RFC 7523 JWT bearer grant, as Google's token endpoint takes it."""
        req.operation = "OAuthToken"
        if req.method != "POST":
            return oauth_error(405, "invalid_request", "use POST")
        if not req.header("Content-Type").startswith("application/x-www-form-urlencoded"):
            return oauth_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        form = req.form()
        if form.get("grant_type") != JWT_BEARER:
            return oauth_error(400, "unsupported_grant_type", "Invalid grant_type: %s" % form.get("grant_type", ""))
        jwt = form.get("assertion", "")
        why = self.verify_jwt(jwt, req)
        if why:
            return oauth_error(400, "invalid_grant", why)
        with self.lock:
            return Response(200, self.issue(self.args.token_ttl))

    def verify_jwt(self, jwt, req):
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if self.public_key is None:
            return "the fake was started without --gcp-public-key, so it accepts no JWT"
        parts = jwt.split(".")
        if len(parts) != 3:
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. A JWT has three dot-separated parts."
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except (ValueError, UnicodeDecodeError):
            return "Invalid JWT: its parts are not base64url-encoded JSON."
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return "Invalid JWT: header and claims must be JSON objects."
        if header.get("alg") != "RS256":
            return "Invalid JWT: alg must be RS256, got %r." % header.get("alg")
        try:
            self.public_key.verify(sig, (parts[0] + "." + parts[1]).encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError, TypeError):
            return "Invalid JWT Signature."
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)):
            return "Invalid JWT: iat and exp must be numbers."
        if exp <= now:
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim. (expired)"
        if iat > now + 60 or exp - iat > 3600:
            return "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."
        auds = {self.base_url + "/token", "http://%s/token" % req.header("Host")} | set(self.args.gcp_audience or [])
        if claims.get("aud") not in auds:
            return "Invalid JWT: aud %r is not this token endpoint (%s)." % (claims.get("aud"), ", ".join(sorted(auds)))
        if not claims.get("iss"):
            return "Invalid JWT: no iss (the service account's client_email)."
        if self.args.gcp_client_email and claims.get("iss") != self.args.gcp_client_email:
            return "Invalid JWT: iss %r is not a known service account." % claims.get("iss")
        scopes = str(claims.get("scope", "")).split()
        if CLOUD_PLATFORM not in scopes:
            return "Invalid JWT: scope must include %s." % CLOUD_PLATFORM
        return None

    def authenticate(self, req):
        authz = req.header("Authorization")
        www = [("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')]
        if not authz.startswith("Bearer "):
            return google_error(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                headers=www,
            )
        tok = authz[len("Bearer ") :].strip()
        with self.lock:
            exp = self.tokens.get(tok)
        if exp is None or exp <= time.time():
            return google_error(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.", headers=www)
        return None

    # ------------------------------------------------------------ faults
    def throttle_response(self, fault):
        return google_error(fault["status"] or 429, "Quota exceeded (injected by the fake).", "RESOURCE_EXHAUSTED", headers=[("Retry-After", fault["retryAfter"])])

    def server_error_response(self, fault):
        return google_error(fault["status"] or 503, "The service is currently unavailable (injected by the fake).", "UNAVAILABLE", headers=[("Retry-After", fault["retryAfter"])])

    def invalid_response(self, req):
        if req.operation is None:
            return google_error(404, "; ".join(req.problems), "NOT_FOUND")
        violations = [{"field": p.split(":", 1)[0], "description": p} for p in req.problems]
        return google_error(
            400,
            "Invalid request: " + "; ".join(req.problems),
            "INVALID_ARGUMENT",
            details=[{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": violations}],
        )

    # ------------------------------------------------------------ state
    def state(self):
        return {"services": {k: v["service"] for k, v in self.services.items()}, "operations": {k: self.op_view(v) for k, v in self.operations.items()}}

    @staticmethod
    def parent_of(p):
        return "projects/%s/locations/%s" % (p["projectsId"], p["locationsId"])

    def new_etag(self, svc):
        svc["etag"] = '"%s"' % hashlib.sha256(json.dumps(svc, sort_keys=True).encode()).hexdigest()[:27]

    def start_op(self, parent, kind, svc_name, snapshot):
        op_name = "%s/operations/%s" % (parent, uuid.uuid4())
        rec = {"name": op_name, "kind": kind, "service": svc_name, "started": time.time(), "polls": 0, "done": False, "fail": self.take_fail_next(), "snapshot": snapshot}
        self.operations[op_name] = rec
        if svc_name in self.services:
            self.services[svc_name]["op"] = op_name
        if self.done(rec["started"], 0):
            self.finish(rec)
        return rec

    def poll(self, rec):
        if rec["done"]:
            return
        rec["polls"] += 1
        if self.done(rec["started"], rec["polls"]):
            self.finish(rec)

    def finish(self, rec):
        rec["done"] = True
        t = now_rfc3339()
        svc_rec = self.services.get(rec["service"])
        fail = rec["fail"]
        if svc_rec is None:
            return
        svc = svc_rec["service"]
        svc["reconciling"] = False
        svc["updateTime"] = t
        if rec["kind"] == "delete" and not fail:
            svc["deleteTime"] = t
            rec["snapshot"] = copy.deepcopy(svc)
            del self.services[rec["service"]]
            return
        if fail:
            cond = {"type": "Ready", "state": "CONDITION_FAILED", "message": fail["message"], "lastTransitionTime": t, "severity": "ERROR", "reason": "REVISION_FAILED"}
            svc["terminalCondition"] = cond
            svc["conditions"] = [dict(cond, type="RoutesReady"), dict(cond, type="ConfigurationsReady")]
        else:
            svc["observedGeneration"] = svc["generation"]
            svc["latestReadyRevision"] = svc["latestCreatedRevision"]
            cond = {"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": t}
            svc["terminalCondition"] = cond
            svc["conditions"] = [dict(cond, type="RoutesReady"), dict(cond, type="ConfigurationsReady")]
            svc["trafficStatuses"] = [{"type": tt.get("type", "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST"), "percent": tt.get("percent", 100)} for tt in svc.get("traffic", [])]
        self.new_etag(svc)
        rec["snapshot"] = copy.deepcopy(svc)

    def op_view(self, rec):
        out = {"name": rec["name"], "metadata": dict(rec["snapshot"], **{"@type": SERVICE_TYPE}), "done": rec["done"]}
        if rec["done"]:
            fail = rec["fail"]
            if fail:
                code = fail.get("code") or "FAILED_PRECONDITION"
                out["error"] = {"code": RPC_CODES.get(code, 9), "message": fail["message"]}
            else:
                out["response"] = dict(rec["snapshot"], **{"@type": SERVICE_TYPE})
        return out

    def lro_answer(self, rec):
        return Response(200, self.op_view(rec))

    # ------------------------------------------------------------ API
    def api(self, req):
        op = req.operation.rsplit(".", 1)[-1]
        kind = "operations" if ".operations." in req.operation else "services"
        handler = getattr(self, "%s_%s" % (kind, op), None)
        if handler is None:
            return google_error(501, "the fake does not implement %s (the model has it)" % req.operation, "UNIMPLEMENTED")
        return handler(req, req.path_params)

    def build_service(self, name, body, generation, creator):
        t = now_rfc3339()
        svc = {k: v for k, v in body.items() if not k.startswith("_")}
        svc.pop("name", None)
        short = name.rsplit("/", 1)[-1]
        region = name.split("/")[3]
        svc.update(
            {
                "name": name,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                "generation": str(generation),
                "createTime": t,
                "updateTime": t,
                "creator": creator,
                "lastModifier": creator,
                "uri": "https://%s-%s-%s.a.run.app" % (short, hashlib.sha1(name.encode()).hexdigest()[:10], region.replace("-", "")[:4]),
                "reconciling": True,
                "latestCreatedRevision": "%s/revisions/%s-%05d-%s" % (name, short, generation, secrets.token_hex(2)[:3]),
                "terminalCondition": {"type": "Ready", "state": "CONDITION_RECONCILING", "lastTransitionTime": t},
                "conditions": [],
                "launchStage": body.get("launchStage", "GA"),
                "ingress": body.get("ingress", "INGRESS_TRAFFIC_ALL"),
            }
        )
        if not svc.get("traffic"):
            svc["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
        self.new_etag(svc)
        return svc

    def services_create(self, req, p):
        parent = self.parent_of(p)
        sid = req.q("serviceId", "")
        if not sid:
            return google_error(400, "serviceId is required", "INVALID_ARGUMENT")
        name = "%s/services/%s" % (parent, sid)
        if name in self.services:
            return google_error(409, "Resource '%s' already exists." % sid, "ALREADY_EXISTS")
        svc = self.build_service(name, req.json(), 1, "fake@example.iam.gserviceaccount.com")
        if req.q("validateOnly") == "true":
            rec = {"name": "%s/operations/%s" % (parent, uuid.uuid4()), "kind": "create", "service": name, "started": time.time(), "polls": 0, "done": True, "fail": None, "snapshot": svc}
            return self.lro_answer(rec)
        self.services[name] = {"service": svc, "op": None}
        return self.lro_answer(self.start_op(parent, "create", name, copy.deepcopy(svc)))

    def services_get(self, req, p):
        name = req.path[len("/v2/") :]
        rec = self.services.get(name)
        if rec is not None and rec["op"] in self.operations:
            self.poll(self.operations[rec["op"]])
            rec = self.services.get(name)
        if rec is None:
            return google_error(404, "Resource '%s' was not found" % name, "NOT_FOUND")
        return Response(200, rec["service"])

    def services_list(self, req, p):
        parent = self.parent_of(p)
        names = sorted(n for n in self.services if n.startswith(parent + "/services/"))
        start = int(req.q("pageToken") or 0) if (req.q("pageToken") or "0").isdigit() else 0
        size = int(req.q("pageSize") or 100)
        out = {"services": [self.services[n]["service"] for n in names[start : start + size]]}
        if start + size < len(names):
            out["nextPageToken"] = str(start + size)
        return Response(200, out)

    def services_patch(self, req, p):
        name = req.path[len("/v2/") :]
        parent = self.parent_of(p)
        body = req.json()
        rec = self.services.get(name)
        if rec is None:
            if req.q("allowMissing") == "true":
                svc = self.build_service(name, body, 1, "fake@example.iam.gserviceaccount.com")
                if req.q("validateOnly") == "true":
                    return self.lro_answer({"name": parent + "/operations/" + str(uuid.uuid4()), "kind": "create", "service": name, "started": 0, "polls": 0, "done": True, "fail": None, "snapshot": svc})
                self.services[name] = {"service": svc, "op": None}
                return self.lro_answer(self.start_op(parent, "create", name, copy.deepcopy(svc)))
            return google_error(404, "Resource '%s' was not found" % name, "NOT_FOUND")
        if rec["op"] in self.operations:
            self.poll(self.operations[rec["op"]])
        svc = copy.deepcopy(rec["service"])
        if body.get("etag") and body["etag"] != svc["etag"]:
            return google_error(409, "The etag %s does not match the current %s." % (body["etag"], svc["etag"]), "ABORTED")
        mask = req.q("updateMask")
        read_only = {"uid", "generation", "createTime", "updateTime", "deleteTime", "expireTime", "creator", "lastModifier", "etag", "uri", "reconciling", "observedGeneration",
                     "terminalCondition", "conditions", "latestReadyRevision", "latestCreatedRevision", "trafficStatuses", "satisfiesPzs", "name"}
        if mask:
            for path in [m.strip() for m in mask.split(",") if m.strip()]:
                keys = path.split(".")
                src, dst = body, svc
                for k in keys[:-1]:
                    src = src.get(k, {}) if isinstance(src, dict) else {}
                    dst = dst.setdefault(k, {})
                if isinstance(src, dict) and keys[-1] in src:
                    dst[keys[-1]] = src[keys[-1]]
                else:
                    dst.pop(keys[-1], None)
        else:
            for k in list(svc):
                if k not in read_only:
                    svc.pop(k)
            for k, v in body.items():
                if k not in read_only:
                    svc[k] = v
            if not svc.get("traffic"):
                svc["traffic"] = [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}]
        gen = int(svc["generation"]) + 1
        short = name.rsplit("/", 1)[-1]
        t = now_rfc3339()
        svc.update(
            {
                "generation": str(gen),
                "updateTime": t,
                "reconciling": True,
                "latestCreatedRevision": "%s/revisions/%s-%05d-%s" % (name, short, gen, secrets.token_hex(2)[:3]),
                "terminalCondition": {"type": "Ready", "state": "CONDITION_RECONCILING", "lastTransitionTime": t},
            }
        )
        self.new_etag(svc)
        if req.q("validateOnly") == "true":
            return self.lro_answer({"name": parent + "/operations/" + str(uuid.uuid4()), "kind": "update", "service": name, "started": 0, "polls": 0, "done": True, "fail": None, "snapshot": svc})
        rec["service"] = svc
        return self.lro_answer(self.start_op(parent, "update", name, copy.deepcopy(svc)))

    def services_delete(self, req, p):
        name = req.path[len("/v2/") :]
        parent = self.parent_of(p)
        rec = self.services.get(name)
        if rec is None:
            return google_error(404, "Resource '%s' was not found" % name, "NOT_FOUND")
        etag = req.q("etag")
        if etag and etag != rec["service"]["etag"]:
            return google_error(409, "The etag %s does not match the current %s." % (etag, rec["service"]["etag"]), "ABORTED")
        if req.q("validateOnly") == "true":
            return self.lro_answer({"name": parent + "/operations/" + str(uuid.uuid4()), "kind": "delete", "service": name, "started": 0, "polls": 0, "done": True, "fail": None, "snapshot": rec["service"]})
        rec["service"]["reconciling"] = True
        return self.lro_answer(self.start_op(parent, "delete", name, copy.deepcopy(rec["service"])))

    def operations_get(self, req, p):
        name = req.path[len("/v2/") :]
        rec = self.operations.get(name)
        if rec is None:
            return google_error(404, "Operation '%s' was not found" % name, "NOT_FOUND")
        self.poll(rec)
        return self.lro_answer(rec)

    def operations_wait(self, req, p):
        name = req.path[len("/v2/") : -len(":wait")]
        rec = self.operations.get(name)
        if rec is None:
            return google_error(404, "Operation '%s' was not found" % name, "NOT_FOUND")
        self.poll(rec)
        return self.lro_answer(rec)

    def operations_delete(self, req, p):
        name = req.path[len("/v2/") :]
        if self.operations.pop(name, None) is None:
            return google_error(404, "Operation '%s' was not found" % name, "NOT_FOUND")
        return Response(200, {})

    def operations_list(self, req, p):
        parent = self.parent_of(p)
        return Response(200, {"operations": [self.op_view(r) for n, r in sorted(self.operations.items()) if n.startswith(parent + "/")]})


def add_args(p):
    p.add_argument("--gcp-public-key", help="PEM public key (or certificate) that service-account JWTs must verify against")
    p.add_argument("--gcp-client-email", default="", help="when set, the JWT's iss must be this")
    p.add_argument("--gcp-audience", action="append", help="another aud the token endpoint accepts (default: its own /token URL)")
    p.add_argument("--gcp-token", default="", help="a static access token the API accepts besides the issued ones")
    p.add_argument("--token-ttl", type=int, default=3599, help="expires_in of issued tokens")


if __name__ == "__main__":
    common.main(CloudRunFake, __doc__.splitlines()[0], add_args)
