"""A fake Azure Resource Manager for Microsoft.App/containerApps
(api-version from the model, 2025-07-01) with ARM asynchronous operations,
a fake Microsoft Entra token endpoint (client credentials) and fake managed
identity endpoints (IMDS and IDENTITY_ENDPOINT).

    python3 containerapps_fake.py --port-file F [--log F]
        [--azure-tenant T --azure-client-id C --azure-client-secret S]

See README.md in this folder.
"""

import copy
import hmac
import os
import secrets
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
import model_check  # noqa: E402
from common import Response, now_rfc3339  # noqa: E402

ARM_SCOPE = "https://management.azure.com/.default"
ARM_RESOURCES = ("https://management.azure.com/", "https://management.azure.com", "https://management.core.windows.net/")
PROVIDER = "/providers/Microsoft.App/"


def arm_error(status, code, message, details=None, headers=None):
    err = {"code": code, "message": message}
    if details:
        err["details"] = details
    return Response(status, {"error": err}, headers)


def aad_error(status, error, code, description):
    return Response(
        status,
        {
            "error": error,
            "error_description": "AADSTS%d: %s" % (code, description),
            "error_codes": [code],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        },
    )


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


class ContainerAppsFake(common.Fake):
    cloud = "azure"
    name = "containerapps"

    def __init__(self, args):
        super().__init__(args)
        self.apps = {}  # lower-cased resource id -> record
        self.ops = {}  # operation id -> record
        self.tokens = {}
        if args.azure_token:
            self.tokens[args.azure_token] = float("inf")
        self.api_version = model_check.model("azure").api_version

    # ------------------------------------------------------------ tokens
    def issue(self):
        tok = "eyFake." + secrets.token_urlsafe(32)
        exp = time.time() + self.args.token_ttl
        with self.lock:
            self.tokens[tok] = exp
        return tok, exp

    def extra(self, req):
        parts = req.path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
            return self.entra_token(req, parts[0])
        if req.path == "/metadata/identity/oauth2/token":
            return self.imds_token(req)
        if req.path == "/msi/token":
            return self.identity_endpoint_token(req)
        low = req.path.lower()
        if "/containerappoperationstatuses/" in low or "/containerappoperationresults/" in low:
            req.kind = "async"
            req.operation = "OperationStatus" if "statuses" in low else "OperationResult"
            bad = self.authenticate(req)
            if bad is not None:
                return bad
            if req.q("api-version") != self.api_version:
                req.problems.append("query parameter api-version: %r, the model is api-version=%s" % (req.q("api-version"), self.api_version))
            with self.lock:
                return self.operation_answer(req, low.rsplit("/", 1)[-1])
        return None

    def entra_token(self, req, tenant):
        req.operation = "EntraToken"
        if req.method != "POST":
            return aad_error(405, "invalid_request", 900561, "The endpoint only accepts POST requests.")
        if not req.header("Content-Type").startswith("application/x-www-form-urlencoded"):
            return aad_error(400, "invalid_request", 900144, "The request body must be application/x-www-form-urlencoded.")
        if tenant != self.args.azure_tenant:
            return aad_error(400, "invalid_request", 90002, "Tenant '%s' not found." % tenant)
        f = req.form()
        if f.get("grant_type") != "client_credentials":
            return aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '%s'." % f.get("grant_type", ""))
        if f.get("client_id") != self.args.azure_client_id:
            return aad_error(400, "unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory." % f.get("client_id", ""))
        if not hmac.compare_digest(f.get("client_secret", "").encode(), self.args.azure_client_secret.encode()):
            return aad_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.")
        if f.get("scope") != ARM_SCOPE:
            return aad_error(400, "invalid_scope", 1002012, "The provided value for scope %r is not valid; this fake serves %s." % (f.get("scope", ""), ARM_SCOPE))
        tok, _ = self.issue()
        ttl = self.args.token_ttl
        return Response(200, {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": tok})

    def imds_token(self, req):
        req.operation = "ImdsToken"
        if req.header("Metadata") != "true":
            return Response(400, {"error": "invalid_request", "error_description": "Required metadata header not specified"})
        if req.q("api-version") is None:
            return Response(400, {"error": "invalid_request", "error_description": "Required query variable 'api-version' is missing"})
        if req.q("resource") not in ARM_RESOURCES:
            return Response(400, {"error": "invalid_resource", "error_description": "AADSTS500011: The resource principal named %s was not found." % req.q("resource")})
        tok, exp = self.issue()
        ttl = str(self.args.token_ttl)
        return Response(
            200,
            {
                "access_token": tok,
                "client_id": self.args.azure_client_id,
                "expires_in": ttl,
                "expires_on": str(int(exp)),
                "ext_expires_in": ttl,
                "not_before": str(int(time.time())),
                "resource": req.q("resource"),
                "token_type": "Bearer",
            },
        )

    def identity_endpoint_token(self, req):
        req.operation = "IdentityEndpointToken"
        want = self.args.identity_header
        if not hmac.compare_digest(req.header("X-IDENTITY-HEADER").encode(), want.encode()):
            return Response(401, {"statusCode": 401, "message": "The X-IDENTITY-HEADER header is missing or does not hold IDENTITY_HEADER."})
        if req.q("api-version") is None:
            return Response(400, {"statusCode": 400, "message": "api-version is required"})
        if req.q("resource") not in ARM_RESOURCES:
            return Response(400, {"statusCode": 400, "message": "resource %r is not served by this fake" % req.q("resource")})
        tok, exp = self.issue()
        return Response(200, {"access_token": tok, "expires_on": str(int(exp)), "resource": req.q("resource"), "token_type": "Bearer", "client_id": self.args.azure_client_id})

    def authenticate(self, req):
        authz = req.header("Authorization")
        www = [("WWW-Authenticate", 'Bearer authorization_uri="%s/%s", error="invalid_token"' % (self.base_url, self.args.azure_tenant))]
        if not authz:
            return arm_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", headers=www)
        if not authz.startswith("Bearer "):
            return arm_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is provided in an invalid format.", headers=www)
        with self.lock:
            exp = self.tokens.get(authz[len("Bearer ") :].strip())
        if exp is None:
            return arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.", headers=www)
        if exp <= time.time():
            return arm_error(401, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.", headers=www)
        return None

    # ------------------------------------------------------------ faults and bad requests
    def throttle_response(self, fault):
        return arm_error(fault["status"] or 429, "TooManyRequests", "The request is being throttled (injected by the fake).", headers=[("Retry-After", fault["retryAfter"])])

    def server_error_response(self, fault):
        return arm_error(fault["status"] or 500, "InternalServerError", "An internal server error occurred (injected by the fake).", headers=[("Retry-After", fault["retryAfter"])])

    def invalid_response(self, req):
        probs = req.problems
        if req.operation is None:
            return arm_error(404, "InvalidResourceType", "; ".join(probs))
        if any(p.startswith("query parameter api-version: required") for p in probs):
            return arm_error(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests. This model is api-version=%s." % self.api_version)
        if any(p.startswith("query parameter api-version:") for p in probs):
            return arm_error(
                400,
                "NoRegisteredProviderFound",
                "No registered resource provider found for API version '%s' of type 'containerApps'. The supported api-version is '%s'. (%s)" % (req.q("api-version"), self.api_version, "; ".join(probs)),
            )
        return arm_error(400, "InvalidRequestContent", "The request content was invalid: " + "; ".join(probs), details=[{"code": "InvalidRequestContent", "message": p} for p in probs])

    def redact_body(self, req):
        body = req.json() if req.body else None
        if isinstance(body, dict):
            try:
                return common.redact_paths(body, model_check.model("azure").secret_paths("ContainerApp", body))
            except Exception:  # a malformed body: the log keeps only its size
                return "<%d bytes>" % len(req.body)
        return body

    # ------------------------------------------------------------ state
    def state(self):
        return {rid: self.view(rec) for rid, rec in self.apps.items()}

    def view(self, rec):
        """The app as GET shows it: secrets' values are never returned."""
        app = copy.deepcopy(rec["app"])
        cfg = app.get("properties", {}).get("configuration") or {}
        if isinstance(cfg.get("secrets"), list):
            cfg["secrets"] = [{k: v for k, v in s.items() if k != "value"} for s in cfg["secrets"] if isinstance(s, dict)]
        return app

    def op_urls(self, rec_loc, op_id):
        base = "%s/subscriptions/%s/providers/Microsoft.App/locations/%s" % (self.base_url, rec_loc["sub"], urllib.parse.quote(rec_loc["location"].replace(" ", "")))
        return (
            "%s/containerappOperationStatuses/%s?api-version=%s" % (base, op_id, self.api_version),
            "%s/containerappOperationResults/%s?api-version=%s" % (base, op_id, self.api_version),
        )

    def start_op(self, rid, kind, sub, location):
        op_id = str(uuid.uuid4())
        op = {"id": op_id, "rid": rid, "kind": kind, "started": time.time(), "polls": 0, "done": False, "fail": self.take_fail_next(), "sub": sub, "location": location}
        self.ops[op_id.lower()] = op
        if rid in self.apps:
            self.apps[rid]["op"] = op_id.lower()
        if self.done(op["started"], 0):
            self.finish(op)
        return op

    def poll(self, op):
        if op["done"]:
            return
        op["polls"] += 1
        if self.done(op["started"], op["polls"]):
            self.finish(op)

    def finish(self, op):
        op["done"] = True
        op["ended"] = time.time()
        rec = self.apps.get(op["rid"])
        if rec is None:
            return
        props = rec["app"]["properties"]
        if op["fail"]:
            props["provisioningState"] = "Failed"
            return
        if op["kind"] == "delete":
            del self.apps[op["rid"]]
            return
        props["provisioningState"] = "Succeeded"
        props["runningStatus"] = "Running"
        props["latestReadyRevisionName"] = props["latestRevisionName"]

    def operation_answer(self, req, op_id):
        op = self.ops.get(op_id)
        if op is None:
            return arm_error(404, "OperationNotFound", "The operation '%s' was not found." % op_id)
        self.poll(op)
        retry = [("Retry-After", self.retry_after)]
        if req.operation == "OperationStatus":
            status = "InProgress"
            if op["done"]:
                status = "Failed" if op["fail"] else "Succeeded"
            body = {"id": req.path, "name": op["id"], "status": status, "startTime": now_rfc3339(op["started"])}
            if op["done"]:
                body["endTime"] = now_rfc3339(op["ended"])
            if op["done"] and op["fail"]:
                body["error"] = {"code": op["fail"].get("code") or "ContainerAppOperationFailed", "message": op["fail"]["message"]}
            return Response(200, body, [] if op["done"] else retry)
        # The Location (operation result) URL: 202 until done, then the outcome.
        if not op["done"]:
            return Response(202, None, retry + [("Location", self.base_url + req.target)])
        if op["fail"]:
            return arm_error(400, op["fail"].get("code") or "ContainerAppOperationFailed", op["fail"]["message"])
        rec = self.apps.get(op["rid"])
        if rec is None:
            return Response(204)
        return Response(200, self.view(rec))

    # ------------------------------------------------------------ the API
    def api(self, req):
        op = req.operation
        p = req.path_params
        handler = {
            "ContainerApps_Get": self.get,
            "ContainerApps_CreateOrUpdate": self.put,
            "ContainerApps_Update": self.patch,
            "ContainerApps_Delete": self.delete,
            "ContainerApps_ListByResourceGroup": self.list_rg,
            "ContainerApps_ListBySubscription": self.list_sub,
            "ContainerApps_ListSecrets": self.list_secrets,
        }.get(op)
        if handler is None:
            return arm_error(501, "NotImplemented", "the fake does not implement %s (the model has it)" % op)
        return handler(req, p)

    @staticmethod
    def rid_of(p):
        return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.App/containerApps/%s" % (p["subscriptionId"], p["resourceGroupName"], p["containerAppName"])

    def not_found(self, p):
        return arm_error(
            404,
            "ResourceNotFound",
            "The Resource 'Microsoft.App/containerApps/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            % (p["containerAppName"], p["resourceGroupName"]),
        )

    def current(self, p):
        rid = self.rid_of(p).lower()
        rec = self.apps.get(rid)
        if rec is not None and rec.get("op") in self.ops:
            self.poll(self.ops[rec["op"]])
            rec = self.apps.get(rid)
        return rid, rec

    def get(self, req, p):
        _, rec = self.current(p)
        if rec is None:
            return self.not_found(p)
        return Response(200, self.view(rec))

    def system_data(self, created=None):
        t = now_rfc3339()
        return {
            "createdBy": self.args.azure_client_id,
            "createdByType": "Application",
            "createdAt": created or t,
            "lastModifiedBy": self.args.azure_client_id,
            "lastModifiedByType": "Application",
            "lastModifiedAt": t,
        }

    def fill(self, rid, p, body, revision, old=None):
        app = copy.deepcopy(body)
        for k in ("id", "name", "type", "systemData"):
            app.pop(k, None)
        props = app.setdefault("properties", {})
        name = p["containerAppName"]
        location = app.get("location", "")
        region = location.replace(" ", "").lower()
        rev = "%s--%s" % (name, secrets.token_hex(4)[:7]) if revision else props.get("latestRevisionName")
        env_domain = "%s.%s.azurecontainerapps.io" % ("fake" + secrets.token_hex(3), region)
        if old is not None:
            env_domain = old.get("domain", env_domain)
        props.update(
            {
                "provisioningState": "InProgress",
                "runningStatus": "Progressing",
                "latestRevisionName": rev,
                "latestRevisionFqdn": "%s.%s" % (rev, env_domain),
                "latestReadyRevisionName": (old or {}).get("app", {}).get("properties", {}).get("latestReadyRevisionName", ""),
                "outboundIpAddresses": ["20.0.0.1"],
                "customDomainVerificationId": "F" * 64,
                "eventStreamEndpoint": "https://%s/subscriptions/%s/resourceGroups/%s/containerApps/%s/eventstream" % (region + ".azurecontainerapps.dev", p["subscriptionId"], p["resourceGroupName"], name),
            }
        )
        if not props["latestReadyRevisionName"]:
            props.pop("latestReadyRevisionName")
        ingress = (props.get("configuration") or {}).get("ingress")
        if isinstance(ingress, dict):
            ingress["fqdn"] = "%s.%s" % (name, env_domain)
        app["id"] = self.rid_of(p)
        app["name"] = name
        app["type"] = "Microsoft.App/containerApps"
        app["systemData"] = self.system_data(old["app"]["systemData"]["createdAt"] if old else None)
        rec = {"app": app, "op": None, "domain": env_domain}
        return rec

    @staticmethod
    def comparable(app):
        """The caller-set part of an app, to tell whether a PUT changes anything."""
        a = copy.deepcopy(app)
        for k in ("id", "name", "type", "systemData"):
            a.pop(k, None)
        props = a.get("properties", {})
        for k in ("provisioningState", "runningStatus", "latestRevisionName", "latestRevisionFqdn", "latestReadyRevisionName", "outboundIpAddresses", "customDomainVerificationId", "eventStreamEndpoint"):
            props.pop(k, None)
        ingress = (props.get("configuration") or {}).get("ingress")
        if isinstance(ingress, dict):
            ingress.pop("fqdn", None)
        return a

    def async_headers(self, op, with_status=True, with_location=False):
        status_url, result_url = self.op_urls(op, op["id"])
        h = [("Retry-After", self.retry_after)]
        if with_status:
            h.append(("Azure-AsyncOperation", status_url))
        if with_location:
            h.append(("Location", result_url))
        return h

    def put(self, req, p):
        body = req.json()
        rid, old = self.current(p)
        if old is not None:
            if old["app"]["properties"].get("provisioningState") == "InProgress":
                return arm_error(409, "ContainerAppOperationInProgress", "Cannot modify a container app while an operation is in progress.")
            if old["app"]["location"].replace(" ", "").lower() != body["location"].replace(" ", "").lower():
                return arm_error(400, "LocationNotAvailableForResourceType", "The location of an existing app cannot change ('%s' to '%s')." % (old["app"]["location"], body["location"]))
            if self.comparable(self.fill(rid, p, body, False, old)["app"]) == self.comparable(old["app"]):
                return Response(200, self.view(old))
        rec = self.fill(rid, p, body, True, old)
        self.apps[rid] = rec
        op = self.start_op(rid, "put", p["subscriptionId"], body["location"])
        return Response(201, self.view(self.apps.get(rid, rec)), self.async_headers(op))

    def patch(self, req, p):
        rid, old = self.current(p)
        if old is None:
            return self.not_found(p)
        if old["app"]["properties"].get("provisioningState") == "InProgress":
            return arm_error(409, "ContainerAppOperationInProgress", "Cannot modify a container app while an operation is in progress.")
        merged = merge_patch(self.comparable(old["app"]), req.json())
        rec = self.fill(rid, p, merged, True, old)
        self.apps[rid] = rec
        op = self.start_op(rid, "patch", p["subscriptionId"], rec["app"]["location"])
        return Response(202, None, self.async_headers(op, with_status=True, with_location=True))

    def delete(self, req, p):
        rid, rec = self.current(p)
        if rec is None:
            return Response(204)
        rec["app"]["properties"]["provisioningState"] = "Deleting"
        op = self.start_op(rid, "delete", p["subscriptionId"], rec["app"]["location"])
        if op["done"] and not op["fail"]:
            return Response(200)
        return Response(202, None, self.async_headers(op, with_status=False, with_location=True))

    def list_rg(self, req, p):
        prefix = ("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.App/containerApps/" % (p["subscriptionId"], p["resourceGroupName"])).lower()
        return Response(200, {"value": [self.view(r) for k, r in sorted(self.apps.items()) if k.startswith(prefix)]})

    def list_sub(self, req, p):
        prefix = ("/subscriptions/%s/" % p["subscriptionId"]).lower()
        return Response(200, {"value": [self.view(r) for k, r in sorted(self.apps.items()) if k.startswith(prefix)]})

    def list_secrets(self, req, p):
        _, rec = self.current(p)
        if rec is None:
            return self.not_found(p)
        secrets_ = (rec["app"].get("properties", {}).get("configuration") or {}).get("secrets") or []
        return Response(200, {"value": [{"name": s.get("name"), "value": s.get("value")} for s in secrets_ if isinstance(s, dict)]})


def add_args(p):
    p.add_argument("--azure-tenant", default="00000000-0000-0000-0000-000000000001", help="the tenant of POST /{tenant}/oauth2/v2.0/token")
    p.add_argument("--azure-client-id", default="00000000-0000-0000-0000-0000000000c1")
    p.add_argument("--azure-client-secret", default="fake-client-secret-for-tests")
    p.add_argument("--identity-header", default="fake-identity-header", help="the X-IDENTITY-HEADER value /msi/token wants (IDENTITY_HEADER)")
    p.add_argument("--azure-token", default="", help="a static access token the API accepts besides the issued ones")
    p.add_argument("--token-ttl", type=int, default=3599)


if __name__ == "__main__":
    common.main(ContainerAppsFake, __doc__.splitlines()[0], add_args)
