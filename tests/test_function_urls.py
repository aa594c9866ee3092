"""Function URLs and resource policies: URL-config CRUD and permissions through boto3, then
real HTTP requests (urllib and requests, no DNS) to the returned URLs: the payload format 2.0
event, structured and shorthand answers, binary bodies, cookies, CORS, the NONE-auth
permission check, AWS_IAM signatures, function errors, aliases, host-based routing, and an
unmodified Mangum/Starlette application.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import botocore.auth
import pytest
import requests
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from alonzo_helpers import (
    REPO,
    create_function,
    error_code,
    expect_error,
    http_status,
    make_zip,
    unique_name,
    wait_active,
)

URL_RE = re.compile(r"^http://127\.0\.0\.1:\d+/lambda-url/(?P<id>[a-z0-9]{32})/$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")
FIXTURE_TARGET = REPO / "target" / "fixtures"

APP = r'''
import base64
import json


def handler(event, context):
    http = event.get("requestContext", {}).get("http", {})
    path = event.get("rawPath", "")
    if http.get("method") == "OPTIONS":
        raise RuntimeError("preflights must not reach the function")
    if path == "/echo":
        return {"statusCode": 200, "headers": {"content-type": "application/json", "x-version": context.function_version},
                "body": json.dumps(event)}
    if path == "/custom":
        return {"statusCode": 201, "headers": {"x-custom": "yes", "content-type": "text/plain"},
                "cookies": ["a=1", "b=2; Path=/"], "body": "created"}
    if path == "/binary":
        raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event.get("body", "").encode()
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(raw[::-1]).decode(), "isBase64Encoded": True}
    if path == "/shorthand":
        return {"hello": "world"}
    if path == "/string":
        return "just text"
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/bad":
        return {"statusCode": "teapot"}
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "ok " + context.function_version}
'''


def app_zip() -> bytes:
    return make_zip([("app.py", APP + f"# {uuid.uuid4().hex}\n")])


def allow_public(client, name: str, qualifier: str | None = None, sid: str = "FunctionURLAllowPublicAccess"):
    kw = {"Qualifier": qualifier} if qualifier else {}
    return client.add_permission(FunctionName=name, StatementId=sid, Action="lambda:InvokeFunctionUrl",
                                 Principal="*", FunctionUrlAuthType="NONE", **kw)


def get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """urllib GET/POST without raising on HTTP errors: (status, headers, body)."""
    req = urllib.request.Request(url, headers=headers or {})
    return _open(req)


def _open(req) -> tuple[int, object, bytes]:
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def post(url: str, body: bytes, headers: dict) -> tuple[int, object, bytes]:
    return _open(urllib.request.Request(url, data=body, headers=headers, method="POST"))


@pytest.fixture(scope="module")
def public_url(lambda_client):
    """A function with an AuthType NONE URL (with CORS) and the public permission."""
    name = unique_name("url")
    create_function(lambda_client, name, app_zip(), Timeout=10)
    cfg = lambda_client.create_function_url_config(
        FunctionName=name, AuthType="NONE",
        Cors={"AllowOrigins": ["https://app.example"], "AllowMethods": ["GET", "POST"],
              "AllowHeaders": ["x-custom"], "ExposeHeaders": ["x-custom"], "AllowCredentials": True, "MaxAge": 300})
    allow_public(lambda_client, name)
    return name, cfg["FunctionUrl"]


# ---------------------------------------------------------------------------------------
# Control plane
# ---------------------------------------------------------------------------------------


def test_url_config_crud(lambda_client, raw_client, server):
    name = unique_name("urlcfg")
    create_function(lambda_client, name, app_zip())
    created = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert http_status(created) == 201
    m = URL_RE.match(created["FunctionUrl"])
    assert m, created["FunctionUrl"]
    assert created["FunctionUrl"].startswith(server.endpoint + "/")
    assert created["FunctionArn"] == server.function_arn(name)
    assert created["AuthType"] == "NONE" and created["InvokeMode"] == "BUFFERED"
    assert TIME_RE.match(created["CreationTime"]), created["CreationTime"]
    assert "Cors" not in created

    e = expect_error("ResourceConflictException", lambda_client.create_function_url_config, FunctionName=name, AuthType="NONE")
    assert http_status(e) == 409

    got = lambda_client.get_function_url_config(FunctionName=name)
    assert got["FunctionUrl"] == created["FunctionUrl"]
    assert TIME_RE.match(got["LastModifiedTime"])

    cors = {"AllowOrigins": ["*"], "AllowMethods": ["*"], "MaxAge": 60}
    updated = lambda_client.update_function_url_config(FunctionName=name, AuthType="AWS_IAM", Cors=cors, InvokeMode="RESPONSE_STREAM")
    assert updated["FunctionUrl"] == created["FunctionUrl"], "the URL id is stable across updates"
    assert updated["AuthType"] == "AWS_IAM" and updated["Cors"] == cors and updated["InvokeMode"] == "RESPONSE_STREAM"
    assert updated["CreationTime"] == created["CreationTime"]

    listed = lambda_client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]
    assert [c["FunctionUrl"] for c in listed] == [created["FunctionUrl"]]

    for bad in ({"Cors": {"AllowMethods": ["FETCH"]}}, {"Cors": {"MaxAge": 86401}}, {"AuthType": "MAGIC"}, {"InvokeMode": "SOMETIMES"}):
        expect_error({"InvalidParameterValueException", "ValidationException"}, raw_client.update_function_url_config,
                     FunctionName=name, **bad)
    expect_error({"InvalidParameterValueException", "ValidationException"}, raw_client.get_function_url_config,
                 FunctionName=name, Qualifier="1")
    expect_error({"InvalidParameterValueException", "ValidationException"}, raw_client.get_function_url_config,
                 FunctionName=name, Qualifier="$LATEST")
    expect_error("ResourceNotFoundException", lambda_client.get_function_url_config, FunctionName=name, Qualifier="nope")
    expect_error("ResourceNotFoundException", lambda_client.create_function_url_config, FunctionName=unique_name("ghost"), AuthType="NONE")

    assert http_status(lambda_client.delete_function_url_config(FunctionName=name)) == 204
    expect_error("ResourceNotFoundException", lambda_client.get_function_url_config, FunctionName=name)
    expect_error("ResourceNotFoundException", lambda_client.delete_function_url_config, FunctionName=name)
    assert lambda_client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"] == []
    # The old URL no longer answers.
    assert get(created["FunctionUrl"])[0] == 403


def test_permissions(lambda_client, raw_client, server):
    name = unique_name("perm")
    create_function(lambda_client, name, app_zip())
    expect_error("ResourceNotFoundException", lambda_client.get_policy, FunctionName=name)
    resp = lambda_client.add_permission(FunctionName=name, StatementId="s3-invoke", Action="lambda:InvokeFunction",
                                        Principal="s3.amazonaws.com", SourceArn="arn:aws:s3:::my-bucket",
                                        SourceAccount="123456789012")
    assert http_status(resp) == 201
    statement = json.loads(resp["Statement"])
    assert statement == {
        "Sid": "s3-invoke", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "lambda:InvokeFunction", "Resource": server.function_arn(name),
        "Condition": {"StringEquals": {"AWS:SourceAccount": "123456789012"},
                      "ArnLike": {"AWS:SourceArn": "arn:aws:s3:::my-bucket"}},
    }
    e = expect_error("ResourceConflictException", lambda_client.add_permission, FunctionName=name, StatementId="s3-invoke",
                     Action="lambda:InvokeFunction", Principal="s3.amazonaws.com")
    assert "already exists" in str(e)
    allow_public(lambda_client, name)
    policy = lambda_client.get_policy(FunctionName=name)
    doc = json.loads(policy["Policy"])
    assert doc["Version"] == "2012-10-17"
    assert [s["Sid"] for s in doc["Statement"]] == ["s3-invoke", "FunctionURLAllowPublicAccess"]
    assert doc["Statement"][1]["Principal"] == "*"
    assert doc["Statement"][1]["Condition"] == {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
    revision = policy["RevisionId"]

    expect_error("PreconditionFailedException", lambda_client.add_permission, FunctionName=name, StatementId="x",
                 Action="lambda:InvokeFunction", Principal="*", RevisionId="stale")
    lambda_client.add_permission(FunctionName=name, StatementId="acct", Action="lambda:*", Principal="123456789012",
                                 RevisionId=revision)
    acct = [s for s in json.loads(lambda_client.get_policy(FunctionName=name)["Policy"])["Statement"] if s["Sid"] == "acct"]
    assert acct[0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}

    for bad in ({"Action": "s3:GetObject"}, {"StatementId": "has space"}, {"Principal": "nobody"},
                {"FunctionUrlAuthType": "MAGIC", "Action": "lambda:InvokeFunctionUrl"}, {"SourceAccount": "12"}):
        kw = dict(FunctionName=name, StatementId="bad", Action="lambda:InvokeFunction", Principal="*")
        kw.update(bad)
        expect_error({"InvalidParameterValueException", "ValidationException"}, raw_client.add_permission, **kw)
    expect_error("InvalidParameterValueException", lambda_client.add_permission, FunctionName=name, StatementId="l",
                 Action="lambda:InvokeFunction", Principal="*", Qualifier="$LATEST")
    expect_error("ResourceNotFoundException", lambda_client.add_permission, FunctionName=name, StatementId="v",
                 Action="lambda:InvokeFunction", Principal="*", Qualifier="7")

    # A published version has its own policy.
    lambda_client.publish_version(FunctionName=name)
    lambda_client.add_permission(FunctionName=name, StatementId="v1", Action="lambda:InvokeFunction", Principal="*", Qualifier="1")
    v1 = json.loads(lambda_client.get_policy(FunctionName=name, Qualifier="1")["Policy"])
    assert [s["Resource"] for s in v1["Statement"]] == [server.function_arn(name) + ":1"]

    assert http_status(lambda_client.remove_permission(FunctionName=name, StatementId="s3-invoke")) == 204
    expect_error("ResourceNotFoundException", lambda_client.remove_permission, FunctionName=name, StatementId="s3-invoke")
    expect_error("PreconditionFailedException", lambda_client.remove_permission, FunctionName=name, StatementId="acct", RevisionId="stale")
    lambda_client.remove_permission(FunctionName=name, StatementId="acct")
    lambda_client.remove_permission(FunctionName=name, StatementId="FunctionURLAllowPublicAccess")
    expect_error("ResourceNotFoundException", lambda_client.get_policy, FunctionName=name)

    # Deleting the function deletes its policies and URL.
    lambda_client.add_permission(FunctionName=name, StatementId="again", Action="lambda:InvokeFunction", Principal="*")
    lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")
    lambda_client.delete_function(FunctionName=name)
    create_function(lambda_client, name, app_zip())
    expect_error("ResourceNotFoundException", lambda_client.get_policy, FunctionName=name)
    expect_error("ResourceNotFoundException", lambda_client.get_policy, FunctionName=name, Qualifier="1")
    expect_error("ResourceNotFoundException", lambda_client.get_function_url_config, FunctionName=name)


# ---------------------------------------------------------------------------------------
# The front door
# ---------------------------------------------------------------------------------------


def test_get_with_query_and_cookies(public_url, server):
    name, url = public_url
    status, headers, body = get(url + "echo?x=1&x=2&y=hello%20world&flag", {"Cookie": "s=1; t=two", "X-Multi": "a", "User-Agent": "alonzo-test"})
    assert status == 200, body
    assert headers["x-amzn-RequestId"] and headers["X-Amzn-Trace-Id"].startswith("Root=1-")
    event = json.loads(body)
    url_id = URL_RE.match(url)["id"]
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/echo"
    assert event["rawQueryString"] == "x=1&x=2&y=hello%20world&flag"
    assert event["queryStringParameters"] == {"x": "1,2", "y": "hello world", "flag": ""}
    assert event["cookies"] == ["s=1", "t=two"]
    assert event["headers"]["x-multi"] == "a" and "cookie" not in event["headers"]
    assert event["isBase64Encoded"] is False and "body" not in event
    ctx = event["requestContext"]
    assert ctx["apiId"] == url_id and ctx["domainPrefix"] == url_id
    assert ctx["accountId"] == "anonymous"
    assert ctx["domainName"] == f"127.0.0.1:{server.port}"
    assert ctx["http"] == {"method": "GET", "path": "/echo", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "alonzo-test"}
    assert ctx["requestId"] == headers["x-amzn-RequestId"]
    assert ctx["stage"] == "$default" and isinstance(ctx["timeEpoch"], int)
    assert re.match(r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000$", ctx["time"])

    # The URL root itself, with and without the trailing slash.
    assert get(url)[2] == b"ok $LATEST"
    assert get(url.rstrip("/"))[2] == b"ok $LATEST"


def test_post_json_and_binary(public_url):
    _, url = public_url
    status, _, body = post(url + "echo", json.dumps({"a": [1, 2]}).encode(), {"Content-Type": "application/json"})
    assert status == 200
    event = json.loads(body)
    assert event["requestContext"]["http"]["method"] == "POST"
    assert json.loads(event["body"]) == {"a": [1, 2]} and event["isBase64Encoded"] is False

    data = bytes(range(256)) * 64
    r = requests.post(url + "binary", data=data, headers={"Content-Type": "application/octet-stream"}, timeout=60)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.content == data[::-1]


def test_custom_status_headers_cookies_and_shorthand(public_url):
    _, url = public_url
    status, headers, body = get(url + "custom")
    assert (status, body) == (201, b"created")
    assert headers["x-custom"] == "yes" and headers["Content-Type"] == "text/plain"
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2; Path=/"]
    status, headers, body = get(url + "shorthand")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"hello": "world"}
    status, _, body = get(url + "string")
    assert (status, body) == (200, b"just text")


def test_function_errors_are_502(public_url):
    _, url = public_url
    status, _, body = get(url + "boom")
    assert status == 502 and json.loads(body) == {"Message": "Internal Server Error"}
    status, _, _ = get(url + "bad")
    assert status == 502


def test_cors(public_url):
    _, url = public_url
    r = requests.options(url + "echo", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                                                "Access-Control-Request-Headers": "x-custom"}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert r.headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert r.headers["Access-Control-Allow-Headers"] == "x-custom"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Max-Age"] == "300"
    denied = requests.options(url + "echo", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, timeout=30)
    assert "Access-Control-Allow-Origin" not in denied.headers
    r = requests.get(url + "custom", headers={"Origin": "https://app.example"}, timeout=30)
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert r.headers["Access-Control-Expose-Headers"] == "x-custom"
    assert "Access-Control-Allow-Origin" not in requests.get(url + "custom", headers={"Origin": "https://evil.example"}, timeout=30).headers


def test_host_based_routing(public_url, server):
    _, url = public_url
    url_id = URL_RE.match(url)["id"]
    r = requests.get(f"{server.endpoint}/custom", headers={"Host": f"{url_id}.lambda-url.{server.region}.alonzo.internal"}, timeout=30)
    assert (r.status_code, r.text) == (201, "created")
    # Other hosts still reach the Lambda API.
    assert requests.get(f"{server.endpoint}/_alonzo/health", timeout=10).text == "ok"


def test_missing_permission_and_unknown_urls_are_forbidden(lambda_client, server):
    name = unique_name("url-noperm")
    create_function(lambda_client, name, app_zip())
    url = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    status, headers, body = get(url + "echo")
    assert status == 403 and json.loads(body) == {"Message": "Forbidden"}
    # A permission without the FunctionUrlAuthType condition is not enough.
    lambda_client.add_permission(FunctionName=name, StatementId="plain", Action="lambda:InvokeFunction", Principal="*")
    assert get(url + "echo")[0] == 403
    allow_public(lambda_client, name)
    assert get(url + "echo")[0] == 200
    lambda_client.remove_permission(FunctionName=name, StatementId="FunctionURLAllowPublicAccess")
    assert get(url + "echo")[0] == 403
    assert get(f"{server.endpoint}/lambda-url/{'z' * 32}/")[0] == 403


def signed(method: str, url: str, server, body: bytes = b"", secret: str | None = None) -> requests.Response:
    req = AWSRequest(method=method, url=url, data=body, headers={"Content-Type": "application/json"} if body else {})
    creds = Credentials(server.access_key, secret or server.secret_key)
    botocore.auth.SigV4Auth(creds, "lambda", server.region).add_auth(req)
    prepared = req.prepare()
    return requests.request(method, prepared.url, headers=dict(prepared.headers), data=body, timeout=60)


def test_aws_iam_urls_require_a_signature(lambda_client, server):
    name = unique_name("url-iam")
    create_function(lambda_client, name, app_zip())
    url = lambda_client.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    assert get(url + "echo")[0] == 403
    assert signed("GET", url + "echo?q=1", server, secret="wrong-secret").status_code == 403
    r = signed("POST", url + "echo?q=1", server, body=b'{"signed": true}')
    assert r.status_code == 200, r.text
    event = json.loads(r.text)
    assert event["queryStringParameters"] == {"q": "1"}
    assert event["requestContext"]["accountId"] == server.account
    assert event["requestContext"]["authorizer"]["iam"]["accessKey"] == server.access_key


def test_url_on_an_alias(lambda_client, server):
    name = unique_name("url-alias")
    create_function(lambda_client, name, app_zip())
    lambda_client.publish_version(FunctionName=name)
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    cfg = lambda_client.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    assert cfg["FunctionArn"] == server.function_arn(name) + ":live"
    url = cfg["FunctionUrl"]
    # The unqualified function's permission does not open the alias's URL.
    allow_public(lambda_client, name)
    assert get(url)[0] == 403
    allow_public(lambda_client, name, qualifier="live")
    status, headers, body = get(url + "echo")
    assert status == 200 and headers["x-version"] == "1"
    assert [c["FunctionArn"] for c in lambda_client.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]] == [
        server.function_arn(name) + ":live"]
    # Deleting the alias deletes its URL and policy.
    lambda_client.delete_alias(FunctionName=name, Name="live")
    assert get(url)[0] == 403
    lambda_client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    expect_error("ResourceNotFoundException", lambda_client.get_function_url_config, FunctionName=name, Qualifier="live")
    expect_error("ResourceNotFoundException", lambda_client.get_policy, FunctionName=name, Qualifier="live")


# ---------------------------------------------------------------------------------------
# An unmodified ASGI application behind Mangum
# ---------------------------------------------------------------------------------------

MANGUM_APP = r'''
from mangum import Mangum
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return JSONResponse({"hello": request.query_params.get("name", "world"), "path": request.url.path})


async def create_item(request):
    data = await request.json()
    response = JSONResponse({"id": request.path_params["item_id"], "got": data}, status_code=201)
    response.set_cookie("seen", "yes")
    return response


async def plain(request):
    return PlainTextResponse("plain text", headers={"x-app": "starlette"})


app = Starlette(routes=[Route("/hello", hello), Route("/items/{item_id}", create_item, methods=["POST"]), Route("/plain", plain)])
handler = Mangum(app, lifespan="off")
'''


@pytest.fixture(scope="module")
def mangum_package() -> Path:
    pkg = FIXTURE_TARGET / "mangum-pkg"
    if not (pkg / "mangum").is_dir() or not (pkg / "starlette").is_dir():
        FIXTURE_TARGET.mkdir(parents=True, exist_ok=True)
        tmp = FIXTURE_TARGET / f"mangum-pkg.tmp-{uuid.uuid4().hex[:8]}"
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target", str(tmp),
               "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
               "--platform", "manylinux2014_x86_64", "mangum", "starlette"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            pytest.skip(f"could not install mangum and starlette from PyPI: {p.stderr[-1500:]}")
        if pkg.exists():
            shutil.rmtree(pkg)
        tmp.rename(pkg)
    return pkg


def zip_tree(root: Path, extra: dict[str, str]) -> bytes:
    entries = []
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        entries.append((path.relative_to(root).as_posix(), path.read_bytes()))
    entries += list(extra.items())
    return make_zip(entries)


def test_mangum_starlette_app(lambda_client, mangum_package):
    name = unique_name("mangum")
    create_function(lambda_client, name, zip_tree(mangum_package, {"app.py": MANGUM_APP}), Timeout=20, MemorySize=256)
    url = lambda_client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    allow_public(lambda_client, name)
    r = requests.get(url + "hello?name=alonzo", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"hello": "alonzo", "path": "/hello"}
    r = requests.post(url + "items/42", json={"n": 1}, timeout=60)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "42", "got": {"n": 1}}
    assert r.cookies.get("seen") == "yes"
    r = requests.get(url + "plain", timeout=60)
    assert (r.status_code, r.text, r.headers["x-app"]) == (200, "plain text", "starlette")
    assert r.headers["content-type"].startswith("text/plain")
    assert requests.get(url + "missing", timeout=60).status_code == 404
