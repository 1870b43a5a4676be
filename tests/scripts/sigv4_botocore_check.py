#!/usr/bin/env python3
"""botocore as a second oracle for reconcile_aws (run by sigv4_botocore_test.sh).

Usage: sigv4_botocore_check.py TOOL RULESET_JSON [CREDS_URL]

1. App Runner requests (POST /, X-Amz-Target: AppRunner.<Op>, JSON 1.0 body),
   with and without a session token: reconcile_sigv4_tool builds and signs
   them; botocore's own SigV4Auth signs the same method, URL, headers and body
   at the same time; X-Amz-Date, X-Amz-Security-Token and Authorization must
   be equal.
2. Generic and S3-mode signing (S3SigV4Auth: no path normalization,
   X-Amz-Content-SHA256) on a few paths and queries.
3. The App Runner endpoint for regions x FIPS x dual-stack: botocore's
   EndpointProvider on the same rule set file and its own partitions.json.
4. With CREDS_URL (a loopback server started by the .sh): the container
   credentials path over real HTTP, and the canary (the authorization token
   and the secret never appear in an error).
Prints "ok   - ..." / "FAIL - ..." lines; exits 1 when a check failed.
"""
import datetime
import json
import subprocess
import sys
from unittest import mock

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.endpoint_provider import EndpointProvider
from botocore.loaders import create_loader

TOOL, RULESET = sys.argv[1], sys.argv[2]
CREDS_URL = sys.argv[3] if len(sys.argv) > 3 else None
failed = 0


def check(name, got, want):
    global failed
    if got == want:
        print(f"ok   - {name}")
    else:
        failed += 1
        print(f"FAIL - {name}\n       got:  {got!r}\n       want: {want!r}")


