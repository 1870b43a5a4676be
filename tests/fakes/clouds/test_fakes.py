"""Tests of the fake cloud servers and of model_check.

    python3 -m unittest -v tests/fakes/clouds/test_fakes.py

Every server is a real process on 127.0.0.1 (an ephemeral port), stopped by
its pid. App Runner is driven with a real boto3 client.
"""

import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import model_check  # noqa: E402

MODELS = model_check.MODELS
AWS_KEY = "AKIDFAKETEST0001"
AWS_SECRET = "canary-aws-secret-4f1c9e"  # must never show in a log
AZ_SECRET = "canary-azure-secret-77ab"
AZ_TENANT = "11111111-2222-3333-4444-555555555555"
AZ_CLIENT = "66666666-7777-8888-9999-000000000000"
APP_SECRET_VALUE = "canary-app-secret-value-9d"
SUB = "00000000-0000-0000-0000-0000000000aa"
AZ_API = "2025-07-01"


class Fake:
    """A fake server process: started on an ephemeral port, stopped by pid."""

    def __init__(self, script, *args):
        self.dir = tempfile.mkdtemp(prefix="fake-")
        self.port_file = os.path.join(self.dir, "port")
        self.log = os.path.join(self.dir, "log.jsonl")
        with open(os.path.join(self.dir, "stderr"), "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, script), "--port-file", self.port_file, "--log", self.log] + list(args),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.time() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("%s did not start; see %s" % (script, os.path.join(self.dir, "stderr")))
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = dict({"Content-Type": "application/json"}, **(headers or {}))
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        raw = r.read()
        conn.close()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = raw.decode("utf-8", "replace")
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def control(self, method, what, body=None):
        status, _, data = self.request(method, "/_fake/" + what, body)
        assert status == 200, (what, status, data)
        return data

    def log_text(self):
        with open(self.log, encoding="utf-8") as f:
            return f.read()


def problems_of(result):
    return "\n".join(result.problems)


# ===================================================================== model_check


class ModelCheckAws(unittest.TestCase):
    H = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AppRunner.CreateService"}

    def good(self):
        return {
            "ServiceName": "hello",
            "SourceConfiguration": {
                "ImageRepository": {
                    "ImageIdentifier": "public.ecr.aws/aws-containers/hello-app-runner:latest",
                    "ImageRepositoryType": "ECR_PUBLIC",
                    "ImageConfiguration": {"Port": "8000", "RuntimeEnvironmentVariables": {"A": "b"}},
                },
                "AutoDeploymentsEnabled": False,
            },
            "InstanceConfiguration": {"Cpu": "1 vCPU", "Memory": "2 GB"},
            "HealthCheckConfiguration": {"Protocol": "HTTP", "Path": "/health", "Interval": 5, "HealthyThreshold": 1},
            "Tags": [{"Key": "managed-by", "Value": "reconcile"}],
        }

    def check(self, body, target="AppRunner.CreateService"):
        return model_check.check("aws", "POST", "/", {}, dict(self.H, **{"X-Amz-Target": target}), json.dumps(body))

    def test_good_request_has_no_problem(self):
        r = self.check(self.good())
        self.assertEqual(r.operation, "CreateService")
        self.assertEqual(r.problems, [])

    def test_missing_required(self):
        b = self.good()
        del b["ServiceName"]
        self.assertIn('Missing required parameter in input: "ServiceName"', problems_of(self.check(b)))

    def test_unknown_member(self):
        b = self.good()
        b["InstanceConfiguration"]["Gpu"] = "1"
        self.assertIn('Unknown parameter in InstanceConfiguration: "Gpu"', problems_of(self.check(b)))

    def test_wrong_type(self):
        b = self.good()
        b["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"]["Port"] = 8000
        self.assertIn("Invalid type for parameter SourceConfiguration.ImageRepository.ImageConfiguration.Port", problems_of(self.check(b)))

    def test_bad_enum(self):
        b = self.good()
        b["SourceConfiguration"]["ImageRepository"]["ImageRepositoryType"] = "DOCKER_HUB"
        self.assertIn("ImageRepositoryType: 'DOCKER_HUB' is not one of the model's values", problems_of(self.check(b)))

    def test_pattern_and_range(self):
        b = self.good()
        b["InstanceConfiguration"]["Cpu"] = "3 vCPU"
        b["HealthCheckConfiguration"]["Interval"] = 21
        b["HealthCheckConfiguration"]["HealthyThreshold"] = 0
        p = problems_of(self.check(b))
        self.assertIn("InstanceConfiguration.Cpu: '3 vCPU' does not match the model's pattern", p)
        self.assertIn("HealthCheckConfiguration.Interval: 21 is above the model's maximum 20", p)
        self.assertIn("HealthCheckConfiguration.HealthyThreshold", p)  # below the minimum 1 (botocore's check)

    def test_known_model_defect_is_narrow(self):
        # ServiceId's pattern contradicts its length; only the pattern is skipped.
        m = model_check.model("aws")
        p = "\n".join(m.check_output("DescribeService", {"Service": {"ServiceId": "0" * 33}}))
        self.assertIn("Service.ServiceId: length 33, the model allows at most 32", p)
        self.assertNotIn("ServiceId: '", p)  # no pattern complaint
        r = self.check({"ServiceArn": "arn:aws:apprunner:us-east-1:123456789012:service/a/" + "0" * 32}, "AppRunner.DescribeService")
        self.assertEqual(r.problems, [])
        p = problems_of(self.check({"ServiceArn": "not-an-arn"}, "AppRunner.DescribeService"))
        self.assertIn("ServiceArn: 'not-an-arn' does not match the model's pattern", p)

    def test_unknown_operation_and_bad_envelope(self):
        self.assertIn("operation: RunTask is not an App Runner operation", problems_of(self.check({}, "AppRunner.RunTask")))
        r = model_check.check("aws", "GET", "/services", {}, {"X-Amz-Target": "AppRunner.ListServices"}, "")
        p = problems_of(r)
        self.assertIn("method: App Runner (AWS JSON 1.0) takes POST only", p)
        self.assertIn("path: App Runner operations are all POST /", p)
        self.assertIn("header Content-Type", p)


GCP_PARENT = "/v2/projects/demo-project/locations/europe-west1"


def gcp_service():
    return {
        "labels": {"managed-by": "reconcile"},
        "template": {
            "annotations": {"team": "cx"},
            "containers": [
                {
                    "image": "us-docker.pkg.dev/cloudrun/container/hello",
                    "command": ["/hello"],
                    "args": ["--port", "8080"],
                    "env": [{"name": "GREETING", "value": "hi"}],
                    "ports": [{"containerPort": 8080}],
                    "resources": {"limits": {"cpu": "1", "memory": "512Mi"}, "cpuIdle": True},
                    "startupProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3},
                }
            ],
            "scaling": {"minInstanceCount": 1, "maxInstanceCount": 1},
            "timeout": "300s",
        },
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
    }


class ModelCheckGcp(unittest.TestCase):
    def check(self, body, method="POST", path=GCP_PARENT + "/services", query=None):
        q = {"serviceId": ["hello"]} if query is None else query
        return model_check.check("gcp", method, path, q, {}, json.dumps(body) if body is not None else None)

    def test_good_request_has_no_problem(self):
        r = self.check(gcp_service())
        self.assertEqual(r.operation, "run.projects.locations.services.create")
        self.assertEqual(r.problems, [])
        r = self.check(gcp_service(), "PATCH", GCP_PARENT + "/services/hello", {"updateMask": ["template,labels"], "allowMissing": ["true"]})
        self.assertEqual((r.operation, r.problems), ("run.projects.locations.services.patch", []))
        r = self.check(None, "GET", GCP_PARENT + "/operations/abc", {})
        self.assertEqual((r.operation, r.problems), ("run.projects.locations.operations.get", []))
        r = self.check(None, "GET", GCP_PARENT + "/services/hello:getIamPolicy", {})
        self.assertEqual((r.operation, r.problems), ("run.projects.locations.services.getIamPolicy", []))

    def test_missing_required(self):
        b = gcp_service()
        del b["template"]["containers"][0]["image"]
        self.assertIn("template.containers[0]: required member 'image' missing", problems_of(self.check(b)))
        self.assertIn("query parameter serviceId: required", problems_of(self.check(gcp_service(), query={})))
        b = gcp_service()
        del b["template"]
        self.assertIn("body: required member 'template' missing", problems_of(self.check(b)))

    def test_unknown_member(self):
        b = gcp_service()
        b["template"]["containers"][0]["user"] = "1000"
        self.assertIn("template.containers[0].user: unknown member", problems_of(self.check(b)))
        self.assertIn("query parameter force: not a parameter", problems_of(self.check(gcp_service(), query={"serviceId": ["x"], "force": ["true"]})))

    def test_wrong_type(self):
        b = gcp_service()
        b["template"]["containers"][0]["ports"][0]["containerPort"] = "8080"
        b["template"]["timeout"] = 300
        p = problems_of(self.check(b))
        self.assertIn("template.containers[0].ports[0].containerPort: want an integer, got string", p)
        self.assertIn("template.timeout: want a string, got integer", p)
        self.assertIn("query parameter validateOnly: 'yes': want true or false", problems_of(self.check(gcp_service(), query={"serviceId": ["x"], "validateOnly": ["yes"]})))

    def test_bad_enum(self):
        b = gcp_service()
        b["ingress"] = "ALL"
        self.assertIn("ingress: 'ALL' is not one of the model's values", problems_of(self.check(b)))

    def test_output_only_field(self):
        b = gcp_service()
        b["uri"] = "https://x.a.run.app"
        b["template"]["containers"][0]["name"] = "main"  # settable: no problem
        p = self.check(b).problems
        self.assertEqual(p, ["uri: output-only (read-only) field sent on input"])

    def test_unknown_path_and_method(self):
        self.assertIn("path: GET /v1/projects/p/services is not a Cloud Run v2 method", problems_of(self.check(None, "GET", "/v1/projects/p/services", {})))
        self.assertIn("that path takes DELETE, GET, PATCH", problems_of(self.check(gcp_service(), "PUT", GCP_PARENT + "/services/hello", {})))


def az_path(name="hello", rg="rg-demo", sub=SUB):
    return "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.App/containerApps/%s" % (sub, rg, name)


def az_app():
    return {
        "location": "westeurope",
        "tags": {"managed-by": "reconcile"},
        "properties": {
            "environmentId": "/subscriptions/%s/resourceGroups/rg-demo/providers/Microsoft.App/managedEnvironments/env" % SUB,
            "configuration": {
                "activeRevisionsMode": "Single",
                "ingress": {"external": True, "targetPort": 8080, "transport": "auto"},
                "secrets": [{"name": "api-key", "value": APP_SECRET_VALUE}],
            },
            "template": {
                "containers": [
                    {
                        "name": "main",
                        "image": "docker.io/library/nginx:1.27",
                        "env": [{"name": "GREETING", "value": "hi"}, {"name": "API_KEY", "secretRef": "api-key"}],
                        "resources": {"cpu": 0.5, "memory": "1Gi"},
                        "probes": [{"type": "Startup", "httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10}],
                    }
                ],
                "scale": {"minReplicas": 1, "maxReplicas": 1},
            },
        },
    }


class ModelCheckAzure(unittest.TestCase):
    def check(self, body, method="PUT", path=None, query=None):
        q = {"api-version": [AZ_API]} if query is None else query
        return model_check.check("azure", method, path or az_path(), q, {}, json.dumps(body) if body is not None else None)

    def test_good_requests_have_no_problem(self):
        r = self.check(az_app())
        self.assertEqual((r.operation, r.problems), ("ContainerApps_CreateOrUpdate", []))
        with open(os.path.join(MODELS, "azure-containerapps", "examples", "ContainerApps_CreateOrUpdate.json")) as f:
            ex = json.load(f)["parameters"]
        r = model_check.check("azure", "PUT", az_path(ex["containerAppName"], ex["resourceGroupName"], ex["subscriptionId"]), {"api-version": [ex["api-version"]]}, {}, json.dumps(ex["containerAppEnvelope"]))
        self.assertEqual(r.problems, [], "the model's own example must pass")
        r = self.check(None, "GET", az_path("hello").rsplit("/", 1)[0])
        self.assertEqual((r.operation, r.problems), ("ContainerApps_ListByResourceGroup", []))

    def test_api_version(self):
        self.assertIn("query parameter api-version: 2024-03-01, the model is api-version=2025-07-01", problems_of(self.check(az_app(), query={"api-version": ["2024-03-01"]})))
        self.assertIn("query parameter api-version: required, missing", problems_of(self.check(az_app(), query={})))

    def test_missing_required(self):
        b = az_app()
        del b["location"]
        self.assertIn("body: required member 'location' missing", problems_of(self.check(b)))
        b = az_app()
        del b["properties"]["template"]["containers"][0]["probes"][0]["httpGet"]["port"]
        self.assertIn("httpGet: required member 'port' missing", problems_of(self.check(b)))

    def test_unknown_member(self):
        b = az_app()
        b["properties"]["template"]["containers"][0]["user"] = "1000"
        self.assertIn("properties.template.containers[0].user: unknown member", problems_of(self.check(b)))

    def test_wrong_type_and_enum(self):
        b = az_app()
        b["properties"]["template"]["containers"][0]["resources"]["cpu"] = "0.5"
        b["properties"]["configuration"]["ingress"]["targetPort"] = "8080"
        b["properties"]["template"]["containers"][0]["probes"][0]["type"] = "Startupish"
        p = problems_of(self.check(b))
        self.assertIn("resources.cpu: want a number, got string", p)
        self.assertIn("ingress.targetPort: want an integer, got string", p)
        self.assertIn("probes[0].type: 'Startupish' is not one of the model's values", p)

    def test_output_only_fields(self):
        b = az_app()
        b["properties"]["provisioningState"] = "Succeeded"
        b["properties"]["configuration"]["ingress"]["fqdn"] = "x.azurecontainerapps.io"
        b["id"] = az_path()
        p = problems_of(self.check(b))
        self.assertIn("properties.provisioningState: output-only (read-only) field sent on input", p)
        self.assertIn("properties.configuration.ingress.fqdn: output-only", p)
        self.assertIn("id: output-only", p)

    def test_unknown_path_and_bad_names(self):
        p = problems_of(self.check(az_app(), path="/subscriptions/%s/resourceGroups/rg/providers/Microsoft.App/containerJobs/x" % SUB))
        self.assertIn("is not a Microsoft.App ContainerApps operation of the model", p)
        self.assertIn("that path takes", problems_of(self.check(None, "POST", az_path())))
        self.assertIn("path parameter resourceGroupName", problems_of(self.check(az_app(), path=az_path(rg="bad%2Fname!"))))

    def test_secret_paths(self):
        self.assertEqual(model_check.model("azure").secret_paths("ContainerApp", az_app()), ["properties.configuration.secrets[0].value"])


# ===================================================================== App Runner


class AppRunnerFake(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake("apprunner_fake.py", "--aws-key-id", AWS_KEY, "--aws-secret", AWS_SECRET, "--creds-token", "creds-token-1", "--retry-after", "0")
        cls.addClassCleanup(cls.fake.stop)

    def client(self, secret=AWS_SECRET, key=AWS_KEY, token=None, retries=1):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "apprunner",
            endpoint_url=self.fake.url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
            config=Config(retries={"total_max_attempts": retries, "mode": "standard"}),
        )

    def source(self):
        return {
            "ImageRepository": {"ImageIdentifier": "public.ecr.aws/aws-containers/hello-app-runner:latest", "ImageRepositoryType": "ECR_PUBLIC", "ImageConfiguration": {"Port": "8000"}},
            "AutoDeploymentsEnabled": False,
        }

    def wait_running(self, c, arn, want="RUNNING"):
        for _ in range(10):
            st = c.describe_service(ServiceArn=arn)["Service"]["Status"]
            if st != "OPERATION_IN_PROGRESS":
                return st
        self.fail("still OPERATION_IN_PROGRESS after 10 describes")

    def test_lifecycle_with_boto3(self):
        c = self.client()
        answers = []  # (operation, raw JSON answer), checked against the output shapes below

        def keep(http_response, model, **_):
            answers.append((model.name, json.loads(http_response.content)))

        c.meta.events.register("after-call.apprunner", keep)
        seq0 = len(self.fake.control("GET", "log"))
        r = c.create_service(ServiceName="life", SourceConfiguration=self.source(), InstanceConfiguration={"Cpu": "1 vCPU", "Memory": "2 GB"}, Tags=[{"Key": "managed-by", "Value": "reconcile"}])
        svc = r["Service"]
        arn = svc["ServiceArn"]
        self.assertEqual(svc["Status"], "OPERATION_IN_PROGRESS")
        self.assertTrue(svc["ServiceUrl"].endswith(".us-east-1.awsapprunner.com"))
        self.assertTrue(r["OperationId"])
        self.assertEqual(self.wait_running(c, arn), "RUNNING")
        ops = c.list_operations(ServiceArn=arn)["OperationSummaryList"]
        self.assertEqual((ops[0]["Type"], ops[0]["Status"]), ("CREATE_SERVICE", "SUCCEEDED"))
        r = c.update_service(ServiceArn=arn, InstanceConfiguration={"Cpu": "2 vCPU", "Memory": "4 GB"})
        self.assertEqual(r["Service"]["Status"], "OPERATION_IN_PROGRESS")
        self.assertEqual(self.wait_running(c, arn), "RUNNING")
        self.assertEqual(c.describe_service(ServiceArn=arn)["Service"]["InstanceConfiguration"]["Cpu"], "2 vCPU")
        c.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "cx"}])
        c.untag_resource(ResourceArn=arn, TagKeys=["managed-by"])
        self.assertEqual(c.list_tags_for_resource(ResourceArn=arn)["Tags"], [{"Key": "team", "Value": "cx"}])
        self.assertIn(arn, [s["ServiceArn"] for s in c.list_services()["ServiceSummaryList"]])
        r = c.delete_service(ServiceArn=arn)
        self.assertEqual(r["Service"]["Status"], "OPERATION_IN_PROGRESS")
        self.assertEqual(self.wait_running(c, arn), "DELETED")
        self.assertNotIn(arn, [s["ServiceArn"] for s in c.list_services()["ServiceSummaryList"]])
        entries = self.fake.control("GET", "log")[seq0:]
        self.assertGreater(len(entries), 10)
        self.assertEqual([e for e in entries if e["problems"]], [], "boto3's requests must pass the model check")
        self.assertTrue(all(e["status"] == 200 for e in entries))
        m = model_check.model("aws")
        self.assertEqual(len(answers), len(entries))
        for op, body in answers:
            self.assertEqual(m.check_output(op, body), [], "the fake's %s answer must match the model's output shape" % op)

    def test_errors_as_aws_json(self):
        from botocore.exceptions import ClientError

        c = self.client()
        with self.assertRaises(ClientError) as cm:
            c.describe_service(ServiceArn="arn:aws:apprunner:us-east-1:123456789012:service/nope/0123456789abcdef0123456789abcdef")
        self.assertEqual(cm.exception.response["Error"]["Code"], "ResourceNotFoundException")
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 400)
        c.create_service(ServiceName="dupe-svc", SourceConfiguration=self.source())
        with self.assertRaises(ClientError) as cm:
            c.create_service(ServiceName="dupe-svc", SourceConfiguration=self.source())
        self.assertEqual(cm.exception.response["Error"]["Code"], "InvalidRequestException")
        self.assertIn("already exists", cm.exception.response["Error"]["Message"])

    def test_signature_checked(self):
        from botocore.exceptions import ClientError

        with self.assertRaises(ClientError) as cm:
            self.client(secret="not-the-secret").list_services()
        self.assertEqual(cm.exception.response["Error"]["Code"], "InvalidSignatureException")
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 403)
        with self.assertRaises(ClientError) as cm:
            self.client(key="AKIDSOMEONEELSE").list_services()
        self.assertEqual(cm.exception.response["Error"]["Code"], "UnrecognizedClientException")
        status, _, body = self.fake.request("POST", "/", "{}", {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AppRunner.ListServices"})
        self.assertEqual((status, body["__type"]), (403, "MissingAuthenticationTokenException"))
        self.assertNotIn(AWS_SECRET, self.fake.log_text())

    def test_bad_request_rejected_with_its_problems(self):
        # A correctly signed raw request whose body breaks the model.
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        body = json.dumps({"ServiceName": "x", "SourceConfiguration": self.source(), "Bogus": 1})
        req = AWSRequest("POST", self.fake.url + "/", data=body.encode(), headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AppRunner.CreateService"})
        SigV4Auth(Credentials(AWS_KEY, AWS_SECRET), "apprunner", "us-east-1").add_auth(req)
        status, _, data = self.fake.request("POST", "/", body, dict(req.headers.items()))
        self.assertEqual(status, 400)
        self.assertEqual(data["__type"], "InvalidRequestException")
        self.assertIn('Unknown parameter in input: "Bogus"', data["message"])
        last = self.fake.control("GET", "log")[-1]
        self.assertEqual(last["operation"], "CreateService")
        self.assertTrue(any("Bogus" in p for p in last["problems"]))

    def test_throttling_and_retry_after(self):
        from botocore.exceptions import ClientError

        self.fake.control("POST", "inject", {"kind": "throttle", "count": 1, "retryAfter": "2"})
        with self.assertRaises(ClientError) as cm:
            self.client().list_services()
        resp = cm.exception.response
        self.assertEqual(resp["Error"]["Code"], "ThrottlingException")
        self.assertEqual(resp["ResponseMetadata"]["HTTPStatusCode"], 429)
        self.assertEqual(resp["ResponseMetadata"]["HTTPHeaders"]["retry-after"], "2")
        # botocore's own retry logic takes the fake's answers as retryable.
        self.fake.control("POST", "inject", {"kind": "throttle", "count": 1, "retryAfter": "0"})
        self.fake.control("POST", "inject", {"kind": "error", "count": 1, "retryAfter": "0"})
        n = len(self.fake.control("GET", "log"))
        self.client(retries=3).list_services()
        statuses = [e["status"] for e in self.fake.control("GET", "log")[n:]]
        self.assertEqual(statuses, [429, 500, 200])

    def test_injected_failure(self):
        self.fake.control("POST", "fail-next", {"message": "image pull failed"})
        c = self.client()
        arn = c.create_service(ServiceName="failing", SourceConfiguration=self.source())["Service"]["ServiceArn"]
        self.assertEqual(self.wait_running(c, arn), "CREATE_FAILED")
        self.assertEqual(c.list_operations(ServiceArn=arn)["OperationSummaryList"][0]["Status"], "FAILED")

    def test_container_credentials(self):
        status, _, _ = self.fake.request("GET", "/_creds/v2/credentials/abc", headers={"Authorization": "wrong"})
        self.assertEqual(status, 401)
        status, _, creds = self.fake.request("GET", "/_creds/v2/credentials/abc", headers={"Authorization": "creds-token-1"})
        self.assertEqual(status, 200)
        self.assertEqual(set(creds) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}, True)
        self.assertRegex(creds["Expiration"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        c = self.client(key=creds["AccessKeyId"], secret=creds["SecretAccessKey"], token=creds["Token"])
        c.list_services()  # the handed-out session token is accepted
        from botocore.exceptions import ClientError

        with self.assertRaises(ClientError) as cm:
            self.client(token="some-other-token").list_services()
        self.assertEqual(cm.exception.response["Error"]["Code"], "UnrecognizedClientException")
        self.assertNotIn(creds["Token"], self.fake.log_text())


# ===================================================================== Cloud Run


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class CloudRunFake(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        cls.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cls.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        d = tempfile.mkdtemp(prefix="gcpkey-")
        cls.pem = os.path.join(d, "pub.pem")
        with open(cls.pem, "wb") as f:
            f.write(cls.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        cls.fake = Fake("cloudrun_fake.py", "--gcp-public-key", cls.pem, "--gcp-client-email", "deployer@demo-project.iam.gserviceaccount.com")
        cls.addClassCleanup(cls.fake.stop)

    def jwt(self, key=None, **over):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        claims = {
            "iss": "deployer@demo-project.iam.gserviceaccount.com",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "aud": self.fake.url + "/token",
            "iat": now,
            "exp": now + 3600,
        }
        claims.update(over)
        head = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode())
        body = b64url(json.dumps(claims).encode())
        sig = (key or self.key).sign((head + "." + body).encode(), padding.PKCS1v15(), hashes.SHA256())
        return head + "." + body + "." + b64url(sig)

    def exchange(self, jwt):
        form = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": jwt})
        return self.fake.request("POST", "/token", form, {"Content-Type": "application/x-www-form-urlencoded"})

    def token(self):
        status, _, body = self.exchange(self.jwt())
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def api(self, method, path, body=None, token=None):
        return self.fake.request(method, path, body, {"Authorization": "Bearer " + (token or self.token())})

    def test_token_endpoint(self):
        status, _, body = self.exchange(self.jwt())
        self.assertEqual(status, 200)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertGreater(body["expires_in"], 0)
        good = self.jwt()
        head, claims, sig = good.split(".")
        forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
        forged["iss"] = "attacker@evil.iam.gserviceaccount.com"
        tampered = head + "." + b64url(json.dumps(forged).encode()) + "." + sig
        for jwt, why in [
            (tampered, "Invalid JWT Signature"),
            (self.jwt(key=self.other_key), "Invalid JWT Signature"),
            (self.jwt(exp=int(time.time()) - 10, iat=int(time.time()) - 100), "expired"),
            (self.jwt(aud="https://example.com/token"), "aud"),
            (self.jwt(scope="https://www.googleapis.com/auth/devstorage.read_only"), "scope"),
            (self.jwt(iss="someone@else.iam.gserviceaccount.com"), "iss"),
            ("not.a.jwt", "Invalid JWT"),
        ]:
            status, _, body = self.exchange(jwt)
            self.assertEqual((status, body["error"]), (400, "invalid_grant"), why)
            self.assertIn(why, body["error_description"])
        form = urllib.parse.urlencode({"grant_type": "client_credentials"})
        status, _, body = self.fake.request("POST", "/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((status, body["error"]), (400, "unsupported_grant_type"))
        self.assertNotIn(good.split(".")[2], self.fake.log_text())

    def test_metadata_server(self):
        path = "/computeMetadata/v1/instance/service-accounts/default/token"
        status, _, _ = self.fake.request("GET", path)
        self.assertEqual(status, 403)
        status, _, body = self.fake.request("GET", path, headers={"Metadata-Flavor": "Google"})
        self.assertEqual(status, 200)
        status, _, _ = self.api("GET", GCP_PARENT + "/services", token=body["access_token"])
        self.assertEqual(status, 200)

    def test_bearer_required(self):
        status, h, body = self.fake.request("GET", GCP_PARENT + "/services")
        self.assertEqual((status, body["error"]["status"], body["error"]["code"]), (401, "UNAUTHENTICATED", 401))
        self.assertIn("www-authenticate", h)
        status, _, body = self.fake.request("GET", GCP_PARENT + "/services", headers={"Authorization": "Bearer ya29.made-up"})
        self.assertEqual(status, 401)

    def wait_op(self, op, tok):
        for _ in range(10):
            if op.get("done"):
                return op
            status, _, op = self.api("GET", "/v2/" + op["name"], token=tok)
            self.assertEqual(status, 200, op)
        self.fail("operation never done")

    def test_lifecycle(self):
        tok = self.token()
        self.fake.control("POST", "reset-log")
        m = model_check.model("gcp")
        status, _, op = self.api("POST", GCP_PARENT + "/services?serviceId=life", gcp_service(), tok)
        self.assertEqual(status, 200, op)
        self.assertFalse(op["done"])
        self.assertRegex(op["name"], r"^projects/demo-project/locations/europe-west1/operations/")
        self.assertEqual(m.check_output("GoogleLongrunningOperation", op), [])
        op = self.wait_op(op, tok)
        svc = op["response"]
        self.assertEqual(svc["@type"], "type.googleapis.com/google.cloud.run.v2.Service")
        status, _, got = self.api("GET", GCP_PARENT + "/services/life", token=tok)
        self.assertEqual(status, 200)
        self.assertEqual(m.check_output("GoogleCloudRunV2Service", got), [], "the fake's Service must match the model")
        self.assertTrue(got["uri"].startswith("https://life-"))
        self.assertEqual(got["terminalCondition"]["state"], "CONDITION_SUCCEEDED")
        self.assertEqual(got["latestReadyRevision"], got["latestCreatedRevision"])
        self.assertFalse(got["reconciling"])
        self.assertEqual(got["generation"], "1")
        self.assertTrue(got["etag"])
        b = gcp_service()
        b["template"]["containers"][0]["image"] = "us-docker.pkg.dev/cloudrun/container/hello:v2"
        status, _, op = self.api("PATCH", GCP_PARENT + "/services/life?updateMask=template", b, tok)
        self.assertEqual(status, 200, op)
        self.wait_op(op, tok)
        status, _, got2 = self.api("GET", GCP_PARENT + "/services/life", token=tok)
        self.assertEqual(got2["generation"], "2")
        self.assertEqual(got2["template"]["containers"][0]["image"], "us-docker.pkg.dev/cloudrun/container/hello:v2")
        self.assertNotEqual(got2["latestReadyRevision"], got["latestReadyRevision"])
        self.assertNotEqual(got2["etag"], got["etag"])
        status, _, lst = self.api("GET", GCP_PARENT + "/services", token=tok)
        self.assertIn(GCP_PARENT[4:] + "/services/life", [s["name"] for s in lst["services"]])
        status, _, op = self.api("DELETE", GCP_PARENT + "/services/life", token=tok)
        self.assertEqual(status, 200)
        self.wait_op(op, tok)
        status, _, err = self.api("GET", GCP_PARENT + "/services/life", token=tok)
        self.assertEqual((status, err["error"]["status"]), (404, "NOT_FOUND"))
        api = [e for e in self.fake.control("GET", "log") if e["kind"] == "api"]
        self.assertGreater(len(api), 8)
        self.assertEqual([e for e in api if e["problems"]], [])

    def test_validate_only_and_conflicts(self):
        tok = self.token()
        status, _, op = self.api("POST", GCP_PARENT + "/services?serviceId=dry&validateOnly=true", gcp_service(), tok)
        self.assertEqual((status, op["done"]), (200, True))
        status, _, _ = self.api("GET", GCP_PARENT + "/services/dry", token=tok)
        self.assertEqual(status, 404)
        self.api("POST", GCP_PARENT + "/services?serviceId=twice", gcp_service(), tok)
        status, _, err = self.api("POST", GCP_PARENT + "/services?serviceId=twice", gcp_service(), tok)
        self.assertEqual((status, err["error"]["status"]), (409, "ALREADY_EXISTS"))

    def test_bad_request_rejected(self):
        b = gcp_service()
        b["uri"] = "https://x"
        b["template"]["containers"][0]["ports"][0]["containerPort"] = "8080"
        status, _, err = self.api("POST", GCP_PARENT + "/services?serviceId=bad", b)
        self.assertEqual((status, err["error"]["status"]), (400, "INVALID_ARGUMENT"))
        fields = [v["field"] for v in err["error"]["details"][0]["fieldViolations"]]
        self.assertIn("uri", fields)
        self.assertIn("template.containers[0].ports[0].containerPort", fields)
        self.assertTrue(self.fake.control("GET", "log")[-1]["problems"])
        status, _, err = self.api("GET", "/v2/projects/p/locations/l/widgets")
        self.assertEqual(status, 404)

    def test_throttling(self):
        tok = self.token()
        self.fake.control("POST", "inject", {"kind": "throttle", "count": 1, "retryAfter": "3"})
        status, h, err = self.api("GET", GCP_PARENT + "/services", token=tok)
        self.assertEqual((status, err["error"]["status"], h.get("retry-after")), (429, "RESOURCE_EXHAUSTED", "3"))
        self.fake.control("POST", "inject", {"kind": "error", "count": 1})
        status, _, err = self.api("GET", GCP_PARENT + "/services", token=tok)
        self.assertEqual((status, err["error"]["status"]), (503, "UNAVAILABLE"))
        status, _, _ = self.api("GET", GCP_PARENT + "/services", token=tok)
        self.assertEqual(status, 200)

    def test_failed_operation(self):
        tok = self.token()
        self.fake.control("POST", "fail-next", {"message": "container failed to start"})
        status, _, op = self.api("POST", GCP_PARENT + "/services?serviceId=broken", gcp_service(), tok)
        op = self.wait_op(op, tok)
        self.assertNotIn("response", op)
        self.assertEqual(op["error"]["message"], "container failed to start")
        status, _, got = self.api("GET", GCP_PARENT + "/services/broken", token=tok)
        self.assertEqual(got["terminalCondition"]["state"], "CONDITION_FAILED")
        self.assertNotIn("latestReadyRevision", got)


# ===================================================================== Container Apps


class ContainerAppsFake(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = Fake(
            "containerapps_fake.py",
            "--azure-tenant", AZ_TENANT, "--azure-client-id", AZ_CLIENT, "--azure-client-secret", AZ_SECRET,
            "--identity-header", "idh-1", "--retry-after", "0",
        )  # fmt: skip
        cls.addClassCleanup(cls.fake.stop)

    def entra(self, secret=AZ_SECRET, tenant=AZ_TENANT, scope="https://management.azure.com/.default"):
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": AZ_CLIENT, "client_secret": secret, "scope": scope})
        return self.fake.request("POST", "/%s/oauth2/v2.0/token" % tenant, form, {"Content-Type": "application/x-www-form-urlencoded"})

    def token(self):
        status, _, body = self.entra()
        self.assertEqual(status, 200, body)
        return body["access_token"]

    def api(self, method, path, body=None, token=None, version=AZ_API):
        if version is not None and "api-version=" not in path:
            path += ("&" if "?" in path else "?") + "api-version=" + version
        return self.fake.request(method, path, body, {"Authorization": "Bearer " + (token or self.token())})

    def follow(self, url, tok):
        u = urllib.parse.urlsplit(url)
        self.assertEqual(u.netloc, "127.0.0.1:%d" % self.fake.port)
        return self.fake.request("GET", u.path + "?" + u.query, headers={"Authorization": "Bearer " + tok})

    def test_entra_token(self):
        status, _, body = self.entra()
        self.assertEqual((status, body["token_type"]), (200, "Bearer"))
        self.assertGreater(body["expires_in"], 0)
        status, _, body = self.entra(secret="wrong")
        self.assertEqual((status, body["error"]), (401, "invalid_client"))
        self.assertIn("AADSTS7000215", body["error_description"])
        status, _, body = self.entra(tenant="99999999-0000-0000-0000-000000000000")
        self.assertEqual((status, body["error"]), (400, "invalid_request"))
        status, _, body = self.entra(scope="https://graph.microsoft.com/.default")
        self.assertEqual((status, body["error"]), (400, "invalid_scope"))
        self.assertNotIn(AZ_SECRET, self.fake.log_text())

    def test_token_endpoint_faults(self):
        self.fake.control("POST", "inject", {"kind": "throttle", "count": 1, "scope": "auth", "retryAfter": "4"})
        status, h, body = self.entra()
        self.assertEqual((status, h.get("retry-after"), body["error"]), (429, "4", "temporarily_unavailable"))
        status, _, _ = self.entra()
        self.assertEqual(status, 200)

    def test_managed_identity(self):
        q = "?api-version=2018-02-01&resource=" + urllib.parse.quote("https://management.azure.com/", safe="")
        status, _, body = self.fake.request("GET", "/metadata/identity/oauth2/token" + q)
        self.assertEqual((status, body["error"]), (400, "invalid_request"))
        status, _, body = self.fake.request("GET", "/metadata/identity/oauth2/token" + q, headers={"Metadata": "true"})
        self.assertEqual(status, 200)
        self.assertTrue(body["expires_on"].isdigit())
        status, _, _ = self.api("GET", az_path().rsplit("/", 1)[0], token=body["access_token"])
        self.assertEqual(status, 200)
        q2 = "?api-version=2019-08-01&resource=" + urllib.parse.quote("https://management.azure.com/", safe="")
        status, _, _ = self.fake.request("GET", "/msi/token" + q2, headers={"X-IDENTITY-HEADER": "nope"})
        self.assertEqual(status, 401)
        status, _, body = self.fake.request("GET", "/msi/token" + q2, headers={"X-IDENTITY-HEADER": "idh-1"})
        self.assertEqual((status, body["token_type"]), (200, "Bearer"))

    def test_bearer_required(self):
        status, h, body = self.fake.request("GET", az_path() + "?api-version=" + AZ_API)
        self.assertEqual((status, body["error"]["code"]), (401, "AuthenticationFailed"))
        self.assertIn("www-authenticate", h)
        status, _, body = self.fake.request("GET", az_path() + "?api-version=" + AZ_API, headers={"Authorization": "Bearer made-up"})
        self.assertEqual((status, body["error"]["code"]), (401, "InvalidAuthenticationToken"))

    def test_lifecycle(self):
        tok = self.token()
        self.fake.control("POST", "reset-log")
        m = model_check.model("azure")
        path = az_path("life")
        status, h, app = self.api("PUT", path, az_app(), tok)
        self.assertEqual(status, 201, app)
        self.assertIn("azure-asyncoperation", h)
        self.assertEqual(h["retry-after"], "0")
        self.assertEqual(app["properties"]["provisioningState"], "InProgress")
        self.assertEqual(m.check_output("ContainerApp", app), [])
        states = []
        for _ in range(10):
            status, sh, st = self.follow(h["azure-asyncoperation"], tok)
            self.assertEqual(status, 200)
            states.append(st["status"])
            if st["status"] != "InProgress":
                break
        self.assertEqual(states, ["InProgress", "Succeeded"])
        status, _, got = self.api("GET", path, token=tok)
        self.assertEqual(status, 200)
        self.assertEqual(m.check_output("ContainerApp", got), [], "the fake's ContainerApp must match the model")
        p = got["properties"]
        self.assertEqual((p["provisioningState"], p["runningStatus"]), ("Succeeded", "Running"))
        self.assertEqual(p["latestReadyRevisionName"], p["latestRevisionName"])
        self.assertTrue(p["latestRevisionFqdn"].endswith(".westeurope.azurecontainerapps.io"))
        self.assertTrue(p["configuration"]["ingress"]["fqdn"].startswith("life."))
        self.assertEqual(got["id"], path)
        self.assertEqual(p["configuration"]["secrets"], [{"name": "api-key"}])
        self.assertNotIn(APP_SECRET_VALUE, json.dumps(got))
        status, _, secrets_ = self.api("POST", path + "/listSecrets", token=tok)
        self.assertEqual((status, secrets_["value"]), (200, [{"name": "api-key", "value": APP_SECRET_VALUE}]))
        status, h, same = self.api("PUT", path, az_app(), tok)
        self.assertEqual(status, 200, "a PUT that changes nothing is 200, no async operation")
        self.assertNotIn("azure-asyncoperation", h)
        status, h, _ = self.api("PATCH", path, {"tags": {"managed-by": "reconcile", "team": "cx"}}, tok)
        self.assertEqual(status, 202)
        for _ in range(10):
            status, _, _ = self.follow(h["location"], tok)
            if status != 202:
                break
        self.assertEqual(status, 200)
        status, _, got2 = self.api("GET", path, token=tok)
        self.assertEqual(got2["tags"], {"managed-by": "reconcile", "team": "cx"})
        self.assertNotEqual(got2["properties"]["latestRevisionName"], p["latestRevisionName"])
        status, _, lst = self.api("GET", az_path().rsplit("/", 1)[0], token=tok)
        self.assertIn(path, [a["id"] for a in lst["value"]])
        status, h, _ = self.api("DELETE", path, token=tok)
        self.assertEqual(status, 202)
        self.assertIn("location", h)
        codes = []
        for _ in range(10):
            status, _, _ = self.follow(h["location"], tok)
            codes.append(status)
            if status != 202:
                break
        self.assertEqual(codes, [202, 204])
        status, _, err = self.api("GET", path, token=tok)
        self.assertEqual((status, err["error"]["code"]), (404, "ResourceNotFound"))
        log = self.fake.control("GET", "log")
        self.assertEqual([e for e in log if e["problems"]], [])
        self.assertNotIn(APP_SECRET_VALUE, self.fake.log_text(), "x-ms-secret values are redacted in the log")
        self.assertIn('"value": "<redacted>"', self.fake.log_text())

    def test_api_version_and_bad_requests(self):
        tok = self.token()
        status, _, err = self.api("GET", az_path(), token=tok, version="2024-03-01")
        self.assertEqual((status, err["error"]["code"]), (400, "NoRegisteredProviderFound"))
        status, _, err = self.api("GET", az_path(), token=tok, version=None)
        self.assertEqual((status, err["error"]["code"]), (400, "MissingApiVersionParameter"))
        b = az_app()
        b["properties"]["provisioningState"] = "Succeeded"
        status, _, err = self.api("PUT", az_path("bad"), b, tok)
        self.assertEqual((status, err["error"]["code"]), (400, "InvalidRequestContent"))
        self.assertIn("properties.provisioningState: output-only", err["error"]["message"])
        status, _, err = self.api("GET", "/subscriptions/%s/resourceGroups/rg/providers/Microsoft.Web/sites/x" % SUB, token=tok)
        self.assertEqual(status, 404)
        self.assertTrue(self.fake.control("GET", "problems"))

    def test_throttling(self):
        tok = self.token()
        self.fake.control("POST", "inject", {"kind": "throttle", "count": 2, "retryAfter": "5"})
        for _ in range(2):
            status, h, err = self.api("GET", az_path("x"), token=tok)
            self.assertEqual((status, err["error"]["code"], h.get("retry-after")), (429, "TooManyRequests", "5"))
        status, _, _ = self.api("GET", az_path("x"), token=tok)
        self.assertEqual(status, 404)

    def test_failed_operation(self):
        tok = self.token()
        self.fake.control("POST", "fail-next", {"message": "image not found", "code": "ContainerAppImagePullFailed"})
        status, h, _ = self.api("PUT", az_path("broken"), az_app(), tok)
        self.assertEqual(status, 201)
        for _ in range(10):
            status, _, st = self.follow(h["azure-asyncoperation"], tok)
            if st["status"] != "InProgress":
                break
        self.assertEqual(st["status"], "Failed")
        self.assertEqual(st["error"]["code"], "ContainerAppImagePullFailed")
        status, _, got = self.api("GET", az_path("broken"), token=tok)
        self.assertEqual(got["properties"]["provisioningState"], "Failed")


class HostileInput(unittest.TestCase):
    """Malformed requests get a clear answer and the fake keeps serving."""

    @classmethod
    def setUpClass(cls):
        cls.fake = Fake("containerapps_fake.py")
        cls.addClassCleanup(cls.fake.stop)

    def test_malformed(self):
        f = self.fake
        status, _, _ = f.request("POST", "/_fake/inject", "{not json")
        self.assertEqual(status, 400)
        import socket

        s = socket.create_connection(("127.0.0.1", f.port))
        s.sendall(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999\r\n\r\n")
        self.assertIn(b" 413 ", s.recv(4096))
        s.close()
        r = model_check.check("azure", "PUT", az_path(), {"api-version": [AZ_API]}, {}, b"\xff\xfe")
        self.assertIn("body: not UTF-8", problems_of(r))
        deep = "[" * 100000 + "]" * 100000
        r = model_check.check("azure", "PUT", az_path(), {"api-version": [AZ_API]}, {}, deep)
        self.assertTrue(r.problems)
        status, _, body = f.request("PUT", az_path() + "?api-version=" + AZ_API, deep, {"Content-Type": "application/json", "Authorization": "Bearer x"})
        self.assertEqual(status, 401)  # answered, not a crash; authentication comes first
        self.assertEqual(f.control("GET", "log")[-1]["problems"], ["body: nested too deeply"])
        status, _, _ = f.request("GET", "/_fake/log")
        self.assertEqual(status, 200)


if __name__ == "__main__":
    unittest.main()
