"""A fake AWS App Runner (AWS JSON 1.0, POST / with X-Amz-Target: AppRunner.*)
with SigV4 verification (botocore) and a fake container-credentials endpoint.

    python3 apprunner_fake.py --port-file F [--log F] [--aws-key-id K --aws-secret S]

See README.md in this folder.
"""

import datetime
import hashlib
import hmac
import os
import re
import secrets
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from common import Response  # noqa: E402

JSON_TYPE = "application/x-amz-json-1.0"
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$")


def aws_error(status, code, message):
    return Response(
        status,
        {"__type": code, "message": message},
        [("x-amzn-ErrorType", code), ("x-amzn-RequestId", str(uuid.uuid4()))],
        content_type=JSON_TYPE,
    )


def ok(body):
    return Response(200, body, [("x-amzn-RequestId", str(uuid.uuid4()))], content_type=JSON_TYPE)


class AppRunnerFake(common.Fake):
    cloud = "aws"
    name = "apprunner"

    def __init__(self, args):
        super().__init__(args)
        self.services = {}  # arn -> service record
        self.order = []  # arns, in creation order
        self.issued_token = args.aws_token or ("FakeSessionToken" + secrets.token_hex(16))

    # ------------------------------------------------------------ auth
    def extra(self, req):
        if req.path.startswith("/_creds/") or req.path == "/_creds":
            return self.container_credentials(req)
        return None

    def container_credentials(self, req):
        """The container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI
        with AWS_CONTAINER_AUTHORIZATION_TOKEN): GET, Authorization: <token>."""
        req.operation = "ContainerCredentials"
        if req.method != "GET":
            return Response(405, {"code": "MethodNotAllowed", "message": "use GET"})
        want = self.args.creds_token
        if want and not hmac.compare_digest(req.header("Authorization").encode(), want.encode()):
            return Response(401, {"code": "Unauthorized", "message": "the Authorization header does not hold the container authorization token"})
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=self.args.creds_ttl)
        return Response(
            200,
            {
                "AccessKeyId": self.args.aws_key_id,
                "SecretAccessKey": self.args.aws_secret,
                "Token": self.issued_token,
                "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "RoleArn": "arn:aws:iam::%s:role/fake-task-role" % self.args.account,
            },
        )

    def authenticate(self, req):
        """Verifies the SigV4 Authorization with botocore's own signer."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        authz = req.header("Authorization")
        if not authz:
            return aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        m = AUTH_RE.match(authz)
        if not m:
            return aws_error(403, "IncompleteSignatureException", "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' in the AWS4-HMAC-SHA256 form")
        key_id, day, region, service, signed, signature = m.groups()
        if key_id != self.args.aws_key_id:
            return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        token = req.header("X-Amz-Security-Token")
        if (token or self.args.aws_token) and token != self.issued_token:
            return aws_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if service != "apprunner":
            return aws_error(403, "InvalidSignatureException", "Credential should be scoped to correct service: 'apprunner'.")
        if region != self.args.region:
            return aws_error(403, "InvalidSignatureException", "Credential should be scoped to a valid region, not '%s'." % region)
        amz_date = req.header("X-Amz-Date")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return aws_error(400, "IncompleteSignatureException", "X-Amz-Date must be set as YYYYMMDD'T'HHMMSS'Z'")
        if amz_date[:8] != day:
            return aws_error(403, "InvalidSignatureException", "Credential date %s does not match X-Amz-Date %s." % (day, amz_date))
        skew = abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
        if skew > 300:
            return aws_error(403, "InvalidSignatureException", "Signature expired: %s is now earlier or later than the server time by more than 5 minutes." % amz_date)
        names = signed.split(";")
        if "host" not in names:
            return aws_error(403, "InvalidSignatureException", "'Host' must be a signed header.")
        content_sha = req.header("X-Amz-Content-SHA256")
        if content_sha and content_sha != hashlib.sha256(req.body).hexdigest():
            return aws_error(400, "InvalidSignatureException", "X-Amz-Content-SHA256 does not match the body.")
        headers = {n: req.headers.get(n, "") for n in names}
        areq = AWSRequest(method=req.method, url="http://%s%s" % (req.header("Host"), req.target), data=req.body, headers=headers)
        areq.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.args.aws_key_id, self.args.aws_secret, token or None), "apprunner", region)
        canonical = signer.canonical_request(areq)
        want = signer.signature(signer.string_to_sign(areq, canonical), areq)
        if not hmac.compare_digest(want, signature):
            return aws_error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            )
        return None

    # ------------------------------------------------------------ faults
    def throttle_response(self, fault):
        r = aws_error(fault["status"] or 429, "ThrottlingException", "Rate exceeded")
        r.headers.append(("Retry-After", fault["retryAfter"]))
        return r

    def server_error_response(self, fault):
        r = aws_error(fault["status"] or 500, "InternalServiceErrorException", "An unexpected error occurred (injected by the fake)")
        r.headers.append(("Retry-After", fault["retryAfter"]))
        return r

    def invalid_response(self, req):
        if req.operation is None and any(p.startswith("operation:") or p.startswith("header X-Amz-Target") for p in req.problems):
            return aws_error(400, "UnknownOperationException", "; ".join(req.problems))
        if any(p.startswith("body: not valid JSON") for p in req.problems):
            return aws_error(400, "SerializationException", "; ".join(req.problems))
        n = len(req.problems)
        return aws_error(400, "InvalidRequestException", "%d validation error%s detected: %s" % (n, "" if n == 1 else "s", "; ".join(req.problems)))

    # ------------------------------------------------------------ state
    def advance(self, svc, poll):
        """Moves the service's running operation on, once it is done."""
        if poll:
            svc["polls"] += 1
        op = svc["operation"]
        if op is None or op["Status"] != "IN_PROGRESS":
            return
        if not self.done(op["_started"], svc["polls"]):
            return
        t = time.time()
        op["EndedAt"] = op["UpdatedAt"] = t
        failed = op.pop("_fail", None)
        kind = op["Type"]
        if kind == "CREATE_SERVICE":
            op["Status"] = "FAILED" if failed else "SUCCEEDED"
            svc["Service"]["Status"] = "CREATE_FAILED" if failed else "RUNNING"
        elif kind == "UPDATE_SERVICE":
            if failed:
                op["Status"] = "ROLLBACK_SUCCEEDED"
                svc["Service"].update(svc.pop("_before"))
            else:
                op["Status"] = "SUCCEEDED"
                svc.pop("_before", None)
            svc["Service"]["Status"] = "RUNNING"
        elif kind == "DELETE_SERVICE":
            if failed:
                op["Status"] = "FAILED"
                svc["Service"]["Status"] = "DELETE_FAILED"
            else:
                op["Status"] = "SUCCEEDED"
                svc["Service"]["Status"] = "DELETED"
                svc["Service"]["DeletedAt"] = t
        svc["Service"]["UpdatedAt"] = t

    def start_operation(self, svc, kind):
        t = time.time()
        op = {"Id": str(uuid.uuid4()), "Type": kind, "Status": "IN_PROGRESS", "TargetArn": svc["Service"]["ServiceArn"], "StartedAt": t, "UpdatedAt": t, "_started": t}
        fail = self.take_fail_next()
        if fail:
            op["_fail"] = fail
        svc["operation"] = op
        svc["operations"].insert(0, op)
        svc["polls"] = 0
        svc["Service"]["Status"] = "OPERATION_IN_PROGRESS"
        svc["Service"]["UpdatedAt"] = t
        if self.done(t, 0):
            self.advance(svc, False)
        return op["Id"]

    def find(self, arn):
        svc = self.services.get(arn)
        if svc is None:
            return None, aws_error(400, "ResourceNotFoundException", "Resource not found: %s" % arn)
        return svc, None

    def state(self):
        return {arn: {"Service": s["Service"], "Tags": s["Tags"]} for arn, s in self.services.items()}

    # ------------------------------------------------------------ operations
    def api(self, req):
        body = req.json() or {}
        return getattr(self, "op_" + req.operation, self.unsupported)(req, body)

    def unsupported(self, req, body):
        return aws_error(400, "InvalidRequestException", "the fake does not implement %s (the model has it)" % req.operation)

    def op_CreateService(self, req, body):
        name = body["ServiceName"]
        for s in self.services.values():
            if s["Service"]["ServiceName"] == name and s["Service"]["Status"] != "DELETED":
                return aws_error(400, "InvalidRequestException", "Service with the provided name already exists: %s" % name)
        live = sum(1 for s in self.services.values() if s["Service"]["Status"] != "DELETED")
        if live >= self.args.max_services:
            return aws_error(400, "ServiceQuotaExceededException", "You have reached the maximum number of services (%d) in this Region." % self.args.max_services)
        sid = uuid.uuid4().hex  # 32 hex digits, as the ServiceId shape's length says
        arn = "arn:aws:apprunner:%s:%s:service/%s/%s" % (self.args.region, self.args.account, name, sid)
        t = time.time()
        instance = {"Cpu": "1024", "Memory": "2048"}
        instance.update(body.get("InstanceConfiguration", {}))
        health = {"Protocol": "TCP", "Path": "/", "Interval": 5, "Timeout": 2, "HealthyThreshold": 1, "UnhealthyThreshold": 5}
        health.update(body.get("HealthCheckConfiguration", {}))
        service = {
            "ServiceName": name,
            "ServiceId": sid,
            "ServiceArn": arn,
            "ServiceUrl": "%s.%s.awsapprunner.com" % (sid[:10], self.args.region),
            "CreatedAt": t,
            "UpdatedAt": t,
            "Status": "OPERATION_IN_PROGRESS",
            "SourceConfiguration": body["SourceConfiguration"],
            "InstanceConfiguration": instance,
            "HealthCheckConfiguration": health,
            "AutoScalingConfigurationSummary": {
                "AutoScalingConfigurationArn": body.get(
                    "AutoScalingConfigurationArn",
                    "arn:aws:apprunner:%s:%s:autoscalingconfiguration/DefaultConfiguration/1/%s" % (self.args.region, self.args.account, "0" * 32),
                ),
                "AutoScalingConfigurationName": "DefaultConfiguration",
                "AutoScalingConfigurationRevision": 1,
                "Status": "ACTIVE",
                "CreatedAt": t,
                "HasAssociatedService": True,
                "IsDefault": True,
            },
            "NetworkConfiguration": body.get(
                "NetworkConfiguration",
                {"EgressConfiguration": {"EgressType": "DEFAULT"}, "IngressConfiguration": {"IsPubliclyAccessible": True}, "IpAddressType": "IPV4"},
            ),
        }
        for k in ("EncryptionConfiguration", "ObservabilityConfiguration"):
            if k in body:
                service[k] = body[k]
        svc = {"Service": service, "Tags": list(body.get("Tags", [])), "operations": [], "operation": None, "polls": 0}
        self.services[arn] = svc
        self.order.append(arn)
        op_id = self.start_operation(svc, "CREATE_SERVICE")
        return ok({"Service": service, "OperationId": op_id})

    def op_DescribeService(self, req, body):
        svc, err = self.find(body["ServiceArn"])
        if err:
            return err
        self.advance(svc, True)
        return ok({"Service": svc["Service"]})

    def op_UpdateService(self, req, body):
        svc, err = self.find(body["ServiceArn"])
        if err:
            return err
        self.advance(svc, False)
        st = svc["Service"]["Status"]
        if st != "RUNNING":
            return aws_error(400, "InvalidStateException", "You can't update the service while its status is %s." % st)
        before = {k: svc["Service"][k] for k in svc["Service"]}
        for k, v in body.items():
            if k == "ServiceArn":
                continue
            if k == "AutoScalingConfigurationArn":
                svc["Service"]["AutoScalingConfigurationSummary"] = dict(svc["Service"]["AutoScalingConfigurationSummary"], AutoScalingConfigurationArn=v)
            elif isinstance(v, dict) and isinstance(svc["Service"].get(k), dict) and k in ("InstanceConfiguration", "HealthCheckConfiguration"):
                svc["Service"][k] = dict(svc["Service"][k], **v)
            else:
                svc["Service"][k] = v
        svc["_before"] = before
        op_id = self.start_operation(svc, "UPDATE_SERVICE")
        return ok({"Service": svc["Service"], "OperationId": op_id})

    def op_DeleteService(self, req, body):
        svc, err = self.find(body["ServiceArn"])
        if err:
            return err
        self.advance(svc, False)
        st = svc["Service"]["Status"]
        if st == "DELETED":
            return aws_error(400, "ResourceNotFoundException", "Resource not found: %s" % body["ServiceArn"])
        if st == "OPERATION_IN_PROGRESS":
            return aws_error(400, "InvalidStateException", "You can't delete the service while its status is OPERATION_IN_PROGRESS.")
        op_id = self.start_operation(svc, "DELETE_SERVICE")
        return ok({"Service": svc["Service"], "OperationId": op_id})

    def page(self, items, body, limit_default=20):
        try:
            start = int(body.get("NextToken") or 0)
        except ValueError:
            return None, None, aws_error(400, "InvalidRequestException", "NextToken is not one this service gave out")
        n = int(body.get("MaxResults") or limit_default)
        chunk = items[start : start + n]
        nxt = str(start + n) if start + n < len(items) else None
        return chunk, nxt, None

    def op_ListServices(self, req, body):
        summaries = []
        for arn in self.order:
            svc = self.services[arn]
            self.advance(svc, False)
            s = svc["Service"]
            if s["Status"] == "DELETED":
                continue
            summaries.append({k: s[k] for k in ("ServiceName", "ServiceId", "ServiceArn", "ServiceUrl", "CreatedAt", "UpdatedAt", "Status")})
        chunk, nxt, err = self.page(summaries, body)
        if err:
            return err
        out = {"ServiceSummaryList": chunk}
        if nxt:
            out["NextToken"] = nxt
        return ok(out)

    def op_ListOperations(self, req, body):
        svc, err = self.find(body["ServiceArn"])
        if err:
            return err
        self.advance(svc, True)
        ops = [{k: v for k, v in op.items() if not k.startswith("_")} for op in svc["operations"]]
        chunk, nxt, err = self.page(ops, body)
        if err:
            return err
        out = {"OperationSummaryList": chunk}
        if nxt:
            out["NextToken"] = nxt
        return ok(out)

    def op_TagResource(self, req, body):
        svc, err = self.find(body["ResourceArn"])
        if err:
            return err
        tags = {t["Key"]: t.get("Value") for t in svc["Tags"]}
        for t in body["Tags"]:
            tags[t["Key"]] = t.get("Value")
        svc["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        return ok({})

    def op_UntagResource(self, req, body):
        svc, err = self.find(body["ResourceArn"])
        if err:
            return err
        drop = set(body["TagKeys"])
        svc["Tags"] = [t for t in svc["Tags"] if t["Key"] not in drop]
        return ok({})

    def op_ListTagsForResource(self, req, body):
        svc, err = self.find(body["ResourceArn"])
        if err:
            return err
        return ok({"Tags": svc["Tags"]})


def add_args(p):
    p.add_argument("--aws-key-id", default="AKIDFAKEEXAMPLE", help="the access key id it accepts")
    p.add_argument("--aws-secret", default="fake/secret/key/for/tests/only", help="the secret access key it verifies signatures with")
    p.add_argument("--aws-token", default="", help="a session token requests must carry (X-Amz-Security-Token); also what /_creds/ hands out")
    p.add_argument("--creds-token", default="", help="the Authorization value /_creds/ wants (AWS_CONTAINER_AUTHORIZATION_TOKEN); empty: any")
    p.add_argument("--creds-ttl", type=int, default=3600, help="seconds until the handed-out credentials expire")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account", default="123456789012")
    p.add_argument("--max-services", type=int, default=30, help="ServiceQuotaExceededException past this many services")


if __name__ == "__main__":
    common.main(AppRunnerFake, __doc__.splitlines()[0], add_args)