def tool(cases):
    out = subprocess.run([TOOL], input=json.dumps(cases), capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def botocore_sign(auth_cls, creds, service, region, when, method, url, headers, body):
    """Signs with botocore at `when`, returns the request's final headers."""
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    auth = auth_cls(creds, service, region)
    fixed = when.replace(tzinfo=None)
    if hasattr(botocore.auth, "get_current_datetime"):
        patch = mock.patch.object(botocore.auth, "get_current_datetime", lambda *a, **k: fixed)
    else:  # older botocore (Debian 12): datetime.datetime.utcnow()
        fake = mock.MagicMock(wraps=datetime)
        fake.datetime.utcnow.return_value = fixed
        fake.datetime.strptime = datetime.datetime.strptime
        patch = mock.patch.object(botocore.auth, "datetime", fake)
    with patch:
        auth.add_auth(request)
    return {k.lower(): v for k, v in request.headers.items()}


WHEN = datetime.datetime(2026, 12, 1, 18, 20, 5, tzinfo=datetime.timezone.utc)
EPOCH = int(WHEN.timestamp())

# --- 1. App Runner requests -------------------------------------------------
create_input = {
    "ServiceName": "reconcile-web",
    "SourceConfiguration": {
        "ImageRepository": {
            "ImageIdentifier": "public.ecr.aws/nginx/nginx:1.27",
            "ImageRepositoryType": "ECR_PUBLIC",
            "ImageConfiguration": {"Port": "8080",
                                   "RuntimeEnvironmentVariables": {"GREETING": "h\u00e9llo \"x\""}},
        },
        "AutoDeploymentsEnabled": False,
    },
    "Tags": [{"Key": "reconcile.io/owner", "Value": "tree-1"}],
}
apprunner_cases = [
    ("CreateService, long-term keys", "https://apprunner.us-east-1.amazonaws.com",
     "CreateService", create_input, "us-east-1", ""),
    ("CreateService, session token", "https://apprunner.eu-west-1.amazonaws.com",
     "CreateService", create_input, "eu-west-1",
     "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token/with+plus=="),
    ("DescribeService on a loopback port, session token", "http://127.0.0.1:48123",
     "DescribeService",
     {"ServiceArn": "arn:aws:apprunner:us-east-1:123456789012:service/web/0123456789abcdef"},
     "us-east-1", "tok"),
    ("ListServices, empty input", "https://apprunner.ap-southeast-2.amazonaws.com",
     "ListServices", {}, "ap-southeast-2", ""),
]
AK, SK = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
results = tool([{"mode": "apprunner", "endpoint": ep, "operation": op, "input": inp,
                 "access_key": AK, "secret_key": SK, "session_token": tok, "region": region,
                 "time": EPOCH} for _, ep, op, inp, region, tok in apprunner_cases])
for (name, ep, op, inp, region, tok), ours in zip(apprunner_cases, results):
    if "error" in ours:
        check(name, ours["error"], "no error")
        continue
    headers = dict(ours["headers"])
    check(f"{name}: POST /", (ours["method"], ours["url"]), ("POST", ep + "/"))
    check(f"{name}: X-Amz-Target", headers.get("X-Amz-Target"), "AppRunner." + op)
    check(f"{name}: Content-Type", headers.get("Content-Type"), "application/x-amz-json-1.0")
    check(f"{name}: body is the input", json.loads(ours["body"]), inp)
    unsigned = {k: v for k, v in headers.items()
                if k not in ("Host", "X-Amz-Date", "X-Amz-Security-Token", "Authorization")}
    theirs = botocore_sign(botocore.auth.SigV4Auth, Credentials(AK, SK, tok or None),
                           "apprunner", region, WHEN, "POST", ours["url"], unsigned,
                           ours["body"].encode())
    check(f"{name}: X-Amz-Date", headers.get("X-Amz-Date"), theirs.get("x-amz-date"))
    check(f"{name}: X-Amz-Security-Token", headers.get("X-Amz-Security-Token"),
          theirs.get("x-amz-security-token"))
    check(f"{name}: Authorization equals botocore's", headers.get("Authorization"),
          theirs.get("authorization"))

# --- 2. Generic and S3 signing ------------------------------------------------
sign_cases = [
    ("GET with a query to sort", botocore.auth.SigV4Auth, "service", False,
     "GET", "https://example.amazonaws.com", "/a/b", "?b=2&a=1&a=0&c=", ""),
    ("GET with dot segments (normalized)", botocore.auth.SigV4Auth, "service", False,
     "GET", "https://example.amazonaws.com", "/a/./b/../c//d", "", ""),
    ("POST form body", botocore.auth.SigV4Auth, "sts", False,
     "POST", "https://sts.amazonaws.com", "/", "", "Action=GetCallerIdentity&Version=2011-06-15"),
    ("S3: path kept as sent", botocore.auth.S3SigV4Auth, "s3", True,
     "GET", "https://bucket.s3.amazonaws.com", "/my-object//example//photo.user", "", ""),
    ("S3: PUT with a body", botocore.auth.S3SigV4Auth, "s3", True,
     "PUT", "https://bucket.s3.us-west-2.amazonaws.com", "/dir/key.txt", "?x-id=PutObject",
     "hello world"),
]
cases = []
for name, auth_cls, service, s3, method, base, path, query, body in sign_cases:
    host = base.split("://", 1)[1]
    cases.append({"mode": "sign", "method": method, "target": path + query,
                  "headers": [["Host", host]], "body": body, "access_key": AK,
                  "secret_key": SK, "session_token": "", "region": "us-west-2",
                  "service": service, "time": EPOCH, "s3": s3, "content_sha256": s3})
for (name, auth_cls, service, s3, method, base, path, query, body), ours in zip(
        sign_cases, tool(cases)):
    theirs = botocore_sign(auth_cls, Credentials(AK, SK), service, "us-west-2", WHEN, method,
                           base + path + query, {}, body.encode())
    mine = dict(ours.get("headers_to_add", []))
    check(f"{name}: Authorization equals botocore's", mine.get("Authorization", ours.get("error")),
          theirs.get("authorization"))
    if s3:
        check(f"{name}: X-Amz-Content-Sha256", mine.get("X-Amz-Content-Sha256"),
              theirs.get("x-amz-content-sha256"))

# --- 3. Endpoint rule set -----------------------------------------------------
with open(RULESET) as f:
    provider = EndpointProvider(json.load(f), create_loader().load_data("partitions"))
# The partitions whose names and suffixes have been stable across botocore
# releases (Debian 12 ships 1.29); the others are in the unit test, from
# the partitions.json the code was written from.
regions = ["us-east-1", "us-west-2", "eu-central-1", "ap-northeast-3", "sa-east-1",
           "me-south-1", "af-south-1", "cn-north-1", "cn-northwest-1", "us-gov-west-1",
           "us-gov-east-1"]
cases, keys = [], []
for region in regions:
    for fips in (False, True):
        for dual in (False, True):
            env = {"AWS_USE_FIPS_ENDPOINT": str(fips).lower(),
                   "AWS_USE_DUALSTACK_ENDPOINT": str(dual).lower()}
            cases.append({"mode": "endpoint", "env": env, "region": region})
            keys.append((region, fips, dual))
for (region, fips, dual), ours in zip(keys, tool(cases)):
    try:
        want = provider.resolve_endpoint(Region=region, UseFIPS=fips, UseDualStack=dual).url
    except Exception as e:  # the rule set's own error
        want = f"error: {e}"
    check(f"endpoint {region} fips={fips} dualstack={dual}", ours.get("url", ours.get("error")),
          want)

# --- 4. Container credentials over real HTTP on loopback ----------------------
if CREDS_URL:
    base = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": CREDS_URL + "/creds",
            "HOME": "/nonexistent"}
    good, wrong, malformed = tool([
        {"mode": "credentials", "env": dict(base, AWS_CONTAINER_AUTHORIZATION_TOKEN="CANARYauth")},
        {"mode": "credentials", "env": dict(base, AWS_CONTAINER_AUTHORIZATION_TOKEN="CANARYwrong")},
        {"mode": "credentials", "env": dict(base, AWS_CONTAINER_CREDENTIALS_FULL_URI=CREDS_URL
                                            + "/malformed",
                                            AWS_CONTAINER_AUTHORIZATION_TOKEN="CANARYauth")},
    ])
    check("container credentials: the keys from the endpoint",
          (good.get("access_key_id"), good.get("secret_access_key"), good.get("session_token")),
          ("ASIALOOPBACK", "CANARYsecretFromServer", "CANARYsessionFromServer"))
    check("container credentials: expiration read", good.get("expiration"), 4102444800)
    err = wrong.get("error", "")
    check("container credentials: a refused token is an error", "HTTP 401" in err, True)
    check("container credentials: the error names the variable",
          "AWS_CONTAINER_CREDENTIALS_FULL_URI" in err, True)
    check("container credentials: no token in the error (canary)", "CANARY" in err, False)
    err = malformed.get("error", "")
    check("container credentials: malformed JSON is an error",
          "not a JSON object" in err, True)
    check("container credentials: no secret in that error (canary)", "CANARY" in err, False)

print(f"{'FAILED' if failed else 'passed'}: botocore cross-check, {failed} failure(s)")
sys.exit(1 if failed else 0)
